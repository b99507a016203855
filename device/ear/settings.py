"""The ``[ear]`` section of the station's config.

Example::

    [ear]
    source = "microphone"
    device = "USB"            # a PortAudio device index or part of its name; default: system's
    sample_rate = 48000
    threshold = 0.5
    allow_list = ["Great Tit", "Bird"]
    clip_budget_mb = 500

    [ear.species_thresholds]
    "Great Tit" = 0.35

Everything the detector reports can be filtered here: a global threshold, per-species
thresholds (BirdNET-Pi users' first wish after "fewer sirens reported as owls"), and an
allow-list of species names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from device.ear.privacy import DEFAULT_THRESHOLD as DEFAULT_PRIVACY_THRESHOLD

_PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent
#: The emulated microphone's soundscape, and the file source's default (hardware/sim/audio).
DEFAULT_SOUNDSCAPE = _PROJECT_ROOT / "hardware" / "sim" / "audio" / "soundscape_demo.flac"
#: Below the data folder: where clips go unless ``clip_dir`` says otherwise.
CLIP_SUBDIR = "ear_clips"

SourceKind = Literal["microphone", "file", "generator"]
# One 10 ms front-end frame is the hop's unit.
_FRAME_S = 0.010


class EarConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    source: SourceKind = Field(
        "microphone",
        description="microphone (PortAudio; emulated in demos), file (path), or generator",
    )
    device: int | str | None = Field(
        None, description="PortAudio input device: index or part of its name; None: default"
    )
    sample_rate: int = Field(48000, ge=8000, le=192000, description="microphone rate (Hz)")
    channels: int = Field(1, ge=1, le=8, description="microphone channels, mixed to mono")
    block_s: float = Field(0.1, gt=0, le=1.0, description="audio handed over per callback")
    path: Path = Field(DEFAULT_SOUNDSCAPE, description="file source: WAV or FLAC, any rate")
    loop: bool = Field(False, description="file source: start again at the end")
    backbone: str = Field("yamnet", min_length=1, description="folder under models/")
    head: str | None = Field(
        "birds",
        description="species head folder under models/; missing or None: presence only",
    )
    hop_s: float = Field(0.48, ge=0.1, le=0.96, description="seconds between window starts")
    threshold: float = Field(0.5, gt=0, le=1, description="least confidence reported")
    species_thresholds: dict[str, float] = Field(default_factory=dict)
    allow_list: list[str] = Field(
        default_factory=list, description="report only these species; empty: all"
    )
    merge_gap_s: float = Field(
        1.0, ge=0, le=30, description="hits of one species closer than this are one detection"
    )
    min_windows: int = Field(1, ge=1, le=20, description="windows a detection needs")
    max_detection_s: float = Field(30.0, ge=1, le=300, description="longer calls are split")
    pre_roll_s: float = Field(2.0, ge=0, le=30)
    post_roll_s: float = Field(2.0, ge=0, le=30)
    clip_dir: Path | None = Field(None, description=f"default: <data_dir>/{CLIP_SUBDIR}")
    clip_budget_mb: float = Field(
        500.0, ge=0, description="clips beyond this are deleted oldest first (rows stay)"
    )
    retry_first_s: float = Field(1.0, gt=0, description="first wait before reopening the mic")
    retry_max_s: float = Field(60.0, gt=0)
    stall_s: float = Field(
        3.0, gt=0, description="no audio for this long means the microphone vanished"
    )
    privacy_filter: bool = Field(
        True, description="keep no clip in which YAMNet hears a human voice (rows stay)"
    )
    privacy_threshold: float = Field(
        DEFAULT_PRIVACY_THRESHOLD,
        gt=0,
        le=1,
        description="best YAMNet voice class that withholds a clip (device/ear/privacy.py)",
    )

    @field_validator("hop_s")
    @classmethod
    def _whole_frames(cls, value: float) -> float:
        frames = value / _FRAME_S
        if abs(frames - round(frames)) > 1e-6:
            raise ValueError(f"must be a whole number of 10 ms frames, got {value}")
        return value

    @field_validator("species_thresholds")
    @classmethod
    def _thresholds_in_range(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {k: v for k, v in value.items() if not 0 < v <= 1}
        if bad:
            raise ValueError(f"thresholds must be in (0, 1], got {bad}")
        return value

    @model_validator(mode="after")
    def _retry_order(self) -> Self:
        if self.retry_max_s < self.retry_first_s:
            raise ValueError("retry_max_s must be >= retry_first_s")
        return self

    @property
    def hop_frames(self) -> int:
        return round(self.hop_s / _FRAME_S)

    def clip_folder(self, data_dir: Path) -> Path:
        return self.clip_dir if self.clip_dir is not None else data_dir / CLIP_SUBDIR
