"""The ear through the real PortAudio and ALSA, with no sound card: an ALSA ``file`` PCM.

ALSA's ``file`` plugin reads capture data from ``infile`` (raw 16-bit samples here) while its
slave, the ``null`` PCM, supplies the clock; a ``plug`` in front converts to whatever rate and
format the application opens, exactly as on a Pi with a USB microphone, and its ``hint``
makes PortAudio list it as an input device. The ``.asoundrc`` lives in a temporary HOME, so
the test touches no system configuration. PortAudio reads the ALSA configuration when it is
initialised (when ``sounddevice`` is imported), hence one subprocess per check.

This is beside the emulated ``sounddevice`` API the other ear tests use: here nothing in the
audio path is ours until ``sounddevice`` hands the block to ``MicrophoneSource``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from device.ear.frontend import resample
from device.ear.settings import DEFAULT_SOUNDSCAPE

REPO = Path(__file__).resolve().parents[2]
DEVICE = "senses_mic"
RATE = 22050  # the demo soundscape's own rate: the raw file holds its samples unchanged


def alsa_can_load() -> bool:
    try:
        import sounddevice  # noqa: F401
    except OSError:  # libportaudio2 missing (make system-deps installs it)
        return False
    return True


pytestmark = pytest.mark.skipif(not alsa_can_load(), reason="PortAudio is not installed")


def file_microphone(home: Path, samples: np.ndarray) -> Path:
    """A HOME whose .asoundrc offers ``senses_mic``: ``samples`` (int16, RATE Hz, mono)."""
    raw = home / "microphone.raw"
    samples.astype("<i2").tofile(raw)
    (home / ".asoundrc").write_text(
        f"""
pcm.senses_raw {{
    type file
    slave.pcm "null"
    file "/dev/null"
    infile "{raw}"
    format "raw"
}}
pcm.{DEVICE} {{
    type plug
    slave {{ pcm "senses_raw" format S16_LE rate {RATE} channels 1 }}
    hint {{ show on description "Senses test microphone (ALSA file PCM)" }}
}}
""",
        encoding="utf-8",
    )
    return raw


def run(home: Path, *args: str, timeout_s: float = 120.0) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "HOME": str(home),
        "SENSES_DATA_DIR": str(home / "data"),
        "PYTHONPATH": str(REPO),
    }
    return subprocess.run(
        [sys.executable, *args],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def soundscape_int16(seconds: float, silence_s: float) -> np.ndarray:
    """The first ``seconds`` of the demo soundscape, then silence (the file PCM must not run
    dry while the ear listens: past its end ALSA hands back stale buffer contents)."""
    audio, rate = soundfile.read(DEFAULT_SOUNDSCAPE, dtype="int16")
    assert rate == RATE
    head = audio[: int(seconds * RATE)]
    return np.concatenate([head, np.zeros(int(silence_s * RATE), dtype=np.int16)])


def test_portaudio_lists_the_file_pcm_and_records_its_samples_bit_exact(tmp_path: Path) -> None:
    samples = soundscape_int16(2.0, 2.0)
    file_microphone(tmp_path, samples)
    code = f"""
import json, sounddevice as sd
names = [d["name"] for d in sd.query_devices() if d["max_input_channels"] > 0]
got = sd.rec({len(samples)}, samplerate={RATE}, channels=1, dtype="int16", device="{DEVICE}",
             blocking=True)
print(json.dumps({{"names": names, "samples": got[:, 0].tolist()}}))
"""
    result = run(tmp_path, "-c", code)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert DEVICE in out["names"]
    assert np.array_equal(np.array(out["samples"], dtype=np.int16), samples)


def test_the_ear_hears_a_song_through_portaudio_and_alsa_and_clips_it(tmp_path: Path) -> None:
    # The demo soundscape's first 10 s: night forest, a great tit song at 3.0-6.3 s.
    samples = soundscape_int16(10.0, 20.0)
    file_microphone(tmp_path, samples)
    result = run(
        tmp_path,
        "-m",
        "device.cli",
        "ear",
        "listen",
        "--device",
        DEVICE,
        "--seconds",
        "14",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert not [e for e in events if e["type"] == "health" and e["status"] == "failed"], events
    birds = [e for e in events if e["type"] == "bird"]
    assert len(birds) == 1, events  # the song; nothing in the night forest or the silence
    (bird,) = birds
    assert bird["clip"] and not bird["clip_withheld"]
    assert 2.0 <= bird["end"] - bird["start"] <= 6.0

    # The clip holds the microphone's samples: at 48 kHz (ALSA's plug resampled the file),
    # it lines up with the recording, pre-roll before the song.
    clip, clip_rate = soundfile.read(bird["clip"], dtype="float32")
    assert clip_rate == 48000
    source = resample(samples.astype(np.float32) / 32768, RATE, clip_rate)
    correlation = np.correlate(source, clip[: 2 * clip_rate], mode="valid")
    lag_s = int(np.argmax(correlation)) / clip_rate
    energy = np.sqrt(
        np.sum(clip[: 2 * clip_rate] ** 2)
        * np.sum(source[int(lag_s * clip_rate) : int(lag_s * clip_rate) + 2 * clip_rate] ** 2)
    )
    assert correlation.max() / energy > 0.95
    assert 0.0 <= lag_s <= 3.0  # the clip starts up to the 2 s pre-roll before the song
