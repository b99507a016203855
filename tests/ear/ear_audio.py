"""Paths and a reader the ear's tests share."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import soundfile

REPO = Path(__file__).resolve().parents[2]
AUDIO = REPO / "hardware" / "sim" / "audio"
GOLDEN = Path(__file__).resolve().parent / "golden" / "yamnet_reference.npz"


def read_mono(path: Path) -> tuple[npt.NDArray[np.float32], int]:
    data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    return np.ascontiguousarray(data.mean(axis=1)), int(rate)
