"""The station's own pairing agent and window on BlueZ's D-Bus API (BlueZoo, a private bus).

What BlueZoo 1.0.2 models, read from its source, and so what these tests can show:

* ``AgentManager1.RegisterAgent`` makes *every* adapter ``Pairable=true`` (and losing the last
  agent makes them all false). It accepts only one agent on the whole mock (a second one gets
  ``AlreadyExists``). So the tests that matter run with **no other agent on the bus**: the
  station's ``DisplayOnly`` agent is the only one, and ``Pairable`` is what the daemon sets.
* ``Device1.Pair`` bonds both sides only when the default agent's capability is
  ``NoInputNoOutput`` (anything else raises NotImplementedError); it never checks the peer
  adapter's ``Pairable`` and never calls an agent method (no ``DisplayPasskey``,
  ``RequestAuthorization``...). So BlueZoo cannot pair a phone with a ``DisplayOnly``
  station: the passkey exchange itself is shown over Bumble's real SMP
  (test_pairing_bumble.py), and here the tests call the agent exactly as bluetoothd does
  (doc/org.bluez.Agent.rst), and let BlueZoo make bonds the only way it can (with the
  phone's NoInputNoOutput agent as the single agent) to show what the station does with a
  bond made inside or outside its window, and that a bond survives a daemon restart.
* No link security at all: the control point's ``encrypt-authenticated-write`` flag is
  ignored; the station's own ``Paired`` check is what refuses an unbonded phone here.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from bleak import BleakClient
from bluezoo_harness import (
    PHONE_ADAPTER,
    PHONE_ADDRESS,
    STATION_ADAPTER,
    STATION_ADDRESS,
    BlueZoo,
    bluezoo,
    dbus_daemon,
)
from dbus_fast import Message, MessageType, Variant
from dbus_fast.aio import MessageBus
from test_bluezoo import (
    Emitted,
    Phone,
    call_as_bluez,
    find_station,
    food_reading,
    register_agent,
    write_as_bluez,
)

from device.cli import main
from device.clock import ManualClock
from device.events import HealthStatus
from device.link import protocol
from device.link.bluez import BluezGattServer, BluezLink, start_bluez_server
from device.link.bluez_agent import AGENT_PATH, BluezPairing
from device.link.control_socket import request
from device.link.core import LinkCore
from device.link.pairing import EventKind, PairingError, PairingEvent, PairingWindow, PhoneRegistry
from device.store import EventStore

__all__ = ["bluezoo", "dbus_daemon"]  # fixtures, imported for pytest

PHONE_ON_STATION = f"/org/bluez/{STATION_ADAPTER}/dev_{PHONE_ADDRESS.replace(':', '_')}"
OTHER_PHONE = "/org/bluez/hci0/dev_00_CC_CC_CC_CC_CC"
STATION_ON_PHONE = f"/org/bluez/{PHONE_ADAPTER}/dev_{STATION_ADDRESS.replace(':', '_')}"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EventStore]:
    with EventStore(tmp_path / "events.db") as events:
        yield events


@pytest.fixture
def core(store: EventStore) -> LinkCore:
    return LinkCore(store, station_name="senses-test", clock=ManualClock())


class Pairing:
    """The daemon's pairing side (window, records, agent), and every event it says."""

    def __init__(self, tmp_path: Path, *, auto_window_s: float = 0.0) -> None:
        self.window = PairingWindow()
        self.registry_path = tmp_path / "link" / "phones.json"
        self.events: list[PairingEvent] = []
        self.window.listeners.append(self.events.append)
        self.agent = BluezPairing(
            self.window, PhoneRegistry(self.registry_path), auto_window_s=auto_window_s
        )

    def kinds(self) -> list[EventKind]:
        return [e.kind for e in self.events]


async def adapter_property(zoo: BlueZoo, adapter: str, name: str) -> Any:
    reply = await zoo.bus.call(
        f"/org/bluez/{adapter}",
        "org.freedesktop.DBus.Properties",
        "Get",
        "ss",
        ["org.bluez.Adapter1", name],
    )
    assert reply.message_type == MessageType.METHOD_RETURN, reply.body
    return reply.body[0].value


