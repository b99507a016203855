"""The Mood Board Search crop set and the order crops are scored in."""

from __future__ import annotations

import pytest

from device.eye.backbone import FULL_FRAME, box_pixels
from device.eye.crops import CropSchedule, mbs_crops, pixel_rect


def test_the_crop_set_is_mood_board_searchs_14() -> None:
    boxes = mbs_crops()
    assert len(boxes) == 14
    assert boxes[0] == FULL_FRAME
    sides = [round(w, 6) for _, _, w, _ in boxes]
    assert sides.count(0.75) == 4 and sides.count(0.5) == 9
    # MBS centres: (3/8 | 5/8) for the 3/4 ring, (1/4 | 1/2 | 3/4) for the 1/2 grid.
    centres = {(round(x + w / 2, 6), round(y + h / 2, 6)) for x, y, w, h in boxes[1:5]}
    assert centres == {(0.375, 0.375), (0.625, 0.375), (0.625, 0.625), (0.375, 0.625)}
    grid = {(round(x + w / 2, 6), round(y + h / 2, 6)) for x, y, w, h in boxes[5:]}
    assert grid == {(cx / 4, cy / 4) for cx in (1, 2, 3) for cy in (1, 2, 3)}
    for box in boxes:  # every crop lies inside the frame (the backbone refuses others)
        box_pixels(box, 640, 480)


def test_crops_are_cut_at_full_resolution_pixels() -> None:
    # A half-size crop of a 1280x720 frame is 640x360 real pixels, not a 112 px thumbnail.
    left, top, right, bottom = pixel_rect(mbs_crops()[-1], 1280, 720)
    assert (left, top, right, bottom) == (640, 360, 1280, 720)
    assert pixel_rect((0.0, 0.0, 0.0001, 0.0001), 10, 10)[2:] == (1, 1)  # never empty


def test_all_mode_scores_every_crop_with_every_frame() -> None:
    schedule = CropSchedule(14, "all")
    for _ in range(3):
        assert schedule.next_frame() == list(range(14))
    assert schedule.maps_completed == 3 and schedule.frames_per_map == 1


@pytest.mark.parametrize("per_frame", [1, 2, 3, 5, 13])
def test_round_robin_scores_the_full_frame_always_and_each_crop_once_per_map(
    per_frame: int,
) -> None:
    schedule = CropSchedule(14, "round_robin", per_frame)
    frames = [schedule.next_frame() for _ in range(schedule.frames_per_map)]
    assert all(f[0] == 0 and len(f) == 1 + per_frame for f in frames)
    scored = [i for f in frames for i in f[1:]]
    assert set(scored) == set(range(1, 14))
    assert schedule.maps_completed == 1
    assert schedule.frames_per_map == -(-13 // per_frame)


def test_none_mode_scores_full_frames_only() -> None:
    schedule = CropSchedule(14, "none")
    assert [schedule.next_frame() for _ in range(3)] == [[0], [0], [0]]


def test_a_schedule_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="full frame"):
        CropSchedule(0, "all")
    with pytest.raises(ValueError, match="per_frame"):
        CropSchedule(14, "round_robin", 0)
