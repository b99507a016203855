"""The nose as a running sense: warm-up, calibration, sampling and verdicts on a schedule.

:class:`NoseService` owns one :class:`~device.nose.sampler.NoseSampler` and, once a
calibration exists, one :class:`~device.nose.classifier.FoodClassifier`. Each :meth:`step`
takes one sample and returns the events it produced; :meth:`run` repeats that every
``sample_period_s`` until told to stop.

On the station the calibration comes from ``senses nose calibrate`` (saved, reused). Demos and
replays pass ``calibrate_after_warmup``: once the heaters are warm the service takes the next
``calibration_s`` as its clean-air R0. That calibration gives ratios and ppm; food verdicts are
measured against the food's own baseline, taken when food is marked in
(:class:`~device.nose.food.FoodTracker`, :meth:`NoseService.mark_food_in`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from device.clock import Clock, ticks
from device.config import NoseConfig
from device.errors import CalibrationError, ModelError
from device.events import Event, Health, HealthStatus, NoseReading
from device.nose.calibration import NoseCalibration
from device.nose.classifier import FoodClassifier, Model
from device.nose.food import FoodMark, FoodTracker
from device.nose.mq import SensorCalibration, calibrate_r0, mq_type
from device.nose.sampler import NoseSampler

COMPONENT = "nose"


class NoseService:
    def __init__(
        self,
        config: NoseConfig,
        sampler: NoseSampler,
        model: Model | None,
        clock: Clock,
        *,
        calibration: NoseCalibration | None = None,
        calibrate_after_warmup: bool = False,
        calibration_max_spread: float | None = 0.15,
        calibration_source: str = "clean air",
        food_state_path: Path | None = None,
        food_request_path: Path | None = None,
        food_in_at_start: str | None = None,
    ) -> None:
        """``food_state_path`` keeps the food state across restarts; ``food_request_path`` is
        where ``senses nose new-food`` leaves its request; ``food_in_at_start`` marks food in
        at once, naming the source (replays and the demo: their recordings start with the
        food in the box)."""
        self.config = config
        self.sampler = sampler
        self.model = model
        self.clock = clock
        self.calibrate_after_warmup = calibrate_after_warmup
        self.calibration_max_spread = calibration_max_spread
        self.calibration_source = calibration_source
        self.food: FoodTracker | None = None
        self._calibration_readings: list[NoseReading] = []
        self._calibration_started_s: float | None = None
        self._startup_events: list[Event] = []
        if model is not None:
            try:
                self.food = FoodTracker(
                    model,
                    clock,
                    trend_minutes=config.trend_minutes,
                    state_path=food_state_path,
                    request_path=food_request_path,
                )
            except ModelError as e:
                self._startup_events.append(self._health(HealthStatus.FAILED, str(e)))
        if self.food is not None and food_in_at_start is not None:
            self.food.mark_food_in(food_in_at_start)
        if calibration is not None:
            self._use_calibration(calibration)
        elif not calibrate_after_warmup:
            self._startup_events.append(
                self._health(
                    HealthStatus.DEGRADED,
                    "not calibrated: gas readings are shown without ratios or ppm; run "
                    "`senses nose calibrate` with the box empty and the heaters warm",
                )
            )

    @property
    def classifier(self) -> FoodClassifier | None:
        """The food's classifier, once its baseline is taken."""
        return self.food.classifier if self.food is not None else None

    def mark_food_in(self, source: str) -> FoodMark:
        """New food is in the box (any thread): its baseline starts with the next reading."""
        if self.food is None:
            return FoodMark(
                False,
                "no food model is loaded, so there is nothing to take a baseline for; see "
                "the nose.model health message",
            )
        return self.food.mark_food_in(source)

    @property
    def calibration(self) -> NoseCalibration | None:
        return self.sampler.calibration

    def _health(self, status: HealthStatus, message: str, component: str = COMPONENT) -> Health:
        return Health(ts=self.clock.wall(), component=component, status=status, message=message)

    def _use_calibration(self, calibration: NoseCalibration) -> None:
        self.sampler.calibration = calibration

    def step(self) -> list[Event]:
        """Take one sample; return every event it produced, in order."""
        events: list[Event] = self._startup_events
        self._startup_events = []
        reading, health = self.sampler.sample()
        events.append(reading)
        events.extend(health)
        if self.sampler.calibration is None and self.calibrate_after_warmup:
            events.extend(self._collect_calibration(reading))
        if self.food is not None:
            events.extend(self.food.add(reading))
        return events

    def finish(self) -> list[Event]:
        """Close the minute in progress (end of a replay or a demo)."""
        return self.food.flush() if self.food is not None else []

    def _collect_calibration(self, reading: NoseReading) -> list[Event]:
        if reading.warming_up:
            return []
        now_s = self.clock.monotonic()
        if self._calibration_started_s is None:
            self._calibration_started_s = now_s
        if now_s - self._calibration_started_s < self.config.calibration_s:
            self._calibration_readings.append(reading)
            return []
        return self._finish_calibration()

    def _finish_calibration(self) -> list[Event]:
        readings, self._calibration_readings = self._calibration_readings, []
        self._calibration_started_s = None
        temps = [r.temperature_c for r in readings if r.temperature_c is not None]
        hums = [r.humidity_pct for r in readings if r.humidity_pct is not None]
        temperature_c = float(np.median(temps)) if temps else None
        humidity_pct = float(np.median(hums)) if hums else None
        sensors: dict[str, SensorCalibration] = {}
        problems = []
        for sensor in self.config.sensors:
            samples = [
                v.rs_kohm
                for r in readings
                for v in r.sensors
                if v.name == sensor.name and v.rs_kohm is not None
            ]
            try:
                sensors[sensor.name] = calibrate_r0(
                    mq_type(sensor.type),
                    samples,
                    temperature_c,
                    humidity_pct,
                    max_spread_fraction=self.calibration_max_spread,
                )
            except CalibrationError as e:
                problems.append(str(e))
        calibration = NoseCalibration(
            sensors=sensors, created_ts=self.clock.wall(), source=self.calibration_source
        )
        self._use_calibration(calibration)
        events: list[Event] = list(self._startup_events)
        self._startup_events = []
        if problems:
            events.append(
                self._health(
                    HealthStatus.DEGRADED, "calibration incomplete: " + "; ".join(problems)
                )
            )
        else:
            events.append(
                self._health(
                    HealthStatus.OK,
                    f"calibrated {len(sensors)} sensors from {len(readings)} samples "
                    f"({self.calibration_source})",
                )
            )
        return events

    def run(self, emit: Callable[[Event], None], stop: threading.Event) -> None:
        """Sample every ``sample_period_s`` until ``stop`` is set."""
        for _ in ticks(self.clock, self.config.sample_period_s, stop):
            for event in self.step():
                emit(event)
            time.sleep(0)  # let other threads in even under a ManualClock
