"""The eye's backbone: pictures in, unit-length embeddings out.

A concept is a direction in the embedding space of one pretrained image model (the backbone);
every image and every crop is scored by the cosine between its embedding and that direction.
The shipped backbone is Coral's quantized MobileNet V1 1.0/224 cut at the 1024-d average pool
(``models/mobilenet_v1_embedding``; research/cav.md §3): its input takes raw RGB 0-255 pixels,
so frames go in as they are, without a float round trip.

Preprocessing follows Mood Board Search and cavlib: cut the box from the *full-resolution*
frame (not from a thumbnail, so a half-size crop keeps real detail), centre-crop it to a
square, resize to the model's side. ``INTER_AREA`` is OpenCV's anti-aliased shrink: it is what
a shrinking camera frame needs, and training (image files) and live scoring (camera frames)
both use this one function, so they see identical pixels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import cv2
import numpy as np
import numpy.typing as npt

from device.config import DEFAULT_MODELS_DIR
from device.errors import InferenceError, ModelCardError
from device.eye.crops import pixel_rect
from device.inference import TFLiteModel, load_model

Box = tuple[float, float, float, float]
"""(x, y, width, height), each a fraction of the frame (as ``events.ConceptScore.focus_box``)."""

FULL_FRAME: Final[Box] = (0.0, 0.0, 1.0, 1.0)
DEFAULT_BACKBONE_DIR: Final = DEFAULT_MODELS_DIR / "mobilenet_v1_embedding"
#: Names the pixel pipeline of :func:`to_model_input`. A ``.cav`` records it, so a concept
#: trained on differently prepared pixels is refused rather than silently scored wrong.
PREPROCESSING_ID: Final = "rgb_uint8_box_centre_square_inter_area_raw_0_255"
#: Embeddings shorter than this are all but zero (a blank frame through ReLU6 layers); they are
#: left unnormalised (all zero) rather than blown up into noise.
_MIN_NORM: Final = 1e-6

Frame = npt.NDArray[np.uint8]


def _check_frame(frame_rgb: npt.NDArray[np.generic]) -> None:
    if frame_rgb.ndim != 3 or frame_rgb.shape[2] != 3:
        raise ValueError(
            f"a frame must be an RGB array of shape (height, width, 3), got {frame_rgb.shape}; "
            "convert grey or RGBA images to RGB first (PIL: image.convert('RGB'))"
        )
    if frame_rgb.dtype != np.uint8:
        raise ValueError(f"a frame must hold uint8 pixels (0-255), got {frame_rgb.dtype}")


def box_pixels(box: Box, width: int, height: int) -> tuple[int, int, int, int]:
    """``box`` (fractions) as whole pixels ``(left, top, right, bottom)`` inside the frame.

    Raises ``ValueError`` for a box that is empty or reaches outside the frame.
    """
    x, y, w, h = box
    tolerance = 1e-9  # fractions such as 3/8 + 1/2 may overshoot 1 by a rounding error
    if not (w > 0 and h > 0 and x >= -tolerance and y >= -tolerance):
        raise ValueError(f"box {box} must have a positive size and start inside the frame")
    if x + w > 1 + tolerance or y + h > 1 + tolerance:
        raise ValueError(f"box {box} reaches outside the frame (x + width and y + height <= 1)")
    return pixel_rect(box, width, height)


def to_model_input(frame_rgb: Frame, box: Box = FULL_FRAME, size: int = 224) -> Frame:
    """Cut ``box`` from a full-resolution RGB uint8 frame, centre-crop it square, resize.

    Returns a ``(size, size, 3)`` uint8 array ready for :meth:`Backbone.embed`.
    """
    _check_frame(frame_rgb)
    height, width = frame_rgb.shape[:2]
    left, top, right, bottom = box_pixels(box, width, height)
    side = min(right - left, bottom - top)
    left += (right - left - side) // 2
    top += (bottom - top - side) // 2
    square = frame_rgb[top : top + side, left : left + side]
    if side == size:
        return np.ascontiguousarray(square)
    # INTER_AREA averages when shrinking; when a small crop is enlarged it behaves like
    # bilinear, which is what an upscale should do.
    return np.asarray(cv2.resize(square, (size, size), interpolation=cv2.INTER_AREA), np.uint8)


class Backbone:
    """A loaded embedding model: batches of square RGB images to L2-normalised embeddings.

    ``name``, ``sha256``, ``layer`` and :data:`PREPROCESSING_ID` identify the embedding space;
    a ``.cav`` file stores them and :func:`device.eye.concept.load_concept` refuses a concept
    made in another space. Thread-safe (the model guards its interpreter), but one backbone
    runs one batch at a time: give each worker that must run in parallel its own.
    """

    def __init__(self, model_dir: Path | None = None, *, num_threads: int = 1) -> None:
        self.model: TFLiteModel = load_model(
            model_dir or DEFAULT_BACKBONE_DIR, num_threads=num_threads
        )
        card = self.model.card
        task = card.task_config
        try:
            self.layer: str = str(task["layer"])
            self.dim: int = int(task["embedding_dim"])
            self.input_size: int = int(task["input_size"])
        except KeyError as e:
            raise ModelCardError(
                f"backbone {card.name} ({self.model.folder}): task_config lacks {e.args[0]!r}; "
                "restore the folder from git (`git checkout -- models/mobilenet_v1_embedding`)"
            ) from e
        shape = card.inputs[0].shape
        if len(card.inputs) != 1 or shape[1:] != [self.input_size, self.input_size, 3]:
            raise ModelCardError(
                f"backbone {card.name}: expected one input of shape [batch, {self.input_size}, "
                f"{self.input_size}, 3], the card says {shape}"
            )
        if card.inputs[0].dtype != "uint8":
            raise ModelCardError(
                f"backbone {card.name}: its input must take uint8 pixels, the card says "
                f"{card.inputs[0].dtype}"
            )
        self.name: str = card.name
        self.sha256: str = card.sha256
        self.preprocessing: str = PREPROCESSING_ID

    def __repr__(self) -> str:
        return f"Backbone({self.name!r}, layer={self.layer!r}, dim={self.dim})"

    def embed(self, batch: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """``(n, size, size, 3)`` uint8 RGB images to ``(n, dim)`` float32 unit-length rows."""
        batch = np.asarray(batch)
        expected = (self.input_size, self.input_size, 3)
        if batch.ndim != 4 or batch.shape[1:] != expected or batch.dtype != np.uint8:
            raise InferenceError(
                f"backbone {self.name} embeds uint8 batches of shape (n, {expected[0]}, "
                f"{expected[1]}, 3), got {batch.dtype} {batch.shape}: prepare each image with "
                "device.eye.backbone.to_model_input and stack them"
            )
        if batch.shape[0] == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        (raw,) = self.model.run_quantized([batch])
        embeddings = np.asarray(raw, dtype=np.float32).reshape(batch.shape[0], -1)
        if embeddings.shape[1] != self.dim:
            raise InferenceError(
                f"backbone {self.name} returned {embeddings.shape[1]} values per image, its "
                f"card says {self.dim}"
            )
        return l2_normalise(embeddings)


def l2_normalise(rows: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
    """Each row scaled to unit length (rows of near-zero length become zero)."""
    rows32 = np.asarray(rows, dtype=np.float32)
    norms = np.linalg.norm(rows32, axis=-1, keepdims=True)
    safe = np.where(norms < _MIN_NORM, np.float32(1.0), norms)
    normalised: npt.NDArray[np.float32] = np.where(norms < _MIN_NORM, 0.0, rows32 / safe).astype(
        np.float32
    )
    return normalised
