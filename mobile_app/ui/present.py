"""How station values become words, tones and shapes (plain Python, no Kivy).

A person should understand a card without reading numbers, and without telling colours
apart: every state has a word, a symbol and a shape as well as a tone. Tones are names
("good", "warn", "danger", "accent", "unknown") that :mod:`mobile_app.ui.theme` maps to
colours.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal

Tone = Literal["good", "warn", "danger", "accent", "unknown"]
Shape = Literal["circle", "triangle", "octagon", "diamond"]


@dataclass(frozen=True)
class Look:
    """One state as a person sees it."""

    tone: Tone
    symbol: str
    """A glyph from the symbol font (DejaVu Sans)."""
    word: str = ""
    shape: Shape = "circle"


NO_DATA: Final = Look("unknown", "?", "No data yet")

_FOOD: Final = {
    "fresh": Look("good", "✓", "Fresh", "circle"),
    "spoiling": Look("warn", "!", "Spoiling", "triangle"),
    "spoiled": Look("danger", "✗", "Spoiled", "octagon"),
}

_TREND: Final = {
    "improving": Look("good", "↗", "Improving"),
    "steady": Look("accent", "→", "Steady"),
    "worsening": Look("warn", "↘", "Worsening"),
}

_SENSOR: Final = {
    "ok": Look("good", "✓", "Ready"),
    "warming_up": Look("warn", "◔", "Warming up"),
    "uncalibrated": Look("warn", "◇", "Not calibrated", "diamond"),
    "disconnected": Look("danger", "✗", "Unplugged", "octagon"),
    "error": Look("danger", "✗", "Fault", "octagon"),
}

_CONNECTION: Final = {
    "idle": Look("unknown", "○", "Not connected"),
    "scanning": Look("warn", "◌", "Looking for the station"),
    "connecting": Look("warn", "◌", "Connecting"),
    "backfilling": Look("accent", "↻", "Catching up"),
    "connected": Look("good", "●", "Connected"),
    "disconnected": Look("danger", "✗", "Disconnected", "octagon"),
}

_SEVERITY: Final = {
    "info": Look("accent", "i"),
    "warning": Look("warn", "!", "", "triangle"),
    "danger": Look("danger", "✗", "", "octagon"),
}


def food_look(label: str | None) -> Look:
    return _FOOD.get(label or "", Look("unknown", "?", "No verdict yet"))


def trend_look(trend: str | None) -> Look:
    return _TREND.get(trend or "", Look("unknown", "·", "Trend not known yet"))


def sensor_look(status: str | None) -> Look:
    return _SENSOR.get(status or "", Look("unknown", "?", "No reading"))


def connection_look(state: object) -> Look:
    """``state`` is a ``ConnectionState`` (an enum) or its value."""
    key = str(getattr(state, "value", state))
    return _CONNECTION.get(key, Look("unknown", "?", key.capitalize()))


def severity_look(severity: str) -> Look:
    return _SEVERITY.get(severity, _SEVERITY["info"])


CONCEPT_NEAR: Final = 0.15
"""Below the threshold by less than this, a concept is "almost" there."""


def concept_look(score: float | None, threshold: float) -> Look:
    if score is None:
        return Look("unknown", "?", "No score yet")
    if score >= threshold:
        return Look("good", "✓", "In view")
    if score >= threshold - CONCEPT_NEAR:
        return Look("warn", "~", "Almost")
    return Look("accent", "·", "Not in view")


def percent(fraction: float | None) -> str:
    return "–" if fraction is None else f"{round(fraction * 100)}%"


def signed_percent_per_hour(fraction: float | None) -> str:
    if fraction is None:
        return ""
    value = round(fraction * 100, 1)
    sign = "+" if value > 0 else "−" if value < 0 else "±"
    return f"{sign}{abs(value):g}% per hour"


def clock(ts: float) -> str:
    """Local wall-clock time, as a phone shows it."""
    return time.strftime("%H:%M", time.localtime(ts))


def day_and_clock(ts: float, now: float) -> str:
    if time.localtime(ts)[:3] == time.localtime(now)[:3]:
        return clock(ts)
    return time.strftime("%a %H:%M", time.localtime(ts))


def ago(seconds: float) -> str:
    """A rough age: people read "5 min ago" faster than a timestamp."""
    if seconds < 45:
        return "just now"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min ago"
    hours = round(seconds / 3600)
    if hours < 36:
        return f"{hours} h ago"
    return f"{round(seconds / 86400)} days ago"


def duration(seconds: float) -> str:
    if seconds < 60:
        return f"{round(seconds)} s"
    if seconds < 3600:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h".replace(".0 h", " h")


def temperature(celsius: float, unit: str) -> float:
    return celsius * 9 / 5 + 32 if unit.upper() == "F" else celsius


def species_colour_index(all_species: Iterable[str]) -> dict[str, int]:
    """A stable palette slot per species (alphabetical), the same on every screen."""
    return {name: i for i, name in enumerate(sorted(set(all_species)))}
