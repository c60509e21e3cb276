"""``vigie demo --exit`` on a bare machine: no VIGIE_* setting at all, so the embedded broker (amqtt),
the embedded store (SQLite) and the local outbox are used. The alerts it prints must be the faults it
injected (each caught, nothing raised on a sound meter, home or room), the outbox must hold the
messages for them, and the API must have answered the demo's staff key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vigie.alerts.outbox import read_outbox

pytestmark = pytest.mark.e2e


def test_demo_on_a_bare_machine(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIE_")}
    demo_dir = tmp_path / "demo"
    proc = subprocess.run([sys.executable, "-m", "vigie", "demo", "--exit", "--days", "3", "--meters", "12",
                           "--homes", "1", "--rooms", "4", "--dir", str(demo_dir)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=540)
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    summary = json.loads((demo_dir / "summary.json").read_text())
    assert summary["broker"].startswith("embedded amqtt broker"), summary["broker"]
    assert summary["store"].startswith("embedded store"), summary["store"]
    assert summary["dead_letters"] == 0
    assert summary["stored"] >= sum(summary["published"].values()) > 1000

    # The printed alerts: every injected fault caught on its subject, nothing on a sound one.
    printed = [tuple(line.split()[1:5]) for line in proc.stdout.splitlines() if line.startswith("ALERT ")]
    assert printed and "MISSED" not in proc.stdout
    faults = summary["injected"]
    assert {f["family"] for f in faults} == {"water", "home", "heating"}
    for f in faults:
        assert any((fam, subj) == (f["family"], f["subject"]) and kind in f["kinds"] for fam, subj, kind, _ in printed), f
    faulty = {(f["family"], f["subject"]) for f in faults}
    assert {(fam, subj) for fam, subj, _, _ in printed if fam != "device"} <= faulty, printed
    assert not [a for a in printed if a[0] == "device"], printed    # no device went silent or flat

    # The outbox: the residents of both faulty meters, the fallen resident's neighbour, the staff.
    mails = read_outbox(demo_dir / "outbox")
    assert summary["outbox_messages"] == len(mails) >= 4
    bodies = {m["To"]: "" for m in mails}
    for m in mails:
        bodies[m["To"]] += m.get_body().get_content()
    water = [f["subject"] for f in faults if f["family"] == "water"]
    for meter in water:
        assert any(meter in body for to, body in bodies.items() if to.startswith("resident-")), meter
    home = next(f["subject"] for f in faults if f["family"] == "home")
    assert f"neighbour-{home.split('-')[1]}@example.org" in bodies
    staff = bodies["technique@mairie.example"]
    assert "fenêtre ouverte" in staff and "n'atteint pas sa consigne" in staff

    # The API answered the staff key with the same alerts.
    api = summary["api_answers"]
    assert api["health_status"] == 200
    assert api["/alerts?status=open"] == len([a for a in printed if a[0] == "water" and a[3] == "open"])
    assert api["/home-alerts?status=open"] == 1
    assert api["/findings"] >= 2
    assert summary["api_url"] in proc.stdout and summary["staff_token"] in proc.stdout
    assert Path(summary["outbox"]) == demo_dir / "outbox"
