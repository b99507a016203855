"""The link on the Pi: the station's GATT server on BlueZ, over D-Bus with dbus-fast.

bluetoothd owns the radio; this process exports D-Bus objects that describe the server and
asks BlueZ to serve them (BlueZ doc/org.bluez.GattManager.rst, doc/org.bluez.GattService.rst,
doc/org.bluez.GattCharacteristic.rst, doc/org.bluez.GattDescriptor.rst: the gatt-api.txt of
older releases; doc/org.bluez.LEAdvertisingManager.rst and org.bluez.LEAdvertisement.rst:
advertising-api.txt; doc/org.bluez.Adapter.rst: adapter-api.txt):

* a GATT application: an ObjectManager root with one ``GattService1`` per service of
  :attr:`LinkCore.layout <device.link.core.LinkCore.layout>` (Senses, ESS 0x181A, DIS 0x180A),
  their ``GattCharacteristic1`` and ``GattDescriptor1`` children, registered with
  ``GattManager1.RegisterApplication``;
* an LE advertisement (``LEAdvertisement1``: our service UUID, the station name,
  ``Discoverable=true``) registered with ``LEAdvertisingManager1.RegisterAdvertisement``.

BlueZ does the rest: MTU exchange, pairing and bonding, CCCDs, one ATT bearer per phone.
Everything the station says comes from :class:`~device.link.core.LinkCore`; this module only
moves bytes between it and BlueZ. What BlueZ's D-Bus API imposes, and how we live with it:

* **Notifications go to every subscriber.** A ``PropertiesChanged(Value)`` signal becomes one
  ATT notification to each device that enabled the CCCD (src/gatt-database.c,
  ``send_notification_to_devices``); the API has no per-device notify. So frames are sized
  for the smallest ATT_MTU among connected phones, and a control outcome (backfill, result)
  reaches every subscriber: results carry their request id and the app's ``Inbox`` drops
  events it already has, so the other phones ignore them.
* **MTU per phone.** BlueZ passes ``device`` and ``mtu`` in the options of ``ReadValue`` and
  ``WriteValue`` (``StartNotify`` takes no arguments). A phone we have not heard from yet
  counts as ATT_MTU 23 (20-byte notifications).
* **Security.** The control point's ``encrypt-authenticated-write`` flag makes BlueZ refuse
  a write before it reaches us unless the link is encrypted with keys from a passkey bond
  (ATT Insufficient Encryption / Authentication, which make phones pair); with
  ``[link] allow_just_works`` it is ``encrypt-write``. Writes that do arrive are checked
  again against the device's ``Paired`` property, which is what the core gets as
  ``authenticated``. Who may bond, and when, is the station's own agent's business
  (:mod:`device.link.bluez_agent`, attached with ``pairing=``).
* **Long writes.** A write longer than ATT_MTU - 3 arrives as Prepare Write chunks of
  ATT_MTU - 5 bytes, executed as one ``WriteValue`` per chunk with increasing ``offset`` and no
  end marker; chunks are joined per phone until the message decodes or a short chunk ends it.
* **Errors.** A refused write is answered with a D-Bus error that BlueZ turns into an ATT
  error (``dbus_error_to_att_ecode``): InvalidValueLength 0x0D, NotAuthorized 0x08,
  NotPermitted 0x03, InvalidOffset 0x07, NotSupported 0x06, Failed 0x80 (BlueZ sends 0x80 for
  every Failed, whatever application code was meant), anything else 0x0E.
* **BlueZ restarts.** When ``org.bluez`` leaves the bus or the adapter disappears the server
  keeps its objects exported and registers again as soon as BlueZ and the adapter are back
  (also after an advertisement ``Release``), with backoff.

:func:`start_bluez_server` (on an event loop) reports a machine without usable Bluetooth as
:class:`BluetoothUnavailableError`, whose message says what to run; :class:`BluezLink` runs
the server as one of the station's senses and reports the same as a Health event.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Final

from dbus_fast import AuthError, BusType, DBusError, Message, MessageType, PropertyAccess, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.annotations import (
    DBusBool,
    DBusBytes,
    DBusDict,
    DBusObjectPath,
    DBusSignature,
    DBusStr,
)
from dbus_fast.service import ServiceInterface, dbus_method, dbus_property

from device.clock import Clock
from device.errors import HardwareError
from device.events import Event, Health, HealthStatus
from device.link import core as link_core
from device.link import protocol, uuids
from device.link.core import CharacteristicSpec, DescriptorSpec, LinkCore
from device.store import EventStore, StoredEvent

if TYPE_CHECKING:
    from pathlib import Path

    from device.link.bluez_agent import BluezPairing
    from device.link.pairing import PhoneRecord

log = logging.getLogger(__name__)

DBusStrList = Annotated[list[str], DBusSignature("as")]
DBusVoid = Annotated[None, DBusSignature("")]
"""A method that returns nothing (a bare ``None`` annotation would read as no signature)."""

BLUEZ: Final = "org.bluez"
ADAPTER_IFACE: Final = "org.bluez.Adapter1"
DEVICE_IFACE: Final = "org.bluez.Device1"
GATT_MANAGER_IFACE: Final = "org.bluez.GattManager1"
ADVERTISING_MANAGER_IFACE: Final = "org.bluez.LEAdvertisingManager1"
SERVICE_IFACE: Final = "org.bluez.GattService1"
CHARACTERISTIC_IFACE: Final = "org.bluez.GattCharacteristic1"
DESCRIPTOR_IFACE: Final = "org.bluez.GattDescriptor1"
ADVERTISEMENT_IFACE: Final = "org.bluez.LEAdvertisement1"
OBJECT_MANAGER_IFACE: Final = "org.freedesktop.DBus.ObjectManager"
PROPERTIES_IFACE: Final = "org.freedesktop.DBus.Properties"
DBUS: Final = "org.freedesktop.DBus"

APP_PATH: Final = "/org/senses/link/gatt"
"""Root of the GATT application (its ObjectManager). The advertisement lives outside it."""
ADVERTISEMENT_PATH: Final = "/org/senses/link/advertisement0"

DEFAULT_ATT_MTU: Final = protocol.ATT_MIN_MTU
NOTIFY_HEADER_BYTES: Final = 3
"""ATT opcode + handle in front of a notified value: payload = ATT_MTU - 3."""
PREPARE_WRITE_HEADER_BYTES: Final = 5
"""Opcode + handle + offset in front of a Prepare Write chunk: chunk = ATT_MTU - 5."""
MAX_ATTRIBUTE_BYTES: Final = 512
"""BlueZ cuts longer values (BT_ATT_MAX_VALUE_LEN)."""
CALL_DEADLINE_S: Final = 10.0
"""bluetoothd answers in milliseconds; past this it hangs and we say so."""
REREGISTER_FIRST_S: Final = 0.5
REREGISTER_MAX_S: Final = 30.0
STOP_DEADLINE_S: Final = 3.0
RETRY_FIRST_S: Final = 1.0
RETRY_MAX_S: Final = 60.0
"""Waits between attempts to start while BlueZ cannot serve (as the runtime's restarts)."""
POLL_S: Final = 0.1
COMPONENT: Final = "link"

_ATT_TO_DBUS: Final[Mapping[int, str]] = {
    0x03: "NotPermitted",
    0x06: "NotSupported",
    0x07: "InvalidOffset",
    0x08: "NotAuthorized",
    0x0D: "InvalidValueLength",
    # Insufficient Authentication / Encryption have no D-Bus name: BlueZ sends them itself
    # (the "encrypt-write" flag) before calling us. NotAuthorized is the nearest we can say.
    0x05: "NotAuthorized",
    0x0F: "NotAuthorized",
}
_APPLICATION_ERRORS: Final = range(0x80, 0xA0)
_NOT_RUNNING_ERRORS: Final = (
    "org.freedesktop.DBus.Error.ServiceUnknown",
    "org.freedesktop.DBus.Error.NameHasNoOwner",
    "org.freedesktop.DBus.Error.Spawn",
    "org.freedesktop.systemd1",
)


class BluetoothUnavailableReason(enum.StrEnum):
    """Why the station cannot serve the link; the error's message says what to do."""

    NO_SYSTEM_BUS = "no_system_bus"
    """No D-Bus system bus to connect to (dbus not installed or not running)."""
    ACCESS_DENIED = "access_denied"
    """The bus refused this user access to BlueZ (not root, not in group ``bluetooth``)."""
    NO_BLUEZ = "no_bluez"
    """bluetoothd is not running, not installed, or not answering."""
    NO_ADAPTER = "no_adapter"
    """BlueZ sees no Bluetooth controller, or not the one configured."""
    ADAPTER_BLOCKED = "adapter_blocked"
    """The controller is off because rfkill blocks it."""
    ADAPTER_OFF = "adapter_off"
    """The controller is powered off."""
    NO_LE = "no_le"
    """The controller or BlueZ offers no LE advertising or GATT server."""
    REGISTRATION_FAILED = "registration_failed"
    """BlueZ refused our GATT application or advertisement."""


class BluetoothUnavailableError(HardwareError):
    """BlueZ cannot serve the link; ``reason`` says why, the message what to do."""

    def __init__(self, reason: BluetoothUnavailableReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class _CallError(Exception):
    """A D-Bus call answered with an error (or not at all)."""

    def __init__(self, name: str, text: str) -> None:
        super().__init__(f"{name}: {text}" if text else name)
        self.name = name
        self.text = text


def _bluez_error(name: str, text: str) -> DBusError:
    return DBusError(f"org.bluez.Error.{name}", text)


def att_error_as_dbus(code: int, text: str) -> DBusError:
    """The D-Bus error BlueZ turns into ATT error ``code`` (or the nearest it has)."""
    if code in _ATT_TO_DBUS:
        return _bluez_error(_ATT_TO_DBUS[code], text)
    if code in _APPLICATION_ERRORS:
        return _bluez_error("Failed", f"0x{code:02x} {text}")
    # BlueZ answers an error name it does not map with 0x0E, Unlikely Error.
    return _bluez_error("InvalidArguments", text)


async def _call(
    bus: MessageBus,
    path: str,
    interface: str,
    member: str,
    signature: str = "",
    body: Sequence[Any] = (),
    destination: str = BLUEZ,
    deadline_s: float = CALL_DEADLINE_S,
) -> list[Any]:
    """One method call with a deadline; its reply body, or :class:`_CallError`."""
    message = Message(
        destination=destination,
        path=path,
        interface=interface,
        member=member,
        signature=signature,
        body=list(body),
    )
    try:
        async with asyncio.timeout(deadline_s):
            reply = await bus.call(message)
    except TimeoutError as e:
        raise _CallError(
            "org.freedesktop.DBus.Error.NoReply", f"no answer within {deadline_s:g} s"
        ) from e
    if reply is None:
        return []
    if reply.message_type == MessageType.ERROR:
        text = reply.body[0] if reply.body and isinstance(reply.body[0], str) else ""
        raise _CallError(reply.error_name or "unknown error", text)
    return list(reply.body)


def _option(options: Mapping[str, Variant], key: str, default: Any) -> Any:
    variant = options.get(key)
    return default if variant is None else variant.value


def _device_address(device_path: str) -> str:
    """``AA:BB:...`` from BlueZ's ``/org/bluez/hci0/dev_AA_BB_...`` (the path if it is not one)."""
    leaf = device_path.rsplit("/", 1)[-1]
    return leaf[4:].replace("_", ":") if leaf.startswith("dev_") else device_path


# ------------------------------------------------------------------------ exported objects


class _Service(ServiceInterface):
    """``org.bluez.GattService1`` (doc/org.bluez.GattService.rst)."""

    def __init__(self, path: str, uuid: str) -> None:
        super().__init__(SERVICE_IFACE)
        self.path = path
        self._uuid = uuid

    @dbus_property(access=PropertyAccess.READ, name="UUID")
    def uuid(self) -> DBusStr:
        return self._uuid

    @dbus_property(access=PropertyAccess.READ, name="Primary")
    def primary(self) -> DBusBool:
        return True


class _Characteristic(ServiceInterface):
    """``org.bluez.GattCharacteristic1`` (doc/org.bluez.GattCharacteristic.rst).

    Reads and writes are answered by the server; ``Value`` holds the last value sent, and
    changing it while a phone subscribed is what makes BlueZ notify.
    """

    def __init__(
        self, path: str, spec: CharacteristicSpec, service: _Service, server: BluezGattServer
    ) -> None:
        super().__init__(CHARACTERISTIC_IFACE)
        self.path = path
        self.spec = spec
        self._service_path = service.path
        self._server = server
        self.value = spec.value if spec.value is not None else b""
        self.notifying = False

    @dbus_property(access=PropertyAccess.READ, name="UUID")
    def uuid(self) -> DBusStr:
        return self.spec.uuid

    @dbus_property(access=PropertyAccess.READ, name="Service")
    def service(self) -> DBusObjectPath:
        return self._service_path

    @dbus_property(access=PropertyAccess.READ, name="Flags")
    def flags(self) -> DBusStrList:
        return list(self.spec.flags)

    @dbus_property(access=PropertyAccess.READ, name="Value")
    def value_property(self) -> DBusBytes:
        return self.value

    @dbus_method(name="ReadValue")
    def read_value(self, options: DBusDict) -> DBusBytes:
        return self._server.read(self.spec, self.path, options)

    @dbus_method(name="WriteValue")
    async def write_value(self, value: DBusBytes, options: DBusDict) -> DBusVoid:
        await self._server.write(self.spec, bytes(value), options)

    @dbus_method(name="StartNotify")
    def start_notify(self) -> DBusVoid:
        # BlueZ calls this for each phone that enables the CCCD and StopNotify once the last
        # one disables it, so a flag (not a count) is the state it describes.
        self.notifying = True

    @dbus_method(name="StopNotify")
    def stop_notify(self) -> DBusVoid:
        self.notifying = False

    @dbus_method(name="Confirm")
    def confirm(self) -> DBusVoid:
        """BlueZ calls it when a phone confirms an indication; BlueZoo after notifications."""

    def send(self, frames: Sequence[bytes]) -> None:
        for frame in frames:
            self.value = frame
            if self.notifying:
                self.emit_properties_changed({"Value": frame})


class _Descriptor(ServiceInterface):
    """``org.bluez.GattDescriptor1`` (doc/org.bluez.GattDescriptor.rst): a static value."""

    def __init__(
        self,
        path: str,
        spec: DescriptorSpec,
        characteristic: _Characteristic,
        server: BluezGattServer,
    ) -> None:
        super().__init__(DESCRIPTOR_IFACE)
        self.path = path
        self.spec = spec
        self._characteristic_path = characteristic.path
        self._server = server

    @dbus_property(access=PropertyAccess.READ, name="UUID")
    def uuid(self) -> DBusStr:
        return self.spec.uuid

    @dbus_property(access=PropertyAccess.READ, name="Characteristic")
    def characteristic(self) -> DBusObjectPath:
        return self._characteristic_path

    @dbus_property(access=PropertyAccess.READ, name="Flags")
    def flags(self) -> DBusStrList:
        return list(self.spec.flags)

    @dbus_method(name="ReadValue")
    def read_value(self, options: DBusDict) -> DBusBytes:
        return self._server.read_static(self.path, self.spec.value, options)


class _Advertisement(ServiceInterface):
    """``org.bluez.LEAdvertisement1`` (doc/org.bluez.LEAdvertisement.rst)."""

    def __init__(
        self, path: str, name: str, service_uuids: Sequence[str], server: BluezGattServer
    ) -> None:
        super().__init__(ADVERTISEMENT_IFACE)
        self.path = path
        self._name = name
        self._service_uuids = list(service_uuids)
        self._server = server

    @dbus_property(access=PropertyAccess.READ, name="Type")
    def type_(self) -> DBusStr:
        return "peripheral"

    @dbus_property(access=PropertyAccess.READ, name="ServiceUUIDs")
    def service_uuids(self) -> DBusStrList:
        return self._service_uuids

    @dbus_property(access=PropertyAccess.READ, name="LocalName")
    def local_name(self) -> DBusStr:
        return self._name

    # BlueZ turns it into the LE General Discoverable flag (advertising.c, parse_discoverable);
    # without it phones skip the station unless the adapter itself is discoverable, and
    # BlueZoo reports no advertiser at all (research notes §2.3).
    @dbus_property(access=PropertyAccess.READ, name="Discoverable")
    def discoverable(self) -> DBusBool:
        return True

    @dbus_method(name="Release")
    def release(self) -> DBusVoid:
        self._server.on_advertisement_released()


# ---------------------------------------------------------------------------------- server


@dataclass
class _Client:
    """What we know of one connected phone (a BlueZ Device1 under our adapter)."""

    mtu: int | None = None
    partial_write: bytes | None = None
    """The chunks of a long write received so far."""
    read_cache: dict[str, bytes] = field(default_factory=dict)
    """Object path -> value of a long read, kept from its first Read for the Read Blobs."""


def _unavailable_bus(address: str, error: BaseException) -> BluetoothUnavailableError:
    if isinstance(error, AuthError):
        return BluetoothUnavailableError(
            BluetoothUnavailableReason.ACCESS_DENIED,
            f"the D-Bus system bus at {address} refused this process ({error}); "
            "run the station as root or as a user in the group 'bluetooth'",
        )
    # asyncio's TimeoutError has no message: say what it means.
    detail = str(error) or f"no answer, {type(error).__name__}"
    return BluetoothUnavailableError(
        BluetoothUnavailableReason.NO_SYSTEM_BUS,
        f"cannot connect to the D-Bus system bus at {address} ({detail}): is D-Bus running? "
        "'sudo systemctl start dbus' (Debian package dbus), or set DBUS_SYSTEM_BUS_ADDRESS",
    )


def _unavailable_bluez(error: _CallError) -> BluetoothUnavailableError:
    if error.name == "org.freedesktop.DBus.Error.AccessDenied":
        return BluetoothUnavailableError(
            BluetoothUnavailableReason.ACCESS_DENIED,
            f"the system bus does not let this user talk to BlueZ ({error.text}); run the "
            "station as root or add the user to the group 'bluetooth' "
            "('sudo usermod -aG bluetooth $USER', then log in again)",
        )
    if error.name.startswith(_NOT_RUNNING_ERRORS):
        return BluetoothUnavailableError(
            BluetoothUnavailableReason.NO_BLUEZ,
            f"BlueZ (bluetoothd) is not running: no org.bluez on the system bus ({error}); "
            "'sudo systemctl start bluetooth' ('sudo apt-get install bluez' if it is missing, "
            "'sudo systemctl enable bluetooth' to start it at boot)",
        )
    return BluetoothUnavailableError(
        BluetoothUnavailableReason.NO_BLUEZ,
        f"BlueZ (bluetoothd) does not answer ({error}); 'sudo systemctl restart bluetooth', "
        "and 'journalctl -u bluetooth' says why if it keeps failing",
    )


def _pick_adapter(
    objects: Mapping[str, Mapping[str, Mapping[str, Variant]]], wanted: str | None
) -> str:
    """The object path of the adapter to serve on; raises if it cannot serve the link."""
    adapters = {path: ifaces for path, ifaces in objects.items() if ADAPTER_IFACE in ifaces}
    if not adapters:
        raise BluetoothUnavailableError(
            BluetoothUnavailableReason.NO_ADAPTER,
            "BlueZ is running but sees no Bluetooth adapter: 'bluetoothctl list' should show "
            "one. Check 'rfkill list' and 'dmesg | grep -i blue' (firmware); on a Pi with "
            "built-in Bluetooth, 'sudo systemctl restart hciuart' and make sure "
            "/boot/firmware/config.txt has no dtoverlay=disable-bt",
        )
    if wanted is None:
        path = sorted(adapters)[0]
    else:
        path = wanted if wanted.startswith("/") else f"/org/bluez/{wanted}"
        if path not in adapters:
            known = ", ".join(
                f"{p.rsplit('/', 1)[-1]} ({_option(i[ADAPTER_IFACE], 'Address', '?')})"
                for p, i in sorted(adapters.items())
            )
            raise BluetoothUnavailableError(
                BluetoothUnavailableReason.NO_ADAPTER,
                f"no Bluetooth adapter {wanted}; BlueZ has {known}: configure one of those",
            )
    interfaces = adapters[path]
    name = path.rsplit("/", 1)[-1]
    properties = interfaces[ADAPTER_IFACE]
    if not _option(properties, "Powered", False):
        if _option(properties, "PowerState", "") == "off-blocked":
            raise BluetoothUnavailableError(
                BluetoothUnavailableReason.ADAPTER_BLOCKED,
                f"Bluetooth adapter {name} is blocked by rfkill: 'rfkill unblock bluetooth', "
                "then 'bluetoothctl power on'",
            )
        raise BluetoothUnavailableError(
            BluetoothUnavailableReason.ADAPTER_OFF,
            f"Bluetooth adapter {name} is powered off: 'bluetoothctl power on' ('rfkill "
            "unblock bluetooth' first if rfkill blocks it; AutoEnable=true in "
            "/etc/bluetooth/main.conf powers it at boot)",
        )
    missing = [i for i in (GATT_MANAGER_IFACE, ADVERTISING_MANAGER_IFACE) if i not in interfaces]
    if missing:
        raise BluetoothUnavailableError(
            BluetoothUnavailableReason.NO_LE,
            f"Bluetooth adapter {name} offers no {' or '.join(missing)}: it cannot advertise "
            "or serve GATT over LE. Use an LE-capable (Bluetooth 4.0+) adapter and BlueZ 5.50+, "
            "with ControllerMode = dual or le in /etc/bluetooth/main.conf",
        )
    return path


class BluezGattServer:
    """The station's GATT server on BlueZ, driven by a :class:`LinkCore`.

    Create it, then ``await start()`` on the event loop it will run on; ``stop()`` unregisters
    and releases everything, after which ``start()`` may be called again.
    """

    def __init__(
        self,
        core: LinkCore,
        *,
        adapter: str | None = None,
        bus_address: str | None = None,
        name: str | None = None,
        pairing: BluezPairing | None = None,
    ) -> None:
        """``adapter``: "hci0" or an object path (None: the first one BlueZ lists).
        ``bus_address``: the system bus (None: $DBUS_SYSTEM_BUS_ADDRESS or the default).
        ``name``: the advertised name (None: the core's station name).
        ``pairing``: the station's pairing agent and window (None: no agent; whoever else
        runs one decides who bonds)."""
        self.core = core
        self.pairing = pairing
        self.adapter = adapter
        self.bus_address = bus_address
        self.name = name if name is not None else core.station_name
        self.adapter_path: str | None = None
        self.clients: dict[str, _Client] = {}
        """Connected phones by Device1 object path."""
        self.on_change: Callable[[bool, str], None] | None = None
        """Called with (registered, what happened) when BlueZ drops the station or takes it
        back after :meth:`start` (a BlueZ restart, the adapter going away or coming back)."""
        self._bus: MessageBus | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._characteristics: dict[str, _Characteristic] = {}
        self._objects: list[tuple[str, ServiceInterface]] = []
        self._app_registered = False
        self._advertising = False
        self._wake: asyncio.Event | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._feed = link_core.StoreFeed(core, self.send)
        self._build()

    def _build(self) -> None:
        for s, service_spec in enumerate(self.core.layout):
            service = _Service(f"{APP_PATH}/service{s}", service_spec.uuid)
            self._objects.append((service.path, service))
            for c, spec in enumerate(service_spec.characteristics):
                characteristic = _Characteristic(f"{service.path}/char{c}", spec, service, self)
                self._objects.append((characteristic.path, characteristic))
                self._characteristics[spec.uuid] = characteristic
                for d, descriptor_spec in enumerate(spec.descriptors):
                    descriptor = _Descriptor(
                        f"{characteristic.path}/desc{d}", descriptor_spec, characteristic, self
                    )
                    self._objects.append((descriptor.path, descriptor))
        advertisement = _Advertisement(ADVERTISEMENT_PATH, self.name, [uuids.SENSES_SERVICE], self)
        self._objects.append((advertisement.path, advertisement))

    # --- lifecycle --------------------------------------------------------------------------

    @property
    def bus_name(self) -> str | None:
        """Our unique name on the system bus: where BlueZ sends reads and writes."""
        return None if self._bus is None else self._bus.unique_name

    def characteristic_path(self, uuid: str) -> str:
        """The object path of the characteristic ``uuid`` (KeyError if there is none)."""
        return self._characteristics[uuid].path

    @property
    def registered(self) -> bool:
        """True while BlueZ serves our application and advertises the station."""
        return self._app_registered and self._advertising

    @property
    def _complete(self) -> bool:
        """Registered, and so is the pairing agent when there is one."""
        return self.registered and (self.pairing is None or self.pairing.agent_registered)

    async def start(self) -> None:
        """Connect to the system bus, export the objects, register them with BlueZ.

        Raises :class:`BluetoothUnavailableError` (and leaves nothing behind) when the
        machine cannot serve the link.
        """
        if self._bus is not None:
            raise RuntimeError("the BlueZ link server is already started")
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()  # an Event belongs to the loop it is first used on
        address = self.bus_address
        try:
            async with asyncio.timeout(CALL_DEADLINE_S):
                if address is None:
                    bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
                else:
                    bus = await MessageBus(bus_address=address).connect()
        except (OSError, AuthError, TimeoutError, ValueError) as e:
            raise _unavailable_bus(
                address
                or os.environ.get(
                    "DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/run/dbus/system_bus_socket"
                ),
                e,
            ) from e
        self._bus = bus
        try:
            for path, interface in self._objects:
                bus.export(path, interface)
            if self.pairing is not None:
                self.pairing.export(self, bus)
            bus.add_message_handler(self._on_message)
            await self._watch_bluez(bus)
            await self._register(bus, agent_errors_fatal=False)
        except BaseException:
            await self._close()
            raise
        self._supervisor = asyncio.create_task(self._keep_registered(), name="bluez-link")
        if not self._complete:
            self._wake_up()  # the agent failed: the supervisor retries it with backoff
        log.info(
            "link: serving %d services on %s, advertising as %r",
            len(self.core.layout),
            self.adapter_path,
            self.name,
        )

    async def stop(self) -> None:
        """Unregister from BlueZ, stop listening to the store, close the bus connection."""
        self.detach()
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        bus = self._bus
        if bus is not None and self.adapter_path is not None:
            # Best effort: a BlueZ that is gone has forgotten us already.
            if self.pairing is not None:
                await self.pairing.detach(bus, STOP_DEADLINE_S)
            if self._advertising:
                await self._unregister(
                    bus, ADVERTISING_MANAGER_IFACE, "UnregisterAdvertisement", ADVERTISEMENT_PATH
                )
            if self._app_registered:
                await self._unregister(bus, GATT_MANAGER_IFACE, "UnregisterApplication", APP_PATH)
        await self._close()
        log.info("link: stopped")

    async def _unregister(self, bus: MessageBus, interface: str, member: str, path: str) -> None:
        assert self.adapter_path is not None
        try:
            await _call(
                bus, self.adapter_path, interface, member, "o", [path], deadline_s=STOP_DEADLINE_S
            )
        except _CallError as e:
            log.debug("link: %s: %s", member, e)

    async def _close(self) -> None:
        bus, self._bus = self._bus, None
        self._app_registered = self._advertising = False
        self.clients.clear()
        for characteristic in self._characteristics.values():
            characteristic.notifying = False
        if bus is None:
            return
        for path, interface in self._objects:
            bus.unexport(path, interface)
        if self.pairing is not None:
            self.pairing.unexport(bus)
        bus.remove_message_handler(self._on_message)
        bus.disconnect()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(STOP_DEADLINE_S):
                await bus.wait_for_disconnect()  # type: ignore[no-untyped-call]  # dbus-fast 5.2

    # --- registration ---------------------------------------------------------------------

    async def _watch_bluez(self, bus: MessageBus) -> None:
        """Subscribe to what tells us BlueZ, the adapter or a phone came or went."""
        rules = (
            f"type='signal',sender='{DBUS}',interface='{DBUS}',member='NameOwnerChanged',"
            f"arg0='{BLUEZ}'",
            f"type='signal',sender='{BLUEZ}',interface='{OBJECT_MANAGER_IFACE}'",
            f"type='signal',sender='{BLUEZ}',interface='{PROPERTIES_IFACE}',"
            f"member='PropertiesChanged',arg0='{DEVICE_IFACE}'",
            f"type='signal',sender='{BLUEZ}',interface='{PROPERTIES_IFACE}',"
            f"member='PropertiesChanged',arg0='{ADAPTER_IFACE}'",
        )
        for rule in rules:
            try:
                await _call(bus, "/org/freedesktop/DBus", DBUS, "AddMatch", "s", [rule], DBUS)
            except _CallError as e:
                raise BluetoothUnavailableError(
                    BluetoothUnavailableReason.NO_SYSTEM_BUS,
                    f"the system bus refused a signal subscription ({e}); restart dbus",
                ) from e

    async def _register(self, bus: MessageBus, *, agent_errors_fatal: bool = True) -> None:
        """Find the adapter and register what is not registered yet. Idempotent.

        The pairing agent comes last; with ``agent_errors_fatal`` False its failure is only
        logged (the streams serve without it, and the supervisor retries it)."""
        try:
            (objects,) = await _call(bus, "/", OBJECT_MANAGER_IFACE, "GetManagedObjects")
        except _CallError as e:
            raise _unavailable_bluez(e) from e
        path = _pick_adapter(objects, self.adapter)
        if path != self.adapter_path:
            self._app_registered = self._advertising = False
            self.adapter_path = path
        self._sync_clients(objects)
        name = path.rsplit("/", 1)[-1]
        if not self._app_registered:
            try:
                await _call(
                    bus, path, GATT_MANAGER_IFACE, "RegisterApplication", "oa{sv}", [APP_PATH, {}]
                )
            except _CallError as e:
                if not e.name.endswith(".AlreadyExists"):
                    raise BluetoothUnavailableError(
                        BluetoothUnavailableReason.REGISTRATION_FAILED,
                        f"BlueZ on {name} refused the GATT application ({e}); "
                        "'journalctl -u bluetooth' names the attribute it rejects "
                        "(BlueZ 5.50 or newer is needed)",
                    ) from e
            self._app_registered = True
        if not self._advertising:
            try:
                await _call(
                    bus,
                    path,
                    ADVERTISING_MANAGER_IFACE,
                    "RegisterAdvertisement",
                    "oa{sv}",
                    [ADVERTISEMENT_PATH, {}],
                )
            except _CallError as e:
                if not e.name.endswith(".AlreadyExists"):
                    raise self._advertising_refused(name, e) from e
            self._advertising = True
        if self.pairing is not None:
            from device.link.pairing import PairingError

            try:
                await self.pairing.attach(bus, path, objects)
            except PairingError as e:
                if agent_errors_fatal:
                    raise
                log.warning("link: %s; phones cannot pair until it is registered", e)

    def _advertising_refused(self, adapter: str, error: _CallError) -> BluetoothUnavailableError:
        if error.name.endswith(".InvalidLength"):
            hint = (
                f"the advertisement does not fit in 31 bytes: shorten station.name "
                f"({len(self.name.encode())} bytes now)"
            )
        elif error.name.endswith(".NotPermitted"):
            hint = (
                "the adapter has no advertising slot left: other programs advertise "
                "('bluetoothctl advertise off', or stop them)"
            )
        else:
            hint = "'journalctl -u bluetooth' says why"
        return BluetoothUnavailableError(
            BluetoothUnavailableReason.REGISTRATION_FAILED,
            f"BlueZ on {adapter} refused the advertisement ({error}): {hint}",
        )

    async def _keep_registered(self) -> None:
        """Register again whenever something says we are not (BlueZ restart, Release, ...)."""
        wake = self._wake
        assert wake is not None, "started"
        while True:
            await wake.wait()
            delay_s = REREGISTER_FIRST_S
            while not self._complete:
                wake.clear()
                bus = self._bus
                if bus is None:
                    return
                try:
                    await self._register(bus)
                except Exception as e:
                    if isinstance(e, BluetoothUnavailableError):
                        log.warning("link: not registered (%s); retry in %.1f s", e, delay_s)
                    else:
                        log.exception("link: registering failed; retry in %.1f s", delay_s)
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(delay_s):
                            await wake.wait()
                    delay_s = min(delay_s * 2, REREGISTER_MAX_S)
                else:
                    log.info("link: registered with BlueZ again on %s", self.adapter_path)
                    self._changed(True, f"registered with BlueZ again on {self.adapter_path}")
            wake.clear()

    def _wake_up(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def wake_up(self) -> None:
        """Check the registrations again now (the agent was released, ...)."""
        self._wake_up()

    def _changed(self, registered: bool, what: str) -> None:
        if self.on_change is not None:
            try:
                self.on_change(registered, what)
            except Exception:
                log.exception("link: on_change failed")

    def _lost(self, why: str) -> None:
        if self.pairing is not None:
            self.pairing.lost()
        if self._app_registered or self._advertising:
            log.warning("link: %s; the station is not reachable until it is back", why)
            self._changed(False, f"{why}; phones cannot reach the station until it is back")
        self._app_registered = self._advertising = False
        self.clients.clear()
        for characteristic in self._characteristics.values():
            characteristic.notifying = False

    def on_advertisement_released(self) -> None:
        """BlueZ dropped our advertisement (adapter reset, power cycle): advertise again."""
        log.warning("link: BlueZ released the advertisement; registering it again")
        self._advertising = False
        self._wake_up()

    # --- signals ------------------------------------------------------------------------------

    def _on_message(self, message: Message) -> None:
        if message.message_type != MessageType.SIGNAL:
            return
        try:
            self._on_signal(message)
        except Exception:
            # A malformed signal must not take the server down; it only costs us a state update.
            log.exception("link: cannot handle %s.%s", message.interface, message.member)

    def _on_signal(self, message: Message) -> None:
        member, body = message.member, message.body
        if member == "NameOwnerChanged" and message.interface == DBUS:
            name, _old, new = body
            if name != BLUEZ:
                return
            if new:
                log.info("link: BlueZ is back on the bus")
                self._lost("BlueZ restarted")
                self._wake_up()
            else:
                self._lost("BlueZ (bluetoothd) left the system bus")
            return
        if message.interface == OBJECT_MANAGER_IFACE:
            path, interfaces = body
            if member == "InterfacesAdded":
                if ADAPTER_IFACE in interfaces and not self.registered:
                    self._wake_up()
                elif DEVICE_IFACE in interfaces:
                    self._device_changed(path, interfaces[DEVICE_IFACE])
            elif member == "InterfacesRemoved":
                if ADAPTER_IFACE in interfaces and path == self.adapter_path:
                    self._lost(f"Bluetooth adapter {path} disappeared")
                    self._wake_up()
                elif DEVICE_IFACE in interfaces:
                    self._forget(path)
                    if self.pairing is not None and self._ours(path):
                        self.pairing.device_removed(path)
            return
        if member == "PropertiesChanged" and message.interface == PROPERTIES_IFACE:
            interface, changed, _invalidated = body
            path = message.path or ""
            if interface == DEVICE_IFACE:
                self._device_changed(path, changed)
            elif interface == ADAPTER_IFACE and path == self.adapter_path and "Pairable" in changed:
                if self.pairing is not None:
                    self.pairing.adapter_pairable(bool(changed["Pairable"].value))
            elif interface == ADAPTER_IFACE and path == self.adapter_path and "Powered" in changed:
                if changed["Powered"].value:
                    # Whether BlueZ kept the advertisement over the power cycle or not,
                    # registering it again is safe: AlreadyExists counts as success.
                    self._advertising = False
                    self._wake_up()
                else:
                    what = f"adapter {path} powered off: phones cannot reach the station"
                    log.warning("link: %s until 'bluetoothctl power on'", what)
                    self._changed(False, f"{what} ('bluetoothctl power on')")

    def _ours(self, device_path: str) -> bool:
        return self.adapter_path is not None and device_path.startswith(self.adapter_path + "/")

    def _device_changed(self, path: str, properties: Mapping[str, Variant]) -> None:
        if self.pairing is not None and self._ours(path):
            self.pairing.device_changed(path, properties)
        if not self._ours(path) or "Connected" not in properties:
            return
        if properties["Connected"].value:
            if path not in self.clients:
                self.clients[path] = _Client()
                log.info("link: %s connected", _device_address(path))
        else:
            self._forget(path)

    def _forget(self, path: str) -> None:
        if self.clients.pop(path, None) is not None:
            log.info("link: %s disconnected", _device_address(path))

    def _sync_clients(self, objects: Mapping[str, Mapping[str, Mapping[str, Variant]]]) -> None:
        connected = {
            path
            for path, interfaces in objects.items()
            if self._ours(path)
            and DEVICE_IFACE in interfaces
            and _option(interfaces[DEVICE_IFACE], "Connected", False)
        }
        for path in set(self.clients) - connected:
            del self.clients[path]
        for path in connected - set(self.clients):
            self.clients[path] = _Client()

    # --- events out -------------------------------------------------------------------------

    @property
    def max_payload(self) -> int:
        """Bytes per notification: ATT_MTU - 3 of the connected phone with the smallest MTU.

        Every subscriber receives every notification (see the module docstring), so the frame
        must fit the smallest; a phone whose MTU we have not learnt counts as 23.
        """
        mtus = [c.mtu or DEFAULT_ATT_MTU for c in self.clients.values()] or [DEFAULT_ATT_MTU]
        return min(min(mtus) - NOTIFY_HEADER_BYTES, MAX_ATTRIBUTE_BYTES)

    def attach(self, store: EventStore) -> None:
        """Send every event ``store`` commits from now on (call on the server's loop)."""
        self._loop = asyncio.get_running_loop()
        self._feed.attach(store)

    def detach(self) -> None:
        self._feed.detach()

    def publish(self, stored: StoredEvent) -> None:
        """Send one stored event now (on the server's loop): its stream and changed ESS values."""
        self.send(self.core.on_stored(stored))

    def send(self, items: Sequence[tuple[str, bytes]]) -> None:
        """Notify each ``(characteristic uuid, message or value)``, in order, framed to fit."""
        max_payload = self.max_payload
        for uuid, data in items:
            characteristic = self._characteristics.get(uuid)
            if characteristic is None:
                log.error("link: no characteristic %s to send %d bytes on", uuid, len(data))
                continue
            try:
                frames = self.core.notifications_for(uuid, data, max_payload)
            except protocol.ProtocolError as e:
                log.error("link: cannot send on %s: %s", characteristic.spec.description, e)
                continue
            characteristic.send(frames)

    # --- reads and writes (called by the exported objects) --------------------------------

    def _client(self, options: Mapping[str, Variant]) -> tuple[str, _Client]:
        """The phone a request comes from, with the MTU BlueZ reports for its link noted."""
        path = str(_option(options, "device", "unknown device"))
        client = self.clients.get(path)
        if client is None:
            client = _Client()
            if path.startswith("/"):
                # It is evidently connected; the Connected signal may still be on its way.
                self.clients[path] = client
                if self.pairing is not None:
                    self.pairing.seen(path)
        mtu = _option(options, "mtu", None)
        if isinstance(mtu, int) and mtu >= DEFAULT_ATT_MTU and mtu != client.mtu:
            client.mtu = mtu
            log.debug("link: %s has ATT_MTU %d", _device_address(path), mtu)
        return path, client

    def read(self, spec: CharacteristicSpec, path: str, options: Mapping[str, Variant]) -> bytes:
        try:
            value = spec.value if spec.value is not None else self.core.read_value(spec.uuid)
        except Exception as e:
            log.exception("link: reading %s failed", spec.description)
            raise _bluez_error("Failed", "the station failed to read this value") from e
        if value is None:
            raise _bluez_error("NotPermitted", f"{spec.description} is not readable")
        return self.read_static(path, value, options)

    def read_static(self, path: str, value: bytes, options: Mapping[str, Variant]) -> bytes:
        """``value`` from ``offset`` on, consistent across the Read Blobs of one long read.

        ``path`` is the object read (UUIDs repeat: every characteristic has a 0x2901)."""
        _device, client = self._client(options)
        offset = _option(options, "offset", 0)
        if offset == 0:
            client.read_cache[path] = value
        else:
            value = client.read_cache.get(path, value)
        if not 0 <= offset <= len(value):
            raise _bluez_error("InvalidOffset", f"offset {offset} past the {len(value)}-byte value")
        return value[offset:]

    async def write(
        self, spec: CharacteristicSpec, value: bytes, options: Mapping[str, Variant]
    ) -> None:
        """Answer a write: refused ones with the D-Bus error BlueZ maps to an ATT error."""
        path, client = self._client(options)
        address = _device_address(path)
        if spec.uuid != uuids.CONTROL_POINT:
            log.warning("link: %s wrote to read-only %s; refused", address, spec.description)
            raise _bluez_error("NotPermitted", f"{spec.description} is not writable")
        try:
            data = self._assemble(client, value, int(_option(options, "offset", 0)), address)
            if data is None:
                return
            authenticated = await self._paired(path)
            if authenticated and self.pairing is not None:
                # Only bonds the station's window allowed count (no half-made bond).
                authenticated = await self.pairing.is_kept_bond(path)
            outcome = self.core.handle_control(data, client=address, authenticated=authenticated)
        except DBusError:
            raise
        except Exception as e:
            log.exception("link: control point write from %s failed", address)
            raise _bluez_error("Failed", "the station failed to handle the request") from e
        if outcome.att_error is not None:
            # The core has logged why; BlueZ answers the write with the matching ATT error.
            raise att_error_as_dbus(outcome.att_error, outcome.code.name)
        if outcome.notifications and self._loop is not None:
            # The core wants the write answered before its notifications. Our reply goes out
            # from a callback scheduled when this coroutine returns; two hops lands after it.
            loop = self._loop
            loop.call_soon(loop.call_soon, self.send, outcome.notifications)

    def _assemble(self, client: _Client, value: bytes, offset: int, address: str) -> bytes | None:
        """The whole control request once it is complete, or None while a long write runs."""
        if offset == 0:
            if client.partial_write is not None:
                log.warning(
                    "link: %s abandoned a %d-byte long write", address, len(client.partial_write)
                )
            data = value
        elif client.partial_write is not None and offset == len(client.partial_write):
            data = client.partial_write + value
        else:
            client.partial_write = None
            log.warning("link: %s wrote at offset %d out of sequence; refused", address, offset)
            raise _bluez_error("InvalidOffset", f"offset {offset} does not continue a write")
        client.partial_write = None
        # A Prepare Write chunk fills ATT_MTU - 5 bytes exactly; a full chunk that does not
        # decode yet is the head of a long write, anything else is the whole request.
        full_chunk = (
            client.mtu is not None and len(value) == client.mtu - PREPARE_WRITE_HEADER_BYTES
        )
        if full_chunk and len(data) < link_core.MAX_CONTROL_BYTES and not _decodes(data):
            client.partial_write = data
            return None
        return data

    async def _paired(self, device_path: str) -> bool:
        """Whether BlueZ has keys for this phone (what "encrypt-write" lets through)."""
        bus = self._bus
        if bus is None or not device_path.startswith("/"):
            return False
        try:
            (paired,) = await _call(
                bus, device_path, PROPERTIES_IFACE, "Get", "ss", [DEVICE_IFACE, "Paired"]
            )
        except _CallError as e:
            log.warning("link: cannot tell whether %s is paired (%s)", device_path, e)
            return False
        return bool(paired.value)


def _decodes(data: bytes) -> bool:
    try:
        protocol.decode_message(data)
    except protocol.ProtocolError:
        return False
    return True


async def start_bluez_server(
    core: LinkCore,
    *,
    store: EventStore | None = None,
    adapter: str | None = None,
    bus_address: str | None = None,
    name: str | None = None,
    pairing: BluezPairing | None = None,
) -> BluezGattServer:
    """Serve ``core`` over BlueZ and, with ``store``, send every event it commits.

    Raises :class:`BluetoothUnavailableError` when this machine cannot (no system bus, no
    bluetoothd, no adapter, adapter off or blocked, BlueZ refusing our objects); its message
    says what to do and its ``reason`` which case it is.
    """
    server = BluezGattServer(
        core, adapter=adapter, bus_address=bus_address, name=name, pairing=pairing
    )
    await server.start()
    if store is not None:
        server.attach(store)
    return server


class BluezLink:
    """The link as one of the station's senses: ``station.add_sense("link", link.run)``.

    Serves ``core`` over BlueZ, sending every event ``store`` commits, until ``stop`` is set.
    While BlueZ cannot serve (bluetoothd not up yet at boot, no adapter, adapter off) it says
    why in a :class:`~device.events.Health` event, once per distinct reason, and tries again
    with backoff; once serving, the server itself rides out BlueZ restarts.

    With ``pairing`` it runs the station's pairing agent and window, and with
    ``control_socket`` it answers ``senses link pair | phones | forget`` on that Unix socket
    (:mod:`device.link.control_socket`), also while BlueZ is away (then with why).
    """

    def __init__(
        self,
        core: LinkCore,
        store: EventStore,
        clock: Clock,
        *,
        adapter: str | None = None,
        bus_address: str | None = None,
        name: str | None = None,
        pairing: BluezPairing | None = None,
        control_socket: Path | None = None,
        pair_window_s: float = 120.0,
    ) -> None:
        self.core = core
        self.store = store
        self.clock = clock
        self.adapter = adapter
        self.bus_address = bus_address
        self.name = name
        self.pairing = pairing
        self.control_socket = control_socket
        self.pair_window_s = pair_window_s
        self.server: BluezGattServer | None = None
        """The running server, once BlueZ accepted it."""
        self._unavailable: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- what the control socket (and MQTT) ask -----------------------------------------------

    def _pairing_ready(self) -> BluezPairing:
        from device.link.pairing import PairingError

        if self.pairing is None:
            raise PairingError("this station runs without its pairing agent")
        if self.server is None:
            why = self._unavailable or "BlueZ is not serving the station yet"
            raise PairingError(f"the link is not serving, so no phone can pair: {why}")
        return self.pairing

    async def pair(self, seconds: float | None, send: Callable[[dict[str, Any]], Any]) -> bool:
        """Open the window and stream its events to ``send`` until a bond or its end.

        True if a phone bonded. Cancelled (the ``pair`` command was interrupted): the window
        closes."""
        from device.link.pairing import EventKind, PairingEvent

        pairing = self._pairing_ready()
        events: asyncio.Queue[PairingEvent] = asyncio.Queue()
        pairing.window.listeners.append(events.put_nowait)
        try:
            pairing.open_window(seconds or self.pair_window_s, by="senses link pair")
            while True:
                event = await events.get()
                await send({"event": str(event.kind), **event.to_dict()})
                if event.kind is EventKind.BONDED:
                    return True
                if event.kind is EventKind.CLOSED:
                    return False
        except asyncio.CancelledError:
            pairing.window.close("'senses link pair' was interrupted")
            raise
        finally:
            pairing.window.listeners.remove(events.put_nowait)

    def phones(self) -> list[PhoneRecord]:
        return self._pairing_ready().phones()

    async def forget(self, address: str) -> PhoneRecord:
        return await self._pairing_ready().forget(address)

    def open_pairing_window(self, seconds: float | None = None, *, by: str) -> None:
        """Open the window from another thread (the MQTT button). Errors are logged."""
        loop = self._loop
        if loop is None:
            log.warning("link: cannot open a pairing window (%s): the link is not running", by)
            return

        def open_now() -> None:
            try:
                self._pairing_ready().open_window(seconds or self.pair_window_s, by=by)
            except Exception as e:
                log.warning("link: cannot open a pairing window (%s): %s", by, e)

        loop.call_soon_threadsafe(open_now)

    def run(self, emit: Callable[[Event], None], stop: threading.Event) -> None:
        """The sense entry point for :meth:`device.runtime.Station.add_sense`."""
        asyncio.run(self._serve(emit, stop))

    def _health(self, emit: Callable[[Event], None], status: HealthStatus, message: str) -> None:
        emit(Health(ts=self.clock.wall(), component=COMPONENT, status=status, message=message))

    async def _serve(self, emit: Callable[[Event], None], stop: threading.Event) -> None:
        from device.link.control_socket import ControlSocketServer
        from device.link.pairing import PairingError

        self._loop = asyncio.get_running_loop()
        socket_server: ControlSocketServer | None = None
        if self.control_socket is not None:
            socket_server = ControlSocketServer(self.control_socket, self)
            try:
                await socket_server.start()
            except (PairingError, OSError) as e:
                log.error("link: no control socket at %s: %s", self.control_socket, e)
                self._health(
                    emit,
                    HealthStatus.DEGRADED,
                    f"'senses link pair' cannot reach the daemon: control socket "
                    f"{self.control_socket}: {e}",
                )
                socket_server = None
        try:
            await self._serve_bluez(emit, stop)
        finally:
            if socket_server is not None:
                await socket_server.stop()
            self._loop = None

    async def _serve_bluez(self, emit: Callable[[Event], None], stop: threading.Event) -> None:
        delay_s = RETRY_FIRST_S
        reported: str | None = None
        while not stop.is_set():
            server = BluezGattServer(
                self.core,
                adapter=self.adapter,
                bus_address=self.bus_address,
                name=self.name,
                pairing=self.pairing,
            )
            try:
                await server.start()
            except BluetoothUnavailableError as e:
                self._unavailable = str(e)
                if str(e) != reported:
                    log.warning("link: %s", e)
                    self._health(emit, HealthStatus.FAILED, f"no BLE link: {e}")
                    reported = str(e)
                await _wait(stop, delay_s)
                delay_s = min(delay_s * 2, RETRY_MAX_S)
                continue
            try:
                server.attach(self.store)
                server.on_change = lambda registered, what: self._health(
                    emit, HealthStatus.OK if registered else HealthStatus.DEGRADED, what
                )
                self.server = server
                self._unavailable = None
                self._health(
                    emit,
                    HealthStatus.OK,
                    f"advertising as {server.name!r} on {server.adapter_path}",
                )
                await _wait(stop, math.inf)
            finally:
                self.server = None
                await server.stop()


async def _wait(stop: threading.Event, seconds: float) -> None:
    """Sleep ``seconds`` or until ``stop`` is set (a thread's Event: polled, not awaited)."""
    deadline_s = time.monotonic() + seconds
    while not stop.is_set() and time.monotonic() < deadline_s:
        await asyncio.sleep(POLL_S)
