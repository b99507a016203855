"""An emulated camera behind the ``cv2.VideoCapture`` API, with faults.

:class:`EmulatedCamera` is the device: plugged into a USB port as ``/dev/video<index>``, it
delivers a frame every ``1/fps`` seconds of its clock from a frame source (by default the
synthetic pan over ``hardware/sim/images``; a video file works too), in OpenCV's B, G, R
order as a real V4L2 camera does through OpenCV. Its :meth:`~EmulatedCamera.capture_factory`
is what :class:`device.eye.sources.OpenCVCameraSource` calls instead of ``cv2.VideoCapture``,
so the station's own camera code runs unchanged against it.

:class:`CameraFaultInjector` does to it what happens to real cameras: the cable is pulled
(``read`` fails and the device node is gone, so reopening fails too) and put back, or the
driver drops a few reads. :meth:`CameraFaultInjector.clear` undoes everything.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from device.clock import Clock
from device.eye.sources import FrameSource, SyntheticPanZoom, synthetic_stills_dir


class EmulatedCamera:
    """A camera at ``/dev/video<index>`` whose frames come from ``source`` (RGB)."""

    def __init__(self, source: FrameSource, clock: Clock, *, index: int = 0, fps: float = 15.0):
        self.source = source
        self.clock = clock
        self.index = index
        self.fps = fps
        self.plugged = True
        self.failing_reads = 0
        self.frames_delivered = 0
        self.opens = 0
        self._lock = threading.Lock()
        self._next_frame_s: float | None = None

    @classmethod
    def synthetic(
        cls, clock: Clock, *, width: int = 640, height: int = 480, fps: float = 15.0, index: int = 0
    ) -> EmulatedCamera:
        """The demo's camera: a slow pan over the licence-clean stills in hardware/sim/images."""
        pan = SyntheticPanZoom.from_folder(
            synthetic_stills_dir(), width=width, height=height, fps=fps
        )
        return cls(pan, clock, index=index, fps=fps)

    def set_plugged(self, plugged: bool) -> None:
        with self._lock:
            self.plugged = plugged

    def drop_reads(self, count: int) -> None:
        """Deliver nothing for the next ``count`` reads (0 clears)."""
        with self._lock:
            self.failing_reads = count

    def capture_factory(self, index: int, api: int) -> EmulatedCapture:
        """Stands in for ``cv2.VideoCapture(index, api)``."""
        with self._lock:
            self.opens += 1
            opened = self.plugged and index == self.index
        return EmulatedCapture(self, opened)

    def deliver(self) -> npt.NDArray[np.uint8] | None:
        """The next frame in B, G, R order, when it is due; None if unplugged or dropped."""
        with self._lock:
            if not self.plugged:
                return None
            if self.failing_reads:
                self.failing_reads -= 1
                return None
        # A camera delivers at its own rate: reading early waits for the next exposure.
        now_s = self.clock.monotonic()
        due_s = now_s if self._next_frame_s is None else max(self._next_frame_s, now_s)
        self.clock.sleep(due_s - now_s)
        self._next_frame_s = due_s + 1.0 / self.fps
        if not self.source.is_open:
            self.source.open()
        rgb = self.source.read()
        if rgb is None:  # a finite source played out: start again, as a camera never ends
            self.source.close()
            self.source.open()
            rgb = self.source.read()
        if rgb is None:
            return None
        self.frames_delivered += 1
        return np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), dtype=np.uint8)


class EmulatedCapture:
    """What ``cv2.VideoCapture`` returns, for an :class:`EmulatedCamera`."""

    def __init__(self, camera: EmulatedCamera, opened: bool) -> None:
        self._camera = camera
        self._opened = opened
        self._props: dict[int, float] = {}

    def isOpened(self) -> bool:  # noqa: N802 (OpenCV's name)
        return self._opened

    def read(self) -> tuple[bool, npt.NDArray[Any] | None]:
        if not self._opened:
            return False, None
        bgr = self._camera.deliver()
        return (bgr is not None), bgr

    def set(self, prop_id: int, value: float) -> bool:
        self._props[prop_id] = value
        return self._opened

    def get(self, prop_id: int) -> float:
        if prop_id == cv2.CAP_PROP_FPS:
            return self._camera.fps
        return self._props.get(prop_id, 0.0)

    def release(self) -> None:
        self._opened = False


class CameraFaultInjector:
    """Unplugs, replugs and upsets an :class:`EmulatedCamera`."""

    def __init__(self, camera: EmulatedCamera) -> None:
        self.camera = camera

    def unplug(self) -> None:
        """Pull the cable: reads fail, and the device cannot be opened until :meth:`replug`."""
        self.camera.set_plugged(False)

    def replug(self) -> None:
        self.camera.set_plugged(True)

    def fail_next_reads(self, count: int) -> None:
        """The driver returns no frame for the next ``count`` reads (a USB hiccup)."""
        if count < 1:
            raise ValueError(f"count must be at least 1, got {count}")
        self.camera.drop_reads(self.camera.failing_reads + count)

    def clear(self) -> None:
        self.camera.set_plugged(True)
        self.camera.drop_reads(0)


def write_video(path: Path, frames_rgb: Iterable[npt.NDArray[np.uint8]], fps: float = 25.0) -> Path:
    """Write RGB frames as a Motion-JPEG AVI (OpenCV writes it without extra codecs).

    For tests and benchmarks that need a real video file to decode.
    """
    writer: cv2.VideoWriter | None = None
    for rgb in frames_rgb:
        if writer is None:
            height, width = rgb.shape[:2]
            fourcc = cv2.VideoWriter.fourcc(*"MJPG")
            writer = cv2.VideoWriter(str(path), fourcc, fps, (width, height))
            if not writer.isOpened():
                raise OSError(f"OpenCV cannot write a video at {path}")
        writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if writer is None:
        raise ValueError("a video needs at least one frame")
    writer.release()
    return path
