"""Consumption intervals from cumulative indices, and their local-time buckets (synthetic frames)."""

from datetime import date, datetime
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from vigie.analytics.intervals import (bucket_edges, compute_intervals, consumption_buckets, fleet_grid,
                                       grid_intervals, intervals_of, local_midnight, sorted_readings)

PARIS = ZoneInfo("Europe/Paris")
T0 = int(datetime(2026, 6, 10, tzinfo=ZoneInfo("UTC")).timestamp())


def frame(rows: list[tuple[str, int, float]]) -> pd.DataFrame:
    """Readings from (meter_id, seconds after T0, index m³) rows, in the order given."""
    return pd.DataFrame({"meter_id": pd.Series([r[0] for r in rows], dtype=str),
                         "time": np.array([T0 + r[1] for r in rows], dtype=np.int64),
                         "index_m3": np.array([r[2] for r in rows], dtype=np.float64)})


def steady(meter: str, step_s: int, n: int, l_per_h: float, index0: float = 10.0) -> list:
    return [(meter, i * step_s, index0 + l_per_h * i * step_s / 3600 / 1000) for i in range(n)]


def test_meters_at_their_own_resolution_in_one_frame():
    rows = steady("q", 900, 5, 40.0) + steady("h", 3600, 3, 10.0)
    iv = compute_intervals(frame(rows))
    assert list(iv.columns) == ["meter_id", "start", "end", "volume_l", "rate_l_per_h", "known"]
    assert list(iv.meter_id.astype(str)) == ["h"] * 2 + ["q"] * 4  # sorted by meter then start
    assert iv.start.dtype == np.int64 and iv.known.dtype == bool
    q, h = iv[iv.meter_id == "q"], iv[iv.meter_id == "h"]
    assert (q.end - q.start == 900).all() and (h.end - h.start == 3600).all()
    np.testing.assert_allclose(q.volume_l, 10.0)
    np.testing.assert_allclose(q.rate_l_per_h, 40.0)
    np.testing.assert_allclose(h.volume_l, 10.0)
    assert iv.known.all()


def test_duplicates_and_disorder_give_the_clean_result():
    rows = steady("a", 900, 8, 12.0) + steady("b", 3600, 4, 3.0)
    clean = compute_intervals(frame(rows))
    messy_rows = rows + rows[2:5] + rows[-2:]
    rng = np.random.default_rng(1)
    messy = frame([messy_rows[i] for i in rng.permutation(len(messy_rows))])
    pd.testing.assert_frame_equal(compute_intervals(messy), clean)


def test_rollover_counts_the_wrapped_volume():
    iv = compute_intervals(frame([("m", 0, 99999.998), ("m", 3600, 0.003), ("m", 7200, 0.004)]))
    assert iv.known.all()
    np.testing.assert_allclose(iv.volume_l, [5.0, 1.0], atol=1e-6)


def test_replacement_is_unknown_and_counting_restarts():
    iv = compute_intervals(frame([("m", 0, 1234.5), ("m", 3600, 1234.51), ("m", 7200, 0.01), ("m", 10800, 0.02)]))
    assert list(iv.known) == [True, False, True]
    assert np.isnan(iv.volume_l[1]) and np.isnan(iv.rate_l_per_h[1])
    np.testing.assert_allclose(iv.volume_l[[0, 2]], [10.0, 10.0], atol=1e-6)


def test_small_drop_is_zero_consumption_large_drop_unknown():
    iv = compute_intervals(frame([("m", 0, 50.0), ("m", 900, 49.998), ("m", 1800, 49.998), ("m", 2700, 49.9)]))
    assert list(iv.known) == [True, True, False]
    assert iv.volume_l[0] == 0.0 and iv.rate_l_per_h[0] == 0.0
    strict = compute_intervals(frame([("m", 0, 50.0), ("m", 900, 49.998)]), reverse_tolerance_l=1.0)
    assert not strict.known[0]


def test_gap_longer_than_max_interval_is_unknown():
    iv = compute_intervals(frame([("m", 0, 1.0), ("m", 3 * 3600, 1.03), ("m", 3 * 3600 + 3 * 3600 + 1, 1.04)]),
                           max_interval_h=3.0)
    assert list(iv.known) == [True, False]
    np.testing.assert_allclose(iv.volume_l[0], 30.0)


def test_implausible_jump_is_unknown():
    # 2 m³ in 15 minutes is 8 000 L/h: beyond any household meter's range with a 5 000 L/h limit.
    iv = compute_intervals(frame([("m", 0, 1.0), ("m", 900, 3.0)]), max_flow_l_per_h=5000.0)
    assert not iv.known[0]


def test_single_reading_meter_is_known_without_intervals():
    iv = compute_intervals(frame([("lonely", 0, 1.0)] + steady("b", 900, 2, 4.0)))
    assert list(iv.meter_id.cat.categories) == ["b", "lonely"]
    assert list(iv.meter_id.astype(str)) == ["b"]


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="index_m3"):
        compute_intervals(pd.DataFrame({"meter_id": ["a"], "time": [T0]}))
    bad = frame([("a", 0, 1.0), ("b", 10, 2.0)])
    bad.loc[1, "meter_id"] = None
    with pytest.raises(ValueError, match="meter_id missing in 1"):
        compute_intervals(bad)


