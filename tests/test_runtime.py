"""The station's supervisor: senses run alone, crash alone, stop alone, and report how they do."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from device.clock import SystemClock
from device.events import Event, Health, HealthStatus
from device.runtime import Station


class Collect:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def handle(self, event: Event) -> None:
        self.events.append(event)


def ticking(component: str, period_s: float = 0.01) -> Callable[..., None]:
    def run(emit: Callable[[Event], None], stop: threading.Event) -> None:
        while not stop.wait(period_s):
            emit(Health(ts=time.time(), component=component, status=HealthStatus.OK, message=""))

    return run


def wait_for(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("condition not met in time")
        time.sleep(0.01)


def test_a_crashing_sense_is_restarted_and_reported_while_the_other_keeps_going(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("device.runtime.RESTART_BACKOFF_FIRST_S", 0.05)
    sink = Collect()
    station = Station(SystemClock(), [sink])
    runs = 0

    def flaky(emit: Callable[[Event], None], stop: threading.Event) -> None:
        nonlocal runs
        runs += 1
        if runs <= 2:
            raise OSError("camera unplugged")
        ticking("eye")(emit, stop)

    station.add_sense("nose", ticking("nose"))
    station.add_sense("eye", flaky)
    wait_for(
        lambda: any(
            getattr(e, "component", "") == "eye" and e.status is HealthStatus.OK
            for e in sink.events
        )
    )
    station.stop()
    station.join()
    failures = [e for e in sink.events if isinstance(e, Health) and e.status is HealthStatus.FAILED]
    assert [f.component for f in failures] == ["eye", "eye"]
    assert "camera unplugged" in failures[0].message
    summary = {s["name"]: s for s in station.summary()}
    assert summary["eye"]["restarts"] == 2
    assert summary["eye"]["last_error"] == "OSError: camera unplugged"
    assert summary["nose"]["restarts"] == 0 and summary["nose"]["events"] > 0
    assert not summary["nose"]["running"]


def test_one_sense_stops_and_starts_again_without_touching_the_others() -> None:
    sink = Collect()
    station = Station(SystemClock(), [sink])
    station.add_sense("nose", ticking("nose"))
    station.add_sense("ear", ticking("ear"))
    wait_for(lambda: len(sink.events) > 10)
    assert station.stop_sense("ear", timeout_s=2.0)
    ear_before = sum(getattr(e, "component", "") == "ear" for e in sink.events)
    nose_before = sum(getattr(e, "component", "") == "nose" for e in sink.events)
    time.sleep(0.2)
    assert sum(getattr(e, "component", "") == "ear" for e in sink.events) == ear_before
    assert sum(getattr(e, "component", "") == "nose" for e in sink.events) > nose_before
    station.add_sense("ear", ticking("ear"), counters=lambda: {"drops": 3, "overruns": 1})
    wait_for(lambda: sum(getattr(e, "component", "") == "ear" for e in sink.events) > ear_before)
    summary = {s["name"]: s for s in station.summary()}
    assert summary["ear"]["running"] and summary["ear"]["drops"] == 3
    assert summary["ear"]["overruns"] == 1
    station.stop()
    started = time.monotonic()
    station.join(timeout_s=5.0)
    assert time.monotonic() - started < 1.0
