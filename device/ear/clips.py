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

import errno
import io
import logging
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soundfile

from device.ear.detections import MergedDetection
from device.ear.ring import AudioRing
from device.errors import DiskFullError, StoreError

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float32]
CLIP_SUFFIX = ".wav"
#: Free space a clip must leave on its disk: the event store's rows (and its WAL) and the
#: system need room after the clips, or a full disk would stop the station recording anything.
DISK_RESERVE_BYTES = 1024 * 1024


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "bird"


class ClipStore:
    """A folder of clips with a size budget (oldest deleted first)."""

    def __init__(
        self, folder: Path, budget_bytes: int, *, reserve_bytes: int = DISK_RESERVE_BYTES
    ) -> None:
        self.folder = Path(folder)
        self.budget_bytes = budget_bytes
        self.reserve_bytes = reserve_bytes
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
        """Write one clip (atomically) and enforce the budget; return its path.

        On a full disk the oldest clips are deleted to make room (:meth:`make_room`); when
        that is not enough, :class:`~device.errors.DiskFullError` says so and nothing is
        written.
        """
        stamp = time.strftime("%Y%m%d_%H%M%S", time.gmtime(wall_s))
        millis = round((wall_s % 1) * 1000) % 1000
        day = self.folder / stamp[:8]
        path = day / f"{stamp}.{millis:03d}_{_slug(species)}{CLIP_SUFFIX}"
        tmp = path.with_suffix(".tmp")
        # Encoded in memory first: its size decides what must be freed, and a failed write is
        # then a plain OSError with its errno (libsndfile reports ENOSPC as "System error").
        encoded = io.BytesIO()
        soundfile.write(
            encoded, np.clip(audio, -1.0, 1.0), sample_rate, subtype="PCM_16", format="WAV"
        )
        data = encoded.getvalue()
        try:
            day.mkdir(parents=True, exist_ok=True)
            self.make_room(len(data))
            tmp.write_bytes(data)
            os.replace(tmp, path)
        except StoreError:  # make_room: the disk is full of other data
            raise
        except OSError as e:
            if tmp.is_file():
                tmp.unlink()
            if e.errno == errno.ENOSPC:
                raise DiskFullError(
                    f"cannot write clip {path}: the disk is full. Free space on it or lower "
                    "ear.clip_budget_mb; detections are still recorded, without clips"
                ) from e
            raise StoreError(
                f"cannot write clip {path}: {e}. Free disk space or set ear.clip_dir to a "
                "writable folder"
            ) from e
        self.enforce_budget(keep=path)
        return path

    def make_room(self, needed_bytes: int) -> list[Path]:
        """Delete the oldest clips until ``needed_bytes`` fit with ``reserve_bytes`` to spare.

        Raises :class:`~device.errors.DiskFullError` when even deleting every clip is not
        enough (the disk is full of other data).
        """

        def missing_bytes() -> int:
            free = shutil.disk_usage(self.folder).free
            return needed_bytes + self.reserve_bytes - free

        removed = []
        for _, _, _, path in self._clips():
            if missing_bytes() <= 0:
                break
            path.unlink(missing_ok=True)
            removed.append(path)
        self.deleted += len(removed)
        short = missing_bytes()
        if short > 0:
            raise DiskFullError(
                f"the disk holding {self.folder} is full: a {needed_bytes} byte clip does not "
                f"fit while keeping {self.reserve_bytes} bytes free for the event store, and "
                "no older clip is left to delete. Free space on that disk; detections are "
                "still recorded, without clips"
            )
        return removed

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
    error: str | None = None  # why it could not be written
    withheld: str = ""  # why it was not kept on purpose ("speech": the privacy filter)


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
        withhold: Callable[[float, float], str | None] | None = None,
        analysed_until: Callable[[], float] | None = None,
    ) -> None:
        """``withhold(start_s, end_s)`` names a reason not to keep the clip of that span (the
        privacy filter), or None; ``analysed_until()`` is how far the models have heard, so
        a clip is only judged once every window overlapping its post-roll was analysed."""
        self.store = store
        self.withhold = withhold
        self.analysed_until = analysed_until
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
        if self.analysed_until is not None:
            heard_s = min(heard_s, self.analysed_until())
        due = [d for d in self._pending if d.end_s + self.post_roll_s <= heard_s]
        self._pending = [d for d in self._pending if d.end_s + self.post_roll_s > heard_s]
        return [self._save(d) for d in due]

    def flush(self) -> list[SavedClip]:
        """The stream ended: write every pending clip with what was heard."""
        due, self._pending = self._pending, []
        return [self._save(d) for d in due]

    def _save(self, detection: MergedDetection) -> SavedClip:
        start_s = max(0.0, detection.start_s - self.pre_roll_s)
        end_s = detection.end_s + self.post_roll_s
        if self.withhold is not None:
            reason = self.withhold(start_s, end_s)
            if reason:
                log.info("clip of %s withheld: %s", detection.species, reason)
                return SavedClip(detection, "", withheld=reason)
        if self.store is None:
            return SavedClip(detection, "")
        audio = self.ring.read_seconds(start_s, end_s)
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
            return SavedClip(detection, "", error=str(e))
        return SavedClip(detection, str(path))
