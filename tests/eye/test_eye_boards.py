"""The station's end of boards sent from the phone (device/eye/boards.py), op by op: chunks
checked and resumed, damaged or bad boards refused with the file named, nothing half-written,
the running concepts untouched. (The whole path over Bumble: tests/app/test_boards.py.)"""

from __future__ import annotations

import hashlib
import io
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from device.clock import ManualClock
from device.config import Config
from device.eye.backbone import Backbone
from device.eye.boards import PARTIAL_MAX_AGE_S, BoardUploads
from device.eye.service import build_eye
from device.eye.settings import DEFAULT_CONCEPTS_DIR
from device.eye.sources import synthetic_stills_dir
from device.link import boardfile
from device.link.boardfile import Picture
from device.link.protocol import ResultCode

IMAGES = synthetic_stills_dir()


def _jpeg(name: str, side: int = 200) -> bytes:
    with Image.open(IMAGES / f"{name}.jpg") as image:
        rgb = image.convert("RGB")
        rgb.thumbnail((side, side))
        out = io.BytesIO()
        rgb.save(out, "JPEG", quality=85)
    return out.getvalue()


def _picture(name: str, role: str = "positive") -> Picture:
    return Picture(role, 1.0, f"{name}.jpg", _jpeg(name))


class Station:
    def __init__(self, tmp_path: Path, backbone: Backbone) -> None:
        config = Config.model_validate(
            {
                "station": {"data_dir": str(tmp_path)},
                "eye": {"concepts": [str(DEFAULT_CONCEPTS_DIR / "cats.cav")]},
            }
        )
        self.clock = ManualClock()
        self.eye = build_eye(config, self.clock, emulated=True, backbone=backbone)
        self.concepts_dir = config.eye.phone_concepts_path(tmp_path)
        assert self.eye.boards is not None
        self.boards: BoardUploads = self.eye.boards

    def op(self, op: str, **payload: Any) -> tuple[ResultCode, str | None, dict[str, Any]]:
        answer = self.boards.handle(op, payload)
        return answer.code, answer.detail, answer.fields

    def begin(self, blob: bytes, name: str, upload_id: str = "0123456789abcdef") -> int:
        code, detail, fields = self.op(
            "board_begin",
            upload_id=upload_id,
            concept=name,
            size=len(blob),
            sha256=hashlib.sha256(blob).digest(),
        )
        assert code is ResultCode.OK, detail
        return int(fields["offset"])

    def chunk(
        self, data: bytes, offset: int, upload_id: str = "0123456789abcdef", crc: int | None = None
    ) -> tuple[ResultCode, str | None, dict[str, Any]]:
        return self.op(
            "board_chunk",
            upload_id=upload_id,
            offset=offset,
            data=data,
            crc32=zlib.crc32(data) if crc is None else crc,
        )

    def send(self, blob: bytes, name: str, upload_id: str = "0123456789abcdef") -> dict[str, Any]:
        offset = self.begin(blob, name, upload_id)
        while offset < len(blob):
            code, detail, fields = self.chunk(blob[offset : offset + 400], offset, upload_id)
            assert code is ResultCode.OK, detail
            offset = fields["offset"]
        return self.wait(upload_id)

    def wait(self, upload_id: str = "0123456789abcdef", timeout_s: float = 180) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            code, detail, fields = self.op("board_status", upload_id=upload_id)
            assert code is ResultCode.OK
            if fields["state"] in ("trained", "refused"):
                return fields | {"detail": detail}
            time.sleep(0.05)
        raise AssertionError("training did not finish")

    def untouched(self) -> None:
        assert self.eye.service.concept_names() == ["cats"]
        assert not self.concepts_dir.exists() or not any(self.concepts_dir.iterdir())


@pytest.fixture
def station(tmp_path: Path, backbone: Backbone) -> Iterator[Station]:
    s = Station(tmp_path, backbone)
    yield s
    s.boards.close()


def _blob(pictures: list[Picture], name: str = "hot dogs") -> bytes:
    return boardfile.encode_board(name, pictures)


HOT_DOGS = ["hot_dog", "hotdog_train_0", "hotdog_train_1"]


