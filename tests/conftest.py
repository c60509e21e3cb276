"""Shared fixtures: private InfluxDB, Mosquitto and SMTP servers on loopback, fresh databases."""

from __future__ import annotations

import itertools
import os
import sys
import threading
import uuid
from email import message_from_bytes, policy
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import services  # noqa: E402

from vigie.store import InfluxStore  # noqa: E402
from vigie.store.influx import RetentionPolicy  # noqa: E402

# The service's default policies beside the raw one (vigie.config: aggregates kept, events 90 days).
TEST_POLICIES = (RetentionPolicy("vigie_aggregates", "INF", "aggregates"),
                 RetentionPolicy("vigie_events", "90d", "events"))

SHARED = Path(__file__).resolve().parents[2] / "shared"
if not SHARED.exists():  # CI clones beside a copy of shared/
    SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.exists():
        pytest.skip(f"../shared not found at {SHARED}")
    return SHARED


@pytest.fixture(scope="session")
def influxd(tmp_path_factory):
    """A private influxd for the whole session (tests that stop it use ``influxd_private``)."""
    svc = services.influxdb(tmp_path_factory.mktemp("influxd")).start()
    services.wait_influx_ready(svc)
    yield svc
    svc.stop()


@pytest.fixture
def influxd_private(tmp_path):
    """An influxd of this test's own, free to stop and restart."""
    svc = services.influxdb(tmp_path / "influxd").start()
    services.wait_influx_ready(svc)
    yield svc
    svc.stop()


_db_counter = itertools.count()


@pytest.fixture
def influx_store(influxd):
    """An :class:`InfluxStore` on a fresh database of the session influxd."""
    store = InfluxStore(services.influx_url(influxd), f"test_{next(_db_counter)}_{uuid.uuid4().hex[:6]}",
                        retention_policy="vigie_raw", policies=TEST_POLICIES)
    store.ensure_database("INF")
    yield store
    store.close()


@pytest.fixture
def embedded_store(tmp_path):
    """An :class:`~vigie.store.embedded.EmbeddedStore` on a fresh SQLite file, laid out as
    ``influx_store`` (raw policy ``vigie_raw`` the default, the aggregates and events ones)."""
    from vigie.store.embedded import EmbeddedStore

    store = EmbeddedStore(tmp_path / "timeseries.sqlite3", f"test_{next(_db_counter)}", retention_policy="vigie_raw",
                          policies=TEST_POLICIES)
    store.ensure_database("INF")
    yield store
    store.close()


@pytest.fixture(params=["influxdb", "embedded"])
def any_store(request):
    """Each store in turn, the contract suite's fixture: ``influx_store`` (the real influxd) and
    ``embedded_store``; a test using it states what both must do."""
    return request.getfixturevalue("influx_store" if request.param == "influxdb" else "embedded_store")


@pytest.fixture
def store_twin():
    """``store_twin(store, **overrides)``: another client of the same InfluxDB server or SQLite
    file as ``store`` (same database and policies unless overridden); closed after the test."""
    from vigie.store.embedded import EmbeddedStore

    made = []

    def make(store, **kw):
        args = {"database": store.database, "retention_policy": store.retention_policy,
                "policies": store.policies, **kw}
        twin = EmbeddedStore(store.path, **args) if isinstance(store, EmbeddedStore) else InfluxStore(store.url, **args)
        made.append(twin)
        return twin

    yield make
    for twin in made:
        twin.close()


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory):
    """A private Mosquitto with the project's configuration for the whole session."""
    svc = services.mosquitto(tmp_path_factory.mktemp("mosquitto")).start()
    yield svc
    svc.stop()


@pytest.fixture(scope="session")
def secured_mosquitto(tmp_path_factory):
    """A private Mosquitto with the project's configuration *including* authentication and ACL, as
    ``deploy/start-services.sh`` runs it: credentials from ``vigie broker credentials`` on an empty
    registry, i.e. the service account and the simulator's test gateway. Yields ``(service,
    passwords by user name)``; users: ``services.SERVICE_USER``, ``services.SIMULATOR_USER``."""
    workdir = tmp_path_factory.mktemp("mosquitto-secured")
    auth = workdir / "auth"
    passwords = services.broker_credentials(auth, f"sqlite:///{workdir / 'registry.db'}")
    svc = services.mosquitto(workdir, auth_dir=auth).start()
    yield svc, passwords
    svc.stop()


@pytest.fixture
def mosquitto_private(tmp_path):
    """A Mosquitto of this test's own, free to stop and restart (persistence in tmp_path)."""
    svc = services.mosquitto(tmp_path / "mosquitto").start()
    yield svc
    svc.stop()


class SmtpSink:
    """A real SMTP server (aiosmtpd) on a free loopback port that keeps every message received."""

    def __init__(self) -> None:
        self.port = services.free_port()
        self.messages = []
        self._lock = threading.Lock()
        sink = self

        class Handler:  # noqa: D401 - aiosmtpd handler protocol
            async def handle_DATA(self, server, session, envelope):
                msg = message_from_bytes(envelope.content, policy=policy.default)
                with sink._lock:
                    sink.messages.append((list(envelope.rcpt_tos), msg))
                return "250 OK"

        self._handler = Handler()
        self._controller = None

    def start(self) -> "SmtpSink":
        from aiosmtpd.controller import Controller

        # A new controller each start: aiosmtpd closes its event loop on stop().
        self._controller = Controller(self._handler, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def to(self, address: str) -> list:
        with self._lock:
            return [m for rcpts, m in self.messages if address in rcpts]


@pytest.fixture
def smtp_server():
    sink = SmtpSink().start()
    yield sink
    sink.stop()


@pytest.fixture(scope="module")
def smtp_sinks():
    """``smtp_sinks()`` starts one more :class:`SmtpSink` (for a module's services that run side by
    side, each with its own); all are stopped after the module."""
    sinks: list[SmtpSink] = []

    def start() -> SmtpSink:
        sinks.append(SmtpSink().start())
        return sinks[-1]

    yield start
    for sink in sinks:
        sink.stop()


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'vigie.db'}"


# PostgreSQL for the tests that prove the production path (trust auth on these machines); each test
# gets a schema of its own, dropped afterwards.
PG_URL = os.environ.get("VIGIE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def create_pg_schema():
    """A throwaway schema on the machine's PostgreSQL: ``(admin engine, schema name, URL whose
    search path is that schema)``; skips the test when PostgreSQL is not reachable. Undo with
    :func:`drop_pg_schema`."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    admin = create_engine(PG_URL)
    schema = f"vigie_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except OperationalError as exc:
        admin.dispose()
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}: {exc.orig}")
    return admin, schema, f"{PG_URL}?options=-csearch_path%3D{schema}"


def drop_pg_schema(admin, schema: str, roles=()) -> None:
    """Drop a schema of :func:`create_pg_schema` with everything in it, then ``roles``."""
    from sqlalchemy import text

    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        for role in roles:
            conn.execute(text(f'DROP ROLE "{role}"'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, sqlite_url):
    """A relational store URL: a SQLite file, then a throwaway PostgreSQL schema."""
    if request.param == "sqlite":
        yield sqlite_url
        return
    admin, schema, url = create_pg_schema()
    yield url
    drop_pg_schema(admin, schema)
