"""Heating analytics (analytics/heating.py): a plain per-room, slot-by-slot reference the vectorized
pass must agree with on seeded random buildings, and targeted cases per rule."""

from __future__ import annotations

import bisect
import functools
import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from vigie.analytics.heating import (FIELDS, KINDS, NS, HeatingFindingKind, HeatingParams, analyse_heating,
                                     energy_trend, load_outdoor_csv)
from vigie.analytics.intervals import local_midnight
from vigie.config import Settings

TZ = "Europe/Paris"
ZONE = ZoneInfo(TZ)
K = HeatingFindingKind


@dataclass
class Layout:
    rooms: pd.DataFrame
    devices: pd.DataFrame


def layout(rooms: list[dict], devices: list[dict]) -> Layout:
    r = pd.DataFrame(rooms, columns=["room_id", "building_id", "comfort_c", "setback_c", "area_m2", "radiator_w"])
    d = pd.DataFrame(devices, columns=["device_id", "kind", "room_id", "building_id", "expected_interval_s"]
                     + (["radiator_w"] if any("radiator_w" in x for x in devices) else []))
    return Layout(r, d)


def frame(rows: list[dict]) -> pd.DataFrame:
    """rows: dicts with time (aware datetime), device, room, building, kind and some fields."""
    df = pd.DataFrame(rows)
    for f in FIELDS:
        if f not in df.columns:
            df[f] = np.nan
    df["time"] = pd.to_datetime(df["time"], utc=True)
    for c in ("device", "room", "building", "kind"):
        df[c] = df[c].astype("category")
    return df[["time", "device", "room", "building", "kind", *FIELDS]].astype({f: np.float64 for f in FIELDS})


def local(day: date, hhmm: str = "00:00") -> datetime:
    h, m = map(int, hhmm.split(":"))
    return datetime(day.year, day.month, day.day, h, m, tzinfo=ZONE)


# --- the reference: one room at a time, one slot at a time, plain Python -------------------------

def ns(t) -> int:
    return int(pd.Timestamp(t).tz_convert("UTC").as_unit("ns").value)


