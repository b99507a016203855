"""Frames prepared for the backbone on the capture thread, while the scorer runs the model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from device.clock import ManualClock
from device.eye.backbone import Backbone, to_model_input
from device.eye.concept import load_concept
from device.eye.frames import CaptureThread, FrameQueue
from device.eye.images import load_image
from device.eye.scoring import FrameScorer
from device.eye.settings import EyeConfig
from device.eye.sources import VideoFileSource
from hardware.sim.camera import write_video

DEMO_CONCEPT = Path(__file__).resolve().parents[2] / "models" / "concepts" / "cats.cav"


def _video(path: Path, frames: int) -> Path:
    rng = np.random.default_rng(0)
    return write_video(
        path, (rng.integers(0, 255, (120, 160, 3), dtype=np.uint8) for _ in range(frames))
    )


def test_the_capture_thread_prepares_each_frame_for_the_backbone(tmp_path: Path) -> None:
    queue = FrameQueue(capacity=64)
    capture = CaptureThread(
        VideoFileSource(_video(tmp_path / "clip.avi", 5)),
        queue,
        ManualClock(),
        lambda h: None,
        prepare=lambda rgb: to_model_input(rgb, size=32),
    )
    capture.start()
    frames = []
    while (frame := queue.get(5.0)) is not None:
        frames.append(frame)
    capture.stop()
    assert len(frames) == 5
    for frame in frames:
        assert frame.model_input is not None
        assert np.array_equal(frame.model_input, to_model_input(frame.rgb, size=32))


def test_an_unpaced_file_waits_for_a_slow_scorer_instead_of_dropping(tmp_path: Path) -> None:
    queue = FrameQueue(capacity=1)
    capture = CaptureThread(
        VideoFileSource(_video(tmp_path / "clip.avi", 12)),
        queue,
        ManualClock(),
        lambda h: None,
        paced=False,
    )
    capture.start()
    assert not capture.join(0.5)  # blocked: the queue is full and nobody reads
    indices = []
    while (frame := queue.get(5.0)) is not None:
        indices.append(frame.index)
    assert indices == list(range(12)) and queue.drops == 0
    capture.stop()


@pytest.mark.parametrize("mode", ["none", "round_robin"])
def test_a_prepared_frame_scores_as_one_prepared_by_the_scorer(
    backbone: Backbone, photos, mode: str
) -> None:
    concept = load_concept(DEMO_CONCEPT, backbone)
    config = EyeConfig(concepts=[], crop_mode=mode, crops_per_frame=2)
    ahead, inline = (
        FrameScorer(backbone, [concept], config),
        FrameScorer(backbone, [concept], config),
    )
    rgb = load_image(photos.path("cat"))
    for n in range(3):
        got = ahead.score(rgb, float(n), ahead.full_frame_input(rgb))
        want = inline.score(rgb, float(n))
        assert got[0].frame_score == pytest.approx(want[0].frame_score, abs=1e-6)
        assert got[0].focus_box == want[0].focus_box
