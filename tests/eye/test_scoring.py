"""Live scoring on real photographs: the shipped backbone and the shipped "cats" concept.

The concept was trained on cat.jpg, cat_train_0.jpg and chelsea.jpg (models/concepts); the
photos used here as positives (cat_test_0) were not on its board.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from device.errors import ConfigError
from device.eye.backbone import Backbone
from device.eye.concept import Concept, load_concept
from device.eye.crops import mbs_crops
from device.eye.images import load_image
from device.eye.scoring import FrameScorer, Trigger, scored_square, shrink_for_crops
from device.eye.settings import DEFAULT_CONCEPTS_DIR, EyeConfig
from device.eye.sources import synthetic_stills_dir

NOT_CATS = ("dog_test_0", "coffee", "hot_dog", "parrot", "gravel")


@pytest.fixture(scope="module")
def cats(backbone: Backbone) -> Concept:
    return load_concept(DEFAULT_CONCEPTS_DIR / "cats.cav", backbone)


def _photo(name: str) -> np.ndarray:
    return load_image(synthetic_stills_dir() / f"{name}.jpg")


def _config(**changes: object) -> EyeConfig:
    return EyeConfig.model_validate({"concepts": [], **changes})


def _mosaic(names: list[str], cell_px: int = 224) -> np.ndarray:
    """A 3×3 grid of photographs (row-major), each squashed into one cell."""
    cells = [cv2.resize(_photo(n), (cell_px, cell_px), interpolation=cv2.INTER_AREA) for n in names]
    rows = [np.concatenate(cells[r * 3 : r * 3 + 3], axis=1) for r in range(3)]
    return np.concatenate(rows, axis=0)


def test_an_unseen_cat_scores_high_and_other_things_low(backbone: Backbone, cats: Concept) -> None:
    scores = {}
    for name in ("cat_test_0", *NOT_CATS):
        scorer = FrameScorer(backbone, [cats], _config(crop_mode="none"))
        (reading,) = scorer.score(_photo(name), 0.0)
        scores[name] = reading.score
    print("live full-frame scores:", {k: round(v, 3) for k, v in scores.items()})
    assert scores["cat_test_0"] > 0.5
    assert max(scores[n] for n in NOT_CATS) < 0.5


def test_the_focus_box_finds_a_cat_in_a_grid_of_other_things(
    backbone: Backbone, cats: Concept
) -> None:
    names = ["coffee", "hot_dog", "parrot", "gravel", "brick", "grass", "rocket", "sunflower"]
    names.insert(8, "cat_test_0")  # bottom-right cell: centre (5/6, 5/6)
    frame = _mosaic(names)
    scorer = FrameScorer(backbone, [cats], _config(crop_mode="all"))
    (reading,) = scorer.score(frame, 0.0)
    x, y, w, h = reading.focus_box
    print(
        f"focus box {reading.focus_box} score {reading.focus_score:.3f}, frame {reading.score:.3f}"
    )
    assert x <= 5 / 6 <= x + w and y <= 5 / 6 <= y + h
    assert w <= 0.75  # a crop, not the whole mosaic
    assert reading.focus_score > reading.frame_score


def test_several_concepts_share_one_backbone_pass(backbone: Backbone, cats: Concept) -> None:
    frame = _photo("cat_test_0")
    anti = dataclasses.replace(cats, name="not cats", vector=-cats.vector)
    alone = FrameScorer(backbone, [cats], _config(crop_mode="all"))
    together = FrameScorer(backbone, [cats, anti], _config(crop_mode="all"))
    (cat_alone,) = alone.score(frame, 0.0)
    cat_together, anti_together = together.score(frame, 0.0)
    assert together.images_embedded == alone.images_embedded == len(mbs_crops())
    assert cat_together.focus_box == cat_alone.focus_box
    assert cat_together.score == pytest.approx(cat_alone.score, abs=1e-5)
    assert anti_together.concept == "not cats" and anti_together.score < cat_together.score


def test_round_robin_scores_crops_over_several_frames(backbone: Backbone, cats: Concept) -> None:
    frame = _photo("pets")
    scorer = FrameScorer(backbone, [cats], _config(crop_mode="round_robin", crops_per_frame=4))
    scorer.score(frame, 0.0)
    assert scorer.images_embedded == 5
    assert sum(s is not None for s in scorer.crop_scores("cats")) == 5
    for n in range(1, 4):
        scorer.score(frame, n / 10)
    assert all(s is not None for s in scorer.crop_scores("cats"))
    assert scorer.schedule.maps_completed == 1


def test_scores_are_smoothed_across_frames(backbone: Backbone, cats: Concept) -> None:
    cat, dog = (_photo(n) for n in ("cat_test_0", "dog_test_0"))
    smooth = FrameScorer(backbone, [cats], _config(crop_mode="none", smoothing=0.3))
    raw = FrameScorer(backbone, [cats], _config(crop_mode="none", smoothing=1.0))
    (on_cat,) = smooth.score(cat, 0.0)
    raw.score(cat, 0.0)
    (after_smooth,) = smooth.score(dog, 0.1)
    (after_raw,) = raw.score(dog, 0.1)
    # One dog frame after a cat: the raw meter drops at once, the smoothed one keeps 70 %.
    assert after_raw.score == pytest.approx(after_raw.frame_score)
    assert after_smooth.score == pytest.approx(
        0.3 * after_smooth.frame_score + 0.7 * on_cat.score, abs=1e-6
    )
    assert after_smooth.score > after_raw.score + 0.3


def test_the_trigger_fires_once_rearms_with_hysteresis_and_respects_the_cooldown() -> None:
    trigger = Trigger(threshold=0.7, hysteresis=0.1, cooldown_s=10.0)
    fired = [trigger.update(s, t) for t, s in enumerate([0.5, 0.75, 0.9, 0.65, 0.72])]
    assert fired == [False, True, False, False, False]  # 0.65 is inside the hysteresis band
    assert not trigger.update(0.55, 5.0)  # re-armed ...
    assert not trigger.update(0.8, 6.0)  # ... but 5 s after the last AI crop: cooling down
    assert trigger.update(0.8, 11.0)  # cooled down and still above: fires


def test_frames_are_shrunk_only_when_it_pays() -> None:
    frame = np.zeros((720, 1280, 3), np.uint8)
    assert shrink_for_crops(frame, 448).shape == (448, 796, 3)
    assert shrink_for_crops(frame, None) is frame
    small = np.zeros((480, 640, 3), np.uint8)
    assert shrink_for_crops(small, 448) is small  # 480 → 448 costs more than it saves


def test_the_focus_box_is_the_square_the_backbone_saw() -> None:
    assert scored_square((0.0, 0.0, 1.0, 1.0), 640, 480) == (0.125, 0.0, 0.75, 1.0)


def test_bad_settings_are_refused(backbone: Backbone, cats: Concept) -> None:
    with pytest.raises(ConfigError, match="no concept"):
        FrameScorer(backbone, [], _config())
    with pytest.raises(ConfigError, match="share a name"):
        FrameScorer(backbone, [cats, cats], _config())
    scorer = FrameScorer(backbone, [cats], _config(hysteresis=0.2))
    with pytest.raises(ConfigError, match="hysteresis"):
        scorer.set_threshold(0.15)
    with pytest.raises(ConfigError, match="unknown concept"):
        scorer.set_active(["dogs"])
