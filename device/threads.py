"""Kernel names for the station's threads, so `top -H`, `ps -L` and /proc show sense-eye etc.

Python before 3.14 keeps thread names to itself; the kernel shows every thread as `senses`.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

KERNEL_NAME_BYTES = 15  # TASK_COMM_LEN is 16 with the NUL


def _name_in_kernel(frame: FrameType, event: str, arg: Any) -> None:
    sys.setprofile(None)  # one-shot: no profiling cost afterwards
    name = threading.current_thread().name.encode("ascii", "replace")[:KERNEL_NAME_BYTES]
    with contextlib.suppress(OSError):  # no /proc: not Linux
        Path(f"/proc/self/task/{threading.get_native_id()}/comm").write_bytes(name)


def name_os_threads() -> None:
    """From now on each new thread also takes its Python name in the kernel (Linux)."""
    threading.setprofile(_name_in_kernel)
