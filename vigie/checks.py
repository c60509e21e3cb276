"""``vigie check``: is every dependency of the service reachable and usable as configured?

Each check talks to the real thing with the configured settings and credentials, changes nothing
and sends nothing, and gives a :class:`Check`: ``ok``, ``warn`` (works, but something will bite),
``fail`` (a part of the service cannot work), or ``skip`` (not configured), with a ``fix`` to apply.

- ``config``: the settings were read; ``VIGIE_*`` variables that name no setting (misspellings,
  silently ignored otherwise).
- ``database``: the relational store answers; its schema revision against this version's.
- ``registry``: ``VIGIE_REGISTRY_FILE`` parses and loads (into a scratch database, not the real
  one); what the registry holds; obvious inconsistencies (meters nobody can be told about,
  addresses without ``VIGIE_SMTP_URL``, devices whose topics no ingest setting subscribes to).
- ``broker``: CONNECT with the ingestor's credentials (``VIGIE_MQTT_USERNAME``), then SUBSCRIBE
  to each configured topic filter (without the shared-subscription prefix, so no message is taken
  from a running ingestor): a broker whose ACL refuses subscriptions says so in its SUBACK. (Mosquitto's
  ``acl_file`` accepts every subscription and filters at delivery instead: there the read rights
  cannot be seen without a message; ``vigie broker credentials`` writes them.) ``broker-simulator``:
  CONNECT with the simulator's credentials when they are set.
- ``store``: InfluxDB ``/ping``, authentication, the database, its retention policies, and write
  permission (an empty ``/write``: InfluxDB checks the permission and writes nothing).
- ``smtp``: the server of ``VIGIE_SMTP_URL`` as Apprise reads it: connect, EHLO, STARTTLS or
  implicit TLS as configured, and LOGIN when the URL has credentials; QUIT before any MAIL.
- ``channels``: every Apprise URL of the registry's persons loads; their servers accept a TCP
  connection. URLs carry tokens and numbers: only schemes, counts and person ids are shown.
- ``data-dir``: ``VIGIE_DATA_DIR`` (spool, dead letters) is writable; free space.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import shutil
import smtplib
import socket
import ssl
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from urllib.parse import unquote, urlsplit

from vigie.logs import redact

#: Seconds each network step waits at most.
DEFAULT_TIMEOUT_S = 5.0
#: At most this many distinct channel servers are tried (each may take the timeout).
MAX_CHANNEL_ENDPOINTS = 20
#: Free space under which ``data-dir`` warns, bytes (the spool grows during an InfluxDB outage).
LOW_DISK_BYTES = 500 * 2**20


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True)
class Check:
    """The outcome of one check: ``name`` (``broker``, ``store``…), ``status``, ``detail`` (what was
    found, one line), ``fix`` (what to do, empty when nothing), ``seconds`` it took."""

    name: str
    status: Status
    detail: str
    fix: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["status"] = str(self.status)
        d["seconds"] = round(self.seconds, 3)
        return d


@dataclass(frozen=True)
class CheckReport:
    """Every check, in the order run. ``ok``: none failed (warnings allowed)."""

    checks: list[Check]

    @property
    def ok(self) -> bool:
        return all(c.status != Status.FAIL for c in self.checks)

    def to_dict(self) -> dict:
        return {"ok": self.ok, "checks": [c.to_dict() for c in self.checks]}


#: Check names, in the order :func:`run_checks` runs them.
CHECKS = ("config", "database", "registry", "broker", "broker-simulator", "store", "smtp", "channels", "data-dir")


def run_checks(settings, *, only: set[str] | None = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> CheckReport:
    """Run the checks of :data:`CHECKS` (``only``: those named) against ``settings``; never raises:
    an unexpected error is that check's ``fail``. ValueError for an unknown name in ``only``."""
    unknown = (only or set()) - set(CHECKS)
    if unknown:
        raise ValueError(f"unknown check(s) {', '.join(sorted(unknown))}; known: {', '.join(CHECKS)}")
    steps: dict[str, Callable[[], Check | None]] = {
        "config": lambda: check_config(settings),
        "database": lambda: check_database(settings),
        "registry": lambda: check_registry(settings),
        "broker": lambda: check_broker(settings, timeout_s),
        "broker-simulator": lambda: check_broker_simulator(settings, timeout_s),
        "store": lambda: check_store(settings, timeout_s),
        "smtp": lambda: check_smtp(settings, timeout_s),
        "channels": lambda: check_channels(settings, timeout_s),
        "data-dir": lambda: check_data_dir(settings),
    }
    out = []
    for name in CHECKS:
        if only and name not in only:
            continue
        t0 = time.monotonic()
        try:
            found = steps[name]()
        except Exception as exc:  # a check must report, not crash the others
            found = Check(name, Status.FAIL, f"unexpected {type(exc).__name__}: {redact(str(exc))[:300]}",
                          "report this as a bug with the command's output")
        if found is not None:
            out.append(Check(found.name, found.status, found.detail, found.fix, time.monotonic() - t0))
    return CheckReport(out)


