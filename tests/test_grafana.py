"""Grafana dashboards (grafana/): the committed JSON is the generator's output and fits the schema the
builder enforces; every InfluxQL query of every panel, annotation and variable, expanded as Grafana
expands it, returns rows from a real InfluxDB filled by the project's simulators (water with a leak
and a silent meter, town-hall heating with an open window, a dying battery and heat meters,
assisted-living homes with a fall and a dying sensor); every SQL panel returns rows from a real
PostgreSQL store filled by the escalation engine and the findings router, run as a role that may
read only the tables grafana/README.md grants; every metric a PromQL panel names is one that
vigie/metrics.py exposes.
"""

from __future__ import annotations

import json
import re
import sys
import uuid
from datetime import datetime, time, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import services  # noqa: E402
from conftest import TEST_POLICIES, create_pg_schema, drop_pg_schema  # noqa: E402

from grafana import build  # noqa: E402
from grafana.dashboards import MODULES  # noqa: E402
from grafana.expand import (QueryTime, VariableValue, expand_influxql, expand_sql, format_interval,  # noqa: E402
                            interval_to_ms, round_interval, variable_values)
from grafana.panels import BuildConfig  # noqa: E402
from grafana.schema import DATASOURCES, VARIABLE_RE, Dashboard, InfluxTarget, PromTarget, SqlTarget  # noqa: E402

TZ = "Europe/Paris"
ZONE = ZoneInfo(TZ)
CFG = BuildConfig(timezone=TZ)
DASHBOARDS = {d.uid: d for _, d in build.dashboards(CFG)}
#: Tables the Grafana PostgreSQL role may read (grafana/README.md): nothing about persons.
GRANTED_TABLES = ("home_alerts", "home_alert_steps", "facility_findings")


def _targets(kind):
    out = []
    for uid, d in DASHBOARDS.items():
        for p in d.all_panels():
            for t in p.targets:
                if isinstance(t, kind):
                    out.append(pytest.param(uid, p, t, id=f"{uid}:{p.id}:{t.refId}"))
    return out


# --- generator, schema, provisioning ---------------------------------------------------------------

def test_committed_files_are_the_generators_output():
    diff = build.differences(build.render(), build.committed())
    assert diff == [], f"run `python -m grafana.build` and commit: {diff}"


def test_committed_json_fits_the_schema():
    files = sorted((build.PROVISIONING / "dashboards").glob("*/*.json"))
    assert {f.stem for f in files} == set(DASHBOARDS)
    for f in files:
        d = Dashboard.model_validate(json.loads(f.read_text(encoding="utf-8")))
        assert f.parent.name == next(m.FOLDER for m in MODULES if m.UID == d.uid)
    homes = json.loads((build.PROVISIONING / "dashboards/staff-only/vigie-homes.json").read_text())
    assert homes["uid"] == "vigie-homes", "the assisted-living dashboard must be the staff-only folder's"


def test_schema_refuses_what_grafana_would_not_read():
    good = DASHBOARDS["vigie-meter"].to_json()
    for broken, why in [
        ({**good, "colour": "red"}, "unknown key"),
        ({**good, "panels": [{**good["panels"][0], "options": {"showHeader": True}}]}, "table options on a timeseries"),
        ({**good, "panels": [good["panels"][0], {**good["panels"][1], "id": 1}]}, "duplicate panel id"),
        ({**good, "panels": [{**good["panels"][0], "gridPos": {"x": 12, "y": 0, "w": 24, "h": 4}}]}, "off the grid"),
        ({**good, "templating": {"list": []}}, "$meter undefined"),
        ({**good, "panels": [{**good["panels"][0], "datasource": {"type": "influxdb", "uid": "other"}}]},
         "unknown datasource"),
        ({**good, "panels": [{**good["panels"][0], "fieldConfig": {"defaults": {"unit": "litres"}, "overrides": []}}]},
         "not a Grafana unit"),
    ]:
        with pytest.raises(ValueError):
            Dashboard.model_validate(broken)
            pytest.fail(why)


