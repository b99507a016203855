"""``senses-train birds``: the species head of the ear."""

from __future__ import annotations

import argparse
from typing import Any


def add_command(commands: argparse._SubParsersAction[Any]) -> None:
    """Add ``senses-train birds`` to the ``senses-train`` parser (handler in ``args.handler``)."""
    commands.add_parser("birds", help="bird-species head on YAMNet embeddings")
