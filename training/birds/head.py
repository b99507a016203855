"""The species head: a small Keras model on YAMNet's 1024-d embedding, exported as int8.

One hidden layer and a softmax over :data:`~training.birds.dataset.LABELS` ("no bird", the
named species, "other bird"). Classes are weighted by inverse frequency: the augmented set
holds far more "other bird" and "no bird" windows than spinetail ones.

**The shipped file is the head behind YAMNet's own bird gate** (:func:`gated_model`): YAMNet's
final layer rows for its bird classes, copied unchanged from the backbone's model file
(:func:`read_bird_gate`), give a soft gate ``g = sigmoid(k * (max bird logit - logit(t)))``;
the output is ``[1 - g * (1 - p_no_bird), g * p_species...]`` (still sums to 1). A head
trained on a few minutes of audio has heard few non-bird sounds and calls new ones (a toad
trill) birds; YAMNet's bird classes, trained on AudioSet, rarely do (report.md), and the issue
asks for presence from them. The station runs one head file and reports a species when its
probability reaches the threshold, so the gate needs no device code.

Export: full-integer int8 (int8 input and output, as the food model), calibrated on up to
:data:`REPRESENTATIVE_ROWS` training embeddings, dynamic batch axis; :func:`run_int8` runs it
as the station does (device.inference's quantize / dequantize).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from device.ear.backbone import YamnetBackbone
from device.errors import BirdDataError
from training.birds.dataset import LABELS
from training.tflite_export import keras_to_int8_tflite
from training.tflite_export import tensorflow as _tf

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

EMBEDDING_SIZE = 1024
#: Training embeddings used to calibrate the int8 ranges.
REPRESENTATIVE_ROWS = 2000
#: The gate's own logit is clipped to ± this (sigmoid(8) = 0.9997: fully open or shut).
GATE_REACH_LOGITS = 8.0
#: Allowed gap between YAMNet's bird scores and the gate's float recomputation of them.
MAX_GATE_DIFFERENCE = 0.05


@dataclass(frozen=True)
class HeadConfig:
    """Everything that decides the head's weights. Stored in the card."""

    hidden_units: int = 32
    dropout: float = 0.3
    l2: float = 1e-3
    learning_rate: float = 2e-3
    batch_size: int = 128
    epochs: int = 30
    seed: int = 0

    def to_dict(self) -> dict[str, float | int]:
        return {
            "hidden_units": self.hidden_units,
            "dropout": self.dropout,
            "l2": self.l2,
            "learning_rate": self.learning_rate,
            "batch_size": self.batch_size,
            "epochs": self.epochs,
            "seed": self.seed,
        }


def build_head(config: HeadConfig) -> Any:
    tf = _tf()
    regularizer = tf.keras.regularizers.L2(config.l2)
    return tf.keras.Sequential(
        [
            tf.keras.Input(shape=(EMBEDDING_SIZE,), name="embedding"),
            tf.keras.layers.Dense(
                config.hidden_units,
                activation="relu",
                kernel_regularizer=regularizer,
                name="hidden",
            ),
            tf.keras.layers.Dropout(config.dropout, name="dropout"),
            tf.keras.layers.Dense(
                len(LABELS), activation="softmax", kernel_regularizer=regularizer, name="species"
            ),
        ],
        name="species_head",
    )


def class_weights(y: IntArray) -> dict[int, float]:
    """Inverse-frequency weights of the classes present in ``y`` (mean weight 1)."""
    present, counts = np.unique(y, return_counts=True)
    return {
        int(c): float(len(y) / (len(present) * n)) for c, n in zip(present, counts, strict=True)
    }


def fit_head(
    x: FloatArray, y: IntArray, config: HeadConfig, on_epoch: Callable[[], None] | None = None
) -> Any:
    """A trained head; the same examples and seed give the same weights."""
    tf = _tf()
    tf.keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    model = build_head(config)
    model.compile(
        optimizer=tf.keras.optimizers.Adam(config.learning_rate),
        loss="sparse_categorical_crossentropy",
    )
    callbacks = []
    if on_epoch is not None:
        callbacks.append(tf.keras.callbacks.LambdaCallback(on_epoch_end=lambda *_: on_epoch()))
    model.fit(
        x.astype(np.float32),
        y,
        batch_size=config.batch_size,
        epochs=config.epochs,
        shuffle=True,
        class_weight=class_weights(y),
        verbose=0,
        callbacks=callbacks,
    )
    return model


def predict_float(model: Any, x: FloatArray) -> FloatArray:
    return np.asarray(model(x.astype(np.float32), training=False), dtype=np.float64)


@dataclass(frozen=True)
class BirdGate:
    """YAMNet's classifier rows for its bird classes, and where the gate opens."""

    weights: npt.NDArray[np.float32]  # (bird classes, embedding)
    bias: npt.NDArray[np.float32]  # (bird classes,)
    threshold: float  # YAMNet bird score at which the gate is half open
    sharpness: float = 8.0  # per unit of logit: score 0.15 -> 0.06, 0.3 -> 0.99 at t = 0.2

    def scores(self, embeddings: FloatArray) -> FloatArray:
        """YAMNet's bird-class scores recomputed from embeddings (float)."""
        logits = embeddings @ self.weights.T.astype(np.float64) + self.bias
        return np.asarray(1 / (1 + np.exp(-logits)), dtype=np.float64)


