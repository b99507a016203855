"""The cascade's gate: YAMNet decides which of the species model's windows are worth running.

YAMNet runs on every 0.975 s patch (presence and the privacy filter need it); a species model
like BirdNET costs about ten times more. The gate lets the species model skip windows in which
YAMNet hears no bird, while keeping (almost) every detection BirdNET would make on its own.
Which gate, and whether it is on by default, was chosen by measurement (``bench/cascade.py``,
figures in ``docs/cascade.md``).

A gate scores each YAMNet patch; a species window is *open* when a patch overlapping it
scores at least ``threshold``; with ``context`` its neighbours open too; with ``duty`` every
Nth window runs regardless (a call YAMNet misses entirely can still be found).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from device.errors import EarModelError

FloatArray = npt.NDArray[np.float32]

#: YAMNet (AudioSet) classes that, besides the bird classes, fire on bird sounds.
ANIMAL_CLASSES: Final = (
    "Bird",
    "Bird vocalization, bird call, bird song",
    "Chirp, tweet",
    "Squawk",
    "Pigeon, dove",
    "Coo",
    "Crow",
    "Caw",
    "Owl",
    "Hoot",
    "Bird flight, flapping wings",
    "Animal",
    "Wild animals",
    "Fowl",
    "Whistling",
    "Whistle",
    "Chirp tone",
    "Insect",
    "Cricket",
    "Frog",
)


@dataclass(frozen=True)
class EmbeddingGate:
    """A logistic regression on YAMNet's 1024-d embedding: P(a bird calls in this patch)."""

    weights: FloatArray
    bias: float

    def probability(self, embeddings: npt.ArrayLike) -> FloatArray:
        logits = np.asarray(embeddings, dtype=np.float32) @ self.weights + self.bias
        return np.asarray(1.0 / (1.0 + np.exp(-np.clip(logits, -60, 60))), dtype=np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {
            "weights": [round(float(w), 7) for w in self.weights],
            "bias": round(self.bias, 7),
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> EmbeddingGate:
        return cls(np.asarray(values["weights"], dtype=np.float32), float(values["bias"]))


def fit_embedding_gate(
    embeddings: npt.ArrayLike, is_bird: npt.ArrayLike, *, c: float = 0.1
) -> EmbeddingGate:
    """Train the gate (balanced classes, L2 ``c``): only ever on recordings it is not judged on."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c, class_weight="balanced", max_iter=2000)
    model.fit(np.asarray(embeddings, dtype=np.float64), np.asarray(is_bird))
    return EmbeddingGate(np.asarray(model.coef_[0], dtype=np.float32), float(model.intercept_[0]))


def open_windows(
    patch_scores: Sequence[float] | FloatArray,
    patch_starts_s: Sequence[float] | FloatArray,
    patch_s: float,
    windows: Sequence[tuple[float, float]],
    threshold: float,
) -> npt.NDArray[np.bool_]:
    """Which species windows (start, end) have an overlapping patch at or above ``threshold``."""
    scores = np.asarray(patch_scores, dtype=np.float32)
    starts = np.asarray(patch_starts_s, dtype=np.float64)
    out = np.zeros(len(windows), dtype=bool)
    for i, (start_s, end_s) in enumerate(windows):
        inside = (starts < end_s) & (starts + patch_s > start_s)
        out[i] = bool(inside.any() and scores[inside].max() >= threshold)
    return out


#: Where the shipped gate lives (``bench/cascade.py --write-gate`` writes it).
GATE_FOLDER: Final = "bird_gate"
GATE_FILE: Final = "gate.json"


@dataclass(frozen=True)
class GateModel:
    """The embedding gate and the threshold chosen for it by ``bench/cascade.py``."""

    gate: EmbeddingGate
    threshold: float

    @classmethod
    def load(cls, folder: Path) -> GateModel:
        path = folder / GATE_FILE
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
            return cls(EmbeddingGate.from_dict(values), float(values["threshold"]))
        except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise EarModelError(
                f"{path}: cannot load the cascade's gate ({e!r}); restore it from the "
                "repository or rebuild it with `python -m bench.cascade --write-gate "
                f"{path}`, or set ear.gate = false (the species model then runs on every window)"
            ) from None


@dataclass
class _Pending:
    window: Any  # device.ear.windows.AudioWindow
    opened: bool = False


class CascadeGate:
    """Per stream: holds the species model's windows until YAMNet has heard them, then decides.

    ``add_patch`` takes each YAMNet patch (start, end, gate score) in time order;
    ``add_windows`` the species model's windows as the stream is cut into them. ``ready``
    returns, in order, the windows whose every overlapping patch has been scored and whose
    gate is open (or that the duty cycle picks); the others are counted as skipped.
    """

    def __init__(self, threshold: float, *, duty: int = 0, patch_s: float = 0.975) -> None:
        self.threshold = threshold
        self.duty = duty
        self.patch_s = patch_s
        self._pending: list[_Pending] = []
        self._open_patches: list[tuple[float, float]] = []  # patches at or above threshold
        self._added_until_s = 0.0  # start of the latest species window added
        self._heard_until_s = 0.0
        self._index = 0  # species windows decided so far (the duty cycle counts them)
        self.ran = 0
        self.skipped = 0

    def add_patch(self, start_s: float, end_s: float, score: float) -> None:
        # Patches usually arrive before the window they fall in is complete: remember the
        # open ones until every window they can overlap has been added.
        if score >= self.threshold:
            self._open_patches.append((start_s, end_s))
            for pending in self._pending:
                window = pending.window
                if start_s < window.end_s and window.start_s < end_s:
                    pending.opened = True
        self._heard_until_s = max(self._heard_until_s, end_s)

    def add_windows(self, windows: Sequence[Any]) -> None:
        for window in windows:
            opened = any(s < window.end_s and window.start_s < e for s, e in self._open_patches)
            self._pending.append(_Pending(window, opened))
            self._added_until_s = max(self._added_until_s, window.start_s)
        # Windows start in order: a patch ending before the latest start opens no later one.
        self._open_patches = [(s, e) for s, e in self._open_patches if e > self._added_until_s]

    def ready(self, *, final: bool = False) -> list[Any]:
        """Windows to run now; with ``final`` (the stream ended) every pending one is decided.

        A window is decided once YAMNet has heard a patch length past its end: then every
        patch overlapping it has been scored.
        """
        out = []
        while self._pending:
            pending = self._pending[0]
            if not final and self._heard_until_s < pending.window.end_s + self.patch_s:
                break
            self._pending.pop(0)
            duty = self.duty > 0 and self._index % self.duty == 0
            self._index += 1
            if pending.opened or duty:
                self.ran += 1
                out.append(pending.window)
            else:
                self.skipped += 1
        return out

    @property
    def share_run(self) -> float:
        decided = self.ran + self.skipped
        return self.ran / decided if decided else 0.0
