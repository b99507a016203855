"""The app's BLE side: find the station, stay connected, catch up, feed the state.

The seam (research notes, shared/research/ble_kivy.md §2.4): :class:`StationConnection`
holds all the policy and protocol logic (scan, connect, backoff, reassembly with
:class:`~device.link.protocol.Inbox`, control-point requests, backfill) and talks to the radio
only through a small :class:`StationLink`. Two links implement it:

* :class:`BleakStationLink`: the phone or desktop, through bleak (BlueZ, Android via
  python-for-android, macOS, Windows).
* :class:`BumbleStationLink`: a Bumble device on an in-process virtual link, for tests and
  ``senses-app --demo``; the same ATT stack behaviour (MTU, truncation, pairing) as a radio.

A link only moves bytes: it scans, connects, pairs, subscribes to every stream
characteristic and the control point, and hands each notification to the connection as
``(characteristic uuid, frame)``.

Backfill without gaps (see :class:`~device.link.protocol.Inbox`): live events are held from
before the first subscription; after every (re)connect the connection asks for everything
since :attr:`AppState.last_seq <mobile_app.state.AppState.last_seq>`, page by page, and only
then lets live events through, all in seq order. On BlueZ, bleak receives each characteristic
on its own socket (AcquireNotify), so a page's result may overtake its events; a page is
released only once every event it announced has arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol, TypeVar

from device.link import protocol, uuids
from device.link.protocol import Inbox, Message, ProtocolError, ResultCode
from mobile_app.boards import BoardItem, BoardOutcome, BoardSender
from mobile_app.state import AppState, ConnectionState

log = logging.getLogger(__name__)

T = TypeVar("T")

SCAN_TIMEOUT_S: Final = 5.0
CONNECT_TIMEOUT_S: Final = 20.0
"""Longest a connection attempt may take, pairing and subscribing included."""
CONTROL_TIMEOUT_S: Final = 5.0
BACKFILL_SETTLE_S: Final = 3.0
"""How long a backfill page's events may trail its result (different sockets on BlueZ)."""
RATE_LIMITED_RETRY_S: Final = 0.3
"""Wait before asking again for a backfill page the station refused as rate limited."""
BACKOFF_FIRST_S: Final = 1.0
BACKOFF_MAX_S: Final = 60.0
STABLE_LINK_S: Final = 30.0
"""A link that stayed up this long was a good one: the next retry waits the shortest time."""
TICK_S: Final = 1.0
DEFAULT_STATION_NAME: Final = "Senses station"

# ATT error codes a write can be refused with (Core 5.4 Vol 3 Part F §3.4.1.1; the station's
# application codes are in device/link/core.py, ATT_ERRORS).
_ATT_INSUFFICIENT_AUTHENTICATION: Final = 0x05
_ATT_INSUFFICIENT_AUTHORIZATION: Final = 0x08
_ATT_INSUFFICIENT_ENCRYPTION: Final = 0x0F
_ATT_TO_RESULT: Final[dict[int, ResultCode]] = {
    # Not paired, whichever way the stack says it (BlueZ's NotAuthorized becomes 0x08).
    _ATT_INSUFFICIENT_AUTHENTICATION: ResultCode.NOT_PERMITTED,
    _ATT_INSUFFICIENT_AUTHORIZATION: ResultCode.NOT_PERMITTED,
    _ATT_INSUFFICIENT_ENCRYPTION: ResultCode.NOT_PERMITTED,
    0x80: ResultCode.RATE_LIMITED,
    0x81: ResultCode.MALFORMED,
    0x0D: ResultCode.TOO_LARGE,
}

RESULT_MESSAGES: Final[dict[ResultCode, str]] = {
    ResultCode.OK: "Done.",
    ResultCode.NOT_PERMITTED: (
        "The station only accepts changes from a phone paired with its passkey: this link "
        "is not paired. On the station run 'senses link pair' (or press Pair a phone in "
        "Home Assistant), then type the passkey it shows into this phone's pairing dialog."
    ),
    ResultCode.RATE_LIMITED: "Too many requests: wait a second and try again.",
    ResultCode.MALFORMED: "The station did not understand the request: update the app.",
    ResultCode.TOO_LARGE: "The request is too long for the station.",
    ResultCode.UNSUPPORTED: "The station does not support this: update the station or the app.",
    ResultCode.INVALID_ARGUMENT: "The station does not accept this value.",
    ResultCode.UNAVAILABLE: "The station cannot do this right now.",
    ResultCode.INTERNAL_ERROR: "The station failed to do this; its log says why.",
}
"""What to tell the user for each answer (the station's detail, if any, is appended)."""

