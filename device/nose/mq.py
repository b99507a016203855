"""MQ-series metal-oxide gas sensor physics.

An MQ sensor is a resistor ``Rs`` whose value falls as reducing gases rise. It sits in a divider
with a load resistor ``RL`` across the 5 V supply (Hanwei/Winsen datasheets)::

    Vc ── Rs ──┬── Vout          Vout = Vc·RL/(Rs+RL)      Rs = RL·(Vc − Vout)/Vout
               RL
              GND

A 5 V output does not fit a 3.3 V ADS1115, so the station reads it through a second divider
(``adc_divider_ratio`` = V_adc / Vout).

Concentrations follow a power law per gas, ``Rs/R0 = A·ppm^B`` (MQSensorsLib, miguel5612,
MIT; see research/enose.md §4.2), where ``R0`` is the sensor's resistance at the datasheet's
reference gas. ``R0`` is found in clean air from the datasheet's clean-air ratio
``Rs_air/R0``. Temperature and humidity change Rs multiplicatively; the correction factor is the
GeorgK/Balk77 fit of the datasheet's Fig. 4 (research/enose.md §4.3): ``Rs_measured =
Rs(20 °C, 33 %RH) · CF(T, RH)``, so compensation *divides* by CF (MQUnifiedsensor adds it,
which is wrong).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from device.errors import CalibrationError, SensorDisconnectedError

FloatArray = npt.NDArray[np.float64]

#: Fraction of the supply a reading must stay inside: beyond it the channel sits on a rail,
#: which means an open sensor (0 V: no current through RL) or a shorted one (full supply).
RAIL_MARGIN_FRACTION = 0.01


@dataclass(frozen=True)
class GasCurve:
    """``Rs/R0 = a_coefficient · ppm ** b_exponent`` for one gas, valid over ``ppm_range``."""

    a_coefficient: float
    b_exponent: float
    ppm_range: tuple[float, float]
    unit: str = "ppm"

    def ppm(self, ratio: float) -> float:
        """Concentration for a compensated Rs/R0, clipped to the curve's calibrated range."""
        if ratio <= 0:
            raise ValueError(f"Rs/R0 must be positive, got {ratio}")
        value = float((ratio / self.a_coefficient) ** (1.0 / self.b_exponent))
        low, high = self.ppm_range
        return min(max(value, low), high)

    def ratio(self, ppm: float) -> float:
        return float(self.a_coefficient * ppm**self.b_exponent)


def _from_lib(a: float, b: float, ppm_range: tuple[float, float], unit: str = "ppm") -> GasCurve:
    """Convert MQSensorsLib's ``ppm = a·(Rs/R0)^b`` into ``Rs/R0 = A·ppm^B``."""
    return GasCurve(a ** (-1.0 / b), 1.0 / b, ppm_range, unit)


@dataclass(frozen=True)
class MQType:
    """What the datasheet says about one MQ part."""

    name: str
    clean_air_ratio: float
    datasheet_load_kohm: float
    curves: dict[str, GasCurve] = field(default_factory=dict)
    heater_cycled: bool = False
    note: str = ""


