"""The Senses wire format: one versioned, compact encoding for every event, and its framing.

Pure Python (standard library + cbor2): the phone app imports this same module, so it must not
import numpy or anything from ``device``.

**Message** (what one event becomes; also a control request, its result, the station info)::

    byte 0      version (high nibble) | message type (low nibble)
    bytes 1-4   seq, uint32 little-endian: the event store's sequence number
                (a control request's id; the newest seq for station info)
    bytes 5-    CBOR (RFC 8949) map with small integer keys, one schema per type

**Frame** (what one notification carries; ATT cuts a notification to ATT_MTU - 3 bytes
without telling anyone, Core 5.4 Vol 3 Part F §3.4.7.1, so a long message is split)::

    byte 0      version | type       (as in the message)
    bytes 1-4   seq                  (as in the message)
    byte 5      chunk index, 0-based
    byte 6      chunk count, 1..255
    bytes 7-    the next slice of the message's CBOR body

Every frame names its message, so a receiver tells a continuation from the start of something
else and drops a partial message instead of gluing two together (:class:`Reassembler`).

**Schemas** keep the field names of ``Event.to_dict()`` (device/events.py) but send each as a
small integer key with a quantised value: times as integer milliseconds, probabilities and
scores in units of 10^-4, voltages in mV, temperature and humidity in 0.01 units (as ESS does),
and wide-range physical values (Rs, Rs/R0, ppm) as IEEE 754 half floats (3 significant
digits, CBOR major type 7, RFC 8949 §3.3). Enumerations and the known sensor, gas and class
names travel as indices into tables that only ever grow (an unknown name travels as text).
A value that is None, NaN or infinite is left out and decodes as None.

Compatibility: a decoder ignores keys it does not know, so a newer station may add fields
without breaking an older app. Anything that would change the meaning of an existing key
bumps :data:`PROTOCOL_VERSION`; a decoder refuses messages of another version with a
:class:`ProtocolError` that says which side to update.

Errors: every decoding entry point (:func:`decode_message`, :meth:`Reassembler.feed`) raises
:class:`ProtocolError` and nothing else, whatever bytes it is given.
"""

from __future__ import annotations

import enum
import math
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, cast

import cbor2

PROTOCOL_VERSION: Final = 1

MESSAGE_HEADER: Final = struct.Struct("<BI")
"""version|type, seq."""
FRAME_HEADER: Final = struct.Struct("<BIBB")
"""version|type, seq, chunk index, chunk count."""

ATT_MIN_MTU: Final = 23
"""The ATT_MTU every link starts with (Core 5.4 Vol 3 Part F §3.2.8): 20-byte notifications."""
MAX_CHUNKS: Final = 255
MIN_MAX_PAYLOAD: Final = FRAME_HEADER.size + 1
MAX_MESSAGE_BYTES: Final = 3072
"""Longest message: it still fits 255 frames at the minimum MTU (255 x 13 body bytes)."""
MAX_TEXT_BYTES: Final = 400
"""Free text (a health message) is cut to this many UTF-8 bytes; the store keeps it whole."""
MAX_SEQ: Final = 0xFFFF_FFFF
_MAX_CBOR_DEPTH: Final = 6

# Field scales: wire integer = round(value * scale).
MS_PER_S: Final = 1000
PER_10K: Final = 10_000
CENTI: Final = 100
MV_PER_V: Final = 1000


class ProtocolError(ValueError):
    """Bytes that are not a valid Senses message or frame, or a payload that cannot be sent.

    The one exception the decoder raises: catch it, log it, drop the message. Also raised by
    the encoder for payloads the schema cannot carry (a bug in the sender).
    """


class MessageType(enum.IntEnum):
    """The low nibble of byte 0. Codes are never reused."""

    FOOD = 1
    CONCEPT = 2
    BIRD = 3
    NOSE = 4
    HEALTH = 5
    CONTROL = 6
    CONTROL_RESULT = 7
    STATION_INFO = 8

    @property
    def type_name(self) -> str:
        """The name used in payloads and ``Event.type`` ("food", "control_result", ...)."""
        return self.name.lower()


_CODES: Final = frozenset(int(t) for t in MessageType)
_BY_NAME: Final = {t.type_name: t for t in MessageType}


def _type_code(name: str) -> MessageType:
    try:
        return _BY_NAME[name]
    except KeyError:
        known = ", ".join(_BY_NAME)
        raise ProtocolError(f"unknown message type {name!r}; known types: {known}") from None


#: At most this many concept names travel in station info (a board per phone screen row).
MAX_CONCEPTS: Final = 16
EVENT_TYPES: Final = ("food", "concept", "bird", "nose", "health")
"""Message types that carry a stored event (one notify characteristic each)."""


