"""``senses eye train`` and ``senses eye score`` as a person uses them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import msgpack
import numpy as np
import pytest
from PIL import Image

from device.cli import main
from device.config import PROJECT_ROOT
from device.eye.backbone import Backbone
from device.eye.cli import score_images
from device.eye.concept import load_concept
from device.eye.images import load_image, pixels_sha256

DEMO_CONCEPT = PROJECT_ROOT / "models" / "concepts" / "cats.cav"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["eye", *argv])
    captured = capsys.readouterr()
    return code, captured.out, " ".join(captured.err.split())


@pytest.mark.slow
def test_train_prints_the_quality_report_and_saves_a_loadable_concept(
    tmp_path: Path, photos, backbone: Backbone, capsys: pytest.CaptureFixture[str]
) -> None:
    board = photos.board(tmp_path / "cats", ["cat", "cat_train_0", "chelsea"])
    weights = tmp_path / "weights.csv"
    weights.write_text("chelsea.jpg, upweight\ncat.jpg, 0.5\n")
    out = tmp_path / "cats.cav"
    code, stdout, _ = _run(
        capsys, "train", "--positive", str(board), "--weights", str(weights),
        "--name", "cats", "--out", str(out),
    )  # fmt: skip
    print(stdout)
    assert code == 0
    for line in ("cross-validated accuracy", "p-value", "stability", "mbs_sgd", "saved"):
        assert line in stdout
    concept = load_concept(out, backbone)
    assert concept.name == "cats"
    weights_by_file = {b.file: b.weight for b in concept.board}
    assert weights_by_file == {"cat.jpg": 0.5, "cat_train_0.jpg": 1.0, "chelsea.jpg": 4.0}
    hashes = {b.sha256 for b in concept.board}
    assert pixels_sha256(load_image(board / "chelsea.jpg")) in hashes
    assert concept.quality["p_value"] < 0.05
    assert concept.quality["n_pos"] == 3


@pytest.mark.slow
def test_an_unreliable_concept_is_not_saved_unless_forced(
    tmp_path: Path, photos, backbone: Backbone, capsys: pytest.CaptureFixture[str]
) -> None:
    board = photos.board(tmp_path / "mixed", ["dragonfly", "face", "coffee"])
    out = tmp_path / "mixed.cav"
    code, stdout, stderr = _run(
        capsys, "train", "--positive", str(board), "--name", "mixed", "--out", str(out)
    )
    assert code == 2
    assert "not saved" in stderr and "--force" in stderr
    assert not out.exists()
    code, stdout, _ = _run(
        capsys, "train", "--positive", str(board), "--name", "mixed", "--out", str(out), "--force"
    )
    assert code == 0
    assert "marked unreliable" in " ".join(stdout.split())
    concept = load_concept(out, backbone)
    assert concept.forced
    assert concept.warnings
    code, stdout, _ = _run(capsys, "score", "--concept", str(out), str(photos.path("cat")))
    assert "saved with --force" in " ".join(stdout.split())


def _write_image(path: Path, size: tuple[int, int], seed: int) -> None:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def _two_picture_board(tmp_path: Path, first: str = "a.png", second: str = "b.png") -> Path:
    board = tmp_path / "board"
    board.mkdir()
    _write_image(board / first, (64, 64), 0)
    _write_image(board / second, (64, 64), 1)
    return board


def _board_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    code, _, stderr = _run(
        capsys, "train", "--positive", str(tmp_path / "board"), "--name", "x",
        "--out", str(tmp_path / "x.cav"), *extra,
    )  # fmt: skip
    assert code == 2
    assert not (tmp_path / "x.cav").exists()
    return stderr


def test_an_empty_board_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "board").mkdir()
    assert "holds no images" in _board_problem(tmp_path, capsys)


def test_a_single_image_board_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "board").mkdir()
    _write_image(tmp_path / "board" / "only.png", (64, 64), 0)
    assert "at least 2 different pictures" in _board_problem(tmp_path, capsys)


def test_identical_images_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    board = _two_picture_board(tmp_path)
    shutil.copy(board / "a.png", board / "a copy.png")
    message = _board_problem(tmp_path, capsys)
    assert "is the same picture as" in message
    assert "a copy.png" in message and "/a.png" in message
    assert "b.png" not in message


def test_unreadable_and_tiny_images_are_all_named_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    board = _two_picture_board(tmp_path, "fine_1.png", "fine_2.png")
    _write_image(board / "thumb.png", (20, 64), 2)
    (board / "notes.jpg").write_text("not a picture")
    message = _board_problem(tmp_path, capsys)
    assert "thumb.png is 20x64 pixels: too small" in message
    assert "cannot read image" in message and "notes.jpg" in message


def test_weights_file_problems_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _two_picture_board(tmp_path)
    weights = tmp_path / "w.csv"
    weights.write_text("a.png, heavy\nb.png, -1\n")
    message = _board_problem(tmp_path, capsys, "--weights", str(weights))
    assert "line 1: weight 'heavy'" in message and "line 2" in message
    weights.write_text("a.png, upweight\nmissing.png, 2\n")
    assert "missing.png" in _board_problem(tmp_path, capsys, "--weights", str(weights))


def test_the_output_must_be_a_cav_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, stderr = _run(
        capsys, "train", "--positive", str(tmp_path), "--name", "x", "--out", str(tmp_path / "x")
    )
    assert code == 2
    assert "must end in .cav" in stderr


def test_score_ranks_images_best_first_with_focus_boxes(
    photos, capsys: pytest.CaptureFixture[str]
) -> None:
    names = ["dog_test_0", "hotdog_test_0", "cat_test_0", "sunflower"]
    code, stdout, _ = _run(
        capsys, "score", "--json", "--concept", str(DEMO_CONCEPT),
        *(str(photos.path(n)) for n in names),
    )  # fmt: skip
    assert code == 0
    rows = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    print("\n".join(f"{r['rank']}. {Path(r['image']).stem} {r['score']:.2f}" for r in rows))
    assert Path(rows[0]["image"]).stem == "cat_test_0"
    scores = [r["score"] for r in rows]
    assert scores == sorted(scores, reverse=True)
    for r in rows:
        x, y, w, h = r["focus_box"]
        assert x >= 0 and y >= 0 and x + w <= 1 + 1e-9 and y + h <= 1 + 1e-9
        assert r["focus_score"] >= r["score"]


def test_the_focus_box_finds_the_cat_in_a_collage(
    tmp_path: Path, photos, backbone: Backbone
) -> None:
    # A 2x2 collage: three unrelated photos and, bottom right, an unseen cat.
    tiles = [
        load_image(photos.path(n)) for n in ("potato_chips", "grass", "sunflower", "cat_test_0")
    ]
    side = 320
    canvas = np.zeros((2 * side, 2 * side, 3), np.uint8)
    for i, tile in enumerate(tiles):
        square = np.asarray(Image.fromarray(tile).resize((side, side)))
        row, col = divmod(i, 2)
        canvas[row * side : (row + 1) * side, col * side : (col + 1) * side] = square
    path = tmp_path / "collage.png"
    Image.fromarray(canvas).save(path)
    (result,) = score_images([path], load_concept(DEMO_CONCEPT, backbone), backbone)
    print(
        f"\ncollage: full frame {result.score:.2f}, "
        f"focus box {result.focus_box} {result.focus_score:.2f}"
    )
    x, y, w, h = result.focus_box
    cat_quadrant = (0.5, 0.5, 1.0, 1.0)
    overlap_w = max(0.0, min(x + w, cat_quadrant[2]) - max(x, cat_quadrant[0]))
    overlap_h = max(0.0, min(y + h, cat_quadrant[3]) - max(y, cat_quadrant[1]))
    assert overlap_w * overlap_h >= 0.5 * w * h  # most of the focus box is on the cat
    assert result.focus_score > result.score


def test_score_refuses_a_corrupt_concept_file(
    tmp_path: Path, photos, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.cav"
    broken.write_bytes(DEMO_CONCEPT.read_bytes()[:500])
    code, _, stderr = _run(capsys, "score", "--concept", str(broken), str(photos.path("cat")))
    assert code == 2
    assert "corrupt or truncated" in stderr and "senses eye train" in stderr


def test_score_skips_an_unreadable_image_and_ranks_the_rest(
    tmp_path: Path, photos, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    code, stdout, stderr = _run(
        capsys, "score", "--json", "--concept", str(DEMO_CONCEPT), str(bad),
        str(photos.path("cat_test_0")),
    )  # fmt: skip
    assert code == 1
    assert "skipped" in stderr and "broken.jpg" in stderr
    assert len([line for line in stdout.splitlines() if line.startswith("{")]) == 1


def test_the_demo_concept_file_is_a_msgpack_map_with_its_provenance() -> None:
    record = msgpack.unpackb(DEMO_CONCEPT.read_bytes())
    assert record["name"] == "cats"
    assert {b["file"] for b in record["board"]} == {"cat.jpg", "cat_train_0.jpg", "chelsea.jpg"}
    assert record["quality"]["method"] == "logistic"


def test_board_images_are_read_upright_and_in_rgb(tmp_path: Path) -> None:
    # A phone photo stored sideways with EXIF orientation 6 ("rotate 90° clockwise to view").
    sideways = Image.new("RGB", (80, 40), (200, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6
    sideways.save(tmp_path / "phone.jpg", exif=exif)
    assert load_image(tmp_path / "phone.jpg").shape == (80, 40, 3)
    Image.new("LA", (50, 60), (128, 255)).save(tmp_path / "grey.png")
    grey = load_image(tmp_path / "grey.png")
    assert grey.shape == (60, 50, 3) and grey.dtype == np.uint8
