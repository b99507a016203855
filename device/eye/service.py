"""The eye as a running sense: frames in, ``ConceptScore`` and ``Health`` events out.

:func:`build_eye` opens what ``[eye]`` describes (the camera, or the emulated camera in a
demo; the backbone; the concepts) and returns an :class:`EyeSetup` whose
``service.run(emit, stop)`` is what :class:`device.runtime.Station` runs in a thread, like
the nose's. A missing backbone or a bad ``.cav`` is not a crash: a Health event says what is
wrong and how to fix it. A camera that is missing or unplugged mid-run is reported and
reopened with backoff (:class:`~device.eye.frames.CaptureThread`) while the service waits.

Events are rate-limited per concept (``events_per_s``): the BLE link cannot carry 30 a
second, and a meter does not need them. A frame that triggers an AI crop is always sent.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

from device.clock import Clock
from device.config import Config
from device.errors import ConceptError, ConfigError, ModelError, StoreError
from device.events import ConceptScore, Event, Health, HealthStatus
from device.eye.backbone import DEFAULT_BACKBONE_DIR, FULL_FRAME, Backbone, to_model_input
from device.eye.boards import BoardUploads
from device.eye.concept import Concept, load_concept
from device.eye.frames import CaptureThread, Frame, FrameQueue
from device.eye.scoring import FrameScorer
from device.eye.settings import EyeConfig
from device.eye.snapshots import Snapshot, SnapshotStore
from device.eye.sources import FrameSource, open_source

if TYPE_CHECKING:
    from hardware.sim.camera import CameraFaultInjector, EmulatedCamera

log = logging.getLogger(__name__)

COMPONENT: Final = "eye"
#: How many recent frames the reported frame rate averages over.
FPS_WINDOW_FRAMES: Final = 30
#: How long the service waits for a frame before it checks ``stop`` again (real seconds).
FRAME_WAIT_S: Final = 0.1
#: How many of the latest AI crops the service remembers (for ``senses eye watch``, tests).
RECENT_SNAPSHOTS: Final = 100
#: Below the data folder: partial board uploads from the phone.
BOARD_UPLOAD_SUBDIR: Final = "board_uploads"


class EyeService:
    """Scores frames from ``source`` and emits events; controllable from the link."""

    def __init__(
        self,
        config: EyeConfig,
        source: FrameSource,
        scorer: FrameScorer | None,
        clock: Clock,
        *,
        snapshots: SnapshotStore | None = None,
        startup_events: Sequence[Event] = (),
        paced: bool = True,
        backbone: Backbone | None = None,
    ) -> None:
        self.config = config
        if backbone is None and scorer is not None:
            backbone = scorer.backbone
        self.backbone = backbone
        """The scorer's backbone: lets a concept trained on the phone start a scorer."""
        self._new_concepts: queue.SimpleQueue[Concept] = queue.SimpleQueue()
        self._new_names: set[str] = set()
        self._names_lock = threading.Lock()
        self._select_when_added: str | None = None
        self.source = source
        self.scorer = scorer
        self.clock = clock
        self.snapshots = snapshots
        self.paced = paced
        self.frame_queue = FrameQueue(config.queue_frames)
        self.saved: collections.deque[Snapshot] = collections.deque(maxlen=RECENT_SNAPSHOTS)
        """The latest AI crops saved (the folder holds more, within its limits)."""
        self.ai_crops = 0
        self._drops_in_earlier_runs = 0
        self._capture: CaptureThread | None = None
        self._startup_events = list(startup_events)
        self._scored_at: collections.deque[float] = collections.deque(maxlen=FPS_WINDOW_FRAMES)
        self._last_sent_s: dict[str, float] = {}

    # --- control (the link's control point calls these) ---------------------------------

    def concept_names(self) -> list[str]:
        """The concepts loaded from ``[eye] concepts`` in that order, then those added since."""
        with self._names_lock:
            return self._all_names()

    def add_concept(self, concept: Concept) -> None:
        """Score ``concept`` from the next frame on (a board trained from the phone).

        Safe from any thread: the scoring thread picks it up between two frames, so a frame
        is never scored against half a list. Raises :class:`ConceptError` for a name already
        in use (the link and the events tell concepts apart by name) or with no backbone.
        """
        with self._names_lock:
            if concept.name in self._all_names():
                raise ConceptError(
                    f"a concept called {concept.name!r} is already on the station: "
                    "choose another name"
                )
            if self.backbone is None:
                raise ConceptError("the eye has no backbone model: it cannot score a concept")
            self._new_names.add(concept.name)
        self._new_concepts.put(concept)

    def _all_names(self) -> list[str]:
        names = self.scorer.concept_names if self.scorer is not None else []
        return [*names, *sorted(self._new_names - set(names))]

    def _take_new_concepts(self) -> None:
        """On the scoring thread: start scoring concepts added by :meth:`add_concept`."""
        while not self._new_concepts.empty():
            concept = self._new_concepts.get()
            if self.scorer is None:
                assert self.backbone is not None
                self.scorer = FrameScorer(self.backbone, [concept], self.config)
            else:
                self.scorer.add_concept(concept)
            log.info("eye: now scoring concept %r", concept.name)
        with self._names_lock:
            chosen, self._select_when_added = self._select_when_added, None
        if chosen is not None and self.scorer is not None and chosen in self.scorer.concept_names:
            self.scorer.set_active([chosen])

    def thumbnail(self, crop_id: str) -> bytes:
        """The small JPEG of AI crop ``crop_id`` (KeyError if the station no longer has it)."""
        if self.snapshots is None:
            raise KeyError("this station keeps no AI crops")
        return self.snapshots.thumbnail(crop_id)

    def active_concepts(self) -> list[str]:
        if self.scorer is None:
            return []
        return [n for n in self.scorer.concept_names if n in self.scorer.active]

    def select_concept(self, name: str) -> bool:
        """Score and report only ``name`` from now on; False if no such concept is loaded."""
        with self._names_lock:
            loaded = self.scorer.concept_names if self.scorer is not None else []
            if name not in loaded:
                if name not in self._new_names:
                    return False
                # Trained a moment ago, not yet picked up by the scoring thread.
                self._select_when_added = name
                return True
            self._select_when_added = None
        assert self.scorer is not None
        self.scorer.set_active([name])
        return True

    def set_threshold(self, value: float) -> bool:
        """Take AI crops at calibrated score ``value`` (0-1]; False if it cannot be used."""
        if self.scorer is None or not 0.0 < value <= 1.0:
            return False
        try:
            self.scorer.set_threshold(value)
        except ConfigError as e:
            log.info("threshold %s refused: %s", value, e)
            return False
        return True

    def counters(self) -> dict[str, int]:
        """Running totals for the station's summary (``drops`` counts every run)."""
        scorer = self.scorer
        return {
            "drops": self._drops_in_earlier_runs + self.frame_queue.drops,
            "frames_scored": scorer.frames_scored if scorer is not None else 0,
            "crop_maps": scorer.schedule.maps_completed if scorer is not None else 0,
            "ai_crops": self.ai_crops,
            "camera_reconnects": self._capture.reconnects if self._capture is not None else 0,
        }

    # --- running --------------------------------------------------------------------------

    @property
    def fps(self) -> float:
        """Frames scored per second over the last :data:`FPS_WINDOW_FRAMES` frames."""
        if len(self._scored_at) < 2:
            return 0.0
        span_s = self._scored_at[-1] - self._scored_at[0]
        return (len(self._scored_at) - 1) / span_s if span_s > 0 else 0.0

    def _health(self, component: str, status: HealthStatus, message: str) -> Health:
        return Health(ts=self.clock.wall(), component=component, status=status, message=message)

    def process(self, frame: Frame, drops: int = 0) -> list[Event]:
        """Score one frame; return the events it produced (rate-limited ConceptScores)."""
        self._take_new_concepts()
        if self.scorer is None:
            return []
        now_s = self.clock.monotonic()
        readings = self.scorer.score(frame.rgb, now_s, frame.model_input)
        self._scored_at.append(now_s)
        events: list[Event] = []
        min_gap_s = 1.0 / self.config.events_per_s
        for reading in readings:
            crop_id = None
            if reading.triggered and self.snapshots is not None:
                try:
                    snapshot = self.snapshots.save(
                        frame.rgb,
                        reading.focus_box,
                        concept=reading.concept,
                        score=reading.focus_score,
                        ts=frame.ts,
                    )
                    self.saved.append(snapshot)
                    crop_id = snapshot.id
                    self.ai_crops += 1
                except StoreError as e:
                    events.append(
                        self._health(f"{COMPONENT}.snapshots", HealthStatus.DEGRADED, str(e))
                    )
            last_s = self._last_sent_s.get(reading.concept)
            if reading.triggered or last_s is None or now_s - last_s >= min_gap_s:
                self._last_sent_s[reading.concept] = now_s
                events.append(
                    ConceptScore(
                        ts=frame.ts,
                        concept=reading.concept,
                        score=round(reading.score, 4),
                        focus_box=(
                            round(reading.focus_box[0], 4),
                            round(reading.focus_box[1], 4),
                            round(reading.focus_box[2], 4),
                            round(reading.focus_box[3], 4),
                        ),
                        fps=round(self.fps, 2),
                        drops=drops,
                        crop=crop_id,
                    )
                )
        return events

    def run(self, emit: Callable[[Event], None], stop: threading.Event) -> None:
        """Capture and score until ``stop`` is set (or a finite source ends)."""
        for event in self._startup_events:
            emit(event)
        self._startup_events = []
        if self.scorer is None and self.backbone is None:
            return
        # A fresh queue each run: the runtime restarts a crashed sense by calling run again,
        # and the previous run closed its queue on the way out.
        self._drops_in_earlier_runs += self.frame_queue.drops
        self.frame_queue = FrameQueue(self.config.queue_frames)
        inbox: queue.SimpleQueue[Health] = queue.SimpleQueue()
        # The capture thread prepares the backbone's full-frame input (pipelining); with no
        # concept yet (a phone may send one later) the backbone alone says how.
        backbone = self.scorer.backbone if self.scorer is not None else self.backbone
        input_size = backbone.input_size if backbone is not None else None
        capture = CaptureThread(
            self.source,
            self.frame_queue,
            self.clock,
            inbox.put,
            paced=self.paced,
            prepare=(
                (lambda rgb: to_model_input(rgb, FULL_FRAME, input_size))
                if input_size is not None
                else None
            ),
        )
        self._capture = capture
        capture.start()
        try:
            while not stop.is_set():
                while not inbox.empty():
                    emit(inbox.get())
                frame = self.frame_queue.get(FRAME_WAIT_S)
                if frame is None:
                    if self.frame_queue.closed:
                        break
                    continue
                for event in self.process(frame, self.frame_queue.drops):
                    emit(event)
        finally:
            capture.stop()
            while not inbox.empty():
                emit(inbox.get())