# --- config ------------------------------------------------------------------------------------
#: ``VIGIE_*`` variables that are not settings but are read by name elsewhere.
_NOT_SETTINGS = {"VIGIE_CONFIG"}


def check_config(settings) -> Check:
    """Settings were read (else the caller reports their errors); ``VIGIE_*`` names in the
    environment or ``.env`` that are no setting."""
    import difflib

    known = {f"VIGIE_{n.upper()}" for n in type(settings).model_fields} | _NOT_SETTINGS
    given = {k.upper(): "environment" for k in os.environ if k.upper().startswith("VIGIE_")}
    try:
        from dotenv import dotenv_values

        given.update({k.upper(): ".env" for k in dotenv_values(".env") if k.upper().startswith("VIGIE_")
                      and k.upper() not in given})
    except Exception:  # no readable .env
        pass
    unknown = sorted(k for k in given if k not in known and not k.startswith("VIGIE_TEST_"))
    sources = ", ".join(sorted(set(given.values())) + ([f"VIGIE_CONFIG file {os.environ['VIGIE_CONFIG']}"]
                                                      if os.environ.get("VIGIE_CONFIG") else []))
    detail = f"settings read ({sources or 'defaults only'})"
    if not unknown:
        return Check("config", Status.OK, detail)
    names = []
    for k in unknown:
        close = difflib.get_close_matches(k, sorted(known), n=1, cutoff=0.8)
        names.append(f"{k} in {given[k]}" + (f" (did you mean {close[0]}?)" if close else ""))
    return Check("config", Status.WARN, f"{detail}; ignored, no such setting: {'; '.join(names)}",
                 "rename or remove them (settings: docs/configuration.md)")


# --- relational database -------------------------------------------------------------------------
def _plain_engine(url: str):
    """An engine that neither creates nor migrates anything (unlike :func:`vigie.db.make_engine`)."""
    from sqlalchemy import create_engine

    kwargs = {"connect_args": {"timeout": 5}} if url.startswith("sqlite") else {"connect_args": {"connect_timeout": 5}} \
        if url.startswith("postgresql") else {}
    return create_engine(url, **kwargs)


