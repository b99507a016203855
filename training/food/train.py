"""Train, evaluate and export the food-quality classifier (``senses-train food``).

Data: the four shared runs of the Wijaya et al. beef e-nose set (TS1, TS2, TS3, TS5; TS4 is
kept back for acceptance testing and never read here). Features come from
:mod:`device.nose.features` only, the module the station runs, so training and serving cannot
drift apart. Labels: the four sensory classes of the set.

**Evaluation is leave-one-run-out** (train on three runs, test on the fourth): consecutive
minutes of one run are nearly identical, so a random split of minutes puts near-copies of the
test rows into training and reports the interpolation skill, not the skill on a new piece of
meat (research/enose.md §2.1: 0.85 random vs 0.48 leave-one-run-out, 4-class). A random split
is computed only to print it as a labelled warning.

Per fold the feature mean and std come from the three training runs only. The model is a
small Keras MLP with a softmax over the four classes, deterministic for a seed, converted to a
full-integer int8 TFLite file (int8 input and output) with a representative dataset drawn from
the training rows; each fold reports float and int8 accuracy and their agreement. The shipped
model is then trained on all four runs with the same settings.

Model selection is limited to the declared :data:`SEARCH` (``--search``, results in
``models/food_quality/search.md``): one change at a time from :data:`BASE_CONFIG`, and
:data:`DEFAULT_CONFIG` (what ships) is the variant the rule stated there picked. Everything
else is fixed in advance.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from device.errors import RecordingError
from device.nose.features import (
    BASELINE_MINUTES,
    FEATURE_VERSION,
    Baseline,
    FeatureSpec,
    compute_features,
)
from device.nose.recording import Recording
from training.food.data import FRESH_LABELS, LABELS, label_indices, load_beef_runs

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

MODEL_NAME = "food_quality"
CONVERTER = "tensorflow-cpu 2.21.0"
RUNTIME = "ai-edge-litert 2.3.0"
DATASET_NAME = "Wijaya et al. beef e-nose (Mendeley Data doi:10.17632/mwmhh766fc, v3)"
CITATION = (
    'D. R. Wijaya, R. Sarno, E. Zulaika, "Electronic nose dataset for beef quality monitoring '
    'in uncontrolled ambient conditions", Data in Brief 21 (2018) 2414-2420, '
    "doi:10.1016/j.dib.2018.11.091. Dataset: Mendeley Data doi:10.17632/mwmhh766fc (v3)."
)
DATA_LICENCE = "CC BY 4.0"
#: Rows of the training set used to calibrate the int8 ranges.
REPRESENTATIVE_ROWS = 1000
_FRESH = np.array([label in FRESH_LABELS for label in LABELS])


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides the model. Stored in the card."""

    spec: FeatureSpec = field(default_factory=FeatureSpec)
    hidden_units: tuple[int, ...] = (32, 16)
    dropout: float = 0.1
    l2: float = 1e-4
    learning_rate: float = 3e-3
    batch_size: int = 256
    epochs: int = 40
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "feature_spec": self.spec.to_dict(),
            "hidden_units": list(self.hidden_units),
            "dropout": self.dropout,
            "l2": self.l2,
            "learning_rate": self.learning_rate,
            "batch_size": self.batch_size,
            "epochs": self.epochs,
            "seed": self.seed,
        }


#: The starting point, fixed before the search: compensated response and 10/30 min slopes of
#: all nine sensors, no absolute climate (the station's kitchen is not Surabaya's 29-40 °C).
BASE_CONFIG = TrainConfig()

_NO_MQ5_MQ6 = tuple(s for s in FeatureSpec().sensors if s not in ("MQ5", "MQ6"))

#: The declared search (``--search``): one change at a time from the base. Rule: ship the base
#: unless a variant beats it by ≥ 0.05 mean leave-one-run-out fresh/not accuracy (int8)
#: without losing 4-class accuracy; then ship the best such variant.
SEARCH: dict[str, TrainConfig] = {
    "base": BASE_CONFIG,
    "linear (no hidden layer)": replace(BASE_CONFIG, hidden_units=()),
    "no climate compensation": replace(
        BASE_CONFIG, spec=replace(BASE_CONFIG.spec, compensate_climate=False)
    ),
    "plus T and RH inputs": replace(
        BASE_CONFIG, spec=replace(BASE_CONFIG.spec, include_climate=True)
    ),
    # enose.md §2.1 documents TS1's MQ5/MQ6 rising 12-20x instead of falling (a sensor fault).
    "without MQ5, MQ6": replace(BASE_CONFIG, spec=replace(BASE_CONFIG.spec, sensors=_NO_MQ5_MQ6)),
}

