"""J+1 leak rules: every meter of the fleet, one local day, four rules, in one vectorized pass.

For local day D (midnight to midnight in the service's time zone, 23 or 25 hours on DST days),
each meter gets one result per rule (:class:`vigie.records.LeakRule`):

- ``continuous_flow`` — flow never drops to zero during the day. Sources: Zenner EDC (leak when
  the flow is never zero over 96 quarter-hours), Kamstrup Multical 21 / flowIQ (constant flow
  ≥ 12.5 L/h for 24 h), utilities' "no zero-use hour in 24 h" rule (Waterwatch, AquaCUE); see
  shared/reference/domain-rules.md. It catches slow drips (a dripping tap is ~3.4 L/h, ista) that
  "flow for N minutes" rules miss. Estimate: the day's minimum interval flow.
- ``burst`` — a high flow held over consecutive readings. Source: Zenner EDC burst alarm (flow
  above 30 % of Q3 for 30 min); threshold and duration are settings.
- ``abnormal_consumption`` — France, loi Warsmann (décret n° 2012-1078, art. R. 2224-20-1 CGCT):
  consumption is abnormal when more than twice the subscriber's average consumption over
  comparable periods. Here: the last ``abnormal_period_days`` days against the mean of the
  ``abnormal_history_periods`` periods before them, ignoring excesses below
  ``abnormal_min_excess_l_per_day``.
- ``meter_flag`` — the meter itself raised LEAK, BURST or REVERSE_FLOW on a reading of the day
  (manufacturers' own detection, kept rather than dropped).

A meter whose known intervals cover less than ``min_coverage`` of the day gets
``insufficient_data`` on every rule but ``meter_flag``: a gap is never a leak and never a pass.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass, fields
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from vigie.analytics.intervals import (DEFAULT_MAX_FLOW_L_PER_H, DEFAULT_REVERSE_TOLERANCE_L, Grid, Intervals,
                                       MeterCodes, apportion, bucket_edges, check_readings, fleet_grid,
                                       grid_intervals, intervals_of, local_midnight, meter_codes, sorted_readings,
                                       split_grid)
from vigie.records import CheckResult, CheckStatus, LeakRule, MeterAlarm

#: Loi Warsmann: abnormal above twice the average of comparable periods (décret 2012-1078).
WARSMANN_FACTOR = 2.0
#: District practice for minimum night flow: 02:00–05:00 local.
NIGHT_START, NIGHT_END = time(2, 0), time(5, 0)
#: Meter flags that are leak signals, in the order they are listed in a result's detail.
LEAK_FLAGS = (MeterAlarm.LEAK, MeterAlarm.BURST, MeterAlarm.REVERSE_FLOW)

RESULT_COLUMNS = ["meter_id", "day", "rule", "status", "rate_l_per_h", "night_flow_l_per_h", "volume_l",
                  "coverage", "detail"]
_RULES = (LeakRule.CONTINUOUS_FLOW, LeakRule.BURST, LeakRule.ABNORMAL_CONSUMPTION, LeakRule.METER_FLAG)
_LEAK, _OK, _NODATA = str(CheckStatus.LEAK), str(CheckStatus.OK), str(CheckStatus.INSUFFICIENT_DATA)


@dataclass(frozen=True, slots=True)
class LeakParams:
    """Thresholds of the leak rules (units in the names), mirroring :class:`vigie.config.Settings`;
    the last two are the interval sanity limits of
    :func:`vigie.analytics.intervals.compute_intervals`."""

    min_coverage: float = 0.8
    max_interval_h: float = 3.0
    zero_flow_tolerance_l_per_h: float = 0.0
    burst_flow_l_per_h: float = 500.0
    burst_min_duration_min: float = 30.0
    abnormal_period_days: int = 7
    abnormal_history_periods: int = 3
    abnormal_min_excess_l_per_day: float = 100.0
    reverse_tolerance_l: float = DEFAULT_REVERSE_TOLERANCE_L
    max_flow_l_per_h: float = DEFAULT_MAX_FLOW_L_PER_H

    def __post_init__(self) -> None:
        if not 0 < self.min_coverage <= 1:
            raise ValueError(f"min_coverage={self.min_coverage}: expected a fraction in (0, 1]")
        for name in ("max_interval_h", "burst_flow_l_per_h", "burst_min_duration_min", "max_flow_l_per_h"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}={getattr(self, name)}: expected > 0")
        for name in ("zero_flow_tolerance_l_per_h", "abnormal_min_excess_l_per_day", "reverse_tolerance_l"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name}={getattr(self, name)}: expected ≥ 0")
        for name in ("abnormal_period_days", "abnormal_history_periods"):
            if int(getattr(self, name)) != getattr(self, name) or getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}: expected a whole number ≥ 1")

    @classmethod
    def from_settings(cls, settings) -> "LeakParams":
        """The thresholds from :class:`vigie.config.Settings` (fields of the same name)."""
        return cls(**{f.name: getattr(settings, f.name) for f in fields(cls) if hasattr(settings, f.name)})

    @property
    def history_days(self) -> int:
        """Days before D that the abnormal-consumption rule reads from history."""
        return (self.abnormal_history_periods + 1) * self.abnormal_period_days - 1

    def intervals(self, meters: MeterCodes, t: np.ndarray, v: np.ndarray,
                  window: tuple[int, int] | None = None) -> Intervals:
        """:func:`vigie.analytics.intervals.intervals_of` with these limits."""
        return intervals_of(meters, t, v, max_interval_h=self.max_interval_h,
                            reverse_tolerance_l=self.reverse_tolerance_l, max_flow_l_per_h=self.max_flow_l_per_h,
                            window=window)

    def grid_intervals(self, grid: Grid, window: tuple[int, int]) -> tuple[np.ndarray, ...]:
        """:func:`vigie.analytics.intervals.grid_intervals` with these limits."""
        return grid_intervals(grid, max_interval_h=self.max_interval_h, reverse_tolerance_l=self.reverse_tolerance_l,
                              max_flow_l_per_h=self.max_flow_l_per_h, window=window)


def _local_ts(day: date, t: time, tz: ZoneInfo) -> int:
    # fold=0: a wall time skipped by spring-forward maps past the gap, an ambiguous one to its
    # first occurrence — so 02:00 on a DST day is 03:00 CEST in spring and 02:00 CEST in autumn.
    return int(datetime.combine(day, t, tzinfo=tz).timestamp())


def _fmt(template: str, *cols: np.ndarray) -> np.ndarray:
    """``template % row`` for the rows of some columns (only the few rows that need a text)."""
    return np.array([template % row for row in zip(*cols)] or [], dtype=object)


def _choose(cond: np.ndarray, yes: str, no: str) -> np.ndarray:
    """Object array of ``yes`` where ``cond`` else ``no``: two shared strings, not a new one per row
    (which ``np.where`` on str then ``astype(object)`` would make)."""
    return np.array([no, yes], dtype=object)[cond.astype(np.intp)]


def _sum_by(code: np.ndarray, weights: np.ndarray, n: int) -> np.ndarray:
    """Sums of ``weights`` per code, float64 (bincount gives int64 for empty input)."""
    return np.bincount(code, weights=weights, minlength=n).astype(np.float64, copy=False)


def _union_ids(ids: np.ndarray, expected: list[str] | None) -> tuple[np.ndarray, np.ndarray]:
    """Sorted union of ``ids`` (sorted, unique) and ``expected``, and where each of ``ids`` lands."""
    if not expected:
        return ids, np.arange(len(ids))
    extra = np.array(sorted(set(expected) - set(ids.tolist())), dtype=object)
    if not len(extra):
        return ids, np.arange(len(ids))
    at = np.searchsorted(ids, extra)  # few binary searches instead of sorting the whole fleet again
    where = np.arange(len(ids)) + np.searchsorted(at, np.arange(len(ids)), side="right")
    return np.insert(ids, at, extra), where


def _positions(ids: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Position in ``ids`` (sorted, unique) of each of ``values``, −1 when absent.

    A binary search per value: hashing a fleet's ids to look up a few flagged meters costs ~15× more.
    """
    if not len(ids):
        return np.full(len(values), -1)
    try:
        at = np.searchsorted(ids, values)
    except TypeError:  # values not comparable with the ids (a missing id, another type): hash instead
        return pd.Index(ids, dtype=object).get_indexer(values)
    found = ids[np.minimum(at, len(ids) - 1)] == values
    return np.where(found, at, -1)