def test_chunks_are_checked_and_a_resend_or_a_resume_picks_up_where_the_station_is(
    station: Station,
) -> None:
    blob = _blob([_picture(n) for n in HOT_DOGS])
    assert station.begin(blob, "hot dogs") == 0
    code, detail, fields = station.chunk(blob[:400], 0, crc=123)
    assert code is ResultCode.INVALID_ARGUMENT and "damaged" in str(detail)
    assert fields["offset"] == 0
    assert station.chunk(blob[:400], 0)[0] is ResultCode.OK
    assert station.chunk(blob[:400], 0)[2]["offset"] == 400  # sent twice: taken once
    code, detail, fields = station.chunk(blob[800:1200], 800)  # a chunk went missing
    assert code is ResultCode.INVALID_ARGUMENT and fields["offset"] == 400
    assert "resume there" in str(detail)
    # After a reconnect the phone asks again with the same id: the station says where it is.
    assert station.begin(blob, "hot dogs") == 400
    code, detail, _ = station.op(
        "board_begin",
        upload_id="0123456789abcdef",
        concept="hot dogs",
        size=len(blob) + 1,
        sha256=hashlib.sha256(blob).digest(),
    )
    assert code is ResultCode.INVALID_ARGUMENT and "another board" in str(detail)


def test_a_board_that_arrives_damaged_is_dropped_whole(station: Station) -> None:
    blob = _blob([_picture(n) for n in HOT_DOGS])
    damaged = blob[:-1] + bytes([blob[-1] ^ 0xFF])
    station.begin(blob, "hot dogs")  # announced with the good sha256
    offset, fields = 0, {}
    while offset < len(damaged):
        code, _, fields = station.chunk(damaged[offset : offset + 400], offset)
        assert code is ResultCode.OK
        offset = len(damaged) if fields["state"] != "receiving" else fields["offset"]
    assert fields["state"] == "refused"  # the last chunk's answer says so at once
    result = station.wait()
    assert result["state"] == "refused" and "sha256" in result["detail"]
    assert not list(station.boards.upload_dir.glob("*.part"))
    station.untouched()


def _wide_png() -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.full((64, 3000, 3), 128, np.uint8)).save(out, "PNG")
    return out.getvalue()


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        pytest.param(
            Picture("positive", 1.0, "broken.jpg", _jpeg("brick")[:400]),
            "cannot read image broken.jpg",
            id="corrupt",
        ),
        pytest.param(
            Picture("positive", 1.0, "notes.txt", b"milk, eggs, bread" * 10),
            "cannot read image notes.txt",
            id="not-an-image",
        ),
        pytest.param(
            Picture("negative", 1.0, "panorama.png", _wide_png()),
            "panorama.png is 3000x64 pixels; at most 2048",
            id="huge",
        ),
        pytest.param(
            Picture("positive", 1.0, "copy.jpg", _jpeg("hot_dog")),
            "copy.jpg is the same picture as hot_dog.jpg",
            id="duplicate",
        ),
    ],
)
def test_a_bad_picture_in_a_board_is_named_and_nothing_is_saved(
    station: Station, bad: Picture, expected: str
) -> None:
    result = station.send(_blob([*(_picture(n) for n in HOT_DOGS), bad]), "hot dogs")
    assert result["state"] == "refused"
    assert expected in result["detail"]
    station.untouched()


def test_a_board_the_backbone_cannot_tell_from_random_pictures_is_refused_with_its_numbers(
    station: Station,
) -> None:
    # Two pictures that share nothing: no concept a camera could look for.
    result = station.send(_blob([_picture("rocket"), _picture("grass")], "stuff"), "stuff")
    assert result["state"] == "refused" and "not a reliable concept" in result["detail"]
    assert "accuracy" in result and "p_value" in result
    station.untouched()


def test_an_unfinished_upload_expires_and_says_so(station: Station) -> None:
    blob = _blob([_picture(n) for n in HOT_DOGS])
    station.begin(blob, "hot dogs")
    station.chunk(blob[:400], 0)
    station.clock.advance(PARTIAL_MAX_AGE_S + 1)
    _, _, fields = station.op("board_status", upload_id="0123456789abcdef")
    assert fields["state"] == "refused" and fields["offset"] == 0
    assert not list(station.boards.upload_dir.glob("*.part"))


def test_the_station_refuses_what_the_limits_forbid_before_a_byte_is_sent(
    station: Station,
) -> None:
    digest = bytes(32)
    for payload, expected in [
        ({"concept": "x", "size": boardfile.MAX_BOARD_BYTES + 1}, "send fewer or smaller"),
        ({"concept": "../etc/passwd", "size": 10}, "may hold letters"),
        ({"concept": "CATS", "size": 10}, "already on the station"),
    ]:
        code, detail, _ = station.op(
            "board_begin", upload_id="feedfacefeedface", sha256=digest, **payload
        )
        assert code is ResultCode.INVALID_ARGUMENT and expected in str(detail)
    code, detail, _ = station.op("board_chunk", upload_id="nosuchupload", offset=0, data=b"x")
    assert code is ResultCode.INVALID_ARGUMENT and "send the board again" in str(detail)


