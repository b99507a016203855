"""Merging overlapping windows into detections; thresholds and the allow-list."""

from __future__ import annotations

import pytest

from device.ear.detections import DetectionMerger, Thresholds, merge_windows
from device.ear.detector import WindowResult

HOP_S = 0.48
WINDOW_S = 0.975


def windows(confidences: list[dict[str, float]]) -> list[WindowResult]:
    return [
        WindowResult(i * HOP_S, i * HOP_S + WINDOW_S, max(c.values(), default=0.0), c)
        for i, c in enumerate(confidences)
    ]


def test_overlapping_hits_become_one_detection_with_max_and_mean() -> None:
    song = windows([{"Great Tit": c} for c in (0.1, 0.6, 0.9, 0.7, 0.1, 0.1, 0.1, 0.1)])
    (detection,) = merge_windows(song, Thresholds(0.5))
    assert detection.species == "Great Tit"
    assert detection.start_s == pytest.approx(1 * HOP_S)
    assert detection.end_s == pytest.approx(3 * HOP_S + WINDOW_S)
    assert detection.confidence_max == pytest.approx(0.9)
    assert detection.confidence_mean == pytest.approx((0.6 + 0.9 + 0.7) / 3)
    assert detection.windows == 3


def test_a_short_pause_joins_and_a_long_one_splits() -> None:
    hit, miss = {"Wren": 0.9}, {"Wren": 0.0}
    # One window missing (0.48 s < gap 1.0) joins; five missing windows split.
    calls = windows([hit, miss, hit] + [miss] * 5 + [hit])
    detections = merge_windows(calls, Thresholds(0.5), merge_gap_s=1.0)
    assert [d.windows for d in detections] == [2, 1]


def test_two_species_at_once_are_two_detections() -> None:
    both = windows([{"Wren": 0.8, "Robin": 0.7}] * 3)
    assert sorted(d.species for d in merge_windows(both, Thresholds(0.5))) == ["Robin", "Wren"]


def test_per_species_thresholds_and_allow_list() -> None:
    calls = windows([{"Wren": 0.4, "Robin": 0.4, "Owl": 0.95}] * 2)
    thresholds = Thresholds.build(0.5, {"wren": 0.3}, [])
    assert [d.species for d in merge_windows(calls, thresholds)] == ["Owl", "Wren"]
    only_wrens = Thresholds.build(0.5, {"Wren": 0.3}, ["WREN"])
    assert [d.species for d in merge_windows(calls, only_wrens)] == ["Wren"]


def test_min_windows_drops_one_window_blips() -> None:
    blip_then_song = windows([{"Owl": 0.9}] + [{"Owl": 0.0}] * 5 + [{"Owl": 0.9}] * 3)
    merger = DetectionMerger(Thresholds(0.5), min_windows=2)
    found = [d for w in blip_then_song for d in merger.add(w)] + merger.flush()
    assert [d.windows for d in found] == [3]
    assert merger.rejected_short == 1


def test_an_endless_song_is_cut_into_bounded_detections() -> None:
    chorus = windows([{"Robin": 0.9}] * 100)  # 48 s of song
    detections = merge_windows(chorus, Thresholds(0.5), max_detection_s=10.0)
    assert len(detections) >= 4
    assert all(d.end_s - d.start_s <= 10.0 + 1e-9 for d in detections)


def test_detections_close_as_soon_as_no_window_can_join() -> None:
    merger = DetectionMerger(Thresholds(0.5), merge_gap_s=1.0)
    stream = windows([{"Wren": 0.9}] + [{"Wren": 0.0}] * 6)
    closed_at = [i for i, w in enumerate(stream) if merger.add(w)]
    # The hit window ends at 0.975 s; the first window starting after 1.975 s is window 5.
    assert closed_at == [5]
    assert merger.flush() == []


def test_a_catch_all_overlapping_a_named_species_is_the_same_bird() -> None:
    # The first notes of a song heard as "other bird", the rest as "Great Tit": one detection.
    song = windows(
        [{"other bird": 0.9, "Great Tit": 0.2}]
        + [{"other bird": 0.1, "Great Tit": 0.95}] * 4
        + [{"other bird": 0.0, "Great Tit": 0.0}] * 6
        + [{"other bird": 0.8, "Great Tit": 0.1}] * 2  # a bird the head cannot name, later
    )
    merger = DetectionMerger(Thresholds(0.5), catch_all=["other bird"])
    found = [d for w in song for d in merger.add(w)] + merger.flush()
    assert [d.species for d in found] == ["Great Tit", "other bird"]
    assert found[0].start_s == 0.0  # the song starts with its first (unnamed) notes
    assert found[1].start_s == pytest.approx(11 * HOP_S)
    assert merger.suppressed == 1


def test_a_catch_all_waits_for_a_longer_named_detection_that_overlaps_it() -> None:
    song = windows(
        [{"other bird": 0.9, "Wren": 0.9}]
        + [{"other bird": 0.0, "Wren": 0.9}] * 10
        + [{"other bird": 0.0, "Wren": 0.0}] * 6
    )
    merger = DetectionMerger(Thresholds(0.5), catch_all=["other bird"])
    emitted = [(i, d.species) for i, w in enumerate(song) for d in merger.add(w)]
    # The Wren's last window ends at 5.775 s: window 15 (7.2 s) is the first that cannot join.
    assert emitted == [(15, "Wren")]
    assert merger.flush() == [] and merger.suppressed == 1
