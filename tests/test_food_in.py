"""The food-in flow on the station: no verdict until food is marked in, the food's baseline
taken from its first minutes exactly as training takes it, verdicts after, and the bad cases
(pressed twice, during warm-up, a sensor unplugged, power lost, sensors that never change).

The shipped food model runs for real (through ``device/inference.py``); the readings are the
beef run TS2, one reading a minute, as the station's minute rows would be."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from device.clock import ManualClock
from device.events import (
    ChannelStatus,
    Event,
    FoodReading,
    FoodState,
    Health,
    HealthStatus,
    NoseReading,
    SensorValue,
    Trend,
)
from device.inference import load_model
from device.nose.classifier import FoodModelConfig
from device.nose.features import BASELINE_MINUTES, Baseline
from device.nose.food import (
    ANSWER_SUFFIX,
    FoodTracker,
    MinuteLog,
    SavedFoodState,
    request_new_food,
)
from device.nose.minutes import MinuteRow

ROOT = Path(__file__).resolve().parents[1]
BEEF = ROOT / "training" / "data" / "beef_wijaya" / "TS2.csv"
MODEL = ROOT / "models" / "food_quality"


@pytest.fixture(scope="module")
def model():  # type: ignore[no-untyped-def]
    return load_model(MODEL)


@pytest.fixture(scope="module")
def beef() -> dict[str, np.ndarray]:
    with BEEF.open() as f:
        header = f.readline().strip().split(",")
    data = np.loadtxt(BEEF, delimiter=",", skiprows=1, usecols=range(3, len(header)))
    columns = header[3:]
    return {name: data[:, i] for i, name in enumerate(columns)}


class Box:
    """Readings of TS2 a minute apart into one tracker, on a manual clock."""

    def __init__(self, tracker: FoodTracker, clock: ManualClock, beef: dict[str, np.ndarray]):
        self.tracker = tracker
        self.clock = clock
        self.beef = beef
        self.minute = 0
        self.events: list[Event] = []

    def reading(self, *, warming: bool = False, unplugged: str | None = None) -> NoseReading:
        i = self.minute
        sensors = tuple(
            SensorValue(
                name,
                ChannelStatus.WARMING_UP if warming else ChannelStatus.OK,
                rs_kohm=None if name == unplugged else float(self.beef[name][i]),
            )
            for name in self.tracker.sensors
        )
        return NoseReading(
            ts=self.clock.wall(),
            sensors=sensors,
            temperature_c=float(self.beef["Temperature"][i]),
            humidity_pct=float(self.beef["Humidity"][i]),
            warming_up=warming,
        )

    def run(self, minutes: int, **kwargs: object) -> list[Event]:
        out: list[Event] = []
        for _ in range(minutes):
            out += self.tracker.add(self.reading(**kwargs))  # type: ignore[arg-type]
            self.minute += 1
            self.clock.advance(60.0)
        self.events += out
        return out


def foods(events: list[Event]) -> list[FoodReading]:
    return [e for e in events if isinstance(e, FoodReading)]


def verdicts(events: list[Event]) -> list[FoodReading]:
    return [e for e in foods(events) if e.food_state is FoodState.READY]


def messages(events: list[Event]) -> list[str]:
    return [e.message for e in events if isinstance(e, Health)]


def assert_baseline_taken_from(box: Box, beef: dict[str, np.ndarray], minute: int) -> None:
    """The food's baseline is the median of the BASELINE_MINUTES minutes from ``minute``."""
    rows = slice(minute, minute + BASELINE_MINUTES)
    assert box.tracker.classifier is not None
    np.testing.assert_allclose(
        box.tracker.classifier.baseline.rs_kohm,
        np.median(np.stack([beef[s][rows] for s in box.tracker.sensors], axis=1), axis=0),
    )


def tracker(model, clock: ManualClock, tmp_path: Path | None = None) -> FoodTracker:  # type: ignore[no-untyped-def]
    return FoodTracker(
        model,
        clock,
        state_path=None if tmp_path is None else tmp_path / "food_state.json",
        request_path=None if tmp_path is None else tmp_path / "new_food.request",
    )


def test_no_verdict_until_food_is_marked_in(model, beef) -> None:  # type: ignore[no-untyped-def]
    clock = ManualClock()
    box = Box(tracker(model, clock), clock, beef)
    events = box.run(60)
    states = foods(events)
    assert len(states) >= 58  # one a minute
    assert all(f.food_state is FoodState.NO_FOOD and f.label is None for f in states)
    assert not verdicts(events)


