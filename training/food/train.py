"""``senses-train food``: compare model families honestly, then train and ship the winner.

Data: the four shared runs of the Wijaya et al. beef e-nose set (TS1, TS2, TS3, TS5; TS4 is
kept back for acceptance testing and never read here), or a user's own labelled recordings
made with ``senses nose record`` (same columns). Features come from
:mod:`device.nose.features` only, the module the station runs.

Steps:

1. nested leave-one-run-out over the grid of :func:`training.food.families.default_grid`
   (gradient-boosted trees, the MLP, a causal 1D convolution; :mod:`training.food.nested`):
   every choice (features, setting, fresh threshold) made on inner folds only;
2. the shipped candidate, picked by the same rules over all runs (leave-one-run-out), trained
   on all of them and written in the form the station runs: trees compiled into a float32
   TFLite graph (:mod:`training.food.trees`), an MLP as int8; its held-out figures are those of
   that form (compiled trees agree with scikit-learn on every held-out minute; checked);
3. model.tflite, card.json, report.md, report.json and plots.

``folds="first"`` compares nothing: it holds out the first run with one fixed candidate
(:func:`quick_grid`, threshold by the rule on the other runs) and ships it trained on all
runs: the pipeline check CI runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from device.nose.recording import Recording
from training.food.aged import AgedFood, aged_food
from training.food.data import BEEF_RUNS, load_beef_runs, load_recording
from training.food.evaluate import FRESH, RunData, Scores, called_fresh, mean_scores
from training.food.families import Candidate, Fitted, default_grid, member_columns, predict
from training.food.model import Predictions, predict_int8, to_int8_tflite
from training.food.nested import (
    FitCache,
    Held,
    OuterFold,
    alarm_timing,
    choose_threshold,
    mean_of,
    nested_loro,
    scores_of,
)
from training.food.trees import (
    FittedTrees,
    compile_to_tflite,
    count_nodes,
    forest_graph,
    graph_to_tflite,
    predict_tflite,
)

#: Families the station can run today (the conv family would need lagged rows on the device).
DEPLOYABLE_FAMILIES = ("trees", "mlp", "committee")


def quick_grid() -> list[Candidate]:
    """``folds="first"``: the candidate the full comparison shipped last time (trees on the
    shape of the smell since food-in, plain log ratios: #9 of the grid); the last entry ships,
    nothing is compared."""
    return [default_grid()[9]]


@dataclass(frozen=True)
class ShippedFold:
    """The shipped candidate on one held-out run, in the form the station runs."""

    run: str
    threshold: float
    held: Held  # predictions of the shipped form (compiled trees or int8 MLP)
    own: Held  # the fitted model's own predictions (scikit-learn / Keras float)
    agreement: float  # minutes with the same class and verdict in both
    max_probability_difference: float

    @property
    def scores(self) -> Scores:
        return scores_of(self.held, self.threshold)


@dataclass
class TrainingReport:
    """What one ``senses-train food`` run produced."""

    runs: list[str]
    grid: list[Candidate]
    outer: list[OuterFold]  # empty with folds="first" (one candidate, one fold: see shipped)
    shipped_index: int
    shipped_threshold: float
    shipped_folds: list[ShippedFold]
    selection_scores: list[Scores]  # per candidate: LORO over all runs at its rule threshold
    selection_thresholds: list[float]
    model_bytes: int
    invoke_ms: float
    size_note: str  # nodes/parameters in words
    train_rows: int
    final_agreement: float  # shipped form vs fitted model on every training minute
    wall_time_s: float
    full: bool
    # Per candidate (full comparison only): its leave-one-run-out models on food put in late.
    aged: list[list[AgedFood]] = field(default_factory=list)

    @property
    def shipped(self) -> Candidate:
        return self.grid[self.shipped_index]

    def shipped_mean(self) -> Scores:
        return mean_scores([f.scores for f in self.shipped_folds])

    def nested_mean(self) -> Scores:
        return mean_scores([scores_of(o.nested.outer, o.nested.threshold) for o in self.outer])


def load_runs(data_dir: Path, files: Sequence[Path], min_rows: int) -> list[Recording]:
    """The beef runs in ``data_dir``, or the user's labelled recordings ``files``."""
    if files:
        return [load_recording(f, min_rows=min_rows) for f in files]
    return load_beef_runs(data_dir, runs=BEEF_RUNS, min_rows=min_rows)


def shipped_form(fitted: Fitted, runs: Sequence[RunData]) -> bytes:
    """The TFLite file the station would load for ``fitted``: compiled trees or a committee
    as float32 graphs of raw feature rows, an MLP as int8."""
    n_inputs = runs[0].features.shape[1]
    if isinstance(fitted.model, FittedTrees):
        return compile_to_tflite(fitted.model, n_inputs)
    if fitted.candidate.family == "committee":
        return graph_to_tflite(committee_graph(fitted, n_inputs), n_inputs)
    assert fitted.standardize is not None
    x = fitted.standardize(np.concatenate([r.features for r in runs]))
    return to_int8_tflite(fitted.model, x, seed=0)


def committee_graph(fitted: Fitted, n_inputs: int) -> Callable[[Any], tuple[Any, Any]]:
    """One float32 graph averaging the members: trees in GEMM form on their columns, MLPs
    with their standardization inside the graph."""
    from training.tflite_export import tensorflow

    tf = tensorflow()
    parts = []
    for member in fitted.model:
        columns = member_columns(fitted.candidate, member.candidate)
        if isinstance(member.model, FittedTrees):
            parts.append(forest_graph(member.model, n_inputs, columns))
            continue
        assert member.standardize is not None
        parts.append(
            _mlp_graph(
                member.model,
                columns,
                member.standardize.mean.astype(np.float32),
                member.standardize.std.astype(np.float32),
            )
        )

    def graph(features: Any) -> tuple[Any, Any]:
        said = [part(features) for part in parts]
        probabilities = tf.add_n([p for p, _ in said]) / float(len(said))
        tvc = tf.add_n([t for _, t in said]) / float(len(said))
        return probabilities, tvc

    return graph


def _mlp_graph(model: Any, columns: list[int], mean: Any, std: Any) -> Any:
    from training.tflite_export import tensorflow

    tf = tensorflow()

    def graph(features: Any) -> tuple[Any, Any]:
        x = (tf.gather(features, columns, axis=1) - mean) / std
        tvc, probabilities = model(x, training=False)
        return probabilities, tvc

    return graph


def predict_shipped(tflite_model: bytes, fitted: Fitted, rows: RunData) -> Predictions:
    if fitted.standardize is None:  # trees, committees: raw rows
        return predict_tflite(tflite_model, rows.features)
    return predict_int8(tflite_model, fitted.standardize(rows.features))


def agreement(a: Predictions, b: Predictions, threshold: float) -> float:
    same_class = a.probabilities.argmax(1) == b.probabilities.argmax(1)
    same_verdict = called_fresh(a.probabilities, threshold) == called_fresh(
        b.probabilities, threshold
    )
    return float(np.mean(same_class & same_verdict))


def invoke_time_ms(tflite_model: bytes, n_features: int, repeats: int = 200) -> float:
    """Median time of one single-row invoke with the station's runtime (one thread)."""
    import tempfile

    from device.inference import make_interpreter

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.tflite"
        path.write_bytes(tflite_model)
        interpreter = make_interpreter(path, num_threads=1)
    (inp,) = interpreter.get_input_details()
    interpreter.resize_tensor_input(inp["index"], [1, n_features], strict=True)
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], np.zeros((1, n_features), dtype=inp["dtype"]))
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        interpreter.invoke()
        times.append(time.perf_counter() - started)
    return float(np.median(times) * 1000.0)


