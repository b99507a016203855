"""The production BlueZ server (device/link/bluez.py) against an unmodified bleak client.

The station runs here without its own pairing agent (``pairing=None``): BlueZoo pairs only
through a single NoInputNoOutput agent, which these tests register as the phone's. The
station's agent and pairing window are tested in test_pairing_bluez.py.

Both talk D-Bus to BlueZoo, a user-space ``org.bluez`` on a private bus (bluezoo_harness.py):
the station serves on hci0, bleak scans and connects from hci1 as the app does on Linux.

What BlueZoo checks: our D-Bus objects (ObjectManager, GattService1/Characteristic1/
Descriptor1 and LEAdvertisement1 properties and method signatures), the Register/Unregister
calls, discovery by service UUID, reads with their ``device``/``mtu`` options, StartNotify and
``PropertiesChanged(Value)`` becoming notifications in order, D-Bus errors reaching the
client, Device1 ``Connected``/``Paired``, bluetoothd leaving and rejoining the bus, adapters
missing or powered off.

What it does not (Bumble's tests and a real Pi cover these): no ATT MTU exchange (``mtu`` is
always 512) and no truncation of long notifications; no link security, so it ignores the
``encrypt-authenticated-write`` flag (our ``Paired`` check is what refuses here, real BlueZ
refuses first with ATT 0x0F / 0x05); it hands our D-Bus error names to bleak instead of ATT
error codes; no Prepare/Execute long writes (we call WriteValue as bluetoothd would); no
31-byte advertising limit, scan response or radio timing; no D-Bus policy (a non-root user's
AccessDenied).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from bleak import BleakClient, BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakDBusError, BleakGATTProtocolError, BleakGATTProtocolErrorCode
from bluezoo_harness import (
    PHONE_ADAPTER,
    PHONE_ADDRESS,
    STATION_ADAPTER,
    BlueZoo,
    DBusDaemon,
    bluezoo,
    dbus_daemon,
)
from dbus_fast import Message, MessageType, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.service import ServiceInterface, dbus_method

from device.clock import ManualClock
from device.events import (
    ChannelStatus,
    Event,
    FoodReading,
    FoodVerdict,
    Health,
    HealthStatus,
    NoseReading,
    SensorValue,
    Trend,
)
from device.link import ess, protocol, uuids
from device.link.bluez import (
    APP_PATH,
    BluetoothUnavailableError,
    BluetoothUnavailableReason,
    BluezGattServer,
    BluezLink,
    DBusVoid,
    start_bluez_server,
)
from device.link.core import ControlHandlers, LinkCore
from device.store import EventStore

__all__ = ["bluezoo", "dbus_daemon"]  # fixtures, imported for pytest

STATION_NAME = "senses-test"
SCAN_TIMEOUT_S = 4.0
SCAN_ATTEMPTS = 3
NOTIFY_TIMEOUT_S = 5.0
PHONE_DEVICE_ON_STATION = f"/org/bluez/{STATION_ADAPTER}/dev_{PHONE_ADDRESS.replace(':', '_')}"


def nose_reading(ts: float, temperature_c: float = 21.5) -> NoseReading:
    return NoseReading(
        ts=ts,
        sensors=(
            SensorValue(
                "MQ135",
                ChannelStatus.OK,
                voltage_v=1.234,
                rs_kohm=42.0,
                ratio=0.8,
                ppm={"NH3": 1.5, "toluene": 0.83},
            ),
            SensorValue("MQ4", ChannelStatus.WARMING_UP, voltage_v=0.5),
        ),
        temperature_c=temperature_c,
        humidity_pct=48.25,
        warming_up=False,
    )


def food_reading(ts: float) -> FoodReading:
    return FoodReading(
        ts=ts,
        label=FoodVerdict.SPOILING,
        confidence=0.71,
        probabilities={"excellent": 0.02, "good": 0.12, "acceptable": 0.71, "spoiled": 0.15},
        freshness=0.41,
        trend=Trend.WORSENING,
        freshness_per_hour=-0.03,
        warming_up=False,
    )


def on_the_wire(event_type: str, seq: int, payload: dict[str, Any]) -> dict[str, Any]:
    """What the app decodes for an event: its payload after quantisation."""
    return protocol.decode_message(protocol.encode_message(event_type, seq, payload)).payload


class Phone:
    """A bleak client subscribed to everything, keeping the frames and decoded messages."""

    def __init__(self, client: BleakClient) -> None:
        self.client = client
        self.inbox = protocol.Inbox()
        self.frames: list[tuple[str, bytes]] = []
        self.messages: dict[str, asyncio.Queue[protocol.Message]] = {}

    async def subscribe(self) -> None:
        for uuid in (*uuids.STREAMS.values(), uuids.CONTROL_POINT):
            await self.client.start_notify(uuid, self._receiver(uuid))

    def _receiver(self, uuid: str) -> Any:
        def receive(_characteristic: Any, data: bytearray) -> None:
            self.frames.append((uuid, bytes(data)))
            for message in self.inbox.feed(uuid, bytes(data)):
                self._queue(message.type).put_nowait(message)

        return receive

    def _queue(self, message_type: str) -> asyncio.Queue[protocol.Message]:
        return self.messages.setdefault(message_type, asyncio.Queue())

    async def next_message(self, message_type: str) -> protocol.Message:
        async with asyncio.timeout(NOTIFY_TIMEOUT_S):
            return await self._queue(message_type).get()

    async def read(self, uuid: str) -> bytes:
        return bytes(await self.client.read_gatt_char(uuid))

    async def control(self, data: bytes) -> None:
        await self.client.write_gatt_char(uuids.CONTROL_POINT, data, response=True)


async def find_station(zoo: BlueZoo) -> BLEDevice:
    """Scan from the phone adapter for our service UUID, as the app does.

    BlueZoo announces a device once, the moment discovery starts, and never again while it
    knows it. ``BleakScanner.find_device_by_filter`` registers its callback only after the
    scan started and can miss that single announcement (the "discovery flake" of the research
    notes), so the callback goes in with the scanner; a retry forgets the device first so the
    next scan announces it again.
    """
    for _attempt in range(SCAN_ATTEMPTS):
        device = await scan_once(SCAN_TIMEOUT_S)
        if device is not None:
            return device
        await zoo.remove_devices(PHONE_ADAPTER)
    pytest.fail(f"the station was not found in {SCAN_ATTEMPTS} scans of {SCAN_TIMEOUT_S} s")


async def scan_once(timeout_s: float) -> BLEDevice | None:
    found: asyncio.Future[BLEDevice] = asyncio.get_running_loop().create_future()

    def seen(device: BLEDevice, adv: AdvertisementData) -> None:
        if uuids.SENSES_SERVICE in adv.service_uuids and not found.done():
            found.set_result(device)

    async with BleakScanner(seen, bluez={"adapter": PHONE_ADAPTER}):
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                return await found
    return None


class NoInputNoOutputAgent(ServiceInterface):
    """A pairing agent, as the phone's OS has one: BlueZoo pairs "just works" through it."""

    PATH = "/org/senses/test/agent"

    def __init__(self) -> None:
        super().__init__("org.bluez.Agent1")

    @dbus_method(name="Release")
    def release(self) -> DBusVoid:
        """Nothing to clean up."""


