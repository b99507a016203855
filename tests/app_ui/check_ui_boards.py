"""The board builder, its quality answer and the gallery, rendered offscreen
(docs/screenshots/board_builder.png, board_trained.png, board_refused.png, gallery.png).

The answer is real: the screen's own send coroutine drives the app's :class:`BoardSender`
against the station's :class:`BoardUploads` in this process (the Bluetooth hop is covered by
tests/app/test_app_boards.py), which trains with the eye's training code.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from ui_support import NOW, render

from device.clock import SystemClock
from device.config import Config
from device.eye.backbone import Backbone
from device.eye.boards import BoardUploads
from device.eye.service import build_eye
from device.eye.settings import DEFAULT_CONCEPTS_DIR
from device.eye.snapshots import thumbnail_jpeg
from device.eye.sources import synthetic_stills_dir
from device.link.protocol import Message, ResultCode
from mobile_app.boards import BoardItem, BoardOutcome, BoardSender
from mobile_app.connection import ControlRefusedError
from mobile_app.state import AppState

PHOTOS = synthetic_stills_dir()
Snap = Callable[[Any, str], Path]
Ui = Callable[..., Any]


class InProcessStation:
    """The app's side of the control point answered by a real station's board handler."""

    linked = True

    def __init__(self, boards: BoardUploads) -> None:
        self.boards = boards

    async def request(self, op: str, **fields: Any) -> Message:
        answer = self.boards.handle(op, fields)
        if answer.code is not ResultCode.OK:
            raise ControlRefusedError(answer.code, answer.detail or "")
        payload = {"op": op, "code": answer.code, "detail": answer.detail, **answer.fields}
        return Message(1, "control_result", 1, payload)

    async def send_board(
        self,
        name: str,
        items: list[BoardItem],
        on_progress: Callable[[int, int, str], None] | None = None,
    ) -> BoardOutcome:
        sender = BoardSender(self, mtu=lambda: 247, on_progress=on_progress, poll_s=0.05)
        return await sender.send(name, items)

    async def select_concept(self, name: str) -> tuple[ResultCode, str]:
        return ResultCode.OK, ""


@pytest.fixture
def station(tmp_path: Path) -> Iterator[InProcessStation]:
    config = Config.model_validate(
        {
            "station": {"data_dir": str(tmp_path)},
            "eye": {"concepts": [str(DEFAULT_CONCEPTS_DIR / "cats.cav")]},
        }
    )
    eye = build_eye(config, SystemClock(), emulated=True, backbone=Backbone())
    assert eye.boards is not None
    yield InProcessStation(eye.boards)
    eye.boards.close()


def _board(root: Any) -> Any:
    board = root.board
    board.add_paths(
        [str(PHOTOS / f"{n}.jpg") for n in ("hot_dog", "hotdog_train_0", "hotdog_train_1")]
    )
    board.add_paths([str(PHOTOS / "grass.jpg"), str(PHOTOS / "gravel.jpg")])
    rows = board.list.children[::-1]
    for row in rows[3:]:
        row.role.dispatch("on_release")  # grass and gravel: the opposite
    rows[0].weight.dispatch("on_release")  # the first hot dog counts four times
    return board


def test_the_board_builder_trains_a_concept_and_shows_its_quality(
    day_state: AppState, ui: Ui, snap: Snap, station: InProcessStation
) -> None:
    root = ui(day_state, selector=station)
    root.show("concepts")
    root.concepts.new_button.dispatch("on_release")
    assert root.screens.current == "board"
    board = _board(root)
    board.name_input.text = "hot dogs"
    assert board.counts.text == "3 of the concept, 2 opposite"
    assert [i.weight for i in board.items] == ["upweight", *["normal"] * 4]
    assert [i.role for i in board.items] == [*["positive"] * 3, *["negative"] * 2]
    assert not board.send_button.disabled
    snap(root, "board_builder")

    progress: list[tuple[int, int, str]] = []
    show = board.set_progress

    def record(sent: int, total: int, what: str) -> None:
        progress.append((sent, total, what))
        show(sent, total, what)

    board.set_progress = record  # type: ignore[method-assign]
    asyncio.run(board._send(station.send_board))
    render()
    assert board.outcome is not None and board.outcome.trained, board.answer.text
    assert "“hot dogs” is trained (accuracy" in board.answer.text
    assert "p < 0.001" in board.answer.text and "stability" in board.answer.text
    assert progress[-1][2] == "training on the station"
    assert any(w == "sending" and 0 < s < t for s, t, w in progress)
    board.scroll.scroll_y = 0  # the answer, under the board
    snap(root, "board_trained")


def test_a_refused_board_says_why(
    day_state: AppState, ui: Ui, snap: Snap, station: InProcessStation
) -> None:
    root = ui(day_state, selector=station)
    root.show("board")
    board = root.board
    board.add_paths([str(PHOTOS / "rocket.jpg"), str(PHOTOS / "grass.jpg")])
    board.name_input.text = "things"
    asyncio.run(board._send(station.send_board))
    render()
    assert board.outcome is not None and not board.outcome.trained
    assert "The station refused “things”: not a reliable concept" in board.answer.text
    snap(root, "board_refused")


def test_the_gallery_shows_each_ai_crop_with_concept_score_and_time(
    day_state: AppState, ui: Ui, snap: Snap
) -> None:
    import numpy as np
    from PIL import Image

    crops = [
        ("hot dogs", "hotdog_test_0", 0.93),
        ("cats", "cat_test_0", 0.88),
        ("cats", "chelsea", 0.81),
    ]
    for k, (concept, photo, score) in enumerate(crops):
        ts = NOW - 600 * (len(crops) - k)
        crop_id = f"crop{k}"
        day_state.apply(
            Message(
                1,
                "concept",
                10_000 + k,
                {"type": "concept", "ts": ts, "concept": concept, "score": score, "crop": crop_id},
            )
        )
        with Image.open(PHOTOS / f"{photo}.jpg") as image:
            day_state.set_thumbnail(crop_id, thumbnail_jpeg(np.asarray(image.convert("RGB"))))
    day_state.apply(
        Message(
            1,
            "concept",
            10_010,
            {"type": "concept", "ts": NOW - 5, "concept": "cats", "score": 0.9, "crop": "crop9"},
        )
    )
    root = ui(day_state)
    root.show("gallery")
    snap(root, "gallery")

    tiles = root.gallery.tiles
    assert [t.crop for t in tiles] == ["crop9", "crop2", "crop1", "crop0"]  # newest first
    assert "fetching" in tiles[0].picture.text  # announced, thumbnail on its way
    assert tiles[1].picture.texture is not None and tiles[1].picture.texture.size[0] <= 112
    assert tiles[3].title.text == "hot dogs · 93%"
    oldest = time.strftime("%d %b %H:%M:%S", time.localtime(NOW - 1800))
    assert tiles[3].when.text == oldest
