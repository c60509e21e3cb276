"""Evaluate the home detectors on simulated homes with injected anomalies; prints a Markdown report.

    python scripts/home_eval.py [--homes 100] [--days 49] [--learn-days 21] [--seed 1] > docs/home-eval.md

1. Simulate ``--homes`` homes × ``--days`` days (``simulators/home.py``) with anomalies injected at
   random (seeded) in the days after the first ``--learn-days``: falls (day and night), no wake-up,
   night wandering, gradual decline, a sensor's battery dying. The simulator records their ground
   truth ``[start, end)``.
2. As the service does: at each local midnight of the evaluated days, learn every home's routine
   from the 28 days before it (``learn_routines``, fewer at first), then run the detectors at every
   minute of that day for every home in one vectorized ``detect_at`` call (one query per home and
   minute, each seeing only the events up to its minute; events of the previous 24 h as context,
   the service's ``home_lookback_h``).
3. Episodes: runs of consecutive minute ticks raising the same (home, kind, sensor). An anomaly is
   detected when an episode of a matching kind starts in its home between its start and its end
   plus ``--grace-min`` (declines and dead batteries last to the end of the period):
   fall → long_bathroom or inactivity; no wake-up → no_wakeup or inactivity; night wandering →
   night_exit; decline → decline; battery → sensor_silent of that sensor. Time to detection = the
   first tick of that episode − the anomaly's start; tick lag = that tick − the detector's own
   threshold crossing (the event's ``start``), the "within one minute" target.
4. False alarms: episodes matching no anomaly, counted on normal home-days (local days overlapping
   no anomaly of that home), per home-week and per 100 home-days.
"""

from __future__ import annotations

import argparse
import random
import sys
import time as _time
from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from vigie.analytics.homes import detect_at
from vigie.analytics.routine import learn_routines
from vigie.simulators.home import (
    DEVICES,
    STATE,
    BatteryDying,
    Decline,
    Fall,
    HomeSimConfig,
    NightWandering,
    NoWakeUp,
    simulate_homes,
)

MATCH = {"fall": {"long_bathroom", "inactivity"}, "no_wakeup": {"no_wakeup", "inactivity"},
         "night_wandering": {"night_exit"}, "decline": {"decline"}, "battery_dying": {"sensor_silent"}}
OPEN_ENDED = {"decline", "battery_dying"}   # matched until the period ends
WINDOW_DAYS = 28
LOOKBACK_S = 24 * 3600
BATTERY_SENSORS = [d.key for d in DEVICES]


