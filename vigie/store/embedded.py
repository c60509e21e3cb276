"""The embedded time-series store: InfluxDB's v1 interface over one SQLite file, for ``vigie demo``
and trials on one machine (``VIGIE_STORE=embedded``, file ``VIGIE_STORE_FILE``).

Design: the embedded store is **not** a second schema with its own readers. :class:`EmbeddedStore`
has the methods of :class:`~vigie.store.influx.InfluxStore` — ``write_lines`` takes line protocol,
``query_csv``/``query_json``/``execute`` take InfluxQL and answer as InfluxDB does — so every
module of ``vigie/store``, the analytics, the ingest spool writer and privacy run the *same code*
on both stores, and the analytics give identical results on both (``tests/test_store_contract.py``
proves it on simulated water, homes and heating data). A second implementation of
``read_indices``, ``read_events``, ``read_heating``… would have to be kept in step with the
InfluxDB one forever; the store interface is narrow (two input languages, both fixed by the
modules that emit them), so emulating it is the smaller and safer surface. The schema methods
(``ensure_database``, ``retention_policies``, ``policy_for``, ``measurement``) are
``InfluxStore``'s own functions, running on this class's ``execute`` and ``query_json``.

- **Writes** follow InfluxDB 1.x: :mod:`vigie.store.lineprotocol` parses with InfluxDB's rules;
  a point is identified by measurement, tag set and timestamp, and a rewrite replaces the fields
  it carries (keeping the others); a field keeps the type it was first written with (a point with
  another type is refused: ``partial write: field type conflict …``; two types for a field new in
  the batch refuse the whole batch); points older than their retention policy's duration are
  refused (``points beyond retention policy``); valid points of a batch are written and
  :class:`~vigie.store.StoreRejected` (400) names the refused ones, so the spool writer's
  bisection works unchanged.
- **Reads** answer the InfluxQL subset of :mod:`vigie.store.influxql` (every statement Vigie
  builds); anything else raises :class:`UnsupportedQuery` naming the construct. ``query_csv``
  renders InfluxDB's CSV text (floats as Go's ``strconv.FormatFloat(v, 'f', -1, 64)``, tags, empty
  nulls) and parses it with the same :func:`~vigie.store.influx.csv_frame` as ``InfluxStore``, so
  pandas infers the same column types; ``query_json`` gives the values JSON decoding of
  InfluxDB's answer gives (an integral float is an ``int``). Rows come in InfluxDB's order, ties
  included: points of several series at one instant as its heap merge of the series gives them
  (:func:`merge_order`, checked against influxd 1.6).
- **Retention**: points older than a finite policy's duration are left out of reads and deleted
  every :data:`PRUNE_EVERY_S` on write (InfluxDB drops whole shard groups, so it may show such
  points up to one shard-group duration longer).
- **Known differences**: between series of one group with a point at the same instant,
  ``first()``/``last()`` take the first series in key order (InfluxDB: the order of its parallel
  merge; Vigie groups by device, one series each); a field's type is fixed per measurement, not
  per shard; ``SELECT *`` lists the fields and tags ever written, not only those of the shards in
  the time range.

Why SQLite rather than DuckDB: it is in the standard library (no dependency, nothing to build),
and its WAL mode lets several processes use one file at once — the service, ``vigie leaks``,
``vigie events``, ``vigie check`` and ingest workers all open the store while the others run,
where DuckDB allows a single read-write process per file. The embedded store serves a demo or a
small commune (measured on the 2 shared cores of the CI machine: writes ~35 µs a point, a day of
1 000 meters — 55 000 readings — read back in ~0.8 s); DuckDB's columnar speed matters at
InfluxDB's scale, where InfluxDB is the answer.

Storage: per database, retention policy and measurement a table ``p<id>`` (``time`` ns,
``series``, one column per field, primary key ``(time, series)``, index ``(series, time)``), and
the catalog tables ``databases``, ``policies``, ``measurements``, ``fields``, ``series``. One
connection per thread (WAL: readers do not wait for the writer); writes are serialised by a
process lock and ``BEGIN IMMEDIATE``. SQLite errors (locked beyond ``timeout``, disk full, file
not openable) raise :class:`~vigie.store.StoreUnavailable`.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import sqlite3
import threading
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd

from vigie.store import influxql as ql
from vigie.store.influx import InfluxStore, RetentionPolicy, StoreRejected, StoreUnavailable, csv_frame
from vigie.store.lineprotocol import BOOLEAN, FLOAT, INTEGER, STRING, parse_lines

log = logging.getLogger(__name__)

#: Points older than their policy's duration are deleted at most this often (by a write).
PRUNE_EVERY_S = 600.0
#: Version of the file's layout; a file of a newer layout is refused.
SCHEMA_VERSION = 1
_HOUR_NS = 3_600_000_000_000
_DAY_NS = 24 * _HOUR_NS
_EPOCH_NS = {"ns": 1, "n": 1, "u": 1_000, "µ": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
             "m": 60_000_000_000, "h": _HOUR_NS}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS databases (name TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS policies (database TEXT NOT NULL, name TEXT NOT NULL, duration_ns INTEGER NOT NULL,
    shard_ns INTEGER NOT NULL, replication INTEGER NOT NULL, is_default INTEGER NOT NULL,
    PRIMARY KEY (database, name));
CREATE TABLE IF NOT EXISTS measurements (id INTEGER PRIMARY KEY, database TEXT NOT NULL, policy TEXT NOT NULL,
    name TEXT NOT NULL, UNIQUE (database, policy, name));
CREATE TABLE IF NOT EXISTS fields (measurement INTEGER NOT NULL, name TEXT NOT NULL, type TEXT NOT NULL,
    col TEXT NOT NULL, PRIMARY KEY (measurement, name));
CREATE TABLE IF NOT EXISTS series (id INTEGER PRIMARY KEY, measurement INTEGER NOT NULL, key TEXT NOT NULL,
    tags TEXT NOT NULL, UNIQUE (measurement, key));
"""


class UnsupportedQuery(StoreRejected):
    """Valid InfluxQL the embedded store does not answer; the message names the construct."""


class _StatementError(Exception):
    """A statement InfluxDB answers with ``{"error": …}`` (the message is InfluxDB's)."""


# --- catalog ----------------------------------------------------------------------------------

@dataclass
class _Policy:
    name: str
    duration_ns: int
    shard_ns: int
    replication: int


@dataclass
class _Database:
    name: str
    policies: dict[str, _Policy] = field(default_factory=dict)
    default: str | None = None


