"""Frame sources: where the eye's pictures come from, behind one interface.

* :class:`OpenCVCameraSource`: any V4L2 camera through ``cv2.VideoCapture`` (USB webcams; the
  Pi camera through libcamera's V4L2 layer). Its capture object comes from an injectable
  factory, so ``hardware.sim.camera``'s emulated camera drives this same code in tests.
* :class:`Picamera2Source`: the Pi camera through picamera2 (imported on use: it is a
  Debian package, ``python3-picamera2``, not a PyPI wheel).
* :class:`VideoFileSource`, :class:`ImageFolderSlideshow`: files, for replays and demos.
* :class:`SyntheticPanZoom`: a slow "Ken Burns" pan and zoom over still photos, a stand-in
  camera that needs nothing but images.

Every source yields RGB uint8 arrays (height, width, 3). OpenCV and picamera2's "RGB888"
deliver B, G, R in memory; the conversion happens here, once, at the edge.
"""

from __future__ import annotations

import abc
import importlib
import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final, Protocol

import cv2
import numpy as np
import numpy.typing as npt

from device.errors import CameraUnavailableError, FrameSourceError
from device.eye.settings import SourceConfig

log = logging.getLogger(__name__)

RGBImage = npt.NDArray[np.uint8]
IMAGE_SUFFIXES: Final = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
#: Consecutive failed reads before a camera counts as gone (one can be a hiccup of the driver).
CAMERA_FAILED_READS: Final = 3


class FrameSource(abc.ABC):
    """Opens, yields RGB frames, closes. Reopening after :meth:`close` must work.

    ``fps`` is the rate a reader should pace :meth:`read` at, or ``None`` when ``read``
    itself waits for the next frame (a camera).
    """

    name: str = "source"
    fps: float | None = None

    @property
    @abc.abstractmethod
    def is_open(self) -> bool: ...

    @abc.abstractmethod
    def open(self) -> None:
        """Raise :class:`CameraUnavailableError` or :class:`FrameSourceError` when it cannot."""

    @abc.abstractmethod
    def read(self) -> RGBImage | None:
        """The next frame; ``None`` at the end of a finite source.

        Raises :class:`CameraUnavailableError` when a camera stops delivering.
        """

    @abc.abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> FrameSource:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def bgr_to_rgb(bgr: npt.NDArray[Any]) -> RGBImage:
    if bgr.ndim == 2:
        return np.asarray(cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB), dtype=np.uint8)
    if bgr.shape[2] == 4:
        return np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGRA2RGB), dtype=np.uint8)
    return np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), dtype=np.uint8)


class Capture(Protocol):
    """The part of ``cv2.VideoCapture`` the camera source uses."""

    def isOpened(self) -> bool: ...  # noqa: N802 (OpenCV's name)

    def read(self) -> tuple[bool, npt.NDArray[Any] | None]: ...

    def set(self, prop_id: int, value: float) -> bool: ...

    def get(self, prop_id: int) -> float: ...

    def release(self) -> None: ...


CaptureFactory = Callable[[int, int], Capture]


def _opencv_capture(index: int, api: int) -> Capture:
    capture: Capture = cv2.VideoCapture(index, api)
    return capture


