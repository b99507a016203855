"""From nose readings to a food verdict.

Readings are averaged into one-minute rows (the models are trained on one row a minute, like
the beef recordings); each completed minute, the last ``window_minutes`` rows go through
:func:`device.nose.features.latest_features` (the row training's `compute_features` gives), are
standardised with the training statistics from the model card and classified.

Models whose features look back to food-in (:attr:`FeatureSpec.since_food_in`, the shape of
the smell over up to 12 hours) are fed every minute since food-in and give a verdict from
:attr:`FeatureSpec.first_row_minutes` on. Their history must not be forgotten, since a
forgotten history looks like food just put in, so a minute the station missed is not a reason
to start over:

* **minutes with no row at all** (the station was off, a stall) are filled by interpolating
  each sensor's log resistance and the climate between the minutes either side;
* **a minute with a sensor or the climate chip missing** gives no verdict, and its history
  keeps the previous minute's value for what is missing.

:class:`~device.nose.food.FoodTracker` keeps the rows on disk so a restart resumes the same
history (:meth:`FoodClassifier.restore`).

The model gives four classes (excellent, good, acceptable, spoiled) and, when it has a second
output, an estimate of the total viable count (log10 CFU/g). A person is told three things
(fresh = excellent or good, spoiling = acceptable, spoiled); ``freshness`` is the probability
of "fresh", and the trend is the slope of freshness over the last ``trend_minutes``.

"Fresh" is said only when that probability reaches the card's ``fresh_threshold`` (0.8 for
the shipped model): someone who cannot smell will eat what the station calls fresh, so a
doubtful case is called spoiling (or spoiled, if the model finds that likelier).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from device.errors import ModelCardError
from device.events import FoodReading, FoodVerdict, NoseReading, Trend
from device.nose.calibration import NoseCalibration
from device.nose.features import Baseline, FeatureSpec, latest_features
from device.nose.minutes import SECONDS_PER_MINUTE, MinuteAggregator, MinuteRow

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
#: For cards without ``fresh_threshold`` (models that predate it): the most likely verdict.
DEFAULT_FRESH_THRESHOLD = 0.5
PROBABILITIES_OUTPUT = "probabilities"
TVC_OUTPUT = "tvc_log_cfu"
MIN_TREND_POINTS = 5


class Model(Protocol):
    """What the classifier needs from ``device.inference.TFLiteModel``."""

    @property
    def card(self) -> Any: ...

    def run_many(self, inputs: Sequence[npt.ArrayLike]) -> list[npt.NDArray[Any]]: ...


@dataclass(frozen=True)
class FoodModelConfig:
    """The food model's task settings, read from its card."""

    spec: FeatureSpec
    mean: npt.NDArray[np.float64]
    std: npt.NDArray[np.float64]
    labels: tuple[str, ...]
    fresh_threshold: float
    probabilities_output: int  # position among the model's outputs
    tvc_output: int | None

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
        threshold = float(task.get("fresh_threshold", DEFAULT_FRESH_THRESHOLD))
        if not 0.0 < threshold < 1.0:
            raise ModelCardError(
                f"model {card.name}: fresh_threshold must be between 0 and 1, got {threshold}"
            )
        names = [o.name for o in card.outputs]
        if len(names) == 1:
            probabilities, tvc = 0, None
        elif sorted(names) == sorted([PROBABILITIES_OUTPUT, TVC_OUTPUT]):
            probabilities, tvc = names.index(PROBABILITIES_OUTPUT), names.index(TVC_OUTPUT)
        else:
            raise ModelCardError(
                f"model {card.name}: outputs {names}; expected one, or "
                f"{PROBABILITIES_OUTPUT!r} and {TVC_OUTPUT!r}; retrain it with "
                "`senses-train food`"
            )
        return cls(
            spec=spec,
            mean=mean,
            std=std,
            labels=labels,
            fresh_threshold=threshold,
            probabilities_output=probabilities,
            tvc_output=tvc,
        )


