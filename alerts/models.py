"""Persisted alert-router state: alerts, the notifications they cause, and every delivery attempt.

One *open* alert per (meter, kind) at a time — enforced by a partial unique index — so a leak that
shows up again day after day, or after a restart, updates the same alert instead of opening another.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from enum import StrEnum

from sqlalchemy import Date, Float, ForeignKey, Index, Integer, String, Text, text
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


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"   # gave up after the last retry


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
    """A message owed to one person about one alert; delivered (and retried) by the delivery stage."""

    __tablename__ = "notifications"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    person_id: Mapped[str] = mapped_column(String(64), index=True)
    reason: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default=DeliveryStatus.PENDING, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    alert: Mapped[Alert] = relationship(back_populates="notifications")
    attempts_log: Mapped[list["DeliveryAttempt"]] = relationship(back_populates="notification",
                                                                 order_by="DeliveryAttempt.id")


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
