"""``senses eye ...``: train a concept from a mood board, score images against it, watch live.

senses eye train --positive DIR [--negative DIR] [--weights FILE] --name NAME --out FILE.cav
senses eye score --concept FILE.cav IMAGE...
senses eye watch --concept FILE.cav [--source ...]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from device.errors import ConceptQualityError, MoodBoardError
from device.eye.backbone import Backbone, Box, to_model_input
from device.eye.cav import AUTO, METHOD_CHOICES, MIN_CV_ACCURACY, QualityReport, train_concept
from device.eye.concept import Concept, load_concept
from device.eye.crops import mbs_crops
from device.eye.images import WEIGHT_WORDS, load_board, load_image
from device.eye.negatives import DEFAULT_BANK_PATH, load_bank
from device.eye.watch import add_watch_parser

_WEIGHTS_HELP = (
    "weights file: one 'filename, weight' line per image; weight is a number > 0 or "
    + ", ".join(f"{word} (= {value:g})" for word, value in WEIGHT_WORDS.items())
    + "; '#' starts a comment; unlisted images weigh 1"
)


def _report_table(report: QualityReport) -> Table:
    table = Table(title=f"concept {report.name!r}: quality", show_header=True)
    table.add_column("check")
    table.add_column("value", justify="right")
    table.add_column("means")
    table.add_row(
        "board",
        f"{report.n_positive} + {report.n_negative_user}",
        "positive + opposite pictures (each trained as 4 views: whole, mirrored, 80 % crop)",
    )
    table.add_row("random counter-examples", str(report.n_negative_bank), "rows from the bank")
    table.add_row(
        "recipe",
        report.recipe,
        (
            "chosen for this board: " + report.chosen_because
            if report.selection == AUTO
            else "forced with --method"
        ),
    )
    if report.fold_picks:
        picks = ", ".join(f"{label} x{n}" for label, n in report.fold_picks.items())
        table.add_row(
            "  picked in the outer folds",
            str(sum(report.fold_picks.values())),
            f"{picks} (the figures below are nested: each fold chose on its own pictures)",
        )
    table.add_row(
        "cross-validated accuracy",
        f"{report.cv_accuracy:.2f}",
        f"unseen board pictures vs random ones, balanced (chance 0.50, needs {MIN_CV_ACCURACY})",
    )
    table.add_row("cross-validated AUC", f"{report.cv_auc:.2f}", "ranking quality (1 = perfect)")
    table.add_row(
        "random concepts' AUC",
        f"{report.null_auc_mean:.2f} ± {report.null_auc_std:.2f}",
        "the same test on boards of unrelated random pictures",
    )
    table.add_row(
        "p-value",
        f"{report.p_value:.2g}",
        f"t-test vs random concepts (significant below 0.05; rank p {report.empirical_p:.2f})",
    )
    table.add_row(
        "stability",
        f"{report.stability:.2f}",
        "mean cosine of CAVs from resampled boards (1 = stable)",
    )
    table.add_row(
        "calibration",
        f"{report.calibration_midpoint:+.3f}",
        "the raw cosine that scores 0.5",
    )
    for result in report.comparison:
        table.add_row(
            f"  {result.label}",
            f"{result.cv_accuracy:.2f} / {result.cv_auc:.2f}",
            "cross-validated accuracy / AUC on the whole board"
            + (" (used)" if result.chosen else ""),
        )
    table.add_row("training time", f"{report.training_s:.1f} s", "on this machine")
    return table


def cmd_train(args: argparse.Namespace) -> int:
    console = Console()
    out = Path(args.out)
    if out.suffix != ".cav":
        raise MoodBoardError(f"--out {out}: a concept file must end in .cav")
    if not out.parent.is_dir():
        raise MoodBoardError(f"--out {out}: the folder {out.parent} does not exist")
    board = load_board(
        Path(args.positive),
        Path(args.negative) if args.negative else None,
        Path(args.weights) if args.weights else None,
    )
    backbone = Backbone(num_threads=args.threads)
    bank = load_bank(backbone, Path(args.bank))
    with console.status("training and testing the concept..."):
        result = train_concept(board, backbone, bank, args.name, method=args.method, seed=args.seed)
    console.print(_report_table(result.report))
    concept = result.concept
    reason = result.report.refused_because
    if reason is not None:
        if not args.force:
            raise ConceptQualityError(
                f"concept {args.name!r} not saved: {reason}. Add more (and more varied) "
                "pictures of the concept, or opposite pictures with --negative; "
                "--force saves it anyway, marked as unreliable"
            )
        concept = _forced(concept, reason)
        console.print(f"[yellow]warning:[/] {reason}; saved anyway (--force), marked unreliable")
    concept.save(out)
    console.print(f"saved concept {concept.name!r} to {out}")
    return 0


def _forced(concept: Concept, reason: str) -> Concept:
    return replace(concept, forced=True, warnings=(*concept.warnings, reason))


@dataclass(frozen=True)
class ImageScore:
    path: Path
    score: float
    raw: float
    focus_box: Box
    focus_score: float


def score_images(paths: list[Path], concept: Concept, backbone: Backbone) -> list[ImageScore]:
    """Each image's calibrated full-frame score and best crop (MBS's 14), best first."""
    boxes = mbs_crops()
    results = []
    for path in paths:
        pixels = load_image(path)
        batch = np.stack([to_model_input(pixels, box, backbone.input_size) for box in boxes])
        raw = concept.raw_scores(backbone.embed(batch))
        calibrated = concept.calibrated(raw)
        best = int(np.argmax(calibrated))
        results.append(
            ImageScore(
                path, float(calibrated[0]), float(raw[0]), boxes[best], float(calibrated[best])
            )
        )
    return sorted(results, key=lambda r: -r.score)


def cmd_score(args: argparse.Namespace) -> int:
    console = Console()
    backbone = Backbone(num_threads=args.threads)
    concept = load_concept(Path(args.concept), backbone)
    if concept.forced:
        console.print(
            f"[yellow]warning:[/] concept {concept.name!r} was saved with --force: "
            + "; ".join(concept.warnings)
        )
    paths, failed = [], []
    for name in args.images:
        try:
            load_image(Path(name))
            paths.append(Path(name))
        except MoodBoardError as e:
            failed.append(str(e))
    results = score_images(paths, concept, backbone)
    if args.json:
        for rank, r in enumerate(results, start=1):
            print(json.dumps(_as_json(rank, r)))
    else:
        table = Table(title=f"images ranked by concept {concept.name!r} (0-1, 0.5 = undecided)")
        for column in ("rank", "image", "score", "focus box (x, y, w, h)", "focus score"):
            if column == "image":
                table.add_column(column, overflow="fold")
            else:
                table.add_column(column, justify="right")
        for rank, r in enumerate(results, start=1):
            box = ", ".join(f"{v:.2f}" for v in r.focus_box)
            table.add_row(str(rank), str(r.path), f"{r.score:.2f}", box, f"{r.focus_score:.2f}")
        console.print(table)
    for message in failed:
        Console(stderr=True).print(f"[red]skipped:[/] {message}")
    return 1 if failed else 0


def _as_json(rank: int, r: ImageScore) -> dict[str, Any]:
    return {
        "rank": rank,
        "image": str(r.path),
        "score": round(r.score, 4),
        "raw": round(r.raw, 5),
        "focus_box": [round(v, 4) for v in r.focus_box],
        "focus_score": round(r.focus_score, 4),
    }


def add_commands(commands: argparse._SubParsersAction[Any]) -> None:
    """Add ``senses eye ...`` to the ``senses`` parser."""
    parser = commands.add_parser("eye", help="the camera: concepts from mood boards")
    eye_subcommands = parser.add_subparsers(dest="eye_command", required=True)

    train = eye_subcommands.add_parser(
        "train",
        help="train a concept from a mood board and print its quality report",
        description=(
            "Train a concept (CAV) from pictures of it, test whether the model can really see "
            "it (cross-validation, significance against random concepts, stability) and save "
            "it as a .cav file. A concept the model cannot tell from random pictures is not "
            "saved unless --force."
        ),
    )
    train.add_argument("--positive", required=True, help="folder of pictures of the concept")
    train.add_argument("--negative", help="folder of opposite pictures (optional)")
    train.add_argument("--weights", help=_WEIGHTS_HELP)
    train.add_argument("--name", required=True, help="the concept's name")
    train.add_argument("--out", required=True, help="the .cav file to write")
    train.add_argument("--force", action="store_true", help="save even an unreliable concept")
    train.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    train.add_argument(
        "--method",
        choices=METHOD_CHOICES,
        default=AUTO,
        help=(
            "linear model: auto (default) picks logistic or mbs_sgd (Mood Board Search's) and "
            "their regularisation per board by nested cross-validation; a name forces it"
        ),
    )
    train.add_argument("--bank", default=str(DEFAULT_BANK_PATH), help=argparse.SUPPRESS)
    train.add_argument("--threads", type=int, default=1, help="interpreter threads")
    train.set_defaults(handler=cmd_train)

    score = eye_subcommands.add_parser(
        "score", help="rank images by a concept, with each image's focus box"
    )
    score.add_argument("--concept", required=True, help="a .cav file")
    score.add_argument("images", nargs="+", help="image files")
    score.add_argument("--json", action="store_true", help="one JSON object a line")
    score.add_argument("--threads", type=int, default=1, help="interpreter threads")
    score.set_defaults(handler=cmd_score)

    add_watch_parser(eye_subcommands)
