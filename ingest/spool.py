"""The spool: a durable first-in-first-out disk buffer of readings between MQTT and InfluxDB.

A reading is "durably stored" once :meth:`Spool.append` has returned: SQLite in WAL mode with
``synchronous=FULL`` fsyncs the write-ahead log at every commit, so the reading survives a
process crash or a power cut. Only then does the ingestor acknowledge the MQTT message; the
writer removes readings only after InfluxDB has accepted them.

File: ``<data_dir>/spool.sqlite``, table ``spool(seq INTEGER PRIMARY KEY AUTOINCREMENT,
reading TEXT)`` with ``reading`` = :meth:`MeterReading.to_json`. ``seq`` grows with arrival order
and is never reused (AUTOINCREMENT), so ``remove_through(seq)`` cannot hit a later arrival.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import deque
from itertools import islice
from pathlib import Path

from vigie.records import MeterReading

FILE_NAME = "spool.sqlite"
CACHE_MAX = 200_000  # readings kept in memory for the writer, at most


class Spool:
    """FIFO of :class:`MeterReading` in a SQLite file. Thread-safe: each thread gets its own
    connection (WAL lets the writer read while the ingestor appends)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        db = self._db()
        db.execute("CREATE TABLE IF NOT EXISTS spool ("
                   "seq INTEGER PRIMARY KEY AUTOINCREMENT, reading TEXT NOT NULL)")
        self._pending = db.execute("SELECT count(*) FROM spool").fetchone()[0]
        # The readings appended by this process, oldest first, kept in memory so that peek() need
        # not read back and re-parse what was just written; used only while the spool holds
        # nothing else (rows of an earlier run, or more than CACHE_MAX during an outage).
        self._cache: deque[tuple[int, MeterReading]] = deque()
        self._cache_ok = self._pending == 0

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            with self._lock:
                if self._closed:
                    raise RuntimeError("spool is closed")
                db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=FULL")
                self._conns.append(db)
            self._local.db = db
        return db

    def append(self, readings: list[MeterReading]) -> None:
        """Add ``readings`` in order, in one transaction (one fsync for the whole group)."""
        if not readings:
            return
        db = self._db()
        rows = [(r.to_json(),) for r in readings]
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany("INSERT INTO spool (reading) VALUES (?)", rows)
            last = db.execute("SELECT last_insert_rowid()").fetchone()[0]
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        with self._lock:
            self._pending += len(rows)
            if self._cache_ok:
                if len(self._cache) + len(readings) > CACHE_MAX:
                    self._cache_ok = False
                    self._cache.clear()
                else:
                    # One appending thread and BEGIN IMMEDIATE: the group's seqs are consecutive.
                    self._cache.extend(zip(range(last - len(readings) + 1, last + 1), readings))

    def peek(self, n: int) -> list[tuple[int, MeterReading]]:
        """The oldest ``n`` readings with their sequence numbers, oldest first; not removed."""
        with self._lock:
            if self._cache_ok:
                return list(islice(self._cache, n))
        cur = self._db().execute("SELECT seq, reading FROM spool ORDER BY seq LIMIT ?", (n,))
        return [(seq, MeterReading.from_json(text)) for seq, text in cur]

    def remove_through(self, seq: int) -> int:
        """Remove every reading with sequence number ≤ ``seq``; returns how many."""
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            removed = db.execute("DELETE FROM spool WHERE seq <= ?", (seq,)).rowcount
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        with self._lock:
            self._pending -= removed
            while self._cache and self._cache[0][0] <= seq:
                self._cache.popleft()
            if not self._cache_ok and self._pending == 0:
                self._cache_ok = True
        return removed

    def pending(self) -> int:
        """How many readings wait in the spool."""
        with self._lock:
            return self._pending

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conns, self._conns = self._conns, []
        for db in conns:
            db.close()
