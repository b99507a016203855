"""Helpers for the app's tests (imported by conftest.py and the test modules): a station on
a Bumble virtual link, and an app state that records every event the connection hands it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from bumble.link import LocalLink

from device.link.bumble_link import PHONE_ADDRESS, BumbleLinkServer, virtual_device
from device.link.core import LinkCore
from device.link.protocol import EVENT_TYPES, Message
from device.store import EventStore
from mobile_app.connection import BumbleStationLink, StationConnection
from mobile_app.state import Alert, AppState, ConnectionState


class RecordingState(AppState):
    """An AppState that remembers every event handed to it and every connection state."""

    def __init__(self) -> None:
        super().__init__()
        self.received: list[int] = []
        self.states: list[tuple[float, ConnectionState, float | None]] = []
        self.add_listener(self._on_change)

    def apply(self, message: Message) -> list[Alert]:
        if message.type in EVENT_TYPES:
            self.received.append(message.seq)
        return super().apply(message)

    def _on_change(self) -> None:
        if not self.states or self.states[-1][1] != self.connection:
            self.states.append((self.now(), self.connection, self.reconnect_at))
        elif self.reconnect_at != self.states[-1][2]:
            self.states[-1] = (self.states[-1][0], self.connection, self.reconnect_at)


@dataclass
class Station:
    store: EventStore
    core: LinkCore
    server: BumbleLinkServer
    air: LocalLink
    selected: list[str] = field(default_factory=list)

    def app(
        self, *, pair: bool = True, mtu: int = 247, **kwargs: float
    ) -> tuple[StationConnection, RecordingState]:
        state = RecordingState()
        link = BumbleStationLink(
            virtual_device(self.air, "phone", PHONE_ADDRESS), mtu=mtu, pair=pair
        )
        options: dict[str, float] = {"scan_timeout_s": 0.5, "backoff_first_s": 0.1} | kwargs
        return StationConnection(link, state, **options), state  # type: ignore[arg-type]

    async def drop_links(self) -> None:
        for connection in self.server.connections:
            await connection.disconnect()
        await until(lambda: not self.server.connections)

    def seqs(self) -> list[int]:
        return [s.seq for s in self.store.since(0, limit=100_000)]


async def until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.005)