def _progress(enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(unit="fit", disable=not enabled, leave=False)


def train_food(
    data_dir: Path,
    out_dir: Path,
    *,
    grid: Sequence[Candidate] | None = None,
    folds: str = "all",
    files: Sequence[Path] = (),
    progress: bool = True,
) -> TrainingReport:
    """The whole job; writes ``out_dir`` and returns what it measured."""
    from training.food.nested import prepare_rows
    from training.food.report import write_model_folder

    started = time.monotonic()
    full = folds == "all"
    grid = list(grid if grid is not None else (default_grid() if full else quick_grid()))
    window = max(c.spec.first_row_minutes for c in grid)
    recordings = load_runs(data_dir, files, window)
    names = [r.path.stem for r in recordings]
    rows = prepare_rows(recordings, grid)
    with _progress(progress) as bar:

        def on_fit(what: str) -> None:
            bar.set_description(what)
            bar.update(1)

        tick: Callable[[str], None] = on_fit
        cache = FitCache(grid, rows, tick)
        outer = nested_loro(names, grid, cache) if full else []
        # The shipped candidate: the same rules over all runs (leave-one-run-out).
        held_out = names if full else names[:1]
        per_candidate = []
        for c in range(len(grid)):
            helds = [cache.held(c, [r for r in names if r != h], h) for h in held_out]
            per_candidate.append(helds)
        if full:
            thresholds = [choose_threshold(h) for h in per_candidate]
        else:  # the rule on the other runs (inner folds of the one held-out run)
            rest = names[1:]
            thresholds = [
                choose_threshold([cache.held(c, [r for r in rest if r != i], i) for i in rest])
                for c in range(len(grid))
            ]
        selection = [mean_of(h, t) for h, t in zip(per_candidate, thresholds, strict=True)]
        deployable = [i for i, c in enumerate(grid) if c.family in DEPLOYABLE_FAMILIES]
        shipped = max(
            deployable,
            key=lambda i: (selection[i].accuracy_fresh, -selection[i].tvc_mae),
        )
        if not full:
            shipped = len(grid) - 1
        threshold = thresholds[shipped]
        # The shipped form of each held-out fold, against the fitted model's own answers.
        shipped_folds = []
        for held in per_candidate[shipped]:
            train = [r for r in names if r != held.run]
            fitted = cache.fit(shipped, train)
            bar.set_description(f"shipped form, held out {held.run}")
            form = shipped_form(fitted, [rows[shipped][r] for r in sorted(train)])
            said = predict_shipped(form, fitted, held.rows)
            shipped_folds.append(
                ShippedFold(
                    run=held.run,
                    threshold=threshold,
                    held=Held(held.run, held.rows, said),
                    own=held,
                    agreement=agreement(said, held.predicted, threshold),
                    max_probability_difference=float(
                        np.abs(said.probabilities - held.predicted.probabilities).max()
                    ),
                )
            )
        bar.set_description("shipped model, all runs")
        all_rows = [rows[shipped][r] for r in names]
        final = cache.fit(shipped, names)
        tflite_model = shipped_form(final, all_rows)
        every_minute = RunData(
            "all",
            np.concatenate([r.minutes for r in all_rows]),
            np.concatenate([r.features for r in all_rows]),
            np.concatenate([r.labels for r in all_rows]),
            np.concatenate([r.tvc_log_cfu for r in all_rows]),
        )
        final_agreement = agreement(
            predict_shipped(tflite_model, final, every_minute),
            predict(final, every_minute),
            threshold,
        )
        aged = []
        if full:
            bar.set_description("aged food")
            by_name = {r.path.stem: r for r in recordings}
            aged = [aged_food(cache, c, by_name, thresholds[c]) for c in range(len(grid))]
    n_features = all_rows[0].features.shape[1]
    size_note = describe_size(final)
    report = TrainingReport(
        runs=names,
        grid=grid,
        outer=outer,
        shipped_index=shipped,
        shipped_threshold=threshold,
        shipped_folds=shipped_folds,
        selection_scores=selection,
        selection_thresholds=thresholds,
        model_bytes=len(tflite_model),
        invoke_ms=invoke_time_ms(tflite_model, n_features),
        size_note=size_note,
        train_rows=final.train_rows,
        final_agreement=final_agreement,
        wall_time_s=0.0,
        full=full,
        aged=aged,
    )
    report.wall_time_s = time.monotonic() - started
    write_model_folder(out_dir, tflite_model, final, report, data_dir)
    return report


def describe_size(fitted: Fitted) -> str:
    """Tree nodes and network parameters, in words."""
    if isinstance(fitted.model, FittedTrees):
        return f"{count_nodes(fitted.model)} tree nodes"
    if fitted.candidate.family == "committee":
        return " + ".join(describe_size(m) for m in fitted.model)
    return f"{int(fitted.model.count_params())} parameters"


def summary_table(report: TrainingReport) -> str:
    """Per held-out run: the shipped form's figures and alarm timing (printed and in
    report.md)."""
    lines = [
        "| held-out run | minutes | fresh/not | not-fresh called fresh | 4-class | TVC MAE "
        "| first alarm vs label (min early) | flips back | shipped form = fitted |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for f in report.shipped_folds:
        s = f.scores
        timing = alarm_timing(f.held, f.threshold)
        early = "never" if timing.minutes_early is None else f"{timing.minutes_early:+d}"
        lines.append(
            f"| {f.run} | {s.rows} | {s.accuracy_fresh:.3f} | {s.not_fresh_called_fresh:.1%} "
            f"| {s.accuracy_4class:.3f} | {s.tvc_mae:.3f} | {early} | {timing.flips_back} "
            f"| {f.agreement:.4f} |"
        )
    m = report.shipped_mean()
    lines.append(
        f"| **mean** | | **{m.accuracy_fresh:.3f}** | {m.not_fresh_called_fresh:.1%} "
        f"| **{m.accuracy_4class:.3f}** | **{m.tvc_mae:.3f}** | | | |"
    )
    return "\n".join(lines)


def truth_fresh(rows: RunData) -> Any:
    return FRESH[rows.labels]
