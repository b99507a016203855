"""The station scores a run it never saw as training said it would.

A reduced training (few epochs) on TS1, TS2 and TS5 writes a model folder; `senses nose
replay` then runs TS3 through the emulated nose (MQ physics, ADS1115 bytes, minute means,
the classifier) and its fresh/not accuracy must match what training's own evaluation code
computes for TS3 with that model within 2 points. A skew between the training features and
the device's (a different baseline, window, cap or order of sensors) breaks this.

The issue's full check is the same with the full settings: `senses-train food --files TS1.csv
TS2.csv TS5.csv --folds first --out /tmp/m` gives the model the TS3 fold of report.json was
trained with (same runs, same order, same seeds), and `senses nose replay TS3.csv --model /tmp/m`
reproduces that fold's figure.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

BEEF_DIR = Path(__file__).resolve().parents[1] / "training" / "data" / "beef_wijaya"


@pytest.mark.slow
def test_replay_of_an_unseen_run_matches_the_training_evaluation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from device.cli import main
    from device.inference import load_model
    from training.food.config import DEFAULT_CONFIG
    from training.food.data import load_recording
    from training.food.evaluate import FRESH, Standardizer, called_fresh, run_features
    from training.food.model import predict_int8
    from training.food.train import train_food

    config = replace(DEFAULT_CONFIG, epochs=3)
    model_dir = tmp_path / "food_quality"
    train_food(
        BEEF_DIR,
        model_dir,
        config=config,
        folds="first",
        files=[BEEF_DIR / f"{run}.csv" for run in ("TS1", "TS2", "TS5")],
        progress=False,
    )
    card = load_model(model_dir).card
    assert card.training_data["runs"] == ["TS1", "TS2", "TS5"]

    # What training's evaluation says about TS3 with this model.
    ts3 = run_features(load_recording(BEEF_DIR / "TS3.csv"), config.spec)
    standardize = Standardizer(
        np.array(card.task_config["feature_mean"]), np.array(card.task_config["feature_std"])
    )
    predicted = predict_int8((model_dir / "model.tflite").read_bytes(), standardize(ts3.features))
    said = called_fresh(predicted.probabilities, card.task_config["fresh_threshold"])
    expected = float(np.mean(said == FRESH[ts3.labels]))

    capsys.readouterr()
    assert (
        main(["nose", "replay", str(BEEF_DIR / "TS3.csv"), "--model", str(model_dir), "--json"])
        == 0
    )
    verdicts = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    food = [v for v in verdicts if v["type"] == "food" and v["truth"]]
    assert len(food) > 2000  # a verdict for nearly every minute of the 36 h
    fresh_truth = {"excellent", "good"}
    replayed = np.mean([(v["label"] == "fresh") == (v["truth"] in fresh_truth) for v in food])
    assert abs(replayed - expected) <= 0.02, (replayed, expected)
    # The TVC estimate reaches the user, in a plausible range.
    tvc = [v["tvc_log_cfu"] for v in food]
    assert all(1.0 < t < 7.0 for t in tvc)
