"""Raw-audio windows for species models, BirdNET's week, and label names (no model needed)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from device.ear.species import SpeciesLabel, resolve_names, week_48
from device.ear.windows import WaveformWindower
from device.errors import UnknownSpeciesError


def _ramp(seconds: float, rate: int) -> np.ndarray:
    return (np.arange(round(seconds * rate)) % 1000 / 1000 - 0.5).astype(np.float32)


def test_windows_are_three_seconds_at_the_models_rate_and_any_chunking_gives_the_same() -> None:
    audio = _ramp(10.5, 22050)
    whole = WaveformWindower(22050, 48000, 3.0, 3.0)
    at_once = whole.push(audio) + whole.flush()
    pieces = WaveformWindower(22050, 48000, 3.0, 3.0)
    chunked = []
    for start in range(0, len(audio), 2205):  # 0.1 s blocks, as the microphone hands them
        chunked += pieces.push(audio[start : start + 2205])
    chunked += pieces.flush()
    assert [(w.start_s, w.end_s) for w in at_once] == [(0, 3), (3, 6), (6, 9), (9, 12)]
    assert all(len(w.samples) == 144000 for w in at_once)
    for a, b in zip(at_once, chunked, strict=True):
        np.testing.assert_array_equal(a.samples, b.samples)
    # the last window holds 1.5 s of audio (half a window: kept), then silence
    assert np.all(at_once[-1].samples[72000:] == 0) and np.any(at_once[-1].samples[70000:72000])


def test_a_short_tail_is_dropped_as_birdnet_does_but_a_short_stream_gets_its_window() -> None:
    windower = WaveformWindower(48000, 48000, 3.0, 3.0)
    windows = windower.push(_ramp(4.0, 48000)) + windower.flush()
    assert [(w.start_s, w.end_s) for w in windows] == [(0, 3)]  # 1 s tail < half a window
    short = WaveformWindower(48000, 48000, 3.0, 3.0)
    (only,) = short.push(_ramp(1.0, 48000)) + short.flush()
    assert (only.start_s, only.end_s) == (0, 3)


def test_overlapping_windows_step_by_window_minus_overlap() -> None:
    windower = WaveformWindower(48000, 48000, 3.0, 1.5)
    windows = windower.push(_ramp(6.0, 48000)) + windower.flush()
    assert [(w.start_s, w.end_s) for w in windows] == [(0, 3), (1.5, 4.5), (3, 6)]


@pytest.mark.parametrize(
    ("day", "week"),
    [(dt.date(2026, 1, 1), 1), (dt.date(2026, 1, 8), 2), (dt.date(2026, 5, 20), 19),
     (dt.date(2026, 5, 31), 20), (dt.date(2026, 12, 31), 48)],
)  # fmt: skip
def test_birdnets_week_has_four_weeks_a_month(day: dt.date, week: int) -> None:
    assert week_48(day) == week


def test_labels_split_scientific_and_common_and_non_species_are_marked() -> None:
    tit = SpeciesLabel.parse("Parus major_Great Tit", "scientific_common")
    assert (tit.scientific, tit.common, tit.name, tit.is_species) == (
        "Parus major",
        "Great Tit",
        "Great Tit",
        True,
    )
    human = SpeciesLabel.parse("Human vocal_Human vocal", "scientific_common")
    assert not human.is_species
    plain = SpeciesLabel.parse("Great Tit", "common")
    assert (plain.scientific, plain.common) == ("", "Great Tit")


def test_unknown_names_are_refused_with_close_matches() -> None:
    labels = [
        SpeciesLabel("Parus major", "Great Tit"),
        SpeciesLabel("Turdus merula", "Eurasian Blackbird"),
    ]
    found = resolve_names(labels, ["great tit", "Turdus merula"], "ear.allow_list", model_name="m")
    assert {k: v.common for k, v in found.items()} == {
        "great tit": "Great Tit",
        "Turdus merula": "Eurasian Blackbird",
    }
    with pytest.raises(UnknownSpeciesError) as raised:
        resolve_names(labels, ["Turdus merulla", "Dodo"], "ear.deny_list", model_name="m")
    message = str(raised.value)
    assert "ear.deny_list" in message and "'Dodo'" in message
    assert "did you mean Eurasian Blackbird (Turdus merula)?" in message
