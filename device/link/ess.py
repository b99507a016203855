"""Environmental Sensing Service (ESS, 0x181A) values from a nose reading, per the GSS.

Formats are those of the Bluetooth GATT Specification Supplement (GSS), all little-endian:

* Temperature 0x2A6E: sint16, 0.01 °C, -273.15..327.67; 0x8000 = "value is not known".
* Humidity 0x2A6F: uint16, 0.01 %, 0..100; 0xFFFF = "value is not known".
* Ammonia 0x2BCF and Carbon Monoxide 0x2BD0 Concentration: medfloat16, kg/m³.
* Methane Concentration 0x2BD1: medfloat16, ppb.
* VOC Concentration 0x2BE7: uint16, ppb, 0..65533; 0xFFFE = "65534 or greater",
  0xFFFF = "value is not known".

medfloat16 is IEEE 11073-20601 SFLOAT: a 4-bit signed base-10 exponent over a 12-bit signed
mantissa. For the concentrations the GSS uses NaN for "missing data due to the hardware's
inability to provide a valid measurement" and NRes for "a value outside the available range
and resolution, possibly resulting from an overflow or underflow". So: no reading, a sensor
warming up, uncalibrated or disconnected gives NaN; a concentration below the sensor curve's
calibrated range (device/nose/mq.py leaves such gases out of ``ppm``) gives NRes; so does a
value below 10^-8 kg/m³, the format's finest step. VOC's uint16 has no such value: below range
it reads 0 ppb.

Which MQ sensor feeds which characteristic (first one present in the reading wins):

* NH3 <- MQ137 "NH3", else MQ135 "NH3". The MQ-137 is the ammonia part; the MQ-135 is a broad
  air-quality sensor whose NH3 curve is the next best (it also answers to CO2 and alcohols).
* CO <- MQ7 "CO", else MQ9 "CO". Both are the CO parts (read at the end of their low-heat
  phase); the MQ-135's CO curve is left out, it is cross-sensitive to everything.
* CH4 <- MQ4 "CH4", else MQ9 "CH4". The MQ-4 is the methane part; the MQ-9 sees methane as
  well but is less selective.
* VOC <- MQ135 "toluene". Total VOC is conventionally given as toluene equivalent (ISO 16000-6)
  and the MQ-135 responds to the solvents and amines of spoiling food. The MQ-3's alcohol curve
  is in mg/L of breath alcohol from 0.05 mg/L (~26 ppm ethanol) and sees ethanol only.

ppm of NH3 and CO become kg/m³ by the ideal gas law at the measured temperature (25 °C when the
climate sensor gives none, the usual reference for ppm <-> mg/m³) and standard pressure (the
station has no barometer; 1 % of pressure is 1 % of the value, far inside an MQ sensor's error).

The ES Measurement descriptor 0x290C (ESS v1.0 §3.1.2.1, 11 octets) says how values are made:
flags (RFU), sampling function, measurement period, update interval, application, uncertainty.
The ES Trigger Setting descriptor 0x290D (ESS v1.0 §3.1.2.2) says when they are notified.

Pure standard library (the app decodes with it too).
"""

from __future__ import annotations

import enum
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from device.link import uuids

SFLOAT_NAN: Final = 0x07FF
SFLOAT_NRES: Final = 0x0800
SFLOAT_POSITIVE_INFINITY: Final = 0x07FE
SFLOAT_NEGATIVE_INFINITY: Final = 0x0802
_SFLOAT_RESERVED: Final = 0x0801
# Keep clear of the reserved mantissas (+-2046, 2047, -2047, -2048 carry the special values
# at exponent 0); using +-2045 at every exponent keeps every encoding unambiguous.
_SFLOAT_MAX_MANTISSA: Final = 2045
_SFLOAT_MIN_EXPONENT: Final = -8
_SFLOAT_MAX_EXPONENT: Final = 7

TEMPERATURE_UNKNOWN: Final = 0x8000
HUMIDITY_UNKNOWN: Final = 0xFFFF
VOC_UNKNOWN: Final = 0xFFFF
VOC_SATURATED: Final = 0xFFFE

GAS_CONSTANT_J_PER_MOL_K: Final = 8.314462618
STANDARD_PRESSURE_PA: Final = 101_325.0
REFERENCE_TEMPERATURE_C: Final = 25.0
MOLAR_MASS_G_PER_MOL: Final = {"NH3": 17.031, "CO": 28.010, "CH4": 16.043}


