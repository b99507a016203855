"""New food in the box, end to end over a real BLE host stack (Bumble, two virtual
controllers): the app's ``new_food`` (what the Nose screen's button calls) → the bonded
control point → the station's nose takes the food's baseline → verdicts reach the app.

The station side is the real one: the emulated nose (beef run TS2 through MQ physics and the
ADS1115/SHT31 drivers), the shipped food model, the event store, the LinkCore and its control
handlers as ``senses run`` builds them. Time on the nose is a manual clock, one reading a
minute, stepped by the test where the nose's thread would."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from app_harness import Station

from device.clock import ManualClock, SystemClock
from device.config import load_config
from device.events import FoodReading, FoodState
from device.link.bumble_link import STATION_ADDRESS, BumbleLinkServer, virtual_device, virtual_link
from device.link.core import LinkCore
from device.link.protocol import ResultCode
from device.nose.features import BASELINE_MINUTES
from device.runtime import NoseSetup, build_nose
from device.senses import StationSenses
from device.store import EventStore
from mobile_app.connection import StationConnection
from mobile_app.state import ConnectionState, food_state_text

pytestmark = pytest.mark.asyncio(loop_scope="function")

Until = Callable[..., Coroutine[None, None, None]]
Run = Callable[[StationConnection], asyncio.Task[None]]


@dataclass
class Kitchen:
    station: Station
    nose: NoseSetup
    clock: ManualClock
    data_dir: Path

    @property
    def first_verdict(self) -> int:
        """Minutes from food-in to the first verdict (the model's window, or the baseline)."""
        assert self.nose.service.food is not None
        return self.nose.service.food.minutes_to_first_verdict

    def minutes(self, count: int) -> list[Any]:
        """Run the nose for ``count`` minutes (one reading each) into the store."""
        events: list[Any] = []
        for _ in range(count):
            self.clock.advance(60.0)
            step = self.nose.service.step()
            self.station.store.append_many(step)
            events += step
        return events


@pytest_asyncio.fixture
async def kitchen(tmp_path: Path) -> AsyncIterator[Kitchen]:
    config = load_config(None)
    config = config.model_copy(
        update={
            "station": config.station.model_copy(update={"data_dir": tmp_path}),
            "nose": config.nose.model_copy(update={"warmup_s": 0.0, "sample_period_s": 60.0}),
            "emulation": config.emulation.model_copy(update={"noise_fraction": 0.0}),
        }
    )
    clock = ManualClock()
    nose = build_nose(config, clock, emulated=True)
    assert nose.service.food is not None, nose.events
    store = EventStore(tmp_path / "events.db")
    air = virtual_link()
    core = LinkCore(
        store,
        station_name="kitchen",
        clock=SystemClock(),
        handlers=StationSenses(nose=nose).control_handlers(lambda: []),
    )
    server = BumbleLinkServer(virtual_device(air, "kitchen", STATION_ADDRESS), core)
    await server.start()
    server.attach(store)
    yield Kitchen(Station(store, core, server, air), nose, clock, tmp_path)
    server.detach()
    store.close()


async def test_the_app_button_marks_food_in_and_verdicts_follow(
    kitchen: Kitchen, running: Run, wait_until: Until
) -> None:
    connection, state = kitchen.station.app()
    running(connection)
    await wait_until(lambda: state.connection is ConnectionState.CONNECTED)

    # Before: the station says there is no food instead of guessing.
    kitchen.minutes(3)
    await wait_until(lambda: state.food is not None and state.food["food_state"] == "no_food")
    assert state.food is not None and state.food["label"] is None
    waiting = food_state_text(state.food)
    assert waiting is not None and waiting[0] == "No food marked in"

    # The button.
    code, message = await connection.new_food()
    assert code is ResultCode.OK
    assert f"first {BASELINE_MINUTES} min" in message and "baseline" in message

    # The station takes the food's baseline, then gives verdicts; the app sees each step.
    kitchen.minutes(2)
    await wait_until(lambda: state.food is not None and state.food["food_state"] == "baseline")
    assert state.food is not None and state.food["minutes_to_verdict"] >= 1
    assert state.food["food_in_ts"] == pytest.approx(kitchen.clock.wall() - 120, abs=61)
    events = kitchen.minutes(kitchen.first_verdict + 30)
    verdicts = [e for e in events if isinstance(e, FoodReading) and e.label is not None]
    assert verdicts and all(v.food_state is FoodState.READY for v in verdicts)
    await wait_until(lambda: state.food is not None and state.food["food_state"] == "ready")
    assert state.food is not None
    assert state.food["label"] == "fresh"  # TS2's first hours: excellent beef
    assert food_state_text(state.food) is None
    assert state.food_history, "verdicts are charted on Home"
    # Nothing was lost on the way: every stored food event reached the app.
    stored = [s.seq for s in kitchen.station.store.since(0, limit=100_000) if s.type == "food"]
    await wait_until(lambda: state.newest_seq.get("food") == stored[-1])
    # The food survives a restart of the station: its state file holds the baseline.
    assert (kitchen.data_dir / "food_state.json").exists()


async def test_new_food_pressed_again_restarts_the_baseline(
    kitchen: Kitchen, running: Run, wait_until: Until
) -> None:
    connection, state = kitchen.station.app()
    running(connection)
    await wait_until(lambda: state.connection is ConnectionState.CONNECTED)
    assert (await connection.new_food())[0] is ResultCode.OK
    kitchen.minutes(kitchen.first_verdict + 5)
    await wait_until(lambda: state.food is not None and state.food["food_state"] == "ready")
    code, message = await connection.new_food()
    assert code is ResultCode.OK and "starts over" in message
    kitchen.minutes(2)
    await wait_until(lambda: state.food is not None and state.food["food_state"] == "baseline")


async def test_new_food_from_an_unpaired_phone_is_refused(
    kitchen: Kitchen, running: Run, wait_until: Until
) -> None:
    connection, state = kitchen.station.app(pair=False)
    running(connection)
    await wait_until(lambda: state.connection is ConnectionState.CONNECTED)
    code, message = await connection.new_food()
    assert code is ResultCode.NOT_PERMITTED and "pair" in message.lower()
    kitchen.minutes(3)
    assert kitchen.nose.service.food is not None
    assert kitchen.nose.service.food.state is FoodState.NO_FOOD


async def test_new_food_without_a_link_says_so(kitchen: Kitchen) -> None:
    connection, _ = kitchen.station.app()
    code, message = await connection.new_food()
    assert code is ResultCode.UNAVAILABLE and "Not connected" in message
