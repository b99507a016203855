"""A trained concept: a unit direction in the backbone's embedding space, and its calibration.

Scoring is one matrix product: the raw score of an image is the cosine between its
L2-normalised embedding and the concept's unit vector (as Mood Board Search scores), so any
number of concepts share one backbone pass (stack their vectors into a ``(k, dim)`` matrix).
Raw cosines are small, shifted and differ from concept to concept (research/cav.md §1.6, §4.3);
:meth:`Concept.calibrated` maps them through a logistic curve fitted at training time on
held-out board images against held-out random images, so 0.5 means "as likely the concept as
a random picture" for every concept, and 0.9 means the same confidence for a cat as for a
colour.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from device.errors import ConceptFileError
from device.eye.backbone import Backbone
from device.eye.cavfile import (
    FORMAT_TAG,
    FORMAT_VERSION,
    REQUIRED_KEYS,
    read_cav,
    retrain_hint,
    write_cav,
)

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Calibration:
    """``calibrated = 1 / (1 + exp(-(slope * raw + intercept)))``; ``slope > 0``."""

    slope: float
    intercept: float

    @property
    def midpoint(self) -> float:
        """The raw cosine that calibrates to 0.5."""
        return -self.intercept / self.slope

    def apply(self, raw: npt.ArrayLike) -> FloatArray:
        z = np.clip(self.slope * np.asarray(raw, dtype=np.float32) + self.intercept, -60, 60)
        result: FloatArray = (1.0 / (1.0 + np.exp(-z))).astype(np.float32)
        return result

    def to_record(self) -> dict[str, Any]:
        return {"method": "logistic", "slope": self.slope, "intercept": self.intercept}

    @classmethod
    def from_record(cls, record: Any, path: Path) -> Calibration:
        try:
            slope = float(record["slope"])
            intercept = float(record["intercept"])
        except (TypeError, KeyError, ValueError) as e:
            raise ConceptFileError(
                f"{path}: 'calibration' must hold numbers 'slope' and 'intercept'; {retrain_hint()}"
            ) from e
        if not (math.isfinite(slope) and math.isfinite(intercept) and slope > 0):
            raise ConceptFileError(
                f"{path}: calibration slope {slope} / intercept {intercept} are not usable "
                f"(slope must be a positive number); {retrain_hint()}"
            )
        return cls(slope, intercept)


@dataclass(frozen=True)
class BoardImage:
    """One image a concept was trained on: its pixels' sha256, its weight and its role."""

    sha256: str
    weight: float
    role: str  # "positive" or "negative"
    file: str = ""


@dataclass(frozen=True)
class Concept:
    """A concept loaded from (or about to be saved as) a ``.cav`` file.

    ``quality`` holds the training report's numbers (``cv_accuracy``, ``cv_auc``,
    ``p_value``, ``stability``, ``n_positive``, ``n_negative``, ``method``, ...); ``forced``
    is true when the concept failed the quality check and was saved anyway (``--force``).
    """

    name: str
    vector: FloatArray
    calibration: Calibration
    id: str
    created: str
    backbone_name: str
    backbone_sha256: str
    model_layer: str
    preprocessing: str
    quality: dict[str, Any] = field(default_factory=dict)
    board: tuple[BoardImage, ...] = ()
    forced: bool = False
    warnings: tuple[str, ...] = ()
    score_stats: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return int(self.vector.shape[0])

    def raw_scores(self, embeddings: npt.ArrayLike) -> FloatArray:
        """``(n, dim)`` L2-normalised embeddings to ``(n,)`` cosines with the concept."""
        rows = np.asarray(embeddings, dtype=np.float32)
        if rows.ndim != 2 or rows.shape[1] != self.dim:
            raise ValueError(
                f"concept {self.name!r} scores (n, {self.dim}) embeddings, got {rows.shape}"
            )
        scores: FloatArray = rows @ self.vector
        return scores

    def calibrated(self, raw: npt.ArrayLike) -> FloatArray:
        """Raw cosines to scores in [0, 1] that mean the same across concepts (0.5: undecided)."""
        return self.calibration.apply(raw)

    def to_record(self) -> dict[str, Any]:
        """The ``.cav`` map (unknown keys read from a file are passed through)."""
        return {
            **self.extra,
            "format": FORMAT_TAG,
            "version": FORMAT_VERSION,
            "vector": [float(v) for v in self.vector],
            "id": self.id,
            "model_layer": self.model_layer,
            "name": self.name,
            "created": self.created,
            "backbone": {
                "name": self.backbone_name,
                "sha256": self.backbone_sha256,
                "layer": self.model_layer,
                "dim": self.dim,
            },
            "preprocessing": self.preprocessing,
            "calibration": self.calibration.to_record(),
            "quality": dict(self.quality),
            "stats": dict(self.score_stats),
            "board": [
                {"sha256": b.sha256, "weight": b.weight, "role": b.role, "file": b.file}
                for b in self.board
            ],
            "forced": self.forced,
            "warnings": list(self.warnings),
        }

    def save(self, path: Path) -> None:
        write_cav(Path(path), self.to_record())


