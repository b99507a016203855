"""An emulated I2C bus with the surface of :class:`smbus2.SMBus`, for tests and the simulator.

Every smbus2 call is broken down into the raw messages Linux puts on the wire (research note
``enose.md`` §4.5, and the kernel's SMBus-over-I2C emulation in ``drivers/i2c/i2c-core-smbus.c``):

=========================================  ==============================================
smbus2 call                                messages (S start, Sr repeated start, P stop)
=========================================  ==============================================
``write_quick(a)``                         S a+W P (no data)
``write_byte(a, v)``                       S a+W · v P
``read_byte(a)``                           S a+R · b0 P
``write_byte_data(a, r, v)``               S a+W · r · v P
``read_byte_data(a, r)``                   S a+W · r Sr a+R · b0 P
``write_word_data(a, r, v)``               S a+W · r · (v & 0xFF) · (v >> 8) P  (low byte first)
``read_word_data(a, r)``                   S a+W · r Sr a+R · b0 · b1 P  -> b0 | b1 << 8
``write_i2c_block_data(a, r, data)``       S a+W · r · data... P
``read_i2c_block_data(a, r, n)``           S a+W · r Sr a+R · n bytes P
``i2c_rdwr(m1, m2, ...)``                  S m1 Sr m2 ... P
=========================================  ==============================================

Each message goes to the :class:`I2CTarget` attached at its address; an address nobody
acknowledges raises ``OSError(EREMOTEIO)`` like the Pi's i2c-bcm2835 adapter, and the rest of
the transfer is not sent. Like the kernel, each call is atomic with respect to other threads.

The bus is stricter than smbus2 in one way: a data byte outside 0-255 raises ``ValueError``
(ctypes would silently truncate it, hiding a driver bug).
"""

from __future__ import annotations

import ctypes
import errno
import threading
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Literal, NamedTuple, Protocol

from smbus2 import I2cFunc, i2c_msg
from smbus2.smbus2 import I2C_M_RD

I2C_SMBUS_BLOCK_MAX = 32
"""Longest block an SMBus-style call carries (smbus2 raises ValueError beyond it)."""
I2C_RDWR_MAX_MESSAGES = 42
"""The kernel rejects an I2C_RDWR ioctl with more messages (EINVAL)."""

Direction = Literal["write", "read"]


class I2CTarget(Protocol):
    """A chip on the emulated bus. It sees messages, not smbus2 calls.

    ``write`` gets the bytes after the address byte of a write message; ``read`` returns the
    bytes the chip clocks out for a read message of ``length`` bytes. A chip that does not
    acknowledge raises ``OSError(errno.EREMOTEIO, ...)``.
    """

    address: int

    def write(self, data: bytes) -> None: ...

    def read(self, length: int) -> bytes: ...


class TransferHook(Protocol):
    """Sees every message before it reaches a target (fault injection)."""

    def before_message(self, direction: Direction, address: int) -> None:
        """Raise an ``OSError`` here to fail the message (and the rest of its transfer)."""
        ...

    def after_read(self, address: int, data: bytes) -> bytes:
        """Return the bytes the host receives for a read (possibly corrupted)."""
        ...


class WireMessage(NamedTuple):
    """One acknowledged message: ``("write", 0x48, b"\\x01\\xc3\\x83")``."""

    direction: Direction
    address: int
    data: bytes


def nack_error(address: int) -> OSError:
    """The error Linux raises when ``address`` does not acknowledge (what targets raise)."""
    return OSError(errno.EREMOTEIO, f"no acknowledge from address 0x{address:02X}")


