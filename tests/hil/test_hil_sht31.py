"""The SHT31 driver against the emulated chip: values, wire bytes, NACK-while-busy, CRC."""

from __future__ import annotations

import errno

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device.clock import ManualClock
from device.errors import (
    ConversionTimeoutError,
    DriverSettingError,
    I2CBusError,
    I2CDeviceMissingError,
)
from device.nose.sht31 import READ_DEADLINE_S, SHT31, ClimateSample, sht31_crc8
from hardware.sim.faults import FaultInjector
from hardware.sim.i2c_bus import EmulatedI2CBus, WireMessage
from hardware.sim.sht31 import EmulatedSHT31

TEMPERATURE_LSB_C = 175 / 65535
HUMIDITY_LSB_PCT = 100 / 65535


def test_crc_matches_the_datasheet_example() -> None:
    assert sht31_crc8(b"\xbe\xef") == 0x92


@given(temperature_c=st.floats(-45.0, 130.0), humidity_pct=st.floats(0.0, 100.0))
def test_climate_round_trip_within_one_lsb(temperature_c: float, humidity_pct: float) -> None:
    clock = ManualClock()
    bus = EmulatedI2CBus(1)
    bus.attach(EmulatedSHT31(clock=clock, climate=lambda: (temperature_c, humidity_pct)))

    sample = SHT31(bus, clock=clock).measure()

    assert sample.temperature_c == pytest.approx(temperature_c, abs=TEMPERATURE_LSB_C)
    assert sample.humidity_pct == pytest.approx(humidity_pct, abs=HUMIDITY_LSB_PCT)


def test_wire_bytes_are_a_command_then_a_plain_six_byte_read(
    sht31: SHT31, bus: EmulatedI2CBus, room: dict[str, float]
) -> None:
    room.update(temperature_c=-45.0, humidity_pct=100.0)

    assert sht31.measure() == ClimateSample(temperature_c=-45.0, humidity_pct=100.0)

    assert bus.log == [
        WireMessage("write", 0x44, b"\x24\x00"),
        # No register byte before the read: the SHT31 would take it for a command.
        WireMessage("read", 0x44, b"\x00\x00\x81\xff\xff\xac"),
    ]


def test_a_slow_measurement_is_retried_until_ready(
    sht31: SHT31, emulated_sht31: EmulatedSHT31, clock: ManualClock, room: dict[str, float]
) -> None:
    emulated_sht31.measurement_s = 0.025  # beyond the 15.5 ms the driver waits first
    start_s = clock.monotonic()

    sample = sht31.measure()

    assert sample.temperature_c == pytest.approx(room["temperature_c"], abs=TEMPERATURE_LSB_C)
    assert 0.025 <= clock.monotonic() - start_s <= 0.026


def test_a_measurement_that_never_finishes_times_out(
    sht31: SHT31, faults: FaultInjector, clock: ManualClock
) -> None:
    faults.stall_conversions(0x44)
    start_s = clock.monotonic()

    with pytest.raises(ConversionTimeoutError) as caught:
        sht31.measure()

    assert clock.monotonic() - start_s == pytest.approx(READ_DEADLINE_S)
    assert "SHT31" in str(caught.value)
    assert "0x44" in str(caught.value)

    faults.clear()
    assert sht31.measure().humidity_pct == pytest.approx(55.0, abs=HUMIDITY_LSB_PCT)


@pytest.mark.parametrize("byte_index", range(6))
def test_a_corrupted_byte_is_caught_by_the_crc(
    sht31: SHT31, faults: FaultInjector, byte_index: int
) -> None:
    faults.corrupt_next_read(0x44, byte_index=byte_index, xor_mask=0x04)

    with pytest.raises(I2CBusError, match="CRC") as caught:
        sht31.measure()

    assert caught.value.errno == errno.EBADMSG
    assert ("temperature" if byte_index < 3 else "humidity") in str(caught.value)
    assert sht31.measure().temperature_c == pytest.approx(21.5, abs=TEMPERATURE_LSB_C)


def test_eio_on_the_read_is_a_bus_error_not_a_retry(sht31: SHT31, faults: FaultInjector) -> None:
    faults.fail_next(0x44, direction="read")

    with pytest.raises(I2CBusError) as caught:
        sht31.measure()

    assert caught.value.errno == errno.EIO
    assert "SHT31" in str(caught.value)


def test_no_chip_at_the_address_names_bus_and_address(
    bus: EmulatedI2CBus, clock: ManualClock
) -> None:
    with pytest.raises(I2CDeviceMissingError, match=r"0x45 on I2C bus 3"):
        SHT31(bus, 0x45, clock=clock, bus_number=3).measure()


def test_soft_reset_sends_its_command_and_drops_a_pending_result(
    sht31: SHT31, bus: EmulatedI2CBus, clock: ManualClock
) -> None:
    bus.write_i2c_block_data(0x44, 0x24, [0x00])  # someone started a measurement
    clock.sleep(0.02)

    sht31.soft_reset()

    assert bus.log is not None
    assert bus.log[-1] == WireMessage("write", 0x44, b"\x30\xa2")
    with pytest.raises(OSError) as caught:
        bus.read_byte(0x44)
    assert caught.value.errno == errno.EREMOTEIO
    assert sht31.measure().humidity_pct == pytest.approx(55.0, abs=HUMIDITY_LSB_PCT)


def test_addresses_other_than_0x44_and_0x45_are_rejected(
    bus: EmulatedI2CBus, clock: ManualClock
) -> None:
    with pytest.raises(DriverSettingError, match=r"0x44 \(low\), 0x45 \(high\)"):
        SHT31(bus, 0x48, clock=clock)
