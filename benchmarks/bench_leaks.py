"""J+1 leak check at fleet scale: compute cost against two baselines, then read + compute end to end.

    python benchmarks/bench_leaks.py [--meters 100000 --hours 48] [--loop-meters 2000] [--rounds 10]
                                     [--no-influx] [--markdown]

Synthetic fleet: ``--meters`` meters × ``--hours`` hourly indices centred on one local day
(households with zero-use night hours, 5 % with a 2–20 L/h leak, a few bursts and meter flags).

Compute (same readings, already in memory as the readers return them: meter ids and flags as
categoricals; ``--repeat`` rounds, each running every variant once in turn, min and median):
  (a) ``detect_leaks`` — the four rules from the frame ``read_indices`` returns (sorted by meter;
      ``alarms`` column); no history, so abnormal_consumption is ``insufficient_data``;
  (a') the same readings in InfluxDB's own order (by time, the meters of one instant in no set
      order), as ``read_window`` returns them, with its frame of flagged readings;
  (a") (a) with 27 days of past daily volumes as ``read_history`` returns them, so that
      abnormal_consumption is evaluated;
  (g) (a") on the general path (``fast_path=False``): interval by interval, as before the grid;
  (b) a per-meter pandas loop (``groupby`` then diff and min per meter, the continuous-flow rule
      only), timed once on ``--loop-meters`` meters and extrapolated linearly to the fleet;
  (c) bare numpy, continuous_flow only, on the same values already laid out as a meters × readings
      array: the same interval rules (gap, jitter as zero, flow limit; no rollover), status,
      minimum flow, day volume, coverage, night flow — without ids, sorting or result rows;
  (c') bare numpy, the four rules: (c), bursts as runs of consecutive intervals above the
      threshold, the Warsmann test with the same day-coverage rules on meters × days arrays of
      history volume and coverage, and a meters × readings flag array.

(a") / (c') is the like-for-like ratio (same four rules, same inputs, one in frames, one in ready
arrays) and the one the issue's "within 2× of a bare numpy pass" is judged on; (a) / (c) compares
four rules with one and is printed too.

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

# Before numpy loads: the bare-numpy baselines' matrix products on one thread, like detect_leaks
# (single-threaded). OpenBLAS threads on a shared 2-core machine made them slower and erratic.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from vigie.analytics.intervals import fleet_grid, local_midnight, meter_codes  # noqa: E402
from vigie.analytics.job import READ_SLICES, read_history, read_window, run_leak_check  # noqa: E402
from vigie.analytics.leaks import WARSMANN_FACTOR, LeakParams, detect_leaks, to_check_results  # noqa: E402
from vigie.config import Settings  # noqa: E402
from vigie.records import LeakRule  # noqa: E402
from vigie.store import InfluxStore  # noqa: E402
from vigie.store.water import CHECK, READING, check_line, read_indices, source, write_checks  # noqa: E402

TZ = ZoneInfo("Europe/Paris")
DAY = date(2026, 6, 10)


def make_fleet(meters: int, hours: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """(readings frame as read_indices returns it — ids and flags categorical, sorted by meter
    then time —, the same indices as a meters × readings array (m³), the reading times)."""
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
    frame = pd.DataFrame({"meter_id": pd.Categorical.from_codes(np.repeat(np.arange(meters), hours + 1), ids),
                          "time": np.tile(t, meters), "index_m3": index.ravel(),
                          "alarms": pd.Series(alarms, dtype="category")})
    return frame, index, t


def history_frame(ids: np.ndarray, days: int, seed: int = 1) -> tuple[pd.DataFrame, np.ndarray]:
    """Past daily volumes of the ``days`` days before DAY: the frame ``read_history`` returns (day
    by day, meters in order within a day; ids and days categorical), and the same values as a
    meters × days array (coverage 1)."""
    rng = np.random.default_rng(seed)
    vol = np.round(rng.uniform(100, 400, len(ids))[:, None] * rng.uniform(0.7, 1.3, (len(ids), days)), 1)
    day_list = np.array([DAY - timedelta(days=d) for d in range(days, 0, -1)], dtype=object)
    frame = pd.DataFrame({"meter_id": pd.Categorical.from_codes(np.tile(np.arange(len(ids)), days), ids),
                          "day": pd.Categorical.from_codes(np.repeat(np.arange(days), len(ids)), day_list),
                          "volume_l": vol.T.ravel(), "coverage": np.ones(vol.size)})
    return frame, vol


def best_of(n: int, fn) -> float:
    times = []
    for _ in range(n):
        a = perf_counter()
        fn()
        times.append(perf_counter() - a)
    return min(times)


def interleaved(n: int, fns: dict) -> dict[str, list[float]]:
    """Run each of ``fns`` once per round, ``n`` rounds: a noisy machine slows all variants alike."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(n):
        for k, fn in fns.items():
            a = perf_counter()
            fn()
            times[k].append(perf_counter() - a)
    return times


