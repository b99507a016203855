"""The nose's hardware: the I2C bus, each chip on it, and the clean-air calibration.

The chips are asked through the station's own drivers (``device.nose``), so a chip the doctor
finds is one the nose can read:

* ADS1115/ADS1015: the config register (pointer 0x01, TI SBAS444 §8.6.3) reads 0x8583 after
  power-on; once the station has used the chip it holds what the driver wrote, which is always
  single-shot mode with the comparator disabled (bits 8 and 4:0 = 1, 00011). Any other value
  means some other chip answers at that address, or another program drives the ADC.
* SHT31: one single-shot measurement; both words carry a CRC-8 (Sensirion SHT3x-DIS §4.12), so
  a reading that arrives is one that crossed the wire intact. (The driver has no status-register
  read, and a measurement proves more: the chip measures and the wire carries data intact.)
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TypeVar

from device.clock import Clock, SystemClock
from device.config import Config
from device.doctor.findings import Finding, Status, finding_from_error
from device.errors import CalibrationError, HardwareError, I2CDeviceMissingError
from device.nose.ads1115 import ADS1015, ADS1115, ADS1x15
from device.nose.calibration import NoseCalibration
from device.nose.i2c import I2CBus, open_i2c_bus
from device.nose.sht31 import SHT31

_T = TypeVar("_T")

ADS1X15_POWER_ON_CONFIG = 0x8583
"""Config register after power-on (SBAS444 table 8; SBAS473 gives the same for the ADS1015)."""
ADS1X15_DRIVER_MASK = 0x011F
ADS1X15_DRIVER_BITS = 0x0103
"""Single-shot mode (bit 8) and comparator disabled (bits 4:0 = 00011): set in every config
word :class:`~device.nose.ads1115.ADS1x15` writes and in the power-on value."""


def check_i2c(
    config: Config,
    *,
    bus: I2CBus | None = None,
    clock: Clock | None = None,
) -> list[Finding]:
    """The I2C bus and every chip the nose is wired to.

    ``bus``: talk to this bus instead of opening ``/dev/i2c-<hardware.i2c_bus>`` (the emulated
    bus of ``hardware.sim``). Without it, a station on emulated hardware gets a warning and the
    chips are not probed.
    """
    if not config.nose.enabled:
        return [Finding("i2c", Status.OK, "nose disabled in the config: no I2C chips to check")]
    bus_number = config.hardware.i2c_bus
    if bus is not None:
        return _probe_chips(config, bus, clock or SystemClock(), bus_number)
    path = config.hardware.i2c_device_path()
    if config.hardware.use_emulation():
        why = "hardware.mode = emulated" if config.hardware.mode == "emulated" else f"no {path}"
        return [
            Finding(
                "i2c",
                Status.WARN,
                f"running on emulated hardware ({why}): the nose replays a recording",
                "on the Pi, enable I2C (`sudo raspi-config nonint do_i2c 0`, reboot) and set "
                'hardware.mode = "auto" or "real"',
            )
        ]
    if not path.exists():
        return [
            Finding(
                "i2c",
                Status.FAIL,
                f"no I2C bus {bus_number}: {path} does not exist",
                "enable I2C with `sudo raspi-config nonint do_i2c 0` and reboot "
                "(or hardware/install.sh, which does it)",
            )
        ]
    if not os.access(path, os.R_OK | os.W_OK):
        return [
            Finding(
                "i2c",
                Status.FAIL,
                f"{path} exists but this user may not read and write it",
                "add the user to group i2c: `sudo usermod -aG i2c $USER`, then log in again "
                "(the udev rules in hardware/udev give the group access)",
            )
        ]
    try:
        real_bus = open_i2c_bus(bus_number)
    except HardwareError as e:
        return [finding_from_error("i2c", e)]
    try:
        findings = [Finding("i2c", Status.OK, f"{path} open for reading and writing")]
        return findings + _probe_chips(config, real_bus, clock or SystemClock(), bus_number)
    finally:
        real_bus.close()


def _probe_chips(config: Config, bus: I2CBus, clock: Clock, bus_number: int) -> list[Finding]:
    findings = [
        _probe_adc(
            (ADS1115 if adc.chip == "ads1115" else ADS1015)(
                bus, adc.address, clock=clock, bus_number=bus_number
            ),
            bus_number,
        )
        for adc in config.nose.adcs
    ]
    climate = SHT31(bus, config.nose.climate.address, clock=clock, bus_number=bus_number)
    findings.append(_probe_climate(climate, bus_number))
    return findings


def _missing_chip(chip: ADS1x15 | SHT31, bus_number: int) -> Finding:
    pin = chip.ADDRESSES[chip.address]
    return Finding(
        _chip_label(chip),
        Status.FAIL,
        f"nothing at 0x{chip.address:02X}: no {chip.CHIP_NAME} answers on I2C bus {bus_number}",
        f"check the wiring and power of the {chip.CHIP_NAME} and its ADDR pin ({pin} for "
        f"0x{chip.address:02X}); `i2cdetect -y {bus_number}` lists the addresses that answer",
    )


def _chip_label(chip: ADS1x15 | SHT31) -> str:
    return f"i2c 0x{chip.address:02X} {chip.CHIP_NAME}"


def _ask(chip: ADS1x15 | SHT31, bus_number: int, question: Callable[[], _T]) -> _T | Finding:
    """The chip's answer, or the finding that says why there was none."""
    try:
        return question()
    except I2CDeviceMissingError:
        return _missing_chip(chip, bus_number)
    except HardwareError as e:
        return finding_from_error(_chip_label(chip), e)