# Curves: research/enose.md §4.2 table (MQSensorsLib examples), except where noted.
MQ_TYPES: dict[str, MQType] = {
    t.name: t
    for t in (
        MQType(
            "MQ2",
            9.83,
            20.0,
            {
                "H2": _from_lib(987.99, -2.162, (200, 10_000)),
                "LPG": _from_lib(574.25, -2.222, (200, 10_000)),
                "alcohol": _from_lib(3616.1, -2.675, (100, 2_000)),
            },
        ),
        MQType(
            "MQ3",
            60.0,
            200.0,
            {
                "alcohol": _from_lib(0.3934, -1.504, (0.05, 10), unit="mg/L"),
                "benzene": _from_lib(4.8387, -2.68, (10, 1_000)),
            },
        ),
        MQType(
            "MQ4",
            4.4,
            20.0,
            {
                "CH4": _from_lib(1012.7, -2.786, (200, 10_000)),
                "LPG": _from_lib(3811.9, -3.113, (200, 10_000)),
            },
        ),
        MQType(
            "MQ5",
            6.5,
            20.0,
            {
                "H2": _from_lib(1163.8, -3.874, (200, 10_000)),
                "CH4": _from_lib(177.65, -2.56, (200, 10_000)),
            },
        ),
        MQType(
            "MQ6",
            10.0,
            20.0,
            {
                "LPG": _from_lib(1009.2, -2.35, (200, 10_000)),
                "CH4": _from_lib(2127.2, -2.526, (200, 10_000)),
            },
        ),
        MQType(
            "MQ7",
            27.5,
            10.0,
            {
                "CO": _from_lib(99.042, -1.518, (20, 2_000)),
                "H2": _from_lib(69.014, -1.374, (20, 2_000)),
            },
            heater_cycled=True,
            note="read CO at the end of the 1.4 V heater phase (60 s at 5 V, 90 s at 1.4 V)",
        ),
        # MQSensorsLib's MQ-8 H2 curve gives implausible values (research/enose.md §4.2): no
        # ppm is reported for it, only the ratio, which the classifier uses.
        MQType("MQ8", 70.0, 10.0, {}),
        # MQ-9: MQSensorsLib examples/MQ-9 (not in the research table; same library and method).
        MQType(
            "MQ9",
            9.6,
            10.0,
            {
                "LPG": _from_lib(1000.5, -2.186, (200, 10_000)),
                "CH4": _from_lib(4269.6, -2.648, (500, 10_000)),
                "CO": _from_lib(599.65, -2.244, (10, 1_000)),
            },
            heater_cycled=True,
            note="datasheet asks for a high/low heater cycle like the MQ-7 (unverified)",
        ),
        MQType(
            "MQ135",
            3.6,
            20.0,
            {
                "NH3": _from_lib(102.2, -2.473, (10, 300)),
                "CO2": _from_lib(110.47, -2.862, (10, 10_000)),
                "alcohol": _from_lib(77.255, -3.18, (10, 300)),
                "CO": _from_lib(605.18, -3.937, (10, 1_000)),
                "toluene": _from_lib(44.947, -3.445, (10, 1_000)),
                "acetone": _from_lib(34.668, -3.369, (10, 1_000)),
            },
        ),
        MQType("MQ136", 3.6, 20.0, {"H2S": _from_lib(36.737, -3.536, (1, 200))}),
        # MQ-137: log10(Rs/R0) = -0.263·log10(ppm) + 0.42 (circuitdigest, RL 47 k). Its clean-air
        # ratio is not in the sources we have: 3.6 (as MQ-135/136) is an assumption.
        MQType(
            "MQ137",
            3.6,
            47.0,
            {"NH3": GasCurve(10**0.42, -0.263, (1, 500))},
            note="clean-air ratio assumed equal to the MQ-135's",
        ),
    )
}


def mq_type(name: str) -> MQType:
    """Look up a sensor type by name ("MQ135", "mq-135" and "MQ-135" all work)."""
    key = name.upper().replace("-", "").replace("_", "")
    try:
        return MQ_TYPES[key]
    except KeyError:
        known = ", ".join(MQ_TYPES)
        raise ValueError(f"unknown MQ sensor type {name!r}; known types: {known}") from None


def sensor_voltage(rs_kohm: float, load_kohm: float, supply_v: float) -> float:
    """Vout of the Rs/RL divider (what a meter reads on the module's AO pin)."""
    return supply_v * load_kohm / (rs_kohm + load_kohm)


def rs_from_voltage(vout_v: float, load_kohm: float, supply_v: float) -> float:
    """Sensor resistance from the divider output.

    Raises :class:`SensorDisconnectedError` when Vout sits on a rail: at 0 V no current flows
    (open sensor or heater off); at the supply, Rs is shorted.
    """
    margin_v = supply_v * RAIL_MARGIN_FRACTION
    if vout_v <= margin_v:
        raise SensorDisconnectedError(
            f"reads {vout_v:.3f} V (ground rail): the sensor is unplugged or its heater is off; "
            "check the module's AO wire and its 5 V supply"
        )
    if vout_v >= supply_v - margin_v:
        raise SensorDisconnectedError(
            f"reads {vout_v:.3f} V (supply rail): the sensor output is shorted to 5 V or the "
            "load resistor is missing"
        )
    return load_kohm * (supply_v - vout_v) / vout_v


