"""The station's own state: its configuration, free disk where it keeps data, its event store."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from device.config import Config
from device.doctor.findings import Finding, Status, finding_from_error
from device.errors import SensesError
from device.store import EventStore


def check_config(config: Config) -> list[Finding]:
    """The config loaded (the CLI reports one that does not); say which senses it enables."""
    enabled = [
        name
        for name, on in (
            ("nose", config.nose.enabled),
            ("eye", config.eye.enabled),
            ("ear", config.ear.enabled),
            ("link", config.link.enabled),
        )
        if on
    ]
    detail = f"valid; enabled: {', '.join(enabled) or 'nothing'}"
    if not enabled:
        return [
            Finding(
                "config",
                Status.WARN,
                detail,
                "set enabled = true in [nose], [eye], [ear] or [link]: the station does nothing",
            )
        ]
    return [Finding("config", Status.OK, detail)]


DISK_FAIL_BELOW_MB = 200.0
"""Below this a day of clips and snapshots (budgets of hundreds of MB by default) and SQLite's
WAL can fill the disk; a full disk is how SD-card stations lose their data."""
DISK_WARN_BELOW_MB = 1024.0


class FileSystemStats(Protocol):
    """The part of :func:`os.statvfs`'s result the disk check reads."""

    @property
    def f_bavail(self) -> int: ...

    @property
    def f_frsize(self) -> int: ...


def check_disk(
    config: Config, *, statvfs: Callable[[Path], FileSystemStats] = os.statvfs
) -> list[Finding]:
    """Free space where the station keeps its data, and the event store's integrity."""
    data_dir = config.station.data_dir
    existing = _nearest_existing(data_dir)
    stats = statvfs(existing)
    free_mb = stats.f_bavail * stats.f_frsize / 1e6
    where = f"{free_mb:,.0f} MB free for {data_dir}"
    if free_mb < DISK_FAIL_BELOW_MB:
        disk = Finding(
            "disk",
            Status.FAIL,
            f"only {where} (below {DISK_FAIL_BELOW_MB:.0f} MB): the store and clips will fail",
            "free space (old clips: ear.clip_budget_mb, snapshots: eye.snapshot_budget_mb, "
            "`journalctl --vacuum-size=100M`), or move station.data_dir to a bigger disk",
        )
    elif free_mb < DISK_WARN_BELOW_MB:
        disk = Finding(
            "disk",
            Status.WARN,
            f"only {where} (below {DISK_WARN_BELOW_MB:.0f} MB)",
            "free some space soon, or lower ear.clip_budget_mb and store.retention_days",
        )
    else:
        disk = Finding("disk", Status.OK, where)
    return [disk, _check_store(config.store_path, existing)]


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path("/")


def _check_store(path: Path, existing: Path) -> Finding:
    name = "store"
    if not path.exists():
        if os.access(existing, os.W_OK):
            return Finding(name, Status.OK, f"no store yet; {path} is created on the first run")
        return Finding(
            name,
            Status.FAIL,
            f"no store yet, and {existing} is not writable by this user",
            "make station.data_dir writable by the station's user, or set another data_dir",
        )
    try:
        EventStore(path).close()
    except SensesError as e:
        return finding_from_error(name, e)
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            results = [str(row[0]) for row in conn.execute("PRAGMA quick_check").fetchall()]
    except sqlite3.Error as e:
        results = [str(e)]
    if results != ["ok"]:
        return Finding(
            name,
            Status.FAIL,
            f"{path} fails SQLite's quick_check: {'; '.join(results[:3])}",
            f"stop the station, move the file aside (`mv {path} {path}.broken`) and start it "
            "again: it starts a new, empty store",
        )
    return Finding(name, Status.OK, f"{path} opens; quick_check ok")
