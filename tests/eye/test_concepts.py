"""Concept quality on real photographs: what a person making a mood board would notice.

Boards are built from the shipped photographs (``hardware/sim/images``, none of which is in the
negative bank) and tested on pictures they do not contain. Rankings and the comparison of the
two training recipes are printed (run with ``-s`` or read them under "Captured stdout").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from device.config import PROJECT_ROOT
from device.eye.backbone import Backbone, to_model_input
from device.eye.cav import (
    DEFAULT_METHOD,
    METHODS,
    Method,
    Rows,
    TrainingResult,
    embed_board,
    fit_direction,
    pad_negatives,
    train_concept,
)
from device.eye.concept import Concept, load_concept
from device.eye.images import load_board, load_image
from device.eye.negatives import NegativeBank

CATS = ["cat", "cat_train_0", "chelsea", "cat_test_0"]
HOT_DOGS = ["hot_dog", "hotdog_train_0", "hotdog_train_1", "hotdog_test_0"]
#: The other shipped photographs: neither cats nor hot dogs. coffee, rocket and astronaut are
#: left out: views of them are in the negative bank, so ranking them low would prove nothing.
OTHERS = [
    "dog_test_0",
    "dog_train_0",
    "pets",
    "bird",
    "owl",
    "parrot",
    "dragonfly",
    "sunflower",
    "face",
    "grace_hopper",
    "potato_chips",
    "brick",
    "grass",
    "gravel",
]
DEMO_CONCEPT = PROJECT_ROOT / "models" / "concepts" / "cats.cav"

pytestmark = pytest.mark.slow


def _ranking(concept: Concept, photos, names: list[str]) -> list[tuple[str, float]]:
    scores = concept.calibrated(concept.raw_scores(photos.embed(names)))
    ranked = sorted(zip(names, scores.tolist(), strict=True), key=lambda item: -item[1])
    print(f"\nconcept {concept.name!r}, unseen photographs ranked (calibrated score):")
    for rank, (name, score) in enumerate(ranked, start=1):
        print(f"  {rank:2d}. {name:16s} {score:.2f}")
    return ranked


def _train(tmp_path_factory, photos, backbone, bank, name: str, names: list[str]) -> TrainingResult:
    board = photos.board(tmp_path_factory.mktemp(name), names)
    return train_concept(load_board(board), backbone, bank, name, seed=0)


@pytest.fixture(scope="module")
def cats(tmp_path_factory, photos, backbone: Backbone, bank: NegativeBank) -> TrainingResult:
    return _train(tmp_path_factory, photos, backbone, bank, "cats", CATS[:3])


@pytest.fixture(scope="module")
def hot_dogs(tmp_path_factory, photos, backbone: Backbone, bank: NegativeBank) -> TrainingResult:
    return _train(tmp_path_factory, photos, backbone, bank, "hot dogs", HOT_DOGS[:3])


def test_a_cat_board_ranks_an_unseen_cat_above_dogs_food_birds_and_people(
    cats: TrainingResult, photos
) -> None:
    ranked = _ranking(cats.concept, photos, ["cat_test_0", *HOT_DOGS, *OTHERS])
    assert ranked[0][0] == "cat_test_0"
    assert ranked[0][1] > 0.5  # the unseen cat is called a cat...
    assert all(score < 0.5 for name, score in ranked[1:] if name in ("dog_test_0", "dog_train_0"))


def test_a_hot_dog_board_ranks_an_unseen_hot_dog_above_cats_dogs_and_other_food(
    hot_dogs: TrainingResult, photos
) -> None:
    ranked = _ranking(hot_dogs.concept, photos, ["hotdog_test_0", *CATS, *OTHERS])
    assert ranked[0][0] == "hotdog_test_0"
    assert ranked[0][1] > 0.5


def test_calibrated_scores_mean_the_same_for_different_concepts(
    cats: TrainingResult, hot_dogs: TrainingResult, photos
) -> None:
    # Raw cosines of the two concepts live on different scales; after calibration an unseen
    # member scores high and a typical unrelated photo low for both, around the same 0.5 line.
    for result, member in ((cats, "cat_test_0"), (hot_dogs, "hotdog_test_0")):
        concept = result.concept
        raw = concept.raw_scores(photos.embed([member, *OTHERS]))
        calibrated = concept.calibrated(raw)
        print(
            f"\n{concept.name}: raw member {raw[0]:+.3f}, raw others median "
            f"{np.median(raw[1:]):+.3f}; calibrated member {calibrated[0]:.2f}, others median "
            f"{np.median(calibrated[1:]):.2f}, 0.5 at raw {concept.calibration.midpoint:+.3f}"
        )
        assert calibrated[0] > 0.8
        assert np.median(calibrated[1:]) < 0.2


def test_real_concepts_pass_the_quality_check(
    cats: TrainingResult, hot_dogs: TrainingResult
) -> None:
    for result in (cats, hot_dogs):
        report = result.report
        print(
            f"\n{report.name}: cv accuracy {report.cv_accuracy:.2f}, cv AUC {report.cv_auc:.2f}, "
            f"p {report.p_value:.2g} (random concepts' AUC {report.null_auc_mean:.2f}), "
            f"stability {report.stability:.2f}"
        )
        assert report.accepted, report.refused_because
        assert report.p_value < 0.05
        assert report.cv_accuracy >= 0.8
        assert report.stability > 0.8
        assert result.concept.quality["p_value"] == report.p_value


@pytest.mark.parametrize(
    "names",
    [["sunflower", "grace_hopper", "rocket", "potato_chips"], ["dragonfly", "face", "coffee"]],
)
def test_a_board_of_unrelated_pictures_is_refused(
    tmp_path: Path, photos, backbone: Backbone, bank: NegativeBank, names: list[str]
) -> None:
    result = train_concept(load_board(photos.board(tmp_path, names)), backbone, bank, "mixed")
    report = result.report
    print(f"\n{names}: cv accuracy {report.cv_accuracy:.2f}, p {report.p_value:.2g}")
    assert not report.accepted
    assert "random pictures" in report.refused_because or "chance" in report.refused_because


BIRDS = ["bird", "owl", "parrot"]
DOGS = ["dog_test_0", "dog_train_0", "pets"]
ALL_PHOTOS = [*CATS, *HOT_DOGS, *OTHERS]


def _held_out(
    family: list[str], held_out: str, method: Method, photos, backbone, bank, tmp_path: Path
) -> tuple[float, float]:
    """Train on ``family`` minus ``held_out``; test on it against every photo outside the family.

    Returns the AUC of the cosine ranking (threshold-free) and the balanced accuracy of the
    trained classifier's own decision (what a yes/no trigger would do).
    """
    names = [n for n in family if n != held_out]
    board = load_board(photos.board(tmp_path / f"{method}-{held_out}", names))
    positives, user_negatives = embed_board(board, backbone)
    negatives = pad_negatives(positives, user_negatives, bank, method, np.random.default_rng(0))
    fit = fit_direction(Rows.concat(positives, negatives), method, seed=0)
    outsiders = [n for n in ALL_PHOTOS if n not in family]
    x = photos.embed([held_out, *outsiders])
    scores = x @ fit.direction
    said_yes = fit.decide(x)
    auc = float(np.mean(scores[0] > scores[1:]))
    balanced_accuracy = (float(said_yes[0]) + float(np.mean(~said_yes[1:]))) / 2
    return auc, balanced_accuracy


def test_our_default_recipe_beats_mood_board_search_on_unseen_pictures(
    photos, backbone: Backbone, bank: NegativeBank, tmp_path: Path
) -> None:
    auc: dict[str, list[float]] = {m: [] for m in METHODS}
    accuracy: dict[str, list[float]] = {m: [] for m in METHODS}
    print("\nleave one picture out; the held-out picture vs every photo outside its family")
    print(f"  {'held out':16s} " + " ".join(f"{m + ' AUC/acc':>18s}" for m in METHODS))
    for family in (CATS, HOT_DOGS, BIRDS, DOGS):
        for held_out in family:
            cells = []
            for m in METHODS:
                a, b = _held_out(family, held_out, m, photos, backbone, bank, tmp_path)
                auc[m].append(a)
                accuracy[m].append(b)
                cells.append(f"{a:8.3f} / {b:5.2f}")
            print(f"  {held_out:16s} " + " ".join(f"{c:>18s}" for c in cells))
    mean_auc = {m: float(np.mean(v)) for m, v in auc.items()}
    mean_accuracy = {m: float(np.mean(v)) for m, v in accuracy.items()}
    print(
        f"  {'mean':16s} "
        + " ".join(f"{mean_auc[m]:8.3f} / {mean_accuracy[m]:5.2f}".rjust(18) for m in METHODS)
    )
    assert mean_auc[DEFAULT_METHOD] >= mean_auc["mbs_sgd"] - 0.01
    assert mean_accuracy[DEFAULT_METHOD] >= mean_accuracy["mbs_sgd"]
    assert mean_auc[DEFAULT_METHOD] > 0.9


def test_upweighting_a_picture_pulls_the_concept_towards_it(
    photos, backbone: Backbone, bank: NegativeBank, tmp_path: Path
) -> None:
    folder = photos.board(tmp_path / "board", CATS[:3])
    plain = load_board(folder)
    weights = folder.parent / "weights.csv"
    weights.write_text("# the calico cat matters most\ncat_train_0.jpg, upweight\n")
    weighted = load_board(folder, weights_file=weights)
    directions = []
    for board in (plain, weighted):
        positives, user_negatives = embed_board(board, backbone)
        rng = np.random.default_rng(0)
        negatives = pad_negatives(positives, user_negatives, bank, DEFAULT_METHOD, rng)
        rows = Rows.concat(positives, negatives)
        directions.append(fit_direction(rows, DEFAULT_METHOD, seed=0).direction)
    target = photos.embed(["cat_train_0"])[0]
    before, after = float(target @ directions[0]), float(target @ directions[1])
    print(f"\ncat_train_0 cosine: weight 1 {before:+.4f}, upweighted (4) {after:+.4f}")
    assert after > before


def test_opposite_pictures_push_look_alikes_down(
    tmp_path: Path, photos, backbone: Backbone, bank: NegativeBank
) -> None:
    positive = photos.board(tmp_path / "cats", CATS[:3])
    opposite = photos.board(tmp_path / "dogs", ["dog_train_0", "pets"])
    plain = train_concept(load_board(positive), backbone, bank, "cats", compare=False)
    against_dogs = train_concept(
        load_board(positive, opposite), backbone, bank, "cats not dogs", compare=False
    )
    unseen = photos.embed(["cat_test_0", "dog_test_0"])
    for result in (plain, against_dogs):
        cat, dog = result.concept.calibrated(result.concept.raw_scores(unseen))
        print(f"\n{result.concept.name}: unseen cat {cat:.2f}, unseen dog {dog:.2f}")
    cat, dog = against_dogs.concept.calibrated(against_dogs.concept.raw_scores(unseen))
    plain_dog = plain.concept.calibrated(plain.concept.raw_scores(unseen))[1]
    assert cat > 0.5 > dog
    assert dog <= plain_dog
    assert against_dogs.report.n_negative_user == 2


def test_the_shipped_demo_concept_loads_and_recognises_an_unseen_cat(
    backbone: Backbone, photos
) -> None:
    concept = load_concept(DEMO_CONCEPT, backbone)
    assert concept.name == "cats"
    assert not concept.forced
    assert concept.quality["p_value"] < 0.05
    ranked = _ranking(concept, photos, ["cat_test_0", *HOT_DOGS, *OTHERS])
    assert ranked[0][0] == "cat_test_0"
    assert ranked[0][1] > 0.5


def test_a_texture_board_ranks_unseen_parts_of_its_textures_above_photographs(
    tmp_path: Path, photos, backbone: Backbone, bank: NegativeBank
) -> None:
    # The left half of each texture photo is on the board; the right halves are held out.
    # (The same surfaces, unseen pixels: this checks texture, not memory of a picture.)
    board = tmp_path / "textures"
    board.mkdir()
    held_out = []
    for name in ("brick", "grass", "gravel"):
        pixels = load_image(photos.path(name))
        half = pixels.shape[1] // 2
        Image.fromarray(pixels[:, :half]).save(board / f"{name}_left.png")
        held_out.append(pixels[:, half:])
    result = train_concept(load_board(board), backbone, bank, "textures", compare=False)
    report = result.report
    print(
        f"\ntextures: cv accuracy {report.cv_accuracy:.2f}, AUC {report.cv_auc:.2f}, "
        f"p {report.p_value:.2g}, refused: {report.refused_because}"
    )
    concept = result.concept
    halves = concept.calibrated(
        concept.raw_scores(backbone.embed(np.stack([to_model_input(h) for h in held_out])))
    )
    names = [*CATS, *HOT_DOGS, *[n for n in OTHERS if n not in ("brick", "grass", "gravel")]]
    others = concept.calibrated(concept.raw_scores(photos.embed(names)))
    ranked = sorted(
        [*zip(["brick_right", "grass_right", "gravel_right"], halves.tolist(), strict=True),
         *zip(names, others.tolist(), strict=True)],
        key=lambda item: -item[1],
    )  # fmt: skip
    print("  " + ", ".join(f"{n} {s:.2f}" for n, s in ranked[:8]))
    assert {n for n, _ in ranked[:3]} == {"brick_right", "grass_right", "gravel_right"}