def reference(df: pd.DataFrame, lay: Layout, occupancy, outdoor, start, end, p: HeatingParams):
    step = p.step_min * 60 * NS
    t0, t1 = ns(start), ns(end)
    P = (t1 - t0) // step
    grid = [t0 + k * step for k in range(P + 1)]
    step_h = p.step_min / 60.0
    rooms = lay.rooms.reset_index(drop=True)
    room_ids = [str(x) for x in rooms["room_id"]]
    room_bld = [str(x) for x in rooms["building_id"]]
    buildings = sorted(set(room_bld))
    dev = lay.devices.set_index("device_id")

    # Series: (device, owner, kind) → per field sorted (time, value) lists.
    series: dict[tuple, dict[str, list]] = {}
    for row in df.itertuples(index=False):
        kind = str(row.kind)
        if kind not in KINDS:
            continue
        owner = str(row.building) if kind == "outdoor" else str(row.room)
        if (kind == "outdoor" and owner not in buildings) or (kind != "outdoor" and owner not in room_ids):
            continue
        s = series.setdefault((str(row.device), owner, kind), {f: [] for f in FIELDS})
        for f in FIELDS:
            v = getattr(row, f)
            if not math.isnan(v):
                s[f].append((ns(row.time), v))
    for s in series.values():
        for f in FIELDS:
            s[f].sort(key=lambda x: x[0])

    @functools.cache
    def limit(device):
        lim = p.max_age_h * 3600.0
        if device in dev.index and not pd.isna(dev.loc[device, "expected_interval_s"]):
            lim = max(lim, float(dev.loc[device, "expected_interval_s"]) * p.stale_factor)
        return int(lim * NS)

    def at(points, t, lim):
        i = bisect.bisect_right([x[0] for x in points], t) - 1
        if i < 0 or t - points[i][0] > lim:
            return math.nan
        return points[i][1]

    def mean(xs):
        xs = [x for x in xs if not math.isnan(x)]
        return sum(xs) / len(xs) if xs else math.nan

    def fmax(xs):
        xs = [x for x in xs if not math.isnan(x)]
        return max(xs) if xs else math.nan

    def values(owner, kinds, f, t):
        return [at(s[f], t, limit(d)) for (d, o, k), s in series.items() if o == owner and k in kinds and s[f]]

    out_fallback = None
    if outdoor is not None:
        pts = [(ns(i), float(v)) for i, v in outdoor.items()]
        out_fallback = sorted(pts)

    def outdoor_at(b, t):
        v = mean(values(b, ("outdoor",), "temperature_c", t))
        if math.isnan(v) and out_fallback:
            v = at(out_fallback, t, int(p.max_age_h * 3600 * NS))
        return v

    occ_lead = math.ceil(p.preheat_min / p.step_min - 1e-9)
    state = {}
    for ri, room in enumerate(room_ids):
        comfort = float(rooms["comfort_c"][ri]) if not pd.isna(rooms["comfort_c"][ri]) else p.comfort_c
        setback = float(rooms["setback_c"][ri]) if not pd.isna(rooms["setback_c"][ri]) else p.setback_c
        W = float(rooms["radiator_w"][ri]) if not pd.isna(rooms["radiator_w"][ri]) else 0.0
        trv_valve = [(d, s) for (d, o, k), s in series.items() if o == room and k == "trv" and s["valve_pct"]]
        meters_e = [(d, s) for (d, o, k), s in series.items() if o == room and k == "heat_meter" and s["energy_kwh"]]
        meters_p = [(d, s) for (d, o, k), s in series.items() if o == room and k == "heat_meter" and s["power_w"]]
        weights = []
        for d, _ in trv_valve:
            w = dev.loc[d, "radiator_w"] if "radiator_w" in dev.columns and d in dev.index else math.nan
            weights.append(float(w) if not pd.isna(w) and w > 0 else math.nan)
        if any(math.isnan(w) for w in weights):
            weights = [1.0] * len(weights)
        method = ("meter" if meters_e else "power" if meters_p else "valve" if trv_valve and W > 0 else "none")
        rows = []
        for k in range(P):
            t = grid[k]
            rs = mean(values(room, ("room_sensor",), "temperature_c", t))
            temp = rs if not math.isnan(rs) else mean(values(room, ("trv",), "temperature_c", t))
            sp = fmax(values(room, ("trv",), "setpoint_c", t))
            valves = [at(s["valve_pct"], t, limit(d)) for d, s in trv_valve]
            vmax = fmax(valves)
            known = [(v, w) for v, w in zip(valves, weights) if not math.isnan(v)]
            vmean = sum(v * w for v, w in known) / sum(w for _, w in known) if known else math.nan
            flag = fmax(values(room, ("trv",), "heating", t))
            window = fmax(values(room, ("trv", "room_sensor"), "window_open", t))
            occ_obs = fmax(values(room, ("trv", "room_sensor"), "occupied", t))
            powers = [at(s["power_w"], t, limit(d)) for d, s in meters_p]
            power = sum(powers) if powers and not any(math.isnan(x) for x in powers) else math.nan
            deltas = []
            for d, s in meters_e:
                a, b = at(s["energy_kwh"], t, limit(d)), at(s["energy_kwh"], grid[k + 1], limit(d))
                deltas.append(b - a if 0 <= b - a <= p.max_heat_w / 1000.0 * step_h else math.nan)
            meter = sum(deltas) if deltas and not any(math.isnan(x) for x in deltas) else math.nan
            heat_w = power if math.isnan(meter) else meter * 1000.0 / step_h
            energy = {"meter": meter, "power": power * step_h / 1000.0,
                      "valve": vmean / 100.0 * W * step_h / 1000.0, "none": math.nan}[method]
            rows.append(dict(temp=temp, sp=sp, vmax=vmax, flag=flag, window=window, occ_obs=occ_obs,
                             heat_w=heat_w, energy=energy, out=outdoor_at(room_bld[ri], t)))
        state[room] = (rows, comfort, setback, method)

    findings = []
    for ri, room in enumerate(room_ids):
        rows, comfort, setback, method = state[room]
        if occupancy is None:
            occ = [not (r["occ_obs"] < 0.5) for r in rows]
        else:
            occ = [bool(x) for x in occupancy[ri]]
        masks = {kind: [] for kind in list(K)[:4]}
        waste = {kind: [] for kind in list(K)[:4]}
        for k, r in enumerate(rows):
            in_occ = any(occ[k:k + occ_lead + 1])
            heating = r["vmax"] >= p.valve_open_pct or r["flag"] >= 0.5 or r["heat_w"] >= p.heating_power_w
            window = r["window"] >= 0.5
            sp, temp = r["sp"], r["temp"]
            above_setback = sp > setback + p.tolerance_c or (math.isnan(sp) and temp > setback + p.tolerance_c)
            masks[K.WINDOW_OPEN_HEATING].append(window and heating)
            masks[K.UNOCCUPIED_HEATING].append(not in_occ and heating and above_setback)
            masks[K.SETPOINT_ABOVE_COMFORT].append(in_occ and sp > comfort + p.tolerance_c)
            masks[K.CANNOT_REACH_SETPOINT].append(r["vmax"] >= p.cannot_reach_valve_pct
                                                  and sp - temp >= p.cannot_reach_gap_c and not window)

            def share(policy):
                tt = temp if not math.isnan(temp) else sp
                if math.isnan(tt) or math.isnan(r["out"]):
                    return math.nan
                if tt - r["out"] <= 0:
                    return 1.0
                return min(1.0, max(0.0, (tt - policy) / (tt - r["out"])))
            waste[K.WINDOW_OPEN_HEATING].append(r["energy"])
            waste[K.UNOCCUPIED_HEATING].append(r["energy"] * share(setback))
            waste[K.SETPOINT_ABOVE_COMFORT].append(r["energy"] * share(comfort))
            waste[K.CANNOT_REACH_SETPOINT].append(math.nan)
        gap = int(p.merge_gap_min // p.step_min)
        for kind, mask in masks.items():
            need = math.ceil((p.cannot_reach_min_h * 60 if kind == K.CANNOT_REACH_SETPOINT else p.min_duration_min)
                             / p.step_min - 1e-9)
            runs = []
            k = 0
            while k < P:
                if mask[k]:
                    e = k
                    while e < P and mask[e]:
                        e += 1
                    if runs and k - runs[-1][1] <= gap:
                        runs[-1][1] = e
                    else:
                        runs.append([k, e])
                    k = e
                else:
                    k += 1
            for a, b in runs:
                cells = [i for i in range(a, b) if mask[i]]
                if len(cells) < max(need, 1):
                    continue

                def avg(key):
                    return mean([rows[i][key] for i in cells])
                ev = dict(duration_h=(b - a) * step_h, flagged_h=len(cells) * step_h, valve_pct=avg("vmax"),
                          temperature_c=avg("temp"), setpoint_c=avg("sp"), outdoor_c=avg("out"))
                if kind == K.UNOCCUPIED_HEATING:
                    ev["setback_c"] = setback
                if kind == K.SETPOINT_ABOVE_COMFORT:
                    ev["comfort_c"] = comfort
                if kind == K.CANNOT_REACH_SETPOINT:
                    ev["gap_c"] = mean([rows[i]["sp"] - rows[i]["temp"] for i in cells])
                else:
                    ev["wasted_kwh"] = sum(w for w in (waste[kind][i] for i in cells) if not math.isnan(w))
                findings.append((room_bld[ri], room, kind, t0 + a * step, t0 + b * step,
                                 {key: v for key, v in ev.items() if not math.isnan(v)}))

    # Days.
    day_of = [pd.Timestamp(t, unit="ns", tz="UTC").tz_convert(ZONE).date() for t in grid[:P]]
    days = sorted(set(day_of))
    room_days = {}
    for ri, room in enumerate(room_ids):
        rows, _, _, method = state[room]
        for d in days:
            full = (local_midnight(d + timedelta(days=1), ZONE) - local_midnight(d, ZONE)) * NS / step
            es = [rows[k]["energy"] for k in range(P) if day_of[k] == d]
            known = [e for e in es if not math.isnan(e)]
            cov = len(known) / full
            room_days[(room, d)] = (sum(known) / cov if cov >= p.min_coverage else math.nan, cov, method)
    hdd = {}
    for b in buildings:
        first = room_bld.index(b)
        rows = state[room_ids[first]][0]
        for d in days:
            full = (local_midnight(d + timedelta(days=1), ZONE) - local_midnight(d, ZONE)) * NS / step
            outs = [rows[k]["out"] for k in range(P) if day_of[k] == d and not math.isnan(rows[k]["out"])]
            hdd[(b, d)] = (max(0.0, p.hdd_base_c - (min(outs) + max(outs)) / 2) if len(outs) / full >= p.min_coverage
                           else math.nan)
    b_energy = {}
    for b in buildings:
        counted = [r for r, rb in zip(room_ids, room_bld) if rb == b and state[r][3] != "none"]
        for d in days:
            es = [room_days[(r, d)][0] for r in counted]
            b_energy[(b, d)] = (sum(es) if counted and not any(math.isnan(e) for e in es) else math.nan, len(counted))
    return findings, room_days, hdd, b_energy, days


def ref_trend(e: list[float], h: list[float], p: HeatingParams):
    """The trend rule on one row of daily values, plainly."""
    W = len(e) // 7
    if W < 2:
        return False, math.nan, math.nan
    e, h = e[len(e) - 7 * W:], h[len(h) - 7 * W:]
    rates, oks, kwh = [], [], math.nan
    for w in range(W):
        use = [(x, y) for x, y in zip(e[7 * w:7 * w + 7], h[7 * w:7 * w + 7]) if not (math.isnan(x) or math.isnan(y))]
        es, hs = sum(x for x, _ in use), sum(y for _, y in use)
        ok = len(use) >= math.ceil(p.min_coverage * 7 - 1e-9) and hs >= max(p.trend_min_hdd, 1e-9)
        oks.append(ok)
        rates.append(es / hs if ok else math.nan)
        if w == W - 1 and ok:
            kwh = es * 7 / len(use)
    prev = [r for r, ok in zip(rates[:-1], oks[:-1]) if ok]
    ref = sum(prev) / len(prev) if prev else math.nan
    flag = oks[-1] and len(prev) >= p.trend_min_weeks and rates[-1] > p.trend_factor * ref and kwh >= p.trend_min_kwh
    return flag, rates[-1], ref


def compare(result, ref):
    findings, room_days, hdd, b_energy, days = ref
    got = [(f.building, f.room, f.kind, ns(f.start), ns(f.end), f.evidence) for f in result.findings
           if f.kind != K.ENERGY_TREND]
    assert [g[:5] for g in got] == sorted([f[:5] for f in findings],
                                          key=lambda f: (f[0], f[1], list(K).index(f[2]), f[3]))
    by_key = {f[:5]: f[5] for f in findings}
    for g in got:
        want = by_key[g[:5]]
        assert set(g[5]) == set(want), g
        for key, v in want.items():
            assert g[5][key] == pytest.approx(v, abs=0.0011 if key.endswith(("_kwh", "_h")) else 0.011), (g, key)
    assert len(result.room_days) == len(room_days)
    for rd in result.room_days:
        energy, cov, method = room_days[(rd.room, rd.day)]
        assert rd.method == method
        assert rd.coverage == pytest.approx(cov)
        assert rd.energy_kwh == pytest.approx(energy, rel=1e-9, nan_ok=True)
        assert rd.hdd == pytest.approx(hdd[(rd.building, rd.day)], nan_ok=True)
    for bd in result.building_days:
        energy, n = b_energy[(bd.building, bd.day)]
        assert bd.rooms == n
        assert bd.energy_kwh == pytest.approx(energy, rel=1e-9, nan_ok=True)


# --- random buildings ------------------------------------------------------------------------

def random_case(seed: int):
    rng = np.random.default_rng(seed)
    p = HeatingParams(step_min=int(rng.choice([15, 30, 60])), max_age_h=float(rng.choice([1.0, 3.0])),
                      preheat_min=float(rng.choice([0, 45, 60, 120])), merge_gap_min=float(rng.choice([0, 15, 60])),
                      min_duration_min=float(rng.choice([15, 30, 90])), cannot_reach_min_h=float(rng.choice([1, 3])))
    start_day = [date(2026, 1, 5), date(2026, 3, 27), date(2026, 10, 23)][seed % 3]
    n_days = 3
    start = local(start_day)
    end = local(start_day + timedelta(days=n_days))
    t0, t1 = ns(start), ns(end)
    buildings = ["b-a", "b-b"]
    rooms, devices, rows = [], [], []
    for i in range(5):
        b = buildings[i % 2]
        rooms.append(dict(room_id=f"r{i}", building_id=b, comfort_c=float(rng.choice([19, 20])),
                          setback_c=16.0 if rng.random() < 0.8 else np.nan, area_m2=20.0,
                          radiator_w=float(rng.choice([0, 1000, 2000]))))
        kinds = ["trv"] * int(rng.integers(0, 3)) + ["room_sensor"] * int(rng.integers(0, 2)) \
            + ["heat_meter"] * int(rng.random() < 0.3)
        for j, kind in enumerate(kinds):
            devices.append(dict(device_id=f"d{i}-{j}", kind=kind, room_id=f"r{i}", building_id=b,
                                expected_interval_s=float(rng.choice([600, 3600, 7200]))))
    for b in buildings:
        if rng.random() < 0.6:
            devices.append(dict(device_id=f"out-{b}", kind="outdoor", room_id="r0", building_id=b,
                                expected_interval_s=1800.0))
    if rng.random() < 0.5:
        for d in devices:
            d["radiator_w"] = float(rng.choice([np.nan, 800, 1500]))
    room_of = {r["room_id"]: r["building_id"] for r in rooms}

    def piecewise(choices, n_switch):
        at = np.sort(rng.integers(t0 - 6 * 3600 * NS, t1, n_switch))
        vals = rng.choice(choices, n_switch + 1)
        return lambda t: vals[np.searchsorted(at, t, side="right")]

    for d in devices:
        kind = d["kind"]
        mean_gap = float(rng.choice([10, 40, 120])) * 60 * NS
        n = int((t1 - t0 + 6 * 3600 * NS) / mean_gap) + 1
        times = np.sort(rng.integers(t0 - 6 * 3600 * NS, t1 + 3600 * NS, n))
        # Some reports exactly on slot instants; a long silence now and then.
        on_grid = rng.random(n) < 0.2
        times[on_grid] = times[on_grid] - (times[on_grid] - t0) % (p.step_min * 60 * NS)
        if rng.random() < 0.4:
            a = rng.integers(t0, t1)
            times = times[(times < a) | (times > a + 5 * 3600 * NS)]
        sp = piecewise([16.0, 19.0, 20.0, 21.0, 22.5], 8)
        valve = piecewise([0.0, 5.0, 30.0, 85.0, 100.0], 12)
        temp = piecewise([15.0, 16.5, 18.0, 19.5, 21.0], 10)
        window = piecewise([0.0, 0.0, 0.0, 1.0], 6)
        occ = piecewise([0.0, 1.0], 8)
        power = piecewise([0.0, 40.0, 900.0], 6)
        energy = 100.0
        for t in np.sort(times):
            row = dict(time=pd.Timestamp(int(t), unit="ns", tz="UTC"), device=d["device_id"],
                       room=d["room_id"], building=d["building_id"] if kind == "outdoor" else room_of[d["room_id"]],
                       kind=kind)
            pick = lambda: rng.random() < 0.75  # noqa: E731 - each field reported or not
            if kind == "trv":
                if pick(): row["temperature_c"] = temp(t)
                if pick(): row["setpoint_c"] = sp(t)
                if pick(): row["valve_pct"] = valve(t)
                if pick(): row["window_open"] = window(t)
                if rng.random() < 0.3: row["heating"] = float(valve(t) > 0)
            elif kind == "room_sensor":
                if pick(): row["temperature_c"] = temp(t) + 0.5
                if pick(): row["occupied"] = occ(t)
                if rng.random() < 0.2: row["window_open"] = window(t)
            elif kind == "heat_meter":
                energy = 0.0 if rng.random() < 0.01 else energy + rng.uniform(0, 0.5)
                if pick(): row["energy_kwh"] = energy
                if pick(): row["power_w"] = power(t)
            else:
                row["temperature_c"] = float(rng.uniform(-5, 20))
            rows.append(row)
    # Rows the pass must skip: an unknown room, an unknown kind.
    rows.append(dict(time=start, device="stray", room="r-unknown", building="b-a", kind="trv", valve_pct=100.0))
    rows.append(dict(time=start, device="odd", room="r0", building="b-a", kind="boiler", valve_pct=100.0))
    df = frame(rows)
    lay = layout(rooms, devices)
    P = (t1 - t0) // (p.step_min * 60 * NS)
    occupancy = None
    if seed % 4:
        occupancy = np.zeros((5, P + 8), dtype=bool)
        for i in range(5):
            for _ in range(3):
                a = int(rng.integers(0, P))
                occupancy[i, a:a + int(rng.integers(2, 40))] = True
    outdoor = None
    if rng.random() < 0.6:
        idx = pd.date_range(start - timedelta(hours=2), end, freq="h").tz_convert("UTC")
        outdoor = pd.Series(rng.uniform(-3, 12, len(idx)), index=idx)
    return df, lay, occupancy, outdoor, start, end, p


@pytest.mark.parametrize("seed", range(24))
def test_vectorized_pass_agrees_with_the_per_room_reference(seed):
    df, lay, occupancy, outdoor, start, end, p = random_case(seed)
    result = analyse_heating(df, lay, occupancy, outdoor, start=start, end=end, tz=TZ, params=p)
    assert result.skipped_rows == 2
    compare(result, reference(df, lay, occupancy, outdoor, start, end, p))


def test_the_random_cases_exercise_every_rule():
    seen = set()
    for seed in range(24):
        df, lay, occupancy, outdoor, start, end, p = random_case(seed)
        seen |= {f.kind for f in analyse_heating(df, lay, occupancy, outdoor, start=start, end=end, tz=TZ,
                                                 params=p).findings}
    assert seen >= set(list(K)[:4])


@pytest.mark.parametrize("seed", range(30))
def test_energy_trend_agrees_with_the_plain_rule(seed):
    rng = np.random.default_rng(seed)
    X, D = 12, int(rng.integers(10, 40))
    e = rng.uniform(0, 40, (X, D)) * np.where(np.arange(D) >= D - 7, rng.uniform(0.8, 2.0, (X, 1)), 1.0)
    h = rng.uniform(0, 12, (X, D))
    e[rng.random((X, D)) < 0.1] = np.nan
    h[rng.random((X, D)) < 0.05] = np.nan
    p = HeatingParams(trend_min_weeks=int(rng.integers(1, 3)), trend_factor=float(rng.uniform(1.0, 1.5)))
    flag, cur, ref, *_ = energy_trend(e, h, p)
    for i in range(X):
        want = ref_trend(list(e[i]), list(h[i]), p)
        assert (bool(flag[i]), cur[i], ref[i]) == pytest.approx(want, nan_ok=True)


# --- targeted cases ----------------------------------------------------------------------------

DAY = date(2026, 1, 13)   # a Tuesday
ROOM = dict(room_id="r1", building_id="b1", comfort_c=20.0, setback_c=16.0, area_m2=30.0, radiator_w=2000.0)
TRV = dict(device_id="trv1", kind="trv", room_id="r1", building_id="b1", expected_interval_s=1800.0)
OUT = dict(device_id="out1", kind="outdoor", room_id="r1", building_id="b1", expected_interval_s=1800.0)


def trv_rows(points, device="trv1", room="r1", kind="trv", building="b1"):
    """points: (local 'HH:MM' on DAY or an aware datetime, field values)."""
    return [dict(time=local(DAY, t) if isinstance(t, str) else t, device=device, room=room, building=building,
                 kind=kind, **v) for t, v in points]


def steady(temp=19.0, sp=19.0, valve=30.0, window=0.0):
    return dict(temperature_c=temp, setpoint_c=sp, valve_pct=valve, window_open=window)


def every(step_min: int, first: str, last: str, values, day=DAY):
    a, b = local(day, first), local(day, last)
    out, t = [], a
    while t <= b:
        out.append((t, values(t) if callable(values) else values))
        t += timedelta(minutes=step_min)
    return out


def occupancy_of(start, end, windows, p=HeatingParams(), rooms=1):
    """rooms × slots occupancy from local (start, end) 'HH:MM' windows on DAY."""
    P = int((end - start).total_seconds() // (p.step_min * 60))
    times = [start + timedelta(minutes=p.step_min * k) for k in range(P)]
    occ = np.array([[any(local(DAY, a) <= t < local(DAY, b) for a, b in windows) for t in times]] * rooms)
    return occ


def run(rows, rooms=(ROOM,), devices=(TRV, OUT), occupancy="day", outdoor=None, p=HeatingParams(),
        start=None, end=None):
    start = start or local(DAY)
    end = end or local(DAY + timedelta(days=1))
    lay = layout(list(rooms), list(devices))
    if isinstance(occupancy, str):
        occupancy = occupancy_of(start, end, [("08:00", "18:00")], p, len(rooms))
    return analyse_heating(frame(rows), lay, occupancy, outdoor, start=start, end=end, tz=TZ, params=p)


def outdoor_rows(temp=5.0, day=DAY):
    return trv_rows(every(30, "00:00", "23:30", dict(temperature_c=temp), day), device="out1", kind="outdoor")


def kinds(result):
    return [(f.room, f.kind, f.start.astimezone(ZONE).strftime("%H:%M"), f.end.astimezone(ZONE).strftime("%H:%M"))
            for f in result.findings]


def test_window_open_while_heating():
    rows = trv_rows(every(15, "00:00", "23:45", lambda t: steady(
        valve=60.0, window=1.0 if local(DAY, "10:00") <= t < local(DAY, "11:00") else 0.0))) + outdoor_rows()
    res = run(rows)
    [f] = [f for f in res.findings if f.kind == K.WINDOW_OPEN_HEATING]
    assert (f.start, f.end) == (local(DAY, "10:00"), local(DAY, "11:00"))
    assert f.evidence["valve_pct"] == 60.0
    assert f.evidence["wasted_kwh"] == pytest.approx(0.6 * 2.0 * 1.0)   # 60 % of 2 kW for 1 h
    assert f.evidence["duration_h"] == 1.0


def test_a_short_airing_is_not_a_finding():
    rows = trv_rows(every(15, "00:00", "23:45", lambda t: steady(
        valve=60.0, window=1.0 if t == local(DAY, "10:00") else 0.0)))
    assert not [f for f in run(rows).findings if f.kind == K.WINDOW_OPEN_HEATING]


def test_window_open_with_the_valve_closed_is_not_heating():
    rows = trv_rows(every(15, "00:00", "23:45", steady(valve=0.0, window=1.0)))
    assert not [f for f in run(rows).findings if f.kind == K.WINDOW_OPEN_HEATING]


def test_heating_an_unoccupied_room_with_a_preheat_lead():
    # Comfort setpoint all day long; occupied 08:00–18:00; pre-heat lead 60 min.
    rows = trv_rows(every(15, "00:00", "23:45", steady(temp=19.5, sp=19.5, valve=40.0))) + outdoor_rows(5.0)
    res = run(rows)
    unocc = [(a, b) for room, k, a, b in kinds(res) if k == K.UNOCCUPIED_HEATING]
    assert unocc == [("00:00", "07:00"), ("18:00", "00:00")]   # 07:00–08:00 is the pre-heat lead
    f = [f for f in res.findings if f.kind == K.UNOCCUPIED_HEATING][0]
    # 40 % of 2 kW for 7 h, share above set-back (19.5 − 16) / (19.5 − 5)
    assert f.evidence["wasted_kwh"] == pytest.approx(0.4 * 2.0 * 7 * 3.5 / 14.5, abs=1e-3)
    assert f.evidence["setback_c"] == 16.0
    no_lead = run(rows, p=HeatingParams(preheat_min=0))
    assert [(a, b) for room, k, a, b in kinds(no_lead) if k == K.UNOCCUPIED_HEATING][0] == ("00:00", "08:00")


def test_setback_setpoint_when_unoccupied_is_fine():
    def values(t):
        busy = local(DAY, "07:00") <= t < local(DAY, "18:00")
        return steady(temp=20.0 if busy else 16.0, sp=20.0 if busy else 16.0, valve=30.0)
    rows = trv_rows(every(15, "00:00", "23:45", values))
    assert run(rows).findings == []


def test_unoccupied_without_setpoint_uses_the_temperature():
    rows = trv_rows(every(15, "00:00", "23:45", dict(temperature_c=19.0, valve_pct=50.0)))
    res = run(rows)
    assert [(a, b) for _, k, a, b in kinds(res) if k == K.UNOCCUPIED_HEATING] == [("00:00", "07:00"),
                                                                                  ("18:00", "00:00")]
    cold = trv_rows(every(15, "00:00", "23:45", dict(temperature_c=16.4, valve_pct=50.0)))
    assert run(cold).findings == []


def test_setpoint_above_comfort_while_occupied():
    def values(t):
        return steady(temp=21.0, sp=22.0 if local(DAY, "09:00") <= t < local(DAY, "12:00") else 20.5)
    rows = trv_rows(every(15, "00:00", "23:45", values)) + outdoor_rows(6.0)
    res = run(rows, occupancy=occupancy_of(local(DAY), local(DAY + timedelta(days=1)), [("00:00", "23:59")]))
    [f] = res.findings   # 20.5 is within the 0.5 °C tolerance
    assert (f.kind, f.start, f.end) == (K.SETPOINT_ABOVE_COMFORT, local(DAY, "09:00"), local(DAY, "12:00"))
    assert f.evidence["setpoint_c"] == 22.0 and f.evidence["comfort_c"] == 20.0
    assert f.evidence["wasted_kwh"] == pytest.approx(0.3 * 2.0 * 3 * 1.0 / 15.0, abs=1e-3)


def test_radiator_that_cannot_reach_its_setpoint():
    def values(t):
        stuck = local(DAY, "06:00") <= t < local(DAY, "10:00")
        return steady(temp=17.0 if stuck else 19.0, sp=20.0 if stuck else 19.0, valve=100.0 if stuck else 20.0)
    res = run(trv_rows(every(15, "00:00", "23:45", values)),
              occupancy=occupancy_of(local(DAY), local(DAY + timedelta(days=1)), [("00:00", "23:59")]))
    [f] = res.findings
    assert (f.kind, f.start, f.end) == (K.CANNOT_REACH_SETPOINT, local(DAY, "06:00"), local(DAY, "10:00"))
    assert f.evidence["gap_c"] == 3.0 and f.evidence["valve_pct"] == 100.0
    # Two hours is a pre-heat, not a fault; an open window explains the cold.
    short = run(trv_rows(every(15, "00:00", "23:45", lambda t: values(t) if t < local(DAY, "08:00") else
                               steady(temp=19.0, sp=19.0, valve=20.0))), occupancy=None)
    assert not [f for f in short.findings if f.kind == K.CANNOT_REACH_SETPOINT]
    aired = run(trv_rows(every(15, "00:00", "23:45", lambda t: {**values(t), "window_open": 1.0})), occupancy=None)
    assert not [f for f in aired.findings if f.kind == K.CANNOT_REACH_SETPOINT]


def test_stale_data_ends_a_run_and_gaps_are_unknown():
    # The TRV reports until 10:00 then falls silent: its state counts for max_age_h (3 h), then unknown.
    rows = trv_rows(every(15, "00:00", "10:00", steady(temp=17.0, sp=21.0, valve=100.0)))
    res = run(rows, occupancy=occupancy_of(local(DAY), local(DAY + timedelta(days=1)), [("00:00", "23:59")]))
    [f] = [f for f in res.findings if f.kind == K.CANNOT_REACH_SETPOINT]
    assert (f.start, f.end) == (local(DAY), local(DAY, "13:15"))   # 10:00 + 3 h, the 13:00 slot included
    assert res.grid.method.tolist() == ["valve"]
    [day] = res.room_days
    assert day.coverage == pytest.approx(53 / 96) and np.isnan(day.energy_kwh)
    # A device whose expected interval is long keeps its value longer (stale_factor × interval).
    slow = run(rows, devices=({**TRV, "expected_interval_s": 6 * 3600.0},),
               occupancy=occupancy_of(local(DAY), local(DAY + timedelta(days=1)), [("00:00", "23:59")]))
    [f] = [f for f in slow.findings if f.kind == K.CANNOT_REACH_SETPOINT]
    assert f.end == local(DAY + timedelta(days=1))


def test_state_before_the_window_is_carried_in():
    rows = trv_rows([(local(DAY) - timedelta(minutes=50), steady(valve=50.0))])
    res = run(rows)
    assert res.grid.valve_max_pct[0, 0] == 50.0
    assert np.isnan(res.grid.valve_max_pct[0, 9])  # 50 min before start + 3 h < 02:15


def test_merge_of_runs_across_a_short_gap():
    def values(t):
        hole = t == local(DAY, "10:30")
        return steady(valve=60.0, window=0.0 if hole else 1.0) if local(DAY, "10:00") <= t < local(DAY, "11:30") \
            else steady(valve=60.0)
    res = run(trv_rows(every(15, "00:00", "23:45", values)))
    [f] = [f for f in res.findings if f.kind == K.WINDOW_OPEN_HEATING]
    assert (f.start, f.end) == (local(DAY, "10:00"), local(DAY, "11:30"))
    assert f.evidence["flagged_h"] == 1.25 and f.evidence["duration_h"] == 1.5
    split = run(trv_rows(every(15, "00:00", "23:45", values)), p=HeatingParams(merge_gap_min=0))
    assert len([f for f in split.findings if f.kind == K.WINDOW_OPEN_HEATING]) == 2


@pytest.mark.parametrize("day,hours", [(date(2026, 3, 29), 23), (date(2026, 10, 25), 25)])
def test_dst_days_have_their_own_length(day, hours):
    rows = trv_rows(every(15, "00:00", "23:45", steady(valve=50.0), day=day))
    rows += trv_rows(every(30, "00:00", "23:30", dict(temperature_c=8.0), day=day), device="out1", kind="outdoor")
    start, end = local(day), local(day + timedelta(days=1))
    res = run(rows, occupancy=None, start=start, end=end)
    [rd] = res.room_days
    assert rd.day == day and rd.coverage == 1.0
    assert rd.energy_kwh == pytest.approx(0.5 * 2.0 * hours)
    assert rd.hdd == 10.0 and rd.kwh_per_hdd == pytest.approx(rd.energy_kwh / 10.0)
    assert res.grid.times.size == hours * 4


def test_room_without_devices_and_room_with_only_a_heat_meter():
    rooms = (ROOM, dict(ROOM, room_id="r-empty"), dict(ROOM, room_id="r-meter", radiator_w=np.nan))
    meter = dict(device_id="hm1", kind="heat_meter", room_id="r-meter", building_id="b1", expected_interval_s=900.0)
    reg = lambda t: dict(energy_kwh=500.0 + (t - local(DAY)).total_seconds() / 3600.0 * 1.2)  # noqa: E731 - 1.2 kW
    rows = trv_rows(every(15, "00:00", "23:45", steady(valve=25.0)))
    rows += trv_rows(every(15, "00:00", "23:45", reg) + [(local(DAY + timedelta(days=1)), reg(
        local(DAY + timedelta(days=1))))], device="hm1", room="r-meter", kind="heat_meter")
    rows += outdoor_rows(3.0)
    res = run(rows, rooms=rooms, devices=(TRV, OUT, meter))
    by_room = {rd.room: rd for rd in res.room_days}
    assert by_room["r-empty"].method == "none" and np.isnan(by_room["r-empty"].energy_kwh)
    assert by_room["r-empty"].coverage == 0 and by_room["r-empty"].kwh_per_hdd is None
    assert by_room["r-meter"].method == "meter"
    assert by_room["r-meter"].energy_kwh == pytest.approx(1.2 * 24)
    assert by_room["r1"].energy_kwh == pytest.approx(0.25 * 2.0 * 24)
    assert not [f for f in res.findings if f.room in ("r-empty", "r-meter")]   # no temperature: nothing to judge
    [bd] = res.building_days
    assert bd.rooms == 2 and bd.energy_kwh == pytest.approx(1.2 * 24 + 12.0) and bd.hdd == 15.0
    # A register glitch (a drop to 0 and back) makes its two slots unknown, not negative or huge.
    rows2 = [r for r in rows if not (r["device"] == "hm1" and r["time"] == local(DAY, "12:00"))]
    rows2 += trv_rows([("12:00", dict(energy_kwh=0.0))], device="hm1", room="r-meter", kind="heat_meter")
    res2 = run(rows2, rooms=rooms, devices=(TRV, OUT, meter))
    rd = {rd.room: rd for rd in res2.room_days}["r-meter"]
    assert rd.coverage == pytest.approx(94 / 96)


def test_room_sensor_temperature_is_preferred_to_the_trvs():
    sensor = dict(device_id="rs1", kind="room_sensor", room_id="r1", building_id="b1", expected_interval_s=600.0)
    rows = trv_rows(every(15, "00:00", "23:45", steady(temp=22.0, sp=19.0, valve=0.0)))
    rows += trv_rows(every(15, "00:00", "11:45", dict(temperature_c=18.0)), device="rs1", kind="room_sensor")
    res = run(rows, devices=(TRV, sensor))
    temp = res.grid.temperature_c[0]
    assert temp[0] == 18.0 and temp[47] == 18.0
    assert temp[48 + 4] == 18.0            # carried 30 min × 3 past its last report…
    assert temp[-1] == 22.0                # …then the TRV's
    # Two TRVs: mean temperature, highest valve and setpoint.
    trv2 = dict(TRV, device_id="trv2")
    rows = trv_rows(every(15, "00:00", "23:45", steady(temp=18.0, sp=19.0, valve=10.0)))
    rows += trv_rows(every(15, "00:00", "23:45", steady(temp=20.0, sp=21.0, valve=90.0)), device="trv2")
    g = run(rows, devices=(TRV, trv2)).grid
    assert (g.temperature_c[0, 0], g.setpoint_c[0, 0], g.valve_max_pct[0, 0], g.valve_mean_pct[0, 0]) == \
        (19.0, 21.0, 90.0, 50.0)
    weighted = run(rows, devices=(dict(TRV, radiator_w=500.0), dict(trv2, radiator_w=1500.0))).grid
    assert weighted.valve_mean_pct[0, 0] == pytest.approx((10 * 500 + 90 * 1500) / 2000)


def test_degree_days_follow_the_french_min_max_convention_and_the_configured_series():
    def temp(t):
        return dict(temperature_c=4.0 if t.astimezone(ZONE).hour < 12 else 14.0)
    rows = trv_rows(every(15, "00:00", "23:45", steady(valve=20.0)))
    rows += trv_rows(every(30, "00:00", "23:30", temp), device="out1", kind="outdoor")
    [rd] = run(rows).room_days
    assert rd.hdd == pytest.approx(18 - (4 + 14) / 2)
    # No outdoor device: the configured series; both missing: unknown.
    series = pd.Series([2.0] * 25, index=pd.date_range(local(DAY), periods=25, freq="h").tz_convert("UTC"))
    [rd] = run(trv_rows(every(15, "00:00", "23:45", steady())), devices=(TRV,), outdoor=series).room_days
    assert rd.hdd == 16.0
    [rd] = run(trv_rows(every(15, "00:00", "23:45", steady())), devices=(TRV,)).room_days
    assert np.isnan(rd.hdd) and rd.kwh_per_hdd is None
    warm = [r for r in rows if r["kind"] != "outdoor"] + outdoor_rows(21.0)
    [rd] = run(warm).room_days
    assert rd.hdd == 0.0 and rd.kwh_per_hdd is None


def test_energy_trend_against_previous_weeks():
    first = date(2026, 1, 5)
    days = 28
    rooms = (ROOM, dict(ROOM, room_id="r2"))
    trv2 = dict(TRV, device_id="trv2", room_id="r2")

    def valve(t):
        last_week = t >= local(first + timedelta(days=21))
        return steady(valve=60.0 if last_week else 30.0)
    rows = trv_rows([r for d in range(days) for r in every(60, "00:00", "23:00", valve, first + timedelta(days=d))])
    rows += trv_rows([r for d in range(days) for r in every(60, "00:00", "23:00", steady(valve=30.0),
                                                           first + timedelta(days=d))], device="trv2", room="r2")
    rows += trv_rows([r for d in range(days) for r in every(60, "00:00", "23:00", dict(temperature_c=6.0),
                                                           first + timedelta(days=d))], device="out1", kind="outdoor")
    start, end = local(first), local(first + timedelta(days=days))
    res = run(rows, rooms=rooms, devices=(TRV, trv2, OUT), occupancy=None, start=start, end=end)
    trend = [f for f in res.findings if f.kind == K.ENERGY_TREND]
    assert [(f.building, f.room) for f in trend] == [("b1", ""), ("b1", "r1")]
    room_f = trend[1]
    assert room_f.evidence["ratio"] == pytest.approx(2.0)
    assert room_f.evidence["kwh_per_hdd"] == pytest.approx(0.6 * 2.0 * 24 / 12)
    assert room_f.evidence["weeks"] == 3.0
    assert (room_f.start, room_f.end) == (local(first + timedelta(days=21)), end)
    assert trend[0].evidence["ratio"] == pytest.approx(1.5)
    # One previous week is not enough history.
    short = run(rows, rooms=rooms, devices=(TRV, trv2, OUT), occupancy=None,
                start=local(first + timedelta(days=14)), end=end)
    assert not [f for f in short.findings if f.kind == K.ENERGY_TREND]


def test_observed_occupancy_and_occupancy_beyond_the_window():
    sensor = dict(device_id="rs1", kind="room_sensor", room_id="r1", building_id="b1", expected_interval_s=600.0)
    rows = trv_rows(every(15, "00:00", "23:45", steady(temp=20.0, sp=20.0, valve=40.0)))
    rows += trv_rows(every(15, "00:00", "23:45", lambda t: dict(
        occupied=1.0 if local(DAY, "09:00") <= t < local(DAY, "17:00") else 0.0)), device="rs1", kind="room_sensor")
    res = run(rows, devices=(TRV, sensor), occupancy=None)
    assert [(a, b) for _, k, a, b in kinds(res) if k == K.UNOCCUPIED_HEATING] == [("00:00", "08:00"),
                                                                                  ("17:00", "00:00")]
    # The lead looks into the occupancy columns after the window: occupied from 00:00 the next day.
    p = HeatingParams()
    occ = np.zeros((1, 96 + 8), dtype=bool)
    occ[0, 96:] = True
    late = run(trv_rows(every(15, "00:00", "23:45", steady(temp=20.0, sp=20.0, valve=40.0))), occupancy=occ, p=p)
    assert [(a, b) for _, k, a, b in kinds(late) if k == K.UNOCCUPIED_HEATING] == [("00:00", "23:00")]


def test_bad_inputs_are_refused_with_a_clear_error():
    rows = trv_rows(every(15, "00:00", "01:00", steady()))
    with pytest.raises(ValueError, match="lacks column"):
        analyse_heating(frame(rows).drop(columns=["kind"]), layout([ROOM], [TRV]), None, None,
                        start=local(DAY), end=local(DAY, "02:00"), tz=TZ)
    with pytest.raises(ValueError, match="occupancy has shape"):
        run(rows, occupancy=np.zeros((2, 3), dtype=bool))
    with pytest.raises(ValueError, match="multiple of 15 min"):
        run(rows, start=local(DAY, "00:00") + timedelta(minutes=7))
    with pytest.raises(ValueError, match="timezone-aware"):
        analyse_heating(frame(rows), layout([ROOM], [TRV]), None, None, start=datetime(2026, 1, 13),
                        end=local(DAY, "02:00"), tz=TZ)
    with pytest.raises(ValueError, match="step_min"):
        HeatingParams(step_min=7)


def test_parameters_come_from_the_settings():
    s = Settings(heating_preheat_min=90, heating_comfort_c=20.0, heating_cannot_reach_min_h=4.0)
    p = HeatingParams.from_settings(s)
    assert (p.preheat_min, p.comfort_c, p.cannot_reach_min_h, p.step_min) == (90, 20.0, 4.0, 15)


def test_outdoor_csv(tmp_path):
    good = tmp_path / "out.csv"
    good.write_text("time,temperature_c\n2026-01-13T02:00:00+01:00,3.5\n2026-01-13T00:00:00Z,4.0\n")
    s = load_outdoor_csv(good)
    assert s.index.tz is not None and list(s) == [4.0, 3.5]
    bad = tmp_path / "bad.csv"
    bad.write_text("time,temperature_c\n2026-01-13T00:00:00Z,4.0\n2026-01-13T01:00:00Z,warm\n")
    with pytest.raises(ValueError, match="line 3"):
        load_outdoor_csv(bad)
    with pytest.raises(ValueError, match="missing column"):
        (tmp_path / "cols.csv").write_text("when,t\n")
        load_outdoor_csv(tmp_path / "cols.csv")