def pandas_loop(df: pd.DataFrame, ds: int, de: int) -> pd.DataFrame:
    """Baseline (b): the continuous-flow rule meter by meter."""
    out = []
    for mid, g in df.groupby("meter_id", sort=False, observed=True):
        g = g.sort_values("time")
        rate = g["index_m3"].diff() * 1000.0 / (g["time"].diff() / 3600.0)
        in_day = (g["time"] > ds) & (g["time"].shift() < de)
        r = rate[in_day]
        out.append((mid, r.min(), bool((r <= 0).any())))
    return pd.DataFrame(out, columns=["meter_id", "min_rate", "zero"])


def numpy_floor(index: np.ndarray, t: np.ndarray, ds: int, de: int, night: tuple[int, int],
                params: LeakParams) -> dict:
    """Baseline (c): a continuous_flow result (status, minimum flow, coverage, volume, night flow)
    on a dense meters × readings array, by the same interval rules (a gap or a flow beyond the
    limit unknown, a drop within the jitter tolerance zero; no rollover)."""
    j = np.flatnonzero((t[1:] > ds) & (t[:-1] < de))  # the day's intervals only
    s, e = t[j[0]:j[-1] + 1], t[j[0] + 1:j[-1] + 2]
    dur_h = (e - s) / 3600.0
    vol = np.diff(index[:, j[0]:j[-1] + 2], axis=1)
    vol *= 1000.0
    vol[(vol < 0) & (vol >= -params.reverse_tolerance_l)] = 0.0
    known = (vol >= 0) & (vol <= params.max_flow_l_per_h * dur_h) & (dur_h <= params.max_interval_h)
    vol[~known] = 0.0
    rate = vol / dur_h
    overlap = (np.minimum(e, de) - np.maximum(s, ds)).astype(np.float64)
    nov = (np.minimum(e, night[1]) - np.maximum(s, night[0])).clip(0).astype(np.float64)
    kf = known.astype(np.float64)
    coverage = kf @ overlap / (de - ds)
    night_s = kf @ nov
    with np.errstate(invalid="ignore", divide="ignore"):
        night_flow = np.where(night_s > 0, vol @ (nov / (e - s)) / night_s * 3600.0, np.nan)
    rate[~known] = np.inf
    low = rate.min(axis=1)
    return {"leak": (coverage >= params.min_coverage) & (low > params.zero_flow_tolerance_l_per_h),
            "min": np.where(np.isinf(low), np.nan, low), "coverage": coverage, "volume": vol @ (overlap / (e - s)),
            "night": night_flow, "vol": vol, "s": s, "e": e}


