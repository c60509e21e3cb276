"""Staff digests: the findings not yet announced, grouped into one message per commune.

Staff asked for a grouped digest rather than one message per radiator (issue 5; alerting tools
group too: Alertmanager's default group interval is 5 minutes). :meth:`DigestBuilder.queue` takes,
per commune, every open :class:`~vigie.alerts.findings.FacilityFinding` that no digest announced
yet, records a :class:`StaffDigest` that owns them, and queues one
:class:`~vigie.alerts.models.Notification` (``digest_id``) per staff member of the commune
(``staff:`` in the registry, ``persons.staff_commune``), which the delivery stage sends and retries
like any other. A digest is not urgent and holds no personal data: it goes to every staff member of
the commune whatever their duty hours. The message (:func:`vigie.alerts.messages.render_digest`)
lists the new findings and recalls the ones still open.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Integer, String, select
from sqlalchemy.orm import Mapped, mapped_column, sessionmaker

from vigie.alerts.findings import FacilityFinding
from vigie.alerts.models import AlertStatus, Notification, NotificationReason, utcnow
from vigie.alerts.router import as_utc
from vigie.db import Base, UTCDateTime
from vigie.registry import Person

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


class StaffDigest(Base):
    """One digest for one commune: ``new_count`` findings it announced, ``open_count`` findings
    open or acknowledged when it was made, ``notified`` staff members it was queued for."""

    __tablename__ = "staff_digests"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    commune: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    new_count: Mapped[int] = mapped_column(Integer, default=0)
    open_count: Mapped[int] = mapped_column(Integer, default=0)
    notified: Mapped[int] = mapped_column(Integer, default=0)


class DigestBuilder:
    """Queues the digests due (see the module docstring)."""

    def __init__(self, sessions: sessionmaker, clock: Clock = utcnow) -> None:
        self._sessions = sessions
        self._clock = clock

    def queue(self, now: datetime | None = None) -> list[int]:
        """One digest per commune that has open findings no digest announced; returns the new
        digests' ids (empty: nothing new). A commune without staff gets its digest recorded (the
        API shows it) and a warning in the log, since nobody can be told."""
        now = as_utc(now or self._clock())
        made: list[int] = []
        with self._sessions() as session:
            pending = session.scalars(select(FacilityFinding).where(
                FacilityFinding.digest_id.is_(None), FacilityFinding.status == AlertStatus.OPEN)
                .with_for_update()).all()
            by_commune: dict[str, list[FacilityFinding]] = {}
            for row in pending:
                by_commune.setdefault(row.commune, []).append(row)
            for commune, rows in sorted(by_commune.items()):
                open_count = len(session.scalars(select(FacilityFinding.id).where(
                    FacilityFinding.commune == commune, FacilityFinding.status != AlertStatus.RESOLVED)).all())
                staff = session.scalars(select(Person.id).where(Person.staff_commune == commune)
                                        .order_by(Person.id)).all()
                digest = StaffDigest(commune=commune, created_at=now, new_count=len(rows), open_count=open_count,
                                     notified=len(staff))
                session.add(digest)
                session.flush()
                for row in rows:
                    row.digest_id = digest.id
                for person_id in staff:
                    session.add(Notification(digest_id=digest.id, person_id=person_id,
                                             reason=NotificationReason.DIGEST, next_attempt_at=now, created_at=now))
                if not staff:
                    log.warning("staff digest %d (commune %s): the commune has no staff in the registry; "
                                "%d finding(s) recorded, nobody told", digest.id, commune, len(rows))
                else:
                    log.info("staff digest %d (commune %s): %d new finding(s), %d open, queued for %d staff",
                             digest.id, commune, len(rows), open_count, len(staff))
                made.append(digest.id)
            session.commit()
        return made


def digest_findings(session, digest: StaffDigest) -> tuple[list[FacilityFinding], list[FacilityFinding]]:
    """The findings a digest announced, and the other findings of its commune still open (not
    resolved) now, both in a stable order (building, subject, kind)."""
    order = (FacilityFinding.family, FacilityFinding.label, FacilityFinding.subject, FacilityFinding.kind)
    new = list(session.scalars(select(FacilityFinding).where(FacilityFinding.digest_id == digest.id).order_by(*order)))
    still_open = list(session.scalars(select(FacilityFinding).where(
        FacilityFinding.commune == digest.commune, FacilityFinding.status != AlertStatus.RESOLVED,
        FacilityFinding.digest_id != digest.id).order_by(*order)))
    return new, still_open
