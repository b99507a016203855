"""Clocks the senses run on.

Drivers, samplers and emulated chips never call :mod:`time` directly: they get a :class:`Clock`.
On the Pi that is the system clock; in tests and replays it is a :class:`ManualClock`, whose
``sleep`` advances virtual time instantly, so a 36 h recording replays in seconds and the same
deadline logic (conversion timeouts, warm-up) runs unchanged.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Protocol


class Clock(Protocol):
    """What every time-dependent part of the station needs."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards (for deadlines and rates)."""
        ...

    def wall(self) -> float:
        """Unix time in seconds (for timestamps that people read)."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` on this clock."""
        ...

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        """Like :meth:`sleep`, but return early (``True``) as soon as ``stop`` is set."""
        ...


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        return stop.wait(max(seconds, 0.0))


class ManualClock:
    """Virtual time that only moves when someone sleeps or calls :meth:`advance`.

    Thread-safe, so an emulated chip and a driver on another thread see one time.
    """

    def __init__(self, start_wall_s: float = 1_700_000_000.0) -> None:
        self._now_s = 0.0
        self._start_wall_s = start_wall_s
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        with self._lock:
            return self._now_s

    def wall(self) -> float:
        with self._lock:
            return self._start_wall_s + self._now_s

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        if stop.is_set():
            return True
        self.advance(max(seconds, 0.0))
        return stop.is_set()

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"a clock cannot go back: advance({seconds})")
        with self._lock:
            self._now_s += seconds


class ScaledClock:
    """Real time, running ``speed`` times faster (for live demos of slow processes).

    A recording of 36 hours played at ``speed=240`` takes 9 minutes; sleeps are shortened
    by the same factor.
    """

    def __init__(self, speed: float, start_wall_s: float | None = None) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        self.speed = speed
        self._real_start_s = time.monotonic()
        self._start_wall_s = time.time() if start_wall_s is None else start_wall_s

    def monotonic(self) -> float:
        return (time.monotonic() - self._real_start_s) * self.speed

    def wall(self) -> float:
        return self._start_wall_s + self.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds / self.speed)

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        return stop.wait(max(seconds, 0.0) / self.speed)


def ticks(clock: Clock, period_s: float, stop: threading.Event) -> Iterator[int]:
    """Yield 0, 1, 2, ... once per ``period_s`` on ``clock`` until ``stop`` is set.

    Due times are fixed (start + n·period), so the time spent between ticks does not make the
    schedule drift; if a tick's work overruns the period, the missed ticks are skipped rather
    than bunched up.
    """
    tick = 0
    next_due_s = clock.monotonic()
    while not stop.is_set():
        yield tick
        tick += 1
        next_due_s += period_s
        now_s = clock.monotonic()
        next_due_s = max(next_due_s, now_s)
        if clock.wait(next_due_s - now_s, stop):
            return
