"""The crops a frame is scored on, and the order they are scored in.

Mood Board Search's "AI crop" / "Focus" (``backend/cavstudio_backend/ml_image.py``,
``top_crops_and_scores``) scores 14 crops: the full image, 4 overlapping crops at 3/4 of its
side centred on (3/8 | 5/8, 3/8 | 5/8), and a 3×3 grid of crops at 1/2 of its side centred on
(1/4 | 1/2 | 3/4, ...). The best one is the focus box. Unlike MBS, which cuts them from a
224-pixel thumbnail and upsamples, we cut them from the full-resolution frame, so a half-size
crop keeps all its detail (research/cav.md §1.7, §4.4).

A box is ``(x, y, width, height)`` in fractions of the frame, as ``ConceptScore.focus_box``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from device.eye.settings import CropMode

if TYPE_CHECKING:
    # Only a type: device.eye.backbone imports pixel_rect from here.
    from device.eye.backbone import Box

#: (centres, zoom) of each MBS crop ring; the side of a crop is 1/zoom of the frame's.
_MBS_RINGS: Final = (
    (((0.5, 0.5),), 1.0),
    (((3 / 8, 3 / 8), (5 / 8, 3 / 8), (5 / 8, 5 / 8), (3 / 8, 5 / 8)), 4 / 3),
    (tuple((x / 4, y / 4) for y in (1, 2, 3) for x in (1, 2, 3)), 2.0),
)
#: The smallest MBS crop is half the frame's side.
SMALLEST_CROP_FRACTION: Final = 0.5


def mbs_crops() -> list[Box]:
    """The 14 Mood Board Search crops; the first is the full frame."""
    boxes = []
    for centres, zoom in _MBS_RINGS:
        side = 1.0 / zoom
        for cx, cy in centres:
            boxes.append((cx - side / 2, cy - side / 2, side, side))
    return boxes


def pixel_rect(box: Box, width: int, height: int) -> tuple[int, int, int, int]:
    """``box`` as (left, top, right, bottom) pixels of a ``width``×``height`` frame.

    Rounded as MBS does (``left = round(cx·W − W/zoom/2)``), clamped into the frame and never
    empty, so a crop of a tiny frame is still an image.
    """
    x, y, w, h = box
    left = min(max(round(x * width), 0), width - 1)
    top = min(max(round(y * height), 0), height - 1)
    right = max(min(round((x + w) * width), width), left + 1)
    bottom = max(min(round((y + h) * height), height), top + 1)
    return left, top, right, bottom


class CropSchedule:
    """Which crops are scored with each frame.

    The full frame (index 0) is scored with every frame, always. The other crops are either
    all scored with every frame (``"all"``), taken ``per_frame`` at a time in a fixed cycle
    (``"round_robin"``), so each is refreshed every ``ceil(13 / per_frame)`` frames, or never
    (``"none"``: full frames only, the focus box is the whole frame).
    ``maps_completed`` counts how many times every crop has been scored once more.
    """

    def __init__(self, crop_count: int, mode: CropMode, per_frame: int = 1) -> None:
        if crop_count < 1:
            raise ValueError(f"a crop schedule needs at least the full frame, got {crop_count}")
        if per_frame < 1:
            raise ValueError(f"per_frame must be at least 1, got {per_frame}")
        self.crop_count = crop_count
        self.mode = mode
        self.per_frame = per_frame
        self.maps_completed = 0
        self._cursor = 0  # position among the non-full crops 1..crop_count-1

    @property
    def frames_per_map(self) -> int:
        """Frames it takes to score every crop once."""
        others = 0 if self.mode == "none" else self.crop_count - 1
        if self.mode == "all" or others == 0:
            return 1
        return -(-others // min(self.per_frame, others))

    def next_frame(self) -> list[int]:
        """Indices of the crops to score with the next frame, the full frame (0) first."""
        others = 0 if self.mode == "none" else self.crop_count - 1
        if others == 0:
            self.maps_completed += 1
            return [0]
        if self.mode == "all":
            self.maps_completed += 1
            return list(range(self.crop_count))
        chosen = [0]
        for _ in range(min(self.per_frame, others)):
            chosen.append(1 + self._cursor)
            self._cursor += 1
            if self._cursor == others:
                self._cursor = 0
                self.maps_completed += 1
        return chosen
