"""An in-memory ring buffer of recent audio, addressed by absolute sample index.

BirdNET-Pi writes 15 s WAV files to the SD card and analyses them afterwards; the station keeps
the last ``capacity_s`` of raw audio in memory instead, so a detection's clip can start
``pre_roll_s`` before the call was recognised without anything touching the disk until
there is something worth keeping.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from device.errors import AudioInputError

FloatArray = npt.NDArray[np.float32]


class AudioRing:
    """The most recent ``capacity_s`` of mono audio at ``sample_rate``."""

    def __init__(self, sample_rate: int, capacity_s: float) -> None:
        if sample_rate < 1 or capacity_s <= 0:
            raise AudioInputError(
                f"ring buffer needs a positive rate and capacity, got {sample_rate} Hz, "
                f"{capacity_s} s"
            )
        self.sample_rate = sample_rate
        self.capacity = max(1, round(capacity_s * sample_rate))
        self._data = np.zeros(self.capacity, dtype=np.float32)
        self._written = 0  # samples ever written; the next one gets this index

    @property
    def end(self) -> int:
        """Absolute index one past the newest sample."""
        return self._written

    @property
    def start(self) -> int:
        """Absolute index of the oldest sample still held."""
        return max(0, self._written - self.capacity)

    @property
    def end_s(self) -> float:
        return self._written / self.sample_rate

    def write(self, samples: FloatArray) -> None:
        n = len(samples)
        if n >= self.capacity:
            self._data[:] = samples[-self.capacity :]
            # Keep the invariant "sample i lives at i % capacity".
            self._data = np.roll(self._data, self._written + n)
        else:
            at = self._written % self.capacity
            first = min(n, self.capacity - at)
            self._data[at : at + first] = samples[:first]
            self._data[: n - first] = samples[first:]
        self._written += n

    def read(self, start: int, stop: int) -> FloatArray:
        """Samples ``[start, stop)`` clipped to what is held (older ones are gone)."""
        start = max(start, self.start)
        stop = min(stop, self.end)
        if stop <= start:
            return np.zeros(0, dtype=np.float32)
        at = start % self.capacity
        n = stop - start
        if at + n <= self.capacity:
            return self._data[at : at + n].copy()
        return np.concatenate([self._data[at:], self._data[: n - (self.capacity - at)]])

    def read_seconds(self, start_s: float, stop_s: float) -> FloatArray:
        return self.read(round(start_s * self.sample_rate), round(stop_s * self.sample_rate))
