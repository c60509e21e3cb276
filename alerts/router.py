"""Alert router: turns daily leak-check results into alerts and the notifications they owe residents.

All state lives in the relational store (``alerts``, ``notifications``), so the router survives
restarts and running the same day twice changes nothing the second time.

States (:class:`~vigie.alerts.models.AlertStatus`)::

    (none) --leak--> OPEN --acknowledge--> ACKNOWLEDGED
                      |                         |
                      +--ok day / staff-->  RESOLVED  <--ok day / staff--+

Policy, per (meter, rule kind) — at most one alert that is not resolved (partial unique index
``uq_alert_open_per_meter_kind``):

- ``leak`` and no open/acknowledged alert: open one (``first_day = last_day = day``) and queue an
  *opened* notification to every resident of the meter's household. A leak on a day already covered
  by the latest resolved alert (``day <= its last_day``) is a re-run of old data and is ignored.
- ``leak`` and an alert is open/acknowledged: update ``last_day``, rate, night flow, volume and detail
  (figures only from a day at least as recent as ``last_day``). Being detected again does not notify.
- Reminder: an OPEN (unacknowledged) alert whose rule fires on a new day (``day > last_day``) gets a
  *reminder* to every resident when at least ``settings.renotify_after_days`` local calendar days
  (``settings.timezone``) have passed since its last notification. ACKNOWLEDGED alerts never get
  reminders. Residents who still have an undelivered notification for the alert are not sent another.
  A value below 1 disables reminders. Counting calendar days, not 24-hour spans, keeps a daily job
  that runs a few seconds early from slipping a reminder by a whole day.
- ``ok`` on a day after the alert's ``last_day`` (any rule: continuous_flow, burst, meter_flag,
  abnormal_consumption): resolve it (``resolved_day = day``, ``resolved_at = now``) and, when
  ``settings.notify_resolved`` (default true), queue a *resolved* notification to every resident.
- ``insufficient_data``: no change at all — a data gap never resolves an alert.
- Staff :meth:`AlertRouter.resolve` closes an alert without telling residents (staff closing an alert
  follows a contact with the household); :meth:`AlertRouter.acknowledge` stops reminders.

A meter with no resident in the registry still gets its alert; the router logs "no recipient" with
the meter id. Logs carry alert, meter and person ids only, never personal details.

Concurrency: each result is applied in its own transaction. Two routers opening the same alert at
once collide on the unique index; the loser rolls back and applies its result to the winner's alert.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from vigie.alerts.models import Alert, AlertStatus, DeliveryStatus, Notification, NotificationReason, utcnow
from vigie.records import CheckResult, CheckStatus, LeakRule
from vigie.registry import Meter, residents_of_meter

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


class RouterSettings(Protocol):
    """The settings the router reads (a :class:`vigie.config.Settings` fits)."""

    timezone: str
    renotify_after_days: int


@dataclass
class RouterOutcome:
    """Counts of what one :meth:`AlertRouter.apply_results` call did.

    ``updated`` counts existing alerts whose figures or days changed; ``reminders`` counts alerts
    that got a reminder; ``notifications_queued`` counts Notification rows (one per resident per event).
    """

    opened: int = 0
    updated: int = 0
    resolved: int = 0
    reminders: int = 0
    notifications_queued: int = 0

    def __iadd__(self, other: "RouterOutcome") -> "RouterOutcome":
        self.opened += other.opened
        self.updated += other.updated
        self.resolved += other.resolved
        self.reminders += other.reminders
        self.notifications_queued += other.notifications_queued
        return self


class AlertError(Exception):
    """Base of the router's errors about one alert."""


class AlertNotFoundError(AlertError, LookupError):
    """No alert has this id."""


class AlertResolvedError(AlertError, ValueError):
    """The alert is already resolved: it can no longer be acknowledged."""


