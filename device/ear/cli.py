"""``senses ear ...``: the ear's own commands."""

from __future__ import annotations

import argparse
from typing import Any


def add_commands(commands: argparse._SubParsersAction[Any]) -> None:
    """Add ``senses ear ...`` to the ``senses`` parser."""
    parser = commands.add_parser("ear", help="the ear")
    parser.add_subparsers(dest="ear_command", required=True)
