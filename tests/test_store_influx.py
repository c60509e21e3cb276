"""The store contract: every test taking ``any_store`` runs on the real influxd (v1 HTTP API) and on
the embedded SQLite store, and states what both must do."""

from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from vigie.records import CheckResult, CheckStatus, LeakRule, MeterReading
from vigie.store import StoreRejected, StoreUnavailable, InfluxStore
from vigie.store.water import read_checks, read_indices, write_checks, write_readings

UTC = timezone.utc


def test_same_reading_twice_leaves_one_point(any_store):
    r = MeterReading("0012ab", datetime(2026, 3, 1, 6, tzinfo=UTC), 12.5, alarms=("LEAK",), status_raw="LEAK")
    write_readings(any_store, [r])
    write_readings(any_store, [r, r])
    df = read_indices(any_store, datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC),
                      with_alarms=True)
    assert len(df) == 1
    row = df.iloc[0]
    assert row.meter_id == "0012ab"  # leading zeros kept: ids are strings
    assert row.index_m3 == 12.5 and row.alarms == "LEAK"
    assert row.time == int(r.time.timestamp())


def test_read_indices_filters_and_sorts(any_store):
    base = datetime(2026, 3, 1, tzinfo=UTC)
    rs = [MeterReading(m, base.replace(hour=h), float(h)) for h in (3, 1, 2) for m in ("b", "a", "1e5")]
    write_readings(any_store, rs)
    df = read_indices(any_store, base.replace(hour=2), base.replace(hour=4), ["a", "1e5"])
    assert list(df.meter_id) == ["1e5", "1e5", "a", "a"]
    assert list(df.index_m3) == [2.0, 3.0, 2.0, 3.0]


def test_empty_read_has_columns(any_store):
    df = read_indices(any_store, datetime(2020, 1, 1, tzinfo=UTC), datetime(2020, 1, 2, tzinfo=UTC))
    assert list(df.columns) == ["meter_id", "time", "index_m3"] and df.empty


def test_check_results_round_trip_on_local_days(any_store):
    tz = ZoneInfo("Europe/Paris")
    # 2026-03-29 is the 23-hour spring-forward day in Paris.
    c = CheckResult("m1", date(2026, 3, 29), LeakRule.CONTINUOUS_FLOW, CheckStatus.LEAK, rate_l_per_h=4.0,
                    night_flow_l_per_h=4.5, volume_l=250.0, coverage=1.0, detail='min flow "4" L/h')
    write_checks(any_store, [c, c], tz)
    assert read_checks(any_store, date(2026, 3, 29), date(2026, 3, 29), tz) == [c]
    assert read_checks(any_store, date(2026, 3, 30), date(2026, 3, 30), tz) == []


def test_bad_query_is_rejected(any_store):
    with pytest.raises(StoreRejected):
        any_store.query_csv("SELECT FROM")


def test_unreachable_server_is_unavailable():
    from services import free_port

    store = InfluxStore(f"http://127.0.0.1:{free_port()}", "x", timeout=2)
    assert not store.ping()
    with pytest.raises(StoreUnavailable):
        store.write_lines(["m v=1 1"])


def test_unopenable_embedded_file_is_unavailable(tmp_path):
    from vigie.store.embedded import EmbeddedStore

    (tmp_path / "file").write_text("")
    store = EmbeddedStore(tmp_path / "file" / "ts.sqlite3", "x")   # its directory is a file
    assert not store.ping()
    with pytest.raises(StoreUnavailable, match="cannot open"):
        store.write_lines(["m v=1 1"])


def test_retention_policies_are_created_and_kept_in_step(any_store, store_twin):
    from vigie.store.influx import RetentionPolicy

    assert any_store.retention_policies() == {
        "autogen": "0s", "vigie_raw": "0s", "vigie_aggregates": "0s", "vigie_events": "2160h0m0s"}
    assert any_store.policy_for("events") == "vigie_events" and any_store.policy_for("nope") is None
    shorter = store_twin(any_store, policies=[RetentionPolicy("vigie_events", "30d", "events")])
    shorter.ensure_database("730d")
    got = shorter.retention_policies()
    assert got["vigie_events"] == "720h0m0s" and got["vigie_raw"] == "17520h0m0s"
    default = shorter.query_json(f'SHOW RETENTION POLICIES ON "{any_store.database}"')[0]
    assert [r[0] for r in default["values"] if r[-1] is True] == ["vigie_raw"]  # writes' policy stays default


def test_events_older_than_their_retention_are_refused(any_store):
    now = int(datetime.now(UTC).timestamp())
    rp = any_store.policy_for("events")
    any_store.write_lines([f"home_event,home_id=h1 state=1i {now - 3600}"], retention_policy=rp)
    with pytest.raises(StoreRejected, match="retention"):
        any_store.write_lines([f"home_event,home_id=h1 state=1i {now - 100 * 86400}"], retention_policy=rp)
    rows = any_store.query_json(f"SELECT count(state) FROM {any_store.measurement('home_event', rp)}")
    assert rows[0]["values"][0][1] == 1
    assert any_store.query_json('SELECT count(state) FROM "home_event"') == []  # not in the raw policy


def test_bad_retention_duration_is_refused_with_its_name():
    from vigie.store.influx import RetentionPolicy

    with pytest.raises(ValueError, match="30m"):
        RetentionPolicy("x", "30m")


def test_reading_a_database_that_does_not_exist_is_an_error_not_no_data(any_store, store_twin):
    missing = store_twin(any_store, database="no_such_database_here")
    with pytest.raises(StoreRejected, match="no database 'no_such_database_here'") as err:
        read_indices(missing, datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC))
    assert err.value.status == 404
    assert read_indices(any_store, datetime(2020, 1, 1, tzinfo=UTC), datetime(2020, 1, 2, tzinfo=UTC)).empty


def test_check_results_live_in_the_aggregates_policy(any_store):
    tz = ZoneInfo("Europe/Paris")
    write_checks(any_store, [CheckResult("m1", date(2026, 3, 1), LeakRule.CONTINUOUS_FLOW, CheckStatus.OK,
                                            volume_l=100.0, coverage=1.0)], tz)
    assert any_store.query_json('SELECT count("status") FROM "vigie_raw"."leak_check"') == []
    assert any_store.query_json('SELECT count("status") FROM "vigie_aggregates"."leak_check"')[0]["values"][0][1] == 1
    assert [c.volume_l for c in read_checks(any_store, date(2026, 3, 1), date(2026, 3, 1), tz)] == [100.0]
