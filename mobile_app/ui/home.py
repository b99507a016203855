"""Home: three cards that answer "is my food OK, is my concept in view, which birds came?"."""

from __future__ import annotations

from typing import Any

from kivy.metrics import dp
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.widget import Widget

from mobile_app.state import AppState, food_state_text
from mobile_app.ui import theme
from mobile_app.ui.base import StateScreen, column, row
from mobile_app.ui.charts import LineChart, Series
from mobile_app.ui.present import (
    ago,
    clock,
    concept_look,
    food_look,
    percent,
    signed_percent_per_hour,
    trend_look,
)
from mobile_app.ui.widgets import (
    Bar,
    Card,
    FocusFrame,
    Gauge,
    ShapeBadge,
    Swatch,
    Text,
    caption,
    escape,
    species_colours,
    symbol_markup,
    tone_colour,
)

FOOD_CHART_S = 24 * 3600.0
"""The freshness line covers a day: spoiling takes hours, not minutes."""
RECENT_BIRDS = 3
TOP_SPECIES = 4


def freshness_series(history: list[tuple[float, float, str]]) -> list[Series]:
    """The freshness line cut into runs of one verdict, each in its verdict's colour.

    Each run also takes the next run's first point, so the line stays unbroken where the
    verdict changes.
    """
    runs: list[Series] = []
    for index, (ts, freshness, label) in enumerate(history):
        if not runs or runs[-1].label != label:
            if runs and index > 0:
                runs[-1].points.append((ts, freshness))
            runs.append(Series(label, tone_colour(food_look(label).tone)))
        runs[-1].points.append((ts, freshness))
    return runs


def freshness_note(ts: float | None, now: float, state: AppState) -> tuple[str, theme.RGBA]:
    """How old a card's value is; in amber when the link is down, so nobody takes an old
    verdict for a live one."""
    if ts is None:
        return "", theme.TEXT_MUTED
    if state.connection.linked:
        return f"updated {ago(now - ts)}", theme.TEXT_MUTED
    return f"last known, {ago(now - ts)}", theme.WARN


def _percent_axis(value: float, _step: float) -> str:
    return f"{round(value * 100)}%"


class FoodCard(Card):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.age = Text(font_size=theme.FONT_SMALL, colour=theme.TEXT_MUTED, halign="right")
        self.add_widget(row(caption("Food"), self.age, height=dp(24)))
        self.badge = ShapeBadge(food_look(None), size_hint=(None, None), size=(dp(66), dp(66)))
        self.verdict = Text(font_size=theme.FONT_HUGE, bold=True, height=dp(46))
        self.detail = Text(font_size=theme.FONT_BODY, colour=theme.TEXT_MUTED, wrap=True)
        self.detail.height = dp(40)
        words = BoxLayout(orientation="vertical")
        words.add_widget(self.verdict)
        words.add_widget(self.detail)
        self.add_widget(row(self.badge, words, height=dp(80), spacing=dp(16)))
        self.chart = LineChart(
            y_fixed=(0.0, 1.0),
            y_format=_percent_axis,
            size_hint_y=None,
            height=dp(90),
            empty_text="Freshness over the day appears here",
        )
        self.add_widget(self.chart)
        self.trend = Text(font_size=theme.FONT_BODY)
        self.add_widget(self.trend)

    def update(self, state: AppState) -> None:
        food = state.food
        now = state.now()
        if food is None:
            look = food_look(None)
            self.badge.set_look(look)
            self.set_tone(None)
            self.verdict.text = look.word
            self.verdict.color = theme.TEXT_MUTED
            self.detail.text = "The first verdict comes once the station has smelled the box."
            self.age.text = ""
            self.trend.text = ""
            self.chart.set([], now - FOOD_CHART_S, now)
            return
        waiting = food_state_text(food)
        if waiting is not None:
            # No verdict: no food marked in yet, or the station is taking its baseline.
            look = food_look(None)
            self.badge.set_look(look)
            self.set_tone("warn" if food.get("food_state") == "no_change" else None)
            self.verdict.text, self.detail.text = waiting
            self.verdict.color = theme.TEXT_MUTED
            self.age.text, self.age.color = freshness_note(food.get("ts"), now, state)
            self.trend.text = ""
            self.chart.set(freshness_series(state.food_history), now - FOOD_CHART_S, now)
            return
        look = food_look(food.get("label"))
        self.badge.set_look(look)
        self.set_tone(look.tone)
        self.verdict.text = look.word
        self.verdict.color = tone_colour(look.tone)
        details = [f"{percent(food.get('confidence'))} sure"]
        if food.get("freshness") is not None:
            details.append(f"freshness {percent(food['freshness'])}")
        if food.get("warming_up"):
            details.append(f"{symbol_markup('◔')} sensors warming up: not yet reliable")
        self.detail.text = " · ".join(details)
        self.age.text, self.age.color = freshness_note(food.get("ts"), now, state)
        self.chart.set(freshness_series(state.food_history), now - FOOD_CHART_S, now)
        trend = trend_look(food.get("trend"))
        rate = signed_percent_per_hour(food.get("freshness_per_hour"))
        self.trend.text = f"{symbol_markup(trend.symbol)} {trend.word}" + (
            f"  ·  {rate}" if rate else ""
        )
        self.trend.color = tone_colour(trend.tone)


