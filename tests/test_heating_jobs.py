"""The daily staff job (vigie/heating_jobs.py) on a real InfluxDB and SQLite: heating findings and
device problems recorded, one digest e-mailed to the commune's staff (real SMTP sink), the weekly
report stored, and ``vigie heating --json`` printing the same findings as the job records."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from vigie.alerts.digest import StaffDigest
from vigie.alerts.findings import FacilityFinding
from vigie.config import Settings
from vigie.context import AppContext
from vigie.db import make_engine, make_sessionmaker
from vigie.heating_jobs import heating_job, week_of, weekly_reports
from vigie.heating_reports import HeatingReport
from vigie.registry import load_registry_file
from vigie.store.heating import write_heating

PARIS = ZoneInfo("Europe/Paris")
REGISTRY = """
staff:
  - {id: s-0001, name: Agent Technique, email: agent@mairie.example, commune: exemple}
buildings:
  - id: b-mairie
    name: Mairie
    commune: exemple
    outdoor_device: out-mairie
    rooms:
      - id: r-a
        name: Salle A
        comfort_c: 20
        setback_c: 16
        schedule: "daily 08:00-18:00"
        devices:
          - {id: trv-a, kind: trv, friendly_name: mairie/a/trv, radiator_w: 1500, expected_interval_s: 900}
          - {id: out-mairie, kind: outdoor, friendly_name: mairie/exterieur, expected_interval_s: 900}
      - id: r-b
        name: Salle B
        comfort_c: 20
        setback_c: 16
        schedule: "daily 08:00-18:00"
        devices:
          - {id: trv-b, kind: trv, friendly_name: mairie/b/trv, radiator_w: 1000, expected_interval_s: 900}
