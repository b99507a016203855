"""The ``senses`` command.

senses demo [--seconds N] [--json] [--senses nose] [--speed X]
senses run [--config FILE]
senses nose calibrate | record | replay
senses bench nose [--json]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from device.clock import Clock, ManualClock, ScaledClock, SystemClock, ticks
from device.config import Config, load_config
from device.daemon import Daemon
from device.demo import DEMO_SPEED, DEMO_WARMUP_S, build_demo_nose, demo_config
from device.ear.cli import add_commands as add_ear_commands
from device.errors import SensesError
from device.events import Event, FoodReading, NoseReading
from device.eye.cli import add_commands as add_eye_commands
from device.link.core import LinkCore
from device.link.protocol import Message
from device.logs import configure_logging
from device.nose.classifier import VERDICT_OF_CLASS
from device.nose.features import BASELINE_MINUTES
from device.nose.minutes import MinuteAggregator
from device.nose.recording import RecordingWriter
from device.runtime import KNOWN_SENSES, SenseSetup, Station, build_nose
from device.senses import build_station_senses, parse_sense_names
from device.sinks import VERDICT_STYLE, JsonLinesSink, Sink, StationDashboard, StoreSink
from device.status import STATUS_FILE, is_stale, read_status
from device.store import EventStore

log = logging.getLogger("senses")

REFRESH_PER_S = 4


def _config(args: argparse.Namespace) -> Config:
    return load_config(Path(args.config) if args.config else None)


def _with(config: Config, *, data_dir: Path | None = None, **nose: Any) -> Config:
    """A copy of ``config`` with some nose settings (and the data folder) replaced."""
    station = config.station.model_copy(update={"data_dir": data_dir}) if data_dir else None
    return config.model_copy(
        update={
            "nose": config.nose.model_copy(update=nose),
            **({"station": station} if station else {}),
        }
    )


def _emulation_with(config: Config, **emulation: Any) -> Config:
    return config.model_copy(update={"emulation": config.emulation.model_copy(update=emulation)})


def _run_live(
    station: Station,
    senses: Sequence[SenseSetup],
    *,
    seconds: float | None,
    dashboard: StationDashboard | None,
    console: Console,
    caption: Callable[[], str] | None = None,
) -> None:
    """Run until ``seconds`` pass, an emulated source ends, or Ctrl-C / SIGTERM."""
    stop = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    for sense in senses:
        for event in sense.events:
            station.emit(event)
        station.add_sense(sense.name, sense.run, counters=sense.counters)
    deadline = None if seconds is None else time.monotonic() + seconds

    def finished() -> bool:
        if stop.is_set() or (deadline is not None and time.monotonic() >= deadline):
            return True
        return any(s.finished is not None and s.finished() for s in senses)

    try:
        if dashboard is None:
            while not finished():
                stop.wait(0.1)
        else:
            with Live(
                dashboard.render(), console=console, refresh_per_second=REFRESH_PER_S
            ) as live:
                while not finished():
                    if caption is not None:
                        dashboard.caption = caption()
                    live.update(dashboard.render())
                    stop.wait(1 / REFRESH_PER_S)
    except KeyboardInterrupt:
        pass
    finally:
        station.stop()
        station.join()
        for sense in senses:
            if sense.finish is not None:
                for event in sense.finish():
                    station.emit(event)


def cmd_demo(args: argparse.Namespace) -> int:
    # Bumble (the virtual BLE link) takes a second or two to import and only the demo needs
    # it. Imported before the clock starts: at 300x, two seconds are ten simulated minutes,
    # which the heaters' warm-up would otherwise spend before the first reading.
    from device.link.service import VirtualPhoneLink

    names = parse_sense_names(args.senses) if args.senses else list(KNOWN_SENSES)
    config = demo_config(_config(args), Path(tempfile.mkdtemp(prefix="senses-demo-")))
    speed = args.speed or DEMO_SPEED
    clock = ScaledClock(speed)
    console = Console(stderr=args.json)
    recording = config.emulation.recording
    store = EventStore(config.store_path)
    out = JsonLinesSink(sys.stdout)
    dashboard = None if args.json else StationDashboard(title="Senses · nose")
    # The store comes first: the link sends an event only once it is committed.
    sinks: list[Sink] = [StoreSink(store), out if dashboard is None else dashboard]
    station = Station(clock, sinks)
    built = build_station_senses(
        config,
        names,
        emulated=True,
        nose=lambda: build_demo_nose(config, clock),
        realtime_clock=SystemClock(),
    )

    def phone_received(message: Message) -> None:
        if dashboard is None:
            out.write({"type": "phone", "seq": message.seq, "event": message.payload})
        else:
            dashboard.phone_mtu = link.negotiated_mtu
            dashboard.on_phone(message.seq, message.payload)

    link = VirtualPhoneLink(
        LinkCore(
            store,
            station_name=config.station.name,
            clock=SystemClock(),
            handlers=built.control_handlers(station.summary),
        ),
        store,
        SystemClock(),
        on_message=phone_received,
    )
    station.add_sense("link", link.run)
    console.print(f"[bold]Senses demo[/] on emulated hardware ({', '.join(names)}):")
    if built.nose is not None:
        console.print(
            f"  nose: replays {recording.name} (beef, 36 h) at {speed:g}× through the real "
            f"ADS1115/SHT31 drivers; heaters warm up for {DEMO_WARMUP_S / 60:.0f} min, then "
            f"{BASELINE_MINUTES} min of calibration"
        )
    if built.eye is not None:
        concepts = ", ".join(built.eye.service.concept_names()) or "none"
        console.print(
            "  eye: an emulated camera pans over licence-clean photos (hardware/sim/images); "
            f"concepts: {concepts}"
        )
    if built.ear is not None:
        console.print(f"  ear: {built.ear.description}")
        if built.ear.species_hint:
            console.print(f"  {built.ear.species_hint}")
    console.print(
        "  link: a simulated phone receives everything over a virtual BLE link. Ctrl-C stops."
    )
    scene = built.nose.emulation.scene if built.nose and built.nose.emulation else None
    _run_live(
        station,
        built.senses,
        seconds=args.seconds,
        dashboard=dashboard,
        console=console,
        caption=(lambda: f"(recording minute {scene.minute()})") if scene else None,
    )
    console.print(f"stored {store.count()} events in {config.store_path}")
    store.close()
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    configure_logging(verbose=args.verbose, log_format=args.log_format)
    daemon = Daemon(
        Path(args.config) if args.config else None,
        console=Console(stderr=True),
        print_events=not args.quiet,
    )
    return daemon.run(seconds=args.seconds)


def cmd_status(args: argparse.Namespace) -> int:
    config = _config(args)
    record = read_status(config.station.data_dir / STATUS_FILE)
    stale = is_stale(record)
    if args.json:
        print(json.dumps({**record, "stale": stale}))
    else:
        console = Console()
        written = time.strftime("%H:%M:%S", time.localtime(record["written_at"]))
        table = Table(title=f"Senses station {record.get('station', '')} (written {written})")
        for column in ("sense", "state", "events/min", "drops", "restarts", "last error"):
            table.add_column(column)
        for sense in record["senses"]:
            state = "running" if sense.get("running") else "stopped"
            table.add_row(
                str(sense.get("name")),
                Text(state, style="green" if sense.get("running") else "red"),
                f"{sense.get('events_per_min', 0):.1f}",
                str(sense.get("drops", 0)),
                str(sense.get("restarts", 0)),
                str(sense.get("last_error") or ""),
            )
        console.print(table)
        if stale:
            console.print(
                "[red]stale[/]: the daemon has not written its status for a while; is "
                "`senses run` (systemctl status senses) running?"
            )
    failing = any(not s.get("running") or s.get("last_error") for s in record["senses"])
    return 1 if stale or failing else 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    config = _config(args)
    if args.seconds:
        config = _with(config, calibration_s=float(args.seconds))
    if args.assume_warm:
        config = _with(config, warmup_s=0.0)
    emulated = config.hardware.use_emulation()
    clock: Clock = ScaledClock(args.speed or config.emulation.speed) if emulated else SystemClock()
    console = Console()
    setup = build_nose(
        config,
        clock,
        emulated=emulated,
        calibrate_after_warmup=True,
        scene_hold_s=config.nose.warmup_s + config.nose.calibration_s,
        preheated_s=0.0 if not args.assume_warm else math.inf,
    )
    service = setup.service
    console.print(
        f"Calibrating in clean air: keep the box empty. Warm-up {config.nose.warmup_s:.0f} s, "
        f"then {config.nose.calibration_s:.0f} s of samples"
        + (" (emulated hardware)" if emulated else "")
    )
    for _ in ticks(clock, config.nose.sample_period_s, threading.Event()):
        for event in service.step():
            if event.type == "health":
                console.print(f"  {event.to_dict()['message']}")
        if service.calibration is not None:
            break
    calibration = service.calibration
    if calibration is None or not calibration.sensors:
        console.print("[red]calibration failed[/]: no sensor gave stable clean-air readings")
        return 1
    calibration.save(config.calibration_path)
    table = Table(title=f"R0 saved to {config.calibration_path}")
    for column in ("sensor", "clean-air Rs kΩ", "R0 kΩ", "samples"):
        table.add_column(column)
    for name, c in calibration.sensors.items():
        table.add_row(name, f"{c.clean_air_rs_kohm:.2f}", f"{c.r0_kohm:.2f}", str(c.samples))
    console.print(table)
    missing = [s.name for s in config.nose.sensors if s.name not in calibration.sensors]
    if missing:
        console.print(f"[yellow]not calibrated[/]: {', '.join(missing)} (see messages above)")
        return 1
    return 0


def cmd_record(args: argparse.Namespace) -> int:
    config = _config(args)
    emulated = config.hardware.use_emulation()
    clock: Clock = ScaledClock(args.speed or config.emulation.speed) if emulated else SystemClock()
    setup = build_nose(
        config,
        clock,
        emulated=emulated,
        scene_hold_s=config.nose.warmup_s,
        preheated_s=0.0,
    )
    names = tuple(s.name for s in config.nose.sensors)
    writer = RecordingWriter(Path(args.out), names, args.label)
    minutes = MinuteAggregator(names)
    console = Console(stderr=True)
    console.print(f"recording to {args.out} (one row a minute); Ctrl-C stops")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())

    def write(row: Any) -> None:
        writer.write(
            row.index + 1,
            [float(v) for v in row.rs_kohm],
            row.temperature_c,
            row.humidity_pct,
            row.ts,
            row.warming_up,
        )

    try:
        for _ in ticks(clock, config.nose.sample_period_s, stop):
            if args.minutes is not None and writer.rows >= args.minutes:
                break
            for event in setup.service.step():
                if isinstance(event, NoseReading):
                    row = minutes.add(event)
                    if row is not None:
                        write(row)
                elif event.type == "health":
                    console.print(f"  {event.to_dict()['message']}")
    except KeyboardInterrupt:
        pass
    finally:
        writer.close()
    console.print(f"{writer.rows} minutes written to {args.out}")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    path = Path(args.file)
    config = _emulation_with(_config(args), recording=path, noise_fraction=0.0)
    config = _with(
        config,
        warmup_s=0.0,
        sample_period_s=60.0,
        calibration_s=BASELINE_MINUTES * 60.0,
    )
    if args.model:
        model_dir = Path(args.model)
        config = config.model_copy(
            update={
                "inference": config.inference.model_copy(update={"models_dir": model_dir.parent}),
                "nose": config.nose.model_copy(update={"model": model_dir.name}),
            }
        )
    clock: Clock = ScaledClock(args.speed) if args.speed else ManualClock()
    setup = build_nose(
        config,
        clock,
        emulated=True,
        calibrate_after_warmup=True,
        calibration_max_spread=None,
        calibration_source=f"first {BASELINE_MINUTES} minutes of {path.name}",
    )
    assert setup.emulation is not None
    scene = setup.emulation.scene
    console = Console(stderr=args.json)
    out = JsonLinesSink(sys.stdout)
    for event in setup.events:
        console.print(f"[red]{event.to_dict()['message']}[/]")
    if setup.service.model is None:
        return 2
    truth_at: dict[float, tuple[int, str | None]] = {}
    results: list[tuple[int, str | None, FoodReading]] = []
    stop = threading.Event()

    def report(events: list[Event]) -> None:
        for event in events:
            if isinstance(event, NoseReading):
                truth_at[event.ts] = minute_and_label
            elif isinstance(event, FoodReading):
                minute, truth = truth_at.get(event.ts, (-1, None))
                results.append((minute, truth, event))
                if args.json:
                    out.write({**event.to_dict(), "minute": minute, "truth": truth})
                else:
                    _replay_row(console, minute, truth, event)
            elif event.type == "health" and not args.json:
                console.print(f"  {event.to_dict()['message']}", style="dim")

    for _ in ticks(clock, config.nose.sample_period_s, stop):
        if scene.finished:
            break
        minute_and_label = (scene.minute(), scene.label())
        report(setup.service.step())
    report(setup.service.finish())
    _replay_summary(console, results)
    return 0


def _replay_row(console: Console, minute: int, truth: str | None, food: FoodReading) -> None:
    truth_text = f"truth {truth} ({VERDICT_OF_CLASS[truth].value})" if truth else ""
    console.print(
        f"minute {minute:5d}  [{VERDICT_STYLE[food.label]}]{food.label.value:8}[/]"
        f"  {food.confidence:4.0%}  freshness {food.freshness:4.0%}  {truth_text}"
    )


def _replay_summary(console: Console, results: list[tuple[int, str | None, FoodReading]]) -> None:
    labelled = [(truth, food) for _, truth, food in results if truth]
    if not labelled:
        console.print(f"{len(results)} verdicts (the recording has no labels to compare with)")
        return
    three_way = sum(VERDICT_OF_CLASS[t] is f.label for t, f in labelled) / len(labelled)
    fresh = sum(
        (VERDICT_OF_CLASS[t].value == "fresh") == (f.label.value == "fresh") for t, f in labelled
    ) / len(labelled)
    summary = {
        "verdicts": len(results),
        "fresh_vs_not_accuracy": round(fresh, 4),
        "verdict_accuracy": round(three_way, 4),
    }
    console.print(f"summary: {json.dumps(summary)}")


def cmd_doctor(args: argparse.Namespace) -> int:
    from device.doctor import run_doctor

    return run_doctor(_config(args), json_output=args.json)


def cmd_bench(args: argparse.Namespace) -> int:
    # Imported on use: the benchmarks are not part of the daemon.
    import importlib

    bench_main = importlib.import_module(f"bench.{args.bench_command}").main
    return int(bench_main(["--json"] if args.json else []))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="senses", description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="the station on emulated hardware, live")
    demo.add_argument("--seconds", type=float, help="stop after this many seconds")
    demo.add_argument("--json", action="store_true", help="one JSON object a line")
    demo.add_argument("--senses", help=f"comma-separated, default all: {','.join(KNOWN_SENSES)}")
    demo.add_argument("--speed", type=float, help=f"time acceleration (default {DEMO_SPEED:g})")
    demo.add_argument("--config", help="TOML config file")
    demo.set_defaults(handler=cmd_demo)

    run = commands.add_parser("run", help="the daemon (real hardware when /dev/i2c-N exists)")
    run.add_argument("--config", help="TOML config file")
    run.add_argument("--seconds", type=float, help="stop after this many seconds")
    run.add_argument("--quiet", action="store_true", help="do not print events on stdout")
    run.add_argument(
        "--log-format",
        choices=("text", "json"),
        help="default: text on a terminal, JSON lines under systemd",
    )
    run.set_defaults(handler=cmd_run)

    status = commands.add_parser(
        "status", help="how the running daemon's senses are doing (exit 1 if one fails)"
    )
    status.add_argument("--config", help="the TOML config the daemon runs with")
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=cmd_status)

    nose = commands.add_parser("nose", help="the gas sensors").add_subparsers(
        dest="nose_command", required=True
    )
    calibrate = nose.add_parser("calibrate", help="measure R0 in clean air and save it")
    calibrate.add_argument("--config", help="TOML config file")
    calibrate.add_argument("--seconds", type=float, help="length of the clean-air sampling")
    calibrate.add_argument(
        "--assume-warm", action="store_true", help="the heaters have been on for 20+ minutes"
    )
    calibrate.add_argument("--speed", type=float, help="time acceleration (emulated only)")
    calibrate.set_defaults(handler=cmd_calibrate)

    record = nose.add_parser("record", help="record a session as CSV (the training format)")
    record.add_argument("--out", required=True, help="CSV file to write")
    record.add_argument("--label", help="excellent, good, acceptable or spoiled")
    record.add_argument("--minutes", type=int, help="stop after this many minutes")
    record.add_argument("--config", help="TOML config file")
    record.add_argument("--speed", type=float, help="time acceleration (emulated only)")
    record.set_defaults(handler=cmd_record)

    replay = nose.add_parser("replay", help="replay a recording through the emulated nose")
    replay.add_argument("file", help="CSV recording (beef format or `senses nose record`)")
    replay.add_argument(
        "--speed", type=float, help="real-time factor (default: as fast as possible)"
    )
    replay.add_argument("--json", action="store_true", help="one JSON object a line")
    replay.add_argument("--model", help="model folder (default models/food_quality)")
    replay.add_argument("--config", help="TOML config file")
    replay.set_defaults(handler=cmd_replay)

    bench = commands.add_parser("bench", help="benchmarks").add_subparsers(
        dest="bench_command", required=True
    )
    bench_nose = bench.add_parser("nose", help="nose pipeline samples/s vs the ADS1115's 860 SPS")
    bench_nose.add_argument("--json", action="store_true")
    bench_nose.set_defaults(handler=cmd_bench)
    bench_link = bench.add_parser(
        "link", help="BLE notification latency, events/s and bytes per event vs JSON"
    )
    bench_link.add_argument("--json", action="store_true")
    bench_link.set_defaults(handler=cmd_bench)
    bench_eye = bench.add_parser(
        "eye", help="eye frames/s vs the backbone's own rate; crop maps/s; vs the naive method"
    )
    bench_eye.add_argument("--json", action="store_true")
    bench_eye.set_defaults(handler=cmd_bench)
    bench_ear = bench.add_parser(
        "ear", help="ear compute seconds per audio minute (one thread) and resident memory"
    )
    bench_ear.add_argument("--json", action="store_true")
    bench_ear.set_defaults(handler=cmd_bench)
    bench_station = bench.add_parser(
        "station",
        help="all senses together: CPU share per sense, resident memory, startup to READY",
    )
    bench_station.add_argument("--json", action="store_true")
    bench_station.set_defaults(handler=cmd_bench)

    doctor = commands.add_parser(
        "doctor",
        help="check I2C chips, camera, microphone, BlueZ, models and disk; say what to fix",
    )
    doctor.add_argument("--config", help="the TOML config the station runs with")
    doctor.add_argument("--json", action="store_true", help="one JSON object (for scripts)")
    doctor.set_defaults(handler=cmd_doctor)
    add_eye_commands(commands)
    add_ear_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.handler(args))
    except SensesError as e:
        Console(stderr=True).print(f"[red]error:[/] {e}")
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