class ConceptCard(Card):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.speed = Text(font_size=theme.FONT_SMALL, colour=theme.TEXT_MUTED, halign="right")
        self.add_widget(row(caption("Concept"), self.speed, height=dp(24)))
        self.gauge = Gauge(size_hint=(None, None), size=(dp(136), dp(136)))
        right = BoxLayout(orientation="vertical", spacing=dp(4))
        self.name = Text(font_size=theme.FONT_TITLE, bold=True, height=dp(32))
        self.verdict = Text(font_size=theme.FONT_LARGE, height=dp(28))
        self.frame = FocusFrame()
        right.add_widget(self.name)
        right.add_widget(self.verdict)
        right.add_widget(self.frame)
        self.add_widget(row(self.gauge, right, height=dp(136), spacing=dp(14)))

    def update(self, state: AppState) -> None:
        concept = state.concept
        now = state.now()
        threshold = state.settings.concept_threshold
        if concept is None:
            look = concept_look(None, threshold)
            self.gauge.set(None, threshold, look)
            self.frame.set(None, "unknown")
            self.name.text = escape(state.active_concept or "No concept yet")
            self.verdict.text = "Choose one on Concepts"
            self.verdict.color = theme.TEXT_MUTED
            self.speed.text = ""
            self.set_tone(None)
            return
        score = concept.get("score")
        look = concept_look(score, threshold)
        self.gauge.set(score, threshold, look)
        self.frame.set(concept.get("focus_box"), look.tone)
        self.name.text = escape(str(concept.get("concept") or state.active_concept or "?"))
        self.verdict.text = f"{symbol_markup(look.symbol)} {look.word}"
        self.verdict.color = tone_colour(look.tone)
        self.set_tone(look.tone if look.tone != "accent" else None)
        fps = concept.get("fps")
        if state.connection.linked:
            self.speed.text = f"{fps:.0f} frames/s" if isinstance(fps, int | float) else ""
            self.speed.color = theme.TEXT_MUTED
        else:
            self.speed.text, self.speed.color = freshness_note(concept.get("ts"), now, state)


class BirdsCard(Card):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.summary = Text(font_size=theme.FONT_SMALL, colour=theme.TEXT_MUTED, halign="right")
        self.add_widget(row(caption("Birds"), self.summary, height=dp(24)))
        self.recent = column(dp(2))
        self.add_widget(self.recent)
        self.counts = column(dp(2))
        self.add_widget(self.counts)
        self._shown: tuple[Any, ...] | None = None

    def update(self, state: AppState) -> None:
        recent = state.birds[:RECENT_BIRDS]
        top = sorted(state.species_today.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_SPECIES]
        signature = (
            tuple((b.get("species"), b.get("ts")) for b in recent),
            tuple(top),
            state.now() // 60,
        )
        if signature == self._shown:
            return
        self._shown = signature
        colours = species_colours({*state.species_today, *(b["species"] for b in state.birds)})
        calls = sum(state.species_today.values())
        species = len(state.species_today)
        self.summary.text = (
            f"today: {calls} call{'s' * (calls != 1)}, {species} species" if calls else ""
        )
        self.recent.clear_widgets()
        self.counts.clear_widgets()
        if not recent:
            self.recent.add_widget(
                Text("No birds heard yet.", font_size=theme.FONT_LARGE, colour=theme.TEXT_MUTED)
            )
            self.recent.add_widget(
                Text(
                    "Detections appear here with species, confidence and time.",
                    colour=theme.TEXT_MUTED,
                    wrap=True,
                    height=dp(44),
                )
            )
            return
        for bird in recent:
            name = str(bird.get("species"))
            self.recent.add_widget(
                row(
                    Swatch(colours.get(name, theme.UNKNOWN)),
                    Text(escape(name), font_size=theme.FONT_LARGE, bold=True),
                    Text(
                        percent(bird.get("confidence_max")),
                        halign="right",
                        size_hint_x=None,
                        width=dp(52),
                    ),
                    Text(
                        clock(float(bird.get("start") or bird.get("ts") or 0)),
                        colour=theme.TEXT_MUTED,
                        halign="right",
                        size_hint_x=None,
                        width=dp(56),
                    ),
                    height=dp(30),
                )
            )
        if not top:
            return
        self.counts.add_widget(Widget(size_hint_y=None, height=dp(4)))
        self.counts.add_widget(caption("Today"))
        most = max(count for _, count in top)
        for name, count in top:
            colour = colours.get(name, theme.UNKNOWN)
            self.counts.add_widget(
                row(
                    Text(escape(name), size_hint_x=0.45),
                    Bar(count / most, colour, size_hint_x=0.45),
                    Text(str(count), halign="right", size_hint_x=0.1, bold=True),
                    height=dp(26),
                )
            )


class HomeScreen(StateScreen):
    def build(self) -> None:
        self.food = FoodCard()
        self.concept = ConceptCard()
        self.birds = BirdsCard()
        for card in (self.food, self.concept, self.birds):
            self.body.add_widget(card)

    def update(self, state: AppState) -> None:
        self.food.update(state)
        self.concept.update(state)
        self.birds.update(state)
