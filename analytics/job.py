"""The daily J+1 leak check: read a day of indices from InfluxDB, run the rules, store the results.

History for the abnormal-consumption rule comes from the ``leak_check`` results stored on earlier
days (the ``continuous_flow`` row carries each meter's day volume and coverage). Days without a
stored result count as missing: the check does not recompute them from raw indices, so a fresh
installation gets ``insufficient_data`` ("history") until enough days are checked — backfill with
:func:`run_leak_checks` over past days, which runs them in order, each seeing the ones before.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from pandas.api.types import union_categoricals

from vigie.analytics.leaks import LeakParams, detect_leaks, to_check_results
from vigie.records import CheckResult, LeakRule
from vigie.store.influx import InfluxStore, quote_str, time_literal
from vigie.store.water import CHECK, READING, source, write_checks

#: Parallel time slices for the day's read: one per core, InfluxDB being the bottleneck.
READ_SLICES = max(1, min(4, os.cpu_count() or 1))


def read_window(store: InfluxStore, day: date, tz: ZoneInfo, params: LeakParams,
                slices: int = READ_SLICES) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Readings and flags the check of ``day`` needs: local midnight ± ``max_interval_h``, so that
    intervals crossing either midnight are whole.

    Returns ``(readings, alarms)``: readings with columns ``meter_id`` (categorical of str,
    categories sorted), ``time`` (int64 epoch s), ``index_m3`` (float64) in InfluxDB's order (time,
    then meter: :func:`detect_leaks` takes a fleet reading in step as it is, and sorts the rest);
    alarms (``meter_id`` categorical, ``time``, ``alarms`` str) for the readings with a flag only.

    Why not :func:`vigie.store.water.read_indices`: for a fleet the read is InfluxDB-bound. Asking
    for one field instead of two is ~30 % faster server-side (flags are rare: a filtered query
    fetches them), ``slices`` time slices fetched in parallel use the server's cores, and the sort
    by meter string that read_indices does is left to the vectorized code.
    """
    margin = timedelta(hours=params.max_interval_h)
    start = datetime.combine(day, time(0), tzinfo=tz) - margin
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz) + margin
    with ThreadPoolExecutor(slices + 1) as pool:
        flags = pool.submit(_select, store, READING, {"alarms": str}, (start, end), "alarms != ''")
        readings = _select_sliced(pool, store, READING, {"index_m3": "float64"}, start, end, slices)
        return readings, flags.result()


def read_history(store: InfluxStore, first_day: date, last_day: date, tz: ZoneInfo,
                 slices: int = READ_SLICES) -> pd.DataFrame:
    """Daily volumes stored by earlier checks, local days ``first_day..last_day`` inclusive.

    Columns ``meter_id`` (categorical of str, categories sorted), ``day`` (categorical of date),
    ``volume_l`` (litres, NaN when none was known), ``coverage`` (0–1): the ``continuous_flow``
    results' own, one row per meter and checked day. Read as CSV frames in parallel slices, not as
    records: a month of a large fleet is millions of rows, with a few distinct ids and days.
    """
    start = datetime.combine(first_day, time(0), tzinfo=tz)
    end = datetime.combine(last_day + timedelta(days=1), time(0), tzinfo=tz)
    with ThreadPoolExecutor(slices) as pool:
        df = _select_sliced(pool, store, CHECK, {"volume_l": "float64", "coverage": "float64"}, start, end,
                            slices, f"rule = {quote_str(str(LeakRule.CONTINUOUS_FLOW))}")
    # Results are stamped at local midnight: few distinct stamps, each mapped to its day once.
    stamps, which = np.unique(df["time"].to_numpy(), return_inverse=True)
    days = np.array([datetime.fromtimestamp(int(s), tz).date() for s in stamps], dtype=object)
    labels, day_code = np.unique(days, return_inverse=True)  # two stamps could share a local day
    day = pd.Categorical.from_codes(day_code[which.reshape(-1)], categories=pd.Index(labels, dtype=object))
    return pd.DataFrame({"meter_id": df["meter_id"], "day": day, "volume_l": df["volume_l"],
                         "coverage": df["coverage"]})


