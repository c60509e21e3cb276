"""Unusual-behaviour events of assisted-living homes, for every home in one vectorized pass.

:func:`detect_home_events` evaluates, at one instant ``now``, every home against its learned
routine (:func:`analytics.routine.learn_routines`); :func:`detect_at` does the same for any set of
(home, instant) queries — the minute tick (all homes × now) and a backtest (one home × every
minute) share it. The detectors are stateless: a condition that holds is raised on every tick with
the same ``start`` (the moment its threshold was crossed), so the alerting side deduplicates on
(home_id, kind, sensor_id, start). Each is raised at the first tick after its threshold is crossed,
so within one minute on a minute tick.

Detectors (thresholds learned per home, see ``analytics.routine``):

- ``inactivity`` (high): now − last activity > the home's alert line for the current local
  time-of-day bin (learned high quantile of the longest inactivity in that bin, clamped to
  floor/ceiling; Cuddihy et al. 2007). Not while away, and not while **asleep**: in bed (the
  bedroom presence sensor occupied), the last activity in the bedroom, and the local time before
  the home's learned wake-up deadline — lying in bed until then is sleep, however late it is
  compared with the days the morning bins were learned from, and the ``no_wakeup`` detector is the
  one responsible for that window. A fall (out of bed, in the bathroom) releases the bed sensor
  and is never masked; a home without a bed sensor is never asleep. While **resting** — a seat mat
  (chair / seat presence sensor, outside the bedroom) occupied and the last activity in its room —
  the line is the home's learned resting line for the bin instead (``analytics.routine``,
  "Resting": learned from the sit durations, never below the general line, capped, so an extremely long
  sit still alerts); getting up releases the mat, so a fall after leaving the chair is judged on
  the general line. ``start`` is the first minute the line was crossed, outside sleep, since the
  last activity.
- ``no_wakeup`` (high): local time past the learned wake-up deadline (median + k·spread + margin)
  and no activity since the learned earliest wake-up, today; not while away. Holds until midnight.
- ``long_bathroom`` (high, possible fall): the last activity is in the bathroom and the stay (from
  entering) exceeds the learned quantile × factor, never below 15 min at night (commercial rule
  "bathroom occupied > 15 min between 22:00 and 06:00", domain-rules.md) or 30 min by day.
- ``night_exit`` (high): the entrance door opened at night (22:00–06:00) and nothing has been
  detected inside for ``night_exit_after_s`` (commercial rule "entrance door opened at night →
  neighbour").
- ``water_leak`` (medium): a water-leak sensor's last report is wet.
- ``sensor_silent`` (low, staff only): no message from a sensor for longer than its learned
  expected gap × factor (floor, default for sparse sensors).
- ``decline`` (low, daily check-in): mean motion detections per day of the last 3 days well below
  a reference level learned from days before a 2-week gap (``analytics.routine``, "Decline";
  computed when learning, raised from its ``decline_since``; ``normal`` is the reference mean).

Sources: Cuddihy P., Weisenberg J., Graichen C., Ganesh M., "Algorithm to automatically detect
abnormally long periods of inactivity in a home", HealthCare Systems Engineering (SIGMOBILE) 2007;
Fleming J., Brayne C., "Inability to get up after falling, subsequent time on floor, and summoning
help: prospective cohort study in people over 90", BMJ 2008;337:a2227 (82 % of falls when alone,
30 % lay ≥ 1 h); Tanaka et al. 2024, arXiv 2411.13153 (learned model: sensitivity > 0.9 with
< 1 false alarm per 50 days — the bar to beat); commercial rules in
/work/shared/reference/domain-rules.md.

Cost: two sorts of the events given plus searchsorted per query; the minute tick should pass
the events since ``now − inactivity_ceiling_s`` at least (older context falls back to the routine's
last activity at learning time).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from vigie.analytics.routine import (
    DAY_S, K_WATER, R_BATHROOM, R_BEDROOM, ROOMS, HomeRoutines, LastIndex, activity_of, in_window,
    last_time, local_seconds, occupied_seat_room, prepare,
)
from vigie.records import HOME_EVENT_SEVERITY, HomeEvent, HomeEventKind


@dataclass(frozen=True)
class DetectParams:
    """Detection-time settings (learned thresholds live in the routine)."""

    night_exit_after_s: float = 1_800.0   # door opened at night and nobody inside since this long
    inactivity_onset_step_s: int = 60     # resolution of an inactivity event's ``start``


@dataclass(frozen=True)
class Raised:
    """Raised conditions as arrays (one row per event), before they become :class:`HomeEvent`.

    ``query`` indexes the queries given to :func:`detect_at`; times are epoch seconds (UTC), NaN
    when unknown; ``last_room`` a room code (-1 unknown); ``sensor`` a row of ``sensors`` or -1.
    """

    kind: np.ndarray          # object array of HomeEventKind
    query: np.ndarray
    home: np.ndarray
    start: np.ndarray
    observed: np.ndarray
    normal: np.ndarray
    threshold: np.ndarray
    sensor: np.ndarray


def _utc(t: float) -> datetime:
    return datetime.fromtimestamp(float(t), tz=timezone.utc)


def detect_home_events(events: pd.DataFrame, routines: HomeRoutines, now: int, tz: str | None = None,
                       params: DetectParams | None = None) -> list[HomeEvent]:
    """Every home's events at ``now`` (epoch s UTC). ``events``: the events frame (recent part is
    enough, see module docstring; rows after ``now`` ignored); homes = routines' ∪ events'.
    ``tz`` defaults to the routine's. Returns HomeEvents sorted by (home_id, kind, start)."""
    homes = routines.homes.union(pd.Index(pd.unique(events["home_id"].astype(str)), name="home_id"))
    routines = routines.defaults_for(homes)
    q_home = np.arange(len(homes), dtype=np.int64)
    raised, ctx = detect_at(events, routines, q_home, np.full(len(homes), int(now), np.int64), tz, params)
    return to_home_events(raised, ctx, routines)