def read_bird_gate(backbone: YamnetBackbone, threshold: float) -> BirdGate:
    """The backbone's final dense layer, rows of its bird classes: the constant
    ``(labels, embedding)`` weight matrix (int8 weights dequantized with their scales) and the
    ``(labels,)`` bias, found by shape in the model file and checked against the backbone's
    own scores by training (:func:`check_bird_gate`)."""
    from device.inference import make_interpreter

    model_path = backbone.model.folder / backbone.model.card.model_file
    # Any: constant tensors are read through get_tensor_details, outside the runtime protocol.
    interpreter: Any = make_interpreter(model_path, num_threads=1)
    details: list[dict[str, Any]] = interpreter.get_tensor_details()
    n_labels = len(backbone.labels)

    def constant(shape: tuple[int, ...]) -> dict[str, Any]:
        found = [
            d
            for d in details
            if tuple(int(n) for n in d["shape"]) == shape and d["name"] not in ("scores",)
        ]
        if len(found) != 1:
            raise BirdDataError(
                f"{model_path}: expected one constant tensor of shape {shape} (YAMNet's final "
                f"dense layer), found {len(found)}; is this a YAMNet backbone?"
            )
        return dict(found[0])

    weight_detail = constant((n_labels, backbone.embedding_size))
    bias_detail = constant((n_labels,))
    weights = interpreter.get_tensor(weight_detail["index"]).astype(np.float64)
    scales = np.asarray(weight_detail["quantization_parameters"]["scales"], dtype=np.float64)
    if scales.size:
        weights = weights * (scales[:, np.newaxis] if scales.size > 1 else scales[0])
    bias = interpreter.get_tensor(bias_detail["index"]).astype(np.float64)
    rows = list(backbone.bird_class_indices)
    return BirdGate(
        weights=weights[rows].astype(np.float32),
        bias=bias[rows].astype(np.float32),
        threshold=threshold,
    )


def check_bird_gate(gate: BirdGate, embeddings: FloatArray, yamnet_bird: FloatArray) -> float:
    """Largest difference between the gate's recomputed bird score and the backbone's.

    The backbone runs its last layer with int8 weights on the fly; a difference beyond a few
    hundredths means the wrong tensors were read.
    """
    difference = float(np.max(np.abs(gate.scores(embeddings).max(axis=1) - yamnet_bird)))
    if difference > MAX_GATE_DIFFERENCE:
        raise BirdDataError(
            f"YAMNet's bird scores recomputed from its final layer differ from the backbone's "
            f"by {difference:.3f} (> {MAX_GATE_DIFFERENCE}): the backbone file's final layer "
            "was not found; regenerate models/yamnet with training/ear_backbone.py"
        )
    return difference


def gated_model(head: Any, gate: BirdGate) -> Any:
    """``head`` behind YAMNet's bird gate (module docstring); the head's weights are shared."""
    tf = _tf()
    keras = tf.keras
    embedding = keras.Input(shape=(EMBEDDING_SIZE,), name="embedding")
    probabilities = head(embedding)
    bird_logits = keras.layers.Dense(len(gate.bias), trainable=False, name="yamnet_bird_logits")
    threshold_logit = float(np.log(gate.threshold / (1 - gate.threshold)))
    # Logits far from the threshold do not move the gate; clipping them keeps the int8 range
    # of this tensor narrow (the raw logits span ~30 units, which would make the int8 gate
    # jump by whole units of sharpness * logit per quantization step).
    reach = GATE_REACH_LOGITS / gate.sharpness
    best = keras.ops.clip(
        keras.ops.max(bird_logits(embedding), axis=-1, keepdims=True),
        threshold_logit - reach,
        threshold_logit + reach,
    )
    opening = keras.layers.Dense(1, activation="sigmoid", trainable=False, name="yamnet_gate")
    g = opening(best)
    bird_logits.set_weights([gate.weights.T, gate.bias])
    opening.set_weights(
        [
            np.array([[gate.sharpness]], dtype=np.float32),
            np.array([-gate.sharpness * threshold_logit], dtype=np.float32),
        ]
    )
    no_bird = 1.0 - g * (1.0 - probabilities[:, :1])
    gated = keras.layers.Concatenate(name="probabilities")([no_bird, probabilities[:, 1:] * g])
    return keras.Model(embedding, gated, name="birds")


def export_int8(model: Any, representative: FloatArray, seed: int) -> bytes:
    """The model as full-integer int8 TFLite (see the module docstring)."""
    rng = np.random.default_rng(seed)
    count = min(REPRESENTATIVE_ROWS, len(representative))
    rows = representative[rng.choice(len(representative), count, replace=False)]

    return keras_to_int8_tflite(model, rows.astype(np.float32))


def run_int8(tflite_model: bytes, x: FloatArray) -> FloatArray:
    """Class probabilities from the int8 file, quantizing and dequantizing as the station does."""
    from device.inference import dequantize, make_interpreter, quantize

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.tflite"
        path.write_bytes(tflite_model)
        interpreter = make_interpreter(path, num_threads=1)
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    interpreter.resize_tensor_input(inp["index"], [len(x), x.shape[1]], strict=True)
    interpreter.allocate_tensors()
    scale, zero_point = inp["quantization"]
    interpreter.set_tensor(inp["index"], quantize(x, scale, zero_point, "int8"))
    interpreter.invoke()
    scale, zero_point = out["quantization"]
    output = dequantize(interpreter.get_tensor(out["index"]), scale, zero_point)
    return np.asarray(output, dtype=np.float64)
