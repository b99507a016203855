"""Leave-one-run-out evaluation of the food model, as a person with new food would meet it.

* **Held-out runs**: train on three beef runs, test on the fourth. Consecutive minutes of one
  run are near-copies, so a random split of minutes reports interpolation, not the skill on a
  new piece of meat (research/enose.md §2.1: 0.98 random vs 0.75 unseen run, binary).
* **Late starts**: the labels of these runs change at almost the same minute in every run, so
  a model could score by learning a clock. Each held-out run is replayed from minutes 600,
  900 and 1200 with the calibration from its start kept and nothing of the skipped minutes
  seen; accuracy over the first hour after each start is compared with the full run.
* **Float vs int8**: every fold is converted to int8 and scored as the station runs it.
* **Seed ensemble**: the networks of those seeds averaged into one model, scored like one.
* **Reproducibility**: the same fold trained with other seeds; the relative difference of the
  predicted "fresh" probability between two trainings (Shamir & Lin's relative prediction
  difference), for ReLU and SmeLU.

Per fold the feature mean and std come from the training runs only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from device.errors import RecordingError
from device.nose.features import BASELINE_MINUTES, Baseline, FeatureSpec, compute_features
from device.nose.recording import Recording
from training.food.config import LATE_START_HOURS, LATE_STARTS_MINUTE, TrainConfig
from training.food.data import FRESH_LABELS, LABELS, label_indices
from training.food.model import (
    Predictions,
    average_of,
    fit,
    predict_float,
    predict_int8,
    to_int8_tflite,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

FRESH = np.array([label in FRESH_LABELS for label in LABELS])
_MINUTES_PER_HOUR = 60


@dataclass(frozen=True)
class RunData:
    """Feature rows, labels and TVC of one run (or of a replay of it from a late start)."""

    name: str
    minutes: IntArray  # the minute of the run each row describes
    features: FloatArray
    labels: IntArray
    tvc_log_cfu: FloatArray


def run_features(recording: Recording, spec: FeatureSpec, *, start_minute: int = 1) -> RunData:
    """Features of one run as the station would compute them.

    The baseline is the median of the run's first :data:`BASELINE_MINUTES` minutes (the beef
    runs have no food-free minutes; see :data:`device.nose.features.BASELINE_MINUTES`). With
    ``start_minute`` > 1 the features see only the rows from that minute on, as a station
    switched on then (its calibration from the start kept).
    """
    columns = [recording.sensors.index(s) for s in spec.sensors]
    rs = recording.rs_kohm[:, columns]
    t, rh = recording.temperature_c, recording.humidity_pct
    baseline = Baseline.from_clean_air(
        rs[:BASELINE_MINUTES], t[:BASELINE_MINUTES], rh[:BASELINE_MINUTES]
    )
    first = int(np.searchsorted(recording.minutes, start_minute))
    if spec.since_food_in and first > 0:
        raise ValueError(
            "features that look back to food-in need the run from its first minute; a late "
            "start is a different food-in (its own baseline)"
        )
    if len(recording) - first < spec.first_row_minutes:
        raise RecordingError(
            f"{recording.path}: {len(recording) - first} rows from minute {start_minute}, "
            f"but one feature row needs {spec.first_row_minutes}"
        )
    features = compute_features(rs[first:], t[first:], rh[first:], baseline, spec)
    # Windowed features give a row per full window; features since food-in one per minute
    # (NaN before their first row, dropped below).
    tail = slice(first if spec.since_food_in else first + spec.window_minutes - 1, None)
    labels = label_indices(recording)[tail]
    if recording.tvc_log_cfu is None:
        raise RecordingError(
            f"{recording.path}: no 'TVC' column; training needs the total viable count "
            "(log10 CFU/g) on every row"
        )
    tvc = recording.tvc_log_cfu[tail]
    keep = ~np.isnan(features).any(axis=1) & ~np.isnan(tvc)
    return RunData(
        recording.path.stem, recording.minutes[tail][keep], features[keep], labels[keep], tvc[keep]
    )


@dataclass(frozen=True)
class Standardizer:
    """``(x − mean) / std`` with statistics of the training rows only."""

    mean: FloatArray
    std: FloatArray

    @classmethod
    def fit(cls, x: FloatArray) -> Standardizer:
        std = x.std(axis=0)
        # A constant feature would divide by zero; leave it unscaled.
        return cls(x.mean(axis=0), np.where(std > 1e-9, std, 1.0))

    def __call__(self, x: FloatArray) -> FloatArray:
        return np.asarray((x - self.mean) / self.std, dtype=np.float64)


def fresh_probability(probabilities: FloatArray) -> FloatArray:
    return np.asarray(probabilities[:, FRESH].sum(axis=1), dtype=np.float64)


def called_fresh(probabilities: FloatArray, threshold: float) -> npt.NDArray[np.bool_]:
    """The station's binary verdict: fresh only when P(fresh) ≥ ``threshold``."""
    return np.asarray(fresh_probability(probabilities) >= threshold)


