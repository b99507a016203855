"""Abstract mood boards (light, texture, colour, composition) to compare the CAV recipes.

Mood Board Search's users make boards of visual qualities, not object classes. Its own sample
board is not available here, so these boards are made in its spirit from licence-clean
pictures only:

* the shipped photographs (``hardware/sim/images``: Open Images CC BY 2.0, scikit-image CC0 /
  public domain; coffee, rocket and astronaut left out because the negative bank holds views
  of them), re-lit or re-textured: *warm light* vs cool light, *grainy* vs clean, *high
  contrast* vs washed out, *black and white* vs vivid colour. The concept's pictures and
  the opposite pictures on a board are different photographs, so a recipe cannot learn "this
  photo"; held out are both versions of six other photographs;
* generated pictures (numpy/OpenCV, seeded; none is in the bank, whose generators and seed
  differ): *pastel* vs deep colours, *symmetry* vs none, *diagonal composition* vs
  horizontal/vertical, *round shapes* vs angular ones (Mood Board Search's "roundness").

Every board has 8 concept pictures and 8 opposite ones (Mood Board Search's sample board has
8 and 8); 6 + 6 more are held out of training. *Random boards* draw both sides at random
from all those pictures: a procedure that accepts them calls noise a concept.

For each board and recipe (``auto`` = chosen per board by nested cross-validation,
``logistic``, ``mbs_sgd``) :func:`evaluate` reports the held-out ranking AUC (held-out
concept pictures vs held-out opposites, by cosine with the trained CAV), the nested
cross-validated accuracy/AUC the report prints, and whether the refusal gate refused it.

    python -m bench.abstract_boards [--random-boards N] [--json]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final

import cv2
import numpy as np
import numpy.typing as npt

from device.config import PROJECT_ROOT
from device.eye.backbone import Backbone, to_model_input
from device.eye.cav import METHOD_CHOICES, MethodChoice, train_from_pictures
from device.eye.images import BoardPicture, load_image
from device.eye.negatives import NegativeBank, load_bank

Picture = npt.NDArray[np.uint8]
SIDE: Final = 256
TRAIN_PER_SIDE: Final = 8
HELD_OUT_PER_SIDE: Final = 6
SEED: Final = 20261207
PHOTO_DIR: Final = PROJECT_ROOT / "hardware" / "sim" / "images"
#: In the negative bank (views of them), so not used here.
IN_BANK: Final = frozenset({"coffee", "rocket", "astronaut"})


def photographs() -> list[Picture]:
    """The shipped photographs not in the bank, centre-cropped square at :data:`SIDE`."""
    paths = sorted(p for p in PHOTO_DIR.glob("*.jpg") if p.stem not in IN_BANK)
    return [to_model_input(load_image(p), size=SIDE) for p in paths]


# --- re-lighting and re-texturing photographs ---------------------------------------------


def _clip(x: npt.NDArray[np.floating[Any]]) -> Picture:
    return np.asarray(np.clip(x, 0, 255), np.uint8)


def warm(p: Picture, rng: np.random.Generator) -> Picture:
    gain = np.array([1.2, 1.0, 0.7]) * rng.uniform(0.95, 1.05, 3)
    return _clip(p * gain + np.array([25, 10, 0]))


def cool(p: Picture, rng: np.random.Generator) -> Picture:
    gain = np.array([0.7, 0.95, 1.2]) * rng.uniform(0.95, 1.05, 3)
    return _clip(p * gain + np.array([0, 5, 25]))


def grainy(p: Picture, rng: np.random.Generator) -> Picture:
    grain = rng.normal(0, rng.uniform(30, 45), p.shape[:2])[..., None]
    return _clip(p.astype(np.float32) + grain)


def clean(p: Picture, rng: np.random.Generator) -> Picture:
    return np.asarray(cv2.GaussianBlur(p, (3, 3), 0.8), np.uint8)


def high_contrast(p: Picture, rng: np.random.Generator) -> Picture:
    mean = p.mean()
    return _clip((p.astype(np.float32) - mean) * rng.uniform(2.0, 2.6) + mean)


def washed_out(p: Picture, rng: np.random.Generator) -> Picture:
    factor = rng.uniform(0.3, 0.45)
    return _clip((p.astype(np.float32) - 128) * factor + 128 + rng.uniform(20, 50))


def black_and_white(p: Picture, rng: np.random.Generator) -> Picture:
    grey = cv2.cvtColor(p, cv2.COLOR_RGB2GRAY)
    return np.repeat(grey[..., None], 3, axis=2)


def vivid(p: Picture, rng: np.random.Generator) -> Picture:
    hsv = cv2.cvtColor(p, cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(1.8, 2.4) + 30, 0, 255)
    return np.asarray(cv2.cvtColor(_clip(hsv), cv2.COLOR_HSV2RGB), np.uint8)


# --- generated compositions ----------------------------------------------------------------


def _hsv_colour(
    rng: np.random.Generator, sat: tuple[float, float], val: tuple[float, float]
) -> tuple[float, ...]:
    hue, saturation, value = rng.uniform(0, 180), rng.uniform(*sat) * 255, rng.uniform(*val) * 255
    hsv = np.array([[[hue, saturation, value]]]).astype(np.uint8)
    return tuple(float(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])


def _canvas(rng: np.random.Generator, colour: Callable[[], tuple[float, ...]]) -> Picture:
    a, b = np.array(colour()), np.array(colour())
    t = np.linspace(0, 1, SIDE, dtype=np.float32)
    t = np.broadcast_to(t[:, None] if rng.random() < 0.5 else t[None, :], (SIDE, SIDE))
    return _clip(a + (b - a) * t[..., None])


def _shapes(
    rng: np.random.Generator,
    colour: Callable[[], tuple[float, ...]],
    kind: str = "mixed",
    count: tuple[int, int] = (4, 10),
) -> Picture:
    canvas = np.ascontiguousarray(_canvas(rng, colour))
    for _ in range(int(rng.integers(*count))):
        centre = rng.integers(20, SIDE - 20, 2)
        size = int(rng.integers(15, SIDE // 4))
        shape = kind if kind != "mixed" else ("round", "angular")[int(rng.integers(2))]
        if shape == "round":
            axes = (size, int(size * rng.uniform(0.6, 1.0)))
            cv2.ellipse(canvas, tuple(int(c) for c in centre), axes, rng.uniform(0, 180),
                        0, 360, colour(), -1, cv2.LINE_AA)  # fmt: skip
        else:
            corners = int(rng.integers(3, 5))
            angles = np.sort(rng.uniform(0, 2 * np.pi, corners))
            points = centre + size * np.stack([np.cos(angles), np.sin(angles)], axis=1)
            cv2.fillPoly(canvas, [points.astype(np.int32)], colour(), cv2.LINE_AA)
    return canvas


def _any_colour(rng: np.random.Generator) -> Callable[[], tuple[float, ...]]:
    return lambda: _hsv_colour(rng, (0.2, 1.0), (0.3, 1.0))


def pastel(rng: np.random.Generator) -> Picture:
    return _shapes(rng, lambda: _hsv_colour(rng, (0.15, 0.35), (0.88, 1.0)))


def deep(rng: np.random.Generator) -> Picture:
    return _shapes(rng, lambda: _hsv_colour(rng, (0.8, 1.0), (0.25, 0.6)))


def symmetric(rng: np.random.Generator) -> Picture:
    half = _shapes(rng, _any_colour(rng))[:, : SIDE // 2]
    return np.ascontiguousarray(np.concatenate([half, half[:, ::-1]], axis=1))


def asymmetric(rng: np.random.Generator) -> Picture:
    return _shapes(rng, _any_colour(rng))


def _bands(rng: np.random.Generator, angles: Sequence[float]) -> Picture:
    colour = _any_colour(rng)
    canvas = np.ascontiguousarray(_canvas(rng, colour))
    for _ in range(int(rng.integers(3, 7))):
        angle = np.deg2rad(float(rng.choice(angles)) + rng.uniform(-6, 6))
        direction = np.array([np.cos(angle), np.sin(angle)])
        centre = rng.uniform(0, SIDE, 2)
        a, b = centre - 2 * SIDE * direction, centre + 2 * SIDE * direction
        cv2.line(canvas, tuple(int(v) for v in a), tuple(int(v) for v in b), colour(),
                 int(rng.integers(4, 28)), cv2.LINE_AA)  # fmt: skip
    return canvas


def diagonal(rng: np.random.Generator) -> Picture:
    return _bands(rng, (45.0, 135.0))


def level(rng: np.random.Generator) -> Picture:
    return _bands(rng, (0.0, 90.0))


def round_shapes(rng: np.random.Generator) -> Picture:
    return _shapes(rng, _any_colour(rng), "round", (3, 8))


def angular_shapes(rng: np.random.Generator) -> Picture:
    return _shapes(rng, _any_colour(rng), "angular", (3, 8))


PhotoLook = Callable[[Picture, np.random.Generator], Picture]
Generator = Callable[[np.random.Generator], Picture]
PHOTO_BOARDS: Final[dict[str, tuple[PhotoLook, PhotoLook]]] = {
    "warm light": (warm, cool),
    "grainy texture": (grainy, clean),
    "high contrast": (high_contrast, washed_out),
    "black and white": (black_and_white, vivid),
}
GENERATED_BOARDS: Final[dict[str, tuple[Generator, Generator]]] = {
    "pastel": (pastel, deep),
    "symmetry": (symmetric, asymmetric),
    "diagonal composition": (diagonal, level),
    "round shapes": (round_shapes, angular_shapes),
}


@dataclass(frozen=True)
class Board:
    """A board's training pictures and its held-out pictures (concept and opposite)."""

    name: str
    concept: list[Picture]
    opposite: list[Picture]
    held_out_concept: list[Picture]
    held_out_opposite: list[Picture]
    random: bool = False