#: What ships: the rule picked "without MQ5, MQ6" (+0.11 fresh/not, +0.06 4-class over the
#: base, all of it on TS1, the run with the faulty MQ5/MQ6; see search.md).
DEFAULT_CONFIG = SEARCH["without MQ5, MQ6"]


@dataclass(frozen=True)
class RunData:
    """Feature rows and labels of one run."""

    name: str
    features: FloatArray
    labels: IntArray


def run_features(recording: Recording, spec: FeatureSpec) -> RunData:
    """Features and labels of one run. The baseline is the median of its first
    :data:`BASELINE_MINUTES` minutes (the beef runs have no food-free minutes: see
    :data:`device.nose.features.BASELINE_MINUTES`)."""
    columns = [recording.sensors.index(s) for s in spec.sensors]
    rs = recording.rs_kohm[:, columns]
    baseline = Baseline.from_clean_air(
        rs[:BASELINE_MINUTES],
        recording.temperature_c[:BASELINE_MINUTES],
        recording.humidity_pct[:BASELINE_MINUTES],
    )
    features = compute_features(rs, recording.temperature_c, recording.humidity_pct, baseline, spec)
    labels = label_indices(recording)[spec.window_minutes - 1 :]
    keep = ~np.isnan(features).any(axis=1)
    return RunData(recording.path.stem, features[keep], labels[keep])


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


@dataclass(frozen=True)
class Scores:
    """Accuracies of predicted class indices against true ones."""

    accuracy_4class: float
    accuracy_fresh: float

    @classmethod
    def of(cls, predicted: IntArray, true: IntArray) -> Scores:
        return cls(
            float(np.mean(predicted == true)),
            float(np.mean(_FRESH[predicted] == _FRESH[true])),
        )

    def to_dict(self) -> dict[str, float]:
        return {
            "accuracy_4class": round(self.accuracy_4class, 4),
            "accuracy_fresh_binary": round(self.accuracy_fresh, 4),
        }


@dataclass(frozen=True)
class FoldResult:
    """One held-out run."""

    run: str
    rows: int
    float_scores: Scores
    int8_scores: Scores
    agreement: float  # share of rows where the float and int8 models pick the same class
    confusion_int8: IntArray  # [true, predicted]

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "float": self.float_scores.to_dict(),
            "int8": self.int8_scores.to_dict(),
            "float_int8_agreement": round(self.agreement, 4),
        }


def _mean_scores(scores: Sequence[Scores]) -> Scores:
    return Scores(
        float(np.mean([s.accuracy_4class for s in scores])),
        float(np.mean([s.accuracy_fresh for s in scores])),
    )


def confusion(predicted: IntArray, true: IntArray) -> IntArray:
    matrix = np.zeros((len(LABELS), len(LABELS)), dtype=np.int64)
    np.add.at(matrix, (true, predicted), 1)
    return matrix


# --- the model ------------------------------------------------------------------------------


