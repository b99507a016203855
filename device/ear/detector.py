"""From log-mel patches to per-window confidences: the backbone, and a species head if any.

Audio models are folders under ``models/`` whose card's ``task_config`` says how to feed them:

* ``"input": "logmel_patch"``: a backbone (``models/yamnet``): sample rate, window and hop,
  the front-end settings, the output order (``outputs``), and which of its classes are birds
  (``bird_class_indices``); it gives presence.
* ``"input": "embedding"``: a head on a named backbone (``"backbone": "yamnet"``), e.g. the
  species head ``senses-train birds`` writes to ``models/birds``; its labels are the species it
  names plus negatives ("no bird", "noise", ... or the card's ``negative_labels``), which are
  never reported.

So a user can drop in a head they trained (or hold the rights to) on the same backbone, or a
different log-mel backbone with its own front end, without code changes. Without a head the
ear still reports presence, as species "Bird".
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from device.ear.backbone import YamnetBackbone
from device.ear.frontend import FrontendConfig, Patch
from device.ear.privacy import voice_class_indices, voice_scores
from device.errors import EarModelError, ModelError
from device.inference import load_model

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float32]

#: What the ear calls a bird it cannot name (presence only, or a head's catch-all).
PRESENCE_LABEL: Final = "Bird"
#: Head labels for "a bird, species not named" (merged away when a named one overlaps).
CATCH_ALL_LABELS: Final = frozenset({"other bird", "other", "unknown bird", "bird"})
#: Head labels that mean "nothing to report" (BirdNET-Analyzer's non-event classes, and ours).
NEGATIVE_LABELS: Final = frozenset({"no bird", "no_bird", "noise", "background", "silence"})
HEAD_INPUT: Final = "embedding"


@dataclass(frozen=True)
class WindowResult:
    """What the models say about one window of audio (stream seconds)."""

    start_s: float
    end_s: float
    presence: float  # the backbone's best bird class
    confidences: dict[str, float]  # reportable label -> confidence
    voice: float = 0.0  # the backbone's best human-voice class (the privacy filter)


class SpeciesHead:
    """A classifier on the backbone's embedding (``task_config.input == "embedding"``)."""

    def __init__(self, folder: Path, backbone: YamnetBackbone, *, num_threads: int = 1) -> None:
        self.model = load_model(folder, num_threads=num_threads)
        card = self.model.card
        config = card.task_config
        card_path = self.model.folder / "card.json"
        if config.get("input") != HEAD_INPUT:
            raise EarModelError(
                f"{card_path}: task_config.input is {config.get('input')!r}; a species head "
                f"takes {HEAD_INPUT!r} (the backbone's embedding)"
            )
        if config.get("backbone") != backbone.name:
            raise EarModelError(
                f"{card_path}: the head was trained on backbone {config.get('backbone')!r}, "
                f"but the ear runs {backbone.name!r}: set ear.backbone to match, or retrain "
                "the head (senses-train birds)"
            )
        width = card.inputs[0].shape[-1]
        if width != backbone.embedding_size:
            raise EarModelError(
                f"{card_path}: the head takes {width} features, the backbone gives "
                f"{backbone.embedding_size}"
            )
        rate = config.get("sample_rate", backbone.sample_rate)
        if rate != backbone.sample_rate:
            raise EarModelError(
                f"{card_path}: task_config.sample_rate is {rate}, the backbone's is "
                f"{backbone.sample_rate}: the head belongs to another front end"
            )
        if not card.labels:
            raise EarModelError(f"{card_path}: a species head needs labels (one per output)")
        self.labels: list[str] = list(card.labels)
        negatives = {str(x).lower() for x in config.get("negative_labels", [])} | NEGATIVE_LABELS
        self.reportable = [
            i for i, label in enumerate(self.labels) if label.lower() not in negatives
        ]
        self.name = card.name

    def run(self, embeddings: FloatArray) -> FloatArray:
        return np.asarray(self.model.run(embeddings), dtype=np.float32)


class Detector:
    """Backbone + optional head: patches in, :class:`WindowResult` per patch out."""

    def __init__(self, backbone: YamnetBackbone, head: SpeciesHead | None = None) -> None:
        self.backbone = backbone
        self.head = head
        try:
            self.voice_indices: list[int] | None = voice_class_indices(backbone.labels)
        except EarModelError:
            self.voice_indices = None  # a backbone without voice classes: no privacy filter

    @classmethod
    def load(
        cls,
        models_dir: Path,
        backbone: str = "yamnet",
        head: str | None = "birds",
        *,
        num_threads: int = 1,
    ) -> tuple[Detector, str | None]:
        """Load the backbone (required) and the head (optional).

        Returns the detector and, when the head cannot be used, why: the ear then runs on
        presence alone and the caller reports that as a Health event.
        """
        loaded_backbone = YamnetBackbone(models_dir / backbone, num_threads=num_threads)
        if head is None:
            return cls(loaded_backbone), "no species head configured (ear.head): presence only"
        try:
            loaded_head = SpeciesHead(models_dir / head, loaded_backbone, num_threads=num_threads)
        except ModelError as e:
            return cls(loaded_backbone), (
                f"species head unavailable, reporting bird presence only ({PRESENCE_LABEL!r} "
                f"from {backbone}'s bird classes): {e}"
            )
        return cls(loaded_backbone, loaded_head), None

    @property
    def labels(self) -> list[str]:
        """Every label the detector can report."""
        if self.head is None:
            return [PRESENCE_LABEL]
        return [self.head.labels[i] for i in self.head.reportable]

    @property
    def catch_all_labels(self) -> list[str]:
        """Reportable labels that name no species (a head's "other bird")."""
        return [label for label in self.labels if label.lower() in CATCH_ALL_LABELS]

    @property
    def model_id(self) -> str:
        names = [self.backbone.name] + ([self.head.name] if self.head else [])
        return "+".join(names)

    def frontend_config(self, hop_frames: int) -> FrontendConfig:
        """The backbone's front end, with the window hop the station is configured for."""
        values = self.backbone.frontend_config.to_dict()
        values["patch_hop_frames"] = hop_frames
        return FrontendConfig.from_dict(values)

    def analyse(self, patches: Sequence[Patch]) -> list[WindowResult]:
        if not patches:
            return []
        scores, embeddings = self.backbone.run(np.stack([p.features for p in patches]))
        presence = self.backbone.bird_presence(scores)
        voice = (
            voice_scores(scores, self.voice_indices)
            if self.voice_indices is not None
            else np.zeros(len(patches), dtype=np.float32)
        )
        if self.head is not None:
            probabilities = self.head.run(embeddings)
            labels = self.head.labels
            reportable = self.head.reportable
            confidences = [{labels[i]: float(row[i]) for i in reportable} for row in probabilities]
        else:
            confidences = [{PRESENCE_LABEL: float(p)} for p in presence]
        return [
            WindowResult(p.start_s, p.end_s, float(presence[i]), confidences[i], float(voice[i]))
            for i, p in enumerate(patches)
        ]