def _missing_sqlite_file(url: str) -> bool:
    """A SQLite URL whose file does not exist (connecting would create it: a check must not)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    return parsed.get_backend_name() == "sqlite" and bool(parsed.database) and parsed.database != ":memory:" \
        and not Path(parsed.database).exists()


def _database_not_ready(settings) -> str | None:
    """Why the registry cannot be read from the database now (None: it can)."""
    from vigie.migrations import current_revision, head

    if _missing_sqlite_file(settings.database_url):
        return "no database file yet"
    engine = _plain_engine(settings.database_url)
    try:
        return None if current_revision(engine) == head() else "database not at the current schema"
    except Exception:
        return "database unreachable"
    finally:
        engine.dispose()


def check_database(settings) -> Check:
    from sqlalchemy import text

    from vigie.migrations import _script, current_revision, head

    url = redact(settings.database_url)
    if _missing_sqlite_file(settings.database_url):
        return Check("database", Status.WARN, f"{url}: no database file yet",
                     "it is created at the first start (`vigie serve`, or `vigie db upgrade` now)")
    engine = _plain_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        current, newest = current_revision(engine), head()
    except Exception as exc:
        return Check("database", Status.FAIL, f"{url}: {redact(str(exc).splitlines()[0])[:300]}",
                     "check VIGIE_DATABASE_URL (host, port, user, database) and that the server runs")
    finally:
        engine.dispose()
    if current == newest:
        return Check("database", Status.OK, f"{url}: schema at {current} (current)")
    if current is None:
        return Check("database", Status.WARN, f"{url}: no Vigie schema yet",
                     "`vigie db upgrade` (every start of Vigie does it too)")
    try:
        _script().get_revision(current)
    except Exception:
        return Check("database", Status.FAIL, f"{url}: schema at {current}, unknown to this version (head {newest})",
                     "a newer Vigie wrote it: run that version, or restore a backup made for this one")
    return Check("database", Status.WARN, f"{url}: schema at {current}, this version's is {newest}",
                 "`vigie db upgrade` (every start of Vigie does it too)")


# --- registry ----------------------------------------------------------------------------------
def check_registry(settings) -> Check:
    """The registry file loads; counts and inconsistencies of the registry in the database."""
    notes: list[str] = []
    problems: list[str] = []
    fixes: list[str] = []
    if settings.registry_file:
        error = _registry_file_error(settings)
        if error:
            return Check("registry", Status.FAIL, f"VIGIE_REGISTRY_FILE={settings.registry_file}: {error}",
                         "correct the file (docs/registry.md); nothing of it is loaded while it is refused")
        notes.append(f"VIGIE_REGISTRY_FILE {settings.registry_file} loads")
    not_ready = _database_not_ready(settings)
    if not_ready:
        return Check("registry", Status.SKIP, "; ".join(notes + [f"{not_ready}: the registry is not read"]),
                     "see the database check")
    engine = _plain_engine(settings.database_url)
    try:
        counts, issues = _registry_facts(engine, settings)
    finally:
        engine.dispose()
    notes.append(", ".join(f"{n} {k}" for k, n in counts.items()))
    for problem, fix in issues:
        problems.append(problem)
        fixes.append(fix)
    if not any(counts.values()):
        return Check("registry", Status.WARN, "; ".join(notes + ["the registry is empty"]),
                     "load one: `vigie registry load FILE` or VIGIE_REGISTRY_FILE (docs/registry.md); "
                     "until then the ingestor refuses every reading (unknown_meter)")
    if problems:
        return Check("registry", Status.WARN, "; ".join(notes + problems), "; ".join(dict.fromkeys(fixes)))
    return Check("registry", Status.OK, "; ".join(notes))


def _registry_file_error(settings) -> str | None:
    """Why ``settings.registry_file`` does not load, into a scratch database (so the real one is
    not touched): None when it loads."""
    from vigie.db import make_engine, make_sessionmaker
    from vigie.registry import load_registry_file

    with tempfile.TemporaryDirectory(prefix="vigie-check-") as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'scratch.db'}")
        try:
            with make_sessionmaker(engine)() as s:
                load_registry_file(s, settings.registry_file, default_commune=settings.commune,
                                   heating_comfort_c=settings.heating_comfort_c,
                                   heating_setback_c=settings.heating_setback_c)
        except (ValueError, OSError) as exc:   # RegistryError and the heating file's errors are ValueErrors
            return redact(str(exc))[:500]
        finally:
            engine.dispose()
    return None


def _registry_facts(engine, settings) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Counts per kind, and (problem, fix) pairs: what a glance at the registry shows to be wrong."""
    from sqlalchemy import false, func, or_, select
    from sqlalchemy.orm import Session

    from vigie.heating_registry import Building, HeatingDevice, HeatingRoom, LorawanDevice
    from vigie.registry import CaregiverLink, Household, Meter, Person, household_residents
    from vigie.sensors import Sensor

    issues: list[tuple[str, str]] = []
    with Session(engine) as s:
        def count(what) -> int:
            return s.scalar(select(func.count()).select_from(what)) or 0

        counts = {"households": count(Household), "persons": count(Person), "meters": count(Meter),
                  "home sensors": count(Sensor), "buildings": count(Building), "heating rooms": count(HeatingRoom),
                  "heating devices": count(HeatingDevice), "LoRaWAN devices": count(LorawanDevice)}
        orphan_meters = s.scalar(select(func.count()).select_from(Meter).where(Meter.household_id.is_(None))) or 0
        if orphan_meters:
            issues.append((f"{orphan_meters} meter(s) belong to no household: their leaks alert nobody",
                           "give each meter a household in the registry file"))
        # A household with a meter whose residents have no way to be told.
        reachable = or_(func.coalesce(Person.channels, "") != "",
                        Person.email.is_not(None) if settings.smtp_url else false())
        told = select(household_residents.c.household_id).join(
            Person, Person.id == household_residents.c.person_id).where(reachable)
        silent = sorted(s.scalars(select(Meter.household_id).distinct().where(
            Meter.household_id.is_not(None), Meter.household_id.not_in(told))))
        if silent:
            issues.append((f"{len(silent)} household(s) with a meter have no resident with a channel "
                           f"({_ids(silent)}): their alerts fail with 'no channel'",
                           "give a resident an e-mail address (with VIGIE_SMTP_URL) or an Apprise URL"))
        if not settings.smtp_url:
            with_email = s.scalar(select(func.count()).select_from(Person).where(Person.email.is_not(None))) or 0
            if with_email:
                issues.append((f"{with_email} person(s) have an e-mail address but VIGIE_SMTP_URL is not set",
                               "set VIGIE_SMTP_URL (alerts/delivery.py shows its forms)"))
        # Homes with sensors: someone must be escalated to (a caregiver, or the commune's staff).
        homes = set(s.scalars(select(Sensor.household_id).distinct()))
        if homes:
            cared = set(s.scalars(select(CaregiverLink.household_id).distinct()))
            staffed = set(s.scalars(select(Person.staff_commune).distinct().where(Person.staff_commune.is_not(None))))
            communes = dict(s.execute(select(Household.id, Household.commune).where(Household.id.in_(homes))).all())
            alone = sorted(h for h in homes if h not in cared and communes.get(h) not in staffed)
            if alone:
                issues.append((f"{len(alone)} home(s) with sensors have no caregiver and no staff of their commune "
                               f"({_ids(alone)}): their alerts escalate to nobody",
                               "add caregivers to the household, or staff (staff_commune) for its commune"))
    subscribed = {"meters": settings.water_topics or settings.lorawan_topics, "home sensors": settings.home_topics,
                  "heating devices": settings.heating_topics or settings.lorawan_topics,
                  "LoRaWAN devices": settings.lorawan_topics}
    setting = {"meters": "VIGIE_WATER_TOPICS", "home sensors": "VIGIE_HOME_TOPICS",
               "heating devices": "VIGIE_HEATING_TOPICS", "LoRaWAN devices": "VIGIE_LORAWAN_TOPICS"}
    for kind, topics in subscribed.items():
        if counts[kind] and not topics:
            issues.append((f"{counts[kind]} {kind} registered but {setting[kind]} is empty: nothing of theirs is "
                           "ingested", f"set {setting[kind]} (docs/configuration.md)"))
    return counts, issues


