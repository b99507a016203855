"""The nose's sampler: every channel, every period, with warm-up and health.

One sample reads each MQ channel ``conversions_per_sample`` times and keeps the median (one
spike from a relay or a loose crimp does not move it), converts volts to Rs and, once
calibrated, to the compensated Rs/R0 and ppm per gas. It also reads the climate sensor.

Readings taken while a heater is still warming up are *marked* (``ChannelStatus.WARMING_UP``),
never hidden: a person watching the box wants to see the numbers settle. Warm-up is per sensor
and restarts when a sensor comes back after being disconnected, since its heater went cold.

Faults never stop the sampler. A transfer that fails with EIO is retried; a chip that does not
answer, a conversion past its deadline, or a channel on a rail voltage marks the affected
channels and produces a :class:`~device.events.Health` event when a component's state changes
(failed, degraded, recovered), not on every sample.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from device.clock import Clock
from device.config import AdcConfig, NoseConfig, SensorConfig
from device.errors import (
    ConversionTimeoutError,
    HardwareError,
    I2CBusError,
    SensorDisconnectedError,
)
from device.events import ChannelStatus, Health, HealthStatus, NoseReading, SensorValue
from device.nose.calibration import NoseCalibration
from device.nose.mq import compensated_rs, gas_ppm, mq_type, rs_from_voltage

#: Attempts per conversion when the bus reports a transient error (EIO): a single glitch on
#: a long sensor cable should cost a retry, not a missing value.
ATTEMPTS_PER_CONVERSION = 3
#: Clean samples in a row before a component that had transient errors is reported OK again;
#: without this hysteresis an EIO storm would flood the link with health flips.
CLEAN_SAMPLES_TO_RECOVER = 5


class AnalogInput(Protocol):
    """What the sampler needs from an ADC (``device.nose.ads1115.ADS1x15``)."""

    def read_voltage(self, channel: int, *, pga_v: float, data_rate_sps: int) -> float: ...


class ClimateReading(Protocol):
    @property
    def temperature_c(self) -> float: ...

    @property
    def humidity_pct(self) -> float: ...


class ClimateSensor(Protocol):
    """What the sampler needs from the temperature/humidity chip (``device.nose.sht31``)."""

    def measure(self) -> ClimateReading: ...


class HealthTracker:
    """Remembers each component's state and reports only changes.

    A component that had transient errors (DEGRADED), or that failed again within
    :data:`CLEAN_SAMPLES_TO_RECOVER` samples of recovering (an EIO storm, a loose connector),
    is reported OK only after that many clean samples in a row; a chip plugged back after one
    clean outage is reported OK at once.
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._status: dict[str, HealthStatus] = {}
        self._clean_streak: dict[str, int] = {}
        self._clean_since_recovery: dict[str, int] = {}
        self._flapping: set[str] = set()

    def report(self, component: str, status: HealthStatus, message: str) -> Health | None:
        previous = self._status.get(component, HealthStatus.OK)
        if status is HealthStatus.OK:
            if previous is HealthStatus.DEGRADED or (
                previous is HealthStatus.FAILED and component in self._flapping
            ):
                streak = self._clean_streak.get(component, 0) + 1
                self._clean_streak[component] = streak
                if streak < CLEAN_SAMPLES_TO_RECOVER:
                    return None
                self._flapping.discard(component)
            if previous is HealthStatus.OK:
                clean = self._clean_since_recovery.get(component, CLEAN_SAMPLES_TO_RECOVER)
                self._clean_since_recovery[component] = clean + 1
            else:
                self._clean_since_recovery[component] = 0
        else:
            self._clean_streak[component] = 0
            recently = self._clean_since_recovery.get(component, CLEAN_SAMPLES_TO_RECOVER)
            if previous is HealthStatus.OK and recently < CLEAN_SAMPLES_TO_RECOVER:
                self._flapping.add(component)
        if status is previous:
            return None
        self._status[component] = status
        return Health(ts=self._clock.wall(), component=component, status=status, message=message)

    def status(self, component: str) -> HealthStatus:
        return self._status.get(component, HealthStatus.OK)


@dataclass
class _ChannelState:
    heater_on_s: float | None  # monotonic time the sensor was first seen connected


