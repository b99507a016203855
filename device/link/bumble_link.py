"""The link over Bumble: the station's GATT server and a phone-like client, no radio needed.

Two Bumble ``Device``\\ s on an in-process ``LocalLink`` run a real host stack: ATT MTU exchange,
notifications cut to ATT_MTU - 3, CCCDs, SMP pairing and bonding, encryption on reconnect
(research notes: shared/research/ble_kivy.md §2.1). Tests and ``senses demo`` use it; on the
Pi the same :class:`~device.link.core.LinkCore` runs behind BlueZ instead.

* :class:`BumbleLinkServer`: the peripheral. Builds its GATT database from ``core.layout``,
  sends each client its own ordered stream of frames sized to that client's MTU, answers the
  control point (which requires an encrypted link: Bumble refuses an unencrypted write with
  ATT Insufficient Encryption before it reaches the core; the core then requires keys from a
  passkey bond, which only this server can tell: Bumble's own "authenticated" flag is set by
  any encryption).
* :class:`BumbleClient`: the central, as the app behaves: connect, exchange MTU, pair (first
  time) or re-encrypt with the bonded keys, discover, subscribe to every stream, reassemble
  and decode (:class:`~device.link.protocol.Inbox`), backfill after a reconnect.

Pairing is LE Secure Connections **passkey entry** with bonding, as on the Pi: the station
is ``DisplayOnly`` and shows a 6-digit passkey, the phone (``KeyboardDisplay``) types it. A
virtual phone types what the station on the same :class:`LocalLink` displayed, by itself
(:class:`PasskeyBoard`), so a test that pairs needs nothing more; ``virtual_device(...,
typed=...)`` makes it type something else, and ``pairing=just_works_pairing`` makes it a
phone that cannot type at all. With a :class:`~device.link.pairing.PairingWindow` the station
lets a phone bond only inside the window, as the station's BlueZ agent does. The random
static address is the identity address: the virtual link delivers data by random address
only, and bonded keys must be found under the address the peer connects from.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from bumble import att
from bumble.controller import Controller
from bumble.core import UUID, AdvertisingData
from bumble.device import Connection, Device, Peer
from bumble.gatt import Characteristic, CharacteristicValue, Descriptor, Service
from bumble.gatt_client import CharacteristicProxy
from bumble.hci import Address
from bumble.host import Host
from bumble.link import LocalLink
from bumble.pairing import PairingConfig, PairingDelegate
from bumble.transport.common import AsyncPipeSink

from device.errors import SensesError
from device.link import core as link_core
from device.link import ess, protocol, uuids
from device.link.core import LinkCore
from device.link.pairing import PairingWindow
from device.link.protocol import Inbox, Message, ResultCode
from device.store import EventStore

log = logging.getLogger(__name__)

ADVERTISING_INTERVAL_MS: Final = 20.0
"""The virtual controller advertises once per interval and a central connects on the next
advertisement: Bumble's default 1 s would make every (re)connect take a second."""
MAX_QUEUED_PER_CLIENT: Final = 10_000
"""Messages waiting for one client; past this it is disconnected (it backfills on return)."""
CONTROL_TIMEOUT_S: Final = 5.0
_SIG_BASE_SUFFIX: Final = "-0000-1000-8000-00805f9b34fb"