def test_every_datasource_used_is_provisioned():
    provisioned = {}
    for f in (build.PROVISIONING / "datasources").glob("*.yaml"):
        for ds in yaml.safe_load(f.read_text())["datasources"]:
            provisioned[ds["uid"]] = ds["type"]
    assert provisioned == DATASOURCES
    used = {t.datasource.uid for d in DASHBOARDS.values() for p in d.all_panels() for t in p.targets}
    assert used == set(DATASOURCES)
    providers = yaml.safe_load((build.PROVISIONING / "dashboards/vigie.yaml").read_text())["providers"]
    assert {p["folderUid"]: p["options"]["path"].rsplit("/", 1)[1] for p in providers} == {
        "vigie": "vigie", "vigie-staff": "staff-only"}


def test_expansion_matches_grafanas_rules():
    # rangeutil.roundInterval / calculateInterval and gtime.FormatInterval, on known values.
    assert round_interval(7 * 86400_000 / 1200) == 600_000      # 7 days on 1 200 px: 504 s → 10m
    assert round_interval(30 * 86400_000 / 1200) == 1_800_000   # 30 days: 30m
    assert format_interval(5_400_000) == "1h" and format_interval(86_400_000) == "1d"
    assert interval_to_ms("15m") == 900_000 and interval_to_ms("1h") == 3_600_000
    t0 = datetime(2026, 3, 1, tzinfo=timezone.utc)
    qt = QueryTime.of(t0, t0 + timedelta(days=7))
    assert qt.interval_ms == 900_000                            # raised to the data source's 15m
    q = expand_influxql("SELECT x FROM m WHERE \"r\" =~ /^$room$/ AND \"m\" = '$meter' AND $timeFilter "
                        "GROUP BY time($__interval) -- $__interval_ms ${__to}", qt,
                        {"room": VariableValue(("r-1", "a.b"), multi=True), "meter": VariableValue(("2a31",))})
    assert q == ("SELECT x FROM m WHERE \"r\" =~ /^(r-1|a\\.b)$/ AND \"m\" = '2a31' AND "
                 "time >= 1772323200000ms and time <= 1772928000000ms GROUP BY time(15m) -- 900000 1772928000000")
    s = expand_sql("SELECT $__timeGroupAlias(opened_at, '1d'), 1 WHERE $__timeFilter(opened_at) AND h IN ($home)", qt,
                   {"home": VariableValue(("home-1", "o'k"), multi=True)})
    assert s == ("SELECT floor(extract(epoch from opened_at)/86400)*86400 AS \"time\", 1 WHERE opened_at BETWEEN "
                 "'2026-03-01T00:00:00Z' AND '2026-03-08T00:00:00Z' AND h IN ('home-1','o''k')")


# --- InfluxDB filled by the simulators ------------------------------------------------------------

def _local(day, hh: int = 0, mm: int = 0) -> datetime:
    return datetime.combine(day, time(hh, mm))


class Filled:
    """The simulations written to one InfluxDB database, their periods and picks for variables."""

    def __init__(self, store, water, heat, homes, leak_meter: str):
        self.store, self.water, self.heat, self.homes, self.leak_meter = store, water, heat, homes, leak_meter

    def period(self, uid: str) -> tuple[datetime, datetime]:
        sim = {"vigie-water-network": self.water, "vigie-meter": self.water, "vigie-heating": self.heat,
               "vigie-homes": self.homes}.get(uid)
        if sim is None:   # service health: everything
            return (min(s.period_start for s in (self.water, self.heat, self.homes)),
                    max(s.period_end for s in (self.water, self.heat, self.homes)))
        return sim.period_start, sim.period_end


