"""``vigie events`` (the backtest of the home minute tick) on a real influxd: simulated homes with a
fall injected in one, stored in InfluxDB; the command, run as a subprocess, lists the fall with the
start and first tick the live tick (``home_job``, called minute by minute over the same data with
the routine learned at that day's learning time) raises it at."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from vigie.simulators.home import (
    Fall,
    HomeSimConfig,
    simulate_homes,
    write_home_registry,
)

from vigie.config import Settings
from vigie.context import AppContext
from vigie.db import make_engine, make_sessionmaker
from vigie.home_jobs import HomeMonitor, home_job, learn_times
from vigie.records import HomeEventKind
from vigie.registry import load_registry_file
from vigie.store.homes import HomeSensors, write_events

PARIS = ZoneInfo("Europe/Paris")
DAYS = 10
FALL_KINDS = {HomeEventKind.LONG_BATHROOM, HomeEventKind.INACTIVITY}


@pytest.fixture
def world(tmp_path, influx_store, smtp_server):
    first = datetime.now(PARIS).date() - timedelta(days=DAYS + 1)
    fall_day = first + timedelta(days=DAYS - 1)
    fall_at = datetime.combine(fall_day, time(10, 0))
    sim = simulate_homes(HomeSimConfig(homes=3, days=DAYS, start=first, seed=11,
                                       anomalies=[Fall(0, fall_at, minutes=120)]))
    write_home_registry(sim, tmp_path / "registry.yaml")
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'vigie.db'}", data_dir=tmp_path / "var",
                        timezone="Europe/Paris", public_url="https://vigie.example",
                        influx_url=influx_store.url, influx_database=influx_store.database,
                        smtp_url=f"mailto://127.0.0.1:{smtp_server.port}?from=vigie@commune.example")
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    with sessions() as s:
        load_registry_file(s, tmp_path / "registry.yaml")
    write_events(influx_store, sim.events(), HomeSensors.of(sim.sensor_infos().values()))
    yield AppContext(settings, influx_store, engine, sessions), fall_day, fall_at.replace(tzinfo=PARIS)
    engine.dispose()


def run_cli(ctx: AppContext, cwd, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIE_")}
    env.update(VIGIE_INFLUX_URL=ctx.settings.influx_url, VIGIE_INFLUX_DATABASE=ctx.settings.influx_database,
               VIGIE_DATABASE_URL=ctx.settings.database_url, VIGIE_TIMEZONE=ctx.settings.timezone,
               VIGIE_DATA_DIR=str(ctx.settings.data_dir))
    run = subprocess.run([sys.executable, "-m", "vigie.cli", "events", *args], env=env, cwd=cwd,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def test_events_lists_the_fall_as_the_live_tick_raised_it(world, tmp_path):
    ctx, fall_day, fall_at = world
    # The live service: the routine learned at the fall day's learning time, then a tick a minute.
    monitor = HomeMonitor(ctx)
    learned_at = learn_times(fall_day, fall_day, ctx.settings)[-1]
    monitor.learn(datetime.fromtimestamp(learned_at, timezone.utc))
    now = fall_at.astimezone(timezone.utc)
    live = []
    while not live:
        out = home_job(ctx, now, monitor)
        assert out.detected and not out.learned
        live = [e for e in out.events if e.home_id == "home-0001" and e.kind in FALL_KINDS]
        now += timedelta(minutes=1)
        assert now - fall_at < timedelta(hours=2), "the live tick never raised the fall"
    live_event = min(live, key=lambda e: e.start)

    run = run_cli(ctx, tmp_path, "--from", (fall_day - timedelta(days=1)).isoformat(), "--to",
                  fall_day.isoformat(), "--json")
    rows = json.loads(run.stdout)
    assert rows and all({"home_id", "kind", "start", "severity", "evidence"} <= set(r) for r in rows)
    falls = [r for r in rows if r["home_id"] == "home-0001" and r["kind"] in {str(k) for k in FALL_KINDS}
             and datetime.fromisoformat(r["start"]) >= fall_at]
    assert falls, rows
    fall = min(falls, key=lambda r: r["start"])
    assert fall["kind"] == str(live_event.kind)
    assert abs(datetime.fromisoformat(fall["start"]) - live_event.start) <= timedelta(minutes=1)
    assert abs(datetime.fromisoformat(fall["detected_at"]) - live_event.detected_at) <= timedelta(minutes=1)
    assert fall["severity"] == str(live_event.severity)
    assert fall["evidence"]["last_room"] == "bathroom"
    # One line per episode: no (home, kind, sensor, start) listed twice.
    keys = [(r["home_id"], r["kind"], r["sensor_id"], r["start"]) for r in rows]
    assert len(keys) == len(set(keys))

    # The text form, one home: the same fall, on one line.
    text = run_cli(ctx, tmp_path, "--from", fall_day.isoformat(), "--to", fall_day.isoformat(),
                   "--home", "home-0001").stdout.splitlines()
    start_local = datetime.fromisoformat(fall["start"]).astimezone(PARIS).strftime("%Y-%m-%d %H:%M:%S")
    assert [ln for ln in text if ln.startswith(start_local) and fall["kind"] in ln]
    assert all("home-0001" in ln for ln in text[1:])


def test_events_refuses_an_unknown_home(world, tmp_path):
    ctx, fall_day, _ = world
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIE_")}
    env.update(VIGIE_INFLUX_URL=ctx.settings.influx_url, VIGIE_INFLUX_DATABASE=ctx.settings.influx_database,
               VIGIE_DATABASE_URL=ctx.settings.database_url)
    run = subprocess.run([sys.executable, "-m", "vigie.cli", "events", "--from", fall_day.isoformat(), "--to",
                          fall_day.isoformat(), "--home", "home-9999"], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert "home-9999" in run.stderr
