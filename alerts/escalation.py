"""Escalation of home (assisted-living) alerts across a network of people, all state in the database.

Two entry points, both idempotent and safe to run from several processes at once:

- :meth:`Escalation.apply_events` takes one detection tick's :class:`~vigie.records.HomeEvent` list
  (``analytics.homes.detect_home_events``) and the homes that tick evaluated. A new episode —
  (household, kind, sensor, ``start``), unique in ``home_alerts`` — opens an alert; a known one
  gets its evidence refreshed. An unresolved alert of an evaluated home whose episode is no longer
  reported has *cleared*: it is resolved (and those notified are told), except for the kinds in
  :data:`PERSON_CLOSES` — possible fall or danger (inactivity, no wake-up, long bathroom stay,
  night exit) — where only ``condition_cleared_at`` is set and the escalation goes on until a
  person acknowledges; such an alert is then resolved by a person (:meth:`Escalation.resolve`),
  because a resident who moves again after a fall may still need someone to come. A home the tick
  did not evaluate (no data) resolves nothing: a data gap never reads as "back to normal".
- :meth:`Escalation.tick` (every minute, :mod:`vigie.scheduler`) computes from the database alone
  what is due at ``now`` for every open alert and queues :class:`~vigie.alerts.models.Notification`
  rows for the delivery stage (:mod:`vigie.alerts.delivery`).

Policy of one home (registry, :mod:`vigie.registry`, docs/registry.md):

- Levels: the caregivers of the home grouped by ``CaregiverLink.level`` (1 first; a caregiver
  without a level is not called), then the staff of the home's commune (``staff:`` in the registry,
  :data:`vigie.registry.STAFF_LEVEL`) as the last level. Technical events (``SENSOR_SILENT``) go to staff only.
- Step 1 (the first level) is due at ``opened_at``; each next level ``wait`` after the previous
  step was due (``households.escalation_wait_min``, else ``settings.escalation_wait_min``, 10 min).
  After the last level the last level is called again every ``wait`` until someone acknowledges;
  overdue repeats (the service was down) collapse into one. Overdue *levels* are never skipped: a
  tick after an outage calls each level it missed, in order, at once.
- At each step a person is called only if reachable now (local time of ``settings.timezone``):
  inside their ``availability`` windows (staff: ``duty``) when they have some, outside their
  ``quiet_hours`` unless the alert's severity is ``high`` (a possible fall ignores quiet hours),
  and with at least one channel for that severity (``notify`` preferences, e-mail needing
  ``settings.smtp_url``). A step that reaches nobody passes on at once: the next level is due
  when that step was (not ``wait`` later). The last level's repeats always wait.
- Reminders: every person already called about an open alert is reminded
  ``households.reminder_interval_min`` (else ``settings.escalation_reminder_min``, 15 min) after
  the latest message they got about it, if reachable then, until someone acknowledges.
- Acknowledgement (API, or the signed link in each call): the alert stops escalating; calls not
  sent yet are cancelled; everyone already reached (a call *sent*) except the acknowledger is told
  it is handled and by whom — the caregiver's relation ("neighbour"), ``caregiver`` when the
  registry gives none, or ``staff`` — never a name (a neighbour need not learn the daughter's).
- Resolution (the condition cleared, or a person closing an acknowledged alert): calls not sent are
  cancelled and everyone reached is told it is closed.

Idempotence and concurrency: each alert is advanced in its own transaction, which first takes the
alert's row lock (PostgreSQL) or the write lock (SQLite), so it never calls anyone about an alert
acknowledged or resolved meanwhile.
Steps are unique per (alert, step number) and notifications per (alert, person, step key): ``s<n>``
for step n, ``r<n>`` for a person's n-th reminder, ``handled``, ``resolved``. A tick that loses a
race to another tick or process hits one of these constraints, rolls back and re-reads, so nobody
is called twice for one step, and a restart resumes from the rows: no level skipped, none repeated.
Logs carry alert, household and person ids only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from vigie.alerts.delivery import channel_urls
from vigie.alerts.models import (AlertStatus, DeliveryStatus, EscalationStep, HomeAlert, Notification,
                                 NotificationReason, utcnow)
from vigie.alerts.router import AlertError, AlertNotFoundError, AlertResolvedError, as_utc
from vigie.records import STAFF_ONLY_HOME_EVENTS, HomeEvent, HomeEventKind, HomeEventSeverity
from vigie.registry import STAFF_LEVEL, CaregiverLink, Household, Person
from vigie.timewindows import within

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

#: Kinds whose alert stays open when the condition clears: a person must acknowledge, then close it.
PERSON_CLOSES = frozenset({HomeEventKind.INACTIVITY, HomeEventKind.NO_WAKEUP, HomeEventKind.LONG_BATHROOM,
                           HomeEventKind.NIGHT_EXIT})
# Reasons of the messages that call a person to act (cancelled once the alert is handled).
_CALLS = (str(NotificationReason.ESCALATION), str(NotificationReason.REMINDER))
_RETRIES = 3


class EscalationSettings(Protocol):
    """The settings the engine reads (a :class:`vigie.config.Settings` fits; ``smtp_url`` too)."""

    timezone: str
    escalation_wait_min: float
    escalation_reminder_min: float


class AlertNotAcknowledgedError(AlertError, ValueError):
    """A person may close a home alert only once someone has acknowledged it."""


@dataclass
class ApplyOutcome:
    """What one :meth:`Escalation.apply_events` call did (counts of alerts)."""

    opened: int = 0
    updated: int = 0
    resolved: int = 0
    cleared: int = 0   # condition gone, alert left open for a person to close (PERSON_CLOSES)


@dataclass
class TickOutcome:
    """What one :meth:`Escalation.tick` did: escalation steps taken, calls and reminders queued."""

    steps: int = 0
    calls: int = 0
    reminders: int = 0
    alerts: list[int] = field(default_factory=list)   # ids of the alerts that changed


@dataclass(frozen=True, slots=True)
class Level:
    """One escalation level of a home: ``number`` (1…, or :data:`vigie.registry.STAFF_LEVEL`) and its people."""

    number: int
    people: tuple[Person, ...]


def escalation_levels(session: Session, household: Household, kind: str) -> list[Level]:
    """The home's levels in order (see the module docstring); empty when nobody is registered."""
    levels: list[Level] = []
    if HomeEventKind(kind) not in STAFF_ONLY_HOME_EVENTS:
        links = session.scalars(select(CaregiverLink).where(CaregiverLink.household_id == household.id,
                                                            CaregiverLink.level.is_not(None))
                                .order_by(CaregiverLink.level, CaregiverLink.person_id))
        by_level: dict[int, list[Person]] = {}
        for link in links:
            by_level.setdefault(link.level, []).append(link.person)
        levels = [Level(n, tuple(people)) for n, people in sorted(by_level.items())]
    staff = tuple(session.scalars(select(Person).where(Person.staff_commune == household.commune)
                                  .order_by(Person.id)))
    if staff:
        levels.append(Level(STAFF_LEVEL, staff))
    return levels


