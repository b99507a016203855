"""ESS values as a generic BLE tool decodes them: SFLOAT, units, 'unknown' values, and which
nose sensor feeds which characteristic."""

from __future__ import annotations

import math
import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device.link import ess, uuids


def _u16(value: bytes) -> int:
    return int(struct.unpack("<H", value)[0])


# ---------------------------------------------------------------------------------- SFLOAT


@pytest.mark.parametrize(
    ("value", "raw"),
    [
        (0.0, 0x0000),
        (1.0, 0xD3E8),  # 1000 x 10^-3: the finest exponent that holds it
        (-1.0, 0xDC18),
        (1.04e-6, 0x8068),  # 104 x 10^-8 (the research note's NH3 example)
        (2045.0, 0x07FD),
        (2046.0, 0x10CD),  # 2046 would collide with +INF at exponent 0: 205 x 10^1
    ],
)
def test_sfloat_known_encodings(value: float, raw: int) -> None:
    assert ess.sfloat_encode(value) == raw
    assert ess.sfloat_decode(raw) == pytest.approx(value, rel=3e-3)


def test_sfloat_special_values() -> None:
    assert ess.sfloat_encode(None) == ess.SFLOAT_NAN
    assert ess.sfloat_encode(math.nan) == ess.SFLOAT_NAN
    assert ess.sfloat_encode(math.inf) == ess.SFLOAT_POSITIVE_INFINITY
    assert ess.sfloat_encode(-math.inf) == ess.SFLOAT_NEGATIVE_INFINITY
    # GSS: NRes reports "a value outside the available range and resolution ... overflow or
    # underflow".
    assert ess.sfloat_encode(3e10) == ess.SFLOAT_NRES
    assert ess.sfloat_encode(3e-9) == ess.SFLOAT_NRES
    assert math.isnan(ess.sfloat_decode(ess.SFLOAT_NRES))
    assert ess.sfloat_decode(ess.SFLOAT_NEGATIVE_INFINITY) == -math.inf


@given(st.floats(min_value=1e-8, max_value=2e10) | st.floats(min_value=-2e10, max_value=-1e-8))
def test_sfloat_round_trip_keeps_the_formats_precision(value: float) -> None:
    raw = ess.sfloat_encode(value)
    if raw == ess.SFLOAT_NRES:
        assert abs(value) < 0.5e-8 or abs(value) > 2045.5e7
        return
    exponent = (raw >> 12) - 16 if raw >> 12 >= 8 else raw >> 12
    assert ess.sfloat_decode(raw) == pytest.approx(value, abs=10.0**exponent / 2 * 1.0001)


# ------------------------------------------------------------------------- characteristics


def test_temperature_and_humidity_formats() -> None:
    assert ess.temperature(-12.34) == struct.pack("<h", -1234)
    assert ess.temperature(None) == b"\x00\x80"  # 0x8000: value is not known
    assert ess.temperature(500.0) == struct.pack("<h", 32767)
    assert ess.humidity(53.49) == struct.pack("<H", 5349)
    assert ess.humidity(None) == b"\xff\xff"
    assert ess.humidity(101.0) == struct.pack("<H", 10000)


def test_voc_format() -> None:
    assert ess.voc_ppb(830) == b"\x3e\x03"
    assert ess.voc_ppb(None) == b"\xff\xff"
    assert ess.voc_ppb(1e6) == b"\xfe\xff"  # 0xFFFE: 65534 or greater


def test_ppm_to_kg_m3_follows_the_gas_law() -> None:
    # 1.5 ppm NH3 at 25 °C is 1.045 mg/m³ (the research note's figure).
    assert ess.ppm_to_kg_m3(1.5, 17.031) == pytest.approx(1.045e-6, rel=1e-3)
    # Colder air is denser: the same ppm is more mass per m³ (T ratio 298.15 / 277.15).
    ratio = ess.ppm_to_kg_m3(1.5, 17.031, temperature_c=4.0) / ess.ppm_to_kg_m3(1.5, 17.031)
    assert ratio == pytest.approx(298.15 / 277.15)


def test_es_measurement_descriptor_layout() -> None:
    value = ess.es_measurement(ess.SamplingFunction.ARITHMETIC_MEAN, 60, 10)
    assert len(value) == 11
    flags, sampling = struct.unpack_from("<HB", value)
    assert (flags, sampling) == (0, 2)
    assert int.from_bytes(value[3:6], "little") == 60
    assert int.from_bytes(value[6:9], "little") == 10
    assert (value[9], value[10]) == (ess.APPLICATION_AIR, ess.UNCERTAINTY_NOT_AVAILABLE)
    with pytest.raises(ValueError, match="24 bits"):
        ess.es_measurement(update_interval_s=1 << 24)


# ---------------------------------------------------------------------- nose -> ESS mapping


def _sensor(name: str, ppm: dict[str, float], status: str = "ok") -> dict[str, Any]:
    return {"name": name, "status": status, "voltage_v": 1.0, "rs_kohm": 10.0, "ratio": 0.8,
            "ppm": ppm}  # fmt: skip


