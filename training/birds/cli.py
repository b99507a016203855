"""``senses-train birds``: the species head of the ear."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

from training.birds.dataset import DEFAULT_DATA_DIR

DEFAULT_OUT = Path("models/birds")


def add_command(commands: argparse._SubParsersAction[Any]) -> None:
    """Add ``senses-train birds`` to the ``senses-train`` parser (handler in ``args.handler``)."""
    parser = commands.add_parser(
        "birds",
        help="bird-species head on YAMNet embeddings",
        description="Cross-validate by recording (never train and test on one file), then "
        "train on all recordings and write model.tflite, card.json, report.md and report.json.",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help="folder with the recordings of training/birds/dataset.py MANIFEST "
        "(default training/data/birds; the shared data folder's audio/ works too)",
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"model folder (default {DEFAULT_OUT})"
    )
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default 30)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="one held-out fold and less augmentation: a check that the pipeline runs, "
        "not the shipped figures",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from training.birds.augment import QUICK_AUGMENT, AugmentConfig
    from training.birds.head import HeadConfig
    from training.birds.report import summary_table
    from training.birds.train import TrainSettings, train_birds

    head = HeadConfig(seed=args.seed)
    if args.epochs is not None:
        if args.epochs < 1:
            raise SystemExit("senses-train birds: --epochs must be ≥ 1")
        head = replace(head, epochs=args.epochs)
    settings = TrainSettings(
        head=head, augment=QUICK_AUGMENT if args.quick else AugmentConfig(), quick=args.quick
    )
    outcome = train_birds(args.data, args.out, settings, progress=not args.quiet)
    metrics = outcome.metrics
    print(summary_table(metrics))
    timings = ", ".join(f"{k} {v:.0f} s" for k, v in outcome.timings_s.items())
    print(
        f"{metrics['parameters']} parameters, model.tflite {metrics['model_bytes']} bytes; "
        f"{outcome.wall_time_s:.0f} s ({timings}); written to {args.out}/"
    )
    if args.quick:
        print("QUICK run: one fold and reduced augmentation; do not ship these figures.")
    return 0