class ResultCode(enum.IntEnum):
    """What the station answers to a control-point request (carried in ``control_result``)."""

    OK = 0
    """Done."""
    NOT_PERMITTED = 1
    """The link is not encrypted with bonded keys: pair with the station first."""
    RATE_LIMITED = 2
    """Too many requests from this client: wait a second and retry."""
    MALFORMED = 3
    """Not a control request (bad header or CBOR, truncated, wrong field types)."""
    TOO_LARGE = 4
    """The request is longer than a control request can be."""
    UNSUPPORTED = 5
    """Unknown operation or protocol version: update the station or the app."""
    INVALID_ARGUMENT = 6
    """Well formed, but a value is not acceptable (unknown concept, threshold out of range)."""
    UNAVAILABLE = 7
    """The station cannot do this now (no event store, no camera running)."""
    INTERNAL_ERROR = 8
    """The station failed while doing it; its log says why."""


CONTROL_OPS: Final = (
    *("select_concept", "set_threshold", "backfill", "new_food"),
    # Boards made on the phone (device/eye/boards.py) and AI-crop thumbnails.
    *("board_begin", "board_chunk", "board_status", "thumbnail"),
)
MAX_CHUNK_BYTES: Final = 480
"""Most picture bytes one ``board_chunk`` or ``thumbnail`` piece carries on the control point
(an ATT write holds at most 512 bytes; the app sends less on a smaller MTU)."""
MAX_THUMBNAIL_PIECE_BYTES: Final = 2048
"""Most thumbnail bytes one ``thumbnail`` answer carries (a result still fits 255 frames at
the minimum MTU)."""


@dataclass(frozen=True)
class Message:
    """One decoded message. ``payload`` mirrors the event's ``to_dict()``, ``"type"`` included."""

    version: int
    type: str
    seq: int
    payload: dict[str, Any]


# ---------------------------------------------------------------------------- field codecs


def _fail(name: str, raw: object, expected: str) -> ProtocolError:
    return ProtocolError(f"field {name!r}: expected {expected}, got {type(raw).__name__}")


def _finite(value: object) -> float | None:
    """``value`` as a finite float, or None for None/NaN/inf (they are left out on the wire)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProtocolError(f"expected a number, got {type(value).__name__} {value!r}")
    number = float(value)
    return number if math.isfinite(number) else None


def _is_int(raw: object) -> bool:
    return isinstance(raw, int) and not isinstance(raw, bool)


_HALF_MIN: Final = 6.2e-5  # smallest normal half float (6.1e-5): below it precision fades
_HALF_MAX: Final = 65504.0


def _compact_float(value: float) -> float:
    """``value`` rounded to the nearest half float when one holds it to ~3 digits, else float32.

    cbor2 (canonical mode) then writes the shortest float that represents the rounded value
    exactly: 3 bytes for a half, 5 for a single.
    """
    fmt = "<e" if value == 0 or _HALF_MIN <= abs(value) <= _HALF_MAX else "<f"
    try:
        return float(struct.unpack(fmt, struct.pack(fmt, value))[0])
    except (OverflowError, struct.error):
        return value  # beyond float32: sent as a double


class _Codec:
    """Turns one field's value into its CBOR form and back. ``record`` is the enclosing dict."""

    def encode(self, value: Any, record: Mapping[str, Any]) -> Any:
        raise NotImplementedError

    def decode(self, raw: Any, record: Mapping[str, Any], name: str) -> Any:
        raise NotImplementedError


class _Scaled(_Codec):
    """A number sent as ``round(value * scale)``."""

    def __init__(self, scale: int, *, minimum: float | None = None) -> None:
        self.scale = scale
        self.minimum = minimum

    def encode(self, value: Any, record: Mapping[str, Any]) -> Any:
        number = _finite(value)
        if number is None:
            return None
        if self.minimum is not None and number < self.minimum:
            raise ProtocolError(f"{number} is below the minimum {self.minimum}")
        return round(number * self.scale)

    def decode(self, raw: Any, record: Mapping[str, Any], name: str) -> Any:
        if not _is_int(raw):
            raise _fail(name, raw, "an integer")
        return raw / self.scale


class _OffsetMs(_Codec):
    """A Unix time sent as milliseconds relative to the record's ``ts`` (a few bytes, not 9)."""

    def encode(self, value: Any, record: Mapping[str, Any]) -> Any:
        number, anchor = _finite(value), _finite(record.get("ts"))
        if number is None or anchor is None:
            return None
        return round(number * MS_PER_S) - round(anchor * MS_PER_S)

    def decode(self, raw: Any, record: Mapping[str, Any], name: str) -> Any:
        if not _is_int(raw):
            raise _fail(name, raw, "an integer")
        anchor = record.get("ts")
        if not isinstance(anchor, float):
            raise ProtocolError(f"field {name!r} is relative to ts, which is missing")
        return (round(anchor * MS_PER_S) + raw) / MS_PER_S


class _Float(_Codec):
    """A number with a wide range, sent as a half float (or a single when it does not fit)."""

    def encode(self, value: Any, record: Mapping[str, Any]) -> Any:
        number = _finite(value)
        return None if number is None else _compact_float(number)

    def decode(self, raw: Any, record: Mapping[str, Any], name: str) -> Any:
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise _fail(name, raw, "a number")
        number = float(raw)
        if not math.isfinite(number):
            return None
        # Show the digits the wire carried (a half float holds ~3.3, a single ~7): 14.52,
        # not the 14.515625 that would suggest precision nobody measured.
        digits = 4 if _HALF_MIN <= abs(number) <= _HALF_MAX else 7
        return float(f"{number:.{digits}g}") if isinstance(raw, float) else number


