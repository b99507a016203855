"""Loading and running the station's TFLite models: the one place that imports an interpreter.

A model lives in a folder ``models/<name>/`` holding ``model.tflite`` and ``card.json``. The
card (:class:`ModelCard`) states what the model expects and returns, where it came from and
how good it is, and the sha256 of the model file. :func:`load_model` refuses a folder whose
card is invalid, whose checksum does not match, or whose card disagrees with the tensors the
interpreter reports, and says which and how to fix it.

Runtimes, in order of preference (research/edge.md §2.1-2.3):

1. ``ai_edge_litert`` (LiteRT, pip ``ai-edge-litert==2.3.0``): current kernels, NumPy 1 and 2,
   cp310-cp313, aarch64 only (no 32-bit wheels).
2. ``tflite_runtime`` (pip ``tflite-runtime``, last release 2.14): for 32-bit or old Pi OS
   images. It is built against NumPy 1.x and rejects newer op versions.

Only the classic ``Interpreter`` API is used. The newer LiteRT 2.x compiled-model API creates
an environment that dlopens ``libLiteRtWebGpuAccelerator.so`` even for the CPU accelerator;
that library is built for ARMv8.2 with LSE atomics, which the Pi 3 / Zero 2 W (Cortex-A53) and
Pi 4 (Cortex-A72) cores lack, so it aborts the whole process with SIGILL. The classic
interpreter ran on emulated A53/A72/A76 cores without SIGILL (shared/tools/pi-cpu-check).
A SIGILL cannot be caught, so when a runtime misbehaves on some board the environment
variable ``SENSES_TFLITE_RUNTIME`` (``ai-edge-litert`` or ``tflite-runtime``) pins one.

XNNPACK is the default CPU delegate in both runtimes. ``num_threads`` goes to the
constructor; on a Pi the sum over all interpreters plus the camera and audio threads should not
exceed the four cores.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import logging
import math
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final, Literal, Protocol

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from device.errors import (
    ConfigError,
    InferenceError,
    InferenceTimeoutError,
    InterpreterMissingError,
    ModelCardError,
    ModelChecksumError,
    ModelError,
    ModelNotFoundError,
)
from device.paths import models_dir_hint
from device.validation import describe_validation_error

log = logging.getLogger(__name__)

CARD_FILE: Final = "card.json"
CARD_SCHEMA_VERSION: Final = 1
RUNTIME_ENV_VAR: Final = "SENSES_TFLITE_RUNTIME"
INSTALL_HINT: Final = (
    "pip install ai-edge-litert==2.3.0 (64-bit Pi OS, Python 3.10-3.13), "
    "or pip install tflite-runtime on 32-bit or older images (needs numpy<2)"
)


@dataclass(frozen=True)
class _Runtime:
    module: str  # what is imported
    package: str  # what pip installs


# The interpreter modules this project may import, in order of preference. Each provides the
# classic ``Interpreter`` class and nothing else of it is used (see the module docstring).
_RUNTIMES: Final = (
    _Runtime("ai_edge_litert.interpreter", "ai-edge-litert"),
    _Runtime("tflite_runtime.interpreter", "tflite-runtime"),
)

# A quantization scale in the card is a decimal rendering of the float32 in the model file;
# one part in 1e5 allows for hand-written cards with six significant digits.
_SCALE_REL_TOL: Final = 1e-5

Dtype = Literal["float32", "int8", "uint8", "int16", "int32"]
_INTEGER_DTYPES: Final = frozenset({"int8", "uint8", "int16", "int32"})


def interpreter_modules() -> tuple[str, ...]:
    """The interpreter modules :func:`make_interpreter` may import, in order of preference.

    The tests check that these are the only runtime imports in ``device/`` and that none of
    them is the compiled-model API.
    """
    return tuple(r.module for r in _RUNTIMES)


class TFLiteInterpreter(Protocol):
    """The part of the classic ``Interpreter`` API (LiteRT and tflite_runtime) this module uses."""

    def allocate_tensors(self) -> None: ...

    def get_input_details(self) -> list[dict[str, Any]]: ...

    def get_output_details(self) -> list[dict[str, Any]]: ...

    def resize_tensor_input(
        self, input_index: int, tensor_size: Sequence[int], strict: bool = ...
    ) -> None: ...

    def set_tensor(self, tensor_index: int, value: npt.NDArray[Any]) -> None: ...

    def invoke(self) -> None: ...

    def get_tensor(self, tensor_index: int, subgraph_index: int = ...) -> npt.NDArray[Any]: ...


# --- the card -------------------------------------------------------------------------------


class QuantSpec(BaseModel):
    """Per-tensor affine quantization: ``real = (q - zero_point) * scale``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scale: float = Field(gt=0)
    zero_point: int