_KNOWN_KEYS = frozenset({*REQUIRED_KEYS, "stats", "forced", "warnings"})


def load_concept(path: Path, backbone: Backbone) -> Concept:
    """Read a ``.cav`` file made for ``backbone``; refuse anything else with a clear message.

    Raises :class:`~device.errors.ConceptFileError` when the file is missing, corrupt,
    truncated, of a newer version, a plain Mood Board Search file, or made for another
    backbone (model file or preprocessing).
    """
    path = Path(path)
    record = read_cav(path)
    name = str(record["name"])
    info = record["backbone"]
    if not isinstance(info, dict):
        raise ConceptFileError(f"{path}: 'backbone' is damaged; {retrain_hint(name)}")
    if info.get("sha256") != backbone.sha256:
        raise ConceptFileError(
            f"concept {name!r} ({path}) was trained on backbone {info.get('name')!r} "
            f"(sha256 {str(info.get('sha256'))[:12]}…), but this station runs {backbone.name!r} "
            f"(sha256 {backbone.sha256[:12]}…): its direction means nothing in this model's "
            f"space. {retrain_hint(name)} on this station"
        )
    if record["preprocessing"] != backbone.preprocessing:
        raise ConceptFileError(
            f"concept {name!r} ({path}) was trained on images prepared as "
            f"{record['preprocessing']!r}, this station prepares them as "
            f"{backbone.preprocessing!r}; {retrain_hint(name)}"
        )
    vector = record["vector"]
    if vector.shape[0] != backbone.dim:
        raise ConceptFileError(
            f"concept {name!r} ({path}) has {vector.shape[0]} values, backbone "
            f"{backbone.name!r} embeds in {backbone.dim}: the file is damaged; {retrain_hint(name)}"
        )
    board_records = record["board"]
    try:
        board = tuple(
            BoardImage(
                sha256=str(b["sha256"]),
                weight=float(b["weight"]),
                role=str(b["role"]),
                file=str(b.get("file", "")),
            )
            for b in board_records
        )
        quality = dict(record["quality"])
        score_stats = {str(k): float(v) for k, v in dict(record.get("stats", {})).items()}
    except (TypeError, KeyError, ValueError) as e:
        raise ConceptFileError(
            f"{path}: 'board', 'quality' or 'stats' is damaged ({e}); {retrain_hint(name)}"
        ) from e
    return Concept(
        name=name,
        vector=vector,
        calibration=Calibration.from_record(record["calibration"], path),
        id=str(record["id"]),
        created=str(record["created"]),
        backbone_name=str(info.get("name")),
        backbone_sha256=str(info["sha256"]),
        model_layer=str(record["model_layer"]),
        preprocessing=str(record["preprocessing"]),
        quality=quality,
        board=board,
        forced=bool(record.get("forced", False)),
        warnings=tuple(str(w) for w in record.get("warnings", ())),
        score_stats=score_stats,
        extra={k: v for k, v in record.items() if k not in _KNOWN_KEYS},
    )
