"""Fixtures of the ear's tests: the shipped recordings, read as a user's files would be."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from ear_audio import AUDIO, GOLDEN, read_mono


@pytest.fixture(scope="session")
def audio_dir() -> Path:
    return AUDIO


@pytest.fixture(scope="session")
def soundscape() -> tuple[npt.NDArray[np.float32], int]:
    """Ten seconds of a Pennsylvania dawn chorus (opensoundscape, MIT), 32 kHz."""
    return read_mono(AUDIO / "birds_10s_opensoundscape.wav")


@pytest.fixture(scope="session")
def great_tit() -> tuple[npt.NDArray[np.float32], int]:
    """One great tit song (pykanto, MIT), 22.05 kHz."""
    return read_mono(AUDIO / "great_tit" / "2021-B32-0415_05-9.wav")


@pytest.fixture(scope="session")
def yamnet_reference() -> dict[str, npt.NDArray[np.generic]]:
    """The original YAMNet file's own log-mel patches and scores (training/ear_backbone.py)."""
    with np.load(GOLDEN) as data:
        return {k: data[k] for k in data.files}
