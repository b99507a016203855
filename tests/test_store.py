"""Tests of the SQLite event store: round trips, backfill, threads, crashes, bad files, pruning."""

from __future__ import annotations

import math
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from device.clock import ManualClock
from device.errors import SensesError
from device.events import (
    BirdDetection,
    ChannelStatus,
    FoodReading,
    FoodVerdict,
    Health,
    HealthStatus,
    NoseReading,
    SensorValue,
    Trend,
)
from device.store import EventStore, StoredEvent, StoreError
from device.store import sqlite as store_sqlite


def _nose(ts: float) -> NoseReading:
    return NoseReading(
        ts=ts,
        sensors=(
            SensorValue("MQ135", ChannelStatus.OK, 1.21, 14.5, 0.82, {"NH3": 3.5, "CO2": 410.0}),
            SensorValue("MQ3", ChannelStatus.WARMING_UP, 0.4),
            SensorValue("MQ136", ChannelStatus.DISCONNECTED),
        ),
        temperature_c=4.5,
        humidity_pct=None,
        warming_up=True,
    )


def _food(ts: float) -> FoodReading:
    return FoodReading(
        ts=ts,
        label=FoodVerdict.SPOILING,
        confidence=0.7,
        probabilities={"excellent": 0.05, "good": 0.15, "acceptable": 0.7, "spoiled": 0.1},
        freshness=0.4,
        trend=Trend.WORSENING,
        freshness_per_hour=-0.02,
        warming_up=False,
    )


def _health(ts: float, message: str = "ok") -> Health:
    return Health(ts=ts, component="nose", status=HealthStatus.DEGRADED, message=message)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EventStore]:
    with EventStore(tmp_path / "events.db") as s:
        yield s


