"""The bank of random counter-examples that pads a mood board's negatives.

Mood Board Search pads the user's opposite images with random pictures from its built-in
"negative-v1.1" set until there are as many negatives as positives (research/cav.md §1.4);
TCAV trains against "random" image sets. We ship a small licence-clean bank: the embeddings
(not the pixels) of

* views of scikit-image's bundled photographs and scientific images (CC0 or public domain,
  listed in :data:`BANK_IMAGES`): random square crops at several scales, some mirrored, and
* generated pictures (smooth colour noise, gradients, stripes, blobs), seeded,

stored as float16 in ``models/concepts/negative_bank.npz`` with the backbone's sha256 and
preprocessing id. Each entry has a *group* (its source picture) so cross-validation and the
random-concept null never split views of one picture across folds.

The photographs the eye's quality tests train on and rank (``hardware/sim/images``) are not in
the bank, so those tests measure generalisation, not memory (coffee, rocket and astronaut are
in both, for the demo, and the tests never rank them). Rebuild after changing the
backbone: ``python -m device.eye.negatives`` (needs the ``dev`` extra for scikit-image).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from device.config import DEFAULT_MODELS_DIR
from device.errors import ConceptError
from device.eye.backbone import Backbone, Box, Frame, to_model_input

DEFAULT_BANK_PATH: Final = DEFAULT_MODELS_DIR / "concepts" / "negative_bank.npz"
#: scikit-image sample images (``skimage.data.<name>``) whose views go into the bank; the
#: licence of each is stated in scikit-image's documentation of that function.
BANK_IMAGES: Final = (
    "astronaut",  # public domain (NASA)
    "camera",  # CC0 (Lav Varshney)
    "coffee",  # CC0 (Rachel Michetti)
    "rocket",  # public domain (SpaceX)
    "hubble_deep_field",  # public domain (NASA)
    "coins",  # no known copyright restrictions (Brooklyn Museum)
    "immunohistochemistry",  # CC0
    "retina",  # CC0
    "moon",  # no known copyright restrictions
    "page",  # public domain
    "text",  # public domain
    "horse",  # CC0 (openclipart)
    "logo",  # scikit-image logo, BSD-3-Clause
    "clock",  # public domain (Stefan van der Walt)
    "cell",  # CC0
    "colorwheel",  # public domain (generated)
)
VIEWS_PER_IMAGE: Final = 12
GENERATED_PICTURES: Final = 60
BANK_SEED: Final = 20261128


@dataclass(frozen=True)
class NegativeBank:
    """Unit-length embeddings of random pictures, each with its source group."""

    embeddings: npt.NDArray[np.float32]
    groups: npt.NDArray[np.int64]
    sources: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.embeddings.shape[0])


def load_bank(backbone: Backbone, path: Path = DEFAULT_BANK_PATH) -> NegativeBank:
    """The shipped bank, refused if it was computed with another backbone or preprocessing."""
    path = Path(path)
    rebuild = "rebuild it with `python -m device.eye.negatives` (needs the dev extra)"
    try:
        with np.load(path, allow_pickle=False) as data:
            embeddings = data["embeddings"].astype(np.float32)
            groups = data["groups"].astype(np.int64)
            sources = tuple(str(s) for s in data["sources"])
            sha256 = str(data["backbone_sha256"])
            preprocessing = str(data["preprocessing"])
    except FileNotFoundError as e:
        raise ConceptError(
            f"the negative bank {path} is missing: restore it from git "
            f"(`git checkout -- {path}`) or {rebuild}"
        ) from e
    except (OSError, KeyError, ValueError) as e:
        raise ConceptError(f"the negative bank {path} is unreadable ({e}): {rebuild}") from e
    if sha256 != backbone.sha256 or preprocessing != backbone.preprocessing:
        raise ConceptError(
            f"the negative bank {path} was computed with another backbone or preprocessing "
            f"(sha256 {sha256[:12]}…, {preprocessing!r}): {rebuild}"
        )
    if embeddings.shape != (groups.shape[0], backbone.dim):
        raise ConceptError(f"the negative bank {path} has the wrong shape: {rebuild}")
    return NegativeBank(embeddings, groups, sources)


# --- building the bank ----------------------------------------------------------------------


def _random_views(pixels: Frame, rng: np.random.Generator, count: int, size: int) -> list[Frame]:
    height, width = pixels.shape[:2]
    views = []
    for _ in range(count):
        scale = float(rng.uniform(0.35, 1.0))
        side_px = scale * min(height, width)
        w, h = side_px / width, side_px / height
        box: Box = (float(rng.uniform(0, 1 - w)), float(rng.uniform(0, 1 - h)), w, h)
        view = to_model_input(pixels, box, size)
        views.append(np.ascontiguousarray(view[:, ::-1]) if rng.random() < 0.5 else view)
    return views


def _smooth_noise(rng: np.random.Generator, size: int) -> Frame:
    import cv2

    cells = int(rng.integers(2, 24))
    small = rng.uniform(0, 255, (cells, cells, 3)).astype(np.float32)
    return np.asarray(
        np.clip(cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC), 0, 255),
        np.uint8,
    )


def _gradient(rng: np.random.Generator, size: int) -> Frame:
    ramp = np.linspace(0, 1, size, dtype=np.float32)
    a, b = rng.uniform(0, 255, (2, 3)).astype(np.float32)
    angle = rng.uniform(0, np.pi)
    t = np.cos(angle) * ramp[None, :, None] + np.sin(angle) * ramp[:, None, None]
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    return np.asarray(a + (b - a) * t, np.uint8)


def _stripes(rng: np.random.Generator, size: int) -> Frame:
    period = float(rng.uniform(4, 60))
    angle = rng.uniform(0, np.pi)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    wave = 0.5 + 0.5 * np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period)
    a, b = rng.uniform(0, 255, (2, 3)).astype(np.float32)
    return np.asarray(a + (b - a) * wave[..., None], np.uint8)


def _blobs(rng: np.random.Generator, size: int) -> Frame:
    import cv2

    canvas = np.full((size, size, 3), rng.uniform(0, 255, 3), np.float32)
    for _ in range(int(rng.integers(3, 15))):
        centre = (int(rng.integers(0, size)), int(rng.integers(0, size)))
        colour = tuple(float(c) for c in rng.uniform(0, 255, 3))
        if rng.random() < 0.5:
            cv2.circle(canvas, centre, int(rng.integers(5, size // 3)), colour, -1)
        else:
            corner = (int(rng.integers(0, size)), int(rng.integers(0, size)))
            cv2.rectangle(canvas, centre, corner, colour, -1)
    return np.asarray(canvas, np.uint8)


_GENERATORS: Final[tuple[Callable[[np.random.Generator, int], Frame], ...]] = (
    _smooth_noise,
    _gradient,
    _stripes,
    _blobs,
)


def _bank_pictures(size: int) -> Iterator[tuple[str, list[Frame]]]:
    import skimage.data

    rng = np.random.default_rng(BANK_SEED)
    for name in BANK_IMAGES:
        image = np.asarray(getattr(skimage.data, name)())
        if image.ndim == 2:
            image = np.repeat(image[..., np.newaxis], 3, axis=2)
        pixels = np.ascontiguousarray(image[..., :3]).astype(np.uint8)
        yield f"skimage.data.{name}", _random_views(pixels, rng, VIEWS_PER_IMAGE, size)
    for k in range(GENERATED_PICTURES):
        generate = _GENERATORS[k % len(_GENERATORS)]
        yield f"generated:{generate.__name__.lstrip('_')}:{k}", [generate(rng, size)]


def build_bank(backbone: Backbone, path: Path = DEFAULT_BANK_PATH) -> NegativeBank:
    """Compute the bank with ``backbone`` and write it to ``path``."""
    embeddings, groups, sources = [], [], []
    for group, (source, views) in enumerate(_bank_pictures(backbone.input_size)):
        embeddings.append(backbone.embed(np.stack(views)))
        groups.extend([group] * len(views))
        sources.append(source)
    bank = NegativeBank(
        np.concatenate(embeddings).astype(np.float32), np.asarray(groups, np.int64), tuple(sources)
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        path,
        embeddings=bank.embeddings.astype(np.float16),
        groups=bank.groups,
        sources=np.asarray(bank.sources),
        backbone_sha256=np.asarray(backbone.sha256),
        preprocessing=np.asarray(backbone.preprocessing),
    )
    return bank


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Rebuild the eye's negative bank.")
    parser.add_argument("--out", type=Path, default=DEFAULT_BANK_PATH)
    args = parser.parse_args(argv)
    bank = build_bank(Backbone(), args.out)
    print(f"wrote {len(bank)} embeddings from {len(bank.sources)} pictures to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