@dataclass(frozen=True)
class Scores:
    """What a person would notice, on some rows."""

    rows: int
    accuracy_4class: float
    accuracy_fresh: float
    not_fresh_called_fresh: float  # share of the not-fresh rows called fresh
    fresh_called_not_fresh: float
    tvc_mae: float  # mean absolute error, log10 CFU/g

    @classmethod
    def of(
        cls, predicted: Predictions, labels: IntArray, tvc: FloatArray, threshold: float
    ) -> Scores:
        fresh_said = called_fresh(predicted.probabilities, threshold)
        fresh_true = FRESH[labels]
        return cls(
            rows=len(labels),
            accuracy_4class=float(np.mean(predicted.probabilities.argmax(axis=1) == labels)),
            accuracy_fresh=float(np.mean(fresh_said == fresh_true)),
            not_fresh_called_fresh=_share(fresh_said[~fresh_true]),
            fresh_called_not_fresh=_share(~fresh_said[fresh_true]),
            tvc_mae=float(np.mean(np.abs(predicted.tvc_log_cfu - tvc))),
        )

    def to_dict(self) -> dict[str, float | int]:
        return {
            "rows": self.rows,
            "accuracy_4class": round(self.accuracy_4class, 4),
            "accuracy_fresh_binary": round(self.accuracy_fresh, 4),
            "not_fresh_called_fresh": round(self.not_fresh_called_fresh, 4),
            "fresh_called_not_fresh": round(self.fresh_called_not_fresh, 4),
            "tvc_mae_log_cfu": round(self.tvc_mae, 4),
        }


def _share(flags: npt.NDArray[np.bool_]) -> float:
    return float(np.mean(flags)) if flags.size else 0.0


def mean_scores(scores: Sequence[Scores]) -> Scores:
    """Mean over runs (each run weighs the same)."""
    return Scores(
        rows=sum(s.rows for s in scores),
        **{
            name: float(np.mean([getattr(s, name) for s in scores]))
            for name in (
                "accuracy_4class",
                "accuracy_fresh",
                "not_fresh_called_fresh",
                "fresh_called_not_fresh",
                "tvc_mae",
            )
        },
    )


def confusion(predicted: IntArray, true: IntArray) -> IntArray:
    matrix = np.zeros((len(LABELS), len(LABELS)), dtype=np.int64)
    np.add.at(matrix, (true, predicted), 1)
    return matrix


@dataclass(frozen=True)
class LateStart:
    """One held-out run replayed from ``start_minute``: the first hour's accuracy."""

    start_minute: int
    scores: Scores  # int8, first hour of verdicts after the start
    same_minutes_full_run: Scores  # int8, the same minutes in the full-run replay


