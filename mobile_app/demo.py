"""``senses-app --demo``: the app connected to a simulated station, no radio or Pi needed.

:func:`simulated_station` runs, in this process and this asyncio loop:

* the station as ``senses demo`` builds it: the emulated nose replaying a beef recording
  (training/data/beef_wijaya) at high speed through the real ADS1115/SHT31 drivers, its
  events committed to an :class:`~device.store.EventStore`, served by the real
  :class:`~device.link.core.LinkCore` on a :class:`~device.link.bumble_link.BumbleLinkServer`;
* **simulated eye and ear**: the camera (concept scores) and microphone (bird detections)
  senses do not exist yet, so :class:`SimulatedEyeAndEar` puts synthetic concept and bird
  events into the same store (the UI says so: :data:`SIMULATED_SENSES`);
* the app's side: a :class:`~mobile_app.connection.StationConnection` over a
  :class:`~mobile_app.connection.BumbleStationLink` on the same virtual link, feeding an
  :class:`~mobile_app.state.AppState`.

Its handle (:class:`SimulatedStation`) can drop the link, take the station out of range and
bring it back, so the UI and its tests can show reconnection, catching up and the
disconnection alert.

``python -m mobile_app.demo [seconds]`` runs it without a UI and logs what the app sees.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import shutil
import sys
import tempfile
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final

from device.clock import Clock, ScaledClock, SystemClock
from device.config import Config
from device.demo import DEMO_SPEED, build_demo_nose, demo_config
from device.events import BirdDetection, ConceptScore, Event
from device.link.bumble_link import (
    PHONE_ADDRESS,
    STATION_ADDRESS,
    BumbleLinkServer,
    virtual_device,
    virtual_link,
)
from device.link.core import ControlHandlers, LinkCore
from device.link.protocol import ResultCode
from device.runtime import Station
from device.sinks import StoreSink
from device.store import EventStore
from mobile_app.connection import BumbleStationLink, StationConnection
from mobile_app.state import Alert, AppState

log = logging.getLogger(__name__)

SIMULATED_SENSES: Final = ("concept", "bird")
"""Event types the demo station makes up: the eye and ear senses do not exist yet."""
DEMO_STATION_NAME: Final = "Senses demo"
DEMO_CONCEPTS: Final = ("a cat on the sofa", "a person at the door", "an empty fruit bowl")
DEMO_SPECIES: Final = (
    "Turdus merula",
    "Parus major",
    "Erithacus rubecula",
    "Passer domesticus",
    "Cyanistes caeruleus",
    "Pica pica",
)
CONCEPT_PERIOD_S: Final = 1.0
"""Real seconds between synthetic concept scores (a camera sends a few per second)."""
BIRD_PERIOD_S: Final = 4.0
"""Real seconds between synthetic bird detections, on average."""
PAST_BIRDS: Final = 5
"""Detections already in the store when the app first connects (it backfills them)."""
CROP_ABOVE: Final = 0.85
"""A synthetic score this high "takes an AI crop": one of the shipped photographs, whose
thumbnail the app fetches over the control point as from a real station."""
CROP_PHOTOS: Final = ("cat", "chelsea", "pets", "cat_test_0", "cat_train_0")


class SimulatedEyeAndEar:
    """Stands in for the eye (concept scores) and ear (bird detections) senses.

    Runs as a station sense (:meth:`run`), so its events go through the same sinks and store
    as the nose's. Timestamps come from the station's clock, so in the demo birds and
    concepts share the nose's accelerated time.
    """

    def __init__(
        self,
        clock: Clock,
        *,
        seed: int = 7,
        concept_period_s: float = CONCEPT_PERIOD_S,
        bird_period_s: float = BIRD_PERIOD_S,
    ) -> None:
        self.clock = clock
        self.concept_period_s = concept_period_s
        self.bird_period_s = bird_period_s
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._concept = DEMO_CONCEPTS[0]
        self._crops: dict[str, str] = {}
        self._crop_random = random.Random(seed)  # apart: the scores' sequence stays as it was
        self.selected: list[str] = []
        """Concepts the app asked for through the control point."""

    @property
    def concept(self) -> str:
        with self._lock:
            return self._concept

    def select_concept(self, concept: str) -> ResultCode:
        """The control point's ``select_concept`` handler (the camera would reload here)."""
        with self._lock:
            self._concept = concept
            self.selected.append(concept)
        return ResultCode.OK

    def concept_score(self, concept: str | None = None, ts: float | None = None) -> ConceptScore:
        rng = self._random
        x, y = rng.uniform(0, 0.6), rng.uniform(0, 0.6)
        score = round(min(1.0, max(0.0, rng.gauss(0.6, 0.2))), 3)
        crop = None
        if score >= CROP_ABOVE:
            with self._lock:
                crop = f"demo-{len(self._crops)}"
                self._crops[crop] = self._crop_random.choice(CROP_PHOTOS)
        return ConceptScore(
            ts=self.clock.wall() if ts is None else ts,
            concept=concept or self.concept,
            score=score,
            focus_box=(x, y, rng.uniform(0.1, 0.4), rng.uniform(0.1, 0.4)),
            fps=round(rng.uniform(12, 15), 1),
            drops=rng.randrange(3),
            crop=crop,
        )

    def thumbnail(self, crop: str) -> bytes:
        """The control point's ``thumbnail`` handler: a small JPEG of the "AI crop"."""
        from device.eye.images import load_image
        from device.eye.snapshots import thumbnail_jpeg
        from device.eye.sources import synthetic_stills_dir

        with self._lock:
            photo = self._crops[crop]  # KeyError: not a crop of this demo
        return thumbnail_jpeg(load_image(synthetic_stills_dir() / f"{photo}.jpg"))

    def bird(self, ts: float | None = None) -> BirdDetection:
        rng = self._random
        ts = self.clock.wall() if ts is None else ts
        best = rng.uniform(0.55, 0.98)
        return BirdDetection(
            ts=ts,
            start=ts - rng.uniform(1.5, 4.0),
            end=ts - 0.5,
            species=rng.choice(DEMO_SPECIES),
            confidence_max=round(best, 3),
            confidence_mean=round(best - rng.uniform(0.05, 0.2), 3),
            clip=f"demo-{int(ts)}.flac",
        )

    def history(self) -> list[Event]:
        """A few events from the last hour: every demo concept once, and some birds."""
        now = self.clock.wall()
        events: list[Event] = [
            self.concept_score(concept, now - 3600 + i) for i, concept in enumerate(DEMO_CONCEPTS)
        ]
        events[-1], events[0] = events[0], events[-1]  # the active concept is the newest
        events += [self.bird(now - 3000 + 600 * i) for i in range(PAST_BIRDS)]
        return sorted(events, key=lambda e: e.ts)

    def run(self, emit: Callable[[Event], None], stop: threading.Event) -> None:
        """The sense entry point (:meth:`device.runtime.Station.add_sense`)."""
        next_bird = self._random.expovariate(1 / self.bird_period_s)
        waited = 0.0
        while not stop.wait(self.concept_period_s):  # real seconds, whatever the clock's speed
            emit(self.concept_score())
            waited += self.concept_period_s
            if waited >= next_bird:
                emit(self.bird())
                waited, next_bird = 0.0, self._random.expovariate(1 / self.bird_period_s)


