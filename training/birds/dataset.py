"""The labelled bird audio: which files, what is in them, and how they are grouped for splits.

The :data:`MANIFEST` lists every recording training reads, with

* its labels: a species for the whole file (the great tit songs are cut to one song each), or
  an annotation file of time segments (Audacity labels for the spinetail soundscape, a Sonic
  Visualiser box layer for the AudioMoth snippet), or "no bird" for negatives;
* how much to trust them (:class:`LabelQuality`): expert annotations, whole-file labels of
  clips cut to one song, or BirdNET machine labels (the two opensoundscape field clips, usable
  as weak "bird present" labels at most);
* its **split group**: windows of one group never end up on both sides of a split. Each file
  is its own group, except the great tit songs, grouped by bird / nest box (B32, SW83), and the
  two Jura night clips (same recorder, same night).

Audio is read with soundfile (WAV or FLAC, any rate), mixed to mono and resampled to the front
end's rate by :func:`device.ear.frontend.resample`, the resampler the station uses. The copies
in ``training/data/birds/`` are already 16 kHz FLAC (see its README.md); the loader also reads
the original WAVs of the shared data folder, e.g. ``--data ../shared/data/audio``.
"""

from __future__ import annotations

import enum
import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from device.errors import BirdDataError, BirdDataMissingError

FloatArray = npt.NDArray[np.float32]

DEFAULT_DATA_DIR: Final = Path(__file__).resolve().parents[1] / "data" / "birds"

NO_BIRD: Final = "no bird"
GREAT_TIT: Final = "Great Tit"
SPINETAIL: Final = "Red-faced Spinetail"
OTHER_BIRD: Final = "other bird"
#: The head's classes, in the order of its output. "other bird" collects calls of species
#: the head does not name (the spinetail soundscape's other calls, North American dawn
#: choruses, the AudioMoth wren): it keeps presence separate from naming.
LABELS: Final[tuple[str, ...]] = (NO_BIRD, GREAT_TIT, SPINETAIL, OTHER_BIRD)
SCIENTIFIC_NAMES: Final = {GREAT_TIT: "Parus major", SPINETAIL: "Cranioleuca erythrops"}
#: Label index meaning "this window is ambiguous": excluded from training and scoring.
IGNORE: Final = -1
#: A window counts as holding a call when it overlaps a labelled segment by this much; a
#: window touching a segment by less is ambiguous (a call clipped at the window's edge).
MIN_OVERLAP_S: Final = 0.15
AUDIO_SUFFIXES: Final = (".flac", ".wav")


class LabelQuality(enum.Enum):
    """How far a recording's labels can be trusted (stated per file in the report)."""

    EXPERT_SEGMENTS = "expert time segments"
    WHOLE_FILE = "whole file, cut to one song or known to hold no bird"
    MACHINE_WEAK = "BirdNET machine labels only: weak whole-file 'bird present'"
    NONE = "none (BirdNET hints only)"


class Role(enum.Enum):
    """What a recording is for."""

    BIRD = "bird"  # labelled bird calls: training and presence/species scoring
    NEGATIVE = "negative"  # no bird: training, false alarms per hour, mixing backgrounds
    WEAK_BIRD = "weak bird"  # trained as "other bird"; scored only as a share of windows
    HARD_CASE = "hard case"  # never trained on; reported on its own
    UNLABELLED = "unlabelled check"  # never trained on; which species get named is reported


@dataclass(frozen=True)
class Recording:
    """One entry of the manifest. ``stem`` is relative to the data folder, without suffix."""

    stem: str
    role: Role
    group: str
    quality: LabelQuality
    whole_file_label: str | None = None
    #: Annotation file next to the audio (``.txt``: Audacity labels, ``.xml``: Sonic Visualiser).
    segments_file: str | None = None
    #: Annotation code -> class; codes not listed are an error (a wrong label file).
    codes: dict[str, str] = field(default_factory=dict)
    note: str = ""

    @property
    def name(self) -> str:
        return Path(self.stem).name


