"""Emulated TI ADS1115 and ADS1015 ADCs, byte-exact behind :class:`EmulatedI2CBus`.

Registers, reset values and timing follow TI SBAS444 (ADS111x) and SBAS473 (ADS101x) as
summarised in research note ``enose.md`` §4.5; values marked there as unverified are marked
here too. The tables below are transcribed from the datasheets independently of the driver
(:mod:`device.nose.ads1115`), so a typo in either shows up as a failing round-trip test.

Behaviour:

* The pointer register persists. A 1-byte write sets it, a 3-byte write sets it and then the
  register (MSB, LSB); the bytes of a 2-byte write after the pointer are dropped (the chip
  needs both halves), bytes after the third are ignored, as are pointer bits 7:2.
* A read returns the pointed register MSB first; a read longer than 2 bytes repeats the two
  bytes (unverified on silicon). Each read message starts again at the MSB.
* Writing OS=1 in single-shot mode starts a conversion, unless one is running (then OS=1 has
  no effect, SBAS444 config register). OS reads 0 until ``(1 + oscillator_error) / DR``
  seconds have passed on the injected clock, then 1. In continuous mode (MODE=0) a new result
  lands every period and OS reads 0 (unverified).
* The inputs are sampled when a conversion starts (the real delta-sigma converter averages
  over the period; signals that change within one conversion are out of scope). Each pin is
  clipped to GND-0.3 V..VDD+0.3 V, beyond which the ESD diodes clamp it, then quantised with
  the PGA's full scale, rounding to nearest and saturating at 0x7FFF / 0x8000.
* ``stuck = True`` (set by :class:`~hardware.sim.faults.FaultInjector`) freezes conversions:
  OS stays 0 until it is cleared.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import ClassVar

from device.clock import Clock

CONFIG_RESET = 0x8583
LO_THRESH_RESET = 0x8000
HI_THRESH_RESET = 0x7FFF
CONVERSION_RESET = 0x0000  # unverified

OS_BIT = 0x8000
MODE_BIT = 0x0100
INPUT_CLAMP_MARGIN_V = 0.3

PGA_BITS_FULL_SCALE_V: Mapping[int, float] = {
    0b000: 6.144,
    0b001: 4.096,
    0b010: 2.048,
    0b011: 1.024,
    0b100: 0.512,
    0b101: 0.256,
    0b110: 0.256,
    0b111: 0.256,
}
MUX_DIFFERENTIAL_PINS: Mapping[int, tuple[int, int]] = {
    0b000: (0, 1),
    0b001: (0, 3),
    0b010: (1, 3),
    0b011: (2, 3),
}
"""MUX settings 000-011: (positive, negative) pins; 100-111 are AIN0-AIN3 against GND."""


class EmulatedADS1x15:
    """Shared by :class:`EmulatedADS1115` and :class:`EmulatedADS1015`."""

    RESOLUTION_BITS: ClassVar[int]
    DR_BITS_SPS: ClassVar[Mapping[int, int]]

    def __init__(
        self,
        address: int = 0x48,
        *,
        clock: Clock,
        input_voltage: Callable[[int], float],
        vdd_v: float = 3.3,
        oscillator_error: float = 0.0,
    ) -> None:
        """``input_voltage(pin)`` gives the voltage on AIN``pin`` (0-3) against GND.

        ``oscillator_error`` stretches every conversion (0.1: 10 % slower than 1/DR), as the
        chip's internal oscillator does.
        """
        if address not in (0x48, 0x49, 0x4A, 0x4B):
            raise ValueError(f"an ADS1x15 answers at 0x48-0x4B only, not 0x{address:02X}")
        self.address = address
        self.vdd_v = vdd_v
        self.oscillator_error = oscillator_error
        self.stuck = False
        self._clock = clock
        self._input_voltage = input_voltage
        self._pointer = 0
        self._config = CONFIG_RESET & ~OS_BIT
        self._lo_thresh = LO_THRESH_RESET
        self._hi_thresh = HI_THRESH_RESET
        self._conversion = CONVERSION_RESET
        self._converting = False
        self._continuous = False
        self._ready_at_s = 0.0
        self._pending_word = CONVERSION_RESET

    # --- I2CTarget -------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if not data:
            return
        self._update()
        self._pointer = data[0] & 0b11
        if len(data) >= 3:
            self._write_register(self._pointer, data[1] << 8 | data[2])

    def read(self, length: int) -> bytes:
        self._update()
        word = self._register(self._pointer)
        return (bytes([word >> 8, word & 0xFF]) * (length // 2 + 1))[:length]

    # --- registers -------------------------------------------------------------------------

    def _register(self, pointer: int) -> int:
        if pointer == 0b00:
            return self._conversion
        if pointer == 0b01:
            return self._config | (0 if self._converting else OS_BIT)
        if pointer == 0b10:
            return self._lo_thresh
        return self._hi_thresh

    def _write_register(self, pointer: int, value: int) -> None:
        if pointer == 0b00:
            return  # the conversion register is read-only
        if pointer == 0b10:
            self._lo_thresh = value
        elif pointer == 0b11:
            self._hi_thresh = value
        else:
            self._write_config(value)

    def _write_config(self, value: int) -> None:
        self._config = value & ~OS_BIT
        now_s = self._clock.monotonic()
        if not value & MODE_BIT:
            self._continuous = True
            self._start_conversion(now_s)
        elif self._continuous:
            # Leaving continuous mode powers the chip down (a real one finishes its current
            # conversion first; nobody reads that result).
            self._continuous = False
            self._converting = False
            if value & OS_BIT:
                self._start_conversion(now_s)
        elif value & OS_BIT and not self._converting:
            self._start_conversion(now_s)

    # --- conversions -----------------------------------------------------------------------

    def _start_conversion(self, now_s: float) -> None:
        self._converting = True
        self._pending_word = self._sample(self._config)
        self._ready_at_s = now_s + self._conversion_time_s()

    def _update(self) -> None:
        if not self._converting or self.stuck:
            return
        now_s = self._clock.monotonic()
        if now_s < self._ready_at_s:
            return
        self._conversion = self._pending_word
        if self._continuous:
            periods = math.floor((now_s - self._ready_at_s) / self._conversion_time_s()) + 1
            if periods > 1:
                # Conversions finished while nobody looked: the register holds the latest.
                self._conversion = self._sample(self._config)
            self._pending_word = self._sample(self._config)
            self._ready_at_s += periods * self._conversion_time_s()
        else:
            self._converting = False

    def _conversion_time_s(self) -> float:
        data_rate_sps = self.DR_BITS_SPS[(self._config >> 5) & 0b111]
        return (1.0 + self.oscillator_error) / data_rate_sps

    def _sample(self, config: int) -> int:
        """The conversion register word for the inputs now, with ``config``'s MUX and PGA."""
        mux = (config >> 12) & 0b111
        if mux in MUX_DIFFERENTIAL_PINS:
            positive, negative = MUX_DIFFERENTIAL_PINS[mux]
            input_v = self._pin_v(positive) - self._pin_v(negative)
        else:
            input_v = self._pin_v(mux - 0b100)
        full_scale_v = PGA_BITS_FULL_SCALE_V[(config >> 9) & 0b111]
        half_range = 1 << (self.RESOLUTION_BITS - 1)
        code = math.floor(input_v / full_scale_v * half_range + 0.5)
        code = max(-half_range, min(half_range - 1, code))
        return (code << (16 - self.RESOLUTION_BITS)) & 0xFFFF

    def _pin_v(self, pin: int) -> float:
        voltage = self._input_voltage(pin)
        return max(-INPUT_CLAMP_MARGIN_V, min(self.vdd_v + INPUT_CLAMP_MARGIN_V, voltage))


class EmulatedADS1115(EmulatedADS1x15):
    """16-bit, 8-860 SPS (SBAS444)."""

    RESOLUTION_BITS = 16
    DR_BITS_SPS: ClassVar[Mapping[int, int]] = {
        0b000: 8,
        0b001: 16,
        0b010: 32,
        0b011: 64,
        0b100: 128,
        0b101: 250,
        0b110: 475,
        0b111: 860,
    }


class EmulatedADS1015(EmulatedADS1x15):
    """12-bit left-justified, 128-3300 SPS (SBAS473)."""

    RESOLUTION_BITS = 12
    DR_BITS_SPS: ClassVar[Mapping[int, int]] = {
        0b000: 128,
        0b001: 250,
        0b010: 490,
        0b011: 920,
        0b100: 1600,
        0b101: 2400,
        0b110: 3300,
        0b111: 3300,
    }