_BACKFILL_PROBLEMS: Final[dict[ResultCode, str]] = {
    ResultCode.NOT_PERMITTED: (
        "Not paired: events from while you were away are missing (Settings says how to pair)."
    ),
    ResultCode.UNAVAILABLE: "The station keeps no history: only live events are shown.",
    ResultCode.UNSUPPORTED: "The station cannot send its history: update the station.",
}
"""Backfill refusals that leave a working live link, and what the status line says."""


# ------------------------------------------------------------------------------------- errors


class AppError(Exception):
    """Base of the app's errors."""


class LinkError(AppError, ConnectionError):
    """The link to the station could not be set up or was lost; the connection retries."""


class ControlRefusedError(AppError, RuntimeError):
    """The station refused a control request; ``code`` says why."""

    def __init__(self, code: ResultCode, detail: str = "") -> None:
        super().__init__(f"{code.name}: {detail}" if detail else code.name)
        self.code = code
        self.detail = detail

    @property
    def user_message(self) -> str:
        text = RESULT_MESSAGES.get(self.code, self.code.name)
        return f"{text} ({self.detail})" if self.detail else text


# ----------------------------------------------------------------------------------- the seam


@dataclass(frozen=True)
class FoundStation:
    """A station seen while scanning."""

    name: str
    address: str
    rssi: int | None = None


FrameCallback = Callable[[str, bytes], None]
"""``(characteristic uuid, notification value)``."""


class StationLink(Protocol):
    """One BLE link to a station, as :class:`StationConnection` needs it (see module doc)."""

    @property
    def is_connected(self) -> bool: ...

    async def scan(self, timeout_s: float = SCAN_TIMEOUT_S) -> list[FoundStation]:
        """Stations advertising the Senses service, strongest signal first."""
        ...

    async def connect(
        self,
        station: FoundStation,
        *,
        on_frame: FrameCallback,
        on_disconnect: Callable[[], None],
    ) -> None:
        """Connect (and pair, if the link does), then subscribe to every stream
        characteristic and the control point. Raises :class:`LinkError`."""
        ...

    async def read_station_info(self) -> bytes:
        """The station info characteristic's value (a ``station_info`` message)."""
        ...

    async def write_control(self, data: bytes) -> None:
        """Write a control request (with response). Raises :class:`ControlRefusedError` when the
        station answers the write with an ATT error, :class:`LinkError` when the link fails."""
        ...

    async def disconnect(self) -> None: ...


SUBSCRIBED: Final = (*uuids.STREAMS.values(), uuids.CONTROL_POINT)
"""What every link subscribes to, in this order."""


def result_for_att_error(error_code: int) -> ResultCode:
    """The :class:`ResultCode` the station meant by refusing a write with ``error_code``."""
    return _ATT_TO_RESULT.get(error_code, ResultCode.INTERNAL_ERROR)


# ------------------------------------------------------------------------------------- bleak


def _bleak_on_android() -> bool:
    """Whether bleak runs its Android backend (it picks p4android when P4A_BOOTSTRAP is set).
    Runtime permissions are the UI's business: :mod:`mobile_app.android`."""
    return "P4A_BOOTSTRAP" in os.environ or sys.platform == "android"


def _forward(uuid: str, on_frame: FrameCallback) -> Callable[[Any, bytearray], None]:
    """A bleak notification callback that passes ``(uuid, frame)`` on."""

    def callback(_characteristic: Any, data: bytearray) -> None:
        on_frame(uuid, bytes(data))

    return callback


