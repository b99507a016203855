"""The food classifier's features: what training computes is what the station computes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from device.errors import CalibrationError, ModelCardError
from device.nose.features import (
    FEATURE_VERSION,
    Baseline,
    FeatureSpec,
    compute_features,
    latest_features,
    log_response,
)
from device.nose.mq import climate_correction_factor

SPEC = FeatureSpec()  # nine sensors, 10 min smoothing, 10 and 30 min slopes
N_SENSORS = len(SPEC.sensors)
#: The shipped model's kind of features: capped responses and their cross-sensor shape.
ROBUST = FeatureSpec(slope_minutes=(), cap_rising=True, cross_sensor=True)


def _run(minutes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A food run: Rs falls as the food spoils, with noise, in a drifting warm climate."""
    rng = np.random.default_rng(seed)
    t = np.arange(minutes)
    rs = 20.0 * np.exp(-t[:, None] / 900.0 * rng.uniform(0.5, 2.0, N_SENSORS))
    rs *= np.exp(rng.normal(0, 0.01, (minutes, N_SENSORS)))
    temperature = 30 + 3 * np.sin(t / 200.0)
    humidity = 60 + 20 * np.sin(t / 300.0)
    return rs, temperature, humidity


def _baseline(rs: np.ndarray, temperature: np.ndarray, humidity: np.ndarray) -> Baseline:
    return Baseline.from_clean_air(rs[:10], temperature[:10], humidity[:10])


def test_shapes_for_a_whole_run_and_for_one_device_window() -> None:
    rs, temperature, humidity = _run(300)
    baseline = _baseline(rs, temperature, humidity)
    assert SPEC.window_minutes == 40

    features = compute_features(rs, temperature, humidity, baseline, SPEC)
    assert features.shape == (300 - 40 + 1, 3 * N_SENSORS)
    assert len(SPEC.names()) == features.shape[1]
    assert np.all(np.isfinite(features))

    # The device passes exactly window_minutes rows and gets the run's row for that minute.
    last = compute_features(rs[-40:], temperature[-40:], humidity[-40:], baseline, SPEC)
    assert last.shape == (1, 3 * N_SENSORS)
    np.testing.assert_array_equal(last[0], features[-1])

    with_climate = FeatureSpec(include_climate=True)
    climate = compute_features(rs, temperature, humidity, baseline, with_climate)
    assert climate.shape == (261, 3 * N_SENSORS + 2)
    assert with_climate.names()[-2:] == ["temperature_c", "humidity_pct"]
    np.testing.assert_allclose(climate[-1, -2:], [temperature[-10:].mean(), humidity[-10:].mean()])


def test_too_few_rows_for_one_window_is_refused() -> None:
    rs, temperature, humidity = _run(39)
    with pytest.raises(ValueError, match="at least 40"):
        compute_features(rs, temperature, humidity, _baseline(rs, temperature, humidity), SPEC)


def test_wrong_number_of_sensor_columns_is_refused() -> None:
    rs, temperature, humidity = _run(60)
    baseline = _baseline(rs, temperature, humidity)
    with pytest.raises(ValueError, match="one column per baseline sensor"):
        compute_features(rs[:, :8], temperature, humidity, baseline, SPEC)


def test_response_is_the_log_ratio_to_the_baseline_and_slopes_are_per_hour() -> None:
    minutes = 100
    # ln Rs falls by 0.6 per hour in every sensor, from a baseline of 10 kΩ.
    rs = 10.0 * np.exp(-0.01 * np.arange(minutes))[:, None] * np.ones(N_SENSORS)
    climate = np.full(minutes, 25.0), np.full(minutes, 50.0)
    baseline = Baseline(np.full(N_SENSORS, 10.0), 25.0, 50.0)

    response = log_response(rs, *climate, baseline, compensate=True)
    np.testing.assert_allclose(response[:, 0], -0.01 * np.arange(minutes), atol=1e-12)

    features = compute_features(rs, *climate, baseline, SPEC)
    # Row 0 ends at minute 39: the mean response of minutes 30..39.
    np.testing.assert_allclose(features[0, :N_SENSORS], -0.01 * np.mean(np.arange(30, 40)))
    np.testing.assert_allclose(features[:, N_SENSORS:], -0.6, atol=1e-12)


