"""Scoring frames against concepts: one backbone pass, every active concept, focus and trigger.

For each frame the scorer builds one batch, the full frame plus the crops the
:class:`~device.eye.crops.CropSchedule` picks for it, and runs the backbone once. Every
active concept is then a single matrix product with the same embeddings (stacked concept
vectors), so a second concept costs microseconds, not a second backbone pass.

Per concept it keeps:

* the full frame's calibrated score, smoothed across frames by an exponential moving
  average (one noisy frame should not flick the meter);
* the latest calibrated score of each crop; the best crop is the **focus box** (in
  round-robin mode some crop scores are a few frames old, which a slowly moving camera
  does not notice and the bench quantifies);
* a :class:`Trigger`: when the smoothed score rises through the threshold an **AI crop** is
  due; it re-arms only once the score has fallen ``hysteresis`` below the threshold, and
  never fires twice within ``cooldown_s``.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import cv2
import numpy as np
import numpy.typing as npt

from device.errors import ConfigError
from device.eye.backbone import FULL_FRAME, Backbone, Box, box_pixels, to_model_input
from device.eye.concept import Concept
from device.eye.crops import CropSchedule, mbs_crops
from device.eye.settings import EyeConfig

RGBImage = npt.NDArray[np.uint8]
_NOT_SCORED: Final = np.nan
SHRINK_PAYS_BELOW: Final = 0.9


def shrink_for_crops(frame_rgb: RGBImage, side_px: int | None) -> RGBImage:
    """``frame_rgb`` shrunk so that its shorter side is ``side_px`` (never enlarged).

    Every crop is shrunk to the backbone's 224 px anyway. Shrinking the frame once first, to
    the size at which the smallest crop (half the side) is still 224 px, loses no detail a
    crop would keep, and makes 14 crop resizes of a 1280×720 frame several times cheaper.
    ``None`` cuts every crop from the full-resolution frame.
    """
    if side_px is None:
        return frame_rgb
    height, width = frame_rgb.shape[:2]
    short = min(height, width)
    # The 14 crops together cover 5.5 frame areas; a shrink by r makes them cost 5.5·r² but
    # costs one frame area itself, so it only pays below r ≈ 0.9.
    if side_px > SHRINK_PAYS_BELOW * short:
        return frame_rgb
    scale = side_px / short
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    shrunk: RGBImage = np.asarray(
        cv2.resize(frame_rgb, size, interpolation=cv2.INTER_AREA), dtype=np.uint8
    )
    return shrunk


def model_inputs(frame_rgb: RGBImage, boxes: Sequence[Box], size: int) -> RGBImage:
    """The backbone's batch ``(len(boxes), size, size, 3)`` for ``boxes`` of one frame."""
    batch = np.empty((len(boxes), size, size, 3), dtype=np.uint8)
    for row, box in enumerate(boxes):
        batch[row] = to_model_input(frame_rgb, box, size)
    return batch


def scored_square(box: Box, width: int, height: int) -> Box:
    """The part of ``box`` the backbone really sees: its centred square (as to_model_input)."""
    left, top, right, bottom = box_pixels(box, width, height)
    side = min(right - left, bottom - top)
    left += (right - left - side) // 2
    top += (bottom - top - side) // 2
    return (left / width, top / height, side / width, side / height)


class Trigger:
    """Fires once when a score rises through ``threshold``; hysteresis and cooldown."""

    def __init__(self, threshold: float, hysteresis: float, cooldown_s: float) -> None:
        self.threshold = threshold
        self.hysteresis = hysteresis
        self.cooldown_s = cooldown_s
        self.armed = True
        self.last_fired_s: float | None = None

    def update(self, score: float, now_s: float) -> bool:
        if not self.armed:
            if score < self.threshold - self.hysteresis:
                self.armed = True
            return False
        cooled = self.last_fired_s is None or now_s - self.last_fired_s >= self.cooldown_s
        if score >= self.threshold and cooled:
            self.armed = False
            self.last_fired_s = now_s
            return True
        return False


@dataclass(frozen=True)
class ConceptReading:
    """What one frame says about one concept.

    ``score`` is the smoothed calibrated full-frame score (0-1); ``frame_score`` the same for
    this frame alone; ``focus_box`` the best crop's square (fractions of the frame) with its
    calibrated ``focus_score``; ``triggered`` is True on the frame an AI crop is due.
    """

    concept: str
    score: float
    frame_score: float
    raw: float
    focus_box: Box
    focus_score: float
    triggered: bool


