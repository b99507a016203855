"""Tests of device.inference: loading model folders, refusing bad ones, running float and int8.

The models are built once per session with TensorFlow in a subprocess (TF's import takes
seconds, and keeping it out of this process keeps its native libraries away from LiteRT's):
a small MLP as float32 and as full-integer int8, the int8 one again with a fixed batch of 1,
and a two-input float model.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import shutil
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import device
from device import inference
from device.errors import (
    ConfigError,
    InferenceError,
    InferenceTimeoutError,
    InterpreterMissingError,
    ModelCardError,
    ModelChecksumError,
    ModelNotFoundError,
)
from device.inference import (
    ModelCard,
    TFLiteModel,
    dequantize,
    load_model,
    quantize,
    read_card,
    read_tensor_specs,
    sha256_file,
    write_card,
)

DEVICE_DIR = Path(device.__file__).parent

_BUILD_MODELS = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np
    import tensorflow as tf

    out = Path(sys.argv[1])
    rng = np.random.default_rng(0)
    # Small weights keep the logits moderate, so int8 error stays near one output step.
    w1 = (0.3 * rng.normal(size=(8, 16))).astype(np.float32)
    b1 = (0.3 * rng.normal(size=16)).astype(np.float32)
    w2 = (0.3 * rng.normal(size=(16, 3))).astype(np.float32)
    np.savez(out / "weights.npz", w1=w1, b1=b1, w2=w2)
    calibration = rng.normal(size=(200, 8)).astype(np.float32)

    def mlp(x):
        return tf.nn.softmax(tf.matmul(tf.nn.relu(tf.matmul(x, w1) + b1), w2))

    def convert(fn, int8):
        converter = tf.lite.TFLiteConverter.from_concrete_functions(
            [fn.get_concrete_function()], fn
        )
        if int8:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: ([row[None]] for row in calibration)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        return converter.convert()

    spec = tf.TensorSpec
    dynamic = tf.function(mlp, input_signature=[spec([None, 8], tf.float32)])
    fixed = tf.function(mlp, input_signature=[spec([1, 8], tf.float32)])
    two = tf.function(
        lambda a, b: 2.0 * a + b,
        input_signature=[
            spec([None, 4], tf.float32, name="a"),
            spec([None, 4], tf.float32, name="b"),
        ],
    )
    (out / "float.tflite").write_bytes(convert(dynamic, int8=False))
    (out / "int8.tflite").write_bytes(convert(dynamic, int8=True))
    (out / "int8_fixed.tflite").write_bytes(convert(fixed, int8=True))
    (out / "two_inputs.tflite").write_bytes(convert(two, int8=False))
    """
)


