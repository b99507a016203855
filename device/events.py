"""The typed events every part of the station exchanges.

Events are small frozen dataclasses. Senses produce them, the runtime fans them out to sinks
(console, JSON lines, SQLite store, later the BLE link). ``to_dict`` gives the plain form that
the JSON output and the store use; every dict carries a ``"type"`` key.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar


class ChannelStatus(enum.StrEnum):
    """State of one analog sensor channel, as the app shows it."""

    OK = "ok"
    WARMING_UP = "warming_up"
    UNCALIBRATED = "uncalibrated"
    DISCONNECTED = "disconnected"
    ERROR = "error"


class HealthStatus(enum.StrEnum):
    OK = "ok"
    DEGRADED = "degraded"
    FAILED = "failed"


class FoodVerdict(enum.StrEnum):
    """What the station tells a person about their food."""

    FRESH = "fresh"
    SPOILING = "spoiling"
    SPOILED = "spoiled"


class FoodState(enum.StrEnum):
    """Where the station is with the food in the box (see :mod:`device.nose.food`).

    Verdicts are measured against the food's own first minutes in the box, as in training, so
    until someone says "new food in the box" there is nothing to measure against and the
    station says so instead of guessing.
    """

    NO_FOOD = "no_food"
    """Nobody marked food in: no verdicts (press "New food" in the app, HA or the CLI)."""
    BASELINE = "baseline"
    """Taking the food's baseline: its first minutes in the box (waits out a warm-up)."""
    STARTING = "starting"
    """Baseline taken; gathering the minutes of history the first verdict needs."""
    READY = "ready"
    """Verdicts are given."""
    NO_CHANGE = "no_change"
    """The baseline saw no change at all in any gas reading: sensors not connected?"""


class Trend(enum.StrEnum):
    IMPROVING = "improving"
    STEADY = "steady"
    WORSENING = "worsening"
    UNKNOWN = "unknown"


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


@dataclass(frozen=True)
class Event:
    """Base of all events. ``ts`` is Unix time in seconds."""

    type: ClassVar[str] = "event"
    ts: float

    def to_dict(self) -> dict[str, Any]:
        plain: dict[str, Any] = {"type": self.type}
        plain.update(_plain(self))
        return plain


@dataclass(frozen=True)
class SensorValue:
    """One MQ channel at one instant.

    ``ratio`` is the temperature/humidity-compensated Rs/R0 (None until calibrated);
    ``ppm`` holds the gases this sensor type has a datasheet curve for.
    """

    name: str
    status: ChannelStatus
    voltage_v: float | None = None
    rs_kohm: float | None = None
    ratio: float | None = None
    ppm: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class NoseReading(Event):
    """All gas channels plus climate, sampled together."""

    type: ClassVar[str] = "nose"
    sensors: tuple[SensorValue, ...]
    temperature_c: float | None
    humidity_pct: float | None
    warming_up: bool


@dataclass(frozen=True)
class FoodReading(Event):
    """The verdict on the food in the box.

    ``probabilities`` are the model's classes (excellent, good, acceptable, spoiled);
    ``freshness`` is 1 for just-bought food and 0 for spoiled; ``trend`` compares the
    freshness of the last readings. ``warming_up`` marks verdicts made while a sensor was
    still heating: shown, but not to be trusted. ``tvc_log_cfu`` is the model's estimate of
    the total viable count (log10 CFU/g; ``None`` from models without that output).

    ``food_state`` says whether this is a verdict (:attr:`FoodState.READY`) or where the
    station is before one (no food marked in, taking the food's baseline, ...); only a READY
    reading has a ``label``, ``confidence`` and ``freshness``. ``food_in_ts`` is when the
    food was marked in, ``minutes_to_verdict`` how long until the first verdict.
    """

    type: ClassVar[str] = "food"
    label: FoodVerdict | None
    confidence: float | None
    probabilities: Mapping[str, float]
    freshness: float | None
    trend: Trend
    freshness_per_hour: float | None
    warming_up: bool
    tvc_log_cfu: float | None = None
    food_state: FoodState = FoodState.READY
    food_in_ts: float | None = None
    minutes_to_verdict: int | None = None


@dataclass(frozen=True)
class Health(Event):
    """Something about a component changed: it failed, degraded, or recovered."""

    type: ClassVar[str] = "health"
    component: str
    status: HealthStatus
    message: str


@dataclass(frozen=True)
class ConceptScore(Event):
    """The camera's score for an active concept (the eye sense).

    ``score`` is calibrated to 0-1 so it means the same across concepts; ``focus_box`` is the
    best-scoring crop as (x, y, width, height), each a fraction of the frame.
    """

    type: ClassVar[str] = "concept"
    concept: str
    score: float
    focus_box: tuple[float, float, float, float]
    fps: float
    drops: int
    crop: str | None = None
    """The AI crop this frame triggered (its id on the station), or None."""


@dataclass(frozen=True)
class BirdDetection(Event):
    """A bird call heard from ``start`` to ``end`` (Unix s), with its saved clip (the ear)."""

    type: ClassVar[str] = "bird"
    start: float
    end: float
    species: str
    confidence_max: float
    confidence_mean: float
    clip: str
    # Appended (older stations and stored rows have neither): the species' scientific name
    # ("" when the model gives none, e.g. presence "Bird") and which models named it.
    scientific_name: str = ""
    model_id: str = ""
    #: Why no clip was kept on purpose: "speech" (the privacy filter heard a voice); "" if kept.
    clip_withheld: str = ""