async def register_agent(bus_address: str) -> MessageBus:
    bus = await MessageBus(bus_address=bus_address).connect()
    bus.export(NoInputNoOutputAgent.PATH, NoInputNoOutputAgent())
    for member, signature, body in (
        ("RegisterAgent", "os", [NoInputNoOutputAgent.PATH, "NoInputNoOutput"]),
        ("RequestDefaultAgent", "o", [NoInputNoOutputAgent.PATH]),
    ):
        reply = await bus.call(
            Message(
                destination="org.bluez",
                path="/org/bluez",
                interface="org.bluez.AgentManager1",
                member=member,
                signature=signature,
                body=body,
            )
        )
        assert reply is not None and reply.message_type == MessageType.METHOD_RETURN, reply
    return bus


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EventStore]:
    with EventStore(tmp_path / "events.db") as events:
        yield events


@pytest.fixture
def core(store: EventStore) -> LinkCore:
    return LinkCore(store, station_name=STATION_NAME, clock=ManualClock())


@pytest_asyncio.fixture
async def station(
    bluezoo: BlueZoo, core: LinkCore, store: EventStore
) -> AsyncIterator[BluezGattServer]:
    server = await start_bluez_server(
        core, store=store, adapter=STATION_ADAPTER, bus_address=bluezoo.bus_address
    )
    try:
        yield server
    finally:
        await server.stop()


