"""Honest without BirdNET: the head names no species it was never taught; unknown birds are "Bird".

The figure the report quotes (models/birds/report.md, "Open set") is measured here on the
recordings the head never trained on (daytime Jura forest: chiffchaff, blackbird, ...; a
ruffed grouse drumming): at most 10 % of the station's detections may carry a species name.
"""

from __future__ import annotations

import numpy as np
import pytest
from ear_audio import AUDIO, read_mono

from device.config import Config
from device.ear.cli import scan_waveform
from device.ear.detections import DetectionMerger, Thresholds
from device.ear.detector import PRESENCE_LABEL, Detector, WindowResult
from device.ear.openset import OpenSetRule
from training.birds.dataset import DEFAULT_DATA_DIR
from training.birds.openset import MAX_NAMED_SHARE, unseen_detections


@pytest.fixture(scope="module")
def detector() -> Detector:
    loaded, problem = Detector.load(Config().inference.models_dir, "yamnet", "birds")
    assert problem is None and loaded.head is not None
    assert loaded.head.open_set is not None  # the shipped head carries its rule
    return loaded


def test_on_species_it_never_saw_at_most_a_tenth_of_detections_carry_a_name(
    detector: Detector,
) -> None:
    figures = unseen_detections(detector, DEFAULT_DATA_DIR, Config().ear)
    assert figures["detections"] >= 5  # the birds are still reported, as "Bird"
    assert figures["named_share"] <= MAX_NAMED_SHARE, figures


def test_without_the_rule_the_head_would_misname_most_of_them(detector: Detector) -> None:
    assert detector.head is not None
    rule = detector.head.open_set
    object.__setattr__(detector.head, "open_set", None)
    try:
        figures = unseen_detections(detector, DEFAULT_DATA_DIR, Config().ear)
    finally:
        object.__setattr__(detector.head, "open_set", rule)
    assert figures["named_share"] > 0.5  # what the rule is for (0.7 when it was written)


def test_great_tits_it_was_taught_keep_their_name(detector: Detector) -> None:
    for name in ("2021-B32-0415_05-9", "2021-B32-0415_05-11", "2021-SW83-0418_04-79"):
        waveform, rate = read_mono(AUDIO / "great_tit" / f"{name}.wav")
        found = scan_waveform(waveform, rate, detector, Config().ear)
        assert [d.species for d in found] == ["Great Tit"], (name, found)


def test_a_name_far_from_its_centroid_goes_to_bird() -> None:
    rule = OpenSetRule(
        ("Great Tit",), np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32), margin=0.0
    )
    confidences = [{"Great Tit": 0.9, PRESENCE_LABEL: 0.1}] * 2
    out = rule.apply(np.array([[1.0, 0.2], [0.2, 1.0]]), confidences, PRESENCE_LABEL)
    assert out[0] == {"Great Tit": 0.9, PRESENCE_LABEL: 0.1}
    assert out[1] == {"Great Tit": 0.0, PRESENCE_LABEL: 0.9}


def test_a_name_heard_in_one_window_only_is_reported_as_bird() -> None:
    merger = DetectionMerger(Thresholds(0.5), catch_all=[PRESENCE_LABEL], min_named_windows=2)
    hop, length = 0.48, 0.975
    rows = (
        [{"Great Tit": 0.9}] * 3  # a song: three windows
        + [{}] * 6
        + [{"Great Tit": 0.8}]  # one stray window among unknown birds
        + [{}] * 6
    )
    found = []
    for i, confidences in enumerate(rows):
        found += merger.add(WindowResult(i * hop, i * hop + length, 0.9, confidences))
    found += merger.flush()
    assert [d.species for d in found] == ["Great Tit", PRESENCE_LABEL]
    assert merger.unnamed == 1