def _write_water(store) -> tuple[object, str]:
    from vigie.analytics.leaks import LeakParams, detect_leaks, to_check_results
    from vigie.records import MeterReading
    from vigie.simulators.water import Gap, Leak, WaterSimConfig, simulate
    from vigie.store.water import read_indices, write_checks, write_readings

    config = WaterSimConfig(meters=24, days=9, seed=11, tz=TZ)
    first = config.start_date()
    config.faults = [Leak(meter=3, rate_l_per_h=25.0, start=_local(first + timedelta(days=2), 14), alarm="LEAK"),
                     Gap(meter=5, start=_local(first + timedelta(days=7), 6), hours=60)]
    sim = simulate(config)
    r = sim.readings
    times = r["time"].dt.to_pydatetime()   # aware UTC
    write_readings(store, (MeterReading(str(m), t, float(i), alarms=tuple(a.split()))
                           for m, t, i, a in zip(r["meter_id"], times, r["index_m3"], r["alarms"])))
    readings = read_indices(store, sim.period_start - timedelta(hours=4), sim.period_end + timedelta(hours=4),
                            with_alarms=True)
    results = []
    for day in sim.local_days():
        results += to_check_results(detect_leaks(readings, day, ZONE, LeakParams()))
    write_checks(store, results, ZONE)
    return sim, sim.meters[3].meter_id


def _write_heating(store):
    from vigie.heating_registry import HeatingDeviceInfo
    from vigie.records import HeatingDeviceKind, HeatingReading
    from vigie.simulators.heating import BatteryDying, HeatingSimConfig, WindowOpen, plan_heating, simulate_heating
    from vigie.store.heating import device_clock_line, heating_line, write_heating

    config = HeatingSimConfig(rooms=6, rooms_per_building=3, days=6, seed=4, tz=TZ)
    plan = plan_heating(config)
    flagged = next(t for t in plan.trvs if t.model.battery != "pct")   # a TRV that reports only battery_low
    first = config.start_date()
    config.faults = [WindowOpen(room=0, start=_local(first + timedelta(days=1), 10), hours=3),
                     BatteryDying(room=flagged.room_index, trv=flagged.number, at=_local(first + timedelta(days=5), 12),
                                  days=4)]
    sim = simulate_heating(config)
    info = {t.device_id: HeatingDeviceInfo(t.device_id, HeatingDeviceKind.TRV,
                                           plan.buildings[plan.rooms[t.room_index].building_index].building_id,
                                           plan.rooms[t.room_index].room_id) for t in plan.trvs}
    for b in plan.buildings:
        info[b.outdoor_device_id] = HeatingDeviceInfo(b.outdoor_device_id, HeatingDeviceKind.OUTDOOR, b.building_id,
                                                      plan.rooms[b.rooms[0]].room_id)
    lines = [heating_line(r, info[r.device_id]) for r in sim.readings()]
    # A heat meter per room, hourly, from the simulation's own radiator energy (15-min samples).
    heat = sim.room_series["heat_kwh"]
    register = np.cumsum(heat, axis=1)
    for i, room in enumerate(plan.rooms):
        meter = HeatingDeviceInfo(f"hm-{room.room_id}", HeatingDeviceKind.HEAT_METER,
                                  plan.buildings[room.building_index].building_id, room.room_id)
        for k in range(3, heat.shape[1], 4):
            when = datetime.fromtimestamp(int(sim.sample_times[k]) + 900, timezone.utc)
            lines.append(heating_line(HeatingReading(meter.device_id, when, energy_kwh=round(float(register[i, k]), 3),
                                                     power_w=round(float(heat[i, k]) * 4000, 1)), meter))
    for t in plan.trvs:
        for day in range(config.days):
            when = sim.period_start + timedelta(days=day, hours=12)
            lines.append(device_clock_line("heating", t.device_id, when, 3.0 + t.index))
    write_heating(store, lines)
    return sim


