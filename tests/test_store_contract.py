"""The store contract beyond the per-schema suites (tests/test_store_influx.py, test_store_homes.py
and test_store_heating.py run on both stores through ``any_store``): on the same writes, the
embedded store gives the answers the real influxd gives — to every InfluxQL statement Vigie's
store modules build (recorded while they run), to line protocol with escapes and odd values, to
refused writes — and the analytics give identical results on both: the J+1 leak checks over a
simulated water fleet, the home detectors' backtest over simulated homes, the heating pass and the
device-health pass over a simulated town hall."""

from __future__ import annotations

import threading
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from vigie.analytics.devices import battery_condition, clock_condition, DeviceHealthParams, flag_condition
from vigie.config import Settings
from vigie.context import AppContext
from vigie.db import make_engine, make_sessionmaker
from vigie.heating_registry import HeatingDeviceInfo
from vigie.ingest.decoders.zigbee2mqtt import DeviceAvailability, SensorInfo
from vigie.records import (CheckResult, CheckStatus, HeatingDeviceKind, HeatingReading, LeakRule, MeterReading, Room,
                           SensorEvent, SensorKind)
from vigie.registry import load_registry_file
from vigie.store import StoreRejected, store_for
from vigie.store.devices import condition_since, last_values
from vigie.store.embedded import EmbeddedStore, UnsupportedQuery
from vigie.store.heating import device_clock_line, heating_line, read_device_clock, read_heating, write_heating
from vigie.store.homes import (HomeSensors, last_availability, last_report_time, read_events, write_availability,
                               write_events)
from vigie.store.water import last_reading_times, read_checks, read_indices, reading_line, write_checks, write_readings

UTC = timezone.utc
PARIS = ZoneInfo("Europe/Paris")
T0 = datetime(2026, 3, 2, 6, tzinfo=UTC)
# Recent: the events policy (90 days) refuses older points.
RECENT = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)


class Recorder:
    """A store that passes everything to ``store`` and records the queries it is given."""

    def __init__(self, store) -> None:
        self._store = store
        self.queries: list[tuple[str, str, str]] = []   # (method, query, epoch)

    def __getattr__(self, name):
        return getattr(self._store, name)

    def query_csv(self, query, *, epoch="s", chunk_size=100_000, dtypes=None):
        self.queries.append(("csv", query, epoch))
        return self._store.query_csv(query, epoch=epoch, chunk_size=chunk_size, dtypes=dtypes)

    def query_json(self, query, *, epoch="s"):
        self.queries.append(("json", query, epoch))
        return self._store.query_json(query, epoch=epoch)


def both(influx_store, embedded_store):
    return [influx_store, embedded_store]


# --- a corpus written by the schema modules ------------------------------------------------------

SENSORS = HomeSensors.of([SensorInfo("s-door", SensorKind.CONTACT, Room.ENTRANCE, "h1"),
                          SensorInfo("s-pir", SensorKind.MOTION, Room.LIVING_ROOM, "h1"),
                          SensorInfo("s-bath", SensorKind.MOTION, Room.BATHROOM, "h 2,x")])
TRV = HeatingDeviceInfo("trv-1", HeatingDeviceKind.TRV, "b-mairie", "r-a")
HM = HeatingDeviceInfo("hm 1,a=b", HeatingDeviceKind.HEAT_METER, "b-école", "r-salle 2")


