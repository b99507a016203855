"""Shared parts of the reliability tests: a whole station on emulated hardware, and what it emits.

The station here is the product's own: :func:`device.senses.build_station_senses` builds the
nose (emulated I2C chips, accelerated clock), the eye (the emulated camera) and the ear (the
emulated USB microphone) exactly as ``senses demo`` does, and :class:`device.runtime.Station`
supervises them. :class:`EventLog` is a sink that remembers when each event arrived, so a test
can count what each sense produced in a window of wall time, the way a person watching the app
would notice a sense going quiet.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from device.clock import Clock, SystemClock
from device.config import Config
from device.events import (
    BirdDetection,
    ConceptScore,
    Event,
    FoodReading,
    Health,
    HealthStatus,
    NoseReading,
)
from device.runtime import Station, build_nose
from device.senses import StationSenses, build_station_senses

SENSES = ("nose", "eye", "ear")


def station_config(data_dir: Path, *, eye_fps: float = 5.0) -> Config:
    """The default config on emulated hardware, writing into ``data_dir``.

    The camera runs at ``eye_fps`` (the scorer cannot keep up with 15 frames/s on a shared
    2-core CI machine anyway; fewer frames only mean fewer queue drops).
    """
    config = Config()
    return config.model_copy(
        update={
            "station": config.station.model_copy(update={"data_dir": data_dir}),
            "hardware": config.hardware.model_copy(update={"mode": "emulated"}),
            "eye": config.eye.model_copy(
                update={"source": config.eye.source.model_copy(update={"fps": eye_fps})}
            ),
        }
    )


def sense_of(event: Event) -> str:
    """Which sense (or the link) an event comes from, as the app groups them."""
    if isinstance(event, NoseReading | FoodReading):
        return "nose"
    if isinstance(event, ConceptScore):
        return "eye"
    if isinstance(event, BirdDetection):
        return "ear"
    if isinstance(event, Health):
        return event.component.split(".")[0]
    return event.type


@dataclass(frozen=True)
class Arrival:
    monotonic_s: float
    event: Event


class EventLog:
    """A sink that keeps every event with the (real) time it arrived."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.arrivals: list[Arrival] = []

    def handle(self, event: Event) -> None:
        with self._lock:
            self.arrivals.append(Arrival(time.monotonic(), event))

    def snapshot(self) -> list[Arrival]:
        with self._lock:
            return list(self.arrivals)

    def produced(self, sense: str, since_s: float, until_s: float = float("inf")) -> int:
        """The sense's own output (readings, scores, detections; not Health) in the window."""
        return sum(
            1
            for a in self.snapshot()
            if since_s <= a.monotonic_s < until_s
            and not isinstance(a.event, Health)
            and sense_of(a.event) == sense
        )

    def health(
        self,
        sense: str,
        statuses: Sequence[HealthStatus],
        since_s: float,
        text: str = "",
    ) -> list[Health]:
        """Health events of ``sense`` (any of its components) with one of ``statuses``."""
        return [
            a.event
            for a in self.snapshot()
            if a.monotonic_s >= since_s
            and isinstance(a.event, Health)
            and sense_of(a.event) == sense
            and a.event.status in statuses
            and text in a.event.message
        ]

    def latest_health(self, component: str) -> Health | None:
        """The last Health event of exactly ``component``."""
        for a in reversed(self.snapshot()):
            if isinstance(a.event, Health) and a.event.component == component:
                return a.event
        return None

    def components(self, sense: str) -> set[str]:
        return {
            a.event.component
            for a in self.snapshot()
            if isinstance(a.event, Health) and sense_of(a.event) == sense
        }


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> float:
    """Poll ``condition`` until true; return when (monotonic); fail saying ``what`` if late."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout_s:g} s: {what}")
        time.sleep(0.05)
    return time.monotonic()


def build_all_senses(config: Config, nose_clock: Clock) -> StationSenses:
    """All three senses on emulated hardware, as ``senses demo`` builds them.

    The nose runs on ``nose_clock`` (accelerated); the eye and the ear on the real clock.
    """
    return build_station_senses(
        config,
        SENSES,
        emulated=True,
        nose=lambda: build_nose(config, nose_clock, emulated=True),
        realtime_clock=SystemClock(),
    )


def start(station: Station, built: StationSenses) -> None:
    """Report the senses' start-up events and start each one, as the daemon does."""
    for sense in built.senses:
        for event in sense.events:
            station.emit(event)
        station.add_sense(sense.name, sense.run, counters=sense.counters)