def sfloat_encode(value: float | None) -> int:
    """The SFLOAT (medfloat16) for ``value``: the nearest one with the most precision.

    None or NaN -> NaN; +-inf -> +-INFINITY; too large or nonzero but below 10^-8 -> NRes.
    """
    if value is None or math.isnan(value):
        return SFLOAT_NAN
    if math.isinf(value):
        return SFLOAT_POSITIVE_INFINITY if value > 0 else SFLOAT_NEGATIVE_INFINITY
    if value == 0:
        return 0
    for exponent in range(_SFLOAT_MIN_EXPONENT, _SFLOAT_MAX_EXPONENT + 1):
        # Multiply by an exact integer power for negative exponents: 1e-8 is not exact.
        scaled: float = value * 10**-exponent if exponent < 0 else value / 10**exponent
        mantissa = round(scaled)
        if abs(mantissa) <= _SFLOAT_MAX_MANTISSA:
            if mantissa == 0:
                return SFLOAT_NRES  # underflow: finer than the format's finest step
            return ((exponent & 0xF) << 12) | (mantissa & 0x0FFF)
    return SFLOAT_NRES  # overflow


def sfloat_decode(raw: int) -> float:
    """The number an SFLOAT holds; NaN, NRes and the reserved value all read as NaN."""
    if raw in (SFLOAT_NAN, SFLOAT_NRES, _SFLOAT_RESERVED):
        return math.nan
    if raw == SFLOAT_POSITIVE_INFINITY:
        return math.inf
    if raw == SFLOAT_NEGATIVE_INFINITY:
        return -math.inf
    mantissa = raw & 0x0FFF
    mantissa = mantissa - 0x1000 if mantissa >= 0x0800 else mantissa
    exponent = raw >> 12
    exponent = exponent - 0x10 if exponent >= 0x8 else exponent
    return mantissa * 10.0**exponent if exponent >= 0 else mantissa / 10 ** (-exponent)


def medfloat16(value: float | None) -> bytes:
    return struct.pack("<H", sfloat_encode(value))


def temperature(celsius: float | None) -> bytes:
    """Temperature 0x2A6E (clamped to the GSS range)."""
    if celsius is None or not math.isfinite(celsius):
        return struct.pack("<H", TEMPERATURE_UNKNOWN)
    return struct.pack("<h", min(max(round(celsius * 100), -27315), 32767))


def humidity(percent: float | None) -> bytes:
    """Humidity 0x2A6F (clamped to 0..100 %)."""
    if percent is None or not math.isfinite(percent):
        return struct.pack("<H", HUMIDITY_UNKNOWN)
    return struct.pack("<H", min(max(round(percent * 100), 0), 10000))


def voc_ppb(ppb: float | None) -> bytes:
    """VOC Concentration 0x2BE7."""
    if ppb is None or math.isnan(ppb):
        return struct.pack("<H", VOC_UNKNOWN)
    return struct.pack("<H", min(max(round(ppb), 0), VOC_SATURATED))


def ppm_to_kg_m3(
    ppm: float,
    molar_mass_g_per_mol: float,
    temperature_c: float = REFERENCE_TEMPERATURE_C,
    pressure_pa: float = STANDARD_PRESSURE_PA,
) -> float:
    """Mass concentration of a gas at ``ppm`` (by volume), by the ideal gas law."""
    mol_per_m3 = pressure_pa / (GAS_CONSTANT_J_PER_MOL_K * (temperature_c + 273.15))
    return ppm * 1e-6 * mol_per_m3 * molar_mass_g_per_mol * 1e-3


class SamplingFunction(enum.IntEnum):
    """ES Measurement "Sampling Function" (ESS v1.0 §3.1.2.1)."""

    UNSPECIFIED = 0
    INSTANTANEOUS = 1
    ARITHMETIC_MEAN = 2
    RMS = 3
    MAXIMUM = 4
    MINIMUM = 5
    ACCUMULATED = 6
    COUNT = 7


APPLICATION_AIR: Final = 0x01
UNCERTAINTY_NOT_AVAILABLE: Final = 0xFF


def es_measurement(
    sampling: SamplingFunction = SamplingFunction.INSTANTANEOUS,
    measurement_period_s: int = 0,
    update_interval_s: int = 0,
    application: int = APPLICATION_AIR,
    uncertainty: int = UNCERTAINTY_NOT_AVAILABLE,
) -> bytes:
    """The ES Measurement descriptor value (0 in a period or interval means "not in use")."""
    for name, seconds in (("period", measurement_period_s), ("interval", update_interval_s)):
        if not 0 <= seconds <= 0xFFFFFF:
            raise ValueError(f"ES Measurement {name} {seconds} s does not fit in 24 bits")
    return (
        struct.pack("<HB", 0, int(sampling))
        + measurement_period_s.to_bytes(3, "little")
        + update_interval_s.to_bytes(3, "little")
        + bytes([application, uncertainty])
    )


TRIGGER_VALUE_CHANGED: Final = 0x03


def es_trigger_value_changed() -> bytes:
    """ES Trigger Setting descriptor (0x290D): notify when the value changes (condition 0x03,
    no operand), which is exactly when the station notifies. ESS requires one on every
    characteristic that notifies."""
    return bytes([TRIGGER_VALUE_CHANGED])


@dataclass(frozen=True)
class GasSource:
    """One sensor's curve for one gas, by the sensor's name in the reading."""

    sensor: str
    gas: str


