"""Benchmark: the whole station as systemd runs it: startup to READY, CPU per sense, memory.

``senses run`` is launched as a child process on emulated hardware with all three senses (the
nose replaying a recording at real speed, the emulated camera, the emulated microphone), with
``$NOTIFY_SOCKET`` pointing at a datagram socket this bench binds, as systemd does for a
``Type=notify`` unit (device/systemd.py). Measured in one run:

* startup to READY: from exec to the ``READY=1`` datagram (target 5 s: ``systemctl start`` and
  everything ordered after the unit wait for it), over several launches, median and max; and
  from exec to each sense's first event on stdout (nose reading, concept score, bird);
* shutdown: from ``SIGTERM`` to exit (the daemon's own budget, SHUTDOWN_BUDGET_S);
* CPU per sense over a window after warm-up: utime + stime of each thread from
  ``/proc/<pid>/task/<tid>/stat``, grouped by thread name (``sense-eye``, ``sense-eye/invoke``,
  ``eye-capture``, ...), as a share of one core and of the whole process;
* resident memory with all three senses: VmRSS at the end of the window and the peak VmHWM
  (target 300 MB), from ``/proc/<pid>/status``.

Python 3.11 does not give its threads' names to the kernel, so ``/proc`` would show every thread
as ``senses``. The bench therefore launches ``python -m bench.station --os-thread-names run ...``:
``senses run`` itself (the same ``device.cli.main``), after a one-shot hook copies each thread's
Python name into its kernel name as the thread starts. Threads started by C libraries (OpenBLAS,
OpenCV) keep the process name and are reported as "native". As in the systemd unit, the daemon
prints its events on stdout (the unit discards them, ``StandardOutput=null``; here they time each
sense's first event), so encoding them is counted too.

Figures come from a machine shared with other jobs: compare them within one run, not across
machines. Emulated hardware runs in the daemon's process, so its cost (scene physics, the
emulated microphone's playback thread, decoding the shipped photos) is counted against the
sense it stands in for: the shares are upper bounds for the code on real hardware.

    python -m bench.station [--json] [--seconds S] [--runs N] [--link] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from device.daemon import SHUTDOWN_BUDGET_S
from device.errors import BenchError
from device.runtime import KNOWN_SENSES

TARGET_READY_S = 5.0
TARGET_RSS_MB = 300.0
TARGET_SHUTDOWN_S = SHUTDOWN_BUDGET_S
#: The hidden first argument that makes ``main`` run ``senses`` with kernel thread names.
OS_THREAD_NAMES_FLAG = "--os-thread-names"
#: The kernel keeps 15 bytes of a thread's name (TASK_COMM_LEN 16 with the NUL).
KERNEL_NAME_BYTES = 15
#: Generous: the target is 5 s, but a loaded machine must still give a figure, not an error.
READY_TIMEOUT_S = 120.0
KILL_AFTER_S = 15.0
LOG_TAIL_LINES = 15
MB = 1024 * 1024

#: Which sense an event on ``senses run``'s stdout comes from, by its ``type``.
SENSE_OF_EVENT_TYPE = {"nose": "nose", "food": "nose", "concept": "eye", "bird": "ear"}
#: Thread name prefixes (as the kernel keeps them) and the sense whose work each thread does.
#: The emulated microphone's playback thread stands in for PortAudio's callback thread.
SENSE_OF_THREAD_PREFIX = (
    ("sense-nose", "nose"),
    ("sense-eye", "eye"),
    ("eye-", "eye"),
    ("sense-ear", "ear"),
    ("emulated-mic", "ear"),
    ("sense-link", "link"),
    ("bluez", "link"),
)
MAIN_THREAD_GROUP = "main"  # supervision: status file, watchdog pings, reload
#: Threads C libraries start, unnamed: OpenBLAS's worker (numpy) and OpenCV's (the eye's
#: resizing), so most of this group's time is the eye's.
NATIVE_THREAD_GROUP = "native"
OTHER_THREAD_GROUP = "other"  # named Python threads of no sense


# --- the child: `senses run` with kernel thread names ----------------------------------------


def _name_this_thread_in_the_kernel(frame: object, event: str, arg: object) -> None:
    """A profile hook that runs once, first thing in each new thread, then removes itself."""
    sys.setprofile(None)
    name = threading.current_thread().name.encode("ascii", "replace")[:KERNEL_NAME_BYTES]
    # Without /proc (not Linux) the thread keeps the process name and is reported as native.
    with contextlib.suppress(OSError):
        Path(f"/proc/self/task/{threading.get_native_id()}/comm").write_bytes(name)


def run_senses_with_os_thread_names(argv: Sequence[str]) -> int:
    """``senses <argv>`` with each Python thread's name visible in /proc (see the docstring)."""
    threading.setprofile(_name_this_thread_in_the_kernel)
    from device.cli import main as senses_main

    return senses_main(list(argv))


