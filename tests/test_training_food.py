"""Food-model training: recordings load with clear errors; a short run ships a loadable model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from device.errors import RecordingError
from device.nose.features import BEEF_SENSORS, Baseline, FeatureSpec, compute_features
from training.food.data import LABELS, label_indices, load_beef_runs, load_recording

BEEF_DIR = Path(__file__).resolve().parents[1] / "training" / "data" / "beef_wijaya"
HEADER = ["minute", "class", "TVC", *BEEF_SENSORS, "Temperature", "Humidity"]


def _row(minute: int, **override: str) -> dict[str, str]:
    row = {name: "20.5" for name in BEEF_SENSORS}
    row |= {"minute": str(minute), "class": "excellent", "TVC": "2.3"}
    row |= {"Temperature": "30.1", "Humidity": "61.0"}
    return row | override


def _write(path: Path, rows: list[dict[str, str]], header: list[str] | None = None) -> Path:
    header = HEADER if header is None else header
    lines = [",".join(header)] + [",".join(r[c] for c in header) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _rows(n: int) -> list[dict[str, str]]:
    return [_row(m) for m in range(1, n + 1)]


def test_columns_are_read_by_name_whatever_their_order(tmp_path: Path) -> None:
    rows = _rows(5)
    rows[2] = _row(3, Temperature="33.3", Humidity="77.7")
    ts1_order = [*HEADER[:-2], "Humidity", "Temperature"]
    a = load_recording(_write(tmp_path / "a.csv", rows))
    b = load_recording(_write(tmp_path / "b.csv", rows, ts1_order))
    np.testing.assert_array_equal(a.temperature_c, b.temperature_c)
    assert a.temperature_c[2] == 33.3 and a.humidity_pct[2] == 77.7


def test_station_recordings_without_class_or_tvc_load(tmp_path: Path) -> None:
    header = ["minute", *BEEF_SENSORS, "Temperature", "Humidity", "warming_up"]
    rows = [r | {"warming_up": "0"} for r in _rows(3)]
    recording = load_recording(_write(tmp_path / "station.csv", rows, header))
    assert recording.labels is None and recording.tvc_log_cfu is None
    assert recording.rs_kohm.shape == (3, 9)
    with pytest.raises(RecordingError, match="training needs a class on every row"):
        label_indices(recording)


def test_partly_labelled_recording_is_refused_for_training(tmp_path: Path) -> None:
    rows = _rows(4)
    rows[2] = rows[2] | {"class": ""}
    recording = load_recording(_write(tmp_path / "part.csv", rows))
    with pytest.raises(RecordingError, match=r"part\.csv:4: column 'class' is empty"):
        label_indices(recording)


def test_missing_column_names_file_line_and_column(tmp_path: Path) -> None:
    header = [c for c in HEADER if c != "MQ4"]
    path = _write(tmp_path / "run.csv", _rows(3), header)
    with pytest.raises(RecordingError, match=r"run\.csv:1: missing column\(s\) MQ4;"):
        load_recording(path)


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("MQ2", "nan", r"column 'MQ2' is 'nan'"),
        ("MQ2", "", r"column 'MQ2' holds '', not a number"),
        ("Temperature", "warm", r"column 'Temperature' holds 'warm', not a number"),
        ("Humidity", "150", r"column 'Humidity' is 150, outside 0–100 %RH"),
        ("Temperature", "303.2", r"column 'Temperature' is 303.2, outside -20–80 °C"),
        ("MQ135", "0", r"column 'MQ135' is 0, outside 0.01–100000 kΩ"),
        ("MQ9", "-4", r"column 'MQ9' is -4, outside"),
        ("MQ9", "250000", r"column 'MQ9' is 250000, outside"),
        ("class", "rotten", r"column 'class' is 'rotten'"),
    ],
)
def test_bad_values_name_file_line_and_column(
    tmp_path: Path, column: str, value: str, message: str
) -> None:
    rows = _rows(4)
    rows[1] = rows[1] | {column: value}  # line 3 of the file
    path = _write(tmp_path / "bad.csv", rows)
    with pytest.raises(RecordingError, match=r"bad\.csv:3: " + message):
        load_recording(path)


def test_a_gap_in_the_minutes_is_refused(tmp_path: Path) -> None:
    rows = _rows(4)
    rows[3] = rows[3] | {"minute": "9"}
    path = _write(tmp_path / "gap.csv", rows)
    with pytest.raises(RecordingError, match=r"gap\.csv:5: column 'minute' jumps from 3 to 9"):
        load_recording(path)


def test_a_run_shorter_than_the_feature_window_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "short.csv", _rows(12))
    with pytest.raises(RecordingError, match=r"short\.csv: 12 rows, but at least 40"):
        load_recording(path, min_rows=FeatureSpec().window_minutes)


def test_missing_data_folder_says_what_to_pass(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match="pass --data"):
        load_beef_runs(tmp_path / "nowhere")


def test_the_shared_beef_runs_load_and_ts4_is_not_among_them() -> None:
    runs = load_beef_runs(BEEF_DIR)
    assert [r.path.stem for r in runs] == ["TS1", "TS2", "TS3", "TS5"]
    for run in runs:
        assert len(run) == 2160
        assert set(label_indices(run)) == {0, 1, 2, 3}
    # TS1 stores Humidity before Temperature; read by name its temperatures are °C.
    assert runs[0].temperature_c.min() > 29 and runs[0].temperature_c.max() < 41


def test_smelu_is_zero_then_quadratic_then_identity_and_smooth() -> None:
    from training.food.model import smelu

    x = np.array([-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.5], dtype=np.float32)
    y = np.asarray(smelu(x, beta=1.0))
    np.testing.assert_allclose(y, [0, 0, 0.0625, 0.25, 0.5625, 1.0, 2.5], atol=1e-6)
    # Its slope is continuous at ±beta (ReLU's jumps from 0 to 1 at 0).
    eps = 1e-3
    for at in (-1.0, 1.0):
        grid = np.array([at - eps, at, at + eps], dtype=np.float32)
        left, mid, right = np.asarray(smelu(grid, beta=1.0))
        assert abs((mid - left) - (right - mid)) < 1e-4


def test_a_late_start_sees_the_same_features_as_the_full_run_at_the_same_minutes() -> None:
    from training.food.config import SHIPPED_SPEC
    from training.food.evaluate import run_features

    recording = load_recording(BEEF_DIR / "TS2.csv")
    full = run_features(recording, SHIPPED_SPEC)
    late = run_features(recording, SHIPPED_SPEC, start_minute=900)
    # The first verdict comes one window after the start: nothing before it is used.
    assert late.minutes[0] == 900 + SHIPPED_SPEC.window_minutes - 1
    same = np.isin(full.minutes, late.minutes)
    np.testing.assert_allclose(late.features, full.features[same])
    np.testing.assert_array_equal(late.labels, full.labels[same])


def test_training_refuses_a_recording_without_tvc(tmp_path: Path) -> None:
    from training.food.config import SHIPPED_SPEC
    from training.food.evaluate import run_features

    header = [c for c in HEADER if c != "TVC"]
    recording = load_recording(_write(tmp_path / "no_tvc.csv", _rows(30), header))
    with pytest.raises(RecordingError, match=r"no_tvc\.csv: no 'TVC' column"):
        run_features(recording, SHIPPED_SPEC)


def test_a_late_start_after_the_end_of_a_run_is_refused() -> None:
    from training.food.config import SHIPPED_SPEC
    from training.food.evaluate import run_features

    recording = load_recording(BEEF_DIR / "TS2.csv")
    with pytest.raises(RecordingError, match="rows from minute 2155, but one feature row needs"):
        run_features(recording, SHIPPED_SPEC, start_minute=2155)


@pytest.mark.slow
def test_training_is_deterministic_for_a_seed() -> None:
    from training.food.config import SHIPPED_SPEC, TrainConfig
    from training.food.evaluate import Standardizer, run_features
    from training.food.model import fit, predict_float

    run = run_features(load_recording(BEEF_DIR / "TS3.csv"), SHIPPED_SPEC)
    x = Standardizer.fit(run.features)(run.features)
    settings = TrainConfig(epochs=2).fit_settings()
    a = predict_float(fit(x, run.labels, run.tvc_log_cfu, **settings), x)
    b = predict_float(fit(x, run.labels, run.tvc_log_cfu, **settings), x)
    np.testing.assert_array_equal(a.probabilities, b.probabilities)
    np.testing.assert_array_equal(a.tvc_log_cfu, b.tvc_log_cfu)
    c = predict_float(fit(x, run.labels, run.tvc_log_cfu, **(settings | {"seed": 1})), x)
    assert not np.array_equal(a.probabilities, c.probabilities)


@pytest.mark.slow
def test_a_short_training_ships_one_float_graph_the_station_loads(tmp_path: Path) -> None:
    import json

    from device.inference import load_model
    from training.food.train import train_food

    report = train_food(BEEF_DIR, tmp_path, folds="first", progress=False)
    assert [f.run for f in report.shipped_folds] == ["TS1"]
    # The family the full comparison shipped: trees on the shape of the smell since food-in,
    # compiled into one float32 graph.
    assert report.shipped.family == "trees" and report.shipped.spec.since_food_in
    # The file says what the fitted members say, on every held-out and training minute.
    assert report.shipped_folds[0].agreement == 1.0
    assert report.final_agreement == 1.0
    for name in ("model.tflite", "card.json", "report.md", "report.json", "LICENSE-data.md"):
        assert (tmp_path / name).is_file(), name
    assert (tmp_path / "timeline_TS1.png").is_file()

    model = load_model(tmp_path)  # checks the sha256 and the tensors against the card
    card = model.card
    assert card.labels == list(LABELS)
    assert sorted(o.name for o in card.outputs) == ["probabilities", "tvc_log_cfu"]
    assert card.inputs[0].dtype == "float32" and card.inputs[0].quantization is None
    assert card.task_config["fresh_threshold"] in (0.5, 0.6, 0.7, 0.8)
    assert card.metrics["model_bytes"] == (tmp_path / "model.tflite").stat().st_size
    assert card.metrics["invoke_ms_one_row"] > 0
    assert "Wijaya" in card.training_data["citation"]
    assert "TS4" not in card.training_data["runs"]

    figures = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    ts1 = figures["leave_one_run_out"]["TS1"]
    assert ts1["agreement_shipped_vs_fitted"] == 1.0
    assert 0 <= ts1["shipped_form"]["accuracy_fresh_binary"] <= 1
    assert ts1["alarm_timing"]["label_boundary_minute"] == 901
    assert len(figures["targets"]) == 4
    assert all(t["met"] == (t["missed_by"] == 0) for t in figures["targets"])
    assert "threshold" in figures["rules"] and "selection" in figures["rules"]

    # The station's path: a window of one-minute means -> features -> standardize -> model,
    # gives what training's evaluation gives for that minute.
    spec = FeatureSpec.from_dict(card.task_config["feature_spec"])
    run = load_beef_runs(BEEF_DIR, runs=("TS2",), sensors=spec.sensors)[0]
    baseline = Baseline.from_clean_air(
        run.rs_kohm[:10], run.temperature_c[:10], run.humidity_pct[:10]
    )
    window = slice(2000 - spec.window_minutes, 2000)
    x = compute_features(
        run.rs_kohm[window], run.temperature_c[window], run.humidity_pct[window], baseline, spec
    )[-1:]
    x = (x - np.array(card.task_config["feature_mean"])) / np.array(card.task_config["feature_std"])
    outputs = dict(zip([o.name for o in card.outputs], model.run_many([x]), strict=True))
    probabilities, tvc = outputs["probabilities"], outputs["tvc_log_cfu"]
    assert probabilities.shape == (1, 4) and tvc.shape == (1, 1)
    assert abs(float(probabilities.sum()) - 1.0) < 1e-5
    assert 1.0 < float(tvc[0, 0]) < 7.0


def _small_forest(x: np.ndarray, labels: np.ndarray, tvc: np.ndarray) -> object:
    from training.food.trees import TreeSettings, fit_trees

    return fit_trees(x, labels, tvc, TreeSettings(iterations=12, depth=3), len(LABELS))


def test_compiled_trees_decide_every_node_as_scikit_learn_does_ties_included() -> None:
    from training.food.trees import compile_to_tflite, predict_tflite, tree_tensors

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 5))
    labels = (x[:, 0] > 0).astype(np.int64) + 2 * (x[:, 1] > 0.5)
    tvc = 3 + x[:, 2] + 0.1 * rng.normal(size=400)
    forest = _small_forest(x, labels, tvc)
    compiled = compile_to_tflite(forest, 5)  # type: ignore[arg-type]
    # Rows lying exactly on the thresholds, just below and just above them (as float32).
    tensors = tree_tensors(forest)  # type: ignore[arg-type]
    on = tensors.threshold[np.isfinite(tensors.threshold)].astype(np.float32)
    probes = []
    for t, f in zip(on, tensors.feature_of_node[np.isfinite(tensors.threshold)], strict=True):
        for value in (t, np.nextafter(t, np.float32(np.inf)), np.nextafter(t, np.float32(-np.inf))):
            row = x[len(probes) % len(x)].astype(np.float32)
            row[f] = value
            probes.append(row)
    rows = np.concatenate([x, np.array(probes, dtype=np.float64)])
    ours = predict_tflite(compiled, rows)
    theirs = forest.predict(rows)  # type: ignore[attr-defined]
    np.testing.assert_array_equal(ours.probabilities.argmax(1), theirs.probabilities.argmax(1))
    np.testing.assert_allclose(ours.probabilities, theirs.probabilities, atol=1e-5)
    np.testing.assert_allclose(ours.tvc_log_cfu, theirs.tvc_log_cfu, atol=1e-5)


def test_thresholds_round_down_to_float32_so_the_comparison_is_unchanged() -> None:
    from training.food.trees import float32_thresholds

    t64 = np.array([0.1, -0.1, 1.0, 1e-8, 3.0000001])
    t32 = float32_thresholds(t64)
    assert t32.dtype == np.float32 and np.all(t32.astype(np.float64) <= t64)
    above = np.nextafter(t32, np.float32(np.inf))
    assert np.all(above.astype(np.float64) > t64)  # the next float32 goes right, in both
    np.testing.assert_array_equal(float32_thresholds(np.array([1.0])), np.float32([1.0]))


def test_trees_train_the_same_twice() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 4))
    labels = (x[:, 0] > 0).astype(np.int64)
    tvc = x[:, 1]
    a = _small_forest(x, labels, tvc).predict(x)  # type: ignore[attr-defined]
    b = _small_forest(x, labels, tvc).predict(x)  # type: ignore[attr-defined]
    np.testing.assert_array_equal(a.probabilities, b.probabilities)


def test_the_threshold_rule_uses_inner_runs_only_and_prefers_the_safer_tie() -> None:
    from training.food.evaluate import RunData
    from training.food.model import Predictions
    from training.food.nested import Held, choose_threshold

    labels = np.array([0, 0, 2, 2])
    rows = RunData("A", np.arange(4), np.zeros((4, 1)), labels, np.zeros(4))
    # P(fresh) 0.9, 0.75, 0.3, 0.1: every threshold from 0.5 to 0.7 is perfect; 0.8 misses one.
    p = np.array([[0.9, 0, 0.1, 0], [0.75, 0, 0.25, 0], [0.3, 0, 0.7, 0], [0.1, 0, 0.9, 0]])
    held = Held("A", rows, Predictions(p, np.zeros(4)))
    assert choose_threshold([held]) == 0.7


def test_alarm_timing_counts_minutes_early_and_flips_back() -> None:
    from training.food.evaluate import RunData
    from training.food.model import Predictions
    from training.food.nested import Held, alarm_timing

    minutes = np.arange(100, 110)
    labels = np.array([0] * 6 + [2] * 4)  # the label turns at minute 106
    fresh = np.array([1, 1, 1, 0, 1, 0, 0, 0, 0, 0], dtype=float)  # alarm at 103, one flip back
    p = np.stack([fresh, np.zeros(10), 1 - fresh, np.zeros(10)], axis=1)
    rows = RunData("A", minutes, np.zeros((10, 1)), labels, np.zeros(10))
    timing = alarm_timing(Held("A", rows, Predictions(p, np.zeros(10))), 0.5)
    assert (timing.boundary_minute, timing.first_alarm_minute) == (106, 103)
    assert timing.minutes_early == 3 and timing.flips_back == 1
    assert timing.minutes_fresh_after_alarm == 1


def test_summary_features_are_causal_and_round_trip_through_the_card() -> None:
    from training.food.families import SUMMARY_SPEC

    spec = SUMMARY_SPEC
    assert len(spec.names()) == 16 and spec.window_minutes == 130
    assert FeatureSpec.from_dict(spec.to_dict()) == spec
    run = load_recording(BEEF_DIR / "TS2.csv")
    baseline = Baseline.from_clean_air(
        run.rs_kohm[:10], run.temperature_c[:10], run.humidity_pct[:10]
    )
    full = compute_features(run.rs_kohm, run.temperature_c, run.humidity_pct, baseline, spec)
    end = 1500
    window = slice(end - spec.window_minutes, end)
    one = compute_features(
        run.rs_kohm[window], run.temperature_c[window], run.humidity_pct[window], baseline, spec
    )
    np.testing.assert_allclose(one[-1], full[end - spec.window_minutes])
    # The 2-hour minimum is never above the summary itself.
    assert np.all(full[:, 4:8] <= full[:, 0:4] + 1e-12)


def test_a_card_written_before_summaries_existed_still_reads() -> None:
    from training.food.config import SHIPPED_SPEC

    old = SHIPPED_SPEC.to_dict()
    assert "summaries" not in old  # earlier cards had no such key
    assert FeatureSpec.from_dict(old) == SHIPPED_SPEC
    with pytest.raises(ValueError, match="need summaries=True"):
        FeatureSpec(summary_min_minutes=60)


@pytest.mark.slow
def test_a_seed_ensemble_is_one_int8_model_that_says_what_its_members_say_on_average() -> None:
    from dataclasses import replace

    from training.food.config import SHIPPED_SPEC, TrainConfig
    from training.food.evaluate import called_fresh, ensemble_of, run_features, train_on
    from training.food.model import predict_float, predict_int8

    train = [run_features(load_recording(BEEF_DIR / "TS2.csv"), SHIPPED_SPEC)]
    test = run_features(load_recording(BEEF_DIR / "TS3.csv"), SHIPPED_SPEC)
    config = TrainConfig(epochs=2, ensemble_seeds=())
    members = [train_on(train, replace(config, seed=seed)) for seed in (0, 1)]
    ensemble = ensemble_of(members, train, seed=0)
    x = ensemble.standardize(test.features)

    each = [predict_float(m.model, x) for m in members]
    together = predict_float(ensemble.model, x)
    np.testing.assert_allclose(
        together.probabilities, np.mean([p.probabilities for p in each], axis=0), atol=1e-6
    )
    np.testing.assert_allclose(
        together.tvc_log_cfu, np.mean([p.tvc_log_cfu for p in each], axis=0), atol=1e-5
    )
    # One file, the station's interface unchanged, and int8 gives the float verdicts.
    int8 = predict_int8(ensemble.tflite_model, x)
    assert int8.probabilities.shape == (len(x), 4) and int8.tvc_log_cfu.shape == (len(x),)
    assert len(ensemble.tflite_model) < 2 * len(members[0].tflite_model) + 4096
    same = called_fresh(int8.probabilities, 0.8) == called_fresh(together.probabilities, 0.8)
    assert np.mean(same) >= 0.99

    # Members must come from the same training runs: a mix would standardize wrongly.
    other = train_on([test], config)
    with pytest.raises(ValueError, match="same runs"):
        ensemble_of([members[0], other], train, seed=0)


@pytest.mark.slow
def test_a_committee_of_trees_and_an_mlp_compiles_into_one_graph_that_agrees() -> None:
    from dataclasses import replace

    from training.food.config import TrainConfig
    from training.food.families import candidate_rows, default_grid, scored
    from training.food.nested import FitCache, prepare_rows
    from training.food.train import agreement, predict_shipped, shipped_form
    from training.food.trees import TreeSettings

    grid = default_grid()
    trees = replace(grid[0], trees=TreeSettings(iterations=10, depth=3))
    mlp = replace(grid[3], mlp=TrainConfig(ensemble_seeds=(), epochs=2))
    committee = replace(grid[6], members=(0, 1))
    small = [trees, mlp, committee]
    recordings = [load_recording(BEEF_DIR / f"{run}.csv") for run in ("TS2", "TS3")]
    cache = FitCache(small, prepare_rows(recordings, small))
    fitted = cache.fit(2, ["TS2"])
    form = shipped_form(fitted, [cache.rows[2]["TS2"]])
    test = scored(candidate_rows(recordings[1], committee))
    said = predict_shipped(form, fitted, test)
    own = cache.held(2, ["TS2"], "TS3").predicted
    assert agreement(said, own, 0.8) == 1.0
    np.testing.assert_allclose(said.probabilities, own.probabilities, atol=1e-5)
    np.testing.assert_allclose(said.tvc_log_cfu, own.tvc_log_cfu, atol=1e-4)
    # The members' own answers, averaged, are the committee's.
    members = [cache.held(i, ["TS2"], "TS3").predicted for i in (0, 1)]
    np.testing.assert_allclose(
        own.probabilities, (members[0].probabilities + members[1].probabilities) / 2
    )
