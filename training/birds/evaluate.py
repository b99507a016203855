"""Scores of the held-out windows: presence precision/recall, false alarms, species accuracy.

A "false alarm" is what a user would be shown: consecutive windows over the threshold on a
recording without birds merge into one detection, as the station merges them, and the count
of such detections is divided by the hours of audio scored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class PresenceScores:
    """Bird / no-bird per window at one threshold."""

    threshold: float
    windows: int
    bird_windows: int
    true_positives: int
    false_positives: int
    average_precision: float

    @property
    def precision(self) -> float:
        called = self.true_positives + self.false_positives
        return self.true_positives / called if called else float("nan")

    @property
    def recall(self) -> float:
        return self.true_positives / self.bird_windows if self.bird_windows else float("nan")

    def to_dict(self) -> dict[str, float | int | None]:
        return {
            "threshold": self.threshold,
            "windows": self.windows,
            "bird_windows": self.bird_windows,
            "true_positives": self.true_positives,
            "false_positives": self.false_positives,
            "precision": _round(self.precision),
            "recall": _round(self.recall),
            "average_precision": _round(self.average_precision),
        }


def _round(value: float) -> float | None:
    return None if np.isnan(value) else round(float(value), 4)


def average_precision(score: FloatArray, is_bird: BoolArray) -> float:
    """Area under the precision-recall curve (step-wise, as scikit-learn computes it)."""
    if not is_bird.any():
        return float("nan")
    order = np.argsort(-score, kind="stable")
    hits = is_bird[order]
    true_positives = np.cumsum(hits)
    precision = true_positives / np.arange(1, len(hits) + 1)
    # Ties must not be split: evaluate only at the last of equal scores.
    distinct = np.r_[np.diff(score[order]) != 0, True]
    recall_steps = np.diff(np.r_[0, true_positives[distinct]]) / hits.sum()
    return float(np.sum(recall_steps * precision[distinct]))


def presence_scores(score: FloatArray, is_bird: BoolArray, threshold: float) -> PresenceScores:
    called = score >= threshold
    return PresenceScores(
        threshold=threshold,
        windows=len(score),
        bird_windows=int(is_bird.sum()),
        true_positives=int(np.sum(called & is_bird)),
        false_positives=int(np.sum(called & ~is_bird)),
        average_precision=average_precision(score, is_bird),
    )


def merged_detections(called_in_time_order: BoolArray) -> int:
    """Runs of consecutive called windows: what the station would report as detections."""
    called = called_in_time_order.astype(np.int8)
    return int(np.sum(np.diff(np.r_[0, called]) == 1))


@dataclass(frozen=True)
class FalseAlarms:
    """Detections on recordings without birds."""

    group: str
    seconds: float
    windows: int
    windows_called: int
    detections: int

    @property
    def per_hour(self) -> float:
        return self.detections / (self.seconds / 3600) if self.seconds else float("nan")

    def to_dict(self) -> dict[str, float | int | str | None]:
        return {
            "seconds": round(self.seconds, 1),
            "windows": self.windows,
            "windows_called_bird": self.windows_called,
            "detections": self.detections,
            "detections_per_hour": _round(self.per_hour),
        }


def false_alarms(
    group: str, per_file_scores: Sequence[FloatArray], seconds: float, threshold: float
) -> FalseAlarms:
    """``per_file_scores``: presence scores of each recording's windows in time order."""
    called = [s >= threshold for s in per_file_scores]
    return FalseAlarms(
        group=group,
        seconds=seconds,
        windows=sum(len(c) for c in called),
        windows_called=sum(int(c.sum()) for c in called),
        detections=sum(merged_detections(c) for c in called),
    )


def species_accuracy(
    probabilities: FloatArray, labels: npt.NDArray[np.int64], species: int, bird_classes: list[int]
) -> tuple[int, float]:
    """Windows of ``species`` and the share whose most likely *bird* class is ``species``
    (the name the station shows once presence is decided)."""
    rows = labels == species
    if not rows.any():
        return 0, float("nan")
    named = np.asarray(bird_classes)[probabilities[rows][:, bird_classes].argmax(axis=1)]
    return int(rows.sum()), float(np.mean(named == species))


def confusion(
    predicted: npt.NDArray[np.int64], true: npt.NDArray[np.int64], n: int
) -> list[list[int]]:
    matrix = np.zeros((n, n), dtype=np.int64)
    np.add.at(matrix, (true, predicted), 1)
    return matrix.tolist()
