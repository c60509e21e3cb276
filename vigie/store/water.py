"""The water schema in InfluxDB (documented in docs/schema.md).

- measurement ``water_reading``: tag ``meter_id``; fields ``index_m3`` (float, m³),
  ``flow_l_per_h``, ``battery_pct``, ``battery_life_y`` (floats, when the meter gives them),
  ``alarms`` (string, normalised flags space-separated, "" when none), ``status`` (string, the
  meter's own status text); timestamp = reading time, precision s. Same meter and second = same
  point, so a re-delivered reading overwrites itself.
- measurement ``leak_check`` (aggregates retention policy): tags ``meter_id``, ``rule``; fields ``status`` (string: leak, ok,
  insufficient_data), ``rate_l_per_h``, ``night_flow_l_per_h``, ``volume_l``, ``coverage``
  (floats), ``detail`` (string); timestamp = local midnight starting the checked day, precision s.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pandas as pd
from influxdb_client import Point, WritePrecision

from vigie.records import CheckResult, CheckStatus, LeakRule, MeterReading
from vigie.store.influx import InfluxStore, quote_ident, quote_str, time_literal

READING = "water_reading"
CHECK = "leak_check"


# Line-protocol escapes, as influxdb-client's Point applies them (tests/test_reading_line.py
# checks byte equality with Point for arbitrary readings).
_TAG_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n", "\t": r"\t", "\r": r"\r"})
_STRING_ESCAPES = str.maketrans({'"': r'\"', "\\": r"\\"})


def reading_line(r: MeterReading) -> str:
    """One reading as a line-protocol line (precision s), byte for byte what influxdb-client's
    ``Point`` gives for the ``water_reading`` schema: fields sorted by name, non-finite floats and
    ``None`` fields left out, floats as ``str`` without a trailing ``.0``.

    Written out for this one schema because it runs once per ingested reading: ``Point`` costs
    ~16 µs a reading, this ~3 µs. Raises :class:`TypeError`/:class:`ValueError` for a field that
    is not a number (index, flow, battery) or not text (status)."""
    meter_id = r.meter_id.translate(_TAG_ESCAPES)
    if meter_id.endswith("\\"):
        meter_id += " "
    fields = [f'alarms="{" ".join(r.alarms).translate(_STRING_ESCAPES)}"']
    for name, value in (("battery_life_y", r.battery_life_y), ("battery_pct", r.battery_pct),
                        ("flow_l_per_h", r.flow_l_per_h), ("index_m3", r.index_m3)):
        if value is not None and math.isfinite(value := float(value)):
            text = str(value)
            fields.append(f"{name}={text[:-2] if text.endswith('.0') else text}")
    if r.status_raw is not None:
        if not isinstance(r.status_raw, str):
            raise TypeError(f"status must be text, not {type(r.status_raw).__name__}")
        fields.append(f'status="{r.status_raw.translate(_STRING_ESCAPES)}"')
    tags = f",meter_id={meter_id} " if meter_id else " "
    return f"{READING}{tags}{','.join(fields)} {int(r.time.timestamp())}"


def check_line(c: CheckResult, tz: ZoneInfo) -> str:
    """One check result as a line-protocol line (precision s)."""
    start = datetime.combine(c.day, time(0), tzinfo=tz)
    p = (Point(CHECK).tag("meter_id", c.meter_id).tag("rule", str(c.rule))
         .field("status", str(c.status)).field("detail", c.detail))
    for name in ("rate_l_per_h", "night_flow_l_per_h", "volume_l", "coverage"):
        v = getattr(c, name)
        if v is not None:
            p.field(name, float(v))
    p.time(int(start.timestamp()), WritePrecision.S)
    return p.to_line_protocol()


def write_readings(store: InfluxStore, readings: Iterable[MeterReading]) -> None:
    store.write_lines([reading_line(r) for r in readings], precision="s")


def source(store: InfluxStore, measurement: str) -> str:
    """``measurement`` as a FROM target: daily check results live in the aggregates retention policy
    (kept longer than raw readings: the Warsmann rule compares with past periods), readings in the
    writes' policy."""
    return store.measurement(measurement, store.policy_for("aggregates") if measurement == CHECK else None)


def write_checks(store: InfluxStore, results: Iterable[CheckResult], tz: ZoneInfo) -> None:
    """Write check results to the aggregates retention policy (5 000 points per request)."""
    lines = [check_line(c, tz) for c in results]
    for i in range(0, len(lines), 5000):
        store.write_lines(lines[i:i + 5000], precision="s", retention_policy=store.policy_for("aggregates"))