def as_utc(value: datetime) -> datetime:
    """``value`` as aware UTC; SQLite hands back naive datetimes, which the router always writes in UTC."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


class AlertRouter:
    """Applies :class:`~vigie.records.CheckResult` lists to the alert tables.

    ``sessionmaker``: from :func:`vigie.db.make_sessionmaker` (``expire_on_commit=False``, so returned
    alerts stay readable). ``clock``: returns the current time, aware UTC (tests pass a fake one).
    """

    def __init__(self, sessionmaker: sessionmaker, settings: RouterSettings, clock: Clock = utcnow) -> None:
        self._sessionmaker = sessionmaker
        self._settings = settings
        self._clock = clock
        self._tz = ZoneInfo(settings.timezone)

    # --- daily results -------------------------------------------------------------------------
    def apply_results(self, results: Iterable[CheckResult]) -> RouterOutcome:
        """Apply ``results`` (any order; applied per meter and rule in day order) and queue notifications.

        Raises ``ValueError`` before applying anything if a result's rule or status is not a known
        value. Each result is then committed on its own, so a database failure leaves earlier ones applied.
        """
        checked = [(r, LeakRule(r.rule), CheckStatus(r.status)) for r in results]
        checked.sort(key=lambda c: (c[0].meter_id, str(c[1]), c[0].day))
        outcome = RouterOutcome()
        now = as_utc(self._clock())
        for result, rule, status in checked:
            outcome += self._apply_committed(result, rule, status, now)
        return outcome

    def _apply_committed(self, result: CheckResult, rule: LeakRule, status: CheckStatus,
                         now: datetime) -> RouterOutcome:
        if status is CheckStatus.INSUFFICIENT_DATA:
            return RouterOutcome()
        try:
            return self._apply_in_transaction(result, rule, status, now)
        except IntegrityError:
            # Another router opened this alert between our lookup and our insert (unique index):
            # our transaction rolled back; applying again finds its alert and updates it.
            log.info("alert for meter %s rule %s opened concurrently; updating it instead",
                     result.meter_id, rule)
            return self._apply_in_transaction(result, rule, status, now)

    def _apply_in_transaction(self, result: CheckResult, rule: LeakRule, status: CheckStatus,
                              now: datetime) -> RouterOutcome:
        with self._sessionmaker() as session:
            part = self._apply(session, result, rule, status, now)
            session.commit()
            return part

    def _apply(self, session: Session, r: CheckResult, rule: LeakRule, status: CheckStatus,
               now: datetime) -> RouterOutcome:
        out = RouterOutcome()
        alert = session.scalars(
            select(Alert).where(Alert.meter_id == r.meter_id, Alert.kind == str(rule),
                                Alert.status != AlertStatus.RESOLVED).with_for_update()
        ).one_or_none()

        if status is CheckStatus.OK:
            if alert is not None and r.day > alert.last_day:
                alert.status = AlertStatus.RESOLVED
                alert.resolved_day = r.day
                alert.resolved_at = now
                out.resolved = 1
                log.info("alert %d (meter %s, %s) resolved: rule ok on %s", alert.id, r.meter_id, rule, r.day)
                if self._settings.notify_resolved:
                    out.notifications_queued = self._queue(session, alert, NotificationReason.RESOLVED, now)
            return out

        if alert is None:
            if self._already_covered(session, r, rule):
                return out
            meter = session.get(Meter, r.meter_id)
            alert = Alert(meter_id=r.meter_id, household_id=meter.household_id if meter else None,
                          kind=str(rule), status=AlertStatus.OPEN, first_day=r.day, last_day=r.day,
                          rate_l_per_h=r.rate_l_per_h, night_flow_l_per_h=r.night_flow_l_per_h,
                          volume_l=r.volume_l, detail=r.detail, opened_at=now)
            session.add(alert)
            session.flush()  # the unique index speaks here if another router opened it first
            out.opened = 1
            log.info("alert %d opened: meter %s, %s since %s", alert.id, r.meter_id, rule, r.day)
            out.notifications_queued = self._queue(session, alert, NotificationReason.OPENED, now)
            return out

        new_day = r.day > alert.last_day
        before = self._figures(alert)
        alert.first_day = min(alert.first_day, r.day)
        if r.day >= alert.last_day:
            alert.last_day = r.day
            alert.rate_l_per_h = r.rate_l_per_h
            alert.night_flow_l_per_h = r.night_flow_l_per_h
            alert.volume_l = r.volume_l
            alert.detail = r.detail
        if self._figures(alert) != before:
            out.updated = 1
        if new_day and alert.status == AlertStatus.OPEN and self._reminder_due(alert, now):
            out.reminders = 1
            out.notifications_queued = self._queue(session, alert, NotificationReason.REMINDER, now)
        return out

    @staticmethod
    def _figures(alert: Alert) -> tuple:
        return (alert.first_day, alert.last_day, alert.rate_l_per_h, alert.night_flow_l_per_h,
                alert.volume_l, alert.detail)

    @staticmethod
    def _already_covered(session: Session, r: CheckResult, rule: LeakRule) -> bool:
        """A leak on a day the latest resolved alert already covered (a re-run of old data)."""
        latest = session.scalars(
            select(Alert).where(Alert.meter_id == r.meter_id, Alert.kind == str(rule),
                                Alert.status == AlertStatus.RESOLVED)
            .order_by(Alert.last_day.desc(), Alert.id.desc()).limit(1)
        ).one_or_none()
        return latest is not None and r.day <= latest.last_day

    def _local_day(self, moment: datetime) -> date:
        return as_utc(moment).astimezone(self._tz).date()

    def _reminder_due(self, alert: Alert, now: datetime) -> bool:
        every = self._settings.renotify_after_days
        if every < 1:
            return False
        last = alert.last_notified_at or alert.opened_at
        return (self._local_day(now) - self._local_day(last)).days >= every

    def _queue(self, session: Session, alert: Alert, reason: NotificationReason, now: datetime) -> int:
        """One pending Notification per resident of the alert's meter; returns how many were queued."""
        alert.last_notified_at = now
        people = residents_of_meter(session, alert.meter_id)
        if not people:
            log.warning("alert %d (%s): no recipient for meter %s", alert.id, reason, alert.meter_id)
            return 0
        waiting: set[str] = set()
        if reason is NotificationReason.REMINDER:
            waiting = set(session.scalars(
                select(Notification.person_id).where(Notification.alert_id == alert.id,
                                                     Notification.status == DeliveryStatus.PENDING)))
        queued = 0
        for person in people:
            if person.id in waiting:
                continue
            session.add(Notification(alert_id=alert.id, person_id=person.id, reason=str(reason),
                                     status=DeliveryStatus.PENDING, attempts=0, next_attempt_at=now,
                                     created_at=now))
            queued += 1
        return queued

    # --- people acting on an alert ---------------------------------------------------------------
    def acknowledge(self, alert_id: int, by_person_id: str) -> Alert:
        """Mark the alert as being handled by ``by_person_id``: no more reminders.

        Idempotent: acknowledging an acknowledged alert returns it unchanged (the first person stays).
        Raises :class:`AlertNotFoundError` for an unknown id, :class:`AlertResolvedError` if resolved.
        """
        with self._sessionmaker() as session:
            alert = session.get(Alert, alert_id, with_for_update=True)
            if alert is None:
                raise AlertNotFoundError(f"no alert with id {alert_id}")
            if alert.status == AlertStatus.RESOLVED:
                raise AlertResolvedError(f"alert {alert_id} is already resolved")
            if alert.status == AlertStatus.OPEN:
                alert.status = AlertStatus.ACKNOWLEDGED
                alert.acknowledged_at = as_utc(self._clock())
                alert.acknowledged_by = by_person_id
                session.commit()
                session.refresh(alert)
                log.info("alert %d acknowledged by %s", alert_id, by_person_id)
            return alert

    def resolve(self, alert_id: int, by: str) -> Alert:
        """Close the alert on staff decision (``by``: a staff or person id, logged).

        ``resolved_day`` is today's local date. Residents are not notified. Idempotent on a resolved
        alert. Raises :class:`AlertNotFoundError` for an unknown id.
        """
        with self._sessionmaker() as session:
            alert = session.get(Alert, alert_id, with_for_update=True)
            if alert is None:
                raise AlertNotFoundError(f"no alert with id {alert_id}")
            if alert.status != AlertStatus.RESOLVED:
                now = as_utc(self._clock())
                alert.status = AlertStatus.RESOLVED
                alert.resolved_at = now
                alert.resolved_day = self._local_day(now)
                session.commit()
                session.refresh(alert)
                log.info("alert %d resolved by %s", alert_id, by)
            return alert


def list_alerts(session: Session, status: AlertStatus | str | Iterable[AlertStatus | str] | None = None,
                meter_ids: Iterable[str] | None = None,
                household_ids: Iterable[str] | Select | None = None) -> list[Alert]:
    """Alerts, newest first, optionally only with ``status`` (one or several), on ``meter_ids`` and
    of ``household_ids`` (ids, or a ``SELECT`` of ids such as :func:`vigie.access.visible_households`).

    ``meter_ids=[]`` returns nothing (a resident with no meter sees no alert).
    Raises ``ValueError`` for an unknown status.
    """
    query = select(Alert).order_by(Alert.opened_at.desc(), Alert.id.desc())
    if status is not None:
        wanted = [status] if isinstance(status, str) else list(status)
        query = query.where(Alert.status.in_([str(AlertStatus(s)) for s in wanted]))
    if meter_ids is not None:
        query = query.where(Alert.meter_id.in_(list(meter_ids)))
    if household_ids is not None:
        query = query.where(Alert.household_id.in_(
            household_ids if isinstance(household_ids, Select) else list(household_ids)))
    return list(session.scalars(query))
