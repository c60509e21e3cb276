"""InfluxDB client over the v1 HTTP API: line protocol on ``/write``, InfluxQL on ``/query``.

The v1 API is served by InfluxDB 1.x, by 2.x (v1 compatibility endpoints, with a DBRP mapping)
and by 3.x, so this is the one client for all of them. Reference:
https://docs.influxdata.com/influxdb/v1/tools/api/

Errors: :class:`StoreUnavailable` when the server cannot be reached or answers 5xx (retry later,
nothing was written for sure), :class:`StoreRejected` when it refuses the request (4xx: bad line
protocol, field type conflict, bad query); the message is InfluxDB's own.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import httpx
import pandas as pd


class StoreError(Exception):
    """Base class for store errors."""


class StoreUnavailable(StoreError):
    """The server could not be reached or failed (5xx); retrying later may succeed."""


class StoreRejected(StoreError):
    """The server refused the request (4xx); retrying the same request will fail again.
    ``status`` is the HTTP status (400 bad line protocol or partial write, 401/403 credentials,
    404 no such database)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def quote_ident(name: str) -> str:
    """An InfluxQL identifier in double quotes."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_str(value: str) -> str:
    """An InfluxQL string literal in single quotes."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def time_literal(t: datetime) -> str:
    """A timestamp literal for a WHERE clause (RFC 3339, UTC)."""
    return quote_str(pd.Timestamp(t).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%S.%fZ"))


def csv_frame(data: bytes, dtypes: dict | None = None) -> pd.DataFrame:
    """InfluxDB's CSV answer (one header, then ``name,tags,time,<columns>`` rows) as a DataFrame,
    ``dtypes`` forcing column types. Both stores' ``query_csv`` parse with it: the embedded store
    renders InfluxDB's CSV text, so pandas infers the same types from the same text."""
    return pd.read_csv(io.BytesIO(data), dtype={"tags": str, **(dtypes or {})}, low_memory=False)


# InfluxQL durations a retention policy accepts here: INF, or whole hours, days or weeks (InfluxDB
# refuses policies shorter than one hour).
DURATION_RE = re.compile(r"^(INF|[1-9][0-9]*[hdw])$")
_SHOWN_RE = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def _hours(duration: str) -> float:
    """Hours of a policy duration, as configured (``90d``, ``INF``) or as ``SHOW RETENTION
    POLICIES`` gives it (``2160h0m0s``, ``0s``); INF is 0, as InfluxDB stores it."""
    if duration == "INF":
        return 0.0
    if DURATION_RE.match(duration):
        return int(duration[:-1]) * {"h": 1, "d": 24, "w": 168}[duration[-1]]
    m = _SHOWN_RE.match(duration)
    if not m or not duration:
        raise ValueError(f"unexpected retention policy duration {duration!r}")
    h, mins, s = (int(x or 0) for x in m.groups())
    return h + mins / 60 + s / 3600


@dataclass(frozen=True)
class RetentionPolicy:
    """A retention policy to keep in step: ``name``, ``duration`` (InfluxQL: ``90d``, ``52w``,
    ``INF``) and the ``purpose`` writers look it up by (``aggregates``, ``events``). Points older
    than the duration are dropped by InfluxDB itself, and a write of a point already older than it
    is refused."""

    name: str
    duration: str = "INF"
    purpose: str = ""

    def __post_init__(self) -> None:
        if not DURATION_RE.match(self.duration):
            raise ValueError(f"retention policy {self.name!r}: duration {self.duration!r} is not INF or "
                             "a whole number of h, d or w (at least 1h)")


class InfluxStore:
    """A database on an InfluxDB server, spoken to over the v1 HTTP API.

    ``url`` e.g. ``http://127.0.0.1:8086``; ``retention_policy`` is where writes go (``None``: the
    database's default). ``policies`` are further retention policies :meth:`ensure_database` keeps in
    step (e.g. shorter-lived raw home events, longer-lived aggregates) and that writes and FROM
    clauses may name. Thread-safe: one pooled :class:`httpx.Client`.
    """

    def __init__(self, url: str, database: str, *, username: str | None = None,
                 password: str | None = None, retention_policy: str | None = None,
                 policies: Sequence[RetentionPolicy] = (), timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.database = database
        self.retention_policy = retention_policy
        self.policies = tuple(policies)
        self._database_seen = False
        auth = (username, password or "") if username else None
        self._http = httpx.Client(base_url=self.url, auth=auth, timeout=timeout)

    @classmethod
    def from_settings(cls, settings) -> "InfluxStore":
        pw = settings.influx_password.get_secret_value() if settings.influx_password else None
        return cls(settings.influx_url, settings.influx_database, username=settings.influx_username,
                   password=pw, retention_policy=settings.influx_retention_policy,
                   policies=settings.influx_extra_policies())

    @property
    def location(self) -> str:
        """Where the data are, for messages: the server's URL."""
        return self.url

    def close(self) -> None:
        self._http.close()

    # -- plumbing ------------------------------------------------------------------------------
    def _request(self, method: str, path: str, **kw) -> httpx.Response:
        try:
            r = self._http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise StoreUnavailable(f"InfluxDB at {self.url} unreachable: {exc}") from exc
        if r.status_code >= 500:
            raise StoreUnavailable(f"InfluxDB {path} answered {r.status_code}: {r.text[:300]}")
        if r.status_code >= 400:
            raise StoreRejected(f"InfluxDB {path} refused the request ({r.status_code}): {r.text[:500]}",
                                r.status_code)
        return r

    def ping(self) -> bool:
        """True when the server answers ``/ping``."""
        try:
            return self._http.get("/ping", timeout=3).status_code == 204
        except httpx.HTTPError:
            return False

    # -- schema --------------------------------------------------------------------------------
    def execute(self, statement: str) -> dict:
        """Run a management statement (CREATE, ALTER, DROP, DELETE); returns the JSON answer."""
        r = self._request("POST", "/query", data={"q": statement, "db": self.database})
        body = r.json()
        for res in body.get("results", []):
            if "error" in res:
                raise StoreRejected(f"InfluxQL {statement!r}: {res['error']}")
        return body

    def ensure_database(self, retention_duration: str = "INF") -> None:
        """Create the database if missing; create the writes' retention policy (as the database's
        default) and every policy of ``self.policies``, or bring their durations in step.

        ``retention_duration`` is the writes' policy duration (``730d``, ``INF``…).

        Only what is missing or differs is created or altered, so an account without admin rights
        (``GRANT ALL`` on the database, docs/security.md) passes once an admin has run this (``vigie
        influx setup``); when it would have to change something, :class:`StoreRejected` (403) says so.
        """
        wanted = [(p, False) for p in self.policies]
        if self.retention_policy:
            wanted.insert(0, (RetentionPolicy(self.retention_policy, retention_duration), True))
        names = {v[0] for s in self.query_json("SHOW DATABASES") for v in s.get("values", [])}
        current: dict[str, tuple[str, bool]] = {}
        if self.database in names:
            for s in self.query_json(f"SHOW RETENTION POLICIES ON {quote_ident(self.database)}"):
                for row in s.get("values", []):
                    rec = dict(zip(s["columns"], row))
                    current[rec["name"]] = (rec["duration"], bool(rec["default"]))
        try:
            if self.database not in names:
                self.execute(f"CREATE DATABASE {quote_ident(self.database)}")
            for policy, default in wanted:
                shown = current.get(policy.name)
                if shown is None or _hours(shown[0]) != _hours(policy.duration) or (default and not shown[1]):
                    self._ensure_policy(policy, default=default)
        except StoreRejected as exc:
            if exc.status != 403:
                raise
            raise StoreRejected(f"{exc}; the InfluxDB database {self.database!r} or one of its retention policies "
                                "is missing or differs from the settings, and only an admin may change them: run "
                                "`vigie influx setup` with an admin's VIGIE_INFLUX_USERNAME/VIGIE_INFLUX_PASSWORD",
                                403) from exc

    def _ensure_policy(self, policy: RetentionPolicy, *, default: bool) -> None:
        rp, db = quote_ident(policy.name), quote_ident(self.database)
        suffix = " DEFAULT" if default else ""
        try:
            self.execute(f"CREATE RETENTION POLICY {rp} ON {db} DURATION {policy.duration} REPLICATION 1{suffix}")
        except StoreRejected as exc:
            if "already exists" not in str(exc):
                raise
            self.execute(f"ALTER RETENTION POLICY {rp} ON {db} DURATION {policy.duration}{suffix}")

    def retention_policies(self) -> dict[str, str]:
        """The database's retention policies: name → duration as InfluxDB shows it (``2160h0m0s``,
        ``0s`` for INF)."""
        series = self.query_json(f"SHOW RETENTION POLICIES ON {quote_ident(self.database)}")
        out = {}
        for s in series:
            cols = s["columns"]
            for row in s.get("values", []):
                rec = dict(zip(cols, row))
                out[rec["name"]] = rec["duration"]
        return out

    def policy_for(self, purpose: str) -> str | None:
        """The name of the policy kept for ``purpose``; ``None`` (the writes' policy) if none is."""
        return next((p.name for p in self.policies if p.purpose == purpose), None)

    def measurement(self, name: str, retention_policy: str | None = None) -> str:
        """A measurement for a FROM clause, qualified by ``retention_policy`` when one is given
        (``"vigie_aggregates"."leak_check"``); unqualified names read the writes' policy."""
        if retention_policy:
            return f"{quote_ident(retention_policy)}.{quote_ident(name)}"
        return quote_ident(name)

    # -- writes --------------------------------------------------------------------------------
    def write_lines(self, lines: Sequence[str] | str, precision: str = "s",
                    retention_policy: str | None = None) -> None:
        """POST line protocol to ``/write``. ``lines`` one point each; ``precision`` n|u|ms|s;
        ``retention_policy`` overrides the store's for this write.

        A point with the same measurement, tag set and timestamp as a stored one replaces its
        fields, so writing a batch twice leaves one copy.
        """
        body = lines if isinstance(lines, str) else "\n".join(lines)
        if not body:
            return
        params = {"db": self.database, "precision": precision}
        if retention_policy or self.retention_policy:
            params["rp"] = retention_policy or self.retention_policy
        self._request("POST", "/write", params=params, content=body.encode("utf-8"))

    # -- reads ---------------------------------------------------------------------------------
    def query_csv(self, query: str, *, epoch: str = "s", chunk_size: int = 100_000,
                  dtypes: dict | None = None) -> pd.DataFrame:
        """Run a SELECT and return its rows as a DataFrame (columns: ``name``, ``tags``, ``time``
        as integer epoch in ``epoch`` units, then the selected columns). ``dtypes`` forces column
        types (ids must stay strings: ``{"meter_id": str}``).

        The answer is streamed as chunked CSV, InfluxDB 1.x's fastest output (about twice the row
        rate of JSON), and parsed by pandas' C reader.
        """
        params = {"db": self.database, "q": query, "epoch": epoch, "chunked": "true",
                  "chunk_size": str(chunk_size)}
        if self.retention_policy:
            params["rp"] = self.retention_policy
        buf = io.BytesIO()
        try:
            with self._http.stream("GET", "/query", params=params, headers={"Accept": "application/csv"}) as r:
                if r.status_code >= 400:
                    r.read()
                    if r.status_code >= 500:
                        raise StoreUnavailable(f"InfluxQL {query!r}: {r.status_code} {r.text[:300]}")
                    raise StoreRejected(f"InfluxQL {query!r}: {r.status_code} {r.text[:300]}", r.status_code)
                for chunk in r.iter_bytes():
                    buf.write(chunk)
        except httpx.HTTPError as exc:
            raise StoreUnavailable(f"InfluxDB at {self.url} unreachable: {exc}") from exc
        data = buf.getvalue()
        if not data.strip():
            # InfluxDB 1.x answers a CSV query on a missing database with an empty 200, the same
            # as "no rows": tell them apart so a wrong database name is not read as "no data".
            self._check_database_exists()
            return pd.DataFrame()
        header, _, rest = data.partition(b"\n")
        if not header.startswith(b"name,tags,"):
            raise StoreRejected(f"InfluxQL {query!r}: {data[:300].decode(errors='replace')}")
        # Chunked output may repeat the header at a chunk or series boundary.
        rest = rest.replace(b"\n" + header + b"\n", b"\n")
        if rest.startswith(header + b"\n"):
            rest = rest[len(header) + 1:]
        return csv_frame(header + b"\n" + rest, dtypes)

    def _check_database_exists(self) -> None:
        """:class:`StoreRejected` (404) when the database does not exist; a database seen once is
        not asked about again."""
        if self._database_seen:
            return
        names = {v[0] for s in self.query_json("SHOW DATABASES") for v in s.get("values", [])}
        if self.database not in names:
            raise StoreRejected(f"InfluxDB at {self.url} has no database {self.database!r}", 404)
        self._database_seen = True

    def query_json(self, query: str, *, epoch: str = "s") -> list[dict]:
        """Run a query and return InfluxDB's ``series`` list (for small answers: SHOW, aggregates)."""
        params = {"db": self.database, "q": query, "epoch": epoch}
        if self.retention_policy:
            params["rp"] = self.retention_policy
        body = self._request("GET", "/query", params=params).json()
        out: list[dict] = []
        for res in body.get("results", []):
            if "error" in res:
                raise StoreRejected(f"InfluxQL {query!r}: {res['error']}")
            out.extend(res.get("series", []))
        return out

