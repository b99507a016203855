"""``senses-app --demo`` for real: the Kivy App on asyncio, connected to the simulated station."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from kivy.app import App

from mobile_app.main import parse_args, run
from mobile_app.state import ConnectionState
from mobile_app.ui.app import SensesApp


@pytest.mark.asyncio
async def test_demo_app_connects_and_shows_the_station(tmp_path: Path) -> None:
    settings = tmp_path / "settings.json"
    task = asyncio.create_task(run(parse_args(["--demo", "--settings", str(settings)])))
    try:
        async with asyncio.timeout(20):
            while not (
                isinstance(app := App.get_running_app(), SensesApp)
                and app.ui is not None
                and app.state.connection is ConnectionState.CONNECTED
                and app.state.concept is not None
            ):
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # a few frames
        assert app.ui is not None
        app.ui.refresh()
        assert "Connected" in app.ui.status_bar.link.text
        assert app.ui.status_bar.station.text == "Senses demo"
        assert "simulated" in app.ui.notice_strip.text
        assert app.ui.home.concept.gauge.value is not None

        app.ui.show("settings")
        app.ui.settings.unit_buttons["F"].dispatch("on_release")
        assert '"temperature_unit": "F"' in settings.read_text()
    finally:
        if isinstance(app := App.get_running_app(), SensesApp):
            app.stop()
        await asyncio.wait_for(task, 20)


def test_command_line() -> None:
    args = parse_args(["--address", "AA:BB:CC:DD:EE:FF", "--settings", "s.json"])
    assert args.address == "AA:BB:CC:DD:EE:FF"
    assert args.settings == Path("s.json")
    assert not args.demo
