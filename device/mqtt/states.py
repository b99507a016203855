"""What the station tells Home Assistant: events turned into retained JSON states.

:class:`HomeAssistantBridge` is pure (no network): it turns each event into the messages to
publish and remembers what a broker that lost its memory (a restart without persistence) must be
told again: every discovery config and the latest state on every topic. The sink
(:mod:`device.mqtt.sink`) only moves these messages.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from typing import Any

from device.events import (
    BirdDetection,
    ConceptScore,
    Event,
    FoodReading,
    Health,
    HealthStatus,
    NoseReading,
)
from device.mqtt.discovery import (
    PAYLOAD_NO_PROBLEM,
    PAYLOAD_PROBLEM,
    DiscoveryBuilder,
    Entity,
)


@dataclass(frozen=True)
class OutgoingMessage:
    """One MQTT publish. Discovery configs are always retained; states as configured."""

    topic: str
    payload: str
    is_discovery: bool = False


def _finite(value: float | None, digits: int) -> float | None:
    """JSON has no NaN: a value the sensors could not measure is ``null`` (HA: unknown)."""
    if value is None or not math.isfinite(value):
        return None
    return round(value, digits)


def _percent(fraction: float | None) -> float | None:
    return _finite(None if fraction is None else fraction * 100.0, 1)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def _json(payload: Mapping[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class BirdTally:
    """Detections on the station's local calendar day; back to 0 at midnight.

    Counted since the station started, if that was today: ``counting_since`` says which.
    """

    def __init__(self, tz: tzinfo | None = None) -> None:
        self.tz = tz
        self.day: date | None = None
        self.count = 0
        self.since_ts: float | None = None

    def add(self, ts: float) -> int:
        day = datetime.fromtimestamp(ts, self.tz).date()
        if day != self.day:
            started_today = self.day is None
            self.day = day
            self.count = 0
            midnight = datetime.combine(day, datetime.min.time(), self.tz)
            if self.tz is None:
                midnight = midnight.astimezone()
            self.since_ts = ts if started_today else midnight.timestamp()
        self.count += 1
        return self.count


class HealthBoard:
    """The latest status of every component that ever reported; a problem if any is not OK."""

    def __init__(self) -> None:
        self.components: dict[str, Health] = {}

    def update(self, health: Health) -> None:
        self.components[health.component] = health

    @property
    def problems(self) -> list[Health]:
        return [h for h in self.components.values() if h.status is not HealthStatus.OK]


class HomeAssistantBridge:
    """Turns events into discovery configs and JSON states for Home Assistant."""

    def __init__(self, discovery: DiscoveryBuilder, *, tz: tzinfo | None = None) -> None:
        self.discovery = discovery
        self.topics = discovery.topics
        self.birds = BirdTally(tz)
        self.health = HealthBoard()
        self._concepts: dict[str, Entity] = {}
        # The latest payload per state topic, to tell a broker that forgot (restart without
        # persistence) and Home Assistant after it restarted.
        self._latest: dict[str, str] = {}

    def announcements(self) -> list[OutgoingMessage]:
        """What to publish on every (re)connect: all discovery configs, then the last states."""
        entities = [*self.discovery.station_entities(), *self._concepts.values()]
        messages = [self._config_message(e) for e in entities]
        messages.extend(OutgoingMessage(t, p) for t, p in self._latest.items())
        return messages

    def messages_for(self, event: Event) -> list[OutgoingMessage]:
        """The messages one event causes; none for events Home Assistant has no entity for."""
        messages: list[OutgoingMessage] = []
        state: tuple[str, dict[str, Any]] | None = None
        if isinstance(event, FoodReading):
            state = (self.topics.food, self._food(event))
        elif isinstance(event, NoseReading):
            state = (self.topics.climate, self._climate(event))
        elif isinstance(event, ConceptScore):
            if event.concept not in self._concepts:
                entity = self.discovery.concept_entity(event.concept)
                self._concepts[event.concept] = entity
                messages.append(self._config_message(entity))
            state = (self.topics.concept(event.concept), self._concept(event))
        elif isinstance(event, BirdDetection):
            state = (self.topics.bird, self._bird(event))
        elif isinstance(event, Health):
            self.health.update(event)
            state = (self.topics.health, self._health())
        if state is not None:
            topic, payload = state
            text = _json({**payload, "ts": round(event.ts, 3), "time": _iso(event.ts)})
            self._latest[topic] = text
            messages.append(OutgoingMessage(topic, text))
        return messages

    def _config_message(self, entity: Entity) -> OutgoingMessage:
        return OutgoingMessage(
            self.topics.discovery(entity.component, entity.object_id),
            _json(entity.config),
            is_discovery=True,
        )

    @staticmethod
    def _food(food: FoodReading) -> dict[str, Any]:
        return {
            "verdict": food.label.value,
            "confidence": _finite(food.confidence, 3),
            "freshness_pct": _percent(food.freshness),
            "trend": food.trend.value,
            "freshness_pct_per_hour": _percent(food.freshness_per_hour),
            "warming_up": food.warming_up,
            "probabilities": {k: _finite(v, 3) for k, v in food.probabilities.items()},
        }

    @staticmethod
    def _climate(reading: NoseReading) -> dict[str, Any]:
        return {
            "temperature_c": _finite(reading.temperature_c, 1),
            "humidity_pct": _finite(reading.humidity_pct, 1),
            "warming_up": reading.warming_up,
            "sensors": {s.name: s.status.value for s in reading.sensors},
        }

    @staticmethod
    def _concept(score: ConceptScore) -> dict[str, Any]:
        x, y, width, height = score.focus_box
        return {
            "concept": score.concept,
            "score_pct": _percent(score.score),
            "focus_box": {
                "x": _finite(x, 4),
                "y": _finite(y, 4),
                "width": _finite(width, 4),
                "height": _finite(height, 4),
            },
            "fps": _finite(score.fps, 2),
            "drops": score.drops,
        }

    def _bird(self, bird: BirdDetection) -> dict[str, Any]:
        count = self.birds.add(bird.start)
        since = self.birds.since_ts
        return {
            "species": bird.species,
            # Home Assistant shows these as the "Last bird" sensor's attributes
            "common_name": bird.species,
            "scientific_name": bird.scientific_name,
            "model_id": bird.model_id,
            "confidence": _finite(bird.confidence_max, 3),
            "confidence_mean": _finite(bird.confidence_mean, 3),
            "start": _iso(bird.start),
            "end": _iso(bird.end),
            "duration_s": _finite(bird.end - bird.start, 2),
            "clip": bird.clip,
            "detections_today": count,
            "counting_since": None if since is None else _iso(since),
        }

    def _health(self) -> dict[str, Any]:
        problems = self.health.problems
        return {
            "state": PAYLOAD_PROBLEM if problems else PAYLOAD_NO_PROBLEM,
            "problems": [f"{h.component}: {h.message}" for h in problems],
            "components": {
                name: {"status": h.status.value, "message": h.message, "time": _iso(h.ts)}
                for name, h in sorted(self.health.components.items())
            },
        }
