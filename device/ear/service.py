"""The ear as a running sense: audio in, BirdDetection and Health events out.

:func:`build_ear` assembles it from the config (real or emulated microphone, a file, or a
generator; the backbone and, if present, the species head); :meth:`EarService.run` is what
:class:`device.runtime.Station` runs in the ear's thread.

One *stream* is one uninterrupted stretch of audio from one opened source. Per stream the
service keeps a front end, a ring buffer (for clips), a merger and a clip recorder. When a
stream ends (end of file, microphone vanished, station stopping) it is *finished*: the last
partial window is analysed (padded with silence), open detections are closed and their clips
written with what was heard, and those detections are emitted before anything else. Nothing
heard is dropped.

A microphone that cannot be opened or vanishes gives one ``Health`` FAILED event (component
``ear.microphone``) and is retried with exponential backoff (``retry_first_s`` doubling up to
``retry_max_s``); when it is back, a ``Health`` OK event says so. The service itself never
raises out of :meth:`run` for audio problems.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from device.clock import Clock
from device.ear.clips import ClipRecorder, ClipStore, SavedClip
from device.ear.detections import DetectionMerger, Thresholds
from device.ear.detector import Detector, WindowResult
from device.ear.frontend import Patch, StreamingFrontend
from device.ear.gate import GATE_FOLDER, CascadeGate, GateModel
from device.ear.privacy import SpeechGuard
from device.ear.ring import AudioRing
from device.ear.settings import EarConfig
from device.ear.sources import AudioSource, FileSource, GeneratorSource, MicrophoneSource
from device.ear.species import week_48
from device.ear.windows import AudioWindow, WaveformWindower
from device.errors import AudioInputError, MicrophoneUnavailableError, ModelError
from device.events import BirdDetection, Event, Health, HealthStatus

if TYPE_CHECKING:
    from device.config import Config
    from device.runtime import SenseSetup

log = logging.getLogger(__name__)

COMPONENT = "ear"
MICROPHONE = "ear.microphone"
MODEL = "ear.model"
CLIPS = "ear.clips"
#: Extra seconds the ring holds beyond the longest clip (front-end and merge latency).
RING_MARGIN_S = 5.0

Emit = Callable[[Event], None]


@dataclass
class EarCounters:
    windows: int = 0
    detections: int = 0
    streams: int = 0
    reconnects: int = 0
    clipped_samples: int = 0
    overruns: int = 0
    seconds_heard: float = 0.0
    gated: int = 0  # species-model windows the cascade's gate skipped

    def as_dict(self) -> dict[str, int]:
        return {
            "windows": self.windows,
            "detections": self.detections,
            "streams": self.streams,
            "reconnects": self.reconnects,
            "clipped_samples": self.clipped_samples,
            "drops": self.overruns,
            "seconds_heard": int(self.seconds_heard),
        }


@dataclass
class _Stream:
    source: AudioSource
    frontend: StreamingFrontend
    ring: AudioRing
    merger: DetectionMerger
    recorder: ClipRecorder
    wall_start_s: float
    speech: SpeechGuard | None = None
    species: WaveformWindower | None = None  # the stream at the species model's rate
    cascade: CascadeGate | None = None  # which species windows run (ear.gate)
    overruns_reported: int = 0
    clipping_reported: bool = False


class EarService:
    def __init__(
        self,
        config: EarConfig,
        detector: Detector,
        open_source: Callable[[], AudioSource],
        clock: Clock,
        clip_store: ClipStore | None,
        *,
        strict_names: bool = True,
    ) -> None:
        self.config = config
        self.detector = detector
        self.open_source = open_source
        self.clock = clock
        self.clip_store = clip_store
        self.thresholds = thresholds_for(config, detector, strict=strict_names)
        self.frontend_config = detector.frontend_config(config.hop_frames)
        self.tally = EarCounters()
        #: The cascade's threshold when the gate runs (set by :func:`attach_gate`), else None.
        self.gate_threshold: float | None = None
        self.finished = False  # the source ended (a file without loop): a demo can end
        self._stream: _Stream | None = None
        self._lock = threading.RLock()
        self._clips_failing = False

    # --- the sense loop ----------------------------------------------------------------------

    def run(self, emit: Emit, stop: threading.Event) -> None:
        """Listen until ``stop`` is set or the source ends; survive the microphone going away."""
        backoff_s = self.config.retry_first_s
        failing = False
        while not stop.is_set():
            try:
                source = self.open_source()
                source.open()
            except MicrophoneUnavailableError as e:
                if not failing:
                    emit(self._health(MICROPHONE, HealthStatus.FAILED, f"{e} (retrying)"))
                    failing = True
                log.info("ear: microphone unavailable, retrying in %.0f s: %s", backoff_s, e)
                if self.clock.wait(backoff_s, stop):
                    return
                backoff_s = min(backoff_s * 2, self.config.retry_max_s)
                continue
            except AudioInputError as e:  # a bad file will not heal by retrying
                emit(self._health(MICROPHONE, HealthStatus.FAILED, str(e)))
                self.finished = True
                return
            if failing:
                self.tally.reconnects += 1
                emit(self._health(MICROPHONE, HealthStatus.OK, f"{source.description} is back"))
                failing = False
            backoff_s = self.config.retry_first_s
            ended = False
            try:
                # _listen finishes the stream (detections, clips) before these are reported.
                ended = self._listen(source, emit, stop)
            except MicrophoneUnavailableError as e:
                emit(self._health(MICROPHONE, HealthStatus.FAILED, f"{e} (retrying)"))
                failing = True
            except AudioInputError as e:
                emit(self._health(MICROPHONE, HealthStatus.FAILED, str(e)))
                self.finished = True
                return
            finally:
                source.close()
            if ended:
                self.finished = True
                return

    def finish(self) -> list[Event]:
        """Flush the stream in progress (the station is shutting down); return its events."""
        events: list[Event] = []
        self._end_stream(events.append)
        return events

    def counters(self) -> dict[str, int]:
        """The ear's tallies for the station's summary (``drops``: audio blocks lost)."""
        return self.tally.as_dict()

    def set_threshold(self, value: float) -> bool:
        """Change the global threshold at run time (the app's control point); False if invalid.

        Per-species thresholds from the config still take precedence for their species.
        """
        if not 0.0 < value <= 1.0:
            return False
        with self._lock:
            self.thresholds = replace(self.thresholds, default=float(value))
            if self._stream is not None:
                self._stream.merger.thresholds = self.thresholds
        return True

    # --- one stream --------------------------------------------------------------------------

    def _start_stream(self, source: AudioSource) -> _Stream:
        config = self.config
        longest_clip_s = (
            config.pre_roll_s + config.max_detection_s + config.merge_gap_s + config.post_roll_s
        )
        ring = AudioRing(source.sample_rate, longest_clip_s + RING_MARGIN_S)
        wall_start_s = self.clock.wall()
        speech = (
            SpeechGuard(config.privacy_threshold, horizon_s=longest_clip_s + RING_MARGIN_S)
            if config.privacy_filter
            else None
        )
        stream = _Stream(
            source=source,
            frontend=StreamingFrontend(source.sample_rate, self.frontend_config),
            ring=ring,
            merger=DetectionMerger(
                self.thresholds,
                merge_gap_s=config.merge_gap_s,
                min_windows=config.min_windows,
                max_detection_s=config.max_detection_s,
                catch_all=self.detector.catch_all_labels,
                min_named_windows=self.detector.min_named_windows,
            ),
            recorder=ClipRecorder(
                self.clip_store,
                ring,
                pre_roll_s=config.pre_roll_s,
                post_roll_s=config.post_roll_s,
                stream_wall_s=wall_start_s,
                withhold=speech.reason if speech is not None else None,
                analysed_until=(lambda: speech.analysed_until_s) if speech is not None else None,
            ),
            wall_start_s=wall_start_s,
            speech=speech,
            cascade=(
                CascadeGate(
                    self.gate_threshold,
                    duty=config.gate_duty,
                    patch_s=self.detector.backbone.frontend_config.patch_duration_s,
                )
                if self.gate_threshold is not None and self.detector.species is not None
                else None
            ),
            species=(
                self.detector.species.windower(source.sample_rate)
                if self.detector.species is not None
                else None
            ),
        )
        self.tally.streams += 1
        return stream

    def _listen(self, source: AudioSource, emit: Emit, stop: threading.Event) -> bool:
        """Process blocks until stop (False) or the source's end (True)."""
        with self._lock:
            self._stream = self._start_stream(source)
        try:
            while not stop.is_set():
                block = source.read()
                if block is None:
                    return True
                self._process(block, emit)
                time.sleep(0)  # let other senses in when a file is read flat out
            return False
        finally:
            self._end_stream(emit)

    def _process(self, block: Any, emit: Emit) -> None:
        # Under the lock: finish() may flush this stream from the station's thread.
        with self._lock:
            stream = self._stream
            if stream is None:
                return
            stream.ring.write(block)
            self.tally.seconds_heard += len(block) / stream.source.sample_rate
            patches = stream.frontend.push(block)
            species_windows = stream.species.push(block) if stream.species is not None else []
            self._emit_windows(stream, patches, species_windows, emit)
            self._report_input_problems(stream, emit)

    def _analyse(
        self,
        stream: _Stream,
        patches: list[Patch],
        species_windows: list[AudioWindow],
        *,
        final: bool = False,
    ) -> list[WindowResult]:
        """What goes to the merger: the species model's windows if one runs, else the head's.

        The backbone runs on every patch either way (presence: the gate and privacy filter
        build on it); the privacy filter hears its windows here.
        """
        presence = self.detector.analyse(patches)
        if stream.speech is not None:
            for window in presence:
                stream.speech.add(window.start_s, window.end_s, window.voice)
        if self.detector.species is None:
            self.tally.windows += len(presence)
            return presence
        cascade = stream.cascade
        if cascade is not None:  # the species model runs only where YAMNet's gate opens
            for window in presence:
                cascade.add_patch(window.start_s, window.end_s, window.gate)
            cascade.add_windows(species_windows)
            skipped = cascade.skipped
            species_windows = cascade.ready(final=final)
            self.tally.gated += cascade.skipped - skipped
        self.tally.windows += len(species_windows)
        # One window per call: the gate may release several at once, and a batch would make
        # the interpreter allocate BirdNET's activations for all of them (+40 MB measured).
        week = self.week()
        return [r for w in species_windows for r in self.detector.analyse_species([w], week)]

    def week(self) -> int:
        """BirdNET's week (1-48) from the station's clock, for the range filter."""
        return week_48(dt.date.fromtimestamp(self.clock.wall()))

    def _emit_windows(
        self,
        stream: _Stream,
        patches: list[Patch],
        species_windows: list[AudioWindow],
        emit: Emit,
    ) -> None:
        for window in self._analyse(stream, patches, species_windows):
            stream.recorder.add(stream.merger.add(window))
        self._emit_saved(stream, stream.recorder.ready(), emit)

    def _end_stream(self, emit: Emit) -> None:
        with self._lock:
            stream, self._stream = self._stream, None
            if stream is not None:
                self._flush_stream(stream, emit)

    def _flush_stream(self, stream: _Stream, emit: Emit) -> None:
        try:
            patches = stream.frontend.flush()
            species_windows = stream.species.flush() if stream.species is not None else []
            for window in self._analyse(stream, patches, species_windows, final=True):
                stream.recorder.add(stream.merger.add(window))
        except ModelError:
            log.exception("ear: the last windows of a stream could not be analysed")
        stream.recorder.add(stream.merger.flush())
        if stream.speech is not None:  # every window is analysed: clips may be judged
            stream.speech.analysed_until_s = float("inf")
        self._emit_saved(stream, stream.recorder.flush(), emit)

    def _emit_saved(self, stream: _Stream, saved: list[SavedClip], emit: Emit) -> None:
        heard_s = stream.frontend.seconds_in
        for clip in saved:
            detection = clip.detection
            end_s = min(detection.end_s, heard_s)
            self.tally.detections += 1
            label = self.detector.species_label(detection.species)
            emit(
                BirdDetection(
                    ts=stream.wall_start_s + end_s,
                    start=stream.wall_start_s + detection.start_s,
                    end=stream.wall_start_s + end_s,
                    species=detection.species,
                    confidence_max=round(detection.confidence_max, 4),
                    confidence_mean=round(detection.confidence_mean, 4),
                    clip=clip.path,
                    scientific_name=label.scientific,
                    model_id=self.detector.model_id,
                    clip_withheld=clip.withheld,
                )
            )
            self._report_clip(clip, emit)

    def _report_clip(self, clip: SavedClip, emit: Emit) -> None:
        """One Health event when clips start failing (a full disk), one when they work again."""
        if clip.error is not None and not self._clips_failing:
            self._clips_failing = True
            emit(
                self._health(
                    CLIPS,
                    HealthStatus.DEGRADED,
                    f"{clip.error} (this and later detections are recorded without clips "
                    "until it is fixed)",
                )
            )
        elif clip.path and self._clips_failing:
            self._clips_failing = False
            emit(self._health(CLIPS, HealthStatus.OK, "clips are saved again"))

    def _report_input_problems(self, stream: _Stream, emit: Emit) -> None:
        clipped = stream.frontend.clipped_samples
        self.tally.clipped_samples = clipped
        if clipped and not stream.clipping_reported:
            stream.clipping_reported = True
            emit(
                self._health(
                    MICROPHONE,
                    HealthStatus.DEGRADED,
                    f"{stream.source.description}: input clipping ({clipped} samples beyond "
                    "full scale): lower the microphone gain (alsamixer)",
                )
            )
        overruns = stream.source.overruns
        self.tally.overruns = overruns
        if overruns > stream.overruns_reported:
            emit(
                self._health(
                    COMPONENT,
                    HealthStatus.DEGRADED,
                    f"{overruns} audio block(s) lost: the ear fell behind its microphone "
                    "(a busy CPU); detections in those gaps are missed",
                )
            )
            stream.overruns_reported = overruns

    def _health(self, component: str, status: HealthStatus, message: str) -> Health:
        return Health(ts=self.clock.wall(), component=component, status=status, message=message)


# --- assembly -------------------------------------------------------------------------------


def thresholds_for(config: EarConfig, detector: Detector, *, strict: bool = True) -> Thresholds:
    """The config's thresholds and lists, with names (common or scientific) as reported.

    ``strict``: a name the running model does not know is a :class:`UnknownSpeciesError`
    listing close matches (not strict when the ear fell back to a lesser model).
    """
    per_species = dict(
        zip(
            detector.canonical_names(
                list(config.species_thresholds), "ear.species_thresholds", strict=strict
            ),
            config.species_thresholds.values(),
            strict=True,
        )
    )
    return Thresholds.build(
        config.threshold,
        per_species,
        detector.canonical_names(config.allow_list, "ear.allow_list", strict=strict),
        detector.canonical_names(config.deny_list, "ear.deny_list", strict=strict),
    )


@dataclass
class EarSetup:
    """A ready-to-run ear and the events to report before it starts (e.g. no species head)."""

    service: EarService
    events: list[Event] = field(default_factory=list)
    microphone: Any = None  # the EmulatedSoundDevice in demos and tests (its fault injector)

    @property
    def description(self) -> str:
        """One line for people: what the ear listens to, with which models, where clips go."""
        config = self.service.config
        if config.source == "file":
            heard = f"plays {config.path.name}" + (" in a loop" if config.loop else "")
        elif config.source == "generator":
            heard = "listens to generated test calls"
        elif self.microphone is not None:
            heard = (
                f"an emulated USB microphone plays {config.path.name} (great tits, speech, a "
                "dawn chorus) through the real microphone code"
            )
        else:
            heard = (
                f"listens to microphone {config.device or '(default)'} at {config.sample_rate} Hz"
            )
        detector = self.service.detector
        labels = detector.labels
        names = ", ".join(labels) if len(labels) <= 8 else f"{len(labels)} species"
        store = self.service.clip_store
        clips = f"; clips in {store.folder}" if store is not None else ""
        if detector.species is not None:
            stage = detector.species
            windows = f"{stage.model.window_s:g} s windows every {stage.hop_s:g} s" + (
                f", range-filtered for {stage.place[0]:g}, {stage.place[1]:g}"
                if stage.place is not None
                else ""
            )
        else:
            windows = f"windows every {config.hop_s:g} s"
        return (
            f"{heard}; {detector.model_id} reports {names} at confidence >= "
            f"{self.service.thresholds.default:g}, {windows}{clips}"
        )

    @property
    def species_hint(self) -> str | None:
        """One line on how to let BirdNET name the birds, when it is not running."""
        if self.service.detector.species is not None:
            return None
        from device.ear.install import INSTALL_COMMAND

        return (
            f"species: the head names {', '.join(self.service.detector.labels)}; for the "
            f"~6,500 species BirdNET knows run `{INSTALL_COMMAND}` (CC BY-NC-SA 4.0, "
            "non-commercial use; not shipped with Senses)"
        )

    def as_sense(self) -> SenseSetup:
        from device.runtime import SenseSetup

        service = self.service
        return SenseSetup(
            name="ear",
            run=service.run,
            events=self.events,
            finish=service.finish,
            finished=lambda: service.finished,
            counters=service.counters,
        )


def source_factory(
    config: EarConfig, clock: Clock, *, emulated: bool, realtime_files: bool = True
) -> tuple[Callable[[], AudioSource], Any]:
    """How to open the configured source, and the emulated microphone if there is one."""
    if config.source == "file":
        path = config.path

        def open_file() -> AudioSource:
            return FileSource(
                path,
                block_s=config.block_s,
                loop=config.loop,
                realtime=realtime_files,
                sleep=clock.sleep,
            )

        return open_file, None
    if config.source == "generator":
        return lambda: GeneratorSource(16000, block_s=config.block_s), None
    backend = None
    if emulated:
        from hardware.sim.microphone import EmulatedSoundDevice

        backend = EmulatedSoundDevice([config.path])

    def open_microphone() -> AudioSource:
        return MicrophoneSource(
            device=config.device,
            sample_rate=config.sample_rate,
            channels=config.channels,
            block_s=config.block_s,
            stall_s=config.stall_s,
            backend=backend,
        )

    return open_microphone, backend


def build_ear(
    config: Config,
    clock: Clock,
    *,
    emulated: bool,
    realtime_files: bool = True,
    ear: EarConfig | None = None,
) -> EarSetup:
    """The ear as the config describes it, on the real microphone or the emulated one.

    ``emulated`` replaces the microphone with ``hardware.sim.microphone`` playing
    ``ear.path`` (the demo soundscape) through the same MicrophoneSource code. A missing
    species head is not fatal: the ear reports presence only and says so in a Health event.
    A missing backbone raises :class:`~device.errors.ModelError` (nothing can be heard).
    """
    from device.ear.models import load_detector

    ear_config = ear or config.ear
    detector, head_problem = load_detector(config, ear_config)
    events: list[Event] = []
    if head_problem is not None:
        events.append(
            Health(
                ts=clock.wall(), component=MODEL, status=HealthStatus.DEGRADED, message=head_problem
            )
        )
    store = ClipStore(
        ear_config.clip_folder(Path(config.station.data_dir)),
        int(ear_config.clip_budget_mb * 1024 * 1024),
    )
    open_source, microphone = source_factory(
        ear_config, clock, emulated=emulated, realtime_files=realtime_files
    )
    service = EarService(
        ear_config, detector, open_source, clock, store, strict_names=head_problem is None
    )
    gate_problem = attach_gate(service, config.inference.models_dir)
    if gate_problem is not None:
        events.append(
            Health(
                ts=clock.wall(), component=MODEL, status=HealthStatus.DEGRADED, message=gate_problem
            )
        )
    return EarSetup(service=service, events=events, microphone=microphone)


def attach_gate(service: EarService, models_dir: Path) -> str | None:
    """Turn the cascade on when ``ear.gate`` asks and a species model runs; why not, if not.

    Without a species model there is nothing to gate (the head costs next to nothing). A gate
    that cannot load is not fatal: the species model then runs on every window.
    """
    config = service.config
    if not config.gate or service.detector.species is None:
        return None
    try:
        gate = GateModel.load(models_dir / GATE_FOLDER)
    except ModelError as e:
        return f"{e} (the species model runs on every window meanwhile)"
    service.detector.gate = gate.gate
    service.gate_threshold = (
        config.gate_threshold if config.gate_threshold is not None else gate.threshold
    )
    return None
