"""The station's own BlueZ pairing agent, and the adapter's pairable state.

bluetoothd lets a phone bond only while the adapter is *pairable* (Adapter1 ``Pairable``,
which the kernel turns into SMP's "bondable") and asks a registered **agent**
(``org.bluez.Agent1``, doc/org.bluez.Agent.rst) whatever the pairing method needs. Raspberry
Pi OS Lite runs no agent, so the station registers its own (research notes §3.4):

* capability ``DisplayOnly``: with a phone that has a keyboard, LE Secure Connections picks
  passkey entry; bluetoothd calls ``DisplayPasskey(device, passkey, entered)`` and the user
  types that code into the phone. The bond is authenticated (MITM-protected), which the
  control point's ``encrypt-authenticated-write`` flag requires.
* ``RequestAuthorization(device)`` is a "just works" pairing (a phone without a keyboard):
  allowed only inside the window and with ``[link] allow_just_works``.
* ``RequestConfirmation``, ``RequestPasskey``, ``RequestPinCode``, ``DisplayPinCode`` and
  ``AuthorizeService`` are refused: the station has no yes/no button or keyboard, and serves
  nothing over BR/EDR. ``DisplayPasskey`` outside a window shows nothing, so that pairing
  cannot finish.

The adapter is kept ``Pairable=false`` except inside the window (:class:`PairingWindow`),
and ``PairableTimeout`` is set to the window's length, so bluetoothd closes it by itself even
if this process dies. When bluetoothd restarts the agent is registered again, as the GATT
application is (:class:`~device.link.bluez.BluezGattServer` calls :meth:`BluezPairing.attach`
each time it registers).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from dbus_fast import DBusError, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.annotations import DBusObjectPath, DBusStr, DBusUInt16, DBusUInt32
from dbus_fast.service import ServiceInterface, dbus_method

from device.link.bluez import DBusVoid, _call, _CallError
from device.link.pairing import (
    PairingError,
    PairingEvent,
    PairingWindow,
    PhoneRecord,
    PhoneRegistry,
)

if TYPE_CHECKING:
    from device.link.bluez import BluezGattServer

log = logging.getLogger(__name__)

AGENT_PATH: Final = "/org/senses/link/agent"
AGENT_IFACE: Final = "org.bluez.Agent1"
AGENT_MANAGER_IFACE: Final = "org.bluez.AgentManager1"
AGENT_MANAGER_PATH: Final = "/org/bluez"
CAPABILITY: Final = "DisplayOnly"
AUTO_WINDOW_S: Final = 300.0
"""After start, while no phone is bonded, pairing stays open this long (first setup)."""


def _rejected(text: str) -> DBusError:
    return DBusError("org.bluez.Error.Rejected", text)


def _address(device_path: str) -> str:
    leaf = device_path.rsplit("/", 1)[-1]
    return leaf[4:].replace("_", ":") if leaf.startswith("dev_") else device_path


class StationAgent(ServiceInterface):
    """``org.bluez.Agent1``: answers bluetoothd as :class:`BluezPairing` decides."""

    def __init__(self, pairing: BluezPairing) -> None:
        super().__init__(AGENT_IFACE)
        self._pairing = pairing

    @dbus_method(name="Release")
    def release(self) -> DBusVoid:
        self._pairing.released()

    @dbus_method(name="RequestPinCode")
    async def request_pin_code(self, device: DBusObjectPath) -> DBusStr:
        await self._pairing.refuse(device, "asked for a PIN code (legacy pairing): refused")
        raise _rejected("the station has no keyboard; it pairs over LE with a passkey it shows")

    @dbus_method(name="DisplayPinCode")
    async def display_pin_code(self, device: DBusObjectPath, pincode: DBusStr) -> DBusVoid:
        await self._pairing.refuse(device, "asked for legacy PIN pairing: refused")
        raise _rejected("legacy PIN pairing is not offered")

    @dbus_method(name="RequestPasskey")
    async def request_passkey(self, device: DBusObjectPath) -> DBusUInt32:
        await self._pairing.refuse(
            device, "wanted the station to type a passkey (it has no keyboard): refused"
        )
        raise _rejected("the station has no keyboard: it shows the passkey, the phone types it")

    @dbus_method(name="DisplayPasskey")
    async def display_passkey(
        self, device: DBusObjectPath, passkey: DBusUInt32, entered: DBusUInt16
    ) -> DBusVoid:
        # Called again for every digit the phone reports typed (keypress notifications):
        # only the first call of a pairing is news.
        await self._pairing.display_passkey(device, passkey, entered)

    @dbus_method(name="RequestConfirmation")
    async def request_confirmation(self, device: DBusObjectPath, passkey: DBusUInt32) -> DBusVoid:
        await self._pairing.refuse(
            device,
            "asked for numeric comparison, which the station cannot confirm (no button): "
            "refused; the phone must offer passkey entry",
        )
        raise _rejected("numeric comparison is not offered: type the passkey the station shows")

    @dbus_method(name="RequestAuthorization")
    async def request_authorization(self, device: DBusObjectPath) -> DBusVoid:
        if not await self._pairing.authorize_just_works(device):
            raise _rejected("pairing without a passkey is not allowed now")

    @dbus_method(name="AuthorizeService")
    async def authorize_service(self, device: DBusObjectPath, uuid: DBusStr) -> DBusVoid:
        log.warning("link: %s asked for BR/EDR service %s: refused", _address(device), uuid)
        raise _rejected("the station serves nothing over BR/EDR")

    @dbus_method(name="Cancel")
    def cancel(self) -> DBusVoid:
        self._pairing.cancelled()


class BluezPairing:
    """The agent's registration, the adapter's Pairable, bonds and the pairing window on BlueZ.

    Lives on the link's event loop; the GATT server calls :meth:`attach` whenever it has
    (re-)registered with BlueZ, :meth:`lost` when bluetoothd went away, and
    :meth:`device_changed` for every Device1 change under its adapter.
    """

    def __init__(
        self,
        window: PairingWindow,
        registry: PhoneRegistry,
        *,
        auto_window_s: float = AUTO_WINDOW_S,
        started_s: float | None = None,
    ) -> None:
        """``auto_window_s``: open the window this long after ``started_s`` (the daemon's
        start, ``time.monotonic()``; None: when first attached) while no phone is bonded."""
        self.window = window
        self.registry = registry
        self.auto_window_s = auto_window_s
        self.agent = StationAgent(self)
        self.agent_registered = False
        self._server: BluezGattServer | None = None
        self._bus: MessageBus | None = None
        self._adapter_path: str | None = None
        self._bonds: dict[str, tuple[str, str | None]] = {}
        self._passkey_shown: set[str] = set()
        self._started_s = started_s
        self._auto_checked = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._detaching = False
        self._judging: set[str] = set()
        window.on_open_changed = self._open_changed
        window.listeners.append(self._on_event)

    # --- lifecycle ------------------------------------------------------------------------

    def export(self, server: BluezGattServer, bus: MessageBus) -> None:
        """Export the agent object on the server's bus connection (before registering)."""
        self._server = server
        self._bus = bus
        bus.export(AGENT_PATH, self.agent)
        if self._started_s is None:
            self._started_s = time.monotonic()

    async def detach(self, bus: MessageBus, deadline_s: float) -> None:
        """The station stops: close the window, leave the adapter not pairable, unregister."""
        self._detaching = True
        try:
            self.window.close("the station stopped")
            adapter = self._adapter_path
            if not self.agent_registered or adapter is None:
                return
            for path, interface, member, signature, body in (
                (adapter, "org.freedesktop.DBus.Properties", "Set", "ssv",
                 ["org.bluez.Adapter1", "Pairable", Variant("b", False)]),
                (AGENT_MANAGER_PATH, AGENT_MANAGER_IFACE, "UnregisterAgent", "o", [AGENT_PATH]),
            ):  # fmt: skip
                try:
                    await _call(
                        bus, path, interface, member, signature, body, deadline_s=deadline_s
                    )
                except _CallError as e:
                    log.debug("link: %s: %s", member, e)
            self.agent_registered = False
        finally:
            self._detaching = False

    def unexport(self, bus: MessageBus) -> None:
        bus.unexport(AGENT_PATH, self.agent)
        self.agent_registered = False
        self._bus = None

    async def attach(
        self, bus: MessageBus, adapter_path: str, objects: Mapping[str, Mapping[str, Any]]
    ) -> None:
        """Register the agent (as the default one), apply the window to Pairable, learn the
        bonds. Raises :class:`PairingError` when BlueZ refuses the agent."""
        self._bus = bus
        self._adapter_path = adapter_path
        if not self.agent_registered:
            try:
                await _call(
                    bus,
                    AGENT_MANAGER_PATH,
                    AGENT_MANAGER_IFACE,
                    "RegisterAgent",
                    "os",
                    [AGENT_PATH, CAPABILITY],
                )
            except _CallError as e:
                if not e.name.endswith(".AlreadyExists"):
                    raise PairingError(
                        f"BlueZ refused the station's pairing agent ({e}); another program may "
                        "hold it ('journalctl -u bluetooth')"
                    ) from e
            try:
                await _call(
                    bus, AGENT_MANAGER_PATH, AGENT_MANAGER_IFACE, "RequestDefaultAgent", "o",
                    [AGENT_PATH],
                )  # fmt: skip
            except _CallError as e:
                log.warning("link: our agent is not BlueZ's default agent (%s)", e)
            self.agent_registered = True
            log.info("link: pairing agent registered (%s)", CAPABILITY)
        self._bonds = {
            path: (
                str(_value(interfaces["org.bluez.Device1"], "Address", _address(path))),
                _name(interfaces["org.bluez.Device1"]),
            )
            for path, interfaces in objects.items()
            if path.startswith(adapter_path + "/")
            and "org.bluez.Device1" in interfaces
            and _bonded(interfaces["org.bluez.Device1"])
        }
        # Registering an agent makes bluetoothd (and BlueZoo) pairable: say what we mean.
        await self._apply_pairable()
        self._maybe_auto_open()

    def lost(self) -> None:
        """bluetoothd left the bus: the agent is gone with it (registered again on return)."""
        if self.agent_registered:
            self.agent_registered = False
            self.window.bluez_event(
                "bluetoothd stopped: pairing waits for it to come back (the window stays open)"
            )
        self._passkey_shown.clear()

    def released(self) -> None:
        """BlueZ unregistered the agent (Release): register it again."""
        log.warning("link: BlueZ released the pairing agent; registering it again")
        self.agent_registered = False
        if self._server is not None:
            self._server.wake_up()

    # --- the window -----------------------------------------------------------------------

    def _maybe_auto_open(self) -> None:
        """First start: open the window while no phone is bonded, for the first minutes."""
        if self._auto_checked or self._started_s is None:
            return
        self._auto_checked = True
        if self._bonds or self.window.is_open or self.auto_window_s <= 0:
            return
        left = self.auto_window_s - (time.monotonic() - self._started_s)
        if left > 1:
            self.window.open(left, by="no phone is bonded yet")

    def _open_changed(self, is_open: bool, remaining_s: float) -> None:
        self._spawn(self._apply_pairable())

    async def _apply_pairable(self) -> None:
        bus, adapter = self._bus, self._adapter_path
        if bus is None or adapter is None or not self.agent_registered or self._detaching:
            return
        is_open = self.window.is_open
        # bluetoothd's own timeout as a backstop: the adapter closes even if we die.
        timeout_s = math.ceil(self.window.remaining_s) + 1 if is_open else 0
        try:
            await _call(
                bus, adapter, "org.freedesktop.DBus.Properties", "Set", "ssv",
                ["org.bluez.Adapter1", "PairableTimeout", Variant("u", timeout_s)],
            )  # fmt: skip
            await _call(
                bus, adapter, "org.freedesktop.DBus.Properties", "Set", "ssv",
                ["org.bluez.Adapter1", "Pairable", Variant("b", is_open)],
            )  # fmt: skip
        except _CallError as e:
            log.error("link: cannot make %s %spairable: %s", adapter, "" if is_open else "non-", e)
            return
        log.info("link: %s is %s", adapter, "pairable" if is_open else "not pairable")

    def adapter_pairable(self, pairable: bool) -> None:
        """BlueZ says the adapter's Pairable changed: put it back if that is not the window's
        state (another agent registering, 'bluetoothctl pairable on', bluetoothd's defaults)."""
        if pairable != self.window.is_open and self.agent_registered and not self._detaching:
            log.warning(
                "link: something made the adapter %spairable %s a pairing window; undoing it",
                "" if pairable else "non-",
                "outside" if pairable else "inside",
            )
            self._spawn(self._apply_pairable())

    def open_window(self, seconds: float, *, by: str) -> None:
        if not self.agent_registered:
            raise PairingError(
                "BlueZ is not serving the station right now (bluetoothd down or restarting); "
                "'senses doctor' says why. Try again when it is back"
            )
        self.window.open(seconds, by=by)

    # --- what the agent is asked ----------------------------------------------------------

    async def _device_name(self, device_path: str) -> str | None:
        bus = self._bus
        if bus is None:
            return None
        try:
            (alias,) = await _call(
                bus, device_path, "org.freedesktop.DBus.Properties", "Get", "ss",
                ["org.bluez.Device1", "Alias"],
            )  # fmt: skip
        except _CallError:
            return None
        name = str(alias.value)
        return None if name.replace("-", ":") == _address(device_path) else name

    async def display_passkey(self, device: str, passkey: int, entered: int) -> None:
        if device in self._passkey_shown and entered > 0:
            return  # a keypress notification of the pairing we already announced
        name = await self._device_name(device)
        if self.window.passkey_shown(_address(device), name, passkey):
            self._passkey_shown.add(device)

    async def authorize_just_works(self, device: str) -> bool:
        name = await self._device_name(device)
        return self.window.just_works_asked(_address(device), name)

    async def refuse(self, device: str, why: str) -> None:
        self.window.refused(_address(device), await self._device_name(device), why)

    def cancelled(self) -> None:
        attempt = self.window.pairing
        if attempt is not None:
            self.window.failed(attempt, "BlueZ cancelled it: the phone gave up or timed out")

    # --- devices --------------------------------------------------------------------------

    def device_changed(self, path: str, properties: Mapping[str, Variant]) -> None:
        """A Device1 under our adapter changed (or appeared, with all its properties)."""
        address = _address(path)
        if _bonded_change(properties) and path not in self._bonds:
            self._spawn(self._new_bond(path, address, _name(properties)))
        if "Connected" in properties:
            connected = bool(properties["Connected"].value)
            if path in self._bonds:
                self.registry.seen(address, self._bonds[path][1])
            if not connected:
                self._passkey_shown.discard(path)
                if path not in self._bonds:
                    # A bond BlueZ did not signal (BlueZoo never does) is judged now.
                    self._spawn(self.is_kept_bond(path))
                if self.window.pairing == address and path not in self._bonds:
                    self.window.failed(
                        address, "it disconnected before bonding: wrong passkey or cancelled"
                    )

    def seen(self, path: str) -> None:
        """A phone read or wrote something: note when a bonded one was last seen."""
        if path in self._bonds:
            self.registry.seen(*self._bonds[path])

    def device_removed(self, path: str) -> None:
        if self._bonds.pop(path, None) is not None:
            log.info("link: BlueZ no longer lists %s as bonded", _address(path))
        self._passkey_shown.discard(path)

    async def is_kept_bond(self, path: str) -> bool:
        """Whether the phone at ``path`` has a bond the station keeps. A bond not seen before
        (its signal missed) is judged by the window now, and removed if it was not allowed:
        the server asks before it accepts a control write."""
        if path in self._bonds:
            return True
        bus = self._bus
        if bus is None:
            return False
        try:
            (paired,) = await _call(
                bus, path, "org.freedesktop.DBus.Properties", "Get", "ss",
                ["org.bluez.Device1", "Paired"],
            )  # fmt: skip
        except _CallError:
            return False
        if not paired.value:
            return False
        return await self._new_bond(path, _address(path), None)

    async def _new_bond(self, path: str, address: str, name: str | None) -> bool:
        if path in self._judging:
            while path in self._judging:
                await asyncio.sleep(0.01)
            return path in self._bonds
        if path in self._bonds:
            return True
        self._judging.add(path)
        try:
            name = name or await self._device_name(path)
            if self.window.bonded(address, name):
                self._bonds[path] = (address, name)
                self.registry.bonded(address, name)
                return True
            await self._remove(path)
            return False
        finally:
            self._judging.discard(path)
            self._passkey_shown.discard(path)

    def _on_event(self, event: PairingEvent) -> None:
        if event.remove_bond and event.address and self._adapter_path:
            path = f"{self._adapter_path}/dev_{event.address.replace(':', '_')}"
            if path not in self._bonds:
                # A pairing the window closed on: drop the device, which aborts the pairing.
                self._spawn(self._remove(path))

    async def _remove(self, path: str) -> None:
        bus, adapter = self._bus, self._adapter_path
        if bus is None or adapter is None:
            return
        try:
            await _call(bus, adapter, "org.bluez.Adapter1", "RemoveDevice", "o", [path])
        except _CallError as e:
            if not e.name.endswith(".DoesNotExist"):
                log.error("link: cannot remove %s: %s", _address(path), e)
            return
        self._bonds.pop(path, None)
        log.info("link: removed %s and its keys", _address(path))

    def phones(self) -> list[PhoneRecord]:
        """Bonded phones (BlueZ's list, with the times we recorded), oldest bond first."""
        records = [self.registry.describe(a, n) for a, n in self._bonds.values()]
        return sorted(records, key=lambda r: (r.bonded_at or 0.0, r.address))

    async def forget(self, address: str) -> PhoneRecord:
        """Remove a bonded phone's keys from BlueZ (it must pair again to change anything)."""
        wanted = address.strip().upper()
        for path, (known, name) in list(self._bonds.items()):
            if known.upper() == wanted:
                record = self.registry.describe(known, name)
                if not self.agent_registered:
                    raise PairingError("BlueZ is not available right now; try again shortly")
                await self._remove(path)
                if path in self._bonds:
                    raise PairingError(f"BlueZ did not remove {known}; 'journalctl -u bluetooth'")
                self.registry.forget(known)
                return record
        listed = ", ".join(a for a, _ in self._bonds.values()) or "none"
        raise PairingError(
            f"no bonded phone {address}: 'senses link phones' lists them (now: {listed})"
        )

    # --- helpers --------------------------------------------------------------------------

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _value(properties: Mapping[str, Any], key: str, default: Any) -> Any:
    variant = properties.get(key)
    return default if variant is None else variant.value


def _name(properties: Mapping[str, Any]) -> str | None:
    name = _value(properties, "Alias", None) or _value(properties, "Name", None)
    return None if name is None else str(name)


def _bonded(properties: Mapping[str, Any]) -> bool:
    return bool(_value(properties, "Bonded", False) or _value(properties, "Paired", False))


def _bonded_change(properties: Mapping[str, Any]) -> bool:
    return any(key in properties and bool(properties[key].value) for key in ("Bonded", "Paired"))