# --- reading /proc --------------------------------------------------------------------------

CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def _cpu_s_from_stat(text: str) -> float:
    # The name in parentheses may hold spaces or parentheses: split after the last ")".
    fields = text[text.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])  # stat fields 14 and 15, proc(5)
    return (utime + stime) / CLOCK_TICKS_PER_S


def process_cpu_s(pid: int) -> float:
    """CPU seconds of the whole process, including threads that already ended."""
    return _cpu_s_from_stat(Path(f"/proc/{pid}/stat").read_text())


def thread_cpu_s(pid: int) -> dict[int, tuple[str, float]]:
    """Per thread id: its kernel name and CPU seconds so far."""
    threads: dict[int, tuple[str, float]] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            threads[int(task.name)] = (name, _cpu_s_from_stat((task / "stat").read_text()))
        except (FileNotFoundError, ProcessLookupError):
            continue  # the thread ended between listing and reading
    return threads


def thread_group(tid: int, name: str, pid: int, process_name: str) -> str:
    """The sense a thread works for, or main/native/other."""
    if tid == pid:
        return MAIN_THREAD_GROUP
    for prefix, sense in SENSE_OF_THREAD_PREFIX:
        if name.startswith(prefix):
            return sense
    return NATIVE_THREAD_GROUP if name == process_name else OTHER_THREAD_GROUP


def memory(pid: int) -> dict[str, Any]:
    """Resident memory from /proc/<pid>/status, in MB, and the thread and descriptor counts."""
    fields: dict[str, str] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()

    def mb(key: str) -> float:
        return round(int(fields[key].split()[0]) * 1024 / MB, 1)  # the kernel writes kB

    return {
        "vm_rss_mb": mb("VmRSS"),
        "vm_hwm_mb": mb("VmHWM"),
        "rss_anon_mb": mb("RssAnon"),
        "rss_file_mb": mb("RssFile"),
        "threads": int(fields["Threads"]),
        "open_fds": len(os.listdir(f"/proc/{pid}/fd")),
    }


# --- one launch of the daemon ---------------------------------------------------------------


@dataclass
class StdoutEvents:
    """What the daemon printed: each sense's first event and a count per sense."""

    started: float
    first_event_s: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def read(self, stream: TextIO) -> None:
        for line in stream:
            received = time.monotonic()
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not isinstance(record, dict):
                continue
            with self.lock:
                self._count(record, received)

    def _count(self, record: dict[str, Any], received: float) -> None:
        kind = record.get("type")
        if kind == "health" and record.get("status") != "ok":
            problem = f"{record.get('component')} {record.get('status')}: {record.get('message')}"
            if problem not in self.problems:
                self.problems.append(problem)
        sense = SENSE_OF_EVENT_TYPE.get(str(kind))
        if sense is None:
            return
        self.first_event_s.setdefault(sense, received - self.started)
        self.counts[sense] = self.counts.get(sense, 0) + 1

    def snapshot(self) -> tuple[dict[str, float], dict[str, int]]:
        with self.lock:
            return dict(self.first_event_s), dict(self.counts)