@pytest.fixture(scope="session")
def built_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """float, int8, int8_fixed and two_inputs .tflite files, and the MLP's weights.npz."""
    if importlib.util.find_spec("tensorflow") is None:
        pytest.skip("tensorflow-cpu builds the test models (pip install -e .[train])")
    out = tmp_path_factory.mktemp("tflite")
    done = subprocess.run(
        [sys.executable, "-c", _BUILD_MODELS, str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"building test models failed:\n{done.stderr[-3000:]}"
    return out


def _reference_mlp(weights: Path, x: np.ndarray) -> np.ndarray:
    w = np.load(weights)
    hidden = np.maximum(x @ w["w1"] + w["b1"], 0.0)
    logits = hidden @ w["w2"]
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _card_fields(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "schema_version": 1,
        "name": "test",
        "description": "a tiny MLP for tests",
        "sha256": "0" * 64,
        "inputs": [],
        "outputs": [],
        "labels": [],
        "training_data": {"name": "random normal", "licence": "none"},
        "metrics": {"float": {}, "int8": {}},
        "evaluation": "none: a test model",
        "licence": "Apache-2.0",
        "source": "tests/test_inference.py",
        "runtime": {"converter": "tensorflow 2.21.0", "runtime": "ai-edge-litert 2.3.0"},
        "task_config": {},
    }
    fields.update(overrides)
    return fields


def make_model_folder(
    built: Path, kind: str, dest: Path, labels: list[str] | None = None
) -> tuple[Path, ModelCard]:
    """``dest`` with ``kind``.tflite as model.tflite and a card written by write_card."""
    dest.mkdir(parents=True)
    shutil.copy(built / f"{kind}.tflite", dest / "model.tflite")
    inputs, outputs = read_tensor_specs(dest / "model.tflite")
    card = ModelCard.model_validate(
        _card_fields(name=kind, inputs=inputs, outputs=outputs, labels=labels or [])
    )
    return dest, write_card(dest, card)


def _edit_card(folder: Path, edit: Any) -> None:
    path = folder / "card.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


X_ROWS = np.random.default_rng(1).normal(size=(32, 8)).astype(np.float32)


# --- running ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_float_model_matches_the_numpy_reference(built_models: Path, tmp_path: Path) -> None:
    folder, _ = make_model_folder(built_models, "float", tmp_path / "float")
    model = load_model(folder)
    got = model.run(X_ROWS)
    assert got.dtype == np.float32 and got.shape == (32, 3)
    np.testing.assert_allclose(got, _reference_mlp(built_models / "weights.npz", X_ROWS), atol=1e-5)


@pytest.mark.slow
def test_int8_model_agrees_with_float_within_a_few_quantization_steps(
    built_models: Path, tmp_path: Path
) -> None:
    folder, card = make_model_folder(built_models, "int8", tmp_path / "int8")
    model = load_model(folder)
    got = model.run(X_ROWS)
    assert got.dtype == np.float32
    expected = _reference_mlp(built_models / "weights.npz", X_ROWS)
    out_q = card.outputs[0].quantization
    assert out_q is not None
    # Input rounding, int8 weights and the int8 softmax cost about two steps here (x86 and
    # ARM kernels may differ by one more); the output zero point alone is 128 steps and the
    # input's 15 steps shift every logit, so an offset or sign mistake cannot hide in this bound.
    steps = np.abs(got - expected) / out_q.scale
    assert steps.max() <= 4, f"int8 off by {steps.max():.1f} output steps"


@pytest.mark.slow
def test_int8_values_outside_the_input_range_are_clipped_not_wrapped(
    built_models: Path, tmp_path: Path
) -> None:
    model = load_model(make_model_folder(built_models, "int8", tmp_path / "m")[0])
    q = model.card.inputs[0].quantization
    assert q is not None
    huge = np.full((1, 8), 1e6, dtype=np.float32)
    edge = np.full((1, 8), (127 - q.zero_point) * q.scale, dtype=np.float32)
    np.testing.assert_array_equal(model.run(huge), model.run(edge))


@pytest.mark.slow
def test_dynamic_batch_runs_in_one_go_and_matches_row_by_row(
    built_models: Path, tmp_path: Path
) -> None:
    model = load_model(make_model_folder(built_models, "int8", tmp_path / "m")[0])
    rows = [model.run(X_ROWS[i : i + 1]) for i in range(len(X_ROWS))]
    np.testing.assert_array_equal(model.run(X_ROWS), np.concatenate(rows))
    assert model.run(X_ROWS[:1]).shape == (1, 3)  # and back to one row


@pytest.mark.slow
def test_fixed_batch_model_runs_rows_one_at_a_time(built_models: Path, tmp_path: Path) -> None:
    fixed = load_model(make_model_folder(built_models, "int8_fixed", tmp_path / "fixed")[0])
    dynamic = load_model(make_model_folder(built_models, "int8", tmp_path / "dynamic")[0])
    assert fixed.card.inputs[0].shape == [1, 8]
    np.testing.assert_array_equal(fixed.run(X_ROWS[:5]), dynamic.run(X_ROWS[:5]))


@pytest.mark.slow
def test_run_many_feeds_inputs_in_card_order(built_models: Path, tmp_path: Path) -> None:
    model = load_model(make_model_folder(built_models, "two_inputs", tmp_path / "two")[0])
    assert [s.name for s in model.card.inputs] == ["a", "b"]
    a = np.arange(8, dtype=np.float32).reshape(2, 4)
    b = np.ones((2, 4), dtype=np.float32)
    (out,) = model.run_many([a, b])
    np.testing.assert_allclose(out, 2 * a + b)
    with pytest.raises(InferenceError, match="run_many"):
        model.run(a)
    with pytest.raises(InferenceError, match="takes 2 inputs"):
        model.run_many([a])


@pytest.mark.slow
def test_wrong_input_shape_is_refused_with_the_expected_shape(
    built_models: Path, tmp_path: Path
) -> None:
    model = load_model(make_model_folder(built_models, "float", tmp_path / "m")[0])
    with pytest.raises(InferenceError, match=r"got shape \[1, 9\], expected \[-1, 8\]"):
        model.run(np.zeros((1, 9), dtype=np.float32))
    with pytest.raises(InferenceError, match="add a batch axis"):
        model.run(np.zeros(8, dtype=np.float32))
    with pytest.raises(InferenceError, match="NaN"):
        model.run(np.full((1, 8), np.nan, dtype=np.float32))


@pytest.mark.slow
def test_one_model_shared_by_threads_gives_the_same_results(
    built_models: Path, tmp_path: Path
) -> None:
    model = load_model(make_model_folder(built_models, "int8", tmp_path / "m")[0])
    expected = [model.run(X_ROWS[i : i + 1 + i % 3]) for i in range(8)]
    results: dict[int, list[np.ndarray]] = {}

    def worker(t: int) -> None:
        # Mixed batch sizes force resizes between invokes: unguarded, threads would see
        # each other's tensor shapes.
        results[t] = [model.run(X_ROWS[i : i + 1 + i % 3]) for i in range(8) for _ in range(5)]

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for got in results.values():
        for j, out in enumerate(got):
            np.testing.assert_array_equal(out, expected[j // 5])


@given(
    scale=st.floats(1e-4, 10.0),
    zero_point=st.integers(-128, 127),
    values=st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=20),
)
def test_quantize_round_trip_is_within_half_a_step_inside_the_range(
    scale: float, zero_point: int, values: list[float]
) -> None:
    x = np.array(values)
    q = quantize(x, scale, zero_point, "int8")
    assert q.dtype == np.int8
    inside = ((x / scale + zero_point) >= -128) & ((x / scale + zero_point) <= 127)
    err = np.abs(dequantize(q, scale, zero_point) - x)
    assert np.all(err[inside] <= scale * 0.5 * (1 + 1e-6) + 1e-6)
    assert np.all(q[~inside] == np.where(x[~inside] > 0, 127, -128))


def test_quantize_rounds_half_away_from_zero_like_tflite() -> None:
    assert quantize([0.5, -0.5, 1.5, -1.5], 1.0, 0, "int8").tolist() == [1, -1, 2, -2]
    assert quantize([300.0], 1.0, 0, "uint8").tolist() == [255]


# --- refusing bad folders --------------------------------------------------------------------


def test_missing_folder_says_how_to_get_the_model(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match=r"git checkout.*senses-train food"):
        load_model(tmp_path / "models" / "food")


def test_missing_model_file_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "food"
    folder.mkdir()
    (folder / "card.json").write_text(json.dumps(_card_fields(**_valid_io())))
    with pytest.raises(ModelNotFoundError, match=r"model\.tflite is missing"):
        load_model(folder)


def _valid_io() -> dict[str, Any]:
    return {
        "inputs": [{"name": "x", "shape": [-1, 8], "dtype": "float32"}],
        "outputs": [{"name": "y", "shape": [-1, 3], "dtype": "float32", "quantization": None}],
    }


def _write_raw_card(folder: Path, fields: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "card.json").write_text(json.dumps(fields))
    return folder


def test_missing_card_field_is_named(tmp_path: Path) -> None:
    fields = _card_fields(**_valid_io())
    del fields["licence"]
    folder = _write_raw_card(tmp_path / "m", fields)
    with pytest.raises(ModelCardError, match=r"- licence: Field required") as caught:
        read_card(folder)
    assert isinstance(caught.value, ValueError)


def test_bad_nested_fields_are_named_by_dotted_path_with_what_is_allowed(tmp_path: Path) -> None:
    io = _valid_io()
    io["inputs"][0]["dtype"] = "float64"
    io["outputs"][0]["quantization"] = {"scale": 0.1, "zero_point": 0, "axis": 1}
    folder = _write_raw_card(tmp_path / "m", _card_fields(sha256="ABC", colour="red", **io))
    with pytest.raises(ModelCardError) as caught:
        read_card(folder)
    message = str(caught.value)
    assert "inputs[0].dtype: Input should be 'float32', 'int8'" in message
    assert "(got 'float64')" in message
    assert "outputs[0].quantization.axis: unknown key" in message
    assert "sha256: String should match pattern" in message
    assert "colour: unknown key" in message


def test_quantized_float_tensor_and_bad_zero_point_are_refused(tmp_path: Path) -> None:
    io = _valid_io()
    io["inputs"][0]["quantization"] = {"scale": 0.1, "zero_point": 0}
    io["outputs"][0].update(dtype="int8", quantization={"scale": 0.1, "zero_point": 200})
    folder = _write_raw_card(tmp_path / "m", _card_fields(**io))
    with pytest.raises(ModelCardError) as caught:
        read_card(folder)
    assert "inputs[0]: a float32 tensor cannot be quantized" in str(caught.value)
    assert "zero_point 200 is outside the int8 range" in str(caught.value)


def test_model_file_must_stay_inside_the_folder(tmp_path: Path) -> None:
    folder = _write_raw_card(tmp_path / "m", _card_fields(model_file="../x.tflite", **_valid_io()))
    with pytest.raises(ModelCardError, match="model_file: must be a file name"):
        read_card(folder)


def test_card_that_is_not_json_says_where(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "card.json").write_text('{"schema_version": 1,\n  "name": }')
    with pytest.raises(ModelCardError, match=r"Invalid JSON.*line 2"):
        read_card(folder)


def test_checksum_mismatch_says_expected_and_actual(tmp_path: Path) -> None:
    folder = _write_raw_card(tmp_path / "m", _card_fields(sha256="a" * 64, **_valid_io()))
    (folder / "model.tflite").write_bytes(b"not the model the card describes")
    actual = sha256_file(folder / "model.tflite")
    with pytest.raises(ModelChecksumError) as caught:
        load_model(folder)
    message = str(caught.value)
    assert f"has sha256 {actual}" in message
    assert f"expects {'a' * 64}" in message
    assert "git checkout" in message and "senses-train" in message


def test_git_lfs_pointer_is_recognised(tmp_path: Path) -> None:
    folder = _write_raw_card(tmp_path / "m", _card_fields(sha256="a" * 64, **_valid_io()))
    (folder / "model.tflite").write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 2060\n"
    )
    with pytest.raises(ModelChecksumError, match="git lfs pull"):
        load_model(folder)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda c: c["inputs"][0].update(shape=[-1, 9]), r"inputs\[0\] \('x'.*shape \[-1, 9\]"),
        (lambda c: c["inputs"][0].update(dtype="uint8"), r"inputs\[0\].*dtype uint8"),
        (
            lambda c: c["outputs"][0]["quantization"].update(scale=0.0040),
            r"outputs\[0\].*scale 0\.004 in the card, 0\.00390625 in the model",
        ),
        (
            lambda c: c["inputs"][0]["quantization"].update(zero_point=14),
            r"inputs\[0\].*zero_point 14 in the card, 15 in the model",
        ),
        (lambda c: c["outputs"][0].update(quantization=None), r"outputs\[0\].*quantization null"),
        (lambda c: c["outputs"].append(c["outputs"][0]), r"outputs: 2 in the card, 1 in the model"),
        (lambda c: c.update(labels=["a", "b"]), r"labels: 2 in the card"),
    ],
)
def test_card_that_does_not_describe_the_model_is_refused(
    built_models: Path, tmp_path: Path, edit: Any, expected: str
) -> None:
    folder, _ = make_model_folder(built_models, "int8", tmp_path / "m", labels=["x", "y", "z"])
    load_model(folder)  # the card as written is accepted
    _edit_card(folder, edit)
    with pytest.raises(ModelCardError, match=expected):
        load_model(folder)