class OpenCVCameraSource(FrameSource):
    """A V4L2 camera through OpenCV; ``capture_factory(index, api)`` opens it."""

    def __init__(
        self,
        device: int = 0,
        *,
        width: int = 640,
        height: int = 480,
        fps: float = 15.0,
        capture_factory: CaptureFactory = _opencv_capture,
    ) -> None:
        self.device = device
        self.width = width
        self.height = height
        self.requested_fps = fps
        self.name = f"camera /dev/video{device}"
        self._factory = capture_factory
        self._capture: Capture | None = None

    @property
    def is_open(self) -> bool:
        return self._capture is not None

    def open(self) -> None:
        # OpenCV logs its own V4L2 warning on every failed open; ours says what to do, and
        # the reconnect loop would repeat OpenCV's every few seconds.
        log_level = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
        try:
            capture = self._factory(self.device, cv2.CAP_V4L2)
        finally:
            cv2.utils.logging.setLogLevel(log_level)
        if not capture.isOpened():
            capture.release()
            raise CameraUnavailableError(
                f"no camera answers at /dev/video{self.device}: check that it is plugged in "
                "(`v4l2-ctl --list-devices` lists what Linux sees), that no other program "
                "holds it, and that [eye.source] device is the right index"
            )
        # Requests, not guarantees: a camera picks its nearest mode; frames say what it chose.
        capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
        capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        capture.set(cv2.CAP_PROP_FPS, self.requested_fps)
        # One buffered frame: the newest is what we want, not a backlog.
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        self._capture = capture

    def read(self) -> RGBImage:
        if self._capture is None:
            self.open()
        assert self._capture is not None
        for _ in range(CAMERA_FAILED_READS):
            ok, bgr = self._capture.read()
            if ok and bgr is not None:
                return bgr_to_rgb(bgr)
        raise CameraUnavailableError(
            f"{self.name} stopped delivering frames: unplugged, or its cable or power is "
            "loose; the eye reconnects by itself when it is back"
        )

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


class Picamera2Source(FrameSource):
    """The Raspberry Pi camera through picamera2 (libcamera)."""

    def __init__(
        self, *, width: int = 640, height: int = 480, fps: float = 15.0, camera_num: int = 0
    ) -> None:
        self.width = width
        self.height = height
        self.requested_fps = fps
        self.camera_num = camera_num
        self.name = f"Pi camera {camera_num}"
        self._camera: Any = None

    @property
    def is_open(self) -> bool:
        return self._camera is not None

    def open(self) -> None:
        try:
            picamera2 = importlib.import_module("picamera2")
        except ImportError as e:
            raise CameraUnavailableError(
                "picamera2 is not installed: on Raspberry Pi OS run "
                "`sudo apt install python3-picamera2` and create the venv with "
                '--system-site-packages, or use [eye.source] kind = "camera" (V4L2)'
            ) from e
        try:
            camera = picamera2.Picamera2(self.camera_num)
            config = camera.create_video_configuration(
                main={"size": (self.width, self.height), "format": "RGB888"},
                controls={"FrameRate": self.requested_fps},
            )
            camera.configure(config)
            camera.start()
        except (RuntimeError, IndexError, OSError) as e:
            raise CameraUnavailableError(
                f"the Pi camera {self.camera_num} cannot be opened ({e}): check the ribbon "
                "cable, `rpicam-hello --list-cameras`, and that the legacy camera stack is off"
            ) from e
        self._camera = camera

    def read(self) -> RGBImage:
        if self._camera is None:
            self.open()
        try:
            # picamera2's "RGB888" is B, G, R in memory (libcamera's naming).
            bgr = self._camera.capture_array("main")
        except (RuntimeError, OSError) as e:
            raise CameraUnavailableError(f"the Pi camera stopped delivering frames: {e}") from e
        return bgr_to_rgb(np.asarray(bgr))

    def close(self) -> None:
        if self._camera is not None:
            try:
                self._camera.stop()
                self._camera.close()
            except (RuntimeError, OSError) as e:
                log.warning("closing the Pi camera: %s", e)
            self._camera = None


class VideoFileSource(FrameSource):
    """A video file, decoded by OpenCV, paced at the file's own frame rate."""

    def __init__(self, path: Path, *, loop: bool = False, fps: float | None = None) -> None:
        self.path = Path(path)
        self.loop = loop
        self.name = f"video {self.path.name}"
        self._fps_override = fps
        self.fps = fps
        self._capture: cv2.VideoCapture | None = None

    @property
    def is_open(self) -> bool:
        return self._capture is not None

    def open(self) -> None:
        if not self.path.is_file():
            raise FrameSourceError(f"video file {self.path} does not exist")
        capture = cv2.VideoCapture(str(self.path))
        ok, _ = capture.read() if capture.isOpened() else (False, None)
        if not ok:
            capture.release()
            raise FrameSourceError(
                f"{self.path} cannot be decoded as a video by OpenCV: is it a video file "
                "(mp4, avi, mkv) and not empty?"
            )
        capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
        file_fps = float(capture.get(cv2.CAP_PROP_FPS))
        if self._fps_override is None:
            self.fps = file_fps if math.isfinite(file_fps) and file_fps > 0 else 25.0
        self._capture = capture

    def read(self) -> RGBImage | None:
        if self._capture is None:
            self.open()
        assert self._capture is not None
        ok, bgr = self._capture.read()
        if not ok and self.loop:
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, bgr = self._capture.read()
        return bgr_to_rgb(bgr) if ok else None

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


