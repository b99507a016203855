"""Raw-audio windows for a species model: the microphone stream at the model's rate, cut up.

A raw-waveform species model (BirdNET: 3 s at 48 kHz) wants fixed windows of samples, not
log-mel patches. :class:`WaveformWindower` resamples the stream *once* to the model's rate
with the streaming front end's :class:`~device.ear.frontend.PolyphaseResampler` (identical
output for any chunking, so ``senses ear scan`` and the live ear agree bit for bit) and hands
out windows every ``hop_s`` as they complete.

At the end of a stream the last partial window is padded with silence and analysed when it
holds at least half a window of audio, as BirdNET-Analyzer and birdnetlib do (a shorter tail
mostly gives spurious scores); a stream shorter than one window still gets its one window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from device.ear.frontend import PolyphaseResampler
from device.errors import AudioInputError

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class AudioWindow:
    """One window of samples at the model's rate; times in stream seconds."""

    start_s: float
    end_s: float
    samples: FloatArray


class WaveformWindower:
    """Stream in (any rate, any chunking), :class:`AudioWindow` s at ``output_rate`` out."""

    def __init__(self, input_rate: int, output_rate: int, window_s: float, hop_s: float) -> None:
        if not 0 < hop_s <= window_s:
            raise AudioInputError(f"hop must be in (0, window], got {hop_s} for {window_s}")
        self.output_rate = output_rate
        self.window = round(window_s * output_rate)
        self.hop = round(hop_s * output_rate)
        self._resampler = PolyphaseResampler(input_rate, output_rate)
        self._buffer = np.zeros(0, dtype=np.float32)
        self._buffer_start = 0  # absolute output-sample index of _buffer[0]
        self._next_start = 0  # absolute index where the next window starts
        self._produced = 0  # output samples received so far
        self._covered = 0  # end of the last window handed out
        self._windows = 0

    def push(self, samples: npt.ArrayLike) -> list[AudioWindow]:
        converted = self._resampler.push(np.asarray(samples, dtype=np.float32))
        return self._take(converted, final=False)

    def flush(self) -> list[AudioWindow]:
        """End of stream: the remaining windows, the last one padded with silence."""
        return self._take(self._resampler.flush(), final=True)

    def _take(self, converted: FloatArray, *, final: bool) -> list[AudioWindow]:
        if len(converted):
            self._buffer = np.concatenate([self._buffer, converted])
            self._produced += len(converted)
        out: list[AudioWindow] = []
        while self._next_start + self.window <= self._produced:
            out.append(self._window(self._slice(self._next_start, self.window)))
        if final:
            tail = self._produced - self._next_start
            fresh = self._produced > self._covered  # audio no window has seen yet
            if fresh and (tail * 2 >= self.window or self._windows == 0):
                padded = np.zeros(self.window, dtype=np.float32)
                padded[:tail] = self._slice(self._next_start, tail)
                out.append(self._window(padded))
        drop = self._next_start - self._buffer_start
        if drop > 0:
            self._buffer = self._buffer[drop:]
            self._buffer_start += drop
        return out

    def _slice(self, start: int, length: int) -> FloatArray:
        offset = start - self._buffer_start
        return self._buffer[offset : offset + length]

    def _window(self, samples: FloatArray) -> AudioWindow:
        start = self._next_start
        self._next_start += self.hop
        self._covered = start + self.window
        self._windows += 1
        rate = self.output_rate
        return AudioWindow(start / rate, (start + self.window) / rate, samples.copy())