def climate_correction_factor(
    temperature_c: npt.ArrayLike, humidity_pct: npt.ArrayLike
) -> FloatArray:
    """CF(T, RH) such that ``Rs_measured = Rs(20 °C, 33 %RH) · CF`` (vectorised).

    GeorgK/Balk77 fit of the MQ-135 datasheet's Fig. 4 (research/enose.md §4.3), continuous at
    20 °C / 33 %RH. The other MQ parts' curves have the same shape; we use this one for all.
    """
    t = np.asarray(temperature_c, dtype=np.float64)
    rh = np.asarray(humidity_pct, dtype=np.float64)
    cold = 0.00035 * t**2 - 0.02718 * t + 1.39538 - 0.0018 * (rh - 33.0)
    warm = -0.003333333 * t - 0.001923077 * rh + 1.130128205
    return np.asarray(np.where(t < 20.0, cold, warm), dtype=np.float64)


def compensated_rs(
    rs_kohm: float, temperature_c: float | None, humidity_pct: float | None
) -> float:
    """Rs referred to 20 °C / 33 %RH; unchanged when the climate is unknown."""
    if temperature_c is None or humidity_pct is None:
        return rs_kohm
    return rs_kohm / float(climate_correction_factor(temperature_c, humidity_pct))


@dataclass(frozen=True)
class SensorCalibration:
    """R0 of one sensor, from clean air, with the conditions it was taken in.

    ``clean_air_rs_kohm`` is the raw (uncompensated) median Rs: the feature code compensates it
    with the same ``temperature_c``/``humidity_pct`` as every later reading.
    """

    sensor: str
    r0_kohm: float
    clean_air_rs_kohm: float
    temperature_c: float | None
    humidity_pct: float | None
    samples: int


def calibrate_r0(
    sensor_type: MQType,
    rs_kohm_samples: list[float],
    temperature_c: float | None,
    humidity_pct: float | None,
    *,
    max_spread_fraction: float | None = 0.15,
) -> SensorCalibration:
    """R0 from clean-air Rs samples: ``R0 = median(Rs) / CF(T, RH) / clean_air_ratio``.

    Refuses samples that wander by more than ``max_spread_fraction`` (interquartile range over
    median): the sensor is still warming up or the air is not clean, and an R0 taken then would
    shift every later reading. Replays of recordings that start with food already present pass
    ``None``: their baseline is whatever the recording's first minutes hold.
    """
    values = np.asarray([v for v in rs_kohm_samples if math.isfinite(v) and v > 0])
    if values.size < 3:
        raise CalibrationError(
            f"{sensor_type.name}: only {values.size} usable clean-air samples; "
            "calibrate for longer with the sensor connected and warmed up"
        )
    median = float(np.median(values))
    q1, q3 = np.percentile(values, [25, 75])
    spread = float(q3 - q1) / median
    if max_spread_fraction is not None and spread > max_spread_fraction:
        raise CalibrationError(
            f"{sensor_type.name}: Rs varied by {spread:.0%} during calibration (allowed "
            f"{max_spread_fraction:.0%}); let the heaters warm up longer, keep food out of the "
            "box and calibrate again"
        )
    return SensorCalibration(
        sensor=sensor_type.name,
        r0_kohm=compensated_rs(median, temperature_c, humidity_pct) / sensor_type.clean_air_ratio,
        clean_air_rs_kohm=median,
        temperature_c=temperature_c,
        humidity_pct=humidity_pct,
        samples=int(values.size),
    )


def gas_ppm(sensor_type: MQType, ratio: float) -> dict[str, float]:
    """Concentrations of the gases this sensor type has a curve for, at a compensated Rs/R0.

    A gas below its curve's calibrated range is left out (the datasheet cannot tell 5 ppm
    from none, and extrapolating the power law there gives nonsense); above it, the value is
    clipped to the top of the range.
    """
    found = {}
    for gas, curve in sensor_type.curves.items():
        low, _ = curve.ppm_range
        if curve.ratio(low) > ratio:  # Rs/R0 falls as the gas rises
            found[gas] = curve.ppm(ratio)
    return found
