"""AI crops: when a concept fires, the focus crop and the whole frame are saved as JPEGs.

Files go to one folder (``[eye] snapshot_dir``, default ``<data_dir>/eye_snapshots``) named
``<UTC time>_<concept>_<score>_crop.jpg`` and ``..._frame.jpg``, so they sort by time and a
person can tell them apart in a file manager. A small ``..._thumb.jpg`` of the crop (at most
:data:`THUMB_SIDE_PX` on its long side, a few KB) is what the phone's gallery fetches over
the link (the ``thumbnail`` control op); the crop's id is the shared name before the suffix.
Retention keeps at most ``max_snapshots`` pairs
and ``budget_bytes`` on disk, deleting the oldest pairs first: a station that sees its
concept all day must not fill the SD card.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import cv2
import numpy as np
import numpy.typing as npt

from device.errors import StoreError
from device.eye.backbone import Box, box_pixels

log = logging.getLogger(__name__)

JPEG_QUALITY: Final = 90
THUMB_SIDE_PX: Final = 112
THUMB_JPEG_QUALITY: Final = 70
_CROP_SUFFIX: Final = "_crop.jpg"
_FRAME_SUFFIX: Final = "_frame.jpg"
_THUMB_SUFFIX: Final = "_thumb.jpg"
#: What a crop id looks like (the file stem): refuses paths and anything else from the link.
_CROP_ID: Final = re.compile(r"^[0-9]{8}T[0-9]{6}\.[0-9]{3}Z_[A-Za-z0-9-]{1,40}_[0-9.]{1,6}$")


@dataclass(frozen=True)
class Snapshot:
    crop: Path
    frame: Path

    @property
    def id(self) -> str:
        """The crop's id: its file name without ``_crop.jpg`` (what the link announces)."""
        return self.crop.name.removesuffix(_CROP_SUFFIX)

    @property
    def thumb(self) -> Path:
        return self.crop.with_name(self.id + _THUMB_SUFFIX)


def _encode_jpeg(image: npt.NDArray[np.uint8], quality: int, name: str) -> bytes:
    ok, encoded = cv2.imencode(
        ".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:
        raise OSError(f"OpenCV could not encode {name} as JPEG")
    return bytes(encoded.tobytes())


def thumbnail_jpeg(crop_rgb: npt.NDArray[np.uint8], side_px: int = THUMB_SIDE_PX) -> bytes:
    """The crop shrunk to at most ``side_px`` on its long side, as a small JPEG."""
    height, width = crop_rgb.shape[:2]
    scale = min(1.0, side_px / max(height, width, 1))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = cv2.resize(crop_rgb, size, interpolation=cv2.INTER_AREA) if scale < 1 else crop_rgb
    return _encode_jpeg(np.ascontiguousarray(small), THUMB_JPEG_QUALITY, "a thumbnail")


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-")[:40] or "concept"


class SnapshotStore:
    """Writes AI-crop pairs into ``folder`` and keeps it within its limits."""

    def __init__(self, folder: Path, *, max_snapshots: int = 200, budget_bytes: int = 200_000_000):
        if max_snapshots < 1 or budget_bytes < 1:
            raise ValueError("a snapshot store must keep at least one snapshot and one byte")
        self.folder = Path(folder)
        self.max_snapshots = max_snapshots
        self.budget_bytes = budget_bytes

    def save(
        self, frame_rgb: npt.NDArray[np.uint8], box: Box, *, concept: str, score: float, ts: float
    ) -> Snapshot:
        """Save the ``box`` crop of the full-resolution frame and the frame itself.

        Raises :class:`StoreError` (with the folder and the reason) when the disk refuses.
        """
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(ts)) + f"{ts % 1:.3f}"[1:]
        stem = f"{stamp}Z_{_slug(concept)}_{score:.2f}"
        left, top, right, bottom = box_pixels(box, frame_rgb.shape[1], frame_rgb.shape[0])
        snapshot = Snapshot(
            self.folder / (stem + _CROP_SUFFIX), self.folder / (stem + _FRAME_SUFFIX)
        )
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            crop = frame_rgb[top:bottom, left:right]
            for path, image in ((snapshot.crop, crop), (snapshot.frame, frame_rgb)):
                path.write_bytes(_encode_jpeg(image, JPEG_QUALITY, path.name))
            snapshot.thumb.write_bytes(thumbnail_jpeg(crop))
        except OSError as e:
            raise StoreError(
                f"cannot save an AI crop in {self.folder}: {e}; check that the folder is "
                "writable and the disk not full, or set [eye] snapshot_dir"
            ) from e
        self.enforce_limits()
        return snapshot

    def snapshots(self) -> list[Snapshot]:
        """Saved pairs, oldest first."""
        if not self.folder.is_dir():
            return []
        crops = sorted(self.folder.glob("*" + _CROP_SUFFIX))
        return [
            Snapshot(c, c.with_name(c.name.removesuffix(_CROP_SUFFIX) + _FRAME_SUFFIX))
            for c in crops
        ]

    def enforce_limits(self) -> int:
        """Delete the oldest pairs beyond the count and byte limits; return how many."""
        pairs = self.snapshots()
        sizes = [
            sum(p.stat().st_size for p in (s.crop, s.frame, s.thumb) if p.exists()) for s in pairs
        ]
        total = sum(sizes)
        deleted = 0
        # The newest pair stays even when it alone is over budget: it is what just happened.
        while len(pairs) > 1 and (len(pairs) > self.max_snapshots or total > self.budget_bytes):
            oldest = pairs.pop(0)
            total -= sizes.pop(0)
            for path in (oldest.crop, oldest.frame, oldest.thumb):
                path.unlink(missing_ok=True)
            deleted += 1
        if deleted:
            log.info("deleted %d old AI crop(s) from %s", deleted, self.folder)
        return deleted

    def thumbnail(self, crop_id: str) -> bytes:
        """The thumbnail JPEG of AI crop ``crop_id`` (made from the crop if it has none).

        Raises :class:`KeyError` for an id that is not a crop in this folder (deleted by the
        limits, or never made) and :class:`StoreError` when the disk fails.
        """
        if not _CROP_ID.match(crop_id):
            raise KeyError(f"{crop_id!r} is not an AI crop id")
        snapshot = Snapshot(
            self.folder / (crop_id + _CROP_SUFFIX), self.folder / (crop_id + _FRAME_SUFFIX)
        )
        try:
            if snapshot.thumb.is_file():
                return snapshot.thumb.read_bytes()
            if not snapshot.crop.is_file():
                raise KeyError(f"AI crop {crop_id} is no longer on the station")
            pixels = cv2.imread(str(snapshot.crop), cv2.IMREAD_COLOR)
            if pixels is None:
                raise StoreError(f"AI crop {snapshot.crop} cannot be read")
            rgb: npt.NDArray[np.uint8] = np.asarray(
                cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB), dtype=np.uint8
            )
            data = thumbnail_jpeg(rgb)
            snapshot.thumb.write_bytes(data)
            return data
        except OSError as e:
            raise StoreError(f"cannot read AI crop {crop_id} in {self.folder}: {e}") from e