def write_corpus(store) -> None:
    """Every measurement Vigie writes, with escapes, absent fields, rewrites and flags; no two
    points of different series share a timestamp (InfluxDB orders such ties as it likes)."""
    meters = ["0012ab", "a b,c=d", "1e5", "m\\x"]
    readings = []
    for k in range(48):
        for j, m in enumerate(meters):
            t = T0 + timedelta(minutes=30 * k, seconds=j)
            alarms = ("LOW_BATTERY",) if (m == "1e5" and k > 30) else ("LEAK", "BURST") if k % 17 == 3 else ()
            readings.append(MeterReading(m, t, 100.0 + k * 0.013 * (j + 1), alarms=alarms,
                                         battery_pct=None if j == 2 else 90.0 - 2 * k,
                                         flow_l_per_h=k * 1.5 if j else None,
                                         status_raw='ok "x", y' if k == 5 else None))
    write_readings(store, readings)
    write_readings(store, readings[:7])                                  # re-delivered: same points
    store.write_lines([f"water_reading,meter_id=0012ab status=\"rewritten\" {int(T0.timestamp())}"])  # merged
    checks = [CheckResult(m, date(2026, 3, 1 + d), rule, CheckStatus.OK if d % 2 else CheckStatus.LEAK,
                          rate_l_per_h=1.25 * d if rule is LeakRule.CONTINUOUS_FLOW else None,
                          volume_l=100.0 + d, coverage=1.0 - d / 10, detail=f'd={d}, "q"')
              for d in range(3) for m in meters[:2] for rule in (LeakRule.CONTINUOUS_FLOW, LeakRule.BURST)]
    write_checks(store, checks, PARIS)
    events = []
    for k in range(40):
        t = RECENT + timedelta(minutes=7 * k, milliseconds=k * 37)
        events.append(SensorEvent("s-door", t, SensorKind.CONTACT, float(k % 2), battery_pct=80.0 - k / 4,
                                  link_quality=100.0 if k % 3 else None))
        events.append(SensorEvent("s-pir", t + timedelta(milliseconds=1), SensorKind.MOTION, 1.0))
        events.append(SensorEvent("s-bath", t + timedelta(seconds=3), SensorKind.MOTION, float(k % 3 == 0),
                                  battery_pct=15.0 if k > 20 else 40.0))
    write_events(store, events, SENSORS)
    write_availability(store, [DeviceAvailability("sensor", "s-door", True, RECENT, home_id="h1"),
                               DeviceAvailability("sensor", "s-door", False, RECENT + timedelta(hours=2), home_id="h1"),
                               DeviceAvailability("bridge", "zigbee2mqtt/h1", True, RECENT + timedelta(seconds=1))])
    lines = []
    for k in range(30):
        t = T0 + timedelta(minutes=15 * k)
        lines.append(heating_line(HeatingReading("trv-1", t, temperature_c=18 + k / 10, setpoint_c=20.0,
                                                 valve_pct=100 - k, heating=k % 2 == 0, window_open=k == 3,
                                                 battery_pct=30 - k), TRV))
        lines.append(heating_line(HeatingReading("hm 1,a=b", t + timedelta(seconds=5), energy_kwh=1234.5 + k,
                                                 power_w=850.0, battery_low=k > 25), HM))
        lines.append(device_clock_line("heating", "trv-1", t + timedelta(seconds=7), 3.0 + k * 30))
        lines.append(device_clock_line("water", "0012ab", t + timedelta(seconds=9), -0.25 * k))
    write_heating(store, lines)


def module_reads(store) -> dict:
    """What the schema modules read back from the corpus, by every read path they have."""
    t1 = T0 + timedelta(days=1)
    cond = battery_condition(DeviceHealthParams())
    keys = pd.DataFrame({"meter_id": ["0012ab", "a b,c=d", "1e5", "m\\x", "ghost"]})
    out = {
        "indices": read_indices(store, T0, t1, with_alarms=True),
        "some indices": read_indices(store, T0 + timedelta(hours=3), T0 + timedelta(hours=9), ["a b,c=d", "1e5"]),
        "checks": read_checks(store, date(2026, 3, 1), date(2026, 3, 3), PARIS),
        "burst checks": read_checks(store, date(2026, 3, 1), date(2026, 3, 3), PARIS, rules=["burst"]),
        "last readings": last_reading_times(store, ["0012ab", "1e5", "ghost"]),
        "events": read_events(store, RECENT - timedelta(hours=1), RECENT + timedelta(days=1), SENSORS),
        "h1 events": read_events(store, RECENT, RECENT + timedelta(hours=2), SENSORS, homes=["h1"]),
        "availability": last_availability(store, ["s-door", "zigbee2mqtt/h1", "s-none"]),
        "last report": [last_report_time(store, h) for h in ("h1", "h 2,x", "nobody")],
        "heating": read_heating(store, T0 - timedelta(hours=1), t1),
        "école": read_heating(store, T0, t1, buildings=["b-école"]),
        "clock": read_device_clock(store, T0, t1),
        "last values": last_values(store, "water_reading", ["meter_id"], ["alarms", "battery_pct", "index_m3"]),
        "recent values": last_values(store, "water_reading", ["meter_id"], ["battery_pct"],
                                     where=f"time > '{(T0 + timedelta(hours=20)).isoformat().replace('+00:00', 'Z')}'"),
        "battery since": condition_since(store, "water_reading", ["meter_id"], keys, cond),
        "flag since": condition_since(store, "water_reading", ["meter_id"], keys, flag_condition("alarms")),
        "clock since": condition_since(store, "device_clock", ["family", "device"],
                                       pd.DataFrame({"family": ["heating", "water"], "device": ["trv-1", "0012ab"]}),
                                       clock_condition(DeviceHealthParams())),
        "home battery": last_values(store, "home_event", ["sensor_id"], ["value", "battery_pct"],
                                    retention_policy="vigie_events"),
    }
    return out