@dataclass(frozen=True)
class FoldResult:
    """One held-out run."""

    run: str
    float_scores: Scores
    int8_scores: Scores
    agreement: float  # share of rows where float and int8 give the same class and verdict
    confusion_int8: IntArray  # [true, predicted]
    minutes: IntArray
    labels: IntArray
    tvc_log_cfu: FloatArray
    int8: Predictions
    float: Predictions
    late_starts: list[LateStart]


@dataclass(frozen=True)
class TrainedFold:
    """A fold's model, kept for the reproducibility comparison and the seed ensemble."""

    standardize: Standardizer
    model: Any
    tflite_model: bytes


def training_rows(runs: Sequence[RunData]) -> tuple[Standardizer, FloatArray]:
    """The standardizer of ``runs`` and their rows standardized with it."""
    x = np.concatenate([r.features for r in runs])
    standardize = Standardizer.fit(x)
    return standardize, standardize(x)


def train_on(
    runs: Sequence[RunData], config: TrainConfig, on_epoch: Callable[[], None] | None = None
) -> TrainedFold:
    """One network per seed of ``config.member_seeds``; several are averaged (seed ensemble)."""
    standardize, x = training_rows(runs)
    labels = np.concatenate([r.labels for r in runs])
    tvc = np.concatenate([r.tvc_log_cfu for r in runs])
    members = [
        fit(x, labels, tvc, on_epoch=on_epoch, **replace(config, seed=seed).fit_settings())
        for seed in config.member_seeds
    ]
    model = members[0] if len(members) == 1 else average_of(members)
    return TrainedFold(standardize, model, to_int8_tflite(model, x, config.seed))


def ensemble_of(members: Sequence[TrainedFold], runs: Sequence[RunData], seed: int) -> TrainedFold:
    """The seed ensemble of networks already trained on ``runs`` (no training: the
    reproducibility study's seeds are reused), converted to int8 like a single network."""
    standardize, x = training_rows(runs)
    for member in members:
        if not np.array_equal(member.standardize.mean, standardize.mean):
            raise ValueError("every member of an ensemble must be trained on the same runs")
    model = average_of([m.model for m in members])
    return TrainedFold(standardize, model, to_int8_tflite(model, x, seed))


def fold_runs(
    recordings: Sequence[Recording], held_out: str, spec: FeatureSpec
) -> tuple[list[RunData], RunData]:
    """The training runs of the fold that holds out ``held_out``, and that run."""
    runs = {r.path.stem: run_features(r, spec) for r in recordings}
    if held_out not in runs:
        raise RecordingError(f"no run named {held_out!r} among {sorted(runs)}")
    return [r for name, r in runs.items() if name != held_out], runs[held_out]


def evaluate_fold(
    recordings: Sequence[Recording],
    held_out: str,
    config: TrainConfig,
    on_epoch: Callable[[], None] | None = None,
) -> tuple[FoldResult, TrainedFold]:
    """Train on every run but ``held_out``, test on ``held_out`` (whole, and late starts)."""
    train_runs, _ = fold_runs(recordings, held_out, config.spec)
    trained = train_on(train_runs, config, on_epoch)
    return score_fold(recordings, held_out, trained, config), trained


def score_fold(
    recordings: Sequence[Recording], held_out: str, trained: TrainedFold, config: TrainConfig
) -> FoldResult:
    """What ``trained`` (trained without ``held_out``) says about it: float, int8, late starts."""
    spec = config.spec
    _, test = fold_runs(recordings, held_out, spec)
    x_test = trained.standardize(test.features)
    float_pred = predict_float(trained.model, x_test)
    int8_pred = predict_int8(trained.tflite_model, x_test)
    threshold = config.fresh_threshold
    same_class = float_pred.probabilities.argmax(1) == int8_pred.probabilities.argmax(1)
    same_verdict = called_fresh(float_pred.probabilities, threshold) == called_fresh(
        int8_pred.probabilities, threshold
    )
    (recording,) = [r for r in recordings if r.path.stem == held_out]
    late = [
        _late_start(recording, start, trained, test, int8_pred, config)
        for start in LATE_STARTS_MINUTE
        if start + spec.window_minutes <= recording.minutes[-1]
    ]
    return FoldResult(
        run=held_out,
        float_scores=Scores.of(float_pred, test.labels, test.tvc_log_cfu, threshold),
        int8_scores=Scores.of(int8_pred, test.labels, test.tvc_log_cfu, threshold),
        agreement=float(np.mean(same_class & same_verdict)),
        confusion_int8=confusion(int8_pred.probabilities.argmax(1), test.labels),
        minutes=test.minutes,
        labels=test.labels,
        tvc_log_cfu=test.tvc_log_cfu,
        int8=int8_pred,
        float=float_pred,
        late_starts=late,
    )