@dataclass(frozen=True)
class EssGas:
    """One ESS gas characteristic and where its value comes from."""

    uuid: str
    description: str
    gas: str
    sources: tuple[GasSource, ...]


# Sensor names are the default configuration's (device/config.py names each channel after its
# part); a station whose channels are named otherwise passes its own table to LinkCore.
ESS_GASES: Final = (
    EssGas(
        uuids.AMMONIA_CONCENTRATION,
        "Ammonia (food box)",
        "NH3",
        (GasSource("MQ137", "NH3"), GasSource("MQ135", "NH3")),
    ),
    EssGas(
        uuids.CARBON_MONOXIDE_CONCENTRATION,
        "Carbon monoxide (food box)",
        "CO",
        (GasSource("MQ7", "CO"), GasSource("MQ9", "CO")),
    ),
    EssGas(
        uuids.METHANE_CONCENTRATION,
        "Methane (food box)",
        "CH4",
        (GasSource("MQ4", "CH4"), GasSource("MQ9", "CH4")),
    ),
    EssGas(
        uuids.VOC_CONCENTRATION,
        "VOC, toluene equivalent (food box)",
        "VOC",
        (GasSource("MQ135", "toluene"),),
    ),
)


class _BelowRange:
    """The sensor works, and the gas is below its curve's calibrated range."""


_BELOW_RANGE: Final = _BelowRange()


def _source_ppm(sensors: Sequence[Any], sources: Sequence[GasSource]) -> float | _BelowRange | None:
    """ppm from the first source present in the reading; None when it is not known."""
    by_name = {s.get("name"): s for s in sensors if isinstance(s, Mapping)}
    for source in sources:
        sensor = by_name.get(source.sensor)
        if sensor is None:
            continue
        # Only an OK channel has numbers worth showing a generic tool, which has no way to
        # show "warming up" next to them.
        if sensor.get("status") != "ok" or sensor.get("ratio") is None:
            return None
        value = (sensor.get("ppm") or {}).get(source.gas)
        if value is None:
            return _BELOW_RANGE
        number = float(value)
        return number if math.isfinite(number) else None
    return None


def nose_values(nose: Mapping[str, Any], gases: Sequence[EssGas] = ESS_GASES) -> dict[str, bytes]:
    """Characteristic UUID -> ESS value for one nose reading (``NoseReading.to_dict()``)."""
    temperature_c = nose.get("temperature_c")
    sensors = nose.get("sensors") or ()
    values = {
        uuids.TEMPERATURE: temperature(temperature_c),
        uuids.HUMIDITY: humidity(nose.get("humidity_pct")),
    }
    at_c = REFERENCE_TEMPERATURE_C if temperature_c is None else float(temperature_c)
    for gas in gases:
        ppm = _source_ppm(sensors, gas.sources)
        if gas.uuid == uuids.VOC_CONCENTRATION:
            # uint16 has no "below range" value; 0 ppb is what such a reading means to a user.
            ppb = 0.0 if isinstance(ppm, _BelowRange) else None if ppm is None else ppm * 1000
            values[gas.uuid] = voc_ppb(ppb)
        elif isinstance(ppm, _BelowRange):
            values[gas.uuid] = struct.pack("<H", SFLOAT_NRES)
        elif gas.uuid == uuids.METHANE_CONCENTRATION:
            values[gas.uuid] = medfloat16(None if ppm is None else ppm * 1000)
        else:
            kg_m3 = None if ppm is None else ppm_to_kg_m3(ppm, MOLAR_MASS_G_PER_MOL[gas.gas], at_c)
            values[gas.uuid] = medfloat16(kg_m3)
    return values


def unknown_values(gases: Sequence[EssGas] = ESS_GASES) -> dict[str, bytes]:
    """Every ESS characteristic's "not known" value (before the first nose reading)."""
    return nose_values({}, gases)


def decode_value(uuid: str, value: bytes) -> float | None:
    """What a generic client (nRF Connect) shows for one of our ESS values; None if unknown.

    Temperature in °C, humidity in %, NH3 and CO in kg/m³, methane and VOC in ppb.
    """
    if len(value) != 2:
        raise ValueError(f"ESS values here are 2 bytes, got {len(value)}")
    (raw,) = struct.unpack("<H", value)
    if uuid == uuids.TEMPERATURE:
        return None if raw == TEMPERATURE_UNKNOWN else struct.unpack("<h", value)[0] / 100
    if uuid == uuids.HUMIDITY:
        return None if raw == HUMIDITY_UNKNOWN else raw / 100
    if uuid == uuids.VOC_CONCENTRATION:
        return None if raw == VOC_UNKNOWN else float(raw)
    if uuid in {g.uuid for g in ESS_GASES}:
        number = sfloat_decode(raw)
        return None if math.isnan(number) else number
    raise ValueError(f"{uuid} is not one of the station's ESS characteristics")
