"""Species models on raw audio (BirdNET v2.4 and any model with the same kind of card).

A *species model* takes fixed windows of mono audio at its own sample rate and returns, per
window, a probability for every label it knows. The model folder's ``card.json``
``task_config`` declares how to feed it, so a different raw-waveform model needs no code::

    "task_config": {
        "input": "waveform",              # raw samples in [-1, 1] (vs "logmel_patch")
        "sample_rate": 48000,             # Hz; the ear resamples the microphone once to this
        "window_s": 3.0,                  # seconds per window (= the input's last axis)
        "overlap_s": 0.0,                 # default overlap between windows (config may change)
        "activation": "sigmoid",          # "sigmoid" (with sensitivity), "softmax" or "none"
        "sensitivity": 1.0,               # sigmoid slope, as BirdNET: 1 / (1 + exp(-s * logit))
        "label_format": "scientific_common",   # "Parus major_Great Tit", or "common"
        "range_model": "range"            # optional sub-folder: (lat, lon, week) -> occurrence
    }

Python API (what the ear, ``senses ear scan`` and the cascade use)::

    model = WaveformSpeciesModel.load(folder)             # via device.inference.load_model
    probs = model.predict(waveform_3s)                    # (len(model.labels),) float32
    probs = model.classify(windows)                       # (n, window_samples) -> (n, labels)
    model.labels[i].scientific, model.labels[i].common    # SpeciesLabel
    model.range_model.occurrence(lat, lon, week)          # (len(labels),); range_model may be None

In the ear, :class:`device.ear.detector.SpeciesStage` wraps a model with the station's filters
(``windower(rate)`` cuts the stream, ``analyse(windows, week)`` gives ``WindowResult`` s), and
:func:`device.ear.models.load_detector` picks BirdNET or the head as ``ear.species_model`` says.

Labels whose scientific and common names are equal in BirdNET ("Dog_Dog", "Human vocal_Human
vocal", "Engine_Engine", "Noise_Noise") name no species: they are scored (a privacy filter can
use "Human vocal") but never reported as birds (:attr:`SpeciesLabel.is_species`).
"""

from __future__ import annotations

import datetime as dt
import difflib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, Protocol

import numpy as np
import numpy.typing as npt

from device.errors import AudioInputError, ConfigError, EarModelError, UnknownSpeciesError
from device.inference import TFLiteModel, load_model, read_card

FloatArray = npt.NDArray[np.float32]

WAVEFORM_INPUT: Final = "waveform"
RANGE_INPUT: Final = "lat_lon_week"
Activation = Literal["sigmoid", "softmax", "none"]
LabelFormat = Literal["scientific_common", "common"]
_ACTIVATIONS: Final = ("sigmoid", "softmax", "none")
_LABEL_FORMATS: Final = ("scientific_common", "common")
#: BirdNET's default range-filter threshold (BirdNET-Pi SF_THRESH, birdnetlib filter_threshold).
DEFAULT_RANGE_THRESHOLD: Final = 0.03
WEEKS_PER_YEAR: Final = 48


@dataclass(frozen=True)
class SpeciesLabel:
    """One output of a species model: scientific and common name (either may be empty)."""

    scientific: str
    common: str

    @classmethod
    def parse(cls, text: str, label_format: LabelFormat) -> SpeciesLabel:
        if label_format == "scientific_common":
            scientific, sep, common = text.partition("_")
            if not sep:
                return cls(scientific="", common=text)
            return cls(scientific=scientific.strip(), common=common.strip())
        return cls(scientific="", common=text)

    @property
    def name(self) -> str:
        """What detections are called (the common name; the scientific one if there is none)."""
        return self.common or self.scientific

    @property
    def is_species(self) -> bool:
        """False for BirdNET's non-species classes ("Dog_Dog", "Noise_Noise", ...)."""
        return bool(self.scientific) and self.scientific != self.common

    def matches(self, text: str) -> bool:
        wanted = text.strip().lower()
        return wanted in (self.scientific.lower(), self.common.lower()) and bool(wanted)


