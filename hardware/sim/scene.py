"""A gas scene: a real e-nose recording played back as the analog voltages MQ modules produce.

The beef recordings (Wijaya et al. 2018, CC BY 4.0) hold each sensor's resistance Rs once a
minute. The scene turns Rs into what the ADS1115 pin sees, through the same physics the driver
inverts (``device.nose.mq``): the module's Rs/RL divider across its 5 V supply, then the divider
that brings 5 V into the 3.3 V ADC. It adds a heater warm-up transient after power-on (research/
enose.md §4.4, Rs(t) = Rs∞·(1 + k·e^(−t/τ)); k and τ are assumptions) and small seeded noise.

Recording row ``i`` is held for one minute of the scene's clock, so at ``speed`` 300 a 36 h
recording plays in 7.2 minutes, and under a ManualClock as fast as the reader samples.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np

from device.clock import Clock
from device.nose.mq import sensor_voltage
from device.nose.recording import Recording

SECONDS_PER_ROW = 60.0
WARMUP_TRANSIENT_K = 1.5
# The fast heater transient of the first minutes; the slow drift of the first days after
# storage (research/enose.md §4.4) is not modelled.
WARMUP_TRANSIENT_TAU_S = 60.0


@dataclass(frozen=True)
class WiredSensor:
    """How one recorded sensor reaches an ADC pin."""

    name: str
    load_kohm: float
    supply_v: float
    adc_divider_ratio: float


class GasScene:
    """Voltages and climate of a recording, as functions of the scene clock."""

    def __init__(
        self,
        recording: Recording,
        clock: Clock,
        *,
        start_minute: int = 1,
        preheated_s: float = math.inf,
        warmup_s: float = 0.0,
        noise_fraction: float = 0.0,
        seed: int = 0,
    ) -> None:
        """``warmup_s``: scene time before the recording starts (heaters warming in clean air);
        ``preheated_s``: how long the heaters were on before the scene started (``inf`` means
        no warm-up transient at all)."""
        start_rows = np.flatnonzero(recording.minutes >= start_minute)
        if start_rows.size == 0:
            raise ValueError(
                f"start minute {start_minute} is past the end of {recording.path} "
                f"(last minute {int(recording.minutes[-1])})"
            )
        self.recording = recording
        self.clock = clock
        self.start_row = int(start_rows[0])
        self.warmup_s = warmup_s
        self.preheated_s = preheated_s
        self.noise_fraction = noise_fraction
        self._rng = np.random.default_rng(seed)
        self._rng_lock = threading.Lock()
        self._t0 = clock.monotonic()
        self._disconnected: set[str] = set()

    # -- time ----------------------------------------------------------------------------
    def elapsed_s(self) -> float:
        return self.clock.monotonic() - self._t0

    def row(self) -> int:
        """Index of the recording row playing now (the first one during warm-up)."""
        playing_s = max(0.0, self.elapsed_s() - self.warmup_s)
        row = self.start_row + int(playing_s // SECONDS_PER_ROW)
        return min(row, len(self.recording) - 1)

    def minute(self) -> int:
        return int(self.recording.minutes[self.row()])

    def label(self) -> str | None:
        labels = self.recording.labels
        return labels[self.row()] or None if labels is not None else None

    @property
    def finished(self) -> bool:
        playing_s = self.elapsed_s() - self.warmup_s
        return self.start_row + playing_s / SECONDS_PER_ROW >= len(self.recording)

    @property
    def rows_to_play(self) -> int:
        return len(self.recording) - self.start_row

    # -- faults ----------------------------------------------------------------------------
    def disconnect(self, sensor: str) -> None:
        """The module's AO wire falls off: the ADC input is pulled to ground."""
        self._check_sensor(sensor)
        self._disconnected.add(sensor)

    def reconnect(self, sensor: str) -> None:
        self._disconnected.discard(sensor)

    def _check_sensor(self, sensor: str) -> None:
        if sensor not in self.recording.sensors:
            raise ValueError(
                f"{sensor} is not in {self.recording.path.name}; it has "
                f"{', '.join(self.recording.sensors)}"
            )

    # -- physics -----------------------------------------------------------------------------
    def rs_kohm(self, sensor: str) -> float:
        """Rs now: the recorded value, raised by the heater transient while warming up."""
        self._check_sensor(sensor)
        recorded = float(self.recording.sensor_rs(sensor)[self.row()])
        heated_s = self.preheated_s + self.elapsed_s()
        return recorded * (1.0 + WARMUP_TRANSIENT_K * math.exp(-heated_s / WARMUP_TRANSIENT_TAU_S))

    def adc_voltage(self, wiring: WiredSensor) -> float:
        """What the ADC pin sees for one wired sensor."""
        if wiring.name in self._disconnected:
            return 0.0
        vout = sensor_voltage(self.rs_kohm(wiring.name), wiring.load_kohm, wiring.supply_v)
        if self.noise_fraction:
            with self._rng_lock:
                vout *= 1.0 + self.noise_fraction * float(self._rng.standard_normal())
        return vout * wiring.adc_divider_ratio

    def climate(self) -> tuple[float, float]:
        """(temperature °C, relative humidity %) now."""
        row = self.row()
        return (
            float(self.recording.temperature_c[row]),
            float(self.recording.humidity_pct[row]),
        )