def numpy_floor_all(index: np.ndarray, t: np.ndarray, ds: int, de: int, night: tuple[int, int],
                    hist: np.ndarray, hist_cov: np.ndarray, flags: np.ndarray, params: LeakParams) -> dict:
    """Baseline (c'): the four rules on dense arrays — (c), bursts as runs of consecutive intervals
    above the threshold lasting the minimum duration, the Warsmann test with the same day and
    period coverage rules on meters × days history arrays, any flag of the day."""
    out = numpy_floor(index, t, ds, de, night, params)
    vol, s, e = out.pop("vol"), out.pop("s"), out.pop("e")  # vol: litres, 0 where unknown
    m, j = np.nonzero(vol > params.burst_flow_l_per_h / 3600.0 * (e - s))  # few: runs are found among them
    first = np.r_[True, (m[1:] != m[:-1]) | (j[1:] != j[:-1] + 1)] if len(m) else np.zeros(0, dtype=bool)
    run = np.cumsum(first) - 1
    dur = (e - s)[j].astype(np.float64)
    run_s = np.bincount(run, dur)
    run_rate = np.bincount(run, vol[m, j]) / run_s * 3600.0
    ok = run_s >= params.burst_min_duration_min * 60.0
    burst = np.full(len(index), np.nan)
    np.fmax.at(burst, m[first][ok], run_rate[ok])
    # Warsmann: k past periods of p days in hist (meters × k·p + p − 1 days), the current one its
    # last p − 1 days and today; a day counts at min_coverage, scaled to the full day.
    p, k, n = params.abnormal_period_days, params.abnormal_history_periods, len(index)
    usable = (hist_cov >= params.min_coverage) & ~np.isnan(hist)
    with np.errstate(invalid="ignore", divide="ignore"):
        est = np.where(usable, hist / hist_cov, 0.0)
        today = out["coverage"] >= params.min_coverage
        counted_past = usable[:, :k * p].reshape(n, k, p).sum(axis=2)
        counted_now = usable[:, k * p:].sum(axis=1) + today
        average = (est[:, :k * p].reshape(n, k, p).sum(axis=2) / counted_past * p).mean(axis=1)
        current = (est[:, k * p:].sum(axis=1) + np.where(today, out["volume"] / out["coverage"], 0.0)) / counted_now * p
    evaluable = (counted_past >= params.min_coverage * p).all(axis=1) & (counted_now >= params.min_coverage * p)
    abnormal = evaluable & (current > WARSMANN_FACTOR * average) & (
        current - average > params.abnormal_min_excess_l_per_day * p)
    enough = out["coverage"] >= params.min_coverage
    return {**out, "burst": np.where(enough, burst, np.nan), "abnormal": abnormal & enough,
            "flag": flags[:, (t >= ds) & (t < de)].any(axis=1)}


