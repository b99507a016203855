"""The `senses` command as a person uses it: demo, replay, calibrate, record, run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from device.cli import main
from device.config import PROJECT_ROOT
from device.nose.recording import read_recording

SENSES = Path(sys.executable).parent / "senses"
BEEF = PROJECT_ROOT / "training" / "data" / "beef_wijaya"


def _json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_demo_prints_food_verdicts_as_json_lines_within_40_seconds() -> None:
    # At the demo's 300x, 40 s are 200 minutes: 5 of heater warm-up, the baseline, then the
    # food model's feature window (130 minutes for the summaries' 2-hour history).
    result = subprocess.run(
        [str(SENSES), "demo", "--seconds", "40", "--senses", "nose", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    events = _json_lines(result.stdout)
    # The recording starts with the meat in the box: the demo marks food in at its start and
    # says so; until its baseline is taken, food messages carry the state and no label.
    assert any(
        e["type"] == "health" and "new food in the box (demo" in str(e["message"]) for e in events
    ), result.stdout[:2000]
    states = [e for e in events if e["type"] == "food" and e["food_state"] != "ready"]
    assert states and all(e["label"] is None for e in states)
    assert {e["food_state"] for e in states} <= {"baseline", "starting"}
    food = [e for e in events if e["type"] == "food" and e["food_state"] == "ready"]
    assert food, f"no food verdict in {len(events)} lines; stderr: {result.stderr[-2000:]}"
    for verdict in food:
        assert verdict["label"] in {"fresh", "spoiling", "spoiled"}
        probabilities = verdict["probabilities"]
        assert isinstance(probabilities, dict)
        assert set(probabilities) == {"excellent", "good", "acceptable", "spoiled"}
        assert sum(probabilities.values()) == pytest.approx(1.0, abs=0.02)
    nose = [e for e in events if e["type"] == "nose"]
    assert nose[0]["warming_up"] is True  # heaters start cold, readings are marked
    assert any(e["warming_up"] is False for e in nose)


def test_demo_refuses_a_sense_that_does_not_exist_yet(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--senses", "nose,smell-o-vision", "--seconds", "1"]) == 2
    assert "smell-o-vision" in capsys.readouterr().err


@pytest.mark.slow
def test_replay_of_a_whole_run_goes_from_fresh_to_spoiled(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["nose", "replay", str(BEEF / "TS3.csv"), "--json"]) == 0
    verdicts = [e for e in _json_lines(capsys.readouterr().out) if e["type"] == "food"]
    recording = read_recording(BEEF / "TS3.csv")
    assert len(verdicts) > 0.95 * (len(recording) - 60)
    minutes = [v["minute"] for v in verdicts]
    assert minutes == sorted(minutes)
    assert all(v["truth"] in {"excellent", "good", "acceptable", "spoiled"} for v in verdicts)
    first_hours = [v["label"] for v in verdicts[:120]]
    last_hours = [v["label"] for v in verdicts[-120:]]
    assert first_hours.count("fresh") > 0.8 * len(first_hours)
    assert last_hours.count("spoiled") > 0.8 * len(last_hours)
    fresh_at = [i for i, v in enumerate(verdicts) if v["label"] == "fresh"]
    spoiled_at = [i for i, v in enumerate(verdicts) if v["label"] == "spoiled"]
    assert sorted(fresh_at)[len(fresh_at) // 2] < sorted(spoiled_at)[len(spoiled_at) // 2]


def test_replay_of_a_broken_file_says_where(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.csv"
    lines = (BEEF / "TS3.csv").read_text().splitlines()[:50]
    lines[7] = lines[7].replace(lines[7].split(",")[5], "n/a", 1)
    broken.write_text("\n".join(lines) + "\n")
    assert main(["nose", "replay", str(broken)]) == 2
    err = capsys.readouterr().err
    assert "broken.csv:8" in err and "not a number" in err


def _emulated_config(tmp_path: Path) -> Path:
    config = tmp_path / "station.toml"
    config.write_text(
        f'[station]\ndata_dir = "{tmp_path / "data"}"\n'
        '[hardware]\nmode = "emulated"\n'
        "[nose]\nwarmup_s = 300\ncalibration_s = 120\nsample_period_s = 10\n"
        "[emulation]\nspeed = 600\n"
    )
    return config


def test_calibration_is_saved_and_reused_by_the_daemon(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _emulated_config(tmp_path)
    assert main(["nose", "calibrate", "--config", str(config)]) == 0
    saved = json.loads((tmp_path / "data" / "nose_calibration.json").read_text())
    assert set(saved["sensors"]) == {
        "MQ135",
        "MQ136",
        "MQ2",
        "MQ3",
        "MQ4",
        "MQ5",
        "MQ6",
        "MQ8",
        "MQ9",
    }
    mq135 = saved["sensors"]["MQ135"]
    assert mq135["r0_kohm"] == pytest.approx(mq135["clean_air_rs_kohm"] / 3.6, rel=0.2)
    capsys.readouterr()
    assert main(["run", "--config", str(config), "--seconds", "4"]) == 0
    events = _json_lines(capsys.readouterr().out)
    nose = [e for e in events if e["type"] == "nose"]
    assert nose, events[:3]
    late = nose[-1]["sensors"]
    assert isinstance(late, list)
    assert all(s["ratio"] is not None for s in late)  # the saved R0 is in use
    assert not any(e["type"] == "health" and "not calibrated" in str(e["message"]) for e in events)


def test_record_writes_what_training_reads(tmp_path: Path) -> None:
    config = _emulated_config(tmp_path)
    out = tmp_path / "session.csv"
    assert (
        main(
            [
                "nose",
                "record",
                "--config",
                str(config),
                "--out",
                str(out),
                "--label",
                "good",
                "--minutes",
                "5",
            ]
        )
        == 0
    )
    recording = read_recording(out)
    assert len(recording) == 5
    assert recording.labels == ("good",) * 5
    assert recording.sensors[0] == "MQ135"


def test_a_corrupt_model_is_reported_and_the_nose_keeps_reading(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    models = tmp_path / "models"
    shutil.copytree(PROJECT_ROOT / "models" / "food_quality", models / "food_quality")
    model_file = models / "food_quality" / "model.tflite"
    data = bytearray(model_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model_file.write_bytes(bytes(data))
    config = _emulated_config(tmp_path)
    config.write_text(config.read_text() + f'[inference]\nmodels_dir = "{models}"\n')
    assert main(["run", "--config", str(config), "--seconds", "2"]) == 0
    events = _json_lines(capsys.readouterr().out)
    problems = [e for e in events if e["type"] == "health" and e["component"] == "nose.model"]
    assert problems and problems[0]["status"] == "failed"
    assert "sha256" in str(problems[0]["message"])
    assert "git checkout" in str(problems[0]["message"])
    assert sum(e["type"] == "nose" for e in events) >= 3


def test_run_without_bluez_says_so_and_keeps_the_nose_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp_path / 'no-such-bus'}")
    config = _emulated_config(tmp_path)
    assert main(["run", "--config", str(config), "--seconds", "3"]) == 0
    events = _json_lines(capsys.readouterr().out)
    link = [e for e in events if e["type"] == "health" and e["component"] == "link"]
    assert link and link[0]["status"] == "failed"
    assert "systemctl start dbus" in str(link[0]["message"])
    assert sum(e["type"] == "nose" for e in events) >= 3


def test_demo_runs_without_birdnet_and_says_in_one_line_how_to_add_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SENSES_DATA_DIR", str(tmp_path))  # a station without BirdNET
    assert main(["demo", "--senses", "ear", "--seconds", "3", "--json"]) == 0
    captured = capsys.readouterr()
    said = " ".join(captured.err.split())  # rich wraps long lines at spaces
    assert said.count("ear install birdnet") == 1, captured.err
    events = _json_lines(captured.out)
    assert not [e for e in events if e["type"] == "health" and e["status"] != "ok"]
