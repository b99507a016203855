"""The judging logic of the emulated Pi check (hardware/pi-emulation), without emulating anything.

The emulation itself runs with ``make pi-check``; these tests pin what it calls agreement with
x86, what it feeds the models, and that each board's /proc/cpuinfo names the core QEMU runs.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest

from device.config import PROJECT_ROOT
from device.inference import ModelCard, TensorSpec, quantize, read_card

# The check's folder is not a package (its name has a hyphen); its scripts import each other
# as top-level modules, as they do when run.
sys.path.insert(0, str(PROJECT_ROOT / "hardware" / "pi-emulation"))

import agreement
import boards
import guest
import pi_check
import probe

FOOD = PROJECT_ROOT / "models" / "food_quality"
# The judging logic is tested on an int8 food model's tensors (the previous shipped model's);
# the shipped model itself may be float32 (compiled trees), read from its files below.
STEP = 0.003921412862837315
INT8_FEATURES = TensorSpec(
    name="features", shape=[-1, 18], dtype="int8", quantization={"scale": 0.047, "zero_point": -33}
)
INT8_OUTPUTS = [
    TensorSpec(
        name="probabilities",
        shape=[-1, 4],
        dtype="int8",
        quantization={"scale": STEP, "zero_point": -128},
    ),
    TensorSpec(
        name="tvc_log_cfu",
        shape=[-1, 1],
        dtype="int8",
        quantization={"scale": 0.023, "zero_point": -128},
    ),
]


@pytest.fixture(scope="module")
def food_card() -> ModelCard:
    return read_card(FOOD)


@pytest.fixture(scope="module")
def int8_card() -> ModelCard:
    return read_card(FOOD).model_copy(update={"inputs": [INT8_FEATURES], "outputs": INT8_OUTPUTS})


def _probabilities(*rows: list[int]) -> np.ndarray:
    """Rows of int8 softmax outputs (zero point -128) as real values, as TFLiteModel returns."""
    return (np.array(rows, dtype=np.float64) + 128) * STEP


# --- tolerances and comparisons ----------------------------------------------------------------


def test_the_food_model_is_judged_by_tolerances_read_from_its_file(
    food_card: ModelCard,
) -> None:
    # Its ops are read from the file (XNNPACK would show them as one node): at least the
    # matrix products and comparisons of the compiled trees, or an MLP's layers and softmax.
    n_ops = agreement.count_operators(FOOD / "model.tflite")
    assert n_ops >= 4
    spec = food_card.outputs[0]
    tolerance = agreement.tolerance_for(spec, n_ops, np.ones(1))  # probabilities reach 1
    if spec.quantization is not None:  # int8: one step per op, capped
        assert (tolerance.limit, tolerance.steps_of) == (min(n_ops, 16), spec.quantization.scale)
    else:  # float32: 1 % of the largest probability
        assert tolerance.steps_of is None and tolerance.limit == pytest.approx(0.01)


def test_quantized_tolerance_grows_with_depth_up_to_a_cap() -> None:
    spec = TensorSpec(
        name="y", shape=[1, 4], dtype="int8", quantization={"scale": STEP, "zero_point": -128}
    )
    limits = [agreement.tolerance_for(spec, n, np.zeros(0)).limit for n in (0, 3, 31, 200)]
    assert limits == [1.0, 3.0, 16.0, 16.0]


def test_float_tolerance_is_relative_to_the_largest_reference_value() -> None:
    spec = TensorSpec(name="scores", shape=[1, 3], dtype="float32")
    assert agreement.tolerance_for(spec, 10, np.array([0.5, -2.0, 1.0])).limit == pytest.approx(
        0.02
    )
    assert agreement.tolerance_for(spec, 10, np.zeros(3)).limit == pytest.approx(1e-5)


def test_outputs_within_the_steps_agree_and_beyond_them_do_not(int8_card: ModelCard) -> None:
    spec = int8_card.outputs[0]
    x86 = _probabilities([-128, 100, -100, -128], [127, -128, -128, -128])
    same = agreement.compare_output(spec, x86, x86.copy(), n_ops=4, n_labels=4)
    assert same.ok and same.max_diff == 0 and same.describe() == "0/4 steps"
    close = agreement.compare_output(spec, x86, x86 + 3 * STEP, n_ops=4, n_labels=4)
    assert close.ok and close.max_diff == 3
    far = agreement.compare_output(spec, x86, x86 + 5 * STEP, n_ops=4, n_labels=4)
    assert not far.ok and far.describe() == "5/4 steps"


def test_a_changed_class_fails_unless_x86_had_a_near_tie(int8_card: ModelCard) -> None:
    spec = int8_card.outputs[0]
    x86 = _probabilities([-128, 0, -128, 2], [-128, 100, -128, -100])
    # Row 0: "spoiled" 2 steps above "good" on x86, swapped on the board: a tie broken
    # the other way, within the 4 steps. Row 1 unchanged.
    tie = _probabilities([-128, 2, -128, 0], [-128, 100, -128, -100])
    assert agreement.compare_output(spec, x86, tie, n_ops=4, n_labels=4).ok
    # A far-off class on top is a different verdict, whatever the step count says.
    swapped = agreement.compare_output(spec, x86, x86[:, [0, 3, 2, 1]], n_ops=200, n_labels=4)
    assert not swapped.ok and "top class differs in 1/2 rows" in swapped.problem


def test_shape_and_nan_mismatches_never_agree() -> None:
    spec = TensorSpec(name="scores", shape=[1, 3], dtype="float32")
    x86 = np.array([[0.1, 0.2, 0.3]])
    assert "shape [1, 2]" in agreement.compare_output(spec, x86, x86[:, :2], 1).problem
    nan = x86.copy()
    nan[0, 1] = np.nan
    assert not agreement.compare_output(spec, x86, nan, 1).ok


def test_compare_model_names_the_worst_output(int8_card: ModelCard) -> None:
    tvc = np.array([[0]], dtype=np.int8)
    x86 = [_probabilities([-128, 127, -128, -128]), tvc]
    result = agreement.compare_model(int8_card, x86, [x86[0] + STEP, tvc], n_ops=4)
    assert result.ok and result.describe() == "food_quality 1/4 steps"
    assert not agreement.compare_model(int8_card, x86, [], n_ops=4).ok


def _verdict(minute: int, label: str, spoiled: float) -> str:
    probabilities = {"excellent": 1 - spoiled, "good": 0.0, "acceptable": 0.0, "spoiled": spoiled}
    return (
        f'{{"type": "food", "minute": {minute}, "label": "{label}", '
        f'"probabilities": {str(probabilities).replace(chr(39), chr(34))}}}'
    )


def test_replay_verdicts_are_matched_minute_by_minute() -> None:
    tolerance = agreement.Tolerance(limit=4, steps_of=STEP)
    x86 = agreement.food_verdicts(
        ['{"type": "nose"}', _verdict(50, "fresh", 0.0), _verdict(51, "fresh", 0.0078)]
    )
    same = agreement.compare_verdicts(x86, dict(x86), tolerance)
    assert same.ok and same.describe() == "0/4 steps, 2/2 same label"
    off = agreement.food_verdicts([_verdict(50, "fresh", 0.0), _verdict(51, "fresh", 0.0312)])
    assert agreement.compare_verdicts(x86, off, tolerance).max_steps == pytest.approx(6, abs=0.05)
    assert not agreement.compare_verdicts(x86, off, tolerance).ok
    short = agreement.food_verdicts([_verdict(50, "fresh", 0.0)])
    assert "missing [51]" in agreement.compare_verdicts(x86, short, tolerance).describe()


# --- the fixed inputs --------------------------------------------------------------------------


def test_inputs_are_fixed_and_lie_on_the_quantization_grid(int8_card: ModelCard) -> None:
    (x,) = agreement.make_inputs(int8_card)
    assert x.shape == (64, int8_card.inputs[0].shape[1])
    np.testing.assert_array_equal(x, agreement.make_inputs(int8_card)[0])
    q = int8_card.inputs[0].quantization
    codes = quantize(x, q.scale, q.zero_point, "int8").astype(np.float64)
    np.testing.assert_allclose((codes - q.zero_point) * q.scale, x, rtol=0, atol=1e-9)


def test_input_rows_sweep_from_full_range_to_near_the_zero_point(int8_card: ModelCard) -> None:
    (x,) = agreement.make_inputs(int8_card)
    q = int8_card.inputs[0].quantization
    codes = quantize(x, q.scale, q.zero_point, "int8").astype(int)
    assert codes[0].min() <= -100 and codes[0].max() >= 100
    assert np.abs(codes[-1] - q.zero_point).max() <= 3


def test_fixed_batch_and_unbatched_inputs_keep_their_shapes() -> None:
    image = TensorSpec(
        name="image",
        shape=[1, 96, 96, 3],
        dtype="uint8",
        quantization={"scale": 1 / 255, "zero_point": 0},
    )
    wave = TensorSpec(name="waveform", shape=[15600], dtype="float32")
    card = read_card(FOOD).model_copy(update={"inputs": [image, wave]})
    pixels, samples = agreement.make_inputs(card)
    assert pixels.shape == (1, 96, 96, 3) and samples.shape == (15600,)
    assert samples.dtype == np.float32 and np.abs(samples).max() <= 1.0
    assert pixels.min() >= 0 and pixels.max() <= 1.0


# --- pip's complaints, platform tags, requirements ---------------------------------------------


def test_missing_wheels_are_named_from_pips_output() -> None:
    output = (
        "ERROR: Could not find a version that satisfies the requirement "
        "ai-edge-litert==2.3.0 (from versions: none)\n"
        "ERROR: No matching distribution found for ai-edge-litert==2.3.0\n"
    )
    assert agreement.missing_wheels(output) == ["ai-edge-litert==2.3.0"]
    assert agreement.missing_wheels("Successfully downloaded numpy") == []


def test_platform_tags_cover_every_glibc_up_to_the_guests() -> None:
    tags = guest.platform_tags("2.36")
    assert tags[0] == "manylinux_2_36_aarch64"
    assert "manylinux_2_17_aarch64" in tags and tags[-1] == "manylinux2014_aarch64"
    assert "manylinux_2_37_aarch64" not in tags


def test_device_requirements_are_the_base_and_the_device_extra() -> None:
    requirements = guest.device_requirements(PROJECT_ROOT / "pyproject.toml")
    assert "ai-edge-litert==2.3.0" in requirements
    assert any(r.startswith("numpy") for r in requirements)
    assert not any(r.startswith("tensorflow") for r in requirements)


# --- boards ------------------------------------------------------------------------------------


@pytest.mark.parametrize("board", boards.BOARDS, ids=lambda b: b.name)
def test_each_profile_names_the_core_qemu_emulates(board: boards.Board) -> None:
    assert boards.QEMU_CPU_PART[board.qemu_cpu] == board.midr_part
    text = boards.cpuinfo_text(board)
    assert text.count(f"CPU part\t: 0x{board.midr_part:03x}\n") == board.cores
    assert f"Model\t\t: {board.model}" in text


def test_only_the_pi5_has_the_atomics_the_webgpu_library_needs() -> None:
    assert [b.name for b in boards.BOARDS if b.has_armv82_atomics] == ["pi5"]


def test_hwcaps_must_match_the_board() -> None:
    pi4, pi5 = boards.board_named("pi4"), boards.board_named("pi5")
    assert boards.hwcap_problems(pi4, {"crc32", "aes"}) == []  # QEMU's A72 has AES; harmless
    assert boards.hwcap_problems(pi4, {"atomics"}) == ["atomics present, the Pi 4 has none"]
    assert "asimddp missing" in boards.hwcap_problems(pi5, {"atomics"})


def test_a_profile_shadows_proc_and_sys_and_links_the_rest(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "bin").symlink_to("usr/bin")
    (root / "proc").mkdir()
    (root / "dev").mkdir()
    profile = boards.make_profile(boards.board_named("pi3"), root, tmp_path / "pi3")
    assert (profile / "usr").resolve() == (root / "usr").resolve()
    assert (profile / "bin").resolve() == (root / "usr" / "bin").resolve()
    assert not (profile / "dev").exists()  # the host's /dev
    assert "CPU part\t: 0xd03" in (profile / "proc" / "cpuinfo").read_text()
    cpu0 = profile / "sys" / "devices" / "system" / "cpu" / "cpu0"
    assert (cpu0 / "cache" / "index2" / "size").read_text() == "512K\n"
    assert (profile / "sys" / "devices" / "system" / "cpu" / "possible").read_text() == "0-3\n"


def test_a_profile_for_another_core_is_refused(tmp_path: Path) -> None:
    wrong = dataclasses.replace(boards.board_named("pi4"), qemu_cpu="cortex-a53")
    with pytest.raises(ValueError, match="does not match -cpu cortex-a53"):
        boards.make_profile(wrong, tmp_path, tmp_path / "p")


# --- BirdNET, installed on the host by the user's command ----------------------------------------


def test_birdnet_is_installed_by_the_install_command_and_probed_like_a_shipped_model(
    tmp_path: Path,
) -> None:
    folders = pi_check.install_birdnet(tmp_path / "cache")
    assert set(folders) == {"birdnet", "birdnet-range"}
    assert not folders["birdnet"].resolve().is_relative_to(PROJECT_ROOT / "models")
    run_dir = tmp_path / "run"
    models, _ = pi_check.prepare(run_dir, folders)
    assert models.cards["birdnet"].licence == "CC BY-NC-SA 4.0"
    assert models.ops["birdnet"] > 300  # the EfficientNet-like body, RFFT front end included
    argv = pi_check.probe_argv(run_dir, tmp_path / "out", models.extra)
    assert f"--folder=birdnet={folders['birdnet']}" in argv
    # the x86 side of the comparison, as the check runs it (the boards run the same argv)
    out = tmp_path / "out"
    out.mkdir()
    report = probe.run_models(tmp_path / "no-shipped-models", run_dir / "inputs", out, folders)
    assert report["birdnet"]["ran"] and report["birdnet-range"]["ran"], report
    logits, occurrence = (pi_check.read_outputs(out, name)[0] for name in folders)
    assert logits.shape == (1, 6522) and occurrence.shape == (64, 6522)
    agreement_with_itself = agreement.compare_model(
        models.cards["birdnet"], [logits], [logits], models.ops["birdnet"]
    )
    assert agreement_with_itself.ok


def test_probe_folder_arguments_are_name_equals_path() -> None:
    assert probe.parse_folders(["birdnet=/d/models/birdnet"]) == {
        "birdnet": Path("/d/models/birdnet")
    }
    with pytest.raises(ValueError, match="NAME=PATH"):
        probe.parse_folders(["birdnet"])