class TensorSpec(BaseModel):
    """One input or output tensor, in the interpreter's order.

    ``shape`` includes the batch axis; ``-1`` marks a dimension the model accepts at any size
    (the batch axis of a Keras model). ``name`` is for people and is not compared with the
    model file; ``preprocessing`` says in words what to do to raw data before this tensor.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    shape: list[int]
    dtype: Dtype
    quantization: QuantSpec | None = None
    preprocessing: str = ""

    @field_validator("shape")
    @classmethod
    def _dims_positive_or_dynamic(cls, shape: list[int]) -> list[int]:
        bad = [d for d in shape if d < 1 and d != -1]
        if bad:
            raise ValueError(f"dimensions must be >= 1, or -1 for 'any size'; got {bad}")
        return shape

    @model_validator(mode="after")
    def _quantization_fits_dtype(self) -> TensorSpec:
        if self.quantization is None:
            return self
        if self.dtype not in _INTEGER_DTYPES:
            raise ValueError(f"a {self.dtype} tensor cannot be quantized; set quantization to null")
        info = np.iinfo(self.dtype)
        if not info.min <= self.quantization.zero_point <= info.max:
            raise ValueError(
                f"zero_point {self.quantization.zero_point} is outside the {self.dtype} range "
                f"[{info.min}, {info.max}]"
            )
        return self


class ModelCard(BaseModel):
    """What ``card.json`` states about a model. Unknown keys are refused.

    ``runtime`` records the converter and runtime versions the model was built and evaluated
    with (keys ``converter`` and ``runtime`` by convention); ``task_config`` is validated by
    the task that uses the model, not here.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1]
    name: str = Field(min_length=1)
    description: str
    model_file: str = "model.tflite"
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    inputs: list[TensorSpec] = Field(min_length=1)
    outputs: list[TensorSpec] = Field(min_length=1)
    labels: list[str]
    training_data: dict[str, Any]
    metrics: dict[str, Any]
    evaluation: str
    licence: str = Field(min_length=1)
    source: str = Field(min_length=1)
    runtime: dict[str, str]
    task_config: dict[str, Any]

    @field_validator("model_file")
    @classmethod
    def _plain_file_name(cls, value: str) -> str:
        # The model must live inside its folder: a path here would let a card point anywhere.
        if value in ("", ".", "..") or Path(value).name != value or "\\" in value:
            raise ValueError(f"must be a file name inside the model folder, got {value!r}")
        return value


def _restore_hint(folder: Path) -> str:
    if not folder.parent.is_dir():
        return f"{models_dir_hint(folder.parent)}; or {_restore_in_checkout(folder)}"
    return _restore_in_checkout(folder)


def _restore_in_checkout(folder: Path) -> str:
    return (
        f"restore the folder from git (`git checkout -- {folder}`) or train it again with "
        "`senses-train` (the food model: `senses-train food`)"
    )