def image_files(folder: Path) -> list[Path]:
    """The image files directly in ``folder``, sorted by name."""
    if not folder.is_dir():
        raise FrameSourceError(f"image folder {folder} does not exist or is not a folder")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def read_images(paths: Sequence[Path], *, what: str) -> list[RGBImage]:
    """Decode ``paths`` to RGB; unreadable files are skipped with a warning, none is an error."""
    images = []
    for path in paths:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            log.warning("skipping %s: not an image OpenCV can read", path)
            continue
        images.append(bgr_to_rgb(bgr))
    if not images:
        raise FrameSourceError(
            f"{what} has no readable image ({len(paths)} file(s) tried): add JPEG or PNG files"
        )
    return images


class ImageFolderSlideshow(FrameSource):
    """The images of a folder, each shown for ``seconds_per_image`` at ``fps``."""

    def __init__(
        self, folder: Path, *, seconds_per_image: float = 4.0, fps: float = 5.0, loop: bool = True
    ) -> None:
        self.folder = Path(folder)
        self.fps = fps
        self.loop = loop
        self.frames_per_image = max(1, round(seconds_per_image * fps))
        self.name = f"slideshow {self.folder}"
        self._images: list[RGBImage] | None = None
        self._frame = 0

    @property
    def is_open(self) -> bool:
        return self._images is not None

    def open(self) -> None:
        self._images = read_images(image_files(self.folder), what=f"image folder {self.folder}")
        self._frame = 0

    def read(self) -> RGBImage | None:
        if self._images is None:
            self.open()
        assert self._images is not None
        shown = self._frame // self.frames_per_image
        if shown >= len(self._images) and not self.loop:
            return None
        self._frame += 1
        return self._images[shown % len(self._images)]

    def close(self) -> None:
        self._images = None


class SyntheticPanZoom(FrameSource):
    """A camera slowly panning and zooming over still photos (the demo's eye).

    Each still is shown for ``seconds_per_image``: the view starts on the whole picture and
    zooms in to ``max_zoom`` while drifting towards a corner picked by ``seed``, so crops
    and focus boxes have something to find. Deterministic: frame *n* is always the same.
    """

    def __init__(
        self,
        stills: Sequence[RGBImage],
        *,
        width: int = 640,
        height: int = 480,
        fps: float = 15.0,
        seconds_per_image: float = 4.0,
        max_zoom: float = 1.8,
        seed: int = 0,
        loop: bool = True,
    ) -> None:
        if not stills:
            raise FrameSourceError("a synthetic pan needs at least one still image")
        self.stills = list(stills)
        self.width = width
        self.height = height
        self.fps = fps
        self.frames_per_image = max(1, round(seconds_per_image * fps))
        self.max_zoom = max_zoom
        self.loop = loop
        self.name = "synthetic pan"
        self._targets = np.random.default_rng(seed).uniform(0.2, 0.8, size=(len(stills), 2))
        self._frame = 0
        self._open = False

    @classmethod
    def from_folder(cls, folder: Path, **kwargs: Any) -> SyntheticPanZoom:
        return cls(read_images(image_files(folder), what=f"still folder {folder}"), **kwargs)

    @property
    def is_open(self) -> bool:
        return self._open

    def open(self) -> None:
        self._open = True

    def frame(self, n: int) -> RGBImage:
        """Frame ``n`` of the pan (BGR-free: RGB, ``height``×``width``)."""
        shown, step = divmod(n, self.frames_per_image)
        still = self.stills[shown % len(self.stills)]
        progress = step / max(self.frames_per_image - 1, 1)
        h, w = still.shape[:2]
        # The view keeps the output's aspect ratio and shrinks as it zooms in.
        aspect = self.width / self.height
        view_w = min(w, h * aspect) / (1 + (self.max_zoom - 1) * progress)
        view_h = view_w / aspect
        tx, ty = self._targets[shown % len(self.stills)]
        cx = (0.5 + (tx - 0.5) * progress) * w
        cy = (0.5 + (ty - 0.5) * progress) * h
        cx = min(max(cx, view_w / 2), w - view_w / 2)
        cy = min(max(cy, view_h / 2), h - view_h / 2)
        scale = self.width / view_w
        affine = np.array(
            [[scale, 0.0, self.width / 2 - scale * cx], [0.0, scale, self.height / 2 - scale * cy]]
        )
        return np.asarray(
            cv2.warpAffine(
                still,
                affine,
                (self.width, self.height),
                flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_REFLECT,
            ),
            dtype=np.uint8,
        )

    def read(self) -> RGBImage | None:
        if not self.loop and self._frame >= self.frames_per_image * len(self.stills):
            return None
        image = self.frame(self._frame)
        self._frame += 1
        return image

    def close(self) -> None:
        self._open = False


