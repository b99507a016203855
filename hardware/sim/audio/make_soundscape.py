"""Build ``soundscape_demo.flac``: one minute of night ambience with birds and a speaker in it.

The emulated microphone and ``senses bench ear`` play it. Everything in it is a shipped
recording of this folder (see ATTRIBUTION.md), resampled with the station's own resampler:

====== ============================================ ==========================
 at s   what                                          why
====== ============================================ ==========================
 0-60   Jura night ambience (looped, scikit-maad)     a quiet background bed
 3      great tit song B32 05-9 (pykanto)             a bird the head names
 12     VCTK speaker p286 (CC BY 4.0)                 speech: must not be a bird
 22     great tit song B32 05-11                      a second song
 30     Pennsylvania dawn chorus, 10 s (opensoundscape) several species at once
 45     great tit song SW83 04-79                     another bird (nest box)
====== ============================================ ==========================

Run: ``python hardware/sim/audio/make_soundscape.py`` (deterministic; rewrites the file).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import soundfile

from device.ear.frontend import resample
from device.ear.sources import read_audio_file

HERE = Path(__file__).resolve().parent
RATE = 22050
DURATION_S = 60.0
BED = "S4A03895_20190522_230000.wav"
EVENTS = (
    (3.0, "great_tit/2021-B32-0415_05-9.wav", 1.0),
    (12.0, "speech_p286_011_vctk.wav", 0.5),
    (22.0, "great_tit/2021-B32-0415_05-11.wav", 1.0),
    (30.0, "birds_10s_opensoundscape.wav", 1.0),
    (45.0, "great_tit/2021-SW83-0418_04-79.wav", 1.0),
)


def load(name: str) -> npt.NDArray[np.float32]:
    mono, rate = read_audio_file(HERE / name)
    return resample(mono, rate, RATE)


def main() -> None:
    total = int(DURATION_S * RATE)
    bed = load(BED)
    mix = np.resize(bed, total).astype(np.float64)
    for at_s, name, gain in EVENTS:
        clip = load(name) * gain
        start = int(at_s * RATE)
        end = min(total, start + len(clip))
        mix[start:end] += clip[: end - start]
    peak = np.abs(mix).max()
    if peak > 0.99:
        mix *= 0.99 / peak
    soundfile.write(str(HERE / "soundscape_demo.flac"), mix.astype(np.float32), RATE, "PCM_16")


if __name__ == "__main__":
    main()
