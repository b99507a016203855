"""The generic audio-model loader: backbone alone (presence) or backbone + species head."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from ear_audio import AUDIO, REPO, read_mono

from device.ear.detector import PRESENCE_LABEL, Detector
from device.ear.frontend import StreamingFrontend
from device.inference import CARD_SCHEMA_VERSION, ModelCard, read_tensor_specs, write_card

HEAD_LABELS = ["no bird", "Great Tit", "Red-faced Spinetail", "other bird"]
# A head that always answers these probabilities (zero weights, fixed bias): enough to check
# that the loader feeds it the embedding and reports only the non-negative classes.
HEAD_PROBABILITIES = [0.1, 0.6, 0.1, 0.2]

BUILD_HEAD = textwrap.dedent(
    """
    import sys, numpy as np, tensorflow as tf
    probabilities = np.array(%r, dtype=np.float32)
    inputs = tf.keras.Input(shape=(1024,))
    dense = tf.keras.layers.Dense(4, activation="softmax")
    model = tf.keras.Model(inputs, dense(inputs))
    dense.set_weights([np.zeros((1024, 4), np.float32), np.log(probabilities)])
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    open(sys.argv[1], "wb").write(converter.convert())
    """
)


def make_head(folder: Path, **task_config: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-c", BUILD_HEAD % HEAD_PROBABILITIES, str(folder / "model.tflite")],
        check=True,
        capture_output=True,
    )
    inputs, outputs = read_tensor_specs(folder / "model.tflite")
    card = ModelCard(
        schema_version=CARD_SCHEMA_VERSION,
        name=folder.name,
        description="test head with fixed outputs",
        sha256="0" * 64,
        inputs=inputs,
        outputs=outputs,
        labels=HEAD_LABELS,
        training_data={},
        metrics={},
        evaluation="none: a test fixture",
        licence="test",
        source="tests/ear/test_detector.py",
        runtime={},
        task_config={
            "input": "embedding",
            "backbone": "yamnet",
            "sample_rate": 16000,
            **task_config,
        },
    )
    write_card(folder, card)
    return folder


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    models = tmp_path_factory.mktemp("models")
    shutil.copytree(REPO / "models" / "yamnet", models / "yamnet")
    make_head(models / "birds")
    shutil.copytree(models / "birds", models / "other_backbone")
    card_path = models / "other_backbone" / "card.json"
    card = json.loads(card_path.read_text())
    card["task_config"]["backbone"] = "birdnet"
    card_path.write_text(json.dumps(card))
    return models


def test_backbone_and_head_report_species_but_never_the_negative_class(models_dir: Path) -> None:
    detector, problem = Detector.load(models_dir, "yamnet", "birds")
    assert problem is None
    # The catch-all ("other bird") is reported as "Bird".
    assert detector.labels == ["Great Tit", "Red-faced Spinetail", "Bird"]
    waveform, rate = read_mono(AUDIO / "great_tit" / "2021-B32-0415_05-9.wav")
    frontend = StreamingFrontend(rate, detector.frontend_config(48))
    results = detector.analyse(frontend.push(waveform) + frontend.flush())
    assert results
    for result in results:
        assert set(result.confidences) == {"Great Tit", "Red-faced Spinetail", "Bird"}
        assert result.confidences["Great Tit"] == pytest.approx(0.6, abs=1e-4)
    assert max(r.presence for r in results) > 0.5  # the backbone still hears the bird


def test_without_a_head_the_ear_reports_presence_and_says_why(models_dir: Path) -> None:
    detector, problem = Detector.load(models_dir, "yamnet", "no_such_head")
    assert detector.head is None
    assert problem is not None and "presence only" in problem and "no_such_head" in problem
    assert detector.labels == [PRESENCE_LABEL]
    silence = StreamingFrontend(16000, detector.frontend_config(48))
    (result,) = detector.analyse(silence.push(np.zeros(16000, dtype=np.float32)))
    assert set(result.confidences) == {PRESENCE_LABEL}
    assert result.confidences[PRESENCE_LABEL] < 0.1


def test_a_head_for_another_backbone_is_refused_with_the_reason(models_dir: Path) -> None:
    detector, problem = Detector.load(models_dir, "yamnet", "other_backbone")
    assert detector.head is None
    assert problem is not None and "'birdnet'" in problem and "retrain" in problem


def test_the_hop_comes_from_the_config(models_dir: Path) -> None:
    detector, _ = Detector.load(models_dir, "yamnet", None)
    config = detector.frontend_config(96)
    assert config.patch_hop_frames == 96 and config.patch_frames == 96
