"""The wire format: round trips, chunking at real MTUs, a decoder that only ever raises its own
error, forward compatibility, and the size against JSON that makes it worth having."""

from __future__ import annotations

import contextlib
import json
import math
import struct
from typing import Any

import cbor2
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from device.events import (
    ChannelStatus,
    FoodReading,
    FoodVerdict,
    Health,
    HealthStatus,
    NoseReading,
    SensorValue,
    Trend,
)
from device.link import protocol
from device.link.protocol import (
    ATT_MIN_MTU,
    FRAME_HEADER,
    MAX_SEQ,
    MESSAGE_HEADER,
    PROTOCOL_VERSION,
    Inbox,
    Message,
    ProtocolError,
    Reassembler,
    ResultCode,
    decode_message,
    encode_message,
    split,
)

MTUS = (23, 185, 247, 517)
TS = 1_760_000_000.0

# ----------------------------------------------------------------------------- sample events


def nose_reading(ts: float = TS) -> NoseReading:
    """Nine channels, as the default configuration has, with full-precision floats."""
    sensors = [
        SensorValue("MQ135", ChannelStatus.OK, 1.2103456, 14.512345, 0.8234567,
                    {"NH3": 3.512345, "CO2": 410.12345, "toluene": 12.34567}),
        SensorValue("MQ136", ChannelStatus.OK, 0.9876543, 22.123456, 1.0345678, {"H2S": 1.2345}),
        SensorValue("MQ2", ChannelStatus.OK, 0.7654321, 31.98765, 2.3456789, {}),
        SensorValue("MQ3", ChannelStatus.WARMING_UP, 0.4123456),
        SensorValue("MQ4", ChannelStatus.OK, 1.1111111, 17.777777, 0.6543210, {"CH4": 812.3456}),
        SensorValue("MQ5", ChannelStatus.UNCALIBRATED, 0.8888888, 19.191919),
        SensorValue("MQ6", ChannelStatus.OK, 0.6666666, 41.414141, 3.2109876, {}),
        SensorValue("MQ8", ChannelStatus.DISCONNECTED, 0.0012345),
        SensorValue("MQ9", ChannelStatus.OK, 1.3333333, 12.121212, 0.5432109,
                    {"CO": 23.45678, "CH4": 612.3456, "LPG": 301.2345}),
    ]  # fmt: skip
    return NoseReading(
        ts=ts, sensors=tuple(sensors), temperature_c=4.5678, humidity_pct=81.2345, warming_up=False
    )


def food_reading(ts: float = TS) -> FoodReading:
    return FoodReading(
        ts=ts,
        label=FoodVerdict.SPOILING,
        confidence=0.7012345,
        probabilities={
            "excellent": 0.0512,
            "good": 0.1523,
            "acceptable": 0.7012,
            "spoiled": 0.0953,
        },
        freshness=0.4123456,
        trend=Trend.WORSENING,
        freshness_per_hour=-0.0234567,
        warming_up=False,
    )


def health(ts: float = TS, message: str = "MQ135 reads normally") -> Health:
    return Health(ts=ts, component="nose.sensor.MQ135", status=HealthStatus.OK, message=message)


CONCEPT = {
    "type": "concept",
    "ts": TS,
    "concept": "a cat on the sofa",
    "score": 0.8734567,
    "focus_box": [0.1234567, 0.2345678, 0.3456789, 0.4567891],
    "fps": 14.8765,
    "drops": 3,
    "crop": None,  # the AI crop this score triggered, when it did
}
BIRD = {
    "type": "bird",
    "ts": TS,
    "start": TS - 4.2345,
    "end": TS - 1.1234,
    "species": "Eurasian Blackbird",
    "confidence_max": 0.9123456,
    "confidence_mean": 0.7412345,
    "clip": "2025-10-09T06-13-20.flac",
    "scientific_name": "Turdus merula",
    "model_id": "yamnet+birdnet-v2.4",
    "clip_withheld": "speech",
}


def plain(event_dict: dict[str, Any]) -> dict[str, Any]:
    """What the store hands the link: the event's to_dict() through JSON."""
    plain_dict: dict[str, Any] = json.loads(json.dumps(event_dict))
    return plain_dict


SAMPLES: dict[str, dict[str, Any]] = {
    "nose": plain(nose_reading().to_dict()),
    "food": plain(food_reading().to_dict()),
    "health": plain(health().to_dict()),
    "concept": CONCEPT,
    "bird": BIRD,
}

# ------------------------------------------------------------------------- comparison helper