def _write_homes(store):
    from vigie.simulators.home import BatteryDying, Fall, HomeSimConfig, simulate_homes
    from vigie.store.homes import HomeSensors, write_availability, write_events

    config = HomeSimConfig(homes=3, days=6, seed=5, tz=TZ)
    first = config.start_date()
    config.anomalies = [Fall(home=0, at=_local(first + timedelta(days=5), 10), minutes=120),
                        BatteryDying(home=1, sensor="bathroom/motion", at=_local(first + timedelta(days=3), 12), days=3)]
    sim = simulate_homes(config)
    write_events(store, sim.events(), HomeSensors.of(sim.sensor_infos().values()))
    write_availability(store, sim.availability())
    return sim


@pytest.fixture(scope="module")
def filled(influxd):
    from vigie.store import InfluxStore

    store = InfluxStore(services.influx_url(influxd), f"grafana_{uuid.uuid4().hex[:8]}",
                        retention_policy="vigie_raw", policies=TEST_POLICIES)
    store.ensure_database("INF")
    water, leak_meter = _write_water(store)
    heat = _write_heating(store)
    homes = _write_homes(store)
    yield Filled(store, water, heat, homes, leak_meter)
    store.close()


def _influx(filled: Filled, query: str) -> list:
    """Run ``query`` as Grafana's InfluxDB data source does (GET /query, db only, epoch=ms); returns
    the series, failing on any error InfluxDB reports."""
    r = httpx.get(filled.store.url + "/query", params={"db": filled.store.database, "q": query, "epoch": "ms"},
                  timeout=60)
    assert r.status_code == 200, f"{r.status_code} {r.text[:300]}\n{query}"
    results = r.json()["results"]
    for res in results:
        assert "error" not in res, f"{res['error']}\n{query}"
    return [s for res in results for s in res.get("series", [])]


def _variables(filled: Filled, d: Dashboard, qt: QueryTime) -> dict[str, VariableValue]:
    """Each variable's value: its query run (earlier variables expanded), then the leak meter for
    ``meter`` and "All" for the multi-value ones."""
    values: dict[str, VariableValue] = {}
    for v in d.templating.variables:
        rows = [row[1] for s in _influx(filled, expand_influxql(v.query, qt, values)) for row in s["values"]]
        values[v.name] = variable_values(rows, multi=v.multi or v.includeAll,
                                         pick=[filled.leak_meter] if v.name == "meter" else None)
    return values


def _rows(series: list) -> int:
    return sum(len(s.get("values", [])) for s in series)


@pytest.mark.parametrize("uid,panel,target", _targets(InfluxTarget))
def test_influx_panel_returns_rows(filled, uid, panel, target):
    d = DASHBOARDS[uid]
    start, end = filled.period(uid)
    qt = QueryTime.of(start, end, min_interval=panel.interval or "15m")
    query = expand_influxql(target.query, qt, _variables(filled, d, qt))
    assert not VARIABLE_RE.search(query), f"unexpanded: {query}"
    series = _influx(filled, query)
    assert _rows(series) > 0, f"{panel.title!r} {target.refId}: no rows\n{query}"


@pytest.mark.parametrize("uid", [u for u, d in DASHBOARDS.items() if d.annotations.queries or d.templating.variables])
def test_influx_annotations_and_variables_return_rows(filled, uid):
    d = DASHBOARDS[uid]
    start, end = filled.period(uid)
    qt = QueryTime.of(start, end)
    variables = _variables(filled, d, qt)
    assert all(v.values for v in variables.values())
    for a in d.annotations.queries:
        series = _influx(filled, expand_influxql(a.target.query, qt, variables))
        cols = series[0]["columns"]
        assert a.target.textColumn in cols and a.target.tagsColumn in cols and _rows(series) > 0


