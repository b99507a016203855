"""Benchmark: the eye's frame rate against the backbone's own limit, crop maps, and MBS's method.

Measured side by side in one run, on one thread (the interpreter's ``num_threads=1``,
OpenCV's ``setNumThreads(1)``), in CPU seconds of this process (so the other programs on a
shared machine do not count against us, and the video decoder's own threads do):

* **limit**: the backbone's own invoke rate on ready 224×224 inputs (images a second);
* **full-frame pipeline**: frames a second through the real pipeline (decode a video
  frame, BGR→RGB, shrink, quantize, embed, score every concept, events), as a fraction of
  the limit: what capture and scoring cost on top of the model, all on one thread;
* **running service** (the target ≥ 0.85): the eye as the station runs it, a capture thread
  (decode, colour conversion, the one resize to the model's side) feeding the scoring thread
  (invoke, scores, events), in frames per *wall* second against the invoke-bound rate in wall
  seconds measured in the same run; the model's invoke and OpenCV release the GIL, so
  preparing frame n+1 overlaps the invoke of frame n. On a loaded machine wall-clock ratios
  are noisy: run it alone;
  the scoring chain's CPU milliseconds per frame (scoring thread + invoke thread) give the
  same ratio without the noise: frames a CPU-second of the chain against invokes a CPU-second;
* **stages**: the CPU milliseconds per frame of each stage (decode, colour, resize, invoke,
  the rest of scoring), which says where time beyond the model goes;
* **crop modes**: complete crop maps a second (all 14 Mood Board Search crops scored once
  more) while every frame keeps its full-frame score, for ``all`` and ``round_robin`` at
  several crops per frame (target ≥ 4 on the test machine);
* **naive vs ours**: Mood Board Search cuts the 14 crops from a 224 px thumbnail, upsamples
  each (bicubic) and embeds them one by one. Ours cuts them from the frame shrunk once to
  ``crop_frame_side_px`` and embeds them as one batch. Reported: the speed ratio and the
  Spearman agreement of the 14-crop ranking; and the curve of speed against agreement (with
  the full-resolution ranking) over frame sides, from which the config's default is chosen.

    python -m bench.eye [--json] [--seconds S] [--frames N]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from scipy import stats

from device.clock import ManualClock, SystemClock
from device.errors import ConfigError
from device.eye.backbone import Backbone, box_pixels, to_model_input
from device.eye.concept import Concept
from device.eye.crops import mbs_crops
from device.eye.frames import Frame
from device.eye.scoring import FrameScorer, model_inputs, shrink_for_crops
from device.eye.service import EyeService, load_concepts
from device.eye.settings import CropMode, EyeConfig, SourceConfig
from device.eye.sources import SyntheticPanZoom, VideoFileSource, bgr_to_rgb, synthetic_stills_dir
from hardware.sim.camera import write_video

#: The default camera mode of ``[eye.source]`` (640×480 at 15 fps).
VIDEO_WIDTH, VIDEO_HEIGHT = SourceConfig().width, SourceConfig().height
VIDEO_FPS = SourceConfig().fps
#: Crops are compared on HD frames, where cutting them from the full frame costs the most.
CROP_FRAME_WIDTH, CROP_FRAME_HEIGHT = 1280, 720
VIDEO_SECONDS = 6.0
ROUND_ROBIN_PER_FRAME = (1, 2, 4)
CROP_SIDES_PX: tuple[int | None, ...] = (None, 672, 448, 336, 224)
TARGET_PIPELINE_VS_LIMIT = 0.85
TARGET_CROP_MAPS_PER_S = 4.0
TARGET_SPEARMAN = 0.9


def _rate(work: Callable[[], int], seconds: float, min_calls: int = 2) -> float:
    """Units of work per CPU-second of this process, over about ``seconds`` of wall time."""
    done = calls = 0
    cpu_start = time.process_time()
    wall_end = time.perf_counter() + seconds
    while time.perf_counter() < wall_end or calls < min_calls:
        done += work()
        calls += 1
    return done / max(time.process_time() - cpu_start, 1e-9)


def _cpu_seconds(work: Callable[[], object]) -> float:
    start = time.process_time()
    work()
    return time.process_time() - start


def _test_video(folder: Path, seconds: float) -> Path:
    pan = SyntheticPanZoom.from_folder(
        synthetic_stills_dir(),
        width=VIDEO_WIDTH,
        height=VIDEO_HEIGHT,
        fps=VIDEO_FPS,
        seconds_per_image=2.0,
    )
    frames = (pan.frame(n) for n in range(max(2, round(seconds * VIDEO_FPS))))
    return write_video(folder / "pan.avi", frames, fps=VIDEO_FPS)


def _pipeline(
    backbone: Backbone,
    concepts: list[Concept],
    video: Path,
    seconds: float,
    crop_mode: CropMode,
    per_frame: int = 1,
) -> dict[str, float]:
    """Frames and crop maps a CPU-second through decode → score → events, one thread."""
    config = EyeConfig(concepts=[], crop_mode=crop_mode, crops_per_frame=per_frame)
    clock = ManualClock()
    source = VideoFileSource(video, loop=True)
    scorer = FrameScorer(backbone, concepts, config)
    service = EyeService(config, source, scorer, clock, paced=False)
    source.open()
    index = 0

    def one_frame() -> int:
        nonlocal index
        rgb = source.read()
        assert rgb is not None  # looping
        service.process(Frame(rgb, clock.wall(), clock.monotonic(), index))
        clock.advance(1.0 / VIDEO_FPS)
        index += 1
        return 1

    maps_before = scorer.schedule.maps_completed
    cpu_start = time.process_time()
    fps = _rate(one_frame, seconds, min_calls=scorer.schedule.frames_per_map + 1)
    cpu_s = time.process_time() - cpu_start
    source.close()
    maps_per_s = (scorer.schedule.maps_completed - maps_before) / max(cpu_s, 1e-9)
    return {"frames_per_s": round(fps, 2), "crop_maps_per_s": round(maps_per_s, 2)}


def _wall_rate(work: Callable[[], int], seconds: float) -> float:
    done = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        done += work()
    return done / (time.perf_counter() - start)


def _thread_cpu_s(thread: threading.Thread) -> float:
    assert thread.ident is not None
    return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))


def _running_service(
    backbone: Backbone, concepts: list[Concept], video: Path, seconds: float
) -> dict[str, float]:
    """The eye as the station runs it (capture thread + scoring thread), for ``seconds``.

    Returns frames per wall second, and the CPU milliseconds per frame of the capture thread
    and of the scoring chain (the scoring thread plus the model's invoke thread): the scoring
    chain is the critical path when the capture thread has a core of its own, as on a Pi 4,
    and its CPU time is not inflated by other programs the way wall time is.
    """
    config = EyeConfig(concepts=[], crop_mode="none")
    scorer = FrameScorer(backbone, concepts, config)
    source = VideoFileSource(video, loop=True)
    service = EyeService(config, source, scorer, SystemClock(), paced=False)
    stop = threading.Event()
    runner = threading.Thread(
        target=service.run, args=(lambda _event: None, stop), name="eye-bench", daemon=True
    )
    runner.start()
    while scorer.frames_scored < 3:  # past opening the video and the first frames
        time.sleep(0.01)
    capture = [t for t in threading.enumerate() if t.name == "eye-capture"]
    chain = [runner, *(t for t in threading.enumerate() if t.name.endswith("/invoke"))]
    first, start = scorer.frames_scored, time.perf_counter()
    capture_cpu, chain_cpu = (sum(_thread_cpu_s(t) for t in ts) for ts in (capture, chain))
    time.sleep(seconds)
    frames = scorer.frames_scored - first
    wall_s = time.perf_counter() - start
    capture_cpu = sum(_thread_cpu_s(t) for t in capture) - capture_cpu
    chain_cpu = sum(_thread_cpu_s(t) for t in chain) - chain_cpu
    stop.set()
    runner.join(10)
    return {
        "frames_per_s": frames / wall_s,
        "scoring_chain_cpu_ms_per_frame": 1000 * chain_cpu / max(frames, 1),
        "capture_cpu_ms_per_frame": 1000 * capture_cpu / max(frames, 1),
    }


def _stages(
    backbone: Backbone, concepts: list[Concept], video: Path, frames: int
) -> dict[str, float]:
    """CPU milliseconds per frame of each stage of the full-frame pipeline, one thread."""
    capture = cv2.VideoCapture(str(video))
    config = EyeConfig(concepts=[], crop_mode="none")
    scorer = FrameScorer(backbone, concepts, config)
    totals = dict.fromkeys(("decode", "bgr_to_rgb", "resize_to_model", "embed", "score_rest"), 0.0)
    clock = time.process_time
    for _ in range(frames):
        t0 = clock()
        ok, bgr = capture.read()
        if not ok:
            capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, bgr = capture.read()
        t1 = clock()
        rgb = bgr_to_rgb(bgr)
        t2 = clock()
        prepared = scorer.full_frame_input(rgb)
        t3 = clock()
        backbone.embed(prepared[np.newaxis])
        t4 = clock()
        scorer.score(rgb, 0.0, prepared)  # embeds again: its own cost is subtracted below
        t5 = clock()
        for name, spent in zip(
            totals, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4 - (t4 - t3)), strict=True
        ):
            totals[name] += spent
    capture.release()
    return {name: round(1000 * spent / frames, 3) for name, spent in totals.items()}


def _crop_scores(concept: Concept, embeddings: npt.NDArray[np.float32]) -> npt.NDArray[Any]:
    return np.asarray(concept.raw_scores(embeddings))


def _naive_inputs(frame: npt.NDArray[np.uint8], size: int) -> list[npt.NDArray[np.uint8]]:
    """Mood Board Search's crops: cut from the 224 px thumbnail, upsampled bicubic."""
    thumbnail = to_model_input(frame, size=size)
    crops = []
    for box in mbs_crops():
        left, top, right, bottom = box_pixels(box, size, size)
        crop = thumbnail[top:bottom, left:right]
        crops.append(
            np.asarray(cv2.resize(crop, (size, size), interpolation=cv2.INTER_CUBIC), np.uint8)
        )
    return crops


def _agreement(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> float:
    rho = stats.spearmanr(a, b).statistic
    return float(rho) if np.isfinite(rho) else 1.0


def _naive_vs_ours(
    backbone: Backbone, concepts: list[Concept], frames: list[npt.NDArray[np.uint8]]
) -> dict[str, Any]:
    size = backbone.input_size
    boxes = mbs_crops()
    naive_scores: list[list[npt.NDArray[Any]]] = []

    def naive() -> None:
        for frame in frames:
            # One by one, as MBS does: one backbone call per crop.
            embeddings = np.concatenate(
                [backbone.embed(crop[np.newaxis]) for crop in _naive_inputs(frame, size)]
            )
            naive_scores.append([_crop_scores(c, embeddings) for c in concepts])

    naive_cpu_s = _cpu_seconds(naive)
    curve = []
    side_scores: dict[int | None, list[list[npt.NDArray[Any]]]] = {}
    side_cpu_s: dict[int | None, float] = {}
    for side in CROP_SIDES_PX:
        scores: list[list[npt.NDArray[Any]]] = []

        def ours(side: int | None = side, scores: list[list[Any]] = scores) -> None:
            for frame in frames:
                batch = model_inputs(shrink_for_crops(frame, side), boxes, size)
                embeddings = backbone.embed(batch)
                scores.append([_crop_scores(c, embeddings) for c in concepts])

        side_cpu_s[side] = _cpu_seconds(ours)
        side_scores[side] = scores
    reference = side_scores[None]
    for side in CROP_SIDES_PX:
        agreement = [
            _agreement(reference[f][k], side_scores[side][f][k])
            for f in range(len(frames))
            for k in range(len(concepts))
        ]
        curve.append(
            {
                "crop_frame_side_px": side if side is not None else "full",
                "crop_maps_per_s": round(len(frames) / max(side_cpu_s[side], 1e-9), 2),
                "spearman_vs_full_resolution_median": round(float(np.median(agreement)), 3),
                "spearman_vs_full_resolution_min": round(float(np.min(agreement)), 3),
            }
        )
    default_side = EyeConfig(concepts=[]).crop_frame_side_px
    ours_scores = side_scores[default_side]
    naive_agreement = [
        _agreement(naive_scores[f][k], ours_scores[f][k])
        for f in range(len(frames))
        for k in range(len(concepts))
    ]
    naive_vs_full = [
        _agreement(naive_scores[f][k], reference[f][k])
        for f in range(len(frames))
        for k in range(len(concepts))
    ]
    same_best = np.mean(
        [
            int(np.argmax(naive_scores[f][k]) == np.argmax(ours_scores[f][k]))
            for f in range(len(frames))
            for k in range(len(concepts))
        ]
    )
    return {
        "frames": len(frames),
        "naive_crop_maps_per_s": round(len(frames) / max(naive_cpu_s, 1e-9), 2),
        "ours_crop_maps_per_s": round(len(frames) / max(side_cpu_s[default_side], 1e-9), 2),
        "ours_vs_naive_speed": round(naive_cpu_s / max(side_cpu_s[default_side], 1e-9), 2),
        "spearman_naive_vs_ours_median": round(float(np.median(naive_agreement)), 3),
        "spearman_naive_vs_full_resolution_median": round(float(np.median(naive_vs_full)), 3),
        "same_focus_box_naive_vs_ours": round(float(same_best), 2),
        "ours_crop_frame_side_px": default_side,
        "curve": curve,
    }


def run(
    seconds: float = 3.0, frames: int = 12, concept_paths: Sequence[Path] = ()
) -> dict[str, Any]:
    opencv_threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        return _run(seconds, frames, concept_paths)
    finally:
        cv2.setNumThreads(opencv_threads)


def _run(seconds: float, frames: int, concept_paths: Sequence[Path]) -> dict[str, Any]:
    backbone = Backbone(num_threads=1)
    paths = list(concept_paths) or EyeConfig().concepts
    concepts, problems = load_concepts(paths, backbone, ManualClock())
    if not concepts:
        reasons = "; ".join(getattr(p, "message", "") for p in problems) or "none ships"
        raise ConfigError(
            f"the eye bench needs a concept in models/concepts ({reasons}): train one with "
            "`senses eye train`"
        )
    folder = Path(tempfile.mkdtemp(prefix="senses-bench-eye-"))
    video = _test_video(folder, min(VIDEO_SECONDS, max(seconds, 2.0)))
    with VideoFileSource(video) as decoded:
        first = decoded.read()
    assert first is not None
    prepared = to_model_input(first)[np.newaxis]

    def one_invoke() -> int:
        backbone.embed(prepared)
        return 1

    limit = _rate(one_invoke, seconds)
    full = _pipeline(backbone, concepts, video, seconds, "none")
    wall_limit_before = _wall_rate(one_invoke, seconds / 2)
    running = _running_service(backbone, concepts, video, seconds)
    wall_limit = (wall_limit_before + _wall_rate(one_invoke, seconds / 2)) / 2
    stages = _stages(backbone, concepts, video, max(30, round(seconds * 20)))
    modes = {"all": _pipeline(backbone, concepts, video, seconds, "all")}
    for per_frame in ROUND_ROBIN_PER_FRAME:
        modes[f"round_robin_{per_frame}"] = _pipeline(
            backbone, concepts, video, seconds, "round_robin", per_frame
        )
    pan = SyntheticPanZoom.from_folder(
        synthetic_stills_dir(), width=CROP_FRAME_WIDTH, height=CROP_FRAME_HEIGHT, fps=VIDEO_FPS
    )
    # Frames spread over the pan, so the crop rankings are not all of one picture.
    step = pan.frames_per_image * len(pan.stills) // max(frames, 1)
    hd_frames = [pan.frame(n * step + step // 2) for n in range(frames)]
    comparison = _naive_vs_ours(backbone, concepts, hd_frames)
    best_maps = max(m["crop_maps_per_s"] for m in modes.values())
    return {
        "backbone": backbone.name,
        "concepts": [c.name for c in concepts],
        "frame_size": [VIDEO_WIDTH, VIDEO_HEIGHT],
        "crop_frame_size": [CROP_FRAME_WIDTH, CROP_FRAME_HEIGHT],
        "limit_invokes_per_s": round(limit, 2),
        "full_frame_fps": full["frames_per_s"],
        "full_frame_vs_limit": round(full["frames_per_s"] / limit, 3),
        "full_frame_target": TARGET_PIPELINE_VS_LIMIT,
        "limit_wall_invokes_per_s": round(wall_limit, 2),
        "running_service_fps": round(running["frames_per_s"], 2),
        "running_service_vs_limit": round(running["frames_per_s"] / wall_limit, 3),
        "scoring_chain_cpu_ms_per_frame": round(running["scoring_chain_cpu_ms_per_frame"], 3),
        "capture_cpu_ms_per_frame": round(running["capture_cpu_ms_per_frame"], 3),
        # Frames a CPU-second of the scoring chain can score, against invokes a CPU-second:
        # the running service's rate when each thread has a core (the Pi 4 has four).
        "scoring_chain_vs_limit": round(
            1000 / max(running["scoring_chain_cpu_ms_per_frame"], 1e-9) / limit, 3
        ),
        "stages_cpu_ms_per_frame": stages,
        "crop_modes": modes,
        "best_crop_maps_per_s": best_maps,
        "crop_maps_target": TARGET_CROP_MAPS_PER_S,
        "crop_maps_ceiling_per_s": round(limit / len(mbs_crops()), 2),
        "naive_vs_ours": comparison,
        "spearman_target": TARGET_SPEARMAN,
        "note": (
            "limit, pipeline and crop modes: one thread, CPU seconds of the process, video "
            "decode included; running service: two threads, wall seconds"
        ),
    }


def _print(result: dict[str, Any]) -> None:
    width, height = result["frame_size"]
    crop_width, crop_height = result["crop_frame_size"]
    print(f"frames {width}x{height} (video), crop comparison on {crop_width}x{crop_height}")
    print(f"backbone {result['backbone']}: {result['limit_invokes_per_s']} invokes/s (the limit)")
    print(
        f"full-frame pipeline, one thread: {result['full_frame_fps']} frames/CPU-s = "
        f"{result['full_frame_vs_limit']:.2f} of the limit"
    )
    print(
        f"running service (capture thread + scoring thread): "
        f"{result['running_service_fps']} frames/s = {result['running_service_vs_limit']:.2f} "
        f"of the wall-clock limit {result['limit_wall_invokes_per_s']} invokes/s "
        f"(target >= {result['full_frame_target']})"
    )
    print(
        f"  its scoring chain (scoring + invoke threads): "
        f"{result['scoring_chain_cpu_ms_per_frame']:.2f} CPU ms a frame = "
        f"{result['scoring_chain_vs_limit']:.2f} of the limit when each thread has a core; "
        f"capture thread {result['capture_cpu_ms_per_frame']:.2f} CPU ms a frame"
    )
    print(
        "stages, CPU ms per frame: "
        + ", ".join(f"{k} {v:.2f}" for k, v in result["stages_cpu_ms_per_frame"].items())
    )
    print(
        f"crop maps/s (ceiling limit/14 = {result['crop_maps_ceiling_per_s']}, "
        f"target >= {result['crop_maps_target']}):"
    )
    for mode, figures in result["crop_modes"].items():
        print(
            f"  {mode:14s} {figures['frames_per_s']:7.2f} frames/s  "
            f"{figures['crop_maps_per_s']:6.2f} crop maps/s"
        )
    naive = result["naive_vs_ours"]
    print(
        f"MBS naive (thumbnail crops, one by one): {naive['naive_crop_maps_per_s']} maps/s; "
        f"ours ({naive['ours_crop_frame_side_px']} px frame, one batch): "
        f"{naive['ours_crop_maps_per_s']} maps/s = {naive['ours_vs_naive_speed']}x; Spearman "
        f"naive vs ours {naive['spearman_naive_vs_ours_median']} (target >= "
        f"{result['spearman_target']}), same focus box {naive['same_focus_box_naive_vs_ours']}"
    )
    print("curve (frame side the crops are cut from → speed, agreement with full resolution):")
    for point in naive["curve"]:
        print(
            f"  {point['crop_frame_side_px']!s:>5}  {point['crop_maps_per_s']:6.2f} maps/s  "
            f"Spearman median {point['spearman_vs_full_resolution_median']:.3f} "
            f"min {point['spearman_vs_full_resolution_min']:.3f}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.eye", description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    parser.add_argument("--frames", type=int, default=12, help="frames for naive vs ours")
    parser.add_argument(
        "--concept",
        type=Path,
        action="append",
        default=[],
        help=".cav file to score (default: the concepts in models/concepts)",
    )
    args = parser.parse_args(argv)
    result = run(args.seconds, args.frames, args.concept)
    if args.json:
        print(json.dumps(result))
    else:
        _print(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