def test_real_events_round_trip_in_order(store: EventStore) -> None:
    events = [_nose(1.0), _food(2.0), _health(3.0)]
    seqs = [store.append(e) for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3
    stored = store.since(0)
    assert [s.seq for s in stored] == seqs
    assert [s.payload for s in stored] == [e.to_dict() for e in events]
    assert [(s.type, s.ts) for s in stored] == [("nose", 1.0), ("food", 2.0), ("health", 3.0)]
    nose = stored[0].payload
    assert nose["sensors"][0]["ppm"] == {"NH3": 3.5, "CO2": 410.0}
    assert nose["sensors"][2]["status"] == "disconnected"
    assert stored[1].payload["label"] == "spoiling"


def test_non_finite_numbers_are_stored_as_null_so_the_json_stays_strict(store: EventStore) -> None:
    reading = NoseReading(
        ts=1.0,
        sensors=(SensorValue("MQ135", ChannelStatus.ERROR, math.nan, math.inf),),
        temperature_c=math.nan,
        humidity_pct=40.0,
        warming_up=False,
    )
    store.append(reading)
    (stored,) = store.since(0)
    assert stored.payload["temperature_c"] is None
    assert stored.payload["sensors"][0]["voltage_v"] is None
    raw = sqlite3.connect(store.path).execute("SELECT json_valid(payload) FROM events").fetchone()
    assert raw == (1,)


def test_since_pages_through_everything_without_gap_or_duplicate(store: EventStore) -> None:
    all_seqs = store.append_many(_health(float(i), str(i)) for i in range(250))
    seen: list[int] = []
    mark = 0
    while page := store.since(mark, limit=40):
        seen += [s.seq for s in page]
        mark = page[-1].seq
        if len(seen) < 250:  # new events keep arriving while a client catches up
            store.append(_food(1000.0 + mark))
    foods = [s.seq for s in store.since(0, limit=10_000, types={"food"})]
    assert seen == sorted(all_seqs + foods)
    assert store.since(mark) == []
    assert store.since(0, types=set()) == []


def test_since_filters_by_type(store: EventStore) -> None:
    store.append_many([_nose(1), _food(2), _health(3), _food(4)])
    assert [s.ts for s in store.since(0, types={"food"})] == [2.0, 4.0]
    assert [s.type for s in store.since(0, types={"food", "health"})] == ["food", "health", "food"]


def test_latest_and_count(store: EventStore) -> None:
    assert store.latest("food") is None
    store.append_many([_food(5.0), _health(6.0), _food(1.0)])  # a clock that jumped back
    latest = store.latest("food")
    assert isinstance(latest, StoredEvent) and latest.ts == 1.0  # by arrival, not by ts
    assert (store.count(), store.count("food"), store.count("nose")) == (3, 2, 0)


def test_store_is_in_wal_mode_and_creates_folders(tmp_path: Path) -> None:
    path = tmp_path / "var" / "lib" / "senses" / "events.db"
    with EventStore(path) as s:
        s.append(_health(1.0))
        assert (path.parent / "events.db-wal").exists()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert conn.execute("PRAGMA user_version").fetchone() == (store_sqlite.SCHEMA_VERSION,)


def test_concurrent_appends_get_unique_increasing_numbers(store: EventStore) -> None:
    per_thread: dict[int, list[int]] = {}

    def worker(t: int) -> None:
        per_thread[t] = [store.append(_health(float(i), f"{t}:{i}")) for i in range(200)]
        per_thread[t] += store.append_many(_health(0.0, f"{t}:batch") for _ in range(20))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    all_seqs = [seq for seqs in per_thread.values() for seq in seqs]
    assert len(all_seqs) == len(set(all_seqs)) == 6 * 220
    for seqs in per_thread.values():
        assert seqs == sorted(seqs)  # each thread sees its own events in order
    stored = store.since(0, limit=10_000)
    assert [s.seq for s in stored] == sorted(all_seqs)
    for t, seqs in per_thread.items():
        messages = [s.payload["message"] for s in stored if s.seq in set(seqs)]
        assert messages[:200] == [f"{t}:{i}" for i in range(200)]


def test_data_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    with EventStore(path) as s:
        first = s.append_many([_nose(1.0), _food(2.0)])
    with EventStore(path) as s:
        assert [e.seq for e in s.since(0)] == first
        assert s.append(_health(3.0)) > first[-1]


def test_closed_store_says_so(tmp_path: Path) -> None:
    s = EventStore(tmp_path / "events.db")
    s.close()
    s.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        s.append(_health(1.0))


_WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from device.events import Health, HealthStatus
    from device.store import EventStore

    store = EventStore(Path(sys.argv[1]))
    batch = 0
    while True:
        if batch % 2:
            seqs = store.append_many(
                Health(ts=float(batch), component=str(batch), status=HealthStatus.OK, message="")
                for _ in range(5)
            )
        else:
            seqs = [store.append(
                Health(ts=float(batch), component=str(batch), status=HealthStatus.OK, message="")
            )]
        print(*seqs, flush=True)  # printed only once committed
        batch += 1
    """
)


def test_process_killed_mid_write_leaves_every_committed_row(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None
    committed: list[int] = []
    deadline = time.monotonic() + 20
    try:
        while len(committed) < 2000 and time.monotonic() < deadline:
            line = writer.stdout.readline()
            if not line:
                break
            committed += [int(seq) for seq in line.split()]
    finally:
        os.kill(writer.pid, signal.SIGKILL)
        rest, stderr = writer.communicate(timeout=10)
    committed += [int(seq) for seq in rest.split()]
    assert writer.returncode == -signal.SIGKILL
    assert len(committed) >= 2000, f"the writer did not get going: {stderr[-2000:]}"

    with EventStore(path) as s:
        stored = s.since(0, limit=1_000_000)
        assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone() == ("ok",)
    seqs = [e.seq for e in stored]
    assert set(committed) <= set(seqs)
    assert seqs == sorted(seqs)
    # append_many is all or nothing: every batch holds 1 (even) or 5 (odd) rows.
    sizes: dict[str, int] = {}
    for e in stored:
        sizes[e.payload["component"]] = sizes.get(e.payload["component"], 0) + 1
    assert all(n == (5 if int(batch) % 2 else 1) for batch, n in sizes.items()), sizes


def test_a_file_that_is_not_a_database_is_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    path.write_bytes(b"these are not the droids you are looking for" * 100)
    with pytest.raises(StoreError) as caught:
        EventStore(path)
    message = str(caught.value)
    assert str(path) in message and "not a usable event store" in message
    assert "mv " in message
    assert isinstance(caught.value, SensesError) and isinstance(caught.value, OSError)
    assert path.read_bytes().startswith(b"these are not")  # left untouched


def test_a_newer_schema_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    EventStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 7")
    with pytest.raises(StoreError, match=r"schema version 7.*newer version of senses"):
        EventStore(path)


def test_someone_elses_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE recipes (name TEXT)")
    with pytest.raises(StoreError, match=r"not a senses event store.*recipes"):
        EventStore(path)


def test_disk_full_raises_store_error_and_keeps_committed_rows(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    store = EventStore(path)
    # A page limit makes SQLite answer SQLITE_FULL exactly as a full SD card would.
    store._conn.execute("PRAGMA max_page_count = 12")  # type: ignore[union-attr]
    committed: list[int] = []
    with pytest.raises(StoreError, match="free space") as caught:
        for i in range(10_000):
            if i % 3:
                committed.append(store.append(_health(float(i), "x" * 200)))
            else:
                committed += store.append_many([_health(float(i), "y" * 200)] * 4)
    assert isinstance(caught.value.__cause__, sqlite3.Error)
    assert committed
    store.close()
    with EventStore(path) as s:
        assert [e.seq for e in s.since(0, limit=100_000)] == committed


def test_prune_by_age_keeps_the_newest_of_each_type(tmp_path: Path) -> None:
    clock = ManualClock(start_wall_s=10_000.0)
    with EventStore(tmp_path / "events.db", clock=clock) as s:
        s.append_many([_health(100.0), _food(200.0), _health(300.0), _nose(9_500.0)])
        s.append(_food(9_900.0))
        deleted = s.prune(older_than_s=1_000.0)  # cutoff 9000
        assert deleted == 2  # health@100 and food@200; health@300 is the newest health
        assert [(e.type, e.ts) for e in s.since(0)] == [
            ("health", 300.0),
            ("nose", 9_500.0),
            ("food", 9_900.0),
        ]


def test_prune_to_max_rows_keeps_the_newest(store: EventStore) -> None:
    seqs = store.append_many(_food(float(i)) for i in range(100))
    assert store.prune(max_rows=10) == 90
    assert [e.seq for e in store.since(0)] == seqs[-10:]
    assert store.prune(max_rows=10) == 0
    assert store.prune(max_rows=0) == 9  # the newest food survives even this
    assert [e.seq for e in store.since(0)] == seqs[-1:]
    with pytest.raises(ValueError, match="max_rows"):
        store.prune(max_rows=-1)


def test_a_bound_method_listener_can_be_removed(tmp_path: Path) -> None:
    heard: list[int] = []

    class Consumer:
        def on_stored(self, stored: StoredEvent) -> None:
            heard.append(stored.seq)

    consumer = Consumer()
    with EventStore(tmp_path / "events.db") as store:
        store.add_listener(consumer.on_stored)
        store.append(Health(ts=1.0, component="x", status=HealthStatus.OK, message="a"))
        store.remove_listener(consumer.on_stored)  # a new bound-method object, equal not identical
        store.append(Health(ts=2.0, component="x", status=HealthStatus.OK, message="b"))
    assert heard == [1]


def test_a_v1_file_keeps_its_bird_rows_and_gains_the_species_columns(tmp_path: Path) -> None:
    """A store written before BirdNET (schema 1) opens with every row, bird rows now carrying
    scientific_name and model_id (empty: the old head gave common names only)."""
    path = tmp_path / "events.db"
    conn = sqlite3.connect(path)
    store_sqlite._create_v1(conn)
    old_bird = '{"type":"bird","ts":5.0,"start":1.0,"end":4.0,"species":"Great Tit",'
    old_bird += '"confidence_max":0.9,"confidence_mean":0.8,"clip":"a.wav"}'
    conn.execute("INSERT INTO events(ts, type, payload) VALUES (5.0, 'bird', ?)", (old_bird,))
    conn.execute(
        "INSERT INTO events(ts, type, payload) VALUES (6.0, 'health', "
        """'{"type":"health","ts":6.0,"component":"ear","status":"ok","message":""}')"""
    )
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    new_bird = BirdDetection(
        ts=9.0, start=7.0, end=9.0, species="Eurasian Blackbird", confidence_max=0.95,
        confidence_mean=0.9, clip="", scientific_name="Turdus merula",
        model_id="yamnet+birdnet-v2.4",
    )  # fmt: skip
    with EventStore(path) as store:
        store.append(new_bird)
        rows = store.since(0)
    assert [r.type for r in rows] == ["bird", "health", "bird"]
    assert rows[0].payload["species"] == "Great Tit"
    assert (rows[0].payload["scientific_name"], rows[0].payload["model_id"]) == ("", "")
    assert rows[2].payload["scientific_name"] == "Turdus merula"
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone() == (2,)
    query = "EXPLAIN QUERY PLAN SELECT seq FROM events WHERE type = 'bird' AND "
    query += "json_extract(payload, '$.scientific_name') = 'Turdus merula'"
    assert "events_bird_scientific" in str(conn.execute(query).fetchall())
