"""Food that was already some hours old when it went in: how each candidate copes.

Every figure of the comparison puts the meat in the box at the start of a run, as the beef
recordings did. A person may put in meat bought in the morning: the station then takes its
baseline from food already hours into spoiling, and every model, which measures the smell
against that baseline, sees less change than it learned. Here each held-out run is cut at
:data:`AGED_FOOD_MINUTES` (the food went in that late; its baseline is taken there, nothing
earlier is seen) and scored with the candidate's leave-one-run-out model, at the candidate's
threshold. These figures choose nothing; they are reported so nobody mistakes the targets for
a promise about food of unknown age.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from device.nose.recording import Recording
from training.food.evaluate import Scores, mean_scores
from training.food.families import Candidate, candidate_rows, predict
from training.food.nested import FitCache

#: Minutes into a run at which the food "goes in" (4 and 8 hours old; both still fresh by the
#: labels, which turn at minute 900 in every run). Fixed before any figure was seen.
AGED_FOOD_MINUTES: tuple[int, ...] = (240, 480)


@dataclass(frozen=True)
class AgedFood:
    """One candidate on food put in ``start_minute`` minutes into each held-out run."""

    start_minute: int
    per_run: dict[str, Scores]

    @property
    def mean(self) -> Scores:
        return mean_scores(list(self.per_run.values()))

    @property
    def worst_fresh(self) -> float:
        return min(s.accuracy_fresh for s in self.per_run.values())


def cut(recording: Recording, start_minute: int) -> Recording:
    """The recording from ``start_minute`` (a minute number of the run) on."""
    first = int(np.searchsorted(recording.minutes, start_minute))
    return replace(
        recording,
        minutes=recording.minutes[first:],
        rs_kohm=recording.rs_kohm[first:],
        temperature_c=recording.temperature_c[first:],
        humidity_pct=recording.humidity_pct[first:],
        labels=None if recording.labels is None else recording.labels[first:],
        tvc_log_cfu=None if recording.tvc_log_cfu is None else recording.tvc_log_cfu[first:],
    )


def aged_food(
    cache: FitCache,
    candidate: int,
    recordings: Mapping[str, Recording],
    threshold: float,
    starts: Sequence[int] = AGED_FOOD_MINUTES,
) -> list[AgedFood]:
    """``candidate`` (its leave-one-run-out fits from ``cache``) on aged food, per start."""
    grid_entry: Candidate = cache.grid[candidate]
    names = list(recordings)
    out = []
    for start in starts:
        per_run = {}
        for held in names:
            fitted = cache.fit(candidate, [r for r in names if r != held])
            rows = candidate_rows(cut(recordings[held], start), grid_entry)
            per_run[held] = Scores.of(
                predict(fitted, rows), rows.labels, rows.tvc_log_cfu, threshold
            )
        out.append(AgedFood(start, per_run))
    return out