STEPS = {
    "ts": 1e-3,
    "start": 2e-3,  # two roundings: its own and ts's
    "end": 2e-3,
    "voltage_v": 1e-3,
    "temperature_c": 0.01,
    "humidity_pct": 0.01,
    "fps": 0.01,
    **dict.fromkeys(
        ("confidence", "freshness", "freshness_per_hour", "score", "focus_box",
         "confidence_max", "confidence_mean", "probabilities", "excellent", "good",
         "acceptable", "spoiled"),
        1e-4,
    ),
}  # fmt: skip


def assert_close(sent: Any, got: Any, path: str = "") -> None:
    """``got`` equals ``sent`` up to the wire's quantisation (ms, 10^-4, half floats)."""
    if isinstance(sent, dict):
        assert isinstance(got, dict), path
        for key, value in sent.items():
            assert key in got, f"{path}.{key} missing"
            assert_close(value, got[key], f"{path}.{key}")
    elif isinstance(sent, list | tuple):
        assert isinstance(got, list) and len(got) == len(sent), path
        for i, (a, b) in enumerate(zip(sent, got, strict=True)):
            assert_close(a, b, f"{path}[{i}]")
    elif isinstance(sent, bool) or sent is None or isinstance(sent, str):
        assert got == sent, f"{path}: {got!r} != {sent!r}"
    else:
        # The wire's steps: 1 ms, 1 mV, 0.01 (°C, %, fps), 10^-4 (probabilities), and half
        # floats (11 significant bits, shown to 4 digits: 1.5e-3 relative) for the rest.
        step = STEPS.get(path.rsplit(".", 1)[-1].split("[", maxsplit=1)[0], 0.0)
        assert got == pytest.approx(sent, rel=1.5e-3, abs=step / 2 + 1e-9), path


# ---------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_every_event_type_round_trips_with_its_field_names(kind: str) -> None:
    payload = SAMPLES[kind]
    message = decode_message(encode_message(kind, 4242, payload))
    assert (message.version, message.type, message.seq) == (PROTOCOL_VERSION, kind, 4242)
    assert set(message.payload) == set(payload)  # the app reads the names of to_dict()
    assert_close(payload, message.payload)


def test_a_bird_from_an_older_station_decodes_without_the_appended_names() -> None:
    """Fields 7-8 (scientific name, model) were appended: a message without them still
    decodes, and a new message's extra keys sit after the old ones (never renumbered)."""
    old = {k: v for k, v in BIRD.items() if k not in ("scientific_name", "model_id")}
    got = decode_message(encode_message("bird", 7, old)).payload
    assert got["scientific_name"] is None and got["species"] == "Eurasian Blackbird"
    body = cbor2.loads(encode_message("bird", 7, BIRD)[protocol.MESSAGE_HEADER.size :])
    assert body[7] == "Turdus merula" and body[8] == "yamnet+birdnet-v2.4"
    assert body[3] == "Eurasian Blackbird"


def test_enum_members_and_tuples_are_accepted_as_well_as_plain_values() -> None:
    payload = {
        "ts": TS,
        "sensors": ({"name": "MQ4", "status": ChannelStatus.WARMING_UP, "ppm": {}},),
        "warming_up": True,
    }
    got = decode_message(encode_message("nose", 1, payload)).payload
    assert got["sensors"][0]["status"] == "warming_up"


def _floats(low: float, high: float) -> st.SearchStrategy[float]:
    return st.floats(low, high, allow_nan=False, allow_infinity=False)