class FoodClassifier:
    """Turns a stream of :class:`NoseReading` into :class:`FoodReading` verdicts."""

    def __init__(
        self,
        model: Model,
        baseline: Baseline | NoseCalibration,
        *,
        trend_minutes: int = 30,
        settings: FoodModelConfig | None = None,
    ) -> None:
        """``baseline`` is the food's (:mod:`device.nose.food`), in the order of the model's
        sensors; a :class:`NoseCalibration` gives its clean-air one (older callers)."""
        self.model = model
        self.settings = settings or FoodModelConfig.from_card(model.card)
        self.baseline: Baseline = (
            baseline.baseline(self.settings.spec.sensors)
            if isinstance(baseline, NoseCalibration)
            else baseline
        )
        self.trend_minutes = trend_minutes
        window = self.settings.spec.window_minutes
        self._rows: deque[MinuteRow] = deque(maxlen=window)
        # Minutes since food-in held so far (features since food-in); more than the window.
        self._minutes_held = 0
        self._minutes = MinuteAggregator(self.settings.spec.sensors)
        self._freshness: deque[tuple[float, float]] = deque(maxlen=trend_minutes)
        self.last_minute_index: int | None = None

    @property
    def window_minutes(self) -> int:
        return self.settings.spec.window_minutes

    @property
    def minutes_to_verdict(self) -> int:
        """Complete minutes still needed before the next verdict (0: the window is full)."""
        if self.settings.spec.since_food_in:
            return max(0, self.settings.spec.first_row_minutes - self._minutes_held)
        return max(0, self.window_minutes - len(self._rows))

    def restore(self, rows: Sequence[MinuteRow]) -> None:
        """Take back the minutes since food-in kept before a restart, without verdicts."""
        for row in rows:
            self._hold(row)
            self.last_minute_index = row.index

    def _hold(self, row: MinuteRow) -> bool:
        """Append ``row`` to the history since food-in; False when it lacks a value."""
        complete = bool(
            np.all(np.isfinite(row.rs_kohm))
            and np.isfinite(row.temperature_c)
            and np.isfinite(row.humidity_pct)
        )
        # What is missing is held from the minute before (or the baseline, at food-in).
        last = self._rows[-1] if self._rows else None
        held = (
            _filled(row, last.rs_kohm, last.temperature_c, last.humidity_pct)
            if last is not None
            else _filled(
                row, self.baseline.rs_kohm, self.baseline.temperature_c, self.baseline.humidity_pct
            )
        )
        if last is not None:
            missed = round((row.ts - last.ts) / SECONDS_PER_MINUTE) - 1
            if missed > 0:
                self._fill(last, held, missed)
        self._rows.append(held)
        self._minutes_held += 1
        return complete

    def _fill(self, before: MinuteRow, after: MinuteRow, missed: int) -> None:
        """Interpolated rows for ``missed`` minutes between two complete rows (only the last
        window of them can matter)."""
        log_before, log_after = np.log(before.rs_kohm), np.log(after.rs_kohm)
        for k in range(max(1, missed - self.window_minutes + 1), missed + 1):
            w = k / (missed + 1)
            self._rows.append(
                MinuteRow(
                    index=before.index,
                    ts=before.ts + k * SECONDS_PER_MINUTE,
                    rs_kohm=np.exp(log_before + w * (log_after - log_before)),
                    temperature_c=before.temperature_c
                    + w * (after.temperature_c - before.temperature_c),
                    humidity_pct=before.humidity_pct
                    + w * (after.humidity_pct - before.humidity_pct),
                    warming_up=False,
                )
            )
        self._minutes_held += missed

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
        if self.settings.spec.since_food_in:
            complete = self._hold(row)
            self.last_minute_index = row.index
            if not complete or self.minutes_to_verdict > 0:
                return None
        else:
            if self._rows and row.index != self._rows[-1].index + 1:
                self._rows.clear()  # a gap in time: the slopes would span it, start over
            self._rows.append(row)
            self.last_minute_index = row.index
            if len(self._rows) < self.window_minutes:
                return None
        features = latest_features(
            np.stack([r.rs_kohm for r in self._rows]),
            np.asarray([r.temperature_c for r in self._rows]),
            np.asarray([r.humidity_pct for r in self._rows]),
            self.baseline,
            self.settings.spec,
        )
        if not np.all(np.isfinite(features)):
            return None  # a sensor or the climate chip missed a whole minute
        scaled = ((features - self.settings.mean) / self.settings.std).astype(np.float32)
        outputs = self.model.run_many([scaled[np.newaxis, :]])
        probabilities = np.asarray(outputs[self.settings.probabilities_output][0], dtype=np.float64)
        tvc = (
            None
            if self.settings.tvc_output is None
            else round(float(outputs[self.settings.tvc_output][0][0]), 3)
        )
        probabilities = np.clip(probabilities, 0.0, None)
        total = float(probabilities.sum())
        if total > 0:
            probabilities /= total  # int8 outputs sum to 1 only within a quantisation step
        by_class = dict(zip(self.settings.labels, probabilities.tolist(), strict=True))
        by_verdict = dict.fromkeys(FoodVerdict, 0.0)
        for label, p in by_class.items():
            by_verdict[VERDICT_OF_CLASS[label]] += p
        freshness = by_verdict[FoodVerdict.FRESH]
        if freshness >= self.settings.fresh_threshold:
            label = FoodVerdict.FRESH
        else:
            label = max((FoodVerdict.SPOILING, FoodVerdict.SPOILED), key=by_verdict.__getitem__)
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
            tvc_log_cfu=tvc,
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


def _filled(
    row: MinuteRow, rs_kohm: npt.NDArray[np.float64], temperature_c: float, humidity_pct: float
) -> MinuteRow:
    """``row`` with each missing value (NaN) taken from the values given."""
    return MinuteRow(
        index=row.index,
        ts=row.ts,
        rs_kohm=np.where(np.isfinite(row.rs_kohm), row.rs_kohm, rs_kohm),
        temperature_c=row.temperature_c if np.isfinite(row.temperature_c) else temperature_c,
        humidity_pct=row.humidity_pct if np.isfinite(row.humidity_pct) else humidity_pct,
        warming_up=row.warming_up,
    )
