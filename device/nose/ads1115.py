"""Drivers for the TI ADS1115 (16-bit) and ADS1015 (12-bit) I2C ADCs that read the MQ sensors.

Register map, config bits and timing from TI's datasheet SBAS444 (ADS111x) and SBAS473
(ADS101x); the transaction sequence follows Adafruit's CircuitPython ADS1x15 driver, whose
layout (one base class, thin per-chip subclasses overriding resolution, data rates and the
conversion) this module keeps. Unlike Adafruit's single-shot read, polling for the end of a
conversion has a deadline: a chip that never finishes raises :class:`ConversionTimeoutError`
instead of hanging the daemon.

All reads are single-ended (AINx against GND) and single-shot: the chip powers down between
readings, so each read starts a fresh conversion with its own gain and data rate.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import ClassVar

from device.clock import Clock
from device.errors import ConversionTimeoutError, DriverSettingError
from device.nose.i2c import I2CBus, I2CChip

POINTER_CONVERSION = 0x00
POINTER_CONFIG = 0x01

CONFIG_OS_START = 0x8000
"""OS bit: writing 1 starts a single conversion; reading 1 means the chip is idle."""
CONFIG_MODE_SINGLE_SHOT = 0x0100
CONFIG_COMP_QUE_DISABLE = 0x0003
"""Comparator off and ALERT/RDY high impedance: nothing is wired to that pin."""

PGA_FULL_SCALE_V: Mapping[float, int] = {
    6.144: 0b000,
    4.096: 0b001,
    2.048: 0b010,
    1.024: 0b011,
    0.512: 0b100,
    0.256: 0b101,
}
"""Full-scale range of the programmable gain amplifier (±V) -> PGA field (config bits 11:9)."""

DEADLINE_FACTOR = 2.0
DEADLINE_MARGIN_S = 0.005
"""A conversion gets ``DEADLINE_FACTOR / DR + DEADLINE_MARGIN_S`` before we give up.

