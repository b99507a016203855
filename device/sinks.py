"""Where events go: JSON lines, the SQLite store, a live terminal dashboard.

Sinks are called by the runtime from one place under one lock, so they need no locking of
their own. A sink that fails is reported once and dropped; it never stops the senses.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any, Protocol, TextIO

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from device.events import (
    BirdDetection,
    ChannelStatus,
    ConceptScore,
    Event,
    FoodReading,
    FoodVerdict,
    Health,
    HealthStatus,
    NoseReading,
)
from device.store import EventStore


class Sink(Protocol):
    def handle(self, event: Event) -> None: ...


class JsonLinesSink:
    """One JSON object a line (``senses demo --json``), flushed at once for pipes."""

    def __init__(self, stream: TextIO, *, types: set[str] | None = None) -> None:
        self.stream = stream
        self.types = types
        # The phone's messages arrive on the link's thread, the station's on the senses'.
        self._lock = threading.Lock()

    def handle(self, event: Event) -> None:
        if self.types is None or event.type in self.types:
            self.write(event.to_dict())

    def write(self, record: Mapping[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":")) + "\n"
        with self._lock:
            self.stream.write(line)
            self.stream.flush()


class StoreSink:
    """Keeps every event in the SQLite store (the link's backfill reads it back)."""

    def __init__(self, store: EventStore) -> None:
        self.store = store

    def handle(self, event: Event) -> None:
        self.store.append(event)


VERDICT_STYLE = {
    FoodVerdict.FRESH: "bold green",
    FoodVerdict.SPOILING: "bold yellow",
    FoodVerdict.SPOILED: "bold red",
}
CHANNEL_STYLE = {
    ChannelStatus.OK: "green",
    ChannelStatus.WARMING_UP: "yellow",
    ChannelStatus.UNCALIBRATED: "cyan",
    ChannelStatus.DISCONNECTED: "red",
    ChannelStatus.ERROR: "red",
}
HEALTH_STYLE = {
    HealthStatus.OK: "green",
    HealthStatus.DEGRADED: "yellow",
    HealthStatus.FAILED: "red",
}
MAX_HEALTH_LINES = 6
MAX_BIRD_LINES = 4
SCORE_BAR_CELLS = 20


def _fmt(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


class StationDashboard:
    """The live view of ``senses demo``: the food verdict and channels, the camera's concept
    scores, recent bird detections, what the phone received, and recent health."""

    def __init__(self, title: str = "Senses · nose") -> None:
        self.title = title
        self.reading: NoseReading | None = None
        self.food: FoodReading | None = None
        self.concepts: dict[str, ConceptScore] = {}
        self.birds: list[BirdDetection] = []
        self.health: list[Health] = []
        self.caption = ""
        self.phone_messages = 0
        self.phone_last: dict[str, Any] | None = None
        self.phone_mtu: int | None = None

    def on_phone(self, seq: int, payload: Mapping[str, Any]) -> None:
        """What the simulated phone decoded from the BLE link (called on the link's thread)."""
        self.phone_messages += 1
        if payload.get("type") == "food" and payload.get("label"):
            self.phone_last = {"seq": seq, **payload}

    def handle(self, event: Event) -> None:
        if isinstance(event, NoseReading):
            self.reading = event
        elif isinstance(event, FoodReading):
            self.food = event
        elif isinstance(event, ConceptScore):
            self.concepts[event.concept] = event
        elif isinstance(event, BirdDetection):
            self.birds = [*self.birds, event][-MAX_BIRD_LINES:]
        elif isinstance(event, Health):
            self.health = [*self.health, event][-MAX_HEALTH_LINES:]

    def render(self) -> RenderableType:
        parts: list[RenderableType] = [self._verdict(), self._channels()]
        if self.concepts:
            parts.append(self._eye())
        if self.birds:
            parts.append(self._ear())
        parts.append(self._phone())
        if self.health:
            lines = Text()
            for h in self.health:
                lines.append(f"{h.status.value:>8} ", style=HEALTH_STYLE[h.status])
                lines.append(f"{h.component}: {h.message}\n")
            parts.append(lines)
        return Group(*parts)

    def _eye(self) -> RenderableType:
        text = Text()
        for score in self.concepts.values():
            cells = round(score.score * SCORE_BAR_CELLS)
            x, y, w, h = score.focus_box
            text.append(f"Eye: {score.concept:<16} ")
            text.append("█" * cells, style="bold magenta")
            text.append("·" * (SCORE_BAR_CELLS - cells), style="dim")
            text.append(
                f" {score.score:4.0%}  focus x{x:.2f} y{y:.2f} {w:.2f}×{h:.2f}"
                f"  {score.fps:4.1f} fps  {score.drops} dropped\n"
            )
        return text

    def _ear(self) -> RenderableType:
        text = Text()
        for bird in reversed(self.birds):
            heard = time.strftime("%H:%M:%S", time.localtime(bird.start))
            text.append(f"Ear: {heard} ", style="dim")
            text.append(bird.species, style="bold cyan")
            text.append(
                f"  {bird.confidence_max:.0%} max, {bird.confidence_mean:.0%} mean,"
                f" {bird.end - bird.start:.1f} s  "
                + (
                    f"clip withheld: {bird.clip_withheld}\n"
                    if bird.clip_withheld
                    else f"clip {PurePath(bird.clip).name}\n"
                )
            )
        return text

    def _phone(self) -> RenderableType:
        text = Text("Phone (virtual BLE link")
        text.append(f", ATT MTU {self.phone_mtu})" if self.phone_mtu else ")")
        text.append(f": {self.phone_messages} messages received")
        if self.phone_last is not None:
            label = str(self.phone_last.get("label", "?"))
            text.append(f"; latest food verdict #{self.phone_last['seq']}: ")
            text.append(label.upper(), style=VERDICT_STYLE.get(FoodVerdict(label), ""))
        return text

    def _verdict(self) -> RenderableType:
        food = self.food
        if food is None:
            waiting = "warming up" if self.reading and self.reading.warming_up else "collecting"
            return Text(f"Food: no verdict yet ({waiting}) {self.caption}", style="dim")
        if food.label is None:
            from device.nose.food import describe_food_state

            text = Text(f"Food: {describe_food_state(food.food_state, food.minutes_to_verdict)}")
            text.append(f"  {self.caption}", style="dim")
            return text
        text = Text("Food: ")
        text.append(food.label.value.upper(), style=VERDICT_STYLE[food.label])
        text.append(
            f"  confidence {food.confidence:.0%}  freshness {food.freshness:.0%}"
            f"  trend {food.trend.value}"
        )
        if food.warming_up:
            text.append("  (sensors warming up: not yet reliable)", style="yellow")
        text.append(f"  {self.caption}", style="dim")
        return text

    def _channels(self) -> RenderableType:
        table = Table(title=self.title, expand=False)
        for column in ("sensor", "status", "V", "Rs kΩ", "Rs/R0", "gas"):
            table.add_column(column, justify="left" if column in ("sensor", "gas") else "right")
        reading = self.reading
        if reading is None:
            return table
        for v in reading.sensors:
            gas = ", ".join(f"{g} {p:.0f} ppm" for g, p in list(v.ppm.items())[:2]) or "–"
            table.add_row(
                v.name,
                Text(v.status.value, style=CHANNEL_STYLE[v.status]),
                _fmt(v.voltage_v, ".3f"),
                _fmt(v.rs_kohm, ".2f"),
                _fmt(v.ratio, ".2f"),
                gas,
            )
        table.caption = (
            f"{_fmt(reading.temperature_c, '.1f')} °C  {_fmt(reading.humidity_pct, '.0f')} %RH"
        )
        return table


#: The dashboard's earlier name, from when the station had only a nose.
NoseDashboard = StationDashboard
