"""The station at run time: opens the hardware, starts the senses, fans events out to sinks.

Each sense runs in its own thread. A sense that raises is reported with a Health event and
restarted with exponential backoff; the others keep running. Sinks are called one event at a
time under one lock, from whichever sense produced the event.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from device.clock import Clock
from device.config import Config
from device.errors import CalibrationError, ModelError
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
) -> NoseSetup:
    """Open the nose on the real bus or the emulated one, with its model and calibration.

    A missing or corrupt model, or a missing calibration, is not fatal: the nose still
    produces readings, and a Health event says what is wrong and how to fix it.
    ``scene_hold_s`` and ``preheated_s`` shape the emulated scene (see
    :meth:`hardware.sim.nose.EmulatedNose.from_config`).
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
    )
    return NoseSetup(service=service, bus=bus, emulation=emulation, events=events)


class Station:
    """Runs senses in threads and fans their events out to the sinks."""

    def __init__(self, clock: Clock, sinks: Sequence[Sink]) -> None:
        self.clock = clock
        self.sinks = list(sinks)
        self._sink_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.restarts: dict[str, int] = {}

    def emit(self, event: Event) -> None:
        with self._sink_lock:
            for sink in list(self.sinks):
                try:
                    sink.handle(event)
                except Exception:
                    log.exception("sink %s failed; dropping it", type(sink).__name__)
                    self.sinks.remove(sink)

    def add_sense(
        self, name: str, run: Callable[[Callable[[Event], None], threading.Event], None]
    ) -> None:
        thread = threading.Thread(
            target=self._supervise, args=(name, run), name=f"sense-{name}", daemon=True
        )
        self._threads.append(thread)
        thread.start()

    def _supervise(
        self, name: str, run: Callable[[Callable[[Event], None], threading.Event], None]
    ) -> None:
        backoff_s = RESTART_BACKOFF_FIRST_S
        while not self._stop.is_set():
            try:
                run(self.emit, self._stop)
                return
            except Exception as e:
                log.exception("sense %s crashed", name)
                self.restarts[name] = self.restarts.get(name, 0) + 1
                self.emit(
                    Health(
                        ts=self.clock.wall(),
                        component=name,
                        status=HealthStatus.FAILED,
                        message=f"crashed ({e!r}); restarting in {backoff_s:.0f} s",
                    )
                )
                if self._stop.wait(backoff_s):
                    return
                backoff_s = min(backoff_s * 2, RESTART_BACKOFF_MAX_S)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout_s: float = 5.0) -> None:
        for thread in self._threads:
            thread.join(timeout_s)