@dataclass(frozen=True)
class _Context:
    q_time: np.ndarray
    last_t: np.ndarray
    last_room: np.ndarray
    sensors: pd.DataFrame
    homes: pd.Index


def detect_at(events: pd.DataFrame, routines: HomeRoutines, q_home: np.ndarray, q_time: np.ndarray,
              tz: str | None = None, params: DetectParams | None = None) -> tuple[Raised, _Context]:
    """Evaluate the detectors for queries (``q_home[i]`` a row of ``routines.homes``, ``q_time[i]``
    epoch s UTC), all at once. Each query sees only the events at or before its own time."""
    params = params or DetectParams()
    tz = tz or routines.tz
    rp = routines.params
    homes = routines.homes
    q_home = np.asarray(q_home, np.int64)
    q_time = np.asarray(q_time, np.int64)
    p = prepare(events, rp, homes)
    act = activity_of(p)
    Q = q_home.size
    q_loc = local_seconds(q_time, tz)
    q_sod = q_loc % DAY_S
    q_bin = q_sod // rp.bin_s

    # Last activity (fallback: the routine's, when the events given start later).
    li = act.index.query(q_home, q_time)
    last_t = last_time(li, act.time)
    last_room = np.where(li >= 0, act.room[np.maximum(li, 0)] if act.room.size else -1, -1)
    la = routines.last_activity
    fb = (li < 0) & (la["time"].to_numpy()[q_home] <= q_time)
    last_t = np.where(fb, la["time"].to_numpy()[q_home], last_t)
    room_codes = pd.Categorical(la["room"].astype(object), categories=[str(r) for r in ROOMS]).codes
    last_room = np.where(fb, room_codes[q_home], last_room)
    away = np.where(li >= 0, act.away_after[np.maximum(li, 0)] if act.room.size else False,
                    fb & la["away"].to_numpy(dtype=bool)[q_home])
    has_last = ~np.isnan(last_t)
    elapsed = q_time - last_t

    out: list[dict] = []

    def emit(kind, mask, start, observed, normal, threshold, sensor=None):
        idx = np.flatnonzero(mask)
        out.append(dict(kind=np.full(idx.size, kind, dtype=object), query=idx, home=q_home[idx],
                        start=np.asarray(start, float)[idx] if np.ndim(start) else np.full(idx.size, start),
                        observed=np.asarray(observed, float)[idx], normal=np.asarray(normal, float)[idx],
                        threshold=np.asarray(threshold, float)[idx],
                        sensor=np.full(idx.size, -1) if sensor is None else np.asarray(sensor)[idx]))

    # Asleep: in bed (fallback: the state at learning time when the events given hold no bed
    # report), last activity in the bedroom, before the wake-up deadline. Nothing but an activity
    # changes the bed state or the last room, so "sleeping" holds since the last activity.
    wake = routines.wake
    deadline, lo = wake["deadline_s"].to_numpy()[q_home], wake["lo_s"].to_numpy()[q_home]
    bi = act.bed_index.query(q_home, q_time)
    in_bed = np.where(bi >= 0, act.bed_occupied[np.maximum(bi, 0)] if act.bed_occupied.size else False,
                      (routines.now <= q_time) & la["in_bed"].to_numpy(dtype=bool)[q_home])
    sleeping = has_last & in_bed & (last_room == R_BEDROOM)
    asleep = sleeping & (q_sod < deadline)

    # Resting: a seat mat occupied (fallback: the state at learning time when the events given
    # hold no seat report) and the last activity in its room; like sleep, it holds since then.
    seat_room = occupied_seat_room(act, q_home, q_time)
    no_seat_report = act.seat_index.query(q_home, q_time) < 0
    la_seat = pd.Categorical(la["seat_room"].astype(object), categories=[str(r) for r in ROOMS]).codes
    seat_room = np.where(no_seat_report & (routines.now <= q_time), la_seat[q_home], seat_room)
    resting = has_last & (seat_room >= 0) & (seat_room == last_room)

    # ---- long bathroom stay ----
    ei = act.bath_entry_index.query(q_home, q_time)
    entry_t = last_time(ei, act.time[act.bath_entry_rows])
    in_bath = (last_room == R_BATHROOM) & (ei >= 0) & ~away
    entry_night = in_window(local_seconds(np.nan_to_num(entry_t).astype(np.int64), tz) % DAY_S,
                            rp.night_start_h, rp.night_end_h)
    bath = routines.bathroom
    b_thr = np.where(entry_night, bath["threshold_night_s"].to_numpy()[q_home],
                     bath["threshold_day_s"].to_numpy()[q_home])
    b_norm = np.where(entry_night, bath["q_night_s"].to_numpy()[q_home], bath["q_day_s"].to_numpy()[q_home])
    stay = q_time - entry_t
    long_bath = in_bath & (stay > b_thr)

    # ---- inactivity (Cuddihy et al. 2007), not while asleep; the resting line while resting ----
    # Not while a long bathroom stay is raised either: that is the same person on the same floor, and
    # a second alert would start a second escalation from level 1 after someone took the first.
    rest_tab = routines.resting_threshold_s.to_numpy()
    thr_tab = routines.inactivity_threshold_s.to_numpy()
    rest_q = routines.resting_q_s.to_numpy()[q_home, q_bin]
    q_tab = np.where(resting & ~np.isnan(rest_q), rest_q, routines.inactivity_q_s.to_numpy()[q_home, q_bin])
    thr = np.where(resting, rest_tab[q_home, q_bin], thr_tab[q_home, q_bin])
    inact = has_last & ~away & ~asleep & ~long_bath & (elapsed > thr)
    onset = np.full(Q, np.nan)
    if inact.any():
        lines = np.where(resting[inact, None], rest_tab[q_home[inact]], thr_tab[q_home[inact]])
        onset[inact] = _inactivity_onset(last_t[inact], q_time[inact], lines,
                                         np.where(sleeping, deadline, -1.0)[inact], tz, rp.bin_s,
                                         params.inactivity_onset_step_s)
    emit(HomeEventKind.INACTIVITY, inact, onset, elapsed, q_tab, thr)

    # ---- no wake-up ----
    day_start_loc = q_loc - q_sod
    last_loc = np.where(has_last, local_seconds(np.nan_to_num(last_t).astype(np.int64), tz), -np.inf)
    up_today = last_loc >= day_start_loc + lo
    no_wake = has_last & (q_sod >= deadline) & ~up_today & ~away
    emit(HomeEventKind.NO_WAKEUP, no_wake, q_time - (q_sod - deadline), q_sod,
         wake["median_s"].to_numpy()[q_home], deadline)

    # ---- long bathroom stay (computed above) ----
    emit(HomeEventKind.LONG_BATHROOM, long_bath, entry_t + b_thr, stay, b_norm, b_thr)

    # ---- night exit ----
    oi = act.door_open_index.query(q_home, q_time)
    open_t = last_time(oi, act.time[act.door_open_rows])
    ii = act.inside_index.query(q_home, q_time)
    inside_t = last_time(ii, act.time[act.inside_rows])
    open_night = in_window(local_seconds(np.nan_to_num(open_t).astype(np.int64), tz) % DAY_S,
                           rp.night_start_h, rp.night_end_h)
    out_for = q_time - open_t
    not_back = (oi >= 0) & ~(inside_t >= open_t)
    night_exit = not_back & open_night & (out_for > params.night_exit_after_s)
    emit(HomeEventKind.NIGHT_EXIT, night_exit, open_t + params.night_exit_after_s, out_for,
         routines.night_exits["per_night"].to_numpy()[q_home], np.full(Q, params.night_exit_after_s))

    # ---- decline (learned daily) ----
    lvl = routines.activity_level
    since = lvl["decline_since"].to_numpy(dtype=float)[q_home]
    dec = lvl["decline"].to_numpy(dtype=bool)[q_home] & (q_time >= since)
    emit(HomeEventKind.DECLINE, dec, since, lvl["recent_mean"].to_numpy()[q_home],
         lvl["reference_mean"].to_numpy()[q_home], lvl["decline_threshold"].to_numpy()[q_home])

    # ---- per sensor: water leak and silence ----
    sensors = _sensor_rows(p, routines)
    sq, s_row = _pairs(q_home, sensors["home"].to_numpy())
    s_code = sensors["code"].to_numpy()[s_row]
    s_time = q_time[sq]
    order = p.by_sensor
    ss, st, sv, sk = p.sensor[order], p.time[order], p.value[order], p.kind[order]
    by_sensor = LastIndex(ss, st, p.base)
    mi = np.where(s_code >= 0, by_sensor.query(np.maximum(s_code, 0), s_time), -1)
    seen = np.fmax(last_time(mi, st), np.where(sensors["last_seen"].to_numpy()[s_row] <= s_time,
                                               sensors["last_seen"].to_numpy()[s_row], np.nan))
    silent_after = sensors["silent_after_s"].to_numpy()[s_row]
    quiet = s_time - seen
    silent = ~np.isnan(seen) & (quiet > silent_after)
    _emit_pairs(out, HomeEventKind.SENSOR_SILENT, silent, sq, q_home, s_row, seen + silent_after, quiet,
                sensors["expected_gap_s"].to_numpy()[s_row], silent_after)
    wet = (mi >= 0) & (sensors["kind"].to_numpy()[s_row] == "water_leak")
    wet[wet] &= sv[mi[wet]] >= 0.5
    if wet.any():
        dry = (sk == K_WATER) & (sv < 0.5)
        dry_rows = np.flatnonzero(dry)
        di = LastIndex(ss[dry], st[dry], p.base).query(s_code[wet], s_time[wet])
        first_wet = np.searchsorted(ss, s_code[wet])   # no dry report: the sensor's first
        first_wet[di >= 0] = dry_rows[di[di >= 0]] + 1
        wet_since = np.full(wet.size, np.nan)
        wet_since[wet] = st[first_wet]
        _emit_pairs(out, HomeEventKind.WATER_LEAK, wet, sq, q_home, s_row, wet_since, s_time - wet_since,
                    np.full(wet.size, np.nan), np.full(wet.size, np.nan))

    cols = {k: np.concatenate([o[k] for o in out]) for k in Raised.__dataclass_fields__}
    return Raised(**cols), _Context(q_time=q_time, last_t=last_t, last_room=last_room, sensors=sensors,
                                    homes=homes)