def _bleak_result_code(error: Exception) -> ResultCode | None:
    """The result code behind a bleak write error, None if it is not a refusal."""
    from bleak.exc import BleakDBusError, BleakGATTProtocolError

    if isinstance(error, BleakGATTProtocolError):
        return result_for_att_error(int(error.code))
    if isinstance(error, BleakDBusError):
        # BlueZ passes the peer's ATT error as text ("... ATT error: 0x80"); a station's
        # application error may also come as the bare code ("0x80", as BlueZoo relays it).
        details = (error.dbus_error_details or "").strip()
        code = details.split("ATT error: 0x", 1)[1][:2] if "ATT error: 0x" in details else None
        if code is None and details.lower().startswith("0x"):
            code = details[2:4]
        if code is not None:
            with contextlib.suppress(ValueError):
                return result_for_att_error(int(code, 16))
        if error.dbus_error.endswith((".NotPermitted", ".NotAuthorized")):
            return ResultCode.NOT_PERMITTED  # BlueZ: "Not paired"
        if error.dbus_error.endswith(".InvalidValueLength"):
            return ResultCode.TOO_LARGE
    return None


class BleakStationLink:
    """A :class:`StationLink` through bleak.

    Pairing: BlueZ and Windows pair while connecting (``BleakClient(pair=True)``); Android's
    backend cannot, so it connects and then bonds (``client.pair()``); CoreBluetooth pairs by
    itself when a write needs encryption. ``pair=False`` skips it: live events still come,
    but the control point (backfill, concept) is refused.
    """

    def __init__(
        self,
        *,
        pair: bool = True,
        adapter: str | None = None,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        client_factory: Callable[..., Any] | None = None,
        discover: Callable[..., Awaitable[dict[str, tuple[Any, Any]]]] | None = None,
    ) -> None:
        from bleak import BleakClient, BleakScanner

        self.pair = pair
        self.adapter = adapter
        self.connect_timeout_s = connect_timeout_s
        self.android = _bleak_on_android()
        self._client_factory = client_factory or BleakClient
        self._discover = discover or BleakScanner.discover
        self._client: Any = None
        self._devices: dict[str, Any] = {}

    @property
    def is_connected(self) -> bool:
        return self._client is not None and bool(self._client.is_connected)

    @property
    def mtu(self) -> int:
        """The ATT MTU bleak negotiated (23, the minimum, before a link is up)."""
        if not self.is_connected:
            return protocol.ATT_MIN_MTU
        return int(getattr(self._client, "mtu_size", protocol.ATT_MIN_MTU))

    def _platform_kwargs(self) -> dict[str, Any]:
        return {"bluez": {"adapter": self.adapter}} if self.adapter else {}

    async def scan(self, timeout_s: float = SCAN_TIMEOUT_S) -> list[FoundStation]:
        from bleak.exc import BleakError

        try:
            found = await self._discover(
                timeout=timeout_s,
                return_adv=True,
                # A hint only: Android's backend does not filter, so check below as well.
                service_uuids=[uuids.SENSES_SERVICE],
                **self._platform_kwargs(),
            )
        except (BleakError, OSError) as e:
            raise LinkError(f"cannot scan for the station: {e}") from e
        stations = []
        for device, adv in found.values():
            if uuids.SENSES_SERVICE not in {u.lower() for u in adv.service_uuids}:
                continue
            self._devices[device.address] = device  # connecting to it spares a second scan
            name = adv.local_name or device.name or DEFAULT_STATION_NAME
            stations.append(FoundStation(name, device.address, adv.rssi))
        return sorted(stations, key=lambda s: -(s.rssi if s.rssi is not None else -999))

    async def connect(
        self,
        station: FoundStation,
        *,
        on_frame: FrameCallback,
        on_disconnect: Callable[[], None],
    ) -> None:
        from bleak.exc import BleakError

        target = self._devices.get(station.address, station.address)
        client = self._client_factory(
            target,
            disconnected_callback=lambda _client: on_disconnect(),
            services=[uuids.SENSES_SERVICE],
            timeout=self.connect_timeout_s,
            # Android's backend only logs a warning for pair=True: it bonds after connecting.
            pair=self.pair and not self.android and sys.platform != "darwin",
            **self._platform_kwargs(),
        )
        self._client = client
        try:
            await client.connect()
            if self.pair and self.android:
                await client.pair()
            for uuid in SUBSCRIBED:
                await client.start_notify(uuid, _forward(uuid, on_frame))
        except (BleakError, OSError, TimeoutError) as e:
            with contextlib.suppress(BleakError, OSError, TimeoutError):
                await client.disconnect()
            self._client = None
            raise LinkError(f"cannot connect to {station.name} ({station.address}): {e}") from e

    def _connected_client(self) -> Any:
        if not self.is_connected:
            raise LinkError("not connected to the station")
        return self._client

    async def read_station_info(self) -> bytes:
        from bleak.exc import BleakError

        try:
            return bytes(await self._connected_client().read_gatt_char(uuids.STATION_INFO))
        except (BleakError, OSError) as e:
            raise LinkError(f"cannot read the station info: {e}") from e

    async def write_control(self, data: bytes) -> None:
        from bleak.exc import BleakError

        client = self._connected_client()
        try:
            await client.write_gatt_char(uuids.CONTROL_POINT, data, response=True)
        except BleakError as e:
            code = _bleak_result_code(e)
            if code is None:
                raise LinkError(f"control point write failed: {e}") from e
            raise ControlRefusedError(code, str(e)) from e
        except OSError as e:
            raise LinkError(f"control point write failed: {e}") from e

    async def disconnect(self) -> None:
        from bleak.exc import BleakError

        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(BleakError, OSError):
                await client.disconnect()