def test_the_food_baseline_is_its_first_minutes_as_in_training(model, beef) -> None:  # type: ignore[no-untyped-def]
    clock = ManualClock()
    box = Box(tracker(model, clock), clock, beef)
    box.run(5)  # an empty box first: ignored
    mark = box.tracker.mark_food_in("app")
    assert mark.accepted and f"{BASELINE_MINUTES} min" in mark.message
    food_in = box.minute
    minutes = box.tracker.minutes_to_first_verdict + 30
    events = box.run(minutes)
    first = foods(events)[0]
    assert first.food_state is FoodState.BASELINE and first.food_in_ts == pytest.approx(
        clock.wall() - minutes * 60, abs=61
    )
    # The baseline is the median of the first BASELINE_MINUTES minutes after food-in, the
    # same call training makes on a run's first minutes.
    sensors = box.tracker.sensors
    rows = slice(food_in, food_in + BASELINE_MINUTES)
    expected = Baseline.from_clean_air(
        np.stack([beef[s][rows] for s in sensors], axis=1),
        beef["Temperature"][rows],
        beef["Humidity"][rows],
    )
    assert box.tracker.classifier is not None
    np.testing.assert_allclose(box.tracker.classifier.baseline.rs_kohm, expected.rs_kohm)
    assert box.tracker.classifier.baseline.temperature_c == expected.temperature_c
    # The first verdict comes on the minute training gives its first: when the window that
    # starts at food-in is full (or the baseline is complete, if that is later).
    window = FoodModelConfig.from_card(model.card).spec.first_row_minutes
    said = verdicts(events)
    assert said, "no verdict after the baseline"
    first_minute = next(i for i, f in enumerate(foods(events)) if f.food_state is FoodState.READY)
    # foods(events)[0] is the state reading at the mark; minute rows follow one a minute.
    assert first_minute == max(window, BASELINE_MINUTES)
    assert all(f.label is not None and f.freshness is not None for f in said)
    assert said[-1].food_in_ts == first.food_in_ts
    waits = [f.minutes_to_verdict for f in foods(events) if f.food_state is FoodState.BASELINE]
    assert waits == sorted(waits, reverse=True) and waits[-1] >= 1


def test_new_food_twice_restarts_the_baseline_and_says_so(model, beef) -> None:  # type: ignore[no-untyped-def]
    clock = ManualClock()
    box = Box(tracker(model, clock), clock, beef)
    box.tracker.mark_food_in("app")
    before = box.tracker.minutes_to_first_verdict + 10
    box.run(before)
    assert verdicts(box.events)
    again = box.tracker.mark_food_in("Home Assistant")
    assert again.accepted and "starts over" in again.message
    events = box.run(3)
    assert any("Home Assistant" in m for m in messages(events))
    assert foods(events)[0].food_state is FoodState.BASELINE
    assert not verdicts(events)
    events = box.run(box.tracker.minutes_to_first_verdict)
    assert verdicts(events)
    rows = slice(before, before + BASELINE_MINUTES)
    assert box.tracker.classifier is not None
    np.testing.assert_allclose(
        box.tracker.classifier.baseline.rs_kohm,
        np.median(np.stack([beef[s][rows] for s in box.tracker.sensors], axis=1), axis=0),
    )


def test_food_marked_in_during_warm_up_waits_for_warm_heaters(model, beef) -> None:  # type: ignore[no-untyped-def]
    clock = ManualClock()
    box = Box(tracker(model, clock), clock, beef)
    box.run(1, warming=True)
    mark = box.tracker.mark_food_in("app")
    assert mark.accepted and "warming up" in mark.message
    events = box.run(30, warming=True)
    assert not verdicts(events)
    assert all(f.food_state is FoodState.BASELINE for f in foods(events))
    assert all(
        f.minutes_to_verdict == foods(events)[-1].minutes_to_verdict for f in foods(events)[1:]
    )
    warm_from = box.minute
    events = box.run(box.tracker.minutes_to_first_verdict + 1)
    assert verdicts(events)
    assert_baseline_taken_from(box, beef, warm_from)