def test_decode_board_refuses_what_is_not_a_board() -> None:
    import cbor2

    with pytest.raises(boardfile.BoardFileError, match="not a Senses board"):
        boardfile.decode_board(cbor2.dumps({"hello": 1}))
    with pytest.raises(boardfile.BoardFileError, match="not readable"):
        boardfile.decode_board(b"\xff\x00garbage")
    one = cbor2.dumps(
        {
            "format": "senses-board",
            "version": 1,
            "name": "solo",
            "pictures": [{"role": "positive", "weight": 1.0, "file": "a.jpg", "jpeg": b"x"}],
        }
    )
    with pytest.raises(boardfile.BoardFileError, match="at least 2"):
        boardfile.decode_board(one)


# ------------------------------------------------------------------------- AI-crop thumbnails


def test_each_ai_crop_keeps_a_small_thumbnail_within_the_count_and_disk_budget(
    tmp_path: Path,
) -> None:
    from device.eye.snapshots import THUMB_SIDE_PX, SnapshotStore

    store = SnapshotStore(tmp_path / "snaps", max_snapshots=3)
    with Image.open(IMAGES / "hotdog_test_0.jpg") as image:
        frame = np.asarray(image.convert("RGB"))
    saved = [
        store.save(frame, (0.1, 0.1, 0.6, 0.6), concept="hot dogs", score=0.9, ts=1.7e9 + k)
        for k in range(5)
    ]
    assert [s.id for s in store.snapshots()] == [s.id for s in saved[2:]]  # oldest went
    assert not saved[0].thumb.exists() and not saved[0].crop.exists()
    jpeg = store.thumbnail(saved[-1].id)
    with Image.open(io.BytesIO(jpeg)) as thumb:
        assert thumb.format == "JPEG" and max(thumb.size) == THUMB_SIDE_PX
    assert len(jpeg) < 8_000  # a few KB: two or three pieces over the link
    saved[-1].thumb.unlink()  # made by an older version: rebuilt from the crop on demand
    assert store.thumbnail(saved[-1].id)[:2] == b"\xff\xd8"
    for bad in (saved[0].id, "../../etc/passwd", "x"):
        with pytest.raises(KeyError):
            store.thumbnail(bad)


def test_training_runs_beside_the_link_and_the_scoring(tmp_path: Path, backbone: Backbone) -> None:
    import threading

    from device.eye.boards import default_trainer
    from device.eye.frames import Frame

    station = Station(tmp_path, backbone)
    real = default_trainer(station.eye.service)
    started, release = threading.Event(), threading.Event()

    def gated(board: Any, name: str) -> Any:
        started.set()
        assert release.wait(60)  # the test holds the training here
        return real(board, name)

    station.boards.close()
    station.boards = BoardUploads(
        station.eye.service,
        tmp_path / "uploads",
        station.concepts_dir,
        station.clock,
        train=gated,
    )
    blob = _blob([_picture(n) for n in HOT_DOGS])
    offset = station.begin(blob, "hot dogs")
    while offset < len(blob):
        offset = station.chunk(blob[offset : offset + 400], offset)[2]["offset"]
    assert started.wait(30)
    # While the training thread works, the link's ops answer at once...
    code, _, fields = station.op("board_status", upload_id="0123456789abcdef")
    assert code is ResultCode.OK and fields["state"] == "training"
    # ...and the eye goes on scoring its concepts.
    with Image.open(IMAGES / "cat_test_0.jpg") as image:
        frame = np.asarray(image.convert("RGB"))
    events = station.eye.service.process(Frame(frame, 1.0, 1.0, 0))
    assert [e.concept for e in events] == ["cats"]  # type: ignore[attr-defined]
    release.set()
    result = station.wait()
    assert result["state"] == "trained", result["detail"]
    station.clock.advance(1.0)  # past the events' rate limit
    events = station.eye.service.process(Frame(frame, 2.0, 2.0, 1))  # picked up between frames
    assert sorted(e.concept for e in events) == ["cats", "hot dogs"]  # type: ignore[attr-defined]
    assert [p.name for p in station.concepts_dir.iterdir()] == ["hot-dogs.cav"]
    station.boards.close()
