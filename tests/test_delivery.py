"""Delivery through Apprise to a real SMTP server (aiosmtpd), with retries driven by a fake clock."""

from __future__ import annotations

import threading
from datetime import date, timedelta

import pytest
from clock import FakeClock
import services
from sqlalchemy import select

from vigie.alerts.delivery import Deliverer, DeliveryOutcome, email_url
from vigie.alerts.models import Alert, DeliveryAttempt, Notification
from vigie.alerts.router import AlertRouter, as_utc
from vigie.config import Settings
from vigie.db import make_engine, make_sessionmaker
from vigie.records import CheckResult, CheckStatus, LeakRule
from vigie.registry import RegistryRow, upsert_rows

DAY = date(2026, 3, 14)
SENDER = "vigie@commune.example"


def settings(smtp_port: int, **kw) -> Settings:
    kw.setdefault("delivery_max_attempts", 4)
    kw.setdefault("delivery_backoff_s", 60.0)
    return Settings(smtp_url=f"mailto://127.0.0.1:{smtp_port}?from={SENDER}", language="fr",
                                water_price_eur_per_m3=4.34, timezone="Europe/Paris", **kw)


@pytest.fixture
def sm(sqlite_url):
    engine = make_engine(sqlite_url)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def clock():
    return FakeClock()


def register(sm, *residents: RegistryRow, meter: str = "2a31f0c4") -> None:
    with sm() as s:
        upsert_rows(s, [RegistryRow(household_id="h-1", meter_id=meter, driver="izar"), *residents])


def person(pid: str, email: str | None = None, language: str = "fr", channels=()) -> RegistryRow:
    return RegistryRow(household_id="h-1", person_id=pid, email=email, language=language, channels=list(channels))


def open_leak(sm, cfg, clock, meter: str = "2a31f0c4", rate: float = 4.5) -> None:
    AlertRouter(sm, cfg, clock=clock).apply_results([CheckResult(
        meter_id=meter, day=DAY, rule=LeakRule.CONTINUOUS_FLOW, status=CheckStatus.LEAK,
        rate_l_per_h=rate, night_flow_l_per_h=rate, volume_l=rate * 24, coverage=1.0)])


def attempts(sm) -> list[tuple[str, str, str | None]]:
    with sm() as s:
        rows = s.scalars(select(DeliveryAttempt).order_by(DeliveryAttempt.id))
        return [(a.channel, a.outcome, a.error) for a in rows]


def the_notification(sm) -> Notification:
    with sm() as s:
        return s.scalars(select(Notification)).one()


def test_email_in_each_resident_language(sm, clock, smtp_server):
    cfg = settings(smtp_server.port)
    register(sm, person("p-fr", "marie@example.org", "fr"), person("p-en", "john@example.org", "en"))
    open_leak(sm, cfg, clock)

    assert Deliverer(sm, cfg, clock=clock).deliver_due() == DeliveryOutcome(sent=2)

    [fr] = smtp_server.to("marie@example.org")
    body = fr.get_body().get_content()
    assert "2a31f0c4" in fr["Subject"] and fr["Subject"].startswith("Fuite d'eau probable")
    assert SENDER in fr["From"]
    # 4.5 L/h → 108 L/day → 0.108 m³ × 4.34 €/m³ = 0.47 €/day
    for expected in ("compteur n° 2a31f0c4", "14 mars 2026", "4,5 L/h", "108 L par jour", "0,47 € par jour",
                     "plombier", "chasse d'eau", "Loi Warsmann", "attestation", "numéro d'alerte"):
        assert expected in body, expected

    [en] = smtp_server.to("john@example.org")
    body = en.get_body().get_content()
    assert en["Subject"].startswith("Probable water leak at meter 2a31f0c4")
    for expected in ("meter no. 2a31f0c4", "14 March 2026", "4.5 L/h", "108 L per day", "€0.47 per day",
                     "plumber", "within one month"):
        assert expected in body, expected

    assert attempts(sm) == [("mailto", "sent", None)] * 2
    with sm() as s:
        assert {(n.status, n.attempts) for n in s.scalars(select(Notification))} == {("sent", 1)}


def test_extra_channels_are_tried_and_logged_each(sm, clock, smtp_server):
    cfg = settings(smtp_server.port)
    extra = f"mailto://127.0.0.1:{smtp_server.port}?from={SENDER}&to=neighbour@example.org"
    register(sm, person("p-1", "marie@example.org", channels=[extra, "nosuchscheme://x"]))
    open_leak(sm, cfg, clock)

    assert Deliverer(sm, cfg, clock=clock).deliver_due().sent == 1
    assert len(smtp_server.to("marie@example.org")) == 1 and len(smtp_server.to("neighbour@example.org")) == 1
    assert attempts(sm) == [("mailto", "sent", None), ("mailto", "sent", None),
                            ("nosuchscheme", "failed", "invalid Apprise URL")]


