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
  that are **not** in the evaluation soundscape (:data:`GATE_TRAINING`: the SW83 great tits,
  the spinetail soundscape, the 10 s Pennsylvania chorus, the AudioMoth snippet; the night
  forest at 00:00 and the first half of the toad as negatives);
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

from bench.soundscape import RATE, TOAD, Soundscape, compose
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
GATE_TRAINING_BIRDS: Final = (
    "great_tit/2021-SW83-0418_04-77",
    "great_tit/2021-SW83-0418_04-78",
    "great_tit/2021-SW83-0418_04-79",
    "great_tit/2021-SW83-0418_04-80",
    "great_tit/2021-SW83-0418_04-81",
    "great_tit/2021-SW83-0418_04-86",
    "great_tit/2021-SW83-0418_04-88",
    "great_tit/2021-SW83-0418_04-91",
    "great_tit/2021-SW83-0418_04-92",
    "spinetail_maad",
    "birds_10s_opensoundscape",
    "audiomoth_dawn_20210502_040000_pykanto",
)
GATE_TRAINING_NEGATIVES: Final = ("ambient/S4A03895_20190522_000000", TOAD)
GATE_TRAINING: Final = frozenset(GATE_TRAINING_BIRDS + GATE_TRAINING_NEGATIVES[:1])
THRESHOLDS: Final = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95)
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
    started = time.thread_time()
    for first in range(0, len(windows), 16):
        batch = windows[first : first + 16]
        probabilities = model.classify(np.stack([w.samples for w in batch]))
        for row in probabilities:
            hits = np.flatnonzero((row >= REFERENCE_CONFIDENCE) & np.array(species))
            found.append({model.labels[i].name for i in hits})
    cpu_s = time.thread_time() - started
    return [(w.start_s, w.end_s) for w in windows], found, cpu_s


def yamnet_patches(backbone: YamnetBackbone, soundscape: Soundscape) -> tuple[Any, Any, Any, float]:
    """Patch starts (s), scores and embeddings over the whole soundscape; CPU seconds."""
    started = time.thread_time()
    wave16 = resample(soundscape.waveform, soundscape.sample_rate, backbone.sample_rate)
    patches, starts = patches_from_waveform(wave16, backbone.sample_rate, backbone.frontend_config)
    scores, embeddings = [], []
    for first in range(0, len(patches), 64):
        s, e = backbone.run(patches[first : first + 64])
        scores.append(s)
        embeddings.append(e)
    return starts, np.concatenate(scores), np.concatenate(embeddings), time.thread_time() - started


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
    name: str, score: FloatArray, reference: list[set[str]], context: int, duty: int
) -> list[Point]:
    detections = np.array([len(r) for r in reference])
    total = max(1, int(detections.sum()))
    points = []
    for threshold in THRESHOLDS:
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

    wanted = set(GATE_TRAINING_BIRDS) | set(GATE_TRAINING_NEGATIVES)
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


def measure(birdnet_dir: Path, minutes: float | None, seed: int) -> dict[str, Any]:
    soundscape = compose(minutes, seed, exclude=GATE_TRAINING)
    backbone = YamnetBackbone()
    model = WaveformSpeciesModel.load(birdnet_dir, num_threads=1)
    windows, reference, birdnet_cpu_s = birdnet_everywhere(model, soundscape)
    starts, scores, embeddings, yamnet_cpu_s = yamnet_patches(backbone, soundscape)
    patch_s = backbone.frontend_config.patch_duration_s
    features, labels = gate_training_data(backbone)
    gate = fit_embedding_gate(features, labels)
    families = {
        "bird": scores[:, backbone.bird_class_indices].max(axis=1),
        "animal": scores[:, [backbone.labels.index(n) for n in ANIMAL_CLASSES]].max(axis=1),
        "embedding": gate.probability(embeddings),
    }
    points: list[Point] = []
    for name, patch_values in families.items():
        score = per_window(patch_values, starts, patch_s, windows)
        for context in (0, 1):
            for duty in DUTY:
                label = name + ("+context" if context else "") + (f"+duty1/{duty}" if duty else "")
                points += curve(label, score, reference, context, duty)
    gates = sorted({p.gate for p in points}, key=[p.gate for p in points].index)
    chosen = {g: best([p for p in points if p.gate == g]) for g in gates}
    winners = [p for p in chosen.values() if p is not None]
    overall = min(winners, key=lambda p: p.window_share) if winners else None
    bird_windows = sum(soundscape.bird_in(s, e) for s, e in windows)
    return {
        "soundscape": {
            "minutes": round(soundscape.duration_s / 60, 2),
            "seed": seed,
            "bird_share_time": round(soundscape.bird_share(), 3),
            "windows": len(windows),
            "windows_with_a_placed_bird": bird_windows,
            "reference_detections": int(sum(len(r) for r in reference)),
            "reference_windows": int(sum(bool(r) for r in reference)),
        },
        "gate_training": {
            "windows": int(len(labels)),
            "bird_windows": int(labels.sum()),
            "recordings": sorted(GATE_TRAINING_BIRDS + GATE_TRAINING_NEGATIVES),
        },
        "cpu_s": {"birdnet_everywhere": round(birdnet_cpu_s, 2), "yamnet": round(yamnet_cpu_s, 2)},
        "points": [p.__dict__ for p in points],
        "best_per_gate": {g: (p.__dict__ if p else None) for g, p in chosen.items()},
        "best": overall.__dict__ if overall else None,
        "gate_on_by_default": overall is not None,
        "goal_met": overall is not None and overall.window_share <= WINDOW_SHARE_GOAL,
        "embedding_gate": gate.to_dict(),
    }


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
    print(f"cheapest point keeping >= {KEEP_AT_LEAST} of the detections, per gate:")
    for gate, p in result["best_per_gate"].items():
        text = (
            "none"
            if p is None
            else f"threshold {p['threshold']:g}: recall {p['recall']:.3f}, windows {p['window_share']:.3f}"
        )
        print(f"  {gate:<26} {text}")
    cpu = result["cpu_s"]
    print(
        f"CPU (this run, not final timings): BirdNET everywhere {cpu['birdnet_everywhere']} s, YAMNet {cpu['yamnet']} s"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--birdnet", type=Path, default=None, help="installed BirdNET folder")
    parser.add_argument("--minutes", type=float, default=None, help="default: birds in 1/4")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    folder = args.birdnet or default_birdnet_dir()
    if not (folder / "card.json").is_file():
        print(
            f"BirdNET is not installed in {folder}: run `senses ear install birdnet`",
            file=sys.stderr,
        )
        return 2
    result = measure(folder, args.minutes, args.seed)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print_table(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
