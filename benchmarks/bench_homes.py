"""Cost of learning routines and of one detection tick for many assisted-living homes.

    python benchmarks/bench_homes.py [--homes 1000 --days 28] [--loop-homes 200] [--repeat 3]

Synthetic homes (numpy, seeded): per home and day a wake-up around a home-specific time, a bedtime,
about 15 activity reports an hour awake (motion 1 in kitchen / living room / bathroom / bedroom,
each followed by a motion 0 "clear" report), bed-mat changes at bedtime and wake-up, 0–2 night
toilet trips, one outing of 1–3 h through the entrance door (door open/close at both ends), and a
smart plug (kettle) twice a day.

Timed (best of ``--repeat``):
  (a) ``learn_routines`` over the whole window (the daily job); string columns are categoricals,
      as the store returns them (object strings add a factorization, ~1 s per million rows);
  (b) one minute tick for every home: ``vigie.home_jobs.tick_events`` (what the live tick and
      ``vigie events`` call), given the last 24 h of events (what the minute job holds);
  (c) the same tick as a per-home loop (one ``tick_events`` call per home, its own events and
      routine — sensor table included — prepared beforehand and not timed), on ``--loop-homes`` homes only, extrapolated
      linearly to all homes; its events are checked equal to (b)'s for those homes.

Memory: the frame takes about 21 bytes per report (categorical codes); learning peaks higher
(``--homes 10000 --days 8``, 36 M reports: 9.3 GB resident). The peak resident size is printed.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import time
from collections import Counter

import numpy as np
import pandas as pd
from timing import best
from vigie.analytics.routine import learn_routines

from vigie.home_jobs import tick_events

TZ = "Europe/Paris"
ROOMS = ["kitchen", "living_room", "bathroom", "bedroom"]
#: (sensor_id, room, kind) of every home's sensors; the first four are the PIRs of ROOMS, in order.
SENSORS = [*((f"pir-{r}", r, "motion") for r in ROOMS), ("bed", "bedroom", "presence"),
           ("door", "entrance", "contact"), ("plug-kettle", "kitchen", "power")]
BED, DOOR, KETTLE = 4, 5, 6


def synthetic_events(n_homes: int, days: int, start: int, seed: int = 1) -> pd.DataFrame:
    """Events frame (analytics.routine contract) for ``n_homes`` normal homes over ``days`` days
    from ``start`` (epoch s at a local midnight, times here approximate local as UTC+1). Sensors
    are built as integer codes and become categoricals at the end (as the store returns them), so
    10 000 homes hold no per-row strings."""
    rng = np.random.default_rng(seed)
    hd = n_homes * days
    home = np.repeat(np.arange(n_homes), days)
    midnight = start + np.tile(np.arange(days), n_homes) * 86_400 - 3_600
    wake = midnight + (rng.uniform(6.5, 8.5, n_homes)[home] * 3600 + rng.normal(0, 1200, hd)).astype(np.int64)
    bed = midnight + (rng.uniform(21.5, 23.5, n_homes)[home] * 3600 + rng.normal(0, 1200, hd)).astype(np.int64)
    out_start = midnight + rng.uniform(10, 16, hd).astype(np.int64) * 3600 + rng.integers(0, 3600, hd)
    out_end = out_start + rng.integers(3600, 3 * 3600, hd)
    parts = []

    def add(h, t, sensor, value):
        n = len(t)
        parts.append((np.asarray(h, np.int32), np.broadcast_to(np.asarray(sensor, np.int8), n),
                      np.asarray(t, np.int64), np.broadcast_to(np.asarray(value, np.float64), n)))

    n = rng.poisson(15 * (bed - wake) / 3600)
    idx = np.repeat(np.arange(hd), n)
    t = wake[idx] + (rng.random(idx.size) * (bed - wake)[idx]).astype(np.int64)
    keep = (t < out_start[idx]) | (t >= out_end[idx] + 120)
    idx, t = idx[keep], t[keep]
    pir = rng.choice(4, idx.size, p=[0.35, 0.35, 0.2, 0.1])   # a row of ROOMS = its PIR's code
    add(home[idx], t, pir, 1.0)
    add(home[idx], t + 90, pir, 0.0)
    add(home, wake, BED, 0.0)
    add(home, bed, BED, 1.0)
    for o, v in ((out_start, 1.0), (out_start + 10, 0.0), (out_end, 1.0), (out_end + 10, 0.0)):
        add(home, o, DOOR, v)
    k = rng.integers(0, 3, hd)
    ki = np.repeat(np.arange(hd), k)
    kt = midnight[ki] + rng.uniform(1, 5, ki.size).astype(np.int64) * 3600
    for dt, sensor, v in ((0, BED, 0.0), (60, 2, 1.0), (300, BED, 1.0)):   # 2: the bathroom PIR
        add(home[ki], kt + dt, sensor, v)
    for hour in (8.5, 16.0):
        kt = midnight + int(hour * 3600) + rng.integers(0, 1800, hd)
        home_in = (kt < out_start) | (kt > out_end)
        add(home[home_in], kt[home_in], KETTLE, 1800.0)
        add(home[home_in], kt[home_in] + 180, KETTLE, 0.0)
    h, sensor, t, value = (np.concatenate([p[i] for p in parts]) for i in range(4))
    parts.clear()   # the pieces go before the frame is built
    ids = [f"home-{i:05d}" for i in range(n_homes)]
    names = [name for name, _, _ in SENSORS]
    rooms = sorted({room for _, room, _ in SENSORS})
    kinds = sorted({kind for _, _, kind in SENSORS})
    room_of = np.array([rooms.index(room) for _, room, _ in SENSORS], np.int8)
    kind_of = np.array([kinds.index(kind) for _, _, kind in SENSORS], np.int8)
    return pd.DataFrame({"home_id": pd.Categorical.from_codes(h, ids),
                         "sensor_id": pd.Categorical.from_codes(sensor, names),
                         "room": pd.Categorical.from_codes(room_of[sensor], rooms),
                         "kind": pd.Categorical.from_codes(kind_of[sensor], kinds),
                         "time": t, "value": value})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--homes", type=int, default=1000)
    ap.add_argument("--days", type=int, default=28)
    ap.add_argument("--loop-homes", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    start = int(pd.Timestamp("2025-03-03", tz=TZ).timestamp())  # spans the 2025-03-30 DST change
    t0 = time.perf_counter()
    events = synthetic_events(args.homes, args.days + 1, start)
    gen_s = time.perf_counter() - t0
    now = start + args.days * 86_400 + 11 * 3600   # 11:00 local on the last day
    learn_s, routines = best(lambda: learn_routines(events, now, TZ, args.days), max(1, args.repeat - 1))
    recent = events[(events["time"] > now - 86_400) & (events["time"] <= now)].reset_index(drop=True)
    detect_s, evs = best(lambda: tick_events(recent, routines, routines.homes, [now]), args.repeat)

    homes = routines.homes[: args.loop_homes]
    groups = dict(list(recent.groupby("home_id", observed=True)))
    # Each home's own routine, its sensor table cut to that home too (``defaults_for`` keeps the
    # fleet's, which would make every loop call pay for all homes' sensors).
    per_home = [(groups[h].reset_index(drop=True),
                 dataclasses.replace(r := routines.defaults_for(pd.Index([h], name="home_id")),
                                     sensors=r.sensors[r.sensors["home_id"] == h].reset_index(drop=True)))
                for h in homes]
    loop_s, loop_evs = best(lambda: [e for ev, r in per_home for e in tick_events(ev, r, r.homes, [now])],
                            args.repeat)
    same = loop_evs == [e for e in evs if e.home_id in set(homes)]
    loop_fleet = loop_s * len(routines.homes) / len(homes)

    print(f"homes {len(routines.homes)}, days {args.days}, events {len(events):,} "
          f"(generated in {gen_s:.1f} s), last 24 h {len(recent):,}")
    print(f"(a) learn_routines, {args.days}-day window:          {learn_s:8.3f} s")
    print(f"(b) tick_events, one tick, all homes:          {detect_s * 1000:8.1f} ms   "
          f"(raised: {dict(Counter(str(e.kind) for e in evs)) or 'nothing'})")
    print(f"(c) per-home loop, {len(homes)} homes:                {loop_s * 1000:8.1f} ms  "
          f"→ {loop_fleet * 1000:.0f} ms for {len(routines.homes)} homes "
          f"({loop_fleet / detect_s:.0f}× (b)); same events as (b): {same}")
    print(f"peak resident size {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.1f} GB; "
          f"load average at the end {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
