"""The cascade, chosen by measurement: which YAMNet gate lets BirdNET skip windows, at what cost.

YAMNet runs on every 0.975 s patch anyway (presence, the privacy filter); BirdNET costs about
ten times more per audio-minute. A *gate* decides, for each of BirdNET's 3 s windows, whether
BirdNET runs on it. The reference is BirdNET on every window: its detections are (window,
species) pairs at confidence >= 0.7 (BirdNET-Pi's default). The model is deterministic, so a
reference detection is kept exactly when the gate lets BirdNET run on its window; the curve
is recall of the reference against the share of windows BirdNET runs on.

Gates tried (each swept over its threshold):

* ``bird``: YAMNet's best bird class (AudioSet 106-116) in any patch overlapping the window;
* ``animal``: the best of a wider set (birds plus Animal, Wild animals, Fowl, Whistling,
  Whistle, Chirp tone, Insect, Cricket, Frog): sounds YAMNet files elsewhere that are birds;
* ``embedding``: a logistic regression on YAMNet's 1024-d embedding, trained on recordings
  that are **not** in the evaluation soundscape (``bench.soundscape.GATE_BIRDS``: the SW83
  great tits,
  the spinetail soundscape, the 10 s Pennsylvania chorus, the AudioMoth snippet; the night
  forest at 00:00 and the first half of the toad as negatives);
* thresholds are **chosen** on a soundscape composed of the gate's own recordings (the
  cheapest threshold keeping >= 0.97 of BirdNET's detections there) and **judged** on the
  evaluation soundscape;
* each with ``+context``: a window also runs when a neighbouring window's gate is open
  (a call at a window edge, or YAMNet hearing the bird a moment later);
* each with a ``duty`` cycle: every Nth window runs even with the gate closed, so a call
  YAMNet misses entirely is still found now and then.

The evaluation soundscape is ``bench.soundscape.compose`` without the gate's training
recordings (16 minutes, birds in about a quarter of it).

    python -m bench.cascade [--json] [--birdnet DIR] [--minutes M] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from bench.soundscape import GATE_BIRDS, GATE_NIGHT, TOAD, Soundscape, compose
from device.config import Config
from device.ear.backbone import YamnetBackbone
from device.ear.frontend import patches_from_waveform, resample
from device.ear.gate import ANIMAL_CLASSES, EmbeddingGate, fit_embedding_gate
from device.ear.species import WaveformSpeciesModel
from device.ear.windows import WaveformWindower

FloatArray = npt.NDArray[np.float32]

#: BirdNET-Pi's default confidence: what counts as a reference detection.
REFERENCE_CONFIDENCE: Final = 0.7
#: The issue's rule: the gate is on by default only if it keeps this share of detections.
KEEP_AT_LEAST: Final = 0.97
#: Goal for the best gate: the species model on at most this share of windows.
WINDOW_SHARE_GOAL: Final = 0.40
THRESHOLDS: Final = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
DUTY: Final = (0, 10, 5)


@dataclass(frozen=True)
class Point:
    gate: str
    threshold: float
    window_share: float
    recall: float


def default_birdnet_dir() -> Path:
    return Path(Config().station.data_dir) / "models" / "birdnet"


def birdnet_everywhere(
    model: WaveformSpeciesModel, soundscape: Soundscape
) -> tuple[list[tuple[float, float]], list[set[str]], float]:
    """BirdNET's windows (start, end) and its species >= 0.7 in each; and its CPU seconds."""
    windower = WaveformWindower(
        soundscape.sample_rate, model.sample_rate_hz, model.window_s, model.window_s
    )
    windows = windower.push(soundscape.waveform) + windower.flush()
    species = [label.is_species for label in model.labels]
    found: list[set[str]] = []
    started = time.process_time()
    for first in range(0, len(windows), 16):
        batch = windows[first : first + 16]
        probabilities = model.classify(np.stack([w.samples for w in batch]))
        for row in probabilities:
            hits = np.flatnonzero((row >= REFERENCE_CONFIDENCE) & np.array(species))
            found.append({model.labels[i].name for i in hits})
    cpu_s = time.process_time() - started
    return [(w.start_s, w.end_s) for w in windows], found, cpu_s


