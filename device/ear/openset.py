"""Open set: the species head names only birds that sound like the species it was taught.

A softmax head with two species and a catch-all must put *some* label on every bird; a
European blackbird or an American thrush it never heard can come out as "Great Tit" or
"Red-faced Spinetail" with high confidence (the head's report shows both on the Jura forest).
A birder is better served by "Bird" (presence) than by a wrong name.

**The rule** (nearest centroid in YAMNet's embedding space): the training windows of each
named species, and of the head's catch-all ("other bird": the many species it does not
name), each have a centroid of L2-normalised 1024-d embeddings. A window keeps a species
name only if that species' centroid is the nearest of all (by cosine similarity, by at least
``margin``); otherwise the name's confidence goes to "Bird". And a detection carries a
name only when the name was heard in at least ``min_windows`` windows (two in a row: 1.46 s;
every great tit song of the training data fills four or more), else it is reported as "Bird"
(:class:`~device.ear.detections.DetectionMerger`). YAMNet was never trained on our
recordings, so the rule was chosen and checked by leave-one-group-out on the training data
alone (``training/birds/openset.py``, figures in ``models/birds/report.md``): a plain
threshold on the head's own softmax could not be, because the head has seen every training
window.

The centroids live next to the head (``openset.json``, named by the card's
``task_config.open_set``) and are rebuilt by ``python -m training.birds.openset``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from device.errors import EarModelError

FloatArray = npt.NDArray[np.float32]

#: The catch-all's key in openset.json (the head's "other bird" class).
CATCH_ALL_KEY: Final = "other bird"


def normalise(embeddings: npt.ArrayLike) -> FloatArray:
    array = np.asarray(embeddings, dtype=np.float32)
    norms = np.linalg.norm(array, axis=-1, keepdims=True)
    return np.asarray(array / np.maximum(norms, 1e-12), dtype=np.float32)


@dataclass(frozen=True)
class OpenSetRule:
    """Named species' centroids plus the catch-all's; ``margin`` in cosine similarity."""

    species: tuple[str, ...]
    centroids: FloatArray  # (len(species) + 1, d): the species', then the catch-all's
    margin: float = 0.0
    min_windows: int = 2  # windows in a row a name needs (detections.DetectionMerger)

    @classmethod
    def from_dict(cls, values: dict[str, Any], where: str) -> OpenSetRule:
        try:
            centroids = dict(values["centroids"])
            catch_all = centroids.pop(CATCH_ALL_KEY)
            species = tuple(str(name) for name in centroids)
            matrix = normalise(np.array([*centroids.values(), catch_all], dtype=np.float32))
            margin = float(values.get("margin", 0.0))
            min_windows = int(values.get("min_windows", 2))
        except (KeyError, TypeError, ValueError) as e:
            raise EarModelError(
                f"{where}: not an open-set file ({e!r}); rebuild it with "
                "`python -m training.birds.openset`"
            ) from None
        if not species or matrix.ndim != 2:
            raise EarModelError(f"{where}: needs a centroid per species and {CATCH_ALL_KEY!r}")
        return cls(species, matrix, margin, min_windows)

    @classmethod
    def load(cls, path: Path) -> OpenSetRule:
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise EarModelError(
                f"{path}: cannot read the open-set centroids ({e}); rebuild them with "
                "`python -m training.birds.openset`"
            ) from None
        return cls.from_dict(values, str(path))

    def to_dict(self) -> dict[str, Any]:
        names = [*self.species, CATCH_ALL_KEY]
        return {
            "rule": "nearest centroid (cosine, L2-normalised YAMNet embeddings) among the named "
            "species and the catch-all; a name is kept only when its own centroid is nearest "
            "by at least `margin`",
            "margin": self.margin,
            "min_windows": self.min_windows,
            "centroids": {
                name: [round(float(x), 6) for x in row]
                for name, row in zip(names, self.centroids, strict=True)
            },
        }

    def keeps(self, embeddings: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        """``(n, len(species))``: may window i be called species j?"""
        similarity = normalise(embeddings) @ self.centroids.T
        keep = np.zeros((len(similarity), len(self.species)), dtype=bool)
        for j in range(len(self.species)):
            others = np.delete(similarity, j, axis=1).max(axis=1)
            keep[:, j] = similarity[:, j] >= others + self.margin
        return keep

    def apply(
        self,
        embeddings: npt.ArrayLike,
        confidences: Sequence[dict[str, float]],
        catch_all: str,
    ) -> list[dict[str, float]]:
        """The head's confidences with names it may not give moved to ``catch_all``."""
        keep = self.keeps(embeddings)
        out = []
        for row, allowed in zip(confidences, keep, strict=True):
            fixed = dict(row)
            for j, name in enumerate(self.species):
                if name in fixed and not allowed[j]:
                    fixed[catch_all] = max(fixed.get(catch_all, 0.0), fixed[name])
                    fixed[name] = 0.0
            out.append(fixed)
        return out
