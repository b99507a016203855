"""Settings: whether this phone is paired (and how to pair it), which alerts to raise, when,
the temperature unit, and the score thresholds.

Every change applies at once and is saved (the app passes ``on_change``); there is no
"save" button to forget.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

from kivy.metrics import dp

from mobile_app.state import AppState, Settings
from mobile_app.ui import theme
from mobile_app.ui.base import StateScreen, row, section
from mobile_app.ui.present import duration
from mobile_app.ui.widgets import Card, FlatButton, Text, symbol_markup

DISCONNECTED_AFTER_S: Final = (60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0)
PERCENT_STEPS: Final = tuple(round(0.05 * i, 2) for i in range(1, 20))

ALERT_SWITCHES: Final = (
    ("alert_on_spoiling", "Food starts spoiling"),
    ("alert_on_spoiled", "Food is spoiled"),
    ("alert_new_species", "A species new today"),
    ("alert_disconnected", "Station out of reach"),
)


def step_to(options: Sequence[float], current: float, direction: int) -> float:
    """The option next to ``current`` (or the nearest one) in ``direction`` (+1/-1)."""
    nearest = min(range(len(options)), key=lambda i: abs(options[i] - current))
    return options[min(max(nearest + direction, 0), len(options) - 1)]


class OnOffButton(FlatButton):
    """An on/off button that says its state in a word and a symbol, not by position only."""

    def __init__(self, on: bool, **kwargs: Any) -> None:
        kwargs.setdefault("size_hint_x", None)
        kwargs.setdefault("width", dp(96))
        super().__init__("", **kwargs)
        self.set_on(on)

    def set_on(self, on: bool) -> None:
        self.on = on
        self.text = f"{symbol_markup('✓')} On" if on else "Off"
        self.set_selected(on)


class Stepper:
    """[−] value [+] with the value in words; the row is :attr:`widget`."""

    def __init__(self, label: str, on_step: Callable[[int], None]) -> None:
        self.value = Text(halign="center", bold=True, size_hint_x=None, width=dp(90))
        minus = FlatButton("−", size_hint_x=None, width=theme.BUTTON_HEIGHT)
        plus = FlatButton("+", size_hint_x=None, width=theme.BUTTON_HEIGHT)
        minus.bind(on_release=lambda *_: on_step(-1))
        plus.bind(on_release=lambda *_: on_step(+1))
        self.widget = row(
            Text(label, wrap=True, height=theme.BUTTON_HEIGHT),
            minus,
            self.value,
            plus,
            height=theme.BUTTON_HEIGHT,
            spacing=dp(6),
        )


class SettingsScreen(StateScreen):
    title = "Settings"

    def __init__(self, on_change: Callable[[Settings], None], **kwargs: Any) -> None:
        self.on_change = on_change
        self.settings: Settings | None = None
        super().__init__(**kwargs)

    def build(self) -> None:
        # First: whether the station takes this phone's changes, and how to pair it.
        self.body.add_widget(section("This phone"))
        pairing = Card(spacing=dp(8))
        self.bonded = Text("", wrap=True, bold=True)
        self.pairing_help = Text("", wrap=True, font_size=theme.FONT_SMALL, colour=theme.TEXT_MUTED)
        pairing.add_widget(self.bonded)
        pairing.add_widget(self.pairing_help)
        self.body.add_widget(pairing)

        self.body.add_widget(section("Alert me when"))
        alerts = Card(spacing=dp(8))
        self.switches: dict[str, OnOffButton] = {}
        for field, label in ALERT_SWITCHES:
            switch = OnOffButton(True)
            switch.bind(on_release=lambda s, f=field: self._toggle(f, s))
            self.switches[field] = switch
            alerts.add_widget(row(Text(label), switch, height=theme.BUTTON_HEIGHT))
        self.after = Stepper("… for longer than", self._step_after)
        alerts.add_widget(self.after.widget)
        self.body.add_widget(alerts)

        self.body.add_widget(section("Units"))
        units = Card()
        self.unit_buttons = {
            "C": FlatButton("°C", size_hint_x=None, width=dp(80)),
            "F": FlatButton("°F", size_hint_x=None, width=dp(80)),
        }
        for unit, button in self.unit_buttons.items():
            button.bind(on_release=lambda _b, u=unit: self._set("temperature_unit", u))
        units.add_widget(
            row(Text("Temperature"), *self.unit_buttons.values(), height=theme.BUTTON_HEIGHT)
        )
        self.body.add_widget(units)

        self.body.add_widget(section("Thresholds"))
        thresholds = Card(spacing=dp(8))
        self.concept = Stepper("Concept counts as in view at", self._step("concept_threshold"))
        self.birds = Stepper("Ignore bird calls below", self._step("species_min_confidence"))
        thresholds.add_widget(self.concept.widget)
        thresholds.add_widget(self.birds.widget)
        thresholds.add_widget(
            Text(
                "The bird threshold applies to calls heard from now on.",
                font_size=theme.FONT_SMALL,
                colour=theme.TEXT_MUTED,
            )
        )
        self.body.add_widget(thresholds)

    def _toggle(self, field: str, switch: OnOffButton) -> None:
        self._set(field, not switch.on)

    def _step_after(self, direction: int) -> None:
        if self.settings is not None:
            value = step_to(
                DISCONNECTED_AFTER_S, self.settings.disconnected_alert_after_s, direction
            )
            self._set("disconnected_alert_after_s", value)

    def _step(self, field: str) -> Callable[[int], None]:
        def step(direction: int) -> None:
            if self.settings is not None:
                self._set(field, step_to(PERCENT_STEPS, getattr(self.settings, field), direction))

        return step

    def _set(self, field: str, value: Any) -> None:
        if self.settings is None:
            return
        setattr(self.settings, field, value)
        self._show(self.settings)
        self.on_change(self.settings)

    def update(self, state: AppState) -> None:
        self.settings = state.settings
        self._show(state.settings)
        self._show_pairing(state.bonded)

    def _show_pairing(self, bonded: bool | None) -> None:
        if bonded is None:
            self.bonded.text = "Paired with the station: not known yet"
            self.pairing_help.text = (
                "The app finds out when it first asks the station something (connect to it)."
            )
        elif bonded:
            self.bonded.text = f"{symbol_markup('✓')} Paired with the station"
            self.pairing_help.text = (
                "The station accepts this phone's changes (concept, thresholds). "
                "'senses link forget' on the station revokes it."
            )
        else:
            self.bonded.text = "Not paired: the station shows you everything but takes no changes"
            self.pairing_help.text = (
                "1. On the station run 'senses link pair' (or press Pair a phone in Home "
                "Assistant).\n2. Connect from this app: the phone asks for a passkey.\n"
                "3. Type the 6-digit passkey the station shows into the phone's own pairing "
                "dialog."
            )

    def _show(self, settings: Settings) -> None:
        for field, switch in self.switches.items():
            switch.set_on(bool(getattr(settings, field)))
        self.after.value.text = duration(settings.disconnected_alert_after_s)
        for unit, button in self.unit_buttons.items():
            button.set_selected(settings.temperature_unit == unit)
        self.concept.value.text = f"{round(settings.concept_threshold * 100)}%"
        self.birds.value.text = f"{round(settings.species_min_confidence * 100)}%"