class _Measurement:
    """One measurement of one retention policy: its fields (name → (type, column)) and series."""

    def __init__(self, mid: int, database: str, policy: str, name: str) -> None:
        self.id, self.database, self.policy, self.name = mid, database, policy, name
        self.fields: dict[str, tuple[str, str]] = {}
        self.series: dict[str, int] = {}
        self.series_tags: dict[int, tuple[tuple[str, str], ...]] = {}
        self._frame: pd.DataFrame | None = None

    @property
    def table(self) -> str:
        return f'"p{self.id}"'

    def add_series(self, sid: int, key: str, tags: tuple[tuple[str, str], ...]) -> None:
        self.series[key] = sid
        self.series_tags[sid] = tags
        self._frame = None

    def copy(self) -> "_Measurement":
        """A copy a write may change while readers keep using this one (copy-on-write catalog)."""
        c = _Measurement(self.id, self.database, self.policy, self.name)
        c.fields, c.series, c.series_tags = dict(self.fields), dict(self.series), dict(self.series_tags)
        return c

    def drop_series(self, sids: Sequence[int]) -> None:
        gone = set(sids)
        self.series = {k: s for k, s in self.series.items() if s not in gone}
        self.series_tags = {s: t for s, t in self.series_tags.items() if s not in gone}
        self._frame = None

    def tag_keys(self) -> list[str]:
        return sorted({k for tags in self.series_tags.values() for k, _ in tags})

    def frame(self) -> pd.DataFrame:
        """Series as a frame indexed by id: one object column per tag key (None where a series
        lacks the tag) and ``_rank``, the series' place in series-key order."""
        if self._frame is None:
            ids = np.fromiter(self.series.values(), np.int64, len(self.series))
            keys = list(self.series)
            rank = np.empty(len(keys), np.int64)
            rank[np.argsort(np.array(keys, dtype=object), kind="stable")] = np.arange(len(keys))
            tags = [dict(self.series_tags[s]) for s in ids.tolist()]
            frame = pd.DataFrame({k: np.array([t.get(k) for t in tags], dtype=object) for k in self.tag_keys()},
                                 index=pd.Index(ids, name="series")).astype(object)
            frame["_rank"] = rank
            self._frame = frame
        return self._frame


@dataclass
class _Catalog:
    """Databases, policies, measurements, fields and series as of catalog ``version``. Published
    catalogs are never changed: a write works on :meth:`copy` and publishes it after its commit."""

    version: int = -1
    databases: dict[str, _Database] = field(default_factory=dict)
    measurements: dict[tuple[str, str, str], _Measurement] = field(default_factory=dict)
    _touched: set = field(default_factory=set)

    def copy(self) -> "_Catalog":
        dbs = {n: _Database(n, {p: _Policy(**vars(v)) for p, v in db.policies.items()}, db.default)
               for n, db in self.databases.items()}
        return _Catalog(self.version, dbs, dict(self.measurements))

    def touch(self, key: tuple[str, str, str]) -> _Measurement:
        """The measurement ``key``, copied once so that this catalog may change it."""
        if key not in self._touched:
            self.measurements[key] = self.measurements[key].copy()
            self._touched.add(key)
        return self.measurements[key]


# --- results ----------------------------------------------------------------------------------

@dataclass
class _Series:
    """A result series: ``values`` one ``(type, array)`` per column after ``time`` (type float,
    integer, string, boolean, tag or null; arrays aligned with ``time_ns``)."""

    name: str
    tags: dict[str, str] | None
    columns: list[str]
    time_ns: np.ndarray
    values: list[tuple[str, object]]


@dataclass
class _Table:
    """A SHOW answer: rows of plain values."""

    name: str | None
    columns: list[str]
    rows: list[list]


def _epoch(ns: np.ndarray, epoch: str | None) -> list:
    if not epoch:
        return [_rfc3339(int(t)) for t in ns.tolist()]
    d = _EPOCH_NS.get(epoch, 1)
    ns = np.asarray(ns, dtype=np.int64)
    # Go's integer division truncates toward zero.
    return np.where(ns >= 0, ns // d, -((-ns) // d)).tolist()


def _rfc3339(ns: int) -> str:
    ts = pd.Timestamp(ns, unit="ns", tz="UTC")
    frac = ns % 1_000_000_000
    base = ts.strftime("%Y-%m-%dT%H:%M:%S")
    return base + (("." + f"{frac:09d}".rstrip("0")) if frac else "") + "Z"


def _json_float(x: float):
    # Go's encoding/json writes an integral float below 1e21 without a decimal point, with its
    # shortest digits (1.2712495364715841e+20 as 127124953647158410000): JSON decoding gives that int.
    if x.is_integer() and abs(x) < 1e21:
        return int(x) if abs(x) < 2**53 else int(go_float(x))
    return x


def _json_column(kind: str, values) -> list:
    if kind == FLOAT:
        return [None if x != x else _json_float(x) for x in np.asarray(values, dtype=np.float64).tolist()]
    if kind in (INTEGER, BOOLEAN):
        return [None if v is pd.NA else (bool(v) if kind == BOOLEAN else int(v)) for v in values]
    if kind == "null":
        return [None] * len(values)
    return [None if v is None or v is pd.NA or v != v else v for v in values]


def go_float(x: float) -> str:
    """``x`` as Go's ``strconv.FormatFloat(x, 'f', -1, 64)``: the shortest round-trip digits,
    never in exponent form (``1e-07`` → ``0.0000001``, ``20.0`` → ``20``)."""
    r = repr(x)
    if "e" in r:
        return format(Decimal(r), "f")
    return r[:-2] if r.endswith(".0") else r


def _csv_column(kind: str, values) -> list[str]:
    if kind == FLOAT:
        return ["" if x != x else go_float(x) for x in np.asarray(values, dtype=np.float64).tolist()]
    if kind == INTEGER:
        return ["" if v is pd.NA else str(int(v)) for v in values]
    if kind == BOOLEAN:
        return ["" if v is pd.NA else ("true" if v else "false") for v in values]
    if kind == "null":
        return [""] * len(values)
    return ["" if v is None or v is pd.NA or v != v else str(v) for v in values]


_TAG_ESCAPES = str.maketrans({",": r"\,", " ": r"\ ", "=": r"\="})


def _series_json(s: _Series | _Table, epoch: str | None) -> dict:
    if isinstance(s, _Table):
        out: dict = {} if s.name is None else {"name": s.name}
        out.update(columns=s.columns, values=s.rows)
        return out
    out = {"name": s.name}
    if s.tags is not None:
        out["tags"] = s.tags
    cols = [_epoch(s.time_ns, epoch)] + [_json_column(k, v) for k, v in s.values]
    out.update(columns=["time", *s.columns], values=[list(r) for r in zip(*cols)])
    return out


def _csv_text(results: list[_Series | _Table], epoch: str | None) -> bytes:
    """InfluxDB's CSV answer (``Accept: application/csv``) for ``results``; empty when no row."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    header = None
    for s in results:
        if isinstance(s, _Table):
            cols, rows = s.columns, [["" if v is None else str(v).lower() if isinstance(v, bool) else str(v)
                                      for v in r] for r in s.rows]
            name, tags = s.name or "", ""
        else:
            cols = s.columns
            tags = ",".join(f"{k.translate(_TAG_ESCAPES)}={v.translate(_TAG_ESCAPES)}"
                            for k, v in sorted((s.tags or {}).items()) if v)   # as its HashKey: no empty tag
            name = s.name
            columns = [[str(t) for t in _epoch(s.time_ns, epoch)]] + [_csv_column(k, v) for k, v in s.values]
            rows = zip(*columns)
        if ["name", "tags", *([] if isinstance(s, _Table) else ["time"]), *cols] != header:
            header = ["name", "tags", *([] if isinstance(s, _Table) else ["time"]), *cols]
            w.writerow(header)
        w.writerows([name, tags, *r] for r in rows)
    return buf.getvalue().encode("utf-8")


# --- condition evaluation --------------------------------------------------------------------

class _Rows:
    """Points read for a statement: ``series`` (ids), ``pos`` (rows of the measurement's series
    frame), ``time`` (ns), ``fields`` name → (type, values, null mask)."""

    def __init__(self, series, pos, time_ns, fields) -> None:
        self.series, self.pos, self.time, self.fields = series, pos, time_ns, fields

    def __len__(self) -> int:
        return len(self.time)

    def take(self, idx: np.ndarray) -> "_Rows":
        return _Rows(self.series[idx], self.pos[idx], self.time[idx],
                     {n: (k, v[idx], nul[idx]) for n, (k, v, nul) in self.fields.items()})


class _Env:
    """What a condition is evaluated on: the series of a measurement (fields unknown), or points."""

    def __init__(self, m: _Measurement, frame: pd.DataFrame, rows: _Rows | None = None) -> None:
        self.m, self.frame, self.rows = m, frame, rows
        self.n = len(frame) if rows is None else len(rows)

    def tag(self, name: str) -> np.ndarray:
        """The tag's values, ``""`` where a series lacks it (InfluxDB's reading of a missing tag)."""
        if name not in self.frame.columns:
            return np.full(self.n, "", dtype=object)
        col = self.frame[name].to_numpy()
        if self.rows is not None:
            col = col[self.rows.pos]
        return np.where(pd.isna(col), "", col).astype(object)

    def field(self, name: str):
        """(type, values, null mask) at the points; ``None`` on series (value unknown)."""
        return None if self.rows is None else self.rows.fields[name]


_FLIP = {"=": "=", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


def _evaluate(node, env: _Env) -> pd.arrays.BooleanArray:
    """The condition on every series or point of ``env``: True/False, or NA (Kleene logic) where
    it depends on a field's value and only series are known."""
    if isinstance(node, ql.Binary) and node.op in ("AND", "OR"):
        a, b = _evaluate(node.lhs, env), _evaluate(node.rhs, env)
        return (a & b) if node.op == "AND" else (a | b)
    if not isinstance(node, ql.Binary):
        raise ql.UnsupportedInfluxQL("a bare value as a condition")
    op, lhs, rhs = node.op, node.lhs, node.rhs
    if isinstance(lhs, ql.Literal) and isinstance(rhs, ql.VarRef) and op in _FLIP:
        lhs, rhs, op = rhs, lhs, _FLIP[op]
    if not (isinstance(lhs, ql.VarRef) and isinstance(rhs, ql.Literal)):
        raise ql.UnsupportedInfluxQL("comparing two fields/tags or two literals")
    lit = rhs.value
    if isinstance(lit, ql.DurationLiteral):
        raise _StatementError(f"invalid operation: {lhs.name} compared with a duration")
    if isinstance(lit, re.Pattern) != (op in ("=~", "!~")):
        raise _StatementError(f"invalid operation: {lhs.name} {op} {lit!r}")
    if lhs.name in env.m.fields:
        got = env.field(lhs.name)
        if got is None:
            return pd.array(np.full(env.n, pd.NA, dtype=object), dtype="boolean")
        kind, values, null = got
        return pd.array(_compare_field(kind, values, null, op, lit), dtype="boolean")
    return pd.array(_compare_tag(env.tag(lhs.name), op, lit, lhs.name), dtype="boolean")


