"""A full disk: clips make way, detections are never lost, the database keeps working.

The station's data folder (SQLite store and the ear's clips) is on a real, small filesystem:
an 8 MB tmpfs mounted for the test (root is needed; CI runs as root). The ear listens flat out
to the demo soundscape in a loop, so it detects a bird every fraction of a second and writes a
clip of several hundred kB for each, with the default clip budget (500 MB, far more than the
disk has), as on an SD card that other data filled up.

1. The disk is full of other data (less free space than one clip): detections are still
   recorded in the database, without a clip, and a Health event says the disk is full.
2. Space is freed (the other data shrinks to leave room for a few clips): clips are written
   again, and when the disk fills up with clips the oldest ones are deleted to make room, so
   the newest detections keep theirs. The database keeps accepting every row.

Throughout, retention deletes only clip files: every detection the ear reported is a row in
the store, and the rows' seqs have no gap.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from device.clock import SystemClock
from device.ear.clips import CLIP_SUFFIX
from device.ear.service import build_ear
from device.events import BirdDetection, HealthStatus
from device.runtime import Station
from device.sinks import StoreSink
from device.store import EventStore

from .station_harness import EventLog, station_config, wait_until

DISK_BYTES = 8 * 1024 * 1024
#: Phase 1: free space on the full disk, less than the smallest clip (pre- and post-roll alone
#: are 4 s, 176 kB at the soundscape's 22.05 kHz) but room for the database's rows.
FULL_FREE_BYTES = 160 * 1024
#: Phase 2: what freeing space leaves for clips: a handful of them.
FREED_BYTES = 3 * 1024 * 1024
DETECTIONS_WHILE_FULL = 6
DETECTIONS_AFTER_FREEING = 40
DETECTION_TIMEOUT_S = 60.0


def free_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free


def fill(path: Path, leave_free: int) -> None:
    """Grow (or shrink) ``path``, another program's data, until ``leave_free`` bytes are free."""
    current = path.stat().st_size if path.exists() else 0
    size = max(0, current + free_bytes(path.parent) - leave_free)
    with path.open("ab") as f:
        f.truncate(size)
        if size > current:
            f.seek(current)
            f.write(b"\xa5" * (size - current))  # real blocks: tmpfs does not count holes


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """An 8 MB tmpfs at tmp_path/disk, unmounted afterwards."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        message = f"cannot mount a small tmpfs (needs root): {mounted.stderr.strip()}"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI runs as root and must run this test", pytrace=False)
        pytest.skip(message)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "--lazy", str(mount_point)], check=False)


def test_a_full_disk_costs_clips_never_detections(small_disk: Path) -> None:
    config = station_config(small_disk / "senses")
    config = config.model_copy(
        update={"ear": config.ear.model_copy(update={"source": "file", "loop": True})}
    )
    config.station.data_dir.mkdir()
    other_data = small_disk / "other-data.bin"
    log = EventLog()
    store = EventStore(config.store_path)
    station = Station(SystemClock(), [StoreSink(store), log])
    ear = build_ear(config, SystemClock(), emulated=True, realtime_files=False)
    assert ear.service.clip_store is not None
    clip_folder = ear.service.clip_store.folder

    def detections() -> list[BirdDetection]:
        return [a.event for a in log.snapshot() if isinstance(a.event, BirdDetection)]

    fill(other_data, FULL_FREE_BYTES)
    began_s = time.monotonic()
    for event in ear.events:
        station.emit(event)
    station.add_sense("ear", ear.service.run, counters=ear.service.counters)
    try:
        # --- 1. the disk is full of other data ------------------------------------------------
        wait_until(
            lambda: len(detections()) >= DETECTIONS_WHILE_FULL,
            DETECTION_TIMEOUT_S,
            f"{DETECTIONS_WHILE_FULL} detections on the full disk",
        )
        while_full = detections()
        assert not any(d.clip for d in while_full), (
            f"a clip was written with only {FULL_FREE_BYTES} bytes free: the disk was not full"
        )
        disk_full = log.health("ear", [HealthStatus.DEGRADED, HealthStatus.FAILED], began_s)
        assert any(
            "full" in h.message.lower() or "space" in h.message.lower() for h in disk_full
        ), f"no Health event says the disk is full; the ear said: {[h.message for h in disk_full]}"

        # --- 2. space is freed; clips fill it and retention makes room --------------------------
        freed_s = time.monotonic()
        fill(other_data, FREED_BYTES)
        count_before = len(detections())
        wait_until(
            lambda: len(detections()) >= count_before + DETECTIONS_AFTER_FREEING,
            DETECTION_TIMEOUT_S,
            f"{DETECTIONS_AFTER_FREEING} more detections after space was freed",
        )
    finally:
        station.stop()
        station.join(10.0)
        rows = store.since(0, limit=1_000_000)
        store.close()
    reported = detections()
    after_freeing = reported[count_before:]
    with_clips = [d for d in after_freeing if d.clip]
    kept = [d for d in with_clips if Path(d.clip).is_file()]
    expired = [d for d in with_clips if not Path(d.clip).is_file()]
    on_disk = sorted(clip_folder.rglob(f"*{CLIP_SUFFIX}"))
    print(
        f"\n{len(reported)} detections: {len(while_full)} on the full disk (no clip), "
        f"{len(after_freeing)} after freeing space: {len(with_clips)} got a clip, "
        f"{len(expired)} of those were deleted again to make room, {len(kept)} kept; "
        f"{len(on_disk)} clips on disk, {free_bytes(small_disk)} bytes free"
    )
    assert log.health("ear", [HealthStatus.OK], freed_s), (
        "no Health event says clips are saved again after space was freed"
    )
    assert expired, (
        f"{len(with_clips)} clips fitted in {FREED_BYTES} bytes without deleting any: the disk "
        "never filled up with clips, so retention was not tested"
    )
    newest = after_freeing[-3:]
    assert all(d.clip and Path(d.clip).is_file() for d in newest), (
        f"the newest detections have no clip on disk: {[d.clip for d in newest]}"
    )
    assert max(d.end for d in expired) <= min(d.end for d in kept), (
        "retention deleted a newer clip while keeping an older one"
    )
    # Retention deletes files only: every reported detection is still a row, seqs gap-free.
    assert [r.seq for r in rows] == list(range(1, len(rows) + 1))
    stored_birds = [r for r in rows if r.type == "bird"]
    assert len(stored_birds) == len(reported), (
        f"the ear reported {len(reported)} detections but the store holds {len(stored_birds)}: "
        "rows were lost while the disk was full"
    )