"""


def lines(first: date, days: int, window_open_on: date) -> list[str]:
    """Every 15 min: TRVs at 20 °C by day (setpoint 20, valve 30 %) and 16 °C by night (valve 0);
    room A's window open 10:00–12:00 local on ``window_open_on`` (valve wide open, 15 °C); trv-a's
    battery low on the last day; 5 °C outside."""
    out = []
    start = datetime.combine(first, time(0, 0), PARIS)
    for k in range(days * 96):
        t = (start + timedelta(minutes=15 * k)).astimezone(timezone.utc)
        local = t.astimezone(PARIS)
        ts = int(t.timestamp())
        day = 8 <= local.hour < 18
        for room, dev in (("r-a", "trv-a"), ("r-b", "trv-b")):
            temp, setpoint, valve, window = (20.0, 20.0, 30.0, 0) if day else (16.0, 16.0, 0.0, 0)
            if dev == "trv-a" and local.date() == window_open_on and 10 <= local.hour < 12:
                temp, valve, window = 15.0, 100.0, 1
            battery = 10.0 if dev == "trv-a" and local.date() == window_open_on else 90.0
            out.append(f"heating,building=b-mairie,device={dev},kind=trv,room={room} temperature_c={temp},"
                       f"setpoint_c={setpoint},valve_pct={valve},window_open={window},battery_pct={battery} {ts}")
        out.append(f"heating,building=b-mairie,device=out-mairie,kind=outdoor,room=r-a temperature_c=5 {ts}")
    return out


@pytest.fixture
def world(tmp_path, influx_store, smtp_server):
    day = datetime.now(PARIS).date() - timedelta(days=3)
    (tmp_path / "registry.yaml").write_text(REGISTRY)
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'vigie.db'}", data_dir=tmp_path / "var",
                        timezone="Europe/Paris", language="fr", heating_history_days=7,
                        smtp_url=f"mailto://127.0.0.1:{smtp_server.port}?from=vigie@commune.example")
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    with sessions() as s:
        load_registry_file(s, tmp_path / "registry.yaml")
    write_heating(influx_store, lines(day - timedelta(days=2), 3, day))
    yield AppContext(settings, influx_store, engine, sessions), day
    engine.dispose()


def findings(ctx) -> list[tuple[str, str, str]]:
    with ctx.sessions() as s:
        return sorted((f.kind, f.subject, f.status) for f in s.scalars(select(FacilityFinding)))


def test_daily_job_records_findings_and_mails_one_digest(world, smtp_server):
    ctx, day = world
    now = datetime.combine(day + timedelta(days=1), time(0, 10), PARIS).astimezone(timezone.utc)
    out = heating_job(ctx, day, now)
    assert findings(ctx) == [("low_battery", "heating:trv-a", "open"),
                             ("window_open_heating", "b-mairie/r-a", "open")]
    assert out.heating.opened == 1 and out.devices.opened == 1 and len(out.digests) == 1
    [mail] = smtp_server.to("agent@mairie.example")
    body = mail.get_body().get_content()
    assert mail["Subject"] == "Vigie — 2 nouveau(x) constat(s) pour les services techniques (exemple)"
    for expected in ("Mairie — Salle A — chauffage fenêtre ouverte", "10:00 au", "12:00",
                     "Mairie — Salle A — trv-a — pile faible", "pile 10,0 %"):
        assert expected in body, expected
    assert "Salle B" not in body

    # the same day again: nothing new, no second e-mail
    again = heating_job(ctx, day, now + timedelta(minutes=5))
    assert again.digests == [] and again.heating.updated == 1
    assert len(smtp_server.to("agent@mairie.example")) == 1
    with ctx.sessions() as s:
        assert len(s.scalars(select(StaffDigest)).all()) == 1

    # the next day has no open window: the heating finding resolves; the battery is still low
    heating_job(ctx, day + timedelta(days=1), now + timedelta(days=1))
    assert ("window_open_heating", "b-mairie/r-a", "resolved") in findings(ctx)


def test_weekly_report_per_building(world):
    ctx, day = world
    now = datetime.combine(day + timedelta(days=1), time(0, 10), PARIS).astimezone(timezone.utc)
    heating_job(ctx, day, now, deliver=False)
    [body] = weekly_reports(ctx, week_of(day), now)
    assert body["building_id"] == "b-mairie" and body["name"] == "Mairie"
    assert body["waste"]["window_open_heating"]["count"] == 1
    assert body["waste"]["window_open_heating"]["wasted_kwh"] == pytest.approx(3.0, abs=0.4)  # 1.5 kW × 2 h
    assert {f["kind"] for f in body["open_faults"]} == {"window_open_heating", "low_battery"}
    assert [r["room_id"] for r in body["rooms"]] == ["r-a", "r-b"]
    # stored once per building and week; a second run replaces it
    weekly_reports(ctx, week_of(day), now + timedelta(hours=1))
    with ctx.sessions() as s:
        [row] = s.scalars(select(HeatingReport)).all()
        assert row.week_start == week_of(day) and row.body["building_id"] == "b-mairie"
    with pytest.raises(ValueError, match="Monday"):
        weekly_reports(ctx, week_of(day) + timedelta(days=1))


def test_cli_heating_lists_the_same_findings_and_daily_energy(world, tmp_path):
    ctx, day = world
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIE_")}
    env.update(VIGIE_DATABASE_URL=ctx.settings.database_url, VIGIE_INFLUX_URL=ctx.store.url,
               VIGIE_INFLUX_DATABASE=ctx.store.database, VIGIE_DATA_DIR=str(tmp_path / "var"),
               VIGIE_HEATING_HISTORY_DAYS="7")
    done = subprocess.run([sys.executable, "-m", "vigie.cli", "heating", "--from", day.isoformat(), "--to",
                           day.isoformat(), "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert [(f["building"], f["room"], f["kind"]) for f in out["findings"]] == [
        ("b-mairie", "r-a", "window_open_heating")]
    start = datetime.fromisoformat(out["findings"][0]["start"]).astimezone(PARIS)
    assert (start.date(), start.hour) == (day, 10)
    energy = {(d["room"], d["day"]): d for d in out["room_days"]}
    # room B: 30 % of 1 kW for 10 h = 3 kWh; room A: the same plus 2 h wide open minus 2 h at 30 % of 1.5 kW
    assert energy[("r-b", day.isoformat())]["energy_kwh"] == pytest.approx(3.0, abs=0.3)
    assert energy[("r-a", day.isoformat())]["energy_kwh"] == pytest.approx(4.5 + 3.0 - 0.9, abs=0.5)
    assert energy[("r-a", day.isoformat())]["hdd"] == pytest.approx(13.0)
    table = subprocess.run([sys.executable, "-m", "vigie.cli", "heating", "--from", day.isoformat(), "--to",
                            day.isoformat()], env=env, capture_output=True, text=True, timeout=120)
    assert table.returncode == 0 and "window_open_heating" in table.stdout and "r-b" in table.stdout