def _ids(ids: list[str], n: int = 5) -> str:
    return ", ".join(ids[:n]) + (f" and {len(ids) - n} more" if len(ids) > n else "")


# --- MQTT broker -------------------------------------------------------------------------------
# CONNACK / SUBACK reason codes (MQTT 5.0 §3.2.2.2, §3.9.3) with the fix each calls for.
_CONNACK_FIX = {
    0x84: "the broker refused MQTT 5", 0x85: "the broker refused the client id",
    0x86: "bad user name or password: check {user} and {password} (`vigie broker credentials` writes the "
          "broker's password file; reload Mosquitto after it)",
    0x87: "not authorized: the broker refuses this user (or anonymous clients): set {user} and {password}",
    0x88: "the broker is unavailable", 0x89: "the broker is busy",
}


def _mqtt_connect(settings, username: str | None, password: str | None, timeout_s: float):
    """Connect with a throwaway client id (never the ingestor's: that would take over its
    session); (client, CONNACK reason code or None, error text or None)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    protocol = mqtt.MQTTv311 if getattr(settings, "mqtt_protocol_version", "5") == "3.1.1" else mqtt.MQTTv5
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"vigie-check-{uuid.uuid4().hex[:10]}",
                         protocol=protocol)
    if username:
        client.username_pw_set(username, password)
    if settings.mqtt_tls:
        client.tls_set(ca_certs=str(settings.mqtt_ca_file) if settings.mqtt_ca_file else None)
    done = threading.Event()
    got: dict = {}

    def on_connect(_c, _u, _flags, reason_code, _props):
        got["rc"] = reason_code
        done.set()

    def on_disconnect(_c, _u, _flags, reason_code, _props):
        got.setdefault("rc", reason_code)
        done.set()

    client.on_connect, client.on_disconnect = on_connect, on_disconnect
    try:
        client.connect(settings.mqtt_host, settings.mqtt_port, keepalive=max(5, int(timeout_s * 2)))
    except ssl.SSLError as exc:
        return client, None, f"TLS: {exc.reason or exc}"
    except OSError as exc:
        return client, None, exc.strerror or str(exc)
    client.loop_start()
    if not done.wait(timeout_s):
        client.loop_stop()
        return client, None, f"no CONNACK within {timeout_s:g} s"
    return client, got["rc"], None


def _broker_check(name: str, settings, username: str | None, password: str | None, user_setting: str,
                  password_setting: str, timeout_s: float, topic_filters: list[str]) -> Check:
    where = f"{settings.mqtt_url} as {username or 'anonymous'}"
    version = "MQTT 3.1.1" if getattr(settings, "mqtt_protocol_version", "5") == "3.1.1" else "MQTT 5"
    client, rc, error = _mqtt_connect(settings, username, password, timeout_s)
    if error is not None:
        fix = ("check VIGIE_MQTT_CA_FILE (the CA that signed the broker's certificate)" if error.startswith("TLS")
               else "start the broker (Mosquitto), or point VIGIE_MQTT_URL at it"
               + ("" if _configured(settings, "mqtt_url") else " (`vigie demo` runs an embedded one)"))
        return Check(name, Status.FAIL, f"{where}: cannot connect: {error}", fix)
    try:
        if rc.is_failure:
            fix = _CONNACK_FIX.get(rc.value, "see the broker's log").format(user=user_setting,
                                                                            password=password_setting)
            return Check(name, Status.FAIL, f"{where}: CONNECT refused: {rc}", fix)
        if not topic_filters:
            return Check(name, Status.OK, f"{where}: connected ({version})")
        denied = _denied_filters(client, topic_filters, timeout_s)
        if denied is None:
            return Check(name, Status.WARN, f"{where}: connected, but no SUBACK within {timeout_s:g} s",
                         "see the broker's log")
        if denied:
            return Check(name, Status.FAIL, f"{where}: connected; subscribing refused on {', '.join(denied)}",
                         f"the broker's ACL must let {username or 'this client'} read these topics: "
                         "`vigie broker credentials` writes it (docs/security.md)")
        return Check(name, Status.OK, f"{where}: connected ({version}); subscriptions to all "
                                      f"{len(topic_filters)} topic filters accepted")
    finally:
        client.disconnect()
        client.loop_stop()


def _denied_filters(client, topic_filters: list[str], timeout_s: float) -> list[str] | None:
    """The filters the broker refuses to ``client`` (SUBACK failure codes), None on timeout. QoS 0
    and an unsubscribe straight after: nothing waits for this client once it is gone."""
    done = threading.Event()
    got: dict = {}

    def on_subscribe(_c, _u, _mid, reason_codes, _props):
        got["codes"] = reason_codes
        done.set()

    client.on_subscribe = on_subscribe
    client.subscribe([(f, 0) for f in topic_filters])
    if not done.wait(timeout_s):
        return None
    client.unsubscribe(topic_filters)
    return [f for f, code in zip(topic_filters, got["codes"]) if code.is_failure]


def _configured(settings, name: str) -> bool:
    """Whether setting ``name`` was given rather than left at its default."""
    return name in settings.model_fields_set


def _unshared(topic_filter: str) -> str:
    if topic_filter.startswith("$share/"):
        parts = topic_filter.split("/", 2)
        return parts[2] if len(parts) == 3 else topic_filter
    return topic_filter


def check_broker(settings, timeout_s: float = DEFAULT_TIMEOUT_S) -> Check:
    """CONNECT as the ingestor's user, then SUBSCRIBE to each configured filter."""
    filters = []
    for pairs in (settings.topic_decoders(), settings.home_topic_decoders(), settings.heating_topic_decoders(),
                  settings.lorawan_topic_decoders()):
        filters.extend(_unshared(f) for f, _ in pairs)
    pw = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
    return _broker_check("broker", settings, settings.mqtt_username, pw, "VIGIE_MQTT_USERNAME",
                         "VIGIE_MQTT_PASSWORD", timeout_s, list(dict.fromkeys(filters)))


