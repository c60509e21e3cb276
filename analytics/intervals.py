"""Consumption intervals from cumulative indices, and their apportioning into local-time buckets.

A water meter reports a cumulative index (m³). Consumption is known only between two readings of
the same meter: the *interval* ``[start, end)`` between consecutive readings, at the meter's own
resolution (quarter-hourly, hourly, twice a day …). Everything here works on the whole fleet at
once with numpy: one sort, one diff, masks at meter boundaries — never a Python loop per meter.

Shapes and units
----------------
Readings (input), as returned by :func:`vigie.store.water.read_indices`: columns ``meter_id``
(str), ``time`` (int64, epoch seconds UTC), ``index_m3`` (float64, m³); any order, duplicates
allowed; extra columns are ignored.

Intervals (output of :func:`compute_intervals`), one row per pair of consecutive readings of a
meter, sorted by meter then start:

- ``meter_id``: categorical; its categories are *every* meter of the input, sorted (so a meter
  with a single reading, hence no interval, is still known);
- ``start``, ``end``: int64 epoch seconds UTC (``end`` > ``start``);
- ``volume_l``: consumption over the interval, litres (NaN when unknown);
- ``rate_l_per_h``: mean flow over the interval, L/h (NaN when unknown);
- ``known``: bool, False for gaps, meter replacements/resets and implausible jumps.

Buckets (output of :func:`consumption_buckets`): one row per meter × local hour or day, with the
volume apportioned pro rata by overlap (a 14:30–15:30 interval gives half its volume to each
hour) and the fraction of the bucket covered by known intervals.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

#: Drop of the index (litres) still read as meter jitter or reverse flow, i.e. zero consumption.
DEFAULT_REVERSE_TOLERANCE_L = 5.0
#: Flow (L/h) no household meter can register: above the overload flow Q4 = 1.25 × Q3 of a DN25
#: meter (Q3 = 6.3 m³/h, so 7 875 L/h; ISO 4064-1). A faster apparent flow is a replacement or a
#: corrupt index.
DEFAULT_MAX_FLOW_L_PER_H = 10_000.0
#: A rollover goes from the top tenth of the register (capacity 10^k m³) to its bottom tenth.
_ROLLOVER_BAND = 0.1


@dataclass(frozen=True, slots=True)
class MeterCodes:
    """Meters of a frame as small integer codes: ``codes[i]`` indexes ``ids`` (sorted strings)."""

    codes: np.ndarray  # integers, one per row
    ids: np.ndarray    # object array of str, sorted, unique


def meter_codes(meter_id: pd.Series, *, all_categories: bool = False) -> MeterCodes:
    """Integer codes for a ``meter_id`` column, ids sorted. Raises ``ValueError`` on a missing id.

    A categorical column (as the readers return it) gives its codes as they are: the string work
    was done once, while parsing. Categories no row uses are dropped, so ``ids`` are the meters
    present, whatever the column's type — unless ``all_categories``, for a caller that proves
    every id used itself (:func:`fleet_grid`) and saves the count.
    """
    if isinstance(meter_id.dtype, pd.CategoricalDtype):
        return _category_codes(meter_id.array, all_categories)
    ids_in_order = meter_id.to_numpy(dtype=object)
    grouped = _codes_if_grouped(ids_in_order)
    if grouped is not None:
        return grouped
    codes, uniques = pd.factorize(ids_in_order, sort=True)
    if (codes < 0).any():
        raise ValueError(f"meter_id missing in {int((codes < 0).sum())} reading(s)")
    return MeterCodes(codes.astype(np.int64, copy=False), np.asarray(uniques, dtype=object))


def _category_codes(cat: pd.Categorical, all_categories: bool) -> MeterCodes:
    codes = cat.codes  # int8/16/32: a narrow integer is as good an index, and half the memory
    if len(codes) and codes.min() < 0:
        raise ValueError(f"meter_id missing in {int((codes < 0).sum())} reading(s)")
    ids = np.asarray(cat.categories, dtype=object)
    used = np.ones(len(ids), dtype=bool) if all_categories else np.bincount(codes, minlength=len(ids)) > 0
    order = None if cat.categories.is_monotonic_increasing else np.argsort(ids, kind="stable")
    if order is None and used.all():
        return MeterCodes(codes, ids)
    order = np.arange(len(ids)) if order is None else order
    order = order[used[order]]  # used categories, sorted by id
    new_code = np.full(len(ids), -1, dtype=np.int64)
    new_code[order] = np.arange(len(order))
    return MeterCodes(new_code[codes], ids[order])


#: Rows compared before paying a full pass to prove a frame grouped by meter.
_GROUPED_PROBE = 4096


def _codes_if_grouped(ids: np.ndarray) -> MeterCodes | None:
    """Codes of ids that come in runs, one per meter, in ascending order (read_indices' order);
    ``None`` otherwise.

    Frames from read_indices come sorted by meter: comparing neighbours is ~10x cheaper than
    hashing. InfluxDB's own order (by time) changes id at nearly every row, which the first rows
    already show, so such a frame goes straight to hashing.
    """
    head = ids[:_GROUPED_PROBE]
    if not len(ids) or 2 * np.count_nonzero(head[1:] != head[:-1]) > len(head):
        return None
    change = np.empty(len(ids), dtype=bool)
    change[0] = True
    np.not_equal(ids[1:], ids[:-1], out=change[1:])
    starts = np.flatnonzero(change)
    if 2 * len(starts) > len(ids):  # runs shorter than 2 readings on average: not grouped
        return None
    run_ids = ids[starts]
    if pd.isna(run_ids).any() or not (run_ids[1:] > run_ids[:-1]).all():
        return None
    # Each code repeated over its run: a sequential write, ~3x cheaper than a cumulative sum.
    return MeterCodes(np.repeat(np.arange(len(starts)), np.diff(starts, append=len(ids))), run_ids)


def check_readings(readings: pd.DataFrame) -> None:
    """Raise ``ValueError`` when a column readings must have is missing."""
    missing = {"meter_id", "time", "index_m3"} - set(readings.columns)
    if missing:
        raise ValueError(f"readings lack column(s) {sorted(missing)}; expected meter_id, time, index_m3")


def sorted_readings(readings: pd.DataFrame,
                    meters: MeterCodes | None = None) -> tuple[MeterCodes, np.ndarray, np.ndarray]:
    """Readings sorted by (meter, time), one per meter and second, NaN indices dropped.

    Returns ``(meters, time, index_m3)``: ``meters.codes``/``time``/``index_m3`` are the kept
    readings in order. ``meters.ids`` lists every meter of the input, even one whose readings were
    all dropped. Of several readings of one meter at one second, the last in input order is kept
    (a repeated point replaces the stored one in InfluxDB too). ``meters``: the codes of
    ``readings["meter_id"]`` when the caller already has them (:func:`meter_codes`).
    """
    check_readings(readings)
    meters = meter_codes(readings["meter_id"]) if meters is None else meters
    code = meters.codes
    t = readings["time"].to_numpy(dtype=np.int64)
    v = readings["index_m3"].to_numpy(dtype=np.float64)
    ok = ~np.isnan(v)
    if not ok.all():
        code, t, v = code[ok], t[ok], v[ok]
    if len(t) > 1:
        same = code[1:] == code[:-1]
        # read_indices sorts: two comparisons of neighbours prove it and skip the sort.
        if not (code[1:] >= code[:-1]).all() or (same & (t[1:] < t[:-1])).any():
            code, t, v = _sort_by_meter_time(code, t, v)
            same = code[1:] == code[:-1]
        last = np.ones(len(t), dtype=bool)
        last[:-1] = ~same | (t[1:] != t[:-1])
        if not last.all():
            code, t, v = code[last], t[last], v[last]
    return MeterCodes(code, meters.ids), t, v


def _sort_by_meter_time(code: np.ndarray, t: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, ...]:
    """``(code, t, v)`` in (meter, time) order, ties kept in input order (stable)."""
    order = np.lexsort((t, code))
    # Sorted codes are each code repeated by its count: writing them is cheaper than gathering.
    counts = np.bincount(code)
    return np.repeat(np.arange(len(counts)), counts), t[order], v[order]


@dataclass(frozen=True, slots=True)
class Intervals:
    """Intervals as column arrays (the frame of :func:`compute_intervals` without pandas' cost).

    ``code`` indexes ``ids``; units as in the module docstring.
    """

    ids: np.ndarray
    code: np.ndarray
    start: np.ndarray
    end: np.ndarray
    volume_l: np.ndarray
    rate_l_per_h: np.ndarray
    known: np.ndarray

    def frame(self) -> pd.DataFrame:
        cat = pd.Categorical.from_codes(self.code, categories=pd.Index(self.ids, dtype=object), validate=False)
        return pd.DataFrame({"meter_id": cat, "start": self.start, "end": self.end, "volume_l": self.volume_l,
                             "rate_l_per_h": self.rate_l_per_h, "known": self.known})

    @classmethod
    def of_frame(cls, frame: pd.DataFrame) -> "Intervals":
        return cls(np.asarray(frame["meter_id"].cat.categories, dtype=object),
                   frame["meter_id"].cat.codes.to_numpy(dtype=np.int64), frame["start"].to_numpy(np.int64),
                   frame["end"].to_numpy(np.int64), frame["volume_l"].to_numpy(np.float64),
                   frame["rate_l_per_h"].to_numpy(np.float64), frame["known"].to_numpy(bool))


def compute_intervals(readings: pd.DataFrame, *, max_interval_h: float = 3.0,
                      reverse_tolerance_l: float = DEFAULT_REVERSE_TOLERANCE_L,
                      max_flow_l_per_h: float = DEFAULT_MAX_FLOW_L_PER_H) -> pd.DataFrame:
    """Per-interval consumption of every meter in ``readings`` (shapes in the module docstring).

    Between two consecutive readings of a meter, with ``Δ = index_new − index_prev``:

    - ``end − start > max_interval_h``: a gap, unknown (how the volume spread is not known);
    - ``Δ ≥ 0``: ``Δ`` × 1000 L, unless the flow exceeds ``max_flow_l_per_h`` (a replacement by a
      meter with a higher index, or a corrupt index): unknown;
    - ``0 > Δ ≥ −reverse_tolerance_l``: meter jitter or reverse flow, zero consumption;
    - index falling from the top tenth of its register capacity ``C = 10^k`` m³ (the smallest
      power of ten above the previous index) into the bottom tenth, with ``C − prev + new``
      within the flow limit: a rollover, consumption ``C − prev + new``;
    - any other drop: meter replaced or reset, unknown; counting restarts from the new index.

    Raises ``ValueError`` when a required column or a meter id is missing. Readings with a NaN
    index are ignored.
    """
    meters, t, v = sorted_readings(readings)
    return intervals_of(meters, t, v, max_interval_h=max_interval_h, reverse_tolerance_l=reverse_tolerance_l,
                        max_flow_l_per_h=max_flow_l_per_h).frame()


def intervals_of(meters: MeterCodes, t: np.ndarray, v: np.ndarray, *, max_interval_h: float,
                 reverse_tolerance_l: float, max_flow_l_per_h: float,
                 window: tuple[int, int] | None = None) -> Intervals:
    """:func:`compute_intervals` on the output of :func:`sorted_readings`, as arrays.

    ``window`` (epoch s ``[a, b)``): keep only the intervals overlapping it. Each interval depends
    on its two readings alone, so selecting pairs first gives the same intervals for less work.
    """
    code = meters.codes
    pair = code[1:] == code[:-1]  # boolean masks of views: far cheaper than gathering by index
    if window is not None:
        pair &= (t[1:] > window[0]) & (t[:-1] < window[1])
    start, end = t[:-1][pair], t[1:][pair]
    volume, rate, known = interval_volumes(v[:-1][pair], v[1:][pair], (end - start) / 3600.0,
                                           max_interval_h=max_interval_h, reverse_tolerance_l=reverse_tolerance_l,
                                           max_flow_l_per_h=max_flow_l_per_h)
    return Intervals(meters.ids, code[:-1][pair], start, end, volume, rate, known)


def interval_volumes(prev: np.ndarray, new: np.ndarray, dur_h: np.ndarray, *, max_interval_h: float,
                     reverse_tolerance_l: float,
                     max_flow_l_per_h: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(volume_l, rate_l_per_h, known)`` of intervals from their two indices (m³) and lengths (h),
    by the rules of :func:`compute_intervals`.

    ``prev``/``new``: one entry per interval, as a vector or a grid (intervals × meters, see
    :class:`Grid`); ``dur_h`` broadcasts against them (one length per interval, or per grid row).
    Volume and rate are NaN where ``known`` is False.
    """
    volume = np.subtract(new, prev, out=np.empty(np.shape(new)))  # C order, whatever the inputs' layout
    volume *= 1000.0
    max_l = max_flow_l_per_h * dur_h
    drop = np.flatnonzero(volume < 0)  # few: handled on their own
    if len(drop):
        at = np.unravel_index(drop, volume.shape)
        p, q, d = prev[at], new[at], volume[at]
        capacity = 10.0 ** (np.floor(np.log10(np.where(p > 0, p, 1.0))) + 1.0)
        wrapped = (capacity - p + q) * 1000.0
        rollover = ((p >= (1 - _ROLLOVER_BAND) * capacity) & (q <= _ROLLOVER_BAND * capacity)
                    & (wrapped <= np.broadcast_to(max_l, volume.shape)[at]))
        volume[at] = np.where(d >= -reverse_tolerance_l, 0.0, np.where(rollover, wrapped, np.nan))
    known = (dur_h <= max_interval_h) & (volume <= max_l)  # NaN compares False
    if not known.all():
        volume[~known] = np.nan
    # Vectors: max_l is spent, its memory takes the rates.
    rate = np.divide(volume, dur_h, out=max_l if max_l.shape == volume.shape else None)
    return volume, rate, known


# --- meters reading in step ---------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Grid:
    """Meters that read at the same instants: ``index_m3[i, j]`` (m³) is the reading of meter
    ``meters[j]`` (a code of the :class:`MeterCodes` the grid comes from, ascending) at
    ``times[i]`` (int64 epoch s, strictly ascending). ``index_m3`` may be a strided view."""

    times: np.ndarray
    index_m3: np.ndarray
    meters: np.ndarray


def fleet_grid(meters: MeterCodes, readings: pd.DataFrame) -> Grid | None:
    """The whole of ``readings`` as a :class:`Grid` when every meter reads once at each of the same
    instants, no index NaN, the rows ordered by meter then time (read_indices) or by time, the
    meters of one instant in any order (InfluxDB's own order, read_window); ``None`` otherwise.

    ``meters``: :func:`meter_codes` of ``readings["meter_id"]`` (categories unused or not: a grid
    proves each id used). Proving the layout costs a few comparisons per reading, where the
    general path sorts, deduplicates and segments (a lexsort, ~20× more, for InfluxDB's order).
    """
    n, size = len(meters.ids), len(meters.codes)
    if n == 0 or size % n or size // n < 2:
        return None
    k = size // n
    code = meters.codes
    first = np.arange(n)
    t = readings["time"].to_numpy(dtype=np.int64)
    if (code[:size:k] == first).all() and (code.reshape(n, k) == first[:, None]).all():  # meter by meter
        by_meter = t.reshape(n, k)
        times = by_meter[0]
        if not (times[1:] > times[:-1]).all() or not (by_meter == times).all():
            return None
        v = readings["index_m3"].to_numpy(dtype=np.float64).reshape(n, k).T
    else:  # instant by instant
        by_time = t.reshape(k, n)
        times = by_time[:, 0]
        if not (times[1:] > times[:-1]).all() or not (by_time == times[:, None]).all():
            return None
        v = readings["index_m3"].to_numpy(dtype=np.float64)
        if not (code.reshape(k, n) == first).all():
            # InfluxDB lists the points of one instant in no set order: each reading goes to its
            # meter's column, once each (a count per cell proves it).
            at = (code.reshape(k, n) + (np.arange(k) * n)[:, None]).reshape(-1)
            if np.bincount(at, minlength=size).min() != 1:
                return None
            v = np.empty(size)
            v[at] = readings["index_m3"].to_numpy(dtype=np.float64)
        v = v.reshape(k, n)
    if np.isnan(v).any():
        return None
    return Grid(times, v, first)


def split_grid(meters: MeterCodes, t: np.ndarray, v: np.ndarray) -> tuple[Grid | None, np.ndarray | None]:
    """Sorted readings (the output of :func:`sorted_readings`) split into the grid most meters
    share and the rest: ``(grid, rest)``, ``rest`` a mask of the readings of meters off the grid.
    ``(None, None)`` when no two readings are shared that way.

    The grid is the instants of a meter with the most common number of readings; every meter with
    exactly those instants is on it. Meters reading off the grid (other resolution, a gap, a
    duplicate or NaN dropped, clock drift) keep the general path.
    """
    code, n = meters.codes, len(meters.ids)
    if n == 0 or len(code) < 2:
        return None, None
    starts = np.searchsorted(code, np.arange(n))  # sorted codes: a binary search per meter
    counts = np.diff(starts, append=len(code))
    k = int(np.bincount(counts).argmax())
    if k < 2:
        return None, None
    candidate = counts == k
    if candidate.all():
        t_k, v_k, rows = t.reshape(n, k), v.reshape(n, k), np.arange(n)
    else:
        rows = np.flatnonzero(candidate)
        take = starts[rows][:, None] + np.arange(k)
        t_k, v_k = t[take], v[take]
    times = t_k[len(rows) // 2]
    on = (t_k == times).all(axis=1)
    if on.all():
        grid = Grid(times, v_k.T, rows)
    else:
        grid = Grid(times, v_k[on].T, rows[on])
    on_meter = np.zeros(n, dtype=bool)
    on_meter[grid.meters] = True
    return grid, ~on_meter[code]


def grid_intervals(grid: Grid, *, max_interval_h: float, reverse_tolerance_l: float, max_flow_l_per_h: float,
                   window: tuple[int, int] | None = None) -> tuple[np.ndarray, ...]:
    """:func:`intervals_of` for the meters of a grid: ``(start, end, volume_l, rate_l_per_h, known)``,
    ``start``/``end`` one per grid interval (int64 epoch s), the others C-ordered arrays
    intervals × meters. Same values as :func:`intervals_of` gives each meter.

    ``window`` (epoch s ``[a, b)``): keep only the intervals overlapping it.
    """
    times = grid.times
    a, b = 0, len(times) - 1
    if window is not None:
        j = np.flatnonzero((times[1:] > window[0]) & (times[:-1] < window[1]))
        a, b = (int(j[0]), int(j[-1]) + 1) if len(j) else (0, 0)
    index = grid.index_m3[a:b + 1]
    start, end = times[a:b], times[a + 1:b + 1]
    volume, rate, known = interval_volumes(index[:-1], index[1:], ((end - start) / 3600.0)[:, None],
                                           max_interval_h=max_interval_h, reverse_tolerance_l=reverse_tolerance_l,
                                           max_flow_l_per_h=max_flow_l_per_h)
    return start, end, volume, rate, known


# --- local-time buckets -------------------------------------------------------------------------

Resolution = Literal["hour", "day"]


def local_midnight(day: date, tz: ZoneInfo) -> int:
    """Epoch seconds of local midnight starting ``day`` in ``tz``."""
    return int(datetime.combine(day, time(0), tzinfo=tz).timestamp())


def bucket_edges(first_day: date, last_day: date, tz: ZoneInfo, resolution: Resolution) -> np.ndarray:
    """Edges (int64 epoch s, ascending, one more than buckets) of local hours or days from local
    midnight of ``first_day`` to local midnight after ``last_day``.

    Days follow the wall clock (a DST change makes a 23- or 25-hour day); hours are real hours
    counted from local midnight, so the spring-forward day has 23 and the fall-back day 25.
    """
    if last_day < first_day:
        raise ValueError(f"last_day {last_day} before first_day {first_day}")
    if resolution == "day":
        n = (last_day - first_day).days + 1
        return np.array([local_midnight(first_day + timedelta(days=i), tz) for i in range(n + 1)],
                        dtype=np.int64)
    if resolution == "hour":
        a, b = local_midnight(first_day, tz), local_midnight(last_day + timedelta(days=1), tz)
        return np.arange(a, b + 1, 3600, dtype=np.int64)
    raise ValueError(f"resolution {resolution!r}: expected 'hour' or 'day'")


def apportion(code: np.ndarray, start: np.ndarray, end: np.ndarray, volume: np.ndarray,
              n_meters: int, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Spread interval volumes over buckets pro rata by overlap.

    ``code``/``start``/``end``/``volume`` describe *known* intervals (meter code in
    ``range(n_meters)``, epoch s, litres); ``edges`` the bucket edges (epoch s, ascending).
    Returns ``(volume_l, known_s)``, two float64 arrays of shape ``(n_meters, len(edges) − 1)``:
    litres falling in each bucket, and seconds of the bucket covered by known intervals.
    """
    nb = len(edges) - 1
    vol_out = np.zeros(n_meters * nb)
    known_out = np.zeros(n_meters * nb)
    if nb <= 0 or len(start) == 0:
        return vol_out.reshape(n_meters, max(nb, 0)), known_out.reshape(n_meters, max(nb, 0))
    keep = (end > edges[0]) & (start < edges[-1])
    code, start, end, volume = code[keep], start[keep], end[keep], volume[keep]
    first = np.maximum(np.searchsorted(edges, start, side="right") - 1, 0)
    last = np.minimum(np.searchsorted(edges, end, side="left") - 1, nb - 1)
    span = last - first + 1
    if (span == 1).all():  # the usual case: each interval inside one bucket
        b = first
        s, e, c, vol = start, end, code, volume
        dur = (end - start).astype(np.float64)
    else:
        rep = np.repeat(np.arange(len(start)), span)
        b = first[rep] + (np.arange(len(rep)) - np.repeat(np.cumsum(span) - span, span))
        s, e, c, vol = start[rep], end[rep], code[rep], volume[rep]
        dur = (e - s).astype(np.float64)
    overlap = (np.minimum(e, edges[b + 1]) - np.maximum(s, edges[b])).astype(np.float64)
    key = c * nb + b
    vol_out += np.bincount(key, weights=vol * (overlap / dur), minlength=n_meters * nb)
    known_out += np.bincount(key, weights=overlap, minlength=n_meters * nb)
    return vol_out.reshape(n_meters, nb), known_out.reshape(n_meters, nb)


def consumption_buckets(intervals: pd.DataFrame, first_day: date, last_day: date, tz: ZoneInfo,
                        resolution: Resolution = "hour") -> pd.DataFrame:
    """Volumes per meter and local hour or day, ``first_day..last_day`` inclusive.

    ``intervals``: a frame from :func:`compute_intervals`. Returns one row per meter (every
    category of ``intervals.meter_id``) × bucket, sorted by meter then time, columns:
    ``meter_id`` (str), ``start``/``end`` (tz-aware ``Timestamp`` in ``tz``, bucket bounds),
    ``volume_l`` (litres from known intervals, pro rata by overlap; NaN when nothing of the bucket
    is known), ``coverage`` (0–1, fraction of the bucket covered by known intervals).
    A bucket partly covered holds only the known part's volume: read it with its coverage.
    """
    edges = bucket_edges(first_day, last_day, tz, resolution)
    iv = Intervals.of_frame(intervals)
    ids, k = iv.ids, iv.known
    vol, known_s = apportion(iv.code[k], iv.start[k], iv.end[k], iv.volume_l[k], len(ids), edges)
    nb = len(edges) - 1
    length = np.diff(edges).astype(np.float64)
    coverage = known_s / length
    bounds = pd.to_datetime(edges, unit="s", utc=True).tz_convert(tz)
    slot = np.tile(np.arange(nb), len(ids))
    return pd.DataFrame({
        "meter_id": pd.Series(np.repeat(ids, nb), dtype=str),
        "start": bounds[:-1][slot],
        "end": bounds[1:][slot],
        "volume_l": np.where(known_s > 0, vol, np.nan).ravel(),
        "coverage": coverage.ravel(),
    })
