"""The newest-wins frame queue and the capture thread."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from device.clock import ManualClock
from device.events import Health, HealthStatus
from device.eye.frames import CAMERA_COMPONENT, CaptureThread, Frame, FrameQueue
from device.eye.sources import VideoFileSource
from hardware.sim.camera import write_video


def _frame(index: int) -> Frame:
    return Frame(np.full((4, 4, 3), index, dtype=np.uint8), float(index), float(index), index)


def grey_video(path: Path, frames: int) -> Path:
    """A real MJPG video whose frame n is a flat grey of level 4n (readable back)."""
    return write_video(path, (np.full((64, 96, 3), 4 * n, dtype=np.uint8) for n in range(frames)))


def test_a_full_queue_drops_the_oldest_frame_and_counts_it() -> None:
    queue = FrameQueue(capacity=2)
    for i in range(5):
        queue.put(_frame(i))
    assert queue.drops == 3 and len(queue) == 2
    got = [queue.get(0), queue.get(0)]
    assert [f.index for f in got if f is not None] == [3, 4]  # the newest survive, in order
    assert queue.get(0) is None


def test_a_closed_queue_wakes_a_waiting_consumer() -> None:
    queue = FrameQueue()
    got: list[Frame | None] = []
    consumer = threading.Thread(target=lambda: got.append(queue.get(10.0)))
    consumer.start()
    queue.close()
    consumer.join(2.0)
    assert got == [None] and queue.closed


def test_capture_reads_a_whole_video_then_closes_the_queue(tmp_path: Path) -> None:
    video = grey_video(tmp_path / "clip.avi", 12)
    queue = FrameQueue(capacity=64)
    health: list[Health] = []
    capture = CaptureThread(VideoFileSource(video), queue, ManualClock(), health.append)
    capture.start()
    frames = []
    while (frame := queue.get(5.0)) is not None:
        frames.append(frame)
    capture.stop()
    assert [f.index for f in frames] == list(range(12))
    levels = [int(f.rgb.mean()) for f in frames]
    assert levels == pytest.approx([4 * n for n in range(12)], abs=3)  # decoded in order
    assert queue.drops == 0 and health == []


def test_a_slow_consumer_sees_the_newest_frames_and_the_drop_count(tmp_path: Path) -> None:
    video = grey_video(tmp_path / "clip.avi", 40)
    queue = FrameQueue(capacity=1)
    capture = CaptureThread(VideoFileSource(video), queue, ManualClock(), lambda h: None)
    capture.start()
    assert capture.join(10.0)  # the consumer sleeps until the whole video is read
    last = queue.get(0)
    assert last is not None and last.index == 39
    assert queue.drops == 39


def test_a_missing_video_is_reported_not_raised(tmp_path: Path) -> None:
    queue = FrameQueue()
    health: list[Health] = []
    capture = CaptureThread(
        VideoFileSource(tmp_path / "nope.mp4"), queue, ManualClock(), health.append
    )
    capture.start()
    assert queue.get(5.0) is None and queue.closed
    capture.stop()
    assert [(h.component, h.status) for h in health] == [(CAMERA_COMPONENT, HealthStatus.FAILED)]
    assert "nope.mp4" in health[0].message and "does not exist" in health[0].message
