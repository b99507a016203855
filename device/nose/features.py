"""Features of the food classifier, shared by training and the device.

Training (``training/food``) imports this module and the station's classifier calls the *same*
functions on the same kind of input (one-minute means of every sensor's resistance Rs in kΩ,
plus chamber temperature and humidity), so what the model saw in training is what it sees in
the field: there is no second implementation to drift apart.

What a feature row holds (research/enose.md §2.1 and §5):

* the **response** of each MQ sensor: ``ln(Rs/CF) − ln(Rs_base/CF_base)``, its log resistance
  relative to a clean-air :class:`Baseline` taken *before* the food goes in, optionally
  compensated for temperature and humidity by the multiplicative GeorgK/Balk77 factor
  ``CF(T, RH)`` of :func:`device.nose.mq.climate_correction_factor` (enose.md §4.3);
  averaged over the last ``smooth_minutes`` minutes;
* optionally **capped** at 0 (``cap_rising``): the gases of spoiling food are reducing gases,
  which only *lower* an MQ sensor's Rs. A resistance far above its clean-air value is drying,
  drift or a fault (the beef set's TS1 has an MQ5/MQ6 that rose 12-20x while the meat
  spoiled, enose.md §2.1), not a smell; capping keeps one such sensor from dragging the
  whole verdict. Fixed from that physics, not tuned on held-out runs;
* optionally its **cross-sensor** response (``cross_sensor``): the response minus the median
  response of all sensors at that minute, i.e. the *shape* of the smell across the array.
  A climate or supply change that moves every sensor alike cancels out of it;
* its **slopes**: the change of that smoothed response over each of ``slope_minutes``, per hour;
* optionally the chamber **temperature and humidity** themselves (smoothed the same way);
* optionally **summaries across sensors** (``summaries``): the mean, median, 25 % quantile and
  minimum over the sensors of the smoothed response, their minimum over the trailing
  ``summary_min_minutes`` and their slopes over ``summary_slope_minutes`` (research/enose.md
  §2.2: robust to one odd sensor). With
  ``per_sensor=False`` the per-sensor responses are left out.
* optionally the **shape of the smell so far** (``shape_minutes``, issue 15): each summary
  divided by the lowest it has been since the food went in (its level relative to its own
  largest drop), and its change over the last 1 and 2 hours and over each of
  ``shape_minutes``, divided by that same largest drop. A run whose sensors are three times
  less sensitive (the beef set's TS5) gives the same shape, where the summaries themselves
  differ threefold; the shape says whether the array is still falling fast (spoilage under
  way) or has levelled off after a long fall (spoiled). These features look back up to
  ``max(shape_minutes)`` minutes *since the food went in*: before food-in the response counts
  as the baseline's (0), so the rows passed must start at food-in (or be the last
  :attr:`FeatureSpec.window_minutes` of them), and a row needs
  :data:`SHAPE_FIRST_ROW_MINUTES` minutes since food-in.

**No feature encodes time since the start of a recording.** People put in food of any age:
a steak bought yesterday is "good" from its first minute in the box. A model that learned
"late in the run means spoiled" (the flaw of the original farmaker47 model, enose.md §1.7)
would call it fresh. Every feature is a function of the last :attr:`FeatureSpec.window_minutes`
rows and the baseline only, so the same air gives the same features whenever it is measured
(``tests/test_features.py`` checks this).

Natural logarithms throughout. All functions are pure numpy and never modify their inputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from device.errors import CalibrationError, ModelCardError
from device.nose.mq import climate_correction_factor

FloatArray = npt.NDArray[np.float64]

#: Bump when the meaning of a feature changes: a model trained on one version must not be fed
#: another (the model card records it).
FEATURE_VERSION = 2

#: The nine sensors of the Wijaya beef e-nose, in the column order of its CSVs.
BEEF_SENSORS: tuple[str, ...] = (
    "MQ135",
    "MQ136",
    "MQ2",
    "MQ3",
    "MQ4",
    "MQ5",
    "MQ6",
    "MQ8",
    "MQ9",
)

#: Minutes of clean air the baseline is the median of. On the station these are the minutes
#: before the food goes in. The beef recordings have no food-free minutes, so training uses
#: the first minutes of each run (fresh beef already in the chamber) as a stand-in.
BASELINE_MINUTES = 10

_MINUTES_PER_HOUR = 60.0

#: Summaries of the smoothed responses *across sensors*, per minute (research/enose.md §2.2):
#: the mean, the median, the 25 % quantile and the minimum over the sensors. They ask "how far
#: has the array as a whole moved", so one dead or odd sensor in a run (TS1's MQ5/MQ6) moves
#: them little, and a run whose sensors are all less sensitive still orders its minutes alike.
SUMMARIES: tuple[str, ...] = ("mean", "median", "q25", "min")

#: The shape features divide by the largest drop so far, but never by less than this (a log
#: ratio of 0.05, a 5 % fall): a food that has barely changed has no shape yet, and dividing by
#: a near-zero drop would blow a sensor's noise up into a shape.
SHAPE_FLOOR = 0.05
#: The shape's fixed look-backs (minutes), besides ``shape_minutes``.
SHAPE_SLOPE_MINUTES: tuple[int, ...] = (60, 120)
#: A shape row needs this many minutes since food-in: 10 minutes of smoothing and 2 hours of
#: history, the same wait as the summaries' slopes (no verdict earlier than with them).
SHAPE_FIRST_ROW_MINUTES = 130


@dataclass(frozen=True)
class FeatureSpec:
    """Which features a model takes, in which order. Stored in the model card."""

    sensors: tuple[str, ...] = BEEF_SENSORS
    smooth_minutes: int = 10
    slope_minutes: tuple[int, ...] = (10, 30)
    compensate_climate: bool = True
    include_climate: bool = False
    cap_rising: bool = False
    cross_sensor: bool = False
    # Appended (issue 15): a card without these keys means the defaults (feature version 2).
    per_sensor: bool = True
    summaries: bool = False
    summary_min_minutes: int = 0
    summary_slope_minutes: tuple[int, ...] = ()
    # Appended (issue 15, later): a card without it has no shape features.
    shape_minutes: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        # Lists from callers become tuples, so specs compare equal and hash.
        object.__setattr__(self, "sensors", tuple(self.sensors))
        object.__setattr__(self, "slope_minutes", tuple(self.slope_minutes))
        object.__setattr__(self, "summary_slope_minutes", tuple(self.summary_slope_minutes))
        object.__setattr__(self, "shape_minutes", tuple(self.shape_minutes))
        if not (self.per_sensor or self.summaries or self.shape_minutes):
            raise ValueError(
                "a spec needs per-sensor features, cross-sensor summaries or their shape"
            )
        if any(k <= max(SHAPE_SLOPE_MINUTES) for k in self.shape_minutes) or len(
            set(self.shape_minutes)
        ) != len(self.shape_minutes):
            raise ValueError(
                f"shape_minutes must be distinct and longer than {max(SHAPE_SLOPE_MINUTES)} "
                f"min (the shape's own look-backs), got {self.shape_minutes}"
            )
        if (self.summary_min_minutes or self.summary_slope_minutes) and not self.summaries:
            raise ValueError("summary_min_minutes and summary_slope_minutes need summaries=True")
        if self.cross_sensor and not self.per_sensor:
            raise ValueError("cross_sensor is a per-sensor feature; it needs per_sensor=True")
        if self.summary_min_minutes < 0 or any(k < 1 for k in self.summary_slope_minutes):
            raise ValueError(
                f"summary_min_minutes must be ≥ 0 and summary_slope_minutes ≥ 1, got "
                f"{self.summary_min_minutes} and {self.summary_slope_minutes}"
            )
        if not self.sensors or len(set(self.sensors)) != len(self.sensors):
            raise ValueError(f"sensors must be distinct and not empty, got {self.sensors}")
        if self.smooth_minutes < 1:
            raise ValueError(f"smooth_minutes must be ≥ 1, got {self.smooth_minutes}")
        if any(k < 1 for k in self.slope_minutes) or len(set(self.slope_minutes)) != len(
            self.slope_minutes
        ):
            raise ValueError(f"slope_minutes must be distinct and ≥ 1, got {self.slope_minutes}")

    @property
    def window_minutes(self) -> int:
        """Rows (one-minute means) of history one feature row looks at."""
        shape = (*SHAPE_SLOPE_MINUTES, *self.shape_minutes) if self.shape_minutes else ()
        return self.smooth_minutes + max((self._look_back_minutes, *shape))

    @property
    def _look_back_minutes(self) -> int:
        """The furthest the slopes and the trailing minimum look back (not the shape)."""
        return max(
            (*self.slope_minutes, *self.summary_slope_minutes, self.summary_min_minutes - 1, 0)
        )

    @property
    def since_food_in(self) -> bool:
        """The features look back to food-in (shape features): rows before it count as the
        baseline, and a row comes :attr:`first_row_minutes` after food-in, before the window
        is full."""
        return bool(self.shape_minutes)

    @property
    def first_row_minutes(self) -> int:
        """Minutes since food-in (counting the baseline's) before the first feature row."""
        if not self.since_food_in:
            return self.window_minutes
        return max(SHAPE_FIRST_ROW_MINUTES, self.smooth_minutes + self._look_back_minutes)

    @property
    def shape_names(self) -> list[str]:
        """Names of the shape features (empty without ``shape_minutes``)."""
        if not self.shape_minutes:
            return []
        names = [f"shape_level_{n}" for n in self.summary_names]
        for k in (*SHAPE_SLOPE_MINUTES, *self.shape_minutes):
            names += [f"shape_change{k}min_{n}" for n in self.summary_names]
        return names

    @property
    def summary_names(self) -> list[str]:
        """Names of the summaries across sensors (:data:`SUMMARIES`)."""
        return [f"summary_{name}" for name in SUMMARIES]

    def names(self) -> list[str]:
        """Feature names, in column order."""
        names = [f"response_{s}" for s in self.sensors] if self.per_sensor else []
        if self.cross_sensor:
            names += [f"cross_sensor_{s}" for s in self.sensors]
        for k in self.slope_minutes:
            names += [f"slope{k}min_{s}_per_h" for s in self.sensors]
        if self.include_climate:
            names += ["temperature_c", "humidity_pct"]
        if self.summaries:
            names += self.summary_names
            if self.summary_min_minutes:
                names += [f"min{self.summary_min_minutes}min_{n}" for n in self.summary_names]
            for k in self.summary_slope_minutes:
                names += [f"slope{k}min_{n}_per_h" for n in self.summary_names]
        return names + self.shape_names

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (for the model card)."""
        extra: dict[str, Any] = {}
        if self.summaries or not self.per_sensor or self.shape_minutes:
            # Written only when used, so cards of earlier models read back unchanged.
            extra = {
                "per_sensor": self.per_sensor,
                "summaries": self.summaries,
                "summary_min_minutes": self.summary_min_minutes,
                "summary_slope_minutes": list(self.summary_slope_minutes),
            }
        if self.shape_minutes:
            extra["shape_minutes"] = list(self.shape_minutes)
        return extra | {
            "version": FEATURE_VERSION,
            "sensors": list(self.sensors),
            "smooth_minutes": self.smooth_minutes,
            "slope_minutes": list(self.slope_minutes),
            "compensate_climate": self.compensate_climate,
            "include_climate": self.include_climate,
            "cap_rising": self.cap_rising,
            "cross_sensor": self.cross_sensor,
            "window_minutes": self.window_minutes,
            "names": self.names(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSpec:
        """Inverse of :meth:`to_dict`; ``version``, ``window_minutes`` and ``names`` are
        checked, not read.

        Raises :class:`ModelCardError` when a key is missing or unknown, or when the version or
        a derived value disagrees with this code (a card written for other features).
        """
        keys = {"version", "sensors", "smooth_minutes", "slope_minutes"}
        keys |= {"compensate_climate", "include_climate", "cap_rising", "cross_sensor"}
        optional = {"per_sensor", "summaries", "summary_min_minutes", "summary_slope_minutes"}
        optional |= {"shape_minutes"}
        derived = {"window_minutes", "names"}
        missing = sorted(keys - set(data))
        unknown = sorted(set(data) - keys - optional - derived)
        if missing or unknown:
            raise ModelCardError(
                f"feature_spec: missing keys {missing}, unknown keys {unknown}; "
                "the card was written by another version of the training code"
            )
        try:
            spec = cls(
                sensors=tuple(str(s) for s in data["sensors"]),
                smooth_minutes=int(data["smooth_minutes"]),
                slope_minutes=tuple(int(k) for k in data["slope_minutes"]),
                compensate_climate=bool(data["compensate_climate"]),
                include_climate=bool(data["include_climate"]),
                cap_rising=bool(data["cap_rising"]),
                cross_sensor=bool(data["cross_sensor"]),
                per_sensor=bool(data.get("per_sensor", True)),
                summaries=bool(data.get("summaries", False)),
                summary_min_minutes=int(data.get("summary_min_minutes", 0)),
                summary_slope_minutes=tuple(int(k) for k in data.get("summary_slope_minutes", ())),
                shape_minutes=tuple(int(k) for k in data.get("shape_minutes", ())),
            )
        except (TypeError, ValueError) as e:
            raise ModelCardError(f"feature_spec is invalid: {e}") from e
        for key in (derived | {"version"}) & set(data):
            if spec.to_dict().get(key) != data[key]:
                raise ModelCardError(
                    f"feature_spec.{key} is {data[key]!r} but this code derives "
                    f"{spec.to_dict()[key]!r}; retrain the model with this version"
                )
        return spec


@dataclass(frozen=True, eq=False)
class Baseline:
    """Clean-air reference: each sensor's Rs (kΩ) and the climate it was measured in."""

    rs_kohm: FloatArray
    temperature_c: float
    humidity_pct: float

    def __post_init__(self) -> None:
        rs = np.array(self.rs_kohm, dtype=np.float64)  # a private, read-only copy
        if rs.ndim != 1 or rs.size == 0:
            raise CalibrationError(f"baseline needs one Rs per sensor, got shape {rs.shape}")
        if not np.all(np.isfinite(rs)) or np.any(rs <= 0):
            raise CalibrationError(
                f"baseline Rs must be finite and > 0 kΩ, got {rs.tolist()}; "
                "check the sensors are connected and calibrate again in clean air"
            )
        if not (np.isfinite(self.temperature_c) and np.isfinite(self.humidity_pct)):
            raise CalibrationError(
                "baseline temperature and humidity must be known; check the climate sensor"
            )
        rs.flags.writeable = False
        object.__setattr__(self, "rs_kohm", rs)

    @classmethod
    def from_clean_air(
        cls,
        rs_kohm: npt.ArrayLike,
        temperature_c: npt.ArrayLike,
        humidity_pct: npt.ArrayLike,
    ) -> Baseline:
        """Median of clean-air minutes (``rs_kohm`` [T, S], climate [T]); missed minutes
        (NaN) are ignored.

        Take it with the box empty, after warm-up, just before the food goes in. Never
        re-take it with food present: the baseline would absorb the food's smell
        (enose.md §3.4). Training on the beef runs uses their first :data:`BASELINE_MINUTES`.
        """
        rs = np.asarray(rs_kohm, dtype=np.float64)
        t = np.asarray(temperature_c, dtype=np.float64)
        rh = np.asarray(humidity_pct, dtype=np.float64)
        if rs.ndim != 2 or t.shape != (rs.shape[0],) or rh.shape != (rs.shape[0],):
            raise ValueError(
                f"expected rs_kohm [T, S] and climate [T], got {rs.shape}, {t.shape}, {rh.shape}"
            )
        if rs.shape[0] == 0 or np.all(np.isnan(rs), axis=0).any():
            raise CalibrationError(
                "no valid clean-air minute for at least one sensor; calibrate again"
            )
        if np.all(np.isnan(t)) or np.all(np.isnan(rh)):
            raise CalibrationError(
                "no valid temperature/humidity during calibration; check the climate sensor"
            )
        return cls(
            rs_kohm=np.nanmedian(rs, axis=0),
            temperature_c=float(np.nanmedian(t)),
            humidity_pct=float(np.nanmedian(rh)),
        )


def _check_inputs(
    rs_kohm: npt.ArrayLike,
    temperature_c: npt.ArrayLike,
    humidity_pct: npt.ArrayLike,
    baseline: Baseline,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    rs = np.asarray(rs_kohm, dtype=np.float64)
    t = np.asarray(temperature_c, dtype=np.float64)
    rh = np.asarray(humidity_pct, dtype=np.float64)
    if rs.ndim != 2 or rs.shape[1] != baseline.rs_kohm.size:
        raise ValueError(
            f"rs_kohm must be [T, {baseline.rs_kohm.size}] (one column per baseline sensor), "
            f"got {rs.shape}"
        )
    if t.shape != (rs.shape[0],) or rh.shape != (rs.shape[0],):
        raise ValueError(
            f"temperature and humidity must be [{rs.shape[0]}], got {t.shape} and {rh.shape}"
        )
    return rs, t, rh


def log_response(
    rs_kohm: npt.ArrayLike,
    temperature_c: npt.ArrayLike,
    humidity_pct: npt.ArrayLike,
    baseline: Baseline,
    *,
    compensate: bool,
) -> FloatArray:
    """``ln(Rs/CF) − ln(Rs_base/CF_base)`` per row and sensor, [T, S].

    Negative means the resistance fell: more reducing gas than in the baseline air. With
    ``compensate=False`` both CFs are 1. NaN inputs give NaN.
    """
    rs, t, rh = _check_inputs(rs_kohm, temperature_c, humidity_pct, baseline)
    with np.errstate(invalid="ignore", divide="ignore"):
        response = np.log(rs) - np.log(baseline.rs_kohm)
        if compensate:
            cf = climate_correction_factor(t, rh)
            cf_base = climate_correction_factor(baseline.temperature_c, baseline.humidity_pct)
            response -= (np.log(cf) - np.log(cf_base))[:, np.newaxis]
    return np.asarray(response, dtype=np.float64)


def _moving_mean(values: FloatArray, minutes: int) -> FloatArray:
    """Trailing mean over ``minutes`` rows along axis 0: row j covers rows j..j+minutes−1.

    A sliding window (not a running sum) so that one NaN spoils only the windows that hold it.
    """
    windows = np.lib.stride_tricks.sliding_window_view(values, minutes, axis=0)
    return np.asarray(windows.mean(axis=-1), dtype=np.float64)


def compute_features(
    rs_kohm: npt.ArrayLike,
    temperature_c: npt.ArrayLike,
    humidity_pct: npt.ArrayLike,
    baseline: Baseline,
    spec: FeatureSpec,
) -> FloatArray:
    """Feature rows [T − window_minutes + 1, F] in the order of ``spec.names()``.

    ``rs_kohm`` is [T, len(spec.sensors)] one-minute means, oldest first, in the order of
    ``spec.sensors``; temperature (°C) and humidity (%RH) are [T]. Row ``i`` describes the
    minute ``i + window_minutes − 1`` and uses rows ``i … i + window_minutes − 1`` only (it
    never looks ahead). The device passes exactly ``window_minutes`` rows and gets one row;
    training passes a whole run.

    A row whose window holds any missed sample (NaN anywhere in that minute) is all NaN, so
    the caller can skip it rather than classify a partial window.

    A spec that looks back to food-in (:attr:`FeatureSpec.since_food_in`) instead gives one
    row per input row: the rows passed start at food-in (or are the last ``window_minutes``
    of the rows since), and rows before :attr:`FeatureSpec.first_row_minutes` are NaN.
    """
    rs, t, rh = _check_inputs(rs_kohm, temperature_c, humidity_pct, baseline)
    if rs.shape[1] != len(spec.sensors):
        raise ValueError(f"rs_kohm has {rs.shape[1]} columns, spec has {len(spec.sensors)}")
    if spec.since_food_in:
        return _features_since_food_in(rs, t, rh, baseline, spec)
    return _windowed_features(rs, t, rh, baseline, spec)


def _windowed_features(
    rs: FloatArray, t: FloatArray, rh: FloatArray, baseline: Baseline, spec: FeatureSpec
) -> FloatArray:
    """Rows [T − window_minutes + 1, F]: one per full window of the rows given."""
    window = spec.window_minutes
    if rs.shape[0] < window:
        raise ValueError(
            f"need at least {window} one-minute rows for one feature row, got {rs.shape[0]}"
        )
    rows = rs.shape[0] - window + 1
    response = log_response(rs, t, rh, baseline, compensate=spec.compensate_climate)
    smooth = _moving_mean(response, spec.smooth_minutes)  # row j ends at minute j+smooth−1
    if spec.cap_rising:
        smooth = np.minimum(smooth, 0.0)  # NaN stays NaN
    offset = window - spec.smooth_minutes  # smooth row of the first feature row's last minute
    columns = [smooth[offset:]] if spec.per_sensor else []
    if spec.cross_sensor:
        # A NaN spreads over its row here; such rows are all-NaN at the end anyway.
        columns.append(smooth[offset:] - np.median(smooth[offset:], axis=1, keepdims=True))
    for k in spec.slope_minutes:
        change = smooth[offset:] - smooth[offset - k : offset - k + rows]
        columns.append(change * (_MINUTES_PER_HOUR / k))
    if spec.include_climate:
        climate = _moving_mean(np.stack([t, rh], axis=1), spec.smooth_minutes)
        columns.append(climate[offset:])
    if spec.summaries:
        columns += _summary_columns(smooth, spec, offset, rows)
    if spec.shape_minutes:
        columns += _shape_columns(smooth, spec, offset, rows)
    features = np.concatenate(columns, axis=1)

    missed = np.isnan(rs).any(axis=1) | np.isnan(t) | np.isnan(rh)
    features[np.lib.stride_tricks.sliding_window_view(missed, window).any(axis=1)] = np.nan
    return features


def latest_features(
    rs_kohm: npt.ArrayLike,
    temperature_c: npt.ArrayLike,
    humidity_pct: npt.ArrayLike,
    baseline: Baseline,
    spec: FeatureSpec,
) -> FloatArray:
    """The feature row of the last minute given: ``compute_features(...)[-1]``, computed for
    that row alone (the station's call, once a minute).

    For features since food-in the rows are those since food-in (or the last
    ``window_minutes`` of them); before :attr:`FeatureSpec.first_row_minutes` the row is NaN.
    """
    rs, t, rh = _check_inputs(rs_kohm, temperature_c, humidity_pct, baseline)
    if not spec.since_food_in:
        return np.asarray(compute_features(rs, t, rh, baseline, spec)[-1], dtype=np.float64)
    if rs.shape[0] < spec.first_row_minutes:
        return np.full(len(spec.names()), np.nan)
    window = spec.window_minutes
    held = rs[-window:], t[-window:], rh[-window:]
    rows = _windowed_features(*_after_baseline(*held, baseline, window), baseline, spec)
    return np.asarray(rows[-1], dtype=np.float64)


def _after_baseline(
    rs: FloatArray, t: FloatArray, rh: FloatArray, baseline: Baseline, rows: int
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """The rows since food-in preceded by minutes of the baseline itself (its Rs and climate,
    a response of 0): ``rows`` rows in all, or the rows given if they are more."""
    pad = max(0, rows - rs.shape[0])
    return (
        np.concatenate([np.broadcast_to(baseline.rs_kohm, (pad, rs.shape[1])), rs]),
        np.concatenate([np.full(pad, baseline.temperature_c), t]),
        np.concatenate([np.full(pad, baseline.humidity_pct), rh]),
    )


def _features_since_food_in(
    rs: FloatArray, t: FloatArray, rh: FloatArray, baseline: Baseline, spec: FeatureSpec
) -> FloatArray:
    """One row per input row, for rows that start at food-in (:attr:`FeatureSpec.since_food_in`).

    The minutes before food-in are taken as the baseline itself (its Rs and climate, a
    response of 0), so a row early after food-in sees the same window as one late; rows
    before :attr:`FeatureSpec.first_row_minutes` are NaN (too little history for a verdict).
    """
    if rs.shape[0] == 0:
        raise ValueError("need at least one one-minute row since food-in")
    padded = _after_baseline(rs, t, rh, baseline, rs.shape[0] + spec.window_minutes - 1)
    features = _windowed_features(*padded, baseline, spec)
    features[: spec.first_row_minutes - 1] = np.nan
    return features


def _shape_columns(
    smooth: FloatArray, spec: FeatureSpec, offset: int, rows: int
) -> list[FloatArray]:
    """The summaries relative to their largest drop in the window (see the module docstring).

    The largest drop is the lowest summary over every smoothed row of the window (never above
    0, the baseline), floored at :data:`SHAPE_FLOOR`.
    """
    summary = _summaries_across_sensors(smooth)
    span = spec.window_minutes - spec.smooth_minutes + 1  # smoothed rows in one window
    lowest = np.lib.stride_tricks.sliding_window_view(summary, span, axis=0).min(axis=-1)
    drop = np.maximum(-np.minimum(lowest[offset - span + 1 :], 0.0), SHAPE_FLOOR)
    now = summary[offset:]
    columns = [now / drop]
    for k in (*SHAPE_SLOPE_MINUTES, *spec.shape_minutes):
        columns.append((now - summary[offset - k : offset - k + rows]) / drop)
    return columns


def _summaries_across_sensors(smooth: FloatArray) -> FloatArray:
    """[T, len(SUMMARIES)] from the smoothed responses [T, S]; NaN rows stay NaN."""
    return np.stack(
        [
            smooth.mean(axis=1),
            np.median(smooth, axis=1),
            np.quantile(smooth, 0.25, axis=1),
            smooth.min(axis=1),
        ],
        axis=1,
    )


def _summary_columns(
    smooth: FloatArray, spec: FeatureSpec, offset: int, rows: int
) -> list[FloatArray]:
    """The summaries, their minimum over the trailing ``summary_min_minutes`` and their slopes.

    The trailing minimum is the lowest the array has been lately: spoilage only lowers it, so
    a passing draught or a warm minute that lifts the responses does not undo a verdict. A
    *window* (not the minimum since the food went in) keeps every feature a function of the
    last :attr:`FeatureSpec.window_minutes` rows, so a station switched on late agrees.
    """
    summary = _summaries_across_sensors(smooth)
    columns = [summary[offset:]]
    if spec.summary_min_minutes:
        k = spec.summary_min_minutes
        lowest = np.lib.stride_tricks.sliding_window_view(summary, k, axis=0).min(axis=-1)
        columns.append(lowest[offset - k + 1 :])
    for k in spec.summary_slope_minutes:
        change = summary[offset:] - summary[offset - k : offset - k + rows]
        columns.append(change * (_MINUTES_PER_HOUR / k))
    return columns
