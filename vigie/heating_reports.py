"""Weekly heating report per building: energy, energy per degree-day, waste found, open faults.

Made by the scheduler every Monday for the week before (local time), persisted, served by the API.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, Date, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from vigie.alerts.models import utcnow
from vigie.db import Base, UTCDateTime


class HeatingReport(Base):
    """One building's report of one week (``week_start``: the local Monday). ``body``: the
    report as :meth:`WeeklyReport.to_dict` gives it."""

    __tablename__ = "heating_reports"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    building_id: Mapped[str] = mapped_column(String(64))
    commune: Mapped[str] = mapped_column(String(64), index=True)
    week_start: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    body: Mapped[dict] = mapped_column(JSON)

    __table_args__ = (UniqueConstraint("building_id", "week_start", name="uq_heating_report_week"),)
