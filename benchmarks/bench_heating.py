"""Cost of the heating analytics for many rooms: the vectorized pass beside a per-room pandas loop.

    python benchmarks/bench_heating.py [--rooms 5000 --days 7] [--loop-rooms 300] [--repeat 3]

Synthetic town halls (numpy, seeded): ``--rooms`` rooms in buildings of 100, each with two TRVs
(1 kW radiators, a report every ~20 min on average: temperature, setpoint, valve, window), half of
them a room sensor (temperature, occupancy, every ~10 min), one in ten a heat meter (energy register
and power, every 15 min), and an outdoor sensor per building (every 30 min). A January week
(Monday to Sunday, Europe/Paris), occupancy Monday–Friday 08:00–18:00, TRVs at 20 °C from 07:00
(pre-heat) and 16 °C otherwise. Injected faults, each in 2–3 % of the rooms: a window left open
1–3 h with the valve open, the schedule ignored (20 °C day and night), a setpoint of 23 °C, a
radiator stuck cold for 6 h (valve 100 %, room 3 °C below its setpoint).

Timed (best of ``--repeat``), on the same frame, already in memory as ``read_heating`` returns it
(device, room, building, kind categorical; sorted by device then time):
  (a) ``analyse_heating`` — every room, the four slot rules, daily energy and DJU, records out;
      ``room_grid`` (the resampling alone) is timed too;
  (b) a per-room pandas loop of the same rules (``reindex(method="ffill", tolerance=…)`` per device
      and field, DataFrame mean/max across a room's devices, runs by ``shift``/``cumsum``, days by
      ``groupby`` on the local date), each room's rows split off beforehand and not timed; run on
      ``--loop-rooms`` rooms and extrapolated linearly. Its findings and room-days are checked equal
      to (a)'s for those rooms.
The energy trend needs ≥ 2 previous weeks, so over 7 days neither side computes it.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import time
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd
from timing import best

from vigie.analytics.heating import FIELDS, NS, HeatingFindingKind, HeatingParams, analyse_heating, room_grid

TZ = "Europe/Paris"
START = pd.Timestamp("2026-01-12", tz=TZ)   # a Monday; UTC+1 all week
K = HeatingFindingKind


@dataclass
class Layout:
    rooms: pd.DataFrame
    devices: pd.DataFrame


def synthetic(n_rooms: int, days: int, seed: int = 5):
    """(frame as read_heating returns it, layout, occupancy rooms × slots+8, faults per room)."""
    rng = np.random.default_rng(seed)
    t0 = int(START.tz_convert("UTC").value)
    span = days * 86_400 * NS
    per_building = 100
    room_ids = np.array([f"r{i:05d}" for i in range(n_rooms)], dtype=object)
    bld = np.array([f"b{i // per_building:03d}" for i in range(n_rooms)], dtype=object)
    fault = rng.choice(["none", "window", "ignored", "hot", "stuck"], n_rooms, p=[0.89, 0.03, 0.03, 0.03, 0.02])
    win_at = t0 + rng.integers(0, days, n_rooms) * 86_400 * NS + rng.integers(9, 16, n_rooms) * 3600 * NS
    win_len = rng.integers(1, 4, n_rooms) * 3600 * NS
    stuck_at = t0 + rng.integers(0, 5, n_rooms) * 86_400 * NS + 7 * 3600 * NS

    def local_hour_weekday(t):
        loc = (t - t0) / NS / 3600.0   # START is local midnight and UTC+1 holds all week
        return loc % 24.0, (loc // 24).astype(np.int64) % 7

    def state(room, t):
        h, wd = local_hour_weekday(t)
        weekday = wd < 5
        f = fault[room]
        comfort_time = weekday & (h >= 7) & (h < 18)
        sp = np.where(comfort_time | (f == "ignored"), 20.0, 16.0)
        sp = np.where((f == "hot") & comfort_time, 23.0, sp)
        temp = sp - 0.3 + rng.normal(0, 0.2, len(t))
        valve = np.clip(35 + 25 * (sp - temp) + rng.normal(0, 5, len(t)), 0, 100)
        stuck = (f == "stuck") & (t >= stuck_at[room]) & (t < stuck_at[room] + 6 * 3600 * NS)
        temp = np.where(stuck, sp - 3.0, temp)
        valve = np.where(stuck, 100.0, valve)
        window = ((f == "window") & (t >= win_at[room]) & (t < win_at[room] + win_len[room])).astype(np.float64)
        valve = np.where(window > 0, np.maximum(valve, 60.0), valve)
        occupied = (weekday & (h >= 8) & (h < 18)).astype(np.float64)
        return temp, sp, valve, window, occupied

    def reports(n_dev, mean_s):
        """Report times per device: a random phase, then exponential gaps (mean ``mean_s``)."""
        k = int(span / (mean_s * NS) * 1.3) + 4
        gaps = rng.exponential(mean_s, (n_dev, k)) * NS
        gaps[:, 0] = rng.uniform(0, mean_s, n_dev) * NS
        t = t0 - 3600 * NS + np.cumsum(gaps, axis=1).astype(np.int64)
        dev = np.repeat(np.arange(n_dev), k)
        t = t.ravel()
        keep = t < t0 + span
        return dev[keep], t[keep]

    parts = []   # (device index, time, kind, owner room, fields dict)
    dev_names, dev_kind, dev_room, dev_bld, dev_interval, dev_w = [], [], [], [], [], []

    def add_devices(names, kind, rooms, interval, w=np.nan):
        base = len(dev_names)
        dev_names.extend(names)
        dev_kind.extend([kind] * len(names))
        dev_room.extend(room_ids[rooms] if kind != "outdoor" else room_ids[rooms])
        dev_bld.extend(bld[rooms])
        dev_interval.extend([interval] * len(names))
        dev_w.extend([w] * len(names))
        return base

    trv_rooms = np.repeat(np.arange(n_rooms), 2)
    base = add_devices([f"trv-{i:06d}" for i in range(len(trv_rooms))], "trv", trv_rooms, 1800.0, 1000.0)
    d, t = reports(len(trv_rooms), 1200.0)
    # TRVs also report on change, within seconds: the scheduled setpoint changes (07:00, 18:00 on
    # weekdays) and the start and end of each window and stuck episode.
    n_trv = len(trv_rooms)
    changes = [t0 + (day * 24 + hour) * 3600 * NS for day in range(min(days, 5)) for hour in (7, 18)]
    ch_t = np.tile(np.array(changes, dtype=np.int64), n_trv)
    ch_d = np.repeat(np.arange(n_trv), len(changes))
    r = trv_rooms
    ep = np.concatenate([win_at[r], win_at[r] + win_len[r], stuck_at[r], stuck_at[r] + 6 * 3600 * NS])
    ep_d = np.tile(np.arange(n_trv), 4)
    f = np.tile(fault[r], 4)
    ep_keep = np.r_[np.ones(2 * n_trv, bool) & (f[:2 * n_trv] == "window"), f[2 * n_trv:] == "stuck"]
    d = np.concatenate([d, ch_d, ep_d[ep_keep]])
    t = np.concatenate([t, ch_t, ep[ep_keep]]) + np.r_[np.zeros(len(t), np.int64),
                                                        rng.integers(1, 30, len(ch_t) + int(ep_keep.sum())) * NS]
    temp, sp, valve, window, _ = state(trv_rooms[d], t)
    parts.append((base + d, t, dict(temperature_c=temp + 0.5, setpoint_c=sp, valve_pct=valve, window_open=window)))
    sensor_rooms = np.arange(0, n_rooms, 2)
    base = add_devices([f"rs-{i:06d}" for i in sensor_rooms], "room_sensor", sensor_rooms, 600.0)
    d, t = reports(len(sensor_rooms), 600.0)
    temp, _, _, _, occ = state(sensor_rooms[d], t)
    parts.append((base + d, t, dict(temperature_c=temp, occupied=occ)))
    meter_rooms = np.arange(0, n_rooms, 10)
    base = add_devices([f"hm-{i:06d}" for i in meter_rooms], "heat_meter", meter_rooms, 900.0)
    d = np.repeat(np.arange(len(meter_rooms)), days * 96 + 5)
    t = np.tile(t0 - 3600 * NS + np.arange(days * 96 + 5) * 900 * NS, len(meter_rooms))
    _, _, valve, _, _ = state(meter_rooms[d], t)
    power = valve / 100.0 * 2000.0
    energy = np.cumsum(power.reshape(len(meter_rooms), -1) * 0.25 / 1000.0, axis=1).ravel() + 1000.0
    parts.append((base + d, t, dict(power_w=power, energy_kwh=energy)))
    b_first = np.arange(0, n_rooms, per_building)
    base = add_devices([f"out-{bld[i]}" for i in b_first], "outdoor", b_first, 1800.0)
    d = np.repeat(np.arange(len(b_first)), days * 48 + 3)
    t = np.tile(t0 - 3600 * NS + np.arange(days * 48 + 3) * 1800 * NS, len(b_first))
    h, _ = local_hour_weekday(t)
    parts.append((base + d, t, dict(temperature_c=3.0 + 4.0 * np.sin((h - 9) / 24 * 2 * np.pi))))

    dev = np.concatenate([p[0] for p in parts])
    t = np.concatenate([p[1] for p in parts])
    cols = {f: np.concatenate([p[2].get(f, np.full(len(p[0]), np.nan)) for p in parts]) for f in FIELDS}
    order = np.lexsort((t, dev))
    dev, t = dev[order], t[order]
    names = np.array(dev_names, dtype=object)
    kinds = sorted(set(dev_kind))
    frame = pd.DataFrame({
        "time": pd.to_datetime(t, unit="ns", utc=True),
        "device": pd.Categorical.from_codes(dev, names),
        "room": pd.Categorical.from_codes(pd.Index(room_ids).get_indexer(np.array(dev_room, dtype=object)[dev]),
                                          room_ids),
        "building": pd.Categorical.from_codes(
            pd.Index(pd.unique(bld)).get_indexer(np.array(dev_bld, dtype=object)[dev]), pd.unique(bld)),
        "kind": pd.Categorical.from_codes(np.array([kinds.index(k) for k in dev_kind])[dev], kinds),
        **{f: cols[f][order] for f in FIELDS}})
    rooms = pd.DataFrame({"room_id": room_ids, "building_id": bld, "comfort_c": 20.0, "setback_c": 16.0,
                          "area_m2": 30.0, "radiator_w": 2000.0})
    devices = pd.DataFrame({"device_id": names, "kind": dev_kind, "room_id": dev_room, "building_id": dev_bld,
                            "expected_interval_s": dev_interval, "radiator_w": dev_w})
    P = days * 96
    slot_t = t0 + np.arange(P + 8) * 900 * NS
    h, wd = local_hour_weekday(slot_t)
    occupancy = np.broadcast_to((wd < 5) & (h >= 8) & (h < 18), (n_rooms, P + 8))
    return frame, Layout(rooms, devices), occupancy, dict(zip(room_ids, fault))


# --- the per-room pandas loop ----------------------------------------------------------------

def room_loop(room: str, building: str, sub: pd.DataFrame, info: pd.DataFrame, outdoor_of: dict, occ_row,
              all_frame_outdoor: dict, grid: pd.DatetimeIndex, p: HeatingParams, room_row) -> tuple[list, pd.DataFrame]:
    """One room, the rules of analytics/heating.py in pandas. Returns (findings, room-day frame)."""
    inst = grid[:-1]
    step_h = p.step_min / 60.0

    def limit(dev):
        lim = p.max_age_h * 3600.0
        e = info.at[dev, "expected_interval_s"] if dev in info.index else math.nan
        if not pd.isna(e):
            lim = max(lim, e * p.stale_factor)
        return pd.Timedelta(int(lim * NS), unit="ns")

    def sampled(rows: pd.DataFrame, field: str, kinds: tuple, at=inst) -> pd.DataFrame:
        cols = {}
        for dev, g in rows[rows["kind"].isin(kinds)].groupby("device", observed=True):
            s = g.loc[g[field].notna(), ["time", field]]
            if s.empty:
                continue
            s = s.drop_duplicates("time", keep="last").set_index("time")[field]
            cols[dev] = s.reindex(at, method="ffill", tolerance=limit(dev))
        return pd.DataFrame(cols, index=at)

    temp_rs = sampled(sub, "temperature_c", ("room_sensor",)).mean(axis=1)
    temp_trv = sampled(sub, "temperature_c", ("trv",)).mean(axis=1)
    temp = temp_rs.fillna(temp_trv) if len(temp_rs) else temp_trv
    sp = sampled(sub, "setpoint_c", ("trv",)).max(axis=1)
    valves = sampled(sub, "valve_pct", ("trv",))
    vmax = valves.max(axis=1)
    w = pd.Series({d: info.at[d, "radiator_w"] if d in info.index else math.nan for d in valves.columns}, dtype=float)
    w = w.where(w > 0)
    w = w if w.notna().all() else pd.Series(1.0, index=valves.columns)
    vmean = (valves * w).sum(axis=1, min_count=1) / valves.notna().mul(w).sum(axis=1).replace(0, np.nan)
    flag = sampled(sub, "heating", ("trv",)).max(axis=1)
    window = sampled(sub, "window_open", ("trv", "room_sensor")).max(axis=1)
    occ_obs = sampled(sub, "occupied", ("trv", "room_sensor")).max(axis=1)
    powers = sampled(sub, "power_w", ("heat_meter",))
    power = powers.sum(axis=1, min_count=max(powers.shape[1], 1)) if powers.shape[1] else pd.Series(np.nan, inst)
    regs = sampled(sub, "energy_kwh", ("heat_meter",), grid)
    deltas = pd.DataFrame(regs.to_numpy()[1:] - regs.to_numpy()[:-1], index=inst, columns=regs.columns)
    deltas = deltas.where((deltas >= 0) & (deltas <= p.max_heat_w / 1000.0 * step_h))
    meter = deltas.sum(axis=1, min_count=max(deltas.shape[1], 1)) if deltas.shape[1] else pd.Series(np.nan, inst)
    W = room_row["radiator_w"]
    method = ("meter" if regs.shape[1] else "power" if powers.shape[1] else
              "valve" if valves.shape[1] and W > 0 else "none")
    energy = {"meter": meter, "power": power * step_h / 1000.0, "valve": vmean / 100.0 * W * step_h / 1000.0,
              "none": pd.Series(np.nan, inst)}[method]
    heat_w = power.where(meter.isna(), meter * 1000.0 / step_h)
    if building not in outdoor_of:   # once per building, as a loop would cache it
        out = sampled(all_frame_outdoor[building], "temperature_c", ("outdoor",)).mean(axis=1) \
            if building in all_frame_outdoor else pd.Series(np.nan, inst)
        outdoor_of[building] = out
    outdoor = outdoor_of[building]

    occ = pd.Series(occ_row, dtype=bool) if occ_row is not None else ~(occ_obs < 0.5)
    lead = p.slots(p.preheat_min)
    in_occ = occ[::-1].rolling(lead + 1, min_periods=1).max()[::-1].astype(bool).to_numpy()[:len(inst)]
    in_occ = pd.Series(in_occ, index=inst)
    heating = (vmax >= p.valve_open_pct) | (flag >= 0.5) | (heat_w >= p.heating_power_w)
    win = window >= 0.5
    comfort, setback = room_row["comfort_c"], room_row["setback_c"]
    masks = {K.WINDOW_OPEN_HEATING: win & heating,
             K.UNOCCUPIED_HEATING: ~in_occ & heating & ((sp > setback + p.tolerance_c)
                                                        | (sp.isna() & (temp > setback + p.tolerance_c))),
             K.SETPOINT_ABOVE_COMFORT: in_occ & (sp > comfort + p.tolerance_c),
             K.CANNOT_REACH_SETPOINT: (vmax >= p.cannot_reach_valve_pct) & (sp - temp >= p.cannot_reach_gap_c) & ~win}
    tt = temp.fillna(sp)

    def share(policy):
        s = ((tt - policy) / (tt - outdoor)).clip(0, 1).where(tt - outdoor > 0, 1.0)
        return s.where(tt.notna() & outdoor.notna())
    waste = {K.WINDOW_OPEN_HEATING: energy, K.UNOCCUPIED_HEATING: energy * share(setback),
             K.SETPOINT_ABOVE_COMFORT: energy * share(comfort)}
    findings = []
    gap = int(p.merge_gap_min // p.step_min)
    for kind, mask in masks.items():
        need = p.slots(p.cannot_reach_min_h * 60 if kind == K.CANNOT_REACH_SETPOINT else p.min_duration_min)
        run_id = (mask != mask.shift(fill_value=False)).cumsum()
        runs = []
        for _, r in mask[mask].groupby(run_id[mask]):
            a, b = inst.get_loc(r.index[0]), inst.get_loc(r.index[-1]) + 1
            if runs and a - runs[-1][1] <= gap:
                runs[-1][1] = b
            else:
                runs.append([a, b])
        for a, b in runs:
            cells = mask.iloc[a:b]
            cells = cells[cells].index
            if len(cells) < max(need, 1):
                continue
            ev = {"valve_pct": vmax[cells].mean()}
            if kind in waste:
                ev["wasted_kwh"] = waste[kind][cells].sum()
            findings.append((building, room, kind, inst[a], inst[a] + (b - a) * pd.Timedelta(minutes=p.step_min), ev))
    local = inst.tz_convert(TZ).normalize()
    per_day = energy.groupby(local).agg(["sum", "count"])
    full = pd.Series([(d + pd.Timedelta(days=1)).tz_convert("UTC") - d.tz_convert("UTC") for d in per_day.index],
                     index=per_day.index) / pd.Timedelta(minutes=p.step_min)
    cov = per_day["count"] / full
    days = pd.DataFrame({"energy_kwh": (per_day["sum"] / cov).where(cov >= p.min_coverage), "coverage": cov,
                         "method": method})
    return findings, days


def loop_all(prepared, p, grid):
    outdoor_of: dict = {}
    out = []
    for args in prepared:
        out.append(room_loop(*args[:3], info=args[3], outdoor_of=outdoor_of, occ_row=args[4],
                             all_frame_outdoor=args[5], grid=grid, p=p, room_row=args[6]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rooms", type=int, default=5000)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--loop-rooms", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    p = HeatingParams()

    a = time.perf_counter()
    frame, layout, occupancy, faults = synthetic(args.rooms, args.days)
    gen_s = time.perf_counter() - a
    start = START.to_pydatetime()
    end = (START + pd.Timedelta(days=args.days)).to_pydatetime()
    grid_s, _ = best(lambda: room_grid(frame, layout, start=start, end=end, params=p), args.repeat)
    vec_s, res = best(lambda: analyse_heating(frame, layout, occupancy, None, start=start, end=end, tz=TZ, params=p),
                      args.repeat)

    # The loop: each room's rows (and its building's outdoor rows) split off beforehand, not timed.
    n = min(args.loop_rooms, args.rooms)
    step = max(args.rooms // n, 1)
    picked = list(range(0, args.rooms, step))[:n]
    rooms = layout.rooms
    info = layout.devices.set_index("device_id")
    by_room = dict(list(frame[frame["kind"] != "outdoor"].groupby("room", observed=True)))
    outdoor_rows = dict(list(frame[frame["kind"] == "outdoor"].groupby("building", observed=True)))
    prepared = [(rooms.at[i, "room_id"], rooms.at[i, "building_id"],
                 by_room.get(rooms.at[i, "room_id"], frame.iloc[:0]), info, occupancy[i], outdoor_rows,
                 rooms.loc[i]) for i in picked]
    grid = pd.date_range(start, end, freq=f"{p.step_min}min").tz_convert("UTC")
    loop_s, loop_out = best(lambda: loop_all(prepared, p, grid), 1)
    loop_fleet = loop_s * args.rooms / len(picked)

    # Same findings and room-days for the looped rooms.
    picked_ids = {rooms.at[i, "room_id"] for i in picked}
    vec_f = sorted((f.room, str(f.kind), f.start, f.end, f.evidence.get("wasted_kwh")) for f in res.findings
                   if f.room in picked_ids)
    loop_f = sorted((r, str(k), a.to_pydatetime(), b.to_pydatetime(),
                     round(float(ev["wasted_kwh"]), 3) if "wasted_kwh" in ev else None)
                    for out, _ in loop_out for (_, r, k, a, b, ev) in out)
    same_findings = [x[:4] for x in vec_f] == [x[:4] for x in loop_f] and all(
        (x[4] is None and y[4] is None) or abs(x[4] - y[4]) <= 1e-3 for x, y in zip(vec_f, loop_f))
    vec_days = {(d.room, d.day): d for d in res.room_days if d.room in picked_ids}
    same_days = all(
        np.isclose(vec_days[(rid, day.date())].energy_kwh, row.energy_kwh, rtol=1e-9, equal_nan=True)
        and vec_days[(rid, day.date())].method == row.method
        for (out, days), rid in zip(loop_out, [x[0] for x in prepared]) for day, row in days.iterrows())

    found = Counter(str(f.kind) for f in res.findings)
    injected = Counter(faults.values())
    print(f"rooms {args.rooms}, days {args.days}, readings {len(frame):,} (generated in {gen_s:.1f} s), "
          f"slots {res.grid.times.size}, buildings {len(res.building_days) // args.days}")
    print(f"injected faults {dict(injected)}; found {dict(found)}")
    print(f"(a) analyse_heating, all rooms:        {vec_s:8.3f} s   (room_grid alone {grid_s:.3f} s)")
    print(f"(b) per-room pandas loop, {len(picked)} rooms: {loop_s:8.3f} s → {loop_fleet:.1f} s for {args.rooms} rooms "
          f"(extrapolated), {loop_fleet / vec_s:.0f}× (a)")
    print(f"(b) == (a) on those rooms: findings {same_findings} ({len(vec_f)}), room-days {same_days}")
    print(f"peak resident size {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.2f} GB; "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