# ------------------------------------------------------------------------------------ bumble


class BumbleStationLink:
    """A :class:`StationLink` over a Bumble device on a virtual link (tests, the demo).

    Built on :class:`device.link.bumble_link.BumbleClient` (connect, MTU exchange, pairing or
    re-encryption with bonded keys, discovery, subscriptions); its own reassembly and backfill
    are bypassed, since :class:`StationConnection` does those for every link alike.
    """

    def __init__(self, device: Any, *, mtu: int = 247, pair: bool = True) -> None:
        from device.link.bumble_link import BumbleClient

        self.pair = pair
        self._adverts: dict[str, Any] = {}
        link = self

        class _Client(BumbleClient):
            """Hands raw frames and disconnections to the link."""

            def _on_frame(self, uuid: str, value: bytes) -> None:
                if link._on_frame is not None:
                    link._on_frame(uuid, bytes(value))

            def _on_disconnection(self, reason: int) -> None:
                super()._on_disconnection(reason)
                callback, link._on_disconnect = link._on_disconnect, None
                if callback is not None:
                    callback()

        self.client = _Client(device, mtu=mtu)
        self._on_frame: FrameCallback | None = None
        self._on_disconnect: Callable[[], None] | None = None

    @property
    def device(self) -> Any:
        return self.client.device

    @property
    def mtu(self) -> int:
        return self.client.mtu

    @property
    def is_connected(self) -> bool:
        return self.client.connected

    async def _power_on(self) -> None:
        if not self.client._powered:
            await self.device.power_on()
            self.client._powered = True

    async def scan(self, timeout_s: float = SCAN_TIMEOUT_S) -> list[FoundStation]:
        from bumble.core import UUID, AdvertisingData

        await self._power_on()
        wanted = UUID(uuids.SENSES_SERVICE)
        found: dict[str, FoundStation] = {}
        done = asyncio.Event()

        def on_advertisement(adv: Any) -> None:
            services = adv.data.get(AdvertisingData.INCOMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS)
            if not services or wanted not in services:
                return
            address = str(adv.address)
            self._adverts[address] = adv.address
            name = adv.data.get(AdvertisingData.COMPLETE_LOCAL_NAME) or found.get(address)
            found[address] = FoundStation(
                name if isinstance(name, str) else DEFAULT_STATION_NAME, address, adv.rssi
            )
            done.set()  # one station is enough to go on; keep listening a moment for more

        self.device.on("advertisement", on_advertisement)
        try:
            await self.device.start_scanning(active=True)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await done.wait()
                    await asyncio.sleep(0.05)
            await self.device.stop_scanning()
        finally:
            self.device.remove_listener("advertisement", on_advertisement)
        return sorted(found.values(), key=lambda s: -(s.rssi if s.rssi is not None else -999))

    async def connect(
        self,
        station: FoundStation,
        *,
        on_frame: FrameCallback,
        on_disconnect: Callable[[], None],
    ) -> None:
        from bumble.hci import Address

        address = self._adverts.get(station.address) or Address(station.address)
        self._on_frame = on_frame
        self._on_disconnect = on_disconnect
        try:
            # Subscribes to every stream and the control point; backfill is ours.
            await self.client.connect(address, pair=self.pair, backfill=False)
        except (OSError, TimeoutError) as e:
            await self.disconnect()
            raise LinkError(f"cannot connect to {station.name} ({station.address}): {e}") from e
        except Exception as e:
            # Bumble raises its own errors (HCI, SMP, ATT) for a failed set-up.
            await self.disconnect()
            raise LinkError(f"cannot connect to {station.name} ({station.address}): {e!r}") from e

    async def read_station_info(self) -> bytes:
        peer = self.client._peer
        if peer is None:
            raise LinkError("not connected to the station")
        return bytes(await peer.read_value(self.client._proxy(uuids.STATION_INFO)))

    async def write_control(self, data: bytes) -> None:
        from bumble import att

        peer = self.client._peer
        if peer is None:
            raise LinkError("not connected to the station")
        try:
            await peer.write_value(
                self.client._proxy(uuids.CONTROL_POINT), data, with_response=True
            )
        except att.ATT_Error as e:
            raise ControlRefusedError(
                result_for_att_error(e.error_code), f"ATT error 0x{e.error_code:02X}"
            ) from e
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # we are being cancelled
            # Bumble cancels a request that was waiting for its response when the link drops.
            raise LinkError("the link dropped before the station answered") from None

    async def disconnect(self) -> None:
        connection = self.client.connection
        if connection is not None:
            with contextlib.suppress(Exception):  # already gone: nothing to undo
                await connection.disconnect()


