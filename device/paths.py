"""Where the station finds its models and concepts: one setting, ``SENSES_MODELS_DIR``.

A checkout (and an editable install) has ``models/`` beside the ``device`` package. A wheel
installed with ``pip install .`` does not: its package sits in site-packages with no models
next to it, so the folder must be named. In order, the models folder is:

1. ``[inference] models_dir`` in the config file, when the file sets it;
2. the ``SENSES_MODELS_DIR`` environment variable;
3. the checkout's ``models/``, when the package runs from a checkout;
4. ``/opt/senses/models``, where ``hardware/install.sh`` puts them on a Pi.

This module imports nothing from the package, so the config and every sense can use it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

MODELS_DIR_ENV: Final = "SENSES_MODELS_DIR"
"""The environment variable that names the models folder."""
MODELS_DIR_CONFIG_KEY: Final = "[inference] models_dir"
"""The config key that names the models folder (it wins over the environment)."""
CHECKOUT_MODELS_DIR: Final = Path(__file__).resolve().parent.parent / "models"
INSTALLED_MODELS_DIR: Final = Path("/opt/senses/models")
"""Where hardware/install.sh copies the models (its MODELS_DIR)."""
CONCEPTS_SUBDIR: Final = "concepts"


def default_models_dir() -> Path:
    """The models folder when the config file does not name one (see the module docstring).

    Falls back to the checkout's ``models/`` even when it does not exist, so the error a model
    load gives names that folder and :func:`models_dir_hint` says how to point elsewhere.
    """
    env = os.environ.get(MODELS_DIR_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    if CHECKOUT_MODELS_DIR.is_dir():
        return CHECKOUT_MODELS_DIR
    if INSTALLED_MODELS_DIR.is_dir():
        return INSTALLED_MODELS_DIR
    return CHECKOUT_MODELS_DIR


def default_concepts_dir() -> Path:
    """The shipped concepts: ``concepts/`` in the models folder."""
    return default_models_dir() / CONCEPTS_SUBDIR


def models_dir_hint(models_dir: Path) -> str:
    """What to do when ``models_dir`` does not hold the models (for error messages)."""
    return (
        f"the models folder {models_dir} does not exist: set {MODELS_DIR_ENV} (or "
        f"{MODELS_DIR_CONFIG_KEY} in the config file) to the folder that holds the Senses "
        f"models: a checkout's models/, or {INSTALLED_MODELS_DIR} after hardware/install.sh"
    )
