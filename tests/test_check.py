"""``vigie check`` against real services: a secured Mosquitto, InfluxDB (with and without
authentication), an SMTP server, and ports where nothing listens."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

import services
from conftest import TEST_POLICIES
from vigie.db import make_engine, make_sessionmaker
from vigie.registry import RegistryRow, upsert_rows
from vigie.store import InfluxStore

pytestmark = pytest.mark.e2e

SENDER = "vigie@commune.example"


def run_check(cwd: Path, env: dict[str, str], *args: str) -> tuple[int, dict]:
    """``vigie check --json`` in ``cwd`` (no .env there) with only ``env`` as VIGIE_ settings."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("VIGIE_")}
    full.update(env)
    done = subprocess.run([sys.executable, "-m", "vigie.cli", "check", "--json", "--timeout", "3", *args],
                          env=full, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout)


def by_name(report: dict) -> dict[str, dict]:
    return {c["name"]: c for c in report["checks"]}


def registry_db(directory: Path, rows: list[RegistryRow]) -> str:
    """A SQLite database in ``directory`` at the current schema, holding ``rows``."""
    directory.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{directory / 'vigie.db'}"
    engine = make_engine(url)
    with make_sessionmaker(engine)() as s:
        upsert_rows(s, rows)
    engine.dispose()
    return url


def influx_database(influxd) -> str:
    """A fresh database with the service's retention policies, as a first start leaves it."""
    name = f"check_{uuid.uuid4().hex[:8]}"
    store = InfluxStore(services.influx_url(influxd), name, retention_policy="vigie_raw", policies=TEST_POLICIES)
    store.ensure_database("INF")
    store.close()
    return name


@pytest.fixture
def base_env(tmp_path, influxd, secured_mosquitto, smtp_server) -> dict[str, str]:
    """Settings under which every check passes."""
    broker, passwords = secured_mosquitto
    url = registry_db(tmp_path, [
        RegistryRow(household_id="h-1", meter_id="m-1", person_id="p-1", email="resident@example.org"),
        # Any listening TCP port stands for a notification server: the check connects, sends nothing.
        RegistryRow(household_id="h-2", meter_id="m-2", person_id="p-2",
                    channels=[f"json://127.0.0.1:{smtp_server.port}/hook"]),
    ])
    return {
        "VIGIE_DATABASE_URL": url, "VIGIE_DATA_DIR": str(tmp_path / "var"),
        "VIGIE_MQTT_URL": f"mqtt://127.0.0.1:{broker.port}",
        "VIGIE_MQTT_USERNAME": services.SERVICE_USER, "VIGIE_MQTT_PASSWORD": passwords[services.SERVICE_USER],
        "VIGIE_SIMULATOR_MQTT_USERNAME": services.SIMULATOR_USER,
        "VIGIE_SIMULATOR_MQTT_PASSWORD": passwords[services.SIMULATOR_USER],
        "VIGIE_INFLUX_URL": services.influx_url(influxd), "VIGIE_INFLUX_DATABASE": influx_database(influxd),
        "VIGIE_SMTP_URL": f"mailto://127.0.0.1:{smtp_server.port}?from={SENDER}",
    }


def test_every_check_passes_on_a_working_setup_and_changes_nothing(tmp_path, base_env, smtp_server, influxd):
    rc, report = run_check(tmp_path, base_env)
    checks = by_name(report)
    assert rc == 0 and report["ok"], report
    assert list(checks) == ["config", "database", "registry", "broker", "broker-simulator", "store", "smtp",
                            "channels", "data-dir"]
    assert {c["status"] for c in checks.values()} == {"ok"}, report
    assert "subscriptions to all 6 topic filters accepted" in checks["broker"]["detail"]
    assert "2 households" in checks["registry"]["detail"] and "2 meters" in checks["registry"]["detail"]
    assert "vigie_raw=INF" in checks["store"]["detail"] and "vigie_events=90d" in checks["store"]["detail"]
    assert "answers; nothing sent" in checks["smtp"]["detail"]
    assert "1 URL(s) (json) of 1 person(s); 1 server(s) tried" in checks["channels"]["detail"]
    # Nothing sent, nothing written, nothing created.
    assert smtp_server.messages == []
    store = InfluxStore(services.influx_url(influxd), base_env["VIGIE_INFLUX_DATABASE"])
    assert store.query_json("SHOW MEASUREMENTS") == []
    store.close()
    assert not (tmp_path / "var").exists()
    # Secrets stay out of the report.
    assert base_env["VIGIE_MQTT_PASSWORD"] not in json.dumps(report)