@pytest_asyncio.fixture
async def phone(bluezoo: BlueZoo, station: BluezGattServer) -> AsyncIterator[Phone]:
    device = await find_station(bluezoo)
    async with BleakClient(device, bluez={"adapter": PHONE_ADAPTER}) as client:
        yield Phone(client)


# ----------------------------------------------------------------------------- the link


@pytest.mark.asyncio
async def test_phone_reads_dis_ess_and_receives_the_published_events(
    bluezoo: BlueZoo, station: BluezGattServer, phone: Phone, store: EventStore, core: LinkCore
) -> None:
    # Device Information, as the layout states it.
    for uuid in (
        uuids.MANUFACTURER_NAME,
        uuids.MODEL_NUMBER,
        uuids.FIRMWARE_REVISION,
        uuids.SOFTWARE_REVISION,
    ):
        assert await phone.read(uuid) == core.characteristic(uuid).value
    # Before the first reading every ESS value says "not known" (GSS special values).
    assert ess.decode_value(uuids.TEMPERATURE, await phone.read(uuids.TEMPERATURE)) is None

    await phone.subscribe()
    nose_seq = store.append(nose_reading(ts=1_700_000_000.0))
    food_seq = store.append(food_reading(ts=1_700_000_001.0))

    nose = await phone.next_message("nose")
    food = await phone.next_message("food")
    assert (nose.seq, food.seq) == (nose_seq, food_seq)
    assert nose.payload == on_the_wire("nose", nose_seq, nose_reading(1_700_000_000.0).to_dict())
    assert food.payload == on_the_wire("food", food_seq, food_reading(1_700_000_001.0).to_dict())

    # ESS values as a generic client (nRF Connect) decodes them per the GSS.
    assert ess.decode_value(uuids.TEMPERATURE, await phone.read(uuids.TEMPERATURE)) == 21.5
    assert ess.decode_value(uuids.HUMIDITY, await phone.read(uuids.HUMIDITY)) == 48.25
    nh3_kg_m3 = ess.decode_value(
        uuids.AMMONIA_CONCENTRATION, await phone.read(uuids.AMMONIA_CONCENTRATION)
    )
    assert nh3_kg_m3 == pytest.approx(ess.ppm_to_kg_m3(1.5, 17.031, 21.5), rel=0.02)
    assert (
        ess.decode_value(uuids.VOC_CONCENTRATION, await phone.read(uuids.VOC_CONCENTRATION)) == 830
    )
    # The MQ-4 is warming up: methane is "not known", not a made-up number.
    assert (
        ess.decode_value(uuids.METHANE_CONCENTRATION, await phone.read(uuids.METHANE_CONCENTRATION))
        is None
    )

    # Each ESS characteristic carries its ES Measurement (11 octets) and user description.
    temperature = phone.client.services.get_characteristic(uuids.TEMPERATURE)
    assert temperature is not None
    descriptors = {
        d.uuid: bytes(await phone.client.read_gatt_descriptor(d.handle))
        for d in temperature.descriptors
    }
    assert len(descriptors[uuids.ES_MEASUREMENT]) == 11
    assert descriptors[uuids.CHARACTERISTIC_USER_DESCRIPTION] == b"Temperature (food box)"

    info = protocol.decode_message(await phone.read(uuids.STATION_INFO))
    assert info.payload["station_name"] == STATION_NAME
    assert info.payload["newest_seq"] == food_seq