def _tf() -> Any:
    """TensorFlow, imported on first use (slow to import; quiet about its CPU banner)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return tf


def build_model(n_features: int, config: TrainConfig) -> Any:
    """Dense(relu) layers of ``hidden_units`` with dropout, then a 4-way softmax."""
    tf = _tf()
    regularizer = tf.keras.regularizers.L2(config.l2)
    layers: list[Any] = [tf.keras.Input(shape=(n_features,), name="features")]
    for units in config.hidden_units:
        layers.append(
            tf.keras.layers.Dense(units, activation="relu", kernel_regularizer=regularizer)
        )
        if config.dropout > 0:
            layers.append(tf.keras.layers.Dropout(config.dropout))
    layers.append(
        tf.keras.layers.Dense(len(LABELS), activation="softmax", kernel_regularizer=regularizer)
    )
    return tf.keras.Sequential(layers, name=MODEL_NAME)


def fit(
    x: FloatArray, y: IntArray, config: TrainConfig, on_epoch: Callable[[], None] | None = None
) -> Any:
    """A trained Keras model; the same inputs and seed give the same weights."""
    tf = _tf()
    tf.keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    model = build_model(x.shape[1], config)
    model.compile(
        optimizer=tf.keras.optimizers.Adam(config.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    callbacks = []
    if on_epoch is not None:
        callbacks.append(tf.keras.callbacks.LambdaCallback(on_epoch_end=lambda *_: on_epoch()))
    model.fit(
        x.astype(np.float32),
        y,
        batch_size=config.batch_size,
        epochs=config.epochs,
        shuffle=True,
        verbose=0,
        callbacks=callbacks,
    )
    return model


def predict_float(model: Any, x: FloatArray) -> FloatArray:
    return np.asarray(model.predict(x.astype(np.float32), verbose=0), dtype=np.float64)


def to_int8_tflite(model: Any, representative: FloatArray, seed: int) -> bytes:
    """Full-integer int8 TFLite (int8 input and output) with a dynamic batch axis."""
    tf = _tf()
    rng = np.random.default_rng(seed)
    rows = representative[
        rng.choice(len(representative), min(REPRESENTATIVE_ROWS, len(representative)), False)
    ].astype(np.float32)

    def dataset() -> Iterator[list[npt.NDArray[np.float32]]]:
        for row in rows:
            yield [row[np.newaxis, :]]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    with (
        _native_output_to_file() as log,
        contextlib.redirect_stdout(io.StringIO()),
        warnings.catch_warnings(),
    ):
        # "Statistics for quantized inputs were expected": the int8 input's scale comes from
        # the representative dataset, which is what we want.
        warnings.simplefilter("ignore", UserWarning)
        try:
            return bytes(converter.convert())
        except Exception as e:  # the converter raises many types; keep its log with them
            raise RuntimeError(f"TFLite conversion failed: {e}\n{log.tail()}") from e


class _CapturedOutput:
    def __init__(self, sink: Any) -> None:
        self._sink = sink

    def tail(self, chars: int = 4000) -> str:
        self._sink.flush()
        self._sink.seek(0)
        return str(self._sink.read().decode("utf-8", "replace")[-chars:])


@contextlib.contextmanager
def _native_output_to_file() -> Iterator[_CapturedOutput]:
    """Send file descriptors 1 and 2 to a temporary file for the duration.

    The converter logs from C++ and Keras prints its export summary on every conversion;
    they would bury the progress bar and the summary table. Kept to explain a failure.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile() as sink:
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            yield _CapturedOutput(sink)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def predict_int8(tflite_model: bytes, x: FloatArray) -> FloatArray:
    """Class probabilities from the int8 model, as the station computes them (quantize the
    standardized features with the input's scale and zero point, dequantize the output)."""
    from device.inference import dequantize, make_interpreter, quantize

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.tflite"
        path.write_bytes(tflite_model)
        interpreter = make_interpreter(path, num_threads=1)
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    interpreter.resize_tensor_input(inp["index"], [len(x), x.shape[1]], strict=True)
    interpreter.allocate_tensors()
    scale, zero_point = inp["quantization"]
    interpreter.set_tensor(inp["index"], quantize(x, scale, zero_point, "int8"))
    interpreter.invoke()
    scale, zero_point = out["quantization"]
    return np.asarray(
        dequantize(interpreter.get_tensor(out["index"]), scale, zero_point), dtype=np.float64
    )


def count_parameters(model: Any) -> int:
    return int(model.count_params())


# --- evaluation -----------------------------------------------------------------------------


