"""The whole nose on emulated hardware: a real beef recording → MQ physics → emulated ADS1115
and SHT31 → the real drivers → sampler. Faults injected on the bus must show up as Health
events, never as a crash, and the nose must recover when they clear."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from device.clock import ManualClock
from device.config import Config
from device.events import ChannelStatus, Health, HealthStatus, NoseReading
from device.nose.hardware import open_nose_chips
from device.nose.sampler import CLEAN_SAMPLES_TO_RECOVER, NoseSampler
from hardware.sim.nose import EmulatedNose

WARMUP_S = 120.0


@dataclass
class Rig:
    clock: ManualClock
    emulation: EmulatedNose
    sampler: NoseSampler

    def sample(self) -> tuple[NoseReading, list[Health]]:
        reading, health = self.sampler.sample()
        self.clock.advance(10.0)
        return reading, health

    def value(self, reading: NoseReading, sensor: str) -> object:
        return next(v for v in reading.sensors if v.name == sensor)


@pytest.fixture
def rig() -> Rig:
    config = Config()
    config = config.model_copy(
        update={"nose": config.nose.model_copy(update={"warmup_s": WARMUP_S})}
    )
    clock = ManualClock()
    emulation = EmulatedNose.from_config(config, clock)
    chips = open_nose_chips(config.nose, emulation.bus, clock, bus_number=1)
    sampler = NoseSampler(config.nose, chips.adcs, chips.climate, clock)
    return Rig(clock, emulation, sampler)


def _components(health: list[Health]) -> dict[str, HealthStatus]:
    return {h.component: h.status for h in health}


def test_readings_reproduce_the_recorded_resistances(rig: Rig) -> None:
    reading, health = rig.sample()
    assert health == []
    recording = rig.emulation.scene.recording
    for value in reading.sensors:
        recorded = float(recording.sensor_rs(value.name)[0])
        assert value.rs_kohm == pytest.approx(recorded, rel=0.01), value.name
    assert reading.temperature_c == pytest.approx(float(recording.temperature_c[0]), abs=0.05)
    assert reading.humidity_pct == pytest.approx(float(recording.humidity_pct[0]), abs=0.05)


def test_warm_up_is_marked_not_hidden(rig: Rig) -> None:
    first, _ = rig.sample()
    assert first.warming_up
    assert all(v.status is ChannelStatus.WARMING_UP and v.rs_kohm for v in first.sensors)
    rig.clock.advance(WARMUP_S)
    later, _ = rig.sample()
    assert not later.warming_up
    assert {v.status for v in later.sensors} == {ChannelStatus.UNCALIBRATED}


def test_a_single_eio_is_retried_and_reported_as_degraded_then_recovers(rig: Rig) -> None:
    rig.emulation.faults.fail_next(0x48, count=1)
    reading, health = rig.sample()
    assert all(v.rs_kohm is not None for v in reading.sensors)
    assert _components(health) == {"nose.adc@0x48": HealthStatus.DEGRADED}
    recovered: list[Health] = []
    for _ in range(CLEAN_SAMPLES_TO_RECOVER):
        recovered += rig.sample()[1]
    assert _components(recovered) == {"nose.adc@0x48": HealthStatus.OK}


def test_an_eio_storm_never_stops_the_sampler(rig: Rig) -> None:
    rig.emulation.faults.eio_storm(0.1, seed=7)
    samples = [rig.sample() for _ in range(30)]
    values = [v for reading, _ in samples for v in reading.sensors]
    assert sum(v.rs_kohm is not None for v in values) > 0.95 * len(values)
    reported = {h.component: h.status for _, health in samples for h in health}
    assert reported["nose.adc@0x48"] is HealthStatus.DEGRADED
    rig.emulation.faults.clear()
    reading, _ = rig.sample()
    assert all(v.rs_kohm is not None for v in reading.sensors)


def test_a_missing_chip_names_bus_and_address_and_the_rest_keeps_working(rig: Rig) -> None:
    rig.emulation.faults.disconnect(0x49)
    reading, health = rig.sample()
    failed = [h for h in health if h.status is HealthStatus.FAILED]
    assert [h.component for h in failed] == ["nose.adc@0x49"]
    assert "0x49" in failed[0].message and "bus 1" in failed[0].message
    on_0x49 = {s.name for s in rig.sampler.config.sensors if s.adc_address == 0x49}
    for value in reading.sensors:
        if value.name in on_0x49:
            assert value.status is ChannelStatus.ERROR
        else:
            assert value.rs_kohm is not None
    rig.emulation.faults.reconnect(0x49)
    _, health = rig.sample()
    assert _components(health) == {"nose.adc@0x49": HealthStatus.OK}


def test_a_conversion_that_never_completes_times_out_instead_of_hanging(rig: Rig) -> None:
    rig.emulation.faults.stall_conversions(0x4A)
    started_s = rig.clock.monotonic()
    _, health = rig.sample()
    # Three attempts at the 128 SPS deadline (2 x 7.8 ms + 5 ms) plus the other chips.
    assert rig.clock.monotonic() - started_s < 12.0
    failed = next(h for h in health if h.component == "nose.adc@0x4a")
    assert failed.status is HealthStatus.FAILED
    assert "0x4A" in failed.message and "did not finish a conversion" in failed.message
    rig.emulation.faults.clear()
    _, health = rig.sample()
    assert _components(health) == {"nose.adc@0x4a": HealthStatus.OK}


def test_a_disconnected_sensor_reads_the_rail_and_warms_up_again_when_back(rig: Rig) -> None:
    rig.clock.advance(WARMUP_S)
    rig.sample()
    rig.emulation.scene.disconnect("MQ4")
    reading, health = rig.sample()
    assert rig.value(reading, "MQ4").status is ChannelStatus.DISCONNECTED  # type: ignore[attr-defined]
    assert _components(health) == {"nose.sensor.MQ4": HealthStatus.FAILED}
    assert "unplugged" in health[0].message
    rig.emulation.scene.reconnect("MQ4")
    reading, health = rig.sample()
    assert _components(health) == {"nose.sensor.MQ4": HealthStatus.OK}
    assert rig.value(reading, "MQ4").status is ChannelStatus.WARMING_UP  # type: ignore[attr-defined]


def test_a_missing_climate_chip_leaves_the_gas_readings(rig: Rig) -> None:
    rig.emulation.faults.disconnect(0x44)
    reading, health = rig.sample()
    assert reading.temperature_c is None and reading.humidity_pct is None
    assert _components(health) == {"nose.climate": HealthStatus.FAILED}
    assert all(v.rs_kohm is not None for v in reading.sensors)
