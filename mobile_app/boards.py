"""Boards made on the phone: pictures in, a concept trained on the station out.

:func:`prepare_picture` shrinks a picture from the gallery to what the backbone needs
(:data:`~device.link.boardfile.SEND_SIDE_PX` px, JPEG), :class:`BoardSender` sends the board
over the control point in CRC-checked chunks, resumes after a dropped link where the station
says it stopped, waits for the training and answers with the quality report or the reason the
station refused. Pure asyncio + Pillow: the Kivy screen (``ui/boards.py``) only shows it.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import os
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol

from PIL import Image, ImageOps, UnidentifiedImageError

from device.link import boardfile, protocol
from device.link.boardfile import BoardFileError, Picture
from device.link.protocol import Message, ResultCode

log = logging.getLogger(__name__)

MAX_FILE_BYTES: Final = 40_000_000
"""A picture file larger than this is refused before it is opened (a phone photo is ~5 MB)."""
MAX_SOURCE_PIXELS: Final = 80_000_000
RATE_LIMITED_WAIT_S: Final = 0.25
POLL_S: Final = 0.5
TRAIN_TIMEOUT_S: Final = 600.0
RELINK_TIMEOUT_S: Final = 60.0
MAX_RESUMES: Final = 20
MIN_CHUNK_BYTES: Final = 32
ATT_MAX_VALUE_BYTES: Final = 512
UPLOAD_ID_CHARS: Final = 16
"""64 random bits name an upload: enough for the few a station keeps, and 16 bytes fewer in
every chunk than a whole uuid."""


class BoardError(Exception):
    """The board cannot be sent; the message is for the person holding the phone."""


@dataclass
class BoardItem:
    """One picture on the board builder: its file, role and weight word."""

    path: str
    role: str = "positive"
    weight: str = "normal"

    @property
    def name(self) -> str:
        return os.path.basename(self.path)


@dataclass
class BoardOutcome:
    """The station's answer: trained (with its quality numbers) or refused (with why)."""

    name: str
    trained: bool
    message: str
    numbers: dict[str, float] = field(default_factory=dict)


def prepare_picture(item: BoardItem) -> Picture:
    """``item`` as a downsized JPEG; :class:`BoardError` naming the file if it is no picture."""
    path = Path(item.path)
    try:
        size = path.stat().st_size
    except OSError as e:
        raise BoardError(f"{item.name} cannot be opened ({e.strerror or e})") from e
    if size > MAX_FILE_BYTES:
        raise BoardError(
            f"{item.name} is {size // 1_000_000} MB: too large (at most "
            f"{MAX_FILE_BYTES // 1_000_000} MB); pick a smaller picture"
        )
    try:
        with Image.open(path) as image:
            if image.width * image.height > MAX_SOURCE_PIXELS:
                raise BoardError(f"{item.name} is {image.width}x{image.height}: too large")
            upright = ImageOps.exif_transpose(image) or image
            rgb = upright.convert("RGB")
            rgb.thumbnail(
                (boardfile.SEND_SIDE_PX, boardfile.SEND_SIDE_PX), Image.Resampling.LANCZOS
            )
            out = io.BytesIO()
            rgb.save(out, "JPEG", quality=boardfile.SEND_JPEG_QUALITY)
    except BoardError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise BoardError(
            f"{item.name} is not a picture the app can read ({type(e).__name__}): "
            "pick a JPEG or PNG photo"
        ) from e
    return Picture(item.role, boardfile.WEIGHTS.get(item.weight, 1.0), item.name, out.getvalue())


def build_blob(name: str, items: list[BoardItem]) -> bytes:
    """The board to send; :class:`BoardError` for a bad picture, name or board."""
    pictures = [prepare_picture(item) for item in items]
    try:
        return boardfile.encode_board(name, pictures)
    except BoardFileError as e:
        raise BoardError(str(e)) from e


class _ResumeError(Exception):
    """Internal: ask the station where the upload stands, then go on."""


class Requester(Protocol):
    """What the sender needs from :class:`mobile_app.connection.StationConnection`."""

    @property
    def linked(self) -> bool: ...

    async def request(self, op: str, **fields: Any) -> Message: ...


def chunk_room(mtu: int) -> int:
    """Picture bytes per ``board_chunk`` that fit one ATT write at ``mtu``."""
    empty = protocol.encode_message(
        "control",
        protocol.MAX_SEQ,
        {
            "op": "board_chunk",
            "upload_id": "f" * UPLOAD_ID_CHARS,
            "offset": boardfile.MAX_BOARD_BYTES,
            "data": b"",
            "crc32": 0xFFFF_FFFF,
        },
    )
    # An ATT write carries MTU - 3 bytes, and no attribute value is longer than 512.
    write = min(mtu - 3, ATT_MAX_VALUE_BYTES)
    return min(protocol.MAX_CHUNK_BYTES, write - len(empty) - 2)  # 2: the bytes' length


