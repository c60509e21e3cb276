"""Town-hall heating end to end on real Mosquitto (shipped authentication and ACL), InfluxDB and SMTP:

``vigie simulate heating --scenario e2e`` publishes two weeks of 12 rooms (a window left open, a
seized valve, a weekend at comfort, a setpoint above comfort, a dying battery; the other rooms clean)
as zigbee2mqtt TRV messages; ``vigie serve`` ingests them; the daily staff job then runs for each
day as the scheduler would. Every injected fault must be found, on its room and kind, nothing on the
clean rooms; the staff get digest e-mails naming the faults; the API lists the findings;
``vigie heating --json`` reads the same findings.
"""

from __future__ import annotations

import json
import subprocess
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from test_e2e_water import VIGIE, served  # noqa: F401  (the fixture: vigie serve on the secured broker)

import services
from vigie.alerts.findings import FacilityFinding
from vigie.config import Settings
from vigie.context import AppContext
from vigie.heating_jobs import heating_job

pytestmark = pytest.mark.e2e
PARIS = ZoneInfo("Europe/Paris")
STAFF = """
staff:
  - {id: p-staff, name: Agent Technique, email: technique@mairie.example, language: fr}
"""
#: The simulator's fault kinds → the staff findings that must be recorded for them.
EXPECTED = {"window_open": {"window_open_heating"}, "stuck_valve": {"cannot_reach_setpoint"},
            "schedule_ignored": {"unoccupied_heating"}, "setpoint_above_comfort": {"setpoint_above_comfort"},
            "battery_dying": {"low_battery", "silent"}}


def test_heating_end_to_end(served, smtp_server, monkeypatch):
    env, api, serve_proc, tmp_path = served
    run = lambda *args, timeout=600: subprocess.run([*VIGIE, *args], env=env, cwd=tmp_path,  # noqa: E731
                                                     capture_output=True, text=True, timeout=timeout)
    (tmp_path / "staff.yaml").write_text(STAFF, encoding="utf-8")
    assert run("registry", "load", str(tmp_path / "staff.yaml")).returncode == 0

    sim = run("simulate", "heating", "--scenario", "e2e", "--rooms", "12", "--as-fast-as-possible",
              "--truth", str(tmp_path / "truth.json"), "--registry-out", str(tmp_path / "buildings.yaml"),
              timeout=900)
    assert sim.returncode == 0, sim.stderr[-3000:]
    published = json.loads(sim.stdout.strip().splitlines()[-1])["published"]
    truth = json.loads((tmp_path / "truth.json").read_text())
    assert published == truth["messages"] and {f["kind"] for f in truth["faults"]} == set(EXPECTED)

    def caught_up():
        h = api.get("/health").json()
        return h if h["ingest_received"] >= published and h["ingest_pending"] == 0 else False

    assert services.wait_until(caught_up, 600, "ingest to catch up", interval=2)["dead_letters"] == 0

    # The daily staff job for each simulated day, just after that day ends (the simulation stops
    # at the end of its last day: later, every device would rightly be silent).
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    ctx = AppContext.create(Settings())
    try:
        first = date.fromisoformat(truth["start"])
        for d in range(truth["days"]):
            day = first + timedelta(days=d)
            now = datetime.combine(day + timedelta(days=1), time(0, 10), PARIS).astimezone(timezone.utc)
            heating_job(ctx, day, now)
        with ctx.sessions() as s:
            found = [(f.kind, f.room_id, f.device_id, f.status) for f in s.scalars(select(FacilityFinding))]
    finally:
        ctx.close()

    by_room: dict[str, set[str]] = {}
    for kind, room, device, _ in found:
        if room:
            by_room.setdefault(room, set()).add(kind)
    for fault in truth["faults"]:
        seen = by_room.get(fault["room"], set())
        assert EXPECTED[fault["kind"]] <= seen, (fault["kind"], fault["room"], seen)
        if fault["kind"] == "battery_dying":
            assert {(k, d) for k, _, d, _ in found if k in ("low_battery", "silent")} == {
                (k, dev) for k in ("low_battery", "silent") for dev in fault["devices"]}
    assert not (set(truth["clean_rooms"]) & set(by_room)), {r: by_room[r] for r in truth["clean_rooms"]
                                                          if r in by_room}
    # The window closed, the valve freed, the weekend ended: those findings resolved by themselves.
    resolved = {(k, r) for k, r, _, status in found if status == "resolved"}
    window = next(f for f in truth["faults"] if f["kind"] == "window_open")
    assert ("window_open_heating", window["room"]) in resolved

    # Staff were told in digests (one per day with something new), in French, each fault named.
    mails = smtp_server.to("technique@mairie.example")
    assert 1 <= len(mails) <= truth["days"]
    bodies = "\n".join(m.get_body().get_content() for m in mails)
    for text in ("chauffage fenêtre ouverte", "radiateur qui n'atteint pas sa consigne",
                 "chauffage d'une salle inoccupée", "consigne au-dessus de la température de confort",
                 "pile faible", "appareil muet"):
        assert text in bodies, text

    # The API lists them for the commune's staff key; `vigie heating` reads the same window finding.
    listed = api.get("/findings").json()
    assert {(f["kind"], f["room_id"]) for f in listed} >= {("window_open_heating", window["room"])}
    day = datetime.fromisoformat(window["start_utc"]).astimezone(PARIS).date()
    read = run("heating", "--from", day.isoformat(), "--to", (day + timedelta(days=1)).isoformat(), "--json")
    assert read.returncode == 0, read.stderr[-3000:]
    assert ("window_open_heating", window["room"]) in {(f["kind"], f["room"]) for f in json.loads(read.stdout)["findings"]}