def yamnet_patches(backbone: YamnetBackbone, soundscape: Soundscape) -> tuple[Any, Any, Any, float]:
    """Patch starts (s), scores and embeddings over the whole soundscape; CPU seconds."""
    started = time.process_time()
    wave16 = resample(soundscape.waveform, soundscape.sample_rate, backbone.sample_rate)
    patches, starts = patches_from_waveform(wave16, backbone.sample_rate, backbone.frontend_config)
    scores, embeddings = [], []
    for first in range(0, len(patches), 64):
        s, e = backbone.run(patches[first : first + 64])
        scores.append(s)
        embeddings.append(e)
    return starts, np.concatenate(scores), np.concatenate(embeddings), time.process_time() - started


def per_window(
    patch_values: FloatArray, starts: FloatArray, patch_s: float, windows: list[tuple[float, float]]
) -> FloatArray:
    """The highest patch value among the patches overlapping each species window."""
    out = np.zeros(len(windows), dtype=np.float32)
    for i, (start_s, end_s) in enumerate(windows):
        inside = (starts < end_s) & (starts + patch_s > start_s)
        out[i] = patch_values[inside].max() if inside.any() else 0.0
    return out


def runs(score: FloatArray, threshold: float, context: int, duty: int) -> npt.NDArray[np.bool_]:
    """Which windows BirdNET runs on: gate open, or a neighbour's open (context), or duty."""
    open_ = score >= threshold
    ran = open_.copy()
    for k in range(1, context + 1):
        ran[k:] |= open_[:-k]
        ran[:-k] |= open_[k:]
    if duty:
        ran[::duty] = True
    return ran


def curve(
    name: str,
    score: FloatArray,
    reference: list[set[str]],
    context: int,
    duty: int,
    thresholds: Sequence[float] = THRESHOLDS,
) -> list[Point]:
    detections = np.array([len(r) for r in reference])
    total = max(1, int(detections.sum()))
    points = []
    for threshold in thresholds:
        ran = runs(score, threshold, context, duty)
        points.append(
            Point(name, threshold, float(ran.mean()), float(detections[ran].sum() / total))
        )
    return points


def best(points: Sequence[Point]) -> Point | None:
    """The cheapest point that keeps at least KEEP_AT_LEAST of the reference."""
    good = [p for p in points if p.recall >= KEEP_AT_LEAST]
    return min(good, key=lambda p: p.window_share) if good else None