def _select_sliced(pool: ThreadPoolExecutor, store: InfluxStore, measurement: str, fields: dict,
                   start: datetime, end: datetime, slices: int, condition: str = "") -> pd.DataFrame:
    """:func:`_select` over ``slices`` equal time slices of ``[start, end)`` run in ``pool``."""
    step = (end - start) / slices
    bounds = [(start + i * step, end if i == slices - 1 else start + (i + 1) * step) for i in range(slices)]
    parts = list(pool.map(lambda b: _select(store, measurement, fields, b, condition), bounds))
    parts = [p for p in parts if len(p)] or parts[:1]
    if len(parts) == 1:
        return parts[0]
    # Each slice has its own categories: their sorted union, codes remapped (concat would fall back
    # to one string object per row).
    ids = union_categoricals([p["meter_id"].array for p in parts], sort_categories=True)
    frame = pd.concat([p.drop(columns="meter_id") for p in parts], ignore_index=True)
    frame.insert(0, "meter_id", ids)
    return frame


def _select(store: InfluxStore, measurement: str, fields: dict, bounds: tuple[datetime, datetime],
            condition: str = "") -> pd.DataFrame:
    """Columns ``meter_id`` (categorical of str, categories sorted), ``time`` (int64 epoch s) and
    ``fields`` (name → dtype) of the points of ``measurement`` with ``bounds[0] <= time < bounds[1]``
    [and ``condition``]."""
    q = (f"SELECT meter_id, {', '.join(fields)} FROM {source(store, measurement)} "
         f"WHERE time >= {time_literal(bounds[0])} AND time < {time_literal(bounds[1])}"
         + (f" AND {condition}" if condition else ""))
    df = store.query_csv(q, epoch="s", dtypes={"meter_id": "category", **fields})
    out = {"meter_id": df["meter_id"] if "meter_id" in df else pd.Series(dtype="category"),
           "time": df["time"].to_numpy(dtype=np.int64) if "time" in df else np.zeros(0, dtype=np.int64)}
    for name, dtype in fields.items():
        # A field that no point in the range has is absent from InfluxDB's answer altogether.
        out[name] = df[name].astype(dtype) if name in df else pd.Series(np.full(len(df), np.nan), dtype=dtype)
    return pd.DataFrame(out)


def check_day(store: InfluxStore, day: date, tz: ZoneInfo, params: LeakParams,
              meter_ids: list[str] | None = None) -> pd.DataFrame:
    """Read and compute one day's checks without storing them: the frame of
    :func:`vigie.analytics.leaks.detect_leaks`."""
    readings, alarms = read_window(store, day, tz, params)
    history = read_history(store, day - timedelta(days=params.history_days), day - timedelta(days=1), tz)
    return detect_leaks(readings, day, tz, params, history=history, meter_ids=meter_ids, alarms=alarms)


def run_leak_check(store: InfluxStore, day: date, settings, meter_ids: list[str] | None = None) -> list[CheckResult]:
    """The J+1 check of local ``day`` (in ``settings.timezone``) for every meter with data and
    every meter of ``meter_ids`` (the registry's; those without data get ``insufficient_data``).

    Writes the results as ``leak_check`` points (re-running a day overwrites its results) and
    returns them, sorted by meter then rule. Store errors (:class:`vigie.store.StoreError`)
    propagate; nothing is written when the read fails.
    """
    tz = ZoneInfo(settings.timezone)
    results = to_check_results(check_day(store, day, tz, LeakParams.from_settings(settings), meter_ids))
    write_checks(store, results, tz)
    return results


def run_leak_checks(store: InfluxStore, first_day: date, last_day: date, settings,
                    meter_ids: list[str] | None = None) -> list[CheckResult]:
    """:func:`run_leak_check` for each day of ``first_day..last_day`` in order (each day's history
    includes the days checked before it); returns all results, day by day."""
    out: list[CheckResult] = []
    for i in range((last_day - first_day).days + 1):
        out.extend(run_leak_check(store, first_day + timedelta(days=i), settings, meter_ids))
    return out