_GREAT_TIT_SONGS: Final = (
    "2021-B32-0415_05-11",
    "2021-B32-0415_05-15",
    "2021-B32-0415_05-21",
    "2021-B32-0415_05-23",
    "2021-B32-0415_05-3",
    "2021-B32-0415_05-6",
    "2021-B32-0415_05-9",
    "2021-B32-0416_04-21",
    "2021-B32-0416_04-23",
    "2021-B32-0416_04-24",
    "2021-B32-0416_05-20",
    "2021-SW83-0418_04-77",
    "2021-SW83-0418_04-78",
    "2021-SW83-0418_04-79",
    "2021-SW83-0418_04-80",
    "2021-SW83-0418_04-81",
    "2021-SW83-0418_04-86",
    "2021-SW83-0418_04-88",
    "2021-SW83-0418_04-91",
    "2021-SW83-0418_04-92",
)


def _great_tit(song: str) -> Recording:
    bird = song.split("-")[1]  # B32 or SW83: the bird / nest box
    return Recording(
        stem=f"great_tit/{song}",
        role=Role.BIRD,
        group=f"great tit {bird}",
        quality=LabelQuality.WHOLE_FILE,
        whole_file_label=GREAT_TIT,
        note=f"pykanto, Oxford 2021, bird/nest box {bird}",
    )


MANIFEST: Final[tuple[Recording, ...]] = (
    *(_great_tit(song) for song in _GREAT_TIT_SONGS),
    Recording(
        stem="spinetail_maad",
        role=Role.BIRD,
        group="spinetail soundscape",
        quality=LabelQuality.EXPERT_SEGMENTS,
        segments_file="spinetail_maad_labels.txt",
        codes={"CRER": SPINETAIL, "SP": OTHER_BIRD},
        note="scikit-maad, Colombia 2018; CRER = Red-faced Spinetail, SP = other calls; "
        "unlabelled time is taken as no bird",
    ),
    Recording(
        stem="audiomoth_dawn_20210502_040000_pykanto",
        role=Role.BIRD,
        group="audiomoth dawn",
        quality=LabelQuality.EXPERT_SEGMENTS,
        segments_file="audiomoth_dawn_20210502_040000_pykanto.xml",
        codes={"": OTHER_BIRD},
        note="pykanto AudioMoth, 0.98 s, 5 song boxes, species not stated",
    ),
    Recording(
        stem="birds_10s_opensoundscape",
        role=Role.WEAK_BIRD,
        group="opensoundscape 10 s",
        quality=LabelQuality.MACHINE_WEAK,
        whole_file_label=OTHER_BIRD,
        note="Pennsylvania birdsong; BirdNET: Tennessee Warbler 0.75, Eastern Towhee 0.39",
    ),
    Recording(
        stem="1min_opensoundscape",
        role=Role.WEAK_BIRD,
        group="opensoundscape 1 min",
        quality=LabelQuality.MACHINE_WEAK,
        whole_file_label=OTHER_BIRD,
        note="AudioMoth dawn chorus 2018; BirdNET: Wood Thrush, American Redstart, Ovenbird",
    ),
    Recording(
        stem="rugr_drum_opensoundscape",
        role=Role.HARD_CASE,
        group="ruffed grouse drumming",
        quality=LabelQuality.WHOLE_FILE,
        whole_file_label=OTHER_BIRD,
        note="Ruffed Grouse wing-beat drumming: a bird, but not a vocalisation",
    ),
    Recording(
        stem="negatives/great_plains_toad_opensoundscape",
        role=Role.NEGATIVE,
        group="toad",
        quality=LabelQuality.WHOLE_FILE,
        whole_file_label=NO_BIRD,
        note="Great Plains Toad trill (BirdNET false positives on it)",
    ),
    Recording(
        stem="negatives/speech_p286_011_vctk",
        role=Role.NEGATIVE,
        group="speech",
        quality=LabelQuality.WHOLE_FILE,
        whole_file_label=NO_BIRD,
        note="VCTK read speech",
    ),
    *(
        Recording(
            stem=f"ambient/S4A03895_20190522_{hhmmss}",
            role=Role.NEGATIVE,
            group="Jura night",
            quality=LabelQuality.WHOLE_FILE,
            whole_file_label=NO_BIRD,
            note=f"Jura spruce forest, 2019-05-22 {hhmmss[:2]}:{hhmmss[2:4]}, night, no bird",
        )
        for hhmmss in ("000000", "230000")
    ),
    # Daytime clips of the same Jura forest: European birds the head was never taught, and
    # certainly no Red-faced Spinetail (a bird of the Andes). Which names the station puts on
    # them is an open-set check; nobody labelled them.
    *(
        Recording(
            stem=f"ambient/S4A03895_20190522_{hhmmss}",
            role=Role.UNLABELLED,
            group="Jura day",
            quality=LabelQuality.NONE,
            note=f"Jura spruce forest, 2019-05-22 {hhmmss[:2]}:{hhmmss[2:4]}; BirdNET: {hint}",
        )
        for hhmmss, hint in (
            ("053000", "Great Gray Owl 0.50, probably false"),
            ("060000", "Common Chiffchaff 0.82"),
            ("080000", "Eurasian Blackbird 0.72"),
            ("120000", "Common Chiffchaff 0.53"),
        )
    ),
)


