"""Grafana's expansion of a panel query before it reaches the data source, reproduced so that tests can
run the dashboards' queries against a real InfluxDB and PostgreSQL.

Reproduced from Grafana's source (Grafana 10.4–11; reference only, nothing copied):

- the interval (frontend, ``@grafana/data`` ``rangeutil.calculateInterval``): ``(to − from) /
  maxDataPoints`` rounded by ``roundInterval``'s ladder, raised to the panel's minimum interval
  (panel ``interval``, else the data source's ``timeInterval``, 15m for vigie-influxdb);
  ``$__interval`` is that as Grafana formats it (largest whole unit: ``1h``, ``15m``, ``1d``);
- template variables (frontend ``templateSrv.replace``): ``$name``, ``${name}``, ``[[name]]``; for
  InfluxDB (``interpolateQueryExpr``) a single-valued variable is inserted as it is, a multi-value
  or "include All" one as ``(v1|v2)`` with regex characters escaped; for PostgreSQL
  (``interpolateVariable``) multi-values are quoted and comma-joined; global ``$__from``/``$__to``
  are epoch milliseconds;
- InfluxQL (backend ``pkg/tsdb/influxdb/models/query.go``): ``$timeFilter`` →
  ``time >= <from>ms and time <= <to>ms``, then ``$interval``, ``$__interval_ms``,
  ``$__interval``;
- PostgreSQL (backend ``pkg/tsdb/grafana-postgresql-datasource/macros.go``): ``$__timeFilter(c)``
  → ``c BETWEEN '<from RFC3339>' AND '<to RFC3339>'``, ``$__timeFrom()``, ``$__timeTo()``,
  ``$__timeGroup(c, '1d')`` → ``floor(extract(epoch from c)/86400)*86400`` (``…Alias``: ``AS "time"``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from grafana.schema import VARIABLE_RE

#: The vigie-influxdb data source's minimum interval (jsonData.timeInterval).
INFLUX_MIN_INTERVAL = "15m"
#: maxDataPoints of a panel about 1 200 px wide (Grafana uses the panel's width in pixels).
DEFAULT_MAX_DATA_POINTS = 1200

_UNIT_MS = {"y": 31_536_000_000, "M": 2_592_000_000, "w": 604_800_000, "d": 86_400_000, "h": 3_600_000,
            "m": 60_000, "s": 1000, "ms": 1}
# roundInterval's ladder: (below this many ms, use this interval in ms).
_LADDER = ((10, 1), (15, 10), (35, 20), (75, 50), (150, 100), (350, 200), (750, 500), (1500, 1000),
           (3500, 2000), (7500, 5000), (12500, 10_000), (17500, 15_000), (25000, 20_000), (45000, 30_000),
           (90000, 60_000), (210_000, 120_000), (450_000, 300_000), (750_000, 600_000), (1_050_000, 900_000),
           (1_500_000, 1_200_000), (2_700_000, 1_800_000), (5_400_000, 3_600_000), (9_000_000, 7_200_000),
           (16_200_000, 10_800_000), (32_400_000, 21_600_000), (86_400_000, 43_200_000),
           (604_800_000, 86_400_000), (1_814_400_000, 604_800_000), (3_628_800_000, 2_592_000_000))


def interval_to_ms(text: str) -> int:
    """``"15m"`` → 900 000 (Grafana's ``intervalToMs``; a bare number is seconds)."""
    m = re.fullmatch(r"(\d+)(ms|[yMwdhms])?", text.strip())
    if not m:
        raise ValueError(f"not a Grafana interval: {text!r}")
    return int(m.group(1)) * _UNIT_MS[m.group(2) or "s"]


def round_interval(ms: float) -> int:
    for below, value in _LADDER:
        if ms < below:
            return value
    return 31_536_000_000


def format_interval(ms: int) -> str:
    """The interval as ``$__interval`` shows it: the largest unit it holds at least once, floored
    (``5400000`` → ``1h``)."""
    for unit in ("y", "d", "h", "m", "s", "ms"):
        if ms >= _UNIT_MS[unit]:
            return f"{ms // _UNIT_MS[unit]}{unit}"
    return "1ms"


@dataclass(frozen=True)
class QueryTime:
    """A dashboard time range (aware datetimes) and the panel's interval in ms."""

    start: datetime
    end: datetime
    interval_ms: int

    @classmethod
    def of(cls, start: datetime, end: datetime, *, min_interval: str | None = INFLUX_MIN_INTERVAL,
           max_data_points: int = DEFAULT_MAX_DATA_POINTS) -> "QueryTime":
        """The interval Grafana computes for a panel over ``[start, end]``."""
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError("time range bounds must be timezone-aware")
        span_ms = (end - start).total_seconds() * 1000
        interval = round_interval(span_ms / max_data_points)
        if min_interval:
            interval = max(interval, interval_to_ms(min_interval))
        return cls(start, end, interval)

    @property
    def from_ms(self) -> int:
        return int(self.start.timestamp() * 1000)

    @property
    def to_ms(self) -> int:
        return int(self.end.timestamp() * 1000)


@dataclass(frozen=True)
class VariableValue:
    """A template variable's current value(s); ``multi``: the variable is multi-value or "include
    All" (then Grafana formats it as a list even with one value)."""

    values: tuple[str, ...]
    multi: bool = False


_REGEX_SPECIAL = re.compile(r"[\\^$*+?.()|[\]{}/]")


def _regex_escape(value: str) -> str:
    return _REGEX_SPECIAL.sub(lambda m: "\\" + m.group(0), value)


def _influx_format(v: VariableValue) -> str:
    if not v.multi:
        return v.values[0]
    escaped = [_regex_escape(x) for x in v.values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def _sql_format(v: VariableValue) -> str:
    if not v.multi:
        return v.values[0]
    return ",".join("'" + x.replace("'", "''") + "'" for x in v.values)


def _replace_variables(text: str, variables: Mapping[str, VariableValue], qt: QueryTime, fmt) -> str:
    scoped = {"__from": str(qt.from_ms), "__to": str(qt.to_ms), "__interval": format_interval(qt.interval_ms),
              "__interval_ms": str(qt.interval_ms)}

    def one(m: re.Match) -> str:
        name = m.group(1) or m.group(2) or m.group(4)
        if name in scoped:
            return scoped[name]
        if name in variables:
            return fmt(variables[name])
        return m.group(0)   # not a variable: a data source macro ($timeFilter, $__timeFilter(…))

    return VARIABLE_RE.sub(one, text)


def expand_influxql(query: str, qt: QueryTime, variables: Mapping[str, VariableValue] = {}) -> str:
    """The InfluxQL Grafana sends to InfluxDB for a raw query."""
    text = _replace_variables(query, variables, qt, _influx_format)
    interval = format_interval(qt.interval_ms)
    text = text.replace("$timeFilter", f"time >= {qt.from_ms}ms and time <= {qt.to_ms}ms")
    text = text.replace("$interval", interval)
    text = text.replace("$__interval_ms", str(qt.interval_ms))
    return text.replace("$__interval", interval)


def _rfc3339(t: datetime) -> str:
    # Go's time.RFC3339Nano in UTC: trailing zeros of the fraction dropped, "Z".
    t = t.astimezone(timezone.utc)
    frac = f"{t.microsecond:06d}".rstrip("0")
    return t.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac}" if frac else "") + "Z"


_SQL_MACRO = re.compile(r"\$([_a-zA-Z0-9]+)\(([^)]*)\)")


def expand_sql(sql: str, qt: QueryTime, variables: Mapping[str, VariableValue] = {}) -> str:
    """The SQL Grafana's PostgreSQL data source runs for a raw query."""
    text = _replace_variables(sql, variables, qt, _sql_format)
    lo, hi = _rfc3339(qt.start), _rfc3339(qt.end)

    def macro(m: re.Match) -> str:
        name, args = m.group(1), [a.strip() for a in m.group(2).split(",")]
        if name == "__timeFilter":
            return f"{args[0]} BETWEEN '{lo}' AND '{hi}'"
        if name == "__timeFrom":
            return f"'{lo}'"
        if name == "__timeTo":
            return f"'{hi}'"
        if name in ("__timeGroup", "__timeGroupAlias"):
            seconds = interval_to_ms(args[1].strip("'")) / 1000
            step = f"{seconds:g}"
            group = f"floor(extract(epoch from {args[0]})/{step})*{step}"
            return group + (' AS "time"' if name == "__timeGroupAlias" else "")
        raise ValueError(f"SQL macro ${name} is not reproduced here")

    return _SQL_MACRO.sub(macro, text)


def variable_values(rows: Sequence[str], *, multi: bool, pick: Sequence[str] | None = None) -> VariableValue:
    """The value Grafana gives a variable whose query listed ``rows``: ``pick`` (must be listed), or
    "All" (every row) for a multi-value variable, else the first row."""
    if not rows:
        raise ValueError("the variable's query listed no value")
    if pick is not None:
        missing = set(pick) - set(rows)
        if missing:
            raise ValueError(f"values {sorted(missing)} are not among the variable's {list(rows)[:10]}")
        return VariableValue(tuple(pick), multi)
    return VariableValue(tuple(rows) if multi else (rows[0],), multi)
