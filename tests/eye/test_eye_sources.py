"""Frame sources: cameras (real OpenCV code on an emulated camera), files and stills."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from device.clock import ManualClock
from device.errors import CameraUnavailableError, FrameSourceError
from device.eye.settings import SourceConfig
from device.eye.sources import (
    ImageFolderSlideshow,
    OpenCVCameraSource,
    Picamera2Source,
    SyntheticPanZoom,
    VideoFileSource,
    image_files,
    open_source,
    parse_source,
    read_images,
    synthetic_stills_dir,
)
from hardware.sim.camera import CameraFaultInjector, EmulatedCamera, write_video

STILLS = synthetic_stills_dir()


def _flat(rgb: tuple[int, int, int], size: tuple[int, int] = (48, 64)) -> np.ndarray:
    return np.tile(np.array(rgb, dtype=np.uint8), (*size, 1))


def test_camera_frames_arrive_in_rgb_order() -> None:
    # OpenCV hands out B, G, R; the emulated camera does too. A red scene must read red.
    camera = EmulatedCamera(SyntheticPanZoom([_flat((250, 10, 10))]), ManualClock())
    with OpenCVCameraSource(0, capture_factory=camera.capture_factory) as source:
        frame = source.read()
    assert frame.dtype == np.uint8 and frame.shape == (480, 640, 3)
    assert tuple(int(c) for c in frame.reshape(-1, 3).mean(0).round()) == (250, 10, 10)


def test_camera_is_paced_by_the_camera_not_the_reader() -> None:
    clock = ManualClock()
    camera = EmulatedCamera(SyntheticPanZoom([_flat((0, 0, 0))]), clock, fps=10.0)
    with OpenCVCameraSource(0, capture_factory=camera.capture_factory) as source:
        for _ in range(5):
            source.read()
    assert clock.monotonic() == pytest.approx(0.4)  # 5 frames at 10 fps: 4 gaps


def test_no_camera_at_the_index_says_how_to_check() -> None:
    camera = EmulatedCamera(SyntheticPanZoom([_flat((0, 0, 0))]), ManualClock(), index=0)
    source = OpenCVCameraSource(3, capture_factory=camera.capture_factory)
    with pytest.raises(CameraUnavailableError, match=r"/dev/video3.*v4l2-ctl"):
        source.open()


def test_opencv_on_this_machine_reports_a_missing_camera_clearly() -> None:
    # No camera is attached here: the real cv2.VideoCapture path must fail with advice.
    with pytest.raises(CameraUnavailableError, match="plugged in"):
        OpenCVCameraSource(63).open()


def test_an_unplugged_camera_raises_and_a_replugged_one_reopens() -> None:
    camera = EmulatedCamera(SyntheticPanZoom([_flat((0, 0, 0))]), ManualClock())
    faults = CameraFaultInjector(camera)
    source = OpenCVCameraSource(0, capture_factory=camera.capture_factory)
    source.read()
    faults.unplug()
    with pytest.raises(CameraUnavailableError, match="stopped delivering"):
        source.read()
    source.close()
    with pytest.raises(CameraUnavailableError):
        source.open()
    faults.replug()
    source.open()
    assert source.read().shape == (480, 640, 3)


def test_a_single_dropped_read_is_not_an_unplug() -> None:
    camera = EmulatedCamera(SyntheticPanZoom([_flat((0, 0, 0))]), ManualClock())
    CameraFaultInjector(camera).fail_next_reads(2)
    with OpenCVCameraSource(0, capture_factory=camera.capture_factory) as source:
        assert source.read() is not None


def test_picamera2_missing_is_explained() -> None:
    with pytest.raises(CameraUnavailableError, match="apt install python3-picamera2"):
        Picamera2Source().open()


def test_video_file_plays_its_frames_at_its_own_rate_and_can_loop(tmp_path: Path) -> None:
    stills = read_images(image_files(STILLS)[:3], what="stills")
    pan = SyntheticPanZoom(stills, width=160, height=120, seconds_per_image=1.0, fps=4)
    video = write_video(tmp_path / "pan.avi", (pan.frame(n) for n in range(12)), fps=12.0)
    once = VideoFileSource(video)
    with once:
        frames = []
        while (frame := once.read()) is not None:
            frames.append(frame)
    assert once.fps == pytest.approx(12.0)
    assert len(frames) == 12 and frames[0].shape == (120, 160, 3)
    # MJPEG is lossy, but the decoded frame is the picture that was written.
    assert np.abs(frames[5].astype(int) - pan.frame(5).astype(int)).mean() < 8
    looped = VideoFileSource(video, loop=True)
    with looped:
        assert all(looped.read() is not None for _ in range(30))


def test_a_file_that_is_not_a_video_is_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.mp4"
    bogus.write_text("not a video")
    with pytest.raises(FrameSourceError, match="cannot be decoded"):
        VideoFileSource(bogus).open()


def test_slideshow_shows_each_readable_image_in_turn(tmp_path: Path) -> None:
    for name in ("a_cat.jpg", "b_coffee.jpg"):
        shutil.copy(STILLS / name.split("_", 1)[1], tmp_path / name)
    (tmp_path / "c_broken.jpg").write_bytes(b"\xff\xd8 truncated")
    show = ImageFolderSlideshow(tmp_path, seconds_per_image=1.0, fps=2.0, loop=False)
    with show:
        frames = []
        while (frame := show.read()) is not None:
            frames.append(frame)
    cat, coffee = read_images([STILLS / "cat.jpg", STILLS / "coffee.jpg"], what="stills")
    assert len(frames) == 4  # two readable images, two frames each; the broken one skipped
    assert np.array_equal(frames[0], cat) and np.array_equal(frames[3], coffee)


def test_an_empty_folder_is_refused_with_a_hint(tmp_path: Path) -> None:
    with pytest.raises(FrameSourceError, match="no readable image"):
        ImageFolderSlideshow(tmp_path).open()


def test_synthetic_pan_zooms_into_its_still_and_is_repeatable() -> None:
    stills = read_images([STILLS / "pets.jpg"], what="stills")
    pan = SyntheticPanZoom(stills, width=320, height=240, fps=10, seconds_per_image=2.0)
    first, last = pan.frame(0), pan.frame(19)
    assert first.shape == last.shape == (240, 320, 3)
    assert np.array_equal(
        pan.frame(7),
        SyntheticPanZoom(stills, width=320, height=240, fps=10, seconds_per_image=2.0).frame(7),
    )
    assert not np.array_equal(first, last)

    # Zoomed in, the frame enlarges a smaller part of the still, so neighbouring pixels
    # differ less: the camera really moved closer.
    def roughness(img: np.ndarray) -> float:
        return float(np.abs(np.diff(img.astype(int), axis=1)).mean())

    assert roughness(last) < roughness(first)


def test_parse_source_accepts_the_command_line_forms(tmp_path: Path) -> None:
    assert parse_source("camera:2").device == 2
    assert parse_source("video:/tmp/x.mp4") == SourceConfig(kind="video", path=Path("/tmp/x.mp4"))
    assert parse_source("synthetic").kind == "synthetic"
    assert isinstance(open_source(parse_source(f"folder:{tmp_path}")), ImageFolderSlideshow)
    for bad, hint in (("webcam", "not a source"), ("video", "video:PATH"), ("camera:x", "number")):
        with pytest.raises(FrameSourceError, match=hint):
            parse_source(bad)
