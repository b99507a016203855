"""The I2C bus the nose's chips (ADS1115/ADS1015 ADC, SHT31 climate sensor) hang on.

* :class:`I2CBus` is the slice of :class:`smbus2.SMBus` the drivers use, so a real bus and the
  emulated one (:mod:`hardware.sim.i2c_bus`) are interchangeable.
* :func:`open_i2c_bus` opens ``/dev/i2c-N`` and turns "not found" / "not permitted" into
  errors that say how to fix the Pi.
* :class:`SharedI2CBus` serialises transfers: smbus2's documentation asks for one ``SMBus``
  per bus, so every driver on bus 1 shares one object.
* :func:`translate_i2c_errors` maps the kernel's ``OSError`` to the project's errors. Linux
  reports an address NACK as errno 121 (EREMOTEIO) on the Pi's i2c-bcm2835 adapter and as 6
  (ENXIO) on some other adapters; everything else (EIO, ETIMEDOUT on a stretched clock, ...)
  is a bus problem.
* :class:`I2CChip` is the base of each chip driver: checked address, bus, clock, a per-chip
  lock, and the error translation with the chip's name in the message.
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from types import TracebackType
from typing import ClassVar, Protocol, TypeVar

from smbus2 import SMBus, i2c_msg

from device.clock import Clock
from device.errors import (
    DriverSettingError,
    HardwareError,
    I2CBusError,
    I2CDeviceMissingError,
)

_E = TypeVar("_E", bound=HardwareError)

NACK_ERRNOS = frozenset({errno.EREMOTEIO, errno.ENXIO})
"""Errnos with which Linux reports that no chip acknowledged its address."""


class I2CBus(Protocol):
    """The :class:`smbus2.SMBus` methods the nose's drivers call."""

    def write_i2c_block_data(self, i2c_addr: int, register: int, data: Sequence[int]) -> None:
        """Send ``register`` then ``data`` in one write transfer."""
        ...

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int) -> list[int]:
        """Write ``register``, then (repeated start) read ``length`` bytes."""
        ...

    def i2c_rdwr(self, *i2c_msgs: i2c_msg) -> None:
        """Run raw messages in one combined transfer (repeated starts, one stop)."""
        ...

    def close(self) -> None:
        """Release the bus; only its owner calls this, never a driver."""
        ...


class SharedI2CBus:
    """One bus shared by several drivers and threads, one transfer at a time.

    Each call holds the lock for exactly one kernel transfer, so chips at different addresses
    interleave freely. A driver that needs several transfers without anyone else on the bus
    in between wraps them in :meth:`exclusive`. The lock is re-entrant so that the calls inside
    :meth:`exclusive` do not deadlock.
    """

    def __init__(self, bus: I2CBus) -> None:
        self._bus = bus
        self._lock = threading.RLock()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Keep every other thread off the bus for the duration of the ``with`` block."""
        with self._lock:
            yield

    def write_i2c_block_data(self, i2c_addr: int, register: int, data: Sequence[int]) -> None:
        with self._lock:
            self._bus.write_i2c_block_data(i2c_addr, register, data)

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int) -> list[int]:
        with self._lock:
            return self._bus.read_i2c_block_data(i2c_addr, register, length)

    def i2c_rdwr(self, *i2c_msgs: i2c_msg) -> None:
        with self._lock:
            self._bus.i2c_rdwr(*i2c_msgs)

    def close(self) -> None:
        with self._lock:
            self._bus.close()

    def __enter__(self) -> SharedI2CBus:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def open_i2c_bus(bus_number: int) -> SharedI2CBus:
    """Open ``/dev/i2c-<bus_number>`` and wrap it for sharing between drivers.

    Open it once per process and hand the result to every driver on that bus.
    """
    path = f"/dev/i2c-{bus_number}"
    try:
        bus = SMBus(bus_number)
    except FileNotFoundError as e:
        raise HardwareError(
            e.errno,
            f"I2C bus {bus_number} not found ({path}): enable I2C with "
            "`sudo raspi-config nonint do_i2c 0` and reboot",
        ) from e
    except PermissionError as e:
        raise HardwareError(
            e.errno,
            f"not allowed to open I2C bus {bus_number} ({path}): add the user to group i2c "
            "with `sudo usermod -aG i2c $USER`, then log out and back in",
        ) from e
    except OSError as e:
        raise _with_errno(
            HardwareError, e.errno, f"cannot open I2C bus {bus_number} ({path}): {e.strerror or e}"
        ) from e
    return SharedI2CBus(bus)


def _with_errno(cls: type[_E], errno_: int | None, message: str) -> _E:
    # OSError(None, message) would print "[Errno None] message".
    return cls(message) if errno_ is None else cls(errno_, message)


def i2c_error_from_os_error(
    error: OSError, *, bus_number: int, address: int, device: str, action: str
) -> HardwareError:
    """The project error for a failed transfer, keeping the kernel's errno.

    ``device`` names the chip ("ADS1115"), ``action`` says what the driver was doing
    ("reading the config register"); both end up in the message.
    """
    where = f"address 0x{address:02X} on I2C bus {bus_number}"
    if error.errno in NACK_ERRNOS:
        return I2CDeviceMissingError(
            error.errno,
            f"no {device} answers at {where} while {action}: check its wiring and power "
            f"and the ADDR pin (`i2cdetect -y {bus_number}` lists the addresses that answer)",
        )
    reason = error.strerror or str(error)
    return _with_errno(
        I2CBusError,
        error.errno,
        f"I2C transfer to {device} at {where} failed ({reason}) while {action}: check the "
        "cable and connectors, keep the SDA/SCL wires short, and check the pull-up resistors",
    )


@contextmanager
def translate_i2c_errors(
    *, bus_number: int, address: int, device: str = "chip", action: str = "talking to it"
) -> Iterator[None]:
    """Turn an ``OSError`` raised by a transfer inside the block into the project's errors.

    Project errors (which are ``OSError`` too) pass through unchanged.
    """
    try:
        yield
    except HardwareError:
        raise
    except OSError as e:
        raise i2c_error_from_os_error(
            e, bus_number=bus_number, address=address, device=device, action=action
        ) from e


class I2CChip:
    """What every driver of one chip at one address shares: checked address, bus, clock."""

    CHIP_NAME: ClassVar[str]
    ADDRESSES: ClassVar[Mapping[int, str]]
    """Addresses the chip can take -> how its ADDR pin is wired for each."""

    def __init__(self, bus: I2CBus, address: int, *, clock: Clock, bus_number: int) -> None:
        if address not in self.ADDRESSES:
            allowed = ", ".join(f"0x{a:02X} ({pin})" for a, pin in self.ADDRESSES.items())
            raise DriverSettingError(
                f"the {self.CHIP_NAME} cannot sit at I2C address 0x{address:02X}: "
                f"its ADDR pin selects one of {allowed}"
            )
        self.address = address
        self.bus_number = bus_number
        self._bus = bus
        self._clock = clock
        # One operation is several transfers (command, waits, result); another thread using
        # the same chip in between would restart the measurement or steal its result.
        self._lock = threading.Lock()

    def _translate(self, action: str) -> AbstractContextManager[None]:
        return translate_i2c_errors(
            bus_number=self.bus_number, address=self.address, device=self.CHIP_NAME, action=action
        )
