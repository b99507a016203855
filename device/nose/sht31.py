"""Driver for the Sensirion SHT31 temperature and humidity sensor next to the MQ sensors.

Commands, timing, CRC and conversion formulas from Sensirion's "Datasheet SHT3x-DIS"
(sections 4.3 single-shot mode, 4.9 soft reset, 4.12 checksum, 4.13 conversion; table 4
measurement durations).

Chosen over the BME280 because every 16-bit word carries a CRC-8 (corruption on a long cable
is detected, not logged as weather), there are no calibration trim registers to read, it
measures humidity up to 100 %RH (a food box gets that humid), and its addresses 0x44/0x45 do
not collide with the ADS1115's 0x48-0x4B.

Measurements are single-shot, high repeatability, with clock stretching disabled: the Pi's I2C
controller handles clock stretching badly, so instead the chip NACKs reads until the result
is ready and the driver retries until a deadline.
"""

from __future__ import annotations

import ctypes
import errno
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from smbus2 import i2c_msg

from device.clock import Clock
from device.errors import ConversionTimeoutError, I2CBusError
from device.nose.i2c import (
    NACK_ERRNOS,
    I2CBus,
    I2CChip,
    i2c_error_from_os_error,
)

COMMAND_SINGLE_SHOT_HIGH_NO_STRETCH = 0x2400
COMMAND_SOFT_RESET = 0x30A2

MEASUREMENT_MAX_S = 0.0155
"""Longest single-shot measurement at high repeatability (datasheet table 4)."""
SOFT_RESET_MAX_S = 0.0015
"""Time the chip needs after a soft reset before it accepts commands (datasheet table 4)."""
READ_DEADLINE_S = 2 * MEASUREMENT_MAX_S
"""Stop retrying a NACKed read this long after the command: twice the longest measurement
leaves room for Linux scheduling jitter; a chip silent that long is gone or stuck."""
READ_RETRY_S = 0.001

CRC8_POLYNOMIAL = 0x31
CRC8_INIT = 0xFF


def sht31_crc8(data: bytes | Sequence[int]) -> int:
    """CRC-8 of the SHT3x (polynomial 0x31, init 0xFF, no final XOR); 0xBEEF -> 0x92."""
    crc = CRC8_INIT
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ CRC8_POLYNOMIAL if crc & 0x80 else crc << 1) & 0xFF
    return crc


@dataclass(frozen=True, slots=True)
class ClimateSample:
    """One temperature and humidity reading."""

    temperature_c: float
    humidity_pct: float


class SHT31(I2CChip):
    """One SHT31 on an I2C bus."""

    CHIP_NAME = "SHT31"
    ADDRESSES: ClassVar[Mapping[int, str]] = {0x44: "low", 0x45: "high"}

    def __init__(
        self, bus: I2CBus, address: int = 0x44, *, clock: Clock, bus_number: int = 1
    ) -> None:
        super().__init__(bus, address, clock=clock, bus_number=bus_number)

    def measure(self) -> ClimateSample:
        """Measure temperature and humidity once (takes about 15 ms)."""
        with self._lock:
            self._send(COMMAND_SINGLE_SHOT_HIGH_NO_STRETCH, "starting a measurement")
            deadline_s = self._clock.monotonic() + READ_DEADLINE_S
            self._clock.sleep(MEASUREMENT_MAX_S)
            data = self._read_result(deadline_s)
        temperature_raw = self._checked_word(data[0:3], "temperature")
        humidity_raw = self._checked_word(data[3:6], "humidity")
        return ClimateSample(
            temperature_c=-45.0 + 175.0 * temperature_raw / 65535.0,
            humidity_pct=100.0 * humidity_raw / 65535.0,
        )

    def soft_reset(self) -> None:
        """Reset the chip to its power-on state, cancelling any measurement."""
        with self._lock:
            self._send(COMMAND_SOFT_RESET, "sending a soft reset")
            self._clock.sleep(SOFT_RESET_MAX_S)

    def _send(self, command: int, action: str) -> None:
        # The 16-bit command goes MSB first; smbus2 calls the first byte the "register".
        with self._translate(action):
            self._bus.write_i2c_block_data(self.address, command >> 8, [command & 0xFF])

    def _read_result(self, deadline_s: float) -> bytes:
        # A raw read, not read_i2c_block_data: that would first write a "register" byte, which
        # the SHT31 would take as the start of a new command.
        while True:
            message = i2c_msg.read(self.address, 6)
            try:
                self._bus.i2c_rdwr(message)
            except OSError as e:
                if e.errno not in NACK_ERRNOS:
                    raise i2c_error_from_os_error(
                        e,
                        bus_number=self.bus_number,
                        address=self.address,
                        device=self.CHIP_NAME,
                        action="reading a measurement",
                    ) from e
                remaining_s = deadline_s - self._clock.monotonic()
                if remaining_s <= 0:
                    raise ConversionTimeoutError(
                        f"SHT31 at address 0x{self.address:02X} on I2C bus {self.bus_number} "
                        f"did not deliver a measurement within {READ_DEADLINE_S * 1e3:.0f} ms "
                        "(it NACKed every read): check that it is still connected, then "
                        "power-cycle it or call soft_reset()"
                    ) from e
                self._clock.sleep(min(READ_RETRY_S, remaining_s))
                continue
            return ctypes.string_at(message.buf, 6)

    def _checked_word(self, word_and_crc: bytes, quantity: str) -> int:
        expected_crc = sht31_crc8(word_and_crc[:2])
        if word_and_crc[2] != expected_crc:
            raise I2CBusError(
                errno.EBADMSG,
                f"SHT31 at address 0x{self.address:02X} on I2C bus {self.bus_number} sent a "
                f"{quantity} word 0x{word_and_crc[:2].hex().upper()} with CRC "
                f"0x{word_and_crc[2]:02X}, expected 0x{expected_crc:02X}: the data was "
                "corrupted on the wire; check the cable length, connectors and pull-up resistors",
            )
        return (word_and_crc[0] << 8) | word_and_crc[1]
