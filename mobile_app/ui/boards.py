"""New concept: build a mood board from the phone's pictures and have the station learn it.

Pick pictures (Android: the system's photo picker through plyer; desktop: a Kivy file
chooser), mark each as the concept or its opposite and weigh it up or down, name the concept
and send. A progress bar follows the upload and the training; the answer is the station's
quality report, or the reason it refused, in words.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any, Final, Protocol

from kivy.metrics import dp
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.image import Image
from kivy.uix.progressbar import ProgressBar
from kivy.uix.textinput import TextInput

from device.link import boardfile
from mobile_app.boards import BoardError, BoardItem, BoardOutcome, describe
from mobile_app.state import AppState
from mobile_app.ui import theme
from mobile_app.ui.base import StateScreen, column, section
from mobile_app.ui.present import Look
from mobile_app.ui.widgets import Card, FlatButton, ShapeBadge, Text, escape, symbol_markup

log = logging.getLogger(__name__)

IMAGE_PATTERNS: Final = ("*.jpg", "*.jpeg", "*.png", "*.webp", "*.bmp", "*.gif", "*.heic")
ROLE_WORDS: Final = {"positive": "Concept", "negative": "Opposite"}
WEIGHT_WORDS: Final = {
    "normal": "×1",
    "upweight": f"{symbol_markup('↑')}×4",
    "downweight": f"{symbol_markup('↓')}×¼",
}
_NEXT_WEIGHT: Final = {"normal": "upweight", "upweight": "downweight", "downweight": "normal"}
LIMITS_TEXT: Final = (
    f"Up to {boardfile.MAX_PICTURES} pictures, at least {boardfile.MIN_POSITIVES} of the "
    f"concept (5-20 work well). Each goes at {boardfile.SEND_SIDE_PX} px (at most "
    f"{boardfile.MAX_PICTURE_BYTES // 1000} KB), a board at most "
    f"{boardfile.MAX_BOARD_BYTES // 1_000_000} MB; the station takes it at up to 16 KB/s."
)


class BoardLink(Protocol):
    """What the screen needs from the connection (:class:`StationConnection`)."""

    async def send_board(
        self,
        name: str,
        items: list[BoardItem],
        on_progress: Callable[[int, int, str], None] | None = None,
    ) -> BoardOutcome: ...


def pick_pictures(on_selection: Callable[[list[str]], None]) -> None:
    """Open the platform's picture chooser; ``on_selection(paths)`` gets what was chosen."""
    from mobile_app.android import on_android, request_picture_permissions

    if on_android():
        from kivy.clock import Clock
        from plyer import filechooser

        def deliver(paths: list[str] | None) -> None:
            # plyer answers on Android's UI thread; widgets change on Kivy's.
            Clock.schedule_once(lambda _dt: on_selection(list(paths or [])))

        request_picture_permissions(
            lambda: filechooser.open_file(
                multiple=True, filters=[["Pictures", *IMAGE_PATTERNS]], on_selection=deliver
            )
        )
        return
    _desktop_chooser(on_selection)


def _desktop_chooser(on_selection: Callable[[list[str]], None]) -> None:
    from kivy.uix.filechooser import FileChooserIconView
    from kivy.uix.popup import Popup

    chooser = FileChooserIconView(
        path=os.path.expanduser("~"), multiselect=True, filters=list(IMAGE_PATTERNS)
    )
    box = BoxLayout(orientation="vertical", spacing=dp(8))
    box.add_widget(chooser)
    buttons = BoxLayout(size_hint_y=None, height=theme.BUTTON_HEIGHT, spacing=dp(8))
    popup = Popup(title="Pick pictures", content=box, size_hint=(0.95, 0.9))
    add = FlatButton("Add selected", selected=True)
    cancel = FlatButton("Cancel")

    def chosen(*_: Any) -> None:
        popup.dismiss()
        on_selection(list(chooser.selection))

    add.bind(on_release=chosen)
    cancel.bind(on_release=lambda *_: popup.dismiss())
    buttons.add_widget(cancel)
    buttons.add_widget(add)
    box.add_widget(buttons)
    popup.open()


