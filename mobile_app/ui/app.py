"""The app window: status bar, alert banner, the five screens and the navigation bar.

:class:`SensesRoot` is the whole UI as one widget over an :class:`AppState`, so tests render
it offscreen without starting an App; :class:`SensesApp` is the Kivy App around it, run with
``App.async_run`` on the same asyncio loop as the Bluetooth connection (research/ble_kivy.md
§4.3), so state changes from the link reach the widgets without a thread hop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, Protocol, runtime_checkable

from kivy.app import App
from kivy.clock import Clock
from kivy.core.window import Window
from kivy.metrics import dp
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.button import Button
from kivy.uix.screenmanager import NoTransition, ScreenManager

from device.link.protocol import ResultCode
from mobile_app.android import Notifier
from mobile_app.state import AppState, ConnectionState, Settings
from mobile_app.ui import theme
from mobile_app.ui.base import StateScreen
from mobile_app.ui.birds import BirdsScreen
from mobile_app.ui.boards import BoardLink, BoardScreen
from mobile_app.ui.concepts import ConceptsScreen
from mobile_app.ui.gallery import GalleryScreen
from mobile_app.ui.home import HomeScreen
from mobile_app.ui.nose import NoseScreen
from mobile_app.ui.present import Look, ago, connection_look, severity_look
from mobile_app.ui.settings_screen import SettingsScreen
from mobile_app.ui.widgets import Banner, Pill, Text, escape, fill, symbol_markup, tone_colour

log = logging.getLogger(__name__)

NAVIGATION: Final = (
    ("home", "Home", "⌂"),
    ("nose", "Nose", "≈"),
    ("birds", "Birds", "♫"),
    ("concepts", "Concepts", "◎"),
    ("gallery", "Crops", "▦"),
    ("settings", "Settings", "⚙"),
)
REFRESH_DELAY_S: Final = 0.4
"""Redraw at most this often: a backfill applies hundreds of events in a burst, and the
demo station sends dozens of readings a second."""
TICK_S: Final = 1.0
REDRAW_EVERY_TICKS: Final = 10
"""Redraw "5 min ago" texts and chart windows even when nothing arrives."""


class ConceptSelector(Protocol):
    """What the Concepts screen needs from the connection (a ``StationConnection``)."""

    async def select_concept(self, name: str) -> tuple[ResultCode, str]:
        """The station's answer and what to tell the user; never raises for a refusal."""
        ...


@runtime_checkable
class FoodMarker(Protocol):
    """What the Nose screen's "New food in the box" needs (a ``StationConnection``)."""

    async def new_food(self) -> tuple[ResultCode, str]:
        """The station's answer and what to tell the user; never raises for a refusal."""
        ...


class NavButton(Button):
    def __init__(self, screen: str, label: str, symbol: str, **kwargs: Any) -> None:
        super().__init__(
            text=f"[font={theme.SYMBOL_FONT}][size=24sp]{symbol}[/size][/font]\n{label}",
            markup=True,
            halign="center",
            font_size=theme.FONT_SMALL,
            background_normal="",
            background_down="",
            background_color=(0, 0, 0, 0),
            **kwargs,
        )
        self.screen = screen
        self.selected = False
        self.bind(pos=self._paint, size=self._paint)

    def set_selected(self, selected: bool) -> None:
        self.selected = selected
        self._paint()

    def _paint(self, *_: Any) -> None:
        from kivy.graphics import Color, Rectangle

        self.color = theme.ACCENT if self.selected else theme.TEXT_MUTED
        self.canvas.before.clear()
        if self.selected:  # a bar as well as the colour marks where we are
            with self.canvas.before:
                Color(*theme.ACCENT)
                Rectangle(
                    pos=(self.x + dp(14), self.top - dp(3)), size=(self.width - dp(28), dp(3))
                )


