"""Audit log: who read which household's data, and who acknowledged which alert, when.

Written by the query layer (:mod:`vigie.access`) and the acknowledgement-link path, never by the
endpoints themselves. An event holds ids only — the actor's key id, role and person id, the household,
meter and alert — never the personal details read (no names, addresses, readings).

Actions (:class:`AuditAction`): ``read_consumption`` (a meter's consumption history),
``read_alert`` (one alert's details), ``list_alerts`` (one event per household in a listing),
``read_status`` (a household's minimal status), ``acknowledge`` (an alert, through the API or a
link in a message: ``via`` is ``api`` or ``link``). Home (assisted-living) alerts have actions of
their own, so ``alert_id`` is never ambiguous: ``list_home_alerts``, ``read_home_alert``,
``acknowledge_home_alert`` (``via`` api or link), ``resolve_home_alert``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Integer, String, or_, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from vigie.alerts.models import utcnow
from vigie.db import Base, UTCDateTime
from vigie.registry import CaregiverLink, household_residents


class AuditAction(StrEnum):
    READ_CONSUMPTION = "read_consumption"
    READ_ALERT = "read_alert"
    LIST_ALERTS = "list_alerts"
    READ_STATUS = "read_status"
    ACKNOWLEDGE = "acknowledge"
    LIST_HOME_ALERTS = "list_home_alerts"
    READ_HOME_ALERT = "read_home_alert"
    ACKNOWLEDGE_HOME_ALERT = "acknowledge_home_alert"
    RESOLVE_HOME_ALERT = "resolve_home_alert"


class AuditEvent(Base):
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    key_id: Mapped[str | None] = mapped_column(String(24))       # None for an acknowledgement link
    role: Mapped[str] = mapped_column(String(20))
    person_id: Mapped[str | None] = mapped_column(String(64), index=True)   # the actor
    action: Mapped[str] = mapped_column(String(30))
    via: Mapped[str] = mapped_column(String(10), default="api")            # api | link
    household_id: Mapped[str | None] = mapped_column(String(64), index=True)   # whose data
    meter_id: Mapped[str | None] = mapped_column(String(64))
    alert_id: Mapped[int | None] = mapped_column(Integer)


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: ``key_id`` (None through a link), ``role`` (an API role, or ``recipient`` for a
    link), ``person_id`` (None for grafana)."""

    key_id: str | None
    role: str
    person_id: str | None


def record(session: Session, actor: Actor, action: AuditAction, *, household_id: str | None,
           meter_id: str | None = None, alert_id: int | None = None, via: str = "api",
           at: datetime | None = None) -> None:
    """Add one event to ``session`` (committed with the caller's transaction)."""
    session.add(AuditEvent(at=at or utcnow(), key_id=actor.key_id, role=actor.role, person_id=actor.person_id,
                           action=str(action), via=via, household_id=household_id, meter_id=meter_id,
                           alert_id=alert_id))


def record_many(session: Session, actor: Actor, action: AuditAction, household_ids: Iterable[str | None]) -> None:
    """One event per distinct household (a listing touching several households)."""
    at = utcnow()
    for household_id in sorted({h for h in household_ids if h is not None}):
        record(session, actor, action, household_id=household_id, at=at)


def read_events(session: Session, *, household_id: str | None = None, person_id: str | None = None,
                since: datetime | None = None, limit: int = 1000) -> list[AuditEvent]:
    """Events, oldest first, at most ``limit``. ``person_id`` matches events by that person and
    events about the households they live in or care for (what a data-access request asks)."""
    query = select(AuditEvent).order_by(AuditEvent.at, AuditEvent.id)
    if household_id is not None:
        query = query.where(AuditEvent.household_id == household_id)
    if person_id is not None:
        homes = (select(household_residents.c.household_id).where(household_residents.c.person_id == person_id)
                 .union(select(CaregiverLink.household_id).where(CaregiverLink.person_id == person_id)))
        query = query.where(or_(AuditEvent.person_id == person_id, AuditEvent.household_id.in_(homes)))
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    return list(session.scalars(query.limit(limit)))