def read_card(folder: Path) -> ModelCard:
    """Read and validate ``folder/card.json`` without touching the model file."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelNotFoundError(
            f"model folder {folder} does not exist (or is not a folder): {_restore_hint(folder)}"
        )
    card_path = folder / CARD_FILE
    if not card_path.is_file():
        raise ModelNotFoundError(f"{card_path} is missing: {_restore_hint(folder)}")
    try:
        text = card_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ModelCardError(f"cannot read {card_path} ({e}): {_restore_hint(folder)}") from e
    try:
        return ModelCard.model_validate_json(text)
    except ValidationError as e:
        raise ModelCardError(
            f"{card_path} is not a valid model card (schema_version {CARD_SCHEMA_VERSION}):\n"
            f"{describe_validation_error(e)}\n"
            "Fix these fields, or re-create the card with training, which writes it with "
            "device.inference.write_card."
        ) from e


def sha256_file(path: Path) -> str:
    """The sha256 of a file as 64 lowercase hex digits, read in chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def write_card(folder: Path, card: ModelCard, *, check_tensors: bool = True) -> ModelCard:
    """Write ``folder/card.json`` for the model file already in ``folder``; return what was written.

    The sha256 is computed from the model file here, whatever ``card.sha256`` holds. With
    ``check_tensors`` the card's inputs and outputs are checked against the model first, so
    training never writes a card that :func:`load_model` would refuse. The write is atomic:
    a crash leaves the old card or the new one, never half of one.
    """
    folder = Path(folder)
    model_path = folder / card.model_file
    if not model_path.is_file():
        raise ModelNotFoundError(f"cannot write a card for {model_path}: the file does not exist")
    card = card.model_copy(update={"sha256": sha256_file(model_path)})
    if check_tensors:
        interpreter, _ = _open_interpreter(model_path, num_threads=1)
        _check_card_matches_model(card, interpreter, folder / CARD_FILE)
    tmp_path = folder / f".{CARD_FILE}.tmp"
    try:
        tmp_path.write_text(card.model_dump_json(indent=2) + "\n", encoding="utf-8")
        os.replace(tmp_path, folder / CARD_FILE)
    finally:
        tmp_path.unlink(missing_ok=True)
    return card


# --- the interpreter ------------------------------------------------------------------------


def _runtime_candidates() -> tuple[_Runtime, ...]:
    pinned = os.environ.get(RUNTIME_ENV_VAR, "").strip()
    if not pinned:
        return _RUNTIMES
    for runtime in _RUNTIMES:
        if pinned in (runtime.package, runtime.module.partition(".")[0]):
            return (runtime,)
    raise ConfigError(
        f"{RUNTIME_ENV_VAR}={pinned!r} names no known TFLite runtime: use one of "
        f"{', '.join(r.package for r in _RUNTIMES)}, or unset it to try them in that order"
    )


def _runtime_label(runtime: _Runtime) -> str:
    try:
        return f"{runtime.package} {importlib.metadata.version(runtime.package)}"
    except importlib.metadata.PackageNotFoundError:
        return runtime.package  # a self-built wheel may carry no metadata


def _import_interpreter_class() -> tuple[Any, str]:
    failures = []
    for runtime in _runtime_candidates():
        try:
            module = importlib.import_module(runtime.module)
        except ImportError as e:
            failures.append((runtime, e))
            continue
        return module.Interpreter, _runtime_label(runtime)
    tried = "; ".join(f"{r.module} ({r.package}): {e}" for r, e in failures)
    raise InterpreterMissingError(
        f"no TFLite interpreter could be imported (tried {tried}). Install one: {INSTALL_HINT}"
    ) from failures[-1][1]


def _open_interpreter(model_path: Path, num_threads: int) -> tuple[TFLiteInterpreter, str]:
    if num_threads < 1:
        raise ValueError(f"num_threads must be >= 1, got {num_threads}")
    interpreter_class, runtime = _import_interpreter_class()
    try:
        interpreter: TFLiteInterpreter = interpreter_class(
            model_path=str(model_path), num_threads=num_threads
        )
        interpreter.allocate_tensors()
    except (ImportError, AttributeError) as e:
        # tflite-runtime 2.14 imports under NumPy 2 but fails here with "_ARRAY_API not found".
        raise InterpreterMissingError(
            f"{runtime} cannot run with numpy {np.__version__} ({e}). Install a runtime that "
            f"matches: {INSTALL_HINT}"
        ) from e
    except (ValueError, RuntimeError) as e:
        raise ModelError(
            f"{runtime} cannot load {model_path}: {e}. If the message mentions an op version, "
            "the model was converted for a newer runtime: install the version in the card's "
            "'runtime' field, or re-convert with the converter pinned in pyproject.toml."
        ) from e
    return interpreter, runtime


