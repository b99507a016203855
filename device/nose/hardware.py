"""Opening the nose's chips: the same drivers on the real bus and on the emulated one."""

from __future__ import annotations

from dataclasses import dataclass

from device.clock import Clock
from device.config import NoseConfig
from device.nose.ads1115 import ADS1015, ADS1115, ADS1x15
from device.nose.i2c import I2CBus
from device.nose.sht31 import SHT31


@dataclass(frozen=True)
class NoseChips:
    adcs: dict[int, ADS1x15]
    climate: SHT31


def open_nose_chips(config: NoseConfig, bus: I2CBus, clock: Clock, bus_number: int) -> NoseChips:
    """Driver objects for every configured chip. Nothing is sent on the bus yet: a chip that
    is missing shows up on the first sample as a Health event, not as a crash at start-up."""
    adcs: dict[int, ADS1x15] = {}
    for adc in config.adcs:
        chip = ADS1115 if adc.chip == "ads1115" else ADS1015
        adcs[adc.address] = chip(bus, adc.address, clock=clock, bus_number=bus_number)
    climate = SHT31(bus, config.climate.address, clock=clock, bus_number=bus_number)
    return NoseChips(adcs=adcs, climate=climate)
