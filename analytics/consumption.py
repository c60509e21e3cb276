"""A meter's consumption per local hour or day, from its cumulative index (for the API)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd

from vigie.analytics.intervals import bucket_edges, compute_intervals, consumption_buckets
from vigie.store.influx import InfluxStore
from vigie.store.water import read_indices


def meter_consumption(store: InfluxStore, meter_id: str, start: datetime, end: datetime, resolution: str,
                      settings) -> pd.DataFrame:
    """Buckets of ``meter_id`` whose start lies in ``[start, end)`` (aware datetimes).

    Columns ``start`` (tz-aware local ``Timestamp``), ``volume_l`` (L, None where no reading
    covers the bucket), ``coverage`` (0–1). Readings are read with a margin of
    ``settings.max_interval_h`` on both sides so the intervals crossing the edges count pro rata.
    Raises :class:`~vigie.store.StoreError` when InfluxDB fails.
    """
    tz = ZoneInfo(settings.timezone)
    margin = timedelta(hours=settings.max_interval_h)
    readings = read_indices(store, start - margin, end + margin, [meter_id])
    first_day = start.astimezone(tz).date()
    last_day = (end - timedelta(seconds=1)).astimezone(tz).date()
    if readings.empty:
        edges = pd.to_datetime(bucket_edges(first_day, last_day, tz, resolution)[:-1], unit="s", utc=True)
        buckets = pd.DataFrame({"start": edges.tz_convert(tz), "volume_l": float("nan"), "coverage": 0.0})
    else:
        intervals = compute_intervals(readings, max_interval_h=settings.max_interval_h,
                                      reverse_tolerance_l=settings.reverse_tolerance_l,
                                      max_flow_l_per_h=settings.max_flow_l_per_h)
        buckets = consumption_buckets(intervals, first_day, last_day, tz, resolution)
    buckets = buckets[(buckets["start"] >= pd.Timestamp(start)) & (buckets["start"] < pd.Timestamp(end))]
    out = buckets[["start", "volume_l", "coverage"]].reset_index(drop=True)
    out["volume_l"] = out["volume_l"].round(3)
    out["volume_l"] = out["volume_l"].astype(object).where(out["volume_l"].notna(), None)
    return out