@dataclass(frozen=True, slots=True)
class DayStats:
    """What the rules need of one day, per meter (arrays of one length): ``coverage`` (0–1, known
    seconds / day length), ``volume`` (L from known intervals, pro rata by overlap), ``night_flow``
    (L/h over the night window, NaN when none of it is known), ``min_rate`` (L/h, the lowest known
    interval flow, NaN when none), ``zero_flow`` (that minimum at zero flow), ``burst_rate`` (L/h)
    and ``burst_min`` (min) of the strongest burst (NaN without one), ``has_reading`` (a reading
    inside the day)."""

    coverage: np.ndarray
    volume: np.ndarray
    night_flow: np.ndarray
    min_rate: np.ndarray
    zero_flow: np.ndarray
    burst_rate: np.ndarray
    burst_min: np.ndarray
    has_reading: np.ndarray

    @classmethod
    def empty(cls, n: int) -> "DayStats":
        """``n`` meters without any known interval or reading on the day."""
        nan = np.full(n, np.nan)
        return cls(np.zeros(n), np.zeros(n), nan, nan.copy(), np.zeros(n, dtype=bool), nan.copy(), nan.copy(),
                   np.zeros(n, dtype=bool))

    def put(self, where: np.ndarray, other: "DayStats") -> None:
        """Write ``other``'s meters at positions ``where`` of these arrays."""
        for f in fields(self):
            getattr(self, f.name)[where] = getattr(other, f.name)