def _nose(*sensors: dict[str, Any], temperature_c: float | None = 25.0) -> dict[str, Any]:
    return {"type": "nose", "ts": 1.0, "sensors": list(sensors), "temperature_c": temperature_c,
            "humidity_pct": 60.0, "warming_up": False}  # fmt: skip


def _read(values: dict[str, bytes], uuid: str) -> float | None:
    return ess.decode_value(uuid, values[uuid])


def test_each_gas_comes_from_its_documented_sensor() -> None:
    values = ess.nose_values(
        _nose(
            _sensor("MQ135", {"NH3": 20.0, "toluene": 12.345, "CO": 99.0}),
            _sensor("MQ9", {"CO": 30.0, "CH4": 900.0}),
            _sensor("MQ4", {"CH4": 700.0}),
        )
    )
    assert _read(values, uuids.AMMONIA_CONCENTRATION) == pytest.approx(
        ess.ppm_to_kg_m3(20.0, 17.031), rel=5e-3
    )
    assert _read(values, uuids.CARBON_MONOXIDE_CONCENTRATION) == pytest.approx(
        ess.ppm_to_kg_m3(30.0, 28.010), rel=5e-3
    )  # MQ9, not the cross-sensitive MQ135 curve
    assert _read(values, uuids.METHANE_CONCENTRATION) == pytest.approx(700_000)  # MQ4, in ppb
    assert _read(values, uuids.VOC_CONCENTRATION) == 12_345  # toluene equivalent, ppb
    assert _read(values, uuids.TEMPERATURE) == 25.0
    assert _read(values, uuids.HUMIDITY) == 60.0


def test_the_specific_part_wins_when_both_are_fitted() -> None:
    values = ess.nose_values(
        _nose(_sensor("MQ135", {"NH3": 20.0}), _sensor("MQ137", {"NH3": 5.0}),
              _sensor("MQ9", {"CO": 30.0}), _sensor("MQ7", {"CO": 12.0}))
    )  # fmt: skip
    assert _read(values, uuids.AMMONIA_CONCENTRATION) == pytest.approx(
        ess.ppm_to_kg_m3(5.0, 17.031), rel=5e-3
    )
    assert _read(values, uuids.CARBON_MONOXIDE_CONCENTRATION) == pytest.approx(
        ess.ppm_to_kg_m3(12.0, 28.010), rel=5e-3
    )


def test_mass_concentration_uses_the_measured_temperature() -> None:
    cold = ess.nose_values(_nose(_sensor("MQ135", {"NH3": 50.0}), temperature_c=4.0))
    assert _read(cold, uuids.AMMONIA_CONCENTRATION) == pytest.approx(
        ess.ppm_to_kg_m3(50.0, 17.031, temperature_c=4.0), rel=5e-3
    )
    unknown = ess.nose_values(_nose(_sensor("MQ135", {"NH3": 50.0}), temperature_c=None))
    assert _read(unknown, uuids.AMMONIA_CONCENTRATION) == pytest.approx(
        ess.ppm_to_kg_m3(50.0, 17.031, temperature_c=25.0), rel=5e-3
    )
    assert _read(unknown, uuids.TEMPERATURE) is None


@pytest.mark.parametrize("status", ["warming_up", "uncalibrated", "disconnected", "error"])
def test_a_channel_that_is_not_ok_reads_not_known(status: str) -> None:
    values = ess.nose_values(_nose(_sensor("MQ135", {"NH3": 20.0, "toluene": 30.0}, status)))
    assert _u16(values[uuids.AMMONIA_CONCENTRATION]) == ess.SFLOAT_NAN
    assert _u16(values[uuids.VOC_CONCENTRATION]) == ess.VOC_UNKNOWN


def test_a_gas_below_its_curve_reads_out_of_range_and_voc_zero() -> None:
    values = ess.nose_values(_nose(_sensor("MQ135", {}), _sensor("MQ4", {})))
    assert _u16(values[uuids.AMMONIA_CONCENTRATION]) == ess.SFLOAT_NRES
    assert _u16(values[uuids.METHANE_CONCENTRATION]) == ess.SFLOAT_NRES
    assert _read(values, uuids.VOC_CONCENTRATION) == 0


def test_no_reading_at_all_is_unknown_everywhere() -> None:
    values = ess.unknown_values()
    assert set(values) == {uuids.TEMPERATURE, uuids.HUMIDITY, *(g.uuid for g in ess.ESS_GASES)}
    assert all(ess.decode_value(uuid, value) is None for uuid, value in values.items())


def test_decode_value_rejects_what_it_cannot_know() -> None:
    with pytest.raises(ValueError, match="2 bytes"):
        ess.decode_value(uuids.TEMPERATURE, b"\x00")
    with pytest.raises(ValueError, match="not one of"):
        ess.decode_value(uuids.STATION_INFO, b"\x00\x00")