# -------------------------------------------------------------------------------- connection


class _StopRequestedError(Exception):
    """stop() was called while waiting."""


class StationConnection:
    """Owns one :class:`StationLink` and the :class:`AppState` it feeds.

    ``await run()`` until :meth:`stop`: scan, connect, subscribe, backfill, stream; on any
    failure or drop, retry with exponential backoff (``backoff_first_s`` doubling to
    ``backoff_max_s``, back to the first after a link that stayed up ``stable_s``).
    ``state.connection`` always says where it is.
    """

    def __init__(
        self,
        link: StationLink,
        state: AppState,
        *,
        address: str | None = None,
        scan_timeout_s: float = SCAN_TIMEOUT_S,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        backoff_first_s: float = BACKOFF_FIRST_S,
        backoff_max_s: float = BACKOFF_MAX_S,
        stable_s: float = STABLE_LINK_S,
        control_timeout_s: float = CONTROL_TIMEOUT_S,
        tick_s: float = TICK_S,
    ) -> None:
        self.link = link
        self.state = state
        self.address = address or state.station_address
        """Connect to this station only; None: the strongest one found (then remembered)."""
        self.scan_timeout_s = scan_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.backoff_first_s = backoff_first_s
        self.backoff_max_s = backoff_max_s
        self.stable_s = stable_s
        self.control_timeout_s = control_timeout_s
        self.tick_s = tick_s
        self.stations: list[FoundStation] = []
        """What the last scan found."""
        self.attempts = 0
        """Connection attempts so far (each scan + connect counts one)."""
        self.connects = 0
        """Links that came up (subscribed and caught up)."""
        self.backoff_s = backoff_first_s
        """The wait before the next retry."""
        self.inbox = Inbox(state.last_seq)
        self._request_ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Message]] = {}
        self._held_seqs: set[int] = set()
        self._held_changed = asyncio.Event()
        self._lost = asyncio.Event()
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._running = False

    # --- life cycle --------------------------------------------------------------------------

    @property
    def linked(self) -> bool:
        return self.state.connection.linked and self.link.is_connected

    def stop(self) -> None:
        """Make :meth:`run` disconnect and return (safe to call from any loop callback)."""
        self._stop.set()
        self._lost.set()

    async def run(self) -> None:
        """Connect and stay connected until :meth:`stop`."""
        if self._running:
            raise RuntimeError("StationConnection.run() is already running")
        self._running = True
        ticker = asyncio.create_task(self._tick(), name="senses-app-tick")
        try:
            while not self._stop.is_set():
                up_since = await self._session()
                if self._stop.is_set():
                    break
                if up_since is not None and time.monotonic() - up_since >= self.stable_s:
                    self.backoff_s = self.backoff_first_s
                self.state.set_connection(ConnectionState.DISCONNECTED)
                self.state.schedule_reconnect(self.state.now() + self.backoff_s)
                log.info("app: reconnecting in %.1f s", self.backoff_s)
                with contextlib.suppress(_StopRequestedError):
                    await self._unless_stopped(self._backoff_wait(self.backoff_s))
                self.backoff_s = min(self.backoff_s * 2, self.backoff_max_s)
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            await self._teardown()
            self._running = False
            self._stop.clear()  # a later run() starts afresh
            self.state.set_connection(ConnectionState.IDLE)

    def retry_now(self) -> None:
        """Cut the current backoff wait short (the user tapped "retry")."""
        self._wake.set()

    async def _backoff_wait(self, seconds: float) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            self.state.tick()

    async def _unless_stopped(self, awaitable: Awaitable[T]) -> T:
        """``await awaitable``; if stop() comes first, cancel it and raise
        :class:`_StopRequestedError`."""
        if self._stop.is_set():
            if asyncio.iscoroutine(awaitable):
                awaitable.close()  # never started: no "was never awaited" warning
            raise _StopRequestedError
        task = asyncio.ensure_future(awaitable)
        stopper = asyncio.ensure_future(self._stop.wait())
        try:
            done, _ = await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if task in done:
            return task.result()
        raise _StopRequestedError

    async def _session(self) -> float | None:
        """One attempt: find, connect, catch up, stream until the link drops. Returns when
        the link came up (monotonic s), or None if it never did."""
        self.attempts += 1
        self._lost.clear()
        up_since = None
        try:
            self.state.set_connection(ConnectionState.SCANNING)
            station = await self._unless_stopped(self._find())
            self.state.set_connection(ConnectionState.CONNECTING)
            self.inbox.hold()  # before the first subscription: nothing overtakes the backfill
            self._held_seqs.clear()
            await self._unless_stopped(self._connect(station))
            self.state.set_connection(ConnectionState.BACKFILLING)
            await self._unless_stopped(self._catch_up())
            self.state.set_connection(ConnectionState.CONNECTED)
            self.connects += 1
            up_since = time.monotonic()
            log.info("app: connected to %s", self.state.station_name or station.name)
            await self._unless_stopped(self._lost.wait())
        except _StopRequestedError:
            pass
        except (LinkError, ControlRefusedError, ProtocolError, TimeoutError) as e:
            log.warning("app: link to the station failed: %s", e)
        except Exception:
            # Whatever a radio stack throws, the app keeps trying (and says why in its log).
            log.exception("app: unexpected failure on the link to the station")
        await self._teardown()
        return up_since

    async def _teardown(self) -> None:
        self.inbox.link_lost()
        self._held_seqs.clear()
        self._fail_pending(LinkError("the link dropped before the station answered"))
        if self.link.is_connected:
            with contextlib.suppress(Exception):  # a link that is half gone may complain
                await self.link.disconnect()

    async def _connect(self, station: FoundStation) -> None:
        # A deadline of our own: a stack asked for a device that is not there may wait for it
        # indefinitely (Bumble does), and "Connecting…" would then never change.
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                await self.link.connect(
                    station, on_frame=self._on_frame, on_disconnect=self._on_lost
                )
        except TimeoutError:
            raise LinkError(
                f"{station.name} ({station.address}) did not answer within "
                f"{self.connect_timeout_s:g} s (is it on and in range?)"
            ) from None

    def _on_lost(self) -> None:
        log.info("app: the station disconnected")
        self._fail_pending(LinkError("the link dropped before the station answered"))
        self._lost.set()
        self._held_changed.set()  # a backfill waiting for its events gives up at once

    def _fail_pending(self, error: Exception) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)
        self._pending.clear()

    async def _find(self) -> FoundStation:
        stations = await self.link.scan(self.scan_timeout_s)
        self.stations = stations
        if self.address is not None:
            for station in stations:
                if station.address == self.address:
                    return station
            # Not announced: a stack that already knows a device may not report it again
            # (BlueZ caches it), and Android connects by address. Try it; connect() fails
            # with a clear error if the station really is gone.
            return FoundStation(self.state.station_name or DEFAULT_STATION_NAME, self.address, None)
        if not stations:
            raise LinkError("no Senses station found (is it on and in range?)")
        station = stations[0]
        self.address = station.address
        self.state.station_address = station.address
        return station

    def forget_station(self) -> None:
        """Connect to whichever station is strongest next time (the user picks another)."""
        self.address = None
        self.state.station_address = None

    # --- frames in ---------------------------------------------------------------------------

    def _on_frame(self, uuid: str, frame: bytes) -> None:
        if self.inbox.holding and uuid != uuids.CONTROL_POINT:
            self._note_held(frame)
        messages = self.inbox.feed(uuid, frame)
        events = []
        for message in messages:
            if message.type == "control_result":
                future = self._pending.pop(message.seq, None)
                if future is not None and not future.done():
                    future.set_result(message)
            else:
                events.append(message)
        self._apply(events)

    def _note_held(self, frame: bytes) -> None:
        """Remember the seq of each event whose last frame came while holding, so a backfill
        page can tell when all it announced has arrived."""
        if len(frame) < protocol.FRAME_HEADER.size:
            return
        _, seq, index, count = protocol.FRAME_HEADER.unpack_from(frame)
        if index == count - 1:
            self._held_seqs.add(seq)
            self._held_changed.set()

    def _apply(self, messages: list[Message]) -> None:
        if not messages:
            return
        with self.state.batch():
            for message in messages:
                self.state.apply(message)

    # --- requests ----------------------------------------------------------------------------

    async def request(self, op: str, **fields: Any) -> Message:
        """Send one control request; return its OK result. Raises :class:`ControlRefusedError`
        (the station said no), :class:`LinkError` (no link, or it dropped) or TimeoutError."""
        if not self.link.is_connected:
            raise LinkError("not connected to the station")
        request_id = next(self._request_ids) & protocol.MAX_SEQ
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        data = protocol.encode_message("control", request_id, {"op": op, **fields})
        try:
            await self.link.write_control(data)
            async with asyncio.timeout(self.control_timeout_s):
                result = await future
        except ControlRefusedError as e:
            if e.code is ResultCode.NOT_PERMITTED:
                self.state.set_bonded(False)  # Settings says what to do
            raise
        finally:
            self._pending.pop(request_id, None)
        self.state.set_bonded(True)  # the station answered: it accepts this phone
        code = ResultCode(result.payload["code"])
        if code is not ResultCode.OK:
            raise ControlRefusedError(code, result.payload.get("detail") or "")
        return result

    async def _catch_up(self) -> None:
        info = protocol.decode_message(await self.link.read_station_info())
        self.state.apply(info)  # the name; a station whose store was reset restarts our seqs
        self.inbox.last_seq = self.state.last_seq
        self.inbox.newest = dict(self.state.newest_seq)
        try:
            count = await self.backfill()
            self.state.link_problem = None
            log.info("app: caught up with %d events", count)
        except ControlRefusedError as e:
            problem = _BACKFILL_PROBLEMS.get(e.code)
            if problem is None:
                raise
            # Live events still flow; what happened while away cannot be fetched (until the
            # phone pairs, or ever from a station without a store). Say so, keep the link.
            log.warning("app: backfill refused (%s): %s", e.code.name, e.detail)
            self.state.link_problem = problem
            self._apply(self.inbox.release_all())

    async def _request_when_allowed(self, op: str, **fields: Any) -> Message:
        """:meth:`request`, asked again after :data:`RATE_LIMITED_RETRY_S` for as long as the
        station refuses it for the rate; any other refusal is raised."""
        while True:
            try:
                return await self.request(op, **fields)
            except ControlRefusedError as e:
                if e.code is not ResultCode.RATE_LIMITED:
                    raise
                await asyncio.sleep(RATE_LIMITED_RETRY_S)

    async def _request_for_user(self, op: str, **fields: Any) -> Message | tuple[ResultCode, str]:
        """:meth:`request` for something the user asked: a refusal, a lost link or no answer
        comes back as the result code and what to tell the user."""
        try:
            return await self.request(op, **fields)
        except ControlRefusedError as e:
            return e.code, e.user_message
        except LinkError as e:
            return ResultCode.UNAVAILABLE, f"Not connected to the station ({e})."
        except TimeoutError:
            return ResultCode.UNAVAILABLE, "The station did not answer; try again."

    async def backfill(self) -> int:
        """Fetch every event after the last one applied, page by page; then let live events
        through. Returns how many the station sent."""
        self.inbox.hold()
        since, total = self.inbox.last_seq, 0
        while True:
            # A long absence takes many pages; the station allows a few per second.
            result = await self._request_when_allowed("backfill", since=since)
            count = int(result.payload.get("count") or 0)
            last = int(result.payload.get("last_seq") or since)
            await self._until_arrived(since, last, count)
            self._apply(self.inbox.release_through(last))
            total += count
            since = last
            if not result.payload.get("more"):
                break
        self._apply(self.inbox.release_all())
        return total

    async def _until_arrived(self, since: int, last: int, count: int) -> None:
        def arrived() -> int:
            return sum(1 for seq in self._held_seqs if since < seq <= last)

        try:
            while arrived() < count:
                if self._lost.is_set():
                    raise LinkError("the link dropped during the backfill")
                self._held_changed.clear()
                # The time allowed restarts with every event that arrives: a long page on a
                # slow link is still progressing; silence means frames were lost.
                async with asyncio.timeout(BACKFILL_SETTLE_S):
                    await self._held_changed.wait()
        except TimeoutError:
            # Frames were lost: releasing now would hide a gap. Reconnect and ask again.
            raise LinkError(
                f"backfill since {since}: {arrived()} of {count} events arrived"
            ) from None

    async def select_concept(self, name: str) -> tuple[ResultCode, str]:
        """Ask the station's camera to score ``name``. Returns the answer and what to tell
        the user (a refusal on an unpaired link says that pairing is needed)."""
        result = await self._request_for_user("select_concept", concept=name)
        if isinstance(result, tuple):
            return result
        self.state.set_active_concept(name)
        return ResultCode.OK, f"The camera now looks for “{name}”."

    async def new_food(self) -> tuple[ResultCode, str]:
        """Tell the station new food is in the box: it takes the food's baseline over the
        next minutes, then gives verdicts. Returns the answer and what to tell the user."""
        result = await self._request_for_user("new_food")
        if isinstance(result, tuple):
            return result
        self.state.new_food_marked()
        return ResultCode.OK, str(result.payload.get("detail") or "New food marked in.")

    # --- boards made on the phone, AI-crop thumbnails -----------------------------------------

    async def refresh_station_info(self) -> None:
        """Read station info again (its concept list changes when a board is trained)."""
        self.state.apply(protocol.decode_message(await self.link.read_station_info()))

    async def send_board(
        self,
        name: str,
        items: list[BoardItem],
        on_progress: Callable[[int, int, str], None] | None = None,
    ) -> BoardOutcome:
        """Send a board (see :mod:`mobile_app.boards`); a trained concept is listed and made
        the one the camera scores. Raises :class:`~mobile_app.boards.BoardError`."""
        sender = BoardSender(
            self,
            mtu=lambda: int(getattr(self.link, "mtu", protocol.ATT_MIN_MTU)),
            on_progress=on_progress,
        )
        outcome = await sender.send(name, items)
        if outcome.trained:
            with contextlib.suppress(LinkError, TimeoutError, ProtocolError):
                await self.refresh_station_info()
                await self.select_concept(outcome.name)
        return outcome

    async def fetch_thumbnail(self, crop: str) -> bytes:
        """The thumbnail JPEG of AI crop ``crop``, fetched piece by piece, and kept in the
        gallery. Raises :class:`ControlRefusedError` (e.g. the crop was deleted), LinkError."""
        pieces: list[bytes] = []
        offset, size = 0, None
        while size is None or offset < size:
            # Scores keep the link busy: a piece may be refused for the rate and asked again.
            result = await self._request_when_allowed("thumbnail", crop=crop, offset=offset)
            data = bytes(result.payload.get("data") or b"")
            size = int(result.payload.get("size") or 0)
            if not data and offset < size:
                raise ControlRefusedError(ResultCode.INTERNAL_ERROR, "the thumbnail came empty")
            pieces.append(data)
            offset += len(data)
        jpeg = b"".join(pieces)
        self.state.set_thumbnail(crop, jpeg)
        return jpeg

    async def fetch_missing_thumbnails(self, limit: int = 4) -> int:
        """Fetch the newest gallery thumbnails not fetched yet (a few per call: scores come
        first). Returns how many came."""
        fetched = 0
        for crop in self.state.missing_thumbnails()[:limit]:
            try:
                await self.fetch_thumbnail(crop)
                fetched += 1
            except ControlRefusedError as e:
                self.state.thumbnail_gone(crop, e.detail or e.user_message)
        return fetched
