"""Rewrite YAMNet's TFLite file into the ear's backbone: log-mel patch in, scores + embedding out.

The shipped ``yamnet.tflite`` (Apache-2.0, Google Research, tensorflow/models
``research/audioset/yamnet``) takes 0.975 s of 16 kHz waveform and computes its own log-mel
patch inside the graph (framing, window, a DFT as an int8 matrix product, mel matrix, log).
Its 1024-d embedding (the global average pool before the classifier) is an internal tensor.

The station computes the log-mel itself, incrementally (``device.ear.frontend``): with
windows overlapping by half, a waveform-in model would compute every STFT frame twice. So this
script edits the flatbuffer (TFLite schema, object API of ``flatbuffer_utils``):

* the new input ``logmel_patch`` [-1, 96, 64] float32 feeds the first convolution through one
  RESHAPE (to [-1, 96, 64, 1]), replacing the front-end ops;
* the outputs are ``scores`` [-1, 521] and ``embedding`` [-1, 1024];
* ops, tensors, buffers and operator codes no longer reachable from the outputs are dropped.

The weights and every backbone op are untouched, so the rewritten model fed with the original
model's own log-mel output (``Identity_1``) must give the original's scores: :func:`verify`
checks that on real recordings, and the embedding against the original's internal tensor.

Run: ``python -m training.ear_backbone [--yamnet DIR] [--audio DIR] [--out models/yamnet]``.
It needs TensorFlow (for the flatbuffer schema), which the device never imports.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import soundfile

from device.ear.frontend import FrontendConfig, patches_from_waveform, resample
from device.inference import (
    CARD_SCHEMA_VERSION,
    ModelCard,
    TensorSpec,
    make_interpreter,
    write_card,
)

REPO_ROOT: Final = Path(__file__).resolve().parents[1]
DEFAULT_SHARED_MODELS: Final = REPO_ROOT.parent / "shared" / "data" / "models"
DEFAULT_OUT: Final = REPO_ROOT / "models" / "yamnet"
DEFAULT_GOLDEN: Final = REPO_ROOT / "tests" / "ear" / "golden" / "yamnet_reference.npz"
DEFAULT_AUDIO: Final = REPO_ROOT / "hardware" / "sim" / "audio"

PATCH_FRAMES: Final = 96
MEL_BINS: Final = 64
EMBEDDING_SIZE: Final = 1024
WAVEFORM_SAMPLES: Final = 15600
#: AudioSet classes that are wild birds calling: Bird ... Hoot (class map rows 106-115).
#: Domestic fowl (93-102) and "Bird flight, flapping wings" (116, not a call) are left out.
BIRD_CLASS_INDICES: Final = tuple(range(106, 116))
PATCH_HOP_S: Final = 0.48

#: Files the verification and the test reference use: a song and a soundscape, both shipped.
REFERENCE_FILES: Final = ("great_tit/2021-B32-0415_05-9.wav", "birds_10s_opensoundscape.wav")
GOLDEN_PATCHES_PER_FILE: Final = 3


# --- the rewrite ----------------------------------------------------------------------------


def _builtin_name(model: Any, op: Any) -> str:
    from tensorflow.lite.python import schema_py_generated as schema

    code = model.operatorCodes[op.opcodeIndex]
    value = max(code.builtinCode, code.deprecatedBuiltinCode)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    return str(names[value])


def _producers(subgraph: Any) -> dict[int, int]:
    return {int(t): i for i, op in enumerate(subgraph.operators) for t in op.outputs}


def rewrite(yamnet_path: Path, out_path: Path) -> None:
    """Write the log-mel-in, scores+embedding-out model to ``out_path``."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(yamnet_path))
    if len(model.subgraphs) != 1:
        raise SystemExit(f"{yamnet_path}: expected one subgraph, found {len(model.subgraphs)}")
    sg = model.subgraphs[0]
    ops = list(sg.operators)
    names = [_builtin_name(model, op) for op in ops]

    # The backbone starts at the first convolution; its input is the reshaped log-mel patch.
    first_conv = names.index("CONV_2D")
    conv_input = int(ops[first_conv].inputs[0])
    if list(sg.tensors[conv_input].shape) != [1, PATCH_FRAMES, MEL_BINS, 1]:
        raise SystemExit(f"unexpected backbone input shape {sg.tensors[conv_input].shape}")
    # The embedding is the global average pool (MEAN) that feeds the classifier.
    mean_op = ops[names.index("MEAN")]
    embedding = int(mean_op.outputs[0])
    scores = int(sg.outputs[0])
    if list(sg.tensors[embedding].shape) != [1, EMBEDDING_SIZE]:
        raise SystemExit(f"unexpected embedding shape {sg.tensors[embedding].shape}")

    def new_buffer(data: bytes | None) -> int:
        buffer = schema.BufferT()
        buffer.data = None if data is None else np.frombuffer(data, dtype=np.uint8)
        model.buffers.append(buffer)
        return len(model.buffers) - 1

    def new_tensor(name: str, shape: list[int], dtype: int, buffer: int) -> int:
        tensor = schema.TensorT()
        tensor.name = name.encode()
        tensor.shape = np.array([1 if d == -1 else d for d in shape], dtype=np.int32)
        tensor.shapeSignature = np.array(shape, dtype=np.int32) if -1 in shape else None
        tensor.type = dtype
        tensor.buffer = buffer
        sg.tensors.append(tensor)
        return len(sg.tensors) - 1

    patch_shape = [-1, PATCH_FRAMES, MEL_BINS]
    image_shape = [-1, PATCH_FRAMES, MEL_BINS, 1]
    patch_input = new_tensor(
        "logmel_patch", patch_shape, schema.TensorType.FLOAT32, new_buffer(None)
    )
    shape_const = new_tensor(
        "logmel_patch/image_shape",
        [4],
        schema.TensorType.INT32,
        new_buffer(np.array(image_shape, dtype=np.int32).tobytes()),
    )
    reshape = schema.OperatorT()
    reshape.opcodeIndex = ops[names.index("RESHAPE")].opcodeIndex
    reshape.inputs = np.array([patch_input, shape_const], dtype=np.int32)
    reshape.outputs = np.array([conv_input], dtype=np.int32)
    reshape.builtinOptionsType = schema.BuiltinOptions.ReshapeOptions
    reshape.builtinOptions = schema.ReshapeOptionsT()
    reshape.builtinOptions.newShape = np.array(image_shape, dtype=np.int32)

    # Keep only the ops the outputs depend on, walking back from them to the new input.
    ops = [*ops[:first_conv], reshape, *ops[first_conv:]]
    sg.operators = ops
    producers = _producers(sg)
    producers[conv_input] = ops.index(reshape)
    live: set[int] = set()
    pending = [scores, embedding]
    while pending:
        tensor = pending.pop()
        op_index = producers.get(tensor)
        if op_index is None or op_index in live:
            continue
        live.add(op_index)
        pending += [int(t) for t in ops[op_index].inputs if t >= 0]
    kept_ops = [op for i, op in enumerate(ops) if i in live]
    if any(_builtin_name(model, op) in ("LOG", "SQRT", "PAD") for op in kept_ops):
        raise SystemExit("front-end ops survived the rewrite: the graph is not what was expected")

    # Batch axis dynamic from the input to both outputs (intermediate shapes follow at resize).
    for index in (conv_input, embedding, scores):
        tensor = sg.tensors[index]
        tensor.shapeSignature = np.array([-1, *list(tensor.shape)[1:]], dtype=np.int32)
    sg.tensors[scores].name = b"scores"
    sg.tensors[embedding].name = b"embedding"

    _compact(model, sg, kept_ops, inputs=[patch_input], outputs=[scores, embedding])
    model.signatureDefs = []
    model.description = b"YAMNet backbone (log-mel patch in; scores, embedding out)"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    flatbuffer_utils.write_model(model, str(out_path))


