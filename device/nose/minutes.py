"""One-minute rows from nose readings.

The food models, the recordings and the beef data all have one row a minute; the sampler runs
faster. :class:`MinuteAggregator` averages every reading of a minute into one row per sensor
(Rs in kΩ) plus climate, counting minutes from the first reading it saw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from device.events import ChannelStatus, NoseReading

SECONDS_PER_MINUTE = 60.0


@dataclass(frozen=True)
class MinuteRow:
    """Means over one minute; NaN where a sensor gave nothing usable all minute."""

    index: int
    ts: float  # time of the last reading in the minute
    rs_kohm: npt.NDArray[np.float64]
    temperature_c: float
    humidity_pct: float
    warming_up: bool


@dataclass
class _Bin:
    index: int
    sensors: int
    ts: float = 0.0
    rs_sums: npt.NDArray[np.float64] = field(init=False)
    rs_counts: npt.NDArray[np.int64] = field(init=False)
    temperature: list[float] = field(default_factory=list)
    humidity: list[float] = field(default_factory=list)
    warming_up: bool = False

    def __post_init__(self) -> None:
        self.rs_sums = np.zeros(self.sensors)
        self.rs_counts = np.zeros(self.sensors, dtype=np.int64)

    def close(self) -> MinuteRow:
        with np.errstate(invalid="ignore", divide="ignore"):
            rs = np.where(self.rs_counts > 0, self.rs_sums / self.rs_counts, np.nan)
        return MinuteRow(
            index=self.index,
            ts=self.ts,
            rs_kohm=rs,
            temperature_c=float(np.mean(self.temperature)) if self.temperature else math.nan,
            humidity_pct=float(np.mean(self.humidity)) if self.humidity else math.nan,
            warming_up=self.warming_up,
        )


class MinuteAggregator:
    """Averages readings into minutes; a row is returned when the next minute begins."""

    def __init__(self, sensors: tuple[str, ...]) -> None:
        self.sensors = sensors
        self._origin_ts: float | None = None
        self._bin: _Bin | None = None

    def add(self, reading: NoseReading) -> MinuteRow | None:
        if self._origin_ts is None:
            self._origin_ts = reading.ts
        index = int((reading.ts - self._origin_ts) // SECONDS_PER_MINUTE)
        closed = None
        if self._bin is not None and index != self._bin.index:
            closed = self._bin.close()
            self._bin = None
        if self._bin is None:
            self._bin = _Bin(index, len(self.sensors))
        self._accumulate(self._bin, reading)
        return closed

    def flush(self) -> MinuteRow | None:
        """Close the minute in progress (at the end of a session)."""
        closed = self._bin.close() if self._bin is not None else None
        self._bin = None
        return closed

    def _accumulate(self, minute: _Bin, reading: NoseReading) -> None:
        minute.ts = reading.ts
        by_name = {v.name: v for v in reading.sensors}
        for i, name in enumerate(self.sensors):
            value = by_name.get(name)
            if value is None or value.rs_kohm is None:
                continue
            if value.status is ChannelStatus.WARMING_UP:
                minute.warming_up = True
            minute.rs_sums[i] += value.rs_kohm
            minute.rs_counts[i] += 1
        if reading.temperature_c is not None:
            minute.temperature.append(reading.temperature_c)
        if reading.humidity_pct is not None:
            minute.humidity.append(reading.humidity_pct)