class StatusBar(BoxLayout):
    """The app's name, the station's name, and the link state in a word and a symbol."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            orientation="horizontal",
            size_hint_y=None,
            height=dp(64),
            padding=(theme.PAD, dp(8)),
            spacing=theme.GAP,
            **kwargs,
        )
        fill(self, theme.SURFACE)
        names = BoxLayout(orientation="vertical")
        self.title = Text("Senses", font_size=theme.FONT_TITLE, bold=True, height=dp(28))
        self.station = Text(font_size=theme.FONT_SMALL, colour=theme.TEXT_MUTED, height=dp(20))
        names.add_widget(self.title)
        names.add_widget(self.station)
        self.link = Pill(connection_look("idle"), size_hint_x=None, width=dp(250))
        self.link.pos_hint = {"center_y": 0.5}
        self.add_widget(names)
        self.add_widget(self.link)

    def update(self, state: AppState) -> None:
        now = state.now()
        self.station.text = escape(state.station_name or "no station yet")
        look = connection_look(state.connection)
        look = Look(look.tone, look.symbol, state.connection.label.rstrip("…."), look.shape)
        detail = ""
        if state.connection is ConnectionState.DISCONNECTED:
            if state.reconnect_at is not None and state.reconnect_at > now:
                detail = f"retry in {round(state.reconnect_at - now)} s"
            elif state.disconnected_since is not None:
                detail = ago(now - state.disconnected_since).replace(" ago", "")
        self.link.set_look(look, detail)


class NoticeStrip(Text):
    """One line under the status bar for a lasting condition (not paired, demo station)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(font_size=theme.FONT_SMALL, height=0, wrap=True, **kwargs)
        self.padding = (theme.PAD, 0)
        self.opacity = 0
        self.tone = "accent"
        self.bind(pos=self._paint, size=self._paint)

    def set(self, text: str | None, tone: str = "accent") -> None:
        self.tone = tone
        if not text:
            self.height, self.opacity, self.text = 0, 0, ""
            return
        symbol = "!" if tone == "warn" else "i"
        self.text = f"{symbol_markup(symbol)}  {escape(text)}"
        self.color = tone_colour(tone)
        self.height, self.opacity = dp(40), 1
        self._paint()

    def _paint(self, *_: Any) -> None:
        from kivy.graphics import Color, Rectangle

        self.canvas.before.clear()
        with self.canvas.before:
            Color(*theme.with_alpha(tone_colour(self.tone), 0.14))
            Rectangle(pos=self.pos, size=self.size)


