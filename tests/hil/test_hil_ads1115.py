"""The ADS1115/ADS1015 drivers against the emulated chips: values, wire bytes, timing, faults."""

from __future__ import annotations

import errno
import itertools
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device.clock import ManualClock
from device.errors import (
    ConversionTimeoutError,
    DriverSettingError,
    I2CBusError,
    I2CDeviceMissingError,
    SensesError,
)
from device.nose.ads1115 import ADS1015, ADS1115, PGA_FULL_SCALE_V, ADS1x15
from hardware.sim.ads1115 import EmulatedADS1x15, EmulatedADS1015, EmulatedADS1115
from hardware.sim.faults import FaultInjector
from hardware.sim.i2c_bus import Direction, EmulatedI2CBus, WireMessage

VDD_V = 3.3
PIN_LIMIT_V = VDD_V + 0.3
CHIPS: list[tuple[type[ADS1x15], type[EmulatedADS1x15]]] = [
    (ADS1115, EmulatedADS1115),
    (ADS1015, EmulatedADS1015),
]
SETTINGS = [
    (driver, emulator, pga_v, rate)
    for driver, emulator in CHIPS
    for pga_v, rate in itertools.product(PGA_FULL_SCALE_V, driver.DATA_RATES_SPS)
]


def _rig(
    driver: type[ADS1x15], emulator: type[EmulatedADS1x15], pins: dict[int, float]
) -> tuple[ADS1x15, ManualClock]:
    clock = ManualClock()
    bus = EmulatedI2CBus(1)
    bus.attach(emulator(0x48, clock=clock, input_voltage=pins.__getitem__, vdd_v=VDD_V))
    return driver(bus, 0x48, clock=clock), clock


@pytest.mark.parametrize(
    ("driver", "emulator", "pga_v", "rate"),
    SETTINGS,
    ids=[f"{d.CHIP_NAME}-{p}V-{r}SPS" for d, _, p, r in SETTINGS],
)
def test_voltage_round_trip_within_one_lsb_at_every_gain_and_rate(
    driver: type[ADS1x15], emulator: type[EmulatedADS1x15], pga_v: float, rate: int
) -> None:
    top_v = min(pga_v, PIN_LIMIT_V)
    pins = {channel: top_v * fraction for channel, fraction in enumerate([0, 0.1, 0.5, 0.999])}
    adc, _ = _rig(driver, emulator, pins)

    for channel, input_v in pins.items():
        measured_v = adc.read_voltage(channel, pga_v=pga_v, data_rate_sps=rate)
        assert measured_v == pytest.approx(input_v, abs=adc.lsb_v(pga_v))


@given(
    chip=st.sampled_from(CHIPS),
    pga_v=st.sampled_from(list(PGA_FULL_SCALE_V)),
    channel=st.integers(0, 3),
    fraction=st.floats(0.0, 1.0),
    data=st.data(),
)
def test_random_voltages_round_trip_within_one_lsb(
    chip: tuple[type[ADS1x15], type[EmulatedADS1x15]],
    pga_v: float,
    channel: int,
    fraction: float,
    data: st.DataObject,
) -> None:
    driver, emulator = chip
    rate = data.draw(st.sampled_from(list(driver.DATA_RATES_SPS)))
    input_v = fraction * min(pga_v - driver.lsb_v(pga_v), PIN_LIMIT_V)
    adc, _ = _rig(driver, emulator, {0: 0.0, 1: 0.0, 2: 0.0, 3: 0.0} | {channel: input_v})

    measured_v = adc.read_voltage(channel, pga_v=pga_v, data_rate_sps=rate)

    assert measured_v == pytest.approx(input_v, abs=adc.lsb_v(pga_v))


def test_wire_bytes_for_ain0_at_4v096_and_128_sps(
    adc: ADS1115, bus: EmulatedI2CBus, pin_voltages: dict[int, float]
) -> None:
    pin_voltages[0] = 1.0

    assert adc.read_raw(0, pga_v=4.096, data_rate_sps=128) == 8000

    assert bus.log == [
        WireMessage("write", 0x48, bytes([0x01, 0xC3, 0x83])),  # config: OS, AIN0, ±4.096, 128
        WireMessage("write", 0x48, bytes([0x01])),  # poll the OS bit...
        WireMessage("read", 0x48, bytes([0xC3, 0x83])),  # ...idle: done
        WireMessage("write", 0x48, bytes([0x00])),
        WireMessage("read", 0x48, bytes([0x1F, 0x40])),  # 8000 counts
    ]


