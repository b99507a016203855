"""The whole link over a real BLE host stack (Bumble, two virtual controllers, no radio):
connect, MTU exchange, pairing, discovery, every stream, chunking, a link that drops in the
middle of a burst, reconnect and backfill without a gap or a duplicate, the control point's
refusals, and ESS as a generic client sees it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from bumble import att
from bumble.device import Peer
from bumble.link import LocalLink

from device.clock import SystemClock
from device.events import (
    BirdDetection,
    ChannelStatus,
    ConceptScore,
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
from device.link.bumble_link import (
    PHONE_ADDRESS,
    STATION_ADDRESS,
    BumbleClient,
    BumbleLinkServer,
    ControlError,
    bumble_uuid,
    open_virtual_link,
    virtual_device,
    virtual_link,
)
from device.link.core import ControlHandlers, LinkCore
from device.link.protocol import ResultCode
from device.store import EventStore

pytestmark = pytest.mark.asyncio(loop_scope="function")


def nose(i: int) -> NoseReading:
    return NoseReading(
        ts=1000.0 + i,
        sensors=(
            SensorValue(
                "MQ135", ChannelStatus.OK, 1.2, 14.5, 0.82, {"NH3": 20.0 + i, "toluene": 3}
            ),
            SensorValue("MQ9", ChannelStatus.OK, 1.1, 12.0, 0.7, {"CO": 30.0}),
            SensorValue("MQ4", ChannelStatus.OK, 1.0, 11.0, 0.6, {"CH4": 700.0}),
        ),
        temperature_c=5.0,
        humidity_pct=70.0,
        warming_up=False,
    )


def one_of_each(ts: float = 2000.0) -> list[Event]:
    return [
        nose(0),
        FoodReading(
            ts=ts,
            label=FoodVerdict.FRESH,
            confidence=0.9,
            probabilities={"excellent": 0.9, "good": 0.05, "acceptable": 0.03, "spoiled": 0.02},
            freshness=0.95,
            trend=Trend.STEADY,
            freshness_per_hour=None,
            warming_up=False,
        ),
        ConceptScore(ts, "a cat on the sofa", 0.87, (0.1, 0.2, 0.3, 0.4), 14.9, 2),
        BirdDetection(ts, ts - 3.5, ts - 1.0, "Turdus merula", 0.91, 0.74, "2025-10-09T06-13.flac"),
        Health(ts=ts, component="nose", status=HealthStatus.DEGRADED, message="MQ3 warming up"),
    ]


@dataclass
class Station:
    store: EventStore
    core: LinkCore
    server: BumbleLinkServer
    link: LocalLink

    def phone(self, mtu: int = 247, **kwargs: object) -> BumbleClient:
        return BumbleClient(virtual_device(self.link, "phone", PHONE_ADDRESS), mtu=mtu, **kwargs)  # type: ignore[arg-type]


@pytest_asyncio.fixture
async def station(tmp_path: Path) -> AsyncIterator[Station]:
    store = EventStore(tmp_path / "events.db")
    link = virtual_link()
    core = LinkCore(store, station_name="kitchen", clock=SystemClock())
    server = BumbleLinkServer(virtual_device(link, "kitchen", STATION_ADDRESS), core)
    await server.start()
    server.attach(store)
    yield Station(store, core, server, link)
    server.detach()
    store.close()


async def until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.002)


# ---------------------------------------------------------------------------------- streams


@pytest.mark.parametrize("mtu", [23, 247])
async def test_connect_discover_subscribe_and_receive_every_stream(
    station: Station, mtu: int
) -> None:
    phone = station.phone(mtu=mtu)
    await phone.connect(station.server.address)
    assert phone.mtu == mtu
    events = one_of_each()
    seqs = station.store.append_many(events)
    await phone.wait_for_seq(seqs[-1])
    assert [m.seq for m in phone.events] == seqs
    assert [m.type for m in phone.events] == ["nose", "food", "concept", "bird", "health"]
    for event, message in zip(events, phone.events, strict=True):
        assert set(message.payload) == set(event.to_dict())  # the names the app reads
    assert phone.events[2].payload["focus_box"] == pytest.approx([0.1, 0.2, 0.3, 0.4])
    assert phone.events[3].payload["species"] == "Turdus merula"
    assert phone.newest_seq == dict(
        zip(["nose", "food", "concept", "bird", "health"], seqs, strict=True)
    )


@pytest.mark.parametrize("mtu", [23, 185, 247, 517])
async def test_mtu_negotiation_and_chunking(station: Station, mtu: int) -> None:
    phone = station.phone(mtu=mtu)
    await phone.connect(station.server.address)
    [server_side] = station.server.connections
    assert phone.mtu == server_side.att_mtu == mtu
    text = "the sensor read 0.000 V at its ground rail " * 9  # ~390 bytes: many frames at 23
    message = protocol.encode_message("health", 1, {"ts": 1.0, "message": text})
    assert len(station.core.frames_for(message, mtu - 3)) == -(
        -(len(message) - 5) // (mtu - 3 - protocol.FRAME_HEADER.size)
    )
    seq = station.store.append(
        Health(ts=1.0, component="nose", status=HealthStatus.OK, message=text)
    )
    await phone.wait_for_seq(seq)
    assert phone.events[-1].payload["message"] == text
    assert phone.inbox.dropped == 0 and phone.inbox.errors == 0


async def test_a_notification_longer_than_mtu_minus_3_is_cut_by_the_stack(station: Station) -> None:
    """Why frames exist: ATT truncates, it does not fragment."""
    phone = station.phone(mtu=23)
    await phone.connect(station.server.address, backfill=False)
    assert phone.connection is not None
    peer = Peer(phone.connection)
    await peer.discover_all()  # type: ignore[no-untyped-call]
    [proxy] = peer.get_characteristics_by_uuid(bumble_uuid(uuids.BIRD_STREAM))
    got: asyncio.Queue[bytes] = asyncio.Queue()
    await peer.subscribe(proxy, got.put_nowait)
    [connection] = station.server.connections
    bird = station.server.characteristics[uuids.BIRD_STREAM]
    await station.server.device.notify_subscriber(connection, bird, bytes(100))
    assert len(await asyncio.wait_for(got.get(), 2)) == 20


# ----------------------------------------------------------------- disconnect and backfill


async def test_disconnect_mid_stream_then_reconnect_backfills_with_no_gap_or_duplicate(
    station: Station,
) -> None:
    phone = station.phone(mtu=23)  # ~8 frames per nose reading: the cut lands mid-message
    await phone.connect(station.server.address)
    cut = asyncio.get_running_loop().create_future()

    def on_event(message: protocol.Message) -> None:
        if len(phone.events) == 10 and not cut.done():
            cut.set_result(None)

    phone.on_event = on_event
    burst = await asyncio.to_thread(station.store.append_many, [nose(i) for i in range(60)])
    await cut
    await phone.disconnect()
    await until(lambda: not station.server.connections)
    received_before = len(phone.events)
    assert received_before < len(burst)  # the link really dropped mid-stream
    while_away = await asyncio.to_thread(station.store.append_many, [nose(i) for i in range(20)])

    await phone.connect(station.server.address)  # re-encrypts with the bonded keys, backfills
    after = station.store.append_many(one_of_each())
    await phone.wait_for_seq(after[-1])

    everything = [s.seq for s in station.store.since(0, limit=10_000)]
    assert everything == burst + while_away + after
    assert [m.seq for m in phone.events] == everything  # in order, none missing, none twice
    assert phone.connection is not None and phone.connection.is_encrypted


async def test_events_committed_during_reconnects_are_neither_lost_nor_duplicated(
    station: Station,
) -> None:
    """A sense keeps appending while the phone drops and comes back, again and again."""
    phone = station.phone(mtu=23)
    await phone.connect(station.server.address)
    stop = threading.Event()

    def sense() -> None:
        i = 0
        while not stop.is_set():
            station.store.append(nose(i))
            i += 1
            stop.wait(0.004)  # ~250 readings/s: about what MTU 23 carries here

    producer = asyncio.get_running_loop().run_in_executor(None, sense)
    try:
        for _ in range(4):
            await asyncio.sleep(0.05)
            await phone.disconnect()
            await until(lambda: not station.server.connections)
            await asyncio.sleep(0.02)
            await phone.connect(station.server.address)
    finally:
        stop.set()
        await producer
    newest = station.core.newest_seq
    await phone.wait_for_seq(newest, timeout_s=20)
    everything = [s.seq for s in station.store.since(0, limit=100_000)]
    assert [m.seq for m in phone.events] == everything
    assert len(everything) > 50


async def test_backfill_pages_through_more_than_one_request(tmp_path: Path) -> None:
    with EventStore(tmp_path / "events.db") as store:
        seqs = store.append_many([nose(i) for i in range(45)])
        core = LinkCore(store, station_name="k", clock=SystemClock(), backfill_max=10)
        server, phone = await open_virtual_link(core, store)
        assert [m.seq for m in phone.events] == seqs  # five requests of at most 10
        server.detach()


# ------------------------------------------------------------------------------ control point


async def test_the_control_point_refuses_an_unpaired_phone(station: Station) -> None:
    phone = station.phone()
    await phone.connect(station.server.address, pair=False, backfill=False)
    with pytest.raises(ControlError) as refused:
        await phone.request("backfill", since=0)
    assert refused.value.code is ResultCode.NOT_PERMITTED  # ATT Insufficient Encryption


async def test_bad_writes_get_att_errors_and_the_server_keeps_serving(station: Station) -> None:
    phone = station.phone(mtu=23)
    await phone.connect(station.server.address)
    assert phone.connection is not None
    peer = Peer(phone.connection)
    await peer.discover_all()  # type: ignore[no-untyped-call]
    [control_point] = peer.get_characteristics_by_uuid(bumble_uuid(uuids.CONTROL_POINT))
    for data, att_error in [
        (b"\x16\x01", 0x81),  # truncated
        (b"\xde\xad\xbe\xef" * 4, 0x81),  # garbage
        (bytes(200), 0x0D),  # oversized (a long write)
    ]:
        with pytest.raises(att.ATT_Error) as refused:
            await peer.write_value(control_point, data, with_response=True)
        assert refused.value.error_code == att_error
    with pytest.raises(ControlError) as unavailable:
        await phone.request("select_concept", concept="cat")
    assert unavailable.value.code is ResultCode.UNAVAILABLE  # no camera wired in
    seq = station.store.append(nose(1))
    await phone.wait_for_seq(seq)  # still streaming


async def test_control_requests_reach_the_handlers() -> None:
    selected: list[str] = []

    def select(concept: str) -> ResultCode:
        selected.append(concept)
        return ResultCode.OK

    core = LinkCore(None, station_name="k", clock=SystemClock(), handlers=ControlHandlers(select))
    _, phone = await open_virtual_link(core, None)
    result = await phone.request("select_concept", concept="a red mug")
    assert result.payload["code"] is ResultCode.OK and selected == ["a red mug"]


# ------------------------------------------------------------------------ standard services


async def test_ess_and_device_information_as_a_generic_client_sees_them(station: Station) -> None:
    phone = station.phone()
    await phone.connect(station.server.address, backfill=False)
    assert all(v is None for v in (await phone.read_ess()).values())  # nothing measured yet
    assert phone.connection is not None
    peer = Peer(phone.connection)
    await peer.discover_all()  # type: ignore[no-untyped-call]
    [temperature] = peer.get_characteristics_by_uuid(bumble_uuid(uuids.TEMPERATURE))
    notified: asyncio.Queue[bytes] = asyncio.Queue()
    await peer.subscribe(temperature, notified.put_nowait)

    seq = station.store.append(nose(0))
    await phone.wait_for_seq(seq)
    assert ess.decode_value(uuids.TEMPERATURE, await asyncio.wait_for(notified.get(), 2)) == 5.0
    values = await phone.read_ess()
    assert values[uuids.HUMIDITY] == 70.0
    assert values[uuids.AMMONIA_CONCENTRATION] == pytest.approx(
        ess.ppm_to_kg_m3(20.0, 17.031, 5.0), rel=5e-3
    )
    assert values[uuids.METHANE_CONCENTRATION] == pytest.approx(700_000)
    assert values[uuids.VOC_CONCENTRATION] == 3000

    [service] = peer.get_services_by_uuid(bumble_uuid(uuids.ESS_SERVICE))
    for characteristic in service.characteristics:
        descriptors = {d.type: d for d in characteristic.descriptors}
        measurement = await peer.read_value(descriptors[bumble_uuid(uuids.ES_MEASUREMENT)])
        assert len(measurement) == 11
        description = await peer.read_value(
            descriptors[bumble_uuid(uuids.CHARACTERISTIC_USER_DESCRIPTION)]
        )
        assert description.decode()
    [manufacturer] = peer.get_characteristics_by_uuid(bumble_uuid(uuids.MANUFACTURER_NAME))
    assert await peer.read_value(manufacturer) == b"Senses project"

    info = await phone.read_station_info()
    assert info.payload["station_name"] == "kitchen" and info.payload["newest_seq"] == seq


async def test_bench_link_reports_latency_throughput_and_sizes() -> None:
    from bench.link import run

    # In a worker thread: the bench runs its own event loops.
    result = await asyncio.to_thread(run, 20, 0.001)
    for mtu in ("mtu23", "mtu247"):
        figures = result["link"][mtu]
        assert figures["mtu"] == int(mtu[3:])
        assert 0 < figures["latency_ms_p50"] <= figures["latency_ms_p99"]
        assert figures["events_per_s"] > 0
        assert figures["lost"] == figures["duplicates"] == 0
    assert set(result["bytes"]) == {"nose", "food", "concept", "bird", "health", "all"}
    assert result["meets"]["bytes_ratio_continuous_streams"]