class BoardSender:
    """Sends one board and waits for the station's verdict (see the module docstring).

    ``on_progress(sent, total, what)`` is called as chunks are acknowledged and while the
    station trains (``sent == total``).
    """

    def __init__(
        self,
        connection: Requester,
        *,
        mtu: Callable[[], int],
        on_progress: Callable[[int, int, str], None] | None = None,
        poll_s: float = POLL_S,
        train_timeout_s: float = TRAIN_TIMEOUT_S,
        relink_timeout_s: float = RELINK_TIMEOUT_S,
    ) -> None:
        self.connection = connection
        self.mtu = mtu
        self.on_progress = on_progress or (lambda _s, _t, _w: None)
        self.poll_s = poll_s
        self.train_timeout_s = train_timeout_s
        self.relink_timeout_s = relink_timeout_s
        self.resumes = 0
        """How many times the upload resumed after a refusal or a dropped link."""

    async def send(self, name: str, items: list[BoardItem]) -> BoardOutcome:
        """Send the board; return the outcome. Raises :class:`BoardError` when the pictures
        or name cannot be sent, or the station cannot be reached for long."""
        try:
            name = boardfile.check_name(name)
        except BoardFileError as e:
            raise BoardError(str(e)) from e
        blob = await asyncio.to_thread(build_blob, name, items)
        upload_id = uuid.uuid4().hex[:UPLOAD_ID_CHARS]
        digest = hashlib.sha256(blob).digest()
        begin = {"upload_id": upload_id, "concept": name, "size": len(blob), "sha256": digest}
        self._check_room()
        offset = await self._begin(begin)
        while offset < len(blob):
            room = self._check_room()
            data = blob[offset : offset + room]
            try:
                result = await self._request(
                    "board_chunk",
                    upload_id=upload_id,
                    offset=offset,
                    data=data,
                    crc32=zlib.crc32(data),
                )
                if result.payload.get("state") == "refused":  # e.g. it arrived damaged
                    raise BoardError(str(result.payload.get("detail") or "refused"))
                offset = int(result.payload.get("offset") or 0)
            except _ResumeError:
                offset = await self._begin(begin)
            self.on_progress(min(offset, len(blob)), len(blob), "sending")
        return await self._await_training(name, upload_id, len(blob))

    def _check_room(self) -> int:
        room = chunk_room(self.mtu())
        if room < MIN_CHUNK_BYTES:
            raise BoardError(
                f"the Bluetooth link is too narrow to send pictures (MTU {self.mtu()}): "
                "reconnect, or update the phone"
            )
        return room

    async def _begin(self, begin: dict[str, Any]) -> int:
        while True:
            try:
                result = await self._request("board_begin", **begin)
                break
            except _ResumeError:
                continue
        if result.payload.get("state") == "refused":
            raise BoardError(str(result.payload.get("detail") or "the station refused the board"))
        return int(result.payload.get("offset") or 0)

    async def _request(self, op: str, **fields: Any) -> Message:
        """One request; a refusal worth retrying (rate, dropped link, wrong offset) becomes
        :class:`_ResumeError` after waiting for the link; the rest :class:`BoardError`."""
        from mobile_app.connection import ControlRefusedError, LinkError

        try:
            return await self.connection.request(op, **fields)
        except ControlRefusedError as e:
            if e.code is ResultCode.RATE_LIMITED:
                await asyncio.sleep(RATE_LIMITED_WAIT_S)
                raise _ResumeError from e
            if op == "board_chunk" and e.code is ResultCode.INVALID_ARGUMENT:
                self._count_resume(e.detail)
                raise _ResumeError from e  # ask the station where it stands
            # The station's own words when it judged the board; the app's when it refused
            # the request as such (not paired, unsupported).
            own = e.code is ResultCode.INVALID_ARGUMENT and e.detail
            raise BoardError(e.detail if own else e.user_message) from e
        except (LinkError, TimeoutError) as e:
            self._count_resume(str(e))
            await self._relink()
            raise _ResumeError from e

    def _count_resume(self, why: str) -> None:
        self.resumes += 1
        log.info("boards: resuming the upload (%s)", why)
        if self.resumes > MAX_RESUMES:
            raise BoardError(f"the upload kept failing ({why}); try again")

    async def _relink(self) -> None:
        self.on_progress(0, 0, "waiting for the station")
        try:
            async with asyncio.timeout(self.relink_timeout_s):
                while not self.connection.linked:
                    await asyncio.sleep(0.1)
        except TimeoutError:
            raise BoardError(
                "the station is out of reach: the upload waits there for an hour; send the "
                "board again when the phone is back in range"
            ) from None

    async def _await_training(self, name: str, upload_id: str, total: int) -> BoardOutcome:
        self.on_progress(total, total, "training on the station")
        async with asyncio.timeout(self.train_timeout_s):
            while True:
                try:
                    result = await self._request("board_status", upload_id=upload_id)
                except _ResumeError:
                    continue
                state = result.payload.get("state")
                if state in ("trained", "refused"):
                    break
                await asyncio.sleep(self.poll_s)
        numbers = {
            key: float(result.payload[key])
            for key in ("accuracy", "auc", "p_value", "stability")
            if result.payload.get(key) is not None
        }
        detail = str(result.payload.get("detail") or "")
        return BoardOutcome(name, state == "trained", detail, numbers)


def describe(outcome: BoardOutcome) -> str:
    """The quality answer in words for the board builder."""
    numbers = outcome.numbers
    parts = []
    if "accuracy" in numbers:
        parts.append(f"accuracy {numbers['accuracy']:.0%}")
    if "p_value" in numbers:
        p = numbers["p_value"]
        parts.append("p < 0.001" if p < 0.001 else f"p = {p:.3f}")
    if "stability" in numbers:
        parts.append(f"stability {numbers['stability']:.2f}")
    figures = f" ({', '.join(parts)})" if parts else ""
    if outcome.trained:
        return f"“{outcome.name}” is trained{figures}. The camera now looks for it."
    return f"The station refused “{outcome.name}”: {outcome.message}{figures}"
