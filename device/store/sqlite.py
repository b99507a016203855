"""The event store: every :class:`device.events.Event` in one SQLite file, in arrival order.

Each event gets a sequence number (``seq``) that only grows, so a client that saw up to
``seq`` asks :meth:`EventStore.since` for the rest and gets every later row exactly once.

SQLite runs in WAL mode with ``synchronous=NORMAL`` (https://sqlite.org/wal.html): a commit is
an append to the WAL without an fsync, which spares the SD card; a crash or a killed process
loses nothing committed, and a power cut can lose only the last commits, never consistency.
The schema version lives in ``PRAGMA user_version``; :data:`_MIGRATIONS` lists the steps from
one version to the next.

Threads: the senses append from their own workers. One connection serves them all, serialized
by a lock: SQLite admits one writer at a time anyway, so more connections would only trade our
own lock for SQLITE_BUSY retries, and with one writer the sequence numbers are committed in the
order they are handed out, which is what makes ``since`` gap-free. ``check_same_thread=False``
because the lock, not the creating thread, is what keeps the connection safe.

Listeners (:meth:`EventStore.add_listener`) hear of each event after its commit, so whatever
they pass on (the BLE link numbers its messages with ``seq``) is already durable. They run
outside the connection lock, so a slow listener never stalls readers such as backfill, but
under a second lock held across commit and dispatch: listeners see events in ``seq`` order
even when several threads append at once.
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from device.clock import Clock, SystemClock
from device.errors import StoreError
from device.events import Event

log = logging.getLogger(__name__)

StoreListener = Callable[["StoredEvent"], None]
"""Called with each event once it is committed (see :meth:`EventStore.add_listener`)."""

SCHEMA_VERSION: Final = 2
BUSY_TIMEOUT_S: Final = 5.0


@dataclass(frozen=True)
class StoredEvent:
    """One stored event: ``payload`` is the event's ``to_dict()`` (with ``type`` and ``ts``)."""

    seq: int
    ts: float
    type: str
    payload: dict[str, Any]


def _create_v1(conn: sqlite3.Connection) -> None:
    # seq is AUTOINCREMENT so a number is never reused, even after prune deleted the newest
    # rows of a type: a client's "seen up to" mark stays meaningful.
    conn.execute(
        "CREATE TABLE events ("
        " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
        " ts REAL NOT NULL,"
        " type TEXT NOT NULL,"
        " payload TEXT NOT NULL)"  # JSON of Event.to_dict()
    )
    conn.execute("CREATE INDEX events_type_ts ON events(type, ts)")
    # latest() goes by arrival; without this it sorts every row of the type.
    conn.execute("CREATE INDEX events_type_seq ON events(type, seq)")


def _birds_v2(conn: sqlite3.Connection) -> None:
    """Bird rows name the species scientifically and say which model named it.

    Rows stored before (the head's common names only) are kept and given the two new keys
    empty, so every bird row has the same shape; the index serves per-species queries by
    scientific name (what BirdNET-Pi indexes too).
    """
    conn.execute(
        "UPDATE events SET payload = json_set(payload,"
        " '$.scientific_name', coalesce(json_extract(payload, '$.scientific_name'), ''),"
        " '$.model_id', coalesce(json_extract(payload, '$.model_id'), ''))"
        " WHERE type = 'bird'"
    )
    conn.execute(
        "CREATE INDEX events_bird_scientific ON events("
        "json_extract(payload, '$.scientific_name'), ts) WHERE type = 'bird'"
    )


# Schema steps, keyed by the version each one produces. A new version appends a step; old
# files are brought forward one step at a time, each in its own transaction.
_MIGRATIONS: Final[dict[int, Callable[[sqlite3.Connection], None]]] = {
    1: _create_v1,
    2: _birds_v2,
}


def _plain_json(value: Any) -> Any:
    """``value`` with numpy scalars made Python numbers and NaN/inf made None.

    The payload must stay strict JSON (SQLite's JSON functions and the app's decoder reject
    NaN), and in the events None already means "no value".
    """
    if isinstance(value, dict):
        return {k: _plain_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain_json(v) for v in value]
    if isinstance(value, bool | str) or value is None:
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        return number if math.isfinite(number) else None
    return value


def _encode(event: Event) -> tuple[float, str, str]:
    payload = json.dumps(_plain_json(event.to_dict()), separators=(",", ":"), allow_nan=False)
    return float(event.ts), event.type, payload


def _decode(row: tuple[int, float, str, str]) -> StoredEvent:
    seq, ts, type_, payload = row
    return StoredEvent(seq=seq, ts=ts, type=type_, payload=json.loads(payload))