_names = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)
_sensor = st.fixed_dictionaries(
    {
        "name": st.sampled_from(protocol.SENSOR_NAMES) | _names,
        "status": st.sampled_from(protocol.CHANNEL_STATUSES),
        "voltage_v": st.none() | _floats(0, 6.144),
        "rs_kohm": st.none() | _floats(0.01, 60_000),
        "ratio": st.none() | _floats(1e-3, 100),
        "ppm": st.dictionaries(
            st.sampled_from(protocol.GASES) | _names, _floats(0.01, 60_000), max_size=4
        ),
    }
)
_ts = _floats(0, 4e9)
_prob = _floats(0, 1)
PAYLOADS = {
    "nose": st.fixed_dictionaries(
        {
            "ts": _ts,
            "sensors": st.lists(_sensor, max_size=12),
            "temperature_c": st.none() | _floats(-40, 125),
            "humidity_pct": st.none() | _floats(0, 100),
            "warming_up": st.booleans(),
        }
    ),
    "food": st.fixed_dictionaries(
        {
            "ts": _ts,
            "label": st.sampled_from(protocol.FOOD_LABELS),
            "confidence": _prob,
            "probabilities": st.dictionaries(st.sampled_from(protocol.FOOD_CLASSES), _prob),
            "freshness": _prob,
            "trend": st.sampled_from(protocol.TRENDS),
            "freshness_per_hour": st.none() | _floats(-1, 1),
            "warming_up": st.booleans(),
        }
    ),
    "concept": st.fixed_dictionaries(
        {
            "ts": _ts,
            "concept": _names,
            "score": _prob,
            "focus_box": st.none() | st.lists(_prob, min_size=4, max_size=4),
            "fps": _floats(0, 120),
            "drops": st.integers(0, 2**32),
            "crop": st.none() | _names,
        }
    ),
    "bird": st.fixed_dictionaries(
        {
            "ts": _ts,
            "start": _ts,
            "end": _ts,
            "species": _names,
            "confidence_max": _prob,
            "confidence_mean": _prob,
            "clip": _names,
        }
    ),
    "health": st.fixed_dictionaries(
        {
            "ts": _ts,
            "component": _names,
            "status": st.sampled_from(protocol.HEALTH_STATUSES),
            "message": st.text(max_size=120),
        }
    ),
}
any_event = st.sampled_from(sorted(PAYLOADS)).flatmap(
    lambda kind: st.tuples(st.just(kind), PAYLOADS[kind])
)
seqs = st.integers(0, protocol.MAX_SEQ)


@settings(max_examples=300, deadline=None)
@given(event=any_event, seq=seqs)
def test_property_round_trip(event: tuple[str, dict[str, Any]], seq: int) -> None:
    kind, payload = event
    message = decode_message(encode_message(kind, seq, payload))
    assert (message.type, message.seq) == (kind, seq)
    assert_close(payload, message.payload)


@settings(max_examples=200, deadline=None)
@given(event=any_event, seq=seqs, mtu=st.sampled_from(MTUS))
def test_property_chunking_at_real_mtus(
    event: tuple[str, dict[str, Any]], seq: int, mtu: int
) -> None:
    kind, payload = event
    message = encode_message(kind, seq, payload)
    frames = split(message, mtu - 3)
    body = len(message) - MESSAGE_HEADER.size
    assert all(len(f) <= mtu - 3 for f in frames)  # ATT would cut anything longer
    assert len(frames) == math.ceil(body / (mtu - 3 - FRAME_HEADER.size))
    reassembler = Reassembler()
    results = [reassembler.feed(f) for f in frames]
    assert results[:-1] == [None] * (len(frames) - 1)
    assert results[-1] == decode_message(message)


@pytest.mark.parametrize("mtu", MTUS)
def test_a_long_message_crosses_every_mtu(mtu: int) -> None:
    payload = plain(health(message="x" * 390).to_dict())
    message = encode_message("health", 7, payload)
    frames = split(message, mtu - 3)
    assert len(frames) > 1 or mtu == 517
    reassembler = Reassembler()
    assert [m for f in frames if (m := reassembler.feed(f)) is not None] == [
        decode_message(message)
    ]


def test_split_refuses_a_payload_too_small_for_its_header() -> None:
    message = encode_message("health", 1, plain(health().to_dict()))
    with pytest.raises(ProtocolError, match="frame header"):
        split(message, FRAME_HEADER.size)
    assert len(split(message, FRAME_HEADER.size + 1)) == len(message) - MESSAGE_HEADER.size


def test_split_refuses_more_than_255_frames() -> None:
    message = encode_message("health", 1, plain(health(message="y" * 390).to_dict()))
    with pytest.raises(ProtocolError, match="larger MTU"):
        split(message, FRAME_HEADER.size + 1)


def test_encoder_errors_are_protocol_errors_with_reasons() -> None:
    with pytest.raises(ProtocolError, match="unknown message type 'smell'"):
        encode_message("smell", 1, {"ts": 1.0})
    with pytest.raises(ProtocolError, match="seq must be"):
        encode_message("health", 2**32, {"ts": 1.0})
    with pytest.raises(ProtocolError, match="no 'ts'"):
        encode_message("health", 1, {"component": "x"})
    with pytest.raises(ProtocolError, match="'confidence'"):
        encode_message("food", 1, {"ts": 1.0, "confidence": "high"})


