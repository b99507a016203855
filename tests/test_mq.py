"""MQ sensor physics against the datasheet-derived numbers in research/enose.md."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device.errors import CalibrationError, SensorDisconnectedError
from device.nose.mq import (
    MQ_TYPES,
    calibrate_r0,
    climate_correction_factor,
    gas_ppm,
    mq_type,
    rs_from_voltage,
    sensor_voltage,
)


@given(
    rs_kohm=st.floats(0.5, 2000),
    load_kohm=st.floats(1, 200),
)
def test_voltage_and_resistance_invert_each_other(rs_kohm: float, load_kohm: float) -> None:
    vout = sensor_voltage(rs_kohm, load_kohm, 5.0)
    if 0.05 < vout < 4.95:
        assert rs_from_voltage(vout, load_kohm, 5.0) == pytest.approx(rs_kohm, rel=1e-9)


def test_rail_voltages_mean_a_disconnected_sensor() -> None:
    with pytest.raises(SensorDisconnectedError, match="ground rail"):
        rs_from_voltage(0.0, 10.0, 5.0)
    with pytest.raises(SensorDisconnectedError, match="supply rail"):
        rs_from_voltage(5.0, 10.0, 5.0)


@pytest.mark.parametrize(
    ("temperature_c", "humidity_pct", "expected"),
    [(0, 33, 1.395), (5, 33, 1.268), (20, 33, 1.000), (20, 85, 0.900), (40, 95, 0.814)],
)
def test_climate_factor_matches_the_datasheet_fit(
    temperature_c: float, humidity_pct: float, expected: float
) -> None:
    assert float(climate_correction_factor(temperature_c, humidity_pct)) == pytest.approx(
        expected, abs=0.002
    )


@pytest.mark.parametrize(
    ("sensor", "gas", "ratio", "ppm"),
    [("MQ135", "NH3", 2.56, 10.0), ("MQ135", "NH3", 1.01, 100.0), ("MQ4", "CH4", 2.30, 100.0)],
)
def test_ppm_curves_reproduce_the_table(sensor: str, gas: str, ratio: float, ppm: float) -> None:
    curve = mq_type(sensor).curves[gas]
    low, _ = curve.ppm_range
    assert curve.ppm(ratio) == pytest.approx(max(ppm, low), rel=0.03)


def test_every_type_in_the_research_note_is_known() -> None:
    for name in ("MQ2", "MQ3", "MQ4", "MQ5", "MQ6", "MQ7", "MQ8", "MQ9", "MQ135", "MQ136", "MQ137"):
        assert mq_type(name.replace("MQ", "mq-")).name == name
    assert gas_ppm(MQ_TYPES["MQ8"], 1.0) == {}  # its library curve is implausible


def test_gases_below_the_curves_range_are_left_out_not_invented() -> None:
    mq135 = mq_type("MQ135")
    assert gas_ppm(mq135, mq135.clean_air_ratio) == {}
    polluted = gas_ppm(mq135, 1.0)
    assert polluted["NH3"] == pytest.approx(102.2, rel=0.01)


def test_r0_is_clean_air_rs_over_the_datasheet_ratio() -> None:
    cal = calibrate_r0(mq_type("MQ135"), [36.0, 36.2, 35.8, 36.1], 20.0, 33.0)
    assert cal.r0_kohm == pytest.approx(36.05 / 3.6, rel=1e-3)
    assert cal.clean_air_rs_kohm == pytest.approx(36.05, rel=1e-3)


def test_unstable_clean_air_is_refused_with_advice() -> None:
    with pytest.raises(CalibrationError, match="warm up longer"):
        calibrate_r0(mq_type("MQ2"), [10, 20, 30, 40, 50], 20.0, 33.0)
    with pytest.raises(CalibrationError, match="usable clean-air samples"):
        calibrate_r0(mq_type("MQ2"), [10], 20.0, 33.0)
