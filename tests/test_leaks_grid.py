"""The grid path of detect_leaks (meters reading in step, computed as intervals × meters arrays)
gives the general path's results bit for bit, whatever the input's order, id type and faults."""

from datetime import date, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from vigie.analytics.intervals import fleet_grid, local_midnight, meter_codes, sorted_readings, split_grid
from vigie.analytics.leaks import LeakParams, detect_leaks

PARIS = ZoneInfo("Europe/Paris")
P = LeakParams()
DAYS = [date(2026, 6, 10), date(2026, 3, 29), date(2026, 10, 25)]  # 24, 23 and 25 hours


def in_step(day: date, n: int = 40, step_min: int = 60, seed: int = 0) -> pd.DataFrame:
    """``n`` meters reading at the same instants every ``step_min`` from local midnight − 3 h to the
    next midnight + 3 h, sorted by meter then time: households, a drip, a burst, a rollover, a
    replacement, jitter, an implausible jump, flags."""
    rng = np.random.default_rng(seed)
    t = np.arange(local_midnight(day, PARIS) - 3 * 3600, local_midnight(day + timedelta(days=1), PARIS) + 3 * 3600 + 1,
                  step_min * 60, dtype=np.int64)
    k = len(t) - 1
    litres = rng.exponential(20.0, (n, k)) * (rng.random((n, k)) < 0.5)  # zero-use intervals
    litres[0] += 3.0 * step_min / 60  # a drip: never zero
    litres[1, k // 2:k // 2 + 2] += 900.0 * step_min / 60  # a burst over two intervals
    litres[5, k // 3] += 50_000.0  # 50 m³ in one interval: beyond any meter, unknown
    index = 100.0 + np.concatenate([np.zeros((n, 1)), np.cumsum(litres, axis=1)], axis=1) / 1000.0
    index[2] = (index[2] + 99_899.9) % 100_000.0  # a 5-digit register wrapping during the day
    index[3, k // 2:] -= index[3, k // 2] - 0.002  # replaced by a new meter at midday
    index[4, 1::3] -= 0.0015  # jitter: the index steps back 1.5 L now and then
    alarms = np.full((n, k + 1), "", dtype=object)
    alarms[6, k // 2] = "LEAK"
    alarms[7, 2] = "BURST LOW_BATTERY"  # before midnight: not the day's
    alarms[8, k // 2] = "REVERSE_FLOW"
    return pd.DataFrame({"meter_id": np.repeat([f"m{i:03d}" for i in range(n)], k + 1), "time": np.tile(t, n),
                         "index_m3": np.round(index, 4).ravel(), "alarms": alarms.ravel()})


def faults(df: pd.DataFrame, day: date) -> pd.DataFrame:
    """``df`` with meters off the grid: a gap, a duplicated reading (the later one wins), a NaN
    index, a clock ahead, a quarter-hourly meter, a meter with one reading."""
    m = local_midnight(day, PARIS)
    out = df.copy()
    gap = (out.meter_id == "m010") & (out.time > m + 6 * 3600) & (out.time < m + 11 * 3600)
    out = out[~gap]
    dup = out[(out.meter_id == "m011") & (out.time == m + 8 * 3600)].assign(index_m3=lambda d: d.index_m3 + 0.004)
    out.loc[(out.meter_id == "m012") & (out.time == m + 9 * 3600), "index_m3"] = np.nan
    out.loc[out.meter_id == "m013", "time"] += 7
    q = np.arange(m - 3 * 3600, m + 27 * 3600 + 1, 900)
    quarter = pd.DataFrame({"meter_id": "q000", "time": q, "index_m3": 5.0 + 0.0005 * np.arange(len(q)),
                            "alarms": ""})
    one = pd.DataFrame({"meter_id": ["solo"], "time": [m + 3600], "index_m3": [1.0], "alarms": [""]})
    return pd.concat([out, dup, quarter, one], ignore_index=True)


def history(ids, day: date, seed: int = 2) -> pd.DataFrame:
    """27 days of daily volumes before ``day``, day by day, meters in order (read_history's layout)."""
    rng = np.random.default_rng(seed)
    days = [day - timedelta(days=d) for d in range(27, 0, -1)]
    vol = rng.uniform(50, 400, (len(days), len(ids)))
    vol[:21, 0], vol[21:, 0] = 20.0, 400.0  # the drip's meter: little before, much this week
    return pd.DataFrame({"meter_id": np.tile(ids, len(days)), "day": np.repeat(days, len(ids)),
                         "volume_l": vol.ravel(),
                         "coverage": np.where(rng.random(vol.size) < 0.05, 0.5, rng.uniform(0.85, 1.0, vol.size))})


def as_read(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` typed as the readers return it: ids and flags categorical (sorted categories)."""
    return df.astype({"meter_id": "category", "alarms": "category"})


def by_time(df: pd.DataFrame, seed: int = 3) -> pd.DataFrame:
    """``df`` in InfluxDB's order: by time, the meters of one instant in no set order."""
    shuffled = df.sample(frac=1.0, random_state=seed)
    return shuffled.sort_values("time", kind="stable").reset_index(drop=True)


def both_paths(readings: pd.DataFrame, day: date, **kw) -> pd.DataFrame:
    fast = detect_leaks(readings, day, PARIS, P, **kw)
    general = detect_leaks(readings, day, PARIS, P, fast_path=False, **kw)
    pd.testing.assert_frame_equal(fast, general, check_exact=True)
    return fast


@pytest.mark.parametrize("day", DAYS)
@pytest.mark.parametrize("step_min", [60, 15])
def test_a_fleet_in_step_takes_the_grid_whatever_its_order(day, step_min):
    df = in_step(day, step_min=step_min)
    for layout in (df, by_time(df)):
        for readings in (layout, as_read(layout)):
            assert fleet_grid(meter_codes(readings.meter_id), readings) is not None
    expected = both_paths(df, day)
    hist = history(df.meter_id.unique(), day)
    expected_h = both_paths(df, day, history=hist)
    for readings in (as_read(df), by_time(df), as_read(by_time(df))):
        pd.testing.assert_frame_equal(both_paths(readings, day), expected, check_exact=True)
    as_stored = hist.astype({"meter_id": "category", "day": "category"})
    pd.testing.assert_frame_equal(both_paths(as_read(df), day, history=as_stored), expected_h, check_exact=True)
    leaks = expected_h[expected_h.status == "leak"]
    # Every rule finds something: the equality above covers each one's arithmetic.
    assert set(leaks.rule) == {"continuous_flow", "burst", "abnormal_consumption", "meter_flag"}
    coverage = expected[expected.rule == "continuous_flow"].set_index("meter_id").coverage
    assert df[df.meter_id == "m002"].index_m3.min() < 1 and coverage["m002"] == 1.0  # the rollover is counted
    assert 0.9 < coverage["m003"] < 1.0  # one interval lost to the replacement


@pytest.mark.parametrize("day", DAYS)
def test_meters_off_the_grid_take_the_general_path_with_the_same_results(day):
    df = faults(in_step(day), day)
    meters, t, v = sorted_readings(df)
    grid, rest = split_grid(meters, t, v)
    off = {"m010", "m012", "m013", "q000", "solo"}  # m011 is back on the grid once its duplicate is resolved
    assert set(meters.ids[grid.meters]) == set(meters.ids) - off
    assert set(meters.ids[np.unique(meters.codes[rest])]) == off
    expected = both_paths(df, day)
    shuffled = df.sample(frac=1.0, random_state=4).reset_index(drop=True)
    pd.testing.assert_frame_equal(both_paths(shuffled, day), expected, check_exact=True)
    pd.testing.assert_frame_equal(both_paths(as_read(by_time(df)), day), expected, check_exact=True)
    cf = expected.set_index(["meter_id", "rule"])
    assert cf.loc[("m010", "continuous_flow"), "coverage"] < 1.0  # the gap is not counted


def test_a_gap_every_meter_shares_stays_on_the_grid_as_unknown_intervals():
    day = DAYS[0]
    m = local_midnight(day, PARIS)
    df = in_step(day)
    df = df[(df.time <= m + 6 * 3600) | (df.time >= m + 11 * 3600)].reset_index(drop=True)
    assert fleet_grid(meter_codes(df.meter_id), df) is not None
    res = both_paths(df, day)
    cf = res[res.rule == "continuous_flow"]
    assert (cf.coverage <= 19 / 24 + 1e-12).all() and (cf.status == "insufficient_data").all()


def test_stored_history_in_day_blocks_reads_as_rows_do():
    """read_history's layout (categorical, one block per day listing every meter) is read block by
    block; a day stored twice keeps its later block, as row by row."""
    day = DAYS[0]
    df = in_step(day, n=12)
    hist = history(df.meter_id.unique(), day)
    hist = pd.concat([hist, hist.iloc[-12:].assign(volume_l=lambda d: d.volume_l * 3)], ignore_index=True)
    rows = detect_leaks(df, day, PARIS, P, history=hist)
    blocks = detect_leaks(df, day, PARIS, P, history=hist.astype({"meter_id": "category", "day": "category"}))
    pd.testing.assert_frame_equal(blocks, rows, check_exact=True)
    assert (rows.status[rows.rule == "abnormal_consumption"] != "insufficient_data").any()


def test_an_instant_with_a_meter_twice_and_one_missing_is_not_a_grid():
    day = DAYS[0]
    df = by_time(in_step(day, n=10))
    m = local_midnight(day, PARIS)
    at = df.index[(df.time == m + 3600) & (df.meter_id == "m004")]
    df.loc[at, "meter_id"] = "m005"  # m005 twice at 01:00 (the later row wins), m004 not at all
    assert fleet_grid(meter_codes(df.meter_id), df) is None
    res = both_paths(df, day)
    pd.testing.assert_frame_equal(res, both_paths(as_read(df), day), check_exact=True)


def test_categories_without_readings_are_not_meters():
    day = DAYS[0]
    df = as_read(in_step(day, n=10))
    some = df[df.meter_id != "m003"]  # the category stays, with no row
    res = both_paths(some, day)
    assert "m003" not in set(res.meter_id)
    pd.testing.assert_frame_equal(res, both_paths(in_step(day, n=10).query("meter_id != 'm003'"), day),
                                  check_exact=True)
