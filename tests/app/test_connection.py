"""The app's connection end to end over a real BLE host stack (Bumble, two virtual
controllers, no radio): every stream into the state, drops and reconnects with backoff,
backfill with no gap or duplicate, control-point answers; and bleak's thin adapter against
an autospec'd BleakClient, including a result that overtakes its events (BlueZ sockets)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any
from unittest.mock import create_autospec

import pytest
from app_harness import RecordingState, Station
from bleak import BleakClient
from bleak.exc import BleakDBusError, BleakError, BleakGATTProtocolError

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
from device.link import uuids
from device.link.core import LinkCore
from device.link.protocol import ResultCode
from device.store import EventStore
from mobile_app.connection import (
    SUBSCRIBED,
    BleakStationLink,
    ControlRefusedError,
    FoundStation,
    StationConnection,
)
from mobile_app.demo import DEMO_CONCEPTS, simulated_station
from mobile_app.state import ConnectionState

pytestmark = pytest.mark.asyncio(loop_scope="function")

Until = Callable[..., Coroutine[None, None, None]]
Run = Callable[[StationConnection], asyncio.Task[None]]


def nose(i: int) -> NoseReading:
    return NoseReading(
        ts=1000.0 + i,
        sensors=(
            SensorValue("MQ135", ChannelStatus.OK, 1.2, 14.5, 0.82, {"NH3": 20.0 + i}),
            SensorValue("MQ4", ChannelStatus.WARMING_UP, 1.0, 11.0, None, {}),
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
            label=FoodVerdict.SPOILING,
            confidence=0.9,
            probabilities={"excellent": 0.05, "good": 0.1, "acceptable": 0.8, "spoiled": 0.05},
            freshness=0.45,
            trend=Trend.WORSENING,
            freshness_per_hour=-0.01,
            warming_up=False,
        ),
        ConceptScore(ts, "a cat on the sofa", 0.87, (0.1, 0.2, 0.3, 0.4), 14.9, 2),
        BirdDetection(ts, ts - 3.5, ts - 1.0, "Turdus merula", 0.91, 0.74, "clip.flac"),
        Health(ts=ts, component="nose", status=HealthStatus.FAILED, message="MQ3 open circuit"),
    ]


# ---------------------------------------------------------------------------------- streams


async def test_the_app_receives_every_stream_into_its_state(
    station: Station, running: Run, wait_until: Until
) -> None:
    connection, state = station.app()
    running(connection)
    await wait_until(lambda: state.connection is ConnectionState.CONNECTED)
    assert state.station_name == "kitchen"
    seqs = station.store.append_many(one_of_each())
    await wait_until(lambda: state.last_seq == seqs[-1])

    assert state.received == seqs
    assert state.food is not None and state.food["label"] == "spoiling"
    assert state.concept is not None and state.active_concept == "a cat on the sofa"
    assert state.birds[0]["species"] == "Turdus merula"
    assert state.species_today == {} or "Turdus merula" in state.species_today
    assert state.nose_history["MQ135.rs_kohm"] == [(1000.0, 14.5)]
    assert state.sensor_status == {"MQ135": "ok", "MQ4": "warming_up"}
    assert state.health["nose"]["status"] == "failed"
    assert {a.kind for a in state.alerts} >= {"food", "station"}
    assert connection.inbox.dropped == connection.inbox.errors == 0


async def test_what_happened_before_the_first_connection_is_backfilled(
    station: Station, running: Run, wait_until: Until
) -> None:
    before = station.store.append_many([nose(i) for i in range(30)])
    connection, state = station.app(mtu=23)
    running(connection)
    await wait_until(lambda: state.connection is ConnectionState.CONNECTED)
    assert state.received == before  # caught up before "connected"
    assert state.connection.label == "Connected"
    assert [s for _, s, _ in state.states] == [
        ConnectionState.SCANNING,
        ConnectionState.CONNECTING,
        ConnectionState.BACKFILLING,
        ConnectionState.CONNECTED,
    ]


# ----------------------------------------------------------------- drops, backoff, backfill


async def test_a_dropped_link_reconnects_and_backfills_with_no_gap_or_duplicate(
    station: Station, running: Run, wait_until: Until
) -> None:
    # ~8 frames per reading at MTU 23, 200 readings (over a second of sending): the cut lands
    # mid-stream even on a fast machine, and mid-message. The first retry waits long
    # enough for the events "while away" to be committed before the app is back.
    connection, state = station.app(mtu=23, backoff_first_s=0.3)
    running(connection)
    await wait_until(lambda: state.connection is ConnectionState.CONNECTED)
    burst = await asyncio.to_thread(station.store.append_many, [nose(i) for i in range(200)])
    await wait_until(lambda: len(state.received) >= 10)
    await station.drop_links()  # the station drops the link
    assert len(state.received) < len(burst)  # it really dropped mid-stream
    await wait_until(lambda: state.connection is not ConnectionState.CONNECTED)
    away = await asyncio.to_thread(station.store.append_many, [nose(i) for i in range(20)])

    await wait_until(lambda: state.connection is ConnectionState.CONNECTED)
    after = station.store.append_many(one_of_each())
    await wait_until(lambda: state.last_seq == after[-1])
    assert burst + away + after == station.seqs()
    assert state.received == station.seqs()  # in order, none missing, none twice
    assert connection.connects == 2


async def test_events_committed_during_repeated_drops_are_neither_lost_nor_duplicated(
    station: Station, running: Run, wait_until: Until
) -> None:
    connection, state = station.app(mtu=23, backoff_first_s=0.02)
    running(connection)
    await wait_until(lambda: state.connection is ConnectionState.CONNECTED)
    stop = threading.Event()

    def sense() -> None:
        i = 0
        while not stop.is_set():
            station.store.append(nose(i))
            i += 1
            stop.wait(0.004)

    producer = asyncio.get_running_loop().run_in_executor(None, sense)
    try:
        for links in range(1, 4):
            await wait_until(lambda: connection.connects == links)  # noqa: B023
            await asyncio.sleep(0.05)
            await station.drop_links()
    finally:
        stop.set()
        await producer
    await wait_until(lambda: connection.connects == 4)
    await wait_until(lambda: state.last_seq == station.core.newest_seq, timeout_s=20)
    assert state.received == station.seqs()
    assert len(state.received) > 30 and connection.connects == 4


async def test_retries_back_off_exponentially_and_reset_after_a_good_link(
    station: Station, running: Run, wait_until: Until
) -> None:
    connection, state = station.app(
        scan_timeout_s=0.05, backoff_first_s=0.05, backoff_max_s=0.2, stable_s=0.0
    )
    await station.server.device.stop_advertising()  # out of range from the start
    running(connection)
    await wait_until(lambda: connection.attempts >= 5)
    delays = [
        round(at - t, 2) for t, s, at in state.states if s is ConnectionState.DISCONNECTED and at
    ]
    assert delays[:4] == [0.05, 0.1, 0.2, 0.2]  # doubling, capped
    assert state.disconnected_since is not None

    await station.server.start()  # back in range
    await wait_until(lambda: state.connection is ConnectionState.CONNECTED)
    assert state.disconnected_since is None
    state.states.clear()
    await station.drop_links()
    await wait_until(lambda: connection.connects == 2)
    [(t, _, at)] = [x for x in state.states if x[1] is ConnectionState.DISCONNECTED]
    assert at is not None and round(at - t, 2) == 0.05  # a good link resets the backoff


async def test_the_disconnection_alert_comes_once_while_the_station_is_away(
    station: Station, running: Run, wait_until: Until
) -> None:
    connection, state = station.app(
        scan_timeout_s=0.02,
        connect_timeout_s=0.1,
        backoff_first_s=0.02,
        backoff_max_s=0.05,
        tick_s=0.01,
    )
    state.settings.disconnected_alert_after_s = 0.3
    running(connection)
    await wait_until(lambda: state.connection is ConnectionState.CONNECTED)
    await station.server.device.stop_advertising()
    await station.drop_links()
    await wait_until(lambda: any(a.kind == "disconnected" for a in state.alerts))
    await asyncio.sleep(0.3)
    assert [a.kind for a in state.alerts].count("disconnected") == 1
    assert connection.attempts >= 4  # connecting by the remembered address timed out each time
    await station.server.start()
    await wait_until(lambda: state.connection is ConnectionState.CONNECTED)
    assert state.banner is None  # the disconnection banner goes once reconnected


async def test_stop_ends_run_and_leaves_the_state_idle(
    station: Station, running: Run, wait_until: Until
) -> None:
    connection, state = station.app()
    task = running(connection)
    await wait_until(lambda: state.connection is ConnectionState.CONNECTED)
    connection.stop()
    await asyncio.wait_for(task, 2)
    assert state.connection is ConnectionState.IDLE
    await wait_until(lambda: not station.server.connections)


# ------------------------------------------------------------------------------ control point


async def test_select_concept_reaches_the_station(
    station: Station, running: Run, wait_until: Until
) -> None:
    connection, state = station.app()
    running(connection)
    await wait_until(lambda: state.connection is ConnectionState.CONNECTED)
    code, message = await connection.select_concept("a red mug")
    assert code is ResultCode.OK and "a red mug" in message
    assert station.selected == ["a red mug"]
    assert state.active_concept == "a red mug" and "a red mug" in state.concepts


async def test_select_concept_on_an_unpaired_link_says_pairing_is_needed(
    station: Station, running: Run, wait_until: Until
) -> None:
    connection, state = station.app(pair=False)
    running(connection)
    await wait_until(lambda: state.connection is ConnectionState.CONNECTED)
    assert state.link_problem is not None and "paired" in state.link_problem  # no backfill
    code, message = await connection.select_concept("a red mug")
    assert code is ResultCode.NOT_PERMITTED
    assert "pair" in message.lower()
    assert station.selected == []
    seq = station.store.append(nose(1))  # live events still flow
    await wait_until(lambda: state.last_seq == seq)


async def test_select_concept_without_a_link_says_so(station: Station) -> None:
    connection, _ = station.app()
    code, message = await connection.select_concept("a red mug")
    assert code is ResultCode.UNAVAILABLE and "Not connected" in message


# ------------------------------------------------------------------------ bleak (autospec)


class FakeBleak:
    """An autospec'd BleakClient served by a LinkCore, notifying like BlueZ may: each
    characteristic on its own socket, so a control result can overtake its events."""

    def __init__(self, core: LinkCore, *, authenticated: bool = True, mtu: int = 23) -> None:
        self.core = core
        self.authenticated = authenticated
        self.mtu = mtu
        self.callbacks: dict[str, Callable[[Any, bytearray], None]] = {}
        self.kwargs: dict[str, Any] = {}
        self.client = create_autospec(BleakClient, instance=True)
        self.client.is_connected = False
        self.client.connect.side_effect = self._connect
        self.client.start_notify.side_effect = self._start_notify
        self.client.write_gatt_char.side_effect = self._write
        self.client.read_gatt_char.side_effect = self._read

    def factory(self, target: object, **kwargs: Any) -> Any:
        self.target = target
        self.kwargs = kwargs
        return self.client

    async def _connect(self) -> None:
        self.client.is_connected = True

    async def _start_notify(self, uuid: str, callback: Callable[[Any, bytearray], None]) -> None:
        self.callbacks[uuid] = callback

    async def _read(self, uuid: str) -> bytearray:
        return bytearray(self.core.read_value(uuid) or b"")

    async def _write(self, uuid: str, data: bytes, response: bool) -> None:
        assert uuid == uuids.CONTROL_POINT and response
        outcome = self.core.handle_control(data, client="phone", authenticated=self.authenticated)
        if outcome.att_error is not None:
            raise BleakGATTProtocolError(outcome.att_error)
        # The result first, then the events: the worst order the sockets can produce.
        later = list(outcome.backfill)
        asyncio.get_running_loop().call_soon(self._notify, outcome.notifications[-1:])
        asyncio.get_running_loop().call_later(0.02, self._notify, later)

    def _notify(self, items: list[tuple[str, bytes]]) -> None:
        for uuid, message in items:
            for frame in self.core.notifications_for(uuid, message, self.mtu - 3):
                self.callbacks[uuid](object(), bytearray(frame))


class FakeAdvertisement:
    def __init__(self, name: str | None, services: list[str], rssi: int) -> None:
        self.local_name = name
        self.service_uuids = services
        self.rssi = rssi


class FakeDevice:
    def __init__(self, address: str, name: str | None = None) -> None:
        self.address = address
        self.name = name


async def discover(**kwargs: Any) -> dict[str, tuple[Any, Any]]:
    assert kwargs["service_uuids"] == [uuids.SENSES_SERVICE] and kwargs["return_adv"]
    return {
        "A": (FakeDevice("A"), FakeAdvertisement("kitchen", [uuids.SENSES_SERVICE.upper()], -70)),
        "B": (FakeDevice("B", "fridge"), FakeAdvertisement(None, [uuids.SENSES_SERVICE], -40)),
        "C": (FakeDevice("C"), FakeAdvertisement("headphones", [], -30)),  # not a station
    }


async def test_bleak_link_scans_for_stations_strongest_first() -> None:
    link = BleakStationLink(discover=discover)
    assert await link.scan(0.1) == [
        FoundStation("fridge", "B", -40),
        FoundStation("kitchen", "A", -70),
    ]


async def test_bleak_link_connects_pairs_and_subscribes(tmp_path: Path) -> None:
    with EventStore(tmp_path / "events.db") as store:
        fake = FakeBleak(LinkCore(store, station_name="k", clock=SystemClock()))
        link = BleakStationLink(client_factory=fake.factory, discover=discover)
        [station, _] = await link.scan(0.1)
        frames: list[tuple[str, bytes]] = []
        lost: list[bool] = []
        await link.connect(
            station,
            on_frame=lambda u, f: frames.append((u, f)),
            on_disconnect=lambda: lost.append(True),
        )
        assert isinstance(fake.target, FakeDevice)  # the scanned device: no second scan
        assert fake.kwargs["pair"] is True and fake.kwargs["services"] == [uuids.SENSES_SERVICE]
        assert list(fake.callbacks) == list(SUBSCRIBED)
        fake.callbacks[uuids.BIRD_STREAM](object(), bytearray(b"\x01\x02"))
        assert frames == [(uuids.BIRD_STREAM, b"\x01\x02")]
        fake.kwargs["disconnected_callback"](fake.client)
        assert lost == [True]
        await link.disconnect()
        fake.client.disconnect.assert_awaited_once()


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (BleakGATTProtocolError(0x0F), ResultCode.NOT_PERMITTED),
        (BleakDBusError("org.bluez.Error.Failed", ["Operation failed with ATT error: 0x80"]),
         ResultCode.RATE_LIMITED),
        (BleakDBusError("org.bluez.Error.NotPermitted", ["Not paired"]), ResultCode.NOT_PERMITTED),
        (BleakGATTProtocolError(0x08), ResultCode.NOT_PERMITTED),
        (BleakDBusError("org.bluez.Error.Failed", ["0x81"]), ResultCode.MALFORMED),
        (BleakDBusError("org.bluez.Error.InvalidValueLength", []), ResultCode.TOO_LARGE),
    ],
)  # fmt: skip
async def test_bleak_write_refusals_become_result_codes(error: Exception, code: ResultCode) -> None:
    client = create_autospec(BleakClient, instance=True)
    client.is_connected = True
    client.write_gatt_char.side_effect = error
    link = BleakStationLink(client_factory=lambda *_a, **_k: client, discover=discover)
    await link.connect(
        FoundStation("k", "A"), on_frame=lambda u, f: None, on_disconnect=lambda: None
    )
    with pytest.raises(ControlRefusedError) as refused:
        await link.write_control(b"\x16\x01\x00\x00\x00\xa1\x00\x00")
    assert refused.value.code is code


async def test_bleak_connect_failure_is_a_link_error() -> None:
    client = create_autospec(BleakClient, instance=True)
    client.connect.side_effect = BleakError("device not found")
    link = BleakStationLink(client_factory=lambda *_a, **_k: client, discover=discover)
    with pytest.raises(ConnectionError, match="device not found"):
        await link.connect(
            FoundStation("k", "A"), on_frame=lambda u, f: None, on_disconnect=lambda: None
        )
    assert not link.is_connected


async def test_station_connection_over_bleak_backfills_when_results_overtake_events(
    tmp_path: Path, wait_until: Until
) -> None:
    with EventStore(tmp_path / "events.db") as store:
        seqs = store.append_many([*(nose(i) for i in range(25)), *one_of_each()])
        fake = FakeBleak(LinkCore(store, station_name="k", clock=SystemClock(), backfill_max=10))
        state = RecordingState()
        connection = StationConnection(
            BleakStationLink(client_factory=fake.factory, discover=discover), state
        )
        task = asyncio.create_task(connection.run())
        try:
            await wait_until(lambda: state.connection is ConnectionState.CONNECTED)
            assert state.received == seqs  # three pages, each released only when complete
        finally:
            connection.stop()
            await task


async def test_a_long_absence_pages_through_the_station_rate_limit(
    tmp_path: Path, wait_until: Until
) -> None:
    with EventStore(tmp_path / "events.db") as store:
        seqs = store.append_many([nose(i) for i in range(40)])
        core = LinkCore(
            store, station_name="k", clock=SystemClock(), backfill_max=5, rate_burst=2
        )  # 8 pages, and the station answers only 2 at once, then 4 a second
        fake = FakeBleak(core, mtu=247)
        state = RecordingState()
        connection = StationConnection(
            BleakStationLink(client_factory=fake.factory, discover=discover), state
        )
        task = asyncio.create_task(connection.run())
        try:
            await wait_until(lambda: state.connection is ConnectionState.CONNECTED, timeout_s=10)
            assert state.received == seqs and connection.connects == 1
        finally:
            connection.stop()
            await task


async def test_a_station_without_history_still_streams_live(wait_until: Until) -> None:
    fake = FakeBleak(LinkCore(None, station_name="k", clock=SystemClock()))
    state = RecordingState()
    connection = StationConnection(
        BleakStationLink(client_factory=fake.factory, discover=discover), state
    )
    task = asyncio.create_task(connection.run())
    try:
        await wait_until(lambda: state.connection is ConnectionState.CONNECTED)
        assert state.link_problem is not None and "no history" in state.link_problem
    finally:
        connection.stop()
        await task


async def test_stop_before_run_starts_returns_at_once(station: Station) -> None:
    connection, state = station.app()
    task = asyncio.create_task(connection.run())
    connection.stop()
    await asyncio.wait_for(task, 2)
    assert state.connection is ConnectionState.IDLE


async def test_state_listeners_hear_of_a_backfill_once_per_page(
    station: Station, running: Run, wait_until: Until
) -> None:
    station.store.append_many([nose(i) for i in range(50)])
    connection, state = station.app()
    calls: list[int] = []
    state.add_listener(lambda: calls.append(state.last_seq))
    running(connection)
    await wait_until(lambda: state.connection is ConnectionState.CONNECTED)
    assert len(calls) < 12  # a few connection changes and pages, not one per event


# ------------------------------------------------------------------------------------- demo


@pytest.mark.slow
async def test_the_demo_station_feeds_every_sense_and_survives_going_away(
    wait_until: Until,
) -> None:
    state = RecordingState()
    async with simulated_station(
        state, scan_timeout_s=0.2, backoff_first_s=0.1, backoff_max_s=0.4
    ) as sim:
        assert sim.simulated_senses == ("concept", "bird")
        await wait_until(lambda: state.connection is ConnectionState.CONNECTED)
        assert state.station_name == "Senses demo"
        assert set(state.concepts) == set(DEMO_CONCEPTS) and state.birds  # backfilled
        # The emulated nose warms up, calibrates, then gives verdicts (300x real time).
        await wait_until(lambda: state.food is not None, timeout_s=30)
        assert "temperature_c" in state.nose_history and state.sensor_status
        # The app's "now" is the replay's: charts that end now show the newest readings.
        assert abs(state.now() - state.nose_history["temperature_c"][-1][0]) < 600

        await sim.go_away()
        await wait_until(lambda: not state.connection.linked)
        await asyncio.sleep(0.5)  # the nose keeps sampling while the phone is away
        missed = sim.core.newest_seq - state.last_seq
        await sim.come_back()
        await wait_until(lambda: sim.connection.connects == 2)
        assert missed > 0

        code, _ = await sim.connection.select_concept("a person at the door")
        assert code is ResultCode.OK and sim.eye_and_ear.selected == ["a person at the door"]
        newest = sim.core.newest_seq
        await wait_until(lambda: state.last_seq >= newest)
        stored = [s.seq for s in sim.store.since(0, limit=1_000_000)]
        assert state.received == stored[: len(state.received)]  # no gap, no duplicate
    assert state.connection is ConnectionState.IDLE
