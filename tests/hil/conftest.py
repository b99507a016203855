"""Hardware-in-the-loop fixtures: the real drivers against emulated chips on an emulated bus.

Everything runs on virtual time (a :class:`ManualClock`), so a 125 ms conversion costs nothing
and timing assertions are exact.
"""

from __future__ import annotations

import pytest

from device.clock import ManualClock
from device.nose.ads1115 import ADS1115
from device.nose.sht31 import SHT31
from hardware.sim.ads1115 import EmulatedADS1115
from hardware.sim.faults import FaultInjector
from hardware.sim.i2c_bus import EmulatedI2CBus
from hardware.sim.sht31 import EmulatedSHT31


class GuardedClock(ManualClock):
    """A ManualClock that fails the test when code keeps reading it without time moving.

    A loop that polls without sleeping would spin forever on virtual time; this turns that
    hang into a failure.
    """

    MAX_READS_WITHOUT_PROGRESS = 10_000

    def __init__(self) -> None:
        super().__init__()
        self._last_seen_s = -1.0
        self._reads_without_progress = 0

    def monotonic(self) -> float:
        now_s = super().monotonic()
        if now_s == self._last_seen_s:
            self._reads_without_progress += 1
            if self._reads_without_progress > self.MAX_READS_WITHOUT_PROGRESS:
                raise AssertionError("busy-wait: the clock was polled 10000 times without a sleep")
        else:
            self._last_seen_s = now_s
            self._reads_without_progress = 0
        return now_s


@pytest.fixture
def clock() -> GuardedClock:
    return GuardedClock()


@pytest.fixture
def bus() -> EmulatedI2CBus:
    return EmulatedI2CBus(1, log=True)


@pytest.fixture
def faults(bus: EmulatedI2CBus) -> FaultInjector:
    return FaultInjector(bus)


@pytest.fixture
def pin_voltages() -> dict[int, float]:
    """Voltage on AIN0-AIN3 of the emulated ADC; tests change it between reads."""
    return {0: 0.0, 1: 0.0, 2: 0.0, 3: 0.0}


@pytest.fixture
def emulated_adc(
    bus: EmulatedI2CBus, clock: GuardedClock, pin_voltages: dict[int, float]
) -> EmulatedADS1115:
    chip = EmulatedADS1115(0x48, clock=clock, input_voltage=pin_voltages.__getitem__)
    bus.attach(chip)
    return chip


@pytest.fixture
def adc(bus: EmulatedI2CBus, clock: GuardedClock, emulated_adc: EmulatedADS1115) -> ADS1115:
    return ADS1115(bus, 0x48, clock=clock, bus_number=1)


@pytest.fixture
def room() -> dict[str, float]:
    """The climate the emulated SHT31 measures; tests change it between reads."""
    return {"temperature_c": 21.5, "humidity_pct": 55.0}


@pytest.fixture
def emulated_sht31(
    bus: EmulatedI2CBus, clock: GuardedClock, room: dict[str, float]
) -> EmulatedSHT31:
    chip = EmulatedSHT31(
        0x44, clock=clock, climate=lambda: (room["temperature_c"], room["humidity_pct"])
    )
    bus.attach(chip)
    return chip


@pytest.fixture
def sht31(bus: EmulatedI2CBus, clock: GuardedClock, emulated_sht31: EmulatedSHT31) -> SHT31:
    return SHT31(bus, 0x44, clock=clock, bus_number=1)