class FrameScorer:
    """Scores frames for a set of concepts that share one backbone."""

    def __init__(
        self,
        backbone: Backbone,
        concepts: Sequence[Concept],
        config: EyeConfig,
        *,
        boxes: Sequence[Box] | None = None,
    ) -> None:
        if not concepts:
            raise ConfigError("the eye has no concept to score: list .cav files in [eye] concepts")
        names = [c.name for c in concepts]
        if len(set(names)) != len(names):
            raise ConfigError(
                f"two concepts share a name ({', '.join(names)}): the link and the events tell "
                "them apart by name; retrain one with another --name"
            )
        self.backbone = backbone
        self.concepts = list(concepts)
        self.boxes: list[Box] = list(boxes) if boxes is not None else mbs_crops()
        if self.boxes[0] != FULL_FRAME:
            raise ValueError("the first box must be the full frame: it is scored every frame")
        self.schedule = CropSchedule(len(self.boxes), config.crop_mode, config.crops_per_frame)
        self.smoothing = config.smoothing
        self.crop_frame_side_px = config.crop_frame_side_px
        self._vectors = np.stack([c.vector for c in self.concepts]).astype(np.float32)
        self._crop_scores = np.full((len(self.concepts), len(self.boxes)), _NOT_SCORED)
        self._smoothed: list[float | None] = [None] * len(self.concepts)
        self._lock = threading.Lock()
        self.triggers = [
            Trigger(config.threshold, config.hysteresis, config.cooldown_s) for _ in concepts
        ]
        self.active = set(names)
        self.frames_scored = 0
        self.images_embedded = 0

    @property
    def concept_names(self) -> list[str]:
        return [c.name for c in self.concepts]

    def set_threshold(self, threshold: float) -> None:
        with self._lock:
            for trigger in self.triggers:
                if trigger.hysteresis >= threshold:
                    raise ConfigError(
                        f"threshold {threshold} must be above the hysteresis "
                        f"{trigger.hysteresis}, or the AI crop could never re-arm"
                    )
            for trigger in self.triggers:
                trigger.threshold = threshold
                trigger.armed = True

    def set_active(self, names: Sequence[str]) -> None:
        unknown = set(names) - set(self.concept_names)
        if unknown:
            raise ConfigError(
                f"unknown concept(s) {sorted(unknown)}; loaded: {', '.join(self.concept_names)}"
            )
        with self._lock:
            self.active = set(names)

    def full_frame_input(self, frame_rgb: RGBImage) -> RGBImage:
        """The whole frame as the backbone takes it (what the capture thread prepares ahead)."""
        return to_model_input(frame_rgb, FULL_FRAME, self.backbone.input_size)

    def score(
        self, frame_rgb: RGBImage, now_s: float, full_frame: RGBImage | None = None
    ) -> list[ConceptReading]:
        """Score one RGB frame (full resolution) at ``now_s`` (monotonic seconds).

        ``full_frame`` is :meth:`full_frame_input` of the frame when it was made ahead.
        """
        indices = self.schedule.next_frame()
        size = self.backbone.input_size
        if full_frame is not None and indices[0] == 0:
            crops = indices[1:]
            batch = np.empty((len(indices), size, size, 3), dtype=np.uint8)
            batch[0] = full_frame
            if crops:
                work = shrink_for_crops(frame_rgb, self.crop_frame_side_px)
                batch[1:] = model_inputs(work, [self.boxes[i] for i in crops], size)
        else:
            # A full frame alone goes to 224 px in one resize; shrinking first only helps crops.
            work = (
                frame_rgb
                if len(indices) == 1
                else shrink_for_crops(frame_rgb, self.crop_frame_side_px)
            )
            batch = model_inputs(work, [self.boxes[i] for i in indices], size)
        embeddings = self.backbone.embed(batch)
        raw = embeddings @ self._vectors.T  # (len(indices), concepts): cosines
        self.frames_scored += 1
        self.images_embedded += len(indices)
        height, width = frame_rgb.shape[:2]
        readings = []
        with self._lock:
            for k, concept in enumerate(self.concepts):
                calibrated = concept.calibrated(raw[:, k])
                self._crop_scores[k, indices] = calibrated
                frame_score = float(calibrated[0])
                previous = self._smoothed[k]
                smoothed = (
                    frame_score
                    if previous is None
                    else self.smoothing * frame_score + (1 - self.smoothing) * previous
                )
                self._smoothed[k] = smoothed
                if concept.name not in self.active:
                    continue
                crop_scores = self._crop_scores[k]
                best = int(np.nanargmax(crop_scores))
                readings.append(
                    ConceptReading(
                        concept=concept.name,
                        score=smoothed,
                        frame_score=frame_score,
                        raw=float(raw[0, k]),
                        focus_box=scored_square(self.boxes[best], width, height),
                        focus_score=float(crop_scores[best]),
                        triggered=self.triggers[k].update(smoothed, now_s),
                    )
                )
        return readings

    def crop_scores(self, concept: str) -> list[float | None]:
        """The latest calibrated score of each box for ``concept`` (None: not scored yet)."""
        k = self.concept_names.index(concept)
        with self._lock:
            return [None if np.isnan(s) else float(s) for s in self._crop_scores[k]]

    def add_concept(self, concept: Concept) -> None:
        """Score ``concept`` too, from the next frame on. Call it on the scoring thread (the
        eye service does), never during :meth:`score`. Scoring every concept (the default
        until one is selected) takes the new one in; a selection stays as it was."""
        if concept.name in self.concept_names:
            raise ConfigError(f"a concept called {concept.name!r} is already scored")
        with self._lock:
            scoring_all = self.active == set(self.concept_names)
            self.concepts.append(concept)
            self._vectors = np.concatenate([self._vectors, concept.vector[np.newaxis]]).astype(
                np.float32
            )
            self._crop_scores = np.concatenate(
                [self._crop_scores, np.full((1, len(self.boxes)), _NOT_SCORED)]
            )
            self._smoothed.append(None)
            template = self.triggers[0]
            self.triggers.append(
                Trigger(template.threshold, template.hysteresis, template.cooldown_s)
            )
            if scoring_all:
                self.active.add(concept.name)
