"""From log-mel patches to per-window confidences: the backbone, and a species head if any.

Audio models are folders under ``models/`` whose card's ``task_config`` says how to feed them:

* ``"input": "logmel_patch"``: a backbone (``models/yamnet``): sample rate, window and hop,
  the front-end settings, the output order (``outputs``), and which of its classes are birds
  (``bird_class_indices``); it gives presence.
* ``"input": "embedding"``: a head on a named backbone (``"backbone": "yamnet"``), e.g. the
  species head ``senses-train birds`` writes to ``models/birds``; its labels are the species it
  names plus negatives ("no bird", "noise", ... or the card's ``negative_labels``), which are
  never reported.

* ``"input": "waveform"``: a species model on raw audio at its own rate (BirdNET v2.4,
  installed by the user into the data folder; :mod:`device.ear.species`). When one runs,
  it names the species (:class:`SpeciesStage`: range filter by place and week, allow and
  deny lists) and the backbone still runs for presence (and the gate and privacy filter).

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
from device.ear.gate import EmbeddingGate
from device.ear.openset import OpenSetRule
from device.ear.privacy import voice_class_indices, voice_scores
from device.ear.species import (
    DEFAULT_RANGE_THRESHOLD,
    SpeciesLabel,
    WaveformSpeciesModel,
    resolve_names,
)
from device.ear.windows import AudioWindow, WaveformWindower
from device.errors import EarModelError, ModelError, UnknownSpeciesError
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
#: Species scores below this are not even handed to the thresholds (6,500 labels a window).
SCORE_FLOOR: Final = 0.01


@dataclass(frozen=True)
class WindowResult:
    """What the models say about one window of audio (stream seconds)."""

    start_s: float
    end_s: float
    presence: float  # the backbone's best bird class
    confidences: dict[str, float]  # reportable label -> confidence
    voice: float = 0.0  # the backbone's best human-voice class (the privacy filter)
    gate: float = 0.0  # the cascade's gate score (device/ear/gate.py): may a species model run?


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
        # The head's catch-all ("other bird") is reported as what it means: a bird, unnamed.
        self.labels: list[str] = [
            PRESENCE_LABEL if label.lower() in CATCH_ALL_LABELS else label for label in card.labels
        ]
        # Optional: centroids that keep the head from naming species it was never taught.
        open_set = config.get("open_set")
        self.open_set: OpenSetRule | None = (
            OpenSetRule.load(self.model.folder / str(open_set)) if open_set else None
        )
        # Optional: {"Great Tit": "Parus major", ...} so detections carry both names.
        self.scientific_names: dict[str, str] = {
            str(k): str(v) for k, v in dict(config.get("scientific_names", {})).items()
        }
        negatives = {str(x).lower() for x in config.get("negative_labels", [])} | NEGATIVE_LABELS
        self.reportable = [
            i for i, label in enumerate(self.labels) if label.lower() not in negatives
        ]
        self.name = card.name

    def run(self, embeddings: FloatArray) -> FloatArray:
        return np.asarray(self.model.run(embeddings), dtype=np.float32)


class SpeciesStage:
    """A raw-waveform species model with the station's filters: windows in, results out.

    The range filter (BirdNET's occurrence model for the station's latitude, longitude and
    the week of the year) drops species unlikely here and now; it is evaluated once per week.
    Allow and deny lists (common or scientific names) are applied by the thresholds.
    """

    def __init__(
        self,
        model: WaveformSpeciesModel,
        *,
        latitude: float | None = None,
        longitude: float | None = None,
        range_threshold: float = DEFAULT_RANGE_THRESHOLD,
        overlap_s: float | None = None,
    ) -> None:
        self.model = model
        self.place = (
            (latitude, longitude) if latitude is not None and longitude is not None else None
        )
        self.range_threshold = range_threshold
        self.overlap_s = model.overlap_s if overlap_s is None else overlap_s
        if not 0 <= self.overlap_s < model.window_s:
            raise EarModelError(
                f"ear.species_overlap_s must be in [0, {model.window_s:g}) for {model.name}"
            )
        self._species = np.zeros(len(model.labels), dtype=bool)
        self._species[model.species_indices] = True
        # Occurrence for all 48 weeks at once (1.2 MB), so the range model can be released.
        self._occurrence: FloatArray | None = None
        if self.place is not None and model.range_model is not None:
            self._occurrence = model.range_model.weekly_occurrence(*self.place)

    @property
    def hop_s(self) -> float:
        return self.model.window_s - self.overlap_s

    def windower(self, input_rate: int) -> WaveformWindower:
        """The stream cut into this model's windows (resampled once to its rate)."""
        model = self.model
        return WaveformWindower(input_rate, model.sample_rate_hz, model.window_s, self.hop_s)

    def allowed(self, week: int | None) -> npt.NDArray[np.bool_]:
        """Which labels may be reported this week (species only; range-filtered with a place)."""
        if self._occurrence is None:
            return self._species
        row = 0 if week is None or week == -1 else week
        mask: npt.NDArray[np.bool_] = self._species & (
            self._occurrence[row] >= self.range_threshold
        )
        return mask

    def analyse(self, windows: Sequence[AudioWindow], week: int | None) -> list[WindowResult]:
        if not windows:
            return []
        probabilities = self.model.classify(np.stack([w.samples for w in windows]))
        allowed = self.allowed(week)
        labels = self.model.labels
        results = []
        for window, row in zip(windows, probabilities, strict=True):
            keep = np.flatnonzero(allowed & (row >= SCORE_FLOOR))
            best = float(row[allowed].max()) if allowed.any() else 0.0
            results.append(
                WindowResult(
                    window.start_s,
                    window.end_s,
                    best,
                    {labels[i].name: float(row[i]) for i in keep},
                )
            )
        return results


