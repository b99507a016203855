"""A WAV clip per detection, with pre- and post-roll, kept within a disk budget.

:class:`ClipRecorder` takes closed detections, waits until the ring buffer holds
``post_roll_s`` after each one, and writes ``[start - pre_roll_s, end + post_roll_s]`` as
16-bit PCM WAV at the microphone's own rate. When the stream ends early (the microphone
vanished, the station stops) :meth:`ClipRecorder.flush` writes pending clips with what was
heard. :class:`ClipStore` deletes the oldest clips once the folder exceeds its budget; the
database rows of those detections stay (their ``clip`` path then points at nothing, which the
app shows as "clip expired").
"""

from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soundfile

from device.ear.detections import MergedDetection
from device.ear.ring import AudioRing
from device.errors import StoreError

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float32]
CLIP_SUFFIX = ".wav"


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "bird"


class ClipStore:
    """A folder of clips with a size budget (oldest deleted first)."""

    def __init__(self, folder: Path, budget_bytes: int) -> None:
        self.folder = Path(folder)
        self.budget_bytes = budget_bytes
        self.deleted = 0

    def _clips(self) -> list[tuple[float, str, int, Path]]:
        found = []
        for path in self.folder.rglob(f"*{CLIP_SUFFIX}"):
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue  # deleted meanwhile
            found.append((stat.st_mtime, path.name, stat.st_size, path))
        return sorted(found)

    def used_bytes(self) -> int:
        return sum(size for _, _, size, _ in self._clips())

    def save(self, audio: FloatArray, sample_rate: int, wall_s: float, species: str) -> Path:
        """Write one clip (atomically) and enforce the budget; return its path."""
        stamp = time.strftime("%Y%m%d_%H%M%S", time.gmtime(wall_s))
        millis = round((wall_s % 1) * 1000) % 1000
        day = self.folder / stamp[:8]
        path = day / f"{stamp}.{millis:03d}_{_slug(species)}{CLIP_SUFFIX}"
        tmp = path.with_suffix(".tmp")
        try:
            day.mkdir(parents=True, exist_ok=True)
            soundfile.write(
                str(tmp), np.clip(audio, -1.0, 1.0), sample_rate, subtype="PCM_16", format="WAV"
            )
            os.replace(tmp, path)
        except (OSError, RuntimeError) as e:
            if tmp.is_file():
                tmp.unlink()
            raise StoreError(
                f"cannot write clip {path}: {e}. Free disk space or set ear.clip_dir to a "
                "writable folder"
            ) from e
        self.enforce_budget(keep=path)
        return path

    def enforce_budget(self, keep: Path | None = None) -> list[Path]:
        """Delete the oldest clips until the folder fits the budget; never ``keep``."""
        clips = self._clips()
        total = sum(size for _, _, size, _ in clips)
        removed = []
        for _, _, size, path in clips:
            if total <= self.budget_bytes:
                break
            if path == keep:
                continue
            path.unlink(missing_ok=True)
            total -= size
            removed.append(path)
        self.deleted += len(removed)
        return removed


@dataclass(frozen=True)
class SavedClip:
    detection: MergedDetection
    path: str  # "" when the clip could not be written


class ClipRecorder:
    """Turns closed detections into clips once their post-roll has been heard."""

    def __init__(
        self,
        store: ClipStore | None,
        ring: AudioRing,
        *,
        pre_roll_s: float,
        post_roll_s: float,
        stream_wall_s: float,
    ) -> None:
        self.store = store
        self.ring = ring
        self.pre_roll_s = pre_roll_s
        self.post_roll_s = post_roll_s
        self.stream_wall_s = stream_wall_s  # wall time of stream second 0
        self._pending: list[MergedDetection] = []
        self.failures = 0

    @property
    def pending(self) -> int:
        return len(self._pending)

    def add(self, detections: list[MergedDetection]) -> None:
        self._pending += detections

    def ready(self) -> list[SavedClip]:
        """Clips whose post-roll is in the ring now."""
        heard_s = self.ring.end_s
        due = [d for d in self._pending if d.end_s + self.post_roll_s <= heard_s]
        self._pending = [d for d in self._pending if d.end_s + self.post_roll_s > heard_s]
        return [self._save(d) for d in due]

    def flush(self) -> list[SavedClip]:
        """The stream ended: write every pending clip with what was heard."""
        due, self._pending = self._pending, []
        return [self._save(d) for d in due]

    def _save(self, detection: MergedDetection) -> SavedClip:
        if self.store is None:
            return SavedClip(detection, "")
        audio = self.ring.read_seconds(
            max(0.0, detection.start_s - self.pre_roll_s), detection.end_s + self.post_roll_s
        )
        if len(audio) == 0:
            return SavedClip(detection, "")
        try:
            path = self.store.save(
                audio,
                self.ring.sample_rate,
                self.stream_wall_s + detection.start_s,
                detection.species,
            )
        except StoreError as e:
            self.failures += 1
            log.warning("%s", e)
            return SavedClip(detection, "")
        return SavedClip(detection, str(path))
