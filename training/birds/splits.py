"""File-level splits: windows of one recording (or one bird) never train and test one model.

Every training example carries the split groups of every recording it was made from (a
mixture of a great tit song into the toad recording carries "great tit B32" and "toad"). A
fold holds out a set of groups; its training set is every example that touches none of them,
its test set the unaugmented windows of the held-out recordings. :func:`check_fold` proves
that on the actual examples, and training calls it for every fold.

Evaluation is leave-one-group-out over every group that is trained on (the great tit songs
by bird / nest box, B32 and SW83), and the held-out predictions are pooled: each window of
each recording is scored once, by a model that never heard its recording.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from device.errors import BirdDataError
from training.birds.dataset import MANIFEST, Role

#: Group of generated (synthetic) backgrounds: never held out, never scored.
SYNTHETIC_GROUP: Final = "synthetic"
#: The single fold of ``--quick``: one great tit bird, one negative of each kind.
QUICK_FOLD: Final = frozenset({"great tit SW83", "toad", "Jura night"})


@dataclass(frozen=True)
class Fold:
    """A set of held-out groups and the example indices on each side."""

    held_out: frozenset[str]
    train: npt.NDArray[np.int64]
    test: npt.NDArray[np.int64]

    @property
    def name(self) -> str:
        return " + ".join(sorted(self.held_out))


def trained_groups() -> list[str]:
    """Groups of the recordings the head trains on, in manifest order."""
    groups: list[str] = []
    for entry in MANIFEST:
        trained = entry.role not in (Role.HARD_CASE, Role.UNLABELLED)
        if trained and entry.group not in groups:
            groups.append(entry.group)
    return groups


def cross_validation_folds(quick: bool = False) -> list[frozenset[str]]:
    """Leave-one-group-out, or the single :data:`QUICK_FOLD`."""
    if quick:
        return [QUICK_FOLD]
    return [frozenset({g}) for g in trained_groups()]


def make_fold(
    held_out: frozenset[str],
    groups: Sequence[frozenset[str]],
    augmented: npt.NDArray[np.bool_],
    trainable: npt.NDArray[np.bool_],
) -> Fold:
    """Split examples: train on those touching no held-out group, test on the unaugmented
    windows of held-out recordings."""
    touches = np.array([bool(g & held_out) for g in groups])
    train = np.flatnonzero(~touches & trainable)
    test = np.flatnonzero(touches & ~augmented & np.array([len(g) == 1 for g in groups]))
    fold = Fold(held_out, train, test)
    check_fold(fold, groups)
    return fold


def check_fold(fold: Fold, groups: Sequence[frozenset[str]]) -> None:
    """Refuse a fold whose training and test examples share any recording group."""
    if len(fold.test) == 0:
        raise BirdDataError(
            f"fold {fold.name}: no test window comes from the held-out groups; check the "
            "group names against training/birds/dataset.py MANIFEST"
        )
    train_groups = frozenset().union(*(groups[i] for i in fold.train))
    test_groups = frozenset().union(*(groups[i] for i in fold.test))
    shared = train_groups & test_groups
    if shared:
        raise BirdDataError(
            f"fold {fold.name}: groups {sorted(shared)} are on both sides of the split "
            "(windows of one recording would be trained and tested on)"
        )
