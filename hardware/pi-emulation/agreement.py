"""Do the models give the same answers on an emulated Pi as on x86? Inputs, tolerances, verdicts.

Every shipped model (each ``models/*/card.json``) is fed the same fixed inputs on x86 and on
each emulated board, through ``device.inference.load_model`` as the daemon does; this module
makes those inputs and judges the outputs. It runs on the host only.

Why outputs may differ at all: LiteRT picks kernels per CPU at run time (XNNPACK has separate
NEON, dot-product and Cortex-A53-tuned int8 kernels, and SSE/AVX ones on x86). They accumulate
in another order and, for int8, requantize with another rounding of the fixed-point multiplier,
so an intermediate value lying on a rounding tie can land one quantization step apart.
Measured on MobileNet v1 and YAMNet (shared/research/edge.md §6): a 3-op int8 model is exact,
the 31-op MobileNet v1 differs by up to 12 steps on the A53 kernels, which is the same size as
the difference between x86's own two kernel paths; float scores differ by up to 3.4e-3 where
the model quantizes activations on the fly (the A76 dot-product kernels). A broken kernel looks
nothing like that: QEMU's faulty SME emulation gave 57 steps on the 3-op model and a cosine of
0.04 on YAMNet.
"""

from __future__ import annotations

import json
import math
import re
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from device.inference import ModelCard, TensorSpec

# --- tolerances -------------------------------------------------------------------------------

# A quantized output may differ by one step per op in the graph: each op requantizes, each can
# round a tie differently (see the module docstring), and a one-step difference entering an op
# moves its output by about one step, because the converter picks every tensor's scale from the
# range of values it carries. Measured: 0 steps on a 3-op model, 12 on the 31-op MobileNet v1.
QUANT_STEPS_PER_OP: Final = 1
# But never more than this (6 % of an 8-bit range), however deep the model: beyond it a
# difference changes what a person is shown. The measured worst case, 12, stays inside.
QUANT_STEPS_MAX: Final = 16
# Float outputs: within 1 % of the largest reference value. float32 kernels that only sum in
# another order differ by about 1e-6 of it; dynamic-range-quantized models by up to 3.4e-3
# (measured), so 1e-2 leaves a factor of three. A broken kernel is off by the whole range.
FLOAT_REL_TOL: Final = 1e-2
# Outputs whose values are all tiny are judged against this magnitude instead.
FLOAT_MAGNITUDE_FLOOR: Final = 1e-3


@dataclass(frozen=True)
class Tolerance:
    """How far one output may be from x86: ``limit`` in quantization steps, or in real units."""

    limit: float
    steps_of: float | None  # the quantization scale when the limit is in steps

    def describe(self, value: float) -> str:
        if self.steps_of is not None:
            return f"{value:g}/{self.limit:g} steps"
        return f"{value:.2g}/{self.limit:.2g}"


def tolerance_for(spec: TensorSpec, n_ops: int, reference: npt.NDArray[Any]) -> Tolerance:
    """The tolerance for one output tensor of a model with ``n_ops`` operators."""
    if spec.quantization is not None:
        steps = min(max(1, n_ops * QUANT_STEPS_PER_OP), QUANT_STEPS_MAX)
        return Tolerance(limit=float(steps), steps_of=spec.quantization.scale)
    finite = np.abs(reference[np.isfinite(reference)]) if reference.size else np.zeros(1)
    magnitude = max(float(finite.max()) if finite.size else 0.0, FLOAT_MAGNITUDE_FLOOR)
    return Tolerance(limit=FLOAT_REL_TOL * magnitude, steps_of=None)


# --- how deep a model is -----------------------------------------------------------------------

_TFLITE_IDENTIFIER: Final = b"TFL3"
_MODEL_SUBGRAPHS_FIELD: Final = 2  # tflite schema.fbs: table Model { version, operator_codes,
_SUBGRAPH_OPERATORS_FIELD: Final = 3  # subgraphs, ... }; table SubGraph { tensors, inputs,
# outputs, operators, name }


