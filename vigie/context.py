"""The wiring every command needs: settings, the time-series store (InfluxDB, or the embedded one:
:func:`vigie.store.store_for`), the relational store."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker

from vigie.config import Settings, get_settings
from vigie.db import make_engine, make_sessionmaker
from vigie.store import StoreUnavailable, TimeSeriesStore, store_for

log = logging.getLogger(__name__)


@dataclass
class AppContext:
    settings: Settings
    store: TimeSeriesStore
    engine: Engine
    sessions: sessionmaker

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.settings.timezone)

    @classmethod
    def create(cls, settings: Settings | None = None, *, ensure_influx: bool = True) -> "AppContext":
        """Connect to both stores; creates the InfluxDB database and retention policy and the
        relational tables if missing, and loads ``settings.registry_file`` when set."""
        settings = settings or get_settings()
        store = store_for(settings)
        if ensure_influx:
            try:
                store.ensure_database(settings.influx_retention_duration)
            except StoreUnavailable as exc:
                # The ingestor spools to disk and creates the database once InfluxDB is back.
                log.warning("InfluxDB unavailable at start (%s); continuing", exc)
        engine = make_engine(settings.database_url)
        ctx = cls(settings, store, engine, make_sessionmaker(engine))
        if settings.registry_file:
            from vigie.registry import load_registry_file

            with ctx.sessions() as s:
                counts = load_registry_file(s, settings.registry_file, default_commune=settings.commune)
            log.info("registry loaded: %s", counts)
        return ctx

    def close(self) -> None:
        self.store.close()
        self.engine.dispose()
