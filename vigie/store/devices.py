"""The latest state of every device, read from InfluxDB for the device-health pass
(:mod:`vigie.analytics.devices`): each device's last value of some fields, and since when a
condition on one field has held.

Both read every device of a measurement in one HTTP request: one ``last()`` (or ``first()``)
statement per field, ``GROUP BY`` the device tag(s), the statements joined by ``;``. InfluxDB 1.x
scans the points of the time range for a ``last()`` (measured in docs/devices.md: 28 days of
history cost 4× one day's), so callers bound the range where they can (``where``), and the
statements filtering on a value (:func:`condition_since`) are asked only about the few devices
already found in that state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd

from vigie.store.influx import InfluxStore, quote_ident, quote_str, time_literal

#: Devices named in one statement's WHERE clause (keeps the query string short).
KEYS_PER_STATEMENT = 200
#: Statements of one request when each names one device.
STATEMENTS_PER_REQUEST = 100
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Condition:
    """A state of a device judged on one field: ``bad`` and ``ok`` are InfluxQL predicates on
    ``field`` that every point carrying the field satisfies exactly one of (``battery_pct <= 20``
    and ``battery_pct > 20``)."""

    field: str
    bad: str
    ok: str


def last_values(store: InfluxStore, measurement: str, tags: Sequence[str], fields: Sequence[str], *,
                retention_policy: str | None = None, where: str | None = None) -> pd.DataFrame:
    """Each device's latest value of each of ``fields``, and that value's time.

    ``tags``: the tag(s) naming a device (``["meter_id"]``, ``["family", "device"]``); series with
    other tags are merged (a sensor moved to another home is one device). ``where``: an InfluxQL
    predicate on tags restricting the devices. Returns one row per device that has at least one of
    the fields: the ``tags`` columns (str; ``""`` for a point without the tag), then for each
    field ``<field>`` (its value as stored: float64, or object for string fields; NaN/None when
    the device never reported it) and ``<field>_at`` (datetime64[ns, UTC], NaT). Raises the
    store's :class:`~vigie.store.StoreError` subclasses.
    """
    m = store.measurement(measurement, retention_policy)
    group = ", ".join(quote_ident(t) for t in tags)
    cond = f" WHERE {where}" if where else ""
    stmts = [f"SELECT last({quote_ident(f)}) AS {quote_ident(f)} FROM {m}{cond} GROUP BY {group}"
             for f in fields]
    series = store.query_json("; ".join(stmts), epoch="ms")
    # Statements are told apart by their alias (the answer's only value column).
    by_field: dict[str, list] = {f: [] for f in fields}
    for s in series:
        t, v = s["values"][0]
        by_field[s["columns"][1]].append((*(s.get("tags", {}).get(k, "") for k in tags), t, v))
    out = pd.DataFrame({t: pd.Series(dtype=object) for t in tags})
    for f in fields:
        part = pd.DataFrame(by_field[f], columns=[*tags, "_t", f])
        if pd.api.types.infer_dtype(part[f], skipna=True) != "string":
            part[f] = part[f].astype(np.float64)   # JSON gives 15 for a stored 15.0, None for null
        part[f + "_at"] = pd.to_datetime(part.pop("_t").astype(np.int64), unit="ms", utc=True)
        out = out.merge(part, on=list(tags), how="outer")
    return out.reset_index(drop=True)


def condition_since(store: InfluxStore, measurement: str, tags: Sequence[str], keys: pd.DataFrame,
                    condition: Condition, *, retention_policy: str | None = None) -> pd.Series:
    """Since when each device of ``keys`` (a frame with the ``tags`` columns, one row per device
    whose latest ``condition.field`` value is bad) has been in the bad state: the first bad point
    after its last ok one, or its first bad point when it was never ok.

    Returns a Series aligned with ``keys``' index (datetime64[ns, UTC]; NaT for a device with no
    bad point at all). Cost: one request per :data:`KEYS_PER_STATEMENT` devices (their last ok and
    first bad points), plus one statement for each device that went back and forth (its first
    point after the last ok one).
    """
    m = store.measurement(measurement, retention_policy)
    group = ", ".join(quote_ident(t) for t in tags)
    f = quote_ident(condition.field)
    tag_cols = list(tags)
    last_ok, first_bad = {}, {}
    for i in range(0, len(keys), KEYS_PER_STATEMENT):
        chunk = keys.iloc[i:i + KEYS_PER_STATEMENT]
        devs = " OR ".join(_key_predicate(tags, row) for row in chunk[tag_cols].itertuples(index=False))
        q = (f"SELECT last({f}) AS ok FROM {m} WHERE ({condition.ok}) AND ({devs}) GROUP BY {group}; "
             f"SELECT first({f}) AS bad FROM {m} WHERE ({condition.bad}) AND ({devs}) GROUP BY {group}")
        for s in store.query_json(q, epoch="ms"):
            key = tuple(s.get("tags", {}).get(k, "") for k in tags)
            (last_ok if s["columns"][1] == "ok" else first_bad)[key] = int(s["values"][0][0])
    key_tuples = [tuple(r) for r in keys[tag_cols].astype(str).itertuples(index=False)]
    ok = np.array([last_ok.get(k, -1) for k in key_tuples], dtype=np.int64)
    bad = np.array([first_bad.get(k, -1) for k in key_tuples], dtype=np.int64)
    since = np.where(bad > ok, bad, -1)
    # Back and forth (a battery's voltage recovers at rest): every point after the last ok one is
    # bad, so the state began with the first point after it.
    flapping = np.flatnonzero((bad >= 0) & (bad <= ok))
    for i in range(0, flapping.size, STATEMENTS_PER_REQUEST):
        rows = flapping[i:i + STATEMENTS_PER_REQUEST]
        q = "; ".join(
            f"SELECT first({f}) AS {quote_ident(f'k{j}')} FROM {m} WHERE {_key_predicate(tags, key_tuples[j])} "
            f"AND time > {time_literal(_EPOCH + timedelta(milliseconds=int(ok[j])))} GROUP BY {group}"
            for j in rows)
        for s in store.query_json(q, epoch="ms"):
            since[int(s["columns"][1][1:])] = int(s["values"][0][0])
    out = pd.to_datetime(pd.Series(since, index=keys.index).where(since >= 0), unit="ms", utc=True)
    return out


def tag_filters(tag: str, values: Sequence[str]) -> list[str]:
    """WHERE predicates naming the devices ``values`` of tag ``tag``, :data:`KEYS_PER_STATEMENT`
    devices each (``(meter_id = 'a' OR meter_id = 'b')``); none for no device."""
    return ["(" + " OR ".join(f"{quote_ident(tag)} = {quote_str(str(v))}" for v in values[i:i + KEYS_PER_STATEMENT]) + ")"
            for i in range(0, len(values), KEYS_PER_STATEMENT)]


def _key_predicate(tags: Sequence[str], values: Sequence[str]) -> str:
    return "(" + " AND ".join(f"{quote_ident(t)} = {quote_str(str(v))}" for t, v in zip(tags, values)) + ")"
