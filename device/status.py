"""The station's health summary on disk, for ``senses status`` and scripts.

``senses run`` rewrites ``<data_dir>/status.json`` every few seconds (write to a temporary
file, fsync-free rename: a reader never sees half a file). ``senses status`` reads it; a file
older than :data:`STALE_AFTER_S` means the daemon is not running (or is stuck).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from device.errors import StatusUnavailableError

STATUS_FILE = "status.json"
WRITE_EVERY_S = 5.0
STALE_AFTER_S = 30.0


def write_status(path: Path, summary: list[dict[str, Any]], *, extra: dict[str, Any]) -> None:
    record = {"written_at": time.time(), "pid": os.getpid(), **extra, "senses": summary}
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(record, indent=1), encoding="utf-8")
    temporary.replace(path)


def read_status(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise StatusUnavailableError(
            f"no status at {path}: the daemon is not running with this data folder "
            "(start it with `senses run`, or pass the --config it runs with)"
        ) from e
    except (OSError, json.JSONDecodeError) as e:
        raise StatusUnavailableError(f"cannot read {path}: {e}") from e
    if not isinstance(record, dict) or not isinstance(record.get("senses"), list):
        raise StatusUnavailableError(f"{path} is not a Senses status file")
    return record


def is_stale(record: dict[str, Any], now: float | None = None) -> bool:
    written = record.get("written_at")
    now = time.time() if now is None else now
    return not isinstance(written, (int, float)) or now - written > STALE_AFTER_S


class StatusWriter:
    """Calls :func:`write_status` from the station's main loop at most every few seconds."""

    def __init__(
        self,
        path: Path,
        summary: Callable[[], list[dict[str, Any]]],
        *,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.path = path
        self.summary = summary
        self.extra = extra or {}
        self._last = 0.0

    def maybe_write(self) -> None:
        now = time.monotonic()
        if now - self._last < WRITE_EVERY_S:
            return
        self._last = now
        # The disk may be full: the station keeps running and the status is only stale.
        with contextlib.suppress(OSError):
            write_status(self.path, self.summary(), extra=self.extra)
