"""An emulated USB microphone behind the ``sounddevice`` API, playing recorded soundscapes.

:class:`EmulatedSoundDevice` is a stand-in for the ``sounddevice`` module: it has
``InputStream``, ``PortAudioError``, ``CallbackFlags`` and ``query_devices``, so the station's
:class:`device.ear.sources.MicrophoneSource` runs unchanged on it (``backend=...``). A stream
calls its callback from its own thread with blocks of the recordings, looped, resampled to the
rate the stream asked for and copied to every channel, paced at ``speed`` times real time.

Faults, as a USB microphone shows them on a Pi:

* :meth:`EmulatedSoundDevice.unplug`: running streams stop calling back and go inactive,
  opening a stream raises ``PortAudioError`` ("Device unavailable"), and the device
  disappears from ``query_devices``; :meth:`EmulatedSoundDevice.plug_in` brings it back
  (playback resumes where the soundscape was);
* ``overflow_every``: every Nth block is flagged ``input_overflow``, as PortAudio does when the
  reader is too slow.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from device.ear.frontend import resample
from device.ear.sources import read_audio_file

DEVICE_NAME = "Emulated USB Microphone"
SUPPORTED_RATES = (16000, 22050, 32000, 44100, 48000)


class PortAudioError(Exception):
    """What sounddevice raises when PortAudio fails (same name, same use)."""


@dataclass
class CallbackFlags:
    input_overflow: bool = False

    def __bool__(self) -> bool:
        return self.input_overflow


class EmulatedSoundDevice:
    """A sounddevice-like module with one input device that plays ``recordings`` in a loop."""

    PortAudioError = PortAudioError
    CallbackFlags = CallbackFlags

    def __init__(
        self,
        recordings: Sequence[Path],
        *,
        speed: float = 1.0,
        overflow_every: int = 0,
        max_channels: int = 2,
    ) -> None:
        if not recordings:
            raise ValueError("the emulated microphone needs at least one recording to play")
        if speed <= 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.recordings = [Path(p) for p in recordings]
        self.speed = speed
        self.overflow_every = overflow_every
        self.max_channels = max_channels
        self._plugged = threading.Event()
        self._plugged.set()
        self._lock = threading.Lock()
        self._position_s = 0.0  # where in the looped soundscape the next block starts
        self._cache: dict[int, npt.NDArray[np.float32]] = {}
        self.streams_opened = 0
        self.samples_delivered = 0

    # --- the fault injector ------------------------------------------------------------------

    def unplug(self) -> None:
        self._plugged.clear()

    def plug_in(self) -> None:
        self._plugged.set()

    @property
    def plugged(self) -> bool:
        return self._plugged.is_set()

    # --- the sounddevice API -----------------------------------------------------------------

    def query_devices(self, kind: str | None = None) -> Any:
        device = {
            "name": DEVICE_NAME,
            "index": 0,
            "max_input_channels": self.max_channels,
            "max_output_channels": 0,
            "default_samplerate": 48000.0,
        }
        if kind == "input":
            if not self.plugged:
                raise PortAudioError("No input device available")
            return device
        return [device] if self.plugged else []

    def InputStream(self, **kwargs: Any) -> EmulatedInputStream:  # noqa: N802 (sounddevice's name)
        return EmulatedInputStream(self, **kwargs)

    # --- for the stream ----------------------------------------------------------------------

    def soundscape(self, rate: int) -> npt.NDArray[np.float32]:
        with self._lock:
            if rate not in self._cache:
                parts = []
                for path in self.recordings:
                    mono, file_rate = read_audio_file(path)
                    parts.append(resample(mono, file_rate, rate))
                self._cache[rate] = np.concatenate(parts).astype(np.float32)
            return self._cache[rate]

    def take_position(self, advance_s: float) -> float:
        with self._lock:
            start = self._position_s
            self._position_s += advance_s
            return start


class EmulatedInputStream:
    """One open input stream of an :class:`EmulatedSoundDevice` (sounddevice's InputStream)."""

    def __init__(
        self,
        device_module: EmulatedSoundDevice,
        *,
        device: int | str | None = None,
        samplerate: float | None = None,
        channels: int = 1,
        dtype: str = "float32",
        blocksize: int = 0,
        callback: Callable[[npt.NDArray[np.float32], int, Any, CallbackFlags], None] | None = None,
        **_: Any,
    ) -> None:
        owner = device_module
        if not owner.plugged:
            raise PortAudioError(
                "Error opening InputStream: Device unavailable [PaErrorCode -9985]"
            )
        if isinstance(device, str) and device.lower() not in DEVICE_NAME.lower():
            raise PortAudioError(f"No input device matching {device!r}")
        if isinstance(device, int) and device != 0:
            raise PortAudioError(f"Error querying device {device}")
        rate = int(samplerate or 48000)
        if rate not in SUPPORTED_RATES:
            raise PortAudioError(f"Invalid sample rate {rate} [PaErrorCode -9997]")
        if not 1 <= channels <= owner.max_channels:
            raise PortAudioError(f"Invalid number of channels {channels} [PaErrorCode -9998]")
        if dtype != "float32" or callback is None:
            raise ValueError("the emulated microphone supports float32 callback streams only")
        self._owner = owner
        self.samplerate = float(rate)
        self.channels = channels
        self.blocksize = blocksize or round(rate * 0.1)
        self._callback = callback
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.active = False
        owner.streams_opened += 1

    def start(self) -> None:
        self.active = True
        self._thread = threading.Thread(target=self._play, name="emulated-mic", daemon=True)
        self._thread.start()

    def _play(self) -> None:
        rate = int(self.samplerate)
        soundscape = self._owner.soundscape(rate)
        block_s = self.blocksize / rate
        next_due = time.monotonic()
        blocks = 0
        while not self._stop.is_set():
            if not self._owner.plugged:
                self.active = False  # a vanished USB device: no more callbacks, ever
                return
            start = round(self._owner.take_position(block_s) * rate) % len(soundscape)
            indices = (start + np.arange(self.blocksize)) % len(soundscape)
            block = np.repeat(soundscape[indices][:, np.newaxis], self.channels, axis=1)
            blocks += 1
            every = self._owner.overflow_every
            flags = CallbackFlags(input_overflow=bool(every and blocks % every == 0))
            self._callback(block, self.blocksize, None, flags)
            self._owner.samples_delivered += self.blocksize
            next_due += block_s / self._owner.speed
            self._stop.wait(max(0.0, next_due - time.monotonic()))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        self.active = False

    def close(self) -> None:
        self.stop()