def test_influx_answers_what_the_simulation_injected(filled):
    """Spot checks that the panels show the right thing, not just something."""
    def run(uid, title, ref="A"):
        d = DASHBOARDS[uid]
        p = next(p for p in d.all_panels() if p.title == title)
        t = next(t for t in p.targets if t.refId == ref)
        start, end = filled.period(uid)
        qt = QueryTime.of(start, end, min_interval=p.interval or "15m")
        return _influx(filled, expand_influxql(t.query, qt, _variables(filled, d, qt)))

    silent = run("vigie-water-network", "Silent meters")
    assert [s["tags"]["meter_id"] for s in silent] == [filled.water.meters[5].meter_id]
    flagged = {row[1] for s in run("vigie-water-network", "Leak results, newest first") for row in s["values"]}
    assert filled.leak_meter in flagged
    offline = run("vigie-homes", "Sensors offline")
    dying = next(s.sensor_id for s in filled.homes.homes[1].sensors if s.spec.key == "bathroom/motion")
    assert {s["tags"]["device_id"] for s in offline} == {dying}
    low = run("vigie-heating", "Low-battery flags")
    assert _rows(low) == 1


# --- PostgreSQL filled by the escalation engine and the findings router ---------------------------

@pytest.fixture(scope="module")
def pg_world(filled, tmp_path_factory):
    """The relational store on a throwaway PostgreSQL schema: the homes' registry, their open events
    escalated, the heating faults as findings; yields an engine that runs as a role granted
    SELECT on :data:`GRANTED_TABLES` only."""
    from sqlalchemy import create_engine, event, text

    from vigie.alerts.escalation import Escalation
    from vigie.alerts.findings import FindingRouter, StaffFinding
    from vigie.config import Settings
    from vigie.db import make_engine, make_sessionmaker
    from vigie.records import HOME_EVENT_SEVERITY, HomeEvent, HomeEventKind
    from vigie.registry import load_registry_file
    from vigie.simulators.home import write_home_registry

    admin, schema, url = create_pg_schema()
    role = f"grafana_test_{uuid.uuid4().hex[:8]}"
    tmp = tmp_path_factory.mktemp("grafana-pg")
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    write_home_registry(filled.homes, tmp / "homes.yaml")
    registry = yaml.safe_load((tmp / "homes.yaml").read_text(encoding="utf-8"))
    registry["staff"] = [{"id": "s-duty", "name": "Agent Astreinte", "email": "duty@mairie.example",
                          "commune": "default"}]
    (tmp / "homes.yaml").write_text(yaml.safe_dump(registry, allow_unicode=True), encoding="utf-8")
    with sessions() as s:
        load_registry_file(s, tmp / "homes.yaml")
    # An SMTP URL makes people with an e-mail reachable; nothing is sent (no delivery runs here).
    settings = Settings(database_url=url, data_dir=tmp / "var", timezone=TZ,
                        smtp_url="mailto://127.0.0.1:9?from=vigie@commune.example")
    esc = Escalation(sessions, settings)
    fall = next(t for t in filled.homes.truths if t.kind == "fall")
    dying = next(t for t in filled.homes.truths if t.kind == "battery_dying")
    now = fall.start + timedelta(minutes=40)
    kind = HomeEventKind.LONG_BATHROOM
    esc.apply_events([
        HomeEvent(fall.home, kind, fall.start + timedelta(minutes=30), now, HOME_EVENT_SEVERITY[kind],
                  last_activity=fall.start, last_room="bathroom", observed=2400.0, normal=900.0, threshold=1800.0,
                  unit="s"),
        HomeEvent(dying.home, HomeEventKind.SENSOR_SILENT, dying.start, now,
                  HOME_EVENT_SEVERITY[HomeEventKind.SENSOR_SILENT], sensor_id=dying.detail.get("sensor_id"))],
        [fall.home, dying.home], now=now)
    esc.tick(now)
    esc.tick(now + timedelta(hours=2))
    window = next(t for t in filled.heat.truths if t.kind == "window_open")
    FindingRouter(sessions).apply([StaffFinding(
        commune="default", family="heating", kind=window.finding, subject=f"{window.building}/{window.room}",
        start=window.start, end=window.end, evidence={"flagged_h": 2.5}, building_id=window.building,
        room_id=window.room, label=f"{window.building} — {window.room}")], [("default", window.finding)],
        now=window.start + timedelta(hours=1))
    engine.dispose()
    with admin.begin() as conn:
        conn.execute(text(f'CREATE ROLE "{role}" NOLOGIN'))
        conn.execute(text(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"'))
        for table in GRANTED_TABLES:
            conn.execute(text(f'GRANT SELECT ON "{schema}".{table} TO "{role}"'))
    reader = create_engine(url)

    @event.listens_for(reader, "connect")
    def _as_role(dbapi_conn, _):
        with dbapi_conn.cursor() as cur:
            cur.execute(f'SET ROLE "{role}"')
        dbapi_conn.commit()

    yield reader
    reader.dispose()
    drop_pg_schema(admin, schema, roles=(role,))


@pytest.mark.parametrize("uid,panel,target", _targets(SqlTarget))
def test_sql_panel_returns_rows_as_the_grafana_role(filled, pg_world, uid, panel, target):
    start, end = filled.period(uid)
    qt = QueryTime.of(start, end, min_interval=panel.interval)
    sql = expand_sql(target.rawSql, qt)
    assert not VARIABLE_RE.search(sql), sql
    with pg_world.connect() as conn:
        rows = conn.exec_driver_sql(sql).fetchall()
    assert rows, f"{panel.title!r}: no rows\n{sql}"


def test_escalation_status_shows_the_steps_taken(filled, pg_world):
    p = next(p for p in DASHBOARDS["vigie-homes"].all_panels() if p.title == "Escalation status")
    start, end = filled.period("vigie-homes")
    with pg_world.connect() as conn:
        result = conn.exec_driver_sql(expand_sql(p.targets[0].rawSql, QueryTime.of(start, end, min_interval=None)))
        rows = {r.kind: r for r in result}
    fall_home = next(t.home for t in filled.homes.truths if t.kind == "fall")
    assert rows["long_bathroom"].home == fall_home
    fall = rows["long_bathroom"]
    # Neighbour, family, then staff: two hours without an answer pass every wait.
    assert fall.reached == "staff" and fall.steps >= 3 and fall.people_called == 1
    assert rows["sensor_silent"].reached == "staff"   # technical events go to staff only


def test_the_grafana_role_cannot_read_persons(pg_world):
    from sqlalchemy.exc import ProgrammingError

    with pg_world.connect() as conn, pytest.raises(ProgrammingError, match="permission denied"):
        conn.exec_driver_sql("SELECT name FROM persons").fetchall()


# --- Prometheus --------------------------------------------------------------------------------------

def _exposed_samples() -> set[str]:
    """Sample names vigie/metrics.py serves, the ingest ones included (an ingestor's stats)."""
    metrics = pytest.importorskip("vigie.metrics", reason="vigie/metrics.py (the /metrics endpoint) not there")
    from vigie.ingest.service import IngestStats

    class Running:   # what app_registry reads from a running Ingestor: its stats
        @staticmethod
        def stats() -> IngestStats:
            return IngestStats(received=1, stored=1, dead_letters={"decode": 1}, written=1, pending=1)

    # A labelled metric used by nobody yet has no sample: its family still says what it will serve.
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    names = set()
    for family in metrics.app_registry(Running()).collect():
        names |= {s.name for s in family.samples}
        names |= {family.name + suffix for suffix in suffixes.get(family.type, ())}
    return names


@pytest.mark.parametrize("uid,panel,target", _targets(PromTarget))
def test_prometheus_panel_names_exposed_metrics(uid, panel, target):
    exposed = _exposed_samples()
    names = set(re.findall(r"\b(vigie_[a-z0-9_]+)", target.expr))
    assert names, target.expr
    assert names <= exposed, f"{panel.title!r}: {sorted(names - exposed)} not served by /metrics"