def concept_boards(seed: int = SEED) -> list[Board]:
    photos = photographs()
    n_train = 2 * TRAIN_PER_SIDE
    assert len(photos) >= n_train + HELD_OUT_PER_SIDE, "too few shipped photographs"
    boards = []
    for k, (name, (look, opposite)) in enumerate(PHOTO_BOARDS.items()):
        rng = np.random.default_rng(seed + k)
        order = rng.permutation(len(photos))
        train, held = order[:n_train], order[n_train : n_train + HELD_OUT_PER_SIDE]
        boards.append(
            Board(
                name,
                [look(photos[i], rng) for i in train[:TRAIN_PER_SIDE]],
                [opposite(photos[i], rng) for i in train[TRAIN_PER_SIDE:]],
                [look(photos[i], rng) for i in held],
                [opposite(photos[i], rng) for i in held],
            )
        )
    for k, (name, (make, make_opposite)) in enumerate(GENERATED_BOARDS.items()):
        rng = np.random.default_rng(seed + 100 + k)
        n = TRAIN_PER_SIDE + HELD_OUT_PER_SIDE
        concept = [make(rng) for _ in range(n)]
        opposite_pictures = [make_opposite(rng) for _ in range(n)]
        boards.append(
            Board(
                name,
                concept[:TRAIN_PER_SIDE],
                opposite_pictures[:TRAIN_PER_SIDE],
                concept[TRAIN_PER_SIDE:],
                opposite_pictures[TRAIN_PER_SIDE:],
            )
        )
    return boards