def _table_field(buf: bytes, table: int, field: int) -> int | None:
    """Absolute position of ``field`` in the flatbuffer table at ``table``, or None if unset."""
    vtable = table - struct.unpack_from("<i", buf, table)[0]
    vtable_size = struct.unpack_from("<H", buf, vtable)[0]
    slot = 4 + 2 * field
    if slot + 2 > vtable_size:
        return None
    offset = struct.unpack_from("<H", buf, vtable + slot)[0]
    return table + offset if offset else None


def _vector_of_tables(buf: bytes, table: int, field: int) -> list[int]:
    where = _table_field(buf, table, field)
    if where is None:
        return []
    vector = where + struct.unpack_from("<I", buf, where)[0]
    count = struct.unpack_from("<I", buf, vector)[0]
    items = [vector + 4 + 4 * k for k in range(count)]
    return [item + struct.unpack_from("<I", buf, item)[0] for item in items]


def count_operators(model_file: Path) -> int:
    """The number of operators in all subgraphs of a ``.tflite`` file (read without a runtime).

    Counted from the file rather than from an interpreter because the XNNPACK delegate folds
    the ops it takes into one node.
    """
    buf = Path(model_file).read_bytes()
    if len(buf) < 8 or buf[4:8] != _TFLITE_IDENTIFIER:
        raise ValueError(f"{model_file} is not a TFLite flatbuffer (no 'TFL3' identifier)")
    root = struct.unpack_from("<I", buf, 0)[0]
    subgraphs = _vector_of_tables(buf, root, _MODEL_SUBGRAPHS_FIELD)
    return sum(len(_vector_of_tables(buf, g, _SUBGRAPH_OPERATORS_FIELD)) for g in subgraphs)


# --- fixed inputs ------------------------------------------------------------------------------

# Values per input row, to keep emulated invokes short: 64 rows of the food model's 21 features,
# one row of an image or a second of audio.
ELEMENTS_PER_INPUT: Final = 4096
MAX_ROWS: Final = 64
# A model with a fixed batch of 1 runs its rows one invoke at a time: two rows suffice.
FIXED_BATCH_ROWS: Final = 2
# A dynamic dimension other than the batch gets this size.
DYNAMIC_DIM: Final = 64
# Small non-negative values for unquantized integer inputs (indices, lengths).
INDEX_RANGE: Final = 16


def _hash_bytes(n: int, salt: int) -> npt.NDArray[np.int64]:
    """``n`` pseudo-random integers in [0, 256) from integer arithmetic only (same everywhere)."""
    i = np.arange(n, dtype=np.int64) + salt * 7919
    return ((i * 2654435761 + 12345) % (1 << 32)) >> 24