def _compare_field(kind: str, values, null: np.ndarray, op: str, lit) -> np.ndarray:
    """A comparison at each point; False where the field is absent or of another type than the
    literal (InfluxDB: incomparable values are not equal, nor different)."""
    n = len(null)
    if isinstance(lit, re.Pattern):
        if kind != STRING:
            return np.zeros(n, bool)
        hit = pd.Series(values, dtype=object).str.contains(lit, regex=True, na=False).to_numpy(bool)
        return (hit if op == "=~" else ~hit) & ~null
    if isinstance(lit, bool):
        if kind != BOOLEAN or op not in ("=", "!="):
            return np.zeros(n, bool)
        v = np.asarray(values.to_numpy(dtype=bool, na_value=False))
        return ((v == lit) if op == "=" else (v != lit)) & ~null
    if isinstance(lit, (int, float)):
        if kind not in (FLOAT, INTEGER):
            return np.zeros(n, bool)
        v = (np.asarray(values, dtype=np.float64) if kind == FLOAT
             else values.to_numpy(dtype=np.float64, na_value=np.nan))
        with np.errstate(invalid="ignore"):
            out = {"=": v == lit, "!=": v != lit, "<": v < lit, "<=": v <= lit, ">": v > lit, ">=": v >= lit}[op]
        return out & ~null
    if isinstance(lit, str):
        if kind != STRING:
            return np.zeros(n, bool)
        if op not in ("=", "!="):
            raise ql.UnsupportedInfluxQL(f"ordering comparisons ({op}) on strings")
        v = np.asarray(values, dtype=object)
        return ((v == lit) if op == "=" else (v != lit)) & ~null
    raise ql.UnsupportedInfluxQL(f"the literal {lit!r}")


def _compare_tag(values: np.ndarray, op: str, lit, name: str) -> np.ndarray:
    if isinstance(lit, re.Pattern):
        hit = pd.Series(values, dtype=object).str.contains(lit, regex=True).to_numpy(bool)
        return hit if op == "=~" else ~hit
    if not isinstance(lit, str) or isinstance(lit, bool):
        raise ql.UnsupportedInfluxQL(f"comparing tag {name!r} with {lit!r}")
    if op not in ("=", "!="):
        raise ql.UnsupportedInfluxQL(f"ordering comparisons ({op}) on tag {name!r}")
    return (values == lit) if op == "=" else (values != lit)


# --- the store --------------------------------------------------------------------------------