def _fleet_day(readings: pd.DataFrame, ds: int, de: int, night: tuple[int, int], params: LeakParams,
               fast_path: bool) -> tuple[MeterCodes, DayStats]:
    """Every meter of ``readings`` (``meters.ids``) and its :class:`DayStats` for day ``[ds, de)``.

    Meters that read in step (a :class:`~vigie.analytics.intervals.Grid`, the usual fleet) take the
    grid path: the same rules on intervals × meters arrays, where every interval's bounds and
    overlaps are one number per grid row. The others take the general path, per interval.
    Both give the same numbers, bit for bit; ``fast_path=False`` sends every meter the general way.
    """
    column = readings["meter_id"]
    meters = meter_codes(column, all_categories=fast_path)
    grid = fleet_grid(meters, readings) if fast_path else None
    if grid is not None:
        return meters, _grid_day_stats(grid, ds, de, night, params)
    if isinstance(column.dtype, pd.CategoricalDtype):  # categories may list meters without readings
        meters = meter_codes(column)
    meters, t, v = sorted_readings(readings, meters)
    grid, rest = split_grid(meters, t, v) if fast_path else (None, None)
    if grid is None:
        return meters, _day_stats(meters, t, v, ds, de, night, params)
    on_grid = _grid_day_stats(grid, ds, de, night, params)
    n = len(meters.ids)
    if len(grid.meters) == n:
        return meters, on_grid
    if rest.any():
        stats = _day_stats(MeterCodes(meters.codes[rest], meters.ids), t[rest], v[rest], ds, de, night, params)
    else:
        stats = DayStats.empty(n)
    stats.put(grid.meters, on_grid)
    return meters, stats


def _day_stats(meters: MeterCodes, t: np.ndarray, v: np.ndarray, ds: int, de: int, night: tuple[int, int],
               params: LeakParams) -> DayStats:
    """:class:`DayStats` (length ``len(meters.ids)``) of sorted readings, interval by interval."""
    iv = params.intervals(meters, t, v, window=(ds, de))
    n = len(iv.ids)
    c, s, e, vol, rate = iv.code, iv.start, iv.end, iv.volume_l, iv.rate_l_per_h
    if not iv.known.all():  # unknown intervals are rare: copy the rest only when there are some
        k = iv.known
        c, s, e, vol, rate = c[k], s[k], e[k], vol[k], rate[k]
    # Each meter's intervals are contiguous: per-meter minima and integer sums run on segments.
    first = np.flatnonzero(np.r_[True, c[1:] != c[:-1]]) if len(c) else np.zeros(0, dtype=np.int64)
    seg = c[first]

    # Volume and known seconds pro rata by overlap (what apportion does, with fewer passes: only
    # the few intervals crossing midnight need a share computed).
    dur = e - s
    overlap, share = dur, vol
    cross = np.flatnonzero((s < ds) | (e > de))
    if len(cross):
        overlap, share = dur.copy(), vol.copy()
        overlap[cross] = np.minimum(e[cross], de) - np.maximum(s[cross], ds)
        share[cross] *= overlap[cross] / dur[cross]
    known_s = np.zeros(n)
    if len(first):  # whole seconds: an integer sum is exact, so its order does not matter
        known_s[seg] = np.add.reduceat(overlap, first)
    coverage = known_s / (de - ds)
    volume = _sum_by(c, share, n)  # a float sum: bincount keeps the intervals' order
    w = np.flatnonzero((e > night[0]) & (s < night[1]))
    w_overlap = (np.minimum(e[w], night[1]) - np.maximum(s[w], night[0])).astype(np.float64)
    night_s = _sum_by(c[w], w_overlap, n)
    night_l = _sum_by(c[w], vol[w] * w_overlap / dur[w], n)
    with np.errstate(invalid="ignore", divide="ignore"):
        night_flow = np.where(night_s > 0, night_l / night_s * 3600.0, np.nan)

    min_rate = np.full(n, np.nan)
    if len(first):
        min_rate[seg] = np.minimum.reduceat(rate, first)
    # Known rates are finite, so "some interval at zero flow" is "the minimum is at zero flow".
    zero_flow = min_rate <= params.zero_flow_tolerance_l_per_h

    idx = np.flatnonzero(rate > params.burst_flow_l_per_h)
    burst_rate, burst_min = _bursts(idx, c[idx], s[idx], e[idx], dur[idx], vol[idx], n, params)
    has_reading = np.bincount(meters.codes[(t >= ds) & (t < de)], minlength=n) > 0
    return DayStats(coverage, volume, night_flow, min_rate, zero_flow, burst_rate, burst_min, has_reading)