def test_changing_a_future_row_never_changes_an_earlier_feature_row() -> None:
    spec = FeatureSpec(include_climate=True)
    rs, temperature, humidity = _run(200)
    baseline = _baseline(rs, temperature, humidity)
    before = compute_features(rs, temperature, humidity, baseline, spec)
    changed_minute = 150
    rs[changed_minute] *= 5.0
    temperature[changed_minute] += 10.0
    humidity[changed_minute] -= 30.0
    after = compute_features(rs, temperature, humidity, baseline, spec)

    first_seen = changed_minute - spec.window_minutes + 1  # the row whose window ends there
    np.testing.assert_array_equal(after[:first_seen], before[:first_seen])
    assert np.all(after[first_seen] != before[first_seen])  # so the test is not vacuous


def test_compensation_removes_a_pure_climate_change() -> None:
    """Clean air, no food: the climate swings and Rs follows CF(T, RH) only."""
    minutes = 120
    temperature = np.linspace(22.0, 38.0, minutes)
    humidity = np.linspace(40.0, 95.0, minutes)
    rs = 30.0 * climate_correction_factor(temperature, humidity)[:, None] * np.ones(N_SENSORS)
    baseline = Baseline.from_clean_air(rs[:10], temperature[:10], humidity[:10])

    raw = log_response(rs, temperature, humidity, baseline, compensate=False)
    compensated = log_response(rs, temperature, humidity, baseline, compensate=True)
    assert np.abs(raw[-1]).min() > 0.1  # without compensation, a climate swing looks like gas
    assert np.abs(compensated).max() < 0.01  # the baseline is a median, not exactly minute 0

    spec_on = FeatureSpec(compensate_climate=True)
    spec_off = FeatureSpec(compensate_climate=False)
    on = compute_features(rs, temperature, humidity, baseline, spec_on)
    off = compute_features(rs, temperature, humidity, baseline, spec_off)
    assert np.abs(on).max() < np.abs(off).max() / 10


def test_no_feature_depends_on_time_since_start() -> None:
    """The same food, put in after 20 or after 500 minutes of clean air, gives the same rows."""
    food_rs, food_t, food_h = _run(200, seed=3)
    air = 25.0 * np.ones(N_SENSORS)

    def recording(air_minutes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rs = np.vstack([np.tile(air, (air_minutes, 1)), food_rs])
        t = np.concatenate([np.full(air_minutes, 30.0), food_t])
        h = np.concatenate([np.full(air_minutes, 60.0), food_h])
        return rs, t, h

    early, late = recording(20), recording(500)
    baseline = Baseline(air, 30.0, 60.0)  # the clean-air calibration before the food went in
    for spec in (SPEC, ROBUST):
        f_early = compute_features(*early, baseline, spec)
        f_late = compute_features(*late, baseline, spec)
        # Align on the food: the last 200 minutes are identical, so are their feature rows.
        rows = 200 - spec.window_minutes + 1
        np.testing.assert_array_equal(f_early[-rows:], f_late[-rows:])


def test_spec_round_trips_through_json() -> None:
    spec = FeatureSpec(
        sensors=("MQ2", "MQ135"),
        smooth_minutes=5,
        slope_minutes=(15,),
        compensate_climate=False,
        include_climate=True,
    )
    data = json.loads(json.dumps(spec.to_dict()))
    assert data["version"] == FEATURE_VERSION
    assert data["window_minutes"] == 20
    assert FeatureSpec.from_dict(data) == spec
    assert FeatureSpec.from_dict(SPEC.to_dict()) == SPEC


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": FEATURE_VERSION + 1}, "version"),
        ({"window_minutes": 99}, "window_minutes"),
        ({"colour": "red"}, "unknown keys"),
        ({"smooth_minutes": 0}, "smooth_minutes"),
    ],
)
def test_a_card_spec_from_other_code_is_refused(change: dict[str, object], message: str) -> None:
    data = {**SPEC.to_dict(), **change}
    with pytest.raises(ModelCardError, match=message):
        FeatureSpec.from_dict(data)


def test_missing_key_is_refused() -> None:
    data = SPEC.to_dict()
    del data["slope_minutes"]
    with pytest.raises(ModelCardError, match="slope_minutes"):
        FeatureSpec.from_dict(data)