class EmulatedI2CBus:
    """Stands in for ``smbus2.SMBus(bus_number)``; chips are :meth:`attach`-ed to it.

    With ``log=True`` every acknowledged message is appended to :attr:`log` (a failed message
    is not logged), for byte-exact tests.
    """

    def __init__(self, bus: int | str | None = 1, *, log: bool = False) -> None:
        self.fd: int | None = None
        self.funcs = I2cFunc(0)
        self.log: list[WireMessage] | None = [] if log else None
        self._targets: dict[int, I2CTarget] = {}
        self._hook: TransferHook | None = None
        self._lock = threading.RLock()
        if bus is not None:
            self.open(bus)

    # --- the SMBus lifecycle -------------------------------------------------------------

    def open(self, bus: int | str) -> None:
        """Pretend to open ``/dev/i2c-<bus>``; ``fd`` is a placeholder, not a real descriptor."""
        if not isinstance(bus, int | str):
            raise TypeError(f"Unexpected type(bus)={type(bus)}")
        self.fd = -1
        # What the Pi's i2c-bcm2835 reports: plain I2C plus SMBus emulated on top of it.
        self.funcs = I2cFunc.I2C | I2cFunc.SMBUS_EMUL

    def close(self) -> None:
        self.fd = None

    def __enter__(self) -> EmulatedI2CBus:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # --- wiring chips ----------------------------------------------------------------------

    def attach(self, target: I2CTarget) -> None:
        """Connect ``target`` at ``target.address``."""
        with self._lock:
            other = self._targets.get(target.address)
            if other is not None:
                raise ValueError(
                    f"address 0x{target.address:02X} is already taken by "
                    f"{type(other).__name__}: two chips on one address garble each other"
                )
            self._targets[target.address] = target

    def detach(self, address: int) -> I2CTarget:
        """Disconnect and return the chip at ``address``."""
        with self._lock:
            try:
                return self._targets.pop(address)
            except KeyError:
                raise ValueError(f"no chip is attached at address 0x{address:02X}") from None

    def target_at(self, address: int) -> I2CTarget | None:
        with self._lock:
            return self._targets.get(address)

    def set_hook(self, hook: TransferHook | None) -> None:
        """Route every message through ``hook`` (one hook at a time; ``None`` removes it)."""
        with self._lock:
            if hook is not None and self._hook is not None and hook is not self._hook:
                raise ValueError("this bus already has a transfer hook (a FaultInjector?)")
            self._hook = hook

    # --- SMBus calls -----------------------------------------------------------------------

    def write_quick(self, i2c_addr: int, force: bool | None = None) -> None:
        self._transfer(i2c_addr, write=b"")

    def write_byte(self, i2c_addr: int, value: int, force: bool | None = None) -> None:
        self._transfer(i2c_addr, write=_bytes([value]))

    def read_byte(self, i2c_addr: int, force: bool | None = None) -> int:
        return self._transfer(i2c_addr, read_length=1)[0]

    def write_byte_data(
        self, i2c_addr: int, register: int, value: int, force: bool | None = None
    ) -> None:
        self._transfer(i2c_addr, write=_bytes([register, value]))

    def read_byte_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int:
        return self._transfer(i2c_addr, write=_bytes([register]), read_length=1)[0]

    def write_word_data(
        self, i2c_addr: int, register: int, value: int, force: bool | None = None
    ) -> None:
        if not 0 <= value <= 0xFFFF:
            raise ValueError(f"an SMBus word is 0..0xFFFF, got {value!r}")
        self._transfer(i2c_addr, write=_bytes([register, value & 0xFF, value >> 8]))

    def read_word_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int:
        b0, b1 = self._transfer(i2c_addr, write=_bytes([register]), read_length=2)
        return b0 | b1 << 8

    def write_i2c_block_data(
        self, i2c_addr: int, register: int, data: Sequence[int], force: bool | None = None
    ) -> None:
        if len(data) > I2C_SMBUS_BLOCK_MAX:
            raise ValueError(f"Data length cannot exceed {I2C_SMBUS_BLOCK_MAX} bytes")
        self._transfer(i2c_addr, write=_bytes([register, *data]))

    def read_i2c_block_data(
        self, i2c_addr: int, register: int, length: int, force: bool | None = None
    ) -> list[int]:
        if length > I2C_SMBUS_BLOCK_MAX:
            raise ValueError(f"Desired block length over {I2C_SMBUS_BLOCK_MAX} bytes")
        return list(self._transfer(i2c_addr, write=_bytes([register]), read_length=length))

    def i2c_rdwr(self, *i2c_msgs: i2c_msg) -> None:
        """Run the messages as one transfer; read messages get their data in their buffer."""
        if not 0 < len(i2c_msgs) <= I2C_RDWR_MAX_MESSAGES:
            raise OSError(errno.EINVAL, f"I2C_RDWR takes 1 to 42 messages, got {len(i2c_msgs)}")
        with self._lock:
            self._check_open()
            for message in i2c_msgs:
                address = int(message.addr)
                length = int(message.len)
                if message.flags & I2C_M_RD:
                    data = self._read(address, length)
                    ctypes.memmove(message.buf, data, length)
                else:
                    self._write(address, ctypes.string_at(message.buf, length))

    # --- messages --------------------------------------------------------------------------

    def _transfer(self, address: int, *, write: bytes | None = None, read_length: int = 0) -> bytes:
        """One transfer: an optional write message, then (repeated start) an optional read."""
        with self._lock:
            self._check_open()
            if write is not None:
                self._write(address, write)
            return self._read(address, read_length) if read_length else b""

    def _write(self, address: int, data: bytes) -> None:
        self._target(address, "write").write(data)
        self._record("write", address, data)

    def _read(self, address: int, length: int) -> bytes:
        data = self._target(address, "read").read(length)
        if len(data) != length:
            raise AssertionError(
                f"emulated chip at 0x{address:02X} returned {len(data)} bytes for a read of "
                f"{length}: fix its read()"
            )
        if self._hook is not None:
            data = self._hook.after_read(address, data)
        self._record("read", address, data)
        return data

    def _target(self, address: int, direction: Direction) -> I2CTarget:
        if not 0 <= address <= 0x7F:
            raise OSError(errno.EINVAL, f"0x{address:X} is not a 7-bit I2C address")
        if self._hook is not None:
            self._hook.before_message(direction, address)
        target = self._targets.get(address)
        if target is None:
            raise nack_error(address)
        return target

    def _record(self, direction: Direction, address: int, data: bytes) -> None:
        if self.log is not None:
            self.log.append(WireMessage(direction, address, data))

    def _check_open(self) -> None:
        if self.fd is None:
            raise OSError(errno.EBADF, "the emulated I2C bus is closed")


def _bytes(values: Iterable[int]) -> bytes:
    values = list(values)
    for value in values:
        if not 0 <= value <= 0xFF:
            raise ValueError(f"an I2C byte is 0..255, got {value!r} in {values!r}")
    return bytes(values)
