"""The eye on emulated hardware: an emulated camera behind OpenCV's API → the station's own
camera code → the eye service → events, run by the station's runtime as on the Pi.

The camera is unplugged mid-run: the eye must say so (Health FAILED for ``eye.camera``),
keep running, reconnect with backoff once the camera is back (Health OK), and the scores
must resume. Real time (SystemClock): reconnection backoff is part of what is tested.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from device.clock import SystemClock
from device.config import Config
from device.events import ConceptScore, Event, Health, HealthStatus
from device.eye.backbone import Backbone
from device.eye.service import EyeSetup, build_eye
from device.eye.settings import DEFAULT_CONCEPTS_DIR
from device.eye.sources import OpenCVCameraSource
from device.runtime import Station

WAIT_S = 60.0  # generous: two cores are shared with other work


class Collector:
    """A station sink that keeps every event and lets a test wait for one."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._changed = threading.Condition()

    def handle(self, event: Event) -> None:
        with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    def wait_for(self, what: str, predicate: Callable[[list[Event]], bool]) -> None:
        deadline = time.monotonic() + WAIT_S
        with self._changed:
            while not predicate(self.events):
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(f"no {what} within {WAIT_S} s; events: {self.events[-5:]}")
                self._changed.wait(left)

    def scores(self) -> list[ConceptScore]:
        with self._changed:
            return [e for e in self.events if isinstance(e, ConceptScore)]

    def camera_health(self) -> list[HealthStatus]:
        with self._changed:
            return [
                e.status
                for e in self.events
                if isinstance(e, Health) and e.component == "eye.camera"
            ]


@pytest.fixture(scope="module")
def backbone() -> Backbone:
    return Backbone()


def _eye(tmp_path: Path, backbone: Backbone) -> EyeSetup:
    config = Config.model_validate(
        {
            "station": {"data_dir": str(tmp_path)},
            "eye": {
                "concepts": [str(DEFAULT_CONCEPTS_DIR / "cats.cav")],
                "events_per_s": 20.0,
                "crop_mode": "none",
                "source": {"kind": "camera", "width": 320, "height": 240, "fps": 10.0},
            },
        }
    )
    setup = build_eye(config, SystemClock(), emulated=True, backbone=backbone)
    assert isinstance(setup.service.source, OpenCVCameraSource)  # the real camera code
    assert setup.camera is not None and setup.faults is not None
    return setup


def test_camera_unplugged_mid_run_is_reported_and_the_eye_recovers(
    tmp_path: Path, backbone: Backbone
) -> None:
    setup = _eye(tmp_path, backbone)
    assert setup.camera is not None and setup.faults is not None
    sink = Collector()
    station = Station(SystemClock(), [sink])
    station.add_sense("eye", setup.service.run)
    try:
        sink.wait_for("scores", lambda _: len(sink.scores()) >= 3)
        setup.faults.unplug()
        sink.wait_for("FAILED", lambda _: HealthStatus.FAILED in sink.camera_health())
        failed = next(
            e for e in sink.events if isinstance(e, Health) and e.status is HealthStatus.FAILED
        )
        assert "unplugged" in failed.message and "retrying" in failed.message
        time.sleep(0.5)  # frames queued before the unplug are scored; then nothing comes
        settled = len(sink.scores())
        time.sleep(1.5)
        assert len(sink.scores()) == settled
        opens_while_unplugged = setup.camera.opens
        setup.faults.replug()
        sink.wait_for("OK", lambda _: HealthStatus.OK in sink.camera_health())
        sink.wait_for("new scores", lambda _: len(sink.scores()) >= settled + 3)
    finally:
        station.stop()
        station.join(10.0)
    assert sink.camera_health() == [HealthStatus.FAILED, HealthStatus.OK]  # one of each
    assert opens_while_unplugged >= 3  # first open, then retries at 0.5 s and 1.5 s
    counters = setup.service.counters()
    assert counters["camera_reconnects"] >= 2
    assert counters["frames_scored"] >= len(sink.scores())
    assert station.restarts == {}  # the sense never crashed
    assert all(0.0 <= s.score <= 1.0 for s in sink.scores())


def test_a_camera_missing_at_start_is_waited_for(tmp_path: Path, backbone: Backbone) -> None:
    setup = _eye(tmp_path, backbone)
    assert setup.faults is not None
    setup.faults.unplug()
    sink = Collector()
    station = Station(SystemClock(), [sink])
    station.add_sense("eye", setup.service.run)
    try:
        sink.wait_for("FAILED", lambda _: HealthStatus.FAILED in sink.camera_health())
        failed = next(e for e in sink.events if isinstance(e, Health))
        assert "/dev/video0" in failed.message and "v4l2-ctl" in failed.message
        assert sink.scores() == []
        setup.faults.replug()
        sink.wait_for("scores", lambda _: len(sink.scores()) >= 2)
    finally:
        station.stop()
        station.join(10.0)
    assert station.restarts == {}