def _grid_day_stats(grid: Grid, ds: int, de: int, night: tuple[int, int], params: LeakParams) -> DayStats:
    """:class:`DayStats` of the meters of ``grid`` (in its order), equal bit for bit to what
    :func:`_day_stats` gives them.

    Every meter shares the interval bounds, so overlaps with the day and the night are one number
    per row. Float sums run row after row from zero, the order bincount adds a meter's intervals
    in, with unknown intervals adding an exact zero.
    """
    m = len(grid.meters)
    start, end, vol, rate, known = params.grid_intervals(grid, window=(ds, de))
    stats = DayStats.empty(m)
    stats.has_reading[:] = ((grid.times >= ds) & (grid.times < de)).any()
    if not len(start):
        return stats
    dur = end - start
    overlap = np.minimum(end, de) - np.maximum(start, ds)
    night_overlap = (np.minimum(end, night[1]) - np.maximum(start, night[0])).astype(np.float64)
    known_s = np.zeros(m, dtype=np.int64)
    night_s, night_l = np.zeros(m), np.zeros(m)
    for i in range(len(start)):  # an add skipped (unknown interval) is an add of zero in bincount
        k = known[i]
        np.add(known_s, overlap[i], out=known_s, where=k)
        share = vol[i] if overlap[i] == dur[i] else vol[i] * (overlap[i] / dur[i])
        np.add(stats.volume, share, out=stats.volume, where=k)
        if night_overlap[i] > 0:
            np.add(night_s, night_overlap[i], out=night_s, where=k)
            np.add(night_l, vol[i] * night_overlap[i] / dur[i], out=night_l, where=k)
    stats.coverage[:] = known_s / (de - ds)
    with np.errstate(invalid="ignore", divide="ignore"):
        stats.night_flow[:] = np.where(night_s > 0, night_l / night_s * 3600.0, np.nan)
    stats.min_rate[:] = np.fmin.reduce(rate, axis=0)
    stats.zero_flow[:] = stats.min_rate <= params.zero_flow_tolerance_l_per_h
    # Few meters ever pass the threshold: find them by their peak, then their intervals.
    hot = np.flatnonzero(np.fmax.reduce(rate, axis=0) > params.burst_flow_l_per_h)
    row, col = np.nonzero(rate[:, hot] > params.burst_flow_l_per_h)
    order = np.lexsort((row, col))  # meter by meter, as _day_stats sees them
    row, col = row[order], hot[col[order]]
    stats.burst_rate[:], stats.burst_min[:] = _bursts(col * len(start) + row, col, start[row], end[row], dur[row],
                                                      vol[row, col], m, params)
    return stats


def _bursts(pos, c, s, e, dur, vol, n: int, params: LeakParams) -> tuple[np.ndarray, np.ndarray]:
    """Per meter: the highest sustained flow (L/h) of its bursts and that burst's length (min), NaN
    without a burst. A burst is a run of consecutive intervals above the threshold lasting at least
    the minimum duration; each run counts by its own length.

    The intervals above the threshold, in meter-then-time order: ``pos`` their positions in the
    sequence of known intervals (consecutive intervals have consecutive positions), ``c`` their
    meter code, ``s``/``e`` bounds and ``dur`` length (epoch s), ``vol`` volume (L).
    """
    follows = (pos[1:] == pos[:-1] + 1) & (c[1:] == c[:-1]) & (s[1:] == e[:-1])
    run_start = np.r_[True, ~follows] if len(pos) else np.zeros(0, dtype=bool)
    run = np.cumsum(run_start) - 1
    run_s = _sum_by(run, dur, 0)
    run_v = _sum_by(run, vol, 0)
    run_code = c[run_start]
    ok = run_s >= params.burst_min_duration_min * 60.0
    burst_rate, burst_min = np.full(n, np.nan), np.full(n, np.nan)
    if ok.any():
        rc, rr, rs = run_code[ok], run_v[ok] / run_s[ok] * 3600.0, run_s[ok]
        order = np.lexsort((rr, rc))  # the highest sustained flow of each meter comes last
        last = order[np.r_[rc[order][1:] != rc[order][:-1], True]]
        burst_rate[rc[last]], burst_min[rc[last]] = rr[last], rs[last] / 60.0
    return burst_rate, burst_min