def evaluate_fold(
    runs: Sequence[RunData],
    held_out: str,
    config: TrainConfig,
    on_epoch: Callable[[], None] | None = None,
) -> FoldResult:
    """Train on every run but ``held_out``, test on ``held_out``."""
    train = [r for r in runs if r.name != held_out]
    (test,) = [r for r in runs if r.name == held_out]
    x_train = np.concatenate([r.features for r in train])
    y_train = np.concatenate([r.labels for r in train])
    standardize = Standardizer.fit(x_train)
    model = fit(standardize(x_train), y_train, config, on_epoch)
    x_test = standardize(test.features)
    float_pred = predict_float(model, x_test).argmax(axis=1)
    int8_pred = predict_int8(
        to_int8_tflite(model, standardize(x_train), config.seed), x_test
    ).argmax(axis=1)
    return FoldResult(
        run=held_out,
        rows=len(test.labels),
        float_scores=Scores.of(float_pred, test.labels),
        int8_scores=Scores.of(int8_pred, test.labels),
        agreement=float(np.mean(float_pred == int8_pred)),
        confusion_int8=confusion(int8_pred, test.labels),
    )


def random_split_scores(
    runs: Sequence[RunData], config: TrainConfig, on_epoch: Callable[[], None] | None = None
) -> Scores:
    """The leaky number: a random 80/20 split of all minutes. Only ever printed as a warning."""
    x = np.concatenate([r.features for r in runs])
    y = np.concatenate([r.labels for r in runs])
    order = np.random.default_rng(config.seed).permutation(len(y))
    cut = int(0.8 * len(y))
    standardize = Standardizer.fit(x[order[:cut]])
    model = fit(standardize(x[order[:cut]]), y[order[:cut]], config, on_epoch)
    predicted = predict_float(model, standardize(x[order[cut:]])).argmax(axis=1)
    return Scores.of(predicted.astype(np.int64), y[order[cut:]])


# --- the whole job --------------------------------------------------------------------------


@dataclass
class TrainingReport:
    """What one ``senses-train food`` run produced."""

    config: TrainConfig
    runs: list[str]  # every run the shipped model is trained on
    folds: list[FoldResult]
    random_split: Scores | None
    parameters: int
    model_bytes: int
    wall_time_s: float
    train_rows: int
    shipped_training_scores: Scores  # the shipped int8 model on its own training rows
    out_dir: Path

    def mean(self, kind: str) -> Scores:
        return _mean_scores([getattr(f, f"{kind}_scores") for f in self.folds])

    def metrics(self) -> dict[str, Any]:
        folds: dict[str, Any] = {f.run: f.to_dict() for f in self.folds}
        return {
            "leave_one_run_out": {
                **folds,
                "mean": {
                    "float": self.mean("float").to_dict(),
                    "int8": self.mean("int8").to_dict(),
                    "float_int8_agreement": round(
                        float(np.mean([f.agreement for f in self.folds])), 4
                    ),
                },
                "held_out_runs": [f.run for f in self.folds],
            },
            "reference_linear_model_leave_one_run_out": {
                "accuracy_4class": 0.48,
                "accuracy_fresh_binary": 0.75,
                "source": "research/enose.md §2.1, numpy softmax regression on log Rs",
            },
            "random_split_80_20_LEAKY_do_not_quote": None
            if self.random_split is None
            else self.random_split.to_dict(),
            "shipped_model_on_its_training_rows_int8": self.shipped_training_scores.to_dict(),
            "parameters": self.parameters,
            "model_bytes": self.model_bytes,
        }


def _progress(total: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="epoch", disable=not enabled, leave=False)