@pytest.mark.slow
def test_card_scale_within_tolerance_is_accepted(built_models: Path, tmp_path: Path) -> None:
    folder, _ = make_model_folder(built_models, "int8", tmp_path / "m")
    _edit_card(folder, lambda c: c["inputs"][0]["quantization"].update(scale=0.0273155))
    load_model(folder)


@pytest.mark.slow
def test_write_card_computes_the_checksum_and_refuses_a_wrong_card(
    built_models: Path, tmp_path: Path
) -> None:
    folder, card = make_model_folder(built_models, "float", tmp_path / "m")
    assert card.sha256 == sha256_file(folder / "model.tflite")
    written = json.loads((folder / "card.json").read_text())
    assert written["sha256"] == card.sha256
    assert set(written) == set(ModelCard.model_fields)
    assert read_card(folder) == card
    wrong = card.model_copy(update={"outputs": card.inputs})
    with pytest.raises(ModelCardError, match="does not describe"):
        write_card(folder, wrong)
    assert read_card(folder) == card  # the good card is still there
    assert sorted(p.name for p in folder.iterdir()) == ["card.json", "model.tflite"]


# --- the runtime -----------------------------------------------------------------------------


def _hide_runtimes(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules makes `import` raise ImportError, as if not installed.
    for module in inference.interpreter_modules():
        monkeypatch.setitem(sys.modules, module.split(".")[0], None)
        monkeypatch.setitem(sys.modules, module, None)


def test_missing_runtime_names_both_packages_and_how_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _hide_runtimes(monkeypatch)
    monkeypatch.delenv(inference.RUNTIME_ENV_VAR, raising=False)
    with pytest.raises(InterpreterMissingError) as caught:
        inference.make_interpreter(tmp_path / "model.tflite", num_threads=1)
    message = str(caught.value)
    assert "ai_edge_litert.interpreter (ai-edge-litert)" in message
    assert "tflite_runtime.interpreter (tflite-runtime)" in message
    assert "pip install ai-edge-litert==2.3.0" in message
    assert "pip install tflite-runtime" in message
    assert isinstance(caught.value, ImportError)


def test_runtime_can_be_pinned_by_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "tflite_runtime", None)
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", None)
    monkeypatch.setenv(inference.RUNTIME_ENV_VAR, "tflite-runtime")
    with pytest.raises(InterpreterMissingError, match=r"tried tflite_runtime\.interpreter"):
        inference.make_interpreter(tmp_path / "model.tflite", num_threads=1)
    monkeypatch.setenv(inference.RUNTIME_ENV_VAR, "tensorflow")
    with pytest.raises(ConfigError, match="ai-edge-litert, tflite-runtime"):
        inference.make_interpreter(tmp_path / "model.tflite", num_threads=1)


