"""Offscreen Kivy for the app's UI tests, and a day of realistic station data.

Kivy reads its environment once, at import: these lines run before any test module imports
Kivy. ``SDL_VIDEODRIVER=offscreen`` renders with Mesa's software GL and no display
(research/ble_kivy.md §4.1); ``KIVY_LOG_MODE=PYTHON`` stops Kivy from taking over the root
logger and ``sys.stderr`` for the rest of the test session; a throwaway ``KIVY_HOME`` keeps
the user's Kivy config out of it.

The data and the render helper live in ``ui_support.py`` (test modules import it; a module
named ``conftest`` is not unique in this repository).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

_KIVY_HOME = tempfile.mkdtemp(prefix="senses-kivy-home-")
atexit.register(shutil.rmtree, _KIVY_HOME, ignore_errors=True)
os.environ["SDL_VIDEODRIVER"] = "offscreen"
os.environ["KIVY_NO_ARGS"] = "1"
os.environ["KIVY_HOME"] = _KIVY_HOME
os.environ["KIVY_LOG_MODE"] = "PYTHON"
os.environ["KIVY_NO_CONSOLELOG"] = "1"
os.environ["KIVY_NO_FILELOG"] = "1"
os.environ.setdefault("KIVY_METRICS_DENSITY", "1")

import pytest  # noqa: E402

from mobile_app.main import configure_kivy  # noqa: E402

WINDOW_SIZE = (432, 936)
"""A common phone's screen in dp (portrait); a width that is a multiple of 4, because
Window.screenshot reads RGB rows with GL's default 4-byte row alignment."""
configure_kivy(WINDOW_SIZE)

from ui_support import SCREENSHOTS, Clock, Station, fill_day, render  # noqa: E402

from mobile_app.state import AppState, ConnectionState, Settings  # noqa: E402


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def station() -> Station:
    return Station()


@pytest.fixture
def empty_state(clock: Clock) -> AppState:
    return AppState(Settings(), now=clock)


@pytest.fixture(scope="session")
def day_snapshot() -> dict[str, Any]:
    """The day's state, built once (it is ~900 messages) and copied for each test."""
    clock = Clock()
    state = AppState(Settings(), now=clock)
    fill_day(state, Station(), clock)
    return state.to_dict()


@pytest.fixture
def day_state(clock: Clock, day_snapshot: dict[str, Any]) -> AppState:
    """Connected to a station with a day of history; the food in the box is spoiling."""
    state = AppState.from_dict(day_snapshot, Settings(), now=clock)
    state.set_connection(ConnectionState.CONNECTED)
    return state


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.fixture
def ui() -> Iterator[Callable[..., Any]]:
    """Makes the app's root widget over a state and puts it in the (offscreen) window."""
    from kivy.core.window import Window

    from mobile_app.ui.app import SensesRoot

    made: list[SensesRoot] = []

    def make(state: AppState, **kwargs: Any) -> SensesRoot:
        root = SensesRoot(state, **kwargs)
        Window.add_widget(root)
        made.append(root)
        return root

    yield make
    for root in made:
        root.close()
        Window.remove_widget(root)


@pytest.fixture
def snap(screenshots: Path, tmp_path: Path) -> Callable[[Any, str], Path]:
    """Redraw ``root`` and save the window as ``docs/screenshots/<name>.png``."""
    from kivy.core.window import Window

    def save(root: Any, name: str) -> Path:
        root.refresh()
        render()
        # Window.screenshot adds a counter to the name: write aside, then move into place.
        written = Window.screenshot(name=str(tmp_path / f"{name}.png"))
        target = screenshots / f"{name}.png"
        os.replace(written, target)
        return target

    return save
