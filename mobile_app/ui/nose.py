"""Nose: the food in the box, each sensor's warm-up state, and climate and gas readings as
charts over hours.

"New food in the box" tells the station that food went in: it takes the food's first minutes
as its baseline (as the model was trained) and gives verdicts after that. Until then it says
that no food is marked in instead of guessing.

The station keeps 6 h of nose history in the app (``mobile_app.state.NOSE_HISTORY_S``); the
zoom buttons pick how much of it the charts show. On a desktop the mouse wheel over a chart
zooms too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Final

from kivy.metrics import dp
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.gridlayout import GridLayout

from mobile_app.state import NOSE_HISTORY_S, AppState, food_state_text
from mobile_app.ui import theme
from mobile_app.ui.base import StateScreen, column, row, section
from mobile_app.ui.charts import LineChart, Series
from mobile_app.ui.present import Look, food_look, sensor_look
from mobile_app.ui.widgets import (
    Card,
    FlatButton,
    ShapeBadge,
    Text,
    escape,
    symbol_markup,
    tone_colour,
)

ZOOM_WINDOWS_S: Final = (1800.0, 3600.0, 3 * 3600.0, NOSE_HISTORY_S)
DEFAULT_ZOOM_S: Final = 3 * 3600.0

GAS_NAMES: Final = {
    "NH3": "Ammonia NH[sub]3[/sub]",
    "H2S": "Hydrogen sulphide H[sub]2[/sub]S",
    "alcohol": "Alcohol",
    "CO2": "Carbon dioxide CO[sub]2[/sub]",
    "CO": "Carbon monoxide CO",
    "CH4": "Methane CH[sub]4[/sub]",
    "H2": "Hydrogen H[sub]2[/sub]",
    "LPG": "LPG",
    "toluene": "Toluene",
    "acetone": "Acetone",
    "benzene": "Benzene",
}
"""Gases (Kivy markup) in the order a person checking food cares about: spoilage gases first."""


def zoom_label(seconds: float) -> str:
    return f"{seconds / 3600:g} h" if seconds >= 3600 else f"{seconds / 60:g} min"


def gas_keys(history: dict[str, Any]) -> list[str]:
    """The ``<gas>_ppm`` series present, spoilage gases first, unknown gases last."""
    present = [k.removesuffix("_ppm") for k in history if k.endswith("_ppm")]
    order = list(GAS_NAMES)
    return sorted(present, key=lambda g: (order.index(g) if g in order else len(order), g))


class ChartCard(Card):
    """One quantity over time: title, latest value, chart."""

    def __init__(self, title: str, colour: theme.RGBA, **kwargs: Any) -> None:
        """``title`` is markup (ours, not the station's: it may use [sub])."""
        super().__init__(**kwargs)
        self.colour = colour
        self.title = Text(title, font_size=theme.FONT_BODY, bold=True)
        self.value = Text(font_size=theme.FONT_LARGE, bold=True, halign="right", colour=colour)
        self.add_widget(row(self.title, self.value, height=dp(28)))
        self.chart = LineChart(size_hint_y=None, height=dp(120))
        self.add_widget(self.chart)

    def set(self, points: list[tuple[float, float]], value: str, start: float, end: float) -> None:
        self.value.text = value
        self.chart.set([Series("", self.colour, points)], start, end)


NEW_FOOD_BUTTON: Final = "New food in the box"


def food_line(food: dict[str, Any] | None) -> tuple[Look, str]:
    """What the food card on this screen says: the state before a verdict, else the verdict
    and since when the food is in."""
    if food is None:
        return Look("unknown", "?"), "No word from the station's nose yet."
    waiting = food_state_text(food)
    if waiting is not None:
        headline, text = waiting
        if food.get("food_state") == "no_change":
            return Look("warn", "!", shape="triangle"), f"{headline}. {text}"
        return Look("accent", "i"), f"{headline}. {text}"
    look = food_look(food.get("label"))
    since = food.get("food_in_ts")
    when = (
        f" · food in since {time.strftime('%a %H:%M', time.localtime(since))}"
        if isinstance(since, float | int)
        else ""
    )
    return look, f"{look.word}{when}"


class FoodInCard(Card):
    """The food's state, the "New food in the box" button and the station's answer."""

    def __init__(self, on_new_food: Callable[[], None] | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.badge = ShapeBadge(
            Look("unknown", "?"),
            size_hint=(None, None),
            size=(dp(36), dp(36)),
            pos_hint={"center_y": 0.5},
        )
        self.line = Text(font_size=theme.FONT_BODY, wrap=True)
        top = BoxLayout(orientation="horizontal", spacing=dp(12), size_hint_y=None)
        top.add_widget(self.badge)
        top.add_widget(self.line)
        self.line.bind(height=lambda _w, h: setattr(top, "height", max(h, dp(40))))
        self.add_widget(top)
        self.button = FlatButton(NEW_FOOD_BUTTON, selected=True)
        if on_new_food is not None:
            self.button.bind(on_release=lambda _b: on_new_food())
        self.add_widget(self.button)
        self.answer = Text(font_size=theme.FONT_SMALL, colour=theme.TEXT_MUTED, wrap=True)
        self.add_widget(self.answer)
        self.add_widget(
            Text(
                "Press it each time you put food in. The station takes the food's smell over "
                "the next minutes as its baseline; only a paired phone may do this.",
                font_size=theme.FONT_SMALL,
                colour=theme.TEXT_MUTED,
                wrap=True,
            )
        )

    def update(
        self, food: dict[str, Any] | None, busy: bool, answer: tuple[Look, str] | None
    ) -> None:
        look, text = food_line(food)
        self.badge.set_look(look)
        self.set_tone(look.tone)
        self.line.text = escape(text)
        self.button.disabled = busy
        if answer is None:
            self.answer.text = ""
        else:
            self.answer.text = f"{symbol_markup(answer[0].symbol)} {escape(answer[1])}"
            self.answer.color = tone_colour(answer[0].tone)


class NoseScreen(StateScreen):
    title = "Nose"

    def __init__(self, on_new_food: Callable[[], None] | None = None, **kwargs: Any) -> None:
        self.on_new_food = on_new_food
        self.food_answer: tuple[Look, str] | None = None
        self.food_busy = False
        super().__init__(**kwargs)

    def set_food_answer(self, look: Look | None, message: str = "", *, busy: bool = False) -> None:
        """Show how the last "New food in the box" went (None hides it)."""
        self.food_answer = None if look is None else (look, message)
        self.food_busy = busy
        if self._state is not None:
            self.food_card.update(self._state.food, self.food_busy, self.food_answer)

    def build(self) -> None:
        self._state: AppState | None = None
        self.body.add_widget(section("Food in the box"))
        self.food_card = FoodInCard(self.on_new_food)
        self.body.add_widget(self.food_card)
        self.window_s = DEFAULT_ZOOM_S
        self.zoom_buttons: dict[float, FlatButton] = {}
        buttons = BoxLayout(size_hint_y=None, height=theme.BUTTON_HEIGHT, spacing=dp(8))
        for window in ZOOM_WINDOWS_S:
            button = FlatButton(zoom_label(window), selected=window == self.window_s)
            button.bind(on_release=lambda _b, w=window: self.zoom(w))
            self.zoom_buttons[window] = button
            buttons.add_widget(button)
        self.body.add_widget(buttons)
        self.body.add_widget(section("Sensors"))
        self.sensors = GridLayout(cols=3, size_hint_y=None, height=0, spacing=dp(6))
        self.sensors.bind(minimum_height=self.sensors.setter("height"))
        self.body.add_widget(self.sensors)
        self.body.add_widget(section("Climate"))
        self.temperature = ChartCard("Temperature", theme.SERIES_PALETTE[1])
        self.humidity = ChartCard("Humidity", theme.SERIES_PALETTE[0])
        self.body.add_widget(self.temperature)
        self.body.add_widget(self.humidity)
        self.gases_heading = section("Gases")
        self.body.add_widget(self.gases_heading)
        self.gases = column(theme.GAP)
        self.body.add_widget(self.gases)
        self.gas_cards: dict[str, ChartCard] = {}
        self._gas_layout: tuple[list[str], bool] | None = None
        self._sensors_shown: tuple[tuple[str, str], ...] | None = None
        for card in (self.temperature, self.humidity):
            card.chart.bind(on_touch_down=self._wheel)

    def zoom(self, window_s: float) -> None:
        self.window_s = window_s
        for window, button in self.zoom_buttons.items():
            button.set_selected(window == window_s)
        if self._state is not None:
            self.update(self._state)

    def _wheel(self, chart: LineChart, touch: Any) -> bool:
        """Mouse wheel over a chart: scroll down zooms out, up zooms in (desktop)."""
        if not chart.collide_point(*touch.pos) or not getattr(touch, "is_mouse_scrolling", False):
            return False
        index = ZOOM_WINDOWS_S.index(self.window_s)
        step = -1 if touch.button == "scrollup" else 1 if touch.button == "scrolldown" else 0
        self.zoom(ZOOM_WINDOWS_S[min(max(index + step, 0), len(ZOOM_WINDOWS_S) - 1)])
        return True

    def update(self, state: AppState) -> None:
        self._state = state
        self.food_card.update(state.food, self.food_busy, self.food_answer)
        end = state.now()
        start = end - self.window_s
        self._update_sensors(state)
        history = state.nose_history
        unit = state.settings.temperature_unit
        temps = [(t, state.settings.temperature(v)) for t, v in history.get("temperature_c", [])]
        latest = state.settings.format_temperature(_last(history.get("temperature_c")))
        self.temperature.set(temps, latest, start, end)
        self.temperature.title.text = f"Temperature (°{unit})"
        humidity = _last(history.get("humidity_pct"))
        self.humidity.set(
            history.get("humidity_pct", []),
            "–" if humidity is None else f"{humidity:.0f} %",
            start,
            end,
        )
        self.humidity.title.text = "Humidity (% RH)"
        gases = gas_keys(history)
        if self._gas_layout != (gases, bool(history)):
            self._gas_layout = (gases, bool(history))
            self.gases.clear_widgets()
            self.gas_cards = {}
            for i, gas in enumerate(gases):
                card = ChartCard(
                    GAS_NAMES.get(gas) or escape(gas),
                    theme.SERIES_PALETTE[(i + 2) % len(theme.SERIES_PALETTE)],
                )
                card.chart.bind(on_touch_down=self._wheel)
                self.gas_cards[gas] = card
                self.gases.add_widget(card)
            if not gases:
                self.gases.add_widget(
                    Text(
                        "No gas above its sensor's measuring range: nothing to report."
                        if history
                        else "No readings yet.",
                        colour=theme.TEXT_MUTED,
                        wrap=True,
                    )
                )
        for gas, card in self.gas_cards.items():
            points = history.get(f"{gas}_ppm", [])
            value = _last(points)
            card.set(points, "–" if value is None else f"{value:.3g} ppm", start, end)

    def _update_sensors(self, state: AppState) -> None:
        shown = tuple(sorted(state.sensor_status.items()))
        if shown == self._sensors_shown:
            return  # a label texture per chip: do not rebuild them every second
        self._sensors_shown = shown
        self.sensors.clear_widgets()
        if not state.sensor_status:
            self.sensors.add_widget(
                Text("No sensor report yet", colour=theme.TEXT_MUTED, height=dp(40))
            )
            return
        for name, status in sorted(state.sensor_status.items()):
            self.sensors.add_widget(SensorChip(name, status))


class SensorChip(Card):
    """A sensor's name with its state in a word, a symbol and a tone."""

    def __init__(self, name: str, status: str, **kwargs: Any) -> None:
        look = sensor_look(status)
        kwargs.setdefault("padding", (dp(12), dp(6), dp(6), dp(6)))
        kwargs.setdefault("spacing", 0)
        super().__init__(tone=look.tone, **kwargs)
        self.add_widget(Text(escape(name), font_size=theme.FONT_BODY, bold=True, height=dp(24)))
        self.add_widget(
            Text(
                f"{symbol_markup(look.symbol)} {look.word}",
                font_size=theme.FONT_SMALL,
                colour=tone_colour(look.tone),
                height=dp(22),
            )
        )


def _last(points: list[tuple[float, float]] | None) -> float | None:
    return points[-1][1] if points else None