def test_config_word_encodes_channel_gain_and_rate(adc: ADS1115, bus: EmulatedI2CBus) -> None:
    adc.read_raw(3, pga_v=0.256, data_rate_sps=860)

    assert bus.log is not None
    # OS | MUX 111 (AIN3) | PGA 101 | single-shot | DR 111 | comparator off
    assert bus.log[0] == WireMessage("write", 0x48, bytes([0x01, 0xFB, 0xE3]))


def test_negative_readings_use_twos_complement(
    adc: ADS1115, pin_voltages: dict[int, float]
) -> None:
    # A single-ended input a little below GND (within the ESD clamp) reads negative.
    pin_voltages[2] = -0.1

    assert adc.read_raw(2, pga_v=4.096) == -800


@pytest.mark.parametrize(
    ("driver", "emulator", "full_scale_counts"),
    [
        (ADS1115, EmulatedADS1115, 32767),
        (ADS1015, EmulatedADS1015, 2047),
    ],
)
def test_inputs_beyond_full_scale_saturate(
    driver: type[ADS1x15], emulator: type[EmulatedADS1x15], full_scale_counts: int
) -> None:
    adc, _ = _rig(driver, emulator, {0: 3.0, 1: 0.0, 2: 0.0, 3: 0.0})

    assert adc.read_raw(0, pga_v=1.024) == full_scale_counts


def test_inputs_above_the_supply_are_clamped_by_the_pins(
    adc: ADS1115, pin_voltages: dict[int, float]
) -> None:
    pin_voltages[0] = 5.0  # an MQ module's output wired without a divider

    assert adc.read_voltage(0, pga_v=6.144) == pytest.approx(PIN_LIMIT_V, abs=ADS1115.lsb_v(6.144))


@pytest.mark.parametrize("rate", list(ADS1115.DATA_RATES_SPS))
def test_a_read_takes_one_conversion_time(adc: ADS1115, clock: ManualClock, rate: int) -> None:
    start_s = clock.monotonic()

    adc.read_raw(0, data_rate_sps=rate)

    assert clock.monotonic() - start_s == pytest.approx(1 / rate, rel=1e-9)


def test_a_slow_oscillator_is_waited_for(
    adc: ADS1115, emulated_adc: EmulatedADS1115, clock: ManualClock, pin_voltages: dict[int, float]
) -> None:
    emulated_adc.oscillator_error = 0.1
    pin_voltages[0] = 2.0
    start_s = clock.monotonic()

    assert adc.read_voltage(0, data_rate_sps=8) == pytest.approx(2.0, abs=ADS1115.lsb_v(4.096))

    elapsed_s = clock.monotonic() - start_s
    assert 1.1 / 8 <= elapsed_s <= 1.2 / 8  # polled until ready, at most one poll late


@pytest.mark.parametrize("rate", [8, 128, 860])
def test_a_conversion_that_never_completes_times_out(
    adc: ADS1115, faults: FaultInjector, clock: ManualClock, rate: int
) -> None:
    faults.stall_conversions(0x48)
    start_s = clock.monotonic()

    with pytest.raises(ConversionTimeoutError) as caught:
        adc.read_raw(1, data_rate_sps=rate)

    assert clock.monotonic() - start_s == pytest.approx(2 / rate + 0.005)
    message = str(caught.value)
    assert "ADS1115" in message
    assert "0x48" in message
    assert "channel 1" in message
    assert isinstance(caught.value, TimeoutError)


def test_no_chip_at_the_address_names_bus_and_address(
    bus: EmulatedI2CBus, clock: ManualClock
) -> None:
    adc = ADS1115(bus, 0x49, clock=clock, bus_number=1)

    with pytest.raises(I2CDeviceMissingError) as caught:
        adc.read_raw(0)

    message = str(caught.value)
    assert "0x49" in message
    assert "I2C bus 1" in message
    assert "ADDR pin" in message
    assert caught.value.errno == errno.EREMOTEIO
    assert isinstance(caught.value.__cause__, OSError)


