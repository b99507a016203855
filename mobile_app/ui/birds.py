"""Birds: today's calls by hour (stacked by species), the counts, and the detection history.

Every species shows its common name and, when the station's species model gives one (BirdNET
does), its scientific name in italics: "Great Tit  *Parus major*". A line under the history
heading says which model names the birds at the station (station info).
"""

from __future__ import annotations

import time
from typing import Any, Final

from kivy.metrics import dp
from kivy.uix.gridlayout import GridLayout

from mobile_app.state import AppState
from mobile_app.ui import theme
from mobile_app.ui.base import StateScreen, column, row, section
from mobile_app.ui.charts import HourBars
from mobile_app.ui.present import day_and_clock, duration, percent
from mobile_app.ui.widgets import Bar, Card, Swatch, Text, escape, species_colours

HISTORY_ROWS: Final = 60
"""Rows in the history list: enough for a morning; more would only slow the phone."""

MODEL_NAMES: Final = {"birdnet-v2.4": "BirdNET v2.4", "birds": "the station's bird head"}


def model_description(model_id: str | None) -> str:
    """``yamnet+birdnet-v2.4`` -> "Species named by BirdNET v2.4 (YAMNet hears presence)"."""
    if not model_id:
        return ""
    parts = model_id.split("+")
    namer = parts[-1] if len(parts) > 1 else ""
    if not namer:
        return f"Bird presence from {parts[0]}; no species model at the station"
    return f"Species named by {MODEL_NAMES.get(namer, namer)}"


def scientific_markup(name: str | None) -> str:
    return f"[i]{escape(name)}[/i]" if name else ""


class BirdsScreen(StateScreen):
    title = "Birds"

    def build(self) -> None:
        self.body.add_widget(section("Today by hour"))
        chart_card = Card()
        self.chart = HourBars(size_hint_y=None, height=dp(170))
        chart_card.add_widget(self.chart)
        self.legend = GridLayout(cols=2, size_hint_y=None, height=0, spacing=(dp(8), dp(2)))
        self.legend.bind(minimum_height=self.legend.setter("height"))
        chart_card.add_widget(self.legend)
        self.body.add_widget(chart_card)
        self.body.add_widget(section("Heard recently"))
        self.model = Text("", font_size=theme.FONT_SMALL, colour=theme.TEXT_MUTED, height=dp(20))
        self.body.add_widget(self.model)
        self.history = column(dp(6))
        self.body.add_widget(self.history)
        self._shown: tuple[Any, ...] | None = None

    def update(self, state: AppState) -> None:
        now = state.now()
        signature = (
            len(state.birds),
            state.birds[0].get("ts") if state.birds else None,
            tuple(sorted(state.species_today.items())),
            now // 60,
            state.species_model,
            len(state.scientific_names),
        )
        if signature == self._shown:
            return
        self._shown = signature
        colours = species_colours({*state.species_today, *(b["species"] for b in state.birds)})
        self.chart.set(state.birds_by_hour, colours, time.localtime(now).tm_hour)
        self.model.text = model_description(state.species_model)
        # one species a line when scientific names make the entries long
        self.legend.cols = 1 if state.scientific_names else 2
        self.legend.clear_widgets()
        for name, count in sorted(state.species_today.items(), key=lambda kv: (-kv[1], kv[0])):
            scientific = scientific_markup(state.scientific_names.get(name))
            self.legend.add_widget(
                row(
                    Swatch(colours.get(name, theme.UNKNOWN)),
                    Text(
                        f"{escape(name)}  [b]{count}[/b]"
                        + (f"   {scientific}" if scientific else ""),
                        font_size=theme.FONT_SMALL,
                    ),
                    height=dp(28),
                    spacing=dp(6),
                )
            )
        self.history.clear_widgets()
        if not state.birds:
            self.history.add_widget(
                Text(
                    "Nothing heard yet. Each call the station recognises appears here.",
                    colour=theme.TEXT_MUTED,
                    wrap=True,
                    height=dp(48),
                )
            )
            return
        for bird in state.birds[:HISTORY_ROWS]:
            self.history.add_widget(DetectionRow(bird, colours, now))


class DetectionRow(Card):
    """One call: species (common and scientific name), confidence as a bar and in words,
    when and for how long."""

    def __init__(
        self, bird: dict[str, Any], colours: dict[str, theme.RGBA], now: float, **kwargs: Any
    ) -> None:
        kwargs.setdefault("padding", (dp(14), dp(6), dp(12), dp(6)))
        kwargs.setdefault("spacing", dp(2))
        super().__init__(**kwargs)
        name = str(bird.get("species"))
        colour = colours.get(name, theme.UNKNOWN)
        start = float(bird.get("start") or bird.get("ts") or now)
        end = float(bird.get("end") or start)
        self.add_widget(
            row(
                Swatch(colour),
                Text(escape(name), font_size=theme.FONT_LARGE, bold=True),
                Text(
                    day_and_clock(start, now),
                    halign="right",
                    colour=theme.TEXT_MUTED,
                    size_hint_x=None,
                    width=dp(96),
                ),
                height=dp(28),
            )
        )
        scientific = bird.get("scientific_name")
        if isinstance(scientific, str) and scientific:
            self.scientific = Text(
                scientific_markup(scientific),
                font_size=theme.FONT_SMALL,
                colour=theme.TEXT_MUTED,
                height=dp(18),
                padding=(dp(22), 0, 0, 0),
            )
            self.add_widget(self.scientific)
        confidence = bird.get("confidence_max") or 0.0
        self.add_widget(
            row(
                Bar(confidence, colour, size_hint_x=0.5),
                Text(
                    f"{percent(confidence)} sure · {duration(max(end - start, 0))} call",
                    font_size=theme.FONT_SMALL,
                    colour=theme.TEXT_MUTED,
                    size_hint_x=0.5,
                ),
                height=dp(22),
            )
        )
