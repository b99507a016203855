"""The eye's frame source: open it as the eye does and take one frame."""

from __future__ import annotations

import importlib.util

from device.config import Config
from device.doctor.findings import Finding, Status, finding_from_error
from device.errors import SensesError
from device.eye.sources import CaptureFactory, open_source


def check_camera(config: Config, *, capture_factory: CaptureFactory | None = None) -> list[Finding]:
    """Open the configured frame source and take one frame.

    ``capture_factory`` replaces OpenCV's ``VideoCapture`` for a ``camera`` source (the emulated
    camera); without it, a camera on an emulated station gets a warning and is not opened.
    """
    name = "camera"
    source_config = config.eye.source
    if not config.eye.enabled:
        return [Finding(name, Status.OK, "eye disabled in the config")]
    kind = source_config.kind
    if kind in ("camera", "picamera2") and capture_factory is None:
        if config.hardware.use_emulation():
            return [
                Finding(
                    name,
                    Status.WARN,
                    "running on emulated hardware: the eye pans over shipped photos",
                    'set hardware.mode = "real" (or "auto" on a Pi with I2C) to use the camera',
                )
            ]
        if kind == "picamera2" and importlib.util.find_spec("picamera2") is None:
            return [
                Finding(
                    name,
                    Status.FAIL,
                    "eye.source.kind is picamera2, but picamera2 is not installed",
                    "`sudo apt install python3-picamera2` and a venv made with "
                    '--system-site-packages, or use [eye.source] kind = "camera" (V4L2)',
                )
            ]
    if kind == "camera" and capture_factory is not None:
        source = open_source(source_config, capture_factory=capture_factory)
    else:
        source = open_source(source_config)
    try:
        with source:
            frame = source.read()
    except SensesError as e:
        return [finding_from_error(name, e)]
    if frame is None:
        return [
            Finding(
                name,
                Status.FAIL,
                f"{kind} source {source_config.path} delivered no frame",
                "point eye.source.path at a video or folder with images in it",
            )
        ]
    height, width = frame.shape[:2]
    where = f"/dev/video{source_config.device}" if kind == "camera" else source_config.path
    label = f"{kind} {where}" if where is not None else kind
    return [Finding(name, Status.OK, f"{label} delivered a {width}×{height} frame")]
