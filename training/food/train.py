"""``senses-train food``: evaluate honestly, then train the shipped food model.

Data: the four shared runs of the Wijaya et al. beef e-nose set (TS1, TS2, TS3, TS5; TS4 is
kept back for acceptance testing and never read here), or a user's own labelled recordings
made with ``senses nose record`` (same columns). Features come from
:mod:`device.nose.features` only, the module the station runs.

Steps (``training/food/evaluate.py`` says why each matters):

1. leave-one-run-out (float and int8, late starts) for ReLU and SmeLU, each with several
   seeds; the more reproducible activation ships unless it is clearly less accurate;
2. the seed ensemble of that activation (its seeds' networks averaged, no new training),
   scored the same way; it ships unless the rule of :data:`ENSEMBLE_RULE` says otherwise;
3. feature ablation: one feature group removed or added at a time;
4. the shipped model, trained on all runs, written with card.json, report.md, report.json
   and PNG plots.

``folds="first"`` holds out only the first run with the configuration given (one activation;
one seed, or the ensemble of its ``ensemble_seeds``) and skips the comparisons and the
ablation: the pipeline test CI runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from device.nose.recording import Recording
from training.food.config import (
    ABLATIONS,
    ACCURACY_TOLERANCE_FOR_REPRODUCIBILITY,
    ACTIVATIONS_COMPARED,
    DEFAULT_CONFIG,
    ENSEMBLE_SEEDS,
    REPRODUCIBILITY_SEEDS,
    TrainConfig,
)
from training.food.data import BEEF_RUNS, load_beef_runs, load_recording
from training.food.evaluate import (
    FoldResult,
    Reproducibility,
    Scores,
    TrainedFold,
    ensemble_of,
    evaluate_fold,
    fold_runs,
    mean_scores,
    reproducibility,
    run_features,
    score_fold,
    train_on,
)
from training.food.model import count_parameters, predict_int8


@dataclass(frozen=True)
class Ablation:
    name: str
    scores: Scores  # int8, mean over held-out runs


@dataclass(frozen=True)
class Candidate:
    """One way of building the shipped model, scored leave-one-run-out."""

    name: str
    folds: list[FoldResult]
    is_ensemble: bool = False

    @property
    def int8(self) -> Scores:
        return mean_scores([f.int8_scores for f in self.folds])

    @property
    def worst_fresh(self) -> float:
        return min(f.int8_scores.accuracy_fresh for f in self.folds)

    @property
    def agreement(self) -> float:
        return float(np.mean([f.agreement for f in self.folds]))


@dataclass
class TrainingReport:
    """What one ``senses-train food`` run produced."""

    config: TrainConfig
    runs: list[str]
    folds: list[FoldResult]
    reproducibility: list[Reproducibility]
    # Single seeds and the seed ensemble of the shipped activation (empty with folds="first").
    candidates: list[Candidate]
    ablations: list[Ablation]
    parameters: int
    model_bytes: int
    wall_time_s: float
    train_rows: int
    shipped_training_scores: Scores

    def mean(self, kind: str) -> Scores:
        return mean_scores([getattr(f, f"{kind}_scores") for f in self.folds])

    @property
    def agreement(self) -> float:
        return float(np.mean([f.agreement for f in self.folds]))


def _progress(total: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="epoch", disable=not enabled, leave=False)


def load_runs(data_dir: Path, files: Sequence[Path], min_rows: int) -> list[Recording]:
    """The beef runs in ``data_dir``, or the user's labelled recordings ``files``."""
    if files:
        return [load_recording(f, min_rows=min_rows) for f in files]
    return load_beef_runs(data_dir, runs=BEEF_RUNS, min_rows=min_rows)


def choose_activation(results: Sequence[Reproducibility]) -> str:
    """The activation the rule of :data:`ACCURACY_TOLERANCE_FOR_REPRODUCIBILITY` picks."""
    best_accuracy = max(r.accuracy_fresh for r in results)
    eligible = [
        r
        for r in results
        if r.accuracy_fresh >= best_accuracy - ACCURACY_TOLERANCE_FOR_REPRODUCIBILITY
    ]
    return min(eligible, key=lambda r: r.relative_difference).activation


def prefer_ensemble(ensemble: Candidate, single_seeds: Sequence[Candidate]) -> bool:
    """The rule of :data:`training.food.config.ENSEMBLE_RULE`."""
    single_mean = float(np.mean([c.int8.accuracy_fresh for c in single_seeds]))
    return ensemble.int8.accuracy_fresh >= single_mean


