"""Persisted alert state: water alerts, home (assisted-living) alerts with their escalation steps,
the notifications they cause, and every delivery attempt.

One *open* water alert per (meter, kind) at a time — enforced by a partial unique index — so a leak
that shows up again day after day, or after a restart, updates the same alert instead of opening another.

One home alert per episode: (household, kind, sensor, condition start) is unique, so the minute
ticks that keep reporting the same condition, or a restart, find the same alert. Its escalation
(:mod:`vigie.alerts.escalation`) is recorded as :class:`EscalationStep` rows, unique per
(alert, step number), and as notifications unique per (home alert, person, step key): two ticks
or two processes cannot notify a person twice for one step.

A :class:`Notification` belongs to exactly one water alert (``alert_id``), one home alert
(``home_alert_id``) or one staff digest (``digest_id``, :mod:`vigie.alerts.digest`); the delivery
stage sends them all the same way.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from enum import StrEnum

from sqlalchemy import JSON, Date, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from vigie.db import Base, UTCDateTime


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class AlertStatus(StrEnum):
    OPEN = "open"                  # raised, nobody has acknowledged it
    ACKNOWLEDGED = "acknowledged"  # a person said they are handling it: no more reminders
    RESOLVED = "resolved"          # the condition cleared (or staff closed it)


class NotificationReason(StrEnum):
    OPENED = "opened"
    REMINDER = "reminder"
    RESOLVED = "resolved"
    ESCALATION = "escalation"   # a home alert reached this person's level (or the last level again)
    HANDLED = "handled"         # a home alert was acknowledged by someone else
    DIGEST = "digest"           # a staff digest of heating and device-health findings


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"   # gave up after the last retry
    CANCELLED = "cancelled"   # a home-alert call not yet sent when the alert was acknowledged or resolved


class Alert(Base):
    __tablename__ = "alerts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    meter_id: Mapped[str] = mapped_column(String(64), index=True)
    household_id: Mapped[str | None] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(40))            # a LeakRule value
    status: Mapped[str] = mapped_column(String(20), default=AlertStatus.OPEN, index=True)
    first_day: Mapped[date] = mapped_column(Date)            # first local day the rule fired
    last_day: Mapped[date] = mapped_column(Date)             # latest local day the rule fired
    rate_l_per_h: Mapped[float | None] = mapped_column(Float)
    night_flow_l_per_h: Mapped[float | None] = mapped_column(Float)
    volume_l: Mapped[float | None] = mapped_column(Float)
    detail: Mapped[str] = mapped_column(Text, default="")
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_by: Mapped[str | None] = mapped_column(String(64))   # a person id, never a name
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_day: Mapped[date | None] = mapped_column(Date)
    last_notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    notifications: Mapped[list["Notification"]] = relationship(back_populates="alert", order_by="Notification.id")

    __table_args__ = (
        Index("uq_alert_open_per_meter_kind", "meter_id", "kind", unique=True,
              sqlite_where=text("status != 'resolved'"), postgresql_where=text("status != 'resolved'")),
    )


class Notification(Base):
    """A message owed to one person about one water alert (``alert_id``), one staff digest
    (``digest_id``) or one home alert (``home_alert_id``, with its ``step`` key: ``s<n>``
    escalation step n, ``r<n>`` the person's n-th reminder, ``handled``, ``resolved``); delivered (and retried) by the delivery stage."""

    __tablename__ = "notifications"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    home_alert_id: Mapped[int | None] = mapped_column(
        ForeignKey("home_alerts.id", ondelete="CASCADE", name="fk_notifications_home_alert_id"), index=True)
    digest_id: Mapped[int | None] = mapped_column(
        ForeignKey("staff_digests.id", ondelete="CASCADE", name="fk_notifications_digest_id"), index=True)
    step: Mapped[str | None] = mapped_column(String(20))
    person_id: Mapped[str] = mapped_column(String(64), index=True)
    reason: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default=DeliveryStatus.PENDING, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    alert: Mapped[Alert | None] = relationship(back_populates="notifications")
    attempts_log: Mapped[list["DeliveryAttempt"]] = relationship(back_populates="notification",
                                                                 order_by="DeliveryAttempt.id")

    __table_args__ = (
        # NULLs are distinct: water notifications (no home alert, no step) are not constrained.
        UniqueConstraint("home_alert_id", "person_id", "step", name="uq_notification_home_alert_person_step"),
    )


class DeliveryAttempt(Base):
    """One try at delivering a notification over one channel, with its outcome.

    ``channel`` is the Apprise scheme only (``mailto``, ``ntfy``…): addresses stay in the registry.
    """

    __tablename__ = "delivery_attempts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    notification_id: Mapped[int] = mapped_column(ForeignKey("notifications.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    channel: Mapped[str] = mapped_column(String(40))
    outcome: Mapped[str] = mapped_column(String(20))   # sent | failed
    error: Mapped[str | None] = mapped_column(Text)
    notification: Mapped[Notification] = relationship(back_populates="attempts_log")


class HomeAlert(Base):
    """An unusual-behaviour alert of an assisted-living home (one :class:`~vigie.records.HomeEvent`
    episode). ``sensor_id`` is ``""`` for events about no particular sensor (so the unique key
    holds: NULLs would be distinct). ``evidence``: the event's :meth:`~vigie.records.HomeEvent.to_dict`
    at the latest tick that reported it. ``acknowledged_as``: how others are told who handles it
    — the caregiver's relation, ``caregiver`` without one, or ``staff`` — never a name.
    ``condition_cleared_at``: the detectors stopped reporting it (for kinds a person must close).
    ``resolved_by``: a person id, or None when the condition cleared by itself."""

    __tablename__ = "home_alerts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    household_id: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(40))              # a HomeEventKind value
    severity: Mapped[str] = mapped_column(String(10))          # a HomeEventSeverity value
    sensor_id: Mapped[str] = mapped_column(String(64), default="", server_default="")
    start: Mapped[datetime] = mapped_column(UTCDateTime)
    evidence: Mapped[dict] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), default=AlertStatus.OPEN, index=True)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    condition_cleared_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_by: Mapped[str | None] = mapped_column(String(64))   # a person id, never a name
    acknowledged_as: Mapped[str | None] = mapped_column(String(40))
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_by: Mapped[str | None] = mapped_column(String(64))
    steps: Mapped[list["EscalationStep"]] = relationship(back_populates="alert", order_by="EscalationStep.step_no",
                                                         cascade="all, delete-orphan")

    __table_args__ = (
        UniqueConstraint("household_id", "kind", "sensor_id", "start", name="uq_home_alert_episode"),
    )


class EscalationStep(Base):
    """One escalation step of a home alert: ``level`` (a caregiver level, or
    :data:`vigie.registry.STAFF_LEVEL`) reached for the ``round``-th time (0 first,
    then repeats of the last level). ``due_at``: when the policy made it due (the anchor of the next
    wait); ``done_at``: the tick that took it; ``notified``: people it called (0: nobody reachable)."""

    __tablename__ = "home_alert_steps"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    home_alert_id: Mapped[int] = mapped_column(ForeignKey("home_alerts.id", ondelete="CASCADE"), index=True)
    step_no: Mapped[int] = mapped_column(Integer)
    level: Mapped[int] = mapped_column(Integer)
    round: Mapped[int] = mapped_column(Integer, default=0)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    done_at: Mapped[datetime] = mapped_column(UTCDateTime)
    notified: Mapped[int] = mapped_column(Integer, default=0)
    alert: Mapped[HomeAlert] = relationship(back_populates="steps")

    __table_args__ = (UniqueConstraint("home_alert_id", "step_no", name="uq_home_alert_step"),)
