"""The ear's streaming front end: any-rate mono audio in, YAMNet-style log-mel patches out.

Shared by the station and by training (``training/birds`` imports this module), so the model
sees at run time exactly what it was trained on. No TensorFlow here.

The pipeline reproduces YAMNet's own feature extraction (tensorflow/models
``research/audioset/yamnet/features.py``): 16 kHz, 25 ms periodic-Hann frames every 10 ms,
magnitude of a 512-point real FFT, 64 HTK-mel bands from 125 to 7500 Hz
(``tf.signal.linear_to_mel_weight_matrix``), ``log(mel + 0.001)``; patches of 96 frames
(0.96 s of frames, 0.975 s of audio) every 48 frames (0.48 s). PCEN (Wang et al. 2017,
"Trainable frontend for robust and far-field keyword spotting") is an option for heads trained
on it; YAMNet itself was trained on log-mel.

**Streaming, identical for any chunking.** Audio arrives in chunks of any size (a microphone
callback, a file read in blocks, a whole file at once). Every stage works on fixed-size
blocks aligned to absolute positions in the stream, and only once all the samples a block
needs have arrived, so the floating-point work done for each output never depends on how the
input was cut: :func:`patches_from_waveform` (training, ``senses ear scan``) gives bit for bit
the patches of pushing the same audio in arbitrary pieces through a :class:`StreamingFrontend`.

* Resampling is ``scipy.signal.resample_poly`` computed block by block: the same Kaiser FIR
  (zero-phase, ``10 * max(up, down)`` taps each side), with the last inputs carried over.
  Output blocks are a multiple of ``up`` long, so every block sees the same filter phases,
  and one block is one product with a fixed sparse matrix (its polyphase filter bank).
  ``scipy.signal`` itself is not imported: it would add about 50 MB to the daemon's memory.
* Frames are computed ``gcd(patch_frames, patch_hop_frames)`` at a time.
* :meth:`StreamingFrontend.flush` ends the stream: the resampler's look-ahead is filled with
  zeros (as ``resample_poly`` pads) and the last patch is completed with silence, so every
  heard sample lands in at least one patch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import scipy.fft
import scipy.sparse

from device.errors import AudioInputError

FloatArray = npt.NDArray[np.float32]

#: Resampler blocks are about this long (then rounded up to a multiple of ``up``).
_RESAMPLER_BLOCK_S: Final = 0.48
# resample_poly's default anti-aliasing filter (scipy.signal.resample_poly, window=('kaiser', 5)).
_KAISER_BETA: Final = 5.0
_HALF_LEN_PER_FACTOR: Final = 10


@dataclass(frozen=True)
class FrontendConfig:
    """Front-end parameters; the defaults are YAMNet's. Stored in model cards' task_config."""

    sample_rate: int = 16000
    window_s: float = 0.025
    hop_s: float = 0.010
    mel_bins: int = 64
    fmin: float = 125.0
    fmax: float = 7500.0
    log_offset: float = 0.001
    patch_frames: int = 96
    patch_hop_frames: int = 48
    pcen: bool = False
    # PCEN smoothing, gain, bias and root (librosa's defaults, at a 10 ms hop).
    pcen_smooth: float = 0.025
    pcen_gain: float = 0.98
    pcen_bias: float = 2.0
    pcen_power: float = 0.5
    pcen_eps: float = 1e-6

    def __post_init__(self) -> None:
        problems = []
        if self.sample_rate < 1000:
            problems.append(f"sample_rate {self.sample_rate} Hz is below 1000 Hz")
        if not 0 < self.hop_s <= self.window_s:
            problems.append(f"hop_s {self.hop_s} must be > 0 and <= window_s {self.window_s}")
        if not 0 <= self.fmin < self.fmax <= self.sample_rate / 2:
            problems.append(
                f"need 0 <= fmin ({self.fmin}) < fmax ({self.fmax}) <= sample_rate / 2 "
                f"({self.sample_rate / 2})"
            )
        if self.mel_bins < 1 or self.patch_frames < 1:
            problems.append("mel_bins and patch_frames must be >= 1")
        if not 1 <= self.patch_hop_frames <= self.patch_frames:
            problems.append(
                f"patch_hop_frames {self.patch_hop_frames} must be in 1..{self.patch_frames}"
            )
        if self.log_offset <= 0:
            problems.append(f"log_offset must be > 0, got {self.log_offset}")
        if abs(self.window_s * self.sample_rate - round(self.window_s * self.sample_rate)) > 1e-6:
            problems.append("window_s * sample_rate must be a whole number of samples")
        if abs(self.hop_s * self.sample_rate - round(self.hop_s * self.sample_rate)) > 1e-6:
            problems.append("hop_s * sample_rate must be a whole number of samples")
        if problems:
            raise AudioInputError("invalid front-end settings: " + "; ".join(problems))

    @property
    def window_samples(self) -> int:
        return round(self.window_s * self.sample_rate)

    @property
    def hop_samples(self) -> int:
        return round(self.hop_s * self.sample_rate)

    @property
    def fft_length(self) -> int:
        return 1 << (self.window_samples - 1).bit_length()

    @property
    def patch_duration_s(self) -> float:
        """Seconds of audio one patch covers (0.975 s for YAMNet)."""
        return ((self.patch_frames - 1) * self.hop_samples + self.window_samples) / self.sample_rate

    @property
    def patch_hop_s(self) -> float:
        return self.patch_hop_frames * self.hop_samples / self.sample_rate

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> FrontendConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise AudioInputError(
                f"unknown front-end settings {unknown}: known ones are {sorted(known)}"
            )
        return cls(**dict(values))


@dataclass(frozen=True)
class Patch:
    """One front-end output: a log-mel (or PCEN) patch and the audio span it covers.

    Times are seconds of audio since the stream started (the first sample is at 0).
    """

    features: FloatArray  # (patch_frames, mel_bins)
    start_s: float
    end_s: float


def hertz_to_mel(frequency_hz: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """HTK mel scale, as ``tf.signal`` uses: 1127 ln(1 + f / 700)."""
    return 1127.0 * np.log1p(frequency_hz / 700.0)


def mel_matrix(config: FrontendConfig) -> FloatArray:
    """The (fft_length // 2 + 1, mel_bins) weights of ``tf.signal.linear_to_mel_weight_matrix``.

    Triangles on the HTK mel scale, evaluated at the FFT bin centres; the DC bin gets no weight.
    """
    bins = config.fft_length // 2 + 1
    linear_hz = np.linspace(0.0, config.sample_rate / 2, bins)[1:]
    spectrogram_mel = hertz_to_mel(linear_hz)[:, np.newaxis]
    edges = np.linspace(
        hertz_to_mel(np.array(config.fmin)),
        hertz_to_mel(np.array(config.fmax)),
        config.mel_bins + 2,
    )
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (spectrogram_mel - lower) / (center - lower)
    falling = (upper - spectrogram_mel) / (upper - center)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    return np.vstack([np.zeros((1, config.mel_bins)), weights]).astype(np.float32)


def _check_samples(samples: npt.ArrayLike, what: str) -> npt.NDArray[np.floating[Any]]:
    array = np.asarray(samples)
    if array.ndim != 1:
        hint = " (mix channels to mono first: samples.mean(axis=1))" if array.ndim == 2 else ""
        raise AudioInputError(f"{what} must be one channel (1-D), got shape {array.shape}{hint}")
    if array.dtype.kind != "f":
        raise AudioInputError(
            f"{what} must be float samples in [-1, 1], got {array.dtype} (for int16 PCM divide "
            "by 32768)"
        )
    # One reduction instead of an isfinite mask: NaN and infinity propagate through a sum.
    if array.size and not math.isfinite(float(array.sum(dtype=np.float64))):
        raise AudioInputError(f"{what} contains NaN or infinite samples")
    return array


def kaiser_lowpass(taps: int, cutoff: float, beta: float = _KAISER_BETA) -> npt.NDArray[np.float64]:
    """``scipy.signal.firwin(taps, cutoff, window=("kaiser", beta))``: unit gain at DC.

    ``cutoff`` is relative to the Nyquist frequency.
    """
    n = np.arange(taps) - (taps - 1) / 2
    h = cutoff * np.sinc(cutoff * n) * np.kaiser(taps, beta)
    return np.asarray(h / h.sum(), dtype=np.float64)


def _polyphase_matrix(
    taps: npt.NDArray[np.float64], up: int, down: int, skip: int, rows: int, columns: int
) -> scipy.sparse.csr_array:
    """Rows of ``upfirdn(taps, x, up, down)[skip : skip + rows]`` as a sparse matrix on ``x``.

    Output ``k`` is ``sum_i x[i] * taps[(skip + k) * down - i * up]``: a float32 CSR matrix
    whose product with a block of inputs is one block of outputs, computed the same way for
    every block.
    """
    k = np.arange(rows, dtype=np.int64)[:, np.newaxis]
    reach = (skip + k) * down
    newest = reach // up
    i = newest - np.arange(-(-len(taps) // up), dtype=np.int64)[np.newaxis, :]
    index = reach - i * up
    valid = (index >= 0) & (index < len(taps)) & (i >= 0) & (i < columns)
    row_of = np.broadcast_to(k, i.shape)[valid]
    values = taps[index[valid]].astype(np.float32)
    return scipy.sparse.csr_array((values, (row_of, i[valid])), shape=(rows, columns))


class PolyphaseResampler:
    """``scipy.signal.resample_poly`` as a stream: same filter and output, any chunking."""

    def __init__(self, input_rate: int, output_rate: int) -> None:
        if input_rate < 1 or output_rate < 1:
            raise AudioInputError(
                f"sample rates must be positive whole numbers of Hz, got {input_rate} -> "
                f"{output_rate}"
            )
        g = math.gcd(input_rate, output_rate)
        self.up = output_rate // g
        self.down = input_rate // g
        self.passthrough = self.up == self.down == 1
        self._inputs_seen = 0
        self._outputs_done = 0
        self._flushed = False
        if self.passthrough:
            return
        factor = max(self.up, self.down)
        half_len = _HALF_LEN_PER_FACTOR * factor
        filter_taps = kaiser_lowpass(2 * half_len + 1, 1.0 / factor) * self.up
        # y[m] = sum_n x[n] h[m*down + half_len - n*up]; a block of outputs starting at m0
        # (a multiple of `up`) reads x from m0*down/up - lead on, always the same filter phases.
        self._lead = half_len // self.up
        offset = half_len + self._lead * self.up
        shift = (-offset) % self.down
        taps = np.concatenate([np.zeros(shift), filter_taps])
        skip = (offset + shift) // self.down
        target = max(1, round(_RESAMPLER_BLOCK_S * output_rate))
        self.block = self.up * math.ceil(target / self.up)
        self._block_inputs = ((self.block - 1) * self.down + half_len) // self.up + self._lead + 1
        if self.up == 1:
            # Plain decimation (48 or 32 kHz to 16 kHz): output k is the dot product of the
            # inputs ending at (skip + k) * down with the reversed taps; the `shift` leading
            # zero taps reach `shift` samples past the block, which are padded with zeros.
            self._reversed_taps = taps[::-1].astype(np.float32)
            self._tail = np.zeros(shift, dtype=np.float32)
        else:
            self._bank = _polyphase_matrix(
                taps, self.up, self.down, skip, self.block, self._block_inputs
            )
        # Inputs before the stream began are zeros, as resample_poly pads.
        self._buffer = np.zeros(self._lead, dtype=np.float32)
        self._buffer_start = -self._lead

    @property
    def inputs_seen(self) -> int:
        return self._inputs_seen

    def push(self, samples: npt.NDArray[np.floating[Any]]) -> FloatArray:
        if self._flushed:
            raise AudioInputError("the resampler was flushed: start a new stream")
        self._inputs_seen += len(samples)
        if self.passthrough:
            self._outputs_done += len(samples)
            return np.asarray(samples, dtype=np.float32)
        self._buffer = np.concatenate([self._buffer, samples.astype(np.float32)])
        return self._drain(limit=None)

    def flush(self) -> FloatArray:
        """End of stream: the remaining outputs, with zeros after the last input."""
        if self._flushed:
            return np.zeros(0, dtype=np.float32)
        self._flushed = True
        if self.passthrough:
            return np.zeros(0, dtype=np.float32)
        total = -(-self._inputs_seen * self.up // self.down)
        padding = np.zeros(self._block_inputs * 2, dtype=np.float32)
        self._buffer = np.concatenate([self._buffer, padding])
        return self._drain(limit=total)

    def _filter_block(self, piece: FloatArray) -> FloatArray:
        if self.up == 1:
            windows = np.lib.stride_tricks.sliding_window_view(
                np.concatenate([piece, self._tail]), len(self._reversed_taps)
            )[:: self.down][: self.block]
            return np.asarray(np.einsum("ij,j->i", windows, self._reversed_taps), np.float32)
        return np.asarray(self._bank @ piece, dtype=np.float32)

    def _drain(self, limit: int | None) -> FloatArray:
        out: list[FloatArray] = []
        while limit is None or self._outputs_done < limit:
            first_input = self._outputs_done * self.down // self.up - self._lead
            start = first_input - self._buffer_start
            if start + self._block_inputs > len(self._buffer):
                break
            piece = self._buffer[start : start + self._block_inputs]
            block = self._filter_block(piece)
            if limit is not None:
                block = block[: limit - self._outputs_done]
            out.append(block)
            self._outputs_done += self.block
        # Keep only what the next block needs.
        next_first = self._outputs_done * self.down // self.up - self._lead
        drop = max(0, next_first - self._buffer_start)
        self._buffer = self._buffer[drop:]
        self._buffer_start += drop
        if not out:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate(out).astype(np.float32)


def resample(waveform: npt.ArrayLike, input_rate: int, output_rate: int) -> FloatArray:
    """A whole mono recording resampled exactly as the streaming front end does it."""
    samples = _check_samples(waveform, "waveform")
    resampler = PolyphaseResampler(int(input_rate), int(output_rate))
    return np.concatenate([resampler.push(samples), resampler.flush()])


class StreamingFrontend:
    """Mono audio at ``input_rate`` in, completed :class:`Patch` es out, state carried over.

    Carried state: the resampler's recent inputs, the 16 kHz samples the next frames need,
    the frames the next patch needs, and (PCEN) the smoother's value. One instance per stream;
    not thread-safe.
    """

    def __init__(self, input_rate: int, config: FrontendConfig = FrontendConfig()) -> None:
        self.config = config
        self.input_rate = int(input_rate)
        if self.input_rate < 1000:
            raise AudioInputError(
                f"input sample rate {input_rate} Hz is too low for bird calls (need >= 1000 Hz; "
                "typical microphones run at 16000, 44100 or 48000)"
            )
        self._resampler = PolyphaseResampler(self.input_rate, config.sample_rate)
        self._frame_block = math.gcd(config.patch_frames, config.patch_hop_frames)
        self._window = (
            0.5 - 0.5 * np.cos(2 * np.pi * np.arange(config.window_samples) / config.window_samples)
        ).astype(np.float32)
        self._mel_sparse_t = scipy.sparse.csr_matrix(mel_matrix(config).T)
        self._padded = np.zeros((self._frame_block, config.fft_length), dtype=np.float32)
        # Sample indices of each frame of a block, relative to the block's first sample.
        self._frame_index = (
            np.arange(self._frame_block)[:, np.newaxis] * config.hop_samples
            + np.arange(config.window_samples)[np.newaxis, :]
        )
        self._wave = np.zeros(0, dtype=np.float32)
        self._wave_start = 0  # absolute 16 kHz index of _wave[0]
        self._wave_total = 0
        self._frames: list[FloatArray] = []  # blocks of computed rows
        self._frames_start = 0  # absolute frame index of the first kept row
        self._frames_done = 0
        self._next_patch = 0
        self._pcen_state: npt.NDArray[np.float64] | None = None
        self._clipped = 0
        self._flushed = False

    @property
    def clipped_samples(self) -> int:
        """Samples outside [-1, 1] so far (clipped before processing): a gain set too high."""
        return self._clipped

    @property
    def seconds_in(self) -> float:
        """Seconds of audio pushed so far."""
        return self._resampler.inputs_seen / self.input_rate

    def push(self, samples: npt.ArrayLike) -> list[Patch]:
        """Add mono float samples in [-1, 1]; return the patches they completed (maybe none)."""
        if self._flushed:
            raise AudioInputError("the front end was flushed: create a new one for a new stream")
        array = _check_samples(samples, "audio samples")
        if array.size and (array.max() > 1.0 or array.min() < -1.0):
            self._clipped += int(np.count_nonzero(np.abs(array) > 1.0))
            array = np.clip(array, -1.0, 1.0)
        return self._consume(self._resampler.push(array))

    def flush(self) -> list[Patch]:
        """End of stream: complete the last patch with silence and return what remains."""
        if self._flushed:
            return []
        patches = self._consume(self._resampler.flush())
        self._flushed = True
        config = self.config
        heard = self._wave_total
        if heard == 0:
            return patches
        hop = config.patch_hop_frames * config.hop_samples
        patch_len = (config.patch_frames - 1) * config.hop_samples + config.window_samples
        # Enough patches that every heard sample is in one (at least one, even for a blip).
        needed = 1 + max(0, -(-(heard - patch_len) // hop))
        last_sample = (needed - 1) * hop + patch_len
        if last_sample > heard:
            silence = np.zeros(last_sample - heard, dtype=np.float32)
            patches += self._consume(silence, count_as_heard=False)
        return patches

    def _consume(self, wave16k: FloatArray, *, count_as_heard: bool = True) -> list[Patch]:
        if count_as_heard:
            self._wave_total += len(wave16k)
        self._wave = np.concatenate([self._wave, wave16k]) if len(self._wave) else wave16k
        config = self.config
        block_span = (self._frame_block - 1) * config.hop_samples + config.window_samples
        while True:
            first_sample = self._frames_done * config.hop_samples
            start = first_sample - self._wave_start
            if start + block_span > len(self._wave):
                break
            self._frames.append(self._frame_block_features(self._wave[start : start + block_span]))
            self._frames_done += self._frame_block
        drop = self._frames_done * config.hop_samples - self._wave_start
        if drop > 0:
            self._wave = self._wave[drop:]
            self._wave_start += drop
        return self._assemble_patches()

    def _frame_block_features(self, wave: FloatArray) -> FloatArray:
        config = self.config
        np.multiply(
            wave[self._frame_index], self._window, out=self._padded[:, : config.window_samples]
        )
        spectrum = np.abs(scipy.fft.rfft(self._padded, axis=1))
        # Sparse product: no BLAS, whose thread pool stalls small products on a busy CPU.
        mel: FloatArray = np.asarray((self._mel_sparse_t @ spectrum.T).T, dtype=np.float32)
        if config.pcen:
            return self._pcen(mel)
        logmel: FloatArray = np.log(mel + np.float32(config.log_offset)).astype(np.float32)
        return logmel

    def _pcen(self, mel: FloatArray) -> FloatArray:
        config = self.config
        energy = mel.astype(np.float64)
        s = config.pcen_smooth
        if self._pcen_state is None:
            # Start the smoother on the first frame, as librosa does (no start-up transient).
            self._pcen_state = energy[0].copy()
        smoothed = np.empty_like(energy)
        state = self._pcen_state
        for t, frame in enumerate(energy):  # one-pole smoother M[t] = (1-s) M[t-1] + s E[t]
            state = (1 - s) * state + s * frame
            smoothed[t] = state
        self._pcen_state = state
        gain = np.exp(-config.pcen_gain * np.log(config.pcen_eps + smoothed))
        out = (energy * gain + config.pcen_bias) ** config.pcen_power
        out -= config.pcen_bias**config.pcen_power
        return np.asarray(out, dtype=np.float32)

    def _assemble_patches(self) -> list[Patch]:
        config = self.config
        if len(self._frames) > 1:
            self._frames = [np.concatenate(self._frames)]
        patches: list[Patch] = []
        while True:
            first = self._next_patch * config.patch_hop_frames
            if first + config.patch_frames > self._frames_done:
                break
            local = first - self._frames_start
            features = np.ascontiguousarray(self._frames[0][local : local + config.patch_frames])
            start_s = first * config.hop_samples / config.sample_rate
            patches.append(Patch(features, start_s, start_s + self.config.patch_duration_s))
            self._next_patch += 1
        keep_from = self._next_patch * config.patch_hop_frames
        if self._frames and keep_from > self._frames_start:
            self._frames = [self._frames[0][keep_from - self._frames_start :]]
            self._frames_start = keep_from
        return patches


def patches_from_waveform(
    waveform: npt.ArrayLike,
    sample_rate: int,
    config: FrontendConfig = FrontendConfig(),
) -> tuple[FloatArray, npt.NDArray[np.float64]]:
    """All patches of a whole recording: ``(n, patch_frames, mel_bins)`` and start times (s).

    Identical to pushing the recording through a :class:`StreamingFrontend` in any chunks and
    flushing it.
    """
    frontend = StreamingFrontend(sample_rate, config)
    patches = frontend.push(waveform) + frontend.flush()
    if not patches:
        return (
            np.zeros((0, config.patch_frames, config.mel_bins), dtype=np.float32),
            np.zeros(0, dtype=np.float64),
        )
    return (
        np.stack([p.features for p in patches]),
        np.array([p.start_s for p in patches], dtype=np.float64),
    )