def check_broker_simulator(settings, timeout_s: float = DEFAULT_TIMEOUT_S) -> Check | None:
    """CONNECT as the simulators' user, when one is configured (None otherwise: not reported)."""
    if not settings.simulator_mqtt_username:
        return None
    pw = settings.simulator_mqtt_password.get_secret_value() if settings.simulator_mqtt_password else None
    return _broker_check("broker-simulator", settings, settings.simulator_mqtt_username, pw,
                         "VIGIE_SIMULATOR_MQTT_USERNAME", "VIGIE_SIMULATOR_MQTT_PASSWORD", timeout_s, [])


# --- InfluxDB ----------------------------------------------------------------------------------
def check_store(settings, timeout_s: float = DEFAULT_TIMEOUT_S) -> Check:
    """/ping, credentials, database, retention policies, write permission (InfluxDB 1.x HTTP API);
    for the embedded store (``VIGIE_STORE``), its file."""
    import httpx

    if getattr(settings, "store_kind", "influxdb") == "embedded":
        return _check_embedded_store(settings)

    from vigie.store.influx import _hours, quote_ident

    url, db = settings.influx_url, settings.influx_database
    auth = None
    if settings.influx_username:
        pw = settings.influx_password.get_secret_value() if settings.influx_password else ""
        auth = (settings.influx_username, pw)
    user = settings.influx_username or "no user"
    with httpx.Client(base_url=url, auth=auth, timeout=timeout_s) as http:
        try:
            ping = http.get("/ping")
        except httpx.HTTPError as exc:
            return Check("store", Status.FAIL, f"InfluxDB at {url}: unreachable: {exc}",
                         "start InfluxDB (1.x), or point VIGIE_INFLUX_URL at it")
        if ping.status_code != 204:
            return Check("store", Status.FAIL, f"InfluxDB at {url}: /ping answered {ping.status_code}",
                         "VIGIE_INFLUX_URL must be InfluxDB's HTTP API (1.x, or 2.x with its v1 compatibility)")
        version = ping.headers.get("x-influxdb-version", "unknown version")
        where = f"InfluxDB {version} at {url}, database {db} ({user})"
        r = http.get("/query", params={"q": "SHOW DATABASES"})
        if r.status_code == 401:
            return Check("store", Status.FAIL, f"{where}: authentication refused",
                         "check VIGIE_INFLUX_USERNAME and VIGIE_INFLUX_PASSWORD (authentication is on)")
        databases = {v[0] for res in r.json().get("results", []) for s in res.get("series", [])
                     for v in s.get("values", [])} if r.status_code == 200 else set()
        if r.status_code == 200 and db not in databases:
            admin = "" if not settings.influx_username else f" if {settings.influx_username} is an admin"
            return Check("store", Status.WARN, f"{where}: no such database yet",
                         f"the first start of Vigie creates it{admin}; else CREATE DATABASE {quote_ident(db)} "
                         "(and GRANT ALL ON it TO the user)")
        r = http.get("/query", params={"db": db, "q": f"SHOW RETENTION POLICIES ON {quote_ident(db)}"})
        if r.status_code == 403 or (r.status_code == 200 and "error" in r.json()["results"][0]):
            return Check("store", Status.FAIL, f"{where}: may not read the database",
                         f"GRANT ALL ON {quote_ident(db)} TO {quote_ident(user)} (Vigie reads and writes it)")
        shown = {}
        for res in r.json().get("results", []):
            for s in res.get("series", []):
                for row in s.get("values", []):
                    rec = dict(zip(s["columns"], row))
                    shown[rec["name"]] = rec["duration"]
        params = {"db": db}
        if settings.influx_retention_policy in shown:   # a missing one is a 500 before the permission
            params["rp"] = settings.influx_retention_policy
        w = http.post("/write", params=params, content=b"")
        if w.status_code == 403:
            return Check("store", Status.FAIL, f"{where}: may not write", f"GRANT WRITE (or ALL) ON {quote_ident(db)} "
                                                                           f"TO {quote_ident(user)}")
        if w.status_code not in (204, 200):
            return Check("store", Status.FAIL, f"{where}: an empty write answered {w.status_code}: {w.text[:200]}",
                         "see InfluxDB's log")
    expected = {settings.influx_retention_policy: settings.influx_retention_duration,
                **{p.name: p.duration for p in settings.influx_extra_policies()}}
    missing = [n for n in expected if n not in shown]
    differ = [f"{n} {shown[n]} (configured {d})" for n, d in expected.items()
              if n in shown and abs(_hours(shown[n]) - _hours(d)) > 1e-6]
    if missing or differ:
        what = "; ".join(x for x in (f"retention policies missing: {', '.join(missing)}" if missing else "",
                                     f"durations differ: {', '.join(differ)}" if differ else "") if x)
        return Check("store", Status.WARN, f"{where}: reads and writes; {what}",
                     "each start of Vigie creates them or brings them in step"
                     + (f" if {settings.influx_username} is an admin" if settings.influx_username else "")
                     + "; else create or alter them as configured (docs/configuration.md)")
    return Check("store", Status.OK, f"{where}: reads and writes; retention policies "
                                     f"{', '.join(f'{n}={d}' for n, d in expected.items())}")


