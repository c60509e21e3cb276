"""Weekly time windows in local time: a person's availability, quiet hours, a staff member's duty.

Text form (registry file and database): one or more windows separated by ``;``, each
``[DAYS ]HH:MM-HH:MM``. ``DAYS`` is a comma-separated list of days (``mon`` … ``sun``) or day
ranges (``mon-fri``, ``fri-mon``), or ``daily``; without it the window holds every day. The end is
exclusive; ``24:00`` ends at midnight. A window whose end is not after its start crosses midnight
and belongs to the day it starts on (``fri 22:00-06:00`` covers Friday night into Saturday 06:00).
Times are local wall-clock times of the commune's zone, so a window keeps its hours across DST.

Examples: ``22:00-07:00`` (every night), ``mon-fri 08:00-18:00; sat 09:00-12:00``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WINDOW = re.compile(r"^(?:(?P<days>[a-z,\-]+)\s+)?(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})$")


class WindowError(ValueError):
    """A window text that cannot be parsed; the message quotes it."""


@dataclass(frozen=True, slots=True)
class Window:
    """One window: ``days`` (0 = Monday … 6 = Sunday) on which it starts, ``start``/``end`` in
    minutes after local midnight (``end`` up to 1440; ``end <= start`` crosses midnight)."""

    days: frozenset[int]
    start: int
    end: int

    def contains(self, local: datetime) -> bool:
        """Whether the local wall-clock moment ``local`` falls in the window."""
        minute = local.hour * 60 + local.minute
        day = local.weekday()
        if self.start < self.end:
            return day in self.days and self.start <= minute < self.end
        return (day in self.days and minute >= self.start) or ((day - 1) % 7 in self.days and minute < self.end)


def _minutes(text: str, source: str) -> int:
    hours, minutes = (int(x) for x in text.split(":"))
    if minutes > 59 or hours > 24 or (hours == 24 and minutes):
        raise WindowError(f"{source!r}: {text} is not a time of day")
    return hours * 60 + minutes


def _days(text: str | None, source: str) -> frozenset[int]:
    if text is None or text == "daily":
        return frozenset(range(7))
    out: set[int] = set()
    for part in text.split(","):
        first, _, last = part.partition("-")
        if first not in DAYS or (last and last not in DAYS):
            raise WindowError(f"{source!r}: days must be {', '.join(DAYS)}, ranges like mon-fri, or daily")
        a, b = DAYS.index(first), DAYS.index(last or first)
        out.update((a + i) % 7 for i in range((b - a) % 7 + 1))
    return frozenset(out)


def parse_windows(text: str | list[str] | None) -> tuple[Window, ...]:
    """The windows of ``text`` (a ``;``-separated string, or a list of window strings); empty for
    None or an empty text. Raises :class:`WindowError` naming the faulty text."""
    if text is None:
        return ()
    parts = text if isinstance(text, list) else str(text).split(";")
    windows = []
    for raw in parts:
        item = " ".join(str(raw).strip().lower().split())
        if not item:
            continue
        m = _WINDOW.match(item)
        if m is None:
            raise WindowError(f"{raw!r}: expected '[DAYS ]HH:MM-HH:MM', e.g. 'mon-fri 08:00-18:00'")
        start, end = _minutes(m["start"], str(raw)), _minutes(m["end"], str(raw))
        if start == 1440:
            raise WindowError(f"{raw!r}: a window cannot start at 24:00")
        windows.append(Window(_days(m["days"], str(raw)), start, end))
    return tuple(windows)


def normalise(text: str | list[str] | None) -> str | None:
    """``text`` checked and stored as one ``;``-separated string (None when it holds no window)."""
    windows = parse_windows(text)
    if not windows:
        return None
    parts = text if isinstance(text, list) else str(text).split(";")
    return "; ".join(" ".join(str(p).strip().lower().split()) for p in parts if str(p).strip())


def within(text: str | None, local: datetime) -> bool:
    """Whether ``local`` falls in any window of ``text`` (False when there is none)."""
    return any(w.contains(local) for w in parse_windows(text))
