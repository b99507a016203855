"""Bird-head training: labels, leak-free splits, clear data errors, and a reduced real run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile

from device.ear.backbone import YamnetBackbone
from device.ear.frontend import FrontendConfig, patches_from_waveform
from device.errors import BirdDataError, BirdDataMissingError
from training.birds import augment
from training.birds.dataset import (
    DEFAULT_DATA_DIR,
    GREAT_TIT,
    IGNORE,
    LABELS,
    MANIFEST,
    NO_BIRD,
    OTHER_BIRD,
    SPINETAIL,
    Recording,
    Role,
    Segment,
    load_recording,
    read_audacity_labels,
    window_labels,
)
from training.birds.splits import Fold, check_fold, cross_validation_folds, make_fold
from training.birds.train import Examples, build_examples, load_all, window_patches
from training.cli import main as senses_train

RATE = FrontendConfig().sample_rate


def _entry(stem: str) -> Recording:
    return next(e for e in MANIFEST if e.stem == stem)


def _data_copy(tmp_path: Path) -> Path:
    """A writable copy of the shipped bird data (symlinked audio, copied label files)."""
    copy = tmp_path / "birds"
    for source in DEFAULT_DATA_DIR.rglob("*"):
        target = copy / source.relative_to(DEFAULT_DATA_DIR)
        if source.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        elif source.suffix in (".txt", ".xml"):
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(source)
    return copy


# --- labels ---------------------------------------------------------------------------------


def test_windows_take_the_label_they_overlap_most_and_edges_are_ambiguous() -> None:
    segments = [Segment(1.0, 3.0, GREAT_TIT), Segment(2.9, 3.5, OTHER_BIRD)]
    starts = np.array([0.0, 0.1, 0.5, 1.5, 2.6, 4.0])
    labels = window_labels(segments, starts, 0.975)
    expected = [
        LABELS.index(NO_BIRD),  # ends before the call
        IGNORE,  # touches the call by 0.075 s: ambiguous
        LABELS.index(GREAT_TIT),
        LABELS.index(GREAT_TIT),
        LABELS.index(OTHER_BIRD),  # 0.4 s of great tit, 0.6 s of the other call
        LABELS.index(NO_BIRD),
    ]
    assert labels.tolist() == expected


def test_annotated_recordings_load_with_their_segments() -> None:
    spinetail = load_recording(DEFAULT_DATA_DIR, _entry("spinetail_maad"), RATE)
    assert {s.label for s in spinetail.segments} == {SPINETAIL, OTHER_BIRD}
    assert all(s.end_s <= spinetail.duration_s for s in spinetail.segments)
    moth = load_recording(DEFAULT_DATA_DIR, _entry("audiomoth_dawn_20210502_040000_pykanto"), RATE)
    # Read at the file's 48 kHz, the five boxes lie inside the 0.98 s snippet.
    assert len(moth.segments) == 5
    assert max(s.end_s for s in moth.segments) <= moth.duration_s


def test_one_front_end_pass_gives_each_window_its_own_patch() -> None:
    rng = np.random.default_rng(3)
    config = FrontendConfig()
    samples = round(config.patch_duration_s * config.sample_rate)
    windows = [augment.synthetic_background(k, samples, RATE, rng) for k in ("rain", "siren")]
    one_by_one = np.concatenate([patches_from_waveform(w, RATE)[0] for w in windows])
    np.testing.assert_array_equal(window_patches(windows, config), one_by_one)


def test_mixing_sets_the_call_to_background_ratio() -> None:
    rng = np.random.default_rng(0)
    call = rng.standard_normal(16000).astype(np.float32) * 0.1
    background = rng.standard_normal(16000).astype(np.float32) * 0.01
    mixed = augment.mix_at_snr(call, background, 6.0)
    added = mixed - background
    assert 20 * np.log10(augment.rms(added) / augment.rms(background)) == pytest.approx(6.0, 0.01)


# --- splits ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def quick_examples() -> Examples:
    return build_examples(load_all(DEFAULT_DATA_DIR, RATE), augment.QUICK_AUGMENT, seed=0)


def test_no_fold_trains_on_a_recording_or_bird_it_tests(quick_examples: Examples) -> None:
    examples = quick_examples
    augmented = np.array(examples.augmented)
    trainable = np.array(examples.trainable)
    group_of_stem = {e.stem: e.group for e in MANIFEST}
    folds = cross_validation_folds()
    assert frozenset({"great tit B32"}) in folds and frozenset({"great tit SW83"}) in folds
    tested: set[str] = set()
    for held_out in folds:
        fold = make_fold(held_out, examples.groups, augmented, trainable)
        train_sources = frozenset().union(*(examples.groups[i] for i in fold.train))
        assert not train_sources & held_out, held_out
        test_stems = {examples.stems[i] for i in fold.test}
        assert {group_of_stem[s] for s in test_stems} <= held_out
        # Mixtures and shifted copies are never test windows.
        assert not augmented[fold.test].any()
        tested |= test_stems
    trained_stems = {e.stem for e in MANIFEST if e.role not in (Role.HARD_CASE, Role.UNLABELLED)}
    assert tested == trained_stems  # every trained-on recording is scored once, held out


def test_a_leaky_fold_is_refused(quick_examples: Examples) -> None:
    groups = quick_examples.groups
    song = next(i for i, s in enumerate(quick_examples.stems) if s.startswith("great_tit/2021-B"))
    leaky = Fold(frozenset({"great tit B32"}), np.array([song]), np.array([song]))
    with pytest.raises(BirdDataError, match="great tit B32"):
        check_fold(leaky, groups)


# --- bad data -------------------------------------------------------------------------------


def test_a_missing_recording_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _data_copy(tmp_path)
    (data / "great_tit" / "2021-SW83-0418_04-88.flac").unlink()
    code = senses_train(["birds", "--data", str(data), "--out", str(tmp_path / "out"), "--quiet"])
    assert code == 1
    message = capsys.readouterr().err
    assert "2021-SW83-0418_04-88" in message and "--data" in message
    assert not (tmp_path / "out").exists()


def test_an_unreadable_recording_is_named(tmp_path: Path) -> None:
    data = _data_copy(tmp_path)
    broken = data / "negatives" / "speech_p286_011_vctk.flac"
    broken.unlink()
    broken.write_bytes(b"fLaC this is not audio")
    with pytest.raises(BirdDataError, match=r"speech_p286_011_vctk\.flac: cannot read it as audio"):
        load_all(data, RATE)


def test_a_label_file_of_another_recording_is_refused(tmp_path: Path) -> None:
    data = _data_copy(tmp_path)
    labels = data / "spinetail_maad_labels.txt"
    labels.write_text("0.5\t1.5\tPAMA\n", encoding="utf-8")
    with pytest.raises(BirdDataError, match=r"spinetail_maad_labels\.txt:1: unknown label 'PAMA'"):
        load_recording(data, _entry("spinetail_maad"), RATE)
    labels.write_text("25.0\t26.0\tCRER\n", encoding="utf-8")
    with pytest.raises(BirdDataError, match=r"after the end of spinetail_maad\.flac"):
        load_recording(data, _entry("spinetail_maad"), RATE)


def test_a_malformed_label_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "labels.txt"
    path.write_text("0.1\t0.3\tSP\n\\\t1\t2\n0.5 0.9 CRER\n", encoding="utf-8")
    with pytest.raises(BirdDataError, match=r"labels\.txt:3: expected 'start<TAB>end<TAB>label'"):
        read_audacity_labels(path, {"SP": OTHER_BIRD, "CRER": SPINETAIL})


def test_missing_label_file_is_named(tmp_path: Path) -> None:
    data = _data_copy(tmp_path)
    (data / "audiomoth_dawn_20210502_040000_pykanto.xml").unlink()
    with pytest.raises(BirdDataMissingError, match=r"audiomoth_dawn_20210502_040000_pykanto\.xml"):
        load_recording(data, _entry("audiomoth_dawn_20210502_040000_pykanto"), RATE)


def test_an_empty_recording_is_refused(tmp_path: Path) -> None:
    data = _data_copy(tmp_path)
    empty = data / "ambient" / "S4A03895_20190522_000000.flac"
    empty.unlink()
    soundfile.write(str(empty), np.zeros(0, dtype=np.float32), RATE)
    with pytest.raises(BirdDataError, match=r"S4A03895_20190522_000000\.flac"):
        load_all(data, RATE)


# --- the head and its gate -----------------------------------------------------------------


@pytest.fixture(scope="module")
def backbone() -> YamnetBackbone:
    return YamnetBackbone()


def _embeddings(backbone: YamnetBackbone, stem: str) -> tuple[np.ndarray, np.ndarray]:
    recording = load_recording(DEFAULT_DATA_DIR, _entry(stem), RATE)
    scores, embeddings = backbone.run(patches_from_waveform(recording.waveform, RATE)[0])
    return embeddings.astype(np.float64), backbone.bird_presence(scores).astype(np.float64)


def test_yamnet_gate_silences_a_head_that_hears_birds_everywhere(backbone: YamnetBackbone) -> None:
    from training.birds.head import (
        HeadConfig,
        check_bird_gate,
        fit_head,
        gated_model,
        predict_float,
        read_bird_gate,
    )

    song, song_yamnet = _embeddings(backbone, "great_tit/2021-SW83-0418_04-79")
    night, night_yamnet = _embeddings(backbone, "ambient/S4A03895_20190522_000000")
    gate = read_bird_gate(backbone, 0.2)
    both = np.concatenate([song, night])
    assert check_bird_gate(gate, both, np.concatenate([song_yamnet, night_yamnet])) < 0.05
    # A careless head: every window it ever saw was a great tit.
    head = fit_head(both, np.full(len(both), LABELS.index(GREAT_TIT)), HeadConfig(epochs=3))
    assert np.median(predict_float(head, night)[:, LABELS.index(GREAT_TIT)]) > 0.5
    gated = predict_float(gated_model(head, gate), both)
    np.testing.assert_allclose(gated.sum(axis=1), 1.0, atol=1e-5)
    great_tit = gated[:, LABELS.index(GREAT_TIT)]
    # YAMNet hears the song: the head's answer passes (nearly) unchanged.
    passed = great_tit[: len(song)] / predict_float(head, song)[:, LABELS.index(GREAT_TIT)]
    assert np.median(passed) > 0.9
    assert great_tit[len(song) :].max() < 0.1  # the silent night is not a great tit


def test_training_is_deterministic_for_a_seed() -> None:
    from training.birds.head import HeadConfig, export_int8, fit_head, run_int8

    rng = np.random.default_rng(0)
    x = rng.random((200, 1024))
    y = rng.integers(0, len(LABELS), 200)
    config = HeadConfig(epochs=2, seed=7)
    first, second = fit_head(x, y, config), fit_head(x, y, config)
    for a, b in zip(first.get_weights(), second.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    # Tensor names in the file differ between two builds in one process (Keras numbers its
    # layers), so compare what the int8 models compute.
    np.testing.assert_array_equal(
        run_int8(export_int8(first, x, 7), x), run_int8(export_int8(second, x, 7), x)
    )


# --- the real pipeline, reduced -------------------------------------------------------------


@pytest.mark.slow
def test_quick_training_writes_a_model_the_station_loads(
    tmp_path: Path, backbone: YamnetBackbone
) -> None:
    from device.inference import load_model

    out = tmp_path / "birds"
    code = senses_train(["birds", "--quick", "--epochs", "4", "--out", str(out), "--quiet"])
    assert code == 0
    model = load_model(out)
    task = model.card.task_config
    assert task["input"] == "embedding" and task["backbone"] == "yamnet"
    assert task["labels"] == list(LABELS) and task["sample_rate"] == RATE
    # The ear's own loader takes it, and never reports "no bird" as a species.
    from device.ear.detector import SpeciesHead

    head = SpeciesHead(out, backbone)
    # The catch-all ("other bird") is reported as "Bird": a bird the head cannot name.
    assert [head.labels[i] for i in head.reportable] == [GREAT_TIT, SPINETAIL, "Bird"]

    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    presence = report["presence_per_window_held_out"]["station"]
    assert presence["bird_windows"] > 0 and presence["windows"] > presence["bird_windows"]
    assert 0 <= presence["recall"] <= 1
    alarms = report["false_alarms_held_out"]["station"]
    assert {"toad", "Jura night", "all negatives"} <= set(alarms)
    assert "QUICK run" in (out / "report.md").read_text(encoding="utf-8")
    assert "Apache License 2.0" in (out / "LICENSE-data.md").read_text(encoding="utf-8")

    # What a user notices: a great tit song sounds like a bird to the shipped head, the
    # night forest does not.
    song = load_recording(DEFAULT_DATA_DIR, _entry("great_tit/2021-B32-0415_05-9"), RATE)
    night = load_recording(DEFAULT_DATA_DIR, _entry("ambient/S4A03895_20190522_230000"), RATE)
    no_bird = LABELS.index(NO_BIRD)
    presence_of = {}
    for name, recording in (("song", song), ("night", night)):
        _, embeddings = backbone.run(patches_from_waveform(recording.waveform, RATE)[0])
        presence_of[name] = float(np.mean(1 - model.run(embeddings)[:, no_bird]))
    assert presence_of["song"] > 0.5 > presence_of["night"]


def test_shipped_head_was_trained_on_the_shipped_backbone() -> None:
    from device.inference import read_card

    models = Path(__file__).resolve().parents[1] / "models"
    head, backbone = read_card(models / "birds"), read_card(models / "yamnet")
    assert head.training_data["backbone"]["sha256"] == backbone.sha256, (
        "models/yamnet changed since models/birds was trained: its embeddings are another "
        "input now. Run `senses-train birds` and commit models/birds."
    )