def test_a_missed_sample_blanks_exactly_the_windows_that_hold_it() -> None:
    rs, temperature, humidity = _run(200)
    baseline = _baseline(rs, temperature, humidity)
    missed = 120
    rs[missed, 4] = np.nan
    humidity[missed + 30] = np.nan  # a missed climate reading counts too
    features = compute_features(rs, temperature, humidity, baseline, SPEC)

    window = SPEC.window_minutes
    blank = np.isnan(features).all(axis=1)
    expected = np.zeros(len(features), dtype=bool)
    for minute in (missed, missed + 30):
        expected[max(0, minute - window + 1) : minute + 1] = True
    np.testing.assert_array_equal(blank, expected)
    assert np.all(np.isfinite(features[~blank]))


def test_baseline_is_the_median_and_skips_missed_minutes() -> None:
    rs = np.array([[10.0, 20.0], [12.0, np.nan], [11.0, 22.0], [100.0, 21.0]])
    baseline = Baseline.from_clean_air(rs, [20, 21, 22, 23], [40, np.nan, 50, 60])
    np.testing.assert_allclose(baseline.rs_kohm, [11.5, 21.0])
    assert baseline.temperature_c == 21.5
    assert baseline.humidity_pct == 50.0
    assert not baseline.rs_kohm.flags.writeable
    assert math.isclose(
        float(log_response(rs[:1], [20.0], [40.0], baseline, compensate=False)[0, 0]),
        math.log(10 / 11.5),
    )


def test_baseline_without_any_valid_minute_for_a_sensor_is_refused() -> None:
    rs = np.array([[10.0, np.nan], [11.0, np.nan]])
    with pytest.raises(CalibrationError, match="calibrate again"):
        Baseline.from_clean_air(rs, [20, 20], [40, 40])
    with pytest.raises(CalibrationError, match="> 0"):
        Baseline(np.array([10.0, 0.0]), 20.0, 40.0)


def test_one_sensor_rising_against_physics_does_not_move_the_others_features() -> None:
    # Every sensor falls as the food spoils; in the faulty copy one sensor's Rs rises 15x
    # instead (the beef set's TS1 MQ5/MQ6). Capped at 0, that sensor reads "no smell" and
    # the other sensors' responses, and the shape of the smell across them, barely move.
    rs, temperature, humidity = _run(200)
    faulty = rs.copy()
    faulty[:, 5] = rs[0, 5] * np.linspace(1.0, 15.0, 200)
    baseline = _baseline(rs, temperature, humidity)
    good = compute_features(rs, temperature, humidity, baseline, ROBUST)
    bad = compute_features(faulty, temperature, humidity, baseline, ROBUST)
    response, shape = slice(0, N_SENSORS), slice(N_SENSORS, 2 * N_SENSORS)
    assert np.all(bad[:, response] <= 0) and np.all(bad[-50:, 5] == 0)
    others = [i for i in range(N_SENSORS) if i != 5]
    np.testing.assert_array_equal(bad[:, response][:, others], good[:, response][:, others])
    # The median of nine moves by at most one rank: the shape changes little.
    assert np.max(np.abs(bad[:, shape][:, others] - good[:, shape][:, others])) < 0.1
    uncapped = FeatureSpec(slope_minutes=(), cross_sensor=True)
    assert compute_features(faulty, temperature, humidity, baseline, uncapped)[-1, 5] > 2.0


def test_cross_sensor_shape_ignores_a_change_that_moves_every_sensor_alike() -> None:
    rs, temperature, humidity = _run(100)
    baseline = _baseline(rs, temperature, humidity)
    drifted = rs * 0.7  # a supply or climate change the compensation does not know
    shape_only = FeatureSpec(slope_minutes=(), cross_sensor=True)
    a = compute_features(rs, temperature, humidity, baseline, shape_only)
    b = compute_features(drifted, temperature, humidity, baseline, shape_only)
    shape = slice(N_SENSORS, 2 * N_SENSORS)
    np.testing.assert_allclose(a[:, shape], b[:, shape], atol=1e-12)
    assert ROBUST.window_minutes == 10
    assert ROBUST.names()[N_SENSORS] == "cross_sensor_MQ135"