def make_interpreter(model_path: Path | str, num_threads: int) -> TFLiteInterpreter:
    """A classic TFLite ``Interpreter`` for ``model_path``, tensors allocated.

    LiteRT is tried first, tflite_runtime second (or only the one ``SENSES_TFLITE_RUNTIME``
    names). The returned object must not be used from two threads at once; prefer
    :func:`load_model`, whose :class:`TFLiteModel` guards it.
    """
    return _open_interpreter(Path(model_path), num_threads)[0]


# --- checking the card against the model ----------------------------------------------------


def _tensor_dtype(detail: dict[str, Any]) -> str:
    return str(np.dtype(detail["dtype"]).name)


def _tensor_quantization(detail: dict[str, Any]) -> tuple[float, int] | None:
    scale, zero_point = detail["quantization"]
    return None if scale == 0.0 else (float(scale), int(zero_point))


def _tensor_spec_problems(spec: TensorSpec, detail: dict[str, Any]) -> list[str]:
    problems = []
    shape = [int(d) for d in detail["shape"]]
    signature = [int(d) for d in detail.get("shape_signature", shape)]
    if spec.shape not in (shape, signature):
        problems.append(f"shape {spec.shape} in the card, {signature} in the model")
    if spec.dtype != _tensor_dtype(detail):
        problems.append(f"dtype {spec.dtype} in the card, {_tensor_dtype(detail)} in the model")
    scales = detail.get("quantization_parameters", {}).get("scales", ())
    if len(scales) > 1:
        problems.append(f"per-channel quantization ({len(scales)} scales) is not supported here")
        return problems
    actual = _tensor_quantization(detail)
    stated = spec.quantization
    if stated is None and actual is not None:
        problems.append(f"quantization null in the card, scale {actual[0]!r} zp {actual[1]}")
    elif stated is not None and actual is None:
        problems.append("quantization in the card, but the model's tensor is not quantized")
    elif stated is not None and actual is not None:
        if not math.isclose(stated.scale, actual[0], rel_tol=_SCALE_REL_TOL):
            problems.append(f"scale {stated.scale!r} in the card, {actual[0]!r} in the model")
        if stated.zero_point != actual[1]:
            problems.append(f"zero_point {stated.zero_point} in the card, {actual[1]} in the model")
    return problems


def _check_card_matches_model(
    card: ModelCard, interpreter: TFLiteInterpreter, card_path: Path
) -> None:
    problems = []
    for kind, specs, details in (
        ("inputs", card.inputs, interpreter.get_input_details()),
        ("outputs", card.outputs, interpreter.get_output_details()),
    ):
        if len(specs) != len(details):
            problems.append(f"{kind}: {len(specs)} in the card, {len(details)} in the model")
            continue
        for i, (spec, detail) in enumerate(zip(specs, details, strict=True)):
            problems += [
                f"{kind}[{i}] ({spec.name!r}, model tensor {detail['name']!r}): {p}"
                for p in _tensor_spec_problems(spec, detail)
            ]
    if card.labels:
        last_dims = [
            int(d["shape"][-1]) for d in interpreter.get_output_details() if len(d["shape"])
        ]
        if len(card.labels) not in last_dims:
            problems.append(
                f"labels: {len(card.labels)} in the card, but no output has that many classes "
                f"(last dimensions {last_dims})"
            )
    if problems:
        raise ModelCardError(
            f"{card_path} does not describe {card.model_file}:\n"
            + "\n".join(f"  - {p}" for p in problems)
            + "\nThe card and the model file come from different runs: restore both from the "
            "same commit, or re-create the card from the model with "
            "device.inference.read_tensor_specs and write_card."
        )


