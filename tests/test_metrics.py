"""``/metrics`` after real activity: readings and dead letters through Mosquitto into InfluxDB,
notifications sent to an SMTP server or failed, detector passes."""

from __future__ import annotations

import json
import time
import uuid
from datetime import date, datetime, timedelta, timezone

import paho.mqtt.client as paho
import pytest
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client.parser import text_string_to_metric_families

from vigie.alerts.delivery import Deliverer
from vigie.alerts.router import AlertRouter
from vigie.api.app import create_app
from vigie.config import Settings
from vigie.context import AppContext
from vigie.db import make_engine, make_sessionmaker
from vigie.heating_jobs import heating_job
from vigie.home_jobs import home_job
from vigie.ingest.service import Ingestor
from vigie.jobs import leak_job
from vigie.records import CheckResult, CheckStatus, LeakRule
from vigie.registry import RegistryRow, upsert_rows

pytestmark = pytest.mark.e2e

UTC = timezone.utc
SENDER = "vigie@commune.example"


def scrape(client: TestClient, accept: str | None = None) -> dict[tuple[str, tuple], float]:
    """Every sample of ``/metrics`` as {(name, sorted labels): value}."""
    r = client.get("/metrics", headers={"accept": accept} if accept else {})
    assert r.status_code == 200
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(r.text) for s in family.samples}


def publish(port: int, messages: list[tuple[str, bytes]]) -> None:
    """Publish at QoS 1 and wait until the broker has every message."""
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}")
    c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        for info in [c.publish(topic, payload, qos=1) for topic, payload in messages]:
            info.wait_for_publish(timeout=30)
    finally:
        c.disconnect()
        c.loop_stop()


def reading(meter_id: str, minutes: int, index_m3: float) -> bytes:
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2) + timedelta(minutes=minutes)
    return json.dumps({"_": "telegram", "media": "cold water", "meter": "kamwater", "name": meter_id,
                       "id": meter_id, "total_m3": index_m3, "status": "OK",
                       "timestamp": at.strftime("%Y-%m-%dT%H:%M:%SZ")}).encode()


@pytest.fixture
def ctx(tmp_path, sqlite_url, mosquitto, influx_store, smtp_server):
    settings = Settings(_env_file=None, mqtt_url=f"mqtt://127.0.0.1:{mosquitto.port}",
                        mqtt_client_id=f"vigie-test-{uuid.uuid4().hex[:8]}", mqtt_session_expiry_s=600,
                        influx_url=influx_store.url, influx_database=influx_store.database,
                        influx_retention_policy="vigie_raw", data_dir=tmp_path / "var", database_url=sqlite_url,
                        write_batch_interval_s=0.2, smtp_url=f"mailto://127.0.0.1:{smtp_server.port}?from={SENDER}",
                        timezone="Europe/Paris")
    engine = make_engine(sqlite_url)
    context = AppContext(settings, influx_store, engine, make_sessionmaker(engine))
    with context.sessions() as s:
        upsert_rows(s, [RegistryRow(household_id="h-1", meter_id="m-1", person_id="p-1", email="marie@example.org"),
                        RegistryRow(household_id="h-2", meter_id="m-2", person_id="p-2")])   # p-2: no channel
    yield context
    engine.dispose()


def test_metrics_count_ingest_dead_letters_notifications_and_detector_runs(ctx, mosquitto, smtp_server):
    ingestor = Ingestor(ctx.settings, ctx.store, ctx.sessions)
    ingestor.start()
    try:
        assert ingestor.wait_subscribed(10)
        client = TestClient(create_app(ctx, ingestor=ingestor))
        before = scrape(client)
        assert before[("vigie_ingest_messages_received_total", ())] == 0
        assert before[("vigie_ingest_connected", ())] == 1

        publish(mosquitto.port, [("wmbusmeters/m-1", reading("m-1", i, 10 + i / 100)) for i in range(5)]
                + [("wmbusmeters/m-1", b"{not json"), ("wmbusmeters/m-9", reading("m-9", 0, 1.0))])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (ingestor.stats().received == 7 and ingestor.stats().written == 5):
            time.sleep(0.05)
        assert ingestor.wait_idle(30)

        AlertRouter(ctx.sessions, ctx.settings).apply_results([
            CheckResult(meter_id=m, day=date.today() - timedelta(days=1), rule=LeakRule.CONTINUOUS_FLOW,
                        status=CheckStatus.LEAK, rate_l_per_h=4.5, night_flow_l_per_h=4.5, volume_l=108.0,
                        coverage=1.0) for m in ("m-1", "m-2")])
        outcome = Deliverer(ctx.sessions, ctx.settings).deliver_due()
        assert (outcome.sent, outcome.failed) == (1, 1)
        assert len(smtp_server.to("marie@example.org")) == 1
        leak_job(ctx, date.today() - timedelta(days=3), route=False)
        home_job(ctx)
        heating_job(ctx, date.today() - timedelta(days=1), deliver=False)

        after = scrape(client)
    finally:
        ingestor.stop()

    def delta(name: str, **labels) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after[key] - before.get(key, 0.0)

    assert after[("vigie_ingest_messages_received_total", ())] == 7
    assert after[("vigie_ingest_points_stored_total", ())] == 5
    assert after[("vigie_ingest_points_written_total", ())] == 5
    assert after[("vigie_ingest_dead_letters_total", (("reason", "unknown_meter"),))] == 1
    assert sum(v for (n, _), v in after.items() if n == "vigie_ingest_dead_letters_total") == 2
    assert after[("vigie_ingest_spool_points", ())] == 0
    assert after[("vigie_ingest_store_available", ())] == 1
    assert delta("vigie_notifications_total", outcome="sent") == 1
    assert delta("vigie_notifications_total", outcome="failed") == 1
    assert delta("vigie_notifications_total", outcome="retry") == 0
    assert delta("vigie_notification_attempts_total", channel="mailto", outcome="sent") == 1
    assert delta("vigie_notification_attempts_total", channel="none", outcome="failed") == 1
    assert delta("vigie_notification_delivery_seconds_count") == 1
    assert delta("vigie_detector_duration_seconds_count", detector="leak") == 1
    assert delta("vigie_detector_duration_seconds_count", detector="home") == 1
    assert delta("vigie_detector_duration_seconds_count", detector="heating") == 1
    assert after[("vigie_detector_duration_seconds_sum", (("detector", "leak"),))] > 0
    assert ("vigie_detector_failures_total", (("detector", "heating"),)) in after
    assert any(n == "vigie_info" for n, _ in after)


def test_metrics_speak_openmetrics_and_carry_no_personal_data(ctx):
    client = TestClient(create_app(ctx))   # an API without an ingestor: no ingest metrics
    r = client.get("/metrics", headers={"accept": "application/openmetrics-text; version=1.0.0"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/openmetrics-text")
    assert r.text.rstrip().endswith("# EOF")
    plain = client.get("/metrics")
    assert plain.headers["content-type"].startswith("text/plain")
    assert "vigie_notifications_total" in plain.text and "vigie_ingest_" not in plain.text
    assert "example.org" not in plain.text and "p-1" not in plain.text and "h-1" not in plain.text