class PictureRow(BoxLayout):
    """One picture on the board: a preview, its name, its role and weight, remove."""

    def __init__(
        self, item: BoardItem, on_change: Callable[[], None], on_remove: Callable[[BoardItem], None]
    ) -> None:
        super().__init__(orientation="horizontal", size_hint_y=None, height=dp(64), spacing=dp(8))
        self.item = item
        self.preview = Image(
            source=item.path, size_hint_x=None, width=dp(64), fit_mode="cover", nocache=True
        )
        self.name_label = Text(escape(item.name), font_size=theme.FONT_SMALL, size_hint_y=1)
        self.role = FlatButton(
            ROLE_WORDS[item.role], selected=item.role == "positive", size_hint_x=None, width=dp(96)
        )
        self.weight = FlatButton(WEIGHT_WORDS[item.weight], size_hint_x=None, width=dp(64))
        self.remove = FlatButton(symbol_markup("✗"), size_hint_x=None, width=dp(44))

        def flip_role(*_: Any) -> None:
            item.role = "negative" if item.role == "positive" else "positive"
            self.role.text = ROLE_WORDS[item.role]
            self.role.set_selected(item.role == "positive")
            on_change()

        def next_weight(*_: Any) -> None:
            item.weight = _NEXT_WEIGHT[item.weight]
            self.weight.text = WEIGHT_WORDS[item.weight]
            on_change()

        self.role.bind(on_release=flip_role)
        self.weight.bind(on_release=next_weight)
        self.remove.bind(on_release=lambda *_: on_remove(item))
        for widget in (self.preview, self.name_label, self.role, self.weight, self.remove):
            self.add_widget(widget)


