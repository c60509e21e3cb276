"""InfluxDB with authentication on, as production runs it: the service account reads and writes its
database, Grafana's read-only account reads and cannot write, an anonymous client gets nothing."""

from __future__ import annotations

from datetime import datetime, timezone

import httpx
import pytest

import services
from vigie.config import Settings
from vigie.records import MeterReading
from vigie.store import InfluxStore, StoreRejected
from vigie.store.water import read_indices, write_readings

UTC = timezone.utc


@pytest.fixture
def influxd_auth(tmp_path):
    svc = services.influxdb(tmp_path / "influxd", auth=True).start()
    services.wait_influx_ready(svc)
    url = services.influx_url(svc)
    # InfluxDB 1.x lets the first user be created without credentials, and only an admin.
    httpx.post(url + "/query", data={"q": "CREATE USER admin WITH PASSWORD 'admin-pw' WITH ALL PRIVILEGES"}).raise_for_status()
    admin = InfluxStore(url, "vigie", username="admin", password="admin-pw", retention_policy="vigie_raw",
                        policies=Settings(_env_file=None).influx_extra_policies())
    admin.ensure_database("INF")
    for stmt in ("CREATE USER vigie WITH PASSWORD 'svc-pw'", 'GRANT ALL ON "vigie" TO "vigie"',
                 "CREATE USER grafana WITH PASSWORD 'ro-pw'", 'GRANT READ ON "vigie" TO "grafana"'):
        admin.execute(stmt)
    admin.close()
    yield url
    svc.stop()


def test_service_writes_grafana_only_reads_anonymous_refused(influxd_auth):
    t = datetime(2026, 3, 1, 6, tzinfo=UTC)
    service = InfluxStore(influxd_auth, "vigie", username="vigie", password="svc-pw", retention_policy="vigie_raw")
    write_readings(service, [MeterReading("m1", t, 1.5)])
    grafana = InfluxStore(influxd_auth, "vigie", username="grafana", password="ro-pw", retention_policy="vigie_raw")
    assert list(read_indices(grafana, t, t.replace(hour=7)).index_m3) == [1.5]
    assert read_indices(grafana, t.replace(year=2020), t.replace(year=2020, hour=7)).empty  # no rows, no error
    with pytest.raises(StoreRejected) as refused:
        write_readings(grafana, [MeterReading("m1", t.replace(hour=7), 1.6)])
    assert refused.value.status == 403
    anonymous = InfluxStore(influxd_auth, "vigie", retention_policy="vigie_raw")
    with pytest.raises(StoreRejected) as denied:
        read_indices(anonymous, t, t.replace(hour=7))
    assert denied.value.status == 401
    wrong = InfluxStore(influxd_auth, "vigie", username="vigie", password="nope", retention_policy="vigie_raw")
    with pytest.raises(StoreRejected) as bad:
        write_readings(wrong, [MeterReading("m1", t, 1.5)])
    assert bad.value.status == 401
    for s in (service, grafana, anonymous, wrong):
        s.close()


def test_service_account_starts_without_admin_rights_once_an_admin_ran_influx_setup(influxd_auth, tmp_path):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIE_")}
    env.update(VIGIE_INFLUX_URL=influxd_auth, VIGIE_INFLUX_USERNAME="admin", VIGIE_INFLUX_PASSWORD="admin-pw",
               VIGIE_INFLUX_EVENTS_DURATION="30d")
    done = subprocess.run([sys.executable, "-m", "vigie.cli", "influx", "setup"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert '"vigie_events": "720h0m0s"' in done.stdout

    policies = Settings(_env_file=None, influx_events_duration="30d").influx_extra_policies()
    service = InfluxStore(influxd_auth, "vigie", username="vigie", password="svc-pw", retention_policy="vigie_raw",
                          policies=policies)
    service.ensure_database("INF")  # all in step: no admin statement is sent
    with pytest.raises(StoreRejected, match="vigie influx setup") as refused:
        service.ensure_database("730d")  # a changed duration needs an admin
    assert refused.value.status == 403
    service.close()

    env.update(VIGIE_INFLUX_USERNAME="vigie", VIGIE_INFLUX_PASSWORD="svc-pw", VIGIE_INFLUX_RETENTION_DURATION="730d")
    denied = subprocess.run([sys.executable, "-m", "vigie.cli", "influx", "setup"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert denied.returncode == 3 and "requires admin privilege" in denied.stderr