def train_food(
    data_dir: Path,
    out_dir: Path,
    *,
    config: TrainConfig = DEFAULT_CONFIG,
    folds: str = "all",
    with_random_split: bool = True,
    progress: bool = True,
) -> TrainingReport:
    """Leave-one-run-out evaluation, then train on all runs and write ``out_dir``."""
    started = time.monotonic()
    spec = config.spec
    recordings = load_beef_runs(data_dir, sensors=spec.sensors, min_rows=spec.window_minutes)
    runs = [run_features(r, spec) for r in recordings]
    for run in runs:
        if len(run.labels) == 0:
            raise RecordingError(f"{run.name}: no complete feature window (every one has a gap)")
    held_out = [r.name for r in runs] if folds == "all" else [runs[0].name]
    trainings = len(held_out) + 1 + int(with_random_split)
    results: list[FoldResult] = []
    with _progress(trainings * config.epochs, progress) as bar:
        for name in held_out:
            bar.set_description(f"held out {name}")
            results.append(evaluate_fold(runs, name, config, lambda: bar.update(1)))
        random_split = None
        if with_random_split:
            bar.set_description("random split")
            random_split = random_split_scores(runs, config, lambda: bar.update(1))
        bar.set_description("shipped model")
        x = np.concatenate([r.features for r in runs])
        y = np.concatenate([r.labels for r in runs])
        standardize = Standardizer.fit(x)
        model = fit(standardize(x), y, config, lambda: bar.update(1))
        tflite_model = to_int8_tflite(model, standardize(x), config.seed)

    shipped = Scores.of(predict_int8(tflite_model, standardize(x)).argmax(axis=1), y)
    report = TrainingReport(
        config=config,
        runs=[r.name for r in runs],
        folds=results,
        random_split=random_split,
        parameters=count_parameters(model),
        model_bytes=len(tflite_model),
        wall_time_s=0.0,
        train_rows=len(y),
        shipped_training_scores=shipped,
        out_dir=out_dir,
    )
    report.wall_time_s = time.monotonic() - started
    write_model_folder(out_dir, tflite_model, standardize.mean, standardize.std, report, data_dir)
    return report


def search(
    data_dir: Path, *, seed: int, epochs: int, progress: bool = True
) -> dict[str, TrainingReport]:
    """Leave-one-run-out scores of every :data:`SEARCH` variant (nothing is written)."""
    results: dict[str, TrainingReport] = {}
    for name, variant in SEARCH.items():
        config = replace(variant, seed=seed, epochs=epochs)
        spec = config.spec
        recordings = load_beef_runs(data_dir, sensors=spec.sensors, min_rows=spec.window_minutes)
        runs = [run_features(r, spec) for r in recordings]
        started = time.monotonic()
        with _progress(len(runs) * config.epochs, progress) as bar:
            bar.set_description(name)
            folds = [evaluate_fold(runs, r.name, config, lambda: bar.update(1)) for r in runs]
        results[name] = TrainingReport(
            config=config,
            runs=[r.name for r in runs],
            folds=folds,
            random_split=None,
            parameters=0,
            model_bytes=0,
            wall_time_s=time.monotonic() - started,
            train_rows=0,
            shipped_training_scores=Scores(0.0, 0.0),
            out_dir=Path(),
        )
    return results


