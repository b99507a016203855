"""The ear end to end through its real service: a file, and an emulated USB microphone that
is unplugged mid-song and plugged back in.

The emulated microphone (hardware/sim/microphone.py) stands behind the sounddevice API, so
the station's own MicrophoneSource, front end, YAMNet backbone, merger, clip writer and
retry logic all run unchanged. The soundscape (hardware/sim/audio/soundscape_demo.flac) has
great tit songs at 3, 22 and 45 s, speech at 12-19 s and a dawn chorus at 30-40 s.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import soundfile

from device.clock import ManualClock, SystemClock
from device.config import Config
from device.ear.service import build_ear
from device.ear.settings import DEFAULT_SOUNDSCAPE
from device.events import BirdDetection, Event, Health, HealthStatus
from device.store import EventStore


def ear_config(tmp_path: Path, **ear: object) -> Config:
    config = Config()
    values = {"head": None, **ear}
    return config.model_copy(
        update={
            "station": config.station.model_copy(update={"data_dir": tmp_path}),
            "ear": config.ear.model_copy(update=values),
        }
    )


def test_a_recording_through_the_service_gives_stored_detections_with_clips(
    tmp_path: Path,
) -> None:
    clock = ManualClock()
    setup = build_ear(
        ear_config(tmp_path, source="file"), clock, emulated=False, realtime_files=False
    )
    store = EventStore(tmp_path / "senses.db")
    events: list[Event] = list(setup.events)
    setup.service.run(events.append, threading.Event())
    for event in events:
        store.append(event)
    birds = [e for e in events if isinstance(e, BirdDetection)]
    # The file was read flat out on a clock that did not move: stream second 0 is "now".
    offsets = [(b.start - clock.wall(), b.end - clock.wall()) for b in birds]
    assert setup.service.finished
    for song_s in (3.0, 22.0, 45.0):
        assert any(start <= song_s + 1.5 and end >= song_s for start, end in offsets), song_s
    assert not any(start < 18.5 and end > 13.0 for start, end in offsets)  # speech
    assert store.count("bird") == len(birds) >= 3
    for bird in birds:
        clip, rate = soundfile.read(bird.clip)
        assert len(clip) / rate >= (bird.end - bird.start) + 2 * 2.0 - 0.05  # pre + post roll
    store.close()


def test_the_ear_says_when_it_has_no_species_head(tmp_path: Path) -> None:
    setup = build_ear(
        ear_config(tmp_path, source="generator", head="no_such_head"), ManualClock(), emulated=True
    )
    (health,) = setup.events
    assert isinstance(health, Health) and health.component == "ear.model"
    assert health.status is HealthStatus.DEGRADED and "presence only" in health.message
    assert "reports Bird" in setup.description and "generated" in setup.description


def test_a_corrupt_file_is_a_health_event_not_a_crash(tmp_path: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....WAVEjunk")
    setup = build_ear(
        ear_config(tmp_path, source="file", path=bad),
        ManualClock(),
        emulated=False,
        realtime_files=False,
    )
    events: list[Event] = []
    setup.service.run(events.append, threading.Event())
    (health,) = events
    assert isinstance(health, Health) and health.status is HealthStatus.FAILED
    assert "WAV or FLAC" in health.message
    assert setup.service.finished


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self._lock:
            self.events.append(event)

    def snapshot(self) -> list[Event]:
        with self._lock:
            return list(self.events)

    def wait_for(self, what: Callable[[list[Event]], bool], timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if what(self.snapshot()):
                return
            time.sleep(0.02)
        raise AssertionError(f"timed out; events so far: {self.snapshot()}")


def health(events: list[Event], status: HealthStatus) -> list[Health]:
    return [e for e in events if isinstance(e, Health) and e.status is status]


@pytest.mark.slow
def test_microphone_unplugged_mid_song_loses_nothing_and_recovers(tmp_path: Path) -> None:
    config = ear_config(
        tmp_path,
        source="microphone",
        path=DEFAULT_SOUNDSCAPE,
        sample_rate=48000,
        channels=2,
        stall_s=0.4,
        retry_first_s=0.1,
        retry_max_s=0.4,
    )
    setup = build_ear(config, SystemClock(), emulated=True)
    microphone = setup.microphone
    microphone.speed = 8.0
    recorder = Recorder()
    stop = threading.Event()
    thread = threading.Thread(target=setup.service.run, args=(recorder, stop), daemon=True)
    thread.start()
    try:
        # Pull the plug 5 s into the soundscape: in the middle of the first great tit song.
        deadline = time.monotonic() + 60
        while microphone.samples_delivered < 5.0 * 48000 and time.monotonic() < deadline:
            time.sleep(0.01)
        microphone.unplug()
        recorder.wait_for(lambda ev: bool(health(ev, HealthStatus.FAILED)))
        before = recorder.snapshot()
        cut = before.index(health(before, HealthStatus.FAILED)[0])
        # The song in progress was closed and emitted, with the clip of what was heard.
        in_progress = [e for e in before[:cut] if isinstance(e, BirdDetection)]
        assert len(in_progress) == 1
        clip, rate = soundfile.read(in_progress[0].clip)
        assert 4.0 <= len(clip) / rate <= 5.5 + 0.5  # pre-roll from ~0.4 s up to the cut
        time.sleep(1.0)  # several failed reopen attempts while unplugged
        microphone.plug_in()
        recorder.wait_for(lambda ev: bool(health(ev, HealthStatus.OK)))
        # Detections resume: the next song is at 22 s of the soundscape.
        recorder.wait_for(
            lambda ev: any(
                isinstance(e, BirdDetection) for e in ev[ev.index(health(ev, HealthStatus.OK)[0]) :]
            )
        )
    finally:
        stop.set()
        thread.join(10)
    events = recorder.snapshot()
    failed = health(events, HealthStatus.FAILED)
    assert len(failed) == 1 and failed[0].component == "ear.microphone"
    assert "no audio" in failed[0].message
    assert len(health(events, HealthStatus.OK)) == 1
    assert setup.service.tally.reconnects == 1
    assert microphone.streams_opened == 2
    assert not thread.is_alive()