class Detector:
    """Backbone + optional head: patches in, :class:`WindowResult` per patch out.

    With a :class:`SpeciesStage` the species come from it instead of the head:
    :meth:`analyse` still gives the backbone's presence per patch, and
    :meth:`analyse_species` the named species per raw-audio window.
    """

    def __init__(
        self,
        backbone: YamnetBackbone,
        head: SpeciesHead | None = None,
        species: SpeciesStage | None = None,
    ) -> None:
        self.backbone = backbone
        self.head = head
        try:
            self.voice_indices: list[int] | None = voice_class_indices(backbone.labels)
        except EarModelError:
            self.voice_indices = None  # a backbone without voice classes: no privacy filter
        self.species = species
        self.gate: EmbeddingGate | None = None  # the cascade's gate, when ear.gate is on
        self._labels_by_name: dict[str, SpeciesLabel] = {}
        if species is not None:
            self._labels_by_name = {
                label.name.lower(): label for label in species.model.labels if label.is_species
            }
        elif head is not None:
            self._labels_by_name = {
                name.lower(): SpeciesLabel(head.scientific_names.get(name, ""), name)
                for name in self.labels
            }

    @classmethod
    def load(
        cls,
        models_dir: Path,
        backbone: str = "yamnet",
        head: str | None = "birds",
        *,
        num_threads: int = 1,
        species: SpeciesStage | None = None,
    ) -> tuple[Detector, str | None]:
        """Load the backbone (required) and the head (optional).

        Returns the detector and, when the head cannot be used, why: the ear then runs on
        presence alone and the caller reports that as a Health event. With ``species`` (a
        loaded species model) the head is not loaded: the species model names the birds.
        """
        loaded_backbone = YamnetBackbone(models_dir / backbone, num_threads=num_threads)
        if species is not None:
            return cls(loaded_backbone, species=species), None
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
        if self.species is not None:
            model = self.species.model
            return [model.labels[i].name for i in model.species_indices]
        if self.head is None:
            return [PRESENCE_LABEL]
        return [self.head.labels[i] for i in self.head.reportable]

    def species_label(self, name: str) -> SpeciesLabel:
        """Scientific and common name of a reported species (scientific "" when unknown)."""
        return self._labels_by_name.get(name.lower(), SpeciesLabel("", name))

    def canonical_names(self, names: Sequence[str], what: str, *, strict: bool) -> list[str]:
        """User-given names (common or scientific) as the detector reports them.

        ``strict``: a name the running model does not know raises
        :class:`~device.errors.UnknownSpeciesError` naming close matches. Not strict (the ear
        fell back from BirdNET to the head): unknown names are kept as written.
        """
        known = list(self._labels_by_name.values()) + [
            SpeciesLabel("", label) for label in (PRESENCE_LABEL, *self.catch_all_labels)
        ]
        if not strict:
            found = {}
            for name in names:
                try:
                    found.update(resolve_names(known, [name], what, model_name=self.model_id))
                except UnknownSpeciesError:
                    continue
            return [found[n].name if n in found else n for n in names]
        resolved = resolve_names(known, names, what, model_name=self.model_id)
        return [resolved[n].name for n in names]

    @property
    def catch_all_labels(self) -> list[str]:
        """Reportable labels that name no species (a head's "other bird")."""
        return [label for label in self.labels if label.lower() in CATCH_ALL_LABELS]

    @property
    def min_named_windows(self) -> int:
        """Windows a head's name needs before a detection carries it (its open-set rule)."""
        if self.species is None and self.head is not None and self.head.open_set is not None:
            return self.head.open_set.min_windows
        return 1

    @property
    def model_id(self) -> str:
        """Which models name the species, e.g. ``yamnet+birdnet-v2.4`` or ``yamnet+birds``."""
        if self.species is not None:
            return f"{self.backbone.name}+{self.species.model.name}"
        names = [self.backbone.name] + ([self.head.name] if self.head else [])
        return "+".join(names)

    def analyse_species(
        self, windows: Sequence[AudioWindow], week: int | None = None
    ) -> list[WindowResult]:
        """The species model's results for raw-audio windows (none without a species model)."""
        if self.species is None:
            return []
        return self.species.analyse(windows, week)

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
        gate = self.gate.probability(embeddings) if self.gate is not None else presence
        if self.head is not None:
            probabilities = self.head.run(embeddings)
            labels = self.head.labels
            reportable = self.head.reportable
            confidences = [{labels[i]: float(row[i]) for i in reportable} for row in probabilities]
            if self.head.open_set is not None:
                confidences = self.head.open_set.apply(embeddings, confidences, PRESENCE_LABEL)
        else:
            confidences = [{PRESENCE_LABEL: float(p)} for p in presence]
        return [
            WindowResult(
                p.start_s,
                p.end_s,
                float(presence[i]),
                confidences[i],
                float(voice[i]),
                float(gate[i]),
            )
            for i, p in enumerate(patches)
        ]