@dataclass
class EyeSetup:
    """A ready-to-run eye and, in a demo or test, the emulated camera it looks through."""

    service: EyeService
    camera: EmulatedCamera | None = None
    faults: CameraFaultInjector | None = None
    events: list[Event] = field(default_factory=list)
    boards: BoardUploads | None = None
    """Boards sent from the phone (the link's board ops), trained into new concepts."""


def load_concepts(
    paths: Sequence[Path], backbone: Backbone, clock: Clock
) -> tuple[list[Concept], list[Event]]:
    """Every concept that loads, and a FAILED Health event for each one that does not."""
    concepts: list[Concept] = []
    events: list[Event] = []
    for path in paths:
        try:
            concepts.append(load_concept(path, backbone))
        except ConceptError as e:
            events.append(
                Health(
                    ts=clock.wall(),
                    component=f"{COMPONENT}.concept",
                    status=HealthStatus.FAILED,
                    message=str(e),
                )
            )
    return concepts, events


def build_eye(
    config: Config,
    clock: Clock,
    *,
    emulated: bool,
    backbone: Backbone | None = None,
    paced: bool = True,
) -> EyeSetup:
    """Open the eye that ``config.eye`` describes.

    With ``emulated`` a camera source (``camera`` or ``picamera2``) becomes the emulated
    camera of ``hardware.sim.camera`` (a pan over licence-clean stills) behind the same
    OpenCV camera code; file and synthetic sources are used as they are. ``backbone`` reuses
    a loaded one (tests, benchmarks); otherwise it is loaded from the models folder.
    """
    eye = config.eye
    events: list[Event] = []

    def failed(component: str, message: str) -> None:
        events.append(
            Health(
                ts=clock.wall(), component=component, status=HealthStatus.FAILED, message=message
            )
        )

    camera = None
    faults = None
    if emulated and eye.source.kind in ("camera", "picamera2"):
        from hardware.sim.camera import CameraFaultInjector, EmulatedCamera

        camera = EmulatedCamera.synthetic(
            clock,
            width=eye.source.width,
            height=eye.source.height,
            fps=eye.source.fps,
            index=eye.source.device,
        )
        faults = CameraFaultInjector(camera)
        source = open_source(
            eye.source.model_copy(update={"kind": "camera"}),
            capture_factory=camera.capture_factory,
        )
    else:
        source = open_source(eye.source)
    scorer = None
    if backbone is None:
        try:
            backbone = Backbone(
                config.inference.models_dir / DEFAULT_BACKBONE_DIR.name,
                num_threads=config.inference.num_threads,
            )
        except ModelError as e:
            failed(f"{COMPONENT}.model", str(e))
    if backbone is not None:
        # Concepts made on the phone live in the data folder, so they survive a restart.
        phone_dir = eye.phone_concepts_path(config.station.data_dir)
        phone_made = sorted(phone_dir.glob("*.cav")) if phone_dir.is_dir() else []
        concepts, concept_events = load_concepts([*eye.concepts, *phone_made], backbone, clock)
        events.extend(concept_events)
        if concepts:
            scorer = FrameScorer(backbone, concepts, eye)
        elif not concept_events:
            failed(
                f"{COMPONENT}.concept",
                "no concept to look for: train one with `senses eye train` and list it in "
                "[eye] concepts",
            )
    snapshots = SnapshotStore(
        eye.snapshot_path(config.station.data_dir),
        max_snapshots=eye.max_snapshots,
        budget_bytes=int(eye.snapshot_budget_mb * 1_000_000),
    )
    service = EyeService(
        eye,
        source,
        scorer,
        clock,
        snapshots=snapshots,
        startup_events=events,
        paced=paced,
        backbone=backbone,
    )
    boards = BoardUploads(
        service,
        config.station.data_dir / BOARD_UPLOAD_SUBDIR,
        eye.phone_concepts_path(config.station.data_dir),
        clock,
    )
    return EyeSetup(
        service=service, camera=camera, faults=faults, events=list(events), boards=boards
    )
