"""``senses-app``: the companion app on Linux, macOS, Windows and Android.

One asyncio loop runs both the Kivy app (``App.async_run(async_lib="asyncio")``) and the
station connection, so Bluetooth callbacks and widgets share a thread (research/ble_kivy.md
§4.3). ``--demo`` connects to a simulated station in this process instead of a radio.

Settings live in ``--settings FILE`` (default: ``settings.json`` in the app's data folder);
the history (what happened while the phone was away, and where the backfill resumes) in
``state.json`` next to it, saved every minute and on exit. The demo keeps its history in
memory only, so it never mixes with a real station's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from mobile_app.state import AppState, Settings

log = logging.getLogger("mobile_app")

WINDOW_SIZE_DP: Final = (430, 932)
"""A phone-shaped window on the desktop, so what you see is what the phone shows."""
SAVE_EVERY_S: Final = 60.0
APP_NAME: Final = "senses"


def configure_kivy(window_size: tuple[int, int] = WINDOW_SIZE_DP) -> None:
    """Set Kivy up before anything imports it (Kivy reads its environment at import).

    Our own argparse owns the command line (``KIVY_NO_ARGS``); Kivy logs through its own
    handlers without taking over the root logger (``MIXED``); multitouch emulation (red
    dots on right-click) is off on desktops.
    """
    os.environ.setdefault("KIVY_NO_ARGS", "1")
    os.environ.setdefault("KIVY_LOG_MODE", "MIXED")
    from kivy.config import Config
    from kivy.metrics import Metrics

    if "ANDROID_ARGUMENT" not in os.environ:
        density = float(Metrics.density)
        Config.set("graphics", "width", str(round(window_size[0] * density)))
        Config.set("graphics", "height", str(round(window_size[1] * density)))
        Config.set("input", "mouse", "mouse,disable_multitouch")


def data_dir() -> Path:
    """Where the app keeps its files: the same folder Kivy's ``App.user_data_dir`` uses."""
    if "ANDROID_ARGUMENT" in os.environ:
        from android.storage import app_storage_path

        return Path(app_storage_path())
    if sys.platform == "win32":
        base = Path(os.environ.get("APPDATA", Path.home() / "AppData" / "Roaming"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / APP_NAME


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="senses-app",
        description="The Senses companion app: food, concept and birds from your station.",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="connect to a simulated station in this process (no Bluetooth needed)",
    )
    parser.add_argument(
        "--address",
        help="the station's Bluetooth address (default: the strongest station found, "
        "then remembered)",
    )
    parser.add_argument(
        "--settings",
        type=Path,
        help="settings file (JSON; default: settings.json in the app's data folder)",
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="log debug messages")
    return parser.parse_args(argv)


async def _save_periodically(state: AppState, path: Path) -> None:
    while True:
        await asyncio.sleep(SAVE_EVERY_S)
        _save_state(state, path)


def _save_state(state: AppState, path: Path) -> None:
    try:
        state.save(path)
    except OSError as e:
        log.warning("history not saved to %s: %s", path, e)


async def run(args: argparse.Namespace) -> None:
    """Run the app until its window closes."""
    from mobile_app.android import PermissionDeniedError, request_ble_permissions
    from mobile_app.connection import BleakStationLink, StationConnection
    from mobile_app.ui.app import SensesApp

    folder = data_dir()
    settings_path = args.settings or folder / "settings.json"
    settings = Settings.load(settings_path)

    if args.demo:
        from mobile_app.demo import simulated_station

        state = AppState(settings)
        async with simulated_station(state) as sim:
            simulated = " and ".join(sim.simulated_senses)
            app = SensesApp(
                state,
                selector=sim.connection,
                settings_path=settings_path,
                notice=f"Demo station: {simulated} are simulated." if simulated else "Demo",
            )
            await app.async_run(async_lib="asyncio")
        return

    state_path = folder / "state.json"
    state = AppState.load(state_path, settings)
    connection = StationConnection(BleakStationLink(), state, address=args.address)
    app = SensesApp(
        state,
        selector=connection,
        settings_path=settings_path,
        persist=lambda: _save_state(state, state_path),
    )

    async def bluetooth() -> None:
        try:
            await request_ble_permissions()
        except PermissionDeniedError as e:
            app.set_notice(str(e))
            return
        await connection.run()

    link_task = asyncio.create_task(bluetooth(), name="senses-app-bluetooth")
    saver = asyncio.create_task(_save_periodically(state, state_path), name="senses-app-save")
    try:
        await app.async_run(async_lib="asyncio")
    finally:
        connection.stop()
        saver.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await saver
        with contextlib.suppress(asyncio.CancelledError):
            await link_task
        _save_state(state, state_path)  # also after a crash of the UI


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("bumble").setLevel(logging.WARNING)
    configure_kivy()
    try:
        asyncio.run(run(args))
    except KeyboardInterrupt:
        return 130  # Ctrl-C in a terminal: the history was saved on the way out
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
