"""Each screen rendered offscreen with a day of realistic data (docs/screenshots/*.png),
and what a person would check on it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ui_support import render

from mobile_app.state import AppState, ConnectionState, Settings

Snap = Callable[[Any, str], Path]
Ui = Callable[..., Any]


def texts(widget: Any) -> list[str]:
    """Every label's text under ``widget`` (markup included)."""
    return [w.text for w in widget.walk() if hasattr(w, "text") and isinstance(w.text, str)]


def test_home_answers_food_concept_and_birds_at_a_glance(
    day_state: AppState, ui: Ui, snap: Snap
) -> None:
    root = ui(day_state)
    snap(root, "home")

    food = root.home.food
    assert food.verdict.text == "Spoiling"
    assert food.badge.look.shape == "triangle"  # not colour alone
    assert "Worsening" in food.trend.text
    assert {s.label for s in food.chart.series} == {"fresh", "spoiling"}
    assert root.home.concept.gauge.value == 0.82
    assert "In view" in root.home.concept.verdict.text
    assert root.home.concept.frame.box == (0.52, 0.3, 0.26, 0.34)
    assert root.home.birds.summary.text == "today: 22 calls, 6 species"
    newest = root.home.birds.recent.children[-1]  # Kivy lists children last-added first
    assert any("Eurasian Blackbird" in t for t in texts(newest))
    assert "Connected" in root.status_bar.link.text


def test_nose_shows_sensors_climate_and_gases_with_zoom(
    day_state: AppState, ui: Ui, snap: Snap
) -> None:
    root = ui(day_state)
    root.show("nose")
    snap(root, "nose")
    root.nose.scroll.scroll_y = 0  # the gases, further down
    snap(root, "nose_gases")

    chips = texts(root.nose.sensors)
    assert sum("Ready" in t for t in chips) == 8
    assert sum("Warming up" in t for t in chips) == 1
    assert list(root.nose.gas_cards) == ["NH3", "H2S", "alcohol"]
    chart = root.nose.temperature.chart
    assert chart.end - chart.start == 3 * 3600
    root.nose.zoom_buttons[1800.0].dispatch("on_release")
    render()
    assert chart.end - chart.start == 1800
    assert len(chart.series[0].points) == 31  # a reading a minute
    assert root.nose.zoom_buttons[1800.0].selected


def test_birds_chart_by_hour_and_history(day_state: AppState, ui: Ui, snap: Snap) -> None:
    root = ui(day_state)
    root.show("birds")
    snap(root, "birds")

    assert sum(sum(hours) for hours in root.birds.chart.counts.values()) == 22
    assert len(root.birds.legend.children) == 6
    assert len(root.birds.history.children) == 22
    newest = root.birds.history.children[-1]  # Kivy lists children last-added first
    assert any("Eurasian Blackbird" in t for t in texts(newest))
    assert any("[i]Turdus merula[/i]" in t for t in texts(newest))  # both names
    assert any("96% sure" in t for t in texts(newest))
    assert any("Parus major" in t for t in texts(root.birds.legend))
    assert root.birds.model.text == "Species named by BirdNET v2.4"


def test_concepts_lists_the_station_s_concepts(day_state: AppState, ui: Ui, snap: Snap) -> None:
    root = ui(day_state)
    root.show("concepts")
    snap(root, "concepts")

    buttons = root.concepts.list.children[::-1]
    assert [b.text.split("  ", 1)[1].split("   ")[0] for b in buttons] == [
        "red teapot",
        "open window",
        "cat on the sofa",
        "sketchbook page",
    ]
    assert [b.selected for b in buttons] == [True, False, False, False]
    assert not any(b.disabled for b in buttons)


def test_settings_apply_at_once_and_are_saved(
    day_state: AppState, ui: Ui, snap: Snap, tmp_path: Path
) -> None:
    saved: list[Settings] = []
    root = ui(day_state, on_settings_changed=saved.append)
    root.show("settings")
    snap(root, "settings")

    root.settings.switches["alert_new_species"].dispatch("on_release")
    root.settings.unit_buttons["F"].dispatch("on_release")
    assert day_state.settings.alert_new_species is False
    assert day_state.settings.temperature_unit == "F"
    assert len(saved) == 2
    assert root.settings.switches["alert_new_species"].text == "Off"
    root.show("nose")
    assert root.nose.temperature.value.text.endswith("°F")


def test_first_launch_while_looking_for_the_station(
    empty_state: AppState, ui: Ui, snap: Snap
) -> None:
    empty_state.set_connection(ConnectionState.SCANNING)
    root = ui(empty_state)
    snap(root, "empty")

    assert "Looking for the station" in root.status_bar.link.text
    assert root.home.food.verdict.text == "No verdict yet"
    assert root.home.concept.gauge.value is None
    assert any("No birds heard yet" in t for t in texts(root.home.birds))
    for name in ("nose", "birds", "concepts", "settings"):
        root.show(name)  # every screen has something sensible to say with no data
        render(2)
    assert any("not listed its concepts" in t for t in texts(root.concepts))
    assert any("Connect to the station" in t for t in texts(root.concepts))