def _history_matrix(history: pd.DataFrame | None, ids: np.ndarray, first: date, n_days: int) -> tuple:
    """(volume_l, coverage) arrays ``(len(ids), n_days)`` for days ``first + j``; NaN when absent."""
    vol = np.full((len(ids), n_days), np.nan)
    cov = np.full((len(ids), n_days), np.nan)
    if history is None or history.empty:
        return vol, cov
    missing = {"meter_id", "day", "volume_l"} - set(history.columns)
    if missing:
        raise ValueError(f"history lacks column(s) {sorted(missing)}; expected meter_id, day, volume_l[, coverage]")
    volume_l = history["volume_l"].to_numpy(dtype=np.float64)
    coverage = history["coverage"].to_numpy(dtype=np.float64) if "coverage" in history.columns else None
    block_days = _fleet_day_blocks(history, ids)
    if block_days is not None:  # one column per block, no per-row position
        j = _offsets(history["day"].cat.categories, first)[block_days]
        vols = volume_l.reshape(len(j), len(ids))
        covs = None if coverage is None else coverage.reshape(len(j), len(ids))
        keep = (j >= 0) & (j < n_days)
        if not keep.all():
            j, vols, covs = j[keep], vols[keep], None if covs is None else covs[keep]
        if covs is None:
            covs = np.where(np.isnan(vols), np.nan, 1.0)
        if len(j) and (np.diff(j) == 1).all():  # consecutive days: one transposing copy, ~7× faster
            vol[:, j[0]:j[-1] + 1], cov[:, j[0]:j[-1] + 1] = vols.T, covs.T
        else:  # a day missing or twice: block by block, the later block winning as a repeated point does
            for b in range(len(j)):
                vol[:, j[b]], cov[:, j[b]] = vols[b], covs[b]
        return vol, cov
    m = _rows_of(history["meter_id"], ids)
    j = _day_offsets(history["day"], first)
    keep = (m >= 0) & (j >= 0) & (j < n_days)
    if not keep.all():
        m, j, volume_l = m[keep], j[keep], volume_l[keep]
        coverage = None if coverage is None else coverage[keep]
    at = m * n_days + j  # flat positions: a 1-D scatter is ~3× cheaper than a 2-D one
    vol.reshape(-1)[at] = volume_l
    cov.reshape(-1)[at] = coverage if coverage is not None else np.where(np.isnan(vol.reshape(-1)[at]), np.nan, 1.0)
    return vol, cov


def _fleet_day_blocks(history: pd.DataFrame, ids: np.ndarray) -> np.ndarray | None:
    """The day code of each block when ``history`` is blocks of one day, each listing every meter
    of ``ids`` in order — read_history's frame for a fleet checked every day — else ``None``.
    Needs categorical ``meter_id`` and ``day`` (integer comparisons only)."""
    meter_id, day = history["meter_id"], history["day"]
    n = len(ids)
    if not (isinstance(meter_id.dtype, pd.CategoricalDtype) and isinstance(day.dtype, pd.CategoricalDtype)):
        return None
    if n == 0 or len(history) % n or len(meter_id.cat.categories) != n:
        return None
    if not (np.asarray(meter_id.cat.categories, dtype=object) == ids).all():
        return None
    if not (meter_id.cat.codes.to_numpy().reshape(-1, n) == np.arange(n)).all():
        return None
    day_code = day.cat.codes.to_numpy().reshape(-1, n)
    if not (day_code == day_code[:, :1]).all():
        return None
    return day_code[:, 0]


def _rows_of(meter_id: pd.Series, ids: np.ndarray) -> np.ndarray:
    """Position in ``ids`` (sorted, unique) of each row's meter, −1 when absent or missing.

    Each distinct id is looked up once in the fleet, not once per row: a categorical column (as
    read_history gives) has them already, a text one is factorized first.
    """
    if isinstance(meter_id.dtype, pd.CategoricalDtype):
        codes = meter_id.cat.codes.to_numpy()
        seen = np.asarray(meter_id.cat.categories.astype(str), dtype=object)
    else:
        codes, seen = pd.factorize(meter_id.astype(str).to_numpy(dtype=object))
    if len(seen) == len(ids) and (seen == ids).all():  # the same fleet as the readings: no lookup
        at = np.arange(len(ids))
    else:
        at = pd.Index(ids, dtype=object).get_indexer(seen)
    return np.append(at, -1)[codes]  # code -1 (missing) → the last, −1


#: Rows compared before paying a full pass to find runs of one day.
_RUN_PROBE = 4096


def _day_offsets(day: pd.Series, first: date) -> np.ndarray:
    """Days from ``first`` to each of ``day`` (date-like values), int64, −1 where missing.

    Few distinct days: each is converted once, not millions of date objects. read_history gives
    them as a categorical (codes as they are); date objects come day by day, in long runs, which
    comparing neighbours finds ~3× faster than hashing.
    """
    if isinstance(day.dtype, pd.CategoricalDtype):
        labels, codes = day.cat.categories, day.cat.codes.to_numpy()
        return _offsets(labels, first)[codes]
    days = day.to_numpy(dtype=object)
    head = days[:_RUN_PROBE]
    starts = None
    if len(days) and 2 * np.count_nonzero(head[1:] != head[:-1]) <= len(head):
        starts = np.flatnonzero(np.r_[True, days[1:] != days[:-1]])
    if starts is not None and 64 * len(starts) <= len(days):
        labels, codes = days[starts], np.repeat(np.arange(len(starts)), np.diff(starts, append=len(days)))
    else:
        codes, labels = pd.factorize(days)
    return _offsets(labels, first)[codes]


