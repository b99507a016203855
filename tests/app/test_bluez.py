"""The app's production path: real bleak (BlueZ D-Bus backend) and :class:`StationConnection`
against the station's production GATT server (dbus-fast), both on BlueZoo, a user-space
``org.bluez`` on a private bus (tests/link/bluezoo_harness.py). Here each characteristic's
notifications reach bleak on its own socket, so this is where ordering across streams is
really not guaranteed."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from app_harness import RecordingState

from device.clock import ManualClock
from device.events import Event, FoodReading, FoodVerdict, Trend
from device.link.bluez import BluezGattServer, start_bluez_server
from device.link.core import LinkCore
from device.link.protocol import ResultCode
from device.store import EventStore
from mobile_app.connection import BleakStationLink, StationConnection
from mobile_app.state import ConnectionState

# The harness lives with the link tests; its fixtures are shared, not copied.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "link"))
from bluezoo_harness import (
    PHONE_ADAPTER,
    STATION_ADAPTER,
    BlueZoo,
    bluezoo,
    dbus_daemon,
)
from test_bluezoo import register_agent

__all__ = ["bluezoo", "dbus_daemon"]  # fixtures, imported for pytest

pytestmark = [pytest.mark.asyncio(loop_scope="function"), pytest.mark.slow]

Until = Callable[..., Coroutine[None, None, None]]


def food(i: int) -> Event:
    return FoodReading(
        ts=1_700_000_000.0 + i,
        label=FoodVerdict.FRESH,
        confidence=0.9,
        probabilities={"excellent": 0.9, "good": 0.1},
        freshness=0.9,
        trend=Trend.STEADY,
        freshness_per_hour=None,
        warming_up=False,
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EventStore]:
    with EventStore(tmp_path / "events.db") as events:
        yield events


@pytest_asyncio.fixture
async def station(bluezoo: BlueZoo, store: EventStore) -> AsyncIterator[BluezGattServer]:
    core = LinkCore(store, station_name="bluez-kitchen", clock=ManualClock())
    server = await start_bluez_server(
        core, store=store, adapter=STATION_ADAPTER, bus_address=bluezoo.bus_address
    )
    try:
        yield server
    finally:
        await server.stop()


async def test_unpaired_app_streams_live_and_is_told_to_pair(
    station: BluezGattServer, store: EventStore, wait_until: Until
) -> None:
    state = RecordingState()
    connection = StationConnection(
        BleakStationLink(adapter=PHONE_ADAPTER, pair=False), state, scan_timeout_s=2.0
    )
    task = asyncio.create_task(connection.run())
    try:
        await wait_until(lambda: state.connection is ConnectionState.CONNECTED, timeout_s=20)
        assert state.station_name == "bluez-kitchen"
        assert state.link_problem is not None and "paired" in state.link_problem
        seqs = store.append_many([food(i) for i in range(3)])
        await wait_until(lambda: state.last_seq == seqs[-1], timeout_s=10)
        assert state.received == seqs
        code, message = await connection.select_concept("a red mug")
        assert code is ResultCode.NOT_PERMITTED and "pair" in message.lower()
    finally:
        connection.stop()
        await task


async def test_paired_app_backfills_everything_with_no_gap_or_duplicate(
    bluezoo: BlueZoo, station: BluezGattServer, store: EventStore, wait_until: Until
) -> None:
    before = store.append_many([food(i) for i in range(30)])
    agent = await register_agent(bluezoo.bus_address)  # the phone OS's pairing agent
    state = RecordingState()
    connection = StationConnection(
        BleakStationLink(adapter=PHONE_ADAPTER), state, scan_timeout_s=2.0
    )
    task = asyncio.create_task(connection.run())
    try:
        await wait_until(lambda: state.connection is ConnectionState.CONNECTED, timeout_s=20)
        assert state.link_problem is None
        assert state.received == before
        after = store.append_many([food(i) for i in range(30, 35)])
        await wait_until(lambda: state.last_seq == after[-1], timeout_s=10)
        assert state.received == before + after
    finally:
        connection.stop()
        await task
        agent.disconnect()
