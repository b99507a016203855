"""The ``[ear]`` section of the station's config.

Example::

    [ear]
    source = "microphone"
    device = "USB"            # a PortAudio device index or part of its name; default: system's
    sample_rate = 48000
    threshold = 0.5
    allow_list = ["Great Tit", "Bird"]
    clip_budget_mb = 500

    species_model = "birdnet"  # once installed: senses ear install birdnet; or "head"
    latitude = 51.75          # range filter: BirdNET's occurrence model for place and week
    longitude = -1.25
    deny_list = ["House Sparrow"]   # common or scientific names

    [ear.species_thresholds]
    "Great Tit" = 0.35
    "Parus major" = 0.35      # the same bird by its scientific name

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
SpeciesModelKind = Literal["birdnet", "head"]
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
    species_model: SpeciesModelKind = Field(
        "birdnet",
        description="birdnet: BirdNET v2.4 once installed (senses ear install birdnet), else "
        "the head; head: the Apache-licensed head on YAMNet",
    )
    sensitivity: float = Field(
        1.0, ge=0.5, le=1.5, description="BirdNET sigmoid slope: 1/(1+exp(-s*logit))"
    )
    species_overlap_s: float | None = Field(
        None, ge=0, lt=3.0, description="overlap of species-model windows; None: the card's"
    )
    latitude: float | None = Field(None, description="station latitude (range filter)")
    longitude: float | None = Field(None, description="station longitude (range filter)")
    range_threshold: float = Field(
        0.03, ge=0, le=1, description="species below this occurrence here and now are dropped"
    )
    deny_list: list[str] = Field(default_factory=list, description="never report these")

    @field_validator("latitude")
    @classmethod
    def _latitude_on_globe(cls, value: float | None) -> float | None:
        if value is not None and not -90.0 <= value <= 90.0:
            raise ValueError(
                f"must be -90..90 decimal degrees (north positive), got {value}: did you swap "
                "latitude and longitude?"
            )
        return value

    @field_validator("longitude")
    @classmethod
    def _longitude_on_globe(cls, value: float | None) -> float | None:
        if value is not None and not -180.0 <= value <= 180.0:
            raise ValueError(f"must be -180..180 decimal degrees (east positive), got {value}")
        return value

    gate: bool = Field(
        True,
        description="the cascade: the species model (BirdNET) runs only on windows YAMNet's "
        "gate opens (docs/cascade.md: it keeps >= 0.97 of BirdNET's detections)",
    )
    gate_threshold: float | None = Field(
        None, gt=0, lt=1, description="gate score that opens a window; None: the measured one"
    )
    gate_duty: int = Field(
        0, ge=0, le=100, description="run every Nth window even when closed; 0: never"
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

    @model_validator(mode="after")
    def _place_complete(self) -> Self:
        if (self.latitude is None) != (self.longitude is None):
            raise ValueError(
                "set both latitude and longitude (the range filter needs a place), or neither"
            )
        return self

    @property
    def hop_frames(self) -> int:
        return round(self.hop_s / _FRAME_S)

    def clip_folder(self, data_dir: Path) -> Path:
        return self.clip_dir if self.clip_dir is not None else data_dir / CLIP_SUBDIR
