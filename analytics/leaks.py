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
    """Thresholds of the leak rules (units in the names; the first eight mirror
    :class:`vigie.config.Settings`, the last two are interval sanity limits, see
    :func:`vigie.analytics.intervals.compute_intervals`)."""

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

    def intervals(self, meters: MeterCodes, t: np.ndarray, v: np.ndarray) -> Intervals:
        """:func:`vigie.analytics.intervals.intervals_of` with these limits."""
        return intervals_of(meters, t, v, max_interval_h=self.max_interval_h,
                            reverse_tolerance_l=self.reverse_tolerance_l, max_flow_l_per_h=self.max_flow_l_per_h)


def _local_ts(day: date, t: time, tz: ZoneInfo) -> int:
    # fold=0: a wall time skipped by spring-forward maps past the gap, an ambiguous one to its
    # first occurrence — so 02:00 on a DST day is 03:00 CEST in spring and 02:00 CEST in autumn.
    return int(datetime.combine(day, t, tzinfo=tz).timestamp())


def _fmt(template: str, *cols: np.ndarray) -> np.ndarray:
    """``template % row`` for the rows of some columns (only the few rows that need a text)."""
    return np.array([template % row for row in zip(*cols)] or [], dtype=object)


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


def _day_stats(iv: Intervals, ds: int, de: int, night: tuple[int, int], params: LeakParams) -> dict:
    """Per-meter arrays (length ``len(iv.ids)``) for one day, from the known intervals overlapping it."""
    n = len(iv.ids)
    in_day = iv.known & (iv.end > ds) & (iv.start < de)
    c, s, e = iv.code[in_day], iv.start[in_day], iv.end[in_day]
    vol, rate = iv.volume_l[in_day], iv.rate_l_per_h[in_day]

    # Volume and known seconds pro rata by overlap (what apportion does, with fewer passes: only
    # the few intervals crossing midnight or the night window need a share computed).
    dur = e - s
    overlap = dur.astype(np.float64)
    share = vol.copy()
    cross = np.flatnonzero((s < ds) | (e > de))
    overlap[cross] = np.minimum(e[cross], de) - np.maximum(s[cross], ds)
    share[cross] *= overlap[cross] / dur[cross]
    coverage = _sum_by(c, overlap, n) / (de - ds)
    volume = _sum_by(c, share, n)
    w = np.flatnonzero((e > night[0]) & (s < night[1]))
    w_overlap = (np.minimum(e[w], night[1]) - np.maximum(s[w], night[0])).astype(np.float64)
    night_s = _sum_by(c[w], w_overlap, n)
    night_l = _sum_by(c[w], vol[w] * w_overlap / dur[w], n)
    with np.errstate(invalid="ignore", divide="ignore"):
        night_flow = np.where(night_s > 0, night_l / night_s * 3600.0, np.nan)

    min_rate = np.full(n, np.nan)
    if len(c):
        first = np.flatnonzero(np.r_[True, c[1:] != c[:-1]])
        min_rate[c[first]] = np.minimum.reduceat(rate, first)
    zero_flow = np.bincount(c[rate <= params.zero_flow_tolerance_l_per_h], minlength=n) > 0

    # Burst: runs of consecutive above-threshold intervals; each counts by its own length.
    above = rate > params.burst_flow_l_per_h
    follows = np.zeros(len(above), dtype=bool)
    follows[1:] = above[:-1] & (c[1:] == c[:-1]) & (s[1:] == e[:-1])
    run_start = above & ~follows
    idx = np.flatnonzero(above)
    run = np.cumsum(run_start)[idx] - 1
    run_s = _sum_by(run, dur[idx], 0)
    run_v = _sum_by(run, vol[idx], 0)
    run_code = c[run_start]
    ok = run_s >= params.burst_min_duration_min * 60.0
    burst_rate, burst_min = np.full(n, np.nan), np.full(n, np.nan)
    if ok.any():
        rc, rr, rs = run_code[ok], run_v[ok] / run_s[ok] * 3600.0, run_s[ok]
        order = np.lexsort((rr, rc))  # the highest sustained flow of each meter comes last
        last = order[np.r_[rc[order][1:] != rc[order][:-1], True]]
        burst_rate[rc[last]], burst_min[rc[last]] = rr[last], rs[last] / 60.0
    return {"coverage": coverage, "volume": volume, "night_flow": night_flow, "min_rate": min_rate,
            "zero_flow": zero_flow, "burst_rate": burst_rate, "burst_min": burst_min}


