"""Faults for the emulated I2C bus: what a long cable, a loose connector or a hung chip do.

A :class:`FaultInjector` sits on one :class:`~hardware.sim.i2c_bus.EmulatedI2CBus` and sees
every message before the addressed chip does. It can

* fail the next N messages to an address with an errno (EIO by default), or fail messages at
  random with a seeded probability (an "EIO storm", as on a noisy cable);
* make an address NACK (errno 121, what Linux reports when nothing acknowledges);
* flip bits in what a chip sends back (corruption that only a CRC catches);
* stall a chip's conversions (an ADS1115 whose OS bit never returns to 1);
* unplug a chip and plug it back in.

:meth:`FaultInjector.clear` undoes all of it, so tests can check that drivers recover.
An injected error is raised before the message reaches the chip: the chip's state does not
change, as when a transfer dies on the address byte.
"""

from __future__ import annotations

import errno
import os
import random
import threading
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from hardware.sim.i2c_bus import Direction, EmulatedI2CBus, I2CTarget, nack_error


@runtime_checkable
class Stallable(Protocol):
    """An emulated chip whose measurements can hang (``stuck = True``)."""

    stuck: bool


@dataclass
class _FailNext:
    remaining: int
    direction: Direction | None
    error_number: int


@dataclass
class _Corruption:
    remaining: int
    byte_index: int
    xor_mask: int


class FaultInjector:
    """Injects faults into ``bus``; installs itself as the bus's transfer hook."""

    def __init__(self, bus: EmulatedI2CBus) -> None:
        self._bus = bus
        self._lock = threading.Lock()
        self._fail_next: dict[int, list[_FailNext]] = {}
        self._corruptions: dict[int, list[_Corruption]] = {}
        self._nacking: set[int] = set()
        self._storm_probability = 0.0
        self._storm_address: int | None = None
        self._storm_rng = random.Random(0)
        self._stalled: list[Stallable] = []
        self._unplugged: dict[int, I2CTarget] = {}
        self.injected_count = 0
        """How many messages a fault has failed or corrupted so far."""
        bus.set_hook(self)

    def fail_next(
        self,
        address: int,
        count: int = 1,
        *,
        direction: Direction | None = None,
        error_number: int = errno.EIO,
    ) -> None:
        """Fail the next ``count`` messages to ``address`` (only reads or writes if
        ``direction`` says so) with ``OSError(error_number)``."""
        if count < 1:
            raise ValueError(f"count must be at least 1, got {count}")
        with self._lock:
            self._fail_next.setdefault(address, []).append(
                _FailNext(count, direction, error_number)
            )

    def eio_storm(self, probability: float, *, seed: int = 0, address: int | None = None) -> None:
        """Fail each message (to ``address``, or to any address) with EIO at ``probability``.

        Seeded, so a failing test replays the same storm.
        """
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"probability must be within 0..1, got {probability}")
        with self._lock:
            self._storm_probability = probability
            self._storm_address = address
            self._storm_rng = random.Random(seed)

    def nack(self, address: int) -> None:
        """Make ``address`` stop acknowledging (chip attached but dead, or wrong ADDR pin)."""
        with self._lock:
            self._nacking.add(address)

    def corrupt_next_read(
        self, address: int, *, count: int = 1, byte_index: int = 0, xor_mask: int = 0x01
    ) -> None:
        """XOR ``xor_mask`` into byte ``byte_index`` of the next ``count`` reads from
        ``address`` that are long enough to have that byte."""
        if not 0 < xor_mask <= 0xFF:
            raise ValueError(f"xor_mask must flip at least one bit of a byte, got {xor_mask!r}")
        with self._lock:
            self._corruptions.setdefault(address, []).append(
                _Corruption(count, byte_index, xor_mask)
            )

    def stall_conversions(self, address: int) -> None:
        """Make the chip at ``address`` never finish a conversion (ADS1115: OS stays 0)."""
        target = self._bus.target_at(address)
        if not isinstance(target, Stallable):
            raise ValueError(
                f"the chip at 0x{address:02X} ({type(target).__name__}) cannot stall: "
                "it has no `stuck` flag"
            )
        with self._lock:
            target.stuck = True
            self._stalled.append(target)

    def disconnect(self, address: int) -> None:
        """Unplug the chip at ``address``: the address then NACKs."""
        with self._lock:
            self._unplugged[address] = self._bus.detach(address)

    def reconnect(self, address: int) -> None:
        """Plug back the chip :meth:`disconnect` removed (its registers kept their values)."""
        with self._lock:
            try:
                target = self._unplugged.pop(address)
            except KeyError:
                raise ValueError(f"no chip was disconnected from 0x{address:02X}") from None
            self._bus.attach(target)

    def clear(self) -> None:
        """Remove every fault: stalled chips resume, unplugged chips are plugged back."""
        with self._lock:
            self._fail_next.clear()
            self._corruptions.clear()
            self._nacking.clear()
            self._storm_probability = 0.0
            for stalled in self._stalled:
                stalled.stuck = False
            self._stalled.clear()
            for target in self._unplugged.values():
                self._bus.attach(target)
            self._unplugged.clear()

    # --- TransferHook ----------------------------------------------------------------------

    def before_message(self, direction: Direction, address: int) -> None:
        with self._lock:
            if address in self._nacking:
                self.injected_count += 1
                raise nack_error(address)
            for pending in self._fail_next.get(address, []):
                if pending.remaining and pending.direction in (None, direction):
                    pending.remaining -= 1
                    self.injected_count += 1
                    raise OSError(pending.error_number, os.strerror(pending.error_number))
            if (
                self._storm_probability
                and self._storm_address in (None, address)
                and self._storm_rng.random() < self._storm_probability
            ):
                self.injected_count += 1
                raise OSError(errno.EIO, os.strerror(errno.EIO))

    def after_read(self, address: int, data: bytes) -> bytes:
        with self._lock:
            for corruption in self._corruptions.get(address, []):
                if corruption.remaining and corruption.byte_index < len(data):
                    corruption.remaining -= 1
                    self.injected_count += 1
                    corrupted = bytearray(data)
                    corrupted[corruption.byte_index] ^= corruption.xor_mask
                    return bytes(corrupted)
        return data