@pytest.mark.asyncio
async def test_frames_fit_the_phones_mtu_once_the_station_has_learnt_it(
    station: BluezGattServer, phone: Phone, store: EventStore
) -> None:
    await phone.subscribe()
    # Nothing read or written yet: the station knows no MTU for this phone, assumes 23.
    assert station.max_payload == 20
    first = store.append(nose_reading(ts=1_700_000_000.0))
    assert (await phone.next_message("nose")).seq == first
    nose_frames = [f for u, f in phone.frames if u == uuids.NOSE_STREAM]
    assert len(nose_frames) > 1 and all(len(f) <= 20 for f in nose_frames)

    # A read tells the station the link's MTU (BlueZoo reports 512): one frame now.
    await phone.read(uuids.STATION_INFO)
    assert station.max_payload == 509
    phone.frames.clear()
    second = store.append(nose_reading(ts=1_700_000_010.0, temperature_c=22.0))
    assert (await phone.next_message("nose")).seq == second
    assert len([f for u, f in phone.frames if u == uuids.NOSE_STREAM]) == 1


@pytest.mark.asyncio
async def test_control_point_refuses_an_unpaired_phone_and_keeps_serving(
    station: BluezGattServer, phone: Phone, store: EventStore
) -> None:
    await phone.subscribe()
    request = protocol.encode_message("control", 7, {"op": "backfill", "since": 0})
    # bleak turns BlueZ's NotAuthorized into the ATT error it stands for (0x08). Real BlueZ
    # would refuse earlier, with Insufficient Encryption (0x0F), from the encrypt-write flag.
    with pytest.raises(BleakGATTProtocolError) as refused:
        await phone.control(request)
    assert refused.value.code is BleakGATTProtocolErrorCode.INSUFFICIENT_AUTHORIZATION
    # Refused, and nothing was sent for it; the station goes on serving.
    assert not [f for u, f in phone.frames if u == uuids.CONTROL_POINT]
    seq = store.append(food_reading(ts=1_700_000_002.0))
    assert (await phone.next_message("food")).seq == seq
    info = protocol.decode_message(await phone.read(uuids.STATION_INFO))
    assert info.payload["newest_seq"] == seq


@pytest.mark.asyncio
async def test_paired_phone_backfills_and_bad_writes_get_att_errors(
    bluezoo: BlueZoo, station: BluezGattServer, phone: Phone, store: EventStore
) -> None:
    stored = [store.append(food_reading(ts=1_700_000_000.0 + i)) for i in range(3)]
    agent_bus = await register_agent(bluezoo.bus_address)
    try:
        await phone.client.pair()
        await phone.subscribe()

        await phone.control(protocol.encode_message("control", 41, {"op": "backfill", "since": 0}))
        result = await phone.next_message("control_result")
        assert (result.seq, result.payload["code"]) == (41, protocol.ResultCode.OK)
        assert result.payload["count"] == 3
        assert [(await phone.next_message("food")).seq for _ in stored] == stored

        # BlueZoo hands the station's D-Bus error to bleak as is; BlueZ would send the ATT
        # error it maps to (0x0D here, 0x0E for the malformed one).
        with pytest.raises(BleakDBusError) as too_long:
            await phone.control(b"\x16" + bytes(300))  # longer than a control request can be
        assert too_long.value.dbus_error == "org.bluez.Error.InvalidValueLength"
        with pytest.raises(BleakDBusError) as malformed:
            await phone.control(b"\x16\x00\x00\x00\x00\xff")  # truncated CBOR
        assert malformed.value.dbus_error.startswith("org.bluez.Error.")

        # Still serving, and still answering requests after the refusals.
        await phone.control(
            protocol.encode_message("control", 42, {"op": "backfill", "since": stored[-1]})
        )
        result = await phone.next_message("control_result")
        assert (result.seq, result.payload["count"]) == (42, 0)
    finally:
        agent_bus.disconnect()