class ControlError(SensesError, RuntimeError):
    """The station refused a control request; ``code`` says why (see ResultCode)."""

    def __init__(self, code: ResultCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def bumble_uuid(uuid: str) -> UUID:
    """A Bumble UUID, 16-bit on the wire for SIG-assigned numbers (as generic tools expect)."""
    if uuid.startswith("0000") and uuid.endswith(_SIG_BASE_SUFFIX):
        return UUID.from_16_bits(int(uuid[4:8], 16))
    return UUID(uuid)


def virtual_link() -> LocalLink:
    """The in-memory "air" that virtual controllers talk over."""
    return LocalLink()  # type: ignore[no-untyped-call]


PASSKEY_WAIT_S: Final = 5.0
"""How long a virtual phone waits for the station to show a passkey before giving up."""


class PasskeyBoard:
    """The passkeys the virtual stations on one link show, by the phone they are meant for:
    what a person reads off the station and types into the phone."""

    def __init__(self) -> None:
        self._shown: dict[str, asyncio.Future[int]] = {}

    def _future(self, phone: str) -> asyncio.Future[int]:
        future = self._shown.get(phone)
        if future is None or future.done():
            future = asyncio.get_running_loop().create_future()
            self._shown[phone] = future
        return future

    def show(self, phone: str, passkey: int) -> None:
        self._future(phone).set_result(passkey)

    async def read(self, phone: str, timeout_s: float = PASSKEY_WAIT_S) -> int | None:
        """The passkey shown for ``phone`` (None if none is shown in time)."""
        future = self._future(phone)
        try:
            async with asyncio.timeout(timeout_s):
                return await asyncio.shield(future)
        except TimeoutError:
            return None
        finally:
            if future.done():
                self._shown.pop(phone, None)


_BOARDS: weakref.WeakKeyDictionary[LocalLink, PasskeyBoard] = weakref.WeakKeyDictionary()
_DEVICE_BOARDS: weakref.WeakKeyDictionary[Device, PasskeyBoard] = weakref.WeakKeyDictionary()


def passkey_board(link: LocalLink) -> PasskeyBoard:
    """The board of ``link`` (one per virtual air)."""
    board = _BOARDS.get(link)
    if board is None:
        board = _BOARDS[link] = PasskeyBoard()
    return board


def _the_right_code(shown: int) -> int | None:
    return shown


def virtual_device(
    link: LocalLink,
    name: str,
    address: str,
    *,
    typed: Callable[[int], int | None] = _the_right_code,
) -> Device:
    """A Bumble device on ``link`` (a virtual controller wired to a host, no transport).

    As a phone, it types ``typed(passkey the station showed)`` when pairing asks for a
    passkey (default: the right one; None: the user cancels). :class:`BumbleLinkServer`
    makes a device the station (``DisplayOnly``)."""
    controller = Controller(name, link=link, public_address=address)
    device = Device(
        name=name, address=Address(address), host=Host(controller, AsyncPipeSink(controller))
    )
    board = passkey_board(link)
    _DEVICE_BOARDS[device] = board
    device.pairing_config_factory = functools.partial(passkey_entry_pairing, board, typed)
    return device


class _PhoneDelegate(PairingDelegate):
    """A phone's pairing dialog: the user reads the station's passkey and types it."""

    def __init__(
        self, connection: Connection, board: PasskeyBoard, typed: Callable[[int], int | None]
    ) -> None:
        super().__init__(
            io_capability=PairingDelegate.IoCapability.DISPLAY_OUTPUT_AND_KEYBOARD_INPUT
        )
        self._connection = connection
        self._board = board
        self._typed = typed

    async def get_number(self) -> int | None:
        shown = await self._board.read(str(self._connection.self_address))
        return None if shown is None else self._typed(shown)


def passkey_entry_pairing(
    board: PasskeyBoard, typed: Callable[[int], int | None], connection: Connection
) -> PairingConfig:
    """A phone's side: LE Secure Connections, bonding, MITM protection (it has a keyboard)."""
    return PairingConfig(
        sc=True,
        mitm=True,
        bonding=True,
        identity_address_type=PairingConfig.AddressType.RANDOM,
        delegate=_PhoneDelegate(connection, board, typed),
    )


def just_works_pairing(connection: Connection) -> PairingConfig:
    """A phone that can neither show nor type a passkey: LE Secure Connections "just works",
    bonded and encrypted, without MITM protection."""
    return PairingConfig(
        sc=True,
        mitm=False,
        bonding=True,
        identity_address_type=PairingConfig.AddressType.RANDOM,
        delegate=PairingDelegate(io_capability=PairingDelegate.IoCapability.NO_OUTPUT_NO_INPUT),
    )


class _StationDelegate(PairingDelegate):
    """The station's side: it shows a passkey (``DisplayOnly``), inside the window if any."""

    def __init__(
        self, connection: Connection, board: PasskeyBoard, window: PairingWindow | None
    ) -> None:
        super().__init__(io_capability=PairingDelegate.IoCapability.DISPLAY_OUTPUT_ONLY)
        self._connection = connection
        self._board = board
        self._window = window

    @property
    def _phone(self) -> str:
        return str(self._connection.peer_address)

    async def accept(self) -> bool:
        return self._window is None or self._window.may_pair(self._phone, None)

    async def display_number(self, number: int, digits: int) -> None:
        if self._window is None or self._window.passkey_shown(self._phone, None, number):
            self._board.show(self._phone, number)

    async def confirm(self, auto: bool = False) -> bool:
        # Just works (the phone cannot type): the bond is made, and the control point
        # refuses it unless [link] allow_just_works; with a window, the window decides.
        return self._window is None or self._window.just_works_asked(self._phone, None)

    async def compare_numbers(self, number: int, digits: int) -> bool:
        return False  # DisplayOnly: never offered; refuse should a peer force it


# ---------------------------------------------------------------------------------- server


def _properties(flags: Sequence[str]) -> Characteristic.Properties:
    props = Characteristic.Properties(0)
    if link_core.READ in flags:
        props |= Characteristic.Properties.READ
    if link_core.WRITE in flags:
        props |= Characteristic.Properties.WRITE
    if link_core.NOTIFY in flags:
        props |= Characteristic.Properties.NOTIFY
    return props


def _permissions(flags: Sequence[str]) -> att.Attribute.Permissions:
    perms = att.Attribute.Permissions(0)
    if link_core.READ in flags:
        perms |= att.Attribute.Permissions.READABLE
    if link_core.WRITE in flags:
        perms |= att.Attribute.Permissions.WRITEABLE
    if link_core.ENCRYPT_WRITE in flags or link_core.ENCRYPT_AUTHENTICATED_WRITE in flags:
        # Bumble's WRITE_REQUIRES_AUTHENTICATION accepts any encrypted link (it marks every
        # encrypted connection "authenticated"); the server checks the bond's MITM flag.
        perms |= att.Attribute.Permissions.WRITE_REQUIRES_ENCRYPTION
    return perms


@dataclass
class _Client:
    connection: Connection
    queue: asyncio.Queue[tuple[str, bytes]] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None


class BumbleLinkServer:
    """The station's GATT server on a Bumble device, driven by a :class:`LinkCore`.

    ``window``: phones bond only while it is open (None: whenever they ask, as in the demo).
    ``board``: where the station shows passkeys (default: its link's, which virtual phones
    read)."""

    def __init__(
        self,
        device: Device,
        core: LinkCore,
        *,
        window: PairingWindow | None = None,
        board: PasskeyBoard | None = None,
    ) -> None:
        self.device = device
        self.core = core
        self.window = window
        if board is None:
            board = _DEVICE_BOARDS.get(device) or PasskeyBoard()
        self.board = board
        self.characteristics: dict[str, Characteristic[Any]] = {}
        self._clients: dict[Connection, _Client] = {}
        self._mitm: dict[Connection, bool] = {}
        """Per connection, whether it paired with a passkey (unknown: ask the keystore)."""
        device.pairing_config_factory = self._pairing_config
        self._feed = link_core.StoreFeed(core, self.publish)
        for spec in core.layout:
            device.add_service(
                Service(
                    bumble_uuid(spec.uuid), [self._characteristic(c) for c in spec.characteristics]
                )
            )
        device.on(device.EVENT_CONNECTION, self._on_connection)

    def _characteristic(self, spec: link_core.CharacteristicSpec) -> Characteristic[Any]:
        value: Any
        if spec.uuid == uuids.CONTROL_POINT:
            value = CharacteristicValue(write=self._on_control_write)
        elif spec.value is not None:
            value = spec.value
        else:
            value = CharacteristicValue(
                read=lambda _c, uuid=spec.uuid: self.core.read_value(uuid) or b""
            )
        characteristic: Characteristic[Any] = Characteristic(
            bumble_uuid(spec.uuid),
            _properties(spec.flags),
            _permissions(spec.flags),
            value,
            descriptors=[
                Descriptor(bumble_uuid(d.uuid), Descriptor.READABLE, d.value)
                for d in spec.descriptors
            ],
        )
        self.characteristics[spec.uuid] = characteristic
        return characteristic

    async def start(self, *, advertising_interval_ms: float = ADVERTISING_INTERVAL_MS) -> None:
        """Power on and advertise (again after every disconnection)."""
        await self.device.power_on()
        name = self.core.station_name.encode("utf-8")
        advertising = AdvertisingData(
            [
                (AdvertisingData.FLAGS, bytes([0x06])),  # LE General Discoverable, no BR/EDR
                (
                    AdvertisingData.INCOMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
                    bumble_uuid(uuids.SENSES_SERVICE).to_bytes(),
                ),
            ]
        )
        await self.device.start_advertising(
            advertising_data=bytes(advertising),
            scan_response_data=bytes(
                AdvertisingData([(AdvertisingData.COMPLETE_LOCAL_NAME, name)])
            ),
            advertising_interval_min=advertising_interval_ms,
            advertising_interval_max=advertising_interval_ms,
            auto_restart=True,
        )

    @property
    def address(self) -> Address:
        return self.device.random_address

    @property
    def connections(self) -> list[Connection]:
        return list(self._clients)

    # --- events in ------------------------------------------------------------------------

    def attach(self, store: EventStore) -> None:
        """Send every event ``store`` commits from now on (call from the event loop's thread)."""
        self._feed.attach(store)

    def detach(self) -> None:
        self._feed.detach()

    def publish(self, items: Sequence[tuple[str, bytes]]) -> None:
        """Queue ``(uuid, data)`` for every connected client (on the loop's thread)."""
        for client in list(self._clients.values()):
            self._enqueue(client, items)

    def _enqueue(self, client: _Client, items: Sequence[tuple[str, bytes]]) -> None:
        if client.queue.qsize() + len(items) > MAX_QUEUED_PER_CLIENT:
            log.warning(
                "link: %s is %d messages behind; disconnecting it (it backfills on reconnect)",
                client.connection.peer_address,
                client.queue.qsize(),
            )
            self._drop(client)
            return
        for item in items:
            client.queue.put_nowait(item)

    # --- connections ----------------------------------------------------------------------

    def _pairing_config(self, connection: Connection) -> PairingConfig:
        return PairingConfig(
            sc=True,
            mitm=True,
            bonding=True,
            identity_address_type=PairingConfig.AddressType.RANDOM,
            delegate=_StationDelegate(connection, self.board, self.window),
        )

    def _on_connection(self, connection: Connection) -> None:
        client = _Client(connection)
        client.task = asyncio.get_running_loop().create_task(self._send(client))
        self._clients[connection] = client
        connection.on(connection.EVENT_DISCONNECTION, lambda _reason: self._forget(connection))
        connection.on(connection.EVENT_PAIRING, lambda keys: self._on_pairing(connection, keys))
        connection.on(
            connection.EVENT_PAIRING_FAILURE,
            lambda reason: self._on_pairing_failure(connection, reason),
        )
        log.info("link: %s connected", connection.peer_address)

    def _on_pairing(self, connection: Connection, keys: Any) -> None:
        mitm = bool(keys.ltk is not None and keys.ltk.authenticated)
        self._mitm[connection] = mitm
        address = str(connection.peer_address)
        log.info("link: %s bonded (%s)", address, "passkey" if mitm else "just works")
        if self.window is not None and not self.window.bonded(address, None):
            self._mitm[connection] = False
            asyncio.get_running_loop().create_task(self._unbond(connection))

    async def _unbond(self, connection: Connection) -> None:
        """Drop a bond the window did not allow: its keys, then the link."""
        keystore = self.device.keystore
        if keystore is not None:
            with contextlib.suppress(KeyError):
                await keystore.delete(str(connection.peer_address))
        await connection.disconnect()

    def _on_pairing_failure(self, connection: Connection, reason: int) -> None:
        log.warning("link: pairing with %s failed (SMP 0x%02X)", connection.peer_address, reason)
        if self.window is not None:
            self.window.failed(
                str(connection.peer_address),
                f"SMP error 0x{reason:02X}: a wrong passkey, or cancelled on the phone",
            )

    async def _authenticated(self, connection: Connection) -> bool:
        """Encrypted with keys from a passkey bond (Bumble's own flag means "encrypted")."""
        if not connection.is_encrypted:
            return False
        if connection in self._mitm:
            return self._mitm[connection]
        keystore = self.device.keystore
        keys = None if keystore is None else await keystore.get(str(connection.peer_address))
        return bool(keys is not None and keys.ltk is not None and keys.ltk.authenticated)

    def _forget(self, connection: Connection) -> None:
        self._mitm.pop(connection, None)
        client = self._clients.pop(connection, None)
        if client is not None and client.task is not None:
            client.task.cancel()
        log.info("link: %s disconnected", connection.peer_address)

    def _drop(self, client: _Client) -> None:
        self._forget(client.connection)
        asyncio.get_running_loop().create_task(client.connection.disconnect())

    def _subscribed(self, connection: Connection, characteristic: Characteristic[Any]) -> bool:
        cccd = self.device.gatt_server.subscribers.get(connection, {}).get(characteristic.handle)
        return cccd is not None and len(cccd) == 2 and bool(cccd[0] & 0x01)

    async def _send(self, client: _Client) -> None:
        """One client's notifications, strictly in queue order."""
        connection = client.connection
        while True:
            uuid, data = await client.queue.get()
            characteristic = self.characteristics[uuid]
            if not self._subscribed(connection, characteristic):
                continue
            try:
                for frame in self.core.notifications_for(uuid, data, connection.att_mtu - 3):
                    await self.device.notify_subscriber(connection, characteristic, frame)
            except protocol.ProtocolError as e:
                log.error("link: cannot send to %s: %s", connection.peer_address, e)

    # --- control point --------------------------------------------------------------------

    async def _on_control_write(self, connection: Connection, value: bytes) -> None:
        outcome = self.core.handle_control(
            value,
            client=str(connection.peer_address),
            authenticated=await self._authenticated(connection),
            encrypted=connection.is_encrypted,
        )
        if outcome.att_error is not None:
            raise att.ATT_Error(outcome.att_error)
        client = self._clients.get(connection)
        if client is not None:
            # Queued behind what this client already awaits; sent after the write response.
            self._enqueue(client, outcome.notifications)


# ---------------------------------------------------------------------------------- client

_ATT_TO_RESULT: Final = {
    **{code: result for result, code in link_core.ATT_ERRORS.items()},
    link_core.ATT_INSUFFICIENT_AUTHENTICATION: ResultCode.NOT_PERMITTED,
}


class BumbleClient:
    """A central that uses the link as the app does (see the module docstring)."""

    def __init__(
        self,
        device: Device,
        *,
        mtu: int = 247,
        last_seq: int = 0,
        on_event: Callable[[Message], None] | None = None,
    ) -> None:
        self.device = device
        self.want_mtu = mtu
        self.inbox = Inbox(last_seq)
        self.on_event = on_event
        self.events: list[Message] = []
        self.mtu = protocol.ATT_MIN_MTU
        self.connection: Connection | None = None
        self._peer: Peer | None = None
        self._proxies: dict[str, CharacteristicProxy[bytes]] = {}
        self._pending: dict[int, asyncio.Future[Message]] = {}
        self._request_ids = itertools.count(1)
        self._arrived = asyncio.Event()
        self._powered = False

    @property
    def last_seq(self) -> int:
        return self.inbox.last_seq

    @property
    def newest_seq(self) -> dict[str, int]:
        """Highest seq received per stream."""
        return dict(self.inbox.newest)

    @property
    def connected(self) -> bool:
        return self.connection is not None

    async def connect(self, address: Address, *, pair: bool = True, backfill: bool = True) -> None:
        """Connect, set up the link and, with ``backfill``, fetch everything after ``last_seq``.

        ``pair``: pair (first time) or encrypt with the bonded keys; without it the control
        point (and so backfill) is refused.
        """
        if not self._powered:
            await self.device.power_on()
            self._powered = True
        connection = await self.device.connect(address)
        self.connection = connection
        connection.on(connection.EVENT_DISCONNECTION, self._on_disconnection)
        peer = Peer(connection)
        self._peer = peer
        self.mtu = (
            await peer.request_mtu(self.want_mtu)
            if self.want_mtu > protocol.ATT_MIN_MTU
            else protocol.ATT_MIN_MTU
        )
        if pair:
            await self._secure(connection)
        await peer.discover_all()  # type: ignore[no-untyped-call]
        self._proxies = {}
        for uuid in (
            *uuids.STREAMS.values(),
            uuids.CONTROL_POINT,
            uuids.STATION_INFO,
            *ess_uuids(),
        ):
            found = peer.get_characteristics_by_uuid(bumble_uuid(uuid))
            if found:
                self._proxies[uuid] = found[0]
        # Hold events from before the first subscription on, so none overtakes the backfill.
        if backfill:
            self.inbox.hold()
        for uuid in (*uuids.STREAMS.values(), uuids.CONTROL_POINT):
            await peer.subscribe(self._proxies[uuid], functools.partial(self._on_frame, uuid))
        if backfill:
            await self.backfill()

    async def _secure(self, connection: Connection) -> None:
        keystore = self.device.keystore
        bonded = (
            keystore is not None and await keystore.get(str(connection.peer_address)) is not None
        )
        if bonded:
            await connection.encrypt()
        else:
            await connection.pair()

    async def disconnect(self) -> None:
        if self.connection is not None:
            await self.connection.disconnect()

    def _on_disconnection(self, _reason: int) -> None:
        self.connection = None
        self._peer = None
        self.inbox.link_lost()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(
                    ConnectionError("the link dropped before the station answered")
                )
        self._pending.clear()

    def _on_frame(self, uuid: str, value: bytes) -> None:
        for message in self.inbox.feed(uuid, bytes(value)):
            self._dispatch(message)

    def _dispatch(self, message: Message) -> None:
        if message.type == "control_result":
            future = self._pending.pop(message.seq, None)
            if future is not None and not future.done():
                future.set_result(message)
            return
        if message.type in protocol.EVENT_TYPES:
            self.events.append(message)
            if self.on_event is not None:
                self.on_event(message)
            self._arrived.set()

    def _deliver(self, messages: Sequence[Message]) -> None:
        for message in messages:
            self._dispatch(message)

    async def wait_for_seq(self, seq: int, timeout_s: float = 5.0) -> None:
        """Wait until events up to ``seq`` have been delivered."""
        async with asyncio.timeout(timeout_s):
            while self.last_seq < seq:
                self._arrived.clear()
                await self._arrived.wait()

    # --- requests -------------------------------------------------------------------------

    def _proxy(self, uuid: str) -> CharacteristicProxy[bytes]:
        if self._peer is None:
            raise ConnectionError("not connected to the station")
        return self._proxies[uuid]

    async def request(self, op: str, **fields: Any) -> Message:
        """Send one control request; return the OK result or raise :class:`ControlError`."""
        proxy = self._proxy(uuids.CONTROL_POINT)
        assert self._peer is not None
        request_id = next(self._request_ids) & protocol.MAX_SEQ
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        data = protocol.encode_message("control", request_id, {"op": op, **fields})
        try:
            await self._peer.write_value(proxy, data, with_response=True)
        except att.ATT_Error as e:
            self._pending.pop(request_id, None)
            code = _ATT_TO_RESULT.get(e.error_code, ResultCode.INTERNAL_ERROR)
            raise ControlError(
                code, f"station refused {op}: ATT error 0x{e.error_code:02X} ({code.name})"
            ) from e
        async with asyncio.timeout(CONTROL_TIMEOUT_S):
            result = await future
        code = result.payload["code"]
        if code != ResultCode.OK:
            detail = result.payload.get("detail") or ""
            raise ControlError(
                ResultCode(code), f"station answered {op} with {ResultCode(code).name}: {detail}"
            )
        return result

    async def backfill(self) -> int:
        """Fetch every event after :attr:`last_seq`, page by page; return how many came."""
        self.inbox.hold()
        since, count = self.inbox.last_seq, 0
        # If a request fails the inbox keeps holding: delivering a live event now would hide
        # the gap before it. Call backfill() again (a dropped link clears what was held).
        while True:
            result = await self.request("backfill", since=since)
            count += int(result.payload["count"])
            since = int(result.payload["last_seq"])
            self._deliver(self.inbox.release_through(since))
            if not result.payload["more"]:
                break
        self._deliver(self.inbox.release_all())
        return count

    async def read_station_info(self) -> Message:
        assert self._peer is not None
        return protocol.decode_message(await self._peer.read_value(self._proxy(uuids.STATION_INFO)))

    async def read_ess(self) -> dict[str, float | None]:
        """Every ESS value, decoded as a generic client (nRF Connect) would."""
        assert self._peer is not None
        return {
            uuid: ess.decode_value(uuid, await self._peer.read_value(self._proxy(uuid)))
            for uuid in ess_uuids()
        }


def ess_uuids() -> tuple[str, ...]:
    """The station's ESS characteristics."""
    return (uuids.TEMPERATURE, uuids.HUMIDITY, *(g.uuid for g in ess.ESS_GASES))


STATION_ADDRESS: Final = "F0:F0:F0:F0:F0:F0"
PHONE_ADDRESS: Final = "F1:F1:F1:F1:F1:F1"


async def open_virtual_link(
    core: LinkCore,
    store: EventStore | None,
    *,
    mtu: int = 247,
    on_event: Callable[[Message], None] | None = None,
) -> tuple[BumbleLinkServer, BumbleClient]:
    """A station serving ``core`` (fed by ``store``) and a phone connected to it, paired and
    caught up: what ``senses demo`` shows and the tests and benchmark start from."""
    link = virtual_link()
    server = BumbleLinkServer(virtual_device(link, core.station_name, STATION_ADDRESS), core)
    await server.start()
    if store is not None:
        server.attach(store)
    phone = BumbleClient(virtual_device(link, "phone", PHONE_ADDRESS), mtu=mtu, on_event=on_event)
    await phone.connect(server.address, backfill=store is not None)
    return server, phone
