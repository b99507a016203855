"""What a check reports: a :class:`Finding` per thing looked at, with a status and a fix."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass


class Status(enum.StrEnum):
    """How a finding affects the station (and ``senses doctor``'s exit code)."""

    OK = "ok"
    WARN = "warn"
    """Works, but not as it should on a station in service (emulated, stale calibration)."""
    FAIL = "fail"
    """This part of the station cannot work until the fix is applied."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing the doctor looked at: ``name`` (e.g. "i2c 0x48"), what it found, how to fix."""

    name: str
    status: Status
    detail: str
    fix: str = ""

    def to_dict(self) -> dict[str, str]:
        return {
            "check": self.name,
            "status": self.status.value,
            "detail": self.detail,
            "fix": self.fix,
        }


def finding_from_error(name: str, error: BaseException, status: Status = Status.FAIL) -> Finding:
    """A finding from one of the project's errors, whose messages read "what: how to fix".

    The message is split at its first ": ", "; " or ". " outside parentheses and backquotes,
    so the table shows the fix in its own column; a message without one is all detail.
    """
    message = str(error)
    depth = 0
    quoted = False
    for i, char in enumerate(message):
        if char == "`":
            quoted = not quoted
        elif char in "([":
            depth += 1
        elif char in ")]":
            depth = max(0, depth - 1)
        elif not quoted and depth == 0 and message[i : i + 2] in (": ", "; ", ". "):
            return Finding(name, status, message[:i], message[i + 2 :].strip())
    return Finding(name, status, message)


Check = tuple[str, Callable[[], list[Finding]], float]
"""(name, function, deadline in seconds): one entry of ``senses doctor``'s list."""
