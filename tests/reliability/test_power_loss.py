"""Power loss, as a killed process sees it: SIGKILL the writer 50 times mid-write.

After every kill the store must open, pass SQLite's integrity check, hold a gap-free run of
seqs, and contain every event whose notification the link core had produced (what a phone may
have acknowledged). A real power cut can additionally drop the last un-synced commits
(``synchronous=NORMAL``, see device/store/sqlite.py); a killed process cannot.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from device.store import EventStore

KILLS = 50
WRITER = Path(__file__).with_name("store_writer.py")
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _kill_mid_write(db: Path, rng: random.Random) -> set[int]:
    """Start the writer, let it write for a random moment, SIGKILL it; return the sent seqs."""
    writer = subprocess.Popen(
        [sys.executable, str(WRITER), str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
    )
    assert writer.stdout is not None
    assert writer.stdout.readline().strip() == "ready", (
        writer.stderr.read() if writer.stderr else ""
    )
    sent: set[int] = set()

    def read() -> None:
        assert writer.stdout is not None
        for line in writer.stdout:
            if line.startswith("sent "):
                sent.add(int(line.split()[1]))

    reader = threading.Thread(target=read)
    reader.start()
    time.sleep(rng.uniform(0.05, 0.4))
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    reader.join()
    return sent


def test_killing_the_writer_50_times_never_loses_a_sent_event(tmp_path: Path) -> None:
    db = tmp_path / "senses.db"
    rng = random.Random(7)
    all_sent: set[int] = set()
    for kill in range(KILLS):
        sent = _kill_mid_write(db, rng)
        assert sent, f"kill {kill}: the writer sent nothing before it was killed"
        all_sent |= sent
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        with EventStore(db) as store:
            seqs = [row.seq for row in store.since(0, limit=10_000_000)]
        assert seqs == list(range(1, len(seqs) + 1)), f"kill {kill}: the seqs have a gap"
        missing = all_sent - set(seqs)
        assert not missing, (
            f"kill {kill}: {len(missing)} sent events are gone: {sorted(missing)[:5]}"
        )
    print(f"\n{KILLS} kills, {len(all_sent)} sent events, all present after every kill")