def _offsets(labels, first: date) -> np.ndarray:
    """Days from ``first`` to each label, then −1 (for code −1, a missing day)."""
    offsets = [-1 if pd.isna(d) else (pd.Timestamp(d).date() - first).days for d in labels]
    return np.array(offsets + [-1], dtype=np.int64)


def _abnormal(vol: np.ndarray, cov: np.ndarray, params: LeakParams):
    """Loi Warsmann test per meter: (leak, evaluable, period volume, reference average), the
    last two NaN where not evaluable.

    ``vol``/``cov``: volume (L) and coverage per meter and day, shape ``(meters, (k + 1) × p)``
    for ``k`` = ``abnormal_history_periods`` periods of ``p`` = ``abnormal_period_days`` days, the
    last column day D. A day counts when its coverage reaches ``min_coverage``; its volume is
    scaled to the full day (volume / coverage). A period counts when that many of its days count;
    its volume is the mean of its counted days × its length. All comparable periods and the
    current one must count.
    """
    p, k = params.abnormal_period_days, params.abnormal_history_periods
    n = len(vol)
    usable = cov >= params.min_coverage
    usable &= ~np.isnan(vol)
    by_period = usable.reshape(n, k + 1, p)
    counted = by_period[:, :, 0].astype(np.int64)
    for d in range(1, p):  # day by day: ~3× faster than a sum over a short last axis
        counted += by_period[:, :, d]
    evaluable = (counted >= params.min_coverage * p).all(axis=1)
    # Volumes only for the meters that can be judged (none while history is still building up).
    rows = np.flatnonzero(evaluable)
    if len(rows) < n:
        vol, cov, usable, counted = vol[rows], cov[rows], usable[rows], counted[rows]
    with np.errstate(invalid="ignore", divide="ignore"):  # days that do not count: dropped below
        est = vol / cov
    np.copyto(est, 0.0, where=~usable)
    period = est.reshape(len(rows), k + 1, p).sum(axis=2) / counted * p
    current, average = np.full(n, np.nan), np.full(n, np.nan)
    current[rows], average[rows] = period[:, k], period[:, :k].mean(axis=1)
    leak = evaluable & (current > WARSMANN_FACTOR * average) & (
        current - average > params.abnormal_min_excess_l_per_day * p)
    return leak, evaluable, current, average


def _meter_flags(alarms: pd.DataFrame, ids: np.ndarray, ds: int, de: int) -> np.ndarray:
    """Per meter of ``ids``: a bitmask of the :data:`LEAK_FLAGS` raised on a reading of the day."""
    missing = {"meter_id", "time", "alarms"} - set(alarms.columns)
    if missing:
        raise ValueError(f"alarms lack column(s) {sorted(missing)}; expected meter_id, time, alarms")
    t = alarms["time"].to_numpy(dtype=np.int64)
    column = alarms["alarms"]
    if isinstance(column.dtype, pd.CategoricalDtype):  # read_indices': a few distinct texts, compared once
        labels = np.asarray(column.cat.categories, dtype=object)
        raising = np.array([isinstance(x, str) and x != "" for x in labels] + [False])  # code −1 last
        codes = column.cat.codes.to_numpy()
        blank = np.flatnonzero(labels == "")
        # Rows with a flag are few: find them by code first, then look at their time.
        raised = np.flatnonzero(codes != blank[0]) if len(blank) else np.arange(len(codes))
        raised = raised[raising[codes[raised]]]
        raised = raised[(t[raised] >= ds) & (t[raised] < de)]
        text = labels[codes[raised]]
    else:
        on_day = (t >= ds) & (t < de)
        every = column.to_numpy(dtype=object)
        # Text compared on the day's rows only, without gathering them (alarms may be all the readings).
        raised = np.flatnonzero(np.not_equal(every, "", out=np.zeros(len(every), dtype=bool), where=on_day))
        raised = raised[pd.notna(every[raised])]
        text = every[raised]
    mask = np.zeros(len(ids), dtype=np.int64)
    if len(raised):
        owner = _positions(ids, np.asarray(alarms["meter_id"].array[raised], dtype=object))
        # Few distinct texts: each split once into the bits of the flags it lists.
        which, texts = pd.factorize(text)
        names = [str(f) for f in LEAK_FLAGS]
        bits = np.array([sum(1 << i for i, f in enumerate(names) if f in x.split()) for x in texts], dtype=np.int64)
        row_bits = bits[which]
        for bit in range(len(LEAK_FLAGS)):
            hit = (row_bits >> bit & 1).astype(bool) & (owner >= 0)
            mask |= (np.bincount(owner[hit], minlength=len(ids)) > 0).astype(np.int64) << bit
    return mask


