"""The privacy filter: no kept clip holds a voice; the detection is still stored and sent.

The threshold (device/ear/privacy.py) is re-measured here on every shipped recording, so a new
backbone or a changed class list that breaks the margin fails this test.
"""

from __future__ import annotations

import csv
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile
from ear_audio import AUDIO, REPO, read_mono

from device.clock import ManualClock
from device.config import Config
from device.ear.backbone import YamnetBackbone
from device.ear.frontend import patches_from_waveform, resample
from device.ear.privacy import (
    DEFAULT_THRESHOLD,
    WITHHELD_SPEECH,
    SpeechGuard,
    voice_class_indices,
    voice_scores,
)
from device.ear.service import build_ear
from device.events import BirdDetection, Event
from device.link.protocol import decode_message, encode_message
from device.store import EventStore

TRAINING_AUDIO = REPO / "training" / "data" / "birds"
RATE = 16000


@pytest.fixture(scope="module")
def backbone() -> YamnetBackbone:
    return YamnetBackbone()


def best_voice(backbone: YamnetBackbone, wave: np.ndarray, rate: int) -> np.ndarray:
    """The best voice class of every window that lies wholly inside the recording.

    (The last window of a recording is padded with silence; an abrupt cut to silence is not
    what the station heard, so it is left out.)
    """
    config = backbone.frontend_config
    patches, starts = patches_from_waveform(wave, rate, config)
    inside = starts + config.patch_duration_s <= len(wave) / rate + 1e-6
    scores, _ = backbone.run(patches[inside])
    return voice_scores(scores, voice_class_indices(backbone.labels))


def test_the_threshold_separates_every_shipped_recording_from_speech(
    backbone: YamnetBackbone,
) -> None:
    no_person = [
        p
        for p in sorted(TRAINING_AUDIO.rglob("*.flac"))
        if "speech" not in p.name and p.suffix == ".flac"
    ]
    assert len(no_person) >= 30
    highest = max(float(best_voice(backbone, *read_mono(p)).max()) for p in no_person)
    speech = best_voice(backbone, *read_mono(AUDIO / "speech_p286_011_vctk.wav"))
    spoken = speech[speech > 0.5]  # the windows in which he talks (not the trailing pause)
    assert highest < DEFAULT_THRESHOLD / 1.4  # birds, toad, forest: a margin below
    assert len(spoken) >= 12 and spoken.min() > 0.9


def speech_over_birds() -> tuple[np.ndarray, list[tuple[float, float]], tuple[float, float]]:
    """30 s: night forest; a great tit at 2 s; speech at 14 s over a great tit at 15 s.

    Returns the mix (16 kHz), the songs' spans and the speech's span (s).
    """
    bed, bed_rate = read_mono(AUDIO / "S4A03895_20190522_230000.wav")
    mix = np.resize(resample(bed, bed_rate, RATE), 30 * RATE).astype(np.float32)
    songs = []
    for at_s, name in ((2.0, "2021-B32-0415_05-9.wav"), (15.0, "2021-B32-0415_05-11.wav")):
        song, rate = read_mono(AUDIO / "great_tit" / name)
        song = resample(song, rate, RATE)
        start = int(at_s * RATE)
        mix[start : start + len(song)] += song
        songs.append((at_s, at_s + len(song) / RATE))
    speech, rate = read_mono(AUDIO / "speech_p286_011_vctk.wav")
    speech = resample(speech, rate, RATE) * 0.3  # a person talking a few metres away
    start = int(14.0 * RATE)
    mix[start : start + len(speech)] += speech
    return np.clip(mix, -1, 1), songs, (14.0, 14.0 + len(speech) / RATE)


def config_for(tmp_path: Path, recording: Path, **ear: object) -> Config:
    config = Config()
    values = {"head": None, "source": "file", "path": recording, **ear}
    return config.model_copy(
        update={
            "station": config.station.model_copy(update={"data_dir": tmp_path}),
            "ear": config.ear.model_copy(update=values),
        }
    )


def run_ear(config: Config) -> list[BirdDetection]:
    setup = build_ear(config, ManualClock(), emulated=False, realtime_files=False)
    events: list[Event] = []
    setup.service.run(events.append, threading.Event())
    return [e for e in events if isinstance(e, BirdDetection)]


