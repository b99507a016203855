"""The streaming front end: what training and the station both feed the backbone."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from ear_audio import AUDIO, read_mono
from scipy import signal

from device.ear.frontend import (
    FrontendConfig,
    StreamingFrontend,
    kaiser_lowpass,
    patches_from_waveform,
    resample,
)
from device.errors import AudioInputError

Audio = tuple[npt.NDArray[np.float32], int]


def push_in_chunks(
    waveform: npt.NDArray[np.float32], rate: int, seed: int, config: FrontendConfig
) -> npt.NDArray[np.float32]:
    rng = np.random.default_rng(seed)
    frontend = StreamingFrontend(rate, config)
    patches = []
    i = 0
    while i < len(waveform):
        # From one sample to a few seconds: microphone callbacks, file blocks, whole reads.
        n = int(rng.choice([1, 7, 160, 1023, 4096, 48000, int(rng.integers(1, 20000))]))
        patches += frontend.push(waveform[i : i + n])
        i += n
    patches += frontend.flush()
    return np.stack([p.features for p in patches])


@pytest.mark.parametrize("target_rate", [16000, 22050, 32000, 44100, 48000])
@pytest.mark.parametrize("seed", [0, 1])
def test_any_chunking_gives_the_whole_file_result_bit_for_bit(
    soundscape: Audio, target_rate: int, seed: int
) -> None:
    waveform, rate = soundscape
    audio = resample(waveform[: 4 * rate], rate, target_rate)
    whole, _ = patches_from_waveform(audio, target_rate)
    chunked = push_in_chunks(audio, target_rate, seed, FrontendConfig())
    assert whole.shape == chunked.shape
    assert np.array_equal(whole, chunked)


def test_pcen_is_streamed_bit_for_bit_too(soundscape: Audio) -> None:
    waveform, rate = soundscape
    config = FrontendConfig(pcen=True)
    whole, _ = patches_from_waveform(waveform[: 3 * rate], rate, config)
    chunked = push_in_chunks(waveform[: 3 * rate], rate, 3, config)
    assert np.array_equal(whole, chunked)
    assert np.all(np.isfinite(whole))
    logmel, _ = patches_from_waveform(waveform[: 3 * rate], rate)
    assert not np.allclose(whole, logmel)


@pytest.mark.parametrize(("taps", "cutoff"), [(61, 1 / 3), (8821, 1 / 441), (201, 0.1)])
def test_the_anti_aliasing_filter_is_scipys_firwin(taps: int, cutoff: float) -> None:
    np.testing.assert_allclose(
        kaiser_lowpass(taps, cutoff),
        signal.firwin(taps, cutoff, window=("kaiser", 5.0)),
        atol=1e-12,
    )


@pytest.mark.parametrize("rate", [8000, 11025, 22050, 32000, 44100, 48000, 96000])
def test_resampling_is_scipy_resample_poly(rate: int) -> None:
    x = np.random.default_rng(rate).uniform(-0.9, 0.9, 2 * rate + 37)
    g = np.gcd(rate, 16000)
    expected = signal.resample_poly(x, 16000 // g, rate // g)
    ours = resample(x, rate, 16000)
    assert ours.shape == expected.shape
    np.testing.assert_allclose(ours, expected, atol=1e-6)


def test_matches_yamnets_own_log_mel_on_real_birdsong(
    yamnet_reference: dict[str, npt.NDArray[np.generic]],
) -> None:
    # The reference holds the first patches of each file as the original YAMNet file computed
    # them (its int8 DFT rounds quiet bins away, so a few values differ a lot: see the card),
    # and as YAMNet's features.py computes them in float TensorFlow (what it was trained on).
    diffs = []
    for name in np.unique(yamnet_reference["source"]):
        rows = yamnet_reference["source"] == name
        expected = yamnet_reference["patches"][rows]
        path = next(AUDIO.rglob(str(name)))
        waveform, rate = read_mono(path)
        ours, starts = patches_from_waveform(waveform, rate)
        assert starts[: len(expected)].tolist() == pytest.approx([0.0, 0.48, 0.96][: len(expected)])
        diffs.append(np.abs(ours[: len(expected)] - expected).ravel())
        float_expected = yamnet_reference["float_patches"][rows]
        np.testing.assert_allclose(ours[: len(expected)], float_expected, atol=2e-4)
    every = np.concatenate(diffs)
    assert every.mean() < 0.15
    assert np.median(every) < 0.02


def test_patches_cover_the_whole_recording_and_say_when(great_tit: Audio) -> None:
    waveform, rate = great_tit
    duration_s = len(waveform) / rate
    frontend = StreamingFrontend(rate)
    patches = frontend.push(waveform) + frontend.flush()
    starts = [p.start_s for p in patches]
    assert starts == pytest.approx([0.48 * i for i in range(len(patches))])
    assert all(p.end_s - p.start_s == pytest.approx(0.975) for p in patches)
    assert patches[-1].end_s >= duration_s > patches[-1].start_s
    assert all(p.features.shape == (96, 64) and p.features.dtype == np.float32 for p in patches)


def test_a_blip_shorter_than_a_window_still_gives_one_patch() -> None:
    blip = np.sin(np.linspace(0, 600, 3000)).astype(np.float32) * 0.5
    patches, starts = patches_from_waveform(blip, 16000)
    assert patches.shape == (1, 96, 64)
    assert starts.tolist() == [0.0]
    empty, _ = patches_from_waveform(np.zeros(0, dtype=np.float32), 16000)
    assert empty.shape == (0, 96, 64)


def test_silence_gives_the_floor_and_no_nan() -> None:
    patches, _ = patches_from_waveform(np.zeros(32000, dtype=np.float32), 48000)
    assert np.allclose(patches, np.log(0.001))


def test_clipping_is_counted_and_clipped() -> None:
    loud, _ = patches_from_waveform(np.full(16000, 1.5, dtype=np.float32), 16000)
    full_scale, _ = patches_from_waveform(np.ones(16000, dtype=np.float32), 16000)
    assert np.array_equal(loud, full_scale)
    frontend = StreamingFrontend(16000)
    frontend.push(np.array([0.5, -1.2, 1.0, 2.0], dtype=np.float32))
    assert frontend.clipped_samples == 2


@pytest.mark.parametrize(
    ("samples", "message"),
    [
        (np.zeros((100, 2), dtype=np.float32), "mono first"),
        (np.zeros(100, dtype=np.int16), "divide by 32768"),
        (np.array([0.0, np.nan], dtype=np.float32), "NaN"),
    ],
)
def test_bad_samples_are_refused_with_what_to_do(samples: np.ndarray, message: str) -> None:
    with pytest.raises(AudioInputError, match=message):
        StreamingFrontend(16000).push(samples)


def test_bad_rates_and_settings_are_refused() -> None:
    with pytest.raises(AudioInputError, match="too low"):
        StreamingFrontend(500)
    with pytest.raises(AudioInputError, match="fmax"):
        FrontendConfig(fmax=9000.0)
    with pytest.raises(AudioInputError, match="unknown front-end settings"):
        FrontendConfig.from_dict({"hop_ms": 10})
    frontend = StreamingFrontend(16000)
    frontend.flush()
    with pytest.raises(AudioInputError, match="flushed"):
        frontend.push(np.zeros(10, dtype=np.float32))
