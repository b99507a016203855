"""The ear's service on generated audio: input problems become Health events, and stopping
mid-call still delivers the call."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soundfile
from ear_audio import AUDIO, REPO, read_mono

from device.clock import ManualClock
from device.ear.clips import ClipStore
from device.ear.detector import Detector
from device.ear.service import EarService
from device.ear.settings import EarConfig
from device.ear.sources import AudioSource, GeneratorSource, MicrophoneSource
from device.events import BirdDetection, Event, Health, HealthStatus
from hardware.sim.microphone import EmulatedSoundDevice

SONG, SONG_RATE = read_mono(AUDIO / "great_tit" / "2021-B32-0415_05-9.wav")


def song_then_quiet(indices: npt.NDArray[np.int64], rate: int) -> npt.NDArray[np.float32]:
    del rate
    out = np.zeros(len(indices), dtype=np.float32)
    inside = indices < len(SONG)
    out[inside] = SONG[indices[inside]]
    return out


def service(tmp_path: Path, source: AudioSource, **ear: object) -> EarService:
    detector, _ = Detector.load(REPO / "models", "yamnet", None)
    config = EarConfig(**{"pre_roll_s": 1.0, "post_roll_s": 1.0, **ear})  # type: ignore[arg-type]
    return EarService(config, detector, lambda: source, ManualClock(), ClipStore(tmp_path, 10**8))


class StopAfter:
    """A source wrapper that sets ``stop`` after ``seconds`` of audio were read."""

    def __init__(self, inner: AudioSource, seconds: float, stop: threading.Event) -> None:
        self.inner = inner
        self.sample_rate = inner.sample_rate
        self.description = inner.description
        self._left = round(seconds * inner.sample_rate)
        self._stop = stop

    @property
    def overruns(self) -> int:
        return self.inner.overruns

    def open(self) -> None:
        self.inner.open()

    def read(self) -> npt.NDArray[np.float32] | None:
        block = self.inner.read()
        if block is not None:
            self._left -= len(block)
            if self._left <= 0:
                self._stop.set()
        return block

    def close(self) -> None:
        self.inner.close()


def test_stopping_mid_song_still_delivers_the_song_with_its_clip(tmp_path: Path) -> None:
    stop = threading.Event()
    source = StopAfter(GeneratorSource(SONG_RATE, make=song_then_quiet), 2.5, stop)
    ear = service(tmp_path, source)
    events: list[Event] = []
    ear.run(events.append, stop)
    (bird,) = [e for e in events if isinstance(e, BirdDetection)]
    clip, rate = soundfile.read(bird.clip)
    assert rate == SONG_RATE
    assert 2.0 <= len(clip) / rate <= 2.7  # everything heard before the stop, nothing invented


def test_clipping_is_reported_once_with_what_to_do(tmp_path: Path) -> None:
    def too_loud(indices: npt.NDArray[np.int64], rate: int) -> npt.NDArray[np.float32]:
        return (1.5 * np.sin(2 * np.pi * 3000 * indices / rate)).astype(np.float32)

    ear = service(tmp_path, GeneratorSource(16000, duration_s=3.0, make=too_loud))
    events: list[Event] = []
    ear.run(events.append, threading.Event())
    degraded = [e for e in events if isinstance(e, Health) and e.status is HealthStatus.DEGRADED]
    assert len(degraded) == 1
    assert degraded[0].component == "ear.microphone" and "gain" in degraded[0].message
    assert ear.tally.clipped_samples > 0


def test_silence_gives_no_detection_and_no_error(tmp_path: Path) -> None:
    quiet = GeneratorSource(
        48000, duration_s=5.0, make=lambda i, r: np.zeros(len(i), dtype=np.float32)
    )
    ear = service(tmp_path, quiet)
    events: list[Event] = []
    ear.run(events.append, threading.Event())
    assert events == []
    assert ear.finished and ear.tally.windows >= 9


def test_lost_blocks_are_counted_and_reported(tmp_path: Path) -> None:
    device = EmulatedSoundDevice(
        [AUDIO / "great_tit" / "2021-B32-0415_05-9.wav"], speed=40.0, overflow_every=4
    )
    stop = threading.Event()
    source = StopAfter(MicrophoneSource(sample_rate=16000, block_s=0.1, backend=device), 2.0, stop)
    ear = service(tmp_path, source)
    events: list[Event] = []
    ear.run(events.append, stop)
    behind = [e for e in events if isinstance(e, Health) and "fell behind" in e.message]
    assert behind and behind[0].status is HealthStatus.DEGRADED
    assert ear.counters()["drops"] >= 4


def test_the_threshold_can_be_changed_while_listening(tmp_path: Path) -> None:
    ear = service(tmp_path, GeneratorSource(SONG_RATE, duration_s=4.0, make=song_then_quiet))
    assert not ear.set_threshold(0.0) and not ear.set_threshold(1.5)
    assert ear.set_threshold(0.999999)
    events: list[Event] = []
    ear.run(events.append, threading.Event())
    assert not [e for e in events if isinstance(e, BirdDetection)]  # nothing that sure
    assert ear.set_threshold(0.5)
    ear.run(events.append, threading.Event())
    assert [e for e in events if isinstance(e, BirdDetection)]