def test_a_sensor_unplugged_during_the_baseline_restarts_it_with_one_message(model, beef) -> None:  # type: ignore[no-untyped-def]
    clock = ManualClock()
    box = Box(tracker(model, clock), clock, beef)
    box.tracker.mark_food_in("app")
    box.run(4)
    events = box.run(3, unplugged="MQ4")
    said = [m for m in messages(events) if "interrupted" in m]
    assert len(said) == 1 and "MQ4" in said[0] and "starts over" in said[0]
    assert all(f.food_state is FoodState.BASELINE for f in foods(events))
    back = box.minute
    events = box.run(box.tracker.minutes_to_first_verdict + 1)
    assert verdicts(events)
    assert_baseline_taken_from(box, beef, back)


def test_a_baseline_with_no_change_at_all_gives_no_verdicts_and_says_why(model, beef) -> None:  # type: ignore[no-untyped-def]
    clock = ManualClock()
    flat = {k: np.full_like(v, v[0]) for k, v in beef.items()}
    box = Box(tracker(model, clock), clock, flat)
    box.tracker.mark_food_in("app")
    events = box.run(box.tracker.minutes_to_first_verdict + 30)
    assert not verdicts(events)
    assert foods(events)[-1].food_state is FoodState.NO_CHANGE
    problem = [e for e in events if isinstance(e, Health) and e.status is HealthStatus.DEGRADED]
    assert problem and "no change at all" in problem[0].message
    assert "New food" in problem[0].message
    # Pressing New food with working sensors recovers.
    box.beef = beef
    box.tracker.mark_food_in("app")
    assert verdicts(box.run(box.tracker.minutes_to_first_verdict + 2))


