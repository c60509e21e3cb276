"""The home minute tick (vigie.home_jobs) on a real influxd, SQLite and SMTP: simulated homes' events
in InfluxDB, a fall injected in one home; ticking minute by minute, the alert opens and the level-1
neighbour is e-mailed in the first run after the detector's threshold, not before."""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import services
from sqlalchemy import select
from vigie.alerts.models import HomeAlert
from vigie.simulators.home import (
    Fall,
    HomeSimConfig,
    simulate_homes,
    write_home_registry,
)

from vigie.config import Settings
from vigie.context import AppContext
from vigie.db import make_engine, make_sessionmaker
from vigie.home_jobs import HomeMonitor, home_job
from vigie.records import HomeEventKind
from vigie.registry import load_registry_file
from vigie.store import InfluxStore
from vigie.store.homes import HomeSensors, read_events, write_events

PARIS = ZoneInfo("Europe/Paris")
DAYS = 10


@pytest.fixture
def world(tmp_path, influx_store, smtp_server):
    # Recent days (the events policy keeps 90 days); the fall on the last one at 10:00 local.
    first = datetime.now(PARIS).date() - timedelta(days=DAYS + 1)
    fall_at = datetime.combine(first + timedelta(days=DAYS - 1), time(10, 0))
    sim = simulate_homes(HomeSimConfig(homes=3, days=DAYS, start=first, seed=11,
                                       anomalies=[Fall(0, fall_at, minutes=120)]))
    write_home_registry(sim, tmp_path / "registry.yaml")
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'vigie.db'}", data_dir=tmp_path / "var",
                        timezone="Europe/Paris", public_url="https://vigie.example",
                        smtp_url=f"mailto://127.0.0.1:{smtp_server.port}?from=vigie@commune.example")
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    with sessions() as s:
        load_registry_file(s, tmp_path / "registry.yaml")
    write_events(influx_store, sim.events(), HomeSensors.of(sim.sensor_infos().values()))
    ctx = AppContext(settings, influx_store, engine, sessions)
    yield ctx, sim, fall_at.replace(tzinfo=PARIS).astimezone(timezone.utc)
    engine.dispose()


def home_alerts(ctx, home: str) -> list[HomeAlert]:
    with ctx.sessions() as s:
        return list(s.scalars(select(HomeAlert).where(HomeAlert.household_id == home)))


def test_fall_alerts_the_neighbour_within_one_tick_of_the_threshold(world, smtp_server):
    ctx, _, fall = world
    monitor = HomeMonitor(ctx)
    now = fall
    first = home_job(ctx, now, monitor)
    assert first.learned and first.detected and first.homes == 3
    assert not monitor.routines.limited_history.any()
    assert not home_alerts(ctx, "home-0001")
    while not home_alerts(ctx, "home-0001"):
        previous = now
        now += timedelta(minutes=1)
        assert now - fall < timedelta(hours=2), "the fall was not detected while it lasted"
        out = home_job(ctx, now, monitor)
        assert out.detected and not out.learned
    [alert] = home_alerts(ctx, "home-0001")
    assert alert.kind in (HomeEventKind.LONG_BATHROOM, HomeEventKind.INACTIVITY)
    start = alert.start.replace(tzinfo=timezone.utc) if alert.start.tzinfo is None else alert.start
    assert previous < start <= now                     # raised at the first tick past the threshold
    assert alert.evidence["last_room"] == "bathroom"
    mails = smtp_server.to("neighbour-0001@example.org")
    assert len(mails) == 1                             # level 1 e-mailed in that same run
    assert not smtp_server.to("family-0001@example.org")   # level 2 only after the wait

    # The next tick refreshes the same episode: no second alert, no second e-mail.
    home_job(ctx, now + timedelta(minutes=1), monitor)
    assert len(home_alerts(ctx, "home-0001")) == 1
    assert len(smtp_server.to("neighbour-0001@example.org")) == 1

    # The incrementally kept recent events are exactly what a full read of the lookback gives.
    t = now + timedelta(minutes=1)
    lookback = t - timedelta(hours=ctx.settings.home_lookback_h)
    full = read_events(ctx.store, lookback, t + timedelta(seconds=1), HomeSensors.from_registry(ctx.sessions))
    kept = monitor.recent(t, HomeSensors.from_registry(ctx.sessions))
    assert kept.astype(str).reset_index(drop=True).equals(full.astype(str).reset_index(drop=True))


def test_escalation_ticks_when_detection_cannot_read(world, smtp_server):
    ctx, _, fall = world
    home_job(ctx, fall + timedelta(hours=1))          # detects the fall (over its threshold by now)
    assert home_alerts(ctx, "home-0001")
    ctx.store = InfluxStore(f"http://127.0.0.1:{services.free_port()}", "vigie")   # InfluxDB unreachable
    out = home_job(ctx, fall + timedelta(hours=1, minutes=11))
    assert not out.detected
    assert out.steps >= 1                             # level 2 is due after the 10 min wait
    assert smtp_server.to("family-0001@example.org")
    [alert] = home_alerts(ctx, "home-0001")
    assert alert.status == "open"                     # nothing cleared for lack of data
