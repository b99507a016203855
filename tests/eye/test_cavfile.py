"""The .cav file: what is saved comes back, and what cannot be trusted is refused."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import msgpack
import numpy as np
import pytest

from device.errors import ConceptFileError
from device.eye.backbone import Backbone
from device.eye.cavfile import FORMAT_VERSION
from device.eye.concept import BoardImage, Calibration, Concept, load_concept


def _concept(backbone: Backbone, **changes: object) -> Concept:
    rng = np.random.default_rng(3)
    vector = rng.normal(size=backbone.dim).astype(np.float32)
    concept = Concept(
        name="quiet detail",
        vector=vector / np.linalg.norm(vector),
        calibration=Calibration(slope=40.0, intercept=-8.0),
        id="7f1c0c43-9a55-4a57-9d4c-2f7b8e0d1c11",
        created="2026-11-28T18:00:00+00:00",
        backbone_name=backbone.name,
        backbone_sha256=backbone.sha256,
        model_layer=backbone.layer,
        preprocessing=backbone.preprocessing,
        quality={"cv_accuracy": 0.9, "p_value": 0.001, "method": "logistic"},
        board=(BoardImage("ab" * 32, 4.0, "positive", "a.jpg"),),
        score_stats={"mean": -0.1, "top_5_mean": 0.2},
    )
    return dataclasses.replace(concept, **changes)


def _rewrite(path: Path, **changes: object) -> None:
    record = msgpack.unpackb(path.read_bytes())
    record.update(changes)
    path.write_bytes(msgpack.packb(record, use_single_float=True))


def test_a_saved_concept_loads_back_the_same(backbone: Backbone, tmp_path: Path) -> None:
    concept = _concept(backbone)
    path = tmp_path / "quiet.cav"
    concept.save(path)
    loaded = load_concept(path, backbone)
    np.testing.assert_allclose(loaded.vector, concept.vector, atol=1e-6)
    assert loaded.calibration == concept.calibration
    assert (loaded.name, loaded.id, loaded.created) == (concept.name, concept.id, concept.created)
    assert loaded.quality == concept.quality
    assert loaded.board == concept.board
    assert loaded.score_stats == concept.score_stats
    assert not loaded.forced


def test_the_file_keeps_mood_board_search_keys_as_float32(
    backbone: Backbone, tmp_path: Path
) -> None:
    path = tmp_path / "quiet.cav"
    _concept(backbone).save(path)
    data = path.read_bytes()
    record = msgpack.unpackb(data)
    assert {"vector", "id", "model_layer"} <= set(record)
    # msgpack float32 is marker 0xca; a float64 vector would double the file.
    assert data.count(b"\xca") >= backbone.dim
    assert record["calibration"]["slope"] == 40.0
    assert record["version"] == FORMAT_VERSION
    assert record["backbone"]["sha256"] == backbone.sha256


def test_unknown_keys_are_passed_through(backbone: Backbone, tmp_path: Path) -> None:
    path = tmp_path / "quiet.cav"
    _concept(backbone).save(path)
    _rewrite(path, colour_hint="teal", metadata={"artist": "A. N. Other"})
    again = tmp_path / "again.cav"
    load_concept(path, backbone).save(again)
    record = msgpack.unpackb(again.read_bytes())
    assert record["colour_hint"] == "teal"
    assert record["metadata"] == {"artist": "A. N. Other"}


def test_scores_are_cosines_and_calibration_is_a_monotone_0_1_curve(backbone: Backbone) -> None:
    concept = _concept(backbone)
    rng = np.random.default_rng(1)
    embeddings = rng.normal(size=(5, backbone.dim)).astype(np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    embeddings[0] = concept.vector
    raw = concept.raw_scores(embeddings)
    np.testing.assert_allclose(raw, embeddings @ concept.vector, rtol=1e-6)
    assert raw[0] == pytest.approx(1.0, abs=1e-5)
    grid = np.linspace(-1, 1, 41, dtype=np.float32)
    calibrated = concept.calibrated(grid)
    assert np.all(np.diff(calibrated) >= 0)
    assert calibrated.min() >= 0 and calibrated.max() <= 1
    assert concept.calibrated(np.float32([concept.calibration.midpoint]))[0] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="embeddings"):
        concept.raw_scores(embeddings[:, :10])


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda data: data[: len(data) // 2], "corrupt or truncated"),
        (lambda data: b"\xc1" + data[1:], "corrupt or truncated"),
        (lambda data: b"", "corrupt or truncated"),
        (lambda data: b"GIF89a not a concept at all", "not a .cav file|corrupt"),
    ],
)
def test_corrupt_or_truncated_files_are_refused_with_what_to_do(
    backbone: Backbone, tmp_path: Path, damage, message: str
) -> None:
    path = tmp_path / "quiet.cav"
    _concept(backbone).save(path)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(ConceptFileError, match=message) as info:
        load_concept(path, backbone)
    assert "senses eye train" in str(info.value) or "restore" in str(info.value)


def test_a_concept_for_another_backbone_is_refused(backbone: Backbone, tmp_path: Path) -> None:
    path = tmp_path / "other.cav"
    _concept(backbone, backbone_sha256="0" * 64, backbone_name="mobilenet_v2").save(path)
    with pytest.raises(ConceptFileError, match="trained on backbone 'mobilenet_v2'") as info:
        load_concept(path, backbone)
    assert "senses eye train" in str(info.value)


def test_a_concept_with_other_preprocessing_is_refused(backbone: Backbone, tmp_path: Path) -> None:
    path = tmp_path / "other.cav"
    _concept(backbone, preprocessing="bgr_float_minus1_1").save(path)
    with pytest.raises(ConceptFileError, match="prepared as"):
        load_concept(path, backbone)


def test_a_newer_file_version_is_refused(backbone: Backbone, tmp_path: Path) -> None:
    path = tmp_path / "future.cav"
    _concept(backbone).save(path)
    _rewrite(path, version=FORMAT_VERSION + 1)
    with pytest.raises(ConceptFileError, match="newer than this station reads"):
        load_concept(path, backbone)


def test_a_plain_mood_board_search_file_is_refused(backbone: Backbone, tmp_path: Path) -> None:
    path = tmp_path / "roundness.cav"
    vector = np.ones(25088, np.float32) / np.sqrt(25088)
    path.write_bytes(
        msgpack.packb(
            {"vector": vector.tolist(), "id": "x", "model_layer": "mobilenet_12d"},
            use_single_float=True,
        )
    )
    with pytest.raises(ConceptFileError, match=r"Mood Board Search.*mobilenet_12d"):
        load_concept(path, backbone)


def test_an_altered_vector_is_refused(backbone: Backbone, tmp_path: Path) -> None:
    path = tmp_path / "quiet.cav"
    concept = _concept(backbone)
    concept.save(path)
    _rewrite(path, vector=(concept.vector * 2).tolist())
    with pytest.raises(ConceptFileError, match="length"):
        load_concept(path, backbone)
    short = concept.vector[:100] / np.linalg.norm(concept.vector[:100])
    _rewrite(path, vector=short.tolist())
    with pytest.raises(ConceptFileError, match="100 values"):
        load_concept(path, backbone)


def test_a_missing_file_says_so(backbone: Backbone, tmp_path: Path) -> None:
    with pytest.raises(ConceptFileError, match="does not exist"):
        load_concept(tmp_path / "nowhere.cav", backbone)


def test_broken_calibration_is_refused(backbone: Backbone, tmp_path: Path) -> None:
    path = tmp_path / "quiet.cav"
    _concept(backbone).save(path)
    _rewrite(path, calibration={"method": "logistic", "slope": -1.0, "intercept": 0.0})
    with pytest.raises(ConceptFileError, match="slope"):
        load_concept(path, backbone)
