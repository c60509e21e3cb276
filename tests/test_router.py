"""Alert router on a real relational store: SQLite and PostgreSQL (a fresh schema per test)."""

from __future__ import annotations

import logging
from datetime import date, timedelta

import pytest
from clock import FakeClock
from sqlalchemy import event, func, insert, select, update

from vigie.alerts.models import Alert, AlertStatus, DeliveryStatus, Notification, NotificationReason
from vigie.alerts.router import (AlertNotFoundError, AlertResolvedError, AlertRouter, RouterOutcome, as_utc,
                                 list_alerts)
from vigie.config import Settings
from vigie.db import make_engine, make_sessionmaker
from vigie.records import CheckResult, CheckStatus, LeakRule
from vigie.registry import RegistryRow, upsert_rows

D0 = date(2026, 3, 14)


@pytest.fixture
def engine(db_url):
    eng = make_engine(db_url)
    sm = make_sessionmaker(eng)
    with sm() as session:
        upsert_rows(session, [
            RegistryRow(household_id="h-1", meter_id="M1", driver="izar"),
            RegistryRow(household_id="h-1", person_id="p-1", email="a@example.org", language="fr"),
            RegistryRow(household_id="h-1", person_id="p-2", email="b@example.org", language="en"),
            RegistryRow(household_id="h-2", meter_id="M2"),  # a household nobody lives in
        ])
    yield eng
    eng.dispose()


@pytest.fixture
def sm(engine):
    return make_sessionmaker(engine)


@pytest.fixture
def clock():
    return FakeClock()


def settings(**kw) -> Settings:
    return Settings(timezone="Europe/Paris", renotify_after_days=3, **kw)


@pytest.fixture
def router(sm, clock):
    return AlertRouter(sm, settings(), clock=clock)


def result(day: date, status: CheckStatus = CheckStatus.LEAK, meter: str = "M1",
           rule: LeakRule = LeakRule.CONTINUOUS_FLOW, rate: float | None = 4.5) -> CheckResult:
    return CheckResult(meter_id=meter, day=day, rule=rule, status=status,
                       rate_l_per_h=rate if status is CheckStatus.LEAK else None,
                       night_flow_l_per_h=rate, volume_l=(rate or 0) * 24, coverage=1.0)


def run(router: AlertRouter, clock: FakeClock, *results: CheckResult) -> RouterOutcome:
    clock.run_for(max(r.day for r in results))
    return router.apply_results(list(results))


def alerts(sm) -> list[Alert]:
    with sm() as s:
        return list(s.scalars(select(Alert).order_by(Alert.id)))


def notifications(sm) -> list[tuple[int, str, str]]:
    with sm() as s:
        return [(n.alert_id, n.person_id, n.reason)
                for n in s.scalars(select(Notification).order_by(Notification.id))]


def test_leak_opens_alert_and_queues_one_notification_per_resident(router, clock, sm):
    out = run(router, clock, result(D0))

    assert out == RouterOutcome(opened=1, notifications_queued=2)
    [a] = alerts(sm)
    assert (a.meter_id, a.household_id, a.kind, a.status) == ("M1", "h-1", "continuous_flow", "open")
    assert (a.first_day, a.last_day, a.rate_l_per_h) == (D0, D0, 4.5)
    assert notifications(sm) == [(a.id, "p-1", "opened"), (a.id, "p-2", "opened")]


def test_same_day_rerun_changes_nothing(router, clock, sm):
    run(router, clock, result(D0))
    again = run(router, clock, result(D0))

    assert again == RouterOutcome()
    assert len(alerts(sm)) == 1 and len(notifications(sm)) == 2


def test_dedup_across_days_and_restart(db_url, engine, sm, clock):
    run(AlertRouter(sm, settings(), clock=clock), clock, result(D0, rate=4.5))
    engine.dispose()

    # A new process: new engine, new router, same database.
    engine2 = make_engine(db_url)
    try:
        sm2 = make_sessionmaker(engine2)
        out = run(AlertRouter(sm2, settings(), clock=clock), clock, result(D0 + timedelta(days=1), rate=6.0))
        assert out == RouterOutcome(updated=1)
        [a] = alerts(sm2)
        assert (a.first_day, a.last_day, a.rate_l_per_h, a.status) == (D0, D0 + timedelta(days=1), 6.0, "open")
        assert len(notifications(sm2)) == 2  # re-detection does not notify again
    finally:
        engine2.dispose()