def random_boards(boards: Sequence[Board], count: int, seed: int = SEED) -> list[Board]:
    """Boards whose two sides are drawn at random from every picture of ``boards``."""
    pool = [p for b in boards for p in (*b.concept, *b.opposite)]
    rng = np.random.default_rng(seed + 1000)
    result = []
    for k in range(count):
        picked = rng.choice(len(pool), 2 * TRAIN_PER_SIDE, replace=False)
        sides = [pool[i] for i in picked]
        result.append(
            Board(f"random {k + 1}", sides[:TRAIN_PER_SIDE], sides[TRAIN_PER_SIDE:], [], [], True)
        )
    return result


@dataclass(frozen=True)
class Outcome:
    board: str
    random: bool
    method: str
    recipe: str
    held_out_auc: float | None
    cv_accuracy: float
    cv_auc: float
    p_value: float
    refused: bool
    training_s: float


def _auc(positive: npt.NDArray[np.float32], negative: npt.NDArray[np.float32]) -> float:
    wins = (positive[:, None] > negative[None, :]).mean()
    ties = (positive[:, None] == negative[None, :]).mean()
    return float(wins + 0.5 * ties)


def evaluate_board(
    board: Board, method: MethodChoice, backbone: Backbone, bank: NegativeBank
) -> Outcome:
    pictures = [
        *(BoardPicture(p, "positive", name=f"concept-{i}") for i, p in enumerate(board.concept)),
        *(BoardPicture(p, "negative", name=f"opposite-{i}") for i, p in enumerate(board.opposite)),
    ]
    result = train_from_pictures(pictures, board.name, backbone, bank, method=method)
    held_out_auc = None
    if board.held_out_concept:
        concept = result.concept
        embed = backbone.embed
        size = backbone.input_size
        yes = concept.raw_scores(
            embed(np.stack([to_model_input(p, size=size) for p in board.held_out_concept]))
        )
        no = concept.raw_scores(
            embed(np.stack([to_model_input(p, size=size) for p in board.held_out_opposite]))
        )
        held_out_auc = _auc(yes, no)
    report = result.report
    return Outcome(
        board.name,
        board.random,
        method,
        report.recipe,
        held_out_auc,
        report.cv_accuracy,
        report.cv_auc,
        report.p_value,
        not report.accepted,
        report.training_s,
    )