def _compact(model: Any, sg: Any, ops: list[Any], *, inputs: list[int], outputs: list[int]) -> None:
    """Drop tensors, buffers and operator codes nothing refers to any more; renumber the rest."""
    used = sorted(
        {int(t) for op in ops for t in (*op.inputs, *op.outputs) if t >= 0} | {*inputs, *outputs}
    )
    tensor_map = {old: new for new, old in enumerate(used)}
    tensors = [sg.tensors[i] for i in used]
    # Buffer 0 is the empty sentinel every TFLite file starts with.
    used_buffers = sorted({0} | {int(t.buffer) for t in tensors})
    buffer_map = {old: new for new, old in enumerate(used_buffers)}
    model.buffers = [model.buffers[i] for i in used_buffers]
    for tensor in tensors:
        tensor.buffer = buffer_map[int(tensor.buffer)]
    used_codes = sorted({int(op.opcodeIndex) for op in ops})
    code_map = {old: new for new, old in enumerate(used_codes)}
    model.operatorCodes = [model.operatorCodes[i] for i in used_codes]
    for op in ops:
        op.opcodeIndex = code_map[int(op.opcodeIndex)]
        op.inputs = np.array([tensor_map[int(t)] if t >= 0 else -1 for t in op.inputs], np.int32)
        op.outputs = np.array([tensor_map[int(t)] for t in op.outputs], np.int32)
    sg.tensors = tensors
    sg.operators = ops
    sg.inputs = np.array([tensor_map[t] for t in inputs], dtype=np.int32)
    sg.outputs = np.array([tensor_map[t] for t in outputs], dtype=np.int32)


