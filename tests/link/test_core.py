"""LinkCore without a radio: committed events in, messages out; the control point's answers,
refusals and rate limit; the GATT layout both transports build from. Also the store's listener
API the link relies on."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device.clock import ManualClock
from device.events import ChannelStatus, Health, HealthStatus, NoseReading, SensorValue
from device.link import core as link_core
from device.link import ess, protocol, uuids
from device.link.core import ControlHandlers, ControlOutcome, LinkCore
from device.link.protocol import ResultCode, decode_message, encode_message
from device.store import EventStore, StoredEvent


def health(i: int) -> Health:
    return Health(ts=1000.0 + i, component="nose", status=HealthStatus.OK, message=f"#{i}")


def nose(ts: float, nh3_ppm: float = 20.0) -> NoseReading:
    return NoseReading(
        ts=ts,
        sensors=(SensorValue("MQ135", ChannelStatus.OK, 1.2, 14.5, 0.82, {"NH3": nh3_ppm}),),
        temperature_c=5.0,
        humidity_pct=70.0,
        warming_up=False,
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EventStore]:
    with EventStore(tmp_path / "events.db") as s:
        yield s


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def core(store: EventStore, clock: ManualClock) -> LinkCore:
    return LinkCore(store, station_name="kitchen", clock=clock)


def control(core: LinkCore, op: str, request_id: int = 1, **fields: object) -> ControlOutcome:
    data = encode_message("control", request_id, {"op": op, **fields})
    return core.handle_control(data, client="AA:BB", authenticated=True)


def result_of(outcome: ControlOutcome) -> protocol.Message:
    assert outcome.result is not None, outcome
    return decode_message(outcome.result)


# ------------------------------------------------------------------- the store's listeners


def test_listeners_hear_each_event_after_commit_in_seq_order(store: EventStore) -> None:
    heard: list[tuple[int, int]] = []

    def listener(stored: StoredEvent) -> None:
        # Committed: a reader already sees it (this is what backfill relies on).
        heard.append((stored.seq, store.since(stored.seq - 1, limit=1)[0].seq))

    store.add_listener(listener)
    seqs = [store.append(health(0)), *store.append_many([health(1), health(2)])]
    assert heard == [(s, s) for s in seqs]
    store.remove_listener(listener)
    store.append(health(3))
    assert len(heard) == 3


def test_listener_payload_is_what_since_returns(store: EventStore) -> None:
    heard: list[StoredEvent] = []
    store.add_listener(heard.append)
    store.append(nose(5.0))
    assert heard == store.since(0)


def test_a_failing_listener_is_logged_and_never_breaks_append(
    store: EventStore, caplog: pytest.LogCaptureFixture
) -> None:
    heard: list[int] = []

    def broken(stored: StoredEvent) -> None:
        raise RuntimeError("link down")

    store.add_listener(broken)
    store.add_listener(lambda s: heard.append(s.seq))
    with caplog.at_level(logging.ERROR):
        seq = store.append(health(0))
    assert heard == [seq] and store.count() == 1
    assert "store listener" in caplog.text and "link down" in caplog.text


def test_concurrent_appends_reach_listeners_in_seq_order(store: EventStore) -> None:
    heard: list[int] = []
    store.add_listener(lambda s: heard.append(s.seq))
    threads = [
        threading.Thread(target=lambda: [store.append(health(i)) for i in range(50)])
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert heard == sorted(heard) and len(heard) == 200


# ------------------------------------------------------------------------------ live events


def test_on_stored_gives_the_stream_message_with_the_store_seq(
    core: LinkCore, store: EventStore
) -> None:
    out: list[list[tuple[str, bytes]]] = []
    store.add_listener(lambda s: out.append(core.on_stored(s)))
    seq = store.append(health(1))
    [(uuid, message)] = out[0]
    assert uuid == uuids.HEALTH_STREAM
    got = decode_message(message)
    assert (got.type, got.seq, got.payload["message"]) == ("health", seq, "#1")
    assert core.newest_seq == seq


def test_a_nose_reading_also_updates_the_ess_values_that_changed(
    core: LinkCore, store: EventStore
) -> None:
    out: list[list[tuple[str, bytes]]] = []
    store.add_listener(lambda s: out.append(core.on_stored(s)))
    store.append(nose(1.0))
    first = dict(out[0])
    assert uuids.NOSE_STREAM in first
    assert {uuids.TEMPERATURE, uuids.HUMIDITY, uuids.AMMONIA_CONCENTRATION} <= set(first)
    assert core.read_value(uuids.TEMPERATURE) == ess.temperature(5.0)
    store.append(nose(2.0, nh3_ppm=40.0))  # only NH3 changed
    assert set(dict(out[1])) == {uuids.NOSE_STREAM, uuids.AMMONIA_CONCENTRATION}


def test_types_the_link_does_not_carry_are_ignored(core: LinkCore) -> None:
    assert core.on_stored(StoredEvent(seq=9, ts=1.0, type="calibration", payload={})) == []


def test_an_event_that_cannot_be_encoded_is_skipped_and_logged(
    core: LinkCore, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        out = core.on_stored(StoredEvent(seq=9, ts=1.0, type="food", payload={"label": "x"}))
    assert out == [] and core.skipped == 1 and "no 'ts'" in caplog.text


def test_station_info(core: LinkCore, store: EventStore) -> None:
    seq = store.append(health(0))
    info = decode_message(
        LinkCore(store, station_name="kitchen", clock=ManualClock()).station_info()
    )
    assert info.type == "station_info" and info.seq == seq
    assert info.payload["station_name"] == "kitchen"
    assert info.payload["protocol_version"] == protocol.PROTOCOL_VERSION
    assert info.payload["newest_seq"] == seq
    assert info.payload["streams"] == list(uuids.STREAMS)
    assert core.read_value(uuids.STATION_INFO) is not None


@pytest.mark.parametrize("mtu", [23, 185, 247, 517])
def test_notifications_frame_messages_and_pass_ess_values_whole(core: LinkCore, mtu: int) -> None:
    message = encode_message("health", 1, {"ts": 1.0, "message": "x" * 300})
    frames = core.notifications_for(uuids.HEALTH_STREAM, message, mtu - 3)
    assert all(len(f) <= mtu - 3 for f in frames) and frames == core.frames_for(message, mtu - 3)
    assert core.notifications_for(uuids.TEMPERATURE, b"\x01\x02", mtu - 3) == [b"\x01\x02"]


# ----------------------------------------------------------------------------- control point


def test_backfill_returns_events_in_order_then_the_result(
    core: LinkCore, store: EventStore
) -> None:
    seqs = store.append_many([health(i) for i in range(5)])
    outcome = control(core, "backfill", request_id=7, since=seqs[1])
    assert outcome.att_error is None
    *events, (result_uuid, _) = outcome.notifications
    assert [decode_message(m).seq for _, m in events] == seqs[2:]
    assert {u for u, _ in events} == {uuids.HEALTH_STREAM}
    assert result_uuid == uuids.CONTROL_POINT
    result = result_of(outcome)
    assert result.seq == 7  # the request id
    assert result.payload["code"] is ResultCode.OK
    assert result.payload["count"] == 3 and result.payload["last_seq"] == seqs[-1]
    assert result.payload["more"] is False


def test_backfill_pages_by_max_count_and_filters_types(core: LinkCore, store: EventStore) -> None:
    seqs = store.append_many([health(0), nose(1.0), health(2), nose(3.0), health(4)])
    page = result_of(control(core, "backfill", since=0, max_count=2, types=["health"]))
    assert page.payload["count"] == 2 and page.payload["more"] is True
    assert page.payload["last_seq"] == seqs[2]
    rest = result_of(control(core, "backfill", since=seqs[2], max_count=2, types=["health"]))
    assert rest.payload["count"] == 1 and rest.payload["last_seq"] == seqs[4]


def test_backfill_is_bounded_by_backfill_max(store: EventStore, clock: ManualClock) -> None:
    store.append_many([health(i) for i in range(30)])
    core = LinkCore(store, station_name="k", clock=clock, backfill_max=10)
    outcome = control(core, "backfill", since=0, max_count=1000)
    assert len(outcome.backfill) == 10 and result_of(outcome).payload["more"] is True


def test_backfill_without_a_store_is_unavailable(clock: ManualClock) -> None:
    core = LinkCore(None, station_name="k", clock=clock)
    assert control(core, "backfill", since=0).code is ResultCode.UNAVAILABLE


def test_handlers_answer_select_concept_and_set_threshold(clock: ManualClock) -> None:
    calls: list[object] = []

    def select(concept: str) -> ResultCode:
        calls.append(concept)
        return ResultCode.OK if concept == "cat" else ResultCode.INVALID_ARGUMENT

    def threshold(name: str, value: float) -> ResultCode:
        calls.append((name, value))
        return ResultCode.OK

    core = LinkCore(
        None, station_name="k", clock=clock, handlers=ControlHandlers(select, threshold)
    )
    assert control(core, "select_concept", concept="cat").code is ResultCode.OK
    dog = control(core, "select_concept", request_id=2, concept="dog")
    assert dog.att_error is None  # well formed: answered by notification, not by ATT error
    assert result_of(dog).payload["code"] is ResultCode.INVALID_ARGUMENT
    assert control(core, "set_threshold", name="bird", value=0.625).code is ResultCode.OK
    assert calls == ["cat", "dog", ("bird", 0.625)]
    assert control(core, "set_threshold", name="bird").code is ResultCode.INVALID_ARGUMENT


def test_missing_or_failing_handlers(clock: ManualClock, caplog: pytest.LogCaptureFixture) -> None:
    assert (
        control(LinkCore(None, station_name="k", clock=clock), "select_concept", concept="cat").code
        is ResultCode.UNAVAILABLE
    )

    def broken(concept: str) -> ResultCode:
        raise RuntimeError("camera gone")

    core = LinkCore(None, station_name="k", clock=clock, handlers=ControlHandlers(broken))
    with caplog.at_level(logging.ERROR):
        outcome = control(core, "select_concept", concept="cat")
    assert outcome.code is ResultCode.INTERNAL_ERROR and "camera gone" in caplog.text


def test_unknown_operation_is_unsupported(core: LinkCore) -> None:
    # Operation index 9: what a newer app might send to this station.
    header = (protocol.PROTOCOL_VERSION << 4) | protocol.MessageType.CONTROL
    data = protocol.MESSAGE_HEADER.pack(header, 5) + cbor2.dumps({0: 9})
    outcome = core.handle_control(data, client="AA", authenticated=True)
    assert outcome.code is ResultCode.UNSUPPORTED and outcome.request_id == 5
    assert outcome.att_error is None


def test_an_unencrypted_link_is_not_permitted(
    core: LinkCore, caplog: pytest.LogCaptureFixture
) -> None:
    data = encode_message("control", 1, {"op": "backfill", "since": 0})
    with caplog.at_level(logging.WARNING):
        outcome = core.handle_control(data, client="AA", authenticated=False)
    assert outcome.code is ResultCode.NOT_PERMITTED
    assert outcome.att_error == link_core.ATT_INSUFFICIENT_ENCRYPTION
    assert outcome.notifications == [] and "pair" in caplog.text


@pytest.mark.parametrize(
    ("data", "code", "att_error"),
    [
        pytest.param(b"", ResultCode.MALFORMED, 0x81, id="empty"),
        pytest.param(b"\xff" * 12, ResultCode.MALFORMED, 0x81, id="garbage"),
        pytest.param(
            encode_message("control", 1, {"op": "backfill", "since": 99})[:-2],
            ResultCode.MALFORMED,
            0x81,
            id="truncated",
        ),
        pytest.param(
            encode_message("health", 1, {"ts": 1.0}), ResultCode.MALFORMED, 0x81, id="not-control"
        ),
        pytest.param(bytes(200), ResultCode.TOO_LARGE, 0x0D, id="oversized"),
    ],
)
def test_bad_writes_get_an_att_error_and_a_log_line(
    core: LinkCore,
    caplog: pytest.LogCaptureFixture,
    data: bytes,
    code: ResultCode,
    att_error: int,
) -> None:
    with caplog.at_level(logging.WARNING):
        outcome = core.handle_control(data, client="AA:BB", authenticated=True)
    assert (outcome.code, outcome.att_error) == (code, att_error)
    assert outcome.notifications == []
    assert "refused a write from AA:BB" in caplog.text


def test_rate_limit_is_a_token_bucket_per_client(
    core: LinkCore, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        codes = [control(core, "backfill", since=0).code for _ in range(link_core.RATE_BURST + 5)]
    assert codes[: link_core.RATE_BURST] == [ResultCode.OK] * link_core.RATE_BURST
    assert set(codes[link_core.RATE_BURST :]) == {ResultCode.RATE_LIMITED}
    assert caplog.text.count("rate limited") == 1  # one line, not one per refused write
    other = encode_message("control", 1, {"op": "backfill", "since": 0})
    assert core.handle_control(other, client="CC", authenticated=True).code is ResultCode.OK
    clock.advance(1.0 / link_core.RATE_PER_S)
    assert control(core, "backfill", since=0).code is ResultCode.OK
    assert control(core, "backfill", since=0).code is ResultCode.RATE_LIMITED


@settings(max_examples=500, deadline=None)
@given(data=st.binary(max_size=160), authenticated=st.booleans())
def test_fuzzed_control_writes_never_raise(data: bytes, authenticated: bool) -> None:
    core = LinkCore(None, station_name="k", clock=ManualClock(), rate_burst=10**9)
    outcome = core.handle_control(data, client="fuzz", authenticated=authenticated)
    assert (outcome.att_error is None) == (outcome.code not in link_core.ATT_ERRORS)


# ---------------------------------------------------------------------------------- layout


def test_layout_has_every_service_characteristic_and_descriptor(core: LinkCore) -> None:
    services = {s.uuid: s for s in core.layout}
    assert set(services) == {
        uuids.SENSES_SERVICE,
        uuids.ESS_SERVICE,
        uuids.DEVICE_INFORMATION_SERVICE,
    }
    senses = services[uuids.SENSES_SERVICE]
    for uuid in uuids.STREAMS.values():
        assert senses.characteristic(uuid).flags == (link_core.NOTIFY,)
    control_point = senses.characteristic(uuids.CONTROL_POINT)
    assert {link_core.WRITE, link_core.ENCRYPT_WRITE, link_core.NOTIFY} == set(control_point.flags)
    for spec in services[uuids.ESS_SERVICE].characteristics:
        kinds = {d.uuid for d in spec.descriptors}
        assert kinds == {
            uuids.ES_MEASUREMENT,
            uuids.ES_TRIGGER_SETTING,
            uuids.CHARACTERISTIC_USER_DESCRIPTION,
        }
        assert core.read_value(spec.uuid) is not None
    for spec in services[uuids.DEVICE_INFORMATION_SERVICE].characteristics:
        assert spec.value
    all_uuids = [c.uuid for s in core.layout for c in s.characteristics]
    assert len(all_uuids) == len(set(all_uuids))


def test_our_uuids_are_on_our_random_base_not_the_sig_base() -> None:
    ours = [uuids.SENSES_SERVICE, uuids.STATION_INFO, uuids.CONTROL_POINT, *uuids.STREAMS.values()]
    assert all(u.endswith("-d900-4194-bf10-11ab75e350b2") for u in ours)
    assert all(u[14] == "4" for u in ours)  # version 4 (random)
    assert uuids.ESS_SERVICE == "0000181a-0000-1000-8000-00805f9b34fb"


def test_station_info_lists_the_concepts_the_camera_can_score(store: EventStore) -> None:
    handlers = ControlHandlers(concepts=lambda: (["cats", "quiet detail"], "cats"))
    core = LinkCore(store, station_name="studio", clock=ManualClock(), handlers=handlers)
    info = decode_message(core.station_info())
    assert info.payload["concepts"] == ["cats", "quiet detail"]
    assert info.payload["active_concept"] == "cats"


def test_station_info_without_an_eye_has_no_concepts(store: EventStore) -> None:
    info = decode_message(LinkCore(store, station_name="shed", clock=ManualClock()).station_info())
    assert info.payload["concepts"] is None


def test_station_info_carries_the_health_summary(store: EventStore) -> None:
    summary = [
        {"name": "nose", "running": True, "events_per_min": 6.0, "drops": 0, "restarts": 0},
        {
            "name": "eye",
            "running": True,
            "events_per_min": 59.5,
            "drops": 12,
            "restarts": 1,
            "last_error": "CameraDisconnectedError: /dev/video0 vanished",
        },
    ]
    core = LinkCore(
        store,
        station_name="s",
        clock=ManualClock(),
        handlers=ControlHandlers(summary=lambda: summary),
    )
    senses = decode_message(core.station_info()).payload["senses"]
    assert [s["name"] for s in senses] == ["nose", "eye"]
    assert senses[1]["drops"] == 12 and senses[1]["restarts"] == 1
    assert senses[1]["last_error"].startswith("CameraDisconnectedError")
    assert senses[1]["events_per_min"] == pytest.approx(59.5, rel=1e-3)


def test_station_info_says_which_species_model_runs(store: EventStore) -> None:
    handlers = ControlHandlers(species_model=lambda: "yamnet+birdnet-v2.4")
    core = LinkCore(store, station_name="garden", clock=ManualClock(), handlers=handlers)
    assert decode_message(core.station_info()).payload["species_model"] == "yamnet+birdnet-v2.4"
    without_ear = LinkCore(store, station_name="shed", clock=ManualClock())
    assert decode_message(without_ear.station_info()).payload["species_model"] is None