@pytest.mark.parametrize("day,hours", [(date(2026, 3, 29), 23), (date(2026, 10, 25), 25), (date(2026, 6, 10), 24)])
def test_local_days_and_hours_follow_dst(day, hours):
    edges = bucket_edges(day, day, PARIS, "hour")
    assert len(edges) - 1 == hours
    assert (np.diff(edges) == 3600).all()
    days = bucket_edges(day, day, PARIS, "day")
    assert list(days) == [edges[0], edges[-1]] and days[0] == local_midnight(day, PARIS)


@pytest.mark.parametrize("day,hours", [(date(2026, 3, 29), 23), (date(2026, 10, 25), 25)])
def test_buckets_apportion_a_steady_flow_on_dst_days(day, hours):
    start = local_midnight(day, PARIS) - 86400
    n = 3 * 24 * 4 + 1
    df = pd.DataFrame({"meter_id": "m", "time": start + 900 * np.arange(n), "index_m3": 7.0 + 0.0025 * np.arange(n)})
    iv = compute_intervals(df)  # 10 L/h all the time
    hourly = consumption_buckets(iv, day, day, PARIS, "hour")
    assert len(hourly) == hours
    np.testing.assert_allclose(hourly.volume_l, 10.0)
    assert (hourly.coverage == 1.0).all()
    assert str(hourly.start.iloc[0].tz) == "Europe/Paris" and hourly.start.iloc[0].hour == 0
    daily = consumption_buckets(iv, day, day, PARIS, "day")
    np.testing.assert_allclose(daily.volume_l, 10.0 * hours)


def test_buckets_split_intervals_pro_rata_and_show_gaps():
    day = date(2026, 6, 10)
    m = local_midnight(day, PARIS)
    # Hourly meter reading at :30, 60 L per hour, then nothing after 03:30.
    df = pd.DataFrame({"meter_id": ["x"] * 4, "time": [m - 1800 + 3600 * i for i in range(4)],
                       "index_m3": [1.0, 1.06, 1.12, 1.18]})
    b = consumption_buckets(compute_intervals(df), day, day, PARIS, "hour")
    np.testing.assert_allclose(b.volume_l[:3], [60.0, 60.0, 30.0])
    np.testing.assert_allclose(b.coverage[:4], [1.0, 1.0, 0.5, 0.0])
    assert b.volume_l[3:].isna().all()
    with pytest.raises(ValueError, match="resolution"):
        consumption_buckets(compute_intervals(df), day, day, PARIS, "week")


def test_categorical_ids_are_read_through_their_codes():
    rows = steady("b", 900, 3, 4.0) + steady("a", 900, 3, 8.0)
    df = frame(rows)
    plain = compute_intervals(df)
    # Categories unsorted and one without rows, as a filtered reader's frame may have.
    df["meter_id"] = pd.Categorical(df["meter_id"], categories=["zz", "b", "a"])
    pd.testing.assert_frame_equal(compute_intervals(df), plain)
    df.loc[0, "meter_id"] = None
    with pytest.raises(ValueError, match="meter_id missing in 1"):
        compute_intervals(df)


def test_grid_intervals_are_each_meters_own():
    """Meters reading at the same instants, as one intervals × meters array: the same numbers as
    interval by interval, through jitter, a rollover, a replacement, a jump and a gap."""
    times = [0, 3600, 7200, 10800, 25200, 28800]  # a 4-hour gap before the fifth reading
    rows = ([("jitter", s, v) for s, v in zip(times, [5.0, 5.01, 5.008, 5.02, 5.03, 5.05])]
            + [("roll", s, v) for s, v in zip(times, [99999.99, 0.002, 0.01, 0.02, 0.03, 0.04])]
            + [("repl", s, v) for s, v in zip(times, [812.0, 812.01, 0.003, 0.01, 0.02, 0.03])]
            + [("jump", s, v) for s, v in zip(times, [1.0, 1.01, 31.0, 31.01, 31.02, 31.03])])
    meters, t, v = sorted_readings(frame(rows))
    grid = fleet_grid(meters, frame(rows).sort_values(["meter_id", "time"], ignore_index=True))
    assert grid is not None and list(grid.times) == [T0 + s for s in times]
    limits = {"max_interval_h": 3.0, "reverse_tolerance_l": 5.0, "max_flow_l_per_h": 10_000.0}
    iv = intervals_of(meters, t, v, **limits)
    start, end, volume, rate, known = grid_intervals(grid, **limits)
    np.testing.assert_array_equal(np.tile(start, len(meters.ids)), iv.start)
    np.testing.assert_array_equal(np.tile(end, len(meters.ids)), iv.end)
    np.testing.assert_array_equal(volume.T.ravel(), iv.volume_l)  # NaN where unknown, on both
    np.testing.assert_array_equal(rate.T.ravel(), iv.rate_l_per_h)
    np.testing.assert_array_equal(known.T.ravel(), iv.known)
    col = {m: i for i, m in enumerate(meters.ids)}
    assert not known[3].any()  # the gap
    assert volume[0, col["roll"]] == pytest.approx(12.0) and volume[1, col["jitter"]] == 0.0
    assert not known[1, col["repl"]] and not known[1, col["jump"]]
