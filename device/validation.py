"""Turning pydantic's validation errors into lines a person can act on.

Shared by the config file and model cards: each problem on one line, with the dotted path of
the offending key (``nose.sensors[2].channel``), what is wrong, and what was given.
"""

from __future__ import annotations

from pydantic import ValidationError

MAX_SHOWN_INPUT_CHARS = 60


def dotted_path(loc: tuple[int | str, ...]) -> str:
    """``('nose', 'sensors', 2, 'channel')`` -> ``nose.sensors[2].channel``."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else part
    return path or "(top level)"


def describe_validation_error(error: ValidationError) -> str:
    lines = []
    for problem in error.errors(include_url=False):
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden":
            message = "unknown key, not permitted here (check its spelling and its section)"
        line = f"  - {dotted_path(tuple(problem['loc']))}: {message}"
        given = problem.get("input")
        already_shown = "got " in message
        if (
            problem["type"] not in ("missing", "json_invalid")
            and not isinstance(given, dict | list)
            and not already_shown
        ):
            shown = repr(given)
            if len(shown) > MAX_SHOWN_INPUT_CHARS:
                shown = shown[:MAX_SHOWN_INPUT_CHARS] + "..."
            line += f" (got {shown})"
        lines.append(line)
    return "\n".join(lines)