def summary_table(report: TrainingReport) -> str:
    """Plain-text per-fold table (also used in report.md)."""
    lines = [
        "| held-out run | rows | 4-class float | 4-class int8 | fresh/not float "
        "| fresh/not int8 | float=int8 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for f in report.folds:
        lines.append(
            f"| {f.run} | {f.rows} | {f.float_scores.accuracy_4class:.3f} "
            f"| {f.int8_scores.accuracy_4class:.3f} | {f.float_scores.accuracy_fresh:.3f} "
            f"| {f.int8_scores.accuracy_fresh:.3f} | {f.agreement:.3f} |"
        )
    mf, mi = report.mean("float"), report.mean("int8")
    agreement = float(np.mean([f.agreement for f in report.folds]))
    lines.append(
        f"| **mean** | | **{mf.accuracy_4class:.3f}** | **{mi.accuracy_4class:.3f}** "
        f"| **{mf.accuracy_fresh:.3f}** | **{mi.accuracy_fresh:.3f}** | {agreement:.3f} |"
    )
    return "\n".join(lines)


def confusion_text(matrix: IntArray) -> str:
    width = max(len(label) for label in LABELS) + 2
    head = "true \\ predicted".ljust(width + 6) + "".join(name.rjust(width) for name in LABELS)
    rows = [head]
    for label, counts in zip(LABELS, matrix, strict=True):
        rows.append(label.ljust(width + 6) + "".join(str(int(c)).rjust(width) for c in counts))
    return "\n".join(rows)


# --- the model folder -----------------------------------------------------------------------

_LICENCE_TEXT = f"""# Data licence and attribution

`model.tflite` in this folder was trained on data licensed under {DATA_LICENCE}
(https://creativecommons.org/licenses/by/4.0/). The model is distributed with this attribution:

{CITATION}

Runs used: {{runs}} (TS4 was not used: it is kept back for acceptance testing).
The data were not modified; features were computed from them by `device/nose/features.py`
(see `training/data/beef_wijaya/README.md` for the copies and their checksums).

The model file itself, like the rest of the project, is under the Apache License 2.0.
"""

_IS_AND_IS_NOT = """## What this model is

* A {parameters}-parameter MLP ({layers}, softmax) over {n_features} features of {n_sensors} MQ
  sensors, full-integer int8 ({model_bytes} bytes). It names one of four stages of *beef*
  spoilage (excellent / good / acceptable / spoiled, the sensory classes of the Wijaya et al.
  set); the station's verdict "fresh" = excellent or good.
* Features (`device/nose/features.py`, version {feature_version}): each sensor's log resistance
  relative to a baseline (climate-compensated: {compensated}), averaged over
  {smooth} min, and its slopes over {slopes} min, per hour. It needs {window} consecutive
  one-minute samples before its first answer. Nothing in it encodes time since the start.

## What it is not

* **Not validated beyond four runs of one lab's chamber**: 500 g of extra-lean beef at
  29-40 °C and 41-100 %RH, 2016 and 2018, in Surabaya. Four runs are a tiny sample: the
  per-run accuracies above spread widely ({spread}). TS4 (held back) is the next independent
  check.
* **Its baseline differs from the station's.** The beef runs start with the meat already in
  the chamber, so training takes the first {baseline} minutes *with fresh beef* as the
  baseline. On the station the baseline is clean air before the food goes in, so even fresh
  food gives a negative response the model never saw at minute 0: expect it to err towards
  "not fresh" until it is retrained on the station's own recordings.
* Not a food-safety device: no other food, no refrigerated food, no sensor unit other than
  the dataset's, and the TS1 run shows how a single faulty sensor (its MQ5/MQ6 rose 12-20x
  instead of falling) can flip the answer for a whole run.
"""


def _tensor_card_entries(model_path: Path, spec: FeatureSpec) -> tuple[list[Any], list[Any]]:
    from device.inference import read_tensor_specs

    (inp,), (out,) = read_tensor_specs(model_path)
    inputs = [
        inp.model_copy(
            update={
                "name": "features",
                "preprocessing": (
                    "device.nose.features.compute_features(rs_kohm[window_minutes, S], "
                    "temperature_c, humidity_pct, baseline, FeatureSpec.from_dict("
                    "task_config.feature_spec)) -> one row of "
                    f"{len(spec.names())} features; then (x - task_config.feature_mean) / "
                    "task_config.feature_std; then quantize with this tensor's scale and "
                    "zero_point. Rows holding NaN (missed samples) must be skipped."
                ),
            }
        )
    ]
    outputs = [
        out.model_copy(
            update={
                "name": "probabilities",
                "preprocessing": (
                    "dequantize ((q - zero_point) * scale) to class probabilities in the "
                    "order of labels; fresh = excellent + good"
                ),
            }
        )
    ]
    return inputs, outputs


def write_model_folder(
    out_dir: Path,
    tflite_model: bytes,
    feature_mean: FloatArray,
    feature_std: FloatArray,
    report: TrainingReport,
    data_dir: Path,
) -> None:
    """Write model.tflite, card.json (validated by device.inference), LICENSE-data.md and
    report.md into ``out_dir``."""
    from device.inference import CARD_SCHEMA_VERSION, ModelCard, write_card

    config = report.config
    spec = config.spec
    used_runs = report.runs
    out_dir.mkdir(parents=True, exist_ok=True)
    model_path = out_dir / "model.tflite"
    model_path.write_bytes(tflite_model)
    inputs, outputs = _tensor_card_entries(model_path, spec)
    mean_int8 = report.mean("int8")
    card = ModelCard(
        schema_version=CARD_SCHEMA_VERSION,
        name=MODEL_NAME,
        description=(
            "Beef spoilage stage (excellent / good / acceptable / spoiled) from MQ gas-sensor "
            "resistances relative to a clean-air baseline, with 10 and 30 min slopes. Fresh = "
            "excellent or good."
        ),
        model_file="model.tflite",
        sha256="0" * 64,  # write_card computes it from the file
        inputs=inputs,
        outputs=outputs,
        labels=list(LABELS),
        training_data={
            "dataset": DATASET_NAME,
            "runs": used_runs,
            "withheld_runs": ["TS4 (acceptance testing)"],
            "rows": report.train_rows,
            "licence": DATA_LICENCE,
            "citation": CITATION,
            "copy": "training/data/beef_wijaya/ (see its README.md)",
            "baseline": f"median of each run's first {BASELINE_MINUTES} minutes (beef present)",
            "settings": config.to_dict(),
        },
        metrics=report.metrics(),
        evaluation=(
            f"Leave-one-run-out over {', '.join(f.run for f in report.folds)}: trained on the "
            "other runs (feature mean/std from them only), tested on the held-out run; "
            f"mean int8 accuracy {mean_int8.accuracy_4class:.2f} (4-class) and "
            f"{mean_int8.accuracy_fresh:.2f} (fresh vs not). The shipped model is trained on "
            "all four runs. Random splits of minutes leak and are not used."
        ),
        licence="Apache-2.0 (model); training data CC BY 4.0, Wijaya et al. 2018 (LICENSE-data.md)",
        source="senses-train food (training/food/train.py)",
        runtime={"converter": CONVERTER, "runtime": RUNTIME},
        task_config={
            "feature_spec": spec.to_dict(),
            "feature_mean": [float(v) for v in feature_mean],
            "feature_std": [float(v) for v in feature_std],
            "baseline_minutes": BASELINE_MINUTES,
        },
    )
    write_card(out_dir, card)
    (out_dir / "LICENSE-data.md").write_text(
        _LICENCE_TEXT.format(runs=", ".join(used_runs)), encoding="utf-8"
    )
    (out_dir / "report.md").write_text(markdown_report(report, data_dir), encoding="utf-8")


def _spread(report: TrainingReport) -> str:
    if len(report.folds) < 2:
        return "only one run was held out in this training"
    parts = []
    for what, attr in (("4-class", "accuracy_4class"), ("fresh/not", "accuracy_fresh")):
        values = np.array([getattr(f.int8_scores, attr) for f in report.folds])
        error = values.std(ddof=1) / np.sqrt(len(values))
        parts.append(f"standard error of the {what} mean {error:.2f}")
    return ", ".join(parts)


def _selection_note(config: TrainConfig) -> str:
    chosen = next(
        (
            name
            for name, variant in SEARCH.items()
            if replace(variant, seed=config.seed, epochs=config.epochs) == config
        ),
        None,
    )
    note = (
        "Only the declared search in `training/food/train.py` (`SEARCH`, run with "
        "`senses-train food --search`, table in `search.md` when present) was tried; "
        "choosing by the same held-out runs makes the chosen figures somewhat optimistic. "
    )
    if chosen is None:
        return note + "These settings are not among the search's variants."
    note += f"These settings are the variant '{chosen}'."
    if chosen == "without MQ5, MQ6":
        note += (
            " All of its gain over the nine-sensor base is on TS1, the run whose MQ5/MQ6 were "
            "known to be faulty before training (research/enose.md §2.1): treat the TS1 "
            "figure as optimistic and the base's numbers in `search.md` as the "
            "selection-free estimate."
        )
    return note


def _fresh_errors(matrix: IntArray) -> str:
    """The two ways the fresh/not verdict fails, from a 4-class confusion matrix."""
    fresh = _FRESH
    not_fresh_called_fresh = int(matrix[~fresh][:, fresh].sum())
    fresh_called_not = int(matrix[fresh][:, ~fresh].sum())
    acceptable = LABELS.index("acceptable")
    return (
        f"Fresh/not errors: {not_fresh_called_fresh} of {int(matrix[~fresh].sum())} not-fresh "
        f"minutes were called fresh ({not_fresh_called_fresh / matrix[~fresh].sum():.0%}; "
        f"{int(matrix[acceptable][fresh].sum())} of them were 'acceptable', the stage right "
        f"after 'good'), and {fresh_called_not} of {int(matrix[fresh].sum())} fresh minutes "
        f"were called not fresh ({fresh_called_not / matrix[fresh].sum():.0%}). Calling "
        "spoiling food fresh is the costly error for a person who cannot smell it."
    )


def _shown(path: Path) -> Path:
    """``path`` relative to the working folder when it is inside it (no machine paths)."""
    try:
        return path.resolve().relative_to(Path.cwd())
    except ValueError:
        return path


def markdown_report(report: TrainingReport, data_dir: Path) -> str:
    """report.md: per-fold table, confusion matrix, what the model is and is not."""
    spec = report.config.spec
    pooled = sum((f.confusion_int8 for f in report.folds), np.zeros((4, 4), dtype=np.int64))
    parts = [
        "# food_quality: report",
        "",
        "Written by `senses-train food`; every number here comes from that run "
        f"(data {_shown(data_dir)}, seed {report.config.seed}, {report.config.epochs} epochs, "
        f"{report.wall_time_s:.0f} s).",
        "",
        "## Leave-one-run-out accuracy",
        "",
        "Train on the other runs, test on the held-out one; fresh = excellent or good. "
        "Reference: a linear softmax model on log Rs scores 0.48 (4-class) and 0.75 "
        "(fresh/not) in research/enose.md §2.1.",
        "",
        summary_table(report),
        "",
    ]
    if report.random_split is not None:
        parts += [
            f"*Leakage warning*: a random 80/20 split of the same minutes scores "
            f"{report.random_split.accuracy_4class:.3f} (4-class) and "
            f"{report.random_split.accuracy_fresh:.3f} (fresh/not). That number measures "
            "interpolation between neighbouring minutes of the same run and must not be "
            "quoted as the model's accuracy.",
            "",
        ]
    parts += [
        "## Confusion matrix (int8, all held-out rows pooled)",
        "",
        "```text",
        confusion_text(pooled),
        "```",
        "",
        f"The shipped model (all runs) on its own training rows, int8: "
        f"{report.shipped_training_scores.accuracy_4class:.3f} (4-class), "
        f"{report.shipped_training_scores.accuracy_fresh:.3f} (fresh/not); a fit check, not "
        "an accuracy.",
        "",
        _fresh_errors(pooled),
        "",
        "## Model selection",
        "",
        _selection_note(report.config),
        "",
        _IS_AND_IS_NOT.format(
            parameters=report.parameters,
            layers=" → ".join(
                [str(len(spec.names())), *map(str, report.config.hidden_units), str(len(LABELS))]
            ),
            n_features=len(spec.names()),
            n_sensors=len(spec.sensors),
            model_bytes=report.model_bytes,
            feature_version=FEATURE_VERSION,
            compensated="yes" if spec.compensate_climate else "no",
            smooth=spec.smooth_minutes,
            slopes=" and ".join(map(str, spec.slope_minutes)),
            window=spec.window_minutes,
            baseline=BASELINE_MINUTES,
            spread=_spread(report),
        ),
    ]
    return "\n".join(parts)


def search_markdown(results: dict[str, TrainingReport]) -> str:
    """search.md: the declared search, one row per variant."""
    lines = [
        "# food_quality: declared search (leave-one-run-out, int8)",
        "",
        "Each variant changes one thing from the base (`training/food/train.py`, `SEARCH`). "
        "Rule: keep the base unless a variant beats it by ≥ 0.05 mean fresh/not accuracy "
        "without losing 4-class accuracy; then ship the best such variant. Disclosure: the "
        "rule was written after a quick exploratory check with a linear model had already "
        "shown that leaving out MQ5/MQ6 helps on TS1.",
        "",
        "| variant | 4-class per run | 4-class mean | fresh/not per run | fresh/not mean |",
        "|---|---|---:|---|---:|",
    ]
    for name, result in results.items():
        four = " / ".join(f"{f.int8_scores.accuracy_4class:.2f}" for f in result.folds)
        fresh = " / ".join(f"{f.int8_scores.accuracy_fresh:.2f}" for f in result.folds)
        mean = result.mean("int8")
        lines.append(
            f"| {name} | {four} | {mean.accuracy_4class:.3f} | {fresh} "
            f"| {mean.accuracy_fresh:.3f} |"
        )
    runs = " / ".join(f.run for f in next(iter(results.values())).folds)
    lines += ["", f"Runs in order: {runs}.", ""]
    return "\n".join(lines)