class BoardScreen(StateScreen):
    title = "New concept"

    def __init__(
        self,
        link: Callable[[], BoardLink | None],
        *,
        picker: Callable[[Callable[[list[str]], None]], None] = pick_pictures,
        **kwargs: Any,
    ) -> None:
        self.link = link
        self.picker = picker
        self.items: list[BoardItem] = []
        self.outcome: BoardOutcome | None = None
        self.task: asyncio.Task[None] | None = None
        super().__init__(**kwargs)

    def build(self) -> None:
        self.body.add_widget(
            Text(
                "Teach the camera a look: light, texture, colour, shape or mood. Pick pictures "
                "that have it and, if you like, some that are its opposite.",
                colour=theme.TEXT_MUTED,
                wrap=True,
            )
        )
        self.name_input = TextInput(
            hint_text="Name of the concept (e.g. quiet light)",
            multiline=False,
            size_hint_y=None,
            height=theme.BUTTON_HEIGHT,
            font_size=theme.FONT_BODY,
            background_color=theme.SURFACE_RAISED,
            foreground_color=theme.TEXT,
            hint_text_color=theme.TEXT_MUTED,
            cursor_color=theme.ACCENT,
            padding=(dp(12), dp(12)),
        )
        self.body.add_widget(self.name_input)
        self.add_button = FlatButton("+  Add pictures")
        self.add_button.bind(on_release=lambda *_: self.picker(self.add_paths))
        self.body.add_widget(self.add_button)
        self.counts = Text("", font_size=theme.FONT_SMALL, colour=theme.TEXT_MUTED)
        self.body.add_widget(self.counts)
        self.list = column(dp(6))
        self.body.add_widget(self.list)
        self.body.add_widget(
            Text(LIMITS_TEXT, font_size=theme.FONT_SMALL, colour=theme.TEXT_MUTED, wrap=True)
        )
        self.send_button = FlatButton("Send to the station and train", selected=True)
        self.send_button.bind(on_release=lambda *_: self.send())
        self.body.add_widget(self.send_button)
        self.progress = ProgressBar(max=1.0, value=0.0, size_hint_y=None, height=dp(18))
        self.progress_text = Text("", font_size=theme.FONT_SMALL, colour=theme.TEXT_MUTED)
        self.progress_box = column(dp(2))
        self.body.add_widget(self.progress_box)
        self.answer_card = Card(orientation="horizontal", spacing=dp(12))
        self.answer_badge = ShapeBadge(
            Look("accent", "i"),
            size_hint=(None, None),
            size=(dp(36), dp(36)),
            pos_hint={"center_y": 0.5},
        )
        self.answer = Text(font_size=theme.FONT_BODY, wrap=True)
        self.answer_card.add_widget(self.answer_badge)
        self.answer_card.add_widget(self.answer)
        self.answer_slot = column()
        self.body.add_widget(section("Answer"))
        self.body.add_widget(self.answer_slot)
        self._linked = False
        self._redraw_list()

    # --- the board ---------------------------------------------------------------------------

    def add_paths(self, paths: list[str]) -> None:
        known = {i.path for i in self.items}
        for path in paths:
            if path not in known and len(self.items) < boardfile.MAX_PICTURES:
                self.items.append(BoardItem(path))
                known.add(path)
        self._redraw_list()

    def _remove(self, item: BoardItem) -> None:
        self.items.remove(item)
        self._redraw_list()

    def _redraw_list(self) -> None:
        self.list.clear_widgets()
        for item in self.items:
            self.list.add_widget(PictureRow(item, self._count, self._remove))
        self._count()

    def _count(self) -> None:
        concept = sum(1 for i in self.items if i.role == "positive")
        opposite = len(self.items) - concept
        self.counts.text = (
            f"{concept} of the concept, {opposite} opposite" if self.items else "No pictures yet."
        )
        self._buttons()

    def _buttons(self) -> None:
        busy = self.task is not None and not self.task.done()
        self.send_button.disabled = busy or not self._linked or not self.items
        self.add_button.disabled = busy

    # --- sending -----------------------------------------------------------------------------

    def send(self) -> None:
        link = self.link()
        if link is None or not self._linked:
            self.show_answer(Look("warn", "!", shape="triangle"), "Connect to the station first.")
            return
        if self.task is not None and not self.task.done():
            return
        self.outcome = None
        self.answer_slot.clear_widgets()
        self.set_progress(0, 1, "preparing the pictures")
        self.task = asyncio.ensure_future(self._send(link.send_board))
        self._buttons()

    async def _send(
        self,
        send_board: Callable[
            [str, list[BoardItem], Callable[[int, int, str], None]], Awaitable[BoardOutcome]
        ],
    ) -> None:
        name = self.name_input.text
        try:
            outcome = await send_board(name, list(self.items), self.set_progress)
        except asyncio.CancelledError:
            raise
        except BoardError as e:
            self.show_answer(Look("danger", "✗", shape="octagon"), str(e))
        except Exception as e:  # a bug or a dead link: say so, keep the board
            log.exception("sending board %r failed", name)
            self.show_answer(Look("danger", "✗", shape="octagon"), f"Could not send: {e}")
        else:
            self.show_outcome(outcome)
        finally:
            self.progress_box.clear_widgets()
            self._buttons()

    def set_progress(self, sent: int, total: int, what: str) -> None:
        if not self.progress_box.children:
            self.progress_box.add_widget(self.progress)
            self.progress_box.add_widget(self.progress_text)
        self.progress.value = sent / total if total else 0.0
        if what == "sending" and total:
            self.progress_text.text = f"Sending… {sent // 1000} of {total // 1000} KB"
        else:
            self.progress_text.text = what[:1].upper() + what[1:] + "…"

    def show_outcome(self, outcome: BoardOutcome) -> None:
        self.outcome = outcome
        look = Look("good", "✓") if outcome.trained else Look("warn", "!", shape="triangle")
        self.show_answer(look, describe(outcome))

    def show_answer(self, look: Look, text: str) -> None:
        self.answer_slot.clear_widgets()
        self.answer_badge.set_look(look)
        self.answer.text = escape(text)
        self.answer_card.set_tone(look.tone)
        self.answer_slot.add_widget(self.answer_card)

    def update(self, state: AppState) -> None:
        self._linked = state.connection.linked
        self._buttons()