def _emit_pairs(out, kind, mask, sq, q_home, s_row, start, observed, normal, threshold):
    idx = np.flatnonzero(mask)
    out.append(dict(kind=np.full(idx.size, kind, dtype=object), query=sq[idx], home=q_home[sq[idx]],
                    start=start[idx], observed=observed[idx], normal=normal[idx], threshold=threshold[idx],
                    sensor=s_row[idx]))


def _pairs(q_home: np.ndarray, s_home: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All (query, sensor row) pairs with the same home, vectorized."""
    order = np.argsort(s_home, kind="stable")
    counts = np.bincount(s_home, minlength=int(max(q_home.max(initial=0), s_home.max(initial=0))) + 1)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    n = counts[q_home]
    sq = np.repeat(np.arange(q_home.size), n)
    within = np.arange(sq.size) - np.repeat(np.cumsum(n) - n, n)
    return sq, order[starts[q_home[sq]] + within]


def _sensor_rows(p, routines: HomeRoutines) -> pd.DataFrame:
    """Sensors known from the routine or seen in the events: home row, code in ``p`` (or -1),
    kind, last seen at learning time, expected gap and silence threshold."""
    learned = routines.sensors
    seen = p.sensor_table.assign(code=np.arange(len(p.sensor_table)))
    merged = learned.merge(seen[["home_id", "sensor_id", "code", "kind"]], on=["home_id", "sensor_id"],
                           how="outer", suffixes=("", "_seen"))
    merged["kind"] = merged["kind"].fillna(merged["kind_seen"])
    merged["code"] = merged["code"].fillna(-1).astype(np.int64)
    merged["silent_after_s"] = merged["silent_after_s"].fillna(routines.params.silent_default_s)
    merged["home"] = routines.homes.get_indexer(merged["home_id"].astype(str))
    merged = merged[merged["home"] >= 0].reset_index(drop=True)
    return merged[["home_id", "sensor_id", "home", "code", "kind", "last_seen", "expected_gap_s",
                   "silent_after_s"]]


def _inactivity_onset(last_t: np.ndarray, now: np.ndarray, thr_rows: np.ndarray, sleep_until: np.ndarray,
                      tz: str, bin_s: int, step: int) -> np.ndarray:
    """First instant (to ``step`` s) after ``last_t`` where the elapsed time exceeded the alert line
    of the bin it fell in, outside sleep; rows are the raised queries, ``thr_rows`` their homes'
    lines, ``sleep_until`` the local second of day before which a row is asleep (-1: never)."""
    k = int(np.ceil(np.nanmax(now - last_t) / step)) + 1
    grid = last_t[:, None] + step * np.arange(1, k + 1)[None, :]
    grid = np.minimum(grid, now[:, None])
    g_sod = (local_seconds(grid.astype(np.int64).ravel(), tz) % DAY_S).reshape(grid.shape)
    line = np.take_along_axis(thr_rows, g_sod // bin_s, axis=1)
    asleep = g_sod < sleep_until[:, None]
    crossed = (grid - last_t[:, None] > line) & ~asleep
    first = np.argmax(crossed, axis=1)
    rows = np.arange(grid.shape[0])
    before = np.maximum(first - 1, 0)
    prev = np.where(first > 0, grid[rows, before], last_t)
    # Woken by the deadline: the line applies from the deadline's instant on.
    woke = (first > 0) & asleep[rows, before]
    prev = np.where(woke, np.maximum(prev, grid[rows, first] - (g_sod[rows, first] - sleep_until)), prev)
    return np.clip(last_t + line[rows, first], prev, grid[rows, first])


def to_home_events(raised: Raised, ctx: _Context, routines: HomeRoutines) -> list[HomeEvent]:
    """Turn raised rows into :class:`HomeEvent` records sorted by (home_id, kind, start)."""
    room_names = [str(r) for r in ROOMS]
    limited = routines.limited_history.to_numpy(dtype=bool)
    sensor_ids = ctx.sensors["sensor_id"].to_numpy()
    units = {HomeEventKind.DECLINE: "motions/day", HomeEventKind.NO_WAKEUP: "s_of_day"}
    evs = []
    for i in range(raised.kind.size):
        k, q = HomeEventKind(raised.kind[i]), raised.query[i]
        lt, lr = ctx.last_t[q], ctx.last_room[q]

        def num(x):
            return None if np.isnan(x) else float(x)
        evs.append(HomeEvent(
            home_id=str(ctx.homes[raised.home[i]]), kind=k, start=_utc(raised.start[i]),
            detected_at=_utc(ctx.q_time[q]), severity=HOME_EVENT_SEVERITY[k],
            last_activity=None if np.isnan(lt) else _utc(lt), last_room=room_names[lr] if lr >= 0 else None,
            observed=num(raised.observed[i]), normal=num(raised.normal[i]), threshold=num(raised.threshold[i]),
            unit=units.get(k, "s"), limited_history=bool(limited[raised.home[i]]),
            sensor_id=str(sensor_ids[raised.sensor[i]]) if raised.sensor[i] >= 0 else None))
    evs.sort(key=lambda e: (e.home_id, str(e.kind), e.start, e.sensor_id or ""))
    return evs