def _meter_filter(meter_ids: Sequence[str] | None) -> str:
    if not meter_ids:
        return ""
    return " AND (" + " OR ".join(f"meter_id = {quote_str(m)}" for m in meter_ids) + ")"


def read_indices(store: InfluxStore, start: datetime, end: datetime,
                 meter_ids: Sequence[str] | None = None, *, with_alarms: bool = False) -> pd.DataFrame:
    """Readings with ``start <= time < end`` as a frame sorted by meter then time.

    Columns: ``meter_id`` (categorical of str, categories sorted), ``time`` (int64 epoch seconds,
    UTC), ``index_m3`` (float64), and ``alarms`` (categorical of str, "" when none) when
    ``with_alarms``. Empty frame with those columns when there are none.

    Ids and flags are parsed straight into categories: a fleet's millions of rows hold few
    distinct strings, so the sort and the J+1 check work on integer codes, and parsing makes no
    string object per row.
    """
    cols = "meter_id, index_m3" + (", alarms" if with_alarms else "")
    q = (f"SELECT {cols} FROM {quote_ident(READING)} WHERE time >= {time_literal(start)} "
         f"AND time < {time_literal(end)}{_meter_filter(meter_ids)}")
    df = store.query_csv(q, epoch="s", dtypes={"meter_id": "category", "alarms": "category"})
    out_cols = ["meter_id", "time", "index_m3"] + (["alarms"] if with_alarms else [])
    if df.empty:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in
                             zip(out_cols, ["category", "int64", "float64", "category"])})
    df = df[out_cols].copy()
    df["time"] = df["time"].astype("int64")
    df["index_m3"] = df["index_m3"].astype("float64")
    if with_alarms:
        df["alarms"] = text_categories(df["alarms"])
    return df.sort_values(["meter_id", "time"], kind="stable").reset_index(drop=True)


def text_categories(column: pd.Series) -> pd.Series:
    """A categorical text column of a CSV answer with "" for an empty field (parsed as missing)."""
    if not column.isna().any():
        return column
    if "" not in column.cat.categories:
        column = column.cat.add_categories([""])
    return column.fillna("")


def read_checks(store: InfluxStore, first_day: date, last_day: date, tz: ZoneInfo,
                rules: Sequence[str] | None = None) -> list[CheckResult]:
    """Stored check results for local days ``first_day..last_day`` inclusive."""
    start = datetime.combine(first_day, time(0), tzinfo=tz)
    end = datetime.combine(last_day + timedelta(days=1), time(0), tzinfo=tz)
    rule_filter = ""
    if rules:
        rule_filter = " AND (" + " OR ".join(f"rule = {quote_str(r)}" for r in rules) + ")"
    q = (f"SELECT meter_id, rule, status, rate_l_per_h, night_flow_l_per_h, volume_l, coverage, detail "
         f"FROM {source(store, CHECK)} WHERE time >= {time_literal(start)} AND time < {time_literal(end)}"
         f"{rule_filter}")
    df = store.query_csv(q, epoch="s", dtypes={"meter_id": str, "rule": str, "status": str, "detail": str})
    out = []
    for row in df.itertuples(index=False):
        day = datetime.fromtimestamp(int(row.time), tz).date()
        out.append(CheckResult(
            meter_id=row.meter_id, day=day, rule=LeakRule(row.rule), status=CheckStatus(row.status),
            rate_l_per_h=_num(row.rate_l_per_h), night_flow_l_per_h=_num(row.night_flow_l_per_h),
            volume_l=_num(row.volume_l), coverage=_num(row.coverage),
            detail="" if pd.isna(row.detail) else str(row.detail)))
    return out


def _num(v) -> float | None:
    return None if v is None or pd.isna(v) else float(v)


def last_reading_times(store: InfluxStore, meter_ids: Sequence[str]) -> dict[str, datetime]:
    """Time (aware UTC) of each meter's latest reading; meters with none are left out."""
    if not meter_ids:
        return {}
    where = " OR ".join(f"meter_id = {quote_str(m)}" for m in meter_ids)
    series = store.query_json(f"SELECT last(index_m3) FROM {quote_ident(READING)} WHERE ({where}) "
                              f"GROUP BY meter_id", epoch="s")
    out = {}
    for s in series:
        for row in s.get("values", []):
            out[s["tags"]["meter_id"]] = datetime.fromtimestamp(int(row[0]), timezone.utc)
    return out
