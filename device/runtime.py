"""The station at run time: opens the hardware, starts the senses, fans events out to sinks.

Each sense runs in its own thread. A sense that raises is reported with a Health event and
restarted with exponential backoff; the others keep running. Sinks are called one event at a
time under one lock, from whichever sense produced the event.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from device.clock import Clock
from device.config import Config
from device.errors import CalibrationError, ModelError, StoreError
from device.events import Event, Health, HealthStatus
from device.inference import load_model
from device.nose.calibration import NoseCalibration
from device.nose.hardware import open_nose_chips
from device.nose.i2c import I2CBus, SharedI2CBus, open_i2c_bus
from device.nose.sampler import NoseSampler
from device.nose.service import NoseService
from device.sinks import Sink

if TYPE_CHECKING:
    from hardware.sim.nose import EmulatedNose

log = logging.getLogger(__name__)

RESTART_BACKOFF_FIRST_S = 1.0
RESTART_BACKOFF_MAX_S = 60.0
KNOWN_SENSES = ("nose", "eye", "ear")

SenseRun = Callable[[Callable[[Event], None], threading.Event], None]


@dataclass
class SenseSetup:
    """One sense ready for :meth:`Station.add_sense`, whatever it is.

    ``events`` are reported before it starts (e.g. a missing model); ``finish`` flushes what it
    still holds at shutdown; ``finished`` says an emulated source ran out (the nose's
    recording), which ends a demo.
    """

    name: str
    run: SenseRun
    events: list[Event] = field(default_factory=list)
    finish: Callable[[], list[Event]] | None = None
    finished: Callable[[], bool] | None = None
    counters: Callable[[], Mapping[str, int]] | None = None


@dataclass
class NoseSetup:
    """A ready-to-run nose and what it runs on (the emulated scene, in a demo)."""

    service: NoseService
    bus: I2CBus
    emulation: EmulatedNose | None = None
    events: list[Event] = field(default_factory=list)

    def as_sense(self) -> SenseSetup:
        scene = self.emulation.scene if self.emulation is not None else None
        return SenseSetup(
            name="nose",
            run=self.service.run,
            events=self.events,
            finish=self.service.finish,
            finished=(lambda: scene.finished) if scene is not None else None,
        )


def build_nose(
    config: Config,
    clock: Clock,
    *,
    emulated: bool,
    calibrate_after_warmup: bool = False,
    calibration_max_spread: float | None = 0.15,
    calibration_source: str = "clean air",
    load_saved_calibration: bool = True,
    scene_hold_s: float = 0.0,
    preheated_s: float = math.inf,
    keep_food_state: bool = True,
    food_in_at_start: str | None = None,
) -> NoseSetup:
    """Open the nose on the real bus or the emulated one, with its model and calibration.

    A missing or corrupt model, or a missing calibration, is not fatal: the nose still
    produces readings, and a Health event says what is wrong and how to fix it.
    ``scene_hold_s`` and ``preheated_s`` shape the emulated scene (see
    :meth:`hardware.sim.nose.EmulatedNose.from_config`). ``keep_food_state``: the food state
    lives in the data folder (the station; off for one-off commands and replays, which must not
    touch the station's food); ``food_in_at_start`` marks food in at once (replays, the demo).
    """
    events: list[Event] = []
    emulation = None
    if emulated:
        from hardware.sim.nose import EmulatedNose

        emulation = EmulatedNose.from_config(
            config, clock, hold_first_row_s=scene_hold_s, preheated_s=preheated_s
        )
        bus = SharedI2CBus(emulation.bus)
    else:
        bus = open_i2c_bus(config.hardware.i2c_bus)
    chips = open_nose_chips(config.nose, bus, clock, config.hardware.i2c_bus)
    model = None
    try:
        model = load_model(
            config.inference.models_dir / config.nose.model,
            num_threads=config.inference.num_threads,
        )
    except ModelError as e:
        events.append(
            Health(
                ts=clock.wall(), component="nose.model", status=HealthStatus.FAILED, message=str(e)
            )
        )
    calibration = None
    if load_saved_calibration and not calibrate_after_warmup:
        try:
            calibration = NoseCalibration.load(config.calibration_path)
        except CalibrationError as e:
            log.info("no usable calibration: %s", e)
    sampler = NoseSampler(
        config.nose,
        chips.adcs,
        chips.climate,
        clock,
        calibration=calibration,
        bus_number=config.hardware.i2c_bus,
    )
    service = NoseService(
        config.nose,
        sampler,
        model,
        clock,
        calibration=calibration,
        calibrate_after_warmup=calibrate_after_warmup,
        calibration_max_spread=calibration_max_spread,
        calibration_source=calibration_source,
        food_state_path=config.food_state_path if keep_food_state else None,
        food_request_path=config.food_request_path if keep_food_state else None,
        food_in_at_start=food_in_at_start,
    )
    return NoseSetup(service=service, bus=bus, emulation=emulation, events=events)


@dataclass
class SenseStatus:
    """How one sense is doing: what the health summary shows (CLI, link, status file)."""

    name: str
    started_monotonic: float
    events: int = 0
    restarts: int = 0
    last_error: str | None = None
    last_event_wall: float | None = None
    running: bool = True
    counters: Callable[[], Mapping[str, int]] | None = None

    def as_dict(self, now_monotonic: float) -> dict[str, Any]:
        minutes = max((now_monotonic - self.started_monotonic) / 60.0, 1e-9)
        counters = {}
        if self.counters is not None:
            try:
                counters = dict(self.counters())
            except Exception:
                log.exception("sense %s: its counters are unavailable", self.name)
        return {
            "name": self.name,
            "running": self.running,
            "events": self.events,
            "events_per_min": round(self.events / minutes, 2),
            "drops": int(counters.get("drops", 0)),
            "restarts": self.restarts,
            "last_error": self.last_error,
            "last_event_wall": self.last_event_wall,
            **{k: int(v) for k, v in counters.items() if k != "drops"},
        }


class Station:
    """Runs senses in threads and fans their events out to the sinks."""

    def __init__(self, clock: Clock, sinks: Sequence[Sink]) -> None:
        self.clock = clock
        self.sinks = list(sinks)
        self._sink_lock = threading.Lock()
        self._sink_problems: dict[int, str] = {}
        self._stop = threading.Event()
        self._threads: dict[str, threading.Thread] = {}
        self._sense_stops: dict[str, threading.Event] = {}
        self.status: dict[str, SenseStatus] = {}

    @property
    def restarts(self) -> dict[str, int]:
        return {name: s.restarts for name, s in self.status.items() if s.restarts}

    def emit(self, event: Event) -> None:
        with self._sink_lock:
            for sink in list(self.sinks):
                try:
                    sink.handle(event)
                    if self._sink_problems.pop(id(sink), None) is not None:
                        log.warning("sink %s works again", type(sink).__name__)
                except StoreError as e:
                    # A full disk or a busy database heals (clip retention frees space, the
                    # owner cleans up): keep the sink, or every later event would be lost too.
                    if id(sink) not in self._sink_problems:
                        log.error("sink %s cannot keep this event: %s", type(sink).__name__, e)
                    self._sink_problems[id(sink)] = str(e)
                except Exception:
                    log.exception("sink %s failed; dropping it", type(sink).__name__)
                    self.sinks.remove(sink)

    def add_sense(
        self,
        name: str,
        run: SenseRun,
        *,
        counters: Callable[[], Mapping[str, int]] | None = None,
    ) -> None:
        """Start ``run(emit, stop)`` in its own supervised thread.

        ``counters`` reports the sense's own tallies (``drops`` above all) for the summary.
        A sense of the same name must have been stopped with :meth:`stop_sense` first.
        """
        if name in self._threads and self._threads[name].is_alive():
            raise RuntimeError(f"sense {name} is already running; stop_sense({name!r}) first")
        previous = self.status.get(name)
        self.status[name] = SenseStatus(
            name=name,
            started_monotonic=time.monotonic(),
            restarts=previous.restarts if previous else 0,
            counters=counters,
        )
        stop = threading.Event()
        self._sense_stops[name] = stop
        thread = threading.Thread(
            target=self._supervise, args=(name, run, stop), name=f"sense-{name}", daemon=True
        )
        self._threads[name] = thread
        thread.start()

    def _emitter(self, status: SenseStatus) -> Callable[[Event], None]:
        def emit(event: Event) -> None:
            status.events += 1
            status.last_event_wall = event.ts
            self.emit(event)

        return emit

    def _supervise(self, name: str, run: SenseRun, stop: threading.Event) -> None:
        status = self.status[name]
        emit = self._emitter(status)
        backoff_s = RESTART_BACKOFF_FIRST_S
        try:
            while not (stop.is_set() or self._stop.is_set()):
                try:
                    run(emit, _EitherEvent(stop, self._stop))
                    return
                except Exception as e:
                    log.exception("sense %s crashed", name)
                    status.restarts += 1
                    status.last_error = f"{type(e).__name__}: {e}"
                    self.emit(
                        Health(
                            ts=self.clock.wall(),
                            component=name,
                            status=HealthStatus.FAILED,
                            message=f"crashed ({e!r}); restarting in {backoff_s:.0f} s",
                        )
                    )
                    if _EitherEvent(stop, self._stop).wait(backoff_s):
                        return
                    backoff_s = min(backoff_s * 2, RESTART_BACKOFF_MAX_S)
        finally:
            status.running = False

    def stop_sense(self, name: str, timeout_s: float = 5.0) -> bool:
        """Stop one sense and wait for it; True when its thread ended in time."""
        stop = self._sense_stops.get(name)
        thread = self._threads.get(name)
        if stop is None or thread is None:
            return True
        stop.set()
        thread.join(timeout_s)
        return not thread.is_alive()

    def summary(self) -> list[dict[str, Any]]:
        """Per sense: running, events and their rate, drops, restarts, last error."""
        now = time.monotonic()
        return [s.as_dict(now) for s in self.status.values()]

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout_s: float = 5.0) -> None:
        """Wait for every sense, ``timeout_s`` in all (not each): shutdown has a budget."""
        deadline = time.monotonic() + timeout_s
        for thread in list(self._threads.values()):
            thread.join(max(0.0, deadline - time.monotonic()))


class _EitherEvent(threading.Event):
    """Set when either the sense's own stop or the station's stop is set.

    Senses take one ``threading.Event``; this one answers ``is_set``/``wait`` for both, so a
    sense can be stopped alone (config reload) or with the station.
    """

    def __init__(self, own: threading.Event, station: threading.Event) -> None:
        super().__init__()
        self._own = own
        self._station = station

    def is_set(self) -> bool:
        return self._own.is_set() or self._station.is_set()

    def set(self) -> None:
        self._own.set()

    def wait(self, timeout: float | None = None) -> bool:
        # Neither event can notify the other's waiters, so poll in short steps; a stop is
        # noticed within POLL_S, well inside the 5 s shutdown budget.
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.is_set():
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            step = _EITHER_POLL_S if remaining is None else min(_EITHER_POLL_S, remaining)
            self._own.wait(step)
        return True


_EITHER_POLL_S = 0.05
