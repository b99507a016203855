"""The app's state model without a screen: events in, what the user sees and is told out."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from device.link import protocol
from device.link.protocol import Message
from mobile_app.state import (
    MAX_BIRDS,
    NOSE_HISTORY_S,
    Alert,
    AppState,
    ConnectionState,
    Settings,
)

NOON = datetime(2025, 5, 1, 12, 0).timestamp()
"""Local noon, so a few hours either way stay on the same local day."""


class FakeClock:
    def __init__(self, now: float = NOON) -> None:
        self.t = now

    def __call__(self) -> float:
        return self.t


class Feed:
    """Builds messages the way they arrive: encoded by the station, decoded by the app."""

    def __init__(self) -> None:
        self.seq = 0

    def __call__(self, type_: str, **payload: Any) -> Message:
        self.seq += 1
        return protocol.decode_message(protocol.encode_message(type_, self.seq, payload))

    def food(self, label: str, ts: float = NOON, *, warming_up: bool = False) -> Message:
        freshness = {"fresh": 0.9, "spoiling": 0.4, "spoiled": 0.1}[label]
        return self(
            "food",
            ts=ts,
            label=label,
            confidence=0.8,
            probabilities={"good": 0.8},
            freshness=freshness,
            trend="steady",
            warming_up=warming_up,
        )

    def bird(self, species: str, ts: float = NOON, confidence: float = 0.9) -> Message:
        return self(
            "bird",
            ts=ts,
            start=ts - 2,
            end=ts - 1,
            species=species,
            confidence_max=confidence,
            confidence_mean=confidence - 0.1,
            clip="x.flac",
        )

    def nose(self, ts: float = NOON, status: str = "ok") -> Message:
        return self(
            "nose",
            ts=ts,
            temperature_c=4.5,
            humidity_pct=80.0,
            warming_up=status == "warming_up",
            sensors=[
                {"name": "MQ135", "status": status, "rs_kohm": 14.5, "ratio": 0.8,
                 "ppm": {"NH3": 20.0}},
                {"name": "MQ137", "status": "ok", "rs_kohm": 30.0, "ppm": {"NH3": 99.0}},
            ],
        )  # fmt: skip

    def health(self, component: str, status: str, ts: float = NOON) -> Message:
        return self("health", ts=ts, component=component, status=status, message=f"{status}!")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def state(clock: FakeClock) -> AppState:
    return AppState(now=clock)


@pytest.fixture
def feed() -> Feed:
    return Feed()


# ------------------------------------------------------------------------------------- food


def test_fresh_then_spoiling_then_spoiled_raises_exactly_two_alerts(
    state: AppState, feed: Feed
) -> None:
    raised: list[Alert] = []
    for label in ["fresh", "fresh", "spoiling", "spoiling", "spoiled", "spoiled"]:
        raised += state.apply(feed.food(label))
    assert [(a.kind, a.severity) for a in raised] == [("food", "warning"), ("food", "danger")]
    assert state.alerts == raised[::-1]  # newest first
    assert state.banner == raised[-1]
    assert state.food is not None and state.food["label"] == "spoiled"
    labels = [label for _, _, label in state.food_history]
    assert labels == ["fresh", "fresh", "spoiling", "spoiling", "spoiled", "spoiled"]


def test_warming_up_verdicts_never_alert_and_are_not_history(state: AppState, feed: Feed) -> None:
    assert state.apply(feed.food("spoiled", warming_up=True)) == []
    assert state.apply(feed.food("spoiling", warming_up=True)) == []
    assert state.food is not None and state.food["warming_up"] is True  # still shown
    assert state.food_history == [] and state.alerts == []
    # The first trusted verdict after warm-up is what counts.
    assert [a.title for a in state.apply(feed.food("spoiling"))] == ["Food is spoiling"]


def test_food_alerts_follow_the_settings_and_rearm_when_fresh_again(feed: Feed) -> None:
    state = AppState(Settings(alert_on_spoiling=False))
    assert state.apply(feed.food("spoiling")) == []
    assert len(state.apply(feed.food("spoiled"))) == 1
    state.apply(feed.food("fresh"))  # new food in the box
    assert len(state.apply(feed.food("spoiled"))) == 1
    assert state.apply(feed.food("spoiling")) == []  # spoiled -> spoiling is no news


# ------------------------------------------------------------------------------------ birds


def test_a_new_species_alerts_once_per_local_day(
    state: AppState, feed: Feed, clock: FakeClock
) -> None:
    first = state.apply(feed.bird("Turdus merula"))
    assert [a.kind for a in first] == ["new_species"]
    assert state.apply(feed.bird("Turdus merula", NOON + 3600)) == []
    assert len(state.apply(feed.bird("Parus major", NOON + 7200))) == 1
    assert state.species_today == {"Turdus merula": 2, "Parus major": 1}
    assert state.birds_by_hour["Turdus merula"][12] == 1
    assert state.birds_by_hour["Turdus merula"][13] == 1
    assert [b["species"] for b in state.birds] == ["Parus major", "Turdus merula", "Turdus merula"]

    tomorrow = NOON + 24 * 3600
    clock.t = tomorrow
    state.tick()
    assert state.species_today == {} and state.birds_by_hour == {}
    assert len(state.apply(feed.bird("Turdus merula", tomorrow))) == 1
    # A backfilled detection from yesterday is listed but neither counted nor alerted.
    assert state.apply(feed.bird("Sitta europaea", NOON + 60)) == []
    assert "Sitta europaea" not in state.species_today
    assert any(b["species"] == "Sitta europaea" for b in state.birds)


def test_both_names_and_the_species_model_are_kept_and_survive_a_restart(
    state: AppState, feed: Feed, tmp_path: Path
) -> None:
    birdnet = feed(
        "bird", ts=NOON, start=NOON - 3, end=NOON, species="Great Tit", confidence_max=0.9,
        confidence_mean=0.8, clip="", scientific_name="Parus major",
        model_id="yamnet+birdnet-v2.4",
    )  # fmt: skip
    state.apply(birdnet)
    state.apply(feed.bird("Bird", NOON + 5))  # an older station: no scientific name
    info = feed("station_info", station_name="garden", species_model="yamnet+birdnet-v2.4")
    state.apply(info)
    assert state.scientific_names == {"Great Tit": "Parus major"}
    assert state.species_model == "yamnet+birdnet-v2.4"
    assert state.birds[1]["scientific_name"] == "Parus major"
    state.save(tmp_path / "state.json")
    restored = AppState.load(tmp_path / "state.json")
    assert restored.scientific_names == {"Great Tit": "Parus major"}
    assert restored.species_model == "yamnet+birdnet-v2.4"


def test_unsure_detections_are_ignored_and_the_list_is_bounded(state: AppState, feed: Feed) -> None:
    assert state.apply(feed.bird("Corvus corax", confidence=0.3)) == []
    assert state.birds == [] and state.species_today == {}
    for i in range(MAX_BIRDS + 10):
        state.apply(feed.bird("Passer domesticus", NOON + i))
    assert len(state.birds) == MAX_BIRDS
    assert state.birds[0]["ts"] == NOON + MAX_BIRDS + 9  # newest first


# ------------------------------------------------------------------------------- connection


def test_disconnected_too_long_alerts_once_per_outage(state: AppState, clock: FakeClock) -> None:
    state.settings.disconnected_alert_after_s = 600
    state.set_connection(ConnectionState.CONNECTED)
    state.set_connection(ConnectionState.DISCONNECTED)
    assert state.disconnected_since == NOON
    clock.t += 599
    assert state.tick() == []
    state.set_connection(ConnectionState.SCANNING)  # retrying is still the same outage
    clock.t += 1
    [alert] = state.tick()
    assert alert.kind == "disconnected" and alert.severity == "warning"
    assert state.banner == alert
    clock.t += 3600
    assert state.tick() == []  # once per outage
    state.set_connection(ConnectionState.BACKFILLING)
    assert state.banner is None  # reconnected: the disconnection banner goes
    state.set_connection(ConnectionState.CONNECTED)
    state.set_connection(ConnectionState.DISCONNECTED)
    clock.t += 600
    assert len(state.tick()) == 1  # a new outage


def test_no_outage_alert_when_stopped_or_disabled(state: AppState, clock: FakeClock) -> None:
    state.set_connection(ConnectionState.SCANNING)
    state.set_connection(ConnectionState.IDLE)  # the user stopped it
    clock.t += 10_000
    assert state.tick() == []
    state.settings.alert_disconnected = False
    state.set_connection(ConnectionState.DISCONNECTED)
    clock.t += 10_000
    assert state.tick() == []


def test_connection_labels() -> None:
    assert ConnectionState.BACKFILLING.label == "Catching up…"
    assert all(s.label for s in ConnectionState)


# ----------------------------------------------------------------------- nose, eye, health


def test_nose_history_sensor_status_and_window(state: AppState, feed: Feed) -> None:
    state.apply(feed.nose(NOON, status="warming_up"))
    assert state.sensor_status == {"MQ135": "warming_up", "MQ137": "ok"}
    state.apply(feed.nose(NOON + 10))
    assert state.sensor_status["MQ135"] == "ok"
    assert state.nose_history["temperature_c"] == [(NOON, 4.5), (NOON + 10, 4.5)]
    assert state.nose_history["MQ135.rs_kohm"][-1] == (NOON + 10, 14.5)
    assert state.nose_history["NH3_ppm"][-1] == (NOON + 10, 20.0)  # first sensor's estimate
    state.apply(feed.nose(NOON + NOSE_HISTORY_S + 5))
    assert [ts for ts, _ in state.nose_history["humidity_pct"]] == [
        NOON + 10,
        NOON + NOSE_HISTORY_S + 5,
    ]


def test_concepts_seen_and_threshold(state: AppState, feed: Feed) -> None:
    box = [0.1, 0.1, 0.5, 0.5]
    state.apply(feed("concept", ts=NOON, concept="cat", score=0.9, focus_box=box))
    state.apply(feed("concept", ts=NOON, concept="mug", score=0.2, focus_box=box))
    assert state.concepts == ["cat", "mug"] and state.active_concept == "mug"
    assert state.concept_match is False
    state.settings.concept_threshold = 0.1
    assert state.concept_match is True


def test_health_failure_alerts_until_it_recovers(state: AppState, feed: Feed) -> None:
    assert len(state.apply(feed.health("nose", "failed"))) == 1
    assert state.apply(feed.health("nose", "failed")) == []
    assert state.apply(feed.health("nose", "degraded")) == []
    assert state.health["nose"]["status"] == "degraded"
    [alert] = state.apply(feed.health("nose", "failed"))
    assert (alert.kind, alert.severity) == ("station", "warning")


def test_duplicate_seq_is_ignored(state: AppState, feed: Feed) -> None:
    message = feed.bird("Turdus merula")
    assert len(state.apply(message)) == 1
    assert state.apply(message) == []
    assert state.species_today == {"Turdus merula": 1}
    assert state.last_seq == message.seq


def test_a_reset_station_store_restarts_the_seqs(state: AppState, feed: Feed) -> None:
    for _ in range(5):
        state.apply(feed.nose())
    info = protocol.decode_message(
        protocol.encode_message("station_info", 1, {"station_name": "kitchen", "newest_seq": 1})
    )
    state.apply(info)
    assert state.station_name == "kitchen" and state.last_seq == 0
    assert state.apply(Feed().nose(NOON + 60)) == [] and state.last_seq == 1


def test_listeners_are_told_of_every_change_and_once_per_batch(state: AppState, feed: Feed) -> None:
    calls: list[int] = []
    alerted: list[Alert] = []
    state.add_listener(lambda: calls.append(1))
    state.add_alert_listener(alerted.append)
    state.apply(feed.nose())
    state.set_connection(ConnectionState.SCANNING)
    assert len(calls) == 2
    with state.batch():
        state.apply(feed.food("fresh"))
        state.apply(feed.food("spoiled"))
    assert len(calls) == 3
    assert [a.title for a in alerted] == ["Food is spoiled"]
    state.dismiss_banner()
    assert state.banner is None and len(calls) == 4


# ------------------------------------------------------------------------------ persistence


def test_state_round_trips_through_a_file(
    tmp_path: Path, state: AppState, feed: Feed, clock: FakeClock
) -> None:
    state.apply(feed.food("fresh"))
    state.apply(feed.food("spoiling"))
    state.apply(feed.nose())
    state.apply(feed.bird("Turdus merula"))
    state.apply(feed("concept", ts=NOON, concept="cat", score=0.9, focus_box=[0, 0, 1, 1]))
    state.apply(feed.health("nose", "failed"))
    path = tmp_path / "state.json"
    state.save(path)

    restored = AppState.load(path, now=clock)

    def plain(s: AppState) -> Any:
        return json.loads(json.dumps(s.to_dict()))

    assert plain(restored) == plain(state)
    assert restored.nose_history == state.nose_history  # tuples again, as the charts expect
    assert restored.last_seq == state.last_seq == feed.seq
    assert restored.alerts == state.alerts
    # What it remembers still drives the rules: no repeated alerts for old news.
    assert restored.apply(feed.food("spoiling")) == []
    assert restored.apply(feed.bird("Turdus merula")) == []
    assert restored.apply(feed.health("nose", "failed")) == []
    assert restored.species_today == {"Turdus merula": 2}


def test_a_bad_state_file_gives_an_empty_state(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "state.json"
    path.write_text('{"format": 1, "last_seq": "many"}')
    with caplog.at_level(logging.WARNING):
        state = AppState.load(path)
    assert state.last_seq == 0 and "cannot restore" in caplog.text


# --------------------------------------------------------------------------------- settings


def test_settings_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    settings = Settings(temperature_unit="F", concept_threshold=0.55, alert_new_species=False)
    settings.save(path)
    assert Settings.load(path) == settings
    assert settings.format_temperature(5.0) == "41.0 °F"
    assert Settings.load(tmp_path / "missing.json") == Settings()


@pytest.mark.parametrize(
    "content",
    ["not json {", "[1, 2]", "", '{"temperature_unit": "K", "concept_threshold": 7}'],
)
def test_a_bad_settings_file_gives_defaults_and_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: str
) -> None:
    path = tmp_path / "settings.json"
    path.write_text(content)
    with caplog.at_level(logging.WARNING):
        assert Settings.load(path) == Settings()
    assert "settings" in caplog.text


def test_good_settings_survive_next_to_a_bad_one(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text('{"temperature_unit": "F", "concept_threshold": "high", "extra": 1}')
    assert Settings.load(path) == Settings(temperature_unit="F")
