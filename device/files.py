"""Writing a file so that a power cut leaves the old one or the new one, never half of it.

The station's state (the nose calibration, the food state, the minutes since food-in, the
CLI's requests and answers) lives on an SD card that loses power without warning: each is
written to a temporary file in the same folder, flushed to the card, then renamed over the
old one (a rename within a folder is atomic on POSIX file systems).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_text_atomically(path: Path, text: str, *, mode: int | None = None) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically; the folder is created if needed.

    ``mode``: the file's permissions (a temporary file is created 0600; the CLI's request and
    the station's answer must be readable by the other side, which may be another user)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomically(path: Path, data: Any, *, mode: int | None = None) -> None:
    """:func:`write_text_atomically` of ``data`` as indented JSON."""
    write_text_atomically(path, json.dumps(data, indent=2), mode=mode)