def test_long_text_is_cut_not_refused() -> None:
    message = decode_message(encode_message("health", 1, {"ts": 1.0, "message": "é" * 1000}))
    assert len(message.payload["message"].encode()) <= protocol.MAX_TEXT_BYTES
    assert message.payload["message"].endswith("…")


def test_missing_and_non_finite_values_decode_as_none() -> None:
    payload = {"ts": 1.0, "label": "fresh", "confidence": math.nan, "freshness_per_hour": None}
    got = decode_message(encode_message("food", 1, payload)).payload
    assert got["confidence"] is None and got["freshness_per_hour"] is None
    assert got["probabilities"] == {} and got["trend"] is None


# ------------------------------------------------------------------------------ reassembly


def _frames(seq: int, mtu: int = 23) -> list[bytes]:
    return split(encode_message("nose", seq, SAMPLES["nose"]), mtu - 3)


def test_a_missing_frame_drops_the_message_and_the_next_one_still_arrives() -> None:
    first, second = _frames(1), _frames(2)
    reassembler = Reassembler()
    got = [reassembler.feed(f) for f in first[:3] + first[4:] + second]
    assert [m.seq for m in got if m is not None] == [2]
    assert reassembler.dropped == 1


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda f: [f[0], f[2], f[1], *f[3:]], id="swapped"),
        pytest.param(lambda f: [f[0], f[1], f[1], *f[2:]], id="repeated"),
        pytest.param(lambda f: f[1:], id="first-lost"),
        pytest.param(lambda f: f[:-1], id="last-lost"),
    ],
)
def test_out_of_order_or_missing_frames_never_deliver_half_a_message(mangle: Any) -> None:
    reassembler = Reassembler()
    got = [reassembler.feed(f) for f in mangle(_frames(1))]
    assert all(m is None for m in got)
    got = [reassembler.feed(f) for f in _frames(2)]  # the stream recovers at the next message
    assert [m.seq for m in got if m is not None] == [2]
    assert reassembler.dropped == 1


def test_frames_of_two_messages_interleaved_are_not_glued_together() -> None:
    a, b = _frames(1), _frames(2)
    reassembler = Reassembler()
    got = [reassembler.feed(f) for f in [a[0], b[0], a[1], *b[1:]]]
    assert all(m is None for m in got)  # b lost its 2nd frame to a's, a lost its 1st to b


def test_reassembler_memory_is_bounded_by_one_message() -> None:
    # A sender that claims 255 frames of 500 bytes: refused once past MAX_MESSAGE_BYTES.
    reassembler = Reassembler()
    header = (PROTOCOL_VERSION << 4) | protocol.MessageType.HEALTH
    with pytest.raises(ProtocolError, match="grows past"):
        for index in range(255):
            reassembler.feed(FRAME_HEADER.pack(header, 1, index, 255) + bytes(500))
    assert index * 500 < 2 * protocol.MAX_MESSAGE_BYTES
    assert [m.seq for f in _frames(2) if (m := reassembler.feed(f)) is not None] == [2]


# --------------------------------------------------------------------- garbage and fuzzing


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=700))
@example(data=b"")
@example(data=bytes([0x15, 1, 0, 0, 0]) + bytes.fromhex("9b00000000ffffffff"))  # huge array
@example(data=bytes([0x15, 1, 0, 0, 0]) + bytes.fromhex("c11a00000000"))  # a tag (datetime)
@example(data=bytes([0x15, 1, 0, 0, 0]) + b"\x81" * 50 + b"\x00")  # deep nesting
@example(data=bytes([0x15, 1, 0, 0, 0]) + bytes.fromhex("a100a0"))  # ts is a map
@example(data=bytes([0x15, 1, 0, 0, 0]) + bytes.fromhex("a1006161"))  # ts is text
@example(data=bytes([0x15, 1, 0, 0, 0]) + bytes.fromhex("a200f4a1"))  # truncated map
@example(data=bytes([0x15, 1, 0, 0, 0]) + bytes.fromhex("a1008100"))  # key is a list
@example(data=bytes([0x15, 1, 0, 0, 0]) + bytes.fromhex("a2000100026162ff"))  # trailing
@example(data=bytes([0x15, 1, 0, 0, 0]) + bytes.fromhex("a10061ff"))  # invalid UTF-8
def test_fuzzed_decoder_raises_only_protocol_error(data: bytes) -> None:
    try:
        message = decode_message(data)
    except ProtocolError:
        return
    assert isinstance(message, Message)


_valid_messages = st.builds(
    lambda event, seq: encode_message(event[0], seq, event[1]), any_event, seqs
)


