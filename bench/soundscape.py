"""A long station soundscape, composed from the licensed recordings in the repository.

There is no day-long field recording among the project's data. This builds one (12 minutes by
default) the way a station hears a day: long stretches of bird-free sound (night forest,
midday forest, a person talking, a trilling toad, a grouse drumming) with bird calls placed
between them, birds audible in about a quarter of the time. ``senses bench ear`` and the
cascade measurement (``bench/cascade.py``) run on it; it is generated at bench or test time
(deterministic for a seed), never committed as audio.

**Sources** (all in the repository; licences in ``training/data/birds/README.md`` and
``hardware/sim/audio/ATTRIBUTION.md``: MIT, BSD-3-Clause, CC BY 4.0):

* birds: 20 great tit songs (pykanto, Oxford), the Pennsylvania dawn choruses
  (opensoundscape: 60 s cut into 10 s pieces, and the 10 s sample), the Colombian spinetail
  soundscape (scikit-maad), the Jura forest at 05:30, 06:00, 08:00 and the first 5 s of
  12:00 (scikit-maad: chiffchaff, blackbird, chaffinch), the AudioMoth dawn snippet
  (pykanto); every bird piece is placed twice: as recorded, and 6 dB quieter (a bird
  farther away);
* bird-free: the Jura forest at night (00:00, 23:00) as the bed of the night stretches, and
  the last 5 s of its noon clip (nothing BirdNET rates above 0.1) as the bed of the day
  stretches; VCTK speaker p286 (CC BY 4.0) three times; the second half of a Great Plains
  toad's trill (opensoundscape; its first half trains the cascade's gate) twice; a ruffed
  grouse drumming (opensoundscape; not a call, but BirdNET names birds on it).

**How it is built** (:func:`compose`): the timeline alternates night and midday beds in
stretches of 2-3 minutes, each bed recording looped with crossfades. Bird clips and negative
events are shuffled with ``numpy.random.default_rng(seed)`` and placed one after the other
with random bird-free gaps between them, drawn so that birds fill ``bird_share`` of the
total; each placed clip fades in and out over 20 ms (no splice clicks: YAMNet hears an
abrupt cut as an event). Everything is resampled to 48 kHz with the station's own resampler.
The result carries its truth: every placed clip with start, end, kind and source.

    python -m bench.soundscape --out /tmp/station.flac [--minutes M] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final, Literal

import numpy as np
import numpy.typing as npt
import soundfile

from device.ear.frontend import resample
from device.ear.sources import read_audio_file

FloatArray = npt.NDArray[np.float32]

REPO: Final = Path(__file__).resolve().parents[1]
BIRD_DATA: Final = REPO / "training" / "data" / "birds"
SIM_AUDIO: Final = REPO / "hardware" / "sim" / "audio"
RATE: Final = 48000
FADE_S: Final = 0.02
PIECE_S: Final = 10.0  # long bird recordings are cut into pieces this long

NIGHT_BEDS: Final = ("ambient/S4A03895_20190522_000000", "ambient/S4A03895_20190522_230000")
DAY_BEDS: Final = ("ambient/S4A03895_20190522_120000",)
BIRDS: Final = (
    *(f"great_tit/{p.stem}" for p in sorted((BIRD_DATA / "great_tit").glob("*.flac"))),
    "1min_opensoundscape",
    "birds_10s_opensoundscape",
    "spinetail_maad",
    "ambient/S4A03895_20190522_053000",
    "ambient/S4A03895_20190522_060000",
    "ambient/S4A03895_20190522_080000",
    "ambient/S4A03895_20190522_120000",  # its first 5 s: chiffchaff, chaffinch (CUTS)
    "audiomoth_dawn_20210502_040000_pykanto",
)
#: Parts of recordings used (seconds): the noon clip's birds sing in its first half, so that
#: half is a bird clip and its second half (nothing BirdNET rates above 0.1) the day bed.
CUTS: Final = {
    ("ambient/S4A03895_20190522_120000", "bird"): (0.0, 5.0),
    ("ambient/S4A03895_20190522_120000", "bed"): (5.0, 10.0),
}
#: Bird-free events placed among the birds: (recording, how many times, gain).
TOAD: Final = "negatives/great_plains_toad_opensoundscape"
#: The cascade's held-out split (bench/cascade.py): the YAMNet embedding gate is trained, and
#: every gate's threshold chosen, on these recordings (and the toad's first half) only; the
#: evaluation soundscape ("eval") never contains them.
GATE_BIRDS: Final = (
    *(f"great_tit/{p.stem}" for p in sorted((BIRD_DATA / "great_tit").glob("2021-SW83-*.flac"))),
    "spinetail_maad",
    "birds_10s_opensoundscape",
    "audiomoth_dawn_20210502_040000_pykanto",
)
GATE_NIGHT: Final = "ambient/S4A03895_20190522_000000"
Split = Literal["eval", "gate", "all"]
NEGATIVES: Final = (
    ("negatives/speech_p286_011_vctk", 3, 0.5),
    (TOAD, 2, 0.7),
    ("rugr_drum_opensoundscape", 1, 1.0),
)


@dataclass(frozen=True)
class Placed:
    """One clip in the soundscape (seconds from its start)."""

    start_s: float
    end_s: float
    kind: str  # "bird" or "negative"
    source: str


@dataclass(frozen=True)
class Soundscape:
    waveform: FloatArray  # mono float32 at RATE
    sample_rate: int
    placed: list[Placed]
    seed: int

    @property
    def duration_s(self) -> float:
        return len(self.waveform) / self.sample_rate

    def bird_share(self) -> float:
        """Share of the time in which a placed bird clip sounds."""
        covered = np.zeros(int(self.duration_s * 10) + 1, dtype=bool)  # 0.1 s resolution
        for p in self.placed:
            if p.kind == "bird":
                covered[int(p.start_s * 10) : int(p.end_s * 10)] = True
        return float(covered.mean())

    def bird_in(self, start_s: float, end_s: float) -> bool:
        return any(
            p.kind == "bird" and p.start_s < end_s and start_s < p.end_s for p in self.placed
        )


def _load(stem: str, use: str = "") -> FloatArray:
    for folder, suffix in ((BIRD_DATA, ".flac"), (BIRD_DATA, ".wav"), (SIM_AUDIO, ".wav")):
        path = folder / f"{stem}{suffix}"
        if path.is_file():
            mono, rate = read_audio_file(path)
            audio = resample(mono, rate, RATE)
            start_s, end_s = CUTS.get((stem, use), (0.0, len(audio) / RATE))
            return audio[int(start_s * RATE) : int(end_s * RATE)]
    raise FileNotFoundError(f"{stem}: not in {BIRD_DATA} nor {SIM_AUDIO}")


def _faded(clip: FloatArray) -> FloatArray:
    n = min(int(FADE_S * RATE), len(clip) // 2)
    out = clip.astype(np.float32).copy()
    ramp = np.linspace(0.0, 1.0, n, dtype=np.float32)
    out[:n] *= ramp
    out[len(out) - n :] *= ramp[::-1]
    return out


def _looped(bed: FloatArray, length: int) -> FloatArray:
    """``bed`` repeated to ``length`` samples, each repeat crossfaded into the next."""
    n = int(0.5 * RATE)
    out = np.zeros(length, dtype=np.float32)
    position = 0
    step = len(bed) - n
    while position < length:
        piece = _faded(bed) if position else bed.copy()
        end = min(length, position + len(piece))
        out[position:end] += piece[: end - position]
        position += step
    return out


def _in_split(stem: str, split: Split) -> bool:
    if split == "all":
        return True
    gate = stem in GATE_BIRDS or stem == GATE_NIGHT
    return gate if split == "gate" else not gate


def _bird_pieces(split: Split) -> list[tuple[str, FloatArray]]:
    pieces = []
    for stem in BIRDS:
        if not _in_split(stem, split):
            continue
        audio = _load(stem, "bird")
        if len(audio) > 1.5 * PIECE_S * RATE:
            step = int(PIECE_S * RATE)
            for i in range(0, len(audio) - step // 2, step):
                pieces.append((f"{stem}[{i // RATE}s]", audio[i : i + step]))
        else:
            pieces.append((stem, audio))
    return pieces


def compose(
    minutes: float | None = None,
    seed: int = 0,
    bird_share: float = 0.25,
    *,
    split: Split = "eval",
    bird_repeats: int = 2,
) -> Soundscape:
    """The soundscape (see the module docstring). Deterministic for ``seed``.

    ``minutes``: None makes it as long as ``bird_share`` asks for the birds it holds (at
    least 10 minutes; 24 with every recording, 16 without the gate's training recordings).

    ``split``: "eval" leaves out the recordings the cascade's gate learns from (and uses the
    toad's second half), "gate" holds only those (and the toad's first half, no other
    negative events), "all" every recording (the toad's second half).
    ``bird_repeats``: each bird piece is placed this many times, every repeat 6 dB quieter
    (the same song from a bird farther away).
    """
    rng = np.random.default_rng(seed)
    pieces = _bird_pieces(split)
    if minutes is None:
        bird_s = bird_repeats * sum(len(a) for _, a in pieces) / RATE
        minutes = max(10.0, math.ceil(bird_s / bird_share / 60))
    total = int(minutes * 60 * RATE)
    # The beds: night and midday stretches of 2-3 minutes.
    bed = np.zeros(total, dtype=np.float32)
    night = [_load(s, "bed") for s in NIGHT_BEDS if _in_split(s, split)]
    day = [_load(s, "bed") for s in DAY_BEDS]
    position, is_night = 0, True
    while position < total:
        length = min(total - position, int(rng.uniform(120, 180) * RATE))
        choices = night if is_night else day
        source = choices[int(rng.integers(len(choices)))]
        bed[position : position + length] += _faded(_looped(source, length))
        position += length
        is_night = not is_night
    # The events: every bird piece once, the negatives as listed, in random order.
    events: list[tuple[str, str, FloatArray]] = [
        ("bird", name if k == 0 else f"{name} -{6 * k} dB", a * 0.5**k)
        for name, a in pieces
        for k in range(bird_repeats)
    ]
    for stem, times, gain in NEGATIVES:
        if split == "gate" and stem != TOAD:
            continue
        audio = _load(stem) * gain
        half = len(audio) // 2  # the toad's first half is the gate's, its second the eval's
        if stem == TOAD:
            audio = audio[:half] if split == "gate" else audio[half:]
        events += [("negative", stem, audio)] * times
    order = rng.permutation(len(events))
    events = [events[i] for i in order]
    bird_s = sum(len(a) for kind, _, a in events if kind == "bird") / RATE
    other_s = sum(len(a) for kind, _, a in events if kind != "bird") / RATE
    # Birds fill bird_share of the time: the rest is gaps (and negatives) drawn around a mean.
    wanted_total_s = min(minutes * 60, bird_s / bird_share)
    mean_gap_s = max(1.0, (wanted_total_s - bird_s - other_s) / (len(events) + 1))
    placed: list[Placed] = []
    mix = bed.astype(np.float64)
    cursor_s = float(rng.uniform(0.5, 1.5) * mean_gap_s)
    for kind, name, audio in events:
        start = int(cursor_s * RATE)
        if start + len(audio) > total:
            break
        mix[start : start + len(audio)] += _faded(audio)
        placed.append(
            Placed(round(cursor_s, 3), round(cursor_s + len(audio) / RATE, 3), kind, name)
        )
        cursor_s += len(audio) / RATE + float(rng.uniform(0.5, 1.5) * mean_gap_s)
    peak = float(np.abs(mix).max())
    if peak > 0.99:
        mix *= 0.99 / peak
    return Soundscape(mix.astype(np.float32), RATE, placed, seed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="FLAC or WAV to write")
    parser.add_argument("--minutes", type=float, default=None, help="default: birds in 1/4")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", choices=("eval", "gate", "all"), default="all")
    args = parser.parse_args(argv)
    soundscape = compose(args.minutes, args.seed, split=args.split)
    soundfile.write(args.out, soundscape.waveform, soundscape.sample_rate, subtype="PCM_16")
    truth = args.out.with_suffix(".json")
    truth.write_text(
        json.dumps(
            {
                "seed": soundscape.seed,
                "duration_s": round(soundscape.duration_s, 2),
                "bird_share": round(soundscape.bird_share(), 3),
                "placed": [asdict(p) for p in soundscape.placed],
            },
            indent=1,
        ),
        encoding="utf-8",
    )
    print(
        f"wrote {args.out} ({soundscape.duration_s / 60:.1f} min at {soundscape.sample_rate} Hz, "
        f"birds in {soundscape.bird_share():.0%} of it, {len(soundscape.placed)} clips) and {truth}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