def plan_anomalies(homes: int, first_eval: date, eval_days: int, seed: int, tz: ZoneInfo) -> list:
    """Anomalies on distinct (home, day) slots of the evaluated days; declines on homes of their own
    (they last the rest of the period), dead batteries at random moments."""
    r = random.Random(seed)
    days = [first_eval + timedelta(days=i) for i in range(eval_days)]
    n_decline = max(1, homes // 8)
    decline_homes = r.sample(range(homes), n_decline)
    others = [h for h in range(homes) if h not in decline_homes]
    slots = [(h, d) for h in others for d in days[:-1]]
    r.shuffle(slots)
    out: list = []
    # Kinds in turn on free slots (no two anomalies of a home on the same or adjacent days), one
    # of each kind per two homes: most home-days stay normal, for the false-alarm count.
    caps = {k: max(1, homes // 2) for k in ("fall_day", "no_wakeup", "night_wandering", "fall_night")}
    cycle = [k for k in ("fall_day", "no_wakeup", "night_wandering", "fall_night")]
    used: set[tuple[int, date]] = set()
    planned: list[tuple[str, int, date]] = []
    for h, d in slots:
        if not any(caps.values()):
            break
        if any((h, d + timedelta(days=k)) in used for k in (-1, 0, 1)):
            continue
        kind = next(k for k in cycle[len(planned) % 4:] + cycle if caps[k])
        caps[kind] -= 1
        used.add((h, d))
        planned.append((kind, h, d))
    for kind, h, d in planned:
        if kind == "fall_day":
            at = datetime.combine(d, datetime.min.time()) + timedelta(minutes=r.uniform(8 * 60, 21 * 60))
            out.append(Fall(h, at, minutes=120))
        elif kind == "fall_night":
            at = datetime.combine(d, datetime.min.time()) + timedelta(minutes=r.uniform(23 * 60, 28 * 60))
            out.append(Fall(h, at, minutes=120))
        elif kind == "no_wakeup":
            out.append(NoWakeUp(h, d, minutes=180))
        else:
            at = datetime.combine(d, datetime.min.time()) + timedelta(minutes=r.uniform(23 * 60, 28 * 60))
            out.append(NightWandering(h, at, minutes=r.uniform(45, 90)))
    for h in decline_homes:
        out.append(Decline(h, days[r.randrange(0, max(1, eval_days - 12))], days=10, final_level=0.4))
    for h in r.sample(others, max(1, homes // 4)):
        at = datetime.combine(days[r.randrange(0, eval_days - 2)], datetime.min.time()) + \
            timedelta(minutes=r.uniform(0, 1440))
        out.append(BatteryDying(h, r.choice(BATTERY_SENSORS), at, days=7))
    return out


def events_frame(result) -> pd.DataFrame:
    """The simulated state reports as the analytics' events frame, built from the report columns."""
    c = result.reports
    keep = c["type"] == STATE
    home, device = c["home"][keep].astype(np.int64), c["device"][keep].astype(np.int64)
    n_dev = len(DEVICES)
    sensor_ids = np.array([s.sensor_id for h in result.homes for s in h.sensors], dtype=object)
    home_ids = np.array([h.home_id for h in result.homes], dtype=object)
    return pd.DataFrame({
        "home_id": pd.Categorical(home_ids[home]),
        "sensor_id": pd.Categorical(sensor_ids[home * n_dev + device]),
        "room": pd.Categorical(np.array([str(d.room) for d in DEVICES], dtype=object)[device]),
        "kind": pd.Categorical(np.array([str(d.kind) for d in DEVICES], dtype=object)[device]),
        "time": c["t_ms"][keep] // 1000,
        "value": c["value"][keep].astype(np.float64)})


def raised_frame(raised, ctx, home_ids) -> pd.DataFrame:
    sensor_ids = ctx.sensors["sensor_id"].astype(str).to_numpy()
    return pd.DataFrame({
        "home_id": np.asarray(home_ids, dtype=object)[raised.home], "kind": raised.kind.astype(str),
        "sensor_id": np.where(raised.sensor >= 0, sensor_ids[np.maximum(raised.sensor, 0)], ""),
        "tick": ctx.q_time[raised.query], "start": raised.start})


def episodes(rows: pd.DataFrame) -> pd.DataFrame:
    """Runs of consecutive minute ticks raising the same (home, kind, sensor)."""
    rows = rows.sort_values(["home_id", "kind", "sensor_id", "tick"], kind="stable").reset_index(drop=True)
    key = rows["home_id"] + "|" + rows["kind"] + "|" + rows["sensor_id"]
    new = (key != key.shift()) | (rows["tick"] - rows["tick"].shift() > 60)
    rows["episode"] = new.cumsum()
    g = rows.groupby("episode")
    return pd.DataFrame({"home_id": g["home_id"].first(), "kind": g["kind"].first(),
                         "sensor_id": g["sensor_id"].first(), "first_tick": g["tick"].min(),
                         "start": g["start"].first(), "ticks": g.size()}).reset_index(drop=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--homes", type=int, default=100)
    ap.add_argument("--days", type=int, default=49)
    ap.add_argument("--learn-days", type=int, default=21)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--tz", default="Europe/Paris")
    ap.add_argument("--start", default="2026-01-05", help="first simulated day (local)")
    ap.add_argument("--grace-min", type=float, default=60.0)
    args = ap.parse_args(argv)
    zone = ZoneInfo(args.tz)
    first = date.fromisoformat(args.start)
    eval_days = args.days - args.learn_days
    first_eval = first + timedelta(days=args.learn_days)

    t0 = _time.perf_counter()
    anomalies = plan_anomalies(args.homes, first_eval, eval_days, args.seed, zone)
    sim = simulate_homes(HomeSimConfig(homes=args.homes, days=args.days, start=first, tz=args.tz, seed=args.seed,
                                       anomalies=anomalies))
    frame = events_frame(sim)
    sim_s = _time.perf_counter() - t0
    times = frame["time"].to_numpy()
    home_ids = pd.Index([h.home_id for h in sim.homes], name="home_id", dtype=object)

    learn_s = detect_s = 0.0
    rows, limited = [], 0
    for i in range(eval_days):
        d = first_eval + timedelta(days=i)
        t_day = int(datetime.combine(d, datetime.min.time(), tzinfo=zone).timestamp())
        t_next = int(datetime.combine(d + timedelta(days=1), datetime.min.time(), tzinfo=zone).timestamp())
        t1 = _time.perf_counter()
        past = frame.iloc[np.searchsorted(times, t_day - WINDOW_DAYS * 86400):np.searchsorted(times, t_day)]
        routines = learn_routines(past, t_day, args.tz, WINDOW_DAYS, homes=home_ids)
        limited += int(routines.limited_history.sum())
        t2 = _time.perf_counter()
        recent = frame.iloc[np.searchsorted(times, t_day - LOOKBACK_S):np.searchsorted(times, t_next)]
        minutes = np.arange(t_day, t_next, 60, dtype=np.int64)
        q_home = np.repeat(np.arange(len(home_ids), dtype=np.int64), minutes.size)
        q_time = np.tile(minutes, len(home_ids))
        raised, ctx = detect_at(recent, routines, q_home, q_time, args.tz)
        rows.append(raised_frame(raised, ctx, home_ids))
        t3 = _time.perf_counter()
        learn_s += t2 - t1
        detect_s += t3 - t2
    eps = episodes(pd.concat(rows, ignore_index=True))
    t_end = int(sim.period_end.timestamp())
    t_eval = int(datetime.combine(first_eval, datetime.min.time(), tzinfo=zone).timestamp())

    # Match anomalies to episodes.
    eps["matched"] = False
    results = []
    grace = args.grace_min * 60
    for truth in sim.truths:
        t_s = truth.start.timestamp()
        t_e = t_end if truth.kind in OPEN_ENDED or truth.end is None else truth.end.timestamp() + grace
        m = ((eps["home_id"] == truth.home) & eps["kind"].isin(MATCH[truth.kind])
             & (eps["first_tick"] + eps["ticks"] * 60 > t_s) & (eps["first_tick"] <= t_e))
        if truth.kind == "battery_dying":
            m &= eps["sensor_id"] == truth.detail["sensor_id"]
        eps.loc[m, "matched"] = True
        hit = eps[m & (eps["first_tick"] >= t_s - 60)].sort_values("first_tick")
        label = truth.kind
        if truth.kind == "fall":
            hour = truth.start.astimezone(zone).hour
            label = "fall (night)" if hour >= 22 or hour < 6 else "fall (day)"
        if hit.empty:
            results.append((label, None, None, None, truth))
        else:
            e = hit.iloc[0]
            results.append((label, e["first_tick"] - t_s, e["first_tick"] - e["start"], e["kind"], truth))

    # Normal home-days: local days of the evaluation overlapping no anomaly of the home.
    day_starts = [int(datetime.combine(first_eval + timedelta(days=i), datetime.min.time(), tzinfo=zone).timestamp())
                  for i in range(eval_days + 1)]
    abnormal: dict[str, set[int]] = defaultdict(set)
    for truth in sim.truths:
        s = truth.start.timestamp()
        e = t_end if truth.kind in OPEN_ENDED or truth.end is None else truth.end.timestamp() + grace
        for i in range(eval_days):
            if s < day_starts[i + 1] and e > day_starts[i]:
                abnormal[truth.home].add(i)
    normal_days = args.homes * eval_days - sum(len(v) for v in abnormal.values())
    eps["day"] = np.searchsorted(np.array(day_starts), eps["first_tick"].to_numpy(), side="right") - 1
    eps["normal_day"] = [day not in abnormal[h] for h, day in zip(eps["home_id"], eps["day"])]
    false = eps[~eps["matched"] & eps["normal_day"] & (eps["first_tick"] >= t_eval)]
    other = eps[~eps["matched"] & ~eps["normal_day"]]

    cmd = "python scripts/home_eval.py " + " ".join(argv if argv is not None else sys.argv[1:])
    p = print
    p("# Home detectors on simulated homes with injected anomalies\n")
    p(f"Produced by `{cmd.strip()} > docs/home-eval.md` (method in the script's docstring).\n")
    p(f"- {args.homes} homes × {args.days} days from {first} ({args.tz}), seed {args.seed}: "
      f"{len(frame)} state reports, simulated in {sim_s:.0f} s. The first {args.learn_days} days are history "
      f"only; the detectors run at every minute of the last {eval_days} days "
      f"({args.homes * eval_days * 1440} home-minutes), the routine relearned each local midnight from the "
      f"{WINDOW_DAYS} days before it (homes with limited history: {limited} home-days).")
    p(f"- Cost: learning {learn_s:.1f} s in all ({learn_s / eval_days:.2f} s a day for {args.homes} homes), "
      f"detection {detect_s:.1f} s in all ({detect_s / eval_days:.2f} s for one day's "
      f"{args.homes * 1440} (home, minute) queries).\n")
    p("## Detection per anomaly kind\n")
    p("| anomaly | injected | detected | rate | median time to detection | max | max tick lag after threshold | raised as |")
    p("|---|---|---|---|---|---|---|---|")
    by_label: dict[str, list] = defaultdict(list)
    for r in results:
        by_label[r[0]].append(r)
    total = hits = 0
    for label in sorted(by_label):
        rs = by_label[label]
        got = [r for r in rs if r[1] is not None]
        total += len(rs)
        hits += len(got)
        delays = np.array([r[1] for r in got], float)
        lags = np.array([r[2] for r in got], float)
        as_kind = ", ".join(f"{k} {n}" for k, n in sorted(pd.Series([r[3] for r in got]).value_counts().items())) \
            if got else "–"
        p(f"| {label} | {len(rs)} | {len(got)} | {len(got) / len(rs):.2f} | "
          f"{_dur(np.median(delays)) if got else '–'} | {_dur(delays.max()) if got else '–'} | "
          f"{f'{lags.max():.0f} s' if got else '–'} | {as_kind} |")
    p(f"| **all** | {total} | {hits} | **{hits / total:.3f}** | | | | |\n")
    missed = [r for r in results if r[1] is None]
    if missed:
        p("Missed:\n")
        for label, _, _, _, t in missed:
            p(f"- {label}, {t.home}, from {t.start.astimezone(zone):%Y-%m-%d %H:%M} local, {t.detail}")
        p("")
    p("## False alarms on normal home-days\n")
    weeks = normal_days / 7
    p(f"{normal_days} normal home-days ({weeks:.1f} home-weeks). An episode is a run of consecutive ticks "
      "raising the same (home, kind, sensor).\n")
    p("| kind | episodes | per home-week | per 100 home-days |\n|---|---|---|---|")
    counts = false["kind"].value_counts()
    for k in sorted(set(MATCH["fall"] | MATCH["no_wakeup"] | {"night_exit", "decline", "sensor_silent",
                                                                "water_leak"})):
        n = int(counts.get(k, 0))
        p(f"| {k} | {n} | {n / weeks:.3f} | {100 * n / normal_days:.2f} |")
    n = len(false)
    p(f"| **all** | {n} | {n / weeks:.3f} | **{100 * n / normal_days:.2f}** |\n")
    if n:
        p("False alarms:\n")
        for _, e in false.sort_values("first_tick").iterrows():
            p(f"- {e['home_id']} {e['kind']} {e['sensor_id']} at "
              f"{datetime.fromtimestamp(e['first_tick'], timezone.utc).astimezone(zone):%Y-%m-%d %H:%M} local, "
              f"{e['ticks']} ticks")
        p("")
    p(f"Unmatched episodes on anomaly days (not counted above): {len(other)} "
      f"({', '.join(f'{k} {v}' for k, v in other['kind'].value_counts().items()) or 'none'}).")
    return 0


def _dur(seconds: float) -> str:
    if seconds >= 86400:
        return f"{seconds / 86400:.1f} d"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min"


if __name__ == "__main__":
    sys.exit(main())
