"""Window confidences to detections: thresholds, allow-list, and merging overlapping windows.

Windows overlap (0.975 s long every 0.48 s by default), so one song lights up several in a
row. :class:`DetectionMerger` turns the hits of one species into one detection from the start
of its first window to the end of its last, with the highest and the mean confidence, as
BirdNET-Analyzer's ``merge_consecutive`` does. Hits closer than ``merge_gap_s`` join; a
detection longer than ``max_detection_s`` is closed and a new one begins (a bird singing all
morning still gives clips of bounded length). ``min_windows`` asks for N hits before a
detection counts (BirdNET-Pi's confirmation against one-window false alarms).

A detection is closed as soon as no later window could join it: when a window starts more
than ``merge_gap_s`` after its end.

Catch-all labels (a head's "other bird") name no species; a catch-all detection that overlaps
a named one (the first notes of a great tit song heard as "other bird", then "Great Tit") is
the same bird and is dropped, so one song is one detection (which then starts where the
catch-all started, when the catch-all closed first). A catch-all detection is held
back until no named detection can overlap it any more.

``min_named_windows`` (the head's open-set rule, :mod:`device.ear.openset`): a named
detection heard in fewer windows than this is reported under the catch-all ("Bird"): a
species the head knows sings over several windows in a row, while a bird it never heard gets
a stray name in one window now and then.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from device.ear.detector import WindowResult


@dataclass(frozen=True)
class Thresholds:
    """Who gets reported: a global threshold, per-species overrides, allow and deny lists."""

    default: float = 0.5
    per_species: Mapping[str, float] = field(default_factory=dict)
    allow_list: frozenset[str] = frozenset()  # lower-case names; empty: everyone
    deny_list: frozenset[str] = frozenset()  # lower-case names never reported

    @classmethod
    def build(
        cls,
        default: float,
        per_species: Mapping[str, float],
        allow_list: Iterable[str],
        deny_list: Iterable[str] = (),
    ) -> Thresholds:
        return cls(
            default,
            {k.lower(): v for k, v in per_species.items()},
            frozenset(s.lower() for s in allow_list),
            frozenset(s.lower() for s in deny_list),
        )

    def allows(self, species: str) -> bool:
        name = species.lower()
        if name in self.deny_list:
            return False
        return not self.allow_list or name in self.allow_list

    def threshold(self, species: str) -> float:
        return self.per_species.get(species.lower(), self.default)

    def hits(self, window: WindowResult) -> dict[str, float]:
        return {
            species: confidence
            for species, confidence in window.confidences.items()
            if self.allows(species) and confidence >= self.threshold(species)
        }


@dataclass(frozen=True)
class MergedDetection:
    """One bird call (or song) in stream seconds."""

    species: str
    start_s: float
    end_s: float
    confidence_max: float
    confidence_mean: float
    windows: int


@dataclass
class _Open:
    species: str
    start_s: float
    end_s: float
    confidences: list[float]

    def close(self) -> MergedDetection:
        return MergedDetection(
            species=self.species,
            start_s=self.start_s,
            end_s=self.end_s,
            confidence_max=max(self.confidences),
            confidence_mean=sum(self.confidences) / len(self.confidences),
            windows=len(self.confidences),
        )


class DetectionMerger:
    """Feed windows in time order; get detections back as they close."""

    def __init__(
        self,
        thresholds: Thresholds,
        *,
        merge_gap_s: float = 1.0,
        min_windows: int = 1,
        max_detection_s: float = 30.0,
        catch_all: Iterable[str] = (),
        min_named_windows: int = 1,
    ) -> None:
        self.thresholds = thresholds
        self.catch_all = frozenset(label.lower() for label in catch_all)
        # What a name too briefly heard becomes: the first catch-all label ("Bird").
        self._unnamed = next(iter(catch_all), None)
        self.min_named_windows = min_named_windows
        self.unnamed = 0  # named detections reported as the catch-all (too few windows)
        self._held: list[MergedDetection] = []  # closed catch-alls that may still be overlapped
        self._named: list[MergedDetection] = []  # closed named ones a held catch-all may overlap
        self.suppressed = 0  # catch-all detections dropped for overlapping a named one
        self.merge_gap_s = merge_gap_s
        self.min_windows = min_windows
        self.max_detection_s = max_detection_s
        self._open: dict[str, _Open] = {}
        self.rejected_short = 0  # detections dropped for having fewer than min_windows

    @property
    def open_species(self) -> list[str]:
        return sorted(self._open)

    def earliest_open_start_s(self) -> float | None:
        """Where the oldest detection in progress starts (its clip needs audio from there)."""
        return min((o.start_s for o in self._open.values()), default=None)

    def add(self, window: WindowResult) -> list[MergedDetection]:
        closed: list[_Open] = []
        for species, current in list(self._open.items()):
            if window.start_s > current.end_s + self.merge_gap_s:
                closed.append(self._open.pop(species))
        for species, confidence in self.thresholds.hits(window).items():
            current_or_none = self._open.get(species)
            if (
                current_or_none is not None
                and window.end_s - current_or_none.start_s > self.max_detection_s
            ):
                closed.append(self._open.pop(species))
                current_or_none = None
            if current_or_none is None:
                self._open[species] = _Open(species, window.start_s, window.end_s, [confidence])
            else:
                current_or_none.end_s = max(current_or_none.end_s, window.end_s)
                current_or_none.confidences.append(confidence)
        return self._release(self._finish(closed), now_s=window.start_s)

    def flush(self) -> list[MergedDetection]:
        """End of stream: close everything still open."""
        closed = list(self._open.values())
        self._open.clear()
        return self._release(self._finish(closed), now_s=None)

    def _is_catch_all(self, species: str) -> bool:
        return species.lower() in self.catch_all

    def _release(self, closed: list[MergedDetection], now_s: float | None) -> list[MergedDetection]:
        """Hold catch-alls back until no named detection can overlap them; drop overlapped ones.

        ``now_s`` is the start of the latest window: no named detection starting later can
        overlap a catch-all that ended before it. ``None``: the stream ended.
        """
        if not self.catch_all:
            return closed
        self._held += [d for d in closed if self._is_catch_all(d.species)]
        named = [d for d in closed if not self._is_catch_all(d.species)]
        open_named = [o for o in self._open.values() if not self._is_catch_all(o.species)]
        starts = [d.start_s for d in named]
        out: list[MergedDetection] = []
        still_held = []
        for held in self._held:
            just_closed = [i for i, d in enumerate(named) if _overlap(held, d)]
            still_open = [
                o for o in open_named if o.start_s < held.end_s and held.start_s < o.end_s
            ]
            if just_closed or still_open or any(_overlap(held, d) for d in self._named):
                # The same bird: the named detection starts where the catch-all started.
                self.suppressed += 1
                for i in just_closed:
                    starts[i] = min(starts[i], held.start_s)
                for o in still_open:
                    o.start_s = min(o.start_s, held.start_s)
            elif now_s is None or now_s > held.end_s:
                out.append(held)
            else:
                still_held.append(held)
        named = [replace(d, start_s=start) for d, start in zip(named, starts, strict=True)]
        self._named += named
        out += named
        self._held = still_held
        # Named ones are kept while a held or still open catch-all may overlap them.
        waiting = [h.start_s for h in still_held] + [
            o.start_s for o in self._open.values() if self._is_catch_all(o.species)
        ]
        oldest_s = min(waiting, default=now_s if now_s is not None else 0.0)
        self._named = [d for d in self._named if d.end_s > oldest_s]
        return sorted(out, key=lambda d: (d.start_s, d.species))

    def _finish(self, closed: list[_Open]) -> list[MergedDetection]:
        kept = []
        for detection in sorted(closed, key=lambda o: (o.start_s, o.species)):
            if len(detection.confidences) >= self.min_windows:
                merged = detection.close()
                if (
                    self._unnamed is not None
                    and not self._is_catch_all(merged.species)
                    and merged.windows < self.min_named_windows
                ):
                    self.unnamed += 1
                    merged = replace(merged, species=self._unnamed)
                kept.append(merged)
            else:
                self.rejected_short += 1
        return kept


def _overlap(a: MergedDetection, b: MergedDetection) -> bool:
    return a.start_s < b.end_s and b.start_s < a.end_s


def merge_windows(
    windows: Iterable[WindowResult],
    thresholds: Thresholds,
    *,
    merge_gap_s: float = 1.0,
    min_windows: int = 1,
    max_detection_s: float = 30.0,
    catch_all: Iterable[str] = (),
    min_named_windows: int = 1,
) -> list[MergedDetection]:
    """All detections of a finished recording (``senses ear scan``)."""
    merger = DetectionMerger(
        thresholds,
        merge_gap_s=merge_gap_s,
        min_windows=min_windows,
        max_detection_s=max_detection_s,
        catch_all=catch_all,
        min_named_windows=min_named_windows,
    )
    detections = [d for w in windows for d in merger.add(w)]
    return sorted(detections + merger.flush(), key=lambda d: (d.start_s, d.species))
