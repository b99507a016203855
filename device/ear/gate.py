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

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

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
