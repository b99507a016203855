"""E-nose recordings: the CSV format the station writes and training reads.

One row per minute, columns read by name (the beef recordings of Wijaya et al. 2018 put
``Humidity,Temperature`` in one order in TS1 and the other in TS2–TS5)::

    minute, class, TVC, <one column per sensor, Rs in kΩ>, Temperature, Humidity

``class`` (excellent / good / acceptable / spoiled) and ``TVC`` (log10 CFU/g) are optional:
a user's own recording carries the label they gave it or none. Extra columns (the station adds
``ts`` and ``warming_up``) are kept out of the arrays. Every problem is reported with file,
line and column, because a person fixes these files by hand.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np
import numpy.typing as npt

from device.errors import RecordingError

FloatArray = npt.NDArray[np.float64]

CLASS_LABELS = ("excellent", "good", "acceptable", "spoiled")
MINUTE_COLUMN = "minute"
CLASS_COLUMN = "class"
TVC_COLUMN = "TVC"
TEMPERATURE_COLUMN = "Temperature"
HUMIDITY_COLUMN = "Humidity"
NON_SENSOR_COLUMNS = {MINUTE_COLUMN, CLASS_COLUMN, TVC_COLUMN, TEMPERATURE_COLUMN, HUMIDITY_COLUMN}

# Plausible ranges: values outside them mean wrong units (°F, Ω instead of kΩ, a fraction
# instead of percent) or a broken sensor, and would silently ruin features.
TEMPERATURE_RANGE_C = (-20.0, 80.0)
HUMIDITY_RANGE_PCT = (0.0, 100.0)
RS_RANGE_KOHM = (0.01, 100_000.0)
TVC_RANGE_LOG_CFU = (0.0, 12.0)


@dataclass(frozen=True)
class Recording:
    """A whole recording as arrays, one entry per minute."""

    path: Path
    minutes: npt.NDArray[np.int64]
    sensors: tuple[str, ...]
    rs_kohm: FloatArray  # [minutes, sensors]
    temperature_c: FloatArray
    humidity_pct: FloatArray
    labels: tuple[str, ...] | None
    tvc_log_cfu: FloatArray | None

    def __len__(self) -> int:
        return int(self.minutes.shape[0])

    def sensor_rs(self, name: str) -> FloatArray:
        return self.rs_kohm[:, self.sensors.index(name)]


def _number(
    path: Path, line: int, column: str, text: str, valid: tuple[float, float], unit: str
) -> float:
    try:
        value = float(text)
    except ValueError:
        raise RecordingError(
            f"{path}:{line}: column {column!r} holds {text!r}, not a number"
        ) from None
    if not math.isfinite(value):
        raise RecordingError(
            f"{path}:{line}: column {column!r} is {text!r}; fill the gap or drop the row"
        )
    low, high = valid
    if not low <= value <= high:
        raise RecordingError(
            f"{path}:{line}: column {column!r} is {value:g}, outside {low:g}–{high:g} {unit}; "
            "check the units"
        )
    return value


def read_recording(
    path: Path, *, sensors: tuple[str, ...] | None = None, min_rows: int = 1
) -> Recording:
    """Read and check a recording; ``sensors`` picks and orders the sensor columns."""
    try:
        handle = path.open(newline="", encoding="utf-8")
    except FileNotFoundError:
        raise RecordingError(f"recording {path} does not exist") from None
    with handle:
        return _parse(path, handle, sensors, min_rows)


def _parse(path: Path, handle: TextIO, sensors: tuple[str, ...] | None, min_rows: int) -> Recording:
    reader = csv.DictReader(handle)
    header = [h.strip() for h in (reader.fieldnames or [])]
    if not header:
        raise RecordingError(f"{path}:1: the file is empty; expected a header line")
    reader.fieldnames = header
    present = set(header)
    if sensors is None:
        sensors = tuple(
            h for h in header if h.upper().startswith("MQ") and h not in NON_SENSOR_COLUMNS
        )
        if not sensors:
            raise RecordingError(f"{path}:1: no sensor columns (named MQ...) in the header")
    required = [MINUTE_COLUMN, *sensors, TEMPERATURE_COLUMN, HUMIDITY_COLUMN]
    missing = [c for c in required if c not in present]
    if missing:
        raise RecordingError(
            f"{path}:1: missing column(s) {', '.join(missing)}; the header has {', '.join(header)}"
        )
    has_class = CLASS_COLUMN in present
    has_tvc = TVC_COLUMN in present
    minutes: list[int] = []
    rs_rows: list[list[float]] = []
    temperature: list[float] = []
    humidity: list[float] = []
    labels: list[str] = []
    tvc: list[float] = []
    for line, row in enumerate(reader, start=2):
        if None in row:
            raise RecordingError(f"{path}:{line}: more values than header columns")
        minute = _number(path, line, MINUTE_COLUMN, row[MINUTE_COLUMN] or "", (0, 1e9), "min")
        if minutes and minute <= minutes[-1]:
            raise RecordingError(
                f"{path}:{line}: column 'minute' goes from {minutes[-1]} to {minute:g}; "
                "rows must be in time order, one per minute"
            )
        minutes.append(int(minute))
        rs_rows.append([_number(path, line, s, row[s] or "", RS_RANGE_KOHM, "kΩ") for s in sensors])
        temperature.append(
            _number(
                path,
                line,
                TEMPERATURE_COLUMN,
                row[TEMPERATURE_COLUMN] or "",
                TEMPERATURE_RANGE_C,
                "°C",
            )
        )
        humidity.append(
            _number(
                path, line, HUMIDITY_COLUMN, row[HUMIDITY_COLUMN] or "", HUMIDITY_RANGE_PCT, "%RH"
            )
        )
        if has_class:
            label = (row[CLASS_COLUMN] or "").strip().lower()
            if label and label not in CLASS_LABELS:
                raise RecordingError(
                    f"{path}:{line}: column 'class' is {label!r}; use one of "
                    f"{', '.join(CLASS_LABELS)} or leave it empty"
                )
            labels.append(label)
        if has_tvc:
            text = (row[TVC_COLUMN] or "").strip()
            tvc.append(
                _number(path, line, TVC_COLUMN, text, TVC_RANGE_LOG_CFU, "log10 CFU/g")
                if text
                else math.nan
            )
    if len(minutes) < min_rows:
        raise RecordingError(
            f"{path}: {len(minutes)} rows, but at least {min_rows} are needed "
            "(one per minute); record for longer"
        )
    labelled = has_class and any(labels)
    return Recording(
        path=path,
        minutes=np.asarray(minutes, dtype=np.int64),
        sensors=sensors,
        rs_kohm=np.asarray(rs_rows, dtype=np.float64).reshape(len(minutes), len(sensors)),
        temperature_c=np.asarray(temperature, dtype=np.float64),
        humidity_pct=np.asarray(humidity, dtype=np.float64),
        labels=tuple(labels) if labelled else None,
        tvc_log_cfu=np.asarray(tvc, dtype=np.float64) if has_tvc else None,
    )


class RecordingWriter:
    """Appends one row per minute, flushed at once so a power cut loses at most one row."""

    def __init__(self, path: Path, sensors: tuple[str, ...], label: str | None) -> None:
        if label is not None and label not in CLASS_LABELS:
            raise RecordingError(f"label {label!r} is not one of {', '.join(CLASS_LABELS)}")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.sensors = sensors
        self.label = label or ""
        self._handle = path.open("w", newline="", encoding="utf-8")
        self._writer = csv.writer(self._handle)
        self._writer.writerow(
            [
                MINUTE_COLUMN,
                CLASS_COLUMN,
                TVC_COLUMN,
                *sensors,
                TEMPERATURE_COLUMN,
                HUMIDITY_COLUMN,
                "ts",
                "warming_up",
            ]
        )
        self._handle.flush()
        self.rows = 0

    def write(
        self,
        minute: int,
        rs_kohm: list[float],
        temperature_c: float,
        humidity_pct: float,
        ts: float,
        warming_up: bool,
    ) -> None:
        self._writer.writerow(
            [
                minute,
                self.label,
                "",
                *(f"{v:.4f}" for v in rs_kohm),
                f"{temperature_c:.2f}",
                f"{humidity_pct:.2f}",
                f"{ts:.3f}",
                int(warming_up),
            ]
        )
        self._handle.flush()
        self.rows += 1

    def close(self) -> None:
        self._handle.close()