def _rows(predicted: Predictions, keep: npt.NDArray[np.bool_]) -> Predictions:
    return Predictions(predicted.probabilities[keep], predicted.tvc_log_cfu[keep])


def _late_start(
    recording: Recording,
    start_minute: int,
    trained: TrainedFold,
    full: RunData,
    full_int8: Predictions,
    config: TrainConfig,
) -> LateStart:
    """Replay from ``start_minute``: features recomputed from the rows from then on only."""
    late = run_features(recording, config.spec, start_minute=start_minute)
    first_hour = late.minutes < start_minute + int(LATE_START_HOURS * _MINUTES_PER_HOUR)
    predicted = predict_int8(trained.tflite_model, trained.standardize(late.features))
    threshold = config.fresh_threshold
    same = np.isin(full.minutes, late.minutes[first_hour])
    return LateStart(
        start_minute=start_minute,
        scores=Scores.of(
            _rows(predicted, first_hour),
            late.labels[first_hour],
            late.tvc_log_cfu[first_hour],
            threshold,
        ),
        same_minutes_full_run=Scores.of(
            _rows(full_int8, same), full.labels[same], full.tvc_log_cfu[same], threshold
        ),
    )


def relative_prediction_difference(a: FloatArray, b: FloatArray) -> float:
    """Shamir & Lin's relative prediction difference of two trainings' probabilities:
    mean of ``|a − b| / ((a + b) / 2)`` (0 when both are 0)."""
    mean = (a + b) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(mean > 0, np.abs(a - b) / mean, 0.0)
    return float(np.mean(ratio))


@dataclass(frozen=True)
class Reproducibility:
    """One activation trained with several seeds on every fold."""

    activation: str
    seeds: tuple[int, ...]
    relative_difference: float  # of P(fresh), mean over folds and seed pairs
    verdict_disagreement: float  # share of rows whose fresh/not verdict differs, same
    accuracy_fresh: float  # int8, mean over folds and seeds
    accuracy_4class: float
    tvc_mae: float


def reproducibility(
    activation: str,
    seeds: Sequence[int],
    folds: Mapping[tuple[str, int], FoldResult],
    threshold: float,
) -> Reproducibility:
    """Compare the int8 predictions of ``folds`` (by held-out run and seed), all trained with
    ``activation``, between every pair of seeds."""
    differences, disagreements = [], []
    runs = sorted({run for run, _ in folds})
    for run in runs:
        probabilities = [folds[run, seed].int8.probabilities for seed in seeds]
        for i in range(len(seeds)):
            for j in range(i + 1, len(seeds)):
                a, b = probabilities[i], probabilities[j]
                differences.append(
                    relative_prediction_difference(fresh_probability(a), fresh_probability(b))
                )
                disagreements.append(
                    float(np.mean(called_fresh(a, threshold) != called_fresh(b, threshold)))
                )
    mean = mean_scores([fold.int8_scores for fold in folds.values()])
    return Reproducibility(
        activation=activation,
        seeds=tuple(seeds),
        relative_difference=float(np.mean(differences)) if differences else 0.0,
        verdict_disagreement=float(np.mean(disagreements)) if disagreements else 0.0,
        accuracy_fresh=mean.accuracy_fresh,
        accuracy_4class=mean.accuracy_4class,
        tvc_mae=mean.tvc_mae,
    )
