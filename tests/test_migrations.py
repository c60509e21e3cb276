"""Schema migrations (vigie.migrations) on real SQLite files and a real PostgreSQL (a fresh schema per test).

The old databases are written by the baseline revision itself (or by ``create_all`` of today's
models, as every version before migrations did), never by importing old code.
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import date, datetime, timezone

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.exc import IntegrityError

from vigie.alerts.models import Alert
from vigie.db import Base, import_models, make_engine, make_sessionmaker
from vigie.migrations import (BASELINE, BASELINE_TABLES, VERSION_TABLE, SchemaVersionError, alembic_config,
                              current_revision, head, migration_connection)
from vigie.registry import CaregiverLink, Household, Meter, residents_of_meter

T0 = datetime(2026, 3, 14, 7, 0, tzinfo=timezone.utc)


@pytest.fixture
def plain(db_url):
    """An engine on the test database that migrates nothing by itself."""
    engine = create_engine(db_url)
    yield engine
    engine.dispose()


def _differences(engine: Engine) -> list:
    import_models()
    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn), Base.metadata)


def _upgrade_plain(engine: Engine, revision: str) -> None:
    with migration_connection(engine) as conn:
        command.upgrade(alembic_config(conn), revision)


def _insert_baseline_rows(engine: Engine) -> None:
    """A household with a meter and a resident, an open alert with a sent notification: rows as
    the baseline's code wrote them (raw SQL on the baseline's columns only)."""
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO households (id, address) VALUES ('h-1', '3 rue Exemple')"))
        conn.execute(text("INSERT INTO persons (id, name, email, language, channels) "
                          "VALUES ('p-1', 'Marie', 'marie@example.org', 'fr', '')"))
        conn.execute(text("INSERT INTO household_residents (household_id, person_id) VALUES ('h-1', 'p-1')"))
        conn.execute(text("INSERT INTO meters (id, household_id, driver) VALUES ('M1', 'h-1', 'izar')"))
        conn.execute(text(
            "INSERT INTO alerts (id, meter_id, household_id, kind, status, first_day, last_day, detail, opened_at) "
            "VALUES (1, 'M1', 'h-1', 'continuous_flow', 'open', :d, :d, '', :t)"), {"d": date(2026, 3, 13), "t": T0})
        conn.execute(text(
            "INSERT INTO notifications (id, alert_id, person_id, reason, status, attempts, next_attempt_at, "
            "created_at, sent_at) VALUES (1, 1, 'p-1', 'opened', 'sent', 1, :t, :t, :t)"), {"t": T0})
        conn.execute(text("INSERT INTO delivery_attempts (notification_id, at, channel, outcome) "
                          "VALUES (1, :t, 'mailto', 'sent')"), {"t": T0})


def _check_baseline_rows_survive(engine: Engine) -> None:
    with make_sessionmaker(engine)() as s:
        hh = s.get(Household, "h-1")
        assert hh.address == "3 rue Exemple" and hh.commune == "default"
        meter = s.get(Meter, "M1")
        assert (meter.household_id, meter.driver, meter.gateway, meter.topic_name) == ("h-1", "izar", None, None)
        assert [p.email for p in residents_of_meter(s, "M1")] == ["marie@example.org"]
        alert = s.get(Alert, 1)
        assert (alert.status, alert.opened_at) == ("open", T0)
        assert [(n.status, [a.channel for a in n.attempts_log]) for n in alert.notifications] == [("sent", ["mailto"])]
        # The new tables are usable at once.
        s.add(CaregiverLink(household_id="h-1", person_id="p-1", relation="son", history_granted=False))
        s.commit()


def test_upgrade_from_empty_gives_the_models_schema(db_url):
    engine = make_engine(db_url)
    assert current_revision(engine) == head()
    assert _differences(engine) == []
    # The partial unique index: one unresolved alert per (meter, kind), any number resolved.
    row = {"m": "M1", "d": date(2026, 3, 13), "t": T0}
    insert = ("INSERT INTO alerts (meter_id, kind, status, first_day, last_day, detail, opened_at) "
              "VALUES (:m, 'continuous_flow', :status, :d, :d, '', :t)")
    with engine.begin() as conn:
        conn.execute(text(insert), {**row, "status": "resolved"})
        conn.execute(text(insert), {**row, "status": "open"})
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text(insert), {**row, "status": "acknowledged"})
    engine.dispose()


def test_baseline_database_with_rows_upgrades_to_head_keeping_them(db_url, plain):
    _upgrade_plain(plain, BASELINE)
    assert set(inspect(plain).get_table_names()) == BASELINE_TABLES | {VERSION_TABLE}
    _insert_baseline_rows(plain)

    engine = make_engine(db_url)
    assert current_revision(engine) == head()
    assert _differences(engine) == []
    _check_baseline_rows_survive(engine)
    engine.dispose()


def _pre_migration_baseline(engine: Engine) -> None:
    _upgrade_plain(engine, BASELINE)
    with engine.begin() as conn:
        conn.execute(text(f"DROP TABLE {VERSION_TABLE}"))


def _pre_migration_without_home_sensors(engine: Engine) -> None:
    import_models()
    Base.metadata.create_all(engine, tables=[t for t in Base.metadata.sorted_tables if t.name != "home_sensors"])


def _pre_migration_current(engine: Engine) -> None:
    import_models()
    Base.metadata.create_all(engine)


@pytest.mark.parametrize("make_old", [_pre_migration_baseline, _pre_migration_without_home_sensors,
                                      _pre_migration_current],
                         ids=["baseline", "before-home-sensors", "just-before-migrations"])
def test_database_created_before_migrations_is_stamped_and_upgraded(db_url, plain, make_old):
    make_old(plain)
    assert current_revision(plain) is None
    with plain.begin() as conn:
        conn.execute(text("INSERT INTO households (id) VALUES ('h-1')" if make_old is _pre_migration_baseline
                          else "INSERT INTO households (id, commune) VALUES ('h-1', 'default')"))
        conn.execute(text("INSERT INTO meters (id, household_id) VALUES ('M1', 'h-1')"))

    engine = make_engine(db_url)
    assert current_revision(engine) == head()
    assert _differences(engine) == []
    with make_sessionmaker(engine)() as s:
        assert (s.get(Household, "h-1").commune, s.get(Meter, "M1").household_id) == ("default", "h-1")
    engine.dispose()


def test_second_start_on_a_current_database_only_reads(db_url):
    make_engine(db_url).dispose()
    statements: list[str] = []

    def record(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        engine = make_engine(db_url)
    finally:
        event.remove(Engine, "before_cursor_execute", record)
    assert any(VERSION_TABLE in s for s in statements)
    writes = [s for s in statements if not s.lstrip().upper().startswith(("SELECT", "PRAGMA", "SHOW"))]
    assert writes == []
    assert current_revision(engine) == head()
    engine.dispose()


def test_concurrent_starts_on_a_new_database_all_succeed(db_url, plain):
    # Each process imports first, then all call make_engine at the same instant.
    start_at = time.time() + 3.0
    code = ("import sys, time; from vigie.db import make_engine; "
            "time.sleep(max(0.0, float(sys.argv[2]) - time.time())); make_engine(sys.argv[1]).dispose()")
    procs = [subprocess.Popen([sys.executable, "-c", code, db_url, str(start_at)], stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    errors = [p.communicate(timeout=60)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, errors
    assert current_revision(plain) == head()
    assert _differences(plain) == []


def test_downgrade_to_baseline_and_back_keeps_the_registry(sqlite_url):
    engine = make_engine(sqlite_url)
    _insert_baseline_rows(engine)
    with migration_connection(engine) as conn:
        command.downgrade(alembic_config(conn), BASELINE)
    assert set(inspect(engine).get_table_names()) == BASELINE_TABLES | {VERSION_TABLE}
    assert "commune" not in {c["name"] for c in inspect(engine).get_columns("households")}
    with engine.connect() as conn:   # SQLite rebuilt households: its residents were not cascaded away
        assert conn.execute(text("SELECT count(*) FROM household_residents")).scalar() == 1
    engine.dispose()

    engine = make_engine(sqlite_url)
    assert _differences(engine) == []
    _check_baseline_rows_survive(engine)
    engine.dispose()


def test_a_partial_old_schema_is_refused_untouched(plain, db_url):
    with plain.begin() as conn:
        conn.execute(text("CREATE TABLE households (id VARCHAR(64) PRIMARY KEY)"))
    with pytest.raises(SchemaVersionError, match="missing: alerts, delivery_attempts"):
        make_engine(db_url)
    assert set(inspect(plain).get_table_names()) == {"households"}


def test_a_revision_from_a_newer_version_is_refused(plain, db_url):
    make_engine(db_url).dispose()
    with plain.begin() as conn:
        conn.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = '9999_from_the_future'"))
    with pytest.raises(SchemaVersionError, match="9999_from_the_future"):
        make_engine(db_url)
