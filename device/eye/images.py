"""Mood boards from image files: loading, checking, weights and augmented views.

A board is a folder of positive images, optionally a folder of opposite (negative) images and
a weights file. Every problem a person can fix is reported at once with the file names:
unreadable or tiny images, an empty or single-image board, identical images.

Weights file (``--weights FILE``): one line per image, ``filename, weight``; the weight is a
number > 0 or one of the words ``upweight`` (4, as Mood Board Search), ``downweight`` (0.25)
or ``normal`` (1). Blank lines and lines starting with ``#`` are ignored. Images not listed
weigh 1.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from device.errors import MoodBoardError
from device.eye.backbone import Box, Frame, to_model_input

IMAGE_SUFFIXES: Final = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
)
#: Below this many pixels on the short side an image has too little detail for a 224-pixel
#: model input: it would be mostly interpolation.
MIN_SIDE_PX: Final = 32
MIN_POSITIVES: Final = 2
WEIGHT_WORDS: Final = {"upweight": 4.0, "downweight": 0.25, "normal": 1.0}
#: The views of each board image a concept trains on: the whole image, its mirror image and a
#: centre crop at 80 % with its mirror. A board holds a handful of images; these cheap
#: variations teach the linear model that framing and left/right do not make the concept.
AUGMENT_BOXES: Final[tuple[Box, ...]] = ((0.0, 0.0, 1.0, 1.0), (0.1, 0.1, 0.8, 0.8))


@dataclass(frozen=True)
class BoardImage:
    """One loaded image of a board."""

    path: Path
    pixels: Frame
    weight: float
    sha256: str


@dataclass(frozen=True)
class MoodBoard:
    positives: tuple[BoardImage, ...]
    negatives: tuple[BoardImage, ...]


def pixels_sha256(pixels: Frame) -> str:
    """The sha256 of an image's decoded RGB pixels and shape (the same picture hashes the same
    whatever its file format)."""
    digest = hashlib.sha256(repr(pixels.shape).encode())
    digest.update(np.ascontiguousarray(pixels).tobytes())
    return digest.hexdigest()


def load_image(path: Path | io.BytesIO, label: str | None = None) -> Frame:
    """An image file (or its bytes) as an RGB uint8 array, upright by its EXIF orientation.

    ``label`` names the image in error messages (default: the path).
    """
    if not isinstance(path, io.BytesIO):
        path = Path(path)
    label = label or str(path)
    try:
        with Image.open(path) as image:
            upright = ImageOps.exif_transpose(image) or image
            rgb = upright.convert("RGB")
    except FileNotFoundError as e:
        raise MoodBoardError(f"image {label} does not exist") from e
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise MoodBoardError(
            f"cannot read image {label} ({e}): use a JPEG, PNG or BMP file, or remove it"
        ) from e
    return _checked_pixels(np.asarray(rgb, dtype=np.uint8), label)


def _checked_pixels(pixels: Frame, label: str) -> Frame:
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
        raise MoodBoardError(
            f"image {label}: expected RGB uint8 pixels (height, width, 3), got "
            f"{pixels.dtype} {pixels.shape}"
        )
    if min(pixels.shape[:2]) < MIN_SIDE_PX:
        raise MoodBoardError(
            f"image {label} is {pixels.shape[1]}x{pixels.shape[0]} pixels: too small to show a "
            f"concept (at least {MIN_SIDE_PX} px on each side); use a larger picture"
        )
    return pixels


def list_images(folder: Path) -> list[Path]:
    """The image files in ``folder`` (not its subfolders), in name order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MoodBoardError(f"{folder} is not a folder of images")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def read_weights(path: Path) -> dict[str, float]:
    """A weights file (see the module docstring) as ``{file name: weight}``."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise MoodBoardError(f"cannot read weights file {path}: {e}") from e
    weights: dict[str, float] = {}
    problems = []
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        name, sep, value = (part.strip() for part in text.rpartition(","))
        if not sep or not name:
            problems.append(f"line {number}: expected 'filename, weight', got {text!r}")
            continue
        word = value.lower()
        try:
            weight = WEIGHT_WORDS[word] if word in WEIGHT_WORDS else float(value)
        except ValueError:
            problems.append(
                f"line {number}: weight {value!r} is neither a number nor one of "
                f"{', '.join(WEIGHT_WORDS)}"
            )
            continue
        if not (weight > 0 and np.isfinite(weight)):
            problems.append(f"line {number}: weight {value!r} must be a number above 0")
            continue
        weights[name] = weight
    if problems:
        raise MoodBoardError(f"weights file {path}:\n  " + "\n  ".join(problems))
    return weights


def _load_folder(
    folder: Path, weights: dict[str, float], role: str, problems: list[str]
) -> list[BoardImage]:
    images = []
    for path in list_images(folder):
        try:
            pixels = load_image(path)
        except MoodBoardError as e:
            problems.append(str(e))
            continue
        images.append(BoardImage(path, pixels, weights.get(path.name, 1.0), pixels_sha256(pixels)))
    if not images and not problems:
        problems.append(
            f"the {role} folder {folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    return images


def load_board(
    positive_dir: Path, negative_dir: Path | None = None, weights_file: Path | None = None
) -> MoodBoard:
    """Load and check a mood board; raise :class:`MoodBoardError` listing every problem."""
    weights = read_weights(weights_file) if weights_file else {}
    problems: list[str] = []
    positives = _load_folder(Path(positive_dir), weights, "positive", problems)
    negatives = (
        _load_folder(Path(negative_dir), weights, "negative", problems) if negative_dir else []
    )
    seen: dict[str, Path] = {}
    for image in [*positives, *negatives]:
        first = seen.setdefault(image.sha256, image.path)
        if first != image.path:
            problems.append(
                f"{image.path} is the same picture as {first}: remove one (identical images "
                "add nothing but weight; use the weights file to weigh an image more)"
            )
    known = {image.path.name for image in [*positives, *negatives]}
    unknown = sorted(set(weights) - known)
    if unknown:
        problems.append(
            f"the weights file names images that are not on the board: {', '.join(unknown)}"
        )
    distinct_positives = len({image.sha256 for image in positives})
    if not problems and distinct_positives < MIN_POSITIVES:
        problems.append(
            f"the board has {distinct_positives} positive image(s) in {positive_dir}: a concept "
            f"needs at least {MIN_POSITIVES} different pictures of it (5-20 work well)"
        )
    if problems:
        raise MoodBoardError("the mood board cannot be used:\n  " + "\n  ".join(problems))
    return MoodBoard(tuple(positives), tuple(negatives))


Role = Literal["positive", "negative"]


@dataclass(frozen=True)
class BoardPicture:
    """One picture of a board that did not come from a folder (e.g. sent by the phone).

    ``image`` is an encoded file's bytes (JPEG, PNG, ...) or RGB uint8 pixels; ``role`` says
    whether it shows the concept or its opposite; ``weight`` > 0 (4 = Mood Board Search's
    upweight); ``name`` is how messages and the ``.cav`` file's board list call it.
    """

    image: bytes | Frame
    role: Role
    weight: float = 1.0
    name: str = ""


def board_from_pictures(pictures: Sequence[BoardPicture]) -> MoodBoard:
    """A board from pictures in memory, checked as :func:`load_board` checks folders.

    Raises :class:`MoodBoardError` listing every problem (unreadable or tiny pictures, a bad
    role or weight, duplicates, fewer than two different pictures of the concept).
    """
    problems: list[str] = []
    loaded: dict[str, list[BoardImage]] = {"positive": [], "negative": []}
    for number, picture in enumerate(pictures, start=1):
        name = picture.name or f"picture-{number}"
        if picture.role not in loaded:
            problems.append(f"{name}: role {picture.role!r} must be 'positive' or 'negative'")
            continue
        if not (isinstance(picture.weight, int | float) and 0 < picture.weight < float("inf")):
            problems.append(f"{name}: weight {picture.weight!r} must be a number above 0")
            continue
        try:
            if isinstance(picture.image, bytes | bytearray):
                pixels = load_image(io.BytesIO(bytes(picture.image)), name)
            else:
                pixels = _checked_pixels(np.asarray(picture.image), name)
        except MoodBoardError as e:
            problems.append(str(e))
            continue
        loaded[picture.role].append(
            BoardImage(Path(name), pixels, float(picture.weight), pixels_sha256(pixels))
        )
    seen: dict[str, Path] = {}
    for image in [*loaded["positive"], *loaded["negative"]]:
        first = seen.setdefault(image.sha256, image.path)
        if first != image.path:
            problems.append(f"{image.path} is the same picture as {first}: remove one")
    distinct_positives = len({image.sha256 for image in loaded["positive"]})
    if not problems and distinct_positives < MIN_POSITIVES:
        problems.append(
            f"the board has {distinct_positives} picture(s) of the concept: it needs at least "
            f"{MIN_POSITIVES} different ones (5-20 work well)"
        )
    if problems:
        raise MoodBoardError("the mood board cannot be used:\n  " + "\n  ".join(problems))
    return MoodBoard(tuple(loaded["positive"]), tuple(loaded["negative"]))


def board_views(pixels: Frame, size: int) -> list[Frame]:
    """The augmented model inputs of one board image (see :data:`AUGMENT_BOXES`)."""
    views = []
    for box in AUGMENT_BOXES:
        view = to_model_input(pixels, box, size)
        views.extend([view, np.ascontiguousarray(view[:, ::-1])])
    return views
