"""Where the ear's audio comes from: a microphone, a file, or a generator.

Every source hands out mono float32 blocks in [-1, 1] at its own ``sample_rate``; the
streaming front end resamples. The same :class:`MicrophoneSource` code runs on a Pi (the
``sounddevice`` module, i.e. PortAudio: Debian's ``libportaudio2``) and in tests and demos
(``hardware.sim.microphone``, a sounddevice-like module playing WAV files, which a fault
injector can unplug).

A microphone that cannot be opened, that stops delivering audio (``stall_s`` without a
block), or whose stream dies raises :class:`~device.errors.MicrophoneUnavailableError`; the
service reports it and reopens with backoff. Blocks PortAudio delivers while the reader is
behind are dropped (never block the audio callback) and counted as ``overruns``, as are the
input overflows PortAudio reports itself.
"""

from __future__ import annotations

import importlib
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from device.errors import AudioFileError, AudioInputError, MicrophoneUnavailableError

FloatArray = npt.NDArray[np.float32]

PORTAUDIO_HINT = (
    "install PortAudio (Debian/Raspberry Pi OS: sudo apt install libportaudio2) and the "
    "Python binding (pip install sounddevice)"
)
#: Audio the microphone queue holds before new blocks are dropped (the reader is behind).
QUEUE_SECONDS = 30.0


class AudioSource(Protocol):
    """What the ear reads audio from."""

    sample_rate: int
    description: str

    def open(self) -> None:
        """Start delivering; raise MicrophoneUnavailableError or AudioFileError if it cannot."""
        ...

    def read(self) -> FloatArray | None:
        """The next mono block (float32, [-1, 1]); ``None`` when the source has ended."""
        ...

    def close(self) -> None: ...

    @property
    def overruns(self) -> int:
        """Blocks lost because the reader fell behind (or PortAudio reported overflow)."""
        ...


def to_mono(block: npt.NDArray[Any]) -> FloatArray:
    """Average channels: ``(frames, channels)`` or ``(frames,)`` to float32 ``(frames,)``."""
    array = np.asarray(block, dtype=np.float32)
    if array.ndim == 2:
        return np.ascontiguousarray(array.mean(axis=1), dtype=np.float32)
    if array.ndim == 1:
        return array
    raise AudioInputError(
        f"audio blocks must be (frames,) or (frames, channels), got {array.shape}"
    )


# --- files ----------------------------------------------------------------------------------


def _soundfile() -> Any:
    try:
        return importlib.import_module("soundfile")
    except (ImportError, OSError) as e:
        raise AudioFileError(
            f"cannot read audio files: {e}. Install libsndfile (sudo apt install libsndfile1) "
            "and pip install soundfile"
        ) from e


def open_audio_file(path: Path) -> Any:
    """A ``soundfile.SoundFile`` open for reading, or a clear :class:`AudioFileError`."""
    soundfile = _soundfile()
    path = Path(path)
    if not path.is_file():
        raise AudioFileError(f"audio file {path} does not exist (or is not a file)")
    try:
        handle = soundfile.SoundFile(str(path))
    except (soundfile.LibsndfileError, RuntimeError, TypeError, OSError) as e:
        raise AudioFileError(
            f"{path} is not a readable audio file ({e}): use WAV or FLAC; convert other "
            "formats first, e.g. ffmpeg -i in.mp3 out.flac"
        ) from e
    if handle.frames == 0:
        handle.close()
        raise AudioFileError(f"{path} holds no audio (0 frames)")
    return handle


def read_audio_file(path: Path) -> tuple[FloatArray, int]:
    """A whole WAV/FLAC file as mono float32 and its sample rate."""
    with open_audio_file(path) as handle:
        try:
            data = handle.read(dtype="float32", always_2d=True)
        except (RuntimeError, OSError) as e:
            raise AudioFileError(f"{path} is corrupt or truncated: {e}") from e
        return to_mono(data), int(handle.samplerate)


