"""Staff findings: heating faults and device-health problems, kept open while the analytics keep
seeing them, announced to staff in grouped digests instead of one message per radiator.

A :class:`StaffFinding` is what an analytics pass reports (heating: :mod:`vigie.analytics.heating`;
device health: :mod:`vigie.analytics.devices`), reduced to one shape: the commune whose staff own
it, its ``family`` (``heating``, ``water``, ``home``), its ``kind`` and its ``subject`` — a stable
text naming what it is about (``<building>/<room>`` for a room, ``<family>:<device>`` for a device).
:class:`FindingRouter` keeps one :class:`FacilityFinding` row per episode:

=================================== ======================================= ==============================
pass reports (kind, subject)        no finding that is not resolved         an open / acknowledged finding
=================================== ======================================= ==============================
yes                                 open it (``digest_id`` None: the next   widen ``start``/``end``, keep
                                    digest announces it)                    the latest evidence
no, and the pass evaluated the kind nothing                                 resolve it (the condition
for that commune                                                            cleared)
=================================== ======================================= ==============================

A partial unique index (one row that is not resolved per ``kind`` × ``subject``) makes a second
pass, a restart or a concurrent run update the same row. Digests: :mod:`vigie.alerts.digest`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from vigie.alerts.models import AlertStatus, utcnow
from vigie.alerts.router import as_utc
from vigie.db import Base, UTCDateTime

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
FAMILIES = ("heating", "water", "home")


@dataclass(frozen=True, slots=True)
class StaffFinding:
    """One problem for staff, as an analytics pass reports it.

    ``start``/``end``: UTC, the period the pass saw the condition (a device's ``since`` and the
    pass's time for device health). ``evidence``: JSON-able figures with their units in the key
    names (``valve_pct``, ``wasted_kwh``…); never a person's name. ``building_id``/``room_id``/
    ``device_id``: registry ids, for the API and the digest (None when not about one). ``label``: how
    staff read the subject (``Mairie — Salle du conseil``; ids only for devices of homes)."""

    commune: str
    family: str
    kind: str
    subject: str
    start: datetime
    end: datetime
    evidence: dict = field(default_factory=dict)
    building_id: str | None = None
    room_id: str | None = None
    device_id: str | None = None
    label: str = ""

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"StaffFinding.family must be one of {FAMILIES}, not {self.family!r}")
        if not self.subject:
            raise ValueError("StaffFinding.subject must not be empty")


class FacilityFinding(Base):
    """A persisted staff finding (see the module docstring). ``digest_id``: the digest that
    announced it (None: not announced yet)."""

    __tablename__ = "facility_findings"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    commune: Mapped[str] = mapped_column(String(64), index=True)
    family: Mapped[str] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(40))
    subject: Mapped[str] = mapped_column(String(200))
    label: Mapped[str] = mapped_column(String(300), default="")
    building_id: Mapped[str | None] = mapped_column(String(64), index=True)
    room_id: Mapped[str | None] = mapped_column(String(64))
    device_id: Mapped[str | None] = mapped_column(String(64))
    start: Mapped[datetime] = mapped_column(UTCDateTime)
    end: Mapped[datetime] = mapped_column(UTCDateTime)
    evidence: Mapped[dict] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), default=AlertStatus.OPEN, index=True)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_by: Mapped[str | None] = mapped_column(String(64))   # a person or key id, never a name
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    digest_id: Mapped[int | None] = mapped_column(
        ForeignKey("staff_digests.id", ondelete="SET NULL", name="fk_facility_findings_digest_id"), index=True)

    __table_args__ = (
        Index("uq_facility_finding_open", "kind", "subject", unique=True,
              sqlite_where=text("status != 'resolved'"), postgresql_where=text("status != 'resolved'")),
    )


@dataclass(slots=True)
class FindingOutcome:
    """Counts of one :meth:`FindingRouter.apply`."""

    opened: int = 0
    updated: int = 0
    resolved: int = 0


class FindingRouter:
    """Analytics findings → :class:`FacilityFinding` rows (policy in the module docstring)."""

    def __init__(self, sessions: sessionmaker, clock: Clock = utcnow) -> None:
        self._sessions = sessions
        self._clock = clock

    def apply(self, findings: Iterable[StaffFinding], evaluated: Iterable[tuple[str, str]],
              now: datetime | None = None) -> FindingOutcome:
        """Record one pass. ``evaluated``: the (commune, kind) pairs the pass evaluated — a finding
        of such a pair that the pass no longer reports is resolved; findings of pairs it did not
        evaluate (another family's pass, a commune with no data) are left as they are."""
        now = as_utc(now or self._clock())
        out = FindingOutcome()
        reported = {(f.kind, f.subject): f for f in findings}
        for finding in reported.values():
            self._upsert(finding, now, out)
        evaluated = set(evaluated)
        with self._sessions() as session:
            live = session.scalars(select(FacilityFinding).where(FacilityFinding.status != AlertStatus.RESOLVED))
            for row in live:
                if (row.commune, row.kind) in evaluated and (row.kind, row.subject) not in reported:
                    row.status = AlertStatus.RESOLVED
                    row.resolved_at = now
                    out.resolved += 1
            session.commit()
        if out.opened or out.resolved:
            log.info("staff findings: %d opened, %d updated, %d resolved", out.opened, out.updated, out.resolved)
        return out

    def _upsert(self, f: StaffFinding, now: datetime, out: FindingOutcome) -> None:
        for _ in range(2):  # a concurrent pass may open the same finding first: then update it
            with self._sessions() as session:
                row = _live(session, f.kind, f.subject)
                if row is None:
                    session.add(FacilityFinding(
                        commune=f.commune, family=f.family, kind=f.kind, subject=f.subject,
                        building_id=f.building_id, room_id=f.room_id, device_id=f.device_id, label=f.label,
                        start=as_utc(f.start), end=as_utc(f.end), evidence=f.evidence,
                        status=AlertStatus.OPEN, opened_at=now, last_seen_at=now))
                    try:
                        session.commit()
                    except IntegrityError:
                        session.rollback()
                        continue
                    out.opened += 1
                    return
                row.start = min(row.start, as_utc(f.start))
                row.end = max(row.end, as_utc(f.end))
                row.evidence = f.evidence
                row.label = f.label
                row.last_seen_at = now
                row.commune = f.commune
                session.commit()
                out.updated += 1
                return


def _live(session: Session, kind: str, subject: str) -> FacilityFinding | None:
    return session.scalars(select(FacilityFinding).where(
        FacilityFinding.kind == kind, FacilityFinding.subject == subject,
        FacilityFinding.status != AlertStatus.RESOLVED)).one_or_none()


def list_findings(session: Session, communes: Iterable[str] | None = None,
                  status: str | Iterable[str] | None = None, building_id: str | None = None) -> list[FacilityFinding]:
    """Findings, newest first, optionally of some communes, statuses or one building."""
    query = select(FacilityFinding).order_by(FacilityFinding.opened_at.desc(), FacilityFinding.id.desc())
    if communes is not None:
        query = query.where(FacilityFinding.commune.in_(list(communes)))
    if status is not None:
        query = query.where(FacilityFinding.status.in_([status] if isinstance(status, str) else list(status)))
    if building_id is not None:
        query = query.where(FacilityFinding.building_id == building_id)
    return list(session.scalars(query))


def acknowledge_finding(session: Session, finding_id: int, by: str, now: datetime | None = None) -> FacilityFinding:
    """Mark an open finding as being handled by ``by`` (a person or key id); idempotent. Raises
    LookupError for an unknown id. The caller commits."""
    row = session.get(FacilityFinding, finding_id)
    if row is None:
        raise LookupError(f"no finding {finding_id}")
    if row.status == AlertStatus.OPEN:
        row.status = AlertStatus.ACKNOWLEDGED
        row.acknowledged_at = as_utc(now or utcnow())
        row.acknowledged_by = by
    return row