class SensesRoot(BoxLayout):
    """The whole UI over one :class:`AppState`."""

    def __init__(
        self,
        state: AppState,
        *,
        selector: ConceptSelector | None = None,
        on_settings_changed: Callable[[Settings], None] | None = None,
        notice: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(orientation="vertical", **kwargs)
        fill(self, theme.BACKGROUND)
        self.state = state
        self.notice = notice
        """A lasting remark from the app itself (demo mode, permission refused)."""
        self.selector = selector
        self.on_settings_changed = on_settings_changed
        self.status_bar = StatusBar()
        self.notice_strip = NoticeStrip()
        self.banner = Banner(on_dismiss=state.dismiss_banner)
        self.screens = ScreenManager(transition=NoTransition())
        self.home = HomeScreen(name="home")
        self.food_marker = selector if isinstance(selector, FoodMarker) else None
        self._food_task: asyncio.Task[None] | None = None
        self.nose = NoseScreen(self.new_food, name="nose")
        self.birds = BirdsScreen(name="birds")
        self.concepts = ConceptsScreen(
            self.choose_concept, on_new=lambda: self.show("board"), name="concepts"
        )
        self.settings = SettingsScreen(self._settings_changed, name="settings")
        self.gallery = GalleryScreen(name="gallery")
        self.board = BoardScreen(self._board_link, name="board")
        for screen in (
            *(self.home, self.nose, self.birds, self.concepts, self.settings),
            *(self.gallery, self.board),
        ):
            self.screens.add_widget(screen)
        self.nav: dict[str, NavButton] = {}
        nav_bar = BoxLayout(size_hint_y=None, height=dp(66))
        fill(nav_bar, theme.SURFACE)
        for name, label, symbol in NAVIGATION:
            button = NavButton(name, label, symbol)
            button.bind(on_release=lambda b: self.show(b.screen))
            self.nav[name] = button
            nav_bar.add_widget(button)
        for widget in (self.status_bar, self.notice_strip, self.banner, self.screens, nav_bar):
            self.add_widget(widget)
        self._concept_task: asyncio.Task[None] | None = None
        self._thumbnail_task: asyncio.Task[Any] | None = None
        self._ticks = 0
        self._refresh_trigger = Clock.create_trigger(lambda _dt: self.refresh(), REFRESH_DELAY_S)
        state.add_listener(self._refresh_trigger)
        self._ticker = Clock.schedule_interval(self._tick, TICK_S)
        self.show("home")

    @property
    def current(self) -> StateScreen:
        screen: StateScreen = self.screens.current_screen
        return screen

    def show(self, name: str) -> None:
        self.screens.current = name
        for screen, button in self.nav.items():
            button.set_selected(screen == name)
        self.refresh()

    def refresh(self) -> None:
        """Redraw the bars and the visible screen from the state (cheap: unchanged parts of
        screens are skipped)."""
        state = self.state
        self.status_bar.update(state)
        if state.link_problem:
            self.notice_strip.set(state.link_problem, "warn")
        else:
            self.notice_strip.set(self.notice)
        alert = state.banner
        if alert is None:
            self.banner.hide()
        else:
            self.banner.show(
                severity_look(alert.severity), alert.title, alert.message, alert.severity
            )
        self.current.update(state)

    def set_notice(self, text: str | None) -> None:
        self.notice = text
        self.refresh()

    def close(self) -> None:
        """Stop listening and ticking (the state outlives the UI in tests)."""
        self.state.remove_listener(self._refresh_trigger)
        self._ticker.cancel()
        for task in (self._concept_task, self._food_task, self._thumbnail_task, self.board.task):
            if task is not None:
                task.cancel()

    def _board_link(self) -> BoardLink | None:
        """The connection, when it can send boards (the demo's and the real one can)."""
        link = self.selector
        return link if hasattr(link, "send_board") else None  # type: ignore[return-value]

    def _fetch_thumbnails(self) -> None:
        """Fetch one new AI crop's thumbnail per tick at most: scores keep the link first."""
        fetch = getattr(self.selector, "fetch_missing_thumbnails", None)
        busy = self._thumbnail_task is not None and not self._thumbnail_task.done()
        if fetch is None or busy or not self.state.connection.linked:
            return
        if self.state.missing_thumbnails():
            self._thumbnail_task = asyncio.ensure_future(self._fetch_quietly(fetch))

    async def _fetch_quietly(self, fetch: Callable[..., Any]) -> None:
        try:
            await fetch(limit=1)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the link dropped: the next tick after reconnecting retries
            log.info("thumbnail not fetched: %s", e)

    def _tick(self, _dt: float) -> None:
        self.state.tick()
        self._fetch_thumbnails()
        self._ticks += 1
        if self._ticks % REDRAW_EVERY_TICKS == 0 or (
            self.state.connection is ConnectionState.DISCONNECTED
        ):
            self.refresh()

    def _settings_changed(self, settings: Settings) -> None:
        if self.on_settings_changed is not None:
            self.on_settings_changed(settings)
        self._refresh_trigger()

    # --- choosing the active concept -----------------------------------------------------------

    def choose_concept(self, name: str) -> None:
        """Ask the station to score ``name``; the Concepts screen shows how it went."""
        if self.selector is None or not self.state.connection.linked:
            self.concepts.set_status(
                Look("warn", "!", shape="triangle"), "Not connected: connect to the station first."
            )
            self.refresh()
            return
        if self._concept_task is not None and not self._concept_task.done():
            return
        self.concepts.set_status(
            Look("accent", "↻"), f"Asking the station to look for “{name}”…", busy=True
        )
        self.refresh()
        self._concept_task = asyncio.ensure_future(self._select(self.selector, name))

    async def _select(self, selector: ConceptSelector, name: str) -> None:
        try:
            code, message = await selector.select_concept(name)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            # select_concept answers refusals itself; anything else is a bug or a dead link.
            log.exception("choosing concept %r failed", name)
            code, message = ResultCode.INTERNAL_ERROR, f"Could not change the concept: {e}"
        self.concepts.set_status(result_look(code), message)
        self.refresh()

    # --- new food in the box ---------------------------------------------------------------

    def new_food(self) -> None:
        """Tell the station new food is in the box; the Nose screen shows how it went."""
        if self.food_marker is None or not self.state.connection.linked:
            self.nose.set_food_answer(
                Look("warn", "!", shape="triangle"), "Not connected: connect to the station first."
            )
            return
        if self._food_task is not None and not self._food_task.done():
            return
        self.nose.set_food_answer(Look("accent", "↻"), "Telling the station…", busy=True)
        self._food_task = asyncio.ensure_future(self._mark_food(self.food_marker))

    async def _mark_food(self, marker: FoodMarker) -> None:
        try:
            code, message = await marker.new_food()
        except asyncio.CancelledError:
            raise
        except Exception as e:
            # new_food answers refusals itself; anything else is a bug or a dead link.
            log.exception("marking new food failed")
            code, message = ResultCode.INTERNAL_ERROR, f"Could not mark new food in: {e}"
        self.nose.set_food_answer(result_look(code), message)
        self.refresh()


def result_look(code: ResultCode) -> Look:
    """OK in green; what the user can fix (pair, wait) in amber; the rest in red."""
    if code is ResultCode.OK:
        return Look("good", "✓")
    if code in (ResultCode.NOT_PERMITTED, ResultCode.RATE_LIMITED):
        return Look("warn", "!", shape="triangle")
    return Look("danger", "✗", shape="octagon")


class SensesApp(App):
    """The Kivy App: one window with :class:`SensesRoot`, alerts as notifications."""

    title = "Senses"

    def __init__(
        self,
        state: AppState,
        *,
        selector: ConceptSelector | None = None,
        settings_path: Path | None = None,
        notifier: Notifier | None = None,
        notice: str | None = None,
        persist: Callable[[], None] | None = None,
        **kwargs: Any,
    ) -> None:
        """``persist`` saves the history; called when the app pauses or stops, because
        Android may end a paused app without telling it."""
        super().__init__(**kwargs)
        self.state = state
        self.notice = notice
        self.persist = persist
        self.selector = selector
        self.settings_path = settings_path
        self.notifier = notifier if notifier is not None else Notifier()
        self.ui: SensesRoot | None = None

    def build(self) -> SensesRoot:
        Window.clearcolor = theme.BACKGROUND
        self.state.add_alert_listener(self.notifier)
        self.ui = SensesRoot(
            self.state,
            selector=self.selector,
            on_settings_changed=self._save_settings,
            notice=self.notice,
        )
        return self.ui

    def set_notice(self, text: str | None) -> None:
        """Show ``text`` under the status bar (kept until replaced)."""
        self.notice = text
        if self.ui is not None:
            self.ui.set_notice(text)

    def _save_settings(self, settings: Settings) -> None:
        if self.settings_path is None:
            return
        try:
            settings.save(self.settings_path)
        except OSError as e:
            log.warning("settings not saved to %s: %s", self.settings_path, e)

    def on_pause(self) -> bool:
        if self.persist is not None:
            self.persist()
        return True  # keep running in the background: the link stays up

    def on_resume(self) -> None:
        if self.ui is not None:
            self.ui.refresh()

    def on_stop(self) -> None:
        self.state.remove_alert_listener(self.notifier)
        if self.persist is not None:
            self.persist()
        if self.ui is not None:
            self.ui.close()
