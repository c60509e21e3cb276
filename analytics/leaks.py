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

from vigie.analytics.intervals import (DEFAULT_MAX_FLOW_L_PER_H, DEFAULT_REVERSE_TOLERANCE_L, Intervals,
                                       MeterCodes,
                                       apportion, bucket_edges, intervals_of, local_midnight, sorted_readings)
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
    extra = np.array(sorted(set(expected or ()) - set(ids.tolist())), dtype=object)
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


def _day_stats(iv: Intervals, ds: int, de: int, night: tuple[int, int], params: LeakParams) -> dict:
    """Per-meter arrays (length ``len(iv.ids)``) for one day, from the known intervals of ``iv``,
    which holds only intervals overlapping the day, sorted by meter then start."""
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

    burst_rate, burst_min = _bursts(c, s, e, dur, vol, rate, n, params)
    return {"coverage": coverage, "volume": volume, "night_flow": night_flow, "min_rate": min_rate,
            "zero_flow": zero_flow, "burst_rate": burst_rate, "burst_min": burst_min}


def _bursts(c, s, e, dur, vol, rate, n: int, params: LeakParams) -> tuple[np.ndarray, np.ndarray]:
    """Per meter: the highest sustained flow (L/h) of its bursts and that burst's length (min), NaN
    without a burst. A burst is a run of consecutive intervals above the threshold lasting at least
    the minimum duration; each run counts by its own length."""
    idx = np.flatnonzero(rate > params.burst_flow_l_per_h)  # few: runs are found among them only
    ci, si, ei = c[idx], s[idx], e[idx]
    follows = (idx[1:] == idx[:-1] + 1) & (ci[1:] == ci[:-1]) & (si[1:] == ei[:-1])
    run_start = np.r_[True, ~follows] if len(idx) else np.zeros(0, dtype=bool)
    run = np.cumsum(run_start) - 1
    run_s = _sum_by(run, dur[idx], 0)
    run_v = _sum_by(run, vol[idx], 0)
    run_code = ci[run_start]
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
    codes, seen = pd.factorize(history["meter_id"].astype(str).to_numpy(dtype=object))
    # Each distinct id looked up once in the fleet, not once per row (-1, a missing id, stays -1).
    m = np.append(pd.Index(ids, dtype=object).get_indexer(seen), -1)[codes]
    j = _day_offsets(history["day"].to_numpy(dtype=object), first)
    volume_l = history["volume_l"].to_numpy(dtype=np.float64)
    coverage = history["coverage"].to_numpy(dtype=np.float64) if "coverage" in history.columns else None
    keep = (m >= 0) & (j >= 0) & (j < n_days)
    if not keep.all():
        m, j, volume_l = m[keep], j[keep], volume_l[keep]
        coverage = None if coverage is None else coverage[keep]
    vol[m, j] = volume_l
    cov[m, j] = coverage if coverage is not None else np.where(np.isnan(vol[m, j]), np.nan, 1.0)
    return vol, cov


#: Rows compared before paying a full pass to find runs of one day.
_RUN_PROBE = 4096


def _day_offsets(days: np.ndarray, first: date) -> np.ndarray:
    """Days from ``first`` to each of ``days`` (date-like objects), int64, −1 where missing.

    Few distinct days: each is converted once, not millions of date objects. read_history gives
    them day by day, in long runs, which comparing neighbours finds ~3× faster than hashing.
    """
    head = days[:_RUN_PROBE]
    starts = None
    if len(days) and 2 * np.count_nonzero(head[1:] != head[:-1]) <= len(head):
        starts = np.flatnonzero(np.r_[True, days[1:] != days[:-1]])
    if starts is not None and 64 * len(starts) <= len(days):
        labels, codes = days[starts], np.repeat(np.arange(len(starts)), np.diff(starts, append=len(days)))
    else:
        codes, labels = pd.factorize(days)
    offsets = [-1 if pd.isna(d) else (pd.Timestamp(d).date() - first).days for d in labels]
    return np.array(offsets + [-1], dtype=np.int64)[codes]  # code -1 (missing) → the last, −1


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
    counted = usable.reshape(n, k + 1, p).sum(axis=2)
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
    text = alarms["alarms"].to_numpy(dtype=object)
    # Text compared on the day's rows only, without gathering them (alarms may be all the readings).
    on_day = (t >= ds) & (t < de)
    raised = np.flatnonzero(np.not_equal(text, "", out=np.zeros(len(text), dtype=bool), where=on_day))
    raised = raised[pd.notna(text[raised])]
    mask = np.zeros(len(ids), dtype=np.int64)
    if len(raised):
        owner = _positions(ids, alarms["meter_id"].to_numpy(dtype=object)[raised])
        tokens = pd.Series(text[raised]).str.split().explode()
        owner = owner[tokens.index.to_numpy()]
        for bit, flag in enumerate(LEAK_FLAGS):
            hit = (tokens == str(flag)).to_numpy() & (owner >= 0)
            mask |= (np.bincount(owner[hit], minlength=len(ids)) > 0).astype(np.int64) << bit
    return mask


