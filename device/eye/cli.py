"""``senses eye ...``: the eye's own commands."""

from __future__ import annotations

import argparse
from typing import Any


def add_commands(commands: argparse._SubParsersAction[Any]) -> None:
    """Add ``senses eye ...`` to the ``senses`` parser."""
    parser = commands.add_parser("eye", help="the eye")
    parser.add_subparsers(dest="eye_command", required=True)