async def call_as_bluez(
    bus_address: str,
    server: BluezGattServer,
    path: str,
    member: str,
    signature: str,
    body: list[Any],
    interface: str = "org.bluez.GattCharacteristic1",
) -> Message:
    """Call one of the station's objects directly, as bluetoothd does for each ATT request."""
    bus = await MessageBus(bus_address=bus_address).connect()
    try:
        reply = await bus.call(
            Message(
                destination=server.bus_name,
                path=path,
                interface=interface,
                member=member,
                signature=signature,
                body=body,
            )
        )
        assert reply is not None
        return reply
    finally:
        bus.disconnect()


async def read_as_bluez(
    bus_address: str, server: BluezGattServer, path: str, offset: int, interface: str
) -> bytes:
    options = {
        "device": Variant("o", PHONE_DEVICE_ON_STATION),
        "mtu": Variant("q", 23),
        "offset": Variant("q", offset),
    }
    reply = await call_as_bluez(
        bus_address, server, path, "ReadValue", "a{sv}", [options], interface
    )
    assert reply.message_type == MessageType.METHOD_RETURN, reply.body
    value: bytes = reply.body[0]
    return value


@pytest.mark.asyncio
async def test_long_reads_continue_the_value_their_first_read_saw(
    bluezoo: BlueZoo, station: BluezGattServer, store: EventStore
) -> None:
    # At ATT_MTU 23 a read returns 22 bytes and the phone asks for the rest with Read Blob
    # (an offset). The rest must belong to the same value, even if it changed in between.
    info_path = station.characteristic_path(uuids.STATION_INFO)
    iface = "org.bluez.GattCharacteristic1"
    head = await read_as_bluez(bluezoo.bus_address, station, info_path, 0, iface)
    store.append(food_reading(ts=1_700_000_000.0))  # station info now says a newer seq
    await asyncio.sleep(0.1)
    tail = await read_as_bluez(bluezoo.bus_address, station, info_path, 22, iface)
    assert protocol.decode_message(head[:22] + tail).payload["newest_seq"] == 0

    # Descriptors share UUIDs (every characteristic has a 0x2901): each keeps its own.
    voc = await descriptor_path(bluezoo, station, uuids.VOC_CONCENTRATION)
    food = await descriptor_path(bluezoo, station, uuids.FOOD_STREAM)
    descriptor = "org.bluez.GattDescriptor1"
    voc_head = await read_as_bluez(bluezoo.bus_address, station, voc, 0, descriptor)
    food_text = await read_as_bluez(bluezoo.bus_address, station, food, 0, descriptor)
    voc_tail = await read_as_bluez(bluezoo.bus_address, station, voc, 22, descriptor)
    assert food_text == b"Food verdicts"
    assert (voc_head[:22] + voc_tail).decode() == "VOC, toluene equivalent (food box)"


async def descriptor_path(zoo: BlueZoo, server: BluezGattServer, characteristic: str) -> str:
    """The object path of the user description (0x2901) of ``characteristic``."""
    reply = await call_as_bluez(
        zoo.bus_address,
        server,
        APP_PATH,
        "GetManagedObjects",
        "",
        [],
        "org.freedesktop.DBus.ObjectManager",
    )
    owner = server.characteristic_path(characteristic)
    for path, interfaces in reply.body[0].items():
        properties = interfaces.get("org.bluez.GattDescriptor1")
        if (
            properties is not None
            and properties["Characteristic"].value == owner
            and properties["UUID"].value == uuids.CHARACTERISTIC_USER_DESCRIPTION
        ):
            return str(path)
    raise AssertionError(f"{characteristic} has no user description")


async def write_as_bluez(
    bus_address: str, server: BluezGattServer, value: bytes, **options: Variant
) -> Message:
    """Write the control point as bluetoothd does for each ATT write (or executed chunk)."""
    return await call_as_bluez(
        bus_address,
        server,
        server.characteristic_path(uuids.CONTROL_POINT),
        "WriteValue",
        "aya{sv}",
        [value, {"device": Variant("o", PHONE_DEVICE_ON_STATION), **options}],
    )


