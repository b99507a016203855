"""What every screen shares: a scrolling column of cards that redraws from the state."""

from __future__ import annotations

from typing import Any

from kivy.metrics import dp
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.screenmanager import Screen
from kivy.uix.scrollview import ScrollView

from mobile_app.state import AppState
from mobile_app.ui import theme
from mobile_app.ui.widgets import Text


class StateScreen(Screen):
    """A screen whose content is a vertical list in a scroll view.

    Subclasses build their widgets once in ``build`` and change them in ``update``; the app
    calls ``update`` when the state changed and the screen is shown (or about to be).
    """

    title = ""

    def __init__(self, **kwargs: Any) -> None:
        # No background of its own: a Screen is a RelativeLayout, whose canvas.before holds
        # the matrix push that its children need; the root paints the background.
        super().__init__(**kwargs)
        self.scroll = ScrollView(do_scroll_x=False, bar_width=dp(4))
        self.body = BoxLayout(
            orientation="vertical",
            size_hint_y=None,
            padding=(theme.PAD, theme.PAD),
            spacing=theme.GAP,
        )
        self.body.bind(minimum_height=self.body.setter("height"))
        self.scroll.add_widget(self.body)
        self.add_widget(self.scroll)
        if self.title:
            self.body.add_widget(Text(self.title, font_size=theme.FONT_TITLE, bold=True))
        self.build()

    def build(self) -> None:
        raise NotImplementedError

    def update(self, state: AppState) -> None:
        raise NotImplementedError


def row(*widgets: Any, height: float = theme.ROW_HEIGHT, spacing: float = theme.GAP) -> BoxLayout:
    """A horizontal row of fixed height."""
    box = BoxLayout(orientation="horizontal", size_hint_y=None, height=height, spacing=spacing)
    for widget in widgets:
        if widget.size_hint_y is None and not widget.pos_hint:
            widget.pos_hint = {"center_y": 0.5}  # a shorter widget sits mid-row, not at the foot
        box.add_widget(widget)
    return box


def column(spacing: float = dp(6)) -> BoxLayout:
    """A vertical box as tall as its content (for lists rebuilt on every update)."""
    # height=0: a box that stays empty never reports a new minimum_height to bind to.
    box = BoxLayout(orientation="vertical", size_hint_y=None, height=0, spacing=spacing)
    box.bind(minimum_height=box.setter("height"))
    return box


def section(title: str) -> Text:
    """A heading between groups of cards."""
    return Text(
        title.upper(),
        font_size=theme.FONT_SMALL,
        colour=theme.TEXT_MUTED,
        bold=True,
        height=dp(28),
    )
