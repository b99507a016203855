"""A 24-hour soak at an accelerated clock: memory, file descriptors and threads stay flat.

All three senses run together in one :class:`~device.runtime.Station`, writing every event to
the SQLite store as the daemon does:

* the nose replays the beef recording through the emulated I2C chips on a
  :class:`~device.clock.ManualClock`, so it samples as fast as the CPU allows (every 10 s
  sample, every per-minute verdict of the real schedule) until it has covered
  :data:`SIMULATED_HOURS` hours;
* the eye scores the synthetic camera pan unpaced (as fast as the backbone goes);
* the ear listens to the demo soundscape in a loop, unpaced, keeping clips within a small
  budget (so clip retention runs all along).

After a warm-up the test samples resident memory (``VmRSS`` in /proc/self/status), open file
descriptors (/proc/self/fd) and threads (``threading.active_count()`` and /proc/self/task)
and asserts: RSS grows at most 5 % from the post-warm-up level to the end, and the descriptor
and thread counts do not grow. The series is printed.

What "24 hours" covers: the nose's full 24 simulated hours (8640 samples and 1440 verdicts at
the default 10 s period; one ADC conversion per channel instead of the median of three, see
:data:`CONVERSIONS_PER_SAMPLE`). The eye and the ear cannot be accelerated beyond their own
processing speed; they run flat out for the same wall time, which the printout converts into
frames scored and seconds of audio heard (a few minutes of each, not 24 hours).
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from device.clock import ManualClock, SystemClock
from device.demo import build_demo_nose, demo_config
from device.ear.service import build_ear
from device.events import Event
from device.eye.service import build_eye
from device.runtime import Station
from device.sinks import StoreSink
from device.store import EventStore

from .station_harness import SENSES, sense_of, station_config

SIMULATED_HOURS = 24.0
#: Models loaded, caches and allocator arenas filled, the first clips written and expired.
WARMUP_S = 15.0
SAMPLE_EVERY_S = 5.0
#: Samples after the warm-up needed to see a trend; a fast machine covers the nose's 24 hours
#: before that, and the soak then goes on (the eye and ear with it) until they are taken.
MIN_SAMPLES = 3
#: Stop here even if the nose is slower than expected (a loaded CI machine), and fail.
WALL_LIMIT_S = 160.0
#: The nose's cost is its I2C conversions (80 % of a sample, profiled): one conversion per
#: channel instead of the default median of three runs the same code a third as often, which
#: is what lets 24 simulated hours fit in about two minutes next to the eye and the ear.
CONVERSIONS_PER_SAMPLE = 1
MAX_RSS_GROWTH = 0.05
CLIP_BUDGET_MB = 5.0


@dataclass(frozen=True)
class Sample:
    wall_s: float
    nose_hours: float
    rss_kib: int
    fds: int
    threads: int
    tasks: int


def resident_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("/proc/self/status has no VmRSS line")


class Counting:
    """A sink that only counts (a sink that kept events would itself grow)."""

    def __init__(self) -> None:
        self.per_sense: Counter[str] = Counter()
        self._lock = threading.Lock()

    def handle(self, event: Event) -> None:
        with self._lock:
            self.per_sense[sense_of(event)] += 1


def test_24_simulated_hours_keep_memory_fds_and_threads_flat(tmp_path: Path) -> None:
    base = station_config(tmp_path / "data")
    config = demo_config(base, base.station.data_dir)
    config = config.model_copy(
        update={
            "nose": config.nose.model_copy(
                update={"conversions_per_sample": CONVERSIONS_PER_SAMPLE}
            ),
            "eye": config.eye.model_copy(
                update={"source": config.eye.source.model_copy(update={"kind": "synthetic"})}
            ),
            "ear": config.ear.model_copy(
                update={"source": "file", "loop": True, "clip_budget_mb": CLIP_BUDGET_MB}
            ),
        }
    )
    config.station.data_dir.mkdir(parents=True)
    nose_clock = ManualClock()
    counting = Counting()
    store = EventStore(config.store_path)
    station = Station(SystemClock(), [StoreSink(store), counting])
    nose = build_demo_nose(config, nose_clock).as_sense()
    eye = build_eye(config, SystemClock(), emulated=True, paced=False)
    ear = build_ear(config, SystemClock(), emulated=True, realtime_files=False)
    for events in (nose.events, eye.events, ear.events):
        for event in events:
            station.emit(event)
    station.add_sense("nose", nose.run)
    station.add_sense("eye", eye.service.run, counters=eye.service.counters)
    station.add_sense("ear", ear.service.run, counters=ear.service.counters)

    samples: list[Sample] = []
    started_s = time.monotonic()

    def take_sample() -> Sample:
        return Sample(
            wall_s=time.monotonic() - started_s,
            nose_hours=nose_clock.monotonic() / 3600.0,
            rss_kib=resident_kib(),
            fds=len(os.listdir("/proc/self/fd")),
            threads=threading.active_count(),
            tasks=len(os.listdir("/proc/self/task")),
        )

    try:
        next_sample_s = WARMUP_S
        while nose_clock.monotonic() < SIMULATED_HOURS * 3600.0 or len(samples) < MIN_SAMPLES:
            elapsed_s = time.monotonic() - started_s
            if elapsed_s > WALL_LIMIT_S:
                break
            if elapsed_s >= next_sample_s:
                samples.append(take_sample())
                next_sample_s += SAMPLE_EVERY_S
            time.sleep(0.2)
        samples.append(take_sample())
    finally:
        station.stop()
        station.join(10.0)
        store.close()

    summary = {s["name"]: s for s in station.summary()}
    eye_counters = eye.service.counters()
    ear_counters = ear.service.counters()
    print(f"\n{'wall s':>7} {'nose h':>7} {'RSS MiB':>8} {'fds':>4} {'threads':>7} {'tasks':>5}")
    for s in samples:
        print(
            f"{s.wall_s:7.1f} {s.nose_hours:7.2f} {s.rss_kib / 1024:8.1f} {s.fds:4d} "
            f"{s.threads:7d} {s.tasks:5d}"
        )
    wall_s = samples[-1].wall_s
    print(
        f"in {wall_s:.0f} s: the nose covered {samples[-1].nose_hours:.1f} simulated hours "
        f"({counting.per_sense['nose']} nose events); the eye scored "
        f"{eye_counters['frames_scored']} frames ({counting.per_sense['eye']} events); the ear "
        f"heard {ear_counters['seconds_heard']} s of audio ({ear_counters['detections']} "
        f"detections); restarts {station.restarts or 'none'}"
    )

    assert samples[-1].nose_hours >= SIMULATED_HOURS, (
        f"the nose covered only {samples[-1].nose_hours:.1f} simulated hours in "
        f"{WALL_LIMIT_S:g} s: too slow a machine for this soak, or the nose slowed down"
    )
    assert not station.restarts, f"senses crashed during the soak: {summary}"
    for sense in SENSES:
        assert counting.per_sense[sense] > 0, f"{sense} produced nothing during the soak"
    assert len(samples) >= MIN_SAMPLES, "too few samples after the warm-up to see a trend"
    first, last = samples[0], samples[-1]
    growth = (last.rss_kib - first.rss_kib) / first.rss_kib
    assert growth <= MAX_RSS_GROWTH, (
        f"resident memory grew {growth:.1%} ({first.rss_kib / 1024:.1f} -> "
        f"{last.rss_kib / 1024:.1f} MiB) after the warm-up: a leak"
    )
    # A clip or snapshot being written holds one descriptor for a moment: compare the steady
    # levels, the lowest of the first and of the last three samples.
    fds_start, fds_end = min(s.fds for s in samples[:3]), min(s.fds for s in samples[-3:])
    assert fds_end <= fds_start, f"open file descriptors grew {fds_start} -> {fds_end}"
    assert last.threads <= first.threads and last.tasks <= first.tasks, (
        f"threads grew: {first.threads} -> {last.threads} Python, {first.tasks} -> {last.tasks} OS"
    )
