"""The link's Bluetooth: the system D-Bus, BlueZ on it, and a powered LE adapter.

Asks BlueZ exactly what :mod:`device.link.bluez` asks before it serves (``GetManagedObjects``,
then the same adapter choice), with the same actionable errors, but with a 3 s deadline and
without registering anything.
"""

from __future__ import annotations

import asyncio
import os

from dbus_fast import AuthError
from dbus_fast.aio import MessageBus

from device.config import Config
from device.doctor.findings import Finding, Status, finding_from_error
from device.link.bluez import (
    OBJECT_MANAGER_IFACE,
    BluetoothUnavailableError,
    _call,
    _CallError,
    _pick_adapter,
    _unavailable_bluez,
    _unavailable_bus,
)

BLUEZ_TIMEOUT_S = 3.0
"""bluetoothd answers in milliseconds; a bus or daemon silent this long is broken."""


def check_bluez(config: Config, *, bus_address: str | None = None) -> list[Finding]:
    """The system D-Bus, BlueZ on it, and a powered LE adapter (the one configured or the first).

    ``bus_address``: the system bus address (default ``$DBUS_SYSTEM_BUS_ADDRESS`` or the
    standard socket).
    """
    name = "bluetooth"
    if not config.link.enabled:
        return [Finding(name, Status.OK, "link disabled in the config")]
    pairing = pairing_security(config)
    try:
        detail = asyncio.run(_bluez_adapter(config.link.adapter, bus_address))
    except BluetoothUnavailableError as e:
        return [finding_from_error(name, e), *pairing]
    return [Finding(name, Status.OK, detail), *pairing]


def pairing_security(config: Config) -> list[Finding]:
    """A warning when the control point accepts bonds made without a passkey."""
    if not config.link.allow_just_works:
        return []
    return [
        Finding(
            "bluetooth pairing",
            Status.WARN,
            "[link] allow_just_works = true: a phone bonded without a passkey may change the "
            "station's settings; such a bond is encrypted but not protected against a man in "
            "the middle, so someone in range during a pairing window could bond instead",
            "set [link] allow_just_works = false once every phone has paired with the passkey "
            "('senses link phones'; 'senses link forget ADDR' and pair it again)",
        )
    ]


async def _bluez_adapter(adapter: str | None, bus_address: str | None) -> str:
    address = bus_address or os.environ.get(
        "DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/run/dbus/system_bus_socket"
    )
    try:
        async with asyncio.timeout(BLUEZ_TIMEOUT_S):
            bus = await MessageBus(bus_address=address).connect()
    except TimeoutError as e:
        # asyncio's TimeoutError has no message; say what timed out.
        silent = TimeoutError(f"no answer within {BLUEZ_TIMEOUT_S:g} s")
        raise _unavailable_bus(address, silent) from e
    except (OSError, AuthError, ValueError) as e:
        raise _unavailable_bus(address, e) from e
    try:
        try:
            (objects,) = await _call(
                bus, "/", OBJECT_MANAGER_IFACE, "GetManagedObjects", deadline_s=BLUEZ_TIMEOUT_S
            )
        except _CallError as e:
            raise _unavailable_bluez(e) from e
        path = _pick_adapter(objects, adapter)
    finally:
        bus.disconnect()
    return f"BlueZ answers; adapter {path.rsplit('/', 1)[-1]} is powered and can serve LE"