def assert_same(a, b, what: str) -> None:
    if isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b, obj=what)
    elif isinstance(a, pd.Series):
        pd.testing.assert_series_equal(a, b, obj=what)
    else:
        assert a == b, what


def test_module_reads_and_every_statement_they_build_answer_alike(influx_store, embedded_store):
    recorders = [Recorder(s) for s in both(influx_store, embedded_store)]
    for r in recorders:
        write_corpus(r)
    reads = [module_reads(r) for r in recorders]
    for name in reads[0]:
        assert_same(reads[0][name], reads[1][name], name)
    assert len(reads[0]["indices"]) == 4 * 48 and reads[0]["battery since"].notna().sum() >= 2

    # Every statement the modules built, replayed: the raw answers are equal too.
    statements = list(dict.fromkeys(recorders[1].queries))
    assert len(statements) > 20
    for method, query, epoch in statements:
        if method == "csv":
            a, b = (s.query_csv(query, epoch=epoch) for s in both(influx_store, embedded_store))
            pd.testing.assert_frame_equal(a, b, obj=query)
        else:
            a, b = (s.query_json(query, epoch=epoch) for s in both(influx_store, embedded_store))
            assert a == b, query


EXTRA_STATEMENTS = [
    # privacy.export_person / erase_person, and the tests' counts
    ("json", 'SHOW MEASUREMENTS ON "{db}"', "s"),
    ("json", "SELECT * FROM \"vigie_raw\".\"water_reading\" WHERE \"meter_id\" = '0012ab' OR \"meter_id\" = 'a b,c=d'",
     "s"),
    ("json", "SELECT * FROM \"vigie_events\".\"home_event\" WHERE \"home_id\" = 'h1'", "ms"),
    ("json", "SELECT * FROM \"vigie_aggregates\".\"leak_check\" WHERE \"meter_id\" = '0012ab'", "s"),
    ("json", 'SELECT count(value) FROM "vigie_events"."home_event"', "s"),
    ("json", 'SELECT count("status") FROM "vigie_raw"."leak_check"', "s"),
    ("json", "SELECT count(index_m3) FROM water_reading WHERE time >= '2026-03-02T12:00:00Z' GROUP BY meter_id", "s"),
    ("json", "SELECT flow_l_per_h, status FROM water_reading WHERE meter_id = '1e5'", "s"),
    ("json", "SELECT max(temperature_c) FROM heating; SELECT min(energy_kwh) AS low FROM heating GROUP BY device",
     "ms"),
    ("json", 'SELECT first(status) FROM water_reading; SELECT last("setpoint_c") FROM heating', "u"),
    ("json", "SELECT alarms FROM water_reading WHERE alarms =~ /BURST/ AND meter_id !~ /^a/", "h"),
    ("json", "SELECT * FROM water_reading WHERE time > 1772432000000000000 AND time <= '2026-03-02 08:00:00'", "ns"),
    ("json", "SELECT index_m3 FROM water_reading WHERE nosuch = '' AND battery_pct < 60 OR meter_id = 'm\\\\x'", "s"),
    ("json", 'SHOW RETENTION POLICIES ON "{db}"', "s"),
    ("csv", "SELECT * FROM heating WHERE time >= '2026-03-02T06:00:00Z' AND time < '2026-03-02T09:00:00Z'", "s"),
    ("csv", "SELECT meter_id, status, alarms, battery_pct FROM water_reading WHERE status != ''", "ms"),
    ("csv", "SELECT meter_id, nosuch, index_m3 FROM water_reading WHERE time = '2026-03-02T06:30:01Z'", "s"),
    ("csv", "SELECT last(online) FROM \"vigie_events\".\"sensor_availability\" GROUP BY device_id, home_id", "ms"),
]


