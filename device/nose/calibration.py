"""The nose's clean-air calibration: R0 per sensor, saved and reused across restarts.

Taken once, with the box empty and the heaters warm (``senses nose calibrate``). It is never
re-taken automatically: with food in the box the baseline would absorb the food's smell and
every later verdict would read "fresh" (research/enose.md §3.4).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from device.errors import CalibrationError
from device.files import write_json_atomically
from device.nose.features import Baseline
from device.nose.mq import SensorCalibration

CALIBRATION_FORMAT = 1


@dataclass(frozen=True)
class NoseCalibration:
    sensors: dict[str, SensorCalibration]
    created_ts: float
    source: str  # "clean air" on the station, or the recording a replay calibrated from

    def baseline(self, sensor_names: tuple[str, ...]) -> Baseline:
        """The features' baseline, in the model's sensor order."""
        missing = [s for s in sensor_names if s not in self.sensors]
        if missing:
            raise CalibrationError(
                f"no calibration for {', '.join(missing)}; run `senses nose calibrate` "
                "with the box empty"
            )
        entries = [self.sensors[s] for s in sensor_names]
        temps = [e.temperature_c for e in entries if e.temperature_c is not None]
        hums = [e.humidity_pct for e in entries if e.humidity_pct is not None]
        if not temps or not hums:
            raise CalibrationError(
                "the calibration was taken without temperature/humidity; connect the SHT31 "
                "and calibrate again"
            )
        return Baseline(
            rs_kohm=np.asarray([e.clean_air_rs_kohm for e in entries]),
            temperature_c=float(np.median(temps)),
            humidity_pct=float(np.median(hums)),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": CALIBRATION_FORMAT,
            "created_ts": self.created_ts,
            "source": self.source,
            "sensors": {name: asdict(c) for name, c in self.sensors.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, origin: str = "calibration") -> NoseCalibration:
        try:
            if data["format"] != CALIBRATION_FORMAT:
                raise CalibrationError(
                    f"{origin} has format {data['format']}, this station reads format "
                    f"{CALIBRATION_FORMAT}; calibrate again with `senses nose calibrate`"
                )
            sensors = {name: SensorCalibration(**entry) for name, entry in data["sensors"].items()}
            return cls(
                sensors=sensors, created_ts=float(data["created_ts"]), source=str(data["source"])
            )
        except (KeyError, TypeError, ValueError) as e:
            if isinstance(e, CalibrationError):
                raise
            raise CalibrationError(
                f"{origin} is damaged ({e!r}); delete it and run `senses nose calibrate`"
            ) from e

    def save(self, path: Path) -> None:
        """Write atomically: a power cut leaves the old file or the new one, never half."""
        write_json_atomically(path, self.to_dict())

    @classmethod
    def load(cls, path: Path) -> NoseCalibration:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CalibrationError(
                f"no calibration at {path}; run `senses nose calibrate` with the box empty "
                "and the heaters warm"
            ) from None
        except (OSError, json.JSONDecodeError) as e:
            raise CalibrationError(
                f"cannot read calibration {path} ({e}); delete it and calibrate again"
            ) from e
        if not isinstance(data, dict):
            raise CalibrationError(f"{path} is not a calibration file; calibrate again")
        return cls.from_dict(data, origin=str(path))
