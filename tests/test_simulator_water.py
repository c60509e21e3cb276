"""Water fleet simulator: household profiles, injected faults and their ground truth, publishing."""

from __future__ import annotations

import itertools
import json
import time
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from services import Subscriber
from vigie.db import make_engine, make_sessionmaker
from vigie.registry import Household, Person, load_registry_file
from vigie.simulators.publish import PublishError, WmbusReading, publish_readings, topic_of, wmbus_payload
from vigie.simulators.water import (REGISTER_CAPACITY_L, Duplicates, Gap, Leak, OutOfOrder, Replacement,
                                    WaterSimConfig, days_fully_covered, e2e_scenario, parse_leak_spec, plan_fleet,
                                    simulate, write_registry)

TZ = "Europe/Paris"
PARIS = ZoneInfo(TZ)
START = date(2026, 10, 12)  # 30 days from here hold the 2026-10-25 fall-back


@pytest.fixture(scope="module")
def e2e():
    return simulate(e2e_scenario(seed=7))


@pytest.fixture(scope="module")
def small():
    """30 meters × 10 days without faults; the same fleet and households get faults below."""
    cfg = WaterSimConfig(meters=30, days=10, start=START, seed=3, share_empty=0.0, share_away=0.0)
    return cfg, simulate(cfg)


