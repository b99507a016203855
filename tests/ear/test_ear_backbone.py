"""The rewritten YAMNet: log-mel patches in, the original's scores and an embedding out."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from ear_audio import AUDIO, read_mono

from device.ear.backbone import YamnetBackbone
from device.ear.frontend import patches_from_waveform
from device.errors import AudioInputError


@pytest.fixture(scope="module")
def backbone() -> YamnetBackbone:
    return YamnetBackbone()


def test_reproduces_the_original_models_scores(
    backbone: YamnetBackbone, yamnet_reference: dict[str, npt.NDArray[np.generic]]
) -> None:
    patches = np.asarray(yamnet_reference["patches"], dtype=np.float32)
    scores, embeddings = backbone.run(patches)
    np.testing.assert_allclose(scores, yamnet_reference["scores"], atol=1e-5)
    assert embeddings.shape == (len(patches), 1024)
    assert np.all(embeddings >= 0)


def test_one_batch_equals_one_patch_at_a_time(backbone: YamnetBackbone) -> None:
    waveform, rate = read_mono(AUDIO / "birds_10s_opensoundscape.wav")
    patches, _ = patches_from_waveform(waveform[: 3 * rate], rate)
    batch_scores, batch_embeddings = backbone.run(patches)
    for i, patch in enumerate(patches):
        scores, embeddings = backbone.run(patch[np.newaxis])
        np.testing.assert_allclose(scores[0], batch_scores[i], atol=1e-6)
        np.testing.assert_allclose(embeddings[0], batch_embeddings[i], atol=1e-5)


def test_hears_the_bird_in_song_and_not_in_speech(backbone: YamnetBackbone) -> None:
    def presence(path: str) -> float:
        waveform, rate = read_mono(AUDIO / path)
        scores, _ = backbone.run(patches_from_waveform(waveform, rate)[0])
        return float(backbone.bird_presence(scores).max())

    assert presence("great_tit/2021-B32-0415_05-9.wav") > 0.5
    assert presence("speech_p286_011_vctk.wav") < 0.1


def test_labels_and_bird_classes_come_from_the_card(backbone: YamnetBackbone) -> None:
    assert len(backbone.labels) == 521
    assert backbone.labels[106] == "Bird"
    assert [backbone.labels[i] for i in backbone.bird_class_indices][:2] == [
        "Bird",
        "Bird vocalization, bird call, bird song",
    ]
    assert backbone.frontend_config.patch_frames == 96


def test_wrong_shapes_are_refused(backbone: YamnetBackbone) -> None:
    with pytest.raises(AudioInputError, match=r"\(n, 96, 64\)"):
        backbone.run(np.zeros((2, 64, 96), dtype=np.float32))
    scores, embeddings = backbone.run(np.zeros((0, 96, 64), dtype=np.float32))
    assert scores.shape == (0, 521) and embeddings.shape == (0, 1024)