class LaunchedStation:
    """``senses run`` in a child process, with a notify socket standing in for systemd's."""

    def __init__(self, config_path: Path, folder: Path, number: int) -> None:
        self.log_path = folder / f"daemon-{number}.log"
        notify_path = folder / f"notify-{number}"
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(str(notify_path))
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("WATCHDOG_USEC", "WATCHDOG_PID")
        }
        env["NOTIFY_SOCKET"] = str(notify_path)
        command = [
            sys.executable,
            "-m",
            "bench.station",
            OS_THREAD_NAMES_FLAG,
            "run",
            "--config",
            str(config_path),
        ]
        self._log = self.log_path.open("w")
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=self._log, text=True, env=env
        )
        assert self.process.stdout is not None
        self.events = StdoutEvents(self.started)
        self._reader = threading.Thread(
            target=self.events.read, args=(self.process.stdout,), name="bench-stdout", daemon=True
        )
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def _failure(self, what: str) -> BenchError:
        self._log.flush()
        tail = self.log_path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        return BenchError(
            f"`senses run` {what}; its last log lines ({self.log_path}):\n" + "\n".join(tail)
        )

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> tuple[float, str]:
        """Seconds from exec to READY=1, and the STATUS= line sent with it."""
        deadline = self.started + timeout_s
        self.notify.settimeout(0.2)
        while time.monotonic() < deadline:
            try:
                datagram = self.notify.recv(4096)
            except TimeoutError:
                if self.process.poll() is not None:
                    raise self._failure(
                        f"exited with code {self.process.returncode} before READY=1"
                    ) from None
                continue
            assignments = datagram.decode("utf-8", "replace").split("\n")
            if "READY=1" in assignments:
                status = [a.removeprefix("STATUS=") for a in assignments if a.startswith("STATUS=")]
                return time.monotonic() - self.started, "".join(status)
        raise self._failure(
            f"sent no READY=1 within {timeout_s:.0f} s; under systemd the unit would have "
            "failed to start (TimeoutStartSec)"
        )

    def wait_first_events(self, senses: Sequence[str], timeout_s: float) -> None:
        """Until each of ``senses`` printed an event, or ``timeout_s`` from exec."""
        deadline = self.started + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise self._failure(f"exited with code {self.process.returncode} while running")
            first, _ = self.events.snapshot()
            if all(sense in first for sense in senses):
                return
            time.sleep(0.1)

    def stop(self) -> float:
        """SIGTERM, as systemctl stop sends; seconds until the process exited."""
        asked = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(KILL_AFTER_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        stopped_s = time.monotonic() - asked
        self._reader.join(timeout=5)
        self.notify.close()
        self._log.close()
        return stopped_s


# --- the benchmark --------------------------------------------------------------------------


def write_config(folder: Path, *, link: bool) -> Path:
    """Emulated hardware, every sense on, the station's data in ``folder``."""
    path = folder / "senses.toml"
    path.write_text(
        f"[station]\ndata_dir = {json.dumps(str(folder / 'data'))}\n\n"
        '[hardware]\nmode = "emulated"\n\n'
        f"[link]\nenabled = {str(link).lower()}\n",
        encoding="utf-8",
    )
    return path


def cpu_window(station: LaunchedStation, seconds: float) -> dict[str, Any]:
    """CPU per thread group over ``seconds`` of a running station."""
    pid = station.pid
    process_name = Path(f"/proc/{pid}/comm").read_text().strip()
    _, counts_before = station.events.snapshot()
    before, process_before, wall_before = thread_cpu_s(pid), process_cpu_s(pid), time.monotonic()
    time.sleep(seconds)
    after, process_after, wall_after = thread_cpu_s(pid), process_cpu_s(pid), time.monotonic()
    _, counts_after = station.events.snapshot()
    wall_s = wall_after - wall_before
    process_s = process_after - process_before
    per_group: dict[str, float] = {}
    threads = []
    for tid, (name, cpu_after) in sorted(after.items()):
        used_s = cpu_after - before.get(tid, (name, 0.0))[1]  # a new thread started at zero
        group = thread_group(tid, name, pid, process_name)
        per_group[group] = per_group.get(group, 0.0) + used_s
        threads.append({"tid": tid, "name": name, "group": group, "cpu_s": round(used_s, 2)})
    # Threads that ended during the window took their time with them; the process kept it.
    per_group["ended threads"] = max(0.0, process_s - sum(per_group.values()))

    def share(cpu_s: float) -> dict[str, float]:
        return {
            "cpu_s": round(cpu_s, 2),
            "share_of_core": round(cpu_s / wall_s, 4),
            "share_of_process": round(cpu_s / process_s, 4) if process_s > 0 else 0.0,
        }

    return {
        "window_s": round(wall_s, 2),
        "process": share(process_s),
        "groups": {group: share(cpu_s) for group, cpu_s in per_group.items()},
        "events_per_s": {
            sense: round((counts_after.get(sense, 0) - counts_before.get(sense, 0)) / wall_s, 2)
            for sense in KNOWN_SENSES
        },
        "threads": threads,
    }


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 3) if present else None