@dataclass
class SimulatedStation:
    """What :func:`simulated_station` yields: the app's side and handles on the station."""

    state: AppState
    connection: StationConnection
    link: BumbleStationLink
    server: BumbleLinkServer
    core: LinkCore
    store: EventStore
    station: Station
    eye_and_ear: SimulatedEyeAndEar
    clock: Clock
    simulated_senses: tuple[str, ...] = SIMULATED_SENSES
    """Event types that are made up (show it in the UI: "concept and bird are simulated")."""
    task: asyncio.Task[None] | None = None
    """The connection's ``run()`` (None when started with ``connect=False``)."""
    recording: str | None = None
    """The nose recording being replayed (None without the nose)."""
    _away: bool = field(default=False, repr=False)

    @property
    def away(self) -> bool:
        """True while the station is out of range (see :meth:`go_away`)."""
        return self._away

    def emit(self, event: Event) -> None:
        """Commit an event as if a sense had produced it (the app receives it live)."""
        self.station.emit(event)

    async def drop_link(self) -> None:
        """The station drops the link (as on a radio glitch); the app reconnects by itself."""
        for connection in self.server.connections:
            with contextlib.suppress(Exception):  # already going away
                await connection.disconnect()

    async def go_away(self) -> None:
        """The station goes out of range: it stops advertising and the link drops. The app
        keeps retrying with backoff (and raises the disconnection alert when it is due)."""
        self._away = True
        await self.server.device.stop_advertising()
        await self.drop_link()

    async def come_back(self) -> None:
        """The station is in range again: it advertises, and the app's next retry connects
        and catches up on what happened meanwhile."""
        self._away = False
        await self.server.start()

    async def reconnect_now(self) -> None:
        """Skip the app's remaining backoff wait (a "retry now" button)."""
        self.connection.retry_now()