@pytest.mark.asyncio
async def test_long_write_chunks_from_a_small_mtu_phone_are_joined(
    bluezoo: BlueZoo, station: BluezGattServer, phone: Phone, core: LinkCore
) -> None:
    agent_bus = await register_agent(bluezoo.bus_address)
    try:
        await phone.client.pair()
        await phone.subscribe()
        selected: list[str] = []
        core.handlers = ControlHandlers(
            select_concept=lambda concept: selected.append(concept) or protocol.ResultCode.OK
        )
        concept = "a ripe avocado next to a green banana"
        request = protocol.encode_message(
            "control", 9, {"op": "select_concept", "concept": concept}
        )
        chunk = 23 - 5  # Prepare Write chunks at ATT_MTU 23
        assert len(request) > 2 * chunk
        for offset in range(0, len(request), chunk):
            reply = await write_as_bluez(
                bluezoo.bus_address,
                station,
                request[offset : offset + chunk],
                mtu=Variant("q", 23),
                offset=Variant("q", offset),
            )
            assert reply.message_type == MessageType.METHOD_RETURN, reply.body
        result = await phone.next_message("control_result")
        assert (result.seq, result.payload["code"]) == (9, protocol.ResultCode.OK)
        assert selected == [concept]

        # A chunk that continues nothing is refused with Invalid Offset.
        reply = await write_as_bluez(
            bluezoo.bus_address, station, b"\x00" * 4, mtu=Variant("q", 23), offset=Variant("q", 18)
        )
        assert reply.error_name == "org.bluez.Error.InvalidOffset"
    finally:
        agent_bus.disconnect()


# --------------------------------------------------------------- lifecycle and restarts


async def advertisement_count(zoo: BlueZoo) -> int:
    reply = await zoo.bus.call(
        f"/org/bluez/{STATION_ADAPTER}",
        "org.freedesktop.DBus.Properties",
        "Get",
        "ss",
        ["org.bluez.LEAdvertisingManager1", "ActiveInstances"],
    )
    count: int = reply.body[0].value
    return count


@pytest.mark.asyncio
async def test_stop_unregisters_and_a_new_start_serves_again(
    bluezoo: BlueZoo, core: LinkCore
) -> None:
    server = await start_bluez_server(
        core, adapter=STATION_ADAPTER, bus_address=bluezoo.bus_address
    )
    assert server.registered and await advertisement_count(bluezoo) == 1
    await server.stop()
    assert await advertisement_count(bluezoo) == 0
    await server.start()
    try:
        assert await advertisement_count(bluezoo) == 1
        device = await find_station(bluezoo)
        async with BleakClient(device, bluez={"adapter": PHONE_ADAPTER}) as client:
            info = protocol.decode_message(bytes(await client.read_gatt_char(uuids.STATION_INFO)))
            assert info.payload["station_name"] == STATION_NAME
    finally:
        await server.stop()


@pytest.mark.asyncio
async def test_station_registers_again_after_bluez_restarts(
    bluezoo: BlueZoo, station: BluezGattServer
) -> None:
    await bluezoo.stop()
    async with asyncio.timeout(5):
        while station.registered:
            await asyncio.sleep(0.05)
    await bluezoo.start()
    async with asyncio.timeout(10):
        while not station.registered:
            await asyncio.sleep(0.05)
    device = await find_station(bluezoo)
    async with BleakClient(device, bluez={"adapter": PHONE_ADAPTER}) as client:
        info = protocol.decode_message(bytes(await client.read_gatt_char(uuids.STATION_INFO)))
        assert info.payload["station_name"] == STATION_NAME


