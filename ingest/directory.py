"""Which meters the registry knows, for the ingestor's "is this one of ours?" check, and which
device a topic level names, for its topic ↔ payload identity check (:mod:`vigie.ingest.identity`).

The meters (id, gateway, wmbusmeters topic name) are read from the relational store and cached.
A miss looks the missing ids up (one indexed query), so a meter registered a moment ago — a replay
registers its meters just before publishing — is accepted at once; the whole set is reloaded at most
once per ``refresh_interval_s`` on a miss, and every ``alias_refresh_s`` anyway (a gateway or topic
name changed on a known meter).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import sessionmaker

from vigie.registry import Meter

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TopicOwner:
    """The registered device a topic level names: a ``meter`` (by its id or its ``topic_name``;
    ``id`` is then the meter id) or a ``gateway`` (``id`` is the gateway id)."""

    kind: Literal["meter", "gateway"]
    id: str


class MeterDirectory:
    """Cache of registered meter ids. ``accept_unknown=True`` (tools, replays) knows every id.

    If the registry cannot be read, the last loaded ids stay in use; before any load succeeded
    every id is accepted (an unreadable database must not turn a whole stream into dead letters),
    with an error logged.
    """

    def __init__(self, sessions: sessionmaker | None, *, accept_unknown: bool = False,
                 refresh_interval_s: float = 5.0, alias_refresh_s: float = 60.0) -> None:
        if sessions is None and not accept_unknown:
            raise ValueError("MeterDirectory needs a sessionmaker unless accept_unknown=True")
        self._sessions = sessions
        self.accept_unknown = accept_unknown
        self.refresh_interval_s = refresh_interval_s
        self.alias_refresh_s = alias_refresh_s
        self._ids: set[str] | None = None
        self._gateway_of: dict[str, str] = {}   # meter id → gateway id
        self._aliases: dict[str, str] = {}      # wmbusmeters topic name → meter id
        self._gateways: set[str] = set()
        #: Bumped whenever the cached gateways or topic names may have changed (caches keyed on it).
        self.generation = 0
        self._loaded_at = float("-inf")
        self._lock = threading.Lock()

    def unknown(self, meter_ids: Iterable[str]) -> list[str]:
        """The ids among ``meter_ids`` the registry does not know (sorted, unique)."""
        if self.accept_unknown:
            return []
        ids = set(meter_ids)
        known = self._ids
        if known is not None and ids <= known:  # the per-message case: no lock (set ops are atomic)
            return []
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

    def topic_owner(self, level: str) -> TopicOwner | None:
        """The registered device ``level`` (one topic level) names: a meter id, a meter's
        ``topic_name``, or a gateway id, in that order; None when it names none (or the directory
        accepts every id)."""
        if self.accept_unknown:
            return None
        with self._lock:
            if self._ids is None:
                self._refresh_if_due()
            if self._ids is None:
                return None
            if level in self._ids:
                return TopicOwner("meter", level)
            if level in self._aliases:
                return TopicOwner("meter", self._aliases[level])
            if level in self._gateways:
                return TopicOwner("gateway", level)
            return None

    def gateway_of(self, meter_id: str) -> str | None:
        """The gateway registered for ``meter_id`` (None: none, or an unknown meter)."""
        return self._gateway_of.get(meter_id)

    def refresh_if_stale(self) -> None:
        """Reload when the last load is older than ``alias_refresh_s`` (a cheap clock check
        otherwise; called per message by the identity check)."""
        if not self.accept_unknown and time.monotonic() - self._loaded_at >= self.alias_refresh_s:
            with self._lock:
                if time.monotonic() - self._loaded_at >= self.alias_refresh_s:
                    self._load()

    def _refresh_if_due(self) -> None:
        if time.monotonic() - self._loaded_at >= self.refresh_interval_s:
            self._load()

    def _lookup(self, ids: set[str]) -> set[str]:
        try:
            with self._sessions() as s:
                rows = s.execute(select(Meter.id, Meter.gateway, Meter.topic_name).where(Meter.id.in_(ids))).all()
        except SQLAlchemyError as exc:
            log.error("registry unreadable: %s", type(exc).__name__)
            return set()
        if rows:  # newly known ids may be topic levels that named nothing before
            self._index(rows)
            self.generation += 1
        return {r[0] for r in rows}

    def _index(self, rows) -> None:
        """Add (id, gateway, topic_name) rows to the gateway and topic-name maps."""
        for meter_id, gateway, topic_name in rows:
            if gateway:
                self._gateway_of[meter_id] = gateway
                self._gateways.add(gateway)
            if topic_name:
                self._aliases[topic_name] = meter_id

    def _load(self) -> None:
        self._loaded_at = time.monotonic()
        try:
            with self._sessions() as s:
                rows = s.execute(select(Meter.id, Meter.gateway, Meter.topic_name)).all()
            self._ids = {r[0] for r in rows}
            self._gateway_of, self._aliases, self._gateways = {}, {}, set()
            self._index(rows)
            self.generation += 1
        except SQLAlchemyError as exc:
            log.error("registry unreadable, %s: %s", "keeping the last known meters" if self._ids is not None
                      else "accepting every meter until it can be read", type(exc).__name__)
