"""Clips with pre- and post-roll from the ring buffer; retention by disk budget."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from device.ear.clips import ClipRecorder, ClipStore
from device.ear.detections import MergedDetection
from device.ear.ring import AudioRing
from device.events import BirdDetection
from device.store import EventStore

RATE = 8000


def ramp(seconds: float) -> np.ndarray:
    """Audio whose every sample says when it was heard: value = t / 100."""
    return (np.arange(round(seconds * RATE), dtype=np.float32) / RATE / 100).astype(np.float32)


def detection(start_s: float, end_s: float, species: str = "Wren") -> MergedDetection:
    return MergedDetection(species, start_s, end_s, 0.9, 0.8, 3)


def test_ring_keeps_the_latest_audio_by_absolute_index() -> None:
    ring = AudioRing(RATE, capacity_s=2.0)
    audio = ramp(5.0)
    for i in range(0, len(audio), 777):
        ring.write(audio[i : i + 777])
    assert ring.start == len(audio) - 2 * RATE
    np.testing.assert_array_equal(ring.read(ring.start, ring.end), audio[-2 * RATE :])
    np.testing.assert_array_equal(ring.read(0, 10), np.zeros(0, dtype=np.float32))
    ring.write(ramp(3.0))  # a block longer than the ring
    np.testing.assert_array_equal(ring.read(ring.start, ring.end), ramp(3.0)[-2 * RATE :])


def test_clip_has_pre_and_post_roll_and_waits_for_the_post_roll(tmp_path: Path) -> None:
    ring = AudioRing(RATE, capacity_s=30.0)
    recorder = ClipRecorder(
        ClipStore(tmp_path, 10**9), ring, pre_roll_s=1.5, post_roll_s=2.0, stream_wall_s=1e9
    )
    audio = ramp(20.0)
    ring.write(audio[: 8 * RATE])
    recorder.add([detection(5.0, 7.0)])
    assert recorder.ready() == []  # post-roll not heard yet
    ring.write(audio[8 * RATE : 10 * RATE])
    (saved,) = recorder.ready()
    clip, rate = soundfile.read(saved.path, dtype="float32")
    assert rate == RATE
    assert len(clip) == pytest.approx((2.0 + 1.5 + 2.0) * RATE, abs=1)
    assert clip[0] == pytest.approx(3.5 / 100, abs=1e-4)  # starts 1.5 s before the call
    assert clip[-1] == pytest.approx(9.0 / 100, abs=1e-4)  # ends 2 s after it
    assert Path(saved.path).name.endswith("_wren.wav")


def test_flush_writes_what_was_heard_when_the_stream_ends_early(tmp_path: Path) -> None:
    ring = AudioRing(RATE, capacity_s=30.0)
    recorder = ClipRecorder(
        ClipStore(tmp_path, 10**9), ring, pre_roll_s=1.0, post_roll_s=2.0, stream_wall_s=0.0
    )
    ring.write(ramp(6.5))
    recorder.add([detection(4.0, 6.5)])
    (saved,) = recorder.flush()
    clip, _ = soundfile.read(saved.path, dtype="float32")
    assert len(clip) == pytest.approx(3.5 * RATE, abs=1)  # 3.0 s .. 6.5 s: all that was heard


def test_budget_deletes_oldest_clips_and_never_the_rows(tmp_path: Path) -> None:
    one_clip_bytes = 44 + 2 * RATE  # one second of 16-bit mono plus the WAV header
    store = ClipStore(tmp_path / "clips", budget_bytes=3 * one_clip_bytes)
    events = EventStore(tmp_path / "senses.db")
    paths = []
    for i in range(5):
        path = store.save(ramp(1.0), RATE, 1_700_000_000.0 + 60 * i, "Wren")
        paths.append(path)
        events.append(
            BirdDetection(
                ts=float(i),
                start=0,
                end=1,
                species="Wren",
                confidence_max=0.9,
                confidence_mean=0.8,
                clip=str(path),
            )
        )
    assert [p.exists() for p in paths] == [False, False, True, True, True]
    assert store.used_bytes() <= 3 * one_clip_bytes
    assert store.deleted == 2
    assert events.count("bird") == 5
    events.close()


def test_an_unwritable_clip_folder_keeps_the_detection(tmp_path: Path) -> None:
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the clip folder should be")
    ring = AudioRing(RATE, capacity_s=10.0)
    ring.write(ramp(5.0))
    recorder = ClipRecorder(
        ClipStore(blocker, 10**9), ring, pre_roll_s=0.5, post_roll_s=0.5, stream_wall_s=0.0
    )
    recorder.add([detection(1.0, 2.0)])
    (saved,) = recorder.ready()
    assert saved.path == ""
    assert saved.detection.species == "Wren"
    assert recorder.failures == 1
