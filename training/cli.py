"""``senses-train``: train the station's models.

Subcommands:

* ``food``: the food-quality classifier of the nose (``training/food``), written to
  ``models/food_quality/``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from device.errors import SensesError
from training.birds.cli import add_command as add_birds_command

# The data ship inside the training package (an editable install), so any working folder works.
DEFAULT_FOOD_DATA = Path(__file__).resolve().parent / "data" / "beef_wijaya"
DEFAULT_FOOD_OUT = Path("models/food_quality")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="senses-train", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    food = sub.add_parser(
        "food",
        help="food-quality model (model families compared by nested leave-one-run-out)",
        description="Compare model families by nested leave-one-run-out (trees, MLP, a causal "
        "convolution), then train the winner on all runs and write model.tflite, card.json, "
        "report.md, report.json, plots and LICENSE-data.md.",
    )
    food.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_FOOD_DATA,
        help="folder with TS1/TS2/TS3/TS5.csv (default training/data/beef_wijaya)",
    )
    food.add_argument(
        "--files",
        type=Path,
        nargs="+",
        default=[],
        help="train on these labelled recordings instead (`senses nose record` CSVs with "
        "class and TVC columns; one run each, at least two)",
    )
    food.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_FOOD_OUT,
        help=f"model folder (default {DEFAULT_FOOD_OUT})",
    )
    food.add_argument(
        "--folds",
        choices=("all", "first"),
        default="all",
        help="hold out every run in turn, or only the first (quick pipeline check: one "
        "fixed candidate, no comparison)",
    )
    food.add_argument("--quiet", action="store_true", help="no progress bar")
    add_birds_command(sub)
    return parser


def _food(args: argparse.Namespace) -> int:
    from training.food import train
    from training.food.report import targets

    if len(args.files) == 1:
        raise SystemExit(
            "senses-train food: --files needs at least two recordings (one is held out)"
        )
    report = train.train_food(
        args.data, args.out, folds=args.folds, files=args.files, progress=not args.quiet
    )
    print(f"shipped: {report.shipped.name}, fresh threshold {report.shipped_threshold:g}")
    print(train.summary_table(report))
    print()
    for t in targets(report):
        verdict = "met" if t["met"] else f"MISSED by {t['missed_by']:g}"
        nested = "" if t["nested"] is None else f", nested {t['nested']:g}"
        print(f"  {t['target']}: {t['measured']:g}{nested} (goal {t['goal']}) {verdict}")
    print(
        f"{report.size_note}, model.tflite {report.model_bytes} bytes, "
        f"{report.wall_time_s:.0f} s; written to {args.out}/ (report.md, report.json)"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "food":
            return _food(args)
        if hasattr(args, "handler"):
            return int(args.handler(args))
    except SensesError as e:
        print(f"senses-train {args.command}: {e}", file=sys.stderr)
        return 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
