"""`senses ear scan` and `senses ear listen` as a user runs them."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from ear_audio import AUDIO

from device.cli import main


def test_scan_writes_a_birdnet_style_csv_and_says_how_fast(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "detections.csv"
    song = AUDIO / "great_tit" / "2021-B32-0415_05-9.wav"
    speech = AUDIO / "speech_p286_011_vctk.wav"
    assert main(["ear", "scan", str(song), str(speech), "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == [
        *("file", "start", "end", "species", "confidence", "confidence_mean"),
        *("Scientific name", "Common name", "model_id", "clip_withheld"),
    ]
    assert {row["clip_withheld"] for row in rows} == {""}  # no voice near the song
    assert {row["file"] for row in rows} == {str(song)}  # the speech gave nothing
    assert {(row["Scientific name"], row["Common name"]) for row in rows} == {
        ("Parus major", "Great Tit")
    }
    assert all(0.5 <= float(row["confidence"]) <= 1 for row in rows)
    assert float(rows[0]["end"]) <= 3.34
    assert "x real time" in capsys.readouterr().out


def test_scan_skips_a_bad_file_says_why_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("not audio")
    song = AUDIO / "great_tit" / "2021-B32-0415_05-9.wav"
    assert main(["ear", "scan", str(bad), str(song), "--json"]) == 1
    captured = capsys.readouterr()
    assert "WAV or FLAC" in captured.err
    detections = [json.loads(line) for line in captured.out.splitlines() if line.startswith("{")]
    assert detections and detections[0]["file"] == str(song)


def test_listen_to_a_file_prints_detections_as_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENSES_DATA_DIR", str(tmp_path))
    song = AUDIO / "great_tit" / "2021-B32-0415_05-9.wav"
    assert main(["ear", "listen", "--file", str(song), "--fast", "--json"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    birds = [e for e in events if e["type"] == "bird"]
    assert len(birds) == 1
    assert Path(birds[0]["clip"]).is_file()
    assert Path(birds[0]["clip"]).is_relative_to(tmp_path)