async def eventually(check: Any, timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not await check():
            await asyncio.sleep(0.05)


async def pairable(zoo: BlueZoo) -> bool:
    return bool(await adapter_property(zoo, STATION_ADAPTER, "Pairable"))


async def call_agent(
    zoo: BlueZoo, server: BluezGattServer, member: str, signature: str, body: list[Any]
) -> Message:
    """Call the station's agent as bluetoothd does during a pairing."""
    return await call_as_bluez(
        zoo.bus_address,
        server,
        AGENT_PATH,
        member,
        signature,
        body,
        interface="org.bluez.Agent1",
    )


@pytest_asyncio.fixture
async def paired_station(
    bluezoo: BlueZoo, core: LinkCore, store: EventStore, tmp_path: Path
) -> AsyncIterator[tuple[BluezGattServer, Pairing]]:
    pairing = Pairing(tmp_path)
    server = await start_bluez_server(
        core,
        store=store,
        adapter=STATION_ADAPTER,
        bus_address=bluezoo.bus_address,
        pairing=pairing.agent,
    )
    try:
        yield server, pairing
    finally:
        await server.stop()


# ----------------------------------------------------------------- pairable and the agent


@pytest.mark.asyncio
async def test_the_daemon_alone_makes_the_adapter_pairable_only_inside_a_window(
    bluezoo: BlueZoo, paired_station: tuple[BluezGattServer, Pairing]
) -> None:
    server, pairing = paired_station
    # Its agent is the only one on the bus (BlueZoo logs the registration) ...
    assert "agent[DisplayOnly]" in bluezoo.log_path.read_text()
    assert pairing.agent.agent_registered
    # ... and registering it made BlueZoo pairable; the daemon says no outside a window.
    await eventually(lambda: _not(pairable(bluezoo)))
    await asyncio.sleep(0.3)  # and it stays so
    assert not await pairable(bluezoo)

    pairing.window.open(30)
    await eventually(lambda: pairable(bluezoo))
    # bluetoothd's own timeout closes the adapter even if the daemon dies meanwhile.
    assert 30 <= await adapter_property(bluezoo, STATION_ADAPTER, "PairableTimeout") <= 31

    pairing.window.close("test")
    await eventually(lambda: _not(pairable(bluezoo)))

    # Something else switching pairing on ('bluetoothctl pairable on') is undone.
    await bluezoo.set_adapter(STATION_ADAPTER, "Pairable", Variant("b", True))
    await eventually(lambda: _not(pairable(bluezoo)))

    # Stopping leaves the adapter closed and the agent unregistered (BlueZoo has none).
    await server.stop()
    assert not await pairable(bluezoo)
    assert "Unregistering agent[DisplayOnly]" in bluezoo.log_path.read_text()


async def _not(value: Any) -> bool:
    return not await value


@pytest.mark.asyncio
async def test_the_window_opens_by_itself_after_start_while_no_phone_is_bonded(
    bluezoo: BlueZoo, core: LinkCore, tmp_path: Path
) -> None:
    pairing = Pairing(tmp_path, auto_window_s=60)
    server = await start_bluez_server(
        core, adapter=STATION_ADAPTER, bus_address=bluezoo.bus_address, pairing=pairing.agent
    )
    try:
        await eventually(lambda: pairable(bluezoo))
        assert pairing.kinds() == [EventKind.OPENED]
        assert "no phone is bonded yet" in pairing.events[0].message
    finally:
        await server.stop()
    assert not await pairable(bluezoo)


@pytest.mark.asyncio
async def test_the_agent_answers_bluez_as_designed(
    bluezoo: BlueZoo, paired_station: tuple[BluezGattServer, Pairing]
) -> None:
    server, pairing = paired_station

    # Outside a window a passkey is never shown: the phone cannot finish.
    reply = await call_agent(bluezoo, server, "DisplayPasskey", "ouq", [PHONE_ON_STATION, 7, 0])
    assert reply.message_type == MessageType.METHOD_RETURN
    assert pairing.kinds() == [EventKind.REFUSED]
    assert "no pairing window is open" in pairing.events[-1].message

    pairing.window.open(30)
    reply = await call_agent(bluezoo, server, "DisplayPasskey", "ouq", [PHONE_ON_STATION, 7, 0])
    assert reply.message_type == MessageType.METHOD_RETURN
    shown = pairing.events[-1]
    assert (shown.kind, shown.passkey, shown.address) == (
        EventKind.PASSKEY,
        "000007",
        PHONE_ADDRESS,
    )
    # Keypress notifications of the same pairing (entered = digits typed) are not news.
    await call_agent(bluezoo, server, "DisplayPasskey", "ouq", [PHONE_ON_STATION, 7, 3])
    assert [e.kind for e in pairing.events].count(EventKind.PASSKEY) == 1

    # A second phone while the first pairs: refused, its passkey never shown.
    await call_agent(bluezoo, server, "DisplayPasskey", "ouq", [OTHER_PHONE, 123456, 0])
    refused = pairing.events[-1]
    assert refused.kind is EventKind.REFUSED and "a second phone" in refused.message
    assert all(e.passkey != "123456" for e in pairing.events)

    # Methods the station cannot or will not do are Rejected, with why.
    for member, signature, body in (
        ("RequestAuthorization", "o", [OTHER_PHONE]),  # just works, switch off
        ("RequestConfirmation", "ou", [OTHER_PHONE, 123456]),  # no yes/no button
        ("RequestPasskey", "o", [OTHER_PHONE]),  # no keyboard
        ("RequestPinCode", "o", [OTHER_PHONE]),  # legacy
        ("AuthorizeService", "os", [OTHER_PHONE, "0000110b-0000-1000-8000-00805f9b34fb"]),
    ):
        reply = await call_agent(bluezoo, server, member, signature, body)
        assert reply.error_name == "org.bluez.Error.Rejected", (member, reply.body)

    # BlueZ cancels the pairing in progress (timeout, the phone gave up): reported, window open.
    await call_agent(bluezoo, server, "Cancel", "", [])
    failed = pairing.events[-1]
    assert failed.kind is EventKind.FAILED and PHONE_ADDRESS in failed.message
    assert pairing.window.is_open and await pairable(bluezoo)

    # A fresh attempt gets its own passkey; the window closing mid-pairing cancels it.
    await call_agent(bluezoo, server, "DisplayPasskey", "ouq", [OTHER_PHONE, 424242, 0])
    assert pairing.events[-1].passkey == "424242"
    pairing.window.close("its time ran out")
    closed = pairing.events[-1]
    assert closed.kind is EventKind.CLOSED and "still pairing" in closed.message
    await eventually(lambda: _not(pairable(bluezoo)))


@pytest.mark.asyncio
async def test_the_agent_is_registered_again_after_bluetoothd_restarts(
    bluezoo: BlueZoo, paired_station: tuple[BluezGattServer, Pairing]
) -> None:
    server, pairing = paired_station
    pairing.window.open(60)
    await call_agent(bluezoo, server, "DisplayPasskey", "ouq", [PHONE_ON_STATION, 1, 0])
    await bluezoo.stop()
    async with asyncio.timeout(5):
        while pairing.agent.agent_registered:
            await asyncio.sleep(0.05)
    await bluezoo.start()
    async with asyncio.timeout(10):
        while not (server.registered and pairing.agent.agent_registered):
            await asyncio.sleep(0.05)
    # The pairing under way is reported lost; the window is still open and applied again.
    kinds = pairing.kinds()
    assert EventKind.FAILED in kinds and EventKind.BLUEZ in kinds
    assert (
        "bluetoothd restarted"
        in next(e for e in pairing.events if e.kind is EventKind.FAILED).message
    )
    assert pairing.window.is_open
    await eventually(lambda: pairable(bluezoo))
    assert bluezoo.log_path.read_text().count("Registering agent[DisplayOnly]") == 2


# ------------------------------------------------------------------------- bonds and restart


async def pair_with_bluezoo(zoo: BlueZoo) -> None:
    """The phone pairs the only way BlueZoo lets it: ``Device1.Pair`` with the phone's
    NoInputNoOutput agent as the mock's single agent (see the module docstring)."""
    device = await find_station(zoo)
    async with BleakClient(device, bluez={"adapter": PHONE_ADAPTER}) as client:
        await client.pair()


async def bond_before_the_daemon_runs(zoo: BlueZoo, core: LinkCore) -> None:
    """A bond from an earlier run: the station advertising, the phone's agent pairing."""
    agent_bus = await register_agent(zoo.bus_address)
    earlier = await start_bluez_server(core, adapter=STATION_ADAPTER, bus_address=zoo.bus_address)
    try:
        await pair_with_bluezoo(zoo)
    finally:
        await earlier.stop()
        agent_bus.disconnect()
    await zoo.remove_devices(PHONE_ADAPTER)  # the next scan reports the station afresh


@pytest.mark.asyncio
async def test_a_bond_survives_a_daemon_restart(
    bluezoo: BlueZoo, core: LinkCore, store: EventStore, tmp_path: Path
) -> None:
    await bond_before_the_daemon_runs(bluezoo, core)  # the station's first phone

    for run in range(2):  # the daemon starts, stops, and starts again
        pairing = Pairing(tmp_path, auto_window_s=300)
        server = await start_bluez_server(
            core,
            store=store,
            adapter=STATION_ADAPTER,
            bus_address=bluezoo.bus_address,
            pairing=pairing.agent,
        )
        try:
            # A phone is bonded: no automatic window, the adapter stays closed.
            assert pairing.kinds() == [], run
            await eventually(lambda: _not(pairable(bluezoo)))
            [phone] = pairing.agent.phones()
            assert phone.address == PHONE_ADDRESS
            # Its writes are accepted, without pairing again.
            device = await find_station(bluezoo)
            async with BleakClient(device, bluez={"adapter": PHONE_ADAPTER}) as client:
                bleak_phone = Phone(client)
                await bleak_phone.subscribe()
                seq = store.append(food_reading(ts=1_700_000_000.0 + run))
                await bleak_phone.control(
                    protocol.encode_message("control", 5, {"op": "backfill", "since": seq - 1})
                )
                result = await bleak_phone.next_message("control_result")
                assert result.payload["code"] == protocol.ResultCode.OK
            await asyncio.sleep(0.2)
            assert pairing.agent.phones()[0].last_seen is not None  # seen: recorded
        finally:
            await server.stop()
        await bluezoo.remove_devices(PHONE_ADAPTER)


async def station_beside_a_phone_agent(
    zoo: BlueZoo, core: LinkCore, pairing: Pairing
) -> tuple[BluezGattServer, MessageBus]:
    """BlueZoo pairs only through a NoInputNoOutput single agent: the phone's registers first,
    and the station's registration gets AlreadyExists (a BlueZoo quirk; real BlueZ keeps
    one agent per program). The station's reaction to the bond is what these tests watch."""
    agent_bus = await register_agent(zoo.bus_address)
    server = await start_bluez_server(
        core, adapter=STATION_ADAPTER, bus_address=zoo.bus_address, pairing=pairing.agent
    )
    return server, agent_bus


@pytest.mark.asyncio
async def test_a_bond_made_inside_the_window_is_recorded_and_forget_removes_it(
    bluezoo: BlueZoo, core: LinkCore, tmp_path: Path
) -> None:
    pairing = Pairing(tmp_path)
    server, agent_bus = await station_beside_a_phone_agent(bluezoo, core, pairing)
    try:
        pairing.window.open(60)
        await pair_with_bluezoo(bluezoo)
        # The station saw the bond appear inside its window: recorded, window closed.
        await eventually(lambda: _true(pairing.agent.phones()))
        assert EventKind.BONDED in pairing.kinds() and not pairing.window.is_open
        assert pairing.agent.phones()[0].bonded_at is not None
        assert PHONE_ADDRESS in pairing.registry_path.read_text()

        with pytest.raises(PairingError, match="no bonded phone 00:00"):
            await pairing.agent.forget("00:00:00:00:00:01")
        forgotten = await pairing.agent.forget(PHONE_ADDRESS.lower())
        assert forgotten.address == PHONE_ADDRESS
        assert pairing.agent.phones() == []
        assert PHONE_ADDRESS not in pairing.registry_path.read_text()

        # Forgotten: its writes are refused again. (Written as bluetoothd hands a write
        # over: BlueZoo cannot connect a phone twice to one GATT application, EEXIST.)
        reply = await write_as_bluez(
            bluezoo.bus_address,
            server,
            protocol.encode_message("control", 6, {"op": "backfill", "since": 0}),
        )
        assert reply.error_name == "org.bluez.Error.NotAuthorized"
    finally:
        await server.stop()
        agent_bus.disconnect()


async def _true(value: Any) -> bool:
    return bool(value)


@pytest.mark.asyncio
async def test_a_bond_made_outside_the_window_is_removed(
    bluezoo: BlueZoo, core: LinkCore, tmp_path: Path
) -> None:
    pairing = Pairing(tmp_path)
    server, agent_bus = await station_beside_a_phone_agent(bluezoo, core, pairing)
    try:
        # BlueZoo ignores Pairable (real BlueZ refuses the pairing itself); the station
        # still removes a bond its window did not allow.
        await pair_with_bluezoo(bluezoo)
        await eventually(lambda: _true(any(e.remove_bond for e in pairing.events)))
        assert "outside a pairing window" in pairing.events[-1].message

        async def gone() -> bool:
            return PHONE_ON_STATION not in await bluezoo.bus.managed_objects()

        await eventually(gone)
        assert pairing.agent.phones() == []
    finally:
        await server.stop()
        agent_bus.disconnect()


# ------------------------------------------------------------------- the CLI's socket


@pytest.fixture
def socket_path() -> Iterator[Path]:
    # Unix socket paths are limited to 108 bytes: pytest's tmp_path is often longer.
    with tempfile.TemporaryDirectory(prefix="senses-", dir="/tmp") as folder:
        yield Path(folder) / "link.sock"


@contextlib.asynccontextmanager
async def advertising_link(
    bluezoo: BlueZoo, core: LinkCore, store: EventStore, pairing: Pairing, socket_path: Path
) -> AsyncIterator[BluezLink]:
    """The station's link with its agent and control socket, running until the block ends."""
    link = BluezLink(
        core,
        store,
        ManualClock(),
        adapter=STATION_ADAPTER,
        bus_address=bluezoo.bus_address,
        pairing=pairing.agent,
        control_socket=socket_path,
    )
    emitted, stop = Emitted(), threading.Event()
    sense = threading.Thread(target=link.run, args=(emitted, stop))
    sense.start()
    try:
        await emitted.health(HealthStatus.OK, "advertising")
        yield link
    finally:
        stop.set()
        await asyncio.to_thread(sense.join, 10)


@pytest.mark.asyncio
async def test_pair_over_the_socket_opens_the_window_until_it_closes(
    bluezoo: BlueZoo, core: LinkCore, store: EventStore, tmp_path: Path, socket_path: Path
) -> None:
    pairing = Pairing(tmp_path)
    async with advertising_link(bluezoo, core, store, pairing, socket_path):
        answers = asyncio.create_task(
            asyncio.to_thread(lambda: list(request(socket_path, {"op": "pair", "seconds": 1.5})))
        )
        await eventually(lambda: pairable(bluezoo))
        lines = await answers
        assert [line.get("event") for line in lines[:-1]] == ["opened", "closed"]
        assert lines[-1] == {"ok": False, "done": True}  # no phone bonded in time
        await eventually(lambda: _not(pairable(bluezoo)))

        phones = await asyncio.to_thread(lambda: list(request(socket_path, {"op": "phones"})))
        assert phones == [{"ok": True, "phones": []}]
        forget = await asyncio.to_thread(
            lambda: list(request(socket_path, {"op": "forget", "address": PHONE_ADDRESS}))
        )
        assert forget[0]["ok"] is False and "senses link phones" in forget[0]["error"]

        # Interrupting `pair` (Ctrl-C closes the connection) closes the window.
        await asyncio.to_thread(_pair_then_hang_up, socket_path)
        await eventually(lambda: _not(pairable(bluezoo)))
        assert "interrupted" in pairing.events[-1].message
    assert not socket_path.exists()
    # No daemon: a clear message.
    with pytest.raises(PairingError, match="station daemon is not running"):
        list(request(socket_path, {"op": "pair"}))


def _pair_then_hang_up(path: Path) -> None:
    answers = request(path, {"op": "pair", "seconds": 60})
    assert next(answers)["event"] == "opened"
    answers.close()  # the socket closes, as when the user presses Ctrl-C


# ------------------------------------------------------------------------------ the CLI


def _config_file(tmp_path: Path, socket: Path) -> Path:
    config = tmp_path / "senses.toml"
    config.write_text(
        f'[station]\ndata_dir = "{tmp_path / "data"}"\n[link]\ncontrol_socket = "{socket}"\n'
    )
    return config


def test_the_cli_without_a_daemon_says_what_to_do(
    tmp_path: Path, socket_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config_file(tmp_path, socket_path)
    for command in (["pair"], ["phones"], ["forget", PHONE_ADDRESS]):
        assert main(["link", *command, "--config", str(config)]) == 2
        err = " ".join(capsys.readouterr().err.split())
        assert "station daemon is not running" in err and "systemctl start senses" in err


@pytest.mark.asyncio
async def test_senses_link_pair_prints_the_passkey_bluez_shows(
    bluezoo: BlueZoo,
    core: LinkCore,
    store: EventStore,
    tmp_path: Path,
    socket_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pairing = Pairing(tmp_path)
    config = _config_file(tmp_path, socket_path)
    async with advertising_link(bluezoo, core, store, pairing, socket_path) as link:
        command = asyncio.create_task(
            asyncio.to_thread(main, ["link", "pair", "--seconds", "30", "--config", str(config)])
        )
        await eventually(lambda: pairable(bluezoo))
        server = link.server
        assert server is not None
        # bluetoothd: a phone asks to pair, here is the passkey to show.
        await call_agent(bluezoo, server, "DisplayPasskey", "ouq", [PHONE_ON_STATION, 654321, 0])
        await eventually(lambda: _true(pairing.kinds()[-1] is EventKind.PASSKEY))
        pairing.window.close("its time ran out")  # the user did not type it in time
        assert await command == 1  # no phone bonded
        out = " ".join(capsys.readouterr().out.split())
        assert "654321" in out and PHONE_ADDRESS in out
        assert "still pairing" in out and "no bond is kept" in out

        assert main(["link", "phones", "--config", str(config)]) == 0
        assert "No phone is bonded" in capsys.readouterr().out


@pytest.mark.asyncio
async def test_a_phone_that_leaves_without_bonding_is_reported_and_the_window_stays_open(
    bluezoo: BlueZoo, paired_station: tuple[BluezGattServer, Pairing]
) -> None:
    # A wrong passkey on real BlueZ: SMP fails, no Paired, the phone drops the link.
    server, pairing = paired_station
    pairing.window.open(60)
    device = await find_station(bluezoo)
    async with BleakClient(device, bluez={"adapter": PHONE_ADAPTER}):
        await call_agent(bluezoo, server, "DisplayPasskey", "ouq", [PHONE_ON_STATION, 111, 0])
        assert pairing.events[-1].passkey == "000111"
    await eventually(lambda: _true(pairing.kinds()[-1] is EventKind.FAILED))
    failed = pairing.events[-1]
    assert "disconnected before bonding" in failed.message and "try again" in failed.message
    assert pairing.window.is_open and await pairable(bluezoo)
    assert pairing.agent.phones() == []  # no half-made bond
