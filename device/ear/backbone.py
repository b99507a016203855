"""The ear's pretrained backbone: YAMNet on log-mel patches, giving scores and embeddings.

``models/yamnet/`` is YAMNet rewritten by ``training/ear_backbone.py``: its input is the
log-mel patch the streaming front end (:mod:`device.ear.frontend`) computes, and it returns the
521 AudioSet scores and the 1024-d embedding a species head is trained on. The card's
``task_config`` says which front-end settings the model expects and which classes are birds;
:class:`YamnetBackbone` checks that the front end it is paired with matches.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from device.ear.frontend import FrontendConfig
from device.errors import AudioInputError, EarModelError
from device.inference import TFLiteModel, load_model

FloatArray = npt.NDArray[np.float32]

DEFAULT_MODEL_DIR: Final = Path(__file__).resolve().parents[2] / "models" / "yamnet"
BACKBONE_INPUT: Final = "logmel_patch"


def _task_value(model: TFLiteModel, key: str) -> Any:
    try:
        return model.card.task_config[key]
    except KeyError:
        raise EarModelError(
            f"{model.folder / 'card.json'}: task_config has no {key!r}, which an audio backbone "
            "needs; re-create the folder with `python -m training.ear_backbone`"
        ) from None


class YamnetBackbone:
    """Log-mel patches ``(n, 96, 64)`` in; scores ``(n, 521)`` and embeddings ``(n, 1024)`` out."""

    def __init__(self, model_dir: Path | None = None, *, num_threads: int = 1) -> None:
        self.model = load_model(model_dir or DEFAULT_MODEL_DIR, num_threads=num_threads)
        card = self.model.card
        if _task_value(self.model, "input") != BACKBONE_INPUT:
            raise EarModelError(
                f"{self.model.folder}: task_config.input is "
                f"{card.task_config.get('input')!r}, but a backbone takes {BACKBONE_INPUT!r}"
            )
        self.frontend_config = FrontendConfig.from_dict(_task_value(self.model, "frontend"))
        self.labels: list[str] = list(card.labels)
        self.bird_class_indices: list[int] = [
            int(i) for i in _task_value(self.model, "bird_class_indices")
        ]
        outputs = _task_value(self.model, "outputs")
        self._scores_output = int(outputs["scores"])
        self._embedding_output = int(outputs["embedding"])
        self.embedding_size = int(card.outputs[self._embedding_output].shape[-1])
        self.name = card.name
        self.sample_rate = int(_task_value(self.model, "sample_rate"))
        self.window_s = float(_task_value(self.model, "window_s"))
        self.hop_s = float(_task_value(self.model, "hop_s"))
        bad = [i for i in self.bird_class_indices if not 0 <= i < len(self.labels)]
        if bad:
            raise EarModelError(f"{self.model.folder}: bird_class_indices {bad} are not labels")

    @property
    def patch_shape(self) -> tuple[int, int]:
        return self.frontend_config.patch_frames, self.frontend_config.mel_bins

    def run(self, patches: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
        """Scores and embeddings for a batch of patches (one row each, in order)."""
        array = np.asarray(patches, dtype=np.float32)
        if array.ndim == 2:
            array = array[np.newaxis]
        if array.ndim != 3 or array.shape[1:] != self.patch_shape:
            raise AudioInputError(
                f"the {self.name} backbone takes log-mel patches of shape (n, "
                f"{self.patch_shape[0]}, {self.patch_shape[1]}), got {array.shape}: compute them "
                "with device.ear.frontend.StreamingFrontend"
            )
        if len(array) == 0:
            return (
                np.zeros((0, len(self.labels)), dtype=np.float32),
                np.zeros((0, self.embedding_size), dtype=np.float32),
            )
        outputs = self.model.run_many([array])
        return (
            np.asarray(outputs[self._scores_output], dtype=np.float32),
            np.asarray(outputs[self._embedding_output], dtype=np.float32),
        )

    def bird_presence(self, scores: FloatArray) -> FloatArray:
        """How sure the backbone is that a bird calls in each window: its best bird class."""
        return np.asarray(scores[:, self.bird_class_indices].max(axis=1), dtype=np.float32)