class EventStore:
    """Events in a SQLite file at ``path`` (parent folders are created).

    Safe to share between threads. Use as a context manager, or call :meth:`close`.
    ``clock`` gives "now" for :meth:`prune`.
    """

    def __init__(
        self, path: Path, *, clock: Clock | None = None, busy_timeout_s: float = BUSY_TIMEOUT_S
    ) -> None:
        self.path = Path(path)
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._lock = threading.Lock()
        # Held from commit to the end of dispatch, so listeners hear events in seq order.
        # Reentrant so that a listener that appends (it should not) delays, not deadlocks.
        self._dispatch_lock = threading.RLock()
        self._listeners: list[StoreListener] = []
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: no implicit transactions; append commits at once and
            # append_many/migrations/prune say BEGIN IMMEDIATE themselves.
            conn = sqlite3.connect(
                self.path,
                timeout=busy_timeout_s,
                isolation_level=None,
                check_same_thread=False,
            )
        except (OSError, sqlite3.Error) as e:
            raise StoreError(
                f"cannot open the event store {self.path}: {e}. Check that the folder is "
                "writable by the station's user, or set another store path in the config."
            ) from e
        try:
            self._prepare(conn)
        except sqlite3.DatabaseError as e:
            conn.close()
            raise StoreError(
                f"{self.path} is not a usable event store ({e}). Move it aside (e.g. "
                f"`mv {self.path} {self.path}.broken`) and the station starts a new, empty "
                "store there; or set another store path in the config."
            ) from e
        except BaseException:
            conn.close()
            raise
        self._conn: sqlite3.Connection | None = conn

    def _prepare(self, conn: sqlite3.Connection) -> None:
        # The first read of the header is where "file is not a database" shows up.
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has schema version {version}, written by a newer version of "
                f"senses (this one knows up to {SCHEMA_VERSION}). Upgrade senses, or set "
                "another store path in the config; the file is left untouched."
            )
        if version == 0:
            tables = [
                row[0]
                for row in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"
                    " AND name NOT LIKE 'sqlite_%'"
                )
            ]
            if tables:
                raise StoreError(
                    f"{self.path} is a SQLite database but not a senses event store (it has "
                    f"tables {tables} and no schema version). Set another store path in the "
                    "config; the file is left untouched."
                )
        mode = str(conn.execute("PRAGMA journal_mode=WAL").fetchone()[0])
        if mode.lower() != "wal":
            # Some file systems (network shares) refuse WAL; the store still works, slower.
            log.warning(
                "%s: journal_mode is %s, not wal (file system without WAL?)", self.path, mode
            )
        conn.execute("PRAGMA synchronous=NORMAL")
        for target in range(version + 1, SCHEMA_VERSION + 1):
            conn.execute("BEGIN IMMEDIATE")
            try:
                # Another process may have migrated while we waited for the write lock.
                if int(conn.execute("PRAGMA user_version").fetchone()[0]) < target:
                    _MIGRATIONS[target](conn)
                    conn.execute(f"PRAGMA user_version = {target:d}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    @contextmanager
    def _using(self, action: str) -> Iterator[sqlite3.Connection]:
        """The connection, under the lock; SQLite errors become StoreError, transactions undone."""
        with self._lock:
            if self._conn is None:
                raise StoreError(f"cannot {action}: the event store {self.path} is closed")
            conn = self._conn
            try:
                yield conn
            except BaseException as e:
                # Whatever interrupted us, the next caller must not inherit a half transaction.
                if conn.in_transaction:
                    try:
                        conn.execute("ROLLBACK")
                    except sqlite3.Error as rollback_error:
                        log.warning("%s: rollback failed: %s", self.path, rollback_error)
                if not isinstance(e, sqlite3.Error):
                    raise
                full = getattr(e, "sqlite_errorname", "") == "SQLITE_FULL"
                advice = (
                    "free space on that disk, or keep less history (prune)"
                    if full
                    else "check the disk; if the file is damaged, move it aside and restart"
                )
                raise StoreError(
                    f"cannot {action} in the event store {self.path}: {e}. Rows already "
                    f"stored are kept; {advice}."
                ) from e

    def add_listener(self, listener: StoreListener) -> None:
        """Call ``listener(stored)`` after each event is committed, in ``seq`` order.

        It runs on the appending thread, outside the connection lock, so it may read the store
        (e.g. :meth:`since`); it must not append. Hand heavy work to another thread or event
        loop without waiting for it: every append waits for its listeners. A listener that
        raises is logged and skipped; the event stays stored and the other listeners still hear
        of it.
        """
        with self._dispatch_lock:
            self._listeners = [*self._listeners, listener]

    def remove_listener(self, listener: StoreListener) -> None:
        """Stop calling ``listener`` (no error if it was not added)."""
        with self._dispatch_lock:
            self._listeners = [
                x for x in self._listeners if x != listener
            ]  # bound methods are equal, never identical

    def _dispatch(self, stored: list[StoredEvent]) -> None:
        for listener in self._listeners:
            for event in stored:
                try:
                    listener(event)
                except Exception:
                    # A broken consumer (say, the BLE link) must not turn a stored event into
                    # a failed append: the sense would retry and store it twice.
                    log.exception(
                        "store listener %r failed on seq %d; the event is stored",
                        listener,
                        event.seq,
                    )

    def append(self, event: Event) -> int:
        """Store one event and return its sequence number (committed when this returns)."""
        row = _encode(event)
        with self._dispatch_lock:
            with self._using("append an event") as conn:
                cursor = conn.execute("INSERT INTO events(ts, type, payload) VALUES (?, ?, ?)", row)
                seq = int(cursor.lastrowid or 0)
            if self._listeners:
                # Decoded from the stored JSON: listeners get exactly what since() returns.
                self._dispatch([_decode((seq, *row))])
        return seq

    def append_many(self, events: Iterable[Event]) -> list[int]:
        """Store several events in one transaction (all or none); return their numbers."""
        rows = [_encode(e) for e in events]
        if not rows:
            return []
        with self._dispatch_lock:
            with self._using("append events") as conn:
                conn.execute("BEGIN IMMEDIATE")
                seqs = [
                    int(
                        conn.execute(
                            "INSERT INTO events(ts, type, payload) VALUES (?, ?, ?)", row
                        ).lastrowid
                        or 0
                    )
                    for row in rows
                ]
                conn.execute("COMMIT")
            if self._listeners:
                self._dispatch([_decode((seq, *row)) for seq, row in zip(seqs, rows, strict=True)])
        return seqs

    def since(
        self, seq: int, *, limit: int = 1000, types: set[str] | None = None
    ) -> list[StoredEvent]:
        """Events with a sequence number above ``seq``, oldest first, at most ``limit``.

        Pass the last ``seq`` received to get the next page; ``since(0)`` starts at the
        beginning of what retention kept.
        """
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        sql = "SELECT seq, ts, type, payload FROM events WHERE seq > ?"
        params: list[Any] = [seq]
        if types is not None:
            if not types:
                return []
            sql += f" AND type IN ({', '.join('?' * len(types))})"
            params += sorted(types)
        sql += " ORDER BY seq LIMIT ?"
        params.append(limit)
        with self._using("read events") as conn:
            return [_decode(row) for row in conn.execute(sql, params)]

    def latest(self, type: str) -> StoredEvent | None:
        """The most recently stored event of ``type`` (by arrival, not by ``ts``), or None.

        By arrival because the Pi has no real-time clock: readings made before NTP sets the
        clock carry timestamps from the past.
        """
        with self._using("read the latest event") as conn:
            row = conn.execute(
                "SELECT seq, ts, type, payload FROM events WHERE type = ?"
                " ORDER BY seq DESC LIMIT 1",
                (type,),
            ).fetchone()
        return None if row is None else _decode(row)

    def count(self, type: str | None = None) -> int:
        """How many events are stored, of one ``type`` or of all."""
        with self._using("count events") as conn:
            if type is None:
                row = conn.execute("SELECT COUNT(*) FROM events").fetchone()
            else:
                row = conn.execute("SELECT COUNT(*) FROM events WHERE type = ?", (type,)).fetchone()
        return int(row[0])

    def prune(self, *, older_than_s: float | None = None, max_rows: int | None = None) -> int:
        """Delete old events; return how many were deleted.

        ``older_than_s`` deletes events whose ``ts`` is more than that many seconds before
        now; ``max_rows`` deletes the oldest until at most that many remain. Neither ever
        deletes the newest event of a type, so :meth:`latest` still answers after a long
        quiet spell (a store may therefore hold up to one row per type above ``max_rows``).
        """
        if older_than_s is not None and older_than_s < 0:
            raise ValueError(f"older_than_s must be >= 0, got {older_than_s}")
        if max_rows is not None and max_rows < 0:
            raise ValueError(f"max_rows must be >= 0, got {max_rows}")
        keep_newest = "seq NOT IN (SELECT MAX(seq) FROM events GROUP BY type)"
        cutoff = None if older_than_s is None else self._clock.wall() - older_than_s
        deleted = 0
        with self._using("prune events") as conn:
            conn.execute("BEGIN IMMEDIATE")
            if cutoff is not None:
                deleted += conn.execute(
                    f"DELETE FROM events WHERE ts < ? AND {keep_newest}", (cutoff,)
                ).rowcount
            if max_rows is not None:
                deleted += conn.execute(
                    "DELETE FROM events WHERE seq <= "
                    "(SELECT seq FROM events ORDER BY seq DESC LIMIT 1 OFFSET ?)"
                    f" AND {keep_newest}",
                    (max_rows,),
                ).rowcount
            conn.execute("COMMIT")
        return deleted

    def close(self) -> None:
        """Close the file (idempotent). Later calls raise StoreError."""
        with self._lock:
            if self._conn is None:
                return
            try:
                self._conn.execute("PRAGMA optimize")  # as sqlite.org advises before closing
            except sqlite3.Error as e:
                log.warning("%s: PRAGMA optimize failed: %s", self.path, e)
            self._conn.close()
            self._conn = None

    def __enter__(self) -> EventStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EventStore({str(self.path)!r})"