def gate_training_data(backbone: YamnetBackbone) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    """YAMNet embeddings and bird (1) / no bird (0) labels of the gate's own recordings."""
    from training.birds.dataset import (
        DEFAULT_DATA_DIR,
        IGNORE,
        LABELS,
        MANIFEST,
        NO_BIRD,
        load_recording,
        window_labels,
    )

    wanted = {*GATE_BIRDS, GATE_NIGHT, TOAD}
    config = backbone.frontend_config
    features, labels = [], []
    for entry in MANIFEST:
        if entry.stem not in wanted:
            continue
        recording = load_recording(DEFAULT_DATA_DIR, entry, config.sample_rate)
        waveform = recording.waveform
        if entry.stem == TOAD:  # its second half is in the evaluation soundscape
            waveform = waveform[: len(waveform) // 2]
        patches, starts = patches_from_waveform(waveform, config.sample_rate, config)
        _, embedding = backbone.run(patches)
        label = window_labels(recording.segments, starts, config.patch_duration_s)
        keep = label != IGNORE
        features.append(embedding[keep])
        labels.append((label[keep] != LABELS.index(NO_BIRD)).astype(np.int64))
    return np.concatenate(features), np.concatenate(labels)


@dataclass
class Scored:
    """One soundscape through BirdNET everywhere and YAMNet: what every gate is judged on."""

    soundscape: Soundscape
    windows: list[tuple[float, float]]
    reference: list[set[str]]
    families: dict[str, FloatArray]  # gate family -> its score per BirdNET window
    birdnet_cpu_s: float
    yamnet_cpu_s: float


def score(
    soundscape: Soundscape,
    backbone: YamnetBackbone,
    model: WaveformSpeciesModel,
    gate: EmbeddingGate,
) -> Scored:
    windows, reference, birdnet_cpu_s = birdnet_everywhere(model, soundscape)
    starts, scores, embeddings, yamnet_cpu_s = yamnet_patches(backbone, soundscape)
    patch_s = backbone.frontend_config.patch_duration_s
    per_patch = {
        "bird": scores[:, backbone.bird_class_indices].max(axis=1),
        "animal": scores[:, [backbone.labels.index(n) for n in ANIMAL_CLASSES]].max(axis=1),
        "embedding": gate.probability(embeddings),
    }
    families = {k: per_window(v, starts, patch_s, windows) for k, v in per_patch.items()}
    return Scored(soundscape, windows, reference, families, birdnet_cpu_s, yamnet_cpu_s)


def variants() -> list[tuple[str, str, int, int]]:
    """(label, family, context, duty) of every gate tried."""
    out = []
    for family in ("bird", "animal", "embedding"):
        for context in (0, 1):
            for duty in DUTY:
                label = (
                    family + ("+context" if context else "") + (f"+duty1/{duty}" if duty else "")
                )
                out.append((label, family, context, duty))
    return out


def summary(scored: Scored) -> dict[str, Any]:
    sc = scored.soundscape
    return {
        "minutes": round(sc.duration_s / 60, 2),
        "seed": sc.seed,
        "bird_share_time": round(sc.bird_share(), 3),
        "windows": len(scored.windows),
        "windows_with_a_placed_bird": int(sum(sc.bird_in(s, e) for s, e in scored.windows)),
        "reference_detections": int(sum(len(r) for r in scored.reference)),
        "reference_windows": int(sum(bool(r) for r in scored.reference)),
    }


def measure(birdnet_dir: Path, minutes: float | None, seed: int) -> dict[str, Any]:
    backbone = YamnetBackbone()
    model = WaveformSpeciesModel.load(birdnet_dir, num_threads=1)
    features, labels = gate_training_data(backbone)
    gate = fit_embedding_gate(features, labels)
    # Thresholds are chosen on the gate's own recordings, judged on the evaluation soundscape.
    choose = score(compose(None, seed, split="gate"), backbone, model, gate)
    judge = score(compose(minutes, seed, split="eval"), backbone, model, gate)
    points: list[Point] = []
    held_out: dict[str, Any] = {}
    for label, family, context, duty in variants():
        points += curve(label, judge.families[family], judge.reference, context, duty)
        chosen = best(curve(label, choose.families[family], choose.reference, context, duty))
        if chosen is None:
            held_out[label] = None
            continue
        (point,) = curve(
            label, judge.families[family], judge.reference, context, duty, (chosen.threshold,)
        )
        held_out[label] = point.__dict__
    kept = [p for p in held_out.values() if p is not None and p["recall"] >= KEEP_AT_LEAST]
    overall = min(kept, key=lambda p: p["window_share"]) if kept else None
    return {
        "soundscape": summary(judge),
        "threshold_soundscape": summary(choose),
        "gate_training": {
            "windows": len(labels),
            "bird_windows": int(labels.sum()),
            "recordings": sorted({*GATE_BIRDS, GATE_NIGHT, f"{TOAD} (first half)"}),
        },
        "cpu_s": {
            "birdnet_everywhere": round(judge.birdnet_cpu_s, 2),
            "yamnet": round(judge.yamnet_cpu_s, 2),
        },
        "points": [p.__dict__ for p in points],
        "held_out": held_out,
        "best": overall,
        "gate_on_by_default": overall is not None,
        "goal_met": overall is not None and overall["window_share"] <= WINDOW_SHARE_GOAL,
        "embedding_gate": gate.to_dict(),
    }


def write_gate(path: Path, result: dict[str, Any]) -> None:
    """The embedding gate, its threshold chosen held out, and the figures that chose it."""
    embedding = result["held_out"].get("embedding")
    if embedding is None:
        raise SystemExit("the embedding gate kept < 0.97 held out: nothing to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    gate = {
        "what": "P(bird) from YAMNet's 1024-d embedding of one 0.975 s patch (logistic "
        "regression); a species window runs when an overlapping patch reaches threshold",
        "threshold": embedding["threshold"],
        **result["embedding_gate"],
        "trained_on": result["gate_training"],
        "measured": {
            "by": "python -m bench.cascade",
            "evaluation_soundscape": result["soundscape"],
            "held_out": {k: v for k, v in result["held_out"].items() if v is not None},
        },
        "licence": "Apache-2.0 (YAMNet) on MIT, BSD-3-Clause and CC BY 4.0 recordings "
        "(training/data/birds/README.md)",
    }
    path.write_text(json.dumps(gate, indent=1) + "\n", encoding="utf-8")


def print_table(result: dict[str, Any]) -> None:
    s = result["soundscape"]
    print(
        f"soundscape: {s['minutes']} min, birds in {s['bird_share_time']:.0%} of the time, "
        f"{s['windows']} BirdNET windows ({s['windows_with_a_placed_bird']} with a placed bird); "
        f"reference: {s['reference_detections']} detections >= {REFERENCE_CONFIDENCE} in "
        f"{s['reference_windows']} windows"
    )
    print(f"{'gate':<26} " + " ".join(f"{t:>11g}" for t in THRESHOLDS))
    by_gate: dict[str, list[dict[str, Any]]] = {}
    for p in result["points"]:
        by_gate.setdefault(p["gate"], []).append(p)
    for gate, points in by_gate.items():
        cells = " ".join(f"{p['recall']:.2f}@{p['window_share']:.2f}".rjust(11) for p in points)
        print(f"{gate:<26} {cells}")
    print("(each cell: recall of BirdNET-everywhere detections @ share of windows BirdNET runs on)")
    t = result["threshold_soundscape"]
    print(
        f"thresholds chosen on the gate's own recordings ({t['minutes']} min, "
        f"{t['reference_detections']} reference detections): the cheapest keeping >= "
        f"{KEEP_AT_LEAST} there; judged on the evaluation soundscape:"
    )
    for gate, p in result["held_out"].items():
        text = (
            "none"
            if p is None
            else f"threshold {p['threshold']:g}: recall {p['recall']:.3f}, "
            f"windows {p['window_share']:.3f}"
        )
        print(f"  {gate:<26} {text}")
    chosen = result["best"]
    if chosen is None:
        print(f"no gate keeps >= {KEEP_AT_LEAST} held out: ear.gate stays off by default")
    else:
        print(
            f"best: {chosen['gate']} at {chosen['threshold']:g}: recall {chosen['recall']:.3f} "
            "with "
            f"BirdNET on {chosen['window_share']:.1%} of the windows "
            f"(goal <= {WINDOW_SHARE_GOAL:.0%}: {'met' if result['goal_met'] else 'not met'})"
        )
    cpu = result["cpu_s"]
    print(
        "process CPU (this run, not final timings): BirdNET everywhere "
        f"{cpu['birdnet_everywhere']} s, YAMNet {cpu['yamnet']} s"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--birdnet", type=Path, default=None, help="installed BirdNET folder")
    parser.add_argument("--minutes", type=float, default=None, help="default: birds in 1/4")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--write-gate",
        type=Path,
        help="write the embedding gate and the chosen threshold (models/bird_gate/gate.json)",
    )
    args = parser.parse_args(argv)
    folder = args.birdnet or default_birdnet_dir()
    if not (folder / "card.json").is_file():
        print(
            f"BirdNET is not installed in {folder}: run `senses ear install birdnet`",
            file=sys.stderr,
        )
        return 2
    result = measure(folder, args.minutes, args.seed)
    if args.write_gate:
        write_gate(args.write_gate, result)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print_table(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
