"""The emulated bus turns smbus2 calls into the wire messages of research note enose.md §4.5."""

from __future__ import annotations

import errno

import pytest
from smbus2 import i2c_msg

from device.clock import ManualClock
from hardware.sim.ads1115 import EmulatedADS1115
from hardware.sim.i2c_bus import EmulatedI2CBus, WireMessage


def test_read_word_data_returns_the_wire_bytes_little_endian(
    bus: EmulatedI2CBus, emulated_adc: EmulatedADS1115
) -> None:
    # Config resets to 0x8583; on the wire it is MSB first (0x85, 0x83), and SMBus words are
    # little-endian, so read_word_data hands back the byte-swapped 0x8385.
    assert bus.read_word_data(0x48, 0x01) == 0x8385
    assert bus.log == [WireMessage("write", 0x48, b"\x01"), WireMessage("read", 0x48, b"\x85\x83")]


def test_write_word_data_sends_the_low_byte_first(
    bus: EmulatedI2CBus, emulated_adc: EmulatedADS1115
) -> None:
    bus.write_word_data(0x48, 0x02, 0x3412)

    assert bus.log == [WireMessage("write", 0x48, b"\x02\x12\x34")]
    assert bus.read_i2c_block_data(0x48, 0x02, 2) == [0x12, 0x34]


def test_threshold_registers_have_their_reset_values(
    bus: EmulatedI2CBus, emulated_adc: EmulatedADS1115
) -> None:
    assert bus.read_i2c_block_data(0x48, 0x02, 2) == [0x80, 0x00]
    assert bus.read_i2c_block_data(0x48, 0x03, 2) == [0x7F, 0xFF]


def test_the_pointer_persists_and_each_read_starts_at_the_msb(
    bus: EmulatedI2CBus, emulated_adc: EmulatedADS1115
) -> None:
    bus.write_byte(0x48, 0x01)

    assert [bus.read_byte(0x48), bus.read_byte(0x48)] == [0x85, 0x85]
    assert bus.read_i2c_block_data(0x48, 0x03, 4) == [0x7F, 0xFF, 0x7F, 0xFF]
    assert bus.log is not None
    assert bus.log[:3] == [
        WireMessage("write", 0x48, b"\x01"),
        WireMessage("read", 0x48, b"\x85"),
        WireMessage("read", 0x48, b"\x85"),
    ]


def test_i2c_rdwr_fills_the_read_buffers(
    bus: EmulatedI2CBus, emulated_adc: EmulatedADS1115
) -> None:
    pointer = i2c_msg.write(0x48, [0x01])
    result = i2c_msg.read(0x48, 2)

    bus.i2c_rdwr(pointer, result)

    assert list(result) == [0x85, 0x83]


def test_an_address_nobody_acknowledges_fails_like_the_kernel(bus: EmulatedI2CBus) -> None:
    with pytest.raises(OSError) as caught:
        bus.read_i2c_block_data(0x48, 0x00, 2)

    assert caught.value.errno == errno.EREMOTEIO
    assert bus.log == []


def test_a_closed_bus_refuses_transfers(bus: EmulatedI2CBus, emulated_adc: EmulatedADS1115) -> None:
    with bus:
        assert bus.read_byte_data(0x48, 0x01) == 0x85

    assert bus.fd is None
    with pytest.raises(OSError) as caught:
        bus.read_byte_data(0x48, 0x01)
    assert caught.value.errno == errno.EBADF


def test_two_chips_cannot_share_an_address(
    bus: EmulatedI2CBus, emulated_adc: EmulatedADS1115, clock: ManualClock
) -> None:
    with pytest.raises(ValueError, match="0x48 is already taken"):
        bus.attach(EmulatedADS1115(0x48, clock=clock, input_voltage=lambda pin: 0.0))


def test_bytes_out_of_range_are_a_driver_bug(
    bus: EmulatedI2CBus, emulated_adc: EmulatedADS1115
) -> None:
    with pytest.raises(ValueError, match=r"0\.\.255"):
        bus.write_i2c_block_data(0x48, 0x01, [0x1C3, 0x83])


def test_continuous_mode_keeps_converting(
    bus: EmulatedI2CBus,
    clock: ManualClock,
    emulated_adc: EmulatedADS1115,
    pin_voltages: dict[int, float],
) -> None:
    pin_voltages[1] = 1.0
    # AIN1, ±4.096 V, continuous (MODE=0), 128 SPS.
    bus.write_i2c_block_data(0x48, 0x01, [0x52, 0x83])
    clock.sleep(1 / 128)
    assert bus.read_i2c_block_data(0x48, 0x00, 2) == [0x1F, 0x40]  # 1.0 V / 125 µV = 8000

    pin_voltages[1] = 2.0
    clock.sleep(3 / 128)
    assert bus.read_i2c_block_data(0x48, 0x00, 2) == [0x3E, 0x80]  # 16000


def test_os_reads_zero_until_the_conversion_ends_and_a_second_start_is_ignored(
    bus: EmulatedI2CBus,
    clock: ManualClock,
    emulated_adc: EmulatedADS1115,
) -> None:
    start_ain0_128_sps = [0xC3, 0x83]
    bus.write_i2c_block_data(0x48, 0x01, start_ain0_128_sps)
    clock.sleep(0.5 / 128)
    assert bus.read_i2c_block_data(0x48, 0x01, 2) == [0x43, 0x83]  # OS=0: converting

    bus.write_i2c_block_data(0x48, 0x01, start_ain0_128_sps)  # OS=1 while busy: no restart
    clock.sleep(0.5 / 128)

    assert bus.read_i2c_block_data(0x48, 0x01, 2) == [0xC3, 0x83]
