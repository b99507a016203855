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
def test_a_short_training_ships_a_loadable_int8_model(tmp_path: Path) -> None:
    import json
    from dataclasses import replace

    from device.inference import load_model
    from training.food.config import DEFAULT_CONFIG
    from training.food.train import train_food

    config = replace(DEFAULT_CONFIG, epochs=2)
    report = train_food(BEEF_DIR, tmp_path, config=config, folds="first", progress=False)
    assert [f.run for f in report.folds] == ["TS1"]
    assert 0 < report.parameters <= 5000
    assert report.model_bytes <= 50 * 1024
    for name in (
        "model.tflite",
        "card.json",
        "report.md",
        "report.json",
        "LICENSE-data.md",
        "confusion.png",
        "timeline_TS1.png",
    ):
        assert (tmp_path / name).is_file(), name

    model = load_model(tmp_path)  # checks the sha256 and the tensors against the card
    card = model.card
    assert card.labels == list(LABELS)
    assert [o.name for o in card.outputs] == ["probabilities", "tvc_log_cfu"]
    assert card.inputs[0].dtype == "int8" and all(o.dtype == "int8" for o in card.outputs)
    assert card.task_config["fresh_threshold"] == 0.8
    # The default ships the seed ensemble: three networks in one file.
    assert card.training_data["settings"]["ensemble_seeds"] == [0, 1, 2]
    assert "Wijaya" in card.training_data["citation"]
    assert "TS4" not in card.training_data["runs"]

    figures = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    ts1 = figures["leave_one_run_out"]["TS1"]["int8"]
    assert 0 <= ts1["accuracy_fresh_binary"] <= 1 and ts1["tvc_mae_log_cfu"] >= 0
    assert [r["start_minute"] for r in figures["late_start"]] == [600, 900, 1200]
    assert len(figures["targets"]) == 8
    assert figures["seed_ensemble"]["members"] == [0, 1, 2]
    assert all(t["met"] == (t["missed_by"] == 0) for t in figures["targets"])

    # The station's path: a window of one-minute means -> features -> standardize -> model.
    spec = FeatureSpec.from_dict(card.task_config["feature_spec"])
    run = load_beef_runs(BEEF_DIR, runs=("TS2",), sensors=spec.sensors)[0]
    baseline = Baseline.from_clean_air(
        run.rs_kohm[:10], run.temperature_c[:10], run.humidity_pct[:10]
    )
    window = slice(2000 - spec.window_minutes, 2000)
    x = compute_features(
        run.rs_kohm[window], run.temperature_c[window], run.humidity_pct[window], baseline, spec
    )
    x = (x - np.array(card.task_config["feature_mean"])) / np.array(card.task_config["feature_std"])
    probabilities, tvc = model.run_many([x])
    assert probabilities.shape == (1, 4) and tvc.shape == (1, 1)
    assert abs(float(probabilities.sum()) - 1.0) < 0.05
    assert 1.0 < float(tvc[0, 0]) < 7.0


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
