"""J+1 leak rules on synthetic fleets, and one run of the job against a real InfluxDB."""

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from vigie.analytics.intervals import local_midnight
from vigie.analytics.job import read_history, read_window, run_leak_check, run_leak_checks
from vigie.analytics.leaks import RESULT_COLUMNS, LeakParams, daily_volumes, detect_leaks, to_check_results
from vigie.config import Settings
from vigie.records import CheckResult, CheckStatus, LeakRule, MeterReading
from vigie.store.water import read_checks, write_readings

PARIS = ZoneInfo("Europe/Paris")
DAY = date(2026, 6, 10)
P = LeakParams()


def meter(mid: str, day: date, step_min: int, flow, index0: float = 100.0, alarms: str = "") -> pd.DataFrame:
    """Readings every ``step_min`` from local midnight − 3 h to the next midnight + 3 h; ``flow``
    maps epoch seconds (array) to L/h and is integrated minute by minute into the index."""
    start = local_midnight(day, PARIS) - 3 * 3600
    end = local_midnight(day + timedelta(days=1), PARIS) + 3 * 3600
    minutes = np.arange(start, end + 1, 60)
    litres = np.concatenate([[0.0], np.cumsum(flow(minutes[:-1]) / 60.0)])
    keep = (minutes - start) % (step_min * 60) == 0
    return pd.DataFrame({"meter_id": mid, "time": minutes[keep], "index_m3": index0 + litres[keep] / 1000.0,
                         "alarms": alarms})


def local_hour(t: np.ndarray) -> np.ndarray:
    idx = pd.to_datetime(t, unit="s", utc=True).tz_convert(PARIS)
    return (idx.hour + idx.minute / 60.0).to_numpy()


def constant(l_per_h: float):
    return lambda t: np.full(len(t), l_per_h)


