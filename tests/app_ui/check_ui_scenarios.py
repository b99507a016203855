"""Scenarios a user lives through, end to end: station events over the (virtual) BLE link,
into the app's state, onto the screen.

The station is ``mobile_app.demo.simulated_station``: the real link core and GATT server on a
Bumble virtual link, and the app's real ``StationConnection``. Only the radio is virtual.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ui_support import BIRDS, NOW, Clock, render

from device.events import BirdDetection, ConceptScore, FoodReading, FoodVerdict, Trend
from mobile_app.android import Notifier
from mobile_app.demo import simulated_station
from mobile_app.state import Alert, AppState, ConnectionState, Settings

Snap = Callable[[Any, str], Path]


async def until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.01)


def bird(ts: float, species: str, confidence: float) -> BirdDetection:
    return BirdDetection(
        ts=ts,
        start=ts - 4.5,
        end=ts,
        species=species,
        confidence_max=confidence,
        confidence_mean=confidence - 0.1,
        clip=f"{int(ts)}.flac",
    )


def concept(ts: float, name: str, score: float) -> ConceptScore:
    return ConceptScore(
        ts=ts, concept=name, score=score, focus_box=(0.2, 0.45, 0.3, 0.3), fps=12.0, drops=0
    )


def food(ts: float, freshness: float) -> FoodReading:
    label = (
        FoodVerdict.FRESH
        if freshness >= 0.6
        else FoodVerdict.SPOILING
        if freshness >= 0.3
        else FoodVerdict.SPOILED
    )
    return FoodReading(
        ts=ts,
        label=label,
        confidence=0.9,
        probabilities={"excellent": freshness, "spoiled": 1 - freshness},
        freshness=freshness,
        trend=Trend.WORSENING,
        freshness_per_hour=-0.08,
        warming_up=False,
    )


@pytest.mark.asyncio
async def test_food_going_from_fresh_to_spoiled_raises_the_alert(
    ui: Callable[..., Any], snap: Snap, clock: Clock
) -> None:
    state = AppState(Settings(), now=clock)
    posted: list[dict[str, Any]] = []
    notifier = Notifier(system=True)  # as on Android: each alert also becomes a notification
    notifier._post = lambda **fields: posted.append(fields)
    state.add_alert_listener(notifier)
    # Every event is this test's, stamped on the fixed clock, so alert.png is reproducible.
    async with simulated_station(
        state, nose=False, simulate_eye_and_ear=False, follow_station_clock=False
    ) as sim:
        await until(lambda: state.connection is ConnectionState.CONNECTED)
        root = ui(state)
        for minutes, species, confidence in BIRDS:  # the birders' morning, over the link
            sim.emit(bird(NOW - minutes * 60, species, confidence))
        sim.emit(concept(NOW - 5, "red teapot", 0.64))
        for k in range(8):  # from 8 h ago: fresh, slowly losing freshness
            sim.emit(food(NOW - 8 * 3600 + k * 1800, 0.92 - 0.03 * k))
        await until(lambda: len(state.food_history) == 8 and state.concept is not None)
        state.dismiss_banner()  # the birds' "new today" alerts: seen
        root.refresh()
        render()
        assert root.home.food.verdict.text == "Fresh"
        assert not root.banner.shown

        for k in range(8):  # then it turns: spoiling, and at last spoiled
            sim.emit(food(NOW - 3.5 * 3600 + k * 1800, 0.62 - 0.07 * k))
        await until(lambda: state.food is not None and state.food["label"] == "spoiled")
        path = snap(root, "alert")

        assert root.banner.shown
        assert root.banner.title.text == "Food is spoiled"
        assert root.banner.severity == "danger"
        assert root.home.food.verdict.text == "Spoiled"
        assert root.home.food.badge.look.shape == "octagon"
        food_alerts = [p["title"] for p in posted if p["title"].startswith("Food")]
        assert food_alerts == ["Food is spoiling", "Food is spoiled"]
        assert path.stat().st_size > 0

        root.banner.close_button.dispatch("on_release")  # the person read it
        root.refresh()
        render()
        assert state.banner is None
        assert not root.banner.shown


@pytest.mark.asyncio
async def test_choosing_a_concept_on_an_unpaired_link_says_to_pair(
    ui: Callable[..., Any], snap: Snap
) -> None:
    state = AppState(Settings())
    async with simulated_station(state, nose=False, pair=False) as sim:
        await until(lambda: state.connection is ConnectionState.CONNECTED)
        await until(lambda: state.concept is not None)  # live events flow unpaired
        state.concepts = ["a cat on the sofa", "a person at the door", "an empty fruit bowl"]
        root = ui(state, selector=sim.connection)
        root.show("concepts")
        button = next(b for b in root.concepts.list.children if "person" in b.text)
        button.dispatch("on_release")
        assert root._concept_task is not None
        await root._concept_task
        snap(root, "concept_refused")

        assert root.concepts.message is not None
        look, text = root.concepts.message
        assert look.tone == "warn"
        assert "paired" in text
        assert sim.eye_and_ear.selected == []  # the station did not switch
        assert state.link_problem is not None
        assert "Not paired" in root.notice_strip.text

        # Settings says this phone is not paired, and how to pair it with the passkey.
        assert state.bonded is False
        root.show("settings")
        root.refresh()
        render()
        assert "Not paired" in root.settings.bonded.text
        assert "senses link pair" in root.settings.pairing_help.text
        assert "passkey" in root.settings.pairing_help.text
        snap(root, "settings_not_paired")


@pytest.mark.asyncio
async def test_choosing_a_concept_on_a_paired_link_switches_it(ui: Callable[..., Any]) -> None:
    state = AppState(Settings())
    async with simulated_station(state, nose=False) as sim:
        await until(lambda: state.connection is ConnectionState.CONNECTED)
        await until(lambda: len(state.concepts) == 3)  # backfilled from the station's history
        root = ui(state, selector=sim.connection)
        assert state.bonded is True  # the station answered the backfill
        root.show("settings")
        root.refresh()
        assert "Paired with the station" in root.settings.bonded.text
        root.show("concepts")
        root.choose_concept("an empty fruit bowl")
        assert root._concept_task is not None
        await root._concept_task
        root.refresh()
        render()

        assert sim.eye_and_ear.selected == ["an empty fruit bowl"]
        look, text = root.concepts.message or (None, "")
        assert look is not None and look.tone == "good"
        assert "fruit bowl" in text
        assert state.active_concept == "an empty fruit bowl"
        active = [b for b in root.concepts.list.children if b.selected]
        assert len(active) == 1 and "fruit bowl" in active[0].text


@pytest.mark.asyncio
async def test_new_food_on_the_nose_screen_restarts_the_baseline(
    ui: Callable[..., Any], snap: Snap
) -> None:
    """The button on the Nose screen, over the simulated station's Bumble link, to the real
    demo nose (which marked the recording's beef in at its start)."""
    state = AppState(Settings())
    async with simulated_station(state, simulate_eye_and_ear=False) as sim:
        await until(lambda: state.connection is ConnectionState.CONNECTED)
        await until(
            lambda: state.food is not None and state.food.get("food_state") == "ready",
            timeout_s=30,
        )
        root = ui(state, selector=sim.connection)
        root.show("nose")
        root.nose.food_card.button.dispatch("on_release")
        assert root._food_task is not None
        await root._food_task
        await until(
            lambda: state.food is not None and state.food.get("food_state") == "baseline",
            timeout_s=10,
        )
        root.refresh()
        render()
        snap(root, "nose_new_food")

        look, text = root.nose.food_answer or (None, "")
        assert look is not None and look.tone == "good"
        assert "starts over" in text  # the demo had marked food in already
        assert "Taking the baseline" in root.nose.food_card.line.text
        assert not root.nose.food_card.button.disabled
        root.show("home")
        assert root.home.food.verdict.text == "Taking the baseline"


def test_new_food_without_a_station_says_to_connect(
    day_state: AppState, ui: Callable[..., Any]
) -> None:
    day_state.set_connection(ConnectionState.DISCONNECTED)
    root = ui(day_state)
    root.show("nose")
    root.nose.food_card.button.dispatch("on_release")
    look, text = root.nose.food_answer or (None, "")
    assert look is not None and look.tone == "warn" and "connect" in text.lower()


def test_disconnected_station_shows_how_long_and_alerts(
    day_state: AppState, clock: Clock, ui: Callable[..., Any], snap: Snap
) -> None:
    # The day's data is from NOW - 25 min: then the station went out of reach.
    day_state.set_connection(ConnectionState.DISCONNECTED)
    clock.t = NOW + 25 * 60
    day_state.schedule_reconnect(clock.t + 12)
    alerts: list[Alert] = day_state.tick()
    root = ui(day_state)
    snap(root, "disconnected")

    assert [a.kind for a in alerts] == ["disconnected"]
    assert root.banner.shown and "out of reach" in root.banner.title.text
    assert "Disconnected" in root.status_bar.link.text
    assert "retry in 12 s" in root.status_bar.link.text
    assert root.home.food.age.text.startswith("last known")