#: The shape of the smell since food-in, as the shape models of the food grid take it.
SHAPE = FeatureSpec(
    slope_minutes=(), per_sensor=False, cap_rising=True, shape_minutes=(240, 480, 720)
)


def test_shape_rows_come_from_food_in_and_match_the_devices_window() -> None:
    rs, temperature, humidity = _run(1500)
    baseline = _baseline(rs, temperature, humidity)
    assert SHAPE.since_food_in and SHAPE.window_minutes == 730
    assert SHAPE.first_row_minutes == 130

    features = compute_features(rs, temperature, humidity, baseline, SHAPE)
    # One row per minute since food-in; none before 130 minutes of history.
    assert features.shape == (1500, len(SHAPE.names())) == (1500, 24)
    assert np.isnan(features[:129]).all() and np.isfinite(features[129:]).all()

    # The station holds the minutes since food-in (the last 730 of them): same rows.
    for minute in (129, 400, 729, 1200, 1499):
        first = max(0, minute + 1 - SHAPE.window_minutes)
        held = slice(first, minute + 1)
        row = compute_features(rs[held], temperature[held], humidity[held], baseline, SHAPE)[-1]
        np.testing.assert_allclose(row, features[minute], rtol=0, atol=1e-12)
        # ... and the station's own call, which computes that one row alone.
        alone = latest_features(rs[held], temperature[held], humidity[held], baseline, SHAPE)
        np.testing.assert_allclose(alone, features[minute], rtol=0, atol=1e-12)
    assert np.isnan(
        latest_features(rs[:100], temperature[:100], humidity[:100], baseline, SHAPE)
    ).all()


def test_a_less_sensitive_array_gives_the_same_shape() -> None:
    """TS5's sensors moved about a third as far as the other runs': the shape, unlike the
    summaries themselves, does not see it."""
    rs, _, _ = _run(1500)
    flat_climate = np.full(1500, 25.0), np.full(1500, 50.0)
    weak = rs[0] * (rs / rs[0]) ** (1 / 3)  # every log response a third as large
    strong_features = compute_features(rs, *flat_climate, _baseline(rs, *flat_climate), SHAPE)
    weak_features = compute_features(weak, *flat_climate, _baseline(weak, *flat_climate), SHAPE)
    late = slice(600, None)  # once every drop is well past the floor
    # (the baseline median of an even count of minutes averages two of them: not exact)
    np.testing.assert_allclose(weak_features[late], strong_features[late], atol=1e-4)
    summaries = FeatureSpec(slope_minutes=(), per_sensor=False, summaries=True)
    strong = compute_features(rs, *flat_climate, _baseline(rs, *flat_climate), summaries)
    weak_summary = compute_features(weak, *flat_climate, _baseline(weak, *flat_climate), summaries)
    np.testing.assert_allclose(weak_summary[-1], strong[-1] / 3, rtol=1e-3)


def test_food_that_has_not_changed_has_no_shape_yet() -> None:
    """Noise around the baseline is divided by the 5 % floor, not by itself."""
    rng = np.random.default_rng(1)
    rs = 20.0 * np.exp(rng.normal(0, 0.002, (300, N_SENSORS)))
    climate = np.full(300, 25.0), np.full(300, 50.0)
    features = compute_features(rs, *climate, _baseline(rs, *climate), SHAPE)
    assert np.abs(features[129:]).max() < 0.2


def test_shape_spec_round_trips_and_bad_look_backs_are_refused() -> None:
    data = json.loads(json.dumps(SHAPE.to_dict()))
    assert FeatureSpec.from_dict(data) == SHAPE
    assert data["shape_minutes"] == [240, 480, 720]
    assert "shape_minutes" not in FeatureSpec().to_dict()  # older cards read back unchanged
    with pytest.raises(ValueError, match="shape_minutes"):
        FeatureSpec(per_sensor=False, shape_minutes=(60,))


def test_training_refuses_a_late_start_for_features_since_food_in() -> None:
    from training.food.data import load_recording
    from training.food.evaluate import run_features

    beef = Path(__file__).resolve().parents[1] / "training" / "data" / "beef_wijaya"
    recording = load_recording(beef / "TS2.csv")
    assert len(run_features(recording, SHAPE).labels) == len(recording) - 129
    with pytest.raises(ValueError, match="look back to food-in"):
        run_features(recording, SHAPE, start_minute=600)
