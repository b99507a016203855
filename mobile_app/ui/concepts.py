"""Concepts: the concepts stored on the station, and which one the camera scores.

Choosing one writes the station's control point, which the station accepts only over a
paired (encrypted, bonded) link; a refusal is shown in words with what to do about it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kivy.metrics import dp

from mobile_app.state import AppState
from mobile_app.ui import theme
from mobile_app.ui.base import StateScreen, column, section
from mobile_app.ui.present import Look
from mobile_app.ui.widgets import (
    Card,
    FlatButton,
    ShapeBadge,
    Text,
    escape,
    symbol_markup,
)


class ConceptsScreen(StateScreen):
    title = "Concepts"

    def __init__(
        self,
        on_choose: Callable[[str], None],
        *,
        on_new: Callable[[], None] | None = None,
        **kwargs: Any,
    ) -> None:
        self.on_choose = on_choose
        self.on_new = on_new
        super().__init__(**kwargs)

    def build(self) -> None:
        self.body.add_widget(
            Text(
                "What the camera looks for. The active concept is scored live on Home.",
                colour=theme.TEXT_MUTED,
                wrap=True,
                height=dp(48),
            )
        )
        # Horizontal, so the card is as tall as the message needs (a refusal is long).
        self.status_card = Card(orientation="horizontal", spacing=dp(12))
        self.status_badge = ShapeBadge(
            Look("accent", "i"),
            size_hint=(None, None),
            size=(dp(36), dp(36)),
            pos_hint={"center_y": 0.5},
        )
        self.status = Text(font_size=theme.FONT_BODY, wrap=True)
        self.status_card.add_widget(self.status_badge)
        self.status_card.add_widget(self.status)
        self.status_slot = column()
        self.body.add_widget(self.status_slot)
        self.body.add_widget(section("On the station"))
        self.list = column(dp(8))
        self.body.add_widget(self.list)
        self.body.add_widget(
            Text(
                "Tap one to make the camera look for it. The station takes changes only from "
                "a phone paired with it (Bluetooth settings).",
                font_size=theme.FONT_SMALL,
                colour=theme.TEXT_MUTED,
                wrap=True,
            )
        )
        if self.on_new is not None:
            on_new = self.on_new
            self.new_button = FlatButton("+  New concept from your pictures")
            self.new_button.bind(on_release=lambda *_: on_new())
            self.body.add_widget(self.new_button)
        self.message: tuple[Look, str] | None = None
        self.busy = False
        self._shown: tuple[Any, ...] | None = None

    def set_status(self, look: Look | None, message: str = "", *, busy: bool = False) -> None:
        """Show the outcome of the last choice (None hides it)."""
        self.message = None if look is None else (look, message)
        self.busy = busy
        self._shown = None  # buttons follow ``busy``

    def update(self, state: AppState) -> None:
        linked = state.connection.linked
        signature = (tuple(state.concepts), state.active_concept, linked, self.busy, self.message)
        if signature == self._shown:
            return
        self._shown = signature
        self.status_slot.clear_widgets()
        message = self.message
        if message is None and not linked:
            message = (
                Look("unknown", "i"),
                "Connect to the station to choose a concept.",
            )
        if message is not None:
            look, text = message
            self.status_badge.set_look(look)
            self.status.text = escape(text)
            self.status_card.set_tone(look.tone)
            self.status_slot.add_widget(self.status_card)
        self.list.clear_widgets()
        if not state.concepts:
            self.list.add_widget(
                Text(
                    "The station has not listed its concepts yet.",
                    colour=theme.TEXT_MUTED,
                    wrap=True,
                    height=dp(48),
                )
            )
            return
        for name in state.concepts:
            active = name == state.active_concept
            mark = symbol_markup("✓") if active else symbol_markup("○")
            suffix = "   [size=14sp](active)[/size]" if active else ""
            button = FlatButton(
                f"{mark}  {escape(name)}{suffix}",
                selected=active,
                height=dp(56),
                font_size=theme.FONT_LARGE,
                halign="left",
                disabled=not linked or self.busy,
            )
            button.bind(size=lambda b, size: setattr(b, "text_size", (size[0] - dp(32), None)))
            button.bind(on_release=lambda _b, n=name: self.on_choose(n))
            self.list.add_widget(button)