def test_unreachable_services_fail_with_a_fix_each(tmp_path, base_env):
    bad_registry = tmp_path / "registry.yaml"
    bad_registry.write_text("households:\n  - id: h-9\n    meters: [{id: m-9, driver: 42, gateway: 'a b'}]\n")
    url = registry_db(tmp_path / "other", [
        RegistryRow(household_id="h-1", meter_id="m-1", person_id="p-1"),
        RegistryRow(household_id="h-2", person_id="p-2", channels=[f"json://127.0.0.1:{services.free_port()}/x"]),
        RegistryRow(household_id="h-3", person_id="p-3", channels=["nosuchscheme://x"]),
    ])
    env = {**base_env, "VIGIE_MQTT_URL": f"mqtt://127.0.0.1:{services.free_port()}",
           "VIGIE_INFLUX_URL": f"http://127.0.0.1:{services.free_port()}",
           "VIGIE_SMTP_URL": f"mailto://127.0.0.1:{services.free_port()}?from={SENDER}",
           "VIGIE_DATABASE_URL": url, "VIGIE_REGISTRY_FILE": str(bad_registry)}
    rc, report = run_check(tmp_path, env)
    checks = by_name(report)
    assert rc == 1 and not report["ok"]
    failed = {n for n, c in checks.items() if c["status"] == "fail"}
    assert failed == {"registry", "broker", "broker-simulator", "store", "smtp", "channels"}, report
    assert all(checks[n]["fix"] for n in failed)
    assert "cannot connect" in checks["broker"]["detail"] and "VIGIE_MQTT_URL" in checks["broker"]["fix"]
    assert "unreachable" in checks["store"]["detail"] and "VIGIE_INFLUX_URL" in checks["store"]["fix"]
    assert "refused" in checks["smtp"]["detail"].lower() and "VIGIE_SMTP_URL" in checks["smtp"]["fix"]
    assert "VIGIE_REGISTRY_FILE" in checks["registry"]["detail"] and "docs/registry.md" in checks["registry"]["fix"]
    channels = checks["channels"]["detail"]
    assert "cannot load, of person(s) p-3" in channels and "not answering, of person(s) p-2" in channels
    assert "nosuchscheme://x" not in channels and "127.0.0.1" not in channels  # URLs may carry tokens
    assert checks["database"]["status"] == "ok"


def test_registry_inconsistencies_are_warnings(tmp_path, base_env):
    url = registry_db(tmp_path / "r", [
        RegistryRow(household_id="h-1", meter_id="m-1", person_id="p-1", email="a@example.org"),
        RegistryRow(household_id="h-2", meter_id="m-2"),   # nobody to tell
    ])
    env = {**base_env, "VIGIE_DATABASE_URL": url}
    env.pop("VIGIE_SMTP_URL")
    rc, report = run_check(tmp_path, env, "--only", "registry", "--only", "smtp")
    checks = by_name(report)
    assert rc == 0 and list(checks) == ["registry", "smtp"]
    assert checks["smtp"]["status"] == "skip"
    reg = checks["registry"]
    assert reg["status"] == "warn"
    assert "2 household(s) with a meter have no resident with a channel (h-1, h-2)" in reg["detail"]
    assert "1 person(s) have an e-mail address but VIGIE_SMTP_URL is not set" in reg["detail"]
    assert "VIGIE_SMTP_URL" in reg["fix"]


def test_broker_credentials_and_acl_are_checked(tmp_path, base_env):
    rc, report = run_check(tmp_path, {**base_env, "VIGIE_MQTT_PASSWORD": "wrong"}, "--only", "broker")
    broker = by_name(report)["broker"]
    assert rc == 1 and broker["status"] == "fail"
    assert "CONNECT refused" in broker["detail"] and "VIGIE_MQTT_PASSWORD" in broker["fix"]
    assert "wrong" not in json.dumps(report)
    # No credentials on a broker that refuses anonymous clients.
    env = {k: v for k, v in base_env.items() if k not in ("VIGIE_MQTT_USERNAME", "VIGIE_MQTT_PASSWORD")}
    rc, report = run_check(tmp_path, env, "--only", "broker")
    broker = by_name(report)["broker"]
    assert rc == 1 and "as anonymous: CONNECT refused" in broker["detail"], broker
    assert "VIGIE_MQTT_USERNAME" in broker["fix"]