def evaluate(
    random_count: int = 8,
    methods: Sequence[MethodChoice] = METHOD_CHOICES,
    backbone: Backbone | None = None,
    bank: NegativeBank | None = None,
) -> list[Outcome]:
    backbone = backbone or Backbone()
    bank = bank or load_bank(backbone)
    boards = concept_boards()
    boards += random_boards(boards, random_count)
    return [evaluate_board(b, m, backbone, bank) for b in boards for m in methods]


def summary(outcomes: Sequence[Outcome]) -> dict[str, dict[str, float]]:
    """Per method: mean held-out AUC, refusal rate of real and of random boards, train time."""
    result = {}
    for method in dict.fromkeys(o.method for o in outcomes):
        mine = [o for o in outcomes if o.method == method]
        real = [o for o in mine if not o.random]
        noise = [o for o in mine if o.random]
        result[method] = {
            "held_out_auc_mean": float(np.mean([o.held_out_auc for o in real])),
            "held_out_auc_min": float(np.min([o.held_out_auc for o in real])),
            "refused_real": float(np.mean([o.refused for o in real])),
            "refused_random": float(np.mean([o.refused for o in noise])) if noise else float("nan"),
            "training_s_mean": float(np.mean([o.training_s for o in mine])),
        }
    return result


def table(outcomes: Sequence[Outcome]) -> str:
    """The per-board table and the summary, as markdown."""
    methods = list(dict.fromkeys(o.method for o in outcomes))
    boards = list(dict.fromkeys(o.board for o in outcomes))
    cell = {(o.board, o.method): o for o in outcomes}
    lines = [
        "| board | " + " | ".join(methods) + " |",
        "|---|" + "---|" * len(methods),
    ]
    for name in boards:
        cells = []
        for m in methods:
            o = cell[(name, m)]
            auc = f"{o.held_out_auc:.2f}" if o.held_out_auc is not None else "–"
            verdict = "refused" if o.refused else "accepted"
            chosen = f" [{o.recipe}]" if m == "auto" else ""
            cells.append(
                f"held-out AUC {auc}, cv {o.cv_accuracy:.2f}/{o.cv_auc:.2f}, "
                f"p {o.p_value:.2g}, {verdict}{chosen}"
            )
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| recipe | held-out AUC mean (min) | refused: real boards | refused: random boards "
        "| training s (mean) |",
        "|---|---|---|---|---|",
    ]
    for method, figures in summary(outcomes).items():
        lines.append(
            f"| {method} | {figures['held_out_auc_mean']:.3f} ({figures['held_out_auc_min']:.2f}) "
            f"| {figures['refused_real']:.2f} | {figures['refused_random']:.2f} "
            f"| {figures['training_s_mean']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench.abstract_boards", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--random-boards", type=int, default=8)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    outcomes = evaluate(args.random_boards)
    if args.json:
        print(json.dumps({"outcomes": [asdict(o) for o in outcomes], "summary": summary(outcomes)}))
    else:
        print(table(outcomes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