def test_smtp_down_retries_with_backoff_then_fails(sm, clock):
    closed_port = services.free_port()  # nothing listens there
    cfg = settings(closed_port, delivery_max_attempts=4, delivery_backoff_s=60.0, delivery_backoff_max_s=100.0)
    register(sm, person("p-1", "marie@example.org"))
    open_leak(sm, cfg, clock)
    deliverer = Deliverer(sm, cfg, clock=clock)
    t0 = clock.now

    # Attempt n fails → next try after 60 s × 2^(n-1), capped at 100 s.
    for n, delay in ((1, 60), (2, 100), (3, 100)):
        assert deliverer.deliver_due() == DeliveryOutcome(retry=1)
        n_ = the_notification(sm)
        assert (n_.status, n_.attempts) == ("pending", n)
        assert as_utc(n_.next_attempt_at) == clock.now + timedelta(seconds=delay)
        clock.advance(delay - 1)
        assert deliverer.deliver_due() == DeliveryOutcome()  # not due yet
        clock.advance(1)

    assert deliverer.deliver_due() == DeliveryOutcome(failed=1)
    n_ = the_notification(sm)
    assert (n_.status, n_.attempts, n_.sent_at) == ("failed", 4, None)
    assert clock.now - t0 == timedelta(seconds=260)
    log = attempts(sm)
    assert [(c, o) for c, o, _ in log] == [("mailto", "failed")] * 4
    for _, _, error in log:
        assert "Connection refused" in error and "marie" not in error and "example.org" not in error
    assert deliverer.deliver_due() == DeliveryOutcome()  # failed for good: never tried again


class LateSmtpServer:
    """An SMTP sink (aiosmtpd) that comes up on a given port only when started: the conftest sink's
    controller cannot be restarted once stopped (aiosmtpd closes its event loop)."""

    def __init__(self, port: int) -> None:
        from aiosmtpd.controller import Controller

        self.rcpts: list[str] = []
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                sink.rcpts.extend(envelope.rcpt_tos)
                return "250 OK"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=port)


def test_delivered_once_the_server_is_back(sm, clock):
    port = services.free_port()
    cfg = settings(port)
    register(sm, person("p-1", "marie@example.org"))
    open_leak(sm, cfg, clock)
    deliverer = Deliverer(sm, cfg, clock=clock)

    assert deliverer.deliver_due() == DeliveryOutcome(retry=1)  # server down
    server = LateSmtpServer(port)
    server.controller.start()
    try:
        clock.advance(60)
        assert deliverer.deliver_due() == DeliveryOutcome(sent=1)
    finally:
        server.controller.stop()

    assert server.rcpts == ["marie@example.org"]
    assert [(c, o) for c, o, _ in attempts(sm)] == [("mailto", "failed"), ("mailto", "sent")]
    n_ = the_notification(sm)
    assert (n_.status, n_.attempts, as_utc(n_.sent_at)) == ("sent", 2, clock.now)


def test_person_without_any_channel_fails_at_once(sm, clock, smtp_server):
    cfg = settings(smtp_server.port)
    register(sm, person("p-1"))
    open_leak(sm, cfg, clock)

    assert Deliverer(sm, cfg, clock=clock).deliver_due() == DeliveryOutcome(failed=1)
    n_ = the_notification(sm)
    assert (n_.status, n_.last_error) == ("failed", "no channel")
    assert attempts(sm) == [("none", "failed", "no channel")]


def test_message_that_cannot_be_built_is_retried_then_failed(sm, clock, smtp_server):
    cfg = settings(smtp_server.port, delivery_max_attempts=2)
    register(sm, person("p-1", "marie@example.org"))
    with sm() as s:  # a rule kind this version has no text for
        alert = Alert(meter_id="2a31f0c4", kind="heating_off", status="open", first_day=DAY, last_day=DAY,
                      detail="", opened_at=clock.now)
        s.add(alert)
        s.flush()
        s.add(Notification(alert_id=alert.id, person_id="p-1", reason="opened", status="pending",
                           attempts=0, next_attempt_at=clock.now, created_at=clock.now))
        s.commit()
    deliverer = Deliverer(sm, cfg, clock=clock)

    assert deliverer.deliver_due() == DeliveryOutcome(retry=1)
    clock.advance(60)
    assert deliverer.deliver_due() == DeliveryOutcome(failed=1)
    assert smtp_server.messages == []
    [(channel, outcome, error), _] = attempts(sm)
    assert (channel, outcome) == ("none", "failed") and "heating_off" in error


def test_concurrent_runs_in_one_process_send_each_notification_once(sm, clock, smtp_server):
    cfg = settings(smtp_server.port)
    register(sm, *(person(f"p-{i}", f"resident{i}@example.org") for i in range(4)))
    for meter in ("m-a", "m-b"):
        with sm() as s:
            upsert_rows(s, [RegistryRow(household_id="h-1", meter_id=meter)])
        open_leak(sm, cfg, clock, meter=meter)

    outcomes: list[DeliveryOutcome] = []
    start = threading.Barrier(3)

    def worker():
        start.wait()
        outcomes.append(Deliverer(sm, cfg, clock=clock).deliver_due())

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    assert sum(o.sent for o in outcomes) == 8 and sum(o.retry + o.failed for o in outcomes) == 0
    for i in range(4):
        subjects = [m["Subject"] for m in smtp_server.to(f"resident{i}@example.org")]
        assert sorted(s.rsplit(" ", 1)[1] for s in subjects) == ["m-a", "m-b"]


def test_email_url_form():
    assert email_url("mailto://127.0.0.1:2525?from=vigie@commune.example", "a+b@example.org") == (
        "mailto://127.0.0.1:2525?from=vigie@commune.example&to=a%2Bb@example.org&format=text")
    assert email_url("mailtos://u:p@smtp.example.org:587?format=html", "a@example.org") == (
        "mailtos://u:p@smtp.example.org:587?format=html&to=a@example.org")