class EmbeddedStore:
    """InfluxDB's interface over the SQLite file ``path`` (created with its parent directory when
    missing), database ``database``; ``retention_policy`` and ``policies`` as for
    :class:`~vigie.store.influx.InfluxStore`. Thread-safe; several processes may share the file.
    ``timeout``: seconds to wait for another process's write before :class:`StoreUnavailable`.
    """

    # InfluxStore's schema methods, on this class's execute/query_json: one code path for both.
    ensure_database = InfluxStore.ensure_database
    _ensure_policy = InfluxStore._ensure_policy
    retention_policies = InfluxStore.retention_policies
    policy_for = InfluxStore.policy_for
    measurement = InfluxStore.measurement

    def __init__(self, path: str | Path, database: str, *, retention_policy: str | None = None,
                 policies: Sequence[RetentionPolicy] = (), timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.database = database
        self.retention_policy = retention_policy
        self.policies = tuple(policies)
        self.timeout = timeout
        self._lock = threading.RLock()
        self._local = threading.local()
        self._conns: dict[threading.Thread, sqlite3.Connection] = {}
        self._catalog = _Catalog()
        self._schema_ready = False
        self._last_prune = 0.0

    @classmethod
    def from_settings(cls, settings) -> "EmbeddedStore":
        return cls(settings.store_path, settings.influx_database, retention_policy=settings.influx_retention_policy,
                   policies=settings.influx_extra_policies())

    @property
    def location(self) -> str:
        """Where the data are, for messages: the file's path."""
        return str(self.path)

    def close(self) -> None:
        with self._lock:
            for conn in self._conns.values():
                try:
                    conn.close()
                except sqlite3.Error:
                    pass
            self._conns.clear()
            self._local = threading.local()

    def ping(self) -> bool:
        """True when the file can be opened and read."""
        try:
            self._conn().execute("SELECT 1").fetchone()
            return True
        except (StoreUnavailable, sqlite3.Error):
            return False

    # -- plumbing ------------------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        except (OSError, sqlite3.Error) as exc:
            raise StoreUnavailable(f"embedded store {self.path}: cannot open: {exc}") from exc
        with self._lock:
            # Threads come and go (the analytics' pools): their connections are closed with them.
            for thread in [t for t in self._conns if not t.is_alive()]:
                self._conns.pop(thread).close()
            self._conns[threading.current_thread()] = conn
            if not self._schema_ready:
                self._init_schema(conn)
        self._local.conn = conn
        return conn

    def _init_schema(self, conn: sqlite3.Connection) -> None:
        try:
            conn.execute("BEGIN IMMEDIATE")
            for stmt in _SCHEMA.strip().split(";\n"):
                if stmt.strip():
                    conn.execute(stmt)
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            if row is None:
                conn.execute("INSERT INTO meta VALUES ('schema', ?), ('catalog', 0)", (SCHEMA_VERSION,))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StoreUnavailable(f"embedded store {self.path}: {exc}") from exc
        if row is not None and row[0] > SCHEMA_VERSION:
            raise StoreRejected(f"embedded store {self.path} has layout {row[0]}, newer than this Vigie's "
                                f"({SCHEMA_VERSION}): run the Vigie that wrote it")
        self._schema_ready = True

    def _snapshot_catalog(self, conn: sqlite3.Connection) -> _Catalog:
        """The catalog of the current transaction's snapshot: the published one when it is that
        version, else read from the file (and published when newer)."""
        version = conn.execute("SELECT value FROM meta WHERE key = 'catalog'").fetchone()[0]
        cat = self._catalog
        if cat.version == version:
            return cat
        cat = self._load_catalog(conn, version)
        self._publish(cat)
        return cat

    def _publish(self, cat: _Catalog) -> None:
        with self._lock:
            if cat.version > self._catalog.version:
                cat._touched = set()
                self._catalog = cat

    @staticmethod
    def _load_catalog(conn: sqlite3.Connection, version: int) -> _Catalog:
        cat = _Catalog(version)
        for (name,) in conn.execute("SELECT name FROM databases ORDER BY rowid"):
            cat.databases[name] = _Database(name)
        for db, name, dur, shard, repl, default in conn.execute(
                "SELECT database, name, duration_ns, shard_ns, replication, is_default FROM policies ORDER BY rowid"):
            if db in cat.databases:
                cat.databases[db].policies[name] = _Policy(name, dur, shard, repl)
                if default:
                    cat.databases[db].default = name
        by_id = {}
        for mid, db, rp, name in conn.execute("SELECT id, database, policy, name FROM measurements"):
            by_id[mid] = cat.measurements[(db, rp, name)] = _Measurement(mid, db, rp, name)
        for mid, name, kind, col in conn.execute("SELECT measurement, name, type, col FROM fields ORDER BY rowid"):
            by_id[mid].fields[name] = (kind, col)
        for sid, mid, key, tags in conn.execute("SELECT id, measurement, key, tags FROM series"):
            by_id[mid].add_series(sid, key, tuple(tuple(t) for t in json.loads(tags)))
        return cat

    def _bump(self, conn: sqlite3.Connection) -> int:
        conn.execute("UPDATE meta SET value = value + 1 WHERE key = 'catalog'")
        return conn.execute("SELECT value FROM meta WHERE key = 'catalog'").fetchone()[0]

    def _transaction(self, fn, *, write: bool):
        """Run ``fn(conn, catalog)`` in one transaction: a snapshot for reads, ``BEGIN IMMEDIATE``
        under the process lock for writes, which change a copy of the catalog published after the
        commit."""
        conn = self._conn()
        with self._lock if write else nullcontext():
            try:
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    cat = self._snapshot_catalog(conn)
                    work = cat.copy() if write else cat
                    out = fn(conn, work)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"embedded store {self.path}: {exc}") from exc
            if write and work.version != cat.version:
                self._publish(work)
            return out

    # -- writes --------------------------------------------------------------------------------
    def write_lines(self, lines: Sequence[str] | str, precision: str = "s",
                    retention_policy: str | None = None) -> None:
        """Store line protocol as InfluxDB's ``/write`` does (module docstring). ``precision``
        n|u|ms|s|m|h; ``retention_policy`` overrides the store's for this write. Raises
        :class:`StoreRejected`: 404 no such database or retention policy, 400 refused points (the
        others are written)."""
        body = lines if isinstance(lines, str) else "\n".join(lines)
        if not body:
            return
        now_ns = time.time_ns()
        points, failed = parse_lines(body, precision, now_ns)
        outcome = self._transaction(lambda conn, cat: self._write(conn, cat, points, failed, now_ns,
                                                                  retention_policy), write=True)
        if outcome:
            raise StoreRejected(outcome, 400)

    def _write(self, conn, cat: _Catalog, points, failed: list[str], now_ns: int, rp_name: str | None) -> str | None:
        db = cat.databases.get(self.database)
        if db is None:
            raise StoreRejected(f'database not found: "{self.database}"', 404)
        if failed and not points:
            raise StoreRejected("\n".join(failed), 400)
        rp_name = rp_name or self.retention_policy or db.default
        policy = db.policies.get(rp_name or "")
        if policy is None:
            raise StoreRejected(f"retention policy not found: {rp_name}", 404)
        changed = False
        beyond = conflicts = 0
        reason = None
        cutoff = now_ns - policy.duration_ns if policy.duration_ns else None
        # As InfluxDB: a point whose field has another type than the measurement's is dropped (the
        # others are written); two types for a field new in this batch refuse the whole batch.
        accepted, new_fields = [], {}
        for p in points:
            if cutoff is not None and p.time_ns < cutoff:
                beyond += 1
                continue
            if any(k == "time" for k, _ in p.tags):
                conflicts += 1
                reason = reason or f'invalid tag key: input tag "time" on measurement "{p.measurement}" is invalid'
                continue
            m = cat.measurements.get((db.name, policy.name, p.measurement))
            known = m.fields if m is not None else {}
            bad = next(((name, kind, known[name][0]) for name, kind, _ in p.fields
                        if name in known and known[name][0] != kind), None)
            if bad:
                conflicts += 1
                reason = reason or (f'field type conflict: input field "{bad[0]}" on measurement "{p.measurement}" '
                                    f"is type {bad[1]}, already exists as type {bad[2]}")
                continue
            for name, kind, _ in p.fields:
                if name not in known and new_fields.setdefault((p.measurement, name), kind) != kind:
                    raise StoreRejected("field type conflict", 400)
            accepted.append(p)
        merged: dict[tuple[int, int, int], dict[str, object]] = {}
        owners: dict[int, _Measurement] = {}
        for p in accepted:
            m = cat.measurements.get((db.name, policy.name, p.measurement))
            if m is None:
                m = self._create_measurement(conn, cat, db.name, policy.name, p.measurement)
                changed = True
            key = (db.name, policy.name, p.measurement)
            for name, kind, _ in p.fields:
                if name not in m.fields:
                    m = cat.touch(key)
                    col = f"f{len(m.fields)}"
                    conn.execute(f'ALTER TABLE {m.table} ADD COLUMN "{col}"')
                    conn.execute("INSERT INTO fields VALUES (?, ?, ?, ?)", (m.id, name, kind, col))
                    m.fields[name] = (kind, col)
                    changed = True
            sid = m.series.get(p.key)
            if sid is None:
                m = cat.touch(key)
                sid = conn.execute("INSERT INTO series (measurement, key, tags) VALUES (?, ?, ?)",
                                   (m.id, p.key, json.dumps(p.tags, ensure_ascii=False))).lastrowid
                m.add_series(sid, p.key, p.tags)
                changed = True
            values = merged.setdefault((m.id, sid, p.time_ns), {})
            owners[m.id] = m
            for name, kind, value in p.fields:
                values[m.fields[name][1]] = int(value) if kind == BOOLEAN else value
        groups: dict[tuple[int, tuple[str, ...]], list[tuple]] = {}
        for (mid, sid, t), values in merged.items():
            cols = tuple(values)
            groups.setdefault((mid, cols), []).append((t, sid, *values.values()))
        for (mid, cols), rows in groups.items():
            names = ", ".join(f'"{c}"' for c in cols)
            sets = ", ".join(f'"{c}" = excluded."{c}"' for c in cols)
            conn.executemany(f"INSERT INTO {owners[mid].table} (time, series, {names}) "
                             f"VALUES ({', '.join('?' * (len(cols) + 2))}) "
                             f"ON CONFLICT (time, series) DO UPDATE SET {sets}", rows)
        if time.monotonic() - self._last_prune > PRUNE_EVERY_S:
            self._prune(conn, cat, now_ns)
        if changed:
            cat.version = self._bump(conn)
        if conflicts:
            return f"partial write: {reason} dropped={conflicts}"
        if beyond:
            return f"partial write: points beyond retention policy dropped={beyond}"
        if failed:
            return "partial write: " + "\n".join(failed) + " dropped=0"
        return None

    def _create_measurement(self, conn, cat: _Catalog, db: str, rp: str, name: str) -> _Measurement:
        mid = conn.execute("INSERT INTO measurements (database, policy, name) VALUES (?, ?, ?)",
                           (db, rp, name)).lastrowid
        m = _Measurement(mid, db, rp, name)
        conn.execute(f"CREATE TABLE {m.table} (time INTEGER NOT NULL, series INTEGER NOT NULL, "
                     "PRIMARY KEY (time, series)) WITHOUT ROWID")
        conn.execute(f'CREATE INDEX "p{mid}_series" ON {m.table} (series, time)')
        cat.measurements[(db, rp, name)] = m
        cat._touched.add((db, rp, name))
        return m

    def _prune(self, conn, cat: _Catalog, now_ns: int) -> None:
        """Delete the points older than their policy's duration (every database of the file)."""
        for (db, rp, _), m in cat.measurements.items():
            policy = cat.databases[db].policies.get(rp) if db in cat.databases else None
            if policy is not None and policy.duration_ns:
                conn.execute(f"DELETE FROM {m.table} WHERE time < ?", (now_ns - policy.duration_ns,))
        self._last_prune = time.monotonic()

    # -- queries -------------------------------------------------------------------------------
    def _parse(self, query: str) -> list:
        try:
            return ql.parse(query)
        except ql.UnsupportedInfluxQL as exc:
            raise UnsupportedQuery(f"InfluxQL {query!r}: {exc}", 400) from None
        except ql.InfluxQLSyntaxError as exc:
            raise StoreRejected(f"InfluxQL {query!r}: error parsing query: {exc}", 400) from None

    def _results(self, query: str) -> list[list[_Series | _Table]]:
        """Each statement's result series; :class:`StoreRejected` at the first that fails."""
        statements = self._parse(query)
        write = any(not isinstance(s, (ql.Select, ql.ShowDatabases, ql.ShowMeasurements,
                                       ql.ShowRetentionPolicies)) for s in statements)

        def run(conn, cat):
            out = []
            for stmt in statements:
                try:
                    out.append(self._statement(conn, cat, stmt))
                except _StatementError as exc:
                    raise StoreRejected(f"InfluxQL {query!r}: {exc}") from None
                except ql.UnsupportedInfluxQL as exc:
                    raise UnsupportedQuery(f"InfluxQL {query!r}: {exc}", 400) from None
                except ql.InfluxQLSyntaxError as exc:
                    raise StoreRejected(f"InfluxQL {query!r}: error parsing query: {exc}", 400) from None
            return out

        return self._transaction(run, write=write)

    def execute(self, statement: str) -> dict:
        """Run statements (CREATE, ALTER, DROP, SHOW, SELECT); returns InfluxDB's JSON answer
        (``{"results": [{"statement_id": 0, …}]}``). Raises :class:`StoreRejected`."""
        out = []
        for i, series in enumerate(self._results(statement)):
            res: dict = {"statement_id": i}
            if series:
                res["series"] = [_series_json(s, None) for s in series]
            out.append(res)
        return {"results": out}

    def query_json(self, query: str, *, epoch: str = "s") -> list[dict]:
        """Run a query and return InfluxDB's ``series`` list (every statement's, in order)."""
        return [_series_json(s, epoch) for series in self._results(query) for s in series]

    def query_csv(self, query: str, *, epoch: str = "s", chunk_size: int = 100_000,
                  dtypes: dict | None = None) -> pd.DataFrame:
        """Run a SELECT and return its rows as :meth:`InfluxStore.query_csv` does: InfluxDB's CSV
        answer parsed by :func:`~vigie.store.influx.csv_frame` (``chunk_size`` is InfluxDB's
        streaming and has no effect here). An empty frame when there is no row; 404
        :class:`StoreRejected` when the database does not exist."""
        results = [s for series in self._results(query) for s in series]
        data = _csv_text(results, epoch)
        if not data:
            return pd.DataFrame()
        return csv_frame(data, dtypes)

    # -- statements ----------------------------------------------------------------------------
    def _statement(self, conn, cat: _Catalog, stmt) -> list[_Series | _Table]:
        if isinstance(stmt, ql.Select):
            return self._select(conn, cat, stmt)
        if isinstance(stmt, ql.ShowDatabases):
            names = list(cat.databases)
            return [_Table("databases", ["name"], [[n] for n in names])] if names else []
        if isinstance(stmt, ql.ShowMeasurements):
            db = self._database(cat, stmt.database)
            names = sorted({m.name for (d, _, _), m in cat.measurements.items() if d == db.name and m.series})
            return [_Table("measurements", ["name"], [[n] for n in names])] if names else []
        if isinstance(stmt, ql.ShowRetentionPolicies):
            db = self._database(cat, stmt.database)
            rows = [[p.name, _go_duration(p.duration_ns), _go_duration(p.shard_ns), p.replication, p.name == db.default]
                    for p in db.policies.values()]
            return [_Table(None, ["name", "duration", "shardGroupDuration", "replicaN", "default"], rows)]
        if isinstance(stmt, ql.CreateDatabase):
            self._create_database(conn, cat, stmt.name)
        elif isinstance(stmt, ql.CreateRetentionPolicy):
            self._create_policy(conn, cat, stmt)
        elif isinstance(stmt, ql.AlterRetentionPolicy):
            self._alter_policy(conn, cat, stmt)
        elif isinstance(stmt, ql.DropSeries):
            self._drop_series(conn, cat, stmt)
        elif isinstance(stmt, ql.DropMeasurement):
            db = self._database(cat, None)
            self._drop_measurements(conn, cat, [m for (d, _, n), m in cat.measurements.items()
                                                 if d == db.name and n == stmt.name])
        elif isinstance(stmt, ql.DropDatabase):
            self._drop_database(conn, cat, stmt.name)
        return []

    def _database(self, cat: _Catalog, name: str | None) -> _Database:
        db = cat.databases.get(name or self.database)
        if db is None:
            if name is None:
                raise StoreRejected(f"embedded store {self.path} has no database {self.database!r}", 404)
            raise _StatementError(f"database not found: {name}")
        return db

    def _create_database(self, conn, cat: _Catalog, name: str) -> None:
        if name in cat.databases:
            return
        conn.execute("INSERT INTO databases VALUES (?)", (name,))
        conn.execute("INSERT INTO policies VALUES (?, 'autogen', 0, ?, 1, 1)", (name, 7 * _DAY_NS))
        cat.version = self._bump(conn)
        db = cat.databases[name] = _Database(name, default="autogen")
        db.policies["autogen"] = _Policy("autogen", 0, 7 * _DAY_NS, 1)

    @staticmethod
    def _shard_ns(duration_ns: int, shard_ns: int | None) -> int:
        if shard_ns:
            return max(shard_ns, _HOUR_NS)
        if duration_ns == 0 or duration_ns >= 180 * _DAY_NS:
            return 7 * _DAY_NS
        return _DAY_NS if duration_ns >= 2 * _DAY_NS else _HOUR_NS

    def _create_policy(self, conn, cat: _Catalog, stmt: ql.CreateRetentionPolicy) -> None:
        db = self._database(cat, stmt.database)
        if 0 < stmt.duration_ns < _HOUR_NS:
            raise _StatementError("retention policy duration must be at least 1h0m0s")
        shard = self._shard_ns(stmt.duration_ns, stmt.shard_ns)
        if stmt.duration_ns and stmt.duration_ns < shard:
            raise _StatementError("retention policy duration must be greater than the shard duration")
        existing = db.policies.get(stmt.name)
        if existing is not None:
            if (existing.duration_ns, existing.replication, existing.shard_ns) != (stmt.duration_ns,
                                                                                   stmt.replication, shard):
                raise _StatementError("retention policy already exists")
            if stmt.default and db.default != stmt.name:
                raise _StatementError("retention policy conflicts with an existing policy")
            return
        conn.execute("INSERT INTO policies VALUES (?, ?, ?, ?, ?, 0)",
                     (db.name, stmt.name, stmt.duration_ns, shard, stmt.replication))
        db.policies[stmt.name] = _Policy(stmt.name, stmt.duration_ns, shard, stmt.replication)
        if stmt.default:
            self._set_default(conn, db, stmt.name)
        cat.version = self._bump(conn)

    def _alter_policy(self, conn, cat: _Catalog, stmt: ql.AlterRetentionPolicy) -> None:
        db = self._database(cat, stmt.database)
        p = db.policies.get(stmt.name)
        if p is None:
            raise _StatementError(f"retention policy not found: {stmt.name}")
        duration = p.duration_ns if stmt.duration_ns is None else stmt.duration_ns
        shard = p.shard_ns if stmt.shard_ns is None else self._shard_ns(duration, stmt.shard_ns)
        if 0 < duration < _HOUR_NS:
            raise _StatementError("retention policy duration must be at least 1h0m0s")
        if duration and duration < shard:
            raise _StatementError("retention policy duration must be greater than the shard duration")
        p.duration_ns, p.shard_ns = duration, shard
        p.replication = p.replication if stmt.replication is None else stmt.replication
        conn.execute("UPDATE policies SET duration_ns = ?, shard_ns = ?, replication = ? "
                     "WHERE database = ? AND name = ?",
                     (p.duration_ns, p.shard_ns, p.replication, db.name, p.name))
        if stmt.default:
            self._set_default(conn, db, p.name)
        cat.version = self._bump(conn)

    @staticmethod
    def _set_default(conn, db: _Database, name: str) -> None:
        conn.execute("UPDATE policies SET is_default = (name = ?) WHERE database = ?", (name, db.name))
        db.default = name

    def _drop_series(self, conn, cat: _Catalog, stmt: ql.DropSeries) -> None:
        db = self._database(cat, stmt.source.database if stmt.source else None)
        names = ql.refs(stmt.condition) if stmt.condition is not None else set()
        if any(n.lower() == "time" for n in names):
            raise _StatementError("DROP SERIES doesn't support time in WHERE clause")
        targets = [m for (d, _, n), m in cat.measurements.items()
                   if d == db.name and (stmt.source is None or n == stmt.source.name)]
        if any(n in m.fields for m in targets for n in names):
            raise _StatementError("fields not supported in WHERE clause during deletion")
        dropped = False
        for m in targets:
            if not m.series:
                continue
            if stmt.condition is None:
                sids = list(m.series.values())
            else:
                frame = m.frame()
                mask = _evaluate(stmt.condition, _Env(m, frame)).to_numpy(dtype=bool, na_value=False)
                sids = frame.index[mask].tolist()
            if not sids:
                continue
            ids = json.dumps(sids)
            conn.execute(f"DELETE FROM {m.table} WHERE series IN (SELECT value FROM json_each(?))", (ids,))
            conn.execute("DELETE FROM series WHERE id IN (SELECT value FROM json_each(?))", (ids,))
            cat.touch((m.database, m.policy, m.name)).drop_series(sids)
            dropped = True
        if dropped:
            cat.version = self._bump(conn)

    def _drop_measurements(self, conn, cat: _Catalog, ms: list[_Measurement]) -> None:
        for m in ms:
            conn.execute(f"DROP TABLE IF EXISTS {m.table}")
            for table, col in (("series", "measurement"), ("fields", "measurement"), ("measurements", "id")):
                conn.execute(f"DELETE FROM {table} WHERE {col} = ?", (m.id,))
            del cat.measurements[(m.database, m.policy, m.name)]
        if ms:
            cat.version = self._bump(conn)

    def _drop_database(self, conn, cat: _Catalog, name: str) -> None:
        if name not in cat.databases:
            return
        self._drop_measurements(conn, cat, [m for (d, _, _), m in cat.measurements.items() if d == name])
        conn.execute("DELETE FROM policies WHERE database = ?", (name,))
        conn.execute("DELETE FROM databases WHERE name = ?", (name,))
        del cat.databases[name]
        cat.version = self._bump(conn)

    # -- SELECT --------------------------------------------------------------------------------
    def _select(self, conn, cat: _Catalog, stmt: ql.Select) -> list[_Series]:
        db = self._database(cat, stmt.source.database)
        rp = stmt.source.policy or self.retention_policy or db.default
        policy = db.policies.get(rp or "")
        if policy is None:
            raise _StatementError(f"retention policy not found: {rp}")
        calls = [f for f in stmt.fields if isinstance(f.expr, ql.Call)]
        if calls and len(calls) != len(stmt.fields):
            raise _StatementError("mixing aggregate and non-aggregate queries is not supported")
        if len(calls) > 1:
            raise ql.UnsupportedInfluxQL("several functions in one SELECT")
        if stmt.group_by and not calls:
            raise ql.UnsupportedInfluxQL("GROUP BY on a SELECT of raw points")
        start, end, cond, lower = ql.split_time(stmt.condition)
        if policy.duration_ns:
            start = max(start, time.time_ns() - policy.duration_ns)
        m = cat.measurements.get((db.name, policy.name, stmt.source.name))
        if m is None or start > end or not m.series:
            return []
        if calls:
            return self._aggregate(conn, m, calls[0], stmt.group_by, start, end, cond, lower)
        return self._raw(conn, m, stmt.fields, start, end, cond, policy.shard_ns)

    @staticmethod
    def _candidates(m: _Measurement, frame: pd.DataFrame, cond) -> np.ndarray | None:
        """Ids of the series ``cond`` may hold for (``None``: every series)."""
        if cond is None:
            return None
        maybe = _evaluate(cond, _Env(m, frame)).to_numpy(dtype=bool, na_value=True)
        return None if maybe.all() else frame.index.to_numpy()[maybe]

    def _fetch(self, conn, m: _Measurement, frame: pd.DataFrame, needed: list[str], any_of: list[str],
               start: int, end: int, cond) -> _Rows | None:
        """The points in ``[start, end]`` of the series ``cond`` may hold for, with at least one of
        the fields ``any_of``; the fields ``needed`` read; ``cond`` applied. ``frame``: the
        measurement's series as this statement sees them."""
        candidates = self._candidates(m, frame, cond)
        if candidates is not None and not len(candidates):
            return None
        cols = [m.fields[n][1] for n in needed]
        sql = f"SELECT series, time, {', '.join(f'{chr(34)}{c}{chr(34)}' for c in cols)} FROM {m.table} " \
              "WHERE time >= ? AND time <= ?"
        params: list = [start, end]
        if candidates is not None:
            sql += " AND series IN (SELECT value FROM json_each(?))"
            params.append(json.dumps(candidates.tolist()))
        sql += " AND (" + " OR ".join(f'"{m.fields[n][1]}" IS NOT NULL' for n in any_of) + ")"
        data = conn.execute(sql, params).fetchall()
        if not data:
            return None
        columns = list(zip(*data))
        series = np.array(columns[0], dtype=np.int64)
        pos = frame.index.get_indexer(series)
        fields = {}
        for name, values in zip(needed, columns[2:]):
            kind = m.fields[name][0]
            if kind == FLOAT:
                arr = np.array(values, dtype=np.float64)
                null = np.isnan(arr)
            elif kind == INTEGER:
                arr = pd.array(values, dtype="Int64")
                null = np.asarray(arr.isna())
            elif kind == BOOLEAN:
                arr = pd.array([None if v is None else bool(v) for v in values], dtype="boolean")
                null = np.asarray(arr.isna())
            else:
                arr = np.array(values, dtype=object)
                null = np.array([v is None for v in values], dtype=bool)
            fields[name] = (kind, arr, null)
        rows = _Rows(series, pos, np.array(columns[1], dtype=np.int64), fields)
        keep = pos >= 0   # series dropped since this snapshot's catalog
        if cond is not None:
            keep &= _evaluate(cond, _Env(m, frame, rows)).to_numpy(dtype=bool, na_value=False)
        if not keep.all():
            rows = rows.take(np.flatnonzero(keep))
        return rows if len(rows) else None

    def _cond_fields(self, m: _Measurement, cond) -> list[str]:
        return sorted(n for n in (ql.refs(cond) if cond is not None else ()) if n in m.fields)

    def _raw(self, conn, m: _Measurement, fields: Sequence[ql.SelectField], start: int, end: int,
             cond, shard_ns: int) -> list[_Series]:
        tag_keys = set(m.tag_keys())
        out: list[tuple[str, str, str]] = []   # (column, kind field|tag|null, name)
        for f in fields:
            if isinstance(f.expr, ql.Wildcard):
                for name in sorted(set(m.fields) | tag_keys):
                    out.append((name, "field" if name in m.fields else "tag", name))
                continue
            name = f.expr.name
            kind = "field" if name in m.fields else "tag" if name in tag_keys else "null"
            out.append((f.alias or name, kind, name))
        selected = list(dict.fromkeys(n for _, k, n in out if k == "field"))
        if not selected:
            return []
        needed = list(dict.fromkeys(selected + self._cond_fields(m, cond)))
        frame = m.frame()
        rows = self._fetch(conn, m, frame, needed, selected, start, end, cond)
        if rows is None:
            return []

        def column(kind: str, name: str) -> tuple[str, object]:
            if kind == "field":
                return rows.fields[name][0], rows.fields[name][1]
            if kind == "tag":
                col = frame[name].to_numpy()[rows.pos]
                return "tag", np.where(pd.isna(col), None, col)
            return "null", np.full(len(rows), None, dtype=object)

        # InfluxDB breaks ties between series on the selected columns sorted by name (its "aux").
        aux = []
        for kind, name in sorted({(k, n) for _, k, n in out}, key=lambda kn: kn[1]):
            k, v = column(kind, name)
            aux.append(v if k in (STRING, "tag") else np.full(len(rows), None, dtype=object))
        rows = rows.take(merge_order(rows.time, frame["_rank"].to_numpy()[rows.pos], aux, shard_ns))
        return [_Series(m.name, None, [c for c, _, _ in out], rows.time, [column(k, n) for _, k, n in out])]

    def _aggregate(self, conn, m: _Measurement, f: ql.SelectField, group_by: Sequence[str], start: int, end: int,
                   cond, lower: int | None) -> list[_Series]:
        call = f.expr
        name = call.arg.name
        if name not in m.fields:
            return []
        kind = m.fields[name][0]
        if call.func in ("max", "min") and kind not in (FLOAT, INTEGER):
            raise _StatementError(f"unsupported {call.func} iterator type: {kind}")
        frame = m.frame()
        rows = self._fetch(conn, m, frame, list(dict.fromkeys([name] + self._cond_fields(m, cond))), [name],
                           start, end, cond)
        if rows is None:
            return []
        env = _Env(m, frame, rows)
        dims = sorted(set(group_by))
        _, values, _ = rows.fields[name]
        df = pd.DataFrame({**{f"d{i}": env.tag(d) for i, d in enumerate(dims)},
                           "time": rows.time, "rank": env.frame["_rank"].to_numpy()[rows.pos],
                           "i": np.arange(len(rows))})
        keys = [f"d{i}" for i in range(len(dims))]
        if call.func == "count":
            counted = df.groupby(keys, sort=True).size() if keys else pd.Series([len(df)])
            picked = None
        else:
            if call.func in ("max", "min"):
                df["v"] = (np.asarray(values, dtype=np.float64) if kind == FLOAT
                           else values.to_numpy(dtype=np.float64, na_value=np.nan))
                order, asc = keys + ["v", "time", "rank"], [True] * len(keys) + [call.func == "min", True, True]
            else:
                order, asc = keys + ["time", "rank"], [True] * len(keys) + [call.func == "first", True]
            picked = df.sort_values(order, ascending=asc, kind="stable")
            picked = picked.drop_duplicates(keys) if keys else picked.iloc[:1]
        column = f.alias or call.func
        out = []
        if picked is None:
            stamp = lower if lower is not None else 0
            items = counted.items() if keys else [((), int(counted.iloc[0]))]
            for key, n in items:
                key = key if isinstance(key, tuple) else (key,)
                tags = dict(zip(dims, key)) if group_by else None
                out.append(_Series(m.name, tags, [column], np.array([stamp], np.int64),
                                   [(INTEGER, pd.array([int(n)], dtype="Int64"))]))
            return out
        for row in picked.itertuples(index=False):
            i = int(row.i)
            tags = {d: getattr(row, f"d{j}") for j, d in enumerate(dims)} if group_by else None
            out.append(_Series(m.name, tags, [column], np.array([int(row.time)], np.int64), [(kind, values[i:i + 1])]))
        return out


