"""The model folder: model.tflite, card.json, report.md, report.json, plots, data licence.

Every number in report.md and report.json comes from the training run that wrote them; the
targets of issue 7 are checked there and a miss says by how much.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from device.nose.features import BASELINE_MINUTES, FEATURE_VERSION, FeatureSpec
from training.food.config import (
    ACCURACY_TOLERANCE_FOR_REPRODUCIBILITY,
    ENSEMBLE_RULE,
    ENSEMBLE_VS_OTHER_SEEDS,
    LATE_START_HOURS,
    TARGET_4CLASS_MEAN,
    TARGET_FRESH_MEAN,
    TARGET_FRESH_WORST_RUN,
    TARGET_INT8_AGREEMENT,
    TARGET_LATE_START_GAP,
    TARGET_MODEL_BYTES,
    TARGET_TVC_MAE,
    TRIED,
    TrainConfig,
)
from training.food.data import LABELS
from training.food.evaluate import FRESH, FoldResult, TrainedFold, fresh_probability
from training.food.model import MODEL_NAME, PROBABILITIES_OUTPUT, TVC_OUTPUT, output_indices
from training.food.train import TrainingReport, summary_table

CONVERTER = "tensorflow-cpu 2.21.0"
RUNTIME = "ai-edge-litert 2.3.0"
DATASET_NAME = "Wijaya et al. beef e-nose (Mendeley Data doi:10.17632/mwmhh766fc, v3)"
CITATION = (
    'D. R. Wijaya, R. Sarno, E. Zulaika, "Electronic nose dataset for beef quality monitoring '
    'in uncontrolled ambient conditions", Data in Brief 21 (2018) 2414-2420, '
    "doi:10.1016/j.dib.2018.11.091. Dataset: Mendeley Data doi:10.17632/mwmhh766fc (v3)."
)
DATA_LICENCE = "CC BY 4.0"

_LICENCE_TEXT = f"""# Data licence and attribution