# --- verification against the original ------------------------------------------------------


@dataclass(frozen=True)
class Verification:
    """How closely the rewritten backbone and our front end reproduce the original model."""

    windows: int
    scores_max_abs_diff: float  # rewritten(original's log-mel) vs original(waveform)
    embedding_max_abs_diff: float  # rewritten vs the original's internal pool tensor
    batch_max_abs_diff: float  # one batched call vs one call per patch
    frontend_max_abs_diff: float  # our log-mel vs the original's Identity_1
    frontend_mean_abs_diff: float
    frontend_p99_abs_diff: float
    float_reference_max_abs_diff: float  # our log-mel vs YAMNet's features.py in float TF
    end_to_end_scores_max_abs_diff: float  # our front end + rewritten vs original(waveform)
    end_to_end_bird_max_abs_diff: float  # the same, bird classes only


def _load_mono(path: Path) -> tuple[npt.NDArray[np.float32], int]:
    data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    return np.ascontiguousarray(data.mean(axis=1), dtype=np.float32), int(rate)


def _original_outputs(
    interpreter: Any, waveform_16k: npt.NDArray[np.float32], starts: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """The original model's scores, log-mel patch and embedding for each window start."""
    input_index = interpreter.get_input_details()[0]["index"]
    by_name = {d["name"]: d["index"] for d in interpreter.get_tensor_details()}
    outputs = {d["name"]: d["index"] for d in interpreter.get_output_details()}
    all_scores, all_patches, all_embeddings = [], [], []
    for start in starts:
        window = waveform_16k[start : start + WAVEFORM_SAMPLES]
        interpreter.set_tensor(input_index, window[np.newaxis])
        interpreter.invoke()
        all_scores.append(interpreter.get_tensor(outputs["Identity"])[0])
        all_patches.append(interpreter.get_tensor(outputs["Identity_1"]))
        all_embeddings.append(
            interpreter.get_tensor(by_name["yamnet_frames/global_average_pooling2d/Mean"])[0]
        )
    return np.stack(all_scores), np.stack(all_patches), np.stack(all_embeddings)


def verify(
    yamnet_path: Path, backbone_path: Path, audio_files: Sequence[Path]
) -> tuple[Verification, dict[str, npt.NDArray[Any]]]:
    """Compare the rewritten model and our front end with the original on real recordings.

    Returns the measurements and a small reference (the original's log-mel patches and scores
    for a few windows of each file) for the tests, which must not need the original model.
    """
    import tensorflow as tf

    original = tf.lite.Interpreter(
        model_path=str(yamnet_path), experimental_preserve_all_tensors=True
    )
    original.allocate_tensors()
    backbone = make_interpreter(backbone_path, num_threads=1)
    config = FrontendConfig()
    hop = round(PATCH_HOP_S * config.sample_rate)

    diffs: dict[str, list[float]] = {k: [] for k in Verification.__dataclass_fields__}
    frontend_abs: list[npt.NDArray[np.float32]] = []
    float_abs: list[float] = []
    golden: dict[str, list[npt.NDArray[Any]]] = {
        "patches": [],
        "float_patches": [],
        "scores": [],
        "source": [],
    }
    windows = 0
    for path in audio_files:
        mono, rate = _load_mono(path)
        waveform = resample(mono, rate, config.sample_rate)
        ours, _ = patches_from_waveform(mono, rate, config)
        starts = np.arange(len(ours), dtype=np.int64) * hop
        starts = starts[starts + WAVEFORM_SAMPLES <= len(waveform)]
        ours = ours[: len(starts)]
        scores, patches, embeddings = _original_outputs(original, waveform, starts)
        windows += len(starts)

        rewritten = [_run_backbone(backbone, p[np.newaxis]) for p in patches]
        re_scores = np.concatenate([r[0] for r in rewritten])
        re_embeddings = np.concatenate([r[1] for r in rewritten])
        batch_scores, _ = _run_backbone(backbone, patches)
        ours_scores, _ = _run_backbone(backbone, ours)
        diffs["scores_max_abs_diff"].append(float(np.abs(re_scores - scores).max()))
        diffs["embedding_max_abs_diff"].append(float(np.abs(re_embeddings - embeddings).max()))
        diffs["batch_max_abs_diff"].append(float(np.abs(batch_scores - re_scores).max()))
        frontend_abs.append(np.abs(ours - patches))
        reference = _float_reference_logmel(waveform, config)
        frame_hop = config.patch_hop_frames
        float_patches = np.stack(
            [
                reference[i * frame_hop : i * frame_hop + config.patch_frames]
                for i in range(len(starts))
            ]
        )
        float_abs.append(float(np.abs(ours - float_patches).max()))
        diffs["end_to_end_scores_max_abs_diff"].append(float(np.abs(ours_scores - scores).max()))
        bird = list(BIRD_CLASS_INDICES)
        diffs["end_to_end_bird_max_abs_diff"].append(
            float(np.abs(ours_scores[:, bird] - scores[:, bird]).max())
        )
        keep = slice(0, GOLDEN_PATCHES_PER_FILE)
        golden["patches"].append(patches[keep])
        golden["float_patches"].append(float_patches[keep])
        golden["scores"].append(scores[keep])
        golden["source"].append(np.array([path.name] * len(patches[keep])))

    every = np.concatenate([a.ravel() for a in frontend_abs])
    result = Verification(
        windows=windows,
        scores_max_abs_diff=max(diffs["scores_max_abs_diff"]),
        embedding_max_abs_diff=max(diffs["embedding_max_abs_diff"]),
        batch_max_abs_diff=max(diffs["batch_max_abs_diff"]),
        frontend_max_abs_diff=float(every.max()),
        frontend_mean_abs_diff=float(every.mean()),
        frontend_p99_abs_diff=float(np.percentile(every, 99)),
        float_reference_max_abs_diff=max(float_abs),
        end_to_end_scores_max_abs_diff=max(diffs["end_to_end_scores_max_abs_diff"]),
        end_to_end_bird_max_abs_diff=max(diffs["end_to_end_bird_max_abs_diff"]),
    )
    return result, {k: np.concatenate(v) for k, v in golden.items()}


def _float_reference_logmel(
    waveform_16k: npt.NDArray[np.float32], config: FrontendConfig
) -> npt.NDArray[np.float32]:
    """YAMNet's features.py log-mel in float TensorFlow (what the network was trained on)."""
    import tensorflow as tf

    stft = tf.signal.stft(
        waveform_16k,
        frame_length=config.window_samples,
        frame_step=config.hop_samples,
        fft_length=config.fft_length,
    )
    mel_weights = tf.signal.linear_to_mel_weight_matrix(
        num_mel_bins=config.mel_bins,
        num_spectrogram_bins=config.fft_length // 2 + 1,
        sample_rate=config.sample_rate,
        lower_edge_hertz=config.fmin,
        upper_edge_hertz=config.fmax,
    )
    mel = tf.matmul(tf.abs(stft), mel_weights)
    return np.asarray(tf.math.log(mel + config.log_offset), dtype=np.float32)


def _run_backbone(
    interpreter: Any, patches: npt.NDArray[np.float32]
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    detail = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(detail["index"], list(patches.shape), strict=True)
    interpreter.allocate_tensors()
    interpreter.set_tensor(detail["index"], np.ascontiguousarray(patches, dtype=np.float32))
    interpreter.invoke()
    outputs = interpreter.get_output_details()
    return interpreter.get_tensor(outputs[0]["index"]), interpreter.get_tensor(outputs[1]["index"])


# --- the folder -----------------------------------------------------------------------------


def read_class_names(class_map: Path) -> list[str]:
    with class_map.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    if [int(r["index"]) for r in rows] != list(range(len(rows))):
        raise SystemExit(f"{class_map}: class indices are not 0..n-1 in order")
    return [r["display_name"] for r in rows]


def write_folder_card(out: Path, labels: list[str], check: Verification) -> ModelCard:
    config = FrontendConfig()
    frontend_words = (
        "device.ear.frontend.StreamingFrontend (FrontendConfig in task_config.frontend): mono "
        "float32 in [-1, 1], resampled to 16 kHz; 25 ms periodic-Hann frames every 10 ms, "
        "|rfft 512|, 64 HTK mel bands 125-7500 Hz, log(mel + 0.001); 96 frames per patch "
        "(0.96 s), a patch every 48 frames (0.48 s)"
    )
    card = ModelCard(
        schema_version=CARD_SCHEMA_VERSION,
        name="yamnet",
        description=(
            "YAMNet (MobileNetV1 on AudioSet, 521 classes) cut after its log-mel front end: "
            "log-mel patch in, class scores and the 1024-d embedding out. The station's "
            "streaming front end computes the patches, so overlapping windows share frames."
        ),
        sha256="0" * 64,
        inputs=[
            TensorSpec(
                name="logmel_patch",
                shape=[-1, PATCH_FRAMES, MEL_BINS],
                dtype="float32",
                preprocessing=frontend_words,
            )
        ],
        outputs=[
            TensorSpec(
                name="scores",
                shape=[-1, len(labels)],
                dtype="float32",
                preprocessing="sigmoid scores (0-1, independent) in the order of labels",
            ),
            TensorSpec(
                name="embedding",
                shape=[-1, EMBEDDING_SIZE],
                dtype="float32",
                preprocessing="global average pool of the last convolution (ReLU, >= 0)",
            ),
        ],
        labels=labels,
        training_data={
            "dataset": "AudioSet (Google), as trained by the YAMNet authors; not retrained here",
            "licence": "model weights Apache-2.0 (tensorflow/models research/audioset/yamnet)",
        },
        metrics={
            "verification_windows": check.windows,
            "scores_max_abs_diff_vs_original": check.scores_max_abs_diff,
            "embedding_max_abs_diff_vs_original": check.embedding_max_abs_diff,
            "batched_vs_single_max_abs_diff": check.batch_max_abs_diff,
            "frontend_logmel_max_abs_diff_vs_identity_1": check.frontend_max_abs_diff,
            "frontend_logmel_mean_abs_diff_vs_identity_1": check.frontend_mean_abs_diff,
            "frontend_logmel_p99_abs_diff_vs_identity_1": check.frontend_p99_abs_diff,
            "frontend_logmel_max_abs_diff_vs_float_yamnet_features": (
                check.float_reference_max_abs_diff
            ),
            "end_to_end_scores_max_abs_diff": check.end_to_end_scores_max_abs_diff,
            "end_to_end_bird_scores_max_abs_diff": check.end_to_end_bird_max_abs_diff,
        },
        evaluation=(
            "Not retrained, so no new accuracy figures. training/ear_backbone.py checks the "
            "rewrite on the shipped recordings hardware/sim/audio/"
            + ", ".join(REFERENCE_FILES)
            + " (windows every 0.48 s): the rewritten model fed with the original's own "
            "log-mel (Identity_1) against the original's scores and internal embedding, and "
            "the station's numpy front end against Identity_1 and against YAMNet's "
            "features.py computed in float TensorFlow. This TFLite file computes its DFT "
            "and mel product as int8 matrix products with dynamically quantized frames, so "
            "quiet bins of a frame with a loud transient round to zero (log(0.001)); the "
            "network was trained on the float features, which the station reproduces."
        ),
        licence="Apache-2.0",
        source=(
            "YAMNet, Google Research, tensorflow/models research/audioset/yamnet (Apache-2.0). "
            "TFLite file via GitHub Jaskaran197/Speaker-Detector@4ec29b6 (a third-party "
            "Keras-to-TFLite conversion, most weights int8 dynamic-range); rewritten by "
            "training/ear_backbone.py. Provenance caveat: see LICENSE."
        ),
        runtime={
            "converter": "training/ear_backbone.py flatbuffer rewrite (TFLite schema)",
            "runtime": "ai-edge-litert 2.3.0 (classic Interpreter)",
        },
        task_config={
            "kind": "audio_backbone",
            "input": "logmel_patch",
            "sample_rate": config.sample_rate,
            "window_s": PATCH_FRAMES * config.hop_s,
            "hop_s": PATCH_HOP_S,
            "frontend": config.to_dict(),
            "bird_class_indices": list(BIRD_CLASS_INDICES),
            "embedding_size": EMBEDDING_SIZE,
            "outputs": {"scores": 0, "embedding": 1},
        },
    )
    return write_card(out, card)


LICENSE_TEXT: Final = """\
YAMNet model (model.tflite) and class map (yamnet_class_map.csv)
=================================================================

Model: YAMNet, Google Research, from tensorflow/models research/audioset/yamnet,
licensed under the Apache License, Version 2.0 (below).

Provenance: the TFLite file this folder's model was made from comes from GitHub
Jaskaran197/Speaker-Detector @ 4ec29b6938f1051fe36b46786f8d486d8b74a38e (yamnet.tflite,
sha256 469be6a3421cbc52cf97e9f2f966cba984198e8e7af9854d68b3e3ebb1e04194), a third-party
Keras-to-TFLite conversion of the tensorflow/models YAMNet code and weights; that repository
has no LICENSE file of its own. It is not byte-identical to the TF Hub file. For a clean
chain of custody, regenerate it from the official tensorflow/models weights before shipping
commercially. Modifications: the waveform front end was removed from the graph and the
1024-d embedding exposed as an output (training/ear_backbone.py); weights are unchanged.

Copyright 2019 The TensorFlow Authors. All Rights Reserved.

Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
except in compliance with the License. You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software distributed under the
License is distributed on an "AS IS" BASIS, WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND,
either express or implied. See the License for the specific language governing permissions
and limitations under the License.
"""


def build(
    yamnet_dir: Path, audio_dir: Path, out: Path, golden: Path | None
) -> tuple[ModelCard, Verification]:
    """Rewrite, verify, and write ``out`` (model, card, class map, LICENSE) and the reference."""
    yamnet_path = yamnet_dir / "yamnet.tflite"
    class_map = yamnet_dir / "yamnet_class_map.csv"
    for needed in (yamnet_path, class_map):
        if not needed.is_file():
            raise SystemExit(f"{needed} not found: pass --yamnet DIR (the shared data models/)")
    out.mkdir(parents=True, exist_ok=True)
    rewrite(yamnet_path, out / "model.tflite")
    audio = [audio_dir / name for name in REFERENCE_FILES]
    check, reference = verify(yamnet_path, out / "model.tflite", audio)
    if check.scores_max_abs_diff > 1e-5 or check.embedding_max_abs_diff > 1e-4:
        raise SystemExit(f"the rewritten model does not reproduce the original: {check}")
    shutil.copyfile(class_map, out / "yamnet_class_map.csv")
    (out / "LICENSE").write_text(LICENSE_TEXT, encoding="utf-8")
    card = write_folder_card(out, read_class_names(class_map), check)
    if golden is not None:
        golden.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(golden, allow_pickle=False, **reference)
    return card, check


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.ear_backbone", description=__doc__)
    parser.add_argument("--yamnet", type=Path, default=DEFAULT_SHARED_MODELS)
    parser.add_argument("--audio", type=Path, default=DEFAULT_AUDIO)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--golden", type=Path, default=DEFAULT_GOLDEN)
    args = parser.parse_args(argv)
    _, check = build(args.yamnet, args.audio, args.out, args.golden)
    print(json.dumps(check.__dict__, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