def test_influxdb_credentials_and_write_permission(tmp_path):
    svc = services.influxdb(tmp_path / "influxd", auth=True).start()
    try:
        services.wait_influx_ready(svc)
        url = services.influx_url(svc)
        admin = ("admin", "admin-pw")
        httpx.post(url + "/query", data={"q": "CREATE USER admin WITH PASSWORD 'admin-pw' WITH ALL PRIVILEGES"})
        for q in ("CREATE DATABASE vigie", "CREATE USER reader WITH PASSWORD 'reader-pw'",
                  "GRANT READ ON vigie TO reader"):
            assert httpx.post(url + "/query", data={"q": q}, auth=admin).status_code == 200
        env = {"VIGIE_INFLUX_URL": url, "VIGIE_INFLUX_DATABASE": "vigie", "VIGIE_INFLUX_USERNAME": "reader",
               "VIGIE_INFLUX_PASSWORD": "reader-pw"}
        rc, report = run_check(tmp_path, env, "--only", "store")
        store = by_name(report)["store"]
        assert rc == 1 and store["status"] == "fail" and "may not write" in store["detail"], store
        assert 'GRANT WRITE (or ALL) ON "vigie" TO "reader"' in store["fix"]

        rc, report = run_check(tmp_path, {**env, "VIGIE_INFLUX_PASSWORD": "nope"}, "--only", "store")
        store = by_name(report)["store"]
        assert rc == 1 and "authentication refused" in store["detail"] and "VIGIE_INFLUX_PASSWORD" in store["fix"]

        # An admin on a database without the service's policies: works, and the first start adds them.
        rc, report = run_check(tmp_path, {**env, "VIGIE_INFLUX_USERNAME": "admin", "VIGIE_INFLUX_PASSWORD": "admin-pw"},
                               "--only", "store")
        store = by_name(report)["store"]
        assert rc == 0 and store["status"] == "warn", store
        assert "retention policies missing: vigie_raw, vigie_aggregates, vigie_events" in store["detail"]
    finally:
        svc.stop()


def test_a_bad_setting_is_a_failed_config_check(tmp_path):
    rc, report = run_check(tmp_path, {"VIGIE_API_PORT": "0", "VIGIE_INFLUX_URL": "influx:8086"})
    assert rc == 2 and not report["ok"]
    config = [c for c in report["checks"] if c["name"] == "config"]
    assert [c["status"] for c in config] == ["fail", "fail"]
    text = json.dumps(config)
    assert "VIGIE_API_PORT='0' (set in environment)" in text and "from 1" not in text
    assert "a whole number at least 1, at most 65535" in text
    assert "VIGIE_INFLUX_URL='influx:8086'" in text and "http://host:port" in text


def test_misspelt_variables_are_reported_and_unknown_checks_refused(tmp_path, base_env):
    rc, report = run_check(tmp_path, {**base_env, "VIGIE_SMTP_ULR": "x"}, "--only", "config")
    config = by_name(report)["config"]
    assert rc == 0 and config["status"] == "warn"
    assert "VIGIE_SMTP_ULR in environment (did you mean VIGIE_SMTP_URL?)" in config["detail"]
    done = subprocess.run([sys.executable, "-m", "vigie.cli", "check", "--only", "brokr"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "unknown check(s) brokr" in done.stderr


def test_a_local_outbox_is_checked_for_a_writable_directory(tmp_path):
    """``VIGIE_SMTP_URL=outbox:///DIR`` (vigie.alerts.outbox) is no SMTP server: its directory must
    be writable, or creatable in a writable parent; the check creates nothing."""
    (tmp_path / "here").mkdir()
    (tmp_path / "a-file").write_text("")
    for url, status, words in ((f"outbox://{tmp_path / 'here'}", "ok", "writable; e-mails are written there"),
                               (f"outbox://{tmp_path / 'new' / 'sub'}?x=1", "ok", "created on the first e-mail"),
                               (f"outbox://{tmp_path / 'a-file' / 'sub'}", "fail", "a-file is not a directory")):
        rc, report = run_check(tmp_path, {"VIGIE_SMTP_URL": url}, "--only", "smtp")
        smtp = by_name(report)["smtp"]
        assert smtp["status"] == status and words in smtp["detail"], (url, smtp)
        assert rc == (0 if status == "ok" else 1)
        if status == "fail":
            assert "outbox:///ABSOLUTE/DIR" in smtp["fix"] and "not an e-mail URL" not in smtp["detail"]
    assert not (tmp_path / "new").exists()
