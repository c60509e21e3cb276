"""The spool: a durable first-in-first-out disk buffer of points between MQTT and InfluxDB.

A record is "durably stored" once :meth:`Spool.append` has returned: SQLite in WAL mode with
``synchronous=FULL`` fsyncs the write-ahead log at every commit, so it survives a process crash or
a power cut. Only then does the ingestor acknowledge the MQTT message; the writer removes points
only after InfluxDB has accepted them.

The spool keeps each record as the line-protocol line that will be written, with where it goes:
the retention policy's *purpose* (``""`` the writes' own policy, raw water readings; ``"events"``
the assisted-living events, :meth:`vigie.store.InfluxStore.policy_for`) and the line's timestamp
precision (``s`` for :func:`vigie.store.water.reading_line`, ``ms`` for the
:mod:`vigie.store.homes` lines). A record is serialized once, on arrival, and the writer posts the
stored lines as they are.

It also keeps the last availability (online or not) spooled for each zigbee2mqtt device, updated
in the same transaction as the points: the ingestor stores an availability message only when it
changes that value, and a retained message received again after a restart changes nothing.

File: ``<data_dir>/spool.sqlite``, table ``points(seq INTEGER PRIMARY KEY AUTOINCREMENT,
line TEXT, device_id TEXT, source TEXT, purpose TEXT, precision TEXT)`` and table
``availability(device_id TEXT PRIMARY KEY, online INTEGER)``, mode 0600 (its directory 0700 when
Vigie creates it: :mod:`vigie.private_files`). ``seq`` grows with arrival order and
is never reused (AUTOINCREMENT), so ``remove_through(seq)`` cannot hit a later arrival. Spools of
earlier versions are brought up to date, in order, when opened: table ``spool`` (one
:meth:`MeterReading.to_json` per row) is converted, and a ``points`` table with ``meter_id`` and
without purpose and precision gets them (its rows are water readings: ``""``, ``s``).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections import deque
from itertools import islice
from pathlib import Path
from typing import NamedTuple

from vigie.private_files import make_private_dir, open_private, restrict_file
from vigie.records import MeterReading
from vigie.store.water import reading_line

FILE_NAME = "spool.sqlite"
CACHE_MAX = 200_000  # points kept in memory for the writer, at most


class SpooledPoint(NamedTuple):
    """One record as the spool keeps it: ``line`` (its line-protocol line), ``device_id`` (meter
    or sensor id) and ``source`` (the decoder's name, ``""`` if unknown) for the dead letter and
    the log when InfluxDB refuses it, ``purpose`` of the retention policy it is written to (``""``:
    the writes' own) and the line's ``precision`` (``s``, ``ms``)."""

    line: str
    device_id: str
    source: str
    purpose: str = ""
    precision: str = "s"

    @classmethod
    def of(cls, r: MeterReading) -> "SpooledPoint":
        """A water reading (``water_reading``, the writes' policy, precision s). Raises
        :class:`TypeError`/:class:`ValueError` as :func:`reading_line` does."""
        return cls(reading_line(r), r.meter_id, r.source)


class Spool:
    """FIFO of :class:`SpooledPoint` in a SQLite file. Thread-safe: each thread gets its own
    connection (WAL lets the writer read while the ingestor appends)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        make_private_dir(self.path.parent)
        # SQLite gives the -wal and -shm files the database file's mode; those left by a crash of
        # an earlier version are tightened too.
        os.close(open_private(self.path, os.O_RDWR))
        for leftover in ("-wal", "-shm"):
            restrict_file(self.path.with_name(self.path.name + leftover))
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        db = self._db()
        db.execute("CREATE TABLE IF NOT EXISTS points (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
                   "line TEXT NOT NULL, device_id TEXT NOT NULL, source TEXT NOT NULL, "
                   "purpose TEXT NOT NULL DEFAULT '', precision TEXT NOT NULL DEFAULT 's')")
        db.execute("CREATE TABLE IF NOT EXISTS availability (device_id TEXT PRIMARY KEY, online INTEGER NOT NULL)")
        _upgrade_points(db)
        _convert_legacy(db)
        self._pending = db.execute("SELECT count(*) FROM points").fetchone()[0]
        # The points appended by this process, oldest first, kept in memory so that peek() need
        # not read back what was just written; used only while the spool holds nothing else
        # (rows of an earlier run, or more than CACHE_MAX during an outage).
        self._cache: deque[tuple[int, SpooledPoint]] = deque()
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

    def append(self, points: list[SpooledPoint], availability: dict[str, bool] | None = None) -> None:
        """Add ``points`` in order and record ``availability`` (device id → online, the devices'
        last availability) in one transaction (one fsync for the whole group)."""
        if not points and not availability:
            return
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(_INSERT, points)
            last = db.execute("SELECT last_insert_rowid()").fetchone()[0]
            if availability:
                db.executemany("INSERT OR REPLACE INTO availability (device_id, online) VALUES (?, ?)",
                               ((d, int(online)) for d, online in availability.items()))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        if not points:
            return
        with self._lock:
            self._pending += len(points)
            if self._cache_ok:
                if len(self._cache) + len(points) > CACHE_MAX:
                    self._cache_ok = False
                    self._cache.clear()
                else:
                    # One appending thread and BEGIN IMMEDIATE: the group's seqs are consecutive.
                    self._cache.extend(zip(range(last - len(points) + 1, last + 1), points))

    def peek(self, n: int) -> list[tuple[int, SpooledPoint]]:
        """The oldest ``n`` points with their sequence numbers, oldest first; not removed."""
        with self._lock:
            if self._cache_ok:
                return list(islice(self._cache, n))
        cur = self._db().execute("SELECT seq, line, device_id, source, purpose, precision FROM points "
                                 "ORDER BY seq LIMIT ?", (n,))
        return [(row[0], SpooledPoint(*row[1:])) for row in cur]

    def availability(self) -> dict[str, bool]:
        """The last availability spooled for each device (device id → online)."""
        return {d: bool(online) for d, online in self._db().execute("SELECT device_id, online FROM availability")}

    def remove_through(self, seq: int) -> int:
        """Remove every point with sequence number ≤ ``seq``; returns how many."""
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            removed = db.execute("DELETE FROM points WHERE seq <= ?", (seq,)).rowcount
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
        """How many points wait in the spool."""
        with self._lock:
            return self._pending

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conns, self._conns = self._conns, []
        for db in conns:
            db.close()


_INSERT = "INSERT INTO points (line, device_id, source, purpose, precision) VALUES (?, ?, ?, ?, ?)"


def _upgrade_points(db: sqlite3.Connection) -> None:
    """Give a ``points`` table of the version before homes (``meter_id``, no purpose or
    precision: water readings only) the current columns, in one transaction."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(points)")}
    if "meter_id" not in columns:
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute("ALTER TABLE points RENAME COLUMN meter_id TO device_id")
        db.execute("ALTER TABLE points ADD COLUMN purpose TEXT NOT NULL DEFAULT ''")
        db.execute("ALTER TABLE points ADD COLUMN precision TEXT NOT NULL DEFAULT 's'")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def _convert_legacy(db: sqlite3.Connection) -> None:
    """Move the readings of an earlier version's ``spool`` table (JSON rows) into ``points``, in
    their order, and drop that table, in one transaction."""
    if not db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'spool'").fetchone():
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        rows = db.execute("SELECT reading FROM spool ORDER BY seq").fetchall()
        db.executemany(_INSERT, (SpooledPoint.of(MeterReading.from_json(text)) for text, in rows))
        db.execute("DROP TABLE spool")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