@pytest.mark.parametrize(
    ("inject", "error"),
    [
        (FaultInjector.stall_conversions, ConversionTimeoutError),
        (FaultInjector.nack, I2CDeviceMissingError),
        (FaultInjector.disconnect, I2CDeviceMissingError),
    ],
    ids=["stalled", "nacking", "unplugged"],
)
def test_reads_fail_while_a_fault_lasts_and_work_once_it_clears(
    adc: ADS1115,
    faults: FaultInjector,
    pin_voltages: dict[int, float],
    inject: Callable[[FaultInjector, int], None],
    error: type[Exception],
) -> None:
    inject(faults, 0x48)
    with pytest.raises(error):
        adc.read_raw(0)

    faults.clear()
    pin_voltages[0] = 1.5
    assert adc.read_voltage(0) == pytest.approx(1.5, abs=ADS1115.lsb_v(4.096))


@pytest.mark.parametrize("direction", ["write", "read"])
def test_eio_is_a_bus_error_and_the_next_read_works(
    adc: ADS1115, faults: FaultInjector, pin_voltages: dict[int, float], direction: Direction
) -> None:
    pin_voltages[0] = 1.0
    faults.fail_next(0x48, direction=direction)

    with pytest.raises(I2CBusError) as caught:
        adc.read_raw(0)

    assert caught.value.errno == errno.EIO
    assert "0x48" in str(caught.value)
    assert "pull-up" in str(caught.value)
    assert adc.read_raw(0) == 8000


def test_an_eio_storm_fails_some_reads_but_never_returns_a_wrong_value(
    adc: ADS1115, faults: FaultInjector, pin_voltages: dict[int, float]
) -> None:
    pin_voltages[0] = 1.0
    faults.eio_storm(0.1, seed=7)
    outcomes: list[int | None] = []
    for _ in range(100):
        try:
            outcomes.append(adc.read_raw(0))
        except I2CBusError:
            outcomes.append(None)

    assert outcomes.count(None) > 10
    assert set(outcomes) == {None, 8000}

    faults.clear()
    assert [adc.read_raw(0) for _ in range(20)] == [8000] * 20


def test_an_unplugged_chip_is_missing_until_plugged_back(
    adc: ADS1115, faults: FaultInjector
) -> None:
    faults.disconnect(0x48)
    with pytest.raises(I2CDeviceMissingError):
        adc.probe()

    faults.reconnect(0x48)
    assert adc.probe() == 0x8583


def test_probe_reads_the_config_register(adc: ADS1115, bus: EmulatedI2CBus) -> None:
    assert adc.probe() == 0x8583
    assert bus.log == [WireMessage("write", 0x48, b"\x01"), WireMessage("read", 0x48, b"\x85\x83")]


def test_lsb_sizes() -> None:
    assert ADS1115.lsb_v(4.096) == pytest.approx(125e-6)
    assert ADS1115.lsb_v(0.256) == pytest.approx(7.8125e-6)
    assert ADS1015.lsb_v(4.096) == pytest.approx(2e-3)


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (lambda adc: adc.read_raw(0, pga_v=3.3), "6.144, 4.096, 2.048, 1.024, 0.512, 0.256"),
        (lambda adc: adc.read_raw(0, data_rate_sps=100), "8, 16, 32, 64, 128, 250, 475, 860"),
        (lambda adc: adc.read_raw(4), "channels 0-3"),
        (lambda adc: adc.lsb_v(5.0), "choose pga_v from"),
    ],
    ids=["gain", "rate", "channel", "lsb"],
)
def test_settings_the_chip_lacks_are_rejected_with_the_allowed_values(
    adc: ADS1115, bus: EmulatedI2CBus, call: Callable[[ADS1115], object], expected: str
) -> None:
    with pytest.raises(DriverSettingError, match=expected):
        call(adc)
    assert bus.log == []  # rejected before touching the bus


def test_the_ads1015_rejects_ads1115_rates(bus: EmulatedI2CBus, clock: ManualClock) -> None:
    adc = ADS1015(bus, 0x48, clock=clock)

    with pytest.raises(ValueError, match="128, 250, 490, 920, 1600, 2400, 3300"):
        adc.read_raw(0, data_rate_sps=8)


def test_addresses_outside_0x48_to_0x4b_are_rejected(
    bus: EmulatedI2CBus, clock: ManualClock
) -> None:
    with pytest.raises(DriverSettingError, match="0x50") as caught:
        ADS1115(bus, 0x50, clock=clock)

    assert isinstance(caught.value, SensesError)
    assert isinstance(caught.value, ValueError)
    assert "0x4B (to SCL)" in str(caught.value)
