"""The whole emulated nose: an I2C bus with three ADS1115s and an SHT31, fed by a gas scene.

The station's real drivers talk to this bus exactly as they talk to ``/dev/i2c-1``; only the
bus object differs. The wiring (which sensor is on which ADC channel, load resistors, dividers)
comes from the same config the real station uses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from device.clock import Clock
from device.config import Config
from device.nose.recording import read_recording
from hardware.sim.ads1115 import EmulatedADS1015, EmulatedADS1115
from hardware.sim.faults import FaultInjector
from hardware.sim.i2c_bus import EmulatedI2CBus
from hardware.sim.scene import GasScene, WiredSensor
from hardware.sim.sht31 import EmulatedSHT31


@dataclass
class EmulatedNose:
    bus: EmulatedI2CBus
    scene: GasScene
    faults: FaultInjector
    adcs: dict[int, EmulatedADS1115 | EmulatedADS1015]
    climate: EmulatedSHT31

    @classmethod
    def from_config(
        cls,
        config: Config,
        clock: Clock,
        *,
        hold_first_row_s: float = 0.0,
        preheated_s: float = math.inf,
    ) -> EmulatedNose:
        """Build the chips the config wires up, playing ``config.emulation.recording``.

        ``hold_first_row_s``: scene time the recording's first row is held before it starts
        playing (heater warm-up, clean-air calibration); ``preheated_s``: how long the heaters
        were already on (``inf``: no warm-up transient).
        """
        nose = config.nose
        recording = read_recording(config.emulation.recording)
        scene = GasScene(
            recording,
            clock,
            start_minute=config.emulation.start_minute,
            preheated_s=preheated_s,
            warmup_s=hold_first_row_s,
            noise_fraction=config.emulation.noise_fraction,
            seed=config.emulation.seed,
        )
        missing = [s.name for s in nose.sensors if s.name not in recording.sensors]
        if missing:
            raise ValueError(
                f"the recording {recording.path} has no column for {', '.join(missing)}; "
                "rename the sensors in [[nose.sensors]] or choose another recording"
            )
        bus = EmulatedI2CBus(config.hardware.i2c_bus)
        adcs: dict[int, EmulatedADS1115 | EmulatedADS1015] = {}
        for adc in nose.adcs:
            wiring = {
                s.channel: WiredSensor(s.name, s.load_kohm, s.supply_v, s.adc_divider_ratio)
                for s in nose.sensors
                if s.adc_address == adc.address
            }

            def pin_voltage(pin: int, wiring: dict[int, WiredSensor] = wiring) -> float:
                wired = wiring.get(pin)
                return scene.adc_voltage(wired) if wired is not None else 0.0

            chip_class = EmulatedADS1115 if adc.chip == "ads1115" else EmulatedADS1015
            chip = chip_class(adc.address, clock=clock, input_voltage=pin_voltage)
            bus.attach(chip)
            adcs[adc.address] = chip
        climate = EmulatedSHT31(nose.climate.address, clock=clock, climate=scene.climate)
        bus.attach(climate)
        faults = FaultInjector(bus)
        return cls(bus=bus, scene=scene, faults=faults, adcs=adcs, climate=climate)
