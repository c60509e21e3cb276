"""The daily J+1 leak check: read a day of indices from InfluxDB, run the rules, store the results.

History for the abnormal-consumption rule comes from the ``leak_check`` results stored on earlier
days (the ``continuous_flow`` row carries each meter's day volume and coverage). Days without a
stored result count as missing: the check does not recompute them from raw indices, so a fresh
installation gets ``insufficient_data`` ("history") until enough days are checked — backfill with
:func:`run_leak_checks` over past days, which runs them in order, each seeing the ones before.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from vigie.analytics.leaks import LeakParams, detect_leaks, to_check_results
from vigie.records import CheckResult, LeakRule
from vigie.store.influx import InfluxStore, quote_ident, quote_str, time_literal
from vigie.store.water import CHECK, read_indices, write_checks


def read_window(store: InfluxStore, day: date, tz: ZoneInfo, params: LeakParams) -> pd.DataFrame:
    """Readings (with alarms) the check of ``day`` needs: local midnight ± ``max_interval_h``, so
    that intervals crossing either midnight are whole."""
    margin = timedelta(hours=params.max_interval_h)
    start = datetime.combine(day, time(0), tzinfo=tz) - margin
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz) + margin
    return read_indices(store, start, end, with_alarms=True)


def read_history(store: InfluxStore, first_day: date, last_day: date, tz: ZoneInfo) -> pd.DataFrame:
    """Daily volumes stored by earlier checks, local days ``first_day..last_day`` inclusive.

    Columns ``meter_id`` (str), ``day`` (date), ``volume_l`` (litres, NaN when none was known),
    ``coverage`` (0–1): the ``continuous_flow`` results' own, one row per meter and checked day.
    Read as one CSV frame, not as records: a month of a large fleet is millions of rows.
    """
    start = datetime.combine(first_day, time(0), tzinfo=tz)
    end = datetime.combine(last_day + timedelta(days=1), time(0), tzinfo=tz)
    q = (f"SELECT meter_id, volume_l, coverage FROM {quote_ident(CHECK)} "
         f"WHERE rule = {quote_str(str(LeakRule.CONTINUOUS_FLOW))} "
         f"AND time >= {time_literal(start)} AND time < {time_literal(end)}")
    df = store.query_csv(q, epoch="s", dtypes={"meter_id": str})
    if df.empty:
        return pd.DataFrame({"meter_id": pd.Series(dtype=str), "day": pd.Series(dtype=object),
                             "volume_l": pd.Series(dtype="float64"), "coverage": pd.Series(dtype="float64")})
    # Results are stamped at local midnight: few distinct stamps, each mapped to its day once.
    stamps, which = np.unique(df["time"].to_numpy(dtype=np.int64), return_inverse=True)
    days = np.array([datetime.fromtimestamp(int(s), tz).date() for s in stamps], dtype=object)
    return pd.DataFrame({
        "meter_id": df["meter_id"].astype(str),
        "day": days[which],
        "volume_l": _floats(df, "volume_l"),
        "coverage": _floats(df, "coverage"),
    })


def _floats(df: pd.DataFrame, name: str) -> np.ndarray:
    # A field no stored point has is absent from the answer altogether.
    if name not in df.columns:
        return np.full(len(df), np.nan)
    return pd.to_numeric(df[name], errors="coerce").to_numpy(dtype=np.float64)


def check_day(store: InfluxStore, day: date, tz: ZoneInfo, params: LeakParams,
              meter_ids: list[str] | None = None) -> pd.DataFrame:
    """Read and compute one day's checks without storing them: the frame of
    :func:`vigie.analytics.leaks.detect_leaks`."""
    readings = read_window(store, day, tz, params)
    history = read_history(store, day - timedelta(days=params.history_days), day - timedelta(days=1), tz)
    return detect_leaks(readings, day, tz, params, history=history, meter_ids=meter_ids)


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