@pytest.mark.slow
def test_num_threads_goes_to_the_interpreter_constructor(
    built_models: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    monkeypatch.delenv(inference.RUNTIME_ENV_VAR, raising=False)
    seen: list[dict[str, Any]] = []

    class Spy(litert.Interpreter):
        def __init__(self, **kwargs: Any) -> None:
            seen.append(kwargs)
            super().__init__(**kwargs)

    monkeypatch.setattr(litert, "Interpreter", Spy)
    folder, _ = make_model_folder(built_models, "float", tmp_path / "m")
    seen.clear()
    model = load_model(folder, num_threads=3)
    assert [k["num_threads"] for k in seen] == [3]
    assert model.runtime.startswith("ai-edge-litert")
    with pytest.raises(ValueError, match="num_threads must be >= 1"):
        load_model(folder, num_threads=0)


@pytest.mark.slow
def test_loading_a_model_never_loads_the_library_that_dies_on_pi3_and_pi4(
    built_models: Path, tmp_path: Path
) -> None:
    maps = Path("/proc/self/maps")
    if not maps.exists():
        pytest.skip("needs /proc/self/maps (Linux)")
    model = load_model(make_model_folder(built_models, "int8", tmp_path / "m")[0])
    model.run(X_ROWS[:1])
    assert "WebGpuAccelerator" not in maps.read_text()
    assert not [m for m in sys.modules if "compiled_model" in m]


def _imported_modules(source: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute | ast.Name):
            func = node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id
            if func in ("import_module", "__import__") and node.args:
                arg = node.args[0]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    names.add(arg.value)
    return names


def test_only_inference_py_imports_a_tflite_runtime_or_tensorflow() -> None:
    runtimes = ("ai_edge_litert", "tflite_runtime", "tensorflow", "tf_keras", "keras")
    offenders = []
    for path in sorted(DEVICE_DIR.rglob("*.py")):
        if path == DEVICE_DIR / "inference.py":
            continue
        source = path.read_text(encoding="utf-8")
        imported = _imported_modules(source)
        bad = sorted(m for m in imported if m.split(".")[0] in runtimes)
        # Dynamic imports through a variable escape the AST; the module names must not appear.
        bad += [r for r in ("ai_edge_litert", "tflite_runtime") if f'"{r}' in source]
        if bad:
            offenders.append(f"{path.relative_to(DEVICE_DIR.parent)}: {bad}")
    assert not offenders, "only device/inference.py may import a TFLite runtime:\n" + "\n".join(
        offenders
    )
    assert inference.interpreter_modules() == (
        "ai_edge_litert.interpreter",
        "tflite_runtime.interpreter",
    )


def test_inference_py_never_uses_the_compiled_model_api() -> None:
    tree = ast.parse((DEVICE_DIR / "inference.py").read_text(encoding="utf-8"))
    # Docstrings explain in prose why the API is avoided; nothing else may name it.
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    words = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            words.append(node.id)
        elif isinstance(node, ast.Attribute):
            words.append(node.attr)
        elif isinstance(node, ast.alias):
            words.append(node.name)
        elif isinstance(node, ast.ImportFrom):
            words.append(node.module or "")
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
        ):
            words.append(node.value)
    used = [w for w in words if "compiledmodel" in w.lower().replace("_", "").replace("-", "")]
    assert not used, f"device/inference.py names the CompiledModel API: {used}"
    assert not [m for m in inference.interpreter_modules() if "compiled" in m]


