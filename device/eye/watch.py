"""``senses eye watch``: live scores of a source against one or more concepts.

    senses eye watch --concept cats.cav [--source camera|camera:N|picamera2|video:PATH|
                     folder:DIR|synthetic[:DIR]] [--seconds N] [--json] [--snapshots DIR]

Each line is one ``ConceptScore`` (rate-limited as on the station) or a camera ``Health``
change; ``--json`` prints them as JSON lines for other programs. AI crops go to
``--snapshots`` (default: the station's data folder).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path
from typing import Any, TextIO

from device.clock import SystemClock
from device.config import Config, load_config
from device.errors import ConfigError
from device.events import ConceptScore, Event, Health
from device.eye.service import build_eye
from device.eye.sources import parse_source

SOURCE_HELP = (
    "camera (V4L2, default), camera:N, picamera2, video:PATH, folder:DIR, synthetic "
    "(a pan over the bundled photos) or synthetic:DIR"
)


def _meter(score: float, width: int = 20) -> str:
    filled = round(score * width)
    return "#" * filled + "." * (width - filled)


def format_event(event: Event) -> str:
    """One line a person reads: concept, score bar, focus box, frame rate, drops."""
    if isinstance(event, ConceptScore):
        x, y, w, h = event.focus_box
        return (
            f"{event.concept:16s} {event.score:5.2f} [{_meter(event.score)}] "
            f"focus x={x:.2f} y={y:.2f} w={w:.2f} h={h:.2f}  {event.fps:5.1f} fps  "
            f"{event.drops} dropped"
        )
    if isinstance(event, Health):
        return f"{event.component}: {event.status.value}: {event.message}"
    return json.dumps(event.to_dict())


class _Printer:
    def __init__(self, stream: TextIO, as_json: bool) -> None:
        self.stream = stream
        self.as_json = as_json
        self.lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        line = json.dumps(event.to_dict()) if self.as_json else format_event(event)
        with self.lock:
            print(line, file=self.stream, flush=True)


def watch_config(args: argparse.Namespace) -> Config:
    config = load_config(Path(args.config) if args.config else None)
    updates: dict[str, Any] = {
        "concepts": [Path(p) for p in args.concept],
        "source": parse_source(args.source, config.eye.source),
    }
    if args.threshold is not None:
        updates["threshold"] = args.threshold
    if args.snapshots is not None:
        updates["snapshot_dir"] = Path(args.snapshots)
    try:
        eye = config.eye.model_validate(config.eye.model_dump() | updates)
    except ValueError as e:
        raise ConfigError(f"senses eye watch: {e}") from e
    return config.model_copy(update={"eye": eye})


def cmd_watch(args: argparse.Namespace, stream: TextIO | None = None) -> int:
    config = watch_config(args)
    clock = SystemClock()
    setup = build_eye(config, clock, emulated=False)
    printer = _Printer(stream or sys.stdout, args.json)
    if setup.service.scorer is None:
        for event in setup.events:
            printer(event)
        return 2
    stop = threading.Event()
    worker = threading.Thread(
        target=setup.service.run, args=(printer, stop), name="eye-watch", daemon=True
    )
    worker.start()
    try:
        worker.join(args.seconds)
    finally:
        stop.set()
        worker.join(5.0)
    return 0


def add_watch_parser(eye_subcommands: argparse._SubParsersAction[Any]) -> None:
    """Add ``watch`` to ``senses eye``."""
    watch = eye_subcommands.add_parser(
        "watch",
        help="score a camera, video, image folder or synthetic pan live against concepts",
        description=__doc__.split("\n\n")[0],
    )
    watch.add_argument(
        "--concept", action="append", required=True, metavar="FILE.cav", help="repeatable"
    )
    watch.add_argument("--source", default="camera", help=SOURCE_HELP)
    watch.add_argument("--seconds", type=float, help="stop after this many seconds")
    watch.add_argument("--json", action="store_true", help="one JSON object a line")
    watch.add_argument("--threshold", type=float, help="calibrated score for an AI crop (0-1]")
    watch.add_argument("--snapshots", help="folder for AI crops")
    watch.add_argument("--config", help="station config (TOML) for the other [eye] settings")
    watch.set_defaults(handler=cmd_watch)
