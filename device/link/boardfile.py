"""A mood board as one blob: what the phone uploads and the station trains on.

Pure Python (standard library + cbor2), like :mod:`device.link.protocol`: the phone app
imports it to build the blob, the station to read it back. The blob is a CBOR map::

    {"format": "senses-board", "version": 1, "name": <concept name>,
     "pictures": [{"role": "positive" | "negative", "weight": <float > 0>,
                   "file": <the picture's name on the phone>, "jpeg": <bytes>}, ...]}

It travels in ``board_chunk`` pieces with a CRC-32 each, and the station checks the whole
against the sha256 announced by ``board_begin`` before it reads it (see docs in the README,
"Boards made on the phone").

Limits (stated in the README; the station refuses anything beyond them with a message that
names the limit): :data:`MAX_PICTURES` pictures, :data:`MAX_PICTURE_BYTES` per picture,
:data:`MAX_BOARD_BYTES` in all, :data:`MAX_PICTURE_SIDE_PX` on a decoded picture's long side.
The app sends pictures downsized to :data:`SEND_SIDE_PX` (the backbone sees 224 px).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

import cbor2

FORMAT_TAG: Final = "senses-board"
FORMAT_VERSION: Final = 1
MAX_PICTURES: Final = 40
MIN_POSITIVES: Final = 2
MAX_PICTURE_BYTES: Final = 200_000
MAX_BOARD_BYTES: Final = 2_000_000
MAX_PICTURE_SIDE_PX: Final = 2048
SEND_SIDE_PX: Final = 256
"""The app shrinks each picture to this on its long side (JPEG): the backbone needs 224."""
SEND_JPEG_QUALITY: Final = 85
ROLES: Final = ("positive", "negative")
WEIGHTS: Final = {"normal": 1.0, "upweight": 4.0, "downweight": 0.25}
"""The weights a phone offers (as ``senses eye train --weights`` and Mood Board Search)."""
MAX_NAME_CHARS: Final = 40
_NAME: Final = re.compile(r"^[^\W_][\w '.-]*$")


class BoardFileError(ValueError):
    """A board blob or a concept name that cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class Picture:
    role: str
    weight: float
    file: str
    jpeg: bytes


def check_name(name: str) -> str:
    """``name`` stripped, or :class:`BoardFileError` saying what a concept name may be."""
    text = name.strip()
    if not text:
        raise BoardFileError("give the concept a name")
    if len(text) > MAX_NAME_CHARS:
        raise BoardFileError(f"the name is {len(text)} characters; at most {MAX_NAME_CHARS}")
    if not _NAME.match(text):
        raise BoardFileError(
            f"the name {text!r} may hold letters, digits, spaces and - ' . only, starting with "
            "a letter or digit"
        )
    return text


def check_pictures(pictures: list[Picture]) -> None:
    """Refuse a board over the limits or without enough positives (before sending it)."""
    if len(pictures) > MAX_PICTURES:
        raise BoardFileError(f"the board has {len(pictures)} pictures; at most {MAX_PICTURES}")
    positives = sum(1 for p in pictures if p.role == "positive")
    if positives < MIN_POSITIVES:
        raise BoardFileError(
            f"the board has {positives} picture(s) of the concept: a concept needs at least "
            f"{MIN_POSITIVES} different pictures of it (5-20 work well)"
        )
    for p in pictures:
        if p.role not in ROLES:
            raise BoardFileError(f"{p.file}: role {p.role!r} is not one of {', '.join(ROLES)}")
        if not (p.weight > 0 and p.weight < float("inf")):
            raise BoardFileError(f"{p.file}: weight {p.weight!r} must be a number above 0")
        if len(p.jpeg) > MAX_PICTURE_BYTES:
            raise BoardFileError(
                f"{p.file} is {len(p.jpeg) // 1000} KB; at most {MAX_PICTURE_BYTES // 1000} KB "
                f"a picture (send it at {SEND_SIDE_PX} px)"
            )


def encode_board(name: str, pictures: list[Picture]) -> bytes:
    """The blob for ``pictures`` named ``name``; :class:`BoardFileError` if it breaks a limit."""
    name = check_name(name)
    check_pictures(pictures)
    blob = cbor2.dumps(
        {
            "format": FORMAT_TAG,
            "version": FORMAT_VERSION,
            "name": name,
            "pictures": [
                {"role": p.role, "weight": float(p.weight), "file": p.file, "jpeg": p.jpeg}
                for p in pictures
            ],
        }
    )
    if len(blob) > MAX_BOARD_BYTES:
        raise BoardFileError(
            f"the board is {len(blob) // 1000} KB; at most {MAX_BOARD_BYTES // 1000} KB"
        )
    return blob


def decode_board(blob: bytes) -> tuple[str, list[Picture]]:
    """The name and pictures of a blob; :class:`BoardFileError` for anything else."""
    if len(blob) > MAX_BOARD_BYTES:
        raise BoardFileError(
            f"the board is {len(blob) // 1000} KB; at most {MAX_BOARD_BYTES // 1000} KB"
        )
    try:
        raw: Any = cbor2.loads(blob)
    except Exception as e:  # cbor2 raises several types for damaged input
        raise BoardFileError(f"the board is not readable ({e}); send it again") from e
    if not isinstance(raw, dict) or raw.get("format") != FORMAT_TAG:
        raise BoardFileError("this is not a Senses board; send it from the Senses app")
    if raw.get("version") != FORMAT_VERSION:
        raise BoardFileError(
            f"board format version {raw.get('version')!r}; this station reads version "
            f"{FORMAT_VERSION}: update the station or the app"
        )
    items = raw.get("pictures")
    if not isinstance(items, list):
        raise BoardFileError("the board lists no pictures")
    pictures = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("jpeg"), bytes):
            raise BoardFileError(f"picture {index + 1} of the board is damaged")
        weight = item.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise BoardFileError(f"picture {index + 1}: its weight is not a number")
        pictures.append(
            Picture(
                role=str(item.get("role")),
                weight=float(weight),
                file=str(item.get("file") or f"picture {index + 1}")[:80],
                jpeg=item["jpeg"],
            )
        )
    name = check_name(str(raw.get("name", "")))
    check_pictures(pictures)
    return name, pictures