@dataclass(frozen=True)
class Segment:
    """A labelled stretch of a recording, in seconds from its start."""

    start_s: float
    end_s: float
    label: str


@dataclass(frozen=True)
class LoadedRecording:
    """A recording read from disk: mono float32 at the front end's rate, and its segments."""

    entry: Recording
    path: Path
    waveform: FloatArray
    sample_rate: int
    segments: tuple[Segment, ...]

    @property
    def duration_s(self) -> float:
        return len(self.waveform) / self.sample_rate


def audio_path(data_dir: Path, entry: Recording) -> Path:
    """The audio file of ``entry`` in ``data_dir`` (FLAC copy or original WAV)."""
    for suffix in AUDIO_SUFFIXES:
        candidate = data_dir / f"{entry.stem}{suffix}"
        if candidate.is_file():
            return candidate
    tried = " or ".join(f"{entry.stem}{s}" for s in AUDIO_SUFFIXES)
    raise BirdDataMissingError(
        f"{data_dir / entry.stem}: no audio file ({tried}) in {data_dir}. Point --data at a "
        f"folder holding every file of training/birds/dataset.py MANIFEST (default "
        f"{DEFAULT_DATA_DIR}, or the shared data folder's audio/)."
    )


def read_audio(path: Path, target_rate: int) -> FloatArray:
    """Mono float32 samples of ``path`` at ``target_rate``; a clear error for a bad file."""
    import soundfile

    from device.ear.frontend import resample

    try:
        samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, OSError) as e:
        raise BirdDataError(
            f"{path}: cannot read it as audio ({e}). Replace it with a WAV or FLAC file "
            "(restore it from git, or copy it again from the shared data folder)."
        ) from e
    if samples.shape[0] == 0:
        raise BirdDataError(f"{path}: the audio file holds no samples; replace it")
    mono = samples.mean(axis=1, dtype=np.float32)
    if not np.all(np.isfinite(mono)):
        raise BirdDataError(f"{path}: the audio holds NaN or infinite samples; replace it")
    return np.asarray(resample(mono, int(rate), target_rate), dtype=np.float32)


def read_audacity_labels(path: Path, codes: dict[str, str]) -> tuple[Segment, ...]:
    """Segments of an Audacity label track (``start<TAB>end<TAB>label``; lines starting
    with a backslash carry a frequency band and are skipped)."""
    segments = []
    text = _read_text(path)
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("\\"):
            continue
        parts = line.split("\t")
        if len(parts) != 3:
            raise BirdDataError(
                f"{path}:{number}: expected 'start<TAB>end<TAB>label' (an Audacity label "
                f"track), got {line[:60]!r}"
            )
        try:
            start_s, end_s = float(parts[0]), float(parts[1])
        except ValueError as e:
            raise BirdDataError(
                f"{path}:{number}: start and end must be seconds, got {parts[0]!r}, {parts[1]!r}"
            ) from e
        segments.append(_segment(path, number, start_s, end_s, parts[2].strip(), codes))
    return tuple(segments)


