"""Which meters the registry knows, for the ingestor's "is this one of ours?" check.

The ids are read from the relational store (:func:`vigie.registry.known_meter_ids`) and cached.
A miss looks the missing ids up (one indexed query), so a meter registered a moment ago — a replay
registers its meters just before publishing — is accepted at once; the whole set is reloaded at most
once per ``refresh_interval_s``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import sessionmaker

from vigie.registry import Meter, known_meter_ids

log = logging.getLogger(__name__)


class MeterDirectory:
    """Cache of registered meter ids. ``accept_unknown=True`` (tools, replays) knows every id.

    If the registry cannot be read, the last loaded ids stay in use; before any load succeeded
    every id is accepted (an unreadable database must not turn a whole stream into dead letters),
    with an error logged.
    """

    def __init__(self, sessions: sessionmaker | None, *, accept_unknown: bool = False,
                 refresh_interval_s: float = 5.0) -> None:
        if sessions is None and not accept_unknown:
            raise ValueError("MeterDirectory needs a sessionmaker unless accept_unknown=True")
        self._sessions = sessions
        self.accept_unknown = accept_unknown
        self.refresh_interval_s = refresh_interval_s
        self._ids: set[str] | None = None
        self._loaded_at = float("-inf")
        self._lock = threading.Lock()

    def unknown(self, meter_ids: Iterable[str]) -> list[str]:
        """The ids among ``meter_ids`` the registry does not know (sorted, unique)."""
        if self.accept_unknown:
            return []
        ids = set(meter_ids)
        with self._lock:
            if self._ids is None or not ids <= self._ids:
                self._refresh_if_due()
            if self._ids is None:
                return []
            missing = ids - self._ids
            if missing:
                self._ids |= self._lookup(missing)
                missing -= self._ids
            return sorted(missing)

    def refresh(self) -> None:
        """Reload the ids now."""
        with self._lock:
            self._load()

    def _refresh_if_due(self) -> None:
        if time.monotonic() - self._loaded_at >= self.refresh_interval_s:
            self._load()

    def _lookup(self, ids: set[str]) -> set[str]:
        try:
            with self._sessions() as s:
                return set(s.scalars(select(Meter.id).where(Meter.id.in_(ids))))
        except SQLAlchemyError as exc:
            log.error("registry unreadable: %s", type(exc).__name__)
            return set()

    def _load(self) -> None:
        self._loaded_at = time.monotonic()
        try:
            with self._sessions() as s:
                self._ids = known_meter_ids(s)
        except SQLAlchemyError as exc:
            log.error("registry unreadable, %s: %s", "keeping the last known meters" if self._ids is not None
                      else "accepting every meter until it can be read", type(exc).__name__)
