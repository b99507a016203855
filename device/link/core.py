"""The BLE link's transport-independent core: what to send, what to answer, what to expose.

Both GATT servers (BlueZ over D-Bus on the Pi, Bumble in tests and the demo) are thin shells
around one :class:`LinkCore`. A transport author does exactly this:

1. **Build the GATT database** from :attr:`LinkCore.layout`: services, characteristics and
   descriptors as plain data. ``flags`` use BlueZ's ``GattCharacteristic1.Flags`` names
   ("read", "write", "notify", "encrypt-write"); map "encrypt-write" to your stack's "write
   needs an encrypted link" permission so the stack refuses a write from an unpaired client
   before we see it. Add a CCCD (0x2902) to every "notify" characteristic if your stack does
   not (BlueZ and Bumble do it themselves). A characteristic with ``value`` set is static;
   any other readable one is answered by :meth:`LinkCore.read_value` at read time.
2. **Feed stored events**: ``store.add_listener(cb)``. ``cb`` runs on the appending thread
   right after the commit, in seq order; call :meth:`LinkCore.on_stored` there and hand the
   ``[(characteristic uuid, message)]`` it returns to your event loop (e.g.
   ``loop.call_soon_threadsafe``, which keeps the order).
3. **Send** each ``(uuid, data)`` to every client subscribed to ``uuid`` as the notifications
   ``LinkCore.notifications_for(uuid, data, max_payload)``: the frames of a protocol message
   on our own characteristics (``frames_for(message, max_payload)``), or the value itself on
   a standard ESS one. ``max_payload`` is that client's ATT_MTU - 3 (20 when unknown). Use one
   ordered send queue per client, so frames of two messages never interleave and live events
   keep their seq order. A client whose queue overflows must be disconnected, not skipped:
   it cannot see a gap, but it backfills everything after a reconnect.
4. **Control point writes**: ``outcome = core.handle_control(data, client=<peer address>,
   authenticated=<link encrypted with bonded keys>)``. If ``outcome.att_error`` is set,
   answer the write with that ATT error and send nothing else. Otherwise answer success, then
   send ``outcome.notifications`` (backfilled events on their stream characteristics, then the
   result on the control point) **to that client only**, in order, framed as in 3. It never
   raises; every refusal is logged here.
   (BlueZ's D-Bus API cannot notify one client only: there every subscriber gets these;
   the request id and the app's duplicate check make that harmless.)
5. On disconnect, forget that client's subscriptions and queue; the core keeps no per-link
   state except the rate limiter's bucket (kept, so reconnecting does not refill it).

The app side of the conversation is in :mod:`device.link.protocol` (framing, messages,
result codes) and :mod:`device.link.bumble_link` (a reference client).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from device import __version__
from device.clock import Clock
from device.errors import StoreError
from device.link import ess, protocol, uuids
from device.link.protocol import ProtocolError, ResultCode
from device.store import EventStore, StoredEvent

log = logging.getLogger(__name__)

# --- ATT error codes (Core 5.4 Vol 3 Part F §3.4.1.1) --------------------------------------
ATT_INVALID_ATTRIBUTE_VALUE_LENGTH: Final = 0x0D
ATT_UNLIKELY_ERROR: Final = 0x0E
ATT_INSUFFICIENT_ENCRYPTION: Final = 0x0F
ATT_APPLICATION_RATE_LIMITED: Final = 0x80
"""0x80-0x9F are application errors: 0x80 is ours for "rate limited, retry later"..."""
ATT_APPLICATION_MALFORMED: Final = 0x81
"""... and 0x81 for "not a control request" (ATT's own Value Not Allowed, 0x13, cannot be
returned through BlueZ's D-Bus API; an application error can, on both transports)."""

ATT_ERRORS: Final[Mapping[ResultCode, int]] = {
    # The link is not encrypted: the code that makes BlueZ, Android and iOS start pairing.
    ResultCode.NOT_PERMITTED: ATT_INSUFFICIENT_ENCRYPTION,
    ResultCode.RATE_LIMITED: ATT_APPLICATION_RATE_LIMITED,
    ResultCode.MALFORMED: ATT_APPLICATION_MALFORMED,
    ResultCode.TOO_LARGE: ATT_INVALID_ATTRIBUTE_VALUE_LENGTH,
}
"""Result codes answered with an ATT error on the write itself (no result notification).

Every other code is a well-formed request's answer: the write succeeds and the result comes
as a notification on the control point, carrying the request id. (One exception: should the
core itself fail, a bug that it logs, the write gets ATT Unlikely Error 0x0E.)

On BlueZ (src/gatt-database.c, dbus_error_to_att_ecode): 0x80-0x9F is
``org.bluez.Error.Failed`` with the code as its message ("0x80"), 0x0D is
``org.bluez.Error.InvalidValueLength``, and 0x0F comes from BlueZ itself for an
"encrypt-write" characteristic written on an unencrypted link.
"""

FRAMED_UUIDS: Final = frozenset({*uuids.STREAMS.values(), uuids.CONTROL_POINT})
"""Characteristics whose notifications carry protocol frames."""

MAX_CONTROL_BYTES: Final = 128
BACKFILL_MAX_EVENTS: Final = 200
"""Most events one backfill request returns; the app asks again from the last seq it got."""
RATE_BURST: Final = 8
RATE_PER_S: Final = 4.0
MAX_TRACKED_CLIENTS: Final = 64
RATE_LOG_EVERY_S: Final = 10.0
MAX_THRESHOLD_NAME: Final = 32

# --- GATT layout as plain data -------------------------------------------------------------
READ: Final = "read"
WRITE: Final = "write"
NOTIFY: Final = "notify"
ENCRYPT_WRITE: Final = "encrypt-write"


@dataclass(frozen=True)
class DescriptorSpec:
    uuid: str
    value: bytes
    flags: tuple[str, ...] = (READ,)


@dataclass(frozen=True)
class CharacteristicSpec:
    """One characteristic. ``value`` None and "read" in flags: ask :meth:`LinkCore.read_value`."""

    uuid: str
    description: str
    flags: tuple[str, ...]
    descriptors: tuple[DescriptorSpec, ...] = ()
    value: bytes | None = None


@dataclass(frozen=True)
class ServiceSpec:
    uuid: str
    name: str
    characteristics: tuple[CharacteristicSpec, ...]

    def characteristic(self, uuid: str) -> CharacteristicSpec:
        for c in self.characteristics:
            if c.uuid == uuid:
                return c
        raise KeyError(f"{self.name} has no characteristic {uuid}")


def _cud(text: str) -> DescriptorSpec:
    return DescriptorSpec(uuids.CHARACTERISTIC_USER_DESCRIPTION, text.encode("utf-8"))


# --- control point -------------------------------------------------------------------------


@dataclass(frozen=True)
class ControlHandlers:
    """What the control point can change; the runtime supplies them (None: not available)."""

    select_concept: Callable[[str], ResultCode] | None = None
    """Make ``concept`` the one the camera scores; INVALID_ARGUMENT if it does not know it."""
    set_threshold: Callable[[str, float], ResultCode] | None = None
    """Set the threshold called ``name`` (e.g. "concept", "bird") to ``value``."""
    concepts: Callable[[], tuple[list[str], str | None]] | None = None
    """The concepts the camera can score and the active one, for station info."""
    summary: Callable[[], list[dict[str, Any]]] | None = None
    """The station's health summary per sense (:meth:`device.runtime.Station.summary`)."""
    species_model: Callable[[], str] | None = None
    """Which models name the birds (the ear's model id), for station info."""


@dataclass(frozen=True)
class ControlOutcome:
    """What the transport does with one control-point write (see the module docstring)."""

    code: ResultCode
    request_id: int | None = None
    att_error: int | None = None
    result: bytes | None = None
    backfill: tuple[tuple[str, bytes], ...] = ()

    @property
    def notifications(self) -> list[tuple[str, bytes]]:
        """(characteristic uuid, message) to send to the writer, in this order."""
        tail = [] if self.result is None else [(uuids.CONTROL_POINT, self.result)]
        return [*self.backfill, *tail]


@dataclass
class _Bucket:
    tokens: float
    updated_s: float
    refused: int = 0
    logged_s: float = -math.inf


@dataclass
class _Request:
    request_id: int
    op: str
    payload: dict[str, Any] = field(default_factory=dict)


class LinkCore:
    """Turns stored events into messages and control-point writes into answers."""

    def __init__(
        self,
        store: EventStore | None,
        *,
        station_name: str,
        clock: Clock,
        handlers: ControlHandlers | None = None,
        ess_gases: Sequence[ess.EssGas] = ess.ESS_GASES,
        ess_update_interval_s: int = 0,
        backfill_max: int = BACKFILL_MAX_EVENTS,
        rate_burst: int = RATE_BURST,
        rate_per_s: float = RATE_PER_S,
        software_version: str = __version__,
    ) -> None:
        if backfill_max < 1:
            raise ValueError(f"backfill_max must be >= 1, got {backfill_max}")
        self.store = store
        self.station_name = station_name
        self.clock = clock
        self.handlers = handlers if handlers is not None else ControlHandlers()
        self.ess_gases = tuple(ess_gases)
        self.backfill_max = backfill_max
        self.rate_burst = rate_burst
        self.rate_per_s = rate_per_s
        self.software_version = software_version
        self._lock = threading.Lock()
        self._buckets: collections.OrderedDict[str, _Bucket] = collections.OrderedDict()
        self._ess: dict[str, bytes] = ess.unknown_values(self.ess_gases)
        self._newest_seq = self._newest_stored_seq()
        self.skipped = 0
        """Stored events that could not be encoded (logged; a bug in a sense's payload)."""
        self.layout: tuple[ServiceSpec, ...] = self._layout(ess_update_interval_s)

    # --- layout ----------------------------------------------------------------------------

    def _layout(self, ess_update_interval_s: int) -> tuple[ServiceSpec, ...]:
        stream_names = {
            "food": "Food verdicts",
            "concept": "Camera concept scores",
            "bird": "Bird detections",
            "nose": "Nose readings",
            "health": "Station health",
        }
        senses = ServiceSpec(
            uuids.SENSES_SERVICE,
            "Senses",
            (
                CharacteristicSpec(
                    uuids.STATION_INFO, "Station info", (READ,), (_cud("Station info"),)
                ),
                CharacteristicSpec(
                    uuids.CONTROL_POINT,
                    "Control point",
                    (WRITE, ENCRYPT_WRITE, NOTIFY),
                    (_cud("Control point"),),
                ),
                *(
                    CharacteristicSpec(
                        uuid, stream_names[name], (NOTIFY,), (_cud(stream_names[name]),)
                    )
                    for name, uuid in uuids.STREAMS.items()
                ),
            ),
        )
        measurement = DescriptorSpec(
            uuids.ES_MEASUREMENT,
            ess.es_measurement(update_interval_s=ess_update_interval_s),
        )
        trigger = DescriptorSpec(uuids.ES_TRIGGER_SETTING, ess.es_trigger_value_changed())
        climate = (
            (uuids.TEMPERATURE, "Temperature (food box)"),
            (uuids.HUMIDITY, "Humidity (food box)"),
        )
        environment = ServiceSpec(
            uuids.ESS_SERVICE,
            "Environmental Sensing",
            tuple(
                CharacteristicSpec(uuid, text, (READ, NOTIFY), (measurement, trigger, _cud(text)))
                for uuid, text in (*climate, *((g.uuid, g.description) for g in self.ess_gases))
            ),
        )
        information = ServiceSpec(
            uuids.DEVICE_INFORMATION_SERVICE,
            "Device Information",
            tuple(
                CharacteristicSpec(uuid, text, (READ,), value=value.encode("utf-8"))
                for uuid, text, value in (
                    (uuids.MANUFACTURER_NAME, "Manufacturer", "Senses project"),
                    (uuids.MODEL_NUMBER, "Model", "Senses station"),
                    (uuids.SOFTWARE_REVISION, "Software", self.software_version),
                    (
                        uuids.FIRMWARE_REVISION,
                        "Protocol",
                        f"senses-link {protocol.PROTOCOL_VERSION}",
                    ),
                )
            ),
        )
        return (senses, environment, information)

    def characteristic(self, uuid: str) -> CharacteristicSpec:
        """The layout entry for ``uuid`` (KeyError if the station has no such characteristic)."""
        for service in self.layout:
            for c in service.characteristics:
                if c.uuid == uuid:
                    return c
        raise KeyError(f"the station has no characteristic {uuid}")

    # --- reads -----------------------------------------------------------------------------

    @property
    def newest_seq(self) -> int:
        with self._lock:
            return self._newest_seq

    def _newest_stored_seq(self) -> int:
        if self.store is None:
            return 0
        newest = 0
        try:
            for type_ in protocol.EVENT_TYPES:
                latest = self.store.latest(type_)
                if latest is not None:
                    newest = max(newest, latest.seq)
        except StoreError as e:
            log.warning("link: cannot read the newest seq (%s); starting from 0", e)
        return newest

    def station_info(self) -> bytes:
        """The station info characteristic's value: a ``station_info`` message."""
        newest = self.newest_seq
        return protocol.encode_message(
            "station_info",
            newest,
            {
                "station_name": self.station_name,
                "protocol_version": protocol.PROTOCOL_VERSION,
                "newest_seq": newest,
                "backfill_max": self.backfill_max,
                "software_version": self.software_version,
                "streams": list(uuids.STREAMS),
                **self._concepts(),
                **self._summary(),
                **self._species_model(),
            },
        )

    def _species_model(self) -> dict[str, Any]:
        provider = self.handlers.species_model
        if provider is None:
            return {}
        try:
            return {"species_model": provider()}
        except Exception:
            log.exception("link: the species model is unavailable")
            return {}

    def _summary(self) -> dict[str, Any]:
        provider = self.handlers.summary
        if provider is None:
            return {}
        try:
            return {"senses": provider()[: protocol.MAX_CONCEPTS]}
        except Exception:
            log.exception("link: the health summary is unavailable")
            return {}

    def _concepts(self) -> dict[str, Any]:
        provider = self.handlers.concepts
        if provider is None:
            return {}
        try:
            names, active = provider()
        except Exception:
            log.exception("link: the concept list is unavailable")
            return {}
        return {"concepts": names, "active_concept": active}

    def ess_values(self, nose_payload: Mapping[str, Any]) -> dict[str, bytes]:
        """ESS characteristic uuid -> value for one nose reading's payload."""
        return ess.nose_values(nose_payload, self.ess_gases)

    def read_value(self, uuid: str) -> bytes | None:
        """The current value of a readable characteristic; None if it is not readable."""
        if uuid == uuids.STATION_INFO:
            return self.station_info()
        with self._lock:
            if uuid in self._ess:
                return self._ess[uuid]
        try:
            return self.characteristic(uuid).value
        except KeyError:
            return None

    @staticmethod
    def frames_for(message: bytes, max_payload: int) -> list[bytes]:
        """The notifications that carry ``message`` to a client with this ATT_MTU - 3."""
        return protocol.split(message, max_payload)

    @staticmethod
    def notifications_for(uuid: str, data: bytes, max_payload: int) -> list[bytes]:
        """What to notify on ``uuid``: frames of a message on a Senses characteristic (one
        that carries our protocol), ``[data]`` on a standard one (ESS values are 2 bytes)."""
        if uuid in FRAMED_UUIDS:
            return protocol.split(data, max_payload)
        return [data]

    # --- live events -----------------------------------------------------------------------

    def _encode(self, stored: StoredEvent) -> bytes | None:
        try:
            return protocol.encode_message(stored.type, stored.seq, stored.payload)
        except ProtocolError as e:
            self.skipped += 1
            log.error(
                "link: %s seq %d cannot be sent and is skipped: %s", stored.type, stored.seq, e
            )
            return None

    def on_stored(self, stored: StoredEvent) -> list[tuple[str, bytes]]:
        """(characteristic uuid, message) for one committed event: its stream, plus ESS values
        that changed when it is a nose reading. Empty for types the link does not carry."""
        stream = uuids.STREAMS.get(stored.type)
        if stream is None:
            return []
        with self._lock:
            self._newest_seq = max(self._newest_seq, stored.seq)
        message = self._encode(stored)
        out = [] if message is None else [(stream, message)]
        if stored.type == "nose":
            values = self.ess_values(stored.payload)
            with self._lock:
                changed = {u: v for u, v in values.items() if self._ess.get(u) != v}
                self._ess.update(changed)
            out += changed.items()
        return out

    # --- control point ---------------------------------------------------------------------

    def _allow(self, client: str) -> bool:
        """Token bucket per client: ``rate_burst`` at once, then ``rate_per_s``."""
        now = self.clock.monotonic()
        with self._lock:
            bucket = self._buckets.pop(client, None)
            if bucket is None:
                bucket = _Bucket(float(self.rate_burst), now)
            bucket.tokens = min(
                float(self.rate_burst), bucket.tokens + (now - bucket.updated_s) * self.rate_per_s
            )
            bucket.updated_s = now
            self._buckets[client] = bucket  # most recently used last
            while len(self._buckets) > MAX_TRACKED_CLIENTS:
                self._buckets.popitem(last=False)
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return True
            bucket.refused += 1
            # One line per client per interval, however hard it hammers.
            if now - bucket.logged_s >= RATE_LOG_EVERY_S:
                log.warning(
                    "link: control point: %s is rate limited (%d requests refused so far)",
                    client,
                    bucket.refused,
                )
                bucket.logged_s = now
            return False

    def _refuse(self, code: ResultCode, client: str, why: str) -> ControlOutcome:
        if code is not ResultCode.RATE_LIMITED:  # logged by _allow, at a bounded rate
            log.warning("link: control point: refused a write from %s: %s", client, why)
        return ControlOutcome(code, att_error=ATT_ERRORS[code])

    def handle_control(self, data: bytes, *, client: str, authenticated: bool) -> ControlOutcome:
        """Answer one control-point write. Never raises (see the module docstring)."""
        try:
            return self._handle_control(bytes(data), client, authenticated)
        except Exception:
            # The transport's loop must survive whatever a request does to us (a bug here).
            log.exception("link: control point: request from %s failed", client)
            return ControlOutcome(ResultCode.INTERNAL_ERROR, att_error=ATT_UNLIKELY_ERROR)

    def _handle_control(self, data: bytes, client: str, authenticated: bool) -> ControlOutcome:
        if not authenticated:
            return self._refuse(
                ResultCode.NOT_PERMITTED, client, "link not encrypted; the app must pair first"
            )
        if not self._allow(client):
            return ControlOutcome(
                ResultCode.RATE_LIMITED, att_error=ATT_ERRORS[ResultCode.RATE_LIMITED]
            )
        if len(data) > MAX_CONTROL_BYTES:
            return self._refuse(
                ResultCode.TOO_LARGE, client, f"{len(data)} bytes, at most {MAX_CONTROL_BYTES}"
            )
        try:
            message = protocol.decode_message(data)
        except ProtocolError as e:
            return self._refuse(ResultCode.MALFORMED, client, f"{e} (data {data[:32].hex()})")
        if message.type != "control":
            return self._refuse(
                ResultCode.MALFORMED, client, f"a {message.type} message, not a control request"
            )
        request = _Request(message.seq, str(message.payload["op"]), message.payload)
        log.info(
            "link: control point: %s asks %s (request %d)", client, request.op, request.request_id
        )
        if request.op == "backfill":
            return self._backfill(request)
        if request.op == "select_concept":
            code, detail = self._select_concept(request)
        elif request.op == "set_threshold":
            code, detail = self._set_threshold(request)
        else:
            code, detail = ResultCode.UNSUPPORTED, f"unknown operation {request.op}"
        if code is not ResultCode.OK:
            log.warning(
                "link: control point: %s %s -> %s (%s)", client, request.op, code.name, detail
            )
        return self._result(request, code, detail)

    def _result(
        self,
        request: _Request,
        code: ResultCode,
        detail: str | None = None,
        *,
        backfill: tuple[tuple[str, bytes], ...] = (),
        **fields: Any,
    ) -> ControlOutcome:
        payload = {"op": request.op, "code": code, "detail": detail, **fields}
        result = protocol.encode_message("control_result", request.request_id, payload)
        return ControlOutcome(code, request_id=request.request_id, result=result, backfill=backfill)

    def _call(self, what: str, call: Callable[[], ResultCode]) -> tuple[ResultCode, str | None]:
        try:
            code = ResultCode(call())
        except Exception as e:
            log.exception("link: %s handler failed", what)
            return ResultCode.INTERNAL_ERROR, f"{what} failed: {e}"
        return code, None

    def _select_concept(self, request: _Request) -> tuple[ResultCode, str | None]:
        concept = request.payload.get("concept")
        if not concept:
            return ResultCode.INVALID_ARGUMENT, "select_concept needs a concept"
        handler = self.handlers.select_concept
        if handler is None:
            return ResultCode.UNAVAILABLE, "no camera to select a concept on"
        return self._call("select_concept", lambda: handler(concept))

    def _set_threshold(self, request: _Request) -> tuple[ResultCode, str | None]:
        name, value = request.payload.get("name"), request.payload.get("value")
        if not name or value is None or not math.isfinite(value):
            return ResultCode.INVALID_ARGUMENT, "set_threshold needs a name and a finite value"
        handler = self.handlers.set_threshold
        if handler is None:
            return ResultCode.UNAVAILABLE, "no thresholds can be set on this station"
        return self._call("set_threshold", lambda: handler(name, float(value)))

    def _backfill(self, request: _Request) -> ControlOutcome:
        since = request.payload.get("since")
        limit = request.payload.get("max_count") or self.backfill_max
        wanted = request.payload.get("types")
        types = set(uuids.STREAMS) if not wanted else set(wanted) & set(uuids.STREAMS)
        newest = self.newest_seq
        if since is None:
            return self._result(request, ResultCode.INVALID_ARGUMENT, "backfill needs since")
        if self.store is None:
            return self._result(request, ResultCode.UNAVAILABLE, "this station keeps no events")
        limit = min(limit, self.backfill_max)
        try:
            rows = self.store.since(since, limit=limit, types=types) if types else []
        except StoreError as e:
            log.error("link: backfill since %d failed: %s", since, e)
            return self._result(request, ResultCode.INTERNAL_ERROR, "the event store failed")
        frames = [
            (uuids.STREAMS[row.type], message)
            for row in rows
            if (message := self._encode(row)) is not None
        ]
        last_seq = rows[-1].seq if rows else since
        return self._result(
            request,
            ResultCode.OK,
            backfill=tuple(frames),
            count=len(frames),
            last_seq=last_seq,
            more=len(rows) == limit,
            newest_seq=max(newest, last_seq),
        )


class StoreFeed:
    """Hands every event a store commits to a transport's event loop, in seq order.

    Both servers need the same bridge: the store calls its listeners on the appending thread,
    the transport sends from its asyncio loop. Encoding happens on the appending thread, then
    ``call_soon_threadsafe`` (FIFO) carries the items over, so phones see the store's order.
    """

    def __init__(self, core: LinkCore, send: Callable[[Sequence[tuple[str, bytes]]], None]) -> None:
        self.core = core
        self._send = send
        self._store: EventStore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def attach(self, store: EventStore) -> None:
        """Feed every event ``store`` commits from now on (call on the transport's loop)."""
        self._loop = asyncio.get_running_loop()
        self._store = store
        store.add_listener(self._on_stored)

    def detach(self) -> None:
        if self._store is not None:
            self._store.remove_listener(self._on_stored)
            self._store = None

    def _on_stored(self, stored: StoredEvent) -> None:
        items = self.core.on_stored(stored)
        if items and self._loop is not None:
            self._loop.call_soon_threadsafe(self._send, items)
