"""Audio sources: files of any rate and channel count, bad files, the generator, microphones."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
from ear_audio import AUDIO

from device.ear.sources import (
    FileSource,
    GeneratorSource,
    MicrophoneSource,
    import_sounddevice,
    list_input_devices,
    read_audio_file,
)
from device.errors import AudioFileError, MicrophoneUnavailableError
from hardware.sim.microphone import EmulatedSoundDevice


def read_all(
    source: FileSource | GeneratorSource | MicrophoneSource, limit: int = 10_000
) -> np.ndarray:
    source.open()
    blocks = []
    for _ in range(limit):
        block = source.read()
        if block is None:
            break
        blocks.append(block)
    source.close()
    return np.concatenate(blocks)


@pytest.mark.parametrize(
    ("rate", "channels", "fmt"), [(44100, 2, "WAV"), (8000, 1, "FLAC"), (96000, 3, "WAV")]
)
def test_file_source_gives_mono_float_at_the_files_rate(
    tmp_path: Path, rate: int, channels: int, fmt: str
) -> None:
    t = np.arange(rate) / rate
    left = 0.5 * np.sin(2 * np.pi * 440 * t)
    data = np.stack([left] + [np.zeros_like(left)] * (channels - 1), axis=1)
    path = tmp_path / f"tone.{fmt.lower()}"
    soundfile.write(str(path), data, rate, format=fmt, subtype="PCM_16")
    source = FileSource(path, block_s=0.1)
    mono = read_all(source)
    assert source.sample_rate == rate
    assert mono.dtype == np.float32 and mono.ndim == 1 and len(mono) == rate
    np.testing.assert_allclose(mono, left / channels, atol=1e-3)


def test_file_source_loops_when_asked() -> None:
    source = FileSource(AUDIO / "great_tit" / "2021-B32-0415_05-9.wav", block_s=1.0, loop=True)
    audio = read_all(source, limit=12)
    assert len(audio) / source.sample_rate > 2 * source.duration_s


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"this is not audio at all", "not a readable audio file"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", "not a readable audio file"),
    ],
)
def test_corrupt_and_unsupported_files_say_what_to_do(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(AudioFileError, match=message):
        FileSource(path)
    with pytest.raises(AudioFileError, match="does not exist"):
        read_audio_file(tmp_path / "missing.flac")


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    soundfile.write(str(path), np.zeros(0), 16000)
    with pytest.raises(AudioFileError, match="no audio"):
        read_audio_file(path)


def test_generator_is_deterministic_and_ends() -> None:
    one = read_all(GeneratorSource(16000, duration_s=6.0, seed=1))
    two = read_all(GeneratorSource(16000, duration_s=6.0, seed=1))
    assert len(one) == 96000
    np.testing.assert_array_equal(one, two)
    assert np.abs(one[:8000]).max() > 0.2  # the call at 0 s
    assert np.abs(one[16000:32000]).max() < 0.05  # quiet in between


def test_microphone_source_reads_the_emulated_microphone_in_stereo() -> None:
    device = EmulatedSoundDevice([AUDIO / "great_tit" / "2021-B32-0415_05-9.wav"], speed=50.0)
    mic = MicrophoneSource(sample_rate=16000, channels=2, block_s=0.1, backend=device)
    mic.open()
    blocks = [mic.read() for _ in range(20)]
    mic.close()
    assert all(b is not None and b.shape == (1600,) and b.dtype == np.float32 for b in blocks)
    assert mic.overruns == 0


def test_overflows_are_counted() -> None:
    device = EmulatedSoundDevice(
        [AUDIO / "great_tit" / "2021-B32-0415_05-9.wav"], speed=50.0, overflow_every=5
    )
    mic = MicrophoneSource(sample_rate=16000, block_s=0.1, backend=device)
    mic.open()
    for _ in range(20):
        mic.read()
    mic.close()
    assert mic.overruns >= 3


def test_unsupported_rate_and_missing_device_are_clear() -> None:
    device = EmulatedSoundDevice([AUDIO / "great_tit" / "2021-B32-0415_05-9.wav"])
    with pytest.raises(MicrophoneUnavailableError, match=r"ear\.sample_rate"):
        MicrophoneSource(sample_rate=12345, backend=device).open()
    with pytest.raises(MicrophoneUnavailableError, match="plugged in"):
        MicrophoneSource(device="Blue Yeti", backend=device).open()
    device.unplug()
    with pytest.raises(MicrophoneUnavailableError, match="Device unavailable"):
        MicrophoneSource(backend=device).open()


def test_a_microphone_that_stops_delivering_is_reported() -> None:
    device = EmulatedSoundDevice([AUDIO / "great_tit" / "2021-B32-0415_05-9.wav"], speed=20.0)
    mic = MicrophoneSource(sample_rate=16000, block_s=0.1, stall_s=0.3, backend=device)
    mic.open()
    assert mic.read() is not None
    device.unplug()
    with pytest.raises(MicrophoneUnavailableError, match=r"no audio for 0\.3 s"):
        for _ in range(1000):
            mic.read()
    mic.close()


def test_missing_portaudio_names_the_debian_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import fails as without the module
    with pytest.raises(MicrophoneUnavailableError, match="libportaudio2"):
        import_sounddevice()


def test_input_devices_are_listed_for_the_doctor() -> None:
    device = EmulatedSoundDevice([AUDIO / "great_tit" / "2021-B32-0415_05-9.wav"])
    assert list_input_devices(device) == ["0: Emulated USB Microphone (2 ch, 48000 Hz)"]
    device.unplug()
    assert list_input_devices(device) == []