def household(t):
    """Zero at night; 6 L in the first 3 minutes of every hour from 07:00 to 22:00 (tap, shower…)."""
    h = local_hour(t)
    return np.where((h >= 7) & (h < 22) & ((t // 60) % 60 < 3), 120.0, 0.0)


def rule(res: pd.DataFrame, mid: str, r: LeakRule) -> pd.Series:
    rows = res[(res.meter_id == mid) & (res.rule == str(r))]
    assert len(rows) == 1
    return rows.iloc[0]


def fleet(*frames: pd.DataFrame) -> pd.DataFrame:
    df = pd.concat(frames, ignore_index=True)
    df["meter_id"] = df["meter_id"].astype(str)
    return df


def test_drip_is_a_continuous_flow_leak_and_a_household_is_not():
    df = fleet(meter("drip", DAY, 60, constant(2.0)), meter("home", DAY, 15, household))
    res = detect_leaks(df, DAY, PARIS, P)
    assert list(res.columns) == RESULT_COLUMNS
    drip = rule(res, "drip", LeakRule.CONTINUOUS_FLOW)
    assert drip.status == "leak" and drip.rate_l_per_h == pytest.approx(2.0)
    assert drip.night_flow_l_per_h == pytest.approx(2.0) and drip.volume_l == pytest.approx(48.0)
    assert drip.coverage == 1.0 and "2.0 L/h" in drip.detail
    home = rule(res, "home", LeakRule.CONTINUOUS_FLOW)
    assert home.status == "ok" and home.rate_l_per_h == 0.0 and home.night_flow_l_per_h == 0.0
    assert home.volume_l == pytest.approx(15 * 6.0)
    for r in (LeakRule.BURST, LeakRule.METER_FLAG):
        assert rule(res, "home", r).status == "ok" and rule(res, "drip", r).status == "ok"


@pytest.mark.parametrize("day,hours", [(date(2026, 3, 29), 23), (date(2026, 10, 25), 25)])
def test_dst_days_have_their_own_length(day, hours):
    df = fleet(meter("q", day, 15, constant(4.0)), meter("h", day, 60, constant(4.0)))
    res = detect_leaks(df, day, PARIS, P)
    for mid in ("q", "h"):
        cf = rule(res, mid, LeakRule.CONTINUOUS_FLOW)
        assert cf.status == "leak" and cf.coverage == pytest.approx(1.0)
        assert cf.volume_l == pytest.approx(4.0 * hours) and cf.night_flow_l_per_h == pytest.approx(4.0)


def test_burst_of_45_minutes_is_flagged_a_short_shower_is_not():
    m = local_midnight(DAY, PARIS)
    burst = lambda t: household(t) + np.where((t >= m + 14 * 3600) & (t < m + 14 * 3600 + 2700), 600.0, 0.0)
    shower = lambda t: household(t) + np.where((t >= m + 20 * 3600 + 120) & (t < m + 20 * 3600 + 720), 600.0, 0.0)
    res = detect_leaks(fleet(meter("burst", DAY, 15, burst), meter("shower", DAY, 15, shower)), DAY, PARIS, P)
    b = rule(res, "burst", LeakRule.BURST)
    # 450 L of burst plus the household's 6 L at 14:00, over 45 minutes.
    assert b.status == "leak" and b.rate_l_per_h == pytest.approx(456 / 0.75) and "45 min" in b.detail
    s = rule(res, "shower", LeakRule.BURST)
    assert s.status == "ok" and np.isnan(s.rate_l_per_h)
    assert rule(res, "shower", LeakRule.CONTINUOUS_FLOW).status == "ok"


def test_hourly_interval_above_threshold_counts_by_its_length():
    m = local_midnight(DAY, PARIS)
    res = detect_leaks(meter("h", DAY, 60, lambda t: np.where((t >= m + 3600) & (t < m + 7200), 700.0, 0.0)),
                       DAY, PARIS, P)
    assert rule(res, "h", LeakRule.BURST).status == "leak"


@pytest.mark.parametrize("gap_h,status", [(4, "leak"), (6, "insufficient_data")])
def test_gap_gives_insufficient_data_only_below_min_coverage(gap_h, status):
    df = meter("g", DAY, 15, constant(3.0), alarms="LEAK")
    m = local_midnight(DAY, PARIS)
    df = df[(df.time <= m + 6 * 3600) | (df.time >= m + (6 + gap_h) * 3600)]
    res = detect_leaks(df, DAY, PARIS, P)
    cf = rule(res, "g", LeakRule.CONTINUOUS_FLOW)
    assert cf.coverage == pytest.approx((24 - gap_h) / 24) and cf.status == status
    burst, abnormal = rule(res, "g", LeakRule.BURST), rule(res, "g", LeakRule.ABNORMAL_CONSUMPTION)
    if status == "leak":
        assert burst.status == "ok" and abnormal.detail == "history"
    else:
        assert cf.detail == burst.detail == abnormal.detail == "coverage 0.750 < 0.800"
        assert burst.status == abnormal.status == "insufficient_data"
    assert rule(res, "g", LeakRule.METER_FLAG).status == "leak"  # evaluated whatever the coverage


def test_expected_meter_without_data_is_insufficient_on_every_rule():
    res = detect_leaks(meter("a", DAY, 60, household), DAY, PARIS, P, meter_ids=["a", "ghost"])
    ghost = res[res.meter_id == "ghost"]
    assert list(ghost.rule) == [str(r) for r in LeakRule]
    assert (ghost.status == "insufficient_data").all() and (ghost.detail == "no readings").all()
    assert (ghost.coverage == 0.0).all() and ghost.volume_l.isna().all()


def test_rollover_and_replacement_during_the_day():
    m = local_midnight(DAY, PARIS)
    roll = meter("roll", DAY, 60, constant(2.0), index0=99999.99)
    roll["index_m3"] %= 100_000.0  # a 5-digit register wraps around 02:00
    repl = meter("repl", DAY, 60, constant(2.0))
    after = repl.time >= m + 12 * 3600
    repl.loc[after, "index_m3"] -= repl.loc[after, "index_m3"].iloc[0] - 0.001  # new meter from noon
    res = detect_leaks(fleet(roll, repl), DAY, PARIS, P)
    r = rule(res, "roll", LeakRule.CONTINUOUS_FLOW)
    assert roll.index_m3.min() < 1 and r.status == "leak" and r.rate_l_per_h == pytest.approx(2.0)
    assert r.volume_l == pytest.approx(48.0)
    p = rule(res, "repl", LeakRule.CONTINUOUS_FLOW)
    assert p.coverage == pytest.approx(23 / 24) and p.status == "leak" and p.volume_l == pytest.approx(46.0)


def history_of(mid: str, day: date, volumes: list[float]) -> pd.DataFrame:
    """Daily volumes for the days just before ``day`` (the last value is the day before)."""
    n = len(volumes)
    return pd.DataFrame({"meter_id": mid, "day": [day - timedelta(days=n - i) for i in range(n)],
                         "volume_l": volumes, "coverage": 1.0})


def test_abnormal_consumption_against_comparable_periods():
    df = fleet(meter("leaky", DAY, 60, constant(40.0)), meter("steady", DAY, 60, constant(10.0)),
               meter("young", DAY, 60, constant(40.0)), meter("tiny", DAY, 60, constant(1.0)))
    hist = pd.concat([
        history_of("leaky", DAY, [240.0] * 21 + [960.0] * 6),   # 4x the usual volume this week
        history_of("steady", DAY, [240.0] * 27),
        history_of("young", DAY, [240.0] * 10),                  # too little history
        history_of("tiny", DAY, [8.0] * 21 + [24.0] * 6),        # 3x, but 16 L/day is below 100 L/day
    ])
    res = detect_leaks(df, DAY, PARIS, P, history=hist)
    leaky = rule(res, "leaky", LeakRule.ABNORMAL_CONSUMPTION)
    assert leaky.status == "leak" and "6720 L > 2 × average 1680 L" in leaky.detail
    assert leaky.rate_l_per_h == pytest.approx((6720 - 1680) / (7 * 24))
    assert rule(res, "steady", LeakRule.ABNORMAL_CONSUMPTION).status == "ok"
    young = rule(res, "young", LeakRule.ABNORMAL_CONSUMPTION)
    assert young.status == "insufficient_data" and young.detail == "history"
    assert rule(res, "tiny", LeakRule.ABNORMAL_CONSUMPTION).status == "ok"


def test_abnormal_consumption_tolerates_a_missing_day_but_not_a_missing_week():
    df = meter("m", DAY, 60, constant(40.0))
    vols = [240.0] * 21 + [960.0] * 6
    one_hole = history_of("m", DAY, vols).drop(index=[3])                  # 6 of 7 days ≥ 0.8
    week_hole = history_of("m", DAY, vols).drop(index=[0, 1, 2, 3, 4, 5])  # 1 of 7 days
    assert rule(detect_leaks(df, DAY, PARIS, P, history=one_hole), "m", LeakRule.ABNORMAL_CONSUMPTION).status == "leak"
    assert rule(detect_leaks(df, DAY, PARIS, P, history=week_hole), "m",
                LeakRule.ABNORMAL_CONSUMPTION).detail == "history"


def test_meter_flags_of_the_day():
    m = local_midnight(DAY, PARIS)
    flagged = meter("f", DAY, 60, household)
    flagged.loc[flagged.time == m + 5 * 3600, "alarms"] = "LOW_BATTERY REVERSE_FLOW"
    flagged.loc[flagged.time == m + 9 * 3600, "alarms"] = "LEAK"
    before = meter("b", DAY, 60, household)
    before.loc[before.time == m - 3600, "alarms"] = "BURST"  # previous day: not this day's flag
    battery = meter("bat", DAY, 60, household, alarms="LOW_BATTERY")
    res = detect_leaks(fleet(flagged, before, battery), DAY, PARIS, P)
    f = rule(res, "f", LeakRule.METER_FLAG)
    assert f.status == "leak" and f.detail == "LEAK REVERSE_FLOW"
    assert rule(res, "b", LeakRule.METER_FLAG).status == "ok"
    assert rule(res, "bat", LeakRule.METER_FLAG).status == "ok"
    without = detect_leaks(flagged.drop(columns="alarms"), DAY, PARIS, P)
    assert str(LeakRule.METER_FLAG) not in set(without.rule)


def mixed_fleet(day: date) -> tuple[pd.DataFrame, pd.DataFrame]:
    m = local_midnight(day, PARIS)
    frames = [meter("drip", day, 60, constant(2.0)), meter("home", day, 15, household),
              meter("burst", day, 15, lambda t: household(t) + np.where(
                  (t >= m + 14 * 3600) & (t < m + 15 * 3600), 900.0, 0.0)),
              meter("roll", day, 15, constant(5.0), index0=99999.95),
              meter("gappy", day, 60, constant(3.0)).iloc[::5], meter("flag", day, 60, household, alarms="LEAK")]
    hist = pd.concat([history_of(f.meter_id.iloc[0], day, [100.0] * 27) for f in frames])
    return fleet(*frames), hist


def test_results_do_not_depend_on_the_other_meters():
    df, hist = mixed_fleet(DAY)
    shuffled = df.sample(frac=1.0, random_state=3).reset_index(drop=True)
    together = detect_leaks(shuffled, DAY, PARIS, P, history=hist, meter_ids=["ghost"])
    alone = pd.concat([detect_leaks(g, DAY, PARIS, P, history=hist) for _, g in df.groupby("meter_id")]
                      + [detect_leaks(df.iloc[:0], DAY, PARIS, P, history=hist, meter_ids=["ghost"])])
    alone = alone.sort_values("meter_id", kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(together, alone)
    assert set(together.status) == {"leak", "ok", "insufficient_data"}


def test_results_do_not_depend_on_row_order():
    """read_indices sorts by meter; read_window, its flags and read_history come in InfluxDB's order
    (by time). Both orders take different paths (neighbour runs or hashing) to the same results."""
    df, hist = mixed_fleet(DAY)
    # Enough meters that each day of history is a long run, as read_history returns it.
    hist = pd.concat([hist] + [history_of(f"z{i:03d}", DAY, [100.0] * 27) for i in range(100)])
    by_meter = df.sort_values(["meter_id", "time"], kind="stable").reset_index(drop=True)
    by_time = df.sort_values(["time", "meter_id"], kind="stable").reset_index(drop=True)
    flags = by_time.loc[by_time.alarms != "", ["meter_id", "time", "alarms"]].reset_index(drop=True)
    expected = detect_leaks(by_meter, DAY, PARIS, P, history=hist.sort_values(["meter_id", "day"], kind="stable"))
    got = detect_leaks(by_time[["meter_id", "time", "index_m3"]], DAY, PARIS, P, alarms=flags,
                       history=hist.sort_values(["day", "meter_id"], kind="stable"))
    pd.testing.assert_frame_equal(got, expected)
    assert set(expected.rule[expected.status == "leak"]) == {str(r) for r in LeakRule}


def test_flags_of_unknown_or_missing_meters_are_ignored():
    m = local_midnight(DAY, PARIS)
    df = meter("a", DAY, 60, household).drop(columns="alarms")
    flags = pd.DataFrame({"meter_id": pd.Series(["a", "ghost", None], dtype=str), "time": [m + 3600] * 3,
                          "alarms": ["LEAK", "BURST", "REVERSE_FLOW"]})
    res = detect_leaks(df, DAY, PARIS, P, alarms=flags)
    assert list(res.meter_id.unique()) == ["a"]
    assert rule(res, "a", LeakRule.METER_FLAG).detail == "LEAK"


def test_check_results_and_params():
    df, hist = mixed_fleet(DAY)
    res = detect_leaks(df, DAY, PARIS, P, history=hist)
    records = to_check_results(res)
    assert len(records) == len(res) and all(isinstance(c, CheckResult) for c in records)
    c = next(c for c in records if c.meter_id == "home" and c.rule is LeakRule.BURST)
    assert c.status is CheckStatus.OK and c.rate_l_per_h is None and c.day == DAY
    assert LeakParams.from_settings(Settings(burst_flow_l_per_h=800.0)).burst_flow_l_per_h == 800.0
    with pytest.raises(ValueError, match="min_coverage"):
        LeakParams(min_coverage=1.5)


def test_daily_volumes_are_the_history_shape():
    df = fleet(meter("a", date(2026, 10, 25), 15, constant(2.0)))
    dv = daily_volumes(df, date(2026, 10, 24), date(2026, 10, 26), PARIS, P)
    assert list(dv.columns) == ["meter_id", "day", "volume_l", "coverage"]
    assert list(dv.day) == [date(2026, 10, 24), date(2026, 10, 25), date(2026, 10, 26)]
    np.testing.assert_allclose(dv.volume_l, [6.0, 50.0, 6.0])
    np.testing.assert_allclose(dv.coverage, [3 / 24, 1.0, 3 / 24])


def readings_of(df: pd.DataFrame) -> list[MeterReading]:
    return [MeterReading(r.meter_id, datetime.fromtimestamp(int(r.time), timezone.utc), float(r.index_m3),
                         alarms=tuple(r.alarms.split())) for r in df.itertuples()]


def test_run_leak_check_reads_computes_and_stores(influx_store):
    settings = Settings(timezone="Europe/Paris", abnormal_period_days=1, abnormal_history_periods=1)
    day1, day2 = DAY, DAY + timedelta(days=1)
    df = fleet(meter("drip", day1, 60, constant(2.0)), meter("home", day1, 15, household),
               meter("drip", day2, 60, constant(2.0)), meter("home", day2, 15, household, alarms="REVERSE_FLOW"))
    write_readings(influx_store, readings_of(df.drop_duplicates(["meter_id", "time"])))

    first = run_leak_check(influx_store, day1, settings, meter_ids=["ghost"])
    assert {(c.meter_id, c.rule, c.status) for c in first if c.status is CheckStatus.LEAK} == {
        ("drip", LeakRule.CONTINUOUS_FLOW, CheckStatus.LEAK)}
    stored = {(c.meter_id, c.rule): c for c in read_checks(influx_store, day1, day1, PARIS)}
    assert set(stored) == {(c.meter_id, c.rule) for c in first} and len(first) == 12
    for c in first:
        s = stored[(c.meter_id, c.rule)]
        assert (s.status, s.detail, s.day) == (c.status, c.detail, day1)
        assert s.volume_l == pytest.approx(c.volume_l) and s.rate_l_per_h == pytest.approx(c.rate_l_per_h)
    ab = {c.meter_id: c for c in first if c.rule is LeakRule.ABNORMAL_CONSUMPTION}
    assert ab["drip"].detail == "history"  # nothing stored before day 1

    one, flags = read_window(influx_store, day2, PARIS, P, slices=1)
    three, flags3 = read_window(influx_store, day2, PARIS, P, slices=3)
    # Ids parsed into categories (sorted), also when slices are joined.
    assert all(isinstance(f.meter_id.dtype, pd.CategoricalDtype) and f.meter_id.cat.categories.is_monotonic_increasing
               for f in (one, three))
    key = ["meter_id", "time"]
    pd.testing.assert_frame_equal(one.sort_values(key, ignore_index=True), three.sort_values(key, ignore_index=True))
    written = df.drop_duplicates(key)
    window = written[(written.time >= local_midnight(day2, PARIS) - 3 * 3600)
                     & (written.time < local_midnight(day2 + timedelta(days=1), PARIS) + 3 * 3600)]
    assert len(one) == len(window)
    assert set(flags.alarms) == {"REVERSE_FLOW"} and len(flags) == len(flags3) == (window.alarms != "").sum() > 0

    hist = read_history(influx_store, day1, day1, PARIS)
    assert set(hist.meter_id) == {"drip", "home", "ghost"} and set(hist.day) == {day1}
    assert isinstance(hist.meter_id.dtype, pd.CategoricalDtype) and isinstance(hist.day.dtype, pd.CategoricalDtype)

    both = run_leak_checks(influx_store, day1, day2, settings)
    assert [c.day for c in both] == [day1] * 8 + [day2] * 8
    second = {(c.meter_id, c.rule): c for c in both if c.day == day2}
    assert second[("drip", LeakRule.ABNORMAL_CONSUMPTION)].status is CheckStatus.OK  # day 1 is its history
    assert second[("home", LeakRule.METER_FLAG)].status is CheckStatus.LEAK
    assert second[("home", LeakRule.METER_FLAG)].detail == "REVERSE_FLOW"