def train_food(
    data_dir: Path,
    out_dir: Path,
    *,
    config: TrainConfig = DEFAULT_CONFIG,
    folds: str = "all",
    files: Sequence[Path] = (),
    progress: bool = True,
) -> TrainingReport:
    """The whole job; writes ``out_dir`` and returns what it measured.

    With ``folds="all"``, every activation of :data:`ACTIVATIONS_COMPARED` is trained with
    every seed of :data:`REPRODUCIBILITY_SEEDS` (including ``config.seed``) on every fold; the
    rule of :func:`choose_activation` picks the activation, then :func:`prefer_ensemble`
    decides between the seed ensemble of :data:`ENSEMBLE_SEEDS` and ``config.seed`` alone.
    The shipped choice's folds are the leave-one-run-out figures.
    """
    from training.food.report import write_model_folder

    started = time.monotonic()
    full = folds == "all"
    single = replace(config, ensemble_seeds=())
    ablations_to_run = {n: s for n, s in ABLATIONS.items() if s != config.spec} if full else {}
    # Every feature window must fit; the largest decides the rows a run needs.
    window = max(s.window_minutes for s in [config.spec, *ablations_to_run.values()])
    recordings = load_runs(data_dir, files, window)
    names = [r.path.stem for r in recordings]
    held_out = names if full else names[:1]
    activations = ACTIVATIONS_COMPARED if full else (config.activation,)
    seeds = tuple(dict.fromkeys((config.seed, *REPRODUCIBILITY_SEEDS, *ENSEMBLE_SEEDS)))
    shipped_seeds = ENSEMBLE_SEEDS if full else config.member_seeds
    fold_trainings = len(activations) * len(seeds) + len(ablations_to_run) if full else 1
    trainings = len(held_out) * fold_trainings * (1 if full else len(shipped_seeds))
    trainings += len(shipped_seeds)
    with _progress(trainings * config.epochs, progress) as bar:
        tick: Callable[[], None] = lambda: bar.update(1)  # noqa: E731
        if full:
            trained: dict[tuple[str, int, str], tuple[FoldResult, TrainedFold]] = {}
            for activation in activations:
                for seed in seeds:
                    variant = replace(single, activation=activation, seed=seed)
                    for name in held_out:
                        bar.set_description(f"{activation}, seed {seed}, held out {name}")
                        trained[activation, seed, name] = evaluate_fold(
                            recordings, name, variant, tick
                        )
            repro = [
                reproducibility(
                    activation,
                    seeds,
                    {(n, s): f for (a, s, n), (f, _) in trained.items() if a == activation},
                    config.fresh_threshold,
                )
                for activation in activations
            ]
            single = replace(single, activation=choose_activation(repro))
            by_seed = {
                seed: Candidate(
                    f"{single.activation}, seed {seed} alone",
                    [trained[single.activation, seed, n][0] for n in held_out],
                )
                for seed in seeds
            }
            ensemble_config = replace(single, ensemble_seeds=ENSEMBLE_SEEDS)
            ensemble_folds = []
            for name in held_out:
                bar.set_description(f"seed ensemble, held out {name}")
                members = [trained[single.activation, s, name][1] for s in ENSEMBLE_SEEDS]
                train_runs, _ = fold_runs(recordings, name, single.spec)
                ensemble = ensemble_of(members, train_runs, single.seed)
                ensemble_folds.append(score_fold(recordings, name, ensemble, ensemble_config))
            ensemble_candidate = Candidate(
                f"{single.activation}, ensemble of seeds {', '.join(map(str, ENSEMBLE_SEEDS))}",
                ensemble_folds,
                is_ensemble=True,
            )
            use_ensemble = prefer_ensemble(ensemble_candidate, [by_seed[s] for s in ENSEMBLE_SEEDS])
            config = ensemble_config if use_ensemble else single
            results = (ensemble_candidate if use_ensemble else by_seed[single.seed]).folds
            candidates = [*by_seed.values(), ensemble_candidate]
            single_results = by_seed[single.seed].folds
        else:
            repro, candidates = [], []
            bar.set_description(f"held out {held_out[0]}")
            results = [evaluate_fold(recordings, held_out[0], config, tick)[0]]
            single_results = results
        # The ablation compares feature sets with one network (seed config.seed) each.
        ablations = [Ablation("shipped", mean_scores([f.int8_scores for f in single_results]))]
        for ablation, spec in ablations_to_run.items():
            bar.set_description(f"ablation: {ablation}")
            variant = replace(single, spec=spec)
            scores = [evaluate_fold(recordings, n, variant, tick)[0] for n in held_out]
            ablations.append(Ablation(ablation, mean_scores([s.int8_scores for s in scores])))
        bar.set_description("shipped model")
        runs = [run_features(r, config.spec) for r in recordings]
        shipped = train_on(runs, config, tick)

    x = shipped.standardize(np.concatenate([r.features for r in runs]))
    labels = np.concatenate([r.labels for r in runs])
    tvc = np.concatenate([r.tvc_log_cfu for r in runs])
    report = TrainingReport(
        config=config,
        runs=names,
        folds=results,
        reproducibility=repro,
        candidates=candidates,
        ablations=ablations,
        parameters=count_parameters(shipped.model),
        model_bytes=len(shipped.tflite_model),
        wall_time_s=0.0,
        train_rows=len(labels),
        shipped_training_scores=Scores.of(
            predict_int8(shipped.tflite_model, x), labels, tvc, config.fresh_threshold
        ),
    )
    report.wall_time_s = time.monotonic() - started
    write_model_folder(out_dir, shipped, report, data_dir)
    return report


def summary_table(report: TrainingReport) -> str:
    """Per-fold table (printed at the end and used in report.md)."""
    lines = [
        "| held-out run | rows | fresh/not float | fresh/not int8 | not-fresh called fresh "
        "| 4-class int8 | TVC MAE int8 | float=int8 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for f in report.folds:
        s = f.int8_scores
        lines.append(
            f"| {f.run} | {s.rows} | {f.float_scores.accuracy_fresh:.3f} "
            f"| {s.accuracy_fresh:.3f} | {s.not_fresh_called_fresh:.1%} "
            f"| {s.accuracy_4class:.3f} | {s.tvc_mae:.3f} | {f.agreement:.3f} |"
        )
    mf, mi = report.mean("float"), report.mean("int8")
    lines.append(
        f"| **mean** | | **{mf.accuracy_fresh:.3f}** | **{mi.accuracy_fresh:.3f}** "
        f"| {mi.not_fresh_called_fresh:.1%} | **{mi.accuracy_4class:.3f}** "
        f"| **{mi.tvc_mae:.3f}** | {report.agreement:.3f} |"
    )
    return "\n".join(lines)