def intervals(result):
    """Consecutive readings per meter: (meter, start s, end s, litres), rollovers unwrapped."""
    r = result.readings.sort_values(["meter_index", "time"], kind="stable")
    m = r["meter_index"].to_numpy()
    t = r["time"].to_numpy(dtype="datetime64[s]").astype(np.int64)
    v = np.round(r["index_m3"].to_numpy() * 1000).astype(np.int64)
    same = m[1:] == m[:-1]
    litres = (v[1:] - v[:-1])[same]
    litres = np.where(litres < -REGISTER_CAPACITY_L // 2, litres + REGISTER_CAPACITY_L, litres)
    return m[:-1][same], t[:-1][same], t[1:][same], litres


def day_edges(result):
    days = result.local_days() + [result.local_days()[-1] + timedelta(days=1)]
    return np.array([int(datetime.combine(d, datetime.min.time(), tzinfo=PARIS).timestamp()) for d in days])


def fault_free(result) -> np.ndarray:
    faulty = {f.meter_index for f in result.faults if f.kind in ("leak", "gap", "replacement")}
    return np.array([m.index not in faulty for m in result.meters])


def local_hour(t: np.ndarray) -> np.ndarray:
    return np.array([datetime.fromtimestamp(x, PARIS).hour for x in t.tolist()])


# --- the fleet as a whole ----------------------------------------------------------------------

def test_e2e_fleet_has_every_reading_of_30_days(e2e):
    result = e2e
    per_meter = result.readings.groupby("meter_index", observed=True).size()
    for m in result.meters:
        expected = 30 * 24 * 60 / m.interval_min  # 25-hour fall-back day: one hour more
        gap = next((f.params["readings_missing"] for f in result.faults
                    if f.kind == "gap" and f.meter_index == m.index), 0)
        assert expected <= per_meter[m.index] + gap <= expected + 60 / m.interval_min + 2
    assert result.readings["time"].is_monotonic_increasing
    assert set(result.readings["meter_id"].astype(str)) == {m.meter_id for m in result.meters}
    assert all(len(m.meter_id) == 8 and int(m.meter_id, 16) >= 0 for m in result.meters)


def test_e2e_scenario_takes_a_smaller_fleet_and_refuses_one_too_small():
    cfg = e2e_scenario(seed=7, meters=120)
    assert cfg.meters == 120
    faulty = [f.meter for f in cfg.faults if hasattr(f, "meter") and f.meter is not None]
    leaks = [f for f in cfg.faults if type(f).__name__ == "Leak"]
    assert len(leaks) == 6 and len(set(f.meter for f in leaks)) == 6
    assert len(set(faulty) - {f.meter for f in leaks}) >= 3   # gaps and the replacement on meters of their own
    with pytest.raises(ValueError, match="no meter left"):
        e2e_scenario(seed=7, meters=8)


def test_fault_free_household_always_has_a_quiet_interval_each_local_day(e2e):
    """The property the e2e test relies on: the continuous-flow rule never fires without a leak."""
    result = e2e
    m, s, e, litres = intervals(result)
    edges = day_edges(result)
    ds = np.searchsorted(edges, s, side="right") - 1
    de = np.searchsorted(edges, e, side="left") - 1
    inside = (ds == de) & (ds >= 0) & (ds < len(edges) - 1)  # strictest: only intervals within the day
    zero = np.zeros((len(result.meters), len(edges) - 1), dtype=bool)
    np.logical_or.at(zero, (m[inside], ds[inside]), litres[inside] == 0)
    ok = fault_free(result)
    assert zero[ok].all(), np.argwhere(~zero & ok[:, None])[:5]


def test_fault_free_household_never_sustains_a_burst_flow(e2e):
    result = e2e
    m, s, e, litres = intervals(result)
    ok = fault_free(result)[m]
    rate = litres / ((e - s) / 3600)
    above = ok & (rate > 500)
    # Runs of consecutive above-500 L/h intervals of one meter, by their total duration.
    follows = np.zeros(len(above), dtype=bool)
    follows[1:] = above[:-1] & (m[1:] == m[:-1])
    run = np.cumsum(above & ~follows)
    run_s = np.bincount(run[above], weights=(e - s)[above])
    assert (run_s < 30 * 60).all(), run_s.max()


def test_fault_free_weekly_volume_stays_below_twice_the_previous_weeks(e2e):
    result = e2e
    m, s, e, litres = intervals(result)
    edges = day_edges(result)
    day = np.searchsorted(edges, e, side="left") - 1  # a day's volume: intervals ending in it
    inside = (day >= 0) & (day < len(edges) - 1)
    vol = np.zeros((len(result.meters), len(edges) - 1))
    np.add.at(vol, (m[inside], day[inside]), litres[inside])
    ok = fault_free(result)
    for d in range(27, 30):  # the days with 3 previous weeks of history
        current = vol[:, d - 6:d + 1].sum(axis=1)
        average = sum(vol[:, d - 6 - 7 * k:d + 1 - 7 * k].sum(axis=1) for k in (1, 2, 3)) / 3
        abnormal = (current > 2 * average) & (current - average > 7 * 100)
        assert not abnormal[ok].any()


def test_household_profiles_night_peaks_weekends_and_empty_homes(e2e):
    result = e2e
    m, s, e, litres = intervals(result)
    occupied = np.array([not p.empty for p in result.meters]) & fault_free(result)
    quarter = occupied[m] & (e - s == 900)
    m, s, litres = m[quarter], s[quarter], litres[quarter]
    hour = local_hour(s)
    weekend = np.array([datetime.fromtimestamp(x, PARIS).weekday() >= 5 for x in s.tolist()])

    night = (hour >= 1) & (hour < 5)
    assert (litres[night] == 0).mean() > 0.95   # asleep
    assert (litres[night] > 0).any()            # … but the odd night flush
    per_hour = np.bincount(hour[~weekend], weights=litres[~weekend], minlength=24)
    morning, evening = per_hour[6:9].max(), per_hour[18:22].max()
    assert morning > 3 * per_hour[14:17].mean() and evening > 1.5 * per_hour[14:17].mean()
    assert per_hour[2:5].sum() < 0.02 * per_hour.sum()
    # Weekends: the morning peak comes later.
    wd, we = per_hour, np.bincount(hour[weekend], weights=litres[weekend], minlength=24)
    assert np.argmax(we[5:12]) > np.argmax(wd[5:12])
    # Volumes: 1–5 people, ~100–150 L per person and day indoors.
    days = 30
    daily = np.bincount(m, weights=litres, minlength=len(result.meters)) / days
    people = np.array([p.people for p in result.meters])
    quarterly = occupied & np.array([p.interval_min == 15 for p in result.meters])
    per_person = daily[quarterly] / people[quarterly]
    assert 70 < np.median(per_person) < 160
    assert set(people) == {1, 2, 3, 4, 5}
    # Empty homes (no fault) read the same index all month.
    idx = result.readings.groupby("meter_index", observed=True)["index_m3"].agg(["min", "max"])
    empty = [p.index for p in result.meters if p.empty and fault_free(result)[p.index]]
    assert empty and (idx.loc[empty, "min"] == idx.loc[empty, "max"]).all()


def test_same_seed_same_fleet_other_seed_other_fleet():
    cfg = WaterSimConfig(meters=20, days=5, start=START, seed=11, faults=[Duplicates(count=2, share=0.2)])
    a, b = simulate(cfg), simulate(cfg)
    assert a.readings.equals(b.readings)
    assert np.array_equal(a.publish_order, b.publish_order)
    assert a.ground_truth() == b.ground_truth()
    c = simulate(WaterSimConfig(meters=20, days=5, start=START, seed=12))
    assert [m.meter_id for m in c.meters] != [m.meter_id for m in a.meters]


# --- faults ------------------------------------------------------------------------------------

def test_leak_adds_its_rate_to_the_index_and_nothing_else(small):
    cfg, base = small
    start = datetime(2026, 10, 14, 13, 20)  # local
    leaky = simulate(WaterSimConfig(**{**cfg.__dict__, "faults": [Leak(4, 25.0, start), Leak(9, 3.0, start)]}))
    a = base.readings.set_index(["meter_index", "time"])["index_m3"]
    b = leaky.readings.set_index(["meter_index", "time"])["index_m3"]
    diff_l = ((b - a) * 1000).round()
    assert (diff_l.drop([4, 9], level=0) == 0).all()  # other households untouched
    t0 = start.replace(tzinfo=PARIS).timestamp()
    for meter, rate in ((4, 25.0), (9, 3.0)):
        d = diff_l.loc[meter]
        secs = d.index.to_numpy(dtype="datetime64[s]").astype(np.int64)
        expected = np.clip(secs - t0, 0, None) / 3600 * rate
        assert np.abs(d.to_numpy() - expected).max() <= 1.0  # 1 L index resolution
    truth = {f.meter_index: f for f in leaky.faults}
    assert truth[4].kind == "leak" and truth[4].params["rate_l_per_h"] == 25.0 and truth[4].end is None
    assert truth[4].start == start.replace(tzinfo=PARIS).astimezone(timezone.utc)
    assert truth[4].days_fully_covered == tuple(date(2026, 10, d) for d in range(15, 22))
    assert truth[4].days_partially_covered == (date(2026, 10, 14),)
    assert truth[4].params["category"] == "running_toilet" and truth[9].params["category"] == "drip"


def test_leak_with_meter_alarm_sets_flags_and_driver(small):
    cfg, base = small
    start, end = datetime(2026, 10, 15, 8, 0), datetime(2026, 10, 16, 8, 0)
    r = simulate(WaterSimConfig(**{**cfg.__dict__, "faults": [Leak(2, 800.0, start, end, alarm="BURST")]}))
    assert r.meters[2].driver == "kamwater"
    rows = r.readings[r.readings["meter_index"] == 2]
    t0, t1 = (x.replace(tzinfo=PARIS).astimezone(timezone.utc) for x in (start, end))
    during = (rows["time"] >= t0) & (rows["time"] <= t1)
    assert (rows.loc[during, "alarms"] == "BURST").all() and (rows.loc[~during, "alarms"] == "").all()
    assert (r.readings.loc[r.readings["meter_index"] != 2, "alarms"] == "").all()
    assert r.faults[0].params["meter_alarm"] == "BURST"
    msgs = [x for x in r.published() if x.meter_id == r.meters[2].meter_id and x.alarms]
    assert msgs and wmbus_payload(msgs[0])["status"] == "BURST"


def test_replacement_restarts_the_index_near_zero(small):
    cfg, base = small
    at = datetime(2026, 10, 17, 10, 15)
    r = simulate(WaterSimConfig(**{**cfg.__dict__, "faults": [Replacement(5, at)]}))
    rows = r.readings[r.readings["meter_index"] == 5]
    t_at = at.replace(tzinfo=PARIS).astimezone(timezone.utc)
    before, after = rows[rows["time"] < t_at]["index_m3"], rows[rows["time"] >= t_at]["index_m3"]
    truth = r.faults[0]
    assert truth.kind == "replacement" and truth.start == t_at
    assert before.iloc[-1] == truth.params["old_index_m3"] > 1.0
    assert 0.0 <= after.iloc[0] - truth.params["new_index_m3"] < 0.1 and truth.params["new_index_m3"] <= 0.05
    assert before.is_monotonic_increasing and after.is_monotonic_increasing
    # The new meter counts the household's consumption from then on.
    old = base.readings[(base.readings["meter_index"] == 5) & (base.readings["time"] >= t_at)]["index_m3"]
    assert abs((after.iloc[-1] - after.iloc[0]) - (old.iloc[-1] - old.iloc[0])) <= 0.002


def test_gap_removes_readings_for_its_hours(small):
    cfg, base = small
    start = datetime(2026, 10, 16, 22, 0)
    r = simulate(WaterSimConfig(**{**cfg.__dict__, "faults": [Gap(7, start, 8.0)]}))
    g0 = start.replace(tzinfo=PARIS).astimezone(timezone.utc)
    g1 = g0 + timedelta(hours=8)
    rows = r.readings[r.readings["meter_index"] == 7]["time"]
    assert not ((rows >= g0) & (rows < g1)).any()
    base_rows = base.readings[base.readings["meter_index"] == 7]["time"]
    missing = int(((base_rows >= g0) & (base_rows < g1)).sum())
    assert missing == 8 * 60 // r.meters[7].interval_min
    assert r.faults[0].params["readings_missing"] == missing == len(base_rows) - len(rows)
    assert r.faults[0].params["local_days"] == ["2026-10-16", "2026-10-17"]
    assert len(r.readings) == len(base.readings) - missing


def test_duplicates_and_late_messages_in_publish_order(small):
    cfg, base = small
    r = simulate(WaterSimConfig(**{**cfg.__dict__, "faults": [Duplicates(count=3, share=0.2),
                                                              Duplicates(count=2, meter=1),
                                                              OutOfOrder(3, count=4)]}))
    assert r.readings.equals(base.readings)  # the same readings, only published differently
    order = r.publish_order
    dup_truth = [f for f in r.faults if f.kind == "duplicates"]
    assert len(dup_truth) == 6 + 1 and sum(f.params["count"] for f in dup_truth) == 6 * 3 + 2
    assert len(order) == len(r.readings) + 20
    assert set(np.bincount(order, minlength=len(r.readings))) == {1, 2}
    # A duplicate follows its original immediately (after messages of the same second).
    times = r.readings["time"].to_numpy(dtype="datetime64[s]").astype(np.int64)
    pos = {}
    for p, row in enumerate(order.tolist()):
        pos.setdefault(row, []).append(p)
    for f in dup_truth:
        for t in f.params["times_utc"]:
            row = int(np.flatnonzero((times == int(datetime.fromisoformat(t).timestamp()))
                                     & (r.readings["meter_index"].to_numpy() == f.meter_index))[0])
            first, second = pos[row]
            assert all(times[x] == times[row] for x in order[first:second])
    # A late message comes after later readings of its meter.
    late = next(f for f in r.faults if f.kind == "out_of_order")
    assert late.meter_index == 3 and late.params["count"] == 4
    mine = [row for row in order.tolist() if r.readings["meter_index"].iat[row] == 3]
    published_times = times[mine]
    assert (np.diff(published_times) < 0).sum() == 4
    for msg in late.params["messages"]:
        t, after = (int(datetime.fromisoformat(x).timestamp()) for x in (msg["time_utc"], msg["published_after_utc"]))
        i = list(published_times).index(t)
        assert after in published_times[:i] and after > t


def test_days_fully_covered_by_local_midnights_across_dst():
    # Fall-back day 2026-10-25 (25 h) and spring-forward day 2026-03-29 (23 h), naive = local.
    assert days_fully_covered(datetime(2026, 10, 24, 0, 0), datetime(2026, 10, 26, 0, 0), TZ) \
        == [date(2026, 10, 24), date(2026, 10, 25)]
    # Ends one second before the local midnight ending the 25-hour day: that day is not covered.
    end = datetime(2026, 10, 25, 23, 0, tzinfo=timezone.utc) - timedelta(seconds=1)
    assert days_fully_covered(datetime(2026, 10, 24, 12, 0), end, TZ) == []
    assert days_fully_covered(datetime(2026, 10, 24, 12, 0), end + timedelta(seconds=1), TZ) == [date(2026, 10, 25)]
    # 24 real hours from local midnight do not cover the 25-hour day (UTC arithmetic: aware
    # datetimes in one zone add wall-clock time).
    start = datetime(2026, 10, 25, 0, 0, tzinfo=PARIS).astimezone(timezone.utc)
    assert days_fully_covered(start, start + timedelta(hours=24), TZ) == []
    assert days_fully_covered(start, start + timedelta(hours=25), TZ) == [date(2026, 10, 25)]
    spring = datetime(2026, 3, 29, 0, 0, tzinfo=PARIS).astimezone(timezone.utc)
    assert days_fully_covered(spring, spring + timedelta(hours=23), TZ) == [date(2026, 3, 29)]
    assert days_fully_covered(datetime(2026, 3, 28, 23, 59), datetime(2026, 3, 31, 0, 1), TZ) \
        == [date(2026, 3, 29), date(2026, 3, 30)]


def test_e2e_ground_truth_file(e2e, tmp_path):
    result = e2e
    path = tmp_path / "truth.json"
    result.write_ground_truth(path)
    truth = json.loads(path.read_text(encoding="utf-8"))
    assert truth["timezone"] == TZ and truth["days"] == 30 and truth["start"] == "2026-10-12"
    assert truth["messages"] == len(result.publish_order) > truth["readings"] == len(result.readings)
    kinds = [f["kind"] for f in truth["faults"]]
    assert kinds.count("leak") == 6 and kinds.count("gap") == 2 and kinds.count("replacement") == 1
    assert kinds.count("duplicates") == 10 and kinds.count("out_of_order") == 4
    leaks = [f for f in truth["faults"] if f["kind"] == "leak"]
    assert sorted(f["params"]["rate_l_per_h"] for f in leaks) == [2, 4, 15, 25, 150, 600]
    assert len({f["meter_id"] for f in truth["faults"] if f["kind"] in ("leak", "gap", "replacement")}) == 9
    for f in leaks:
        assert f["days_fully_covered"] and f["days_continuous_flow"] == f["days_fully_covered"]
        assert f["params"]["litres_per_interval"] >= 2
        first = f["days_fully_covered"][0]
        assert f["days_partially_covered"][0] < first
    # The leak over the fall-back day adds 25 hours of flow to it.
    four = next(f for f in leaks if f["params"]["rate_l_per_h"] == 4)
    assert four["params"]["added_l_per_local_day"]["2026-10-25"] == 100.0
    assert "2026-10-25" in four["days_fully_covered"]
    repaired = next(f for f in leaks if f["params"]["rate_l_per_h"] == 150)
    assert repaired["end_utc"] is not None and repaired["days_fully_covered"] == ["2026-11-04"]
    assert [m["meter_id"] for m in truth["meters"]] == [m.meter_id for m in result.meters]
    empty_leak = next(f for f in leaks if f["params"]["rate_l_per_h"] == 15)
    assert truth["meters"][empty_leak["meter_index"]]["empty"]
    assert sum(m["rollover"] for m in truth["meters"]) == 1


def test_rollover_meter_wraps_to_zero(e2e):
    result = e2e
    i = next(m.index for m in result.meters if m.start_index_l >= REGISTER_CAPACITY_L - 1000)
    idx = result.readings.loc[result.readings["meter_index"] == i, "index_m3"].to_numpy()
    assert idx[0] > 99_998 and idx[-1] < 1_000 and (np.diff(idx) < 0).sum() == 1


def test_registry_file_loads_into_the_registry(small, tmp_path, sqlite_url):
    _, result = small
    path = tmp_path / "registry.yaml"
    write_registry(result, path, email_domain="commune.test")
    session = make_sessionmaker(make_engine(sqlite_url))()
    counts = load_registry_file(session, path)
    assert counts == {"households": 30, "meters": 30, "persons": 30}
    p = session.get(Person, "p-0001")
    assert p.name == "Résident 0001" and p.email == "resident-0001@commune.test" and p.language in ("fr", "en")
    hh = session.get(Household, "h-0001")
    assert [m.id for m in hh.meters] == [result.meters[0].meter_id]
    assert hh.meters[0].driver == result.meters[0].driver


def test_bad_faults_are_refused_with_the_reason():
    base = dict(meters=5, days=3, start=START, seed=1)
    with pytest.raises(ValueError, match="outside the fleet"):
        simulate(WaterSimConfig(**base, faults=[Leak(9, 3.0, datetime(2026, 10, 13))]))
    with pytest.raises(ValueError, match="no meter with id"):
        simulate(WaterSimConfig(**base, faults=[Gap("deadbeef0", datetime(2026, 10, 13), 3)]))
    with pytest.raises(ValueError, match="outside the simulated period"):
        simulate(WaterSimConfig(**base, faults=[Leak(1, 3.0, datetime(2026, 11, 30))]))
    with pytest.raises(ValueError, match="must be > 0"):
        simulate(WaterSimConfig(**base, faults=[Leak(1, 0.0, datetime(2026, 10, 13))]))
    with pytest.raises(ValueError, match="exactly one of meter, share"):
        simulate(WaterSimConfig(**base, faults=[Duplicates(count=1)]))
    with pytest.raises(ValueError, match="intervals_min"):
        WaterSimConfig(intervals_min=(0,))


def test_parse_leak_spec():
    leak = parse_leak_spec("17:4.5:2026-10-20T14:00")
    assert leak == Leak(17, 4.5, datetime(2026, 10, 20, 14, 0))
    aware = parse_leak_spec("3:600:2026-10-20T14:00:00+00:00")
    assert aware.start.utcoffset() == timedelta(0)
    for bad in ("17:4", "x:4:2026-10-20T14:00", "1:-2:2026-10-20T14:00", "1:4:tomorrow"):
        with pytest.raises(ValueError, match="--leak"):
            parse_leak_spec(bad)


def test_plan_fleet_ignores_faults():
    a = plan_fleet(WaterSimConfig(meters=50, days=5, start=START, seed=5))
    b = plan_fleet(WaterSimConfig(meters=50, days=5, start=START, seed=5, faults=[Gap(0, datetime(2026, 10, 13), 2)]))
    assert a == b
    assert {m.interval_min for m in a} == {15, 30, 60}
    assert {m.driver for m in a} == {"izar", "kamwater", "iperl", "apator162"}


# --- wmbusmeters payloads and publishing ----------------------------------------------------------

def test_wmbus_payload_per_driver():
    t = datetime(2026, 3, 14, 7, 42, 10, tzinfo=timezone.utc)
    kam = wmbus_payload(WmbusReading("71234567", t, 152.417, "kamwater", ("LEAK",)))
    assert kam == {"_": "telegram", "media": "cold water", "meter": "kamwater", "name": "71234567",
                   "id": "71234567", "total_m3": 152.417, "status": "LEAK", "current_status": "LEAK",
                   "timestamp": "2026-03-14T07:42:10Z"}
    assert wmbus_payload(WmbusReading("71234567", t, 1.0, "kamwater"))["status"] == "OK"
    izar = wmbus_payload(WmbusReading("2a31f0c4", t, 87.315, "izar", name="Maison_14"))
    assert izar["current_alarms"] == "no_alarm" and izar["name"] == "Maison_14" and izar["id"] == "2a31f0c4"
    assert wmbus_payload(WmbusReading("2a31f0c4", t, 87.315, "izar", ("LEAK",)))["current_alarms"] == "leakage"
    iperl = wmbus_payload(WmbusReading("00123456", t, 0.001, "iperl"))
    assert iperl["id"] == "00123456" and "status" not in iperl and "current_alarms" not in iperl
    with pytest.raises(ValueError, match="reports no alarms"):
        wmbus_payload(WmbusReading("00123456", t, 1.0, "apator162", ("LEAK",)))
    with pytest.raises(ValueError, match="cannot report"):
        wmbus_payload(WmbusReading("2a31f0c4", t, 1.0, "izar", ("BURST",)))


def test_publish_2000_readings_to_mosquitto(e2e, mosquitto):
    result = e2e
    readings = list(itertools.islice(result.published(), 2000))
    sub = Subscriber(mosquitto.port)
    calls = []
    try:
        n = publish_readings(iter(readings), f"mqtt://127.0.0.1:{mosquitto.port}",
                             progress=lambda sent, acked: calls.append((sent, acked)))
        assert n == 2000
        got = sub.wait_for(2000)
    finally:
        sub.close()
    assert calls[0][0] == 1000 and calls[-1] == (2000, 2000)
    assert len(got) == 2000
    assert sorted(got) == sorted((topic_of(r), json.dumps(wmbus_payload(r), separators=(",", ":")).encode())
                                 for r in readings)
    drivers = {m.meter_id: m.driver for m in result.meters}
    for topic, payload in got:
        obj = json.loads(payload)
        assert obj["_"] == "telegram" and topic == f"wmbusmeters/{obj['id']}"
        assert isinstance(obj["id"], str) and len(obj["id"]) == 8
        assert obj["meter"] == drivers[obj["id"]]
        assert isinstance(obj["total_m3"], float) and obj["total_m3"] >= 0
        assert datetime.strptime(obj["timestamp"], "%Y-%m-%dT%H:%M:%SZ")
        if obj["meter"] == "kamwater":
            assert obj["status"] == "OK"
        if obj["meter"] == "izar":
            assert obj["current_alarms"] == "no_alarm"


def test_publish_paced_by_speed(mosquitto):
    t0 = datetime(2026, 10, 12, 0, 0, tzinfo=timezone.utc)
    readings = [WmbusReading("0000abcd", t0 + timedelta(minutes=15 * i), 1.0 + i / 1000) for i in range(5)]
    start = time.monotonic()
    # An hour of readings at 3600× takes one second of wall time.
    assert publish_readings(readings, f"mqtt://127.0.0.1:{mosquitto.port}", speed=3600) == 5
    assert 0.9 <= time.monotonic() - start < 5


def test_publish_to_an_absent_broker_fails_clearly():
    import services

    with pytest.raises(PublishError, match="cannot reach"):
        publish_readings([], f"mqtt://127.0.0.1:{services.free_port()}")
    with pytest.raises(ValueError, match="mqtt://host"):
        publish_readings([], "http://127.0.0.1:1")
