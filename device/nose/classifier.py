"""From nose readings to a food verdict.

Readings are averaged into one-minute rows (the models are trained on one row a minute, like
the beef recordings); each completed minute, the last ``window_minutes`` rows go through
:func:`device.nose.features.compute_features` (the same function training uses), are
standardised with the training statistics from the model card and classified.

The model gives four classes (excellent, good, acceptable, spoiled). A person is told three
things (fresh = excellent or good, spoiling = acceptable, spoiled); ``freshness`` is the
probability of "fresh", and the trend is the slope of freshness over the last
``trend_minutes``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from device.errors import ModelCardError
from device.events import FoodReading, FoodVerdict, NoseReading, Trend
from device.nose.calibration import NoseCalibration
from device.nose.features import Baseline, FeatureSpec, compute_features
from device.nose.minutes import MinuteAggregator, MinuteRow

CLASS_LABELS = ("excellent", "good", "acceptable", "spoiled")
VERDICT_OF_CLASS = {
    "excellent": FoodVerdict.FRESH,
    "good": FoodVerdict.FRESH,
    "acceptable": FoodVerdict.SPOILING,
    "spoiled": FoodVerdict.SPOILED,
}
#: Freshness change per hour beyond which the trend is called improving or worsening. Spoiling
#: beef at room temperature loses "fresh" over a few hours (≈ 0.1–0.3 per hour in the beef
#: runs); below 0.05 per hour is within the model's minute-to-minute wobble.
TREND_THRESHOLD_PER_HOUR = 0.05
MIN_TREND_POINTS = 5


class Model(Protocol):
    """What the classifier needs from ``device.inference.TFLiteModel``."""

    @property
    def card(self) -> Any: ...

    def run(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]: ...


@dataclass(frozen=True)
class FoodModelConfig:
    """The food model's task settings, read from its card."""

    spec: FeatureSpec
    mean: npt.NDArray[np.float64]
    std: npt.NDArray[np.float64]
    labels: tuple[str, ...]

    @classmethod
    def from_card(cls, card: Any) -> FoodModelConfig:
        task = card.task_config
        try:
            spec = FeatureSpec.from_dict(task["feature_spec"])
            mean = np.asarray(task["feature_mean"], dtype=np.float64)
            std = np.asarray(task["feature_std"], dtype=np.float64)
        except KeyError as e:
            raise ModelCardError(
                f"model {card.name}: task_config lacks {e.args[0]!r}; retrain it with "
                "`senses-train food`"
            ) from e
        features = len(spec.names())
        if mean.shape != (features,) or std.shape != (features,) or np.any(std <= 0):
            raise ModelCardError(
                f"model {card.name}: feature_mean/feature_std must hold {features} values "
                "(std > 0); retrain it with `senses-train food`"
            )
        labels = tuple(card.labels)
        unknown = [label for label in labels if label not in VERDICT_OF_CLASS]
        if unknown:
            raise ModelCardError(
                f"model {card.name}: labels {unknown} are not food classes {CLASS_LABELS}"
            )
        return cls(spec=spec, mean=mean, std=std, labels=labels)


class FoodClassifier:
    """Turns a stream of :class:`NoseReading` into :class:`FoodReading` verdicts."""

    def __init__(
        self, model: Model, calibration: NoseCalibration, *, trend_minutes: int = 30
    ) -> None:
        self.model = model
        self.settings = FoodModelConfig.from_card(model.card)
        self.baseline: Baseline = calibration.baseline(self.settings.spec.sensors)
        self.trend_minutes = trend_minutes
        window = self.settings.spec.window_minutes
        self._rows: deque[MinuteRow] = deque(maxlen=window)
        self._minutes = MinuteAggregator(self.settings.spec.sensors)
        self._freshness: deque[tuple[float, float]] = deque(maxlen=trend_minutes)
        self.last_minute_index: int | None = None

    @property
    def window_minutes(self) -> int:
        return self.settings.spec.window_minutes

    def add(self, reading: NoseReading) -> FoodReading | None:
        """Add a reading; returns a verdict when it closes a minute and the window is full."""
        row = self._minutes.add(reading)
        return self.add_minute(row) if row is not None else None

    def flush(self) -> FoodReading | None:
        """Close the minute in progress (at the end of a replay)."""
        row = self._minutes.flush()
        return self.add_minute(row) if row is not None else None

    def add_minute(self, row: MinuteRow) -> FoodReading | None:
        """Add one completed minute; returns a verdict once the window is full."""
        if self._rows and row.index != self._rows[-1].index + 1:
            self._rows.clear()  # a gap in time: the slopes would span it, start over
        self._rows.append(row)
        self.last_minute_index = row.index
        if len(self._rows) < self.window_minutes:
            return None
        features = compute_features(
            np.stack([r.rs_kohm for r in self._rows]),
            np.asarray([r.temperature_c for r in self._rows]),
            np.asarray([r.humidity_pct for r in self._rows]),
            self.baseline,
            self.settings.spec,
        )[-1]
        if not np.all(np.isfinite(features)):
            return None  # a sensor or the climate chip missed a whole minute
        scaled = ((features - self.settings.mean) / self.settings.std).astype(np.float32)
        probabilities = self.model.run(scaled[np.newaxis, :])[0].astype(np.float64)
        probabilities = np.clip(probabilities, 0.0, None)
        total = float(probabilities.sum())
        if total > 0:
            probabilities /= total  # int8 outputs sum to 1 only within a quantisation step
        by_class = dict(zip(self.settings.labels, probabilities.tolist(), strict=True))
        by_verdict = dict.fromkeys(FoodVerdict, 0.0)
        for label, p in by_class.items():
            by_verdict[VERDICT_OF_CLASS[label]] += p
        label = max(by_verdict, key=lambda v: by_verdict[v])
        freshness = by_verdict[FoodVerdict.FRESH]
        self._freshness.append((row.ts, freshness))
        trend, per_hour = self._trend()
        return FoodReading(
            ts=row.ts,
            label=label,
            confidence=round(by_verdict[label], 4),
            probabilities={k: round(v, 4) for k, v in by_class.items()},
            freshness=round(freshness, 4),
            trend=trend,
            freshness_per_hour=None if per_hour is None else round(per_hour, 4),
            warming_up=any(r.warming_up for r in self._rows),
        )

    def _trend(self) -> tuple[Trend, float | None]:
        if len(self._freshness) < MIN_TREND_POINTS:
            return Trend.UNKNOWN, None
        ts = np.asarray([p[0] for p in self._freshness])
        values = np.asarray([p[1] for p in self._freshness])
        hours = (ts - ts[0]) / 3600.0
        if hours[-1] <= 0:
            return Trend.UNKNOWN, None
        slope = float(np.polyfit(hours, values, 1)[0])
        if slope > TREND_THRESHOLD_PER_HOUR:
            return Trend.IMPROVING, slope
        if slope < -TREND_THRESHOLD_PER_HOUR:
            return Trend.WORSENING, slope
        return Trend.STEADY, slope