@dataclass
class Launch:
    """One launch of the station: its startup figures, and the window's if it had one."""

    startup: dict[str, Any]
    problems: list[str]
    cpu: dict[str, Any] | None = None
    memory: dict[str, Any] | None = None


def launch(
    config_path: Path,
    folder: Path,
    number: int,
    *,
    first_event_timeout_s: float,
    window: tuple[float, float] | None = None,
) -> Launch:
    """Start the station, time it to READY and each sense's first event, and stop it; with
    ``window`` (warm-up, seconds) measure CPU and memory before stopping."""
    station = LaunchedStation(config_path, folder, number)
    cpu = resident = None
    try:
        ready_s, status = station.wait_ready()
        station.wait_first_events(KNOWN_SENSES, first_event_timeout_s)
        if window is not None:
            warmup_s, seconds = window
            time.sleep(warmup_s)
            cpu = cpu_window(station, seconds)
            resident = memory(station.pid)
    finally:
        shutdown_s = station.stop()
    first, _ = station.events.snapshot()
    startup = {
        "ready_s": round(ready_s, 3),
        "ready_status": status,
        "first_event_s": {s: _round(first.get(s)) for s in KNOWN_SENSES},
        "shutdown_s": round(shutdown_s, 3),
        "exit_code": station.process.returncode,
    }
    return Launch(startup, station.events.problems, cpu, resident)