def _check_embedded_store(settings) -> Check:
    path = Path(settings.store_path)
    if path.exists():
        if not os.access(path, os.R_OK | os.W_OK):
            return Check("store", Status.FAIL, f"embedded store {path}: not readable and writable by this user",
                         "give the service's user access, or set VIGIE_STORE_FILE elsewhere")
        return Check("store", Status.OK, f"embedded store {path}: {path.stat().st_size / 2**20:.1f} MiB, writable")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not os.access(parent, os.W_OK | os.X_OK):
        return Check("store", Status.FAIL, f"embedded store {path}: {parent} is not writable by this user",
                     "set VIGIE_STORE_FILE (or VIGIE_DATA_DIR) to a writable place")
    return Check("store", Status.OK, f"embedded store {path}: created at the first start")


# --- SMTP --------------------------------------------------------------------------------------
def check_smtp(settings, timeout_s: float = DEFAULT_TIMEOUT_S) -> Check:
    """The SMTP server of ``VIGIE_SMTP_URL``: connect, EHLO, TLS as configured, LOGIN if the URL has
    credentials, QUIT (no MAIL, nothing sent). A local outbox (``outbox:///DIR``,
    :mod:`vigie.alerts.outbox`): :func:`check_outbox`."""
    import apprise

    if not settings.smtp_url:
        return Check("smtp", Status.SKIP, "VIGIE_SMTP_URL not set: no e-mail is sent")
    from vigie.alerts.delivery import mask
    from vigie.alerts.outbox import SCHEME

    if settings.smtp_url.split(":", 1)[0].lower() == SCHEME:
        return check_outbox(settings.smtp_url)

    shown = redact(settings.smtp_url).split("?", 1)[0]
    with apprise.LogCapture(level=logging.WARNING, fmt="%(message)s") as captured:
        plugin = apprise.Apprise.instantiate(settings.smtp_url)
    if plugin is None or not hasattr(plugin, "smtp_host"):
        why = mask(captured.getvalue().strip().splitlines()[0]) if captured.getvalue().strip() else ""
        return Check("smtp", Status.FAIL, f"VIGIE_SMTP_URL={shown}: not an e-mail URL Apprise can use"
                     + (f" ({why})" if why else ""),
                     "mailto://HOST:PORT?from=SENDER (a relay without TLS or login), "
                     "mailtos://USER:PASSWORD@HOST:587?from=SENDER (STARTTLS) or …?mode=ssl (port 465)")
    host, port, mode = plugin.smtp_host, int(plugin.port or 25), plugin.secure_mode if plugin.secure else "plain"
    where = f"SMTP {host}:{port} ({mode}{', login' if plugin.user and plugin.password else ''})"
    context = ssl.create_default_context()
    me = socket.gethostname()   # smtplib's default, getfqdn(), can wait seconds on a reverse DNS lookup
    try:
        if mode == "ssl":
            server = smtplib.SMTP_SSL(host, port, local_hostname=me, timeout=timeout_s, context=context)
        else:
            server = smtplib.SMTP(host, port, local_hostname=me, timeout=timeout_s)
        try:
            server.ehlo()
            if mode == "starttls":
                server.starttls(context=context)
                server.ehlo()
            if plugin.user and plugin.password:
                server.login(plugin.user, plugin.password)
        finally:
            try:
                server.quit()
            except smtplib.SMTPException:
                server.close()
    except smtplib.SMTPAuthenticationError as exc:
        return Check("smtp", Status.FAIL, f"{where}: login refused ({exc.smtp_code})",
                     "check the user and password in VIGIE_SMTP_URL")
    except smtplib.SMTPNotSupportedError:
        return Check("smtp", Status.FAIL, f"{where}: the server offers no STARTTLS",
                     "a relay without TLS: mailto://HOST:PORT?from=SENDER; implicit TLS: mailtos://…?mode=ssl")
    except ssl.SSLError as exc:
        return Check("smtp", Status.FAIL, f"{where}: TLS failed: {exc.reason or exc}",
                     "port 465 is implicit TLS (mode=ssl), 587 STARTTLS; a relay without TLS: mailto://")
    except (OSError, smtplib.SMTPException) as exc:
        return Check("smtp", Status.FAIL, f"{where}: {redact(str(exc))[:200] or type(exc).__name__}",
                     "check the host and port of VIGIE_SMTP_URL and that the server runs")
    return Check("smtp", Status.OK, f"{where}: answers; nothing sent")