def test_tflite_model_refuses_to_run_when_input_count_is_wrong() -> None:
    class NoRun:
        def get_input_details(self) -> list[dict[str, Any]]:
            return [
                {
                    "name": "x",
                    "index": 0,
                    "shape": np.array([1, 2]),
                    "dtype": np.float32,
                    "quantization": (0.0, 0),
                }
            ]

        def get_output_details(self) -> list[dict[str, Any]]:
            return self.get_input_details()

    card = ModelCard.model_validate(_card_fields(**_valid_io()))
    model = TFLiteModel(card, Path("m"), NoRun(), "fake")
    with pytest.raises(InferenceError, match="takes 1 inputs"):
        model.run_many([np.zeros(2), np.zeros(2)])
    with pytest.raises(InferenceError, match="takes numbers"):
        model.run(np.array([["a", "b"]]))


class _StallingInterpreter:
    """A real interpreter whose next ``invoke`` hangs until released (a stuck delegate)."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.release = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def invoke(self) -> None:
        self.release.wait()
        self.real.invoke()


def test_a_stuck_invoke_fails_by_its_deadline_and_the_next_call_runs_on_a_fresh_interpreter(
    built_models: Path, tmp_path: Path
) -> None:
    folder = make_model_folder(built_models, "int8", tmp_path / "m")[0]
    reference = load_model(folder, deadline_s=None).run(X_ROWS)
    model = load_model(folder, deadline_s=0.5)
    stalling = _StallingInterpreter(model._interpreter)
    model._interpreter = stalling
    with pytest.raises(InferenceTimeoutError, match=r"longer than its 0.5 s deadline.*reopened"):
        model.run(X_ROWS)
    assert model.timeouts == 1
    np.testing.assert_array_equal(model.run(X_ROWS), reference)
    stalling.release.set()  # let the abandoned thread finish