@pytest.mark.parametrize("method,query,epoch", EXTRA_STATEMENTS)
def test_other_statement_shapes_answer_alike(method, query, epoch, influx_store, embedded_store):
    answers = []
    for store in both(influx_store, embedded_store):
        write_corpus(store)
        q = query.format(db=store.database)
        answers.append(store.query_csv(q, epoch=epoch) if method == "csv" else store.query_json(q, epoch=epoch))
    if method == "csv":
        pd.testing.assert_frame_equal(*answers)
        assert len(answers[0])
    else:
        assert answers[0] == answers[1]


def test_rows_of_one_instant_come_in_influxdbs_order(influx_store, embedded_store):
    """Points of several series at the same instant: InfluxDB's order is its heap merge of the
    series (per weekly shard group), broken by the selected string values sorted by name; the
    embedded store replays it. 30 series over 10 days, half the points on shared instants."""
    rng = np.random.default_rng(3)
    lines = [f'm,k=s{s:02d},h=h{s % 3} f={int(rng.integers(0, 5))},g="{rng.choice(["x", "y"])}" '
             f"{1_772_400_000 + t * 21600 + int(rng.integers(0, 2))}"
             for s in range(30) for t in range(40) if rng.random() < 0.6]
    for store in both(influx_store, embedded_store):
        store.write_lines(lines)
    for q in ("SELECT k, f FROM m", "SELECT h, k, g FROM m", "SELECT g, h FROM m", "SELECT * FROM m",
              "SELECT f, g FROM m WHERE h = 'h1' AND time >= '2026-03-04T00:00:00Z'"):
        a, b = (s.query_json(q) for s in both(influx_store, embedded_store))
        assert a == b, q


# --- line protocol ---------------------------------------------------------------------------

ALPHABET = list(' ,="\\\n\r\tabcZ09-_é漢🚰')


def odd_readings(rng: np.random.Generator, n: int) -> list[MeterReading]:
    """Readings whose ids and statuses hold everything line protocol escapes, and floats from
    1e-300 to 1e300 (the hand-written ``reading_line`` against InfluxDB's parser)."""
    def text(k):
        return "".join(rng.choice(ALPHABET, size=int(rng.integers(0, k))))

    out = []
    for i in range(n):
        mag = 10.0 ** rng.uniform(-300, 300)
        index = float(rng.choice([mag, -mag, rng.uniform(0, 1e6), int(rng.integers(0, 10**12)), 0.0]))
        out.append(MeterReading(meter_id=text(12), time=T0 + timedelta(seconds=i), index_m3=index,
                                battery_pct=float(rng.integers(0, 100)) if i % 3 else None,
                                flow_l_per_h=float(rng.normal(0, 1e-7)) if i % 4 else None,
                                status_raw=text(20) if i % 2 else None,
                                alarms=("LEAK",) if i % 5 == 0 else ()))
    return out


def write_outcome(store, lines, **kw):
    try:
        store.write_lines(lines, **kw)
        return None
    except StoreRejected as exc:
        return exc.status


def test_line_protocol_with_escapes_and_odd_values_is_stored_alike(influx_store, embedded_store):
    lines = [reading_line(r) for r in odd_readings(np.random.default_rng(7), 400)]
    outcomes = [write_outcome(s, lines) for s in both(influx_store, embedded_store)]
    assert outcomes[0] == outcomes[1]
    a, b = (s.query_json("SELECT * FROM water_reading") for s in both(influx_store, embedded_store))
    assert a == b and len(a[0]["values"]) > 300
    tags = (s.query_json('SELECT last(index_m3) FROM water_reading GROUP BY "meter_id"')
            for s in both(influx_store, embedded_store))
    assert next(tags) == next(tags)


