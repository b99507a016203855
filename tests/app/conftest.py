"""Fixtures for the app's tests: a station on a Bumble virtual link (see app_harness.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path

import pytest
import pytest_asyncio
from app_harness import Station, until

from device.clock import SystemClock
from device.link.bumble_link import (
    STATION_ADDRESS,
    BumbleLinkServer,
    virtual_device,
    virtual_link,
)
from device.link.core import ControlHandlers, LinkCore
from device.link.protocol import ResultCode
from device.store import EventStore
from mobile_app.connection import StationConnection


@pytest_asyncio.fixture
async def station(tmp_path: Path) -> AsyncIterator[Station]:
    store = EventStore(tmp_path / "events.db")
    air = virtual_link()
    selected: list[str] = []

    def select(concept: str) -> ResultCode:
        selected.append(concept)
        return ResultCode.OK

    core = LinkCore(
        store, station_name="kitchen", clock=SystemClock(), handlers=ControlHandlers(select)
    )
    server = BumbleLinkServer(virtual_device(air, "kitchen", STATION_ADDRESS), core)
    await server.start()
    server.attach(store)
    yield Station(store, core, server, air, selected)
    server.detach()
    store.close()


@pytest_asyncio.fixture
async def running() -> AsyncIterator[Callable[[StationConnection], asyncio.Task[None]]]:
    """Start ``connection.run()`` as a task; stopped and awaited after the test."""
    started: list[tuple[StationConnection, asyncio.Task[None]]] = []

    def start(connection: StationConnection) -> asyncio.Task[None]:
        task = asyncio.create_task(connection.run())
        started.append((connection, task))
        return task

    yield start
    for connection, task in started:
        connection.stop()
        await asyncio.wait_for(task, 5)


@pytest.fixture
def wait_until() -> Callable[..., Coroutine[None, None, None]]:
    """``await wait_until(condition, timeout_s=5)``: poll until ``condition()`` is true."""
    return until