class NoseSampler:
    """Reads every configured channel and the climate sensor, one sample per call."""

    def __init__(
        self,
        config: NoseConfig,
        adcs: Mapping[int, AnalogInput],
        climate: ClimateSensor | None,
        clock: Clock,
        *,
        calibration: NoseCalibration | None = None,
        bus_number: int = 1,
    ) -> None:
        self.config = config
        self.clock = clock
        self.calibration = calibration
        self._adcs = adcs
        self._adc_config: dict[int, AdcConfig] = {a.address: a for a in config.adcs}
        self._climate = climate
        self._bus_number = bus_number
        self.health = HealthTracker(clock)
        started_s = clock.monotonic()
        self._channels = {s.name: _ChannelState(heater_on_s=started_s) for s in config.sensors}
        self.samples_taken = 0
        self.conversion_errors = 0

    @property
    def sensor_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.config.sensors)

    def warming_up(self, sensor: str) -> bool:
        heater_on_s = self._channels[sensor].heater_on_s
        if heater_on_s is None:
            return True
        return self.clock.monotonic() - heater_on_s < self.config.warmup_s

    def sample(self) -> tuple[NoseReading, list[Health]]:
        """One reading of everything, plus any health changes it revealed."""
        health: list[Health] = []
        failed_adcs: dict[int, str] = {}
        transient_errors: dict[int, int] = {}
        temperature_c, humidity_pct = self._read_climate(health)
        values = []
        for sensor in self.config.sensors:
            if sensor.adc_address in failed_adcs:
                values.append(SensorValue(sensor.name, ChannelStatus.ERROR))
                continue
            try:
                voltage_v, retries = self._median_voltage(sensor)
            except HardwareError as e:
                failed_adcs[sensor.adc_address] = str(e)
                values.append(SensorValue(sensor.name, ChannelStatus.ERROR))
                continue
            transient_errors[sensor.adc_address] = (
                transient_errors.get(sensor.adc_address, 0) + retries
            )
            values.append(
                self._sensor_value(sensor, voltage_v, temperature_c, humidity_pct, health)
            )
        for address in self._adc_config:
            component = f"nose.adc@{address:#04x}"
            if address in failed_adcs:
                event = self.health.report(component, HealthStatus.FAILED, failed_adcs[address])
            elif transient_errors.get(address, 0):
                event = self.health.report(
                    component,
                    HealthStatus.DEGRADED,
                    f"{transient_errors[address]} I2C transfer error(s) on bus "
                    f"{self._bus_number} at {address:#04x}, recovered by retrying; check the "
                    "cable and pull-ups if this persists",
                )
            else:
                event = self.health.report(component, HealthStatus.OK, "answering normally")
            if event is not None:
                health.append(event)
        self.samples_taken += 1
        reading = NoseReading(
            ts=self.clock.wall(),
            sensors=tuple(values),
            temperature_c=temperature_c,
            humidity_pct=humidity_pct,
            warming_up=any(v.status is ChannelStatus.WARMING_UP for v in values),
        )
        return reading, health

    def _median_voltage(self, sensor: SensorConfig) -> tuple[float, int]:
        """Median of the conversions that succeeded, and how many attempts failed.

        Raises the last error only when no conversion succeeded at all: under an EIO storm a
        median of fewer conversions is still a reading.
        """
        adc = self._adcs[sensor.adc_address]
        settings = self._adc_config[sensor.adc_address]
        voltages = []
        failures = 0
        last_error: HardwareError | None = None
        for _ in range(self.config.conversions_per_sample):
            for _attempt in range(ATTEMPTS_PER_CONVERSION):
                try:
                    voltages.append(
                        adc.read_voltage(
                            sensor.channel,
                            pga_v=settings.pga_v,
                            data_rate_sps=settings.data_rate_sps,
                        )
                    )
                    break
                except (I2CBusError, ConversionTimeoutError) as e:
                    self.conversion_errors += 1
                    failures += 1
                    last_error = e
        if not voltages:
            assert last_error is not None
            raise last_error
        return statistics.median(voltages), failures

    def _sensor_value(
        self,
        sensor: SensorConfig,
        adc_voltage_v: float,
        temperature_c: float | None,
        humidity_pct: float | None,
        health: list[Health],
    ) -> SensorValue:
        component = f"nose.sensor.{sensor.name}"
        state = self._channels[sensor.name]
        vout_v = adc_voltage_v / sensor.adc_divider_ratio
        try:
            rs_kohm = rs_from_voltage(vout_v, sensor.load_kohm, sensor.supply_v)
        except SensorDisconnectedError as e:
            state.heater_on_s = None
            event = self.health.report(
                component,
                HealthStatus.FAILED,
                f"{sensor.name} on {sensor.adc_address:#04x} channel {sensor.channel} {e}",
            )
            if event is not None:
                health.append(event)
            return SensorValue(sensor.name, ChannelStatus.DISCONNECTED, voltage_v=vout_v)
        if state.heater_on_s is None:
            state.heater_on_s = self.clock.monotonic()
        event = self.health.report(component, HealthStatus.OK, f"{sensor.name} reads normally")
        if event is not None:
            health.append(event)
        ratio: float | None = None
        ppm: dict[str, float] = {}
        calibration = self.calibration.sensors.get(sensor.name) if self.calibration else None
        if calibration is not None:
            ratio = compensated_rs(rs_kohm, temperature_c, humidity_pct) / calibration.r0_kohm
            ppm = gas_ppm(mq_type(sensor.type), ratio)
        if self.warming_up(sensor.name):
            status = ChannelStatus.WARMING_UP
        elif calibration is None:
            status = ChannelStatus.UNCALIBRATED
        else:
            status = ChannelStatus.OK
        return SensorValue(
            sensor.name, status, voltage_v=vout_v, rs_kohm=rs_kohm, ratio=ratio, ppm=ppm
        )

    def _read_climate(self, health: list[Health]) -> tuple[float | None, float | None]:
        if self._climate is None:
            return None, None
        component = "nose.climate"
        try:
            climate = self._climate.measure()
        except HardwareError as e:
            event = self.health.report(component, HealthStatus.FAILED, str(e))
            if event is not None:
                health.append(event)
            return None, None
        event = self.health.report(component, HealthStatus.OK, "temperature/humidity normal")
        if event is not None:
            health.append(event)
        t, rh = climate.temperature_c, climate.humidity_pct
        return (t if math.isfinite(t) else None), (rh if math.isfinite(rh) else None)
