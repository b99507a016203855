"""The backbone: frames to model inputs to unit-length embeddings, with the shipped model."""

from __future__ import annotations

import numpy as np
import pytest

from device.errors import InferenceError
from device.eye.backbone import FULL_FRAME, Backbone, to_model_input
from device.eye.images import load_image
from device.inference import load_model, read_card


def _two_colour_frame(height: int = 300, width: int = 600) -> np.ndarray:
    frame = np.zeros((height, width, 3), np.uint8)
    frame[:, : width // 2] = (255, 0, 0)
    frame[:, width // 2 :] = (0, 0, 255)
    return frame


def test_the_shipped_backbone_card_matches_its_model(backbone: Backbone) -> None:
    card = read_card(backbone.model.folder)
    assert card.sha256 == backbone.sha256
    assert (backbone.dim, backbone.input_size) == (1024, 224)
    assert card.inputs[0].shape == [1, 224, 224, 3]
    assert "Apache" in card.licence
    assert (backbone.model.folder / "LICENSE").read_text().count("Apache License") >= 1


def test_a_box_cuts_that_part_of_the_full_resolution_frame() -> None:
    frame = _two_colour_frame()
    left = to_model_input(frame, (0.0, 0.0, 0.5, 1.0))
    right = to_model_input(frame, (0.5, 0.0, 0.5, 1.0))
    assert left.shape == right.shape == (224, 224, 3)
    assert left.dtype == np.uint8
    assert np.all(left == (255, 0, 0))
    assert np.all(right == (0, 0, 255))


def test_a_wide_frame_is_centre_cropped_to_a_square_not_squashed() -> None:
    frame = np.zeros((100, 400, 3), np.uint8)
    frame[:, 150:250] = 255  # the centre square is white, the sides black
    square = to_model_input(frame, FULL_FRAME, 64)
    assert square.shape == (64, 64, 3)
    assert square.min() == 255


@pytest.mark.parametrize(
    ("frame", "box", "message"),
    [
        (np.zeros((10, 10), np.uint8), FULL_FRAME, "RGB"),
        (np.zeros((10, 10, 3), np.float32), FULL_FRAME, "uint8"),
        (np.zeros((10, 10, 3), np.uint8), (0.6, 0.0, 0.5, 1.0), "outside"),
        (np.zeros((10, 10, 3), np.uint8), (0.0, 0.0, 0.0, 1.0), "positive size"),
    ],
)
def test_bad_frames_and_boxes_are_refused(frame: np.ndarray, box: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        to_model_input(frame, box)


def test_embeddings_are_unit_length_and_repeatable(backbone: Backbone) -> None:
    frame = _two_colour_frame()
    batch = np.stack([to_model_input(frame), to_model_input(frame, (0.0, 0.0, 0.5, 1.0))])
    first = backbone.embed(batch)
    assert first.shape == (2, 1024)
    assert first.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(first, backbone.embed(batch))
    assert backbone.embed(np.zeros((0, 224, 224, 3), np.uint8)).shape == (0, 1024)


def test_embed_refuses_what_is_not_a_batch_of_model_inputs(backbone: Backbone) -> None:
    with pytest.raises(InferenceError, match="to_model_input"):
        backbone.embed(np.zeros((224, 224, 3), np.uint8))
    with pytest.raises(InferenceError, match="uint8"):
        backbone.embed(np.zeros((1, 224, 224, 3), np.float32))


def test_raw_pixels_go_in_exactly_as_the_quantized_real_values_would(backbone: Backbone) -> None:
    # run_quantized feeds camera pixels without a float round trip; it must equal run_many
    # fed the real values those pixels stand for: (pixel - 128) / 128.
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
    model = load_model(backbone.model.folder)
    (raw,) = model.run_quantized([pixels])
    (real,) = model.run_many([(pixels.astype(np.float32) - 128) / 128])
    np.testing.assert_array_equal(raw, real)
    with pytest.raises(InferenceError, match="run_many"):
        model.run_quantized([pixels.astype(np.float32)])


def test_the_same_photo_at_another_resolution_embeds_alike_and_unlike_others(
    backbone: Backbone, photos
) -> None:
    cat = load_image(photos.path("cat"))
    small = cat[::2, ::2].copy()
    dog = load_image(photos.path("dog_test_0"))
    e = backbone.embed(np.stack([to_model_input(x) for x in (cat, small, dog)]))
    same, other = float(e[0] @ e[1]), float(e[0] @ e[2])
    print(f"\ncosine cat vs half-size cat {same:.3f}; cat vs dog {other:.3f}")
    assert same > 0.95
    assert other < same - 0.2