class _Count(_Codec):
    """A non-negative integer (a sequence number, a count)."""

    def encode(self, value: Any, record: Mapping[str, Any]) -> Any:
        if value is None:
            return None
        if not _is_int(value) or value < 0:
            raise ProtocolError(f"expected a non-negative integer, got {value!r}")
        return value

    def decode(self, raw: Any, record: Mapping[str, Any], name: str) -> Any:
        if not _is_int(raw) or raw < 0:
            raise _fail(name, raw, "a non-negative integer")
        return raw


class _Bool(_Codec):
    def encode(self, value: Any, record: Mapping[str, Any]) -> Any:
        return None if value is None else bool(value)

    def decode(self, raw: Any, record: Mapping[str, Any], name: str) -> Any:
        if not isinstance(raw, bool):
            raise _fail(name, raw, "true or false")
        return raw


class _Bytes(_Codec):
    """Raw bytes (a picture chunk, a digest), at most ``max_bytes``."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes

    def encode(self, value: Any, record: Mapping[str, Any]) -> Any:
        if value is None:
            return None
        if not isinstance(value, bytes | bytearray | memoryview):
            raise ProtocolError(f"expected bytes, got {type(value).__name__}")
        data = bytes(value)
        if len(data) > self.max_bytes:
            raise ProtocolError(f"{len(data)} bytes, at most {self.max_bytes}")
        return data

    def decode(self, raw: Any, record: Mapping[str, Any], name: str) -> Any:
        if not isinstance(raw, bytes) or len(raw) > self.max_bytes:
            raise _fail(name, raw, f"at most {self.max_bytes} bytes")
        return raw


class _Text(_Codec):
    """Free text, cut to ``max_bytes`` of UTF-8 (at a character boundary)."""

    def __init__(self, max_bytes: int = MAX_TEXT_BYTES) -> None:
        self.max_bytes = max_bytes

    def encode(self, value: Any, record: Mapping[str, Any]) -> Any:
        if value is None:
            return None
        text = str(value)
        data = text.encode("utf-8")
        if len(data) <= self.max_bytes:
            return text
        return data[: self.max_bytes - 3].decode("utf-8", errors="ignore") + "…"

    def decode(self, raw: Any, record: Mapping[str, Any], name: str) -> Any:
        if not isinstance(raw, str):
            raise _fail(name, raw, "text")
        return raw


class _TextList(_Codec):
    """A short list of short texts (the station's concept names)."""

    def __init__(self, max_items: int, max_bytes: int) -> None:
        self.max_items = max_items
        self.text = _Text(max_bytes)

    def encode(self, value: Any, record: Mapping[str, Any]) -> Any:
        if value is None:
            return None
        return [self.text.encode(v, record) for v in list(value)[: self.max_items]]

    def decode(self, raw: Any, record: Mapping[str, Any], name: str) -> Any:
        if not isinstance(raw, list):
            raise _fail(name, raw, "a list of texts")
        return [self.text.decode(v, record, name) for v in raw]


class _Name(_Codec):
    """A name from a known table, sent as its index; a name not in the table goes as text.

    Tables only grow at the end, so an index keeps its meaning. An index this decoder does
    not know (added by a newer station) decodes as ``"#<index>"`` rather than failing.
    """

    def __init__(self, table: Sequence[str]) -> None:
        self.table = tuple(table)
        self.index = {name: i for i, name in enumerate(self.table)}

    def encode(self, value: Any, record: Mapping[str, Any]) -> Any:
        if value is None:
            return None
        text = str(value)
        return self.index.get(text, text)

    def decode(self, raw: Any, record: Mapping[str, Any], name: str) -> Any:
        if isinstance(raw, str):
            return raw
        if not _is_int(raw) or raw < 0:
            raise _fail(name, raw, "a name index or text")
        return self.table[raw] if raw < len(self.table) else f"#{raw}"


class _Dict(_Codec):
    """A mapping of names to numbers (class probabilities, ppm per gas)."""

    def __init__(self, key: _Name, value: _Codec) -> None:
        self.key = key
        self.value = value

    def encode(self, value: Any, record: Mapping[str, Any]) -> Any:
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise ProtocolError(f"expected a mapping, got {type(value).__name__}")
        out = {}
        for k, v in value.items():
            wire = self.value.encode(v, record)
            if wire is not None:
                out[self.key.encode(k, record)] = wire
        return out

    def decode(self, raw: Any, record: Mapping[str, Any], name: str) -> Any:
        if not isinstance(raw, dict):
            raise _fail(name, raw, "a map")
        return {
            self.key.decode(k, record, name): self.value.decode(v, record, name)
            for k, v in raw.items()
        }


class _Tuple(_Codec):
    """A fixed-length list of numbers (a box x, y, w, h)."""

    def __init__(self, length: int, item: _Codec) -> None:
        self.length = length
        self.item = item

    def encode(self, value: Any, record: Mapping[str, Any]) -> Any:
        if value is None:
            return None
        items = list(value)
        if len(items) != self.length:
            raise ProtocolError(f"expected {self.length} numbers, got {len(items)}")
        wire = [self.item.encode(v, record) for v in items]
        return None if any(w is None for w in wire) else wire

    def decode(self, raw: Any, record: Mapping[str, Any], name: str) -> Any:
        if not isinstance(raw, list) or len(raw) < self.length:
            raise _fail(name, raw, f"a list of {self.length}")
        # Extra items are a newer station's business: ignore them.
        return [self.item.decode(v, record, name) for v in raw[: self.length]]


class _TypeList(_Codec):
    """A list of message type names, sent as their codes."""

    def encode(self, value: Any, record: Mapping[str, Any]) -> Any:
        if value is None:
            return None
        return [int(_type_code(str(name))) for name in value]

    def decode(self, raw: Any, record: Mapping[str, Any], name: str) -> Any:
        if not isinstance(raw, list) or not all(_is_int(v) for v in raw):
            raise _fail(name, raw, "a list of type codes")
        # A code this decoder does not know is a newer type it cannot ask for anyway.
        return [MessageType(v).type_name for v in raw if v in _CODES]


class _ResultCode(_Count):
    """A :class:`ResultCode`; a code this decoder does not know stays a plain int."""

    def decode(self, raw: Any, record: Mapping[str, Any], name: str) -> Any:
        code = super().decode(raw, record, name)
        return ResultCode(code) if code in _RESULT_CODES else code


_RESULT_CODES: Final = frozenset(int(c) for c in ResultCode)


@dataclass(frozen=True)
class _Field:
    key: int
    name: str
    codec: _Codec
    default: Callable[[], Any] | None = None


class _Record(_Codec):
    """A dict with named fields sent as a CBOR map with integer keys."""

    def __init__(self, *fields: _Field, required: tuple[str, ...] = ()) -> None:
        self.fields = fields
        self.by_key = {f.key: f for f in fields}
        self.required = required
        if len(self.by_key) != len(fields):
            raise ValueError("duplicate key in a schema")

    def encode(self, value: Any, record: Mapping[str, Any]) -> Any:
        if not isinstance(value, Mapping):
            raise ProtocolError(f"expected a mapping, got {type(value).__name__}")
        for name in self.required:
            if value.get(name) is None:
                raise ProtocolError(f"payload has no {name!r}")
        out: dict[int, Any] = {}
        for f in self.fields:
            try:
                wire = f.codec.encode(value.get(f.name), value)
            except ProtocolError as e:
                raise ProtocolError(f"field {f.name!r}: {e}") from None
            if wire is not None:
                out[f.key] = wire
        return out

    def decode(self, raw: Any, record: Mapping[str, Any], name: str) -> Any:
        if not isinstance(raw, dict):
            raise _fail(name, raw, "a map")
        out: dict[str, Any] = {}
        # Fields in key order: ts (key 0) is known before the fields relative to it.
        for f in self.fields:
            if f.key in raw:
                out[f.name] = f.codec.decode(raw[f.key], out, f.name)
            else:
                out[f.name] = f.default() if f.default is not None else None
        for name_ in self.required:
            if out[name_] is None:
                raise ProtocolError(f"message has no {name_!r}")
        return out


class _List(_Codec):
    """A list of records (the sensors of a nose reading)."""

    def __init__(self, item: _Record) -> None:
        self.item = item

    def encode(self, value: Any, record: Mapping[str, Any]) -> Any:
        if value is None:
            return None
        return [self.item.encode(v, v) for v in value]

    def decode(self, raw: Any, record: Mapping[str, Any], name: str) -> Any:
        if not isinstance(raw, list):
            raise _fail(name, raw, "a list")
        return [self.item.decode(v, {}, name) for v in raw]


# ------------------------------------------------------------------------------- schemas
# Tables grow only at the end (see _Name). Names follow device/events.py and device/nose/mq.py.
CHANNEL_STATUSES: Final = ("ok", "warming_up", "uncalibrated", "disconnected", "error")
HEALTH_STATUSES: Final = ("ok", "degraded", "failed")
FOOD_LABELS: Final = ("fresh", "spoiling", "spoiled")
FOOD_CLASSES: Final = ("excellent", "good", "acceptable", "spoiled")
TRENDS: Final = ("improving", "steady", "worsening", "unknown")
FOOD_STATES: Final = ("no_food", "baseline", "starting", "ready", "no_change")
SENSOR_NAMES: Final = (
    *("MQ2", "MQ3", "MQ4", "MQ5", "MQ6", "MQ7", "MQ8", "MQ9", "MQ135", "MQ136", "MQ137"),
)
GASES: Final = (
    *("H2", "LPG", "alcohol", "benzene", "CH4", "CO", "NH3", "CO2", "toluene", "acetone", "H2S"),
)

_TS = _Field(0, "ts", _Scaled(MS_PER_S))

_SENSE_SUMMARY = _Record(
    _Field(0, "name", _Text(16)),
    _Field(1, "running", _Bool()),
    _Field(2, "events_per_min", _Float()),
    _Field(3, "drops", _Count()),
    _Field(4, "restarts", _Count()),
    _Field(5, "last_error", _Text(96)),
)
_P = _Scaled(PER_10K)

_SENSOR = _Record(
    _Field(0, "name", _Name(SENSOR_NAMES)),
    _Field(1, "status", _Name(CHANNEL_STATUSES)),
    _Field(2, "voltage_v", _Scaled(MV_PER_V)),
    _Field(3, "rs_kohm", _Float()),
    _Field(4, "ratio", _Float()),
    _Field(5, "ppm", _Dict(_Name(GASES), _Float()), default=dict),
    required=("name", "status"),
)

_SCHEMAS: Final[dict[MessageType, _Record]] = {
    MessageType.NOSE: _Record(
        _TS,
        _Field(1, "sensors", _List(_SENSOR), default=list),
        _Field(2, "temperature_c", _Scaled(CENTI)),
        _Field(3, "humidity_pct", _Scaled(CENTI)),
        _Field(4, "warming_up", _Bool()),
        required=("ts",),
    ),
    MessageType.FOOD: _Record(
        _TS,
        _Field(1, "label", _Name(FOOD_LABELS)),
        _Field(2, "confidence", _P),
        _Field(3, "probabilities", _Dict(_Name(FOOD_CLASSES), _P), default=dict),
        _Field(4, "freshness", _P),
        _Field(5, "trend", _Name(TRENDS)),
        _Field(6, "freshness_per_hour", _P),
        _Field(7, "warming_up", _Bool()),
        # The model's total viable count estimate, log10 CFU/g (absent from older stations).
        _Field(8, "tvc_log_cfu", _Scaled(CENTI)),
        # Where the station is with the food (device.events.FoodState; absent from older
        # stations, which only sent verdicts), when it was marked in, minutes to a verdict.
        _Field(9, "food_state", _Name(FOOD_STATES)),
        _Field(10, "food_in_ts", _OffsetMs()),
        _Field(11, "minutes_to_verdict", _Count()),
        required=("ts",),
    ),
    # ConceptScore: the camera's score for the selected concept (0-1) in a focus box given
    # as normalised (x, y, w, h), with the camera's frame rate and dropped-frame count.
    MessageType.CONCEPT: _Record(
        _TS,
        _Field(1, "concept", _Text()),
        _Field(2, "score", _P),
        _Field(3, "focus_box", _Tuple(4, _P)),
        _Field(4, "fps", _Scaled(CENTI)),
        _Field(5, "drops", _Count()),
        # The AI crop this score triggered (its id, for the ``thumbnail`` op); absent: none.
        _Field(6, "crop", _Text(80)),
        required=("ts",),
    ),
    # BirdDetection: a call heard from start to end (Unix s), the species, the classifier's
    # max and mean confidence over the call, the name of the saved clip, and why no clip was
    # kept when it was withheld.
    MessageType.BIRD: _Record(
        _TS,
        _Field(1, "start", _OffsetMs()),
        _Field(2, "end", _OffsetMs()),
        _Field(3, "species", _Text()),
        _Field(4, "confidence_max", _P),
        _Field(5, "confidence_mean", _P),
        _Field(6, "clip", _Text()),
        # Appended: the scientific name ("" for presence-only "Bird") and the models that
        # named it (e.g. "yamnet+birdnet-v2.4"); absent from older stations.
        _Field(7, "scientific_name", _Text(96)),
        _Field(8, "model_id", _Text(64)),
        # Why no clip was kept on purpose ("speech": the privacy filter); absent: kept.
        _Field(9, "clip_withheld", _Text(), default=str),
        required=("ts",),
    ),
    MessageType.HEALTH: _Record(
        _TS,
        _Field(1, "component", _Text()),
        _Field(2, "status", _Name(HEALTH_STATUSES)),
        _Field(3, "message", _Text()),
        required=("ts",),
    ),
    # App -> station, written to the control point; seq is the request id.
    MessageType.CONTROL: _Record(
        _Field(0, "op", _Name(CONTROL_OPS)),
        _Field(1, "concept", _Text(64)),
        _Field(2, "name", _Text(32)),
        _Field(3, "value", _Float()),
        _Field(4, "since", _Count()),
        _Field(5, "max_count", _Count()),
        _Field(6, "types", _TypeList()),
        # Board upload (board_begin / board_chunk / board_status; the name goes in "concept").
        _Field(7, "upload_id", _Text(40)),
        _Field(8, "offset", _Count()),
        _Field(9, "data", _Bytes(MAX_CHUNK_BYTES)),
        _Field(10, "crc32", _Count()),
        _Field(11, "size", _Count()),
        _Field(12, "sha256", _Bytes(32)),
        # thumbnail: which AI crop (a concept event's "crop"); "offset" pages through it.
        _Field(13, "crop", _Text(80)),
        required=("op",),
    ),
    # Station -> app on the control point; seq is the request id it answers.
    MessageType.CONTROL_RESULT: _Record(
        _Field(0, "op", _Name(CONTROL_OPS)),
        _Field(1, "code", _ResultCode()),
        _Field(2, "detail", _Text()),
        _Field(3, "count", _Count()),
        _Field(4, "last_seq", _Count()),
        _Field(5, "more", _Bool()),
        _Field(6, "newest_seq", _Count()),
        # Board upload: bytes the station holds (resume here), where it is, and once trained
        # the quality report; thumbnail: a piece of the JPEG at "offset" of "size" bytes.
        _Field(7, "offset", _Count()),
        _Field(8, "state", _Text(16)),
        _Field(9, "accuracy", _P),
        _Field(10, "auc", _P),
        _Field(11, "p_value", _Float()),
        _Field(12, "stability", _P),
        _Field(13, "data", _Bytes(MAX_THUMBNAIL_PIECE_BYTES)),
        _Field(14, "size", _Count()),
        _Field(15, "concept", _Text(64)),
        required=("code",),
    ),
    # The station info characteristic; seq is the newest stored seq.
    MessageType.STATION_INFO: _Record(
        _Field(0, "station_name", _Text(64)),
        _Field(1, "protocol_version", _Count()),
        _Field(2, "newest_seq", _Count()),
        _Field(3, "backfill_max", _Count()),
        _Field(4, "software_version", _Text(32)),
        _Field(5, "streams", _TypeList()),
        # The concepts the camera can score, and the one it scores now (absent: no eye).
        _Field(6, "concepts", _TextList(MAX_CONCEPTS, 64)),
        _Field(7, "active_concept", _Text(64)),
        # The health summary: how each sense (and the link) is doing.
        _Field(8, "senses", _List(_SENSE_SUMMARY)),
        # Appended: which models name the birds (e.g. "yamnet+birdnet-v2.4"; absent: no ear).
        _Field(9, "species_model", _Text(64)),
    ),
}


# ------------------------------------------------------------------------------ messages


def encode_message(event_type: str, seq: int, payload: Mapping[str, Any]) -> bytes:
    """One message: header + CBOR of ``payload`` (an ``Event.to_dict()`` or a control dict).

    Keys the schema does not know are not sent. Raises :class:`ProtocolError` for an unknown
    type, a seq outside uint32, a payload the schema cannot carry, or a message longer than
    :data:`MAX_MESSAGE_BYTES`.
    """
    code = _type_code(event_type)
    if not _is_int(seq) or not 0 <= seq <= MAX_SEQ:
        raise ProtocolError(f"seq must be an integer in 0..{MAX_SEQ}, got {seq!r}")
    try:
        body = cbor2.dumps(_SCHEMAS[code].encode(payload, payload), canonical=True)
    except ProtocolError as e:
        raise ProtocolError(f"cannot encode {event_type} seq {seq}: {e}") from None
    message = MESSAGE_HEADER.pack((PROTOCOL_VERSION << 4) | code, seq) + body
    if len(message) > MAX_MESSAGE_BYTES:
        raise ProtocolError(
            f"{event_type} seq {seq} encodes to {len(message)} bytes, more than the "
            f"{MAX_MESSAGE_BYTES} a message may have; shorten its text or lists"
        )
    return message


def _split_type_byte(byte0: int) -> MessageType:
    version, code = byte0 >> 4, byte0 & 0x0F
    if version != PROTOCOL_VERSION:
        newer = "station" if version < PROTOCOL_VERSION else "app"
        raise ProtocolError(
            f"message of protocol version {version}; this side speaks version "
            f"{PROTOCOL_VERSION}: update the {newer}"
        )
    if code not in _CODES:
        raise ProtocolError(f"unknown message type code {code}: update the app")
    return MessageType(code)


def _check_cbor(data: bytes) -> None:
    """Refuse CBOR that is not the plain subset we send, before cbor2 allocates anything.

    Every declared length must fit in the bytes that are left (so a 5-byte message cannot
    ask for a list of 2^60 items), nesting is shallow, there are no tags (cbor2 would turn
    them into datetimes, regexes, sets...), no indefinite lengths, no simple values but
    false/true/null, and exactly one item.
    """
    pos, end = 0, len(data)
    remaining = [1]  # items still to read at each open nesting level
    while remaining:
        if remaining[-1] == 0:
            remaining.pop()
            continue
        remaining[-1] -= 1
        if pos >= end:
            raise ProtocolError("CBOR ends early (truncated message)")
        initial = data[pos]
        pos += 1
        major, info = initial >> 5, initial & 0x1F
        if info < 24:
            argument = info
        elif info <= 27:
            size = 1 << (info - 24)
            if pos + size > end:
                raise ProtocolError("CBOR ends early (truncated message)")
            argument = int.from_bytes(data[pos : pos + size], "big")
            pos += size
        else:
            raise ProtocolError(f"CBOR item 0x{initial:02x} (indefinite or reserved) not allowed")
        if major in (0, 1):
            continue
        if major in (2, 3):
            if argument > end - pos:
                raise ProtocolError("CBOR string longer than the message")
            pos += argument
        elif major in (4, 5):
            items = argument * (2 if major == 5 else 1)
            if items > end - pos:
                raise ProtocolError("CBOR container longer than the message")
            if len(remaining) > _MAX_CBOR_DEPTH:
                raise ProtocolError("CBOR nested too deep")
            remaining.append(items)
        elif major == 6:
            raise ProtocolError("CBOR tags are not used by this protocol")
        elif info <= 24 and not (info < 24 and argument in (20, 21, 22)):
            # Major type 7 below 25 is a simple value; only false, true and null are ours.
            raise ProtocolError(f"CBOR simple value {argument} not allowed")
    if pos != end:
        raise ProtocolError(f"{end - pos} bytes after the CBOR item")


def decode_message(data: bytes) -> Message:
    """Decode one whole message. Raises :class:`ProtocolError`, and only that, if it is invalid."""
    try:
        return _decode_message(bytes(data))
    except ProtocolError:
        raise
    except Exception as e:
        # The promise is one exception type for any input; anything else slipping out of
        # cbor2 or a codec on hostile bytes is still "not a valid message".
        raise ProtocolError(f"undecodable message ({type(e).__name__}: {e})") from e


def _strict_loads(body: bytes) -> Any:
    return cbor2.loads(
        body, max_depth=_MAX_CBOR_DEPTH + 1, allow_indefinite=False, allow_duplicate_keys=False
    )


def _pick_loads() -> Callable[[bytes], Any]:
    """cbor2 6's strict options, or plain ``loads`` on cbor2 5 (the pure-Python build Android
    gets: cbor2 6 is Rust-only). :func:`_check_cbor` has already refused tags, indefinite
    lengths and deep nesting either way; only on cbor2 5 does a duplicate key keep its last
    value instead of being refused."""
    try:
        _strict_loads(b"\xa0")
    except TypeError:
        return cast("Callable[[bytes], Any]", cbor2.loads)
    return _strict_loads


_loads = _pick_loads()


def _decode_message(data: bytes) -> Message:
    if len(data) <= MESSAGE_HEADER.size:
        raise ProtocolError(f"message of {len(data)} bytes is shorter than its header + body")
    if len(data) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message of {len(data)} bytes exceeds {MAX_MESSAGE_BYTES}")
    byte0, seq = MESSAGE_HEADER.unpack_from(data)
    code = _split_type_byte(byte0)
    body = data[MESSAGE_HEADER.size :]
    _check_cbor(body)
    try:
        raw = _loads(body)
    except cbor2.CBORError as e:
        raise ProtocolError(f"invalid CBOR: {e}") from e
    payload = _SCHEMAS[code].decode(raw, {}, code.type_name)
    return Message(PROTOCOL_VERSION, code.type_name, seq, {"type": code.type_name, **payload})


# ------------------------------------------------------------------------------- framing


def split(message: bytes, max_payload: int) -> list[bytes]:
    """Cut ``message`` into frames of at most ``max_payload`` (= ATT_MTU - 3) bytes each."""
    if max_payload < MIN_MAX_PAYLOAD:
        raise ProtocolError(
            f"max_payload {max_payload} leaves no room after the {FRAME_HEADER.size}-byte "
            f"frame header; it is ATT_MTU - 3 and BLE's smallest MTU (23) gives 20"
        )
    if len(message) <= MESSAGE_HEADER.size:
        raise ProtocolError("not a message: nothing after the header")
    byte0, seq = MESSAGE_HEADER.unpack_from(message)
    body = memoryview(message)[MESSAGE_HEADER.size :]
    room = max_payload - FRAME_HEADER.size
    count = -(-len(body) // room)
    if count > MAX_CHUNKS:
        raise ProtocolError(
            f"a {len(message)}-byte message needs {count} frames at max_payload {max_payload};"
            f" at most {MAX_CHUNKS}: negotiate a larger MTU"
        )
    return [
        FRAME_HEADER.pack(byte0, seq, index, count) + body[index * room : (index + 1) * room]
        for index in range(count)
    ]


class Reassembler:
    """Joins the frames of one characteristic back into messages.

    Frames of a message must arrive in order, one message at a time (what one characteristic
    on one ATT bearer gives). A missing, repeated or out-of-order frame drops the partial
    message (counted in :attr:`dropped`): half a message is never delivered. Memory is
    bounded by one message (:data:`MAX_MESSAGE_BYTES`).
    """

    def __init__(self) -> None:
        self._key: tuple[int, int, int] | None = None  # byte 0, seq, count
        self._next = 0
        self._parts: list[bytes] = []
        self._size = 0
        self._orphan: tuple[int, int] | None = None
        self.dropped = 0
        """Messages lost: partial ones discarded, or ones whose first frame never came."""
        self.delivered = 0

    def reset(self) -> None:
        """Forget a partial message (call it when the link drops)."""
        if self._key is not None:
            self.dropped += 1
        self._key = None
        self._parts = []
        self._size = 0

    def feed(self, frame: bytes) -> Message | None:
        """Take one frame; return the message it completes, or None.

        Raises :class:`ProtocolError` (and only that) for a frame that is not one of ours or a
        completed message that does not decode; the partial state is cleared first.
        """
        try:
            return self._feed(bytes(frame))
        except ProtocolError:
            raise
        except Exception as e:
            self.reset()
            raise ProtocolError(f"undecodable frame ({type(e).__name__}: {e})") from e

    def _feed(self, frame: bytes) -> Message | None:
        if len(frame) < MIN_MAX_PAYLOAD:
            self.reset()
            raise ProtocolError(f"frame of {len(frame)} bytes is shorter than a frame can be")
        byte0, seq, index, count = FRAME_HEADER.unpack_from(frame)
        try:
            _split_type_byte(byte0)
            if count == 0 or index >= count:
                raise ProtocolError(f"frame says chunk {index} of {count}")
        except ProtocolError:
            self.reset()
            raise
        chunk = frame[FRAME_HEADER.size :]
        if index == 0:
            self.reset()
            self._key = (byte0, seq, count)
            self._orphan = None
        elif self._key != (byte0, seq, count) or index != self._next:
            ours = self._key is not None and self._key[:2] == (byte0, seq)
            self.reset()  # counts the partial message, if there was one
            if not ours and self._orphan != (byte0, seq):
                self.dropped += 1  # a message whose first frame we never saw
            self._orphan = (byte0, seq)
            return None
        self._parts.append(chunk)
        self._size += len(chunk)
        self._next = index + 1
        if self._size + MESSAGE_HEADER.size > MAX_MESSAGE_BYTES:
            self.reset()
            raise ProtocolError(f"message grows past {MAX_MESSAGE_BYTES} bytes")
        if self._next < count:
            return None
        message = MESSAGE_HEADER.pack(byte0, seq) + b"".join(self._parts)
        self._key = None
        self._parts = []
        self._size = 0
        decoded = decode_message(message)
        self.delivered += 1
        return decoded


# ------------------------------------------------------------------------- the app's side


class Inbox:
    """The app's receiving end: frames in, events out in seq order, each exactly once.

    One :class:`Reassembler` per characteristic (``channel``). Events are deduplicated per
    stream by seq, so a backfilled event that also came live is delivered once.

    Backfill without gaps: call :meth:`hold` *before* subscribing after a (re)connect. While
    holding, events are kept back; ask the station for ``backfill`` since :attr:`last_seq`,
    and after each answered page call :meth:`release_through` with the page's ``last_seq``
    (everything up to it has now arrived, in any order), then :meth:`release_all` after the
    last page. Events are released sorted by seq, so a live event never overtakes an older
    backfilled one. If the link drops mid-way, :meth:`link_lost` throws away what was held
    (it comes again with the next backfill, which starts from :attr:`last_seq`).
    """

    def __init__(self, last_seq: int = 0) -> None:
        self.last_seq = last_seq
        """Highest seq delivered: ask for backfill since this."""
        self.newest: dict[str, int] = {}
        """Highest seq delivered per stream (event type)."""
        self.duplicates = 0
        self.errors = 0
        self._reassemblers: dict[str, Reassembler] = {}
        self._held: list[Message] | None = None

    @property
    def dropped(self) -> int:
        """Messages lost to missing or out-of-order frames (they come again by backfill)."""
        return sum(r.dropped for r in self._reassemblers.values())

    @property
    def holding(self) -> bool:
        return self._held is not None

    def feed(self, channel: str, frame: bytes) -> list[Message]:
        """One notification from ``channel``. Returns the messages now ready, in order:
        events (unless held), and control results and other non-event messages at once."""
        reassembler = self._reassemblers.setdefault(channel, Reassembler())
        try:
            message = reassembler.feed(frame)
        except ProtocolError:
            self.errors += 1
            return []
        if message is None:
            return []
        if message.type not in EVENT_TYPES:
            return [message]
        if self._held is not None:
            self._held.append(message)
            return []
        return self._deliver([message])

    def _deliver(self, messages: Sequence[Message]) -> list[Message]:
        out = []
        for message in sorted(messages, key=lambda m: m.seq):
            if message.seq <= self.newest.get(message.type, 0):
                self.duplicates += 1
                continue
            self.newest[message.type] = message.seq
            self.last_seq = max(self.last_seq, message.seq)
            out.append(message)
        return out

    def hold(self) -> None:
        """Keep events back until released (idempotent)."""
        if self._held is None:
            self._held = []

    def release_through(self, seq: int) -> list[Message]:
        """Deliver held events up to ``seq``; keep holding the newer ones."""
        if self._held is None:
            return []
        ready = [m for m in self._held if m.seq <= seq]
        self._held = [m for m in self._held if m.seq > seq]
        return self._deliver(ready)

    def release_all(self) -> list[Message]:
        """Deliver everything held and stop holding."""
        held, self._held = self._held or [], None
        return self._deliver(held)

    def link_lost(self) -> None:
        """The link dropped: forget partial messages and held events; stop holding."""
        for reassembler in self._reassemblers.values():
            reassembler.reset()
        self._held = None