REFUSED = [
    ["m,t=a f=1 10", "bad line here", "m,t=b f= 10", "m,t=c f=2 11"],                       # unparsable lines
    ["m,t=a f=1 10", 'm,t=a f="text" 11', "m,t=a f=1i 12", "m,t=b g=2 12"],                  # field type conflicts
    ["m,t= f=1 10"], ["m,t=a,t=b f=1 10"], ["m f=NaN 10"], ['m s="open 10'], ["m f=1 1.5"],   # refused lines
    ["m f=1u 10"], ["m f=tru 10"], ["m,time=x f=1 10"], ["m f=1,g=2i,h=true,s=\"\" -10"],
    ['m,a\\ b=c\\,d\\=e\\x y\\ z=1,q="a\\\\b\\"c\\d" 20', "n\\,m,k=b x=5 500", "  m f=3 30  ", "# comment"],
    ["m f=1 10\nm f=2 10\nm g=3 10"],                                                         # rewrites in one body
    ["m f=12345678901234567890i 10"], ["m f=1e400 10"], ["m f=.5,g=5.,h=-0.0,i=1E3 10"],
]


@pytest.mark.parametrize("lines", REFUSED, ids=range(len(REFUSED)))
def test_refused_points_and_partial_writes_alike(lines, influx_store, embedded_store):
    outcomes = [write_outcome(s, lines) for s in both(influx_store, embedded_store)]
    assert outcomes[0] == outcomes[1]
    a, b = (s.query_json("SELECT * FROM m; SELECT * FROM \"n,m\"") for s in both(influx_store, embedded_store))
    assert a == b


def test_old_points_are_refused_by_their_policy_alike(influx_store, embedded_store):
    now = int(datetime.now(UTC).timestamp())
    lines = [f"e,h=a v=1 {now - 3600}", f"e,h=a v=2 {now - 91 * 86400}", f"e,h=b v=3 {now - 60}"]
    errors = []
    for store in both(influx_store, embedded_store):
        with pytest.raises(StoreRejected, match="points beyond retention policy dropped=1") as err:
            store.write_lines(lines, retention_policy="vigie_events")
        errors.append(err.value.status)
    assert errors == [400, 400]
    a, b = (s.query_json('SELECT * FROM "vigie_events"."e"') for s in both(influx_store, embedded_store))
    assert a == b and len(a[0]["values"]) == 2


def test_drop_series_erases_a_person_alike(influx_store, embedded_store):
    answers = []
    for store in both(influx_store, embedded_store):
        write_corpus(store)
        store.execute("DROP SERIES WHERE meter_id = 'a b,c=d'")
        store.execute("DROP SERIES WHERE home_id = 'h1'")
        answers.append([store.query_json(f'SHOW MEASUREMENTS ON "{store.database}"'),
                        store.query_json('SELECT count(index_m3) FROM water_reading GROUP BY meter_id'),
                        store.query_json('SELECT count(status) FROM "vigie_aggregates".leak_check GROUP BY meter_id'),
                        store.query_json('SELECT count(value) FROM "vigie_events".home_event GROUP BY home_id'),
                        store.query_json('SELECT * FROM "vigie_events".sensor_availability')])
    assert answers[0] == answers[1]
    assert {s["tags"]["meter_id"] for s in answers[0][1]} == {"0012ab", "1e5", "m\\x"}