def test_the_food_state_survives_a_restart(model, beef, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    clock = ManualClock()
    box = Box(tracker(model, clock, tmp_path), clock, beef)
    box.tracker.mark_food_in("app")
    box.run(box.tracker.minutes_to_first_verdict + 5)
    before = box.tracker.classifier
    assert before is not None
    saved = json.loads((tmp_path / "food_state.json").read_text())
    assert saved["source"] == "app" and saved["baseline_rs_kohm"]

    # Power cut: a new tracker on the same file restores the food and its baseline.
    restarted = Box(tracker(model, clock, tmp_path), clock, beef)
    restarted.minute = box.minute
    assert restarted.tracker.state is FoodState.STARTING
    assert restarted.tracker.classifier is not None
    np.testing.assert_allclose(
        restarted.tracker.classifier.baseline.rs_kohm, before.baseline.rs_kohm
    )
    events = restarted.run(box.tracker.minutes_to_first_verdict + 2)
    assert any("baseline restored" in m for m in messages(events))
    assert verdicts(events) and verdicts(events)[0].food_in_ts == box.tracker.food_in_ts
    # The shipped model looks back to food-in: its minutes were kept, so verdicts go on at
    # once rather than after a new wait (a model of windows alone waits for its window again).
    spec = FoodModelConfig.from_card(model.card).spec
    first_after = foods(events)[0].food_state
    assert first_after is (FoodState.READY if spec.since_food_in else FoodState.STARTING)


def _uninterrupted(model, beef, minutes: int) -> list[FoodReading]:  # type: ignore[no-untyped-def]
    clock = ManualClock()
    box = Box(tracker(model, clock), clock, beef)
    box.tracker.mark_food_in("app")
    return verdicts(box.run(minutes))


def test_a_restart_resumes_the_history_since_food_in(model, beef, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Forgetting the hours since food-in would make spoiling food look just put in."""
    assert FoodModelConfig.from_card(model.card).spec.since_food_in
    expected = _uninterrupted(model, beef, 1100)

    clock = ManualClock()
    box = Box(tracker(model, clock, tmp_path), clock, beef)
    box.tracker.mark_food_in("app")
    before = verdicts(box.run(1000))
    assert (tmp_path / "food_state.minutes.csv").is_file()
    restarted = Box(tracker(model, clock, tmp_path), clock, beef)  # power cut, same minute
    restarted.minute = box.minute
    events = restarted.run(100)
    after = verdicts(events)
    # The minute in progress at the power cut is lost; the next one closes a minute later and
    # is already a verdict (the lost minute bridged), not a new wait.
    assert foods(events)[0].food_state is FoodState.READY
    assert any("resume with the next minute" in m for m in messages(events))
    assert len(before) + len(after) == len(expected) - 1
    by_ts = {round(v.ts): v for v in expected}
    assert [v.label for v in before] == [by_ts[round(v.ts)].label for v in before]
    assert [v.label for v in after] == [by_ts[round(v.ts)].label for v in after]
    np.testing.assert_allclose(
        [v.freshness for v in after], [by_ts[round(v.ts)].freshness for v in after], atol=0.05
    )
    # Minutes 1000-1100 of spoiling beef are not fresh, as without the restart.
    assert all(v.label is not None and v.label.value != "fresh" for v in after)


def test_minutes_the_station_was_off_are_bridged_not_forgotten(model, beef, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    expected = {round(v.ts): v for v in _uninterrupted(model, beef, 1200)}
    clock = ManualClock()
    box = Box(tracker(model, clock, tmp_path), clock, beef)
    box.tracker.mark_food_in("app")
    box.run(900)
    # Off for 45 minutes (no readings; the meat goes on spoiling), then back.
    box.minute += 45
    clock.advance(45 * 60.0)
    restarted = Box(tracker(model, clock, tmp_path), clock, beef)
    restarted.minute = box.minute
    after = verdicts(restarted.run(255))
    assert len(after) == 254  # a verdict every minute once the first one back closes
    same = [v.label == expected[round(v.ts)].label for v in after]
    assert np.mean(same) >= 0.95
    # One minute with a sensor unplugged: no verdict for it, and the next minutes go on.
    events = restarted.run(1, unplugged="MQ2") + restarted.run(3)
    assert len(verdicts(events)) == 3


def test_lost_minutes_since_food_in_ask_for_new_food(model, beef, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    clock = ManualClock()
    box = Box(tracker(model, clock, tmp_path), clock, beef)
    box.tracker.mark_food_in("app")
    box.run(300)
    (tmp_path / "food_state.minutes.csv").unlink()
    restarted = Box(tracker(model, clock, tmp_path), clock, beef)
    restarted.minute = box.minute
    events = restarted.run(5)
    assert not verdicts(events)
    assert any("are lost" in m and "New food" in m for m in messages(events))
    assert foods(events)[-1].food_state is FoodState.NO_FOOD
    restarted.tracker.mark_food_in("app")  # and New food starts over
    assert verdicts(restarted.run(restarted.tracker.minutes_to_first_verdict + 1))


def test_the_minutes_file_keeps_the_window_and_skips_a_torn_line(tmp_path: Path) -> None:
    sensors = ("MQ2", "MQ3")
    log = MinuteLog(tmp_path / "m.csv", sensors, keep_minutes=5)
    rows = [
        MinuteRow(i, 1000.0 + 60 * i, np.array([10.0 + i, 20.0]), 21.0, 50.0, False)
        for i in range(11)
    ]
    for row in rows:
        log.append(row)
    kept = log.rows_since(0.0)
    # Cut back to the last 5 when it held more than 10.
    assert [r.index for r in kept] == [6, 7, 8, 9, 10]
    np.testing.assert_array_equal(kept[-1].rs_kohm, rows[-1].rs_kohm)
    with (tmp_path / "m.csv").open("a") as f:
        f.write("1700.0,11,0,12.5")  # power cut mid-line
    assert [r.index for r in log.rows_since(1000.0 + 60 * 8)] == [8, 9, 10]
    # A file of other sensors is not this model's history.
    assert MinuteLog(tmp_path / "m.csv", ("MQ2", "MQ135"), keep_minutes=5).rows_since(0) == []


def test_power_lost_during_the_baseline_starts_it_over(model, beef, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    clock = ManualClock()
    box = Box(tracker(model, clock, tmp_path), clock, beef)
    box.tracker.mark_food_in("CLI")
    box.run(4)
    restarted = Box(tracker(model, clock, tmp_path), clock, beef)
    restarted.minute = box.minute
    assert restarted.tracker.state is FoodState.BASELINE
    events = restarted.run(box.tracker.minutes_to_first_verdict + 1)
    assert any("restarted during the food baseline" in m for m in messages(events))
    assert verdicts(events)


def test_a_damaged_state_file_is_kept_and_reported(model, beef, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "food_state.json").write_text("{not json")
    clock = ManualClock()
    box = Box(tracker(model, clock, tmp_path), clock, beef)
    events = box.run(2)
    assert any("damaged" in m and "New food" in m for m in messages(events))
    assert (tmp_path / "food_state.damaged").read_text() == "{not json"
    assert foods(events)[-1].food_state is FoodState.NO_FOOD


def test_saved_state_round_trips(tmp_path: Path) -> None:
    state = SavedFoodState(1.7e9, "app", {"MQ2": 12.5}, 21.0, 55.0)
    state.save(tmp_path / "s.json")
    assert SavedFoodState.load(tmp_path / "s.json") == state
    assert SavedFoodState.load(tmp_path / "missing.json") is None


def test_the_cli_request_reaches_the_running_tracker(model, beef, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    clock = ManualClock()
    box = Box(tracker(model, clock, tmp_path), clock, beef)
    stop = threading.Event()

    def station() -> None:  # the nose's thread, one reading every 50 ms
        while not stop.is_set():
            box.run(1)
            time.sleep(0.05)

    thread = threading.Thread(target=station)
    thread.start()
    try:
        answer = request_new_food(tmp_path / "new_food.request", timeout_s=10)
    finally:
        stop.set()
        thread.join()
    assert answer.accepted and "New food marked in" in answer.message
    assert box.tracker.state is not FoodState.NO_FOOD
    assert any("command line" in m for m in messages(box.events))
    assert not (tmp_path / "new_food.request").exists()
    assert not (tmp_path / ("new_food.request" + ANSWER_SUFFIX)).exists()


def test_a_cli_request_nobody_takes_times_out_and_is_withdrawn(tmp_path: Path) -> None:
    with pytest.raises(TimeoutError, match="senses run"):
        request_new_food(tmp_path / "new_food.request", timeout_s=0.3)
    assert not (tmp_path / "new_food.request").exists()  # never applied hours later


def test_a_stale_request_is_refused(model, beef, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    request = tmp_path / "new_food.request"
    request.write_text(json.dumps({"id": "x", "written": time.time() - 3600, "source": "cli"}))
    clock = ManualClock()
    box = Box(tracker(model, clock, tmp_path), clock, beef)
    box.run(1)
    answer = json.loads((tmp_path / ("new_food.request" + ANSWER_SUFFIX)).read_text())
    assert answer["accepted"] is False and "too old" in answer["message"]
    assert box.tracker.state is FoodState.NO_FOOD


def test_food_states_cross_the_wire() -> None:
    from device.link import protocol

    reading = FoodReading(
        ts=1000.0,
        label=None,
        confidence=None,
        probabilities={},
        freshness=None,
        trend=Trend.UNKNOWN,
        freshness_per_hour=None,
        warming_up=False,
        food_state=FoodState.BASELINE,
        food_in_ts=940.0,
        minutes_to_verdict=7,
    )
    message = protocol.decode_message(protocol.encode_message("food", 5, reading.to_dict()))
    assert message.payload["food_state"] == "baseline"
    assert message.payload["food_in_ts"] == 940.0
    assert message.payload["minutes_to_verdict"] == 7
    assert message.payload["label"] is None
    verdict = replace(reading, food_state=FoodState.READY, minutes_to_verdict=0)
    assert (
        protocol.decode_message(protocol.encode_message("food", 6, verdict.to_dict())).payload[
            "food_state"
        ]
        == "ready"
    )


def test_the_demo_dashboard_says_why_there_is_no_verdict() -> None:
    from device.sinks import StationDashboard

    dashboard = StationDashboard()
    dashboard.handle(
        FoodReading(
            ts=1.0,
            label=None,
            confidence=None,
            probabilities={},
            freshness=None,
            trend=Trend.UNKNOWN,
            freshness_per_hour=None,
            warming_up=False,
            food_state=FoodState.NO_FOOD,
        )
    )
    assert "no food marked in" in str(dashboard._verdict())
    dashboard.on_phone(3, {"type": "food", "label": None, "food_state": "no_food"})
    assert dashboard.phone_last is None  # "latest verdict" stays a verdict


def test_request_and_answer_files_are_readable_by_another_user(model, beef, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The CLI may run as root while the station runs as its own user."""
    clock = ManualClock()
    box = Box(tracker(model, clock, tmp_path), clock, beef)
    seen: list[int] = []
    stop = threading.Event()

    def station() -> None:
        request = tmp_path / "new_food.request"
        while not stop.is_set():
            if request.exists():
                seen.append(request.stat().st_mode & 0o777)
            box.run(1)
            time.sleep(0.02)

    thread = threading.Thread(target=station)
    thread.start()
    try:
        assert request_new_food(tmp_path / "new_food.request", timeout_s=10).accepted
    finally:
        stop.set()
        thread.join()
    assert seen and all(mode == 0o644 for mode in seen)
