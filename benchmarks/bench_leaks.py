"""J+1 leak check at fleet scale: compute cost against two baselines, then read + compute end to end.

    python benchmarks/bench_leaks.py [--meters 100000 --hours 48] [--loop-meters 2000] [--no-influx] [--markdown]

Synthetic fleet: ``--meters`` meters × ``--hours`` hourly indices centred on one local day
(households with zero-use night hours, 5 % with a 2–20 L/h leak, a few bursts and meter flags).

Compute (same readings, best of ``--repeat``):
  (a) ``detect_leaks`` — the four rules, ids, sort check, dedup, DST-aware day, from the frame
      ``read_indices`` returns (sorted by meter; ``alarms`` column); no history, so
      abnormal_consumption is ``insufficient_data`` for every meter;
  (a') the same readings in InfluxDB's own order (by time), as ``read_window`` returns them: ids
      hashed and rows sorted;
  (a") (a) with 27 days of past daily volumes, as ``read_history`` returns them, so that
      abnormal_consumption is evaluated;
  (b) a per-meter pandas loop (``groupby`` then diff and min per meter, the continuous-flow rule
      only), timed on ``--loop-meters`` meters and extrapolated linearly to the fleet;
  (c) bare numpy computing what a continuous_flow result holds (status, minimum flow, day
      volume, coverage, night flow; an interval valid when its flow is in [0, max]) on the same
      values already laid out as a meters × hours array: the arithmetic floor, without ids,
      sorting, jitter/rollover handling or per-meter bookkeeping;
  (c') bare numpy computing the four rules on that array plus a meters × days history array and a
      meters × hours flag array: the floor to hold (a") against.

The issue's target, "(a) within 2× of (c)", compares the four rules with one rule's arithmetic;
(a") / (c') is the like-for-like ratio, and both are printed.

End to end (skipped with ``--no-influx``): the rows, and 27 days of stored continuous_flow
results as history (``--no-history`` to skip), are written to InfluxDB (``VIGIE_INFLUX_URL`` if
set, a throw-away database there, dropped at the end; otherwise a private influxd started with
tests/services.py in a temporary directory). Then ``run_leak_check`` is timed phase by phase
beside a raw read of ``read_indices``' SELECT (chunked CSV over HTTP into bytes, no parsing), a
bare ``pandas.read_csv`` of those bytes, and ``read_indices`` itself.

A full run (100 000 meters) takes about 5 minutes on 2 cores, most of it writing the data.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import tempfile
import uuid
from datetime import date, timedelta
from pathlib import Path
from time import perf_counter
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from vigie.analytics.intervals import local_midnight
from vigie.analytics.job import READ_SLICES, read_history, read_window, run_leak_check
from vigie.analytics.leaks import WARSMANN_FACTOR, LeakParams, detect_leaks, to_check_results
from vigie.config import Settings
from vigie.records import LeakRule
from vigie.store import InfluxStore
from vigie.store.water import READING, check_line, read_indices, write_checks

TZ = ZoneInfo("Europe/Paris")
DAY = date(2026, 6, 10)


def make_fleet(meters: int, hours: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """(readings frame as read_indices returns it, meters × readings index array (m³), times)."""
    rng = np.random.default_rng(seed)
    t = local_midnight(DAY, TZ) - (hours - 24) // 2 * 3600 + 3600 * np.arange(hours + 1, dtype=np.int64)
    local_h = pd.to_datetime(t[:-1], unit="s", utc=True).tz_convert(TZ).hour.to_numpy()
    p_use = np.where((local_h >= 7) & (local_h < 23), 0.6, 0.08)
    use = rng.exponential(25.0, (meters, hours)) * (rng.random((meters, hours)) < p_use)
    leak = rng.random(meters) < 0.05
    use += np.where(leak, rng.uniform(2, 20, meters), 0.0)[:, None]
    burst = rng.random(meters) < 0.002
    use[burst, hours // 2] += 800.0
    litres = np.concatenate([np.zeros((meters, 1)), np.cumsum(use, axis=1)], axis=1)
    index = np.round(rng.uniform(10, 5000, meters)[:, None] + litres / 1000.0, 3)  # 1 L resolution
    ids = np.array([f"{i:08x}" for i in range(meters)], dtype=object)
    alarms = np.full(index.size, "", dtype=object)
    alarms[rng.random(index.size) < 0.0005] = "LEAK"
    frame = pd.DataFrame({"meter_id": pd.Series(np.repeat(ids, hours + 1), dtype=str),
                          "time": np.tile(t, meters), "index_m3": index.ravel(),
                          "alarms": pd.Series(alarms, dtype=str)})
    return frame, index, t


def history_frame(ids: np.ndarray, days: int, seed: int = 1) -> tuple[pd.DataFrame, np.ndarray]:
    """Past daily volumes of the ``days`` days before DAY: the frame ``read_history`` returns (day
    by day, meters in order within a day), and the same values as a meters × days array (coverage 1)."""
    rng = np.random.default_rng(seed)
    vol = np.round(rng.uniform(100, 400, len(ids))[:, None] * rng.uniform(0.7, 1.3, (len(ids), days)), 1)
    day_list = np.array([DAY - timedelta(days=d) for d in range(days, 0, -1)], dtype=object)
    frame = pd.DataFrame({"meter_id": pd.Series(np.tile(ids, days), dtype=str),
                          "day": np.repeat(day_list, len(ids)), "volume_l": vol.T.ravel(),
                          "coverage": np.ones(vol.size)})
    return frame, vol


def best_of(n: int, fn) -> float:
    times = []
    for _ in range(n):
        a = perf_counter()
        fn()
        times.append(perf_counter() - a)
    return min(times)


def pandas_loop(df: pd.DataFrame, ds: int, de: int) -> pd.DataFrame:
    """Baseline (b): the continuous-flow rule meter by meter."""
    out = []
    for mid, g in df.groupby("meter_id", sort=False):
        g = g.sort_values("time")
        rate = g["index_m3"].diff() * 1000.0 / (g["time"].diff() / 3600.0)
        in_day = (g["time"] > ds) & (g["time"].shift() < de)
        r = rate[in_day]
        out.append((mid, r.min(), bool((r <= 0).any())))
    return pd.DataFrame(out, columns=["meter_id", "min_rate", "zero"])


def numpy_floor(index: np.ndarray, t: np.ndarray, ds: int, de: int, night: tuple[int, int],
                params: LeakParams) -> dict:
    """Baseline (c): a continuous_flow result (status, minimum flow, coverage, volume, night flow)
    on a dense meters × readings array, intervals valid when their flow is within [0, max]."""
    rate = np.diff(index, axis=1) * 1000.0 / (np.diff(t) / 3600.0)
    known = (rate >= 0) & (rate <= params.max_flow_l_per_h)
    s, e = t[:-1], t[1:]
    day = (e > ds) & (s < de)
    r, k = rate[:, day], known[:, day]
    overlap = (np.minimum(e, de) - np.maximum(s, ds)).clip(0).astype(np.float64)
    nov = (np.minimum(e, night[1]) - np.maximum(s, night[0])).clip(0) / 3600.0
    coverage = k @ overlap[day] / (de - ds)
    zero = ((r <= params.zero_flow_tolerance_l_per_h) & k).any(axis=1)
    return {"leak": (coverage >= params.min_coverage) & ~zero, "min": np.where(k, r, np.inf).min(axis=1),
            "coverage": coverage, "volume": np.where(known, rate, 0.0) @ (overlap / 3600.0),
            "night": rate @ nov / nov.sum()}


def numpy_floor_all(index: np.ndarray, t: np.ndarray, ds: int, de: int, night: tuple[int, int],
                    hist: np.ndarray, flags: np.ndarray, params: LeakParams) -> dict:
    """Baseline (c'): the four rules on dense arrays — (c), bursts as runs of consecutive hours
    above the threshold, the Warsmann test on a meters × days history, any flag of the day."""
    out = numpy_floor(index, t, ds, de, night, params)
    rate = np.diff(index, axis=1) * 1000.0 / (np.diff(t) / 3600.0)
    s, e = t[:-1], t[1:]
    cols = np.flatnonzero((e > ds) & (s < de))
    m, j = np.nonzero(rate[:, cols] > params.burst_flow_l_per_h)  # few: runs are found among them
    first = np.r_[True, (m[1:] != m[:-1]) | (j[1:] != j[:-1] + 1)] if len(m) else np.zeros(0, dtype=bool)
    run = np.cumsum(first) - 1
    dur = (e - s)[cols][j].astype(np.float64)
    run_s = np.bincount(run, dur)
    run_rate = np.bincount(run, rate[:, cols][m, j] * dur) / run_s
    ok = run_s >= params.burst_min_duration_min * 60.0
    burst = np.full(len(index), np.nan)
    np.fmax.at(burst, m[first][ok], run_rate[ok])
    p, k = params.abnormal_period_days, params.abnormal_history_periods
    days = np.concatenate([hist, out["volume"][:, None]], axis=1).reshape(len(index), k + 1, p)
    period = days.sum(axis=2)
    current, average = period[:, k], period[:, :k].mean(axis=1)
    abnormal = (current > WARSMANN_FACTOR * average) & (current - average > params.abnormal_min_excess_l_per_day * p)
    return {**out, "burst": burst, "abnormal": abnormal, "flag": flags[:, (t >= ds) & (t < de)].any(axis=1)}


def compute_section(args, df, index, t) -> list[tuple[str, float, str]]:
    params = LeakParams()
    ds, de = local_midnight(DAY, TZ), local_midnight(DAY + timedelta(days=1), TZ)
    night = (local_midnight(DAY, TZ) + 2 * 3600, local_midnight(DAY, TZ) + 5 * 3600)
    ta = best_of(args.repeat, lambda: detect_leaks(df, DAY, TZ, params))
    # InfluxDB's order: by time, then series key (the meter id).
    by_time = df[["meter_id", "time", "index_m3"]].iloc[
        np.arange(len(df)).reshape(index.shape).T.ravel()].reset_index(drop=True)
    alarms = df.loc[df["alarms"] != "", ["meter_id", "time", "alarms"]].reset_index(drop=True)
    ta1 = best_of(args.repeat, lambda: detect_leaks(by_time, DAY, TZ, params, alarms=alarms))
    history, hist = history_frame(df["meter_id"].unique(), params.history_days)
    ta2 = best_of(args.repeat, lambda: detect_leaks(df, DAY, TZ, params, history=history))
    n_loop = min(args.loop_meters, args.meters)
    sub = df[df["meter_id"].isin(df["meter_id"].unique()[:n_loop])]
    tb_sub = best_of(1, lambda: pandas_loop(sub, ds, de))
    tb = tb_sub * args.meters / n_loop
    tc = best_of(args.repeat, lambda: numpy_floor(index, t, ds, de, night, params))
    flags = (df["alarms"].to_numpy(dtype=object) == "LEAK").reshape(index.shape)
    tc1 = best_of(args.repeat, lambda: numpy_floor_all(index, t, ds, de, night, hist, flags, params))
    res = detect_leaks(df, DAY, TZ, params, history=history)
    tconv = best_of(1, lambda: to_check_results(res))
    counts = res[res.status == "leak"].groupby("rule").size().to_dict()
    floor = numpy_floor_all(index, t, ds, de, night, hist, flags, params)
    same = {"continuous_flow": int(floor["leak"].sum()), "burst": int((~np.isnan(floor["burst"])).sum()),
            "abnormal_consumption": int(floor["abnormal"].sum()), "meter_flag": int(floor["flag"].sum())}
    print(f"\nleaks found (with history): detect_leaks {counts}; bare numpy (c') {same}")
    extrap = "" if n_loop == args.meters else f" (timed on {n_loop} meters, ×{args.meters / n_loop:g})"
    return [("(a) detect_leaks, 4 rules", ta, "frame sorted by meter (read_indices)"),
            ("(a') detect_leaks, InfluxDB's time order", ta1, f"{ta1 / ta:.1f}× (a): ids hashed, rows sorted"),
            ('(a") detect_leaks with 27 days of history', ta2, f"{len(history):,} history rows"),
            ("(b) per-meter pandas loop, continuous flow only", tb, f"{tb / ta:,.0f}× (a){extrap}"),
            ("(c) bare numpy, continuous_flow, meters × hours", tc, f"(a) = {ta / tc:.1f}× (c)"),
            ("(c') bare numpy, 4 rules, meters × hours/days", tc1, f'(a") = {ta2 / tc1:.1f}× (c\')'),
            ("    to_check_results (frame → records)", tconv, f"{len(res):,} records")]


def line_protocol(df: pd.DataFrame) -> list[str]:
    # The schema of vigie.store.water.reading_line, built in bulk (Point per row would dominate).
    idx = df["index_m3"].to_numpy().tolist()
    return [f'{READING},meter_id={m} alarms="{a}",index_m3={v!r} {t}'
            for m, a, v, t in zip(df["meter_id"].tolist(), df["alarms"].tolist(), idx, df["time"].tolist())]


def history_lines(ids: np.ndarray, days: int, seed: int = 1) -> list[str]:
    """``continuous_flow`` results of the ``days`` days before DAY, as vigie.store.water.check_line
    writes them (built in bulk)."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(100, 400, len(ids))
    out = []
    for d in range(days, 0, -1):
        stamp = local_midnight(DAY - timedelta(days=d), TZ)
        vol = np.round(base * rng.uniform(0.7, 1.3, len(ids)), 1).tolist()
        out += [f'leak_check,meter_id={m},rule=continuous_flow coverage=1.0,detail="",status="ok",'
                f'volume_l={v!r} {stamp}' for m, v in zip(ids.tolist(), vol)]
    return out


def influx_section(args, df) -> list[tuple[str, float, str]]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import services

    svc, url = None, os.environ.get("VIGIE_INFLUX_URL")
    if not url:
        workdir = Path(tempfile.mkdtemp(prefix="bench-influxd-"))
        svc = services.influxdb(workdir).start()
        services.wait_influx_ready(svc)
        url = services.influx_url(svc)
    store = InfluxStore(url, f"bench_leaks_{uuid.uuid4().hex[:8]}", retention_policy="vigie_raw", timeout=600)
    rows: list[tuple[str, float, str]] = []
    try:
        store.ensure_database("INF")
        a = perf_counter()
        lines = line_protocol(df)
        for i in range(0, len(lines), 20_000):
            store.write_lines(lines[i:i + 20_000])
        rows.append(("write readings (line protocol, 20k/POST)", perf_counter() - a, f"{len(lines):,} points"))
        del lines
        if args.history:
            a = perf_counter()
            lines = history_lines(df["meter_id"].unique(), LeakParams().history_days)
            for i in range(0, len(lines), 20_000):
                store.write_lines(lines[i:i + 20_000])
            rows.append(("write stored history (continuous_flow results)", perf_counter() - a,
                         f"{len(lines):,} points"))
            del lines

        settings = Settings(timezone=str(TZ), influx_url=url)
        params = LeakParams.from_settings(settings)
        q = store_query(params)
        raw: dict = {}
        raw_get(store, q)  # warm-up: the first query after a bulk write pays for cache and compaction
        t_raw = best_of(args.repeat, lambda: raw.update(body=raw_get(store, q)))
        t_parse = best_of(args.repeat, lambda: pd.read_csv(io.BytesIO(raw["body"]),
                                                           dtype={"meter_id": str, "tags": str, "alarms": str}))
        start, end = window(params)
        t_ri = best_of(args.repeat, lambda: read_indices(store, start, end, with_alarms=True))
        got: dict = {}
        t_rw = best_of(args.repeat, lambda: got.update(r=read_window(store, DAY, TZ, params)))
        readings, alarms = got["r"]
        t_hist = best_of(1, lambda: read_history(store, DAY - timedelta(days=params.history_days),
                                                 DAY - timedelta(days=1), TZ))
        t_comp = best_of(args.repeat, lambda: detect_leaks(readings, DAY, TZ, params, alarms=alarms))
        frame = detect_leaks(readings, DAY, TZ, params, alarms=alarms)
        t_conv = best_of(1, lambda: got.update(records=to_check_results(frame)))
        t_lines = best_of(1, lambda: [check_line(c, TZ) for c in got["records"]])
        t_write = best_of(1, lambda: write_checks(store, got["records"], TZ))
        t_total = best_of(1, lambda: got.update(final=run_leak_check(store, DAY, settings)))
        found = pd.Series([str(c.rule) for c in got["final"] if c.status == "leak"]).value_counts().to_dict()
        evaluated = sum(1 for c in got["final"] if c.rule == LeakRule.ABNORMAL_CONSUMPTION and c.status != "insufficient_data")
        print(f"\nend to end: leaks found {found}; abnormal_consumption evaluated for {evaluated:,} meters")
        n = len(readings)
        rows += [
            ("raw: chunked CSV GET of read_indices' SELECT", t_raw, f"{n:,} rows, {len(raw['body']) / 1e6:.0f} MB"),
            ("raw GET + pandas.read_csv of the bytes", t_raw + t_parse, f"parse alone {t_parse:.2f} s"),
            ("read_indices(with_alarms=True)", t_ri, f"{t_ri / (t_raw + t_parse):.2f}× raw+parse"),
            (f"read_window ({READ_SLICES} slices ∥ + flagged rows)", t_rw, f"{t_rw / (t_raw + t_parse):.2f}× raw+parse"),
            ("read_history (stored checks)", t_hist, f"{params.history_days} days" if args.history else "none stored"),
            ("detect_leaks on the frames read", t_comp, f"{len(alarms):,} flagged readings"),
            ("to_check_results", t_conv, f"{len(frame):,} records"),
            ("write_checks", t_write, f"of which {t_lines:.2f} s building lines (a Point each)"),
            ("run_leak_check total", t_total, "read + history + compute + records + write"),
        ]
        stored = store.query_json(f'SELECT count("status") FROM "leak_check" WHERE rule = '
                                  f"'{LeakRule.CONTINUOUS_FLOW}'")
        rows.append(("stored continuous_flow results", float("nan"), str(stored[0]["values"][0][1])))
    finally:
        store.execute(f'DROP DATABASE "{store.database}"')
        store.close()
        if svc is not None:
            svc.stop()
            shutil.rmtree(workdir, ignore_errors=True)
    return rows


def window(params: LeakParams) -> tuple:
    from datetime import datetime, time

    margin = timedelta(hours=params.max_interval_h)
    return (datetime.combine(DAY, time(0), tzinfo=TZ) - margin,
            datetime.combine(DAY + timedelta(days=1), time(0), tzinfo=TZ) + margin)


def store_query(params: LeakParams) -> str:
    """The SELECT read_indices(with_alarms=True) issues for the day's window."""
    from vigie.store.influx import time_literal

    start, end = window(params)
    return (f'SELECT meter_id, index_m3, alarms FROM "{READING}" WHERE time >= {time_literal(start)} '
            f"AND time < {time_literal(end)}")


def raw_get(store: InfluxStore, q: str) -> bytes:
    import httpx

    params = {"db": store.database, "q": q, "epoch": "s", "chunked": "true", "chunk_size": "100000",
              "rp": store.retention_policy}
    with httpx.Client(base_url=store.url, timeout=600) as http:
        with http.stream("GET", "/query", params=params, headers={"Accept": "application/csv"}) as r:
            r.raise_for_status()
            return b"".join(r.iter_bytes())


def table(title: str, rows: list[tuple[str, float, str]], markdown: bool = False) -> None:
    print(f"\n{title}\n")
    if markdown:
        print("| step | seconds | note |\n|---|---:|---|")
        for name, secs, note in rows:
            print(f"| {name.strip()} | {f'{secs:.3f}' if secs == secs else ''} | {note} |")
        return
    print(f"{'step':<52} {'seconds':>9}  note")
    for name, secs, note in rows:
        print(f"{name:<52} {secs:>9.3f}  {note}" if secs == secs else f"{name:<52} {'':>9}  {note}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--meters", type=int, default=100_000)
    ap.add_argument("--hours", type=int, default=48)
    ap.add_argument("--loop-meters", type=int, default=2000, help="meters timed in the pandas loop baseline")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-influx", action="store_true", help="compute section only")
    ap.add_argument("--markdown", action="store_true", help="print the tables as markdown")
    ap.add_argument("--no-history", dest="history", action="store_false",
                    help="do not store 27 days of past results before the end-to-end run")
    args = ap.parse_args()
    a = perf_counter()
    df, index, t = make_fleet(args.meters, args.hours)
    print(f"fleet: {args.meters:,} meters × {args.hours} h hourly = {len(df):,} readings "
          f"(built in {perf_counter() - a:.1f} s); {os.cpu_count()} CPUs; numpy {np.__version__}, "
          f"pandas {pd.__version__}")
    table("compute (J+1, one local day)", compute_section(args, df, index, t), args.markdown)
    if not args.no_influx:
        table("end to end against InfluxDB", influx_section(args, df), args.markdown)


if __name__ == "__main__":
    main()
