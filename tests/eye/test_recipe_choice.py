"""The recipe is chosen per board, inside the cross-validation; boards from pictures in memory."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from device.errors import MoodBoardError
from device.eye.backbone import Backbone
from device.eye.cav import (
    CANDIDATES,
    DEFAULT_RECIPES,
    Recipe,
    Rows,
    cross_validate,
    select_recipe,
    train_from_pictures,
)
from device.eye.images import BoardPicture, board_from_pictures, load_image
from device.eye.negatives import NegativeBank


def _rows(rng: np.random.Generator, n_pos: int = 6, n_neg: int = 24, shift: float = 0.3) -> Rows:
    """Separable toy rows: 2 views per picture, positives shifted along one axis."""
    dim = 32
    x, y, group = [], [], []
    for picture in range(n_pos + n_neg):
        label = int(picture < n_pos)
        centre = rng.normal(size=dim)
        centre[0] += shift * 10 * label
        for _ in range(2):
            x.append(centre + rng.normal(scale=0.1, size=dim))
            y.append(label)
            group.append(picture)
    xs = np.asarray(x, np.float32)
    xs /= np.linalg.norm(xs, axis=1, keepdims=True)
    return Rows(xs, np.asarray(y), np.ones(len(y)), np.asarray(group))


def test_nested_cross_validation_picks_a_recipe_in_every_outer_fold() -> None:
    rows = _rows(np.random.default_rng(0))
    nested = cross_validate(rows, CANDIDATES, seed=0)
    assert len(nested.picks) == 5  # one choice per outer fold (6 pictures, 5 folds)
    assert set(nested.picks) <= set(CANDIDATES)
    assert nested.auc > 0.9 and nested.balanced_accuracy > 0.8


def test_a_single_recipe_is_plain_cross_validation() -> None:
    rows = _rows(np.random.default_rng(1))
    plain = cross_validate(rows, "mbs_sgd", seed=0)
    assert set(plain.picks) == {DEFAULT_RECIPES["mbs_sgd"]}


def test_selection_keeps_the_best_candidate_and_says_why() -> None:
    rows = _rows(np.random.default_rng(2), shift=0.05)
    selection = select_recipe(rows, CANDIDATES, seed=0)
    merits = {recipe: cv.merit for recipe, cv in selection.results}
    assert merits[selection.chosen] == max(merits.values())
    # ties go to the earlier (preferred) candidate
    best = [r for r in CANDIDATES if merits[r] == max(merits.values())]
    assert selection.chosen == best[0]
    assert selection.chosen.label in selection.why()


def test_too_few_pictures_to_choose_keeps_the_preferred_recipe() -> None:
    rows = _rows(np.random.default_rng(3), n_pos=1)
    assert select_recipe(rows, CANDIDATES, seed=0).chosen == CANDIDATES[0]


def test_recipe_labels_name_the_strength() -> None:
    assert Recipe("logistic", 10.0).label == "logistic C=10"
    assert Recipe("mbs_sgd", 0.01).label == "mbs_sgd alpha=0.01"


def _png(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def test_a_board_from_bytes_lists_every_problem_at_once() -> None:
    rng = np.random.default_rng(0)
    good = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    with pytest.raises(MoodBoardError) as error:
        board_from_pictures(
            [
                BoardPicture(_png(good), "positive", name="fine.png"),
                BoardPicture(b"not an image", "positive", name="broken.jpg"),
                BoardPicture(_png(good[:10]), "negative", name="tiny.png"),
                BoardPicture(_png(good), "sideways", name="odd.png"),  # type: ignore[arg-type]
                BoardPicture(_png(good), "negative", weight=0, name="weightless.png"),
            ]
        )
    message = str(error.value)
    for expected in ("broken.jpg", "tiny.png", "role 'sideways'", "weightless.png"):
        assert expected in message


def test_a_board_of_one_picture_or_a_duplicate_is_refused() -> None:
    pixels = np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    with pytest.raises(MoodBoardError, match="at least 2 different"):
        board_from_pictures([BoardPicture(pixels, "positive", name="only")])
    with pytest.raises(MoodBoardError, match="same picture"):
        board_from_pictures(
            [BoardPicture(pixels, "positive", name="a"), BoardPicture(_png(pixels), "positive")]
        )


@pytest.mark.slow
def test_train_from_pictures_trains_a_phone_board_and_reports_the_chosen_recipe(
    backbone: Backbone, bank: NegativeBank, photos
) -> None:
    pictures = [
        BoardPicture(photos.path(name).read_bytes(), "positive", name=f"{name}.jpg")
        for name in ("cat", "cat_train_0", "chelsea")
    ]
    pictures.append(
        BoardPicture(load_image(photos.path("dog_train_0")), "negative", 4.0, "dog.png")
    )
    result = train_from_pictures(pictures, "cats", backbone, bank)
    report = result.report
    print(f"\n{report.recipe}: {report.chosen_because}; folds {report.fold_picks}")
    assert report.accepted, report.refused_because
    assert report.selection == "auto"
    assert sum(report.fold_picks.values()) == 5 * 3  # CONCEPT_RUNS x outer folds
    assert {c.label for c in report.comparison} == {c.label for c in CANDIDATES}
    assert result.concept.quality["chosen_because"] == report.chosen_because
    assert [b.file for b in result.concept.board][-1] == "dog.png"
    assert result.concept.board[-1].weight == 4.0