def mark_delivered(sm) -> None:
    """What the delivery stage does once it has sent the pending notifications."""
    with sm() as s:
        s.execute(update(Notification).values(status=DeliveryStatus.SENT))
        s.commit()


def test_reminder_every_n_local_days_while_unacknowledged(router, clock, sm):
    reminders = {}
    for i in range(8):
        out = run(router, clock, result(D0 + timedelta(days=i)))
        reminders[i] = out.reminders
        mark_delivered(sm)
    # Opened on the run for D0 (notified 15 March); 3 calendar days later, then 3 more.
    assert [i for i, n in reminders.items() if n] == [3, 6]
    reasons = [r for _, _, r in notifications(sm)]
    assert reasons == ["opened"] * 2 + ["reminder"] * 4


def test_no_reminder_piles_up_behind_an_undelivered_notification(router, clock, sm):
    run(router, clock, result(D0))
    with sm() as s:  # p-1's "opened" went out; p-2's is still being retried
        s.execute(update(Notification).where(Notification.person_id == "p-1").values(status=DeliveryStatus.SENT))
        s.commit()
    for i in (1, 2, 3):
        out = run(router, clock, result(D0 + timedelta(days=i)))
    assert out == RouterOutcome(updated=1, reminders=1, notifications_queued=1)
    assert notifications(sm)[-1][1:] == ("p-1", "reminder")


def test_reminder_due_even_if_the_daily_run_is_seconds_early(router, clock, sm):
    run(router, clock, result(D0))
    for i in (1, 2):
        run(router, clock, result(D0 + timedelta(days=i)))
    clock.run_for(D0 + timedelta(days=3))
    clock.now -= timedelta(seconds=5)
    assert router.apply_results([result(D0 + timedelta(days=3))]).reminders == 1


def test_acknowledged_alert_gets_no_reminder(router, clock, sm):
    run(router, clock, result(D0))
    [a] = alerts(sm)
    acked = router.acknowledge(a.id, "p-2")
    assert (acked.status, acked.acknowledged_by, as_utc(acked.acknowledged_at)) == ("acknowledged", "p-2", clock.now)

    # Idempotent: a second acknowledgement keeps the first person.
    assert router.acknowledge(a.id, "p-1").acknowledged_by == "p-2"

    for i in range(1, 8):
        out = run(router, clock, result(D0 + timedelta(days=i)))
        assert out.reminders == 0 and out.notifications_queued == 0
    [a] = alerts(sm)
    assert a.status == "acknowledged" and a.last_day == D0 + timedelta(days=7)
    with pytest.raises(AlertNotFoundError):
        router.acknowledge(a.id + 1000, "p-1")

    # An acknowledged alert still resolves (and says so) once the leak is gone.
    assert run(router, clock, result(D0 + timedelta(days=8), CheckStatus.OK)) == RouterOutcome(
        resolved=1, notifications_queued=2)


def test_ok_day_resolves_and_tells_residents(router, clock, sm):
    run(router, clock, result(D0))
    run(router, clock, result(D0 + timedelta(days=1)))
    out = run(router, clock, result(D0 + timedelta(days=2), CheckStatus.OK))

    assert out == RouterOutcome(resolved=1, notifications_queued=2)
    [a] = alerts(sm)
    assert (a.status, a.resolved_day, as_utc(a.resolved_at)) == ("resolved", D0 + timedelta(days=2), clock.now)
    assert [r for _, _, r in notifications(sm)][-2:] == ["resolved", "resolved"]
    with pytest.raises(AlertResolvedError):
        router.acknowledge(a.id, "p-1")

    # Re-running old days changes nothing; a leak on a later day opens a new alert.
    assert run(router, clock, result(D0 + timedelta(days=1))) == RouterOutcome()
    assert run(router, clock, result(D0 + timedelta(days=2), CheckStatus.OK)) == RouterOutcome()
    assert run(router, clock, result(D0 + timedelta(days=5))).opened == 1
    assert [x.status for x in alerts(sm)] == ["resolved", "open"]