def test_spool_writer_delivers_and_dead_letters_alike(any_store, tmp_path):
    """The ingestor's spool writer bisects a refused batch down to the refused points on either
    store: a field of another type, and an event older than its policy, are dead-lettered."""
    from vigie.ingest.deadletter import DeadLetterStore, read_dead_letters
    from vigie.ingest.spool import Spool, SpooledPoint
    from vigie.ingest.writer import SpoolWriter
    from vigie.store.homes import event_line

    now = datetime.now(UTC)
    good = [SpooledPoint.of(MeterReading(f"m{i}", T0 + timedelta(minutes=i), 10.0 + i)) for i in range(20)]
    poison = SpooledPoint(f'water_reading,meter_id=poison index_m3="x" {int(T0.timestamp())}', "poison", "native")
    old, recent = (SpooledPoint(event_line(SensorEvent("s-door", t, SensorKind.CONTACT, 1.0), "h1"), "s-door",
                                "zigbee2mqtt", "events", "ms") for t in (now - timedelta(days=120), now))
    spool, dead = Spool(tmp_path / "spool.sqlite"), DeadLetterStore(tmp_path / "dead-letters.jsonl")
    spool.append(good[:10] + [poison] + good[10:] + [old, recent])
    writer = SpoolWriter(spool, any_store, dead, batch_size=50, interval_s=0.05)
    writer.start()
    writer.notify(23)
    writer.stop()
    dead.close()
    assert (writer.written, writer.rejected, spool.pending()) == (21, 2, 0)
    letters = read_dead_letters(tmp_path / "dead-letters.jsonl")
    assert sorted(d.payload for d in letters) == sorted([poison.line, old.line])
    assert all(d.reason.startswith("store_rejected: ") for d in letters)
    assert any_store.query_json("SELECT count(index_m3) FROM water_reading")[0]["values"][0][1] == 20
    spool.close()


# --- the embedded store's own promises -------------------------------------------------------------

@pytest.mark.parametrize("query,construct", [
    ("SELECT mean(index_m3) FROM water_reading", "mean()"),
    ("SELECT count(index_m3) FROM water_reading WHERE time > '2026-03-01T00:00:00Z' GROUP BY time(1h) fill(0)",
     "GROUP BY time()"),
    ("SELECT index_m3 FROM water_reading LIMIT 10", "LIMIT"),
    ("SELECT index_m3 FROM water_reading WHERE time > now() - 1h", "now()"),
    ("SELECT index_m3 * 1000 FROM water_reading", "arithmetic"),
    ("SELECT index_m3 FROM /water.*/", "FROM /regex/"),
    ("SHOW TAG KEYS FROM water_reading", "SHOW TAG"),
    ("DELETE FROM water_reading WHERE time < '2026-01-01T00:00:00Z'", "DELETE"),
    ("SELECT index_m3 FROM water_reading ORDER BY time DESC", "ORDER BY"),
    ("SELECT meter_id, index_m3 FROM water_reading GROUP BY meter_id", "GROUP BY on a SELECT of raw points"),
])
def test_embedded_store_names_what_it_does_not_support(embedded_store, query, construct):
    with pytest.raises(UnsupportedQuery, match="does not support") as err:
        embedded_store.query_json(query)
    assert construct in str(err.value) and err.value.status == 400


def test_embedded_store_refuses_what_is_not_influxql(embedded_store):
    with pytest.raises(StoreRejected, match="error parsing query") as err:
        embedded_store.query_csv("SELECT FROM")
    assert not isinstance(err.value, UnsupportedQuery)


def test_points_past_their_policy_are_not_read_and_are_pruned(embedded_store):
    now = int(datetime.now(UTC).timestamp())
    embedded_store.execute('CREATE RETENTION POLICY "short" ON "{}" DURATION 2h REPLICATION 1'
                           .format(embedded_store.database))
    embedded_store.write_lines([f"m v=1 {now - 5400}", f"m v=2 {now - 60}"], retention_policy="short")
    embedded_store.execute(f'ALTER RETENTION POLICY "short" ON "{embedded_store.database}" DURATION 1h')
    assert embedded_store.query_json('SELECT v FROM "short"."m"')[0]["values"] == [[now - 60, 2]]
    embedded_store._last_prune = 0.0                     # the next write prunes
    embedded_store.write_lines([f"m v=3 {now}"], retention_policy="short")
    conn = embedded_store._conn()
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE name GLOB 'p[0-9]*' AND type = 'table'")]
    assert sum(conn.execute(f'SELECT count(*) FROM "{t}" WHERE time < ?', ((now - 3600) * 10**9,)).fetchone()[0]
               for t in tables) == 0