def _probe_adc(chip: ADS1x15, bus_number: int) -> Finding:
    name = _chip_label(chip)
    word = _ask(chip, bus_number, chip.probe)
    if isinstance(word, Finding):
        return word
    if word == ADS1X15_POWER_ON_CONFIG:
        return Finding(
            name, Status.OK, f"answers; config register 0x{word:04X} (its power-on value)"
        )
    if word & ADS1X15_DRIVER_MASK == ADS1X15_DRIVER_BITS:
        return Finding(name, Status.OK, f"answers; config register 0x{word:04X} (single-shot)")
    return Finding(
        name,
        Status.WARN,
        f"a chip answers at 0x{chip.address:02X}, but its config register reads 0x{word:04X}, "
        f"which an ADS1x15 set up by the station never holds",
        "another chip may share this address, or another program runs the ADC in continuous "
        "or comparator mode: check the wiring and stop other programs using the bus",
    )


def _probe_climate(chip: SHT31, bus_number: int) -> Finding:
    sample = _ask(chip, bus_number, chip.measure)
    if isinstance(sample, Finding):
        return sample
    return Finding(
        _chip_label(chip),
        Status.OK,
        f"answers: {sample.temperature_c:.1f} °C, {sample.humidity_pct:.0f} %RH (CRC ok)",
    )


# --- nose calibration -----------------------------------------------------------------------

CALIBRATION_MAX_AGE_DAYS = 30.0
"""MQ sensors drift over weeks (heater ageing, poisoning); recalibrate about monthly."""


def check_calibration(config: Config, *, now_s: Callable[[], float] = time.time) -> list[Finding]:
    """The nose's clean-air calibration exists, reads, and is recent."""
    name = "nose calibration"
    if not config.nose.enabled:
        return [Finding(name, Status.OK, "nose disabled in the config")]
    path = config.calibration_path
    try:
        calibration = NoseCalibration.load(path)
    except CalibrationError as e:
        return [finding_from_error(name, e, Status.WARN)]
    age_days = (now_s() - calibration.created_ts) / 86400.0
    missing = [s.name for s in config.nose.sensors if s.name not in calibration.sensors]
    if missing:
        return [
            Finding(
                name,
                Status.WARN,
                f"{path} has no R0 for {', '.join(missing)}",
                "run `senses nose calibrate` with the box empty and the heaters warm",
            )
        ]
    if age_days > CALIBRATION_MAX_AGE_DAYS:
        return [
            Finding(
                name,
                Status.WARN,
                f"{path} is {age_days:.0f} days old (older than {CALIBRATION_MAX_AGE_DAYS:.0f}):"
                " the sensors have drifted since",
                "run `senses nose calibrate` again with the box empty and the heaters warm",
            )
        ]
    return [Finding(name, Status.OK, f"{path}, {age_days:.1f} days old")]


# --- the food in the box --------------------------------------------------------------------


def check_food_state(config: Config) -> list[Finding]:
    """Whether food is marked in, and its baseline (device/nose/food.py): verdicts need it."""
    from device.nose.food import SavedFoodState

    name = "food in the box"
    if not config.nose.enabled:
        return [Finding(name, Status.OK, "nose disabled in the config")]
    path = config.food_state_path
    try:
        saved = SavedFoodState.load(path)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        return [
            Finding(
                name,
                Status.WARN,
                f"{path} is damaged ({e!r}); the station keeps it aside and gives no verdicts",
                "press New food in the app (or `senses nose new-food`) to take a new baseline",
            )
        ]
    if saved is None:
        return [
            Finding(
                name,
                Status.OK,
                "no food marked in: no verdicts until someone does (app, Home Assistant or "
                "`senses nose new-food`)",
            )
        ]
    since = time.strftime("%Y-%m-%d %H:%M", time.localtime(saved.food_in_ts))
    if saved.no_change:
        return [
            Finding(
                name,
                Status.WARN,
                f"food put in at {since} has no baseline: the gas readings did not change at all",
                "check the sensors are connected and powered, then press New food again",
            )
        ]
    if saved.baseline is None:
        return [
            Finding(name, Status.OK, f"food put in at {since} ({saved.source}); baseline pending")
        ]
    return [Finding(name, Status.OK, f"food put in at {since} ({saved.source}); baseline taken")]