def test_speech_over_a_bird_keeps_no_clip_with_speech_but_stores_the_detection(
    tmp_path: Path, backbone: YamnetBackbone
) -> None:
    mix, songs, (speech_start, speech_end) = speech_over_birds()
    recording = tmp_path / "garden.wav"
    soundfile.write(recording, mix, RATE, subtype="PCM_16")
    clock = ManualClock()
    birds = run_ear(config_for(tmp_path, recording))
    offsets = [(b.start - clock.wall(), b.end - clock.wall()) for b in birds]

    # Both songs are detected: the one under speech too.
    for song_start, song_end in songs:
        assert any(s < song_end and song_start < e for s, e in offsets), (song_start, offsets)
    withheld = [b for b in birds if b.clip_withheld]
    kept = [b for b in birds if b.clip]
    assert withheld and kept
    for bird, (start, end) in zip(birds, offsets, strict=True):
        clip_span = (start - 2.0, end + 2.0)  # pre- and post-roll
        if clip_span[0] < speech_end and speech_start < clip_span[1]:
            assert bird.clip == "" and bird.clip_withheld == WITHHELD_SPEECH, bird
    # What a user can listen to holds no voice, by the same ears that judged it.
    for bird in kept:
        clip, rate = read_mono(Path(bird.clip))
        clip_start = offsets[birds.index(bird)][0] - 2.0
        assert clip_start + len(clip) / rate <= speech_start or clip_start >= speech_end
        assert best_voice(backbone, clip, rate).max() < DEFAULT_THRESHOLD, bird.clip
    assert len(list((tmp_path / "ear_clips").rglob("*.wav"))) == len(kept)

    # Stored, and sent to the phone, marked withheld.
    with EventStore(tmp_path / "senses.db") as store:
        for bird in birds:
            store.append(bird)
        rows = [s.payload for s in store.since(0)]
    assert [r["clip_withheld"] for r in rows] == [b.clip_withheld for b in birds]
    for row in rows:
        sent = decode_message(encode_message("bird", 1, row)).payload
        assert sent["clip_withheld"] == row["clip_withheld"]


def test_with_the_filter_off_the_clip_is_kept(tmp_path: Path) -> None:
    mix, _, _ = speech_over_birds()
    recording = tmp_path / "garden.wav"
    soundfile.write(recording, mix, RATE, subtype="PCM_16")
    birds = run_ear(config_for(tmp_path, recording, privacy_filter=False))
    assert birds and all(b.clip and not b.clip_withheld for b in birds)


def test_scan_marks_the_detection_in_its_csv(tmp_path: Path) -> None:
    from device.cli import main

    mix, _, _ = speech_over_birds()
    recording = tmp_path / "garden.wav"
    soundfile.write(recording, mix, RATE, subtype="PCM_16")
    out = tmp_path / "scan.csv"
    assert main(["ear", "scan", str(recording), "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert {r["clip_withheld"] for r in rows} == {"", WITHHELD_SPEECH}


def test_a_clip_is_judged_only_once_its_post_roll_was_analysed() -> None:
    guard = SpeechGuard(0.15, horizon_s=10.0)
    guard.add(0.0, 0.975, 0.01)
    assert guard.reason(0.0, 0.9) is None and guard.analysed_until_s == 0.975
    guard.add(0.48, 1.455, 0.9)  # one window alone is not a voice (a song's note can be)
    guard.add(0.96, 1.935, 0.01)
    assert guard.reason(0.0, 3.0) is None
    guard.add(1.44, 2.415, 0.3)
    guard.add(1.92, 2.895, 0.2)  # two in a row are
    assert guard.reason(2.5, 4.0) == WITHHELD_SPEECH
    assert guard.reason(2.9, 4.0) is None and guard.reason(0.0, 1.44) is None
    for i in range(5, 40):  # old voices are forgotten beyond the horizon
        guard.add(i * 0.48, i * 0.48 + 0.975, 0.0)
    assert guard.reason(0.0, 4.0) is None
    with pytest.raises(ValueError, match="privacy threshold"):
        SpeechGuard(0.0)