def run(
    *,
    seconds: float = 30.0,
    warmup_s: float = 10.0,
    runs: int = 3,
    link: bool = False,
    first_event_timeout_s: float = 60.0,
) -> dict[str, Any]:
    """Launch the station ``runs`` times; the last launch also gets the CPU and memory window."""
    if runs < 1 or seconds <= 0 or warmup_s < 0:
        raise BenchError(
            "--runs must be at least 1, --seconds above 0 and --warmup not negative "
            f"(got {runs}, {seconds} and {warmup_s})"
        )
    with tempfile.TemporaryDirectory(prefix="senses-bench-station-") as folder_name:
        folder = Path(folder_name)
        config_path = write_config(folder, link=link)
        launches = [
            launch(
                config_path,
                folder,
                number,
                first_event_timeout_s=first_event_timeout_s,
                window=(warmup_s, seconds) if number == runs else None,
            )
            for number in range(1, runs + 1)
        ]
    measured = launches[-1]
    assert measured.cpu is not None and measured.memory is not None
    startups = [each.startup for each in launches]
    problems = list(dict.fromkeys(p for each in launches for p in each.problems))
    ready = [r["ready_s"] for r in startups]
    summary = {
        "runs": startups,
        "ready_s_median": round(statistics.median(ready), 3),
        "ready_s_max": max(ready),
        "first_event_s_median": {
            s: _median([r["first_event_s"][s] for r in startups]) for s in KNOWN_SENSES
        },
        "shutdown_s_max": max(r["shutdown_s"] for r in startups),
    }
    return {
        "machine": {
            "cpus": os.cpu_count(),
            "load_1min": round(os.getloadavg()[0], 2),
            "python": sys.version.split()[0],
        },
        "station": {"senses": list(KNOWN_SENSES), "hardware": "emulated", "link": link},
        "startup": summary,
        "cpu": measured.cpu,
        "memory": measured.memory,
        "health_problems": problems,
        "targets": {
            "ready_s_max": TARGET_READY_S,
            "rss_mb_max": TARGET_RSS_MB,
            "shutdown_s_max": TARGET_SHUTDOWN_S,
        },
        "meets": {
            "ready": summary["ready_s_max"] <= TARGET_READY_S,
            "rss": measured.memory["vm_rss_mb"] <= TARGET_RSS_MB,
            "peak_rss": measured.memory["vm_hwm_mb"] <= TARGET_RSS_MB,
            "shutdown": summary["shutdown_s_max"] <= TARGET_SHUTDOWN_S,
            "every_sense_produced": all(
                summary["first_event_s_median"][s] is not None for s in KNOWN_SENSES
            ),
        },
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _verdict(ok: bool) -> str:
    return "pass" if ok else "MISS"


def print_table(result: dict[str, Any]) -> None:
    startup, cpu, resident = result["startup"], result["cpu"], result["memory"]
    meets, targets = result["meets"], result["targets"]
    machine = result["machine"]
    print(
        f"senses run, emulated hardware, senses {', '.join(result['station']['senses'])}, "
        f"link {'on' if result['station']['link'] else 'off'}; {machine['cpus']} CPUs, "
        f"load {machine['load_1min']} (a shared machine: compare within this run)"
    )
    rows = [
        (
            f"startup to READY (runs: {len(startup['runs'])})",
            f"median {startup['ready_s_median']:.2f} s, max {startup['ready_s_max']:.2f} s",
            f"<= {targets['ready_s_max']:g} s",
            _verdict(meets["ready"]),
        ),
        (
            "shutdown on SIGTERM",
            f"max {startup['shutdown_s_max']:.2f} s",
            f"<= {targets['shutdown_s_max']:g} s",
            _verdict(meets["shutdown"]),
        ),
        (
            "resident memory (VmRSS)",
            f"{resident['vm_rss_mb']:.0f} MB",
            f"<= {targets['rss_mb_max']:g} MB",
            _verdict(meets["rss"]),
        ),
        (
            "peak resident (VmHWM)",
            f"{resident['vm_hwm_mb']:.0f} MB",
            f"<= {targets['rss_mb_max']:g} MB",
            _verdict(meets["peak_rss"]),
        ),
    ]
    for name, value, target, verdict in rows:
        print(f"  {name:<30} {value:<30} {target:<12} {verdict}")
    firsts = ", ".join(
        f"{sense} {'-' if s is None else f'{s:.2f} s'}"
        for sense, s in startup["first_event_s_median"].items()
    )
    print(f"  first event after exec (median): {firsts}")
    print(
        f"CPU over {cpu['window_s']:.0f} s: the process used {cpu['process']['share_of_core']:.1%}"
        " of one core"
    )
    print(f"  {'thread group':<16} {'of one core':>12} {'of process':>11} {'events/s':>9}")
    for group, share in sorted(cpu["groups"].items(), key=lambda item: -item[1]["cpu_s"]):
        rate = cpu["events_per_s"].get(group)
        print(
            f"  {group:<16} {share['share_of_core']:>12.1%} {share['share_of_process']:>11.1%}"
            f" {'' if rate is None else f'{rate:.2f}':>9}"
        )
    print(f"  threads {resident['threads']}, open files {resident['open_fds']}")
    for problem in result["health_problems"]:
        print(f"  health: {problem}")


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == [OS_THREAD_NAMES_FLAG]:
        return run_senses_with_os_thread_names(arguments[1:])
    parser = argparse.ArgumentParser(prog="bench.station", description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--seconds", type=float, help="CPU measurement window (default 30)")
    parser.add_argument("--warmup", type=float, help="seconds after the first events (default 10)")
    parser.add_argument("--runs", type=int, help="launches timed to READY (default 3)")
    parser.add_argument(
        "--link", action="store_true", help="enable the BLE link too (needs BlueZ to do anything)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="one launch, a 3 s window: checks that it runs"
    )
    args = parser.parse_args(arguments)
    quick = args.quick
    result = run(
        seconds=args.seconds or (3.0 if quick else 30.0),
        warmup_s=args.warmup if args.warmup is not None else (1.0 if quick else 10.0),
        runs=args.runs or (1 if quick else 3),
        link=args.link,
    )
    if args.json:
        print(json.dumps(result))
    else:
        print_table(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