def detect_leaks(readings: pd.DataFrame, day: date, tz: ZoneInfo, params: LeakParams,
                 history: pd.DataFrame | None = None, meter_ids: list[str] | None = None,
                 alarms: pd.DataFrame | None = None) -> pd.DataFrame:
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
    """
    meters, t, v = sorted_readings(readings)
    ds, de = local_midnight(day, tz), local_midnight(day + timedelta(days=1), tz)
    iv = params.intervals(meters, t, v, window=(ds, de))
    ids = meters.ids
    all_ids, where = _union_ids(ids, meter_ids)  # where: readings' meter code → position in all_ids
    n, n_all = len(ids), len(all_ids)

    night = (_local_ts(day, NIGHT_START, tz), _local_ts(day, NIGHT_END, tz))
    st = _day_stats(iv, ds, de, night, params)

    def widen(a: np.ndarray, fill) -> np.ndarray:
        out = np.full(n_all, fill, dtype=a.dtype)
        out[where] = a
        return out

    has_data = widen(np.ones(n, dtype=bool), False)
    coverage = widen(st["coverage"], 0.0)
    volume = np.where(coverage > 0, widen(st["volume"], np.nan), np.nan)
    night_flow = widen(st["night_flow"], np.nan)
    enough = coverage >= params.min_coverage

    # Shared "not enough data" status and detail for the three flow rules.
    base_status = _choose(enough, _OK, _NODATA)
    base_detail = np.full(n_all, "", dtype=object)
    low = ~enough & has_data
    base_detail[low] = _fmt(f"coverage %.3f < {params.min_coverage:.3f}", coverage[low])
    base_detail[~has_data] = "no readings"

    # continuous_flow
    cf_rate = widen(st["min_rate"], np.nan)
    cf_leak = enough & ~widen(st["zero_flow"], False)
    cf_status, cf_detail = base_status.copy(), base_detail.copy()
    cf_status[cf_leak] = _LEAK
    cf_detail[cf_leak] = _fmt("no zero-flow interval; minimum flow %.1f L/h", cf_rate[cf_leak])

    # burst
    b_rate, b_min = widen(st["burst_rate"], np.nan), widen(st["burst_min"], np.nan)
    b_leak = enough & ~np.isnan(b_rate)
    b_status, b_detail = base_status.copy(), base_detail.copy()
    b_status[b_leak] = _LEAK
    b_detail[b_leak] = _fmt(f"%.0f L/h sustained for %.0f min (above {params.burst_flow_l_per_h:g} L/h)",
                            b_rate[b_leak], b_min[b_leak])

    # abnormal_consumption
    first_hist = day - timedelta(days=params.history_days)
    # One column per day, D last: its own volume and coverage, never a history row for D.
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
        has_reading = widen(np.bincount(meters.codes[(t >= ds) & (t < de)], minlength=n) > 0, False)
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

    frame = pd.DataFrame({
        "meter_id": np.repeat(all_ids, k),
        "day": np.full(n_all * k, day, dtype=object),
        "rule": np.tile(np.array([str(r) for r in rules], dtype=object), n_all),
        "status": interleave([b[0] for b in blocks]),
        "rate_l_per_h": interleave([b[2] for b in blocks]),
        "night_flow_l_per_h": np.repeat(np.where(has_data, night_flow, np.nan), k),
        "volume_l": np.repeat(volume, k),
        "coverage": np.repeat(coverage, k),
        "detail": interleave([b[1] for b in blocks]),
    })
    return frame


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