class SpeciesModel(Protocol):
    """What the ear needs from a species model on raw audio windows."""

    name: str
    sample_rate_hz: int
    window_s: float
    overlap_s: float
    labels: list[SpeciesLabel]

    @property
    def window_samples(self) -> int: ...

    def classify(self, windows: npt.ArrayLike) -> FloatArray: ...


def week_48(day: dt.date) -> int:
    """BirdNET's week of the year: four "weeks" a month, 1-48 (days 29-31 count as week 4)."""
    return (day.month - 1) * 4 + min((day.day - 1) // 7 + 1, 4)


def _task(model: TFLiteModel, key: str) -> Any:
    try:
        return model.card.task_config[key]
    except KeyError:
        raise EarModelError(
            f"{model.folder / 'card.json'}: task_config has no {key!r}, which a species model "
            "needs; reinstall it (BirdNET: `senses ear install birdnet --accept-licence`)"
        ) from None


class RangeModel:
    """BirdNET's "meta" model: ``[[lat, lon, week]]`` in, per-species occurrence (0-1) out.

    The interpreter is opened on first use and can be released (:meth:`release`): the ear
    needs the model once per place (:meth:`weekly_occurrence`, all 48 weeks at once), and
    keeping it loaded would cost about 40 MB of a Pi's memory for nothing.
    """

    def __init__(self, folder: Path, *, num_threads: int = 1) -> None:
        self.folder = Path(folder)
        self.num_threads = num_threads
        card = read_card(self.folder)
        if card.task_config.get("input") != RANGE_INPUT:
            raise EarModelError(
                f"{self.folder / 'card.json'}: task_config.input must be {RANGE_INPUT!r} for a "
                "range model"
            )
        self._model: TFLiteModel | None = None

    @classmethod
    def load(cls, folder: Path, *, num_threads: int = 1) -> RangeModel:
        return cls(folder, num_threads=num_threads)

    def _loaded(self) -> TFLiteModel:
        if self._model is None:
            # No deadline thread: it would keep a reference and the memory after release().
            self._model = load_model(self.folder, num_threads=self.num_threads, deadline_s=None)
        return self._model

    def release(self) -> None:
        """Drop the interpreter (it is opened again if asked for more)."""
        self._model = None

    def occurrence(self, latitude: float, longitude: float, week: int = -1) -> FloatArray:
        """Occurrence score per label; ``week`` 1-48, or -1 for the whole year."""
        check_location(latitude, longitude)
        if week != -1 and not 1 <= week <= WEEKS_PER_YEAR:
            raise AudioInputError(f"week must be 1-48 (BirdNET's 48-week year) or -1, got {week}")
        query = np.array([[latitude, longitude, week]], dtype=np.float32)
        return np.asarray(self._loaded().run(query)[0], dtype=np.float32)

    def weekly_occurrence(self, latitude: float, longitude: float) -> FloatArray:
        """``(49, labels)``: row 0 the whole year (week -1), row w week w; then released."""
        check_location(latitude, longitude)
        weeks = np.arange(WEEKS_PER_YEAR + 1, dtype=np.float32)
        weeks[0] = -1.0
        query = np.stack(
            [np.full_like(weeks, latitude), np.full_like(weeks, longitude), weeks], axis=1
        )
        table = np.asarray(self._loaded().run(query), dtype=np.float32)
        self.release()
        return table


def check_location(latitude: float, longitude: float) -> None:
    """Refuse coordinates off the globe (a swapped lat/lon is the usual mistake)."""
    if not (math.isfinite(latitude) and -90.0 <= latitude <= 90.0):
        raise ConfigError(
            f"latitude {latitude} is outside -90..90 degrees: give decimal degrees, north "
            "positive (e.g. 52.52 for Berlin); did you swap latitude and longitude?"
        )
    if not (math.isfinite(longitude) and -180.0 <= longitude <= 180.0):
        raise ConfigError(
            f"longitude {longitude} is outside -180..180 degrees: give decimal degrees, east "
            "positive (e.g. 13.40 for Berlin, -122.33 for Seattle)"
        )


class WaveformSpeciesModel:
    """A species model whose card says ``task_config.input == "waveform"`` (BirdNET v2.4).

    ``sensitivity`` overrides the card's sigmoid slope (BirdNET's default 1.0; higher: more
    detections at lower logits).
    """

    #: Windows per interpreter call. The interpreter allocates activations for the whole
    #: batch (BirdNET: about 25 MB a window, 16 windows took RSS from 240 to 555 MB) and
    #: re-plans whenever the batch size changes, so windows run one at a time by default.
    max_batch: int = 1

    def __init__(self, model: TFLiteModel, *, sensitivity: float | None = None) -> None:
        self.model = model
        card = model.card
        card_path = model.folder / "card.json"
        if _task(model, "input") != WAVEFORM_INPUT:
            raise EarModelError(
                f"{card_path}: task_config.input is {card.task_config.get('input')!r}; a "
                f"species model on raw audio takes {WAVEFORM_INPUT!r}"
            )
        self.name = card.name
        self.licence = card.licence
        self.sample_rate_hz: int = int(_task(model, "sample_rate"))
        self.window_s: float = float(_task(model, "window_s"))
        self.overlap_s = float(card.task_config.get("overlap_s", 0.0))
        if not 0 <= self.overlap_s < self.window_s:
            raise EarModelError(f"{card_path}: overlap_s must be in [0, window_s)")
        width = card.inputs[0].shape[-1]
        if width != self.window_samples:
            raise EarModelError(
                f"{card_path}: the input takes {width} samples, but window_s x sample_rate is "
                f"{self.window_samples}"
            )
        activation = card.task_config.get("activation", "sigmoid")
        if activation not in _ACTIVATIONS:
            raise EarModelError(f"{card_path}: activation must be one of {_ACTIVATIONS}")
        self.activation: Activation = activation
        card_sensitivity = float(card.task_config.get("sensitivity", 1.0))
        self.sensitivity = card_sensitivity if sensitivity is None else float(sensitivity)
        if not 0.1 <= self.sensitivity <= 2.0:
            raise EarModelError(f"sensitivity must be in 0.1..2.0, got {self.sensitivity}")
        label_format = card.task_config.get("label_format", "common")
        if label_format not in _LABEL_FORMATS:
            raise EarModelError(f"{card_path}: label_format must be one of {_LABEL_FORMATS}")
        if len(card.labels) != card.outputs[0].shape[-1]:
            raise EarModelError(
                f"{card_path}: {len(card.labels)} labels for {card.outputs[0].shape[-1]} outputs"
            )
        self.labels = [SpeciesLabel.parse(text, label_format) for text in card.labels]
        self.species_indices = [i for i, label in enumerate(self.labels) if label.is_species]
        self.range_model: RangeModel | None = None
        range_folder = card.task_config.get("range_model")
        if range_folder:  # opened only when a place is given (RangeModel is lazy)
            self.range_model = RangeModel(model.folder / str(range_folder))

    @classmethod
    def load(
        cls, folder: Path, *, num_threads: int = 1, sensitivity: float | None = None
    ) -> WaveformSpeciesModel:
        """Load through :func:`device.inference.load_model` (card, checksum, tensors).

        The model file's mapped pages are released after loading: XNNPACK keeps its own
        packed copy of the weights (see :meth:`TFLiteModel.release_file_pages`).
        """
        model = load_model(folder, num_threads=num_threads)
        model.release_file_pages()
        return cls(model, sensitivity=sensitivity)

    @property
    def window_samples(self) -> int:
        return round(self.window_s * self.sample_rate_hz)

    @property
    def hop_s(self) -> float:
        return self.window_s - self.overlap_s

    def classify(self, windows: npt.ArrayLike) -> FloatArray:
        """Probabilities ``(n, labels)`` for windows ``(n, window_samples)`` at the model's rate."""
        array = np.asarray(windows, dtype=np.float32)
        if array.ndim == 1:
            array = array[np.newaxis]
        if array.ndim != 2 or array.shape[1] != self.window_samples:
            raise AudioInputError(
                f"{self.name} takes windows of {self.window_samples} samples "
                f"({self.window_s:g} s at {self.sample_rate_hz} Hz), got shape {array.shape}"
            )
        if len(array) == 0:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        logits = np.concatenate(
            [
                np.asarray(self.model.run(array[i : i + self.max_batch]), dtype=np.float64)
                for i in range(0, len(array), self.max_batch)
            ]
        )
        return self._activate(logits)

    def predict(self, waveform: npt.ArrayLike) -> FloatArray:
        """Probabilities for one window (shorter audio is padded with silence)."""
        samples = np.asarray(waveform, dtype=np.float32).reshape(-1)
        if len(samples) > self.window_samples:
            raise AudioInputError(
                f"predict takes at most one window ({self.window_samples} samples), got "
                f"{len(samples)}: split longer audio with classify"
            )
        padded = np.zeros(self.window_samples, dtype=np.float32)
        padded[: len(samples)] = samples
        probabilities: FloatArray = self.classify(padded[np.newaxis])[0]
        return probabilities

    def _activate(self, logits: npt.NDArray[np.float64]) -> FloatArray:
        if self.activation == "sigmoid":
            scaled = np.clip(-self.sensitivity * logits, -60.0, 60.0)
            sigmoid: FloatArray = (1.0 / (1.0 + np.exp(scaled))).astype(np.float32)
            return sigmoid
        if self.activation == "softmax":
            shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
            softmax: FloatArray = (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)
            return softmax
        return logits.astype(np.float32)

    # --- names -----------------------------------------------------------------------------

    def label_by_name(self, name: str) -> SpeciesLabel | None:
        wanted = name.strip().lower()
        for label in self.labels:
            if label.matches(wanted):
                return label
        return None

    def resolve_names(self, names: Iterable[str], what: str) -> dict[str, SpeciesLabel]:
        """Map each user-given name (common or scientific) to its label, or fail naming matches."""
        return resolve_names(self.labels, names, what, model_name=self.name)


def resolve_names(
    labels: Sequence[SpeciesLabel], names: Iterable[str], what: str, *, model_name: str
) -> dict[str, SpeciesLabel]:
    """Each name (common or scientific, any case) to its label; unknown names raise.

    :class:`UnknownSpeciesError` lists every unknown name with up to three close matches, so
    "Great tit" or "Parus maior" lead straight to the fix.
    """
    by_name: dict[str, SpeciesLabel] = {}
    for label in labels:
        for key in (label.scientific, label.common):
            if key:
                by_name.setdefault(key.lower(), label)
    found: dict[str, SpeciesLabel] = {}
    unknown: list[str] = []
    for name in names:
        match = by_name.get(name.strip().lower())
        if match is None:
            close = difflib.get_close_matches(name.strip().lower(), list(by_name), n=3, cutoff=0.6)
            pretty = [_pretty(by_name[c]) for c in close]
            unknown.append(
                f"{name!r}" + (f" (did you mean {', '.join(pretty)}?)" if pretty else "")
            )
        else:
            found[name] = match
    if unknown:
        raise UnknownSpeciesError(
            f"{what}: {model_name} knows no species {'; '.join(unknown)}. Use a common or "
            "scientific name as `senses ear species` lists them."
        )
    return found


def _pretty(label: SpeciesLabel) -> str:
    if label.scientific and label.is_species:
        return f"{label.common} ({label.scientific})"
    return label.name


def allowed_at(
    model: WaveformSpeciesModel,
    latitude: float,
    longitude: float,
    week: int = -1,
    threshold: float = DEFAULT_RANGE_THRESHOLD,
) -> list[tuple[SpeciesLabel, float]]:
    """The species the range model lets through at a place and week, most likely first."""
    if model.range_model is None:
        raise EarModelError(
            f"{model.name} has no range model (task_config.range_model): it cannot filter by place"
        )
    occurrence = model.range_model.occurrence(latitude, longitude, week)
    rows = [
        (model.labels[i], float(occurrence[i]))
        for i in model.species_indices
        if occurrence[i] >= threshold
    ]
    return sorted(rows, key=lambda row: -row[1])
