"""The PostgreSQL roles of docker-compose.yml on a real server: ``deploy/postgres/initdb`` (run by the
postgres image on its first start) creates Vigie's role, owner of its database, and Grafana's; Vigie's
migrations then run as that role without superuser rights, and ``deploy/postgres/grafana-grants.sql``
lets Grafana read the alert and finding tables its panels need and nothing else. Runs against the
machine's PostgreSQL (``VIGIE_TEST_PG_URL``, as the store tests) with roles and a database of its
own, dropped afterwards."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, ProgrammingError

from conftest import PG_URL

ROOT = Path(__file__).resolve().parents[1]
GRAFANA_TABLES = ("home_alerts", "home_alert_steps", "facility_findings")
PRIVATE_TABLES = ("persons", "households", "api_keys", "audit_log", "meters", "alerts")


@pytest.fixture
def cluster():
    """Names of a throwaway Vigie database and its roles; dropped afterwards."""
    if not shutil.which("psql"):
        pytest.skip("psql not installed")
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        admin.connect().close()
    except OperationalError as exc:
        admin.dispose()
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}: {exc.orig}")
    tag = uuid.uuid4().hex[:10]
    names = {"vigie": f"vigie_{tag}", "db": f"vigie_{tag}", "grafana": f"grafana_{tag}", "other": f"other_{tag}"}
    yield names
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{names["db"]}" WITH (FORCE)'))
        for role in (names["vigie"], names["grafana"], names["other"]):
            conn.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
    admin.dispose()


def url_as(role: str, database: str) -> str:
    base = make_url(PG_URL)
    return base.set(username=role, password="pw", database=database).render_as_string(hide_password=False)


def psql_env() -> dict[str, str]:
    base = make_url(PG_URL)
    return {**os.environ, "PGHOST": base.host or "127.0.0.1", "PGPORT": str(base.port or 5432)}


def test_roles_migrations_and_grafana_grants(cluster):
    env = {**psql_env(), "POSTGRES_USER": make_url(PG_URL).username or "postgres", "POSTGRES_DB": "postgres",
           "POSTGRES_VIGIE_USER": cluster["vigie"], "POSTGRES_VIGIE_DB": cluster["db"],
           "POSTGRES_VIGIE_PASSWORD": "pw", "GRAFANA_DB_USER": cluster["grafana"], "GRAFANA_DB_PASSWORD": "pw"}
    init = subprocess.run([str(ROOT / "deploy/postgres/initdb/10-vigie-roles.sh")], env=env, capture_output=True,
                          text=True, timeout=60)
    assert init.returncode == 0, init.stderr

    # Vigie's migrations, as its own role: no superuser needed.
    vigie_env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIE_")}
    vigie_env["VIGIE_DATABASE_URL"] = url_as(cluster["vigie"], cluster["db"])
    upgrade = subprocess.run([sys.executable, "-m", "vigie.cli", "db", "upgrade"], env=vigie_env,
                             capture_output=True, text=True, timeout=120, cwd=ROOT / "tests")
    assert upgrade.returncode == 0, upgrade.stderr

    # The grafana-grants one-shot's command, as Vigie's role.
    grants = subprocess.run(["psql", "-v", "ON_ERROR_STOP=1", "-v", f"grafana_role={cluster['grafana']}",
                             "-U", cluster["vigie"], "-d", cluster["db"],
                             "-f", str(ROOT / "deploy/postgres/grafana-grants.sql")],
                            env=psql_env(), capture_output=True, text=True, timeout=60)
    assert grants.returncode == 0, grants.stderr

    grafana = create_engine(url_as(cluster["grafana"], cluster["db"]))
    try:
        with grafana.connect() as conn:
            for table in GRAFANA_TABLES:
                assert conn.execute(text(f"SELECT count(*) FROM {table}")).scalar() == 0
        for table in PRIVATE_TABLES:
            with grafana.connect() as conn, pytest.raises(ProgrammingError, match="permission denied"):
                conn.execute(text(f"SELECT count(*) FROM {table}"))
        with grafana.connect() as conn, pytest.raises(ProgrammingError, match="permission denied"):
            conn.execute(text("DELETE FROM home_alerts"))
    finally:
        grafana.dispose()

    # Nobody else may even connect to Vigie's database.
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE ROLE "{cluster["other"]}" LOGIN'))
    admin.dispose()
    other = create_engine(url_as(cluster["other"], cluster["db"]))
    with pytest.raises(OperationalError, match="permission denied for database"):
        other.connect()
    other.dispose()