# --- InfluxDB's row order ------------------------------------------------------------------------

#: Go's zero time (0001-01-01) to the Unix epoch, ns: shard groups start at multiples of their
#: duration since the zero time (``time.Time.Truncate``), so weekly ones start on Mondays.
_ZERO_TIME_NS = 62_135_596_800 * 1_000_000_000


def merge_order(time_ns: np.ndarray, rank: np.ndarray, aux: list[np.ndarray], shard_ns: int) -> np.ndarray:
    """The order in which InfluxDB 1.x returns the rows of a raw SELECT: by time, and points of
    different series at the same time in the order of its merge of the series (a Go
    ``container/heap`` over the series in key order, one heap per shard group), the heap
    comparing two points by time, then by their ``aux`` values (the selected columns sorted by
    name) for as long as both are strings. ``rank``: each row's series in series-key order.

    Returns the row indices in that order. Without ties, or when the string values settle every
    tie, this is a sort; otherwise the shard group's heap is replayed, as InfluxDB runs it."""
    n = len(time_ns)
    by_series = np.lexsort((time_ns, rank))
    if n < 2:
        return by_series
    boundary = (-_ZERO_TIME_NS) % shard_ns
    shard = (time_ns - boundary) // shard_ns
    by_time = np.lexsort((rank, time_ns))
    t_sorted = time_ns[by_time]
    tied = np.zeros(n, bool)
    same = t_sorted[1:] == t_sorted[:-1]
    tied[by_time[1:][same]] = True
    tied[by_time[:-1][same]] = True
    if not tied.any():
        return by_time
    keys = [tuple(_tie_key(aux, i)) for i in range(n)] if aux else [()] * n
    out = []
    for sh in np.unique(shard):
        in_shard = shard == sh
        rows = by_series[in_shard[by_series]]
        if _settled(rows, time_ns, tied, keys):
            out.append(np.array(sorted(rows.tolist(), key=lambda i: (time_ns[i], keys[i])), dtype=np.int64))
        else:
            out.append(_heap_merge(rows, rank, time_ns, keys))
    return np.concatenate(out)


