"""Nested leave-one-run-out: the honest figure of "pick a family and setting, then train".

Outer loop: each run is held out in turn. Inside, on the remaining runs only, every candidate
of the grid is scored leave-one-run-out (the *inner* folds); the fresh threshold of each
candidate is set on those inner predictions by :data:`THRESHOLD_RULE`, and the candidate with
the best inner score is picked. The picked candidate, trained on all remaining runs, is then
scored on the held-out run: that is the nested figure. Nothing about the held-out run takes
part in any choice.

Every candidate is also trained on the remaining runs and scored on the held-out run (with
its inner-fold threshold): the per-setting table, whose best row is the optimistic figure
shown beside the nested one.

Fits are cached by the set of runs they are trained on: the inner fold (outer A, inner B)
and (outer B, inner A) train on the same runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from device.nose.recording import Recording
from training.food.evaluate import FRESH, RunData, Scores, called_fresh
from training.food.families import Candidate, Fitted, candidate_rows, fit_candidate, predict, scored
from training.food.model import Predictions

#: The fresh-threshold rule, written before any held-out figure of this comparison was seen:
#: on the inner folds' predictions (never the held-out run's), take the threshold among
#: THRESHOLD_CHOICES with the highest mean fresh/not accuracy over the inner runs; on a tie the
#: higher threshold (a doubtful case is called "not fresh": someone who cannot smell eats what
#: the station calls fresh).
THRESHOLD_CHOICES: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8)
THRESHOLD_RULE = (
    "on the inner folds only: the threshold among "
    f"{', '.join(f'{t:g}' for t in THRESHOLD_CHOICES)} with the highest mean fresh/not "
    "accuracy over the inner held-out runs; ties go to the higher threshold"
)
#: The candidate rule, fixed likewise: the highest inner mean fresh/not accuracy (at the
#: candidate's own inner threshold); ties go to the lower inner TVC MAE.
SELECTION_RULE = (
    "on the inner folds only: the candidate with the highest mean fresh/not accuracy at its "
    "threshold; ties go to the lower mean TVC MAE"
)


@dataclass(frozen=True)
class Held:
    """What one fitted model said about one held-out run (scored minutes only)."""

    run: str
    rows: RunData
    predicted: Predictions


def choose_threshold(held: Sequence[Held]) -> float:
    """:data:`THRESHOLD_RULE` on these (inner) predictions."""
    best = max(
        THRESHOLD_CHOICES,
        key=lambda t: (
            np.mean([fresh_accuracy(h, t) for h in held]),
            t,
        ),
    )
    return float(best)


def fresh_accuracy(held: Held, threshold: float) -> float:
    said = called_fresh(held.predicted.probabilities, threshold)
    return float(np.mean(said == FRESH[held.rows.labels]))


def scores_of(held: Held, threshold: float) -> Scores:
    return Scores.of(held.predicted, held.rows.labels, held.rows.tvc_log_cfu, threshold)


@dataclass(frozen=True)
class AlarmTiming:
    """When a held-out run's verdicts turn "not fresh", against when its labels do."""

    run: str
    boundary_minute: int  # first minute labelled acceptable or spoiled
    first_alarm_minute: int | None  # first minute called not fresh
    minutes_early: int | None  # boundary − first alarm (negative: late)
    flips_back: int  # not fresh → fresh changes after the first alarm
    minutes_fresh_after_alarm: int  # minutes called fresh after the first alarm

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "label_boundary_minute": self.boundary_minute,
            "first_not_fresh_minute": self.first_alarm_minute,
            "minutes_before_boundary": self.minutes_early,
            "flips_back_to_fresh": self.flips_back,
            "minutes_called_fresh_after_first_alarm": self.minutes_fresh_after_alarm,
        }


def alarm_timing(held: Held, threshold: float) -> AlarmTiming:
    """Alarm timing of one held-out run at ``threshold``."""
    minutes = held.rows.minutes
    truth_fresh = FRESH[held.rows.labels]
    said_fresh = called_fresh(held.predicted.probabilities, threshold)
    boundary = int(minutes[np.flatnonzero(~truth_fresh)[0]]) if (~truth_fresh).any() else -1
    alarms = np.flatnonzero(~said_fresh)
    if not alarms.size:
        return AlarmTiming(held.run, boundary, None, None, 0, 0)
    first = int(alarms[0])
    after = said_fresh[first:]
    flips = int(np.sum(after[1:] & ~after[:-1]))
    return AlarmTiming(
        held.run,
        boundary,
        int(minutes[first]),
        boundary - int(minutes[first]),
        flips,
        int(after.sum()),
    )