def read_sonic_visualiser_boxes(
    path: Path, codes: dict[str, str], sample_rate: int
) -> tuple[Segment, ...]:
    """Segments of a Sonic Visualiser layer (``<point frame=... duration=...>``).

    Frames are counted at the audio file's own rate, passed in: the pykanto AudioMoth
    annotation declares 44.1 kHz, but its last box then ends past the end of the 48 kHz file;
    at 48 kHz every box lies inside it.
    """
    try:
        root = ET.fromstring(_read_text(path))
    except ET.ParseError as e:
        raise BirdDataError(f"{path}: not a Sonic Visualiser XML file ({e})") from e
    points = root.findall(".//dataset/point")
    if not points:
        raise BirdDataError(f"{path}: no <point> elements: not a Sonic Visualiser box layer")
    segments = []
    for number, point in enumerate(points, start=1):
        try:
            frame, duration = int(point.attrib["frame"]), int(point.attrib["duration"])
        except (KeyError, ValueError) as e:
            raise BirdDataError(
                f"{path}: point {number} needs integer 'frame' and 'duration' attributes"
            ) from e
        start_s = frame / sample_rate
        label = point.attrib.get("label", "").strip()
        segments.append(
            _segment(path, number, start_s, start_s + duration / sample_rate, label, codes)
        )
    return tuple(segments)


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise BirdDataMissingError(
            f"{path}: the label file is missing; restore it next to its audio file"
        )
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise BirdDataError(f"{path}: cannot read the label file ({e})") from e


def _segment(
    path: Path, where: int, start_s: float, end_s: float, code: str, codes: dict[str, str]
) -> Segment:
    if not (math.isfinite(start_s) and math.isfinite(end_s)) or not 0 <= start_s < end_s:
        raise BirdDataError(
            f"{path}:{where}: a segment must satisfy 0 <= start < end, got {start_s}-{end_s} s"
        )
    if code not in codes:
        known = ", ".join(repr(c) for c in codes)
        raise BirdDataError(
            f"{path}:{where}: unknown label {code!r}; this file's labels are {known} "
            "(is it the label file of another recording?)"
        )
    return Segment(start_s, end_s, codes[code])


def load_recording(data_dir: Path, entry: Recording, sample_rate: int) -> LoadedRecording:
    """Read the audio and the labels of one manifest entry, checking they fit together."""
    path = audio_path(data_dir, entry)
    waveform = read_audio(path, sample_rate)
    duration_s = len(waveform) / sample_rate
    if entry.segments_file is not None:
        label_path = data_dir / entry.segments_file
        if label_path.suffix == ".xml":
            import soundfile

            # Frames count at the file's own rate: prepare_data keeps annotated WAVs as they are.
            native_rate = int(soundfile.info(str(path)).samplerate)
            segments = read_sonic_visualiser_boxes(label_path, entry.codes, native_rate)
        else:
            segments = read_audacity_labels(label_path, entry.codes)
        late = [s for s in segments if s.start_s >= duration_s]
        if late:
            raise BirdDataError(
                f"{label_path}: a segment starts at {late[0].start_s:.2f} s, after the end of "
                f"{path.name} ({duration_s:.2f} s): is it the label file of another recording?"
            )
    elif entry.whole_file_label is not None:
        segments = (Segment(0.0, duration_s, entry.whole_file_label),)
    else:
        segments = ()  # unlabelled: its windows are never trained on nor scored by label
    return LoadedRecording(entry, path, waveform, sample_rate, segments)


def window_labels(
    segments: Sequence[Segment], starts_s: npt.NDArray[np.float64], window_s: float
) -> npt.NDArray[np.int64]:
    """The class index of each window: the segment label it overlaps most, ``NO_BIRD`` when it
    overlaps none, :data:`IGNORE` when its largest overlap is under :data:`MIN_OVERLAP_S`
    (unless the segment itself is shorter and lies wholly inside the window)."""
    labels = np.full(len(starts_s), LABELS.index(NO_BIRD), dtype=np.int64)
    best = np.zeros(len(starts_s))
    for segment in segments:
        overlap = np.clip(
            np.minimum(starts_s + window_s, segment.end_s) - np.maximum(starts_s, segment.start_s),
            0.0,
            None,
        )
        needed = min(MIN_OVERLAP_S, segment.end_s - segment.start_s)
        better = overlap > best
        index = LABELS.index(segment.label)
        labels[better & (overlap >= needed)] = index
        labels[better & (overlap > 0) & (overlap < needed)] = IGNORE
        best = np.maximum(best, overlap)
    return labels
