"""Structured logs: one JSON object a line when the station runs as a service.

journald (or any collector) then gets fields instead of prose: ``ts``, ``level``, ``logger``,
``message``, the thread (which sense) and, for errors, the exception.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Literal

LogFormat = Literal["text", "json"]


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": round(record.created, 3),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + "Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "thread": record.threadName,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class _CurrentStderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is now, not what it was when logging was set up
    (a test runner swaps and closes it; a late log line from another thread must not fail)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass


def configure_logging(*, verbose: bool, log_format: LogFormat | None = None) -> None:
    """Text on a terminal, JSON lines otherwise (a service), unless ``log_format`` says."""
    chosen = log_format or ("text" if sys.stderr.isatty() else "json")
    handler = _CurrentStderrHandler()
    if chosen == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(
        logging.DEBUG if verbose else logging.INFO if chosen == "json" else logging.WARNING
    )
