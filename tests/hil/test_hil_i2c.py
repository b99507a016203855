"""Opening the bus, sharing it between threads, and turning kernel errors into ours."""

from __future__ import annotations

import errno
import threading
from collections.abc import Sequence

import pytest
from smbus2 import i2c_msg

from device.clock import ManualClock
from device.errors import HardwareError, I2CBusError, I2CDeviceMissingError, SensesError
from device.nose import i2c
from device.nose.ads1115 import ADS1115
from device.nose.i2c import SharedI2CBus, open_i2c_bus, translate_i2c_errors
from hardware.sim.ads1115 import EmulatedADS1115
from hardware.sim.i2c_bus import EmulatedI2CBus


@pytest.mark.parametrize("kernel_errno", [errno.EREMOTEIO, errno.ENXIO])
def test_a_nack_means_the_chip_is_missing(kernel_errno: int) -> None:
    with (
        pytest.raises(I2CDeviceMissingError) as caught,
        translate_i2c_errors(bus_number=1, address=0x49, device="ADS1115", action="probing"),
    ):
        raise OSError(kernel_errno, "Remote I/O error")

    assert str(caught.value).startswith(f"[Errno {kernel_errno}] no ADS1115 answers at ")
    assert "address 0x49 on I2C bus 1" in str(caught.value)
    assert caught.value.errno == kernel_errno
    assert isinstance(caught.value.__cause__, OSError)


@pytest.mark.parametrize("kernel_errno", [errno.EIO, errno.ETIMEDOUT, errno.EAGAIN])
def test_other_transfer_errors_are_bus_errors(kernel_errno: int) -> None:
    with (
        pytest.raises(I2CBusError) as caught,
        translate_i2c_errors(bus_number=1, address=0x48),
    ):
        raise OSError(kernel_errno, "Input/output error")

    assert caught.value.errno == kernel_errno
    assert "address 0x48 on I2C bus 1" in str(caught.value)
    assert "pull-up" in str(caught.value)


def test_project_errors_pass_through_unchanged() -> None:
    original = I2CDeviceMissingError(errno.EREMOTEIO, "already translated")

    with (
        pytest.raises(I2CDeviceMissingError) as caught,
        translate_i2c_errors(bus_number=1, address=0x48),
    ):
        raise original

    assert caught.value is original


def test_a_missing_bus_says_how_to_enable_i2c() -> None:
    with pytest.raises(HardwareError) as caught:
        open_i2c_bus(97)

    message = str(caught.value)
    assert "I2C bus 97 not found (/dev/i2c-97)" in message
    assert "sudo raspi-config nonint do_i2c 0" in message
    assert caught.value.errno == errno.ENOENT
    assert isinstance(caught.value, SensesError)


def test_a_forbidden_bus_says_to_join_group_i2c(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(bus_number: int) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", f"/dev/i2c-{bus_number}")

    monkeypatch.setattr(i2c, "SMBus", forbidden)

    with pytest.raises(HardwareError, match="group i2c") as caught:
        open_i2c_bus(1)
    assert caught.value.errno == errno.EACCES


class _OverlapDetector:
    """Wraps a bus and records whether two threads were ever inside it at once."""

    def __init__(self, bus: EmulatedI2CBus) -> None:
        self._bus = bus
        self._inside = 0
        self._entered_before = False
        self._overlap = threading.Event()
        self._count_lock = threading.Lock()

    @property
    def overlapped(self) -> bool:
        return self._overlap.is_set()

    def _enter(self) -> None:
        with self._count_lock:
            self._inside += 1
            if self._inside > 1:
                self._overlap.set()
            first, self._entered_before = not self._entered_before, True
        if first:
            # Hold the first transfer open long enough for the other thread to barge in,
            # unless a lock keeps it out: makes the unshared control run fail reliably.
            self._overlap.wait(timeout=0.2)

    def _leave(self) -> None:
        with self._count_lock:
            self._inside -= 1

    def write_i2c_block_data(self, i2c_addr: int, register: int, data: Sequence[int]) -> None:
        self._enter()
        try:
            self._bus.write_i2c_block_data(i2c_addr, register, data)
        finally:
            self._leave()

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int) -> list[int]:
        self._enter()
        try:
            return self._bus.read_i2c_block_data(i2c_addr, register, length)
        finally:
            self._leave()

    def i2c_rdwr(self, *i2c_msgs: i2c_msg) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._bus.close()


@pytest.mark.parametrize("shared", [True, False], ids=["shared", "unshared"])
def test_shared_bus_serialises_transfers_from_several_threads(shared: bool) -> None:
    clock = ManualClock()
    emulated = EmulatedI2CBus(1)
    voltages = {0x48: 1.0, 0x49: 2.0}
    for address, voltage_v in voltages.items():
        emulated.attach(
            EmulatedADS1115(address, clock=clock, input_voltage=lambda pin, v=voltage_v: v)
        )
    detector = _OverlapDetector(emulated)
    bus = SharedI2CBus(detector) if shared else detector
    readings: dict[int, list[float]] = {address: [] for address in voltages}

    def read_many(address: int) -> None:
        adc = ADS1115(bus, address, clock=clock)
        readings[address].extend(adc.read_voltage(0, data_rate_sps=860) for _ in range(30))

    threads = [threading.Thread(target=read_many, args=(a,)) for a in voltages]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert detector.overlapped is not shared  # the control run shows the test can see overlap
    for address, voltage_v in voltages.items():
        assert readings[address] == [pytest.approx(voltage_v, abs=125e-6)] * 30