def read_tensor_specs(model_path: Path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """The inputs and outputs of a model file as card entries (for training to fill a card).

    Names are the model's tensor names and ``preprocessing`` is empty: replace them with words
    for people (``spec.model_copy(update=...)``) before :func:`write_card`.
    """
    interpreter, _ = _open_interpreter(Path(model_path), num_threads=1)

    def spec(detail: dict[str, Any]) -> TensorSpec:
        quantization = _tensor_quantization(detail)
        try:
            return TensorSpec.model_validate(
                {
                    "name": detail["name"],
                    "shape": [int(d) for d in detail.get("shape_signature", detail["shape"])],
                    "dtype": _tensor_dtype(detail),
                    "quantization": None
                    if quantization is None
                    else {"scale": quantization[0], "zero_point": quantization[1]},
                }
            )
        except ValidationError as e:
            raise ModelCardError(
                f"{model_path}: tensor {detail['name']!r} cannot be described by a card:\n"
                f"{describe_validation_error(e)}"
            ) from e

    return (
        [spec(d) for d in interpreter.get_input_details()],
        [spec(d) for d in interpreter.get_output_details()],
    )


# --- running --------------------------------------------------------------------------------


def quantize(x: npt.ArrayLike, scale: float, zero_point: int, dtype: str) -> npt.NDArray[Any]:
    """Real values to integers of ``dtype``: ``round(x / scale) + zero_point``, clipped.

    Rounds half away from zero, as TFLite's reference Quantize kernel does (``std::round``),
    so a value exactly between two steps lands where the converter's calibration expects.
    """
    info = np.iinfo(dtype)
    scaled = np.asarray(x, dtype=np.float64) / scale
    rounded = np.copysign(np.floor(np.abs(scaled) + 0.5), scaled) + zero_point
    clipped: npt.NDArray[np.float64] = np.clip(rounded, info.min, info.max)
    return clipped.astype(dtype)


def dequantize(q: npt.ArrayLike, scale: float, zero_point: int) -> npt.NDArray[np.float32]:
    """Integers back to real values: ``(q - zero_point) * scale``, as float32."""
    real = (np.asarray(q, dtype=np.float64) - zero_point) * scale
    return real.astype(np.float32)


#: The longest one ``run`` may take before the caller gets :class:`InferenceTimeoutError`.
#: Generous: MobileNet's 14 crops one by one on a Pi 3 take about 2 s.
DEFAULT_DEADLINE_S: Final = 10.0


class _DeadlineRunner:
    """Runs calls on its own daemon thread and waits for each at most a deadline.

    An ``invoke`` cannot be interrupted, so a stuck one is abandoned with its thread (a daemon
    thread: it never blocks interpreter exit) and the caller gets an error in time, instead
    of a sense that silently stops. The thread is named after the sense that first used it
    (``sense-eye/invoke``), so per-sense CPU accounting still adds up.
    """

    def __init__(self) -> None:
        self._requests: queue.SimpleQueue[
            tuple[Callable[[], Any], threading.Event, dict[str, Any]]
        ] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def call(self, fn: Callable[[], Any], deadline_s: float) -> Any:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._serve, name=f"{threading.current_thread().name}/invoke", daemon=True
            )
            self._thread.start()
        done = threading.Event()
        box: dict[str, Any] = {}
        self._requests.put((fn, done, box))
        if not done.wait(deadline_s):
            raise TimeoutError
        if "error" in box:
            raise box["error"]
        return box["result"]

    def _serve(self) -> None:
        while True:
            fn, done, box = self._requests.get()
            try:
                box["result"] = fn()
            except BaseException as e:
                box["error"] = e
            done.set()