def check_outbox(url: str) -> Check:
    """A local outbox URL (``outbox:///ABSOLUTE/DIR``): its directory is writable, or can be made
    (its nearest existing parent is a writable directory: the outbox creates it on the first
    e-mail). Nothing is created or written here. Permissions are as ``os.access`` sees them (root
    passes them all)."""
    fix = ("VIGIE_SMTP_URL=outbox:///ABSOLUTE/DIR naming a directory the service's user can write "
           "(mkdir -p DIR, then chown it to that user)")
    parts = urlsplit(url)
    # Apprise reads the first path segment as a host (outbox://tmp/x is /tmp/x): put it back.
    path = unquote(parts.netloc + parts.path).lstrip("/")
    if not path:
        return Check("smtp", Status.FAIL, f"VIGIE_SMTP_URL={url.split('?', 1)[0]}: names no directory", fix)
    directory = Path("/" + path)
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return Check("smtp", Status.FAIL, f"outbox {directory}: {existing} is not a directory", fix)
    if not os.access(existing, os.W_OK | os.X_OK):
        return Check("smtp", Status.FAIL, f"outbox {directory}: {existing} is not writable", fix)
    made = "" if existing == directory else f" (created on the first e-mail, in {existing})"
    return Check("smtp", Status.OK, f"outbox {directory}: writable{made}; e-mails are written there as "
                 "files, none sent")