def test_two_processes_worth_of_clients_and_threads_share_one_file(embedded_store, store_twin):
    other = store_twin(embedded_store)     # its own connections and catalog, as another process has
    errors = []

    def writer(i):
        try:
            for k in range(20):
                other.write_lines([f"w,writer=t{i},k=k{k % 3} v={k} {1_000 + k}",
                                   f"w,writer=t{i} f{i}={k}i {2_000 + k}"])
        except Exception as exc:   # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        embedded_store.query_json("SELECT count(v) FROM w GROUP BY writer")   # reads while the others write
    for t in threads:
        t.join()
    assert not errors
    counts = embedded_store.query_json("SELECT count(v) FROM w GROUP BY writer")
    assert [(s["tags"]["writer"], s["values"][0][1]) for s in counts] == [(f"t{i}", 20) for i in range(4)]
    assert embedded_store.query_json("SELECT count(f3) FROM w")[0]["values"][0][1] == 20
    # The writer threads' connections are closed once a new thread connects (no descriptor leak).
    reader = threading.Thread(target=lambda: other.query_json("SELECT count(v) FROM w"))
    reader.start()
    reader.join()
    assert len(other._conns) <= 2


def test_settings_choose_the_store(tmp_path, monkeypatch):
    monkeypatch.delenv("VIGIE_INFLUX_URL", raising=False)
    monkeypatch.delenv("VIGIE_STORE", raising=False)
    embedded = Settings(_env_file=None, store="embedded", data_dir=tmp_path / "var")
    store = store_for(embedded)
    assert isinstance(store, EmbeddedStore) and store.location == str(tmp_path / "var" / "timeseries.sqlite3")
    assert isinstance(store_for(Settings(_env_file=None, store="auto")), EmbeddedStore)
    assert not isinstance(store_for(Settings(_env_file=None, store="auto", influx_url="http://127.0.0.1:8086")),
                          EmbeddedStore)
    assert not isinstance(store_for(Settings(_env_file=None)), EmbeddedStore)   # InfluxDB stays the default
    ctx = AppContext.create(embedded.model_copy(update={"database_url": f"sqlite:///{tmp_path / 'r.db'}"}))
    try:
        assert ctx.store.retention_policies() == {"autogen": "0s", "vigie_raw": "0s", "vigie_aggregates": "0s",
                                                  "vigie_events": "2160h0m0s"}
    finally:
        ctx.close()


# --- analytics: identical results --------------------------------------------------------------

def contexts(tmp_path, stores, registry=None, **settings) -> list[AppContext]:
    out = []
    for i, store in enumerate(stores):
        s = Settings(_env_file=None, database_url=f"sqlite:///{tmp_path / f'registry{i}.db'}",
                     data_dir=tmp_path / f"var{i}", timezone="Europe/Paris", **settings)
        engine = make_engine(s.database_url)
        sessions = make_sessionmaker(engine)
        if registry:
            with sessions() as session:
                load_registry_file(session, registry)
        out.append(AppContext(s, store, engine, sessions))
    return out


def test_leak_checks_are_identical(tmp_path, influx_store, embedded_store):
    from vigie.analytics.consumption import meter_consumption
    from vigie.analytics.job import run_leak_checks
    from vigie.simulators.water import Gap, Leak, Replacement, WaterSimConfig, simulate

    start = date(2026, 3, 2)
    sim = simulate(WaterSimConfig(meters=40, days=9, start=start, seed=5, faults=[
        Leak(3, 4.0, datetime(2026, 3, 4, 2)), Leak(7, 900.0, datetime(2026, 3, 6, 9), datetime(2026, 3, 6, 11),
                                                   alarm="BURST"),
        Gap(11, datetime(2026, 3, 5, 6), 14.0), Replacement(12, datetime(2026, 3, 7, 12))]))
    r = sim.readings
    secs = r["time"].to_numpy(dtype="datetime64[s]").astype(np.int64).tolist()
    readings = [MeterReading(m, datetime.fromtimestamp(t, UTC), i, alarms=tuple(a.split()))
                for m, t, i, a in zip(r["meter_id"].astype(str), secs, r["index_m3"].tolist(), r["alarms"].tolist())]
    settings = Settings(_env_file=None, timezone="Europe/Paris", abnormal_period_days=2, abnormal_history_periods=2)
    meters = sorted(set(r["meter_id"].astype(str))) + ["ghost"]
    results = []
    for store in both(influx_store, embedded_store):
        write_readings(store, readings)
        checks = run_leak_checks(store, start + timedelta(days=1), start + timedelta(days=7), settings, meters)
        hourly = meter_consumption(store, sim.meters[3].meter_id, datetime(2026, 3, 4, tzinfo=UTC),
                                   datetime(2026, 3, 6, tzinfo=UTC), "hour", settings)
        results.append((checks, hourly))
    assert results[0][0] == results[1][0]
    pd.testing.assert_frame_equal(results[0][1], results[1][1])
    statuses = {(c.meter_id, c.rule, c.status) for c in results[0][0]}
    assert (sim.meters[3].meter_id, LeakRule.CONTINUOUS_FLOW, CheckStatus.LEAK) in statuses   # the leaks are found
    assert (sim.meters[7].meter_id, LeakRule.BURST, CheckStatus.LEAK) in statuses


