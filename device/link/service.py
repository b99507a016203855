"""The link as a running part of the station.

:class:`VirtualPhoneLink` is what ``senses demo`` shows: the station's GATT server (the same
:class:`~device.link.core.LinkCore` the Pi serves over BlueZ) and a simulated phone paired to
it over Bumble's in-process virtual link, in their own thread and asyncio loop. Everything the
phone decodes is handed to a callback, so the demo can print what a phone would receive.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from device.clock import Clock
from device.events import Event, Health, HealthStatus
from device.link.bumble_link import open_virtual_link
from device.link.core import LinkCore
from device.link.protocol import Message
from device.store import EventStore

COMPONENT = "link"
POLL_S = 0.1


class VirtualPhoneLink:
    """Runs a :class:`LinkCore` on a Bumble virtual link with one in-process phone."""

    def __init__(
        self,
        core: LinkCore,
        store: EventStore,
        clock: Clock,
        *,
        on_message: Callable[[Message], None],
        mtu: int = 247,
    ) -> None:
        self.core = core
        self.store = store
        self.clock = clock
        self.on_message = on_message
        self.mtu = mtu
        self.negotiated_mtu: int | None = None
        self.received = 0

    def _received(self, message: Message) -> None:
        self.received += 1
        self.on_message(message)

    def run(self, emit: Callable[[Event], None], stop: threading.Event) -> None:
        """The sense entry point for :meth:`device.runtime.Station.add_sense`."""
        asyncio.run(self._serve(emit, stop))

    async def _serve(self, emit: Callable[[Event], None], stop: threading.Event) -> None:
        server, phone = await open_virtual_link(
            self.core, self.store, mtu=self.mtu, on_event=self._received
        )
        self.negotiated_mtu = phone.mtu
        emit(
            Health(
                ts=self.clock.wall(),
                component=COMPONENT,
                status=HealthStatus.OK,
                message=f"phone paired over the virtual BLE link (ATT MTU {phone.mtu})",
            )
        )
        try:
            while not stop.is_set():
                await asyncio.sleep(POLL_S)
        finally:
            server.detach()
            await phone.disconnect()