@settings(max_examples=300, deadline=None)
@given(message=_valid_messages, data=st.data())
def test_fuzzed_mutations_of_real_messages_raise_only_protocol_error(
    message: bytes, data: st.DataObject
) -> None:
    mutated = bytearray(message)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(mutated) - 1))
        mutated[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(mutated)))
    for candidate in (bytes(mutated), bytes(mutated[:cut])):
        with contextlib.suppress(ProtocolError):
            decode_message(candidate)


@settings(max_examples=500, deadline=None)
@given(frames=st.lists(st.binary(max_size=40), max_size=30))
def test_fuzzed_frames_raise_only_protocol_error(frames: list[bytes]) -> None:
    reassembler = Reassembler()
    for frame in frames:
        with contextlib.suppress(ProtocolError):
            reassembler.feed(frame)


def test_other_versions_and_types_are_refused_with_advice() -> None:
    message = bytearray(encode_message("food", 1, SAMPLES["food"]))
    message[0] = (2 << 4) | protocol.MessageType.FOOD
    with pytest.raises(ProtocolError, match="update the app"):
        decode_message(bytes(message))
    message[0] = (PROTOCOL_VERSION << 4) | 0x0F
    with pytest.raises(ProtocolError, match="unknown message type code 15"):
        decode_message(bytes(message))


# ---------------------------------------------------------------- forward compatibility


def test_unknown_future_fields_are_ignored_by_an_older_decoder() -> None:
    body = cbor2.loads(encode_message("food", 3, SAMPLES["food"])[MESSAGE_HEADER.size :])
    body[42] = {"a": [1, 2, 3]}  # a field a newer station added
    body[3][9] = 1234  # a class index this decoder has never heard of
    newer = MESSAGE_HEADER.pack(PROTOCOL_VERSION << 4 | 1, 3) + cbor2.dumps(body)
    got = decode_message(newer).payload
    assert "42" not in got and all(isinstance(key, str) for key in got)
    assert got["label"] == "spoiling"
    assert got["probabilities"]["#9"] == pytest.approx(0.1234)


def test_names_outside_the_tables_travel_as_text() -> None:
    payload = {"ts": 1.0, "sensors": [{"name": "TGS2602", "status": "ok", "ppm": {"ethanol": 5.0}}]}
    got = decode_message(encode_message("nose", 1, payload)).payload
    assert got["sensors"][0]["name"] == "TGS2602"
    assert got["sensors"][0]["ppm"] == {"ethanol": 5.0}


def test_control_messages_round_trip() -> None:
    request = encode_message("control", 77, {"op": "backfill", "since": 123_456, "max_count": 50})
    assert len(request) <= protocol.ATT_MIN_MTU - 3  # fits one write even at the smallest MTU
    got = decode_message(request)
    assert (got.type, got.seq, got.payload["op"], got.payload["since"]) == (
        "control",
        77,
        "backfill",
        123_456,
    )
    result = decode_message(
        encode_message(
            "control_result", 77, {"op": "backfill", "code": ResultCode.OK, "more": True}
        )
    )
    assert result.payload["code"] is ResultCode.OK and result.payload["more"] is True


# -------------------------------------------------------------------------- size vs JSON


def _json_size(payload: dict[str, Any]) -> int:
    return len(json.dumps(payload, separators=(",", ":")).encode())


@pytest.mark.parametrize("kind", ["nose", "food"])
def test_the_continuous_streams_take_at_most_a_quarter_of_json(kind: str) -> None:
    payload = SAMPLES[kind]
    size = len(encode_message(kind, 123_456, payload))
    assert size <= 0.25 * _json_size(payload), (size, _json_size(payload))


@pytest.mark.parametrize(("kind", "ratio"), [("concept", 0.4), ("bird", 0.6), ("health", 0.6)])
def test_text_heavy_events_are_still_much_smaller_than_json(kind: str, ratio: float) -> None:
    # A concept's prompt, a species, a clip name, a health message: free text no schema
    # shrinks; the numbers and names around it shrink as in the other events.
    payload = SAMPLES[kind]
    assert len(encode_message(kind, 123_456, payload)) <= ratio * _json_size(payload)


# ----------------------------------------------------------------------------------- inbox


def _event_frames(kind: str, seq: int) -> list[bytes]:
    return split(encode_message(kind, seq, SAMPLES[kind]), 20)


def _feed(inbox: Inbox, kind: str, seq: int) -> list[Message]:
    out: list[Message] = []
    for frame in _event_frames(kind, seq):
        out += inbox.feed(kind, frame)
    return out


