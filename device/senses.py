"""Which senses a station runs, built from the config: the nose, the eye, the ear.

:func:`build_station_senses` opens each enabled sense (on real or emulated hardware) and hands
back one :class:`~device.runtime.SenseSetup` per sense for :class:`~device.runtime.Station`,
plus the handles the link's control point needs (select a concept, set a threshold). A sense
whose hardware or model is missing still starts: it reports what is wrong in Health events
and keeps retrying, and the other senses are unaffected.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from device.clock import Clock
from device.config import Config
from device.errors import SensesError
from device.events import Event, Health, HealthStatus
from device.inference import set_default_deadline
from device.link.core import ControlHandlers
from device.link.protocol import ResultCode
from device.runtime import KNOWN_SENSES, NoseSetup, SenseSetup

if TYPE_CHECKING:
    from device.ear.service import EarSetup
    from device.eye.service import EyeSetup

log = logging.getLogger(__name__)


@dataclass
class StationSenses:
    """The senses of one station, ready to start."""

    senses: list[SenseSetup] = field(default_factory=list)
    nose: NoseSetup | None = None
    eye: EyeSetup | None = None
    ear: EarSetup | None = None

    def control_handlers(self, summary: Callable[[], list[dict[str, Any]]]) -> ControlHandlers:
        """What the link's control point may change, given the senses that run."""
        eye = self.eye.service if self.eye is not None else None
        ear = self.ear.service if self.ear is not None else None

        def select_concept(name: str) -> ResultCode:
            assert eye is not None
            return ResultCode.OK if eye.select_concept(name) else ResultCode.INVALID_ARGUMENT

        def set_threshold(name: str, value: float) -> ResultCode:
            if name == "concept" and eye is not None:
                return ResultCode.OK if eye.set_threshold(value) else ResultCode.INVALID_ARGUMENT
            if name == "bird" and ear is not None:
                return ResultCode.OK if ear.set_threshold(value) else ResultCode.INVALID_ARGUMENT
            return ResultCode.INVALID_ARGUMENT

        def concepts() -> tuple[list[str], str | None]:
            assert eye is not None
            active = eye.active_concepts()
            return eye.concept_names(), active[0] if len(active) == 1 else None

        return ControlHandlers(
            select_concept=select_concept if eye is not None else None,
            set_threshold=set_threshold if eye is not None or ear is not None else None,
            concepts=concepts if eye is not None else None,
            summary=summary,
            species_model=(lambda: ear.detector.model_id) if ear is not None else None,
        )


def parse_sense_names(text: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in names if s not in KNOWN_SENSES]
    if unknown or not names:
        raise SensesError(
            f"unknown sense(s) {', '.join(unknown) or '(none given)'}; this station has: "
            f"{', '.join(KNOWN_SENSES)} (comma-separated, e.g. --senses nose,ear)"
        )
    return names


def enabled_senses(config: Config) -> list[str]:
    return [name for name in KNOWN_SENSES if getattr(config, name).enabled]


def _failed_sense(name: str, clock: Clock, error: Exception) -> SenseSetup:
    """A sense that could not even be built: reported, and retried by the station's backoff."""
    message = f"cannot start: {error}"

    def run(emit: Callable[[Event], None], stop: object) -> None:
        raise SensesError(message)

    return SenseSetup(
        name=name,
        run=run,
        events=[
            Health(ts=clock.wall(), component=name, status=HealthStatus.FAILED, message=message)
        ],
    )


def build_station_senses(
    config: Config,
    names: Sequence[str],
    *,
    emulated: bool,
    nose: Callable[[], NoseSetup],
    realtime_clock: Clock,
) -> StationSenses:
    """Build the senses in ``names``. ``nose`` builds the nose (its options differ between the
    demo and the daemon); the eye and the ear run on ``realtime_clock``: a camera's frames and
    a microphone's samples arrive in real time even when the emulated nose is accelerated."""
    set_default_deadline(config.inference.deadline_s)
    built = StationSenses()
    for name in names:
        try:
            if name == "nose":
                built.nose = nose()
                built.senses.append(built.nose.as_sense())
            elif name == "eye":
                from device.eye.service import build_eye

                built.eye = build_eye(config, realtime_clock, emulated=emulated)
                eye = built.eye.service
                built.senses.append(
                    SenseSetup("eye", eye.run, built.eye.events, counters=eye.counters)
                )
            elif name == "ear":
                from device.ear.service import build_ear

                built.ear = build_ear(config, realtime_clock, emulated=emulated)
                # A file source running out (the ear's `finished`) must not end a demo: only
                # the nose's recording does. Its `finish` still flushes a call in progress.
                built.senses.append(replace(built.ear.as_sense(), finished=None))
        except SensesError as e:
            log.error("sense %s cannot start: %s", name, e)
            built.senses.append(_failed_sense(name, realtime_clock, e))
    return built
