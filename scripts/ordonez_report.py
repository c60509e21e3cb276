"""Run the home detectors on the real Ordóñez home A fortnight and report what they raise.

    python scripts/ordonez_report.py [DATA_DIR] [--learn-days 7] [--cut-day 2011-12-06
        --cut-from 14:40 --cut-hours 5] > docs/ordonez-report.md

1. Learn the routine on the first ``--learn-days`` × 24 h (``learn_routines``, window = those days).
2. Evaluate the detectors at every minute of the remaining days in one vectorized call
   (``detect_at``: one query per minute, each seeing only the events up to its minute), and list
   the episodes raised (one per home, kind, sensor and start).
3. Remove every event of ``--cut-hours`` from ``--cut-from`` (local time) on ``--cut-day`` — an
   inactivity the resident did not have — and check that an inactivity event is raised within one
   minute of the moment its threshold is crossed. That moment is recomputed here independently,
   second by second with ``zoneinfo``, from the learned alert line.

The data stay in DATA_DIR (default /work/shared/data/ordonez-adl): their terms forbid commercial
use and the repository never copies them. Prints a Markdown report.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from vigie.analytics.homes import detect_at, to_home_events
from vigie.analytics.routine import learn_routines
from vigie.records import HomeEventKind
from vigie.simulators.ordonez import DEFAULT_TZ, load_ordonez

HOME = "ordonez-a"


def episodes(events):
    """HomeEvents of successive ticks grouped into episodes: (first event, ticks raised)."""
    groups: dict = {}
    for e in events:
        key = (e.home_id, e.kind, e.sensor_id, e.start)
        groups.setdefault(key, [e, 0])[1] += 1
    return sorted(groups.values(), key=lambda g: g[0].start)


def crossing(last: int, thresholds, tz: str, bin_s: int, limit: int) -> int | None:
    """First second after ``last`` where the elapsed time exceeds the line of its local bin."""
    zone = ZoneInfo(tz)
    for t in range(last + 1, last + limit):
        local = datetime.fromtimestamp(t, tz=timezone.utc).astimezone(zone)
        b = (local.hour * 3600 + local.minute * 60 + local.second) // bin_s
        if t - last > thresholds[b]:
            return t
    return None


def _mat_intervals(frame):
    """Pressure-mat occupancies (sensor_id, start, end, hours) from the events frame."""
    m = frame[frame["kind"] == "presence"].sort_values(["sensor_id", "time"])
    starts = m[m["value"] == 1].reset_index(drop=True)
    ends = m[m["value"] == 0].reset_index(drop=True)
    out = starts[["sensor_id"]].assign(start=starts["time"], end=ends["time"])
    return out.assign(hours=(out["end"] - out["start"]) / 3600)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data_dir", nargs="?", default="/work/shared/data/ordonez-adl")
    ap.add_argument("--tz", default=DEFAULT_TZ)
    ap.add_argument("--learn-days", type=int, default=7)
    ap.add_argument("--cut-day", default="2011-12-06")
    ap.add_argument("--cut-from", default="14:40")
    ap.add_argument("--cut-hours", type=float, default=5.0)
    args = ap.parse_args(argv)

    data = load_ordonez(Path(args.data_dir), tz=args.tz)
    frame = data.to_frame(HOME)
    t_first, t_last = int(frame["time"].min()), int(frame["time"].max())
    learn_end = t_first + args.learn_days * 86_400
    t0 = time.perf_counter()
    routines = learn_routines(frame[frame["time"] < learn_end], learn_end, args.tz, window_days=args.learn_days)
    learn_s = time.perf_counter() - t0
    minutes = np.arange(learn_end + 60 - learn_end % 60, t_last + 1, 60, dtype=np.int64)
    t0 = time.perf_counter()
    raised, ctx = detect_at(frame, routines, np.zeros(minutes.size, np.int64), minutes, args.tz)
    detect_s = time.perf_counter() - t0
    normal = episodes(to_home_events(raised, ctx, routines))
    away_min = sum(min(a.end.timestamp(), t_last) - max(a.start.timestamp(), learn_end)
                   for a in data.adls if a.activity == "Leaving" and a.end.timestamp() > learn_end) / 60

    zone = ZoneInfo(args.tz)
    cut_start = datetime.fromisoformat(f"{args.cut_day}T{args.cut_from}").replace(tzinfo=zone)
    c0 = int(cut_start.timestamp())
    c1 = c0 + int(args.cut_hours * 3600)
    cut = frame[(frame["time"] < c0) | (frame["time"] >= c1)]
    removed = len(frame) - len(cut)
    raised_c, ctx_c = detect_at(cut, routines, np.zeros(minutes.size, np.int64), minutes, args.tz)
    cut_eps = [g for g in episodes(to_home_events(raised_c, ctx_c, routines))
               if g[0].kind == HomeEventKind.INACTIVITY and c0 <= g[0].start.timestamp() <= c1 + 3600]
    last_before = int(cut.loc[cut["time"] < c0, "time"].max())
    line = routines.inactivity_threshold_s.iloc[0].to_numpy()
    expected = crossing(last_before, line, args.tz, routines.params.bin_s, c1 - last_before)
    first_tick = next((int(g[0].detected_at.timestamp()) for g in cut_eps), None)

    def loc(t: float) -> str:
        return datetime.fromtimestamp(t, tz=timezone.utc).astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")

    cmd = "python scripts/ordonez_report.py " + " ".join(argv if argv is not None else sys.argv[1:])
    p = print
    p("# Home detectors on the Ordóñez home A fortnight\n")
    p(f"Produced by `{cmd.strip()} > docs/ordonez-report.md` (data read from `{args.data_dir}`, never copied: non-commercial terms; "
      "Ordóñez, de Toledo, Sanchis, *Sensors* 2013, 13, 5460–5477).\n")
    p(f"- Data: {len(data.events)} sensor events ({len(data.sensors)} sensors) from {loc(t_first)} to "
      f"{loc(t_last)} local ({args.tz}, assumed: the files state no zone).")
    p(f"- Learned on the first {args.learn_days} × 24 h (to {loc(learn_end)}): {learn_s * 1000:.0f} ms. "
      f"History {routines.history_days.iloc[0]:.1f} days, limited: {bool(routines.limited_history.iloc[0])}.")
    w = routines.wake.iloc[0]
    b = routines.bathroom.iloc[0]
    lv = routines.activity_level.iloc[0]
    thr_h = line / 3600
    p(f"- Learned: wake-up median {w['median_s'] / 3600:.2f} h (spread {w['spread_s'] / 60:.0f} min, "
      f"{int(w['n_days'])} days), no-wake-up deadline {w['deadline_s'] / 3600:.2f} h; inactivity alert line "
      f"{thr_h.min():.1f}–{thr_h.max():.1f} h across the day; bathroom threshold day "
      f"{b['threshold_day_s'] / 60:.0f} min / night {b['threshold_night_s'] / 60:.0f} min; "
      f"activity {lv['mean']:.0f} ± {lv['sd']:.0f} motion detections a day; decline check: "
      f"{int(lv['reference_days'])} reference days (needs {routines.params.decline_min_baseline_days}, ending "
      f"{routines.params.decline_reference_gap_days} days before the recent ones), so "
      f"{'evaluated' if lv['reference_days'] >= routines.params.decline_min_baseline_days else 'not evaluated'}.")
    p(f"- Detectors evaluated at every minute of the remaining {minutes.size / 1440:.1f} days "
      f"({minutes.size} ticks) in one vectorized call: {detect_s * 1000:.0f} ms. The resident was out "
      f"(labelled \"Leaving\") {away_min / 60:.1f} h of that time.\n")
    p("## What a normal fortnight raises\n")
    counts = Counter(str(g[0].kind) for g in normal)
    p("| kind | episodes |\n|---|---|")
    for k in HomeEventKind:
        p(f"| {k} | {counts.get(str(k), 0)} |")
    p("")
    mats = _mat_intervals(frame)
    trained = mats[mats["end"] <= learn_end]
    for e, ticks in normal:
        p(f"- {loc(e.start.timestamp())} **{e.kind}** ({e.severity}, raised on {ticks} ticks): "
          f"{e.summary('en', args.tz)}")
        if e.kind == HomeEventKind.INACTIVITY:
            sat = mats[mats["start"] == int(e.last_activity.timestamp())]
            for _, m in sat.iterrows():
                p(f"  The last activity is {m['sensor_id']} becoming occupied; it stayed occupied "
                  f"{(m['end'] - m['start']) / 3600:.1f} h (longest occupancy of that mat starting in "
                  f"the training days: "
                  f"{trained.loc[trained['sensor_id'] == m['sensor_id'], 'hours'].max():.1f} h).")
    if not normal:
        p("- nothing.")
    p("\n## Cut: an inactivity the resident did not have\n")
    p(f"Removed {removed} events from {loc(c0)} to {loc(c1)}. Last activity before the cut: {loc(last_before)}.")
    if expected is None or first_tick is None:
        p(f"\n**Not raised** (expected crossing {loc(expected) if expected else 'none within the cut'}).")
        ok = False
    else:
        ok = 0 <= first_tick - expected <= 60
        e = cut_eps[0][0]
        p(f"Threshold crossed at {loc(expected)} (recomputed second by second); first tick raising "
          f"`inactivity`: {loc(first_tick)}, {first_tick - expected} s later "
          f"({'within' if ok else 'NOT within'} one minute); event start {loc(e.start.timestamp())}.\n")
        p(f"> {e.summary('en', args.tz)}\n>\n> {e.summary('fr', args.tz)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