def detect_leaks(readings: pd.DataFrame, day: date, tz: ZoneInfo, params: LeakParams,
                 history: pd.DataFrame | None = None, meter_ids: list[str] | None = None,
                 alarms: pd.DataFrame | None = None, *, fast_path: bool = True) -> pd.DataFrame:
    """Run the four leak rules for local day ``day`` over every meter at once.

    ``readings``: frame of :func:`vigie.store.water.read_indices` covering at least
    ``[D 00:00 − max_interval_h, D+1 00:00 + max_interval_h)`` local (intervals crossing midnight
    count by their overlap). ``alarms``: the meters' flags, columns ``meter_id``, ``time``,
    ``alarms`` (normalised names, space-separated), at least the readings with flags; when
    ``None`` the ``alarms`` column of ``readings`` (``with_alarms=True``) is used, and without
    either the ``meter_flag`` rule is left out. Flags of meters absent from ``readings`` are
    ignored. ``history``: past daily volumes, columns
    ``meter_id``, ``day`` (date), ``volume_l`` and optionally ``coverage`` (taken as 1 when absent),
    for the :attr:`LeakParams.history_days` days before D (rows for D itself are ignored).
    ``meter_ids``: meters expected; those without data get ``insufficient_data`` ("no readings").

    Returns one row per meter (sorted) × rule (in :class:`LeakRule` order), columns
    :data:`RESULT_COLUMNS` mirroring :class:`CheckResult` (``day`` a date, ``rule``/``status``
    strings, NaN for absent numbers); :func:`to_check_results` turns it into records.
    ``volume_l`` and ``coverage`` are the day's on every rule; ``rate_l_per_h`` is the minimum
    interval flow (continuous_flow), the highest sustained flow (burst), the mean excess flow over
    the period (abnormal_consumption, when the average is known).

    Meters reading at the same instants are computed as one array (see :func:`_fleet_day`);
    ``fast_path=False`` computes every meter interval by interval instead, with the same results.
    Categorical ``meter_id``/``alarms``/``day`` columns, as the readers return them, are read
    through their codes.
    """
    check_readings(readings)
    ds, de = local_midnight(day, tz), local_midnight(day + timedelta(days=1), tz)
    night = (_local_ts(day, NIGHT_START, tz), _local_ts(day, NIGHT_END, tz))
    meters, st = _fleet_day(readings, ds, de, night, params, fast_path)
    ids = meters.ids
    all_ids, where = _union_ids(ids, meter_ids)  # where: readings' meter code → position in all_ids
    n, n_all = len(ids), len(all_ids)

    def widen(a: np.ndarray, fill) -> np.ndarray:
        out = np.full(n_all, fill, dtype=a.dtype)
        out[where] = a
        return out

    has_data = widen(np.ones(n, dtype=bool), False)
    coverage = widen(st.coverage, 0.0)
    volume = np.where(coverage > 0, widen(st.volume, np.nan), np.nan)
    night_flow = widen(st.night_flow, np.nan)
    enough = coverage >= params.min_coverage

    # Shared "not enough data" status and detail for the three flow rules.
    base_status = _choose(enough, _OK, _NODATA)
    base_detail = np.full(n_all, "", dtype=object)
    low = ~enough & has_data
    base_detail[low] = _fmt(f"coverage %.3f < {params.min_coverage:.3f}", coverage[low])
    base_detail[~has_data] = "no readings"

    # continuous_flow
    cf_rate = widen(st.min_rate, np.nan)
    cf_leak = enough & ~widen(st.zero_flow, False)
    cf_status, cf_detail = base_status.copy(), base_detail.copy()
    cf_status[cf_leak] = _LEAK
    cf_detail[cf_leak] = _fmt("no zero-flow interval; minimum flow %.1f L/h", cf_rate[cf_leak])

    # burst
    b_rate, b_min = widen(st.burst_rate, np.nan), widen(st.burst_min, np.nan)
    b_leak = enough & ~np.isnan(b_rate)
    b_status, b_detail = base_status.copy(), base_detail.copy()
    b_status[b_leak] = _LEAK
    b_detail[b_leak] = _fmt(f"%.0f L/h sustained for %.0f min (above {params.burst_flow_l_per_h:g} L/h)",
                            b_rate[b_leak], b_min[b_leak])

    # abnormal_consumption
    first_hist = day - timedelta(days=params.history_days)
    # One column per day, D last: its own volume and coverage, never a history row for D.
    if history is None or history.empty:  # no comparable period: no meter can be judged
        ab_leak, evaluable = np.zeros(n_all, dtype=bool), np.zeros(n_all, dtype=bool)
        current, average = np.full(n_all, np.nan), np.full(n_all, np.nan)
    else:
        day_vol, day_cov = _history_matrix(history, all_ids, first_hist, params.history_days + 1)
        day_vol[:, -1], day_cov[:, -1] = volume, coverage
        ab_leak, evaluable, current, average = _abnormal(day_vol, day_cov, params)
    ab_leak &= enough
    ab_status, ab_detail = base_status.copy(), base_detail.copy()
    no_hist = enough & ~evaluable
    ab_status[no_hist], ab_detail[no_hist] = _NODATA, "history"
    ab_status[ab_leak] = _LEAK
    ab_detail[ab_leak] = _fmt(
        f"{params.abnormal_period_days}-day volume %.0f L > {WARSMANN_FACTOR:g} × average %.0f L "
        f"of {params.abnormal_history_periods} previous periods", current[ab_leak], average[ab_leak])
    ab_rate = np.where(enough & evaluable, (current - average) / (params.abnormal_period_days * 24.0), np.nan)

    blocks = [(cf_status, cf_detail, cf_rate), (b_status, b_detail, b_rate), (ab_status, ab_detail, ab_rate)]
    rules = list(_RULES[:3])

    # meter_flag
    if alarms is None and "alarms" in readings.columns:
        alarms = readings
    if alarms is not None:
        has_reading = widen(st.has_reading, False)
        mask = widen(_meter_flags(alarms, ids, ds, de), 0)
        table = np.array([" ".join(str(f) for i, f in enumerate(LEAK_FLAGS) if m >> i & 1)
                          for m in range(1 << len(LEAK_FLAGS))], dtype=object)
        mf_status = _choose(has_reading, _OK, _NODATA)
        mf_status[mask > 0] = _LEAK
        mf_detail = table[mask]
        silent = ~has_reading
        mf_detail[silent] = _choose(has_data[silent], "no readings on the day", "no readings")
        blocks.append((mf_status, mf_detail, np.full(n_all, np.nan)))
        rules.append(LeakRule.METER_FLAG)

    k = len(blocks)

    def interleave(cols: list[np.ndarray]) -> np.ndarray:  # meter-major, rules in order
        return np.column_stack(cols).ravel()

    def text(values: np.ndarray) -> pd.Series:
        # Typed once, not inferred column by column by the DataFrame constructor (~2× its cost).
        return pd.Series(values, dtype="str", copy=False)

    return pd.DataFrame({
        "meter_id": text(np.repeat(all_ids, k)),
        "day": pd.Series(np.full(n_all * k, day, dtype=object), dtype=object, copy=False),
        "rule": text(np.tile(np.array([str(r) for r in rules], dtype=object), n_all)),
        "status": text(interleave([b[0] for b in blocks])),
        "rate_l_per_h": interleave([b[2] for b in blocks]),
        "night_flow_l_per_h": np.repeat(np.where(has_data, night_flow, np.nan), k),
        "volume_l": np.repeat(volume, k),
        "coverage": np.repeat(coverage, k),
        "detail": text(interleave([b[1] for b in blocks])),
    }, copy=False)