def test_resolved_notification_can_be_turned_off(sm, clock):
    router = AlertRouter(sm, settings(notify_resolved=False), clock=clock)
    run(router, clock, result(D0))
    out = run(router, clock, result(D0 + timedelta(days=1), CheckStatus.OK))
    assert out == RouterOutcome(resolved=1)
    assert [r for _, _, r in notifications(sm)] == ["opened", "opened"]


def test_data_gap_never_resolves(router, clock, sm):
    run(router, clock, result(D0))
    for i in (1, 2, 3, 4):
        out = run(router, clock, result(D0 + timedelta(days=i), CheckStatus.INSUFFICIENT_DATA))
        assert out == RouterOutcome()
    # An "ok" for a day the alert already covers is stale and does not resolve either.
    assert router.apply_results([result(D0, CheckStatus.OK)]) == RouterOutcome()
    [a] = alerts(sm)
    assert a.status == "open" and a.last_day == D0

    assert run(router, clock, result(D0 + timedelta(days=5), CheckStatus.OK)).resolved == 1


def test_meter_without_resident_still_gets_its_alert(router, clock, sm, caplog):
    caplog.set_level(logging.WARNING, logger="vigie.alerts.router")
    out = run(router, clock, result(D0, meter="M2"), result(D0, meter="M-UNKNOWN"))

    assert out == RouterOutcome(opened=2)
    assert {(a.meter_id, a.household_id) for a in alerts(sm)} == {("M2", "h-2"), ("M-UNKNOWN", None)}
    assert notifications(sm) == []
    text_ = caplog.text
    assert "no recipient" in text_ and "M2" in text_ and "M-UNKNOWN" in text_


def test_bad_result_is_refused_before_anything_is_applied(router, clock, sm):
    bad = CheckResult(meter_id="M1", day=D0, rule="dripping", status=CheckStatus.LEAK)
    with pytest.raises(ValueError, match="dripping"):
        router.apply_results([result(D0), bad])
    assert alerts(sm) == []


def test_each_rule_has_its_own_alert(router, clock, sm):
    out = run(router, clock, result(D0), result(D0, rule=LeakRule.BURST, rate=800.0),
              result(D0, rule=LeakRule.METER_FLAG, rate=None))
    assert out.opened == 3
    assert sorted(a.kind for a in alerts(sm)) == ["burst", "continuous_flow", "meter_flag"]


def test_losing_the_race_to_open_updates_the_winners_alert(router, clock, sm, engine):
    """Another router inserts the alert between our lookup and our insert: the unique index
    rejects ours, and the result is applied to the existing alert instead."""
    raced = []

    @event.listens_for(sm, "before_flush")
    def _other_router_wins(session, _ctx, _instances):
        if not raced and any(isinstance(o, Alert) for o in session.new):
            raced.append(True)
            with engine.begin() as conn:
                conn.execute(insert(Alert).values(meter_id="M1", kind="continuous_flow", status="open",
                                                  first_day=D0 - timedelta(days=1), last_day=D0 - timedelta(days=1),
                                                  detail="", opened_at=clock.now))

    out = run(router, clock, result(D0, rate=7.0))

    assert raced and out == RouterOutcome(updated=1)
    [a] = alerts(sm)
    assert (a.first_day, a.last_day, a.rate_l_per_h) == (D0 - timedelta(days=1), D0, 7.0)


def test_staff_resolve_and_list_alerts(router, clock, sm):
    run(router, clock, result(D0), result(D0, meter="M2"))
    m1, m2 = alerts(sm)
    closed = router.resolve(m2.id, by="staff-7")
    assert (closed.status, closed.resolved_day) == ("resolved", date(2026, 3, 15))
    assert router.resolve(m2.id, by="staff-7").resolved_at == closed.resolved_at
    with pytest.raises(AlertNotFoundError):
        router.resolve(9999, by="staff-7")

    with sm() as s:
        assert [a.id for a in list_alerts(s, status="open")] == [m1.id]
        assert {a.id for a in list_alerts(s, status=[AlertStatus.OPEN, "resolved"])} == {m1.id, m2.id}
        assert [a.id for a in list_alerts(s, meter_ids=["M2"])] == [m2.id]
        assert list_alerts(s, meter_ids=[]) == []
        with pytest.raises(ValueError):
            list_alerts(s, status="closed")
        assert s.scalar(select(func.count()).select_from(Notification)
                        .where(Notification.reason == NotificationReason.RESOLVED)) == 0