@contextlib.asynccontextmanager
async def simulated_station(
    state: AppState | None = None,
    *,
    nose: bool = True,
    speed: float = DEMO_SPEED,
    connect: bool = True,
    pair: bool = True,
    mtu: int = 247,
    station_name: str = DEMO_STATION_NAME,
    data_dir: Path | None = None,
    simulate_eye_and_ear: bool = True,
    follow_station_clock: bool = True,
    scan_timeout_s: float = 2.0,
    connect_timeout_s: float = 5.0,
    backoff_first_s: float = 1.0,
    backoff_max_s: float = 60.0,
) -> AsyncIterator[SimulatedStation]:
    """A running simulated station and the app connected to it (see the module docstring).

    ``state``: the app's state to feed (a new one by default). ``nose``: replay the beef
    recording as ``senses demo`` does (``speed`` times real time). ``connect``: start the
    connection's ``run()`` as a task (else call it yourself). ``pair``: pair the phone (an
    unpaired one gets live events but its control requests are refused). ``data_dir``: where
    the station keeps its store (a temporary folder, removed afterwards, by default).
    ``follow_station_clock``: the state's ``now`` becomes the station's accelerated clock, so
    charts ending "now", "today" and "minutes ago" match the replay (and the disconnection
    alert, 10 station minutes, comes after 2 real seconds at 300x).
    """
    state = state if state is not None else AppState()
    own_dir = data_dir is None
    folder = Path(tempfile.mkdtemp(prefix="senses-app-demo-")) if data_dir is None else data_dir
    config = demo_config(Config(), folder)
    clock: Clock = ScaledClock(speed) if nose else SystemClock()
    if follow_station_clock:
        state.now = clock.wall
    store = EventStore(config.store_path)
    station = Station(clock, [StoreSink(store)])
    eye_and_ear = SimulatedEyeAndEar(clock)
    core = LinkCore(
        store,
        station_name=station_name,
        clock=SystemClock(),
        handlers=ControlHandlers(
            select_concept=eye_and_ear.select_concept, thumbnail=eye_and_ear.thumbnail
        ),
    )
    air = virtual_link()
    server = BumbleLinkServer(virtual_device(air, station_name, STATION_ADDRESS), core)
    link = BumbleStationLink(virtual_device(air, "phone", PHONE_ADDRESS), mtu=mtu, pair=pair)
    connection = StationConnection(
        link,
        state,
        scan_timeout_s=scan_timeout_s,
        connect_timeout_s=connect_timeout_s,
        backoff_first_s=backoff_first_s,
        backoff_max_s=backoff_max_s,
    )
    sim = SimulatedStation(
        state, connection, link, server, core, store, station, eye_and_ear, clock
    )
    setup = None
    try:
        await server.start()
        server.attach(store)
        if simulate_eye_and_ear:
            for event in eye_and_ear.history():
                station.emit(event)
            station.add_sense("eye_and_ear", eye_and_ear.run)
        else:
            sim.simulated_senses = ()
        if nose:
            setup = build_demo_nose(config, clock)
            nose_service = setup.service

            def new_food() -> tuple[ResultCode, str]:
                mark = nose_service.mark_food_in("app")
                return (ResultCode.OK if mark.accepted else ResultCode.UNAVAILABLE), mark.message

            core.handlers = replace(core.handlers, new_food=new_food)
            sim.recording = config.emulation.recording.name
            for event in setup.events:
                station.emit(event)
            station.add_sense("nose", setup.service.run)
        if connect:
            sim.task = asyncio.create_task(connection.run(), name="senses-app-connection")
        yield sim
    finally:
        connection.stop()
        if sim.task is not None:
            await sim.task
        station.stop()
        await asyncio.to_thread(station.join)
        if setup is not None:
            for event in setup.service.finish():
                station.emit(event)
        server.detach()
        store.close()
        if own_dir:
            shutil.rmtree(folder, ignore_errors=True)


# ------------------------------------------------------------------------------ headless run


async def _headless(seconds: float) -> None:
    state = AppState()
    last = {"connection": state.connection}

    def changed() -> None:
        if state.connection != last["connection"]:
            last["connection"] = state.connection
            log.info("connection: %s", state.connection.label)

    def alerted(alert: Alert) -> None:
        log.info("ALERT [%s] %s: %s", alert.severity, alert.title, alert.message)

    state.add_listener(changed)
    state.add_alert_listener(alerted)
    async with simulated_station(state) as sim:
        log.info("simulated senses: %s", ", ".join(sim.simulated_senses))
        await asyncio.sleep(seconds)
        food = state.food or {}
        log.info(
            "after %.0f s: last seq %d, food %s (freshness %s), %d species today, %d alerts",
            seconds,
            state.last_seq,
            food.get("label"),
            food.get("freshness"),
            len(state.species_today),
            len(state.alerts),
        )


def main(argv: list[str] | None = None) -> int:
    """``python -m mobile_app.demo [seconds]``: the demo without a UI."""
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("bumble").setLevel(logging.WARNING)
    asyncio.run(_headless(float(args[0]) if args else 30.0))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