def _tie_key(aux: list[np.ndarray], i: int) -> list[str]:
    key = []
    for col in aux:
        v = col[i]
        if not isinstance(v, str):
            break
        key.append(v)
    return key


def _settled(rows: np.ndarray, time_ns: np.ndarray, tied: np.ndarray, keys: list[tuple]) -> bool:
    """Whether the string values settle every tie among ``rows``: within each instant, keys of one
    length and all distinct (then Go's comparison is a total order on them, and the heap pops
    them sorted)."""
    seen: dict[int, set] = {}
    length: dict[int, int] = {}
    for i in rows[tied[rows]].tolist():
        t, k = int(time_ns[i]), keys[i]
        if length.setdefault(t, len(k)) != len(k) or k in seen.setdefault(t, set()):
            return False
        seen[t].add(k)
    return True


def _heap_merge(rows: np.ndarray, rank: np.ndarray, time_ns: np.ndarray, keys: list[tuple]) -> np.ndarray:
    """InfluxDB's sorted merge of the series of one shard group, replayed: Go's ``heap.Init``,
    then ``heap.Pop`` of the least point and ``heap.Push`` of its series' next one (Go's
    ``container/heap`` algorithm, so that points it holds equal come out in its order)."""
    t = time_ns.tolist()
    bounds = np.flatnonzero(np.diff(rank[rows])) + 1
    series = [blk.tolist() for blk in np.split(rows, bounds)]   # each series' rows, in time order
    # Heap items: [time, tie key, series, position of the series' next row]; comparisons inline.
    h = [[t[rs[0]], keys[rs[0]], s, 0] for s, rs in enumerate(series)]

    def lt(a: list, b: list) -> bool:
        return a[0] < b[0] or (a[0] == b[0] and _key_less(a[1], b[1]))

    def down(i: int, n: int) -> None:
        while True:
            j = 2 * i + 1
            if j >= n:
                return
            if j + 1 < n:
                x, y = h[j + 1], h[j]
                if x[0] < y[0] or (x[0] == y[0] and x[1] and y[1] and _key_less(x[1], y[1])):
                    j += 1
            x, y = h[j], h[i]
            if not (x[0] < y[0] or (x[0] == y[0] and x[1] and y[1] and _key_less(x[1], y[1]))):
                return
            h[i], h[j] = x, y
            i = j

    def up(j: int) -> None:
        while j > 0:
            i = (j - 1) // 2
            if not lt(h[j], h[i]):
                return
            h[i], h[j] = h[j], h[i]
            j = i

    for i in range(len(h) // 2 - 1, -1, -1):
        down(i, len(h))
    out = []
    while h:
        last = len(h) - 1
        h[0], h[last] = h[last], h[0]
        down(0, last)
        item = h.pop()
        rs = series[item[2]]
        out.append(rs[item[3]])
        item[3] += 1
        if item[3] < len(rs):
            row = rs[item[3]]
            item[0], item[1] = t[row], keys[row]
            h.append(item)
            up(len(h) - 1)
    return np.array(out, dtype=np.int64)


def _key_less(x: tuple, y: tuple) -> bool:
    """Go's tie-break: the first differing value decides, while both are strings (a key ends at
    the first value that is not)."""
    for v1, v2 in zip(x, y):
        if v1 != v2:
            return v1 < v2
    return False


def _go_duration(ns: int) -> str:
    """A duration as Go prints it (``2160h0m0s``, ``0s``)."""
    if ns == 0:
        return "0s"
    h, rest = divmod(ns, _HOUR_NS)
    m, rest = divmod(rest, 60_000_000_000)
    s = rest / 1e9
    s_text = f"{s:.9f}".rstrip("0").rstrip(".") + "s"
    if h:
        return f"{h}h{m}m{s_text}"
    return f"{m}m{s_text}" if m else s_text