class TFLiteModel:
    """A loaded model: its card, its folder, and a guarded interpreter.

    One interpreter must never run on two threads at once, so every call takes a lock; run
    one model per sense worker (``invoke`` releases the GIL, so different models run in
    parallel).

    Batches: when an input's batch axis is dynamic (``-1`` in the model's shape signature)
    a batch of N rows is run in one ``invoke`` after ``resize_tensor_input`` and
    ``allocate_tensors`` (done again only when N changes). When the model is fixed to batch 1,
    the rows are run one at a time and the outputs stacked: resizing a fixed shape fails or,
    worse, silently breaks reshapes baked into the graph.
    """

    def __init__(
        self,
        card: ModelCard,
        folder: Path,
        interpreter: TFLiteInterpreter,
        runtime: str,
        *,
        deadline_s: float | None = DEFAULT_DEADLINE_S,
        reopen: Callable[[], TFLiteInterpreter] | None = None,
    ) -> None:
        self.card = card
        self.folder = folder
        self.runtime = runtime
        self.deadline_s = deadline_s
        self.timeouts = 0
        self._reopen = reopen
        self._runner = _DeadlineRunner()
        self._interpreter = interpreter
        self._inputs = interpreter.get_input_details()
        self._outputs = interpreter.get_output_details()
        self._input_shapes = [tuple(int(d) for d in t["shape"]) for t in self._inputs]
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"TFLiteModel({self.card.name!r}, folder={str(self.folder)!r}, {self.runtime})"

    def release_file_pages(self) -> int:
        """Drop this process's resident pages of the mapped model file; return bytes unmapped.

        The interpreter maps the model file read-only; XNNPACK copies (packs) the weights of
        the ops it takes into its own memory, so most mapped pages are never read again yet
        count in the process's resident memory: 50 MB for BirdNET's FP32 file. Dropping them
        (``madvise(MADV_DONTNEED)``) is safe for a read-only file mapping: a page that is
        still needed (an op XNNPACK did not take) is read back from the file on access.
        Linux only; elsewhere, or if anything is unexpected, nothing is done and 0 returned.
        """
        with self._lock:
            return _drop_mapped_file_pages(self.folder / self.card.model_file)

    def run(self, x: npt.ArrayLike) -> npt.NDArray[Any]:
        """Run a single-input, single-output model on real values; return real values.

        Quantized inputs are quantized with the tensor's own scale and zero point; quantized
        outputs are dequantized to float32.
        """
        if len(self._inputs) != 1 or len(self._outputs) != 1:
            raise InferenceError(
                f"model {self.card.name!r} has {len(self._inputs)} inputs and "
                f"{len(self._outputs)} outputs: use run_many"
            )
        return self.run_many([x])[0]

    def run_many(self, inputs: Sequence[npt.ArrayLike]) -> list[npt.NDArray[Any]]:
        """Run on one array per input tensor (card order); return one array per output."""
        self._check_input_count(len(inputs))
        return self._run_encoded([self._encode(i, np.asarray(x)) for i, x in enumerate(inputs)])

    def run_quantized(self, inputs: Sequence[npt.ArrayLike]) -> list[npt.NDArray[Any]]:
        """Like :meth:`run_many`, but each input is already in its tensor's integer encoding.

        For inputs that arrive quantized, such as camera pixels for an image model whose
        uint8 input takes raw 0-255 values: quantizing real values would cost a float round
        trip over every pixel of every frame. Outputs are dequantized as in :meth:`run_many`.
        """
        self._check_input_count(len(inputs))
        arrays = [np.asarray(x) for x in inputs]
        for i, x in enumerate(arrays):
            want = _tensor_dtype(self._inputs[i])
            if x.dtype.name != want:
                raise InferenceError(
                    f"{self._describe_input(i)} takes {want} values in the tensor's own "
                    f"encoding for run_quantized, got {x.dtype}; use run_many for real values"
                )
        return self._run_encoded(arrays)

    def _run_encoded(self, arrays: list[npt.NDArray[Any]]) -> list[npt.NDArray[Any]]:
        if self.deadline_s is None:
            return self._run_locked(arrays)
        started = time.monotonic()
        try:
            result: list[npt.NDArray[Any]] = self._runner.call(
                lambda: self._run_locked(arrays), self.deadline_s
            )
        except TimeoutError:
            self.timeouts += 1
            self._replace_stuck_interpreter()
            raise InferenceTimeoutError(
                f"model {self.card.name!r} took longer than its {self.deadline_s:g} s deadline "
                f"(after {time.monotonic() - started:.1f} s); its interpreter was "
                + ("reopened for the next call" if self._reopen else "abandoned")
                + ". If this repeats, the CPU is overloaded or the model is too big for it: "
                "lower [eye] crops_per_frame, or raise [inference] deadline_s."
            ) from None
        return result

    def _replace_stuck_interpreter(self) -> None:
        """Give later calls a fresh interpreter, lock and thread: the stuck ones hold theirs."""
        self._runner = _DeadlineRunner()
        self._lock = threading.Lock()
        if self._reopen is None:
            return
        try:
            self._interpreter = self._reopen()
        except Exception:
            log.exception("model %s: reopening its interpreter failed", self.card.name)
            return
        self._inputs = self._interpreter.get_input_details()
        self._outputs = self._interpreter.get_output_details()
        self._input_shapes = [tuple(int(d) for d in t["shape"]) for t in self._inputs]

    def _run_locked(self, arrays: list[npt.NDArray[Any]]) -> list[npt.NDArray[Any]]:
        with self._lock:
            rows = self._fit_shapes(arrays)
            if rows is None:
                return self._invoke(arrays)
            per_row = [self._invoke([a[r : r + 1] for a in arrays]) for r in range(rows)]
        return [np.concatenate(outs, axis=0) for outs in zip(*per_row, strict=True)]

    def _check_input_count(self, count: int) -> None:
        if count != len(self._inputs):
            raise InferenceError(
                f"model {self.card.name!r} takes {len(self._inputs)} inputs "
                f"({', '.join(s.name for s in self.card.inputs)}), got {count}"
            )

    def _describe_input(self, i: int) -> str:
        spec = self.card.inputs[i]
        return f"model {self.card.name!r} input {i} ({spec.name!r}, shape {spec.shape})"

    def _encode(self, i: int, x: npt.NDArray[Any]) -> npt.NDArray[Any]:
        detail = self._inputs[i]
        dtype = _tensor_dtype(detail)
        quantization = _tensor_quantization(detail)
        if x.dtype.kind not in "fiub":
            raise InferenceError(f"{self._describe_input(i)} takes numbers, got {x.dtype}")
        if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
            raise InferenceError(f"{self._describe_input(i)} got NaN or infinite values")
        if quantization is not None:
            return quantize(x, quantization[0], quantization[1], dtype)
        if dtype in _INTEGER_DTYPES and x.dtype.kind not in "iu":
            raise InferenceError(
                f"{self._describe_input(i)} takes unquantized {dtype}: pass integers, not {x.dtype}"
            )
        return x.astype(dtype, copy=False)

    def _fit_shapes(self, arrays: list[npt.NDArray[Any]]) -> int | None:
        """Resize dynamic inputs to fit; return the row count when rows must run one by one."""
        resize: dict[int, tuple[int, ...]] = {}
        rows: list[int] = []
        for i, x in enumerate(arrays):
            current = self._input_shapes[i]
            signature = tuple(int(d) for d in self._inputs[i].get("shape_signature", current))
            same_rank = x.ndim == len(current)
            if x.shape == current:
                continue
            if same_rank and all(
                got == want or sig == -1
                for got, want, sig in zip(x.shape, current, signature, strict=True)
            ):
                resize[i] = x.shape
            elif same_rank and current[0] == 1 and x.shape[1:] == current[1:]:
                rows.append(x.shape[0])
            else:
                hint = " (add a batch axis: x[np.newaxis])" if x.shape == current[1:] else ""
                raise InferenceError(
                    f"{self._describe_input(i)} got shape {list(x.shape)}, expected "
                    f"{list(signature)} (-1: any size){hint}"
                )
        if rows:
            if len(rows) != len(arrays) or len(set(rows)) > 1:
                raise InferenceError(
                    f"model {self.card.name!r}: every input must have the same number of rows, "
                    f"got {[a.shape[0] if a.ndim else None for a in arrays]}"
                )
            if any(len(t["shape"]) == 0 or int(t["shape"][0]) != 1 for t in self._outputs):
                raise InferenceError(
                    f"model {self.card.name!r} has a fixed batch of 1 and an output without a "
                    "batch axis: run its rows one at a time"
                )
            return rows[0]
        if resize:
            try:
                for i, shape in resize.items():
                    self._interpreter.resize_tensor_input(
                        self._inputs[i]["index"], list(shape), strict=True
                    )
                self._interpreter.allocate_tensors()
            except (ValueError, RuntimeError) as e:
                raise InferenceError(
                    f"model {self.card.name!r} cannot be resized to {dict(resize)}: {e}"
                ) from e
            for i, shape in resize.items():
                self._input_shapes[i] = shape
        return None

    def _invoke(self, arrays: list[npt.NDArray[Any]]) -> list[npt.NDArray[Any]]:
        try:
            for detail, x in zip(self._inputs, arrays, strict=True):
                self._interpreter.set_tensor(detail["index"], x)
            self._interpreter.invoke()
            # get_tensor copies; a tensor() view would be overwritten by the next invoke.
            raw = [self._interpreter.get_tensor(t["index"]) for t in self._outputs]
        except (ValueError, RuntimeError) as e:
            raise InferenceError(f"model {self.card.name!r} failed to run: {e}") from e
        return [self._decode(t, q) for t, q in zip(self._outputs, raw, strict=True)]

    @staticmethod
    def _decode(detail: dict[str, Any], q: npt.NDArray[Any]) -> npt.NDArray[Any]:
        quantization = _tensor_quantization(detail)
        if quantization is None:
            return q
        return dequantize(q, quantization[0], quantization[1])


