"""How reproducible is the seed ensemble? Two ensembles of different seeds, compared.

``python -m training.food.ensemble_check`` trains, on every leave-one-run-out fold, the
shipped activation with the seeds of :data:`ENSEMBLE_SEEDS` and with as many other seeds,
averages each group into an ensemble and compares them as the reproducibility study compares
single networks (relative difference of P(fresh), verdicts that differ), with each
ensemble's held-out accuracy. It is not part of ``senses-train food``: its 12 extra trainings
would take that past its 10-minute budget on 2 cores. Its last output is recorded in
:data:`training.food.config.ENSEMBLE_VS_OTHER_SEEDS` and shown in report.md.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from training.food.config import DEFAULT_CONFIG, ENSEMBLE_SEEDS
from training.food.data import BEEF_RUNS, load_beef_runs
from training.food.evaluate import (
    FoldResult,
    called_fresh,
    ensemble_of,
    evaluate_fold,
    fold_runs,
    fresh_probability,
    mean_scores,
    relative_prediction_difference,
    score_fold,
)

OTHER_SEEDS: tuple[int, ...] = tuple(
    range(max(ENSEMBLE_SEEDS) + 1, max(ENSEMBLE_SEEDS) + 1 + len(ENSEMBLE_SEEDS))
)
DATA_DIR = Path("training/data/beef_wijaya")


def main() -> None:
    single = replace(DEFAULT_CONFIG, ensemble_seeds=())
    recordings = load_beef_runs(DATA_DIR, runs=BEEF_RUNS, min_rows=single.spec.window_minutes)
    ensembles: dict[tuple[int, ...], list[FoldResult]] = {}
    for seeds in (ENSEMBLE_SEEDS, OTHER_SEEDS):
        folds = []
        for recording in recordings:
            name = recording.path.stem
            members = [evaluate_fold(recordings, name, replace(single, seed=s))[1] for s in seeds]
            train_runs, _ = fold_runs(recordings, name, single.spec)
            ensemble = ensemble_of(members, train_runs, single.seed)
            config = replace(single, ensemble_seeds=seeds)
            folds.append(score_fold(recordings, name, ensemble, config))
        ensembles[seeds] = folds
        mean = mean_scores([f.int8_scores for f in folds])
        per_run = ", ".join(f"{f.run} {f.int8_scores.accuracy_fresh:.3f}" for f in folds)
        print(f"seeds {seeds}: fresh/not int8 {per_run}; mean {mean.accuracy_fresh:.3f}")
    pairs = list(zip(ensembles[ENSEMBLE_SEEDS], ensembles[OTHER_SEEDS], strict=True))
    difference = np.mean(
        [
            relative_prediction_difference(
                fresh_probability(a.int8.probabilities), fresh_probability(b.int8.probabilities)
            )
            for a, b in pairs
        ]
    )
    threshold = single.fresh_threshold
    differing = np.mean(
        [
            np.mean(
                called_fresh(a.int8.probabilities, threshold)
                != called_fresh(b.int8.probabilities, threshold)
            )
            for a, b in pairs
        ]
    )
    print(f"relative difference of P(fresh) {difference:.3f}; verdicts that differ {differing:.1%}")


if __name__ == "__main__":
    main()
