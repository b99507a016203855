"""`senses bench ear` in a reduced mode: it runs and reports what it promises (no timings)."""

from __future__ import annotations

import json

import pytest

from bench import ear


def test_bench_reports_seconds_per_audio_minute_and_ratios(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SENSES_BIRDNET_MODEL", raising=False)
    assert (
        ear.main(["--json", "--seconds", "6", "--repeats", "1", "--hops", "0.48", "--no-memory"])
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert result["threads"] == 1
    assert result["anchor_birdnet_s_per_audio_min"] == [0.66, 0.71]
    assert result["birdnet_measured_s_per_audio_min"] is None  # no BirdNET model given
    assert {run["input"] for run in result["runs"]} == {
        "22050 Hz file",
        "48000 Hz microphone",
        "16000 Hz microphone",
    }
    for run in result["runs"]:
        parts = (
            run["frontend_s_per_audio_min"]
            + run["models_s_per_audio_min"]
            + run["merge_s_per_audio_min"]
        )
        assert run["s_per_audio_min"] == pytest.approx(parts, rel=0.01, abs=1e-3)
        assert run["speedup_vs_birdnet"] == pytest.approx(0.685 / run["s_per_audio_min"], rel=0.02)


def test_memory_is_measured_in_a_fresh_process() -> None:
    memory = ear.memory(3.0)
    assert memory["peak_rss_mb"] >= memory["rss_mb"] > memory["python_baseline_rss_mb"] > 0
    assert memory["target_rss_mb"] == 150.0


def test_human_readable_output_names_the_anchor(capsys: pytest.CaptureFixture[str]) -> None:
    assert ear.main(["--seconds", "3", "--repeats", "1", "--hops", "0.96", "--no-memory"]) == 0
    out = capsys.readouterr().out
    assert "BirdNET" in out and "s/audio-min" in out