def reachable(person: Person, severity: str, local_now: datetime, smtp_url: str | None) -> bool:
    """Whether ``person`` may be called now about an alert of ``severity`` (local wall-clock time)."""
    if person.availability and not within(person.availability, local_now):
        return False
    if severity != HomeEventSeverity.HIGH and person.quiet_hours and within(person.quiet_hours, local_now):
        return False
    return bool(channel_urls(person, smtp_url, severity))


def acknowledger_label(session: Session, household_id: str, person_id: str, *, staff: bool = False) -> str:
    """How others are told who handles an alert: ``staff`` (``staff``: an API staff key, or a
    registered staff member), else the caregiver's relation, else ``caregiver``."""
    if not staff:
        link = session.get(CaregiverLink, (household_id, person_id))
        if link is not None:
            return (link.relation or "caregiver")[:40]
    return "staff"


class Escalation:
    """The escalation engine over ``sessionmaker`` (:func:`vigie.db.make_sessionmaker`).
    ``clock`` returns aware UTC (tests pass a fake)."""

    def __init__(self, sessionmaker: sessionmaker, settings: EscalationSettings, clock: Clock = utcnow) -> None:
        self._sessionmaker = sessionmaker
        self._settings = settings
        self._clock = clock
        self._tz = ZoneInfo(settings.timezone)
        self._smtp_url: str | None = getattr(settings, "smtp_url", None)

    # --- detection results ---------------------------------------------------------------------
    def apply_events(self, events: Iterable[HomeEvent], evaluated_homes: Iterable[str],
                     now: datetime | None = None) -> ApplyOutcome:
        """Open, refresh and clear home alerts from one detection tick (module docstring).

        ``evaluated_homes``: the household ids the tick evaluated; only their alerts can clear.
        Each event is committed on its own; clearing runs last.
        """
        now = as_utc(now or self._clock())
        events = list(events)
        out = ApplyOutcome()
        for event in events:
            for attempt in range(_RETRIES):
                try:
                    self._apply_one(event, now, out)
                    break
                except IntegrityError:   # another process opened the same episode: update it instead
                    if attempt == _RETRIES - 1:
                        raise
        reported = {(e.home_id, str(e.kind), e.sensor_id or "", as_utc(e.start)) for e in events}
        homes = list(set(evaluated_homes))
        with self._sessionmaker() as session:
            candidates = list(session.scalars(
                select(HomeAlert.id).where(HomeAlert.status != AlertStatus.RESOLVED,
                                           HomeAlert.household_id.in_(homes))))
        for alert_id in candidates:
            with self._sessionmaker() as session:
                alert = session.get(HomeAlert, alert_id, with_for_update=True)
                key = (alert.household_id, alert.kind, alert.sensor_id, as_utc(alert.start))
                if alert.status == AlertStatus.RESOLVED or key in reported:
                    continue
                if HomeEventKind(alert.kind) in PERSON_CLOSES:
                    if alert.condition_cleared_at is None:
                        alert.condition_cleared_at = now
                        out.cleared += 1
                        log.info("home alert %d (%s, %s): condition cleared; open until a person closes it",
                                 alert.id, alert.household_id, alert.kind)
                else:
                    self._resolve_in(session, alert, None, now)
                    out.resolved += 1
                session.commit()
        return out

    def _apply_one(self, event: HomeEvent, now: datetime, out: ApplyOutcome) -> None:
        sensor = event.sensor_id or ""
        with self._sessionmaker() as session:
            alert = session.scalars(select(HomeAlert).where(
                HomeAlert.household_id == event.home_id, HomeAlert.kind == str(event.kind),
                HomeAlert.sensor_id == sensor, HomeAlert.start == as_utc(event.start))).one_or_none()
            if alert is None:
                alert = HomeAlert(household_id=event.home_id, kind=str(event.kind), severity=str(event.severity),
                                  sensor_id=sensor, start=as_utc(event.start), evidence=event.to_dict(),
                                  status=AlertStatus.OPEN, opened_at=now, last_seen_at=now)
                session.add(alert)
                session.flush()
                out.opened += 1
                log.info("home alert %d opened: household %s, %s", alert.id, event.home_id, event.kind)
            elif alert.status != AlertStatus.RESOLVED:
                alert.evidence = event.to_dict()
                alert.severity = str(event.severity)
                alert.last_seen_at = now
                alert.condition_cleared_at = None
                out.updated += 1
            session.commit()

    # --- the minute tick -------------------------------------------------------------------------
    def tick(self, now: datetime | None = None) -> TickOutcome:
        """Take every escalation step and reminder due at ``now`` (default: the clock)."""
        now = as_utc(now or self._clock())
        out = TickOutcome()
        with self._sessionmaker() as session:
            ids = list(session.scalars(select(HomeAlert.id).where(HomeAlert.status == AlertStatus.OPEN)
                                       .order_by(HomeAlert.id)))
        for alert_id in ids:
            for attempt in range(_RETRIES):
                part = TickOutcome()
                try:
                    with self._sessionmaker() as session:
                        self._advance(session, alert_id, now, part)
                        session.commit()
                except IntegrityError:
                    # Another tick took this step first; its rows are committed: re-read them.
                    log.info("home alert %d: step taken concurrently; re-reading", alert_id)
                    if attempt == _RETRIES - 1:
                        raise
                    continue
                out.steps += part.steps
                out.calls += part.calls
                out.reminders += part.reminders
                if part.steps or part.reminders:
                    out.alerts.append(alert_id)
                break
        return out

    def _policy(self, household: Household) -> tuple[timedelta, timedelta]:
        wait = household.escalation_wait_min or self._settings.escalation_wait_min
        remind = household.reminder_interval_min or self._settings.escalation_reminder_min
        return timedelta(minutes=wait), timedelta(minutes=remind)

    def _advance(self, session: Session, alert_id: int, now: datetime, out: TickOutcome) -> None:
        # A no-op UPDATE takes the row lock on PostgreSQL and the write lock on SQLite *before* the
        # reads below, so an acknowledgement or resolution committed meanwhile is seen, never undone.
        locked = session.execute(update(HomeAlert).where(HomeAlert.id == alert_id,
                                                         HomeAlert.status == AlertStatus.OPEN)
                                 .values(status=AlertStatus.OPEN)).rowcount
        if not locked:
            return
        alert = session.get(HomeAlert, alert_id)
        household = session.get(Household, alert.household_id)
        if household is None:
            log.warning("home alert %d: household %s is not in the registry", alert.id, alert.household_id)
            return
        levels = escalation_levels(session, household, alert.kind)
        wait, remind = self._policy(household)
        local = now.astimezone(self._tz)
        steps = list(session.scalars(select(EscalationStep).where(EscalationStep.home_alert_id == alert.id)
                                     .order_by(EscalationStep.step_no)))
        if not levels and not steps:
            log.warning("home alert %d: household %s has no escalation level (no caregiver level, no staff)",
                        alert.id, alert.household_id)
        called_now: set[str] = set()
        while levels:
            level, round_, due = self._next_step(steps, levels, as_utc(alert.opened_at), wait, now)
            if due > now:
                break
            people = [p for p in level.people if reachable(p, alert.severity, local, self._smtp_url)]
            step = EscalationStep(home_alert_id=alert.id, step_no=len(steps) + 1, level=level.number,
                                  round=round_, due_at=due, done_at=now, notified=len(people))
            session.add(step)
            session.flush()   # the unique (alert, step_no) speaks here if another tick took it
            for person in people:
                self._queue(session, alert, person.id, NotificationReason.ESCALATION, f"s{step.step_no}", now)
                called_now.add(person.id)
            steps.append(step)
            out.steps += 1
            out.calls += len(people)
            log.info("home alert %d: step %d, level %s round %d, %d called of %d", alert.id, step.step_no,
                     "staff" if level.number == STAFF_LEVEL else level.number, round_, len(people),
                     len(level.people))
        out.reminders += self._remind(session, alert, now, local, remind, called_now)

    @staticmethod
    def _next_step(steps: list[EscalationStep], levels: list[Level], opened_at: datetime, wait: timedelta,
                   now: datetime) -> tuple[Level, int, datetime]:
        """The next step's level, round and due time. Levels are found by number, so a registry
        edit between ticks neither replays nor skips a level."""
        if not steps:
            return levels[0], 0, opened_at
        last = steps[-1]
        last_due = as_utc(last.due_at)
        later = [lv for lv in levels if lv.number > last.level]
        if later:
            return later[0], 0, last_due + (wait if last.notified else timedelta(0))
        final = levels[-1]
        round_ = last.round + 1 if last.level == final.number else 1
        due = last_due + wait
        if due <= now:   # repeats missed during an outage collapse into the latest one
            due = last_due + wait * ((now - last_due) // wait)
        return final, round_, due

    def _remind(self, session: Session, alert: HomeAlert, now: datetime, local: datetime, every: timedelta,
                called_now: set[str]) -> int:
        rows = session.execute(
            select(Notification.person_id, func.max(Notification.created_at),
                   func.sum(case((Notification.reason == str(NotificationReason.REMINDER), 1), else_=0)))
            .where(Notification.home_alert_id == alert.id, Notification.reason.in_(_CALLS))
            .group_by(Notification.person_id)).all()
        queued = 0
        for person_id, last_at, reminders in rows:
            if person_id in called_now or as_utc(last_at) + every > now:
                continue
            person = session.get(Person, person_id)
            if person is None or not reachable(person, alert.severity, local, self._smtp_url):
                continue
            self._queue(session, alert, person_id, NotificationReason.REMINDER, f"r{(reminders or 0) + 1}", now)
            queued += 1
            log.info("home alert %d: reminder %d to person %s", alert.id, (reminders or 0) + 1, person_id)
        return queued

    @staticmethod
    def _queue(session: Session, alert: HomeAlert, person_id: str, reason: NotificationReason, step: str,
               now: datetime) -> None:
        session.add(Notification(home_alert_id=alert.id, person_id=person_id, reason=str(reason), step=step,
                                 status=DeliveryStatus.PENDING, attempts=0, next_attempt_at=now, created_at=now))
        session.flush()

    # --- people acting on an alert ---------------------------------------------------------------
    def acknowledge(self, alert_id: int, person_id: str, *, staff: bool = False) -> HomeAlert:
        """``person_id`` handles the alert: escalation and reminders stop, calls not yet sent are
        cancelled, everyone reached is told by whom (:func:`acknowledger_label`; ``staff``: the
        person acts with a staff key). Idempotent (the first acknowledger stays).
        Raises :class:`AlertNotFoundError`, :class:`AlertResolvedError`."""
        with self._sessionmaker() as session:
            alert = session.get(HomeAlert, alert_id, with_for_update=True)
            if alert is None:
                raise AlertNotFoundError(f"no home alert with id {alert_id}")
            if alert.status == AlertStatus.RESOLVED:
                raise AlertResolvedError(f"home alert {alert_id} is already resolved")
            if alert.status == AlertStatus.OPEN:
                now = as_utc(self._clock())
                alert.status = AlertStatus.ACKNOWLEDGED
                alert.acknowledged_at = now
                alert.acknowledged_by = person_id
                person = session.get(Person, person_id)
                staff = staff or (person is not None and person.staff_commune is not None)
                alert.acknowledged_as = acknowledger_label(session, alert.household_id, person_id, staff=staff)
                told = self._close_calls(session, alert, NotificationReason.HANDLED, "handled", now,
                                         skip=person_id)
                session.commit()
                log.info("home alert %d acknowledged by person %s; %d told", alert.id, person_id, told)
            return alert

    def resolve(self, alert_id: int, person_id: str) -> HomeAlert:
        """``person_id`` closes an acknowledged alert; everyone reached is told. Idempotent on a
        resolved alert. Raises :class:`AlertNotFoundError`, :class:`AlertNotAcknowledgedError`."""
        with self._sessionmaker() as session:
            alert = session.get(HomeAlert, alert_id, with_for_update=True)
            if alert is None:
                raise AlertNotFoundError(f"no home alert with id {alert_id}")
            if alert.status == AlertStatus.OPEN:
                raise AlertNotAcknowledgedError(f"home alert {alert_id} must be acknowledged before it is closed")
            if alert.status != AlertStatus.RESOLVED:
                self._resolve_in(session, alert, person_id, as_utc(self._clock()))
                session.commit()
            return alert

    def _resolve_in(self, session: Session, alert: HomeAlert, person_id: str | None, now: datetime) -> None:
        alert.status = AlertStatus.RESOLVED
        alert.resolved_at = now
        alert.resolved_by = person_id
        told = self._close_calls(session, alert, NotificationReason.RESOLVED, "resolved", now)
        log.info("home alert %d resolved (%s); %d told", alert.id,
                 f"by person {person_id}" if person_id else "condition cleared", told)

    def _close_calls(self, session: Session, alert: HomeAlert, reason: NotificationReason, step: str,
                     now: datetime, skip: str | None = None) -> int:
        """Cancel the calls not sent yet; tell everyone a call reached (except ``skip``)."""
        session.execute(update(Notification).where(
            Notification.home_alert_id == alert.id, Notification.reason.in_(_CALLS),
            Notification.status == DeliveryStatus.PENDING).values(status=DeliveryStatus.CANCELLED))
        reached = set(session.scalars(select(Notification.person_id).where(
            Notification.home_alert_id == alert.id, Notification.reason.in_(_CALLS),
            Notification.status == DeliveryStatus.SENT)))
        already = set(session.scalars(select(Notification.person_id).where(
            Notification.home_alert_id == alert.id, Notification.step == step)))
        told = 0
        for person_id in sorted(reached - already - {skip}):
            self._queue(session, alert, person_id, reason, step, now)
            told += 1
        return told