def to_check_results(frame: pd.DataFrame) -> list[CheckResult]:
    """Rows of a :func:`detect_leaks` frame as :class:`CheckResult` records (NaN → None)."""
    def col(name: str) -> list:
        a = frame[name].to_numpy(dtype=object)
        if name in ("rate_l_per_h", "night_flow_l_per_h", "volume_l", "coverage"):
            # m³ indices differenced in float64 leave ~1e-10 L of noise: keep millilitres.
            num = np.round(frame[name].to_numpy(dtype=np.float64), 3)
            a = np.where(np.isnan(num), None, num.astype(object))
        return a.tolist()

    rules = {str(r): r for r in LeakRule}
    statuses = {str(s): s for s in CheckStatus}
    columns = [col(c) for c in RESULT_COLUMNS]
    # A fleet is ~10^5-10^6 records, none in a reference cycle: the cyclic collector's repeated
    # passes over them while they are made would cost more than making them (~2.5×).
    collecting = gc.isenabled()
    gc.disable()
    try:
        return [CheckResult(m, d, rules[r], statuses[s], rate, night, vol, cov, detail)
                for m, d, r, s, rate, night, vol, cov, detail in zip(*columns)]
    finally:
        if collecting:
            gc.enable()


def daily_volumes(readings: pd.DataFrame, first_day: date, last_day: date, tz: ZoneInfo,
                  params: LeakParams) -> pd.DataFrame:
    """Volume and coverage per meter and local day, ``first_day..last_day`` inclusive.

    Columns: ``meter_id`` (str), ``day`` (date), ``volume_l`` (litres from known intervals, pro
    rata by overlap; NaN when nothing of the day is known), ``coverage`` (0–1). Sorted by meter
    then day; the shape :func:`detect_leaks` takes as ``history``.
    """
    meters, t, v = sorted_readings(readings)
    iv = params.intervals(meters, t, v)
    ids = meters.ids
    edges = bucket_edges(first_day, last_day, tz, "day")
    k = iv.known
    vol, known_s = apportion(iv.code[k], iv.start[k], iv.end[k], iv.volume_l[k], len(ids), edges)
    nd = len(edges) - 1
    days = np.array([first_day + timedelta(days=i) for i in range(nd)], dtype=object)
    return pd.DataFrame({
        "meter_id": pd.Series(np.repeat(ids, nd), dtype=str),
        "day": np.tile(days, len(ids)),
        "volume_l": np.where(known_s > 0, vol, np.nan).ravel(),
        "coverage": (known_s / np.diff(edges)).ravel(),
    })