# --- Apprise channels of persons ---------------------------------------------------------------
def check_channels(settings, timeout_s: float = DEFAULT_TIMEOUT_S) -> Check:
    """Every Apprise URL of the registry's persons (``channels`` and ``notify`` lists) loads, and
    the servers they name accept a TCP connection."""
    import apprise
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from vigie.alerts.delivery import scheme
    from vigie.registry import EMAIL_CHANNEL, Person

    not_ready = _database_not_ready(settings)
    if not_ready:
        return Check("channels", Status.SKIP, f"{not_ready}: the persons' channels are not read",
                     "see the database check")
    engine = _plain_engine(settings.database_url)
    try:
        by_url: dict[str, set[str]] = {}
        with Session(engine) as s:
            for person_id, channels, notify in s.execute(select(Person.id, Person.channels, Person.notify)):
                urls = set((channels or "").split())
                for wanted in (notify or {}).values():
                    urls |= {u for u in wanted or [] if u != EMAIL_CHANNEL}
                for url in urls:
                    by_url.setdefault(url, set()).add(person_id)
    finally:
        engine.dispose()
    if not by_url:
        return Check("channels", Status.SKIP, "no person has an Apprise channel")
    invalid: set[str] = set()
    endpoints: dict[tuple[str, int], set[str]] = {}
    unchecked = 0
    for url, persons in by_url.items():
        plugin = apprise.Apprise.instantiate(url)
        if plugin is None:
            invalid |= persons
            continue
        endpoint = _endpoint(plugin)
        if endpoint is None:
            unchecked += 1
        else:
            endpoints.setdefault(endpoint, set()).update(persons)
    schemes = sorted({scheme(u) for u in by_url})
    unreachable: set[str] = set()
    tried = list(endpoints.items())[:MAX_CHANNEL_ENDPOINTS]
    for (host, port), persons in tried:
        try:
            socket.create_connection((host, port), timeout=timeout_s).close()
        except OSError:
            unreachable |= persons
    detail = (f"{len(by_url)} URL(s) ({', '.join(schemes)}) of {len({p for ps in by_url.values() for p in ps})} "
              f"person(s); {len(tried)} server(s) tried" + (f", {unchecked} URL(s) without a server to try"
                                                          if unchecked else ""))
    if invalid or unreachable:
        parts = []
        if invalid:
            parts.append(f"URLs Apprise cannot load, of person(s) {_ids(sorted(invalid))}")
        if unreachable:
            parts.append(f"servers not answering, of person(s) {_ids(sorted(unreachable))}")
        return Check("channels", Status.FAIL, f"{detail}; {'; '.join(parts)}",
                     "correct those persons' channels in the registry (Apprise URL forms: "
                     "https://github.com/caronc/apprise/wiki), or check their servers")
    return Check("channels", Status.OK, f"{detail}: all load, all answer")


def _endpoint(plugin) -> tuple[str, int] | None:
    """The server an Apprise plugin sends to: its service's fixed API URL when it has one (the URL's
    "host" is then often a token), else the URL's host when it is a host name or address."""
    fixed = getattr(type(plugin), "notify_url", None)
    if isinstance(fixed, str) and fixed.startswith(("http://", "https://")):
        parts = urlsplit(fixed)
        return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    host = getattr(plugin, "host", None)
    if not host or not _is_host(host):
        return None
    port = getattr(plugin, "port", None) or (443 if getattr(plugin, "secure", False) else 80)
    return host, int(port)


def _is_host(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return text == "localhost" or ("." in text and all(part for part in text.split(".")))


# --- local state -------------------------------------------------------------------------------
def check_data_dir(settings) -> Check:
    path = Path(settings.data_dir)
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not os.access(existing, os.W_OK | os.X_OK):
        return Check("data-dir", Status.FAIL, f"VIGIE_DATA_DIR={path}: {existing} is not writable by this user",
                     "give the service's user write access, or point VIGIE_DATA_DIR elsewhere")
    free = shutil.disk_usage(existing).free
    state = "exists" if path.exists() else f"created at start (under {existing})"
    detail = f"VIGIE_DATA_DIR={path}: {state}, writable, {free / 2**30:.1f} GiB free"
    if free < LOW_DISK_BYTES:
        return Check("data-dir", Status.WARN, detail, "free some space: the spool buffers every reading while "
                                                      "InfluxDB is down")
    return Check("data-dir", Status.OK, detail)
