"""Passkey pairing over a real BLE host stack (Bumble's SMP, two virtual controllers).

The station is ``DisplayOnly`` and shows a 6-digit passkey; a virtual phone types what it
reads (or something else). Covered: the right code bonds with MITM protection and the control
point accepts writes (also after a reconnect, from the stored keys); a wrong code leaves no
bond and the streams keep flowing; a "just works" bond is refused by the control point unless
``allow_just_works``; and the pairing window's rules with real SMP: closed window, a second
the window closing mid-pairing. (A second phone during a window needs two connections at
once, which Bumble's virtual peripheral does not take while connected: test_pairing_window.py
and the BlueZoo agent tests cover it.)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_asyncio
from bumble.link import LocalLink

from device.clock import SystemClock
from device.events import Health, HealthStatus
from device.link.bumble_link import (
    STATION_ADDRESS,
    BumbleClient,
    BumbleLinkServer,
    ControlError,
    just_works_pairing,
    virtual_device,
    virtual_link,
)
from device.link.core import LinkCore
from device.link.pairing import EventKind, PairingEvent, PairingWindow
from device.link.protocol import ResultCode
from device.store import EventStore

pytestmark = pytest.mark.asyncio(loop_scope="function")

PHONE = "F1:F1:F1:F1:F1:F1"


@dataclass
class Station:
    store: EventStore
    core: LinkCore
    server: BumbleLinkServer
    link: LocalLink
    window: PairingWindow | None
    events: list[PairingEvent] = field(default_factory=list)

    def phone(
        self,
        address: str = PHONE,
        typed: Callable[[int], int | None] | None = None,
        *,
        just_works: bool = False,
    ) -> BumbleClient:
        device = (
            virtual_device(self.link, "phone", address)
            if typed is None
            else virtual_device(self.link, "phone", address, typed=typed)
        )
        if just_works:
            device.pairing_config_factory = just_works_pairing
        return BumbleClient(device)

    def kinds(self) -> list[EventKind]:
        return [e.kind for e in self.events]

    async def bonds(self) -> dict[str, object]:
        keystore = self.server.device.keystore
        return {} if keystore is None else dict(await keystore.get_all())


async def make_station(tmp_path: Path, *, window: bool, allow_just_works: bool = False) -> Station:
    store = EventStore(tmp_path / "events.db")
    link = virtual_link()
    core = LinkCore(
        store, station_name="kitchen", clock=SystemClock(), allow_just_works=allow_just_works
    )
    pairing_window = PairingWindow(allow_just_works=allow_just_works) if window else None
    server = BumbleLinkServer(
        virtual_device(link, "kitchen", STATION_ADDRESS), core, window=pairing_window
    )
    station = Station(store, core, server, link, pairing_window)
    if pairing_window is not None:
        pairing_window.listeners.append(station.events.append)
    await server.start()
    server.attach(store)
    return station


@pytest_asyncio.fixture
async def station(tmp_path: Path) -> AsyncIterator[Station]:
    built = await make_station(tmp_path, window=False)
    yield built
    built.server.detach()
    built.store.close()


@pytest_asyncio.fixture
async def windowed(tmp_path: Path) -> AsyncIterator[Station]:
    built = await make_station(tmp_path, window=True)
    yield built
    if built.window is not None:
        built.window.close("test over")
    built.server.detach()
    built.store.close()


def health(i: int) -> Health:
    return Health(ts=1000.0 + i, component="nose", status=HealthStatus.OK, message=f"tick {i}")


# ------------------------------------------------------------------------- passkey entry


async def test_the_right_passkey_bonds_and_the_control_point_accepts_writes(
    station: Station,
) -> None:
    typed: list[int] = []

    def type_it(shown: int) -> int:
        typed.append(shown)
        return shown

    phone = station.phone(typed=type_it)
    await phone.connect(station.server.address)  # pairs, then backfills through the control point
    assert len(typed) == 1 and 0 <= typed[0] < 1_000_000  # the phone was asked for the code
    assert len(await station.bonds()) == 1
    result = await phone.request("backfill", since=0)
    assert result.payload["code"] == ResultCode.OK

    # Reconnecting re-encrypts with the stored keys: still a passkey bond, still accepted.
    await phone.disconnect()
    await asyncio.sleep(0.05)
    await phone.connect(station.server.address)
    assert len(typed) == 1  # no second pairing
    assert (await phone.request("backfill", since=0)).payload["code"] == ResultCode.OK
    await phone.disconnect()


async def test_a_wrong_passkey_is_refused_leaves_no_bond_and_streams_keep_flowing(
    station: Station,
) -> None:
    phone = station.phone(typed=lambda shown: (shown + 1) % 1_000_000)
    with pytest.raises(Exception) as failed:
        await phone.connect(station.server.address)
    assert "PAIRING" in str(failed.value).upper() or "CONFIRM" in str(failed.value).upper()
    assert await station.bonds() == {}
    assert phone.device.keystore is None or await phone.device.keystore.get_all() == []

    # The same phone, not paired: live events still come, control writes are refused.
    if phone.connected:
        await phone.disconnect()
        await asyncio.sleep(0.05)
    await phone.connect(station.server.address, pair=False, backfill=False)
    seq = station.store.append(health(1))
    await phone.wait_for_seq(seq)
    with pytest.raises(ControlError) as refused:
        await phone.request("backfill", since=0)
    assert refused.value.code is ResultCode.NOT_PERMITTED
    await phone.disconnect()


async def test_a_phone_that_cancels_the_passkey_dialog_gets_no_bond(station: Station) -> None:
    phone = station.phone(typed=lambda shown: None)
    with pytest.raises(Exception):  # noqa: B017  # Bumble's SMP error type varies by version
        await phone.connect(station.server.address)
    assert await station.bonds() == {}


# --------------------------------------------------------------------------- just works


async def test_a_just_works_bond_is_refused_by_the_control_point(station: Station) -> None:
    phone = station.phone(just_works=True)
    await phone.connect(station.server.address, backfill=False)
    assert len(await station.bonds()) == 1  # bonded and encrypted, but without a passkey
    seq = station.store.append(health(2))
    await phone.wait_for_seq(seq)  # streams flow
    with pytest.raises(ControlError) as refused:
        await phone.request("backfill", since=0)
    assert refused.value.code is ResultCode.NOT_PERMITTED
    assert "0x05" in str(refused.value)  # Insufficient Authentication: pair with the passkey
    await phone.disconnect()


async def test_the_switch_lets_a_just_works_bond_write(tmp_path: Path) -> None:
    lenient = await make_station(tmp_path, window=False, allow_just_works=True)
    try:
        phone = lenient.phone(just_works=True)
        await phone.connect(lenient.server.address, backfill=False)
        assert (await phone.request("backfill", since=0)).payload["code"] == ResultCode.OK
        await phone.disconnect()
    finally:
        lenient.server.detach()
        lenient.store.close()


# ------------------------------------------------------------------------ pairing window


async def test_no_phone_bonds_while_the_window_is_closed(windowed: Station) -> None:
    phone = windowed.phone()
    with pytest.raises(Exception):  # noqa: B017
        await phone.connect(windowed.server.address)
    assert await windowed.bonds() == {}
    assert windowed.kinds() == [EventKind.REFUSED]
    assert "no pairing window is open" in windowed.events[0].message


async def test_inside_the_window_the_phone_types_the_shown_passkey_and_bonds(
    windowed: Station,
) -> None:
    assert windowed.window is not None
    windowed.window.open(60)
    typed: list[int] = []
    phone = windowed.phone(typed=lambda shown: typed.append(shown) or shown)
    await phone.connect(windowed.server.address)
    assert windowed.kinds() == [
        EventKind.OPENED,
        EventKind.PASSKEY,
        EventKind.BONDED,
        EventKind.CLOSED,
    ]
    shown = windowed.events[1]
    assert shown.passkey == f"{typed[0]:06d}"  # what `senses link pair` prints is what works
    assert not windowed.window.is_open  # one phone per window
    assert (await phone.request("backfill", since=0)).payload["code"] == ResultCode.OK
    await phone.disconnect()


async def test_the_window_closing_mid_pairing_leaves_no_bond(windowed: Station) -> None:
    window = windowed.window
    assert window is not None
    window.open(60)

    def too_late(shown: int) -> int:
        window.close("its time ran out")  # while the user was still typing
        return shown

    phone = windowed.phone(typed=too_late)
    # The station drops the link: Bumble cancels the phone's pending pairing.
    with pytest.raises((Exception, asyncio.CancelledError)):
        await phone.connect(windowed.server.address)
        await phone.request("backfill", since=0)
    await asyncio.sleep(0.1)
    assert await windowed.bonds() == {}
    closed = [e for e in windowed.events if e.kind is EventKind.CLOSED]
    assert "still pairing" in closed[0].message and "no bond is kept" in closed[0].message