@dataclass(frozen=True)
class CandidateFold:
    """One candidate on one outer fold."""

    candidate: int  # index into the grid
    inner: list[Held]
    threshold: float  # chosen on ``inner``
    inner_scores: Scores  # mean over the inner runs at ``threshold``
    outer: Held  # trained on every run but the held-out one


@dataclass(frozen=True)
class OuterFold:
    run: str
    candidates: list[CandidateFold]
    picked: int  # the candidate the inner folds chose

    @property
    def nested(self) -> CandidateFold:
        return self.candidates[self.picked]


def pick(folds: Sequence[CandidateFold]) -> int:
    """:data:`SELECTION_RULE`: position in ``folds`` of the chosen candidate."""
    return max(
        range(len(folds)),
        key=lambda i: (folds[i].inner_scores.accuracy_fresh, -folds[i].inner_scores.tvc_mae),
    )


def mean_of(held: Sequence[Held], threshold: float) -> Scores:
    from training.food.evaluate import mean_scores

    return mean_scores([scores_of(h, threshold) for h in held])


class FitCache:
    """Fits by (candidate, training runs); the fitted models of the outer folds are kept."""

    def __init__(
        self,
        grid: Sequence[Candidate],
        rows: dict[int, dict[str, RunData]],
        on_fit: Callable[[str], None] | None = None,
    ) -> None:
        self.grid = grid
        self.rows = rows
        self.on_fit = on_fit
        self._held: dict[tuple[int, frozenset[str], str], Held] = {}
        self.fitted: dict[tuple[int, frozenset[str]], Fitted] = {}

    def fit(self, candidate: int, train: Sequence[str]) -> Fitted:
        """``candidate`` trained on ``train`` (a committee: its members, each trained once)."""
        key = (candidate, frozenset(train))
        if key not in self.fitted:
            c = self.grid[candidate]
            if c.family == "committee":
                members = tuple(self.fit(m, train) for m in c.members)
                self.fitted[key] = Fitted(c, None, members, members[0].train_rows)
            else:
                if self.on_fit is not None:
                    self.on_fit(f"{c.family} on {'+'.join(sorted(train))}")
                runs = [self.rows[candidate][r] for r in sorted(train)]
                self.fitted[key] = fit_candidate(c, runs)
        return self.fitted[key]

    def held(self, candidate: int, train: Sequence[str], test: str) -> Held:
        key = (candidate, frozenset(train), test)
        if key not in self._held:
            fitted = self.fit(candidate, train)
            test_rows = scored(self.rows[candidate][test])
            self._held[key] = Held(test, test_rows, predict(fitted, test_rows))
        return self._held[key]


def prepare_rows(
    recordings: Sequence[Recording], grid: Sequence[Candidate]
) -> dict[int, dict[str, RunData]]:
    """Every candidate's rows of every run (computed once per distinct spec)."""
    by_key: dict[Any, dict[str, RunData]] = {}
    rows: dict[int, dict[str, RunData]] = {}
    for i, candidate in enumerate(grid):
        key = (candidate.family == "conv", candidate.spec)
        if key not in by_key:
            by_key[key] = {r.path.stem: candidate_rows(r, candidate) for r in recordings}
        rows[i] = by_key[key]
    return rows


def nested_loro(runs: Sequence[str], grid: Sequence[Candidate], cache: FitCache) -> list[OuterFold]:
    """The outer folds, each with every candidate's inner and outer results."""
    outer_folds = []
    for outer in runs:
        rest = [r for r in runs if r != outer]
        per_candidate = []
        for c in range(len(grid)):
            inner = [cache.held(c, [r for r in rest if r != i], i) for i in rest]
            threshold = choose_threshold(inner)
            per_candidate.append(
                CandidateFold(
                    candidate=c,
                    inner=inner,
                    threshold=threshold,
                    inner_scores=mean_of(inner, threshold),
                    outer=cache.held(c, rest, outer),
                )
            )
        outer_folds.append(OuterFold(outer, per_candidate, pick(per_candidate)))
    return outer_folds


def fresh_verdicts(held: Held, threshold: float) -> npt.NDArray[np.bool_]:
    return called_fresh(held.predicted.probabilities, threshold)
