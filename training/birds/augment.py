"""Augmentation of one-patch waveforms: mixing calls into backgrounds, gain, generated noise.

All functions work on mono float32 at the front end's rate and are deterministic for a
``numpy.random.Generator``. Time shift is not here: training re-cuts whole recordings with a
start offset, so a shifted window holds the audio that really followed the call.

Generated backgrounds stand in for what the shared data lacks (research/birds.md: "there is
no rain clip: synthesise one") and for what BirdNET-Pi users complain about (sirens called
owls): white/pink/brown noise, rain (band-passed noise with drop clicks), a two-tone siren
sweep and mains/engine hum. They are trained as "no bird" and used as mixing backgrounds; they
are never scored (the report's false alarms come from real recordings only).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]

SYNTHETIC_KINDS: Final = ("white", "pink", "brown", "rain", "siren", "hum")
_EPS: Final = 1e-9


@dataclass(frozen=True)
class AugmentConfig:
    """How many augmented examples to make and how strong. Stored in the card."""

    #: Mixtures made of each labelled bird window, each with its own background and SNR.
    mixes_per_bird_window: int = 2
    #: Call-to-background power ratios, dB (the call's RMS over the whole window).
    snr_db: tuple[float, ...] = (-3.0, 3.0, 9.0, 15.0, 24.0)
    #: Range of the overall gain applied to mixtures and to gain-augmented negatives, dB.
    gain_db: tuple[float, float] = (-20.0, 6.0)
    #: Gain-augmented copies of each negative recording.
    negative_gain_copies: int = 2
    #: Re-cut bird recordings this far into the hop (0.5 = halfway between two windows).
    shift_fractions: tuple[float, ...] = (0.5,)
    #: Generated "no bird" windows.
    synthetic_windows: int = 120

    def to_dict(self) -> dict[str, object]:
        return {
            "mixes_per_bird_window": self.mixes_per_bird_window,
            "snr_db": list(self.snr_db),
            "gain_db": list(self.gain_db),
            "negative_gain_copies": self.negative_gain_copies,
            "shift_fractions": list(self.shift_fractions),
            "synthetic_windows": self.synthetic_windows,
        }


QUICK_AUGMENT: Final = AugmentConfig(
    mixes_per_bird_window=1, negative_gain_copies=1, shift_fractions=(), synthetic_windows=30
)


def rms(x: npt.NDArray[np.floating[Any]]) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def apply_gain(x: FloatArray, gain_db: float) -> FloatArray:
    """``x`` scaled by ``gain_db``, clipped to [-1, 1] as a real ADC would clip."""
    gained = np.clip(x * np.float32(10 ** (gain_db / 20)), -1.0, 1.0)
    return np.asarray(gained, dtype=np.float32)


def mix_at_snr(call: FloatArray, background: FloatArray, snr_db: float) -> FloatArray:
    """``call`` added to ``background`` so that their RMS ratio is ``snr_db``.

    The background keeps its level (a quiet night stays quiet; the call is then a distant
    bird); a silent background gets the call unscaled.
    """
    if len(call) != len(background):
        raise ValueError(f"call and background differ in length: {len(call)} vs {len(background)}")
    call_rms, background_rms = rms(call), rms(background)
    if call_rms < _EPS:
        return background.astype(np.float32, copy=True)
    scale = 1.0 if background_rms < _EPS else background_rms * 10 ** (snr_db / 20) / call_rms
    return np.clip(background + np.float32(scale) * call, -1.0, 1.0).astype(np.float32)


def synthetic_background(
    kind: str, n_samples: int, sample_rate: int, rng: np.random.Generator
) -> FloatArray:
    """One generated window of ``kind`` (see :data:`SYNTHETIC_KINDS`) at -50 to -15 dBFS."""
    t = np.arange(n_samples) / sample_rate
    x: npt.NDArray[np.float64]
    if kind == "white":
        x = rng.standard_normal(n_samples)
    elif kind in ("pink", "brown"):
        x = _coloured_noise(n_samples, 1.0 if kind == "pink" else 2.0, rng)
    elif kind == "rain":
        x = _coloured_noise(n_samples, 0.5, rng)
        drops = rng.random(n_samples) < 60 / sample_rate  # ~60 drop clicks per second
        decay = np.exp(-np.arange(int(0.004 * sample_rate)) / (0.0008 * sample_rate))
        x = x + 8 * np.convolve(drops * rng.standard_normal(n_samples), decay, mode="same")
    elif kind == "siren":
        low, high = rng.uniform(450, 700), rng.uniform(900, 1600)
        period_s = rng.uniform(0.6, 3.0)
        frequency = low + (high - low) * (0.5 + 0.5 * np.sin(2 * np.pi * t / period_s))
        phase = 2 * np.pi * np.cumsum(frequency) / sample_rate
        x = np.sin(phase) + 0.4 * np.sin(2 * phase) + 0.2 * np.sin(3 * phase)
        x = x + 0.05 * rng.standard_normal(n_samples)
    elif kind == "hum":
        base_hz = rng.choice([50.0, 60.0, rng.uniform(25, 120)])
        x = sum(
            rng.uniform(0.2, 1.0) / k * np.sin(2 * np.pi * k * base_hz * t + rng.uniform(0, 6.3))
            for k in range(1, 8)
        )
        x = np.asarray(x) + 0.02 * rng.standard_normal(n_samples)
    else:
        raise ValueError(f"unknown synthetic background {kind!r}: use one of {SYNTHETIC_KINDS}")
    level_rms = 10 ** (rng.uniform(-50, -15) / 20)
    samples = np.asarray(x, dtype=np.float64)
    return np.clip(samples * level_rms / max(rms(samples), _EPS), -1, 1).astype(np.float32)


def _coloured_noise(
    n_samples: int, exponent: float, rng: np.random.Generator
) -> npt.NDArray[np.float64]:
    """Gaussian noise with power falling as 1/f^exponent (pink 1, brown 2)."""
    spectrum = np.fft.rfft(rng.standard_normal(n_samples))
    frequencies = np.arange(len(spectrum), dtype=np.float64)
    frequencies[0] = 1.0
    shaped = np.fft.irfft(spectrum / frequencies ** (exponent / 2), n=n_samples)
    return np.asarray(shaped, dtype=np.float64)


def cut_window(waveform: FloatArray, start: int, length: int) -> FloatArray:
    """``length`` samples of ``waveform`` from ``start``, zero-padded past its end."""
    window = np.zeros(length, dtype=np.float32)
    piece = waveform[max(start, 0) : max(start, 0) + length]
    window[: len(piece)] = piece
    return window