_MADV_DONTNEED: Final = 4


def _drop_mapped_file_pages(path: Path) -> int:
    try:
        import ctypes

        target = str(path.resolve())
        with open("/proc/self/maps", encoding="utf-8") as maps:
            ranges = [
                tuple(int(v, 16) for v in line.split()[0].split("-"))
                for line in maps
                if line.rstrip().endswith(target) and "w" not in line.split()[1]
            ]
        libc = ctypes.CDLL(None, use_errno=True)
        libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        dropped = 0
        for low, high in ranges:
            if libc.madvise(low, high - low, _MADV_DONTNEED) == 0:
                dropped += high - low
        return dropped
    except (OSError, AttributeError, ValueError):
        return 0


_deadline_s: float | None = DEFAULT_DEADLINE_S


def set_default_deadline(deadline_s: float | None) -> None:
    """The deadline models loaded from now on get (the station sets ``[inference]``'s)."""
    global _deadline_s  # noqa: PLW0603 - one setting for every sense's loader
    _deadline_s = deadline_s


def load_model(
    folder: Path, *, num_threads: int = 1, deadline_s: float | Literal["default"] | None = "default"
) -> TFLiteModel:
    """Load ``folder`` (``card.json`` + model file), refusing anything that does not match.

    Raises :class:`ModelNotFoundError`, :class:`ModelCardError`, :class:`ModelChecksumError`,
    :class:`InterpreterMissingError` or :class:`ModelError`, each saying what to do.
    """
    folder = Path(folder)
    card = read_card(folder)
    model_path = folder / card.model_file
    if not model_path.is_file():
        raise ModelNotFoundError(f"{model_path} is missing: {_restore_hint(folder)}")
    actual = sha256_file(model_path)
    if actual != card.sha256:
        with model_path.open("rb") as f:
            lfs = f.read(64).startswith(b"version https://git-lfs")
        cause = (
            "it is a Git LFS pointer, not the model: run `git lfs pull`"
            if lfs
            else "the file is corrupt, truncated, or from another training run than the card"
        )
        raise ModelChecksumError(
            f"{model_path} has sha256 {actual}, but {folder / CARD_FILE} expects {card.sha256}: "
            f"{cause}. Restore model and card together from git (`git checkout -- {folder}`) "
            "or train it again with `senses-train`, which writes a matching card."
        )
    interpreter, runtime = _open_interpreter(model_path, num_threads)
    _check_card_matches_model(card, interpreter, folder / CARD_FILE)
    log.info(
        "loaded model %s from %s with %s, %d thread(s)", card.name, folder, runtime, num_threads
    )
    return TFLiteModel(
        card,
        folder,
        interpreter,
        runtime,
        deadline_s=_deadline_s if deadline_s == "default" else deadline_s,
        reopen=lambda: _open_interpreter(model_path, num_threads)[0],
    )