def synthetic_stills_dir() -> Path:
    """The licence-clean photos the emulated camera pans over (hardware/sim/images)."""
    return Path(__file__).resolve().parent.parent.parent / "hardware" / "sim" / "images"


def open_source(
    config: SourceConfig, *, capture_factory: CaptureFactory | None = None
) -> FrameSource:
    """The source ``[eye.source]`` describes (not opened yet).

    ``capture_factory`` replaces OpenCV's for ``kind = "camera"`` (the emulated camera).
    """
    if config.kind == "camera":
        return OpenCVCameraSource(
            config.device,
            width=config.width,
            height=config.height,
            fps=config.fps,
            capture_factory=capture_factory or _opencv_capture,
        )
    if config.kind == "picamera2":
        return Picamera2Source(
            width=config.width, height=config.height, fps=config.fps, camera_num=config.device
        )
    if config.kind == "video":
        assert config.path is not None  # SourceConfig checks it
        return VideoFileSource(config.path, loop=config.loop)
    if config.kind == "folder":
        assert config.path is not None
        return ImageFolderSlideshow(
            config.path,
            seconds_per_image=config.seconds_per_image,
            fps=config.fps,
            loop=config.loop,
        )
    return SyntheticPanZoom.from_folder(
        config.path or synthetic_stills_dir(),
        width=config.width,
        height=config.height,
        fps=config.fps,
        seconds_per_image=config.seconds_per_image,
        loop=config.loop,
    )


def parse_source(spec: str, base: SourceConfig | None = None) -> SourceConfig:
    """``camera``, ``camera:1``, ``picamera2``, ``video:PATH``, ``folder:DIR``, ``synthetic``
    or ``synthetic:DIR`` (the command line's ``--source``) as a :class:`SourceConfig`."""
    kind, _, rest = spec.partition(":")
    base = base or SourceConfig()
    allowed = "camera[:INDEX], picamera2, video:PATH, folder:DIR, synthetic[:DIR]"
    update: dict[str, Any] = {"kind": kind}
    if kind in ("camera", "picamera2"):
        if rest:
            if not rest.isdigit():
                raise FrameSourceError(f"--source {spec!r}: the camera index must be a number")
            update["device"] = int(rest)
    elif kind in ("video", "folder"):
        if not rest:
            raise FrameSourceError(f"--source {spec!r}: say which {kind}, e.g. {kind}:PATH")
        update["path"] = Path(rest)
    elif kind == "synthetic":
        update["path"] = Path(rest) if rest else None
    else:
        raise FrameSourceError(f"--source {spec!r} is not a source; use one of: {allowed}")
    return SourceConfig.model_validate(base.model_dump() | update)