def compute_section(args, df, index, t) -> list[tuple[str, float, float, str]]:
    params = LeakParams()
    ds, de = local_midnight(DAY, TZ), local_midnight(DAY + timedelta(days=1), TZ)
    night = (local_midnight(DAY, TZ) + 2 * 3600, local_midnight(DAY, TZ) + 5 * 3600)
    # InfluxDB's order, as read_window returns it: by time, the meters of one instant in no set order.
    by_time = df[["meter_id", "time", "index_m3"]].iloc[
        np.random.default_rng(2).permuted(np.arange(len(df)).reshape(index.shape).T, axis=1).ravel()
    ].reset_index(drop=True)
    alarms = df.loc[df["alarms"] != "", ["meter_id", "time", "alarms"]].reset_index(drop=True)
    alarms["alarms"] = alarms["alarms"].astype(str)
    ids = np.asarray(df["meter_id"].cat.categories, dtype=object)
    history, hist = history_frame(ids, params.history_days)
    hist_cov = np.ones_like(hist)
    flags = (df["alarms"].to_numpy(dtype=object) == "LEAK").reshape(index.shape)
    fns = {"a": lambda: detect_leaks(df, DAY, TZ, params),
           "a'": lambda: detect_leaks(by_time, DAY, TZ, params, alarms=alarms),
           'a"': lambda: detect_leaks(df, DAY, TZ, params, history=history),
           "g": lambda: detect_leaks(df, DAY, TZ, params, history=history, fast_path=False),
           "c": lambda: numpy_floor(index, t, ds, de, night, params),
           "c'": lambda: numpy_floor_all(index, t, ds, de, night, hist, hist_cov, flags, params)}
    times = interleaved(args.rounds, fns)
    lo = {k: min(v) for k, v in times.items()}
    med = {k: float(np.median(v)) for k, v in times.items()}
    n_loop = min(args.loop_meters, args.meters)
    sub = df[df["meter_id"].cat.codes < n_loop]
    tb = best_of(1, lambda: pandas_loop(sub, ds, de)) * args.meters / n_loop
    res = detect_leaks(df, DAY, TZ, params, history=history)
    pd.testing.assert_frame_equal(res, detect_leaks(df, DAY, TZ, params, history=history, fast_path=False),
                                  check_exact=True)
    tconv = best_of(1, lambda: to_check_results(res))
    counts = res[res.status == "leak"].groupby("rule").size().to_dict()
    floor = numpy_floor_all(index, t, ds, de, night, hist, hist_cov, flags, params)
    same = {"continuous_flow": int(floor["leak"].sum()), "burst": int((~np.isnan(floor["burst"])).sum()),
            "abnormal_consumption": int(floor["abnormal"].sum()), "meter_flag": int(floor["flag"].sum())}
    print(f"\nleaks found (with history): detect_leaks {counts}; bare numpy (c') {same}; "
          f"grid path == general path: yes; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    extrap = "" if n_loop == args.meters else f" (timed on {n_loop} meters, ×{args.meters / n_loop:g})"

    def ratio(x: str, y: str) -> str:
        return f"{lo[x] / lo[y]:.1f}× at min, {med[x] / med[y]:.1f}× at median"

    return [("(a) detect_leaks, 4 rules", lo["a"], med["a"], "frame sorted by meter (read_indices)"),
            ("(a') detect_leaks, InfluxDB's time order", lo["a'"], med["a'"], "as read_window returns it"),
            ('(a") detect_leaks with 27 days of history', lo['a"'], med['a"'], f"{len(history):,} history rows"),
            ('(g) (a") on the general path', lo["g"], med["g"], "(g) / (a\") = " + ratio("g", 'a"')),
            ("(b) per-meter pandas loop, continuous flow only", tb, float("nan"), f"{tb / lo['a']:,.0f}× (a){extrap}"),
            ("(c) bare numpy, continuous_flow, meters × readings", lo["c"], med["c"], "(a) / (c) = " + ratio("a", "c")),
            ("(c') bare numpy, 4 rules, meters × readings/days", lo["c'"], med["c'"],
             '(a") / (c\') = ' + ratio('a"', "c'")),
            ("    to_check_results (frame → records)", tconv, float("nan"), f"{len(res):,} records")]


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
    store = InfluxStore(url, f"bench_leaks_{uuid.uuid4().hex[:8]}", retention_policy="vigie_raw", timeout=600,
                        policies=Settings(_env_file=None).influx_extra_policies())
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
            lines = history_lines(np.asarray(df["meter_id"].cat.categories, dtype=object), LeakParams().history_days)
            for i in range(0, len(lines), 20_000):
                store.write_lines(lines[i:i + 20_000], retention_policy=store.policy_for("aggregates"))
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
        on_grid = fleet_grid(meter_codes(readings["meter_id"], all_categories=True), readings) is not None
        print(f"\nend to end: leaks found {found}; abnormal_consumption evaluated for {evaluated:,} meters; "
              f"read_window's frame taken as one grid: {'yes' if on_grid else 'no'}")
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
        stored = store.query_json(f'SELECT count("status") FROM {source(store, CHECK)} WHERE rule = '
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


def compute_table(rows: list[tuple[str, float, float, str]], rounds: int, markdown: bool = False) -> None:
    print(f"\ncompute (J+1, one local day; {rounds} interleaved rounds)\n")
    ms = lambda x: f"{x * 1000:,.0f}" if x == x else ""
    if markdown:
        print("| step | min ms | median ms | note |\n|---|---:|---:|---|")
        for name, lo, med, note in rows:
            print(f"| {name.strip()} | {ms(lo)} | {ms(med)} | {note} |")
        return
    print(f"{'step':<52} {'min ms':>9} {'med ms':>9}  note")
    for name, lo, med, note in rows:
        print(f"{name:<52} {ms(lo):>9} {ms(med):>9}  {note}")


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
    ap.add_argument("--rounds", type=int, default=10, help="interleaved rounds of the compute variants")
    ap.add_argument("--repeat", type=int, default=3, help="repetitions of each end-to-end read (best of)")
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
    compute_table(compute_section(args, df, index, t), args.rounds, args.markdown)
    if not args.no_influx:
        table("end to end against InfluxDB", influx_section(args, df), args.markdown)


if __name__ == "__main__":
    main()
