"""Emulated Sensirion SHT31 (single-shot, no clock stretching), behind :class:`EmulatedI2CBus`.

Follows Sensirion's "Datasheet SHT3x-DIS": a 2-byte command starts a measurement; until it is
done the chip NACKs its address (a NACKed read, errno 121, is how the host learns to wait);
then one read returns temperature MSB, LSB, CRC, humidity MSB, LSB, CRC, and the result is
gone (a second read NACKs until the next command). Soft reset (0x30A2) drops any result and
keeps the chip deaf for ``SOFT_RESET_S``. Unknown commands are NACKed.

``stuck = True`` (set by :class:`~hardware.sim.faults.FaultInjector`) keeps a measurement from
ever finishing.
"""

from __future__ import annotations

from collections.abc import Callable

from device.clock import Clock
from device.nose.sht31 import sht31_crc8
from hardware.sim.i2c_bus import nack_error

COMMAND_SINGLE_SHOT_HIGH_NO_STRETCH = 0x2400
COMMAND_SOFT_RESET = 0x30A2
MEASUREMENT_TYPICAL_S = 0.0125
"""Typical high-repeatability duration (datasheet table 4; the maximum is 15.5 ms)."""
SOFT_RESET_S = 0.001


def _ticks(value: float, low: float, span: float) -> int:
    """The 16-bit code for ``value`` on a scale from ``low`` to ``low + span``."""
    return max(0, min(0xFFFF, round((value - low) / span * 0xFFFF)))


def _word_with_crc(word: int) -> bytes:
    pair = bytes([word >> 8, word & 0xFF])
    return pair + bytes([sht31_crc8(pair)])


class EmulatedSHT31:
    """``climate()`` gives (temperature °C, relative humidity %) at the moment it is called."""

    def __init__(
        self,
        address: int = 0x44,
        *,
        clock: Clock,
        climate: Callable[[], tuple[float, float]],
        measurement_s: float = MEASUREMENT_TYPICAL_S,
    ) -> None:
        if address not in (0x44, 0x45):
            raise ValueError(f"an SHT31 answers at 0x44 or 0x45 only, not 0x{address:02X}")
        self.address = address
        self.measurement_s = measurement_s
        self.stuck = False
        self._clock = clock
        self._climate = climate
        self._result: bytes | None = None
        self._busy_until_s = 0.0
        self._measuring = False

    def write(self, data: bytes) -> None:
        now_s = self._clock.monotonic()
        self._check_awake(now_s)
        if len(data) < 2:
            return  # an address probe or half a command: acknowledged, nothing happens
        command = data[0] << 8 | data[1]
        if command == COMMAND_SINGLE_SHOT_HIGH_NO_STRETCH:
            # Sampled at the start: the chip measures T then RH within a few milliseconds.
            temperature_c, humidity_pct = self._climate()
            self._result = _word_with_crc(_ticks(temperature_c, -45.0, 175.0)) + _word_with_crc(
                _ticks(humidity_pct, 0.0, 100.0)
            )
            self._measuring = True
            self._busy_until_s = now_s + self.measurement_s
        elif command == COMMAND_SOFT_RESET:
            self._result = None
            self._measuring = False
            self._busy_until_s = now_s + SOFT_RESET_S
        else:
            raise nack_error(self.address)

    def read(self, length: int) -> bytes:
        self._check_awake(self._clock.monotonic())
        if self._result is None:
            raise nack_error(self.address)
        data, self._result = self._result, None
        return (data + b"\xff" * length)[:length]

    def _check_awake(self, now_s: float) -> None:
        if (self._measuring and self.stuck) or now_s < self._busy_until_s:
            raise nack_error(self.address)
        self._measuring = False
