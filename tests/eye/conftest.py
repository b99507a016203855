"""Shared fixtures of the eye's tests: the shipped backbone, the negative bank, real photographs.

The backbone is loaded once per session (it is read-only and guards its interpreter), so the
concept tests and the live-scoring tests share it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest

from device.config import PROJECT_ROOT
from device.eye.backbone import Backbone, to_model_input
from device.eye.images import load_image
from device.eye.negatives import NegativeBank, load_bank

IMAGES = PROJECT_ROOT / "hardware" / "sim" / "images"


@pytest.fixture(scope="session")
def backbone() -> Backbone:
    return Backbone()


@pytest.fixture(scope="session")
def bank(backbone: Backbone) -> NegativeBank:
    return load_bank(backbone)


@pytest.fixture(scope="session")
def images_dir() -> Path:
    return IMAGES


class Photos:
    """The shipped photographs (``hardware/sim/images``) by stem, e.g. ``photos.path("cat")``."""

    def __init__(self, backbone: Backbone) -> None:
        self.backbone = backbone

    def path(self, name: str) -> Path:
        path = IMAGES / f"{name}.jpg"
        assert path.is_file(), f"missing test photograph {path}"
        return path

    def board(self, folder: Path, names: Iterable[str]) -> Path:
        """A board folder holding copies of the named photographs."""
        folder.mkdir(parents=True, exist_ok=True)
        for name in names:
            shutil.copy(self.path(name), folder / f"{name}.jpg")
        return folder

    def embed(self, names: Iterable[str]) -> np.ndarray:
        """Full-frame embeddings of the named photographs, one row each."""
        return self.backbone.embed(
            np.stack([to_model_input(load_image(self.path(n))) for n in names])
        )


@pytest.fixture(scope="session")
def photos(backbone: Backbone) -> Photos:
    return Photos(backbone)
