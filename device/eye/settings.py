"""The ``[eye]`` section of the station's config.

Example::

    [eye]
    concepts = ["/home/pi/quiet_detail.cav"]
    threshold = 0.75
    crop_mode = "round_robin"

    [eye.source]
    kind = "camera"
    device = 0
    width = 1280
    height = 720
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from device.paths import default_concepts_dir

#: The shipped concepts as this process started (``concepts/`` of the models folder).
DEFAULT_CONCEPTS_DIR = default_concepts_dir()
#: Below the data folder: where AI-crop snapshots go unless ``snapshot_dir`` says otherwise.
SNAPSHOT_SUBDIR = "eye_snapshots"
#: Below the data folder: concepts trained from boards sent by the phone (loaded at start).
PHONE_CONCEPTS_SUBDIR = "eye_concepts"

SourceKind = Literal["camera", "picamera2", "video", "folder", "synthetic"]
CropMode = Literal["none", "all", "round_robin"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceConfig(_Section):
    """Where frames come from.

    ``camera`` is any V4L2 camera OpenCV opens (USB webcams, and the Pi camera through
    libcamera's V4L2 compatibility layer); ``picamera2`` is the Pi camera through its own
    library; ``video`` and ``folder`` play files from ``path``; ``synthetic`` pans and zooms
    over the still photos in ``path`` (default: hardware/sim/images).
    """

    kind: SourceKind = "camera"
    device: int = Field(0, ge=0, description="camera index: /dev/video<device>")
    path: Path | None = Field(None, description="video file, image folder, or stills to pan")
    width: int = Field(640, ge=32, le=4096)
    height: int = Field(480, ge=32, le=4096)
    fps: float = Field(15.0, gt=0, le=120)
    loop: bool = Field(True, description="replay a video or folder from the start at its end")
    seconds_per_image: float = Field(4.0, gt=0, description="folder and synthetic sources")

    @model_validator(mode="after")
    def _path_when_needed(self) -> Self:
        if self.kind in ("video", "folder") and self.path is None:
            raise ValueError(f"source kind {self.kind!r} needs a path (the file or folder to play)")
        return self


class EyeConfig(_Section):
    enabled: bool = True
    source: SourceConfig = Field(default_factory=SourceConfig)
    # Default: the concepts that ship in models/concepts (made by `senses eye train` from
    # licence-clean photos; see the README there), so `senses demo` shows the eye working.
    concepts: list[Path] = Field(
        default_factory=lambda: sorted(default_concepts_dir().glob("*.cav")),
        description=".cav files made by `senses eye train`; all share one backbone pass",
    )
    threshold: float = Field(
        0.7, gt=0, le=1, description="calibrated score at which an AI crop is taken"
    )
    hysteresis: float = Field(
        0.1, ge=0, lt=1, description="the score must fall this far below threshold to re-arm"
    )
    cooldown_s: float = Field(10.0, ge=0, description="least time between two AI crops")
    # Round-robin, 4 crops a frame, is the default, by measurement (`senses bench eye`, one
    # thread, x86 test machine, 38 backbone invokes/s): "all" spends 14 invokes on every frame,
    # so it scores 2.5 frames/s and completes 2.5 crop maps/s; round-robin with 4 crops spends
    # 5 a frame and scores 7.6 frames/s (a livelier meter, AI crops three times sooner) while
    # still completing 1.9 crop maps/s. Events go out at 2/s, so either way a crop's score is
    # about one event old at most. On a slower Pi the difference matters more: "all" falls below one
    # frame a second long before round-robin does.
    crop_mode: CropMode = "round_robin"
    crops_per_frame: int = Field(
        4, ge=1, le=13, description="round_robin: crops scored with each frame, besides it"
    )
    crop_frame_side_px: int | None = Field(
        448,
        ge=224,
        description="the frame is shrunk to this shorter side before crops are cut (448 keeps "
        "a half-size crop at the backbone's full 224 px; on 1280x720 its crop ranking agrees "
        "with full resolution at Spearman 0.99, `senses bench eye` prints the curve); unset: "
        "cut from full resolution",
    )
    smoothing: float = Field(
        0.5, gt=0, le=1, description="EMA weight of the newest frame (1 = no smoothing)"
    )
    snapshot_dir: Path | None = Field(None, description=f"default: <data_dir>/{SNAPSHOT_SUBDIR}")
    max_snapshots: int = Field(200, ge=1, description="AI crops kept (oldest deleted first)")
    snapshot_budget_mb: float = Field(200.0, gt=0, description="disk the AI crops may use")
    events_per_s: float = Field(
        2.0, gt=0, le=30, description="ConceptScore events per concept per second (BLE budget)"
    )
    queue_frames: int = Field(2, ge=1, le=16, description="frames waiting for the scorer")

    @model_validator(mode="after")
    def _hysteresis_below_threshold(self) -> Self:
        if self.hysteresis >= self.threshold:
            raise ValueError(
                f"hysteresis ({self.hysteresis}) must be smaller than threshold "
                f"({self.threshold}), or the trigger could never re-arm"
            )
        return self

    phone_concepts_dir: Path | None = Field(
        None,
        description=f"concepts trained from the phone; default: <data_dir>/{PHONE_CONCEPTS_SUBDIR}",
    )

    def phone_concepts_path(self, data_dir: Path) -> Path:
        """Where concepts trained from boards sent by the phone are kept (and loaded from)."""
        if self.phone_concepts_dir is not None:
            return self.phone_concepts_dir
        return data_dir / PHONE_CONCEPTS_SUBDIR

    def snapshot_path(self, data_dir: Path) -> Path:
        """Where AI crops are saved for a station whose data folder is ``data_dir``."""
        return self.snapshot_dir if self.snapshot_dir is not None else data_dir / SNAPSHOT_SUBDIR
