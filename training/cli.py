"""``senses-train``: train the station's models.

Subcommands:

* ``food``: the food-quality classifier of the nose (``training/food``), written to
  ``models/food_quality/``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace
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
        help="food-quality classifier (leave-one-run-out evaluation, int8 TFLite export)",
        description="Evaluate leave-one-run-out on the beef runs, then train on all of them "
        "and write model.tflite, card.json, report.md and LICENSE-data.md.",
    )
    food.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_FOOD_DATA,
        help="folder with TS1/TS2/TS3/TS5.csv (default training/data/beef_wijaya)",
    )
    food.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_FOOD_OUT,
        help=f"model folder (default {DEFAULT_FOOD_OUT})",
    )
    food.add_argument("--epochs", type=int, default=None, help="training epochs (default 40)")
    food.add_argument(
        "--folds",
        choices=("all", "first"),
        default="all",
        help="hold out every run in turn, or only the first (quick check)",
    )
    food.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    food.add_argument(
        "--search",
        action="store_true",
        help="run the declared variant search instead (leave-one-run-out only; writes "
        "search.md into --out, no model)",
    )
    food.add_argument("--quiet", action="store_true", help="no progress bar")
    add_birds_command(sub)
    return parser


def _food(args: argparse.Namespace) -> int:
    from training.food import train

    config = replace(train.DEFAULT_CONFIG, seed=args.seed)
    if args.epochs is not None:
        if args.epochs < 1:
            raise SystemExit("senses-train food: --epochs must be ≥ 1")
        config = replace(config, epochs=args.epochs)
    if args.search:
        results = train.search(
            args.data, seed=config.seed, epochs=config.epochs, progress=not args.quiet
        )
        text = train.search_markdown(results)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "search.md").write_text(text, encoding="utf-8")
        print(text)
        return 0
    report = train.train_food(
        args.data,
        args.out,
        config=config,
        folds=args.folds,
        with_random_split=args.folds == "all",
        progress=not args.quiet,
    )
    print(train.summary_table(report))
    if report.random_split is not None:
        print(
            f"WARNING (leakage): a random 80/20 split of minutes scores "
            f"{report.random_split.accuracy_4class:.3f} 4-class / "
            f"{report.random_split.accuracy_fresh:.3f} fresh-or-not. Neighbouring minutes of "
            "one run are near-copies: do not quote that number."
        )
    print(
        f"{report.parameters} parameters, model.tflite {report.model_bytes} bytes, "
        f"{report.wall_time_s:.0f} s; written to {args.out}/"
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