class Emitted:
    """The events a sense emits, collected across threads, and a way to wait for one."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    async def health(self, status: HealthStatus, text: str, timeout_s: float = 10.0) -> Health:
        async with asyncio.timeout(timeout_s):
            while True:
                for event in list(self.events):
                    if (
                        isinstance(event, Health)
                        and event.status is status
                        and text in event.message
                    ):
                        return event
                await asyncio.sleep(0.05)


@pytest.mark.asyncio
async def test_link_sense_waits_for_bluez_then_serves_and_reports_its_health(
    bluezoo: BlueZoo, core: LinkCore, store: EventStore
) -> None:
    await bluezoo.stop()  # the station booted before bluetoothd
    link = BluezLink(
        core, store, ManualClock(), adapter=STATION_ADAPTER, bus_address=bluezoo.bus_address
    )
    emitted, stop = Emitted(), threading.Event()
    sense = threading.Thread(target=link.run, args=(emitted, stop))
    sense.start()
    try:
        failed = await emitted.health(HealthStatus.FAILED, "sudo systemctl start bluetooth")
        assert failed.component == "link"
        await bluezoo.start()
        await emitted.health(HealthStatus.OK, "advertising as 'senses-test'")

        device = await find_station(bluezoo)
        async with BleakClient(device, bluez={"adapter": PHONE_ADAPTER}) as client:
            phone = Phone(client)
            await phone.subscribe()
            # Appended on a sense's thread, as the runtime does.
            seq = await asyncio.to_thread(store.append, food_reading(ts=1_700_000_003.0))
            assert (await phone.next_message("food")).seq == seq

        await bluezoo.restart()
        await emitted.health(HealthStatus.DEGRADED, "left the system bus")
        await emitted.health(HealthStatus.OK, "registered with BlueZ again")
    finally:
        stop.set()
        await asyncio.to_thread(sense.join, 10)
    assert not sense.is_alive()
    assert await advertisement_count(bluezoo) == 0


# ------------------------------------------------------------ when Bluetooth is missing


async def unavailable(core: LinkCore, **kwargs: Any) -> BluetoothUnavailableError:
    with pytest.raises(BluetoothUnavailableError) as caught:
        await start_bluez_server(core, **kwargs)
    return caught.value


@pytest.mark.asyncio
async def test_no_system_bus_says_to_start_dbus(core: LinkCore, tmp_path: Path) -> None:
    error = await unavailable(core, bus_address=f"unix:path={tmp_path}/no-such-socket")
    assert error.reason is BluetoothUnavailableReason.NO_SYSTEM_BUS
    assert "systemctl start dbus" in str(error)
    assert isinstance(error, OSError)  # a HardwareError, catchable as the builtin


@pytest.mark.asyncio
async def test_no_bluez_says_to_start_bluetooth(core: LinkCore, dbus_daemon: DBusDaemon) -> None:
    error = await unavailable(core, bus_address=dbus_daemon.address)
    assert error.reason is BluetoothUnavailableReason.NO_BLUEZ
    assert "sudo systemctl start bluetooth" in str(error)


@pytest.mark.asyncio
async def test_no_adapter_and_unknown_adapter_are_reported(
    core: LinkCore, bluezoo: BlueZoo
) -> None:
    error = await unavailable(core, adapter="hci7", bus_address=bluezoo.bus_address)
    assert error.reason is BluetoothUnavailableReason.NO_ADAPTER
    assert "hci0 (00:11:22:33:44:55)" in str(error)
    await bluezoo.stop()
    await bluezoo.start(adapters=())
    error = await unavailable(core, bus_address=bluezoo.bus_address)
    assert error.reason is BluetoothUnavailableReason.NO_ADAPTER
    assert "bluetoothctl list" in str(error)


@pytest.mark.asyncio
async def test_powered_off_adapter_says_to_power_it_on(core: LinkCore, bluezoo: BlueZoo) -> None:
    await bluezoo.set_adapter(STATION_ADAPTER, "Powered", Variant("b", False))
    error = await unavailable(core, adapter=STATION_ADAPTER, bus_address=bluezoo.bus_address)
    assert error.reason is BluetoothUnavailableReason.ADAPTER_OFF
    assert "bluetoothctl power on" in str(error)
    assert "rfkill unblock bluetooth" in str(error)