def test_home_detectors_backtest_is_identical(tmp_path, influx_store, embedded_store):
    from vigie.home_jobs import backtest_events
    from vigie.simulators.home import Fall, HomeSimConfig, simulate_homes, write_home_registry

    days = 9
    first = datetime.now(PARIS).date() - timedelta(days=days + 1)
    fall_day = first + timedelta(days=days - 1)
    sim = simulate_homes(HomeSimConfig(homes=3, days=days, start=first, seed=11,
                                       anomalies=[Fall(0, datetime.combine(fall_day, time(10, 0)), minutes=120)]))
    write_home_registry(sim, tmp_path / "registry.yaml")
    ctxs = contexts(tmp_path, both(influx_store, embedded_store), tmp_path / "registry.yaml")
    found = []
    for ctx in ctxs:
        write_events(ctx.store, sim.events(), HomeSensors.of(sim.sensor_infos().values()))
        found.append(backtest_events(ctx, fall_day, fall_day))
        ctx.engine.dispose()
    assert found[0] == found[1]
    assert any(e.home_id == "home-0001" for e in found[0])


def test_heating_and_device_health_passes_are_identical(tmp_path, influx_store, embedded_store):
    from sqlalchemy import select

    from vigie.analytics.devices import device_health
    from vigie.heating_jobs import heating_pass
    from vigie.heating_registry import HeatingDevice
    from vigie.simulators.heating import (BatteryDying, HeatingSimConfig, ScheduleIgnored, WindowOpen, simulate_heating,
                                          write_heating_registry)

    start = datetime.now(PARIS).date() - timedelta(days=8)
    def at(day: int, hour: int) -> datetime:
        return datetime.combine(start + timedelta(days=day), time(hour))

    faults = [WindowOpen(0, at(2, 9), 5.0), ScheduleIgnored(2, at(3, 0)), BatteryDying(1, at(6, 12))]
    sim = simulate_heating(HeatingSimConfig(rooms=4, rooms_per_building=2, days=7, start=start, seed=3, holidays=None,
                                            faults=faults))
    write_heating_registry(sim, tmp_path / "registry.yaml", commune="exemple")
    ctxs = contexts(tmp_path, both(influx_store, embedded_store), tmp_path / "registry.yaml",
                    heating_history_days=7)
    now = datetime.combine(start + timedelta(days=7), time(0, 30), tzinfo=PARIS).astimezone(UTC)
    runs = []
    for ctx in ctxs:
        with ctx.sessions() as s:
            infos = {d.id: d.info() for d in s.scalars(select(HeatingDevice))}
        write_heating(ctx.store, [heating_line(r, infos[r.device_id]) for r in sim.readings()])
        run = heating_pass(ctx, start + timedelta(days=1), start + timedelta(days=6))
        runs.append((run.findings(), run.room_days(), run.building_days(),
                     device_health(ctx.store, ctx.sessions, now, DeviceHealthParams.from_settings(ctx.settings))))
        ctx.engine.dispose()
    for a, b, what in zip(runs[0], runs[1], ("findings", "room days", "building days", "device health")):
        assert a == b, what
    assert runs[0][0] and runs[0][3]   # the passes did find things