def _input_shape(spec: TensorSpec) -> tuple[list[int], bool]:
    """The shape to feed, and whether its first axis is rows (scaled by :func:`_amplitudes`)."""
    dims = list(spec.shape)
    if len(dims) < 2 or dims[0] not in (-1, 1):
        return [DYNAMIC_DIM if d == -1 else d for d in dims], False
    rest = [DYNAMIC_DIM if d == -1 else d for d in dims[1:]]
    per_row = max(1, math.prod(rest))
    rows = max(1, min(MAX_ROWS, ELEMENTS_PER_INPUT // per_row))
    if dims[0] == 1:
        rows = min(rows, FIXED_BATCH_ROWS)
    return [rows, *rest], True


def _amplitudes(shape: Sequence[int], by_rows: bool) -> npt.NDArray[np.float64]:
    """Row r of R is scaled by (R - r) / R: from the full range down to near zero.

    Full-range rows drive a classifier into saturation (outputs pinned at 0 and 1, where kernels
    always agree); the small ones keep it in the middle, where rounding differences show.
    """
    if not by_rows:
        return np.ones(shape, dtype=np.float64)
    rows = shape[0]
    column = (rows - np.arange(rows, dtype=np.float64)) / rows
    return np.broadcast_to(column.reshape((rows,) + (1,) * (len(shape) - 1)), shape)


def make_inputs(card: ModelCard) -> list[npt.NDArray[Any]]:
    """Deterministic inputs for every input tensor of ``card``, as ``TFLiteModel.run_many`` takes.

    Quantized inputs are given as real values lying exactly on the tensor's quantization grid
    (so quantizing them is exact on every machine); float inputs lie in [-1, 1]; unquantized
    integers are small indices.
    """
    inputs = []
    for k, spec in enumerate(card.inputs):
        shape, by_rows = _input_shape(spec)
        n = math.prod(shape)
        unit = (_hash_bytes(n, salt=k).reshape(shape) - 127.5) / 127.5  # in [-1, 1]
        scaled = unit * _amplitudes(shape, by_rows)
        if spec.quantization is not None:
            info = np.iinfo(spec.dtype)
            zero = spec.quantization.zero_point
            # Each side of the zero point is swept to its own end of the range: a zero point
            # off-centre would otherwise leave one end of the grid untested.
            above, below = int(info.max) - zero, zero - int(info.min)
            q = np.clip(
                np.rint(zero + np.where(scaled >= 0, scaled * above, scaled * below)),
                info.min,
                info.max,
            )
            inputs.append((q - zero) * spec.quantization.scale)
        elif spec.dtype == "float32":
            inputs.append(scaled.astype(np.float32))
        else:
            indices = _hash_bytes(n, salt=k).reshape(shape) % INDEX_RANGE
            inputs.append(indices.astype(spec.dtype))
    return inputs


# --- judging outputs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class OutputAgreement:
    """One output tensor on one board against x86."""

    name: str
    max_diff: float  # in steps for quantized outputs, else in real units
    tolerance: Tolerance
    problem: str = ""  # a shape or NaN mismatch, a changed class

    @property
    def ok(self) -> bool:
        return not self.problem and self.max_diff <= self.tolerance.limit

    def describe(self) -> str:
        text = self.tolerance.describe(self.max_diff)
        return f"{text} ({self.problem})" if self.problem else text


def _changed_classes(
    reference: npt.NDArray[Any], got: npt.NDArray[Any], margin: float
) -> tuple[int, int]:
    """Rows whose top class differs beyond ``margin``, and rows compared."""
    ref_rows = reference.reshape(-1, reference.shape[-1])
    got_rows = got.reshape(-1, got.shape[-1])
    ref_top = ref_rows.argmax(axis=1)
    got_top = got_rows.argmax(axis=1)
    rows = np.arange(len(ref_rows))
    # A changed top class is a real disagreement only when x86 had the two classes further
    # apart than the tolerance; closer than that it is a tie broken the other way.
    gap = ref_rows[rows, ref_top] - ref_rows[rows, got_top]
    return int(np.count_nonzero((ref_top != got_top) & (gap > margin))), len(ref_rows)


def compare_output(
    spec: TensorSpec,
    reference: npt.NDArray[Any],
    got: npt.NDArray[Any],
    n_ops: int,
    n_labels: int = 0,
) -> OutputAgreement:
    """Judge one output (real values, as ``TFLiteModel`` returns them) against x86's."""
    tolerance = tolerance_for(spec, n_ops, reference)
    if reference.shape != got.shape:
        return OutputAgreement(
            spec.name, math.inf, tolerance, f"shape {list(got.shape)}, x86 {list(reference.shape)}"
        )
    ref = reference.astype(np.float64)
    new = got.astype(np.float64)
    if not np.array_equal(np.isfinite(ref), np.isfinite(new)):
        return OutputAgreement(spec.name, math.inf, tolerance, "NaN or inf where x86 has none")
    finite = np.isfinite(ref)
    diff = float(np.abs(ref[finite] - new[finite]).max()) if finite.any() else 0.0
    if tolerance.steps_of is not None:
        diff = round(diff / tolerance.steps_of, 3)  # dequantized values: exact multiples
    problem = ""
    if n_labels and ref.ndim and ref.shape[-1] == n_labels:
        margin = tolerance.limit * (tolerance.steps_of or 1.0)
        changed, rows = _changed_classes(ref, new, margin)
        if changed:
            problem = f"top class differs in {changed}/{rows} rows"
    return OutputAgreement(spec.name, diff, tolerance, problem)


@dataclass(frozen=True)
class ModelAgreement:
    """One model on one board against x86."""

    model: str
    outputs: tuple[OutputAgreement, ...]
    error: str = ""  # the model did not run on the board (or not on x86)

    @property
    def ok(self) -> bool:
        return not self.error and all(o.ok for o in self.outputs)

    def describe(self) -> str:
        if self.error:
            return f"{self.model}: {self.error}"
        worst = max(self.outputs, key=lambda o: o.max_diff / max(o.tolerance.limit, 1e-30))
        return f"{self.model} {worst.describe()}"


def compare_model(
    card: ModelCard,
    reference: Sequence[npt.NDArray[Any]],
    got: Sequence[npt.NDArray[Any]],
    n_ops: int,
) -> ModelAgreement:
    """Judge every output of one model."""
    if len(reference) != len(card.outputs) or len(got) != len(card.outputs):
        return ModelAgreement(
            card.name,
            (),
            f"{len(got)} outputs, x86 {len(reference)}, card {len(card.outputs)}",
        )
    return ModelAgreement(
        card.name,
        tuple(
            compare_output(spec, ref, new, n_ops, len(card.labels))
            for spec, ref, new in zip(card.outputs, reference, got, strict=True)
        ),
    )


# --- the nose replay ---------------------------------------------------------------------------


@dataclass(frozen=True)
class VerdictAgreement:
    """``senses nose replay`` on one board against x86, verdict by verdict."""

    verdicts: int
    same_label: int
    max_steps: float
    tolerance: Tolerance
    problem: str = ""

    @property
    def ok(self) -> bool:
        return not self.problem and self.verdicts > 0 and self.max_steps <= self.tolerance.limit

    def describe(self) -> str:
        if self.problem:
            return self.problem
        return (
            f"{self.tolerance.describe(self.max_steps)}, "
            f"{self.same_label}/{self.verdicts} same label"
        )


def json_event(line: str) -> dict[str, Any] | None:
    """One line of ``senses ... --json`` as an event, or None for anything else on stdout."""
    if not line.startswith("{"):
        return None
    try:
        event = json.loads(line)
    except ValueError:  # a line cut short when the process was stopped
        return None
    return event if isinstance(event, dict) else None


def json_events(lines: Sequence[str]) -> list[dict[str, Any]]:
    return [e for e in map(json_event, lines) if e is not None]


def food_verdicts(lines: Sequence[str]) -> dict[int, Mapping[str, Any]]:
    """The ``"type": "food"`` events of a replay, by recording minute."""
    return {int(e["minute"]): e for e in json_events(lines) if e.get("type") == "food"}


def compare_verdicts(
    reference: Mapping[int, Mapping[str, Any]],
    got: Mapping[int, Mapping[str, Any]],
    tolerance: Tolerance,
) -> VerdictAgreement:
    """Judge a replay's verdicts: same minutes, class probabilities within ``tolerance``."""
    if set(reference) != set(got):
        missing = sorted(set(reference) - set(got))
        extra = sorted(set(got) - set(reference))
        return VerdictAgreement(
            len(got),
            0,
            math.inf,
            tolerance,
            f"verdict minutes differ (missing {missing[:3]}, extra {extra[:3]})",
        )
    step = tolerance.steps_of or 1.0
    worst = 0.0
    same = 0
    for minute, ref in reference.items():
        new = got[minute]
        p_ref: Mapping[str, float] = ref["probabilities"]
        p_new: Mapping[str, float] = new["probabilities"]
        if set(p_ref) != set(p_new):
            return VerdictAgreement(len(got), same, math.inf, tolerance, "labels differ")
        worst = max(worst, *(abs(p_ref[k] - p_new[k]) / step for k in p_ref))
        same += ref["label"] == new["label"]
    return VerdictAgreement(len(got), same, round(worst, 3), tolerance)


# --- missing wheels ----------------------------------------------------------------------------

_NO_MATCH: Final = re.compile(r"No matching distribution found for (\S+)")


def missing_wheels(pip_output: str) -> list[str]:
    """The requirements pip found no usable wheel for, from its error output."""
    return sorted({m.group(1) for m in _NO_MATCH.finditer(pip_output)})