def test_inbox_delivers_live_events_once() -> None:
    inbox = Inbox()
    assert [m.seq for m in _feed(inbox, "food", 5)] == [5]
    assert _feed(inbox, "food", 5) == []
    assert inbox.duplicates == 1 and inbox.last_seq == 5 and inbox.newest == {"food": 5}


def test_inbox_backfill_merges_live_and_old_events_in_seq_order() -> None:
    inbox = Inbox(last_seq=10)
    inbox.hold()
    # Live events arrive while the backfill pages come in, and one overlaps the backfill.
    for kind, seq in [("food", 15), ("nose", 11), ("health", 12), ("food", 15), ("nose", 13)]:
        assert _feed(inbox, kind, seq) == []
    assert [m.seq for m in inbox.release_through(12)] == [11, 12]
    _feed(inbox, "food", 14)  # the second page
    assert [m.seq for m in inbox.release_all()] == [13, 14, 15]
    assert inbox.duplicates == 1 and not inbox.holding


def test_inbox_forgets_held_events_when_the_link_drops() -> None:
    inbox = Inbox(last_seq=3)
    inbox.hold()
    _feed(inbox, "food", 9)
    frames = _event_frames("nose", 4)
    inbox.feed("nose", frames[0])  # half a message in flight
    inbox.link_lost()
    assert inbox.last_seq == 3 and not inbox.holding and inbox.dropped == 1


def test_inbox_passes_control_results_through_at_once() -> None:
    inbox = Inbox()
    inbox.hold()
    result = encode_message("control_result", 9, {"code": 0})
    assert [m.type for m in inbox.feed("control", split(result, 20)[0])] == ["control_result"]


def test_inbox_counts_garbage_without_raising() -> None:
    inbox = Inbox()
    assert inbox.feed("food", b"\x00garbage") == []
    assert inbox.errors == 1


def test_frame_header_layout() -> None:
    """version|type, seq (u32 LE), chunk index, chunk count: the layout the app relies on."""
    [frame] = split(encode_message("health", 0x01020304, {"ts": 1.0}), 244)
    assert frame[0] == (PROTOCOL_VERSION << 4) | protocol.MessageType.HEALTH
    assert struct.unpack_from("<I", frame, 1)[0] == 0x01020304
    assert (frame[5], frame[6]) == (0, 1)


# ------------------------------------------------------------ boards and AI-crop thumbnails


def test_a_board_chunk_fills_one_att_write_and_a_thumbnail_piece_fits_the_smallest_mtu() -> None:
    import zlib

    from device.link.core import MAX_UPLOAD_WRITE_BYTES
    from mobile_app.boards import chunk_room

    for mtu in (64, 185, 247, 517):
        room = chunk_room(mtu)
        data = bytes(range(256)) * 2
        message = encode_message(
            "control",
            MAX_SEQ,
            {
                "op": "board_chunk",
                "upload_id": "f" * 16,
                "offset": 1_999_999,
                "data": data[:room],
                "crc32": zlib.crc32(data[:room]),
            },
        )
        assert len(message) <= min(mtu - 3, MAX_UPLOAD_WRITE_BYTES), mtu
        assert decode_message(message).payload["data"] == data[:room]
    piece = bytes(range(256)) * 8
    result = encode_message(
        "control_result",
        7,
        {"op": "thumbnail", "code": 0, "data": piece, "offset": 0, "size": 5000},
    )
    frames = split(result, ATT_MIN_MTU - 3)
    assert len(frames) <= 255
    reassembler = Reassembler()
    decoded = [m for f in frames if (m := reassembler.feed(f)) is not None]
    assert decoded[0].payload["data"] == piece and decoded[0].payload["size"] == 5000


def test_a_concept_score_names_the_ai_crop_it_triggered() -> None:
    crop = "20261207T012233.123Z_a-cat_0.93"
    message = decode_message(encode_message("concept", 9, {**CONCEPT, "crop": crop}))
    assert message.payload["crop"] == crop
    assert decode_message(encode_message("concept", 9, CONCEPT)).payload["crop"] is None


def test_bytes_fields_refuse_what_is_not_bytes_or_too_long() -> None:
    with pytest.raises(ProtocolError, match="expected bytes"):
        encode_message("control", 1, {"op": "board_chunk", "data": "text"})
    with pytest.raises(ProtocolError, match="at most"):
        encode_message("control", 1, {"op": "board_chunk", "data": bytes(10_000)})
