"""End to end on real Mosquitto, InfluxDB and SMTP, through the ``vigie`` command line:

``vigie serve`` runs against a Mosquitto with the shipped authentication and ACL (the quick start's:
the service account subscribes, the simulator publishes with its own test-gateway credential);
``vigie simulate water --scenario e2e`` publishes 30 days of 500 meters (6 leaks,
2 long gaps, 1 replacement, duplicates, out-of-order messages); once ingest has caught up,
``vigie leaks --from --to --json`` checks every day; then the rules, the e-mails and the API (with a
staff key made by ``vigie keys create``) are compared with the simulator's ground truth.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from datetime import date, timedelta

import httpx
import pytest

import services

pytestmark = pytest.mark.e2e

VIGIE = [sys.executable, "-m", "vigie.cli"]


def _env(mosquitto, influxd, smtp_server, tmp_path, api_port: int) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIE_")}
    env.update({
        "VIGIE_MQTT_URL": f"mqtt://127.0.0.1:{mosquitto.port}",
        "VIGIE_MQTT_CLIENT_ID": f"vigie-e2e-{tmp_path.name}",
        "VIGIE_INFLUX_URL": services.influx_url(influxd),
        "VIGIE_INFLUX_DATABASE": f"e2e_{tmp_path.name.replace('-', '_')}",
        "VIGIE_DATABASE_URL": f"sqlite:///{tmp_path / 'vigie.db'}",
        "VIGIE_DATA_DIR": str(tmp_path / "var"),
        "VIGIE_SMTP_URL": f"mailto://127.0.0.1:{smtp_server.port}?from=vigie@commune.example",
        "VIGIE_API_PORT": str(api_port),
        "VIGIE_TIMEZONE": "Europe/Paris",
    })
    return env


@pytest.fixture
def served(secured_mosquitto, influxd, smtp_server, tmp_path):
    port = services.free_port()
    broker, passwords = secured_mosquitto
    env = _env(broker, influxd, smtp_server, tmp_path, port)
    env.update({"VIGIE_MQTT_USERNAME": services.SERVICE_USER,
                "VIGIE_MQTT_PASSWORD": passwords[services.SERVICE_USER],
                "VIGIE_SIMULATOR_MQTT_USERNAME": services.SIMULATOR_USER,
                "VIGIE_SIMULATOR_MQTT_PASSWORD": passwords[services.SIMULATOR_USER]})
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen([*VIGIE, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    api = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)

    def ready():
        assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
        try:
            return api.get("/ready").status_code == 200
        except httpx.HTTPError:
            return False

    services.wait_until(ready, 60, "vigie serve ready")
    key = subprocess.run([*VIGIE, "keys", "create", "--role", "staff", "--person", "p-staff"],
                         env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert key.returncode == 0, key.stderr[-3000:]
    assert api.get("/alerts").status_code == 401
    api.headers["Authorization"] = f"Bearer {key.stdout.strip()}"
    yield env, api, proc, tmp_path
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()


def test_water_end_to_end(served, smtp_server):
    env, api, serve_proc, tmp_path = served
    gt_path, reg_path = tmp_path / "truth.json", tmp_path / "registry.yaml"

    sim = subprocess.run([*VIGIE, "simulate", "water", "--scenario", "e2e", "--seed", "7",
                          "--ground-truth", str(gt_path), "--registry", str(reg_path)],
                         env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert sim.returncode == 0, sim.stderr[-3000:]
    published = json.loads(sim.stdout.strip().splitlines()[-1])["published"]
    truth = json.loads(gt_path.read_text())
    assert published == truth["messages"]

    # Ingest has caught up when every published message was received and nothing is spooled.
    def caught_up():
        h = api.get("/health").json()
        return h if h["ingest_received"] >= published and h["ingest_pending"] == 0 else False

    health = services.wait_until(caught_up, 900, "ingest to catch up", interval=2)
    assert health["dead_letters"] == 0

    first = date.fromisoformat(truth["start"])
    last = first + timedelta(days=truth["days"] - 1)
    run = subprocess.run([*VIGIE, "leaks", "--from", first.isoformat(), "--to", last.isoformat(), "--json"],
                         env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(run.stdout)
    for r in results:
        assert {"meter_id", "day", "rule", "rate_l_per_h", "volume_l", "status"} <= r.keys()

    leaks = [f for f in truth["faults"] if f["kind"] == "leak"]
    gaps = {f["meter_id"] for f in truth["faults"] if f["kind"] == "gap"}
    leak_meters = {f["meter_id"] for f in leaks}
    assert len(leaks) == 6

    # Continuous flow flags exactly the leaking meters on exactly the days fully covered by the leak.
    expected = {(f["meter_id"], d) for f in leaks for d in f["days_fully_covered"]}
    flagged_cf = {(r["meter_id"], r["day"]) for r in results
                  if r["rule"] == "continuous_flow" and r["status"] == "leak"}
    assert flagged_cf == expected

    # No rule flags a meter without an injected leak (gaps, replacement, duplicates, disorder included).
    flagged_any = {r["meter_id"] for r in results if r["status"] == "leak"}
    assert flagged_any <= leak_meters, flagged_any - leak_meters
    # Rate estimates are close to the injected rates (minimum flow = leak + the household's quiet hours).
    for f in leaks:
        rates = [r["rate_l_per_h"] for r in results if r["meter_id"] == f["meter_id"]
                 and r["rule"] == "continuous_flow" and r["status"] == "leak"]
        assert rates and min(rates) >= 0.9 * f["params"]["rate_l_per_h"]
    # Too little data is said, never passed silently: the 8-hour gap over a night leaves a day short.
    short = {r["meter_id"] for r in results if r["status"] == "insufficient_data" and r["detail"] != "history"}
    assert short and short <= gaps

    # E-mail: the resident of each leaking meter is told once per alert kind; nobody else is written to.
    registry = (reg_path.read_text())
    by_meter_email = {}
    import yaml

    for hh in yaml.safe_load(registry)["households"]:
        for m in hh["meters"]:
            by_meter_email[m["id"]] = hh["residents"][0]["email"]
    leak_emails = {by_meter_email[m] for m in leak_meters}
    recipients = {rcpt for rcpts, _ in smtp_server.messages for rcpt in rcpts}
    assert recipients == leak_emails
    alerts = api.get("/alerts").json()
    for meter in leak_meters:
        msgs = smtp_server.to(by_meter_email[meter])
        subjects = Counter(m["Subject"] for m in msgs)
        assert all(n == 1 for n in subjects.values()), subjects
        kinds = {a["kind"] for a in alerts if a["meter_id"] == meter}
        resolved = {a["kind"] for a in alerts if a["meter_id"] == meter and a["status"] == "resolved"}
        # one "opened" message per alert, one "resolved" message per resolved alert, no reminder
        # (reminders wait renotify_after_days of wall-clock time)
        assert len(msgs) == len(kinds) + len(resolved), (subjects, kinds, resolved)
        assert "continuous_flow" in kinds

    # The API lists the alerts: every leak meter has one, no other meter has any.
    assert {a["meter_id"] for a in alerts} == leak_meters
    open_cf = {a["meter_id"] for a in api.get("/alerts", params={"status": "open"}).json()
               if a["kind"] == "continuous_flow"}
    still_leaking = {f["meter_id"] for f in leaks if f["end_utc"] is None}
    assert open_cf == still_leaking

    # Acknowledging through the API.
    a = next(a for a in alerts if a["status"] == "open")
    acked = api.post(f"/alerts/{a['id']}/ack")
    assert acked.status_code == 200 and acked.json()["status"] == "acknowledged"
    assert acked.json()["acknowledged_by"] == "p-staff"
    assert api.post("/alerts/999999/ack").status_code == 404

    # Consumption of a leaking meter by day: every day of the leak has at least the leak's volume.
    f = leaks[0]
    day0 = f["days_fully_covered"][0]
    cons = api.get(f"/meters/{f['meter_id']}/consumption",
                   params={"start": day0, "end": (date.fromisoformat(day0) + timedelta(days=2)).isoformat(),
                           "resolution": "day"}).json()
    assert len(cons["points"]) == 2
    assert all(p["volume_l"] >= 24 * f["params"]["rate_l_per_h"] * 0.95 for p in cons["points"])
    assert serve_proc.poll() is None

    # The logs of the whole run hold no personal detail of the registry: opaque ids only.
    logs = (tmp_path / "serve.log").read_text(errors="replace") + sim.stderr + run.stderr
    assert "leak check" in logs and "alert" in logs  # the service did log its work
    personal = set()
    for hh in yaml.safe_load(registry)["households"]:
        personal.add(hh.get("address"))
        for person in hh.get("residents", []) + hh.get("caregivers", []):
            personal.update(person.get(k) for k in ("name", "email", "phone"))
    personal.discard(None)
    assert len(personal) >= 1000
    leaked = sorted(p for p in personal if p in logs)
    assert not leaked, leaked[:5]
