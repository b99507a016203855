"""Gallery: the AI crops the station took, newest first, with concept, score and time.

The station announces each crop in the concept score it triggered; the app fetches its small
thumbnail (a few KB) over the control point a few at a time, so live scores keep flowing.
"""

from __future__ import annotations

import io
import time
from typing import Any, Final

from kivy.core.image import Image as CoreImage
from kivy.metrics import dp
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.gridlayout import GridLayout
from kivy.uix.image import Image

from mobile_app.state import AppState
from mobile_app.ui import theme
from mobile_app.ui.base import StateScreen
from mobile_app.ui.widgets import Card, Text, escape

THUMB_DP: Final = 150
COLUMNS: Final = 2


def thumbnail_texture(jpeg: bytes) -> Any:
    """A Kivy texture from thumbnail bytes (None if they do not decode)."""
    try:
        return CoreImage(io.BytesIO(jpeg), ext="jpg").texture
    except Exception:  # a damaged thumbnail shows as missing, not as a crash
        return None


def crop_caption(item: dict[str, Any]) -> tuple[str, str]:
    """(concept and score, local time) for one gallery item."""
    score = item.get("score")
    concept = str(item.get("concept") or "?")
    first = f"{concept} · {score:.0%}" if isinstance(score, float) else concept
    ts = item.get("ts")
    when = time.strftime("%d %b %H:%M:%S", time.localtime(ts)) if ts else ""
    return first, when


class CropTile(Card):
    """One AI crop: its thumbnail (or why there is none) and its caption."""

    def __init__(self, item: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(padding=(dp(8), dp(8)), spacing=dp(4), **kwargs)
        self.crop = item["crop"]
        texture = thumbnail_texture(item["thumb"]) if item.get("thumb") else None
        if texture is not None:
            self.picture: Any = Image(
                texture=texture, size_hint_y=None, height=dp(THUMB_DP), fit_mode="contain"
            )
        else:
            waiting = item.get("gone") or "fetching the picture…"
            self.picture = Text(
                escape(str(waiting)),
                colour=theme.TEXT_MUTED,
                font_size=theme.FONT_SMALL,
                halign="center",
                height=dp(THUMB_DP),
            )
        first, when = crop_caption(item)
        self.title = Text(escape(first), bold=True)
        self.when = Text(escape(when), font_size=theme.FONT_SMALL, colour=theme.TEXT_MUTED)
        for widget in (self.picture, self.title, self.when):
            self.add_widget(widget)


class GalleryScreen(StateScreen):
    title = "AI crops"

    def build(self) -> None:
        self.body.add_widget(
            Text(
                "What the camera saw when a concept fired, newest first. The station keeps "
                "the full pictures (within its disk budget); the phone shows small copies.",
                colour=theme.TEXT_MUTED,
                wrap=True,
            )
        )
        self.grid = GridLayout(cols=COLUMNS, spacing=theme.GAP, size_hint_y=None)
        self.grid.bind(minimum_height=self.grid.setter("height"))
        self.empty = Text(
            "No AI crops yet: when the camera sees the active concept, it takes one.",
            colour=theme.TEXT_MUTED,
            wrap=True,
        )
        self.slot = BoxLayout(orientation="vertical", size_hint_y=None, height=0)
        self.slot.bind(minimum_height=self.slot.setter("height"))
        self.body.add_widget(self.slot)
        self._shown: tuple[Any, ...] | None = None

    @property
    def tiles(self) -> list[CropTile]:
        return [t for t in reversed(self.grid.children) if isinstance(t, CropTile)]

    def update(self, state: AppState) -> None:
        signature = tuple((i["crop"], i["thumb"] is not None, i["gone"]) for i in state.gallery)
        if signature == self._shown:
            return
        self._shown = signature
        self.slot.clear_widgets()
        self.grid.clear_widgets()
        if not state.gallery:
            self.slot.add_widget(self.empty)
            return
        for item in state.gallery:
            self.grid.add_widget(CropTile(item))
        self.slot.add_widget(self.grid)
