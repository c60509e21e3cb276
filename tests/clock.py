"""A settable clock for the alert router and delivery tests (their ``clock`` parameter)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone


class FakeClock:
    """Starts at the daily J+1 run for 2026-03-14: 06:00 Paris (05:00 UTC in March) the day after."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 15, 5, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def run_for(self, day: date) -> None:
        """The moment of the daily run that checks ``day``."""
        self.now = datetime(day.year, day.month, day.day, 5, 0, tzinfo=timezone.utc) + timedelta(days=1)
