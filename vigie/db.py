"""Relational store for registry and alert state: SQLAlchemy 2, SQLite by default, PostgreSQL by URL."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import DateTime, Engine, create_engine, event
from sqlalchemy.types import TypeDecorator
from sqlalchemy.orm import DeclarativeBase, sessionmaker


class Base(DeclarativeBase):
    """Declarative base of every Vigie table."""


class UTCDateTime(TypeDecorator):
    """A timestamp stored in UTC and always read back timezone-aware (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value: datetime | None, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def import_models() -> None:
    """Import every module that defines tables, so ``Base.metadata`` holds the whole schema."""
    import vigie.registry  # noqa: F401
    import vigie.alerts.models  # noqa: F401
    import vigie.alerts.digest  # noqa: F401
    import vigie.alerts.findings  # noqa: F401
    import vigie.heating_reports  # noqa: F401
    import vigie.alerts.acklinks  # noqa: F401
    import vigie.audit  # noqa: F401
    import vigie.auth  # noqa: F401
    import vigie.sensors  # noqa: F401
    import vigie.heating_registry  # noqa: F401


def make_engine(url: str) -> Engine:
    """An engine for ``url`` with the database migrated to the current schema
    (:func:`vigie.migrations.upgrade`: created if empty, upgraded if older; raises
    :class:`vigie.migrations.SchemaVersionError` for a database it cannot upgrade). SQLite gets
    WAL and a busy timeout so the ingestor, scheduler and API can share one file."""
    kwargs: dict = {"future": True}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
    engine = create_engine(url, **kwargs)
    if url.startswith("sqlite"):
        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()
    from vigie.migrations import upgrade

    import_models()
    upgrade(engine)
    return engine


def make_sessionmaker(engine: Engine) -> sessionmaker:
    return sessionmaker(engine, expire_on_commit=False)
