"""Recordings for training and evaluating the food classifier.

Reading and checking a CSV is :func:`device.nose.recording.read_recording`, the reader of the
format the station's own recorder writes (columns by name, so the beef set's TS1, which ends
``Humidity,Temperature``, reads like the others; every problem is a
:class:`~device.errors.RecordingError` naming file, line and column). This module adds what
training needs on top: which beef runs to use, labels as class indices, and a check that the
minutes are consecutive (a feature window must not span a gap).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from device.errors import RecordingError
from device.nose.features import BEEF_SENSORS
from device.nose.recording import CLASS_LABELS, Recording, read_recording

#: The classes, in the order of the model's output.
LABELS: tuple[str, ...] = CLASS_LABELS
#: Classes that count as "fresh" in the binary verdict.
FRESH_LABELS: tuple[str, ...] = ("excellent", "good")

#: The four beef runs training may use. TS4 is kept back for acceptance testing: never add it.
BEEF_RUNS: tuple[str, ...] = ("TS1", "TS2", "TS3", "TS5")


def load_recording(
    path: Path | str, *, sensors: Sequence[str] = BEEF_SENSORS, min_rows: int = 1
) -> Recording:
    """Read one recording for training: ``sensors`` in that order, at least ``min_rows`` rows
    (the feature window), one row per minute without gaps."""
    path = Path(path)
    recording = read_recording(path, sensors=tuple(sensors), min_rows=min_rows)
    steps = np.diff(recording.minutes)
    if np.any(steps != 1):
        i = int(np.flatnonzero(steps != 1)[0]) + 1
        raise RecordingError(
            f"{path}:{i + 2}: column 'minute' jumps from {recording.minutes[i - 1]} to "
            f"{recording.minutes[i]}; training needs one row per minute without gaps (cut the "
            "run in two at the gap)"
        )
    return recording


def label_indices(recording: Recording) -> npt.NDArray[np.int64]:
    """Class index per row (into :data:`LABELS`); every row must be labelled."""
    if recording.labels is None:
        raise RecordingError(
            f"{recording.path}: no labels (no 'class' column, or all of it empty); "
            "training needs a class on every row"
        )
    unlabelled = [i for i, label in enumerate(recording.labels) if not label]
    if unlabelled:
        raise RecordingError(
            f"{recording.path}:{unlabelled[0] + 2}: column 'class' is empty "
            f"({len(unlabelled)} such rows); label every row or leave the file out of training"
        )
    return np.array([LABELS.index(label) for label in recording.labels], dtype=np.int64)


def load_beef_runs(
    data_dir: Path | str,
    *,
    runs: Sequence[str] = BEEF_RUNS,
    sensors: Sequence[str] = BEEF_SENSORS,
    min_rows: int = 1,
) -> list[Recording]:
    """The beef runs ``runs`` (``<data_dir>/<run>.csv``), in that order."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise RecordingError(
            f"{data_dir}: no such folder; pass --data with the folder holding "
            f"{', '.join(r + '.csv' for r in runs)}"
        )
    return [
        load_recording(data_dir / f"{run}.csv", sensors=sensors, min_rows=min_rows) for run in runs
    ]
