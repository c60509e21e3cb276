"""Schema migrations of the relational store (Alembic): bring any Vigie database to the current schema.

:func:`upgrade` is what :func:`vigie.db.make_engine` runs at every start. The revisions live in
``versions/`` beside this file (shipped in the wheel); ``env.py`` is Alembic's environment, and
``alembic.ini`` serves the ``alembic`` command for writing new revisions (docs/schema.md).

Three kinds of database are brought to head:

- an empty one: every revision runs from the baseline;
- one Alembic already manages: the missing revisions run; one already at head costs one query;
- one created before migrations existed (``create_all``, no ``alembic_version`` table but the
  baseline tables present): it is stamped at the :data:`BASELINE` revision first, and the next
  revision creates only the tables, columns and indexes that are missing, so a database made by
  any earlier version of Vigie, up to the one just before migrations, upgrades the same way.

Several processes may start at once on one database (service, CLI, ingest workers): the
migration runs under a lock, ``BEGIN IMMEDIATE`` on SQLite, a transaction-scoped advisory lock on
PostgreSQL, and in one transaction, so the second process waits, then finds the schema at head.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, inspect, text

log = logging.getLogger(__name__)

#: The revision that creates the schema of Vigie before migrations (git commit 8641b3b).
BASELINE = "0001_baseline"
#: The tables :data:`BASELINE` creates: a database without ``alembic_version`` that holds them was
#: made by ``create_all`` and is stamped at the baseline.
BASELINE_TABLES = frozenset({"households", "persons", "household_residents", "meters", "alerts",
                             "notifications", "delivery_attempts"})
#: Alembic's table of the applied revision (its default name).
VERSION_TABLE = "alembic_version"
# Key of the PostgreSQL advisory lock that serializes migrations ("vigie" in ASCII, any constant would do).
_PG_LOCK_KEY = 0x7669676965


class SchemaVersionError(RuntimeError):
    """The database cannot be brought to this version's schema: it is at a revision this version
    does not know (written by a newer Vigie), or it holds part of the baseline tables only."""


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic configuration for the packaged revisions; with ``connection``, ``env.py`` runs
    the migrations on it (inside the caller's transaction) instead of opening its own."""
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@cache
def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head() -> str:
    """The newest revision id this version of Vigie knows."""
    return _script().get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, None when Alembic has never touched it (empty or pre-migration)."""
    # Read directly rather than through a MigrationContext, which logs at INFO: this runs at every start.
    with engine.connect() as conn:
        if not inspect(conn).has_table(VERSION_TABLE):
            return None
        return conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar_one_or_none()


def upgrade(engine: Engine) -> str:
    """Bring the database of ``engine`` to :func:`head` and return it (see the module docstring).

    Raises :class:`SchemaVersionError` as documented there; a failing revision rolls back whole
    (both dialects have transactional DDL) and its error propagates.
    """
    target = head()
    if current_revision(engine) == target:
        return target
    with migration_connection(engine) as conn:
        current = MigrationContext.configure(conn).get_current_revision()
        if current is None:
            _stamp_if_created_without_migrations(conn)
        elif current != target and not _known(current):
            raise SchemaVersionError(f"the database is at schema revision {current}, which this version of "
                                     f"Vigie does not know (its newest is {target}): was it upgraded by a newer Vigie?")
        command.upgrade(alembic_config(conn), "head")
    return target


def _known(revision: str) -> bool:
    try:
        return _script().get_revision(revision) is not None
    except CommandError:   # what Alembic raises for an id it cannot resolve
        return False


def _stamp_if_created_without_migrations(conn: Connection) -> None:
    present = BASELINE_TABLES & set(inspect(conn).get_table_names())
    if not present:
        return
    if present != BASELINE_TABLES:
        raise SchemaVersionError("the database has some of Vigie's tables but not all those of its first schema "
                                 f"(missing: {', '.join(sorted(BASELINE_TABLES - present))}); refusing to migrate it")
    log.info("relational store created before migrations: stamping it at revision %s", BASELINE)
    command.stamp(alembic_config(conn), BASELINE)


@contextmanager
def migration_connection(engine: Engine) -> Iterator[Connection]:
    """A connection inside one transaction that no other migrating process can enter at the same
    time, committed when the block ends, rolled back if it raises. Every migration runs in one
    (``env.py`` opens one for the ``alembic`` command too)."""
    if engine.dialect.name == "sqlite":
        # pysqlite does not open a transaction before DDL by itself: drive the transaction by hand,
        # IMMEDIATE so it takes the write lock first (others wait on the busy timeout). Foreign keys
        # go off while tables are rebuilt (batch migrations drop and rename them), as SQLite
        # requires; the pragma is a no-op inside a transaction, so it is set before BEGIN.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    conn.exec_driver_sql("ROLLBACK")
                    raise
                conn.exec_driver_sql("COMMIT")
            finally:
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")
        return
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        yield conn