class FileSource:
    """A WAV or FLAC file (any rate, any channel count) read block by block.

    ``realtime`` paces the blocks on ``sleep`` (``senses ear listen --file``); otherwise the
    file is read as fast as it is consumed (``senses ear scan``, tests).
    """

    def __init__(
        self,
        path: Path,
        *,
        block_s: float = 0.5,
        loop: bool = False,
        realtime: bool = False,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.block_s = block_s
        self.loop = loop
        self.realtime = realtime
        self._sleep = sleep
        self._handle: Any = None
        with open_audio_file(self.path) as probe:
            self.sample_rate = int(probe.samplerate)
            self.channels = int(probe.channels)
            self.frames = int(probe.frames)
        self.description = f"file {self.path.name} ({self.sample_rate} Hz, {self.channels} ch)"

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate

    @property
    def overruns(self) -> int:
        return 0

    def open(self) -> None:
        self._handle = open_audio_file(self.path)

    def read(self) -> FloatArray | None:
        if self._handle is None:
            raise AudioInputError(f"{self.description} is not open: call open() first")
        frames = max(1, round(self.block_s * self.sample_rate))
        try:
            data = self._handle.read(frames, dtype="float32", always_2d=True)
        except (RuntimeError, OSError) as e:
            raise AudioFileError(f"{self.path} is corrupt or truncated: {e}") from e
        if len(data) == 0 and self.loop:
            self._handle.seek(0)
            data = self._handle.read(frames, dtype="float32", always_2d=True)
        if len(data) == 0:
            return None
        if self.realtime and self._sleep is not None:
            self._sleep(len(data) / self.sample_rate)
        return to_mono(data)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


# --- generator ------------------------------------------------------------------------------


class GeneratorSource:
    """Audio from a function of absolute sample indices, for tests and `senses doctor`.

    ``make(indices, sample_rate)`` returns the samples at those indices; the default is a
    quiet noise floor with a 4 kHz chirping "call" for 0.6 s every 5 s.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        *,
        duration_s: float | None = None,
        block_s: float = 0.1,
        make: Callable[[npt.NDArray[np.int64], int], FloatArray] | None = None,
        seed: int = 0,
    ) -> None:
        self.sample_rate = sample_rate
        self.duration_s = duration_s
        self.block_s = block_s
        self._make = make or self._chirps
        self._rng = np.random.default_rng(seed)
        self._position = 0
        self.description = f"generator ({sample_rate} Hz)"

    @property
    def overruns(self) -> int:
        return 0

    def _chirps(self, indices: npt.NDArray[np.int64], rate: int) -> FloatArray:
        t = indices / rate
        in_call = (t % 5.0) < 0.6
        tone = 0.3 * np.sin(2 * np.pi * (4000 * t + 2000 * (t % 0.2) ** 2 / 0.4))
        noise = 0.003 * self._rng.standard_normal(len(indices))
        return np.asarray(np.where(in_call, tone, 0.0) + noise, dtype=np.float32)

    def open(self) -> None:
        self._position = 0

    def read(self) -> FloatArray | None:
        n = max(1, round(self.block_s * self.sample_rate))
        if self.duration_s is not None:
            n = min(n, round(self.duration_s * self.sample_rate) - self._position)
            if n <= 0:
                return None
        indices = np.arange(self._position, self._position + n, dtype=np.int64)
        self._position += n
        return np.asarray(self._make(indices, self.sample_rate), dtype=np.float32)

    def close(self) -> None:
        return None


# --- microphone -----------------------------------------------------------------------------


def import_sounddevice() -> Any:
    """The ``sounddevice`` module, or a MicrophoneUnavailableError saying what to install."""
    try:
        return importlib.import_module("sounddevice")
    except ImportError as e:
        raise MicrophoneUnavailableError(
            f"the sounddevice module is missing: {PORTAUDIO_HINT}"
        ) from e
    except OSError as e:  # sounddevice raises OSError when libportaudio is not found
        raise MicrophoneUnavailableError(
            f"PortAudio is not installed ({e}): {PORTAUDIO_HINT}"
        ) from e


def list_input_devices(backend: Any = None) -> list[str]:
    """PortAudio's input devices as "index: name (channels, default rate)", for `senses doctor`.

    Raises :class:`MicrophoneUnavailableError` when PortAudio is missing.
    """
    module = backend if backend is not None else import_sounddevice()
    try:
        devices = list(module.query_devices())
    except module.PortAudioError as e:
        raise MicrophoneUnavailableError(f"PortAudio cannot list devices: {e}") from e
    return [
        f"{d.get('index', i)}: {d['name']} ({d['max_input_channels']} ch, "
        f"{d['default_samplerate']:g} Hz)"
        for i, d in enumerate(devices)
        if d.get("max_input_channels", 0) > 0
    ]


class MicrophoneSource:
    """A PortAudio input stream (``sounddevice.InputStream``) read block by block.

    ``backend`` is the sounddevice module or an object with the same API (the emulated
    microphone); by default sounddevice is imported on :meth:`open`, so a station without a
    microphone never needs PortAudio. ``wait`` blocks on the queue for up to the given seconds
    (real time); the stall timeout is measured in those waits.
    """

    def __init__(
        self,
        *,
        device: int | str | None = None,
        sample_rate: int = 48000,
        channels: int = 1,
        block_s: float = 0.1,
        stall_s: float = 3.0,
        backend: Any = None,
    ) -> None:
        self.device = device
        self.sample_rate = sample_rate
        self.channels = channels
        self.block_s = block_s
        self.stall_s = stall_s
        self._backend = backend
        self._stream: Any = None
        max_blocks = max(4, round(QUEUE_SECONDS / block_s))
        self._queue: queue.Queue[FloatArray] = queue.Queue(maxsize=max_blocks)
        self._overruns = 0
        self._lock = threading.Lock()
        self.description = f"microphone {device if device is not None else '(default)'}"

    @property
    def overruns(self) -> int:
        with self._lock:
            return self._overruns

    def _count_overrun(self) -> None:
        with self._lock:
            self._overruns += 1

    def _callback(self, indata: npt.NDArray[Any], frames: int, time: Any, status: Any) -> None:
        # PortAudio's thread: never block, never raise.
        del frames, time
        if status and getattr(status, "input_overflow", False):
            self._count_overrun()
        try:
            self._queue.put_nowait(to_mono(indata.copy()))
        except queue.Full:
            self._count_overrun()

    def open(self) -> None:
        backend = self._backend if self._backend is not None else import_sounddevice()
        self._backend = backend
        self._queue = queue.Queue(maxsize=self._queue.maxsize)
        try:
            stream = backend.InputStream(
                device=self.device,
                samplerate=self.sample_rate,
                channels=self.channels,
                dtype="float32",
                blocksize=max(1, round(self.block_s * self.sample_rate)),
                callback=self._callback,
            )
            stream.start()
        except (backend.PortAudioError, ValueError) as e:
            raise MicrophoneUnavailableError(
                f"cannot open {self.description} at {self.sample_rate} Hz, {self.channels} "
                f"channel(s): {e}. Check it is plugged in (`arecord -l` or "
                "`python -m sounddevice` lists input devices) and that ear.device, "
                "ear.sample_rate and ear.channels are ones it supports"
            ) from e
        self._stream = stream

    def read(self) -> FloatArray | None:
        if self._stream is None:
            raise MicrophoneUnavailableError(f"{self.description} is not open")
        try:
            return self._queue.get(timeout=self.stall_s)
        except queue.Empty:
            active = bool(getattr(self._stream, "active", False))
            raise MicrophoneUnavailableError(
                f"{self.description} delivered no audio for {self.stall_s:g} s "
                f"({'stream still active' if active else 'stream stopped'}): unplugged, or "
                "taken by another program"
            ) from None

    def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is None:
            return
        backend = self._backend
        errors: tuple[type[BaseException], ...] = (OSError, RuntimeError)
        if backend is not None:
            errors = (*errors, backend.PortAudioError)
        try:
            stream.stop()
            stream.close()
        except errors:
            pass  # a vanished device cannot be stopped cleanly; it is gone either way