`model.tflite` in this folder was trained on data licensed under {DATA_LICENCE}
(https://creativecommons.org/licenses/by/4.0/). The model is distributed with this attribution:

{CITATION}

Runs used: {{runs}} (TS4 was not used: it is kept back for acceptance testing).
The data were not modified; features were computed from them by `device/nose/features.py`
(see `training/data/beef_wijaya/README.md` for the copies and their checksums).

The model file itself, like the rest of the project, is under the Apache License 2.0.
"""


def members_text(config: TrainConfig) -> str:
    """Which networks the model is, in words: "seed 0" or "seeds 0, 1, 2 averaged"."""
    if config.ensemble_seeds:
        return f"seeds {', '.join(map(str, config.ensemble_seeds))} averaged"
    return f"seed {config.seed}"


# --- targets --------------------------------------------------------------------------------


def late_start_gaps(folds: list[FoldResult]) -> list[dict[str, Any]]:
    """Per run and start: first-hour fresh/not accuracy against the full run's."""
    rows = []
    for fold in folds:
        for late in fold.late_starts:
            rows.append(
                {
                    "run": fold.run,
                    "start_minute": late.start_minute,
                    "first_hour_rows": late.scores.rows,
                    "first_hour_accuracy_fresh": round(late.scores.accuracy_fresh, 4),
                    "same_minutes_in_full_run": round(late.same_minutes_full_run.accuracy_fresh, 4),
                    "whole_full_run": round(fold.int8_scores.accuracy_fresh, 4),
                    "first_hour_tvc_mae": round(late.scores.tvc_mae, 4),
                }
            )
    return rows


def targets(report: TrainingReport) -> list[dict[str, Any]]:
    """Each target of issue 7: what was asked, what was measured, met or missed by how much."""
    mean = report.mean("int8")
    worst = min((f.int8_scores.accuracy_fresh for f in report.folds), default=0.0)
    late = late_start_gaps(report.folds)
    same_gap = max(
        (abs(r["first_hour_accuracy_fresh"] - r["same_minutes_in_full_run"]) for r in late),
        default=0.0,
    )
    whole_gap = max(
        (abs(r["first_hour_accuracy_fresh"] - r["whole_full_run"]) for r in late), default=0.0
    )

    def row(name: str, measured: float, target: float, higher_is_better: bool) -> dict[str, Any]:
        met = measured >= target if higher_is_better else measured <= target
        return {
            "target": name,
            "goal": f"{'≥' if higher_is_better else '≤'} {target:g}",
            "measured": round(measured, 4),
            "met": met,
            "missed_by": 0.0 if met else round(abs(measured - target), 4),
        }

    return [
        row(
            "fresh/not accuracy, mean of held-out runs",
            mean.accuracy_fresh,
            TARGET_FRESH_MEAN,
            True,
        ),
        row("fresh/not accuracy, worst held-out run", worst, TARGET_FRESH_WORST_RUN, True),
        row("4-class accuracy, mean", mean.accuracy_4class, TARGET_4CLASS_MEAN, True),
        row("TVC mean absolute error (log10 CFU/g)", mean.tvc_mae, TARGET_TVC_MAE, False),
        row(
            "late start: gap between first hour and the same minutes of the full run, worst",
            same_gap,
            TARGET_LATE_START_GAP,
            False,
        ),
        row(
            "late start: gap between first hour and the whole full run, worst",
            whole_gap,
            TARGET_LATE_START_GAP,
            False,
        ),
        row(
            "float = int8 (class and verdict), mean", report.agreement, TARGET_INT8_AGREEMENT, True
        ),
        row("model.tflite bytes", report.model_bytes, TARGET_MODEL_BYTES, False),
    ]


# --- report.json ----------------------------------------------------------------------------


def report_json(report: TrainingReport) -> dict[str, Any]:
    return {
        "model": MODEL_NAME,
        "evaluation": "leave-one-run-out; fresh = P(excellent)+P(good) ≥ fresh_threshold",
        "settings": report.config.to_dict(),
        "runs": report.runs,
        "withheld_runs": ["TS4 (acceptance testing)"],
        "leave_one_run_out": {
            **{
                f.run: {
                    "float": f.float_scores.to_dict(),
                    "int8": f.int8_scores.to_dict(),
                    "float_int8_agreement": round(f.agreement, 4),
                }
                for f in report.folds
            },
            "mean": {
                "float": report.mean("float").to_dict(),
                "int8": report.mean("int8").to_dict(),
                "float_int8_agreement": round(report.agreement, 4),
            },
        },
        "late_start": late_start_gaps(report.folds),
        "seed_ensemble": {
            "members": list(report.config.ensemble_seeds) or [report.config.seed],
            "shipped": members_text(report.config),
            "rule": ENSEMBLE_RULE,
            "candidates_int8": {
                c.name: {
                    "per_run_accuracy_fresh_binary": {
                        f.run: round(f.int8_scores.accuracy_fresh, 4) for f in c.folds
                    },
                    "mean": c.int8.to_dict(),
                    "worst_run_accuracy_fresh_binary": round(c.worst_fresh, 4),
                    "float_int8_agreement": round(c.agreement, 4),
                }
                for c in report.candidates
            },
            "single_seed_mean_int8": single_seed_mean(report) if report.candidates else {},
            "ensemble_vs_ensemble_of_other_seeds": {
                "measured_by": "python -m training.food.ensemble_check (not this run)",
                **ENSEMBLE_VS_OTHER_SEEDS,
            },
        },
        "reproducibility": [
            {
                "activation": r.activation,
                "seeds": list(r.seeds),
                "relative_prediction_difference_p_fresh": round(r.relative_difference, 4),
                "fresh_verdict_disagreement": round(r.verdict_disagreement, 4),
                "accuracy_fresh_binary_int8": round(r.accuracy_fresh, 4),
                "accuracy_4class_int8": round(r.accuracy_4class, 4),
                "tvc_mae_int8": round(r.tvc_mae, 4),
            }
            for r in report.reproducibility
        ],
        "ablation_int8_mean": {a.name: a.scores.to_dict() for a in report.ablations},
        "references": {
            "linear_model_leave_one_run_out": {"accuracy_4class": 0.48, "fresh_binary": 0.75},
            "source": "research/enose.md §2.1 (all five runs), numpy softmax regression",
        },
        "shipped_model_on_its_training_rows_int8": report.shipped_training_scores.to_dict(),
        "targets": targets(report),
        "parameters": report.parameters,
        "model_bytes": report.model_bytes,
        "wall_time_s": round(report.wall_time_s, 1),
    }


# --- plots ----------------------------------------------------------------------------------


def write_plots(out_dir: Path, report: TrainingReport) -> list[str]:
    """confusion.png (int8, per held-out run) and timeline_<run>.png; returns the names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    fig, axes = plt.subplots(1, len(report.folds), figsize=(4 * len(report.folds), 4))
    for ax, fold in zip(np.atleast_1d(axes), report.folds, strict=True):
        matrix = fold.confusion_int8
        ax.imshow(matrix, cmap="Blues")
        for (i, j), count in np.ndenumerate(matrix):
            ax.text(j, i, str(count), ha="center", va="center", fontsize=8)
        ax.set_xticks(range(len(LABELS)), LABELS, rotation=45, fontsize=8)
        ax.set_yticks(range(len(LABELS)), LABELS, fontsize=8)
        ax.set_title(f"held out {fold.run} (int8)")
        ax.set_xlabel("predicted")
    np.atleast_1d(axes)[0].set_ylabel("true")
    fig.tight_layout()
    fig.savefig(out_dir / "confusion.png", dpi=80)
    plt.close(fig)
    names.append("confusion.png")

    threshold = report.config.fresh_threshold
    for fold in report.folds:
        hours = fold.minutes / 60.0
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 5), sharex=True)
        top.plot(hours, fresh_probability(fold.int8.probabilities), lw=0.8, label="P(fresh)")
        top.plot(hours, FRESH[fold.labels].astype(float), lw=1.5, label="truth: fresh")
        top.axhline(threshold, color="grey", ls=":", label=f"threshold {threshold:g}")
        top.set_ylabel("fresh")
        top.legend(loc="lower left", fontsize=8)
        bottom.plot(hours, fold.int8.tvc_log_cfu, lw=0.8, label="TVC predicted")
        bottom.plot(hours, fold.tvc_log_cfu, lw=1.5, label="TVC measured")
        bottom.set_ylabel("log10 CFU/g")
        bottom.set_xlabel("hours since the meat went in")
        bottom.legend(loc="upper left", fontsize=8)
        top.set_title(f"{fold.run} held out (model trained on the other runs, int8)")
        fig.tight_layout()
        name = f"timeline_{fold.run}.png"
        fig.savefig(out_dir / name, dpi=80)
        plt.close(fig)
        names.append(name)
    return names


# --- report.md ------------------------------------------------------------------------------


def _targets_markdown(report: TrainingReport) -> str:
    lines = ["| target | goal | measured | |", "|---|---|---:|---|"]
    for t in targets(report):
        verdict = "met" if t["met"] else f"**missed by {t['missed_by']:g}**"
        lines.append(f"| {t['target']} | {t['goal']} | {t['measured']:g} | {verdict} |")
    return "\n".join(lines)


def _late_markdown(report: TrainingReport) -> str:
    lines = [
        "| run | start minute | verdicts in the first hour | fresh/not first hour "
        "| same minutes, full run | whole full run |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in late_start_gaps(report.folds):
        lines.append(
            f"| {r['run']} | {r['start_minute']} | {r['first_hour_rows']} "
            f"| {r['first_hour_accuracy_fresh']:.3f} | {r['same_minutes_in_full_run']:.3f} "
            f"| {r['whole_full_run']:.3f} |"
        )
    return "\n".join(lines)


def _repro_markdown(report: TrainingReport) -> str:
    if not report.reproducibility:
        return "Not measured in this run (`--folds first`)."
    lines = [
        "| activation | seeds | relative difference of P(fresh) | fresh/not verdicts that "
        "differ | fresh/not int8 | 4-class int8 | TVC MAE |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in report.reproducibility:
        lines.append(
            f"| {r.activation} | {', '.join(map(str, r.seeds))} | {r.relative_difference:.3f} "
            f"| {r.verdict_disagreement:.1%} | {r.accuracy_fresh:.3f} | {r.accuracy_4class:.3f} "
            f"| {r.tvc_mae:.3f} |"
        )
    return "\n".join(lines)


def single_seed_mean(report: TrainingReport) -> dict[str, float]:
    """The single networks' int8 fresh/not figures averaged over seeds: the ensemble rule's
    comparison (mean over runs) and the worst run, which the ensemble should also improve."""
    singles = [c for c in report.candidates if not c.is_ensemble]
    return {
        "accuracy_fresh_binary": round(float(np.mean([c.int8.accuracy_fresh for c in singles])), 4),
        "worst_run_accuracy_fresh_binary": round(
            float(np.mean([c.worst_fresh for c in singles])), 4
        ),
    }


def _ensemble_verdict(report: TrainingReport) -> str:
    ensembles = [c for c in report.candidates if c.is_ensemble]
    singles = [c for c in report.candidates if not c.is_ensemble]
    if not ensembles or not singles:
        return ""
    ensemble, mean = ensembles[0], single_seed_mean(report)
    text = (
        f"Against the mean of the single seeds, the ensemble scores "
        f"{ensemble.int8.accuracy_fresh:.3f} vs {mean['accuracy_fresh_binary']:.3f} "
        f"(fresh/not mean) and {ensemble.worst_fresh:.3f} vs "
        f"{mean['worst_run_accuracy_fresh_binary']:.3f} (worst run)."
    )
    best = max(singles, key=lambda c: c.int8.accuracy_fresh)
    if best.int8.accuracy_fresh > ensemble.int8.accuracy_fresh:
        text += (
            f" One seed alone ({best.name}) scores higher on these runs "
            f"({best.int8.accuracy_fresh:.3f}, worst {best.worst_fresh:.3f}); shipping it would "
            "be choosing a seed by the held-out runs, and the spread between seeds says the "
            "next run may rank them differently."
        )
    return text


def _ensemble_markdown(report: TrainingReport) -> str:
    if not report.candidates:
        return "Not measured in this run (`--folds first`)."
    runs = [f.run for f in report.candidates[0].folds]
    lines = [
        f"| model | {' | '.join(runs)} | fresh/not mean | worst run | 4-class | TVC MAE "
        "| float=int8 |",
        "|---|" + "---:|" * (len(runs) + 5),
    ]
    for c in report.candidates:
        per_run = " | ".join(f"{f.int8_scores.accuracy_fresh:.3f}" for f in c.folds)
        m = c.int8
        lines.append(
            f"| {c.name} | {per_run} | {m.accuracy_fresh:.3f} | {c.worst_fresh:.3f} "
            f"| {m.accuracy_4class:.3f} | {m.tvc_mae:.3f} | {c.agreement:.3f} |"
        )
    mean = single_seed_mean(report)
    lines.append(
        f"| single seeds, mean | {' | '.join('' for _ in runs)} "
        f"| {mean['accuracy_fresh_binary']:.3f} | {mean['worst_run_accuracy_fresh_binary']:.3f} "
        "| | | |"
    )
    return "\n".join(lines) + "\n\n" + _ensemble_verdict(report)


def _ablation_markdown(report: TrainingReport) -> str:
    if len(report.ablations) < 2:
        return "Not measured in this run (`--folds first`)."
    lines = [
        "| features | fresh/not int8 | 4-class int8 | TVC MAE |",
        "|---|---:|---:|---:|",
    ]
    for a in report.ablations:
        lines.append(
            f"| {a.name} | {a.scores.accuracy_fresh:.3f} | {a.scores.accuracy_4class:.3f} "
            f"| {a.scores.tvc_mae:.3f} |"
        )
    return "\n".join(lines)


def _confusion_text(matrix: Any) -> str:
    width = max(len(label) for label in LABELS) + 2
    lines = ["true \\ predicted".ljust(18) + "".join(n.rjust(width) for n in LABELS)]
    for label, counts in zip(LABELS, matrix, strict=True):
        lines.append(label.ljust(18) + "".join(str(int(c)).rjust(width) for c in counts))
    return "\n".join(lines)


def _shown(path: Path) -> Path:
    """``path`` relative to the working folder when it is inside it (no machine paths)."""
    try:
        return path.resolve().relative_to(Path.cwd())
    except ValueError:
        return path


def _architecture_text(report: TrainingReport) -> str:
    config, spec = report.config, report.config.spec
    network = (
        f"{len(spec.names())} features → {config.hidden_units} {config.activation} → softmax "
        "over 4 classes and a TVC estimate"
    )
    if not config.ensemble_seeds:
        return f"One network ({network})"
    return (
        f"The average of {len(config.ensemble_seeds)} networks trained alike with seeds "
        f"{', '.join(map(str, config.ensemble_seeds))}, each {network}; one file"
    )


def markdown_report(report: TrainingReport, data_dir: Path, plots: list[str]) -> str:
    config, spec = report.config, report.config.spec
    pooled = sum((f.confusion_int8 for f in report.folds), np.zeros((4, 4), dtype=np.int64))
    tried = "\n".join(f"* {name}: {score}" for name, score in TRIED.items())
    other_seeds = "\n".join(f"* {name}: {value}" for name, value in ENSEMBLE_VS_OTHER_SEEDS.items())
    return f"""# food_quality: report

Written by `senses-train food`; every number here comes from that run (data
{_shown(data_dir)}, {members_text(config)}, {config.epochs} epochs, {report.wall_time_s:.0f} s
wall time on this machine; the training machine's 2 cores were shared with other jobs, so
this time is inflated).

The station says **fresh** only when P(excellent) + P(good) ≥ {config.fresh_threshold:g} (eating
spoiling food counted 4× as costly as throwing away fresh food, fixed in advance).

## Targets (issue 7), leave-one-run-out, int8

{_targets_markdown(report)}

## Leave-one-run-out

Train on the other runs, test on the held-out one (feature mean/std from the training runs
only). Reference: a linear softmax model on log Rs scores 0.48 (4-class) and 0.75
(fresh/not) leave-one-run-out (research/enose.md §2.1).

{summary_table(report)}

Pooled int8 confusion matrix (all held-out minutes; 4-class by the most likely class):

```text
{_confusion_text(pooled)}
```

The shipped model (all runs) on its own training rows, int8: fresh/not
{report.shipped_training_scores.accuracy_fresh:.3f}, 4-class
{report.shipped_training_scores.accuracy_4class:.3f}, TVC MAE
{report.shipped_training_scores.tvc_mae:.3f}: a fit check, not an accuracy.

Plots: {", ".join(f"`{p}`" for p in plots)}.

## Late starts

Each held-out run replayed from a later minute (calibration from the run's start kept, the
skipped minutes never seen); accuracy over the first {LATE_START_HOURS:g} h of verdicts (the
first comes {spec.window_minutes - 1} min after the start). No feature encodes time since
start, so the first hour gives the same verdicts as the same minutes of the full run; how
it compares with the whole run depends on which stage those minutes are (minute 901 is the
first 'acceptable' minute of every run, so the start at 900 is the hardest hour there is).

{_late_markdown(report)}

## Reproducibility: ReLU vs SmeLU

Each activation trained with several seeds on every fold (int8); the relative difference of
P(fresh) between two trainings, |a − b| / ((a + b) / 2), averaged over rows, folds and seed
pairs (Shamir & Lin). Lower is more reproducible. Rule (`training/food/config.py`): ship the
activation whose trainings differ less unless its accuracy is lower by more than
{ACCURACY_TOLERANCE_FOR_REPRODUCIBILITY:g}; it was written after a first comparison had
been seen (SmeLU 0.38 vs ReLU 0.25, before the int8 input calibration was widened). Shipped:
**{config.activation}**. The leave-one-run-out table above is the shipped model
({members_text(config)}); the accuracies here are means over single seeds.

{_repro_markdown(report)}

## Seed ensemble

One seed alone can land far off on a held-out run. The networks of the seeds above (the
shipped activation) are averaged into one model (probabilities and TVC, an Average layer per
output, exported as one int8 file with the same input and outputs as a single network) and
scored exactly like the single networks: no extra training, as the reproducibility study
trains them anyway. Rule, written before the ensemble's figures were seen
(`training/food/config.py`): {ENSEMBLE_RULE}. Shipped: **{members_text(config)}**.
Held-out fresh/not accuracy, int8:

{_ensemble_markdown(report)}

The ensemble's own reproducibility, against an ensemble of 3 other seeds, is **not** measured
by this run (its 12 extra trainings would take it past the 10-minute budget);
`python -m training.food.ensemble_check` measured it once (figures kept in
`training/food/config.py`, not recomputed here):

{other_seeds}

So the ensemble's advantage above is **not established**: another ensemble of three seeds
scores below the single-seed mean, and two ensembles differ in their P(fresh) less than two
single networks do but still disagree on about one verdict in nine. Averaging three networks
damps one seed's chance errors but not what they all learn alike from three training runs: a
run unlike the others (TS1's faulty MQ5/MQ6) stays hard for all of them. The ensemble ships
because the rule, fixed beforehand, says so; the seed spread remains the largest uncertainty
in these figures.

## Replay on the station's code path

`senses-train food --files TS1.csv TS2.csv TS5.csv --folds first --out /tmp/m` (in
`training/data/beef_wijaya/`) trains the model of the TS3 fold above (same runs, order, seeds
and activation); `senses nose replay training/data/beef_wijaya/TS3.csv --model /tmp/m` runs TS3
through the emulated nose (MQ physics, ADS1115, minute means, `device/nose/classifier.py`)
and its `fresh_vs_not_accuracy` reproduces the TS3 figure above. `tests/test_food_replay.py`
checks the same with a short training (within 2 points).

## Feature ablation (int8, mean of held-out runs, one network, seed {config.seed})

{_ablation_markdown(report)}

## How the settings were chosen

Fixed in advance, with reasons in `training/food/config.py`: the fresh threshold, no sensor
dropped, the late-start minutes, the seeds. The cap at 0 and the cross-sensor shape were
adopted after an exploratory leave-one-run-out check with a linear model on the same four
runs (the previous model dropped MQ5/MQ6 after seeing TS1's fault; this one keeps all nine
sensors and makes the features robust instead). The network size was then chosen among these
settings on the same held-out runs (int8 fresh/not mean, seed 0, before the int8 input
calibration was widened), so the figures above are somewhat optimistic:

{tried}

The int8 input calibration uses the training rows plus the same rows stretched ×2: a held-out
run's features leave the training range (TS5 reaches −3.8 std where its training runs stop at
−2.3), and calibrated on the training rows alone the int8 input saturated and agreed with the
float model on only 75 % of TS5's minutes.

Tried and not kept: dropping MQ5/MQ6 (decided on the test run's fault: leakage); 16-8 hidden
units; 10/30 min slopes and absolute T/RH inputs (ablation above, or in the first comparison:
T/RH inputs 0.814); gradient-boosted trees and a scikit-learn MLP in the exploration (no
better leave-one-run-out, and trees do not run on TFLite).

The seed ensemble was tried because the single-seed figures showed a large spread between
seeds (seed 0 called all of TS1 fresh, 0.414, while the mean of seeds 0-2 was 0.873); its
members, its rule and the rule's comparison (single-seed mean) were fixed before its own
held-out figures were computed. It reuses networks whose settings were chosen on the same
held-out runs, so its figures share their optimism.

## What this model is

* {_architecture_text(report)}, full-integer int8
  ({report.model_bytes} bytes, {report.parameters} parameters).
* Features (`device/nose/features.py`, version {FEATURE_VERSION}): each sensor's log resistance
  relative to a baseline, climate-compensated, averaged over {spec.smooth_minutes} min, capped
  at 0, and the same minus the median of all sensors. The first verdict comes
  {spec.window_minutes} minutes after the station starts. Nothing encodes time since start.
* TVC (log10 CFU/g) is estimated directly. **No "hours until not fresh"** is given: the beef
  spoiled at 29-40 °C, and how fast food spoils depends on its temperature and history, which
  four warm runs cannot calibrate for a fridge or a kitchen.

## What it is not

* Not validated beyond four runs of one lab's chamber (500 g extra-lean beef, 29-40 °C,
  41-100 %RH, Surabaya). TS4, held back, is the next independent check.
* Its baseline differs from the station's: the beef runs start with the meat in the chamber,
  so training takes their first {BASELINE_MINUTES} minutes *with fresh beef* as baseline; on
  the station it is clean air before the food goes in. Retrain on the station's own
  recordings (`senses nose record`, then `senses-train food --files ...`).
* Not a food-safety device.
"""


# --- the folder -----------------------------------------------------------------------------


def _tensor_card_entries(model_path: Path, spec: FeatureSpec) -> tuple[list[Any], list[Any]]:
    from device.inference import make_interpreter, read_tensor_specs

    (inp,), outs = read_tensor_specs(model_path)
    p, t = output_indices(make_interpreter(model_path, num_threads=1).get_output_details())
    inputs = [
        inp.model_copy(
            update={
                "name": "features",
                "preprocessing": (
                    "device.nose.features.compute_features(rs_kohm[window_minutes, S], "
                    "temperature_c, humidity_pct, baseline, FeatureSpec.from_dict("
                    f"task_config.feature_spec)) -> one row of {len(spec.names())} features; "
                    "then (x - task_config.feature_mean) / task_config.feature_std; then "
                    "quantize with this tensor's scale and zero_point. Rows holding NaN "
                    "(missed samples) must be skipped."
                ),
            }
        )
    ]
    outputs = list(outs)
    outputs[p] = outs[p].model_copy(
        update={
            "name": PROBABILITIES_OUTPUT,
            "preprocessing": (
                "dequantize to class probabilities in the order of labels; fresh when "
                "P(excellent) + P(good) ≥ task_config.fresh_threshold"
            ),
        }
    )
    outputs[t] = outs[t].model_copy(
        update={
            "name": TVC_OUTPUT,
            "preprocessing": "dequantize to the total viable count, log10 CFU/g",
        }
    )
    return inputs, outputs


def write_model_folder(
    out_dir: Path, shipped: TrainedFold, report: TrainingReport, data_dir: Path
) -> None:
    """Write model.tflite, card.json (validated by device.inference), report.md,
    report.json, the plots and LICENSE-data.md into ``out_dir``."""
    from device.inference import CARD_SCHEMA_VERSION, ModelCard, write_card

    config, spec = report.config, report.config.spec
    out_dir.mkdir(parents=True, exist_ok=True)
    model_path = out_dir / "model.tflite"
    model_path.write_bytes(shipped.tflite_model)
    inputs, outputs = _tensor_card_entries(model_path, spec)
    mean = report.mean("int8")
    card = ModelCard(
        schema_version=CARD_SCHEMA_VERSION,
        name=MODEL_NAME,
        description=(
            "Beef spoilage stage (excellent / good / acceptable / spoiled) and total viable "
            "count from MQ gas-sensor resistances relative to a clean-air baseline. Fresh = "
            f"P(excellent) + P(good) ≥ {config.fresh_threshold:g}. Network(s): "
            f"{members_text(config)}."
        ),
        model_file="model.tflite",
        sha256="0" * 64,  # write_card computes it from the file
        inputs=inputs,
        outputs=outputs,
        labels=list(LABELS),
        training_data={
            "dataset": DATASET_NAME,
            "runs": report.runs,
            "withheld_runs": ["TS4 (acceptance testing)"],
            "rows": report.train_rows,
            "licence": DATA_LICENCE,
            "citation": CITATION,
            "copy": "training/data/beef_wijaya/ (see its README.md)",
            "baseline": f"median of each run's first {BASELINE_MINUTES} minutes (beef present)",
            "settings": config.to_dict(),
        },
        metrics={
            "leave_one_run_out_int8_mean": mean.to_dict(),
            "leave_one_run_out_float_mean": report.mean("float").to_dict(),
            "float_int8_agreement": round(report.agreement, 4),
            "per_run_int8": {f.run: f.int8_scores.to_dict() for f in report.folds},
            "parameters": report.parameters,
            "model_bytes": report.model_bytes,
            "details": "report.json",
        },
        evaluation=(
            f"Leave-one-run-out over {', '.join(f.run for f in report.folds)}: trained on the "
            "other runs, tested on the held-out run, int8 as the station runs it: "
            f"fresh/not {mean.accuracy_fresh:.3f}, 4-class {mean.accuracy_4class:.3f}, "
            f"TVC MAE {mean.tvc_mae:.3f} log10 CFU/g (means over runs). The shipped model is "
            "trained on all of them. Random splits of minutes leak and are not used."
        ),
        licence="Apache-2.0 (model); training data CC BY 4.0, Wijaya et al. 2018 (LICENSE-data.md)",
        source="senses-train food (training/food/)",
        runtime={"converter": CONVERTER, "runtime": RUNTIME},
        task_config={
            "feature_spec": spec.to_dict(),
            "feature_mean": [float(v) for v in shipped.standardize.mean],
            "feature_std": [float(v) for v in shipped.standardize.std],
            "baseline_minutes": BASELINE_MINUTES,
            "fresh_threshold": config.fresh_threshold,
        },
    )
    write_card(out_dir, card)
    (out_dir / "LICENSE-data.md").write_text(
        _LICENCE_TEXT.format(runs=", ".join(report.runs)), encoding="utf-8"
    )
    plots = write_plots(out_dir, report)
    (out_dir / "report.md").write_text(markdown_report(report, data_dir, plots), encoding="utf-8")
    (out_dir / "report.json").write_text(
        json.dumps(report_json(report), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