The internal oscillator makes the real conversion time deviate from 1/DR by up to about 10 %
(SBAS444, "data rate variation"), so twice the nominal time is a wide margin; the fixed 5 ms
covers I2C transfer time (about 0.3 ms per poll at 100 kHz) and Linux scheduling jitter, which
dominate at 860 SPS where 1/DR is only 1.2 ms.
"""
POLLS_PER_CONVERSION = 10
"""Poll the OS bit every 1/(10·DR): late by at most a tenth of a conversion, few transfers."""


class ADS1x15(I2CChip, abc.ABC):
    """What the ADS1115 and ADS1015 share; use one of the subclasses."""

    ADDRESSES: ClassVar[Mapping[int, str]] = {
        0x48: "to GND",
        0x49: "to VDD",
        0x4A: "to SDA",
        0x4B: "to SCL",
    }
    """SBAS444 table 4."""
    RESOLUTION_BITS: ClassVar[int]
    DATA_RATES_SPS: ClassVar[Mapping[int, int]]
    """Samples per second -> DR field (config bits 7:5)."""

    def __init__(
        self, bus: I2CBus, address: int = 0x48, *, clock: Clock, bus_number: int = 1
    ) -> None:
        super().__init__(bus, address, clock=clock, bus_number=bus_number)

    @classmethod
    def lsb_v(cls, pga_v: float) -> float:
        """Volts per count at full-scale range ``pga_v`` (e.g. 125 µV for ±4.096 V on ADS1115)."""
        cls._pga_bits(pga_v)
        return pga_v / (1 << (cls.RESOLUTION_BITS - 1))

    def probe(self) -> int:
        """Read the config register, proving the chip answers; returns the 16-bit word.

        Raises :class:`I2CDeviceMissingError` when nothing acknowledges the address.
        """
        with self._lock:
            return self._read_register(POINTER_CONFIG, "reading the config register")

    def read_raw(self, channel: int, *, pga_v: float = 4.096, data_rate_sps: int = 128) -> int:
        """One single-shot conversion of AIN``channel`` against GND, in signed counts."""
        config = self._single_shot_config(channel, pga_v, data_rate_sps)
        conversion_s = 1.0 / data_rate_sps
        with self._lock:
            with self._translate(f"starting a conversion on channel {channel}"):
                self._bus.write_i2c_block_data(
                    self.address, POINTER_CONFIG, [config >> 8, config & 0xFF]
                )
            timeout_s = DEADLINE_FACTOR * conversion_s + DEADLINE_MARGIN_S
            deadline_s = self._clock.monotonic() + timeout_s
            self._clock.sleep(conversion_s)
            self._wait_until_idle(channel, conversion_s, deadline_s, timeout_s)
            word = self._read_register(
                POINTER_CONVERSION, f"reading the result of channel {channel}"
            )
        return self._counts_from_conversion(word)

    def read_voltage(
        self, channel: int, *, pga_v: float = 4.096, data_rate_sps: int = 128
    ) -> float:
        """One single-shot conversion of AIN``channel`` against GND, in volts."""
        counts = self.read_raw(channel, pga_v=pga_v, data_rate_sps=data_rate_sps)
        return counts * self.lsb_v(pga_v)

    @abc.abstractmethod
    def _counts_from_conversion(self, word: int) -> int:
        """Signed counts from the conversion register's 16-bit word (per chip)."""

    def _wait_until_idle(
        self, channel: int, conversion_s: float, deadline_s: float, timeout_s: float
    ) -> None:
        poll_s = conversion_s / POLLS_PER_CONVERSION
        while True:
            config = self._read_register(POINTER_CONFIG, "polling for the end of a conversion")
            if config & CONFIG_OS_START:
                return
            remaining_s = deadline_s - self._clock.monotonic()
            if remaining_s <= 0:
                raise ConversionTimeoutError(
                    f"{self.CHIP_NAME} at address 0x{self.address:02X} on I2C bus "
                    f"{self.bus_number} did not finish a conversion of channel {channel} within "
                    f"{timeout_s * 1e3:.1f} ms: "
                    "power-cycle the ADC and check its supply voltage"
                )
            self._clock.sleep(min(poll_s, remaining_s))

    def _read_register(self, pointer: int, action: str) -> int:
        with self._translate(action):
            msb, lsb = self._bus.read_i2c_block_data(self.address, pointer, 2)
        return (msb << 8) | lsb

    def _single_shot_config(self, channel: int, pga_v: float, data_rate_sps: int) -> int:
        if channel not in range(4):
            raise DriverSettingError(
                f"the {self.CHIP_NAME} has single-ended channels 0-3 (AIN0-AIN3), got {channel!r}"
            )
        if data_rate_sps not in self.DATA_RATES_SPS:
            allowed = ", ".join(str(rate) for rate in self.DATA_RATES_SPS)
            raise DriverSettingError(
                f"the {self.CHIP_NAME} has no data rate of {data_rate_sps!r} SPS: "
                f"choose one of {allowed}"
            )
        mux_bits = 0b100 + channel  # 100..111: AIN0..AIN3 against GND
        return (
            CONFIG_OS_START
            | mux_bits << 12
            | self._pga_bits(pga_v) << 9
            | CONFIG_MODE_SINGLE_SHOT
            | self.DATA_RATES_SPS[data_rate_sps] << 5
            | CONFIG_COMP_QUE_DISABLE
        )

    @classmethod
    def _pga_bits(cls, pga_v: float) -> int:
        try:
            return PGA_FULL_SCALE_V[pga_v]
        except KeyError:
            allowed = ", ".join(f"{v:g}" for v in PGA_FULL_SCALE_V)
            raise DriverSettingError(
                f"the {cls.CHIP_NAME} has no gain with a ±{pga_v!r} V range: choose pga_v from "
                f"{allowed}"
            ) from None


class ADS1115(ADS1x15):
    """16-bit ADC, 8 to 860 samples per second (SBAS444)."""

    CHIP_NAME = "ADS1115"
    RESOLUTION_BITS = 16
    DATA_RATES_SPS: ClassVar[Mapping[int, int]] = {
        8: 0b000,
        16: 0b001,
        32: 0b010,
        64: 0b011,
        128: 0b100,
        250: 0b101,
        475: 0b110,
        860: 0b111,
    }

    def _counts_from_conversion(self, word: int) -> int:
        # Two's complement: subtract 2**16 (not 65535, a common off-by-one in Pi snippets).
        return word - 0x10000 if word & 0x8000 else word


class ADS1015(ADS1x15):
    """12-bit ADC, 128 to 3300 samples per second (SBAS473); the result is left-justified."""

    CHIP_NAME = "ADS1015"
    RESOLUTION_BITS = 12
    DATA_RATES_SPS: ClassVar[Mapping[int, int]] = {
        128: 0b000,
        250: 0b001,
        490: 0b010,
        920: 0b011,
        1600: 0b100,
        2400: 0b101,
        3300: 0b110,
    }

    def _counts_from_conversion(self, word: int) -> int:
        signed = word - 0x10000 if word & 0x8000 else word
        # Bits 3:0 are always 0; an arithmetic shift keeps the sign.
        return signed >> 4