def _history_matrix(history: pd.DataFrame | None, ids: np.ndarray, first: date, n_days: int) -> tuple:
    """(volume_l, coverage) arrays ``(len(ids), n_days)`` for days ``first + j``; NaN when absent."""
    vol = np.full((len(ids), n_days), np.nan)
    cov = np.full((len(ids), n_days), np.nan)
    if history is None or history.empty:
        return vol, cov
    missing = {"meter_id", "day", "volume_l"} - set(history.columns)
    if missing:
        raise ValueError(f"history lacks column(s) {sorted(missing)}; expected meter_id, day, volume_l[, coverage]")
    m = pd.Index(ids, dtype=object).get_indexer(history["meter_id"].astype(str))
    # Few distinct days: convert those, not millions of date objects.
    day_code, days = pd.factorize(history["day"])
    offsets = np.array([(pd.Timestamp(d).date() - first).days for d in days], dtype=np.int64)
    j = np.where(day_code >= 0, offsets[np.maximum(day_code, 0)] if len(days) else -1, -1)
    keep = (m >= 0) & (j >= 0) & (j < n_days)
    m, j = m[keep], j[keep].astype(np.int64)
    vol[m, j] = history["volume_l"].to_numpy(dtype=np.float64)[keep]
    cov[m, j] = (history["coverage"].to_numpy(dtype=np.float64)[keep] if "coverage" in history.columns
                 else np.where(np.isnan(vol[m, j]), np.nan, 1.0))
    return vol, cov


def _abnormal(day_volume, day_coverage, hist_vol, hist_cov, params: LeakParams):
    """Loi Warsmann test per meter: (leak, evaluable, period volume, reference average).

    A day counts when its coverage reaches ``min_coverage``; its volume is scaled to the full day
    (volume / coverage). A period counts when that many of its days count; its volume is the mean
    of its counted days × its length. All comparable periods and the current one must count.
    """
    p, k = params.abnormal_period_days, params.abnormal_history_periods
    vol = np.concatenate([hist_vol, day_volume[:, None]], axis=1)
    cov = np.concatenate([hist_cov, day_coverage[:, None]], axis=1)
    usable = (cov >= params.min_coverage) & ~np.isnan(vol)
    with np.errstate(invalid="ignore", divide="ignore"):
        est = np.where(usable, vol / cov, 0.0).reshape(len(vol), k + 1, p)
        counted = usable.reshape(len(vol), k + 1, p).sum(axis=2)
        period = est.sum(axis=2) / counted * p
    period_ok = counted >= params.min_coverage * p
    evaluable = period_ok.all(axis=1)
    current, average = period[:, k], period[:, :k].mean(axis=1)
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
    raised = np.flatnonzero((t >= ds) & (t < de))
    raised = raised[text[raised] != ""]
    raised = raised[pd.notna(text[raised])]
    mask = np.zeros(len(ids), dtype=np.int64)
    if len(raised):
        owner = pd.Index(ids, dtype=object).get_indexer(alarms["meter_id"].to_numpy(dtype=object)[raised])
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
    meters, t, v, _ = sorted_readings(readings)
    iv = params.intervals(meters, t, v)
    ids = meters.ids
    all_ids, where = _union_ids(ids, meter_ids)  # where: readings' meter code → position in all_ids
    n, n_all = len(ids), len(all_ids)

    ds, de = local_midnight(day, tz), local_midnight(day + timedelta(days=1), tz)
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
    base_status = np.where(enough, _OK, _NODATA).astype(object)
    base_detail = np.full(n_all, "", dtype=object)
    low = ~enough & has_data
    base_detail[low] = _fmt(f"coverage %.2f < {params.min_coverage:.2f}", coverage[low])
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
    hv, hc = _history_matrix(history, all_ids, first_hist, params.history_days)
    ab_leak, evaluable, current, average = _abnormal(volume, coverage, hv, hc, params)
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
        mf_status = np.where(mask > 0, _LEAK, np.where(has_reading, _OK, _NODATA)).astype(object)
        mf_detail = np.where(has_reading, table[mask], np.where(has_data, "no readings on the day", "no readings"))
        blocks.append((mf_status, mf_detail.astype(object), np.full(n_all, np.nan)))
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
    return [CheckResult(m, d, rules[r], statuses[s], rate, night, vol, cov, detail)
            for m, d, r, s, rate, night, vol, cov, detail in zip(*(col(c) for c in RESULT_COLUMNS))]


def daily_volumes(readings: pd.DataFrame, first_day: date, last_day: date, tz: ZoneInfo,
                  params: LeakParams) -> pd.DataFrame:
    """Volume and coverage per meter and local day, ``first_day..last_day`` inclusive.

    Columns: ``meter_id`` (str), ``day`` (date), ``volume_l`` (litres from known intervals, pro
    rata by overlap; NaN when nothing of the day is known), ``coverage`` (0–1). Sorted by meter
    then day; the shape :func:`detect_leaks` takes as ``history``.
    """
    meters, t, v, _ = sorted_readings(readings)
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
