"""Registry of households, the meters they own and the people living there.

Personal details (names, addresses, e-mails, phone numbers, channel URLs) live only here, in the
relational store; InfluxDB and logs know meters and households by opaque ids.

File formats for :func:`load_registry_file` (also in docs/registry.md):

YAML::

    households:
      - id: h-0001
        address: "3 rue de l'Église, 12345 Exemple"
        commune: exemple            # optional; default: settings.commune
        meters:
          - {id: "2a31f0c4", driver: izar}
          - {id: "71234567", driver: kamwater, gateway: gw-mairie, topic_name: Apt12_Cold}
        residents:
          - {id: p-0001, name: Marie Exemple, email: marie@example.org, language: fr,
             channels: ["ntfy://ntfy.example.org/topic"]}
        caregivers:                 # people who look after the household without living there
          - {id: p-0100, name: Paul Exemple, email: paul@example.org, relation: son, level: 1,
             availability: "mon-fri 18:00-08:00; sat,sun 00:00-24:00", quiet_hours: "22:00-07:00",
             notify: {high: [email, "ntfy://ntfy.example.org/p0100"], low: []}}
        escalation: {wait_min: 10, reminder_min: 15}   # optional; default the settings
    staff:                          # town-hall staff: the last escalation level of their commune's homes
      - {id: s-0001, name: Agent Exemple, email: agent@mairie.example, commune: exemple,
         duty: "mon-fri 08:00-18:00"}

CSV (one row per meter × person; header required)::

    household_id,meter_id,driver,commune,person_id,name,email,phone,language,channels,role,relation,level

``channels`` holds extra Apprise URLs separated by spaces; ``role`` is ``resident`` (default) or
``caregiver``. Loading is an upsert: rows already present are updated, nothing is deleted; a
caregiver's ``history_granted`` flag is set by staff (``vigie registry grant-history``), never by a load.
Escalation of home alerts (:mod:`vigie.alerts.escalation`; YAML only): a person's ``availability``
and a staff member's ``duty`` are weekly windows (:mod:`vigie.timewindows`) outside which they are
not contacted, ``quiet_hours`` windows in which they get only high-severity alerts, ``notify`` their
channels per severity (``email`` or an Apprise URL; an empty list: none of that severity).
A meter's optional ``gateway`` (CSV column ``gateway``) names the box whose broker credential
publishes it, ``topic_name`` (CSV ``topic_name``) the wmbusmeters name it is published under
(``wmbusmeters/<name>``); see ``vigie broker credentials`` and docs/security.md.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from sqlalchemy import JSON, Boolean, Column, Float, ForeignKey, Integer, String, Table, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from vigie.db import Base
from vigie.timewindows import WindowError, normalise

DEFAULT_COMMUNE = "default"
#: Caregiver escalation levels run 1..MAX_CAREGIVER_LEVEL; staff on duty come after them.
MAX_CAREGIVER_LEVEL = 999
#: The escalation level number of a commune's staff on duty: after every caregiver level.
STAFF_LEVEL = MAX_CAREGIVER_LEVEL + 1
#: Severities a person's ``notify`` preferences may name (:class:`vigie.records.HomeEventSeverity`).
SEVERITIES = ("high", "medium", "low")
EMAIL_CHANNEL = "email"

household_residents = Table(
    "household_residents", Base.metadata,
    Column("household_id", ForeignKey("households.id", ondelete="CASCADE"), primary_key=True),
    Column("person_id", ForeignKey("persons.id", ondelete="CASCADE"), primary_key=True),
)


class Household(Base):
    __tablename__ = "households"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    address: Mapped[str | None] = mapped_column(String(300))
    # The commune whose staff see the household (API scoping); set at first load.
    commune: Mapped[str] = mapped_column(String(64), default=DEFAULT_COMMUNE, index=True)
    # Home-alert escalation of this home (None: settings.escalation_wait_min / _reminder_min).
    escalation_wait_min: Mapped[float | None] = mapped_column(Float)
    reminder_interval_min: Mapped[float | None] = mapped_column(Float)
    caregiver_links: Mapped[list["CaregiverLink"]] = relationship(back_populates="household",
                                                                  cascade="all, delete-orphan")
    meters: Mapped[list["Meter"]] = relationship(back_populates="household")
    residents: Mapped[list["Person"]] = relationship(secondary=household_residents, back_populates="households")


class Person(Base):
    __tablename__ = "persons"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(40))
    language: Mapped[str] = mapped_column(String(5), default="fr")
    channels: Mapped[str] = mapped_column(String(2000), default="")  # Apprise URLs, space-separated
    # Home-alert escalation preferences (vigie.timewindows texts; None: always / never).
    availability: Mapped[str | None] = mapped_column(String(500))   # for staff: duty windows
    quiet_hours: Mapped[str | None] = mapped_column(String(500))
    # {severity: ["email" | Apprise URL, ...]}; a severity not named gets e-mail plus ``channels``.
    notify: Mapped[dict | None] = mapped_column(JSON)
    # Set for town-hall staff: the commune whose homes they cover as the last escalation level.
    staff_commune: Mapped[str | None] = mapped_column(String(64), index=True)
    households: Mapped[list[Household]] = relationship(secondary=household_residents, back_populates="residents")


class Meter(Base):
    __tablename__ = "meters"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    household_id: Mapped[str | None] = mapped_column(ForeignKey("households.id"))
    driver: Mapped[str | None] = mapped_column(String(40))
    # The gateway (wmbusmeters or LoRaWAN box) whose broker credential publishes this meter's
    # readings; None: the meter publishes with a credential of its own (docs/security.md).
    gateway: Mapped[str | None] = mapped_column(String(64), index=True)
    # The wmbusmeters meter *name* when the gateway publishes on wmbusmeters/<name> (not /<id>).
    topic_name: Mapped[str | None] = mapped_column(String(64))
    household: Mapped[Household | None] = relationship(back_populates="meters")


class CaregiverLink(Base):
    """A person who looks after a household without living there (family, neighbour, carer).

    ``history_granted``: staff allowed this caregiver to read the household's consumption history
    (otherwise alerts and a minimal status only). ``level``: optional escalation order (1 first).
    """

    __tablename__ = "household_caregivers"
    household_id: Mapped[str] = mapped_column(ForeignKey("households.id", ondelete="CASCADE"), primary_key=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"), primary_key=True)
    relation: Mapped[str | None] = mapped_column(String(40))
    level: Mapped[int | None] = mapped_column(Integer)
    history_granted: Mapped[bool] = mapped_column(Boolean, default=False)
    household: Mapped[Household] = relationship(back_populates="caregiver_links")
    person: Mapped["Person"] = relationship()


@dataclass
class RegistryRow:
    """One meter × person row of a registry file, after parsing (``role``: resident, caregiver or
    staff; a staff row has no ``household_id`` and names its ``commune``)."""

    household_id: str | None
    meter_id: str | None = None
    driver: str | None = None
    address: str | None = None
    person_id: str | None = None
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    language: str | None = None
    channels: list[str] = field(default_factory=list)
    commune: str | None = None
    role: str = "resident"
    relation: str | None = None
    level: int | None = None
    gateway: str | None = None
    topic_name: str | None = None
    availability: str | None = None
    quiet_hours: str | None = None
    notify: dict[str, list[str]] | None = None
    escalation_wait_min: float | None = None
    reminder_interval_min: float | None = None


ROLES = ("resident", "caregiver")
#: The sections of a YAML registry file (households and their sensors, staff, town-hall heating).
TOP_LEVEL_KEYS = ("households", "staff", "buildings", "lorawan")


class RegistryError(ValueError):
    """A registry file that cannot be loaded; the message names the file and the entry."""


def _rows_from_yaml(path: Path) -> list[RegistryRow]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise RegistryError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("households", []), list):
        raise RegistryError(f"{path}: expected a mapping with a 'households' list")
    unknown = sorted(str(k) for k in data if k not in TOP_LEVEL_KEYS)
    if unknown:
        # A misspelt section would otherwise load nothing and say nothing.
        raise RegistryError(f"{path}: unknown top-level key(s) {', '.join(map(repr, unknown))}; expected "
                            f"{', '.join(TOP_LEVEL_KEYS)}")
    rows: list[RegistryRow] = []
    for i, hh in enumerate(data.get("households") or []):
        if not isinstance(hh, dict) or not hh.get("id"):
            raise RegistryError(f"{path}: households[{i}] needs an 'id'")
        hid = str(hh["id"])
        wait, remind = _escalation(hh.get("escalation"), f"{path}: household {hid}")
        rows.append(RegistryRow(household_id=hid, address=hh.get("address"),
                                commune=str(hh["commune"]) if hh.get("commune") else None,
                                escalation_wait_min=wait, reminder_interval_min=remind))
        for m in hh.get("meters") or []:
            m = m if isinstance(m, dict) else {"id": m}
            if not m.get("id"):
                raise RegistryError(f"{path}: household {hid}: a meter needs an 'id'")
            where = f"{path}: household {hid}: meter {m['id']}"
            rows.append(RegistryRow(household_id=hid, meter_id=str(m["id"]), driver=m.get("driver"),
                                    gateway=_topic_level(m.get("gateway"), "gateway", where),
                                    topic_name=_topic_level(m.get("topic_name"), "topic_name", where)))
        for role, key in (("resident", "residents"), ("caregiver", "caregivers")):
            for p in hh.get(key) or []:
                if not isinstance(p, dict) or not p.get("id"):
                    raise RegistryError(f"{path}: household {hid}: a {role} needs an 'id'")
                where = f"{path}: household {hid}: {role} {p['id']}"
                rows.append(RegistryRow(household_id=hid, person_id=str(p["id"]), name=p.get("name"),
                                        email=p.get("email"), phone=p.get("phone"), language=p.get("language"),
                                        channels=list(p.get("channels") or []), role=role,
                                        relation=p.get("relation"),
                                        level=_level(p.get("level"), f"{path}: household {hid}"),
                                        **_preferences(p, "availability", where)))
    staff = data.get("staff") or []
    if not isinstance(staff, list):
        raise RegistryError(f"{path}: 'staff' must be a list")
    for p in staff:
        if not isinstance(p, dict) or not p.get("id"):
            raise RegistryError(f"{path}: a staff member needs an 'id'")
        rows.append(RegistryRow(household_id=None, person_id=str(p["id"]), name=p.get("name"),
                                email=p.get("email"), phone=p.get("phone"), language=p.get("language"),
                                channels=list(p.get("channels") or []), role="staff",
                                commune=str(p["commune"]) if p.get("commune") else None,
                                **_preferences(p, "duty", f"{path}: staff {p['id']}")))
    return rows


def _preferences(entry: dict, availability_key: str, where: str) -> dict:
    """A person's escalation preferences, checked: ``availability`` (or a staff member's ``duty``)
    and ``quiet_hours`` as window texts, ``notify`` as {severity: [channels]}."""
    out: dict = {}
    try:
        out["availability"] = normalise(entry.get(availability_key))
        out["quiet_hours"] = normalise(entry.get("quiet_hours"))
    except WindowError as exc:
        raise RegistryError(f"{where}: {exc}") from None
    notify = entry.get("notify")
    if notify is not None:
        if not isinstance(notify, dict) or not set(map(str, notify)) <= set(SEVERITIES):
            raise RegistryError(f"{where}: notify must map severities {SEVERITIES} to lists of channels")
        for severity, channels in notify.items():
            if not isinstance(channels, list) or not all(
                    isinstance(c, str) and (c == EMAIL_CHANNEL or "://" in c) for c in channels):
                raise RegistryError(f"{where}: notify.{severity} must list '{EMAIL_CHANNEL}' or Apprise URLs")
        out["notify"] = {str(k): list(v) for k, v in notify.items()}
    return out


def _escalation(value, where: str) -> tuple[float | None, float | None]:
    """A household's ``escalation: {wait_min, reminder_min}``: positive minutes, each optional."""
    if value is None:
        return None, None
    if not isinstance(value, dict) or not set(value) <= {"wait_min", "reminder_min"}:
        raise RegistryError(f"{where}: escalation takes wait_min and reminder_min (minutes)")
    out = []
    for key in ("wait_min", "reminder_min"):
        v = value.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0):
            raise RegistryError(f"{where}: escalation.{key} must be a positive number of minutes, got {v!r}")
        out.append(None if v is None else float(v))
    return out[0], out[1]


def _level(value, where: str) -> int | None:
    """A caregiver's escalation level: a whole number from 1, or None when absent."""
    if value is None or value == "":
        return None
    try:
        level = int(value)
    except (TypeError, ValueError):
        level = 0
    if level < 1 or level > MAX_CAREGIVER_LEVEL or str(level) != str(value).strip():
        raise RegistryError(f"{where}: caregiver level must be a whole number from 1 to {MAX_CAREGIVER_LEVEL}, "
                            f"got {value!r}")
    return level


def _rows_from_csv(path: Path) -> list[RegistryRow]:
    rows = []
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        header = set(reader.fieldnames or ())
        if "household_id" not in header or not header & {"meter_id", "person_id"}:
            raise RegistryError(f"{path}: header must name household_id and meter_id and/or person_id "
                                f"(got {sorted(header)})")
        for n, rec in enumerate(reader, start=2):
            if not (rec.get("household_id") or "").strip():
                raise RegistryError(f"{path}:{n}: household_id is empty")
            clean = {k: (v.strip() or None) if isinstance(v, str) else v for k, v in rec.items() if k}
            role = clean.get("role") or "resident"
            if role not in ROLES:
                raise RegistryError(f"{path}:{n}: role must be one of {ROLES}, got {role!r}")
            rows.append(RegistryRow(
                household_id=clean["household_id"], meter_id=clean.get("meter_id"), driver=clean.get("driver"),
                address=clean.get("address"), person_id=clean.get("person_id"), name=clean.get("name"),
                email=clean.get("email"), phone=clean.get("phone"), language=clean.get("language"),
                channels=(clean.get("channels") or "").split(), commune=clean.get("commune"), role=role,
                relation=clean.get("relation"), level=_level(clean.get("level"), f"{path}:{n}"),
                gateway=_topic_level(clean.get("gateway"), "gateway", f"{path}:{n}"),
                topic_name=_topic_level(clean.get("topic_name"), "topic_name", f"{path}:{n}")))
    return rows


def _topic_level(value, what: str, where: str) -> str | None:
    """A gateway id or wmbusmeters meter name, used as one MQTT topic level and as a broker user
    name: 1–64 characters without ``/``, the wildcards ``+`` ``#``, ``:``, spaces or control
    characters, not starting with ``$`` (a topic or ACL line would mean something else)."""
    if value is None or value == "":
        return None
    text = str(value)
    if (len(text) > 64 or text.startswith("$") or any(c in "/+#:" or c.isspace() or not c.isprintable()
                                                      for c in text)):
        raise RegistryError(f"{where}: {what} {text!r} cannot be an MQTT topic level "
                            "(1-64 characters, no / + # : spaces or control characters, not starting with $)")
    return text


def load_registry_file(session: Session, path: Path, default_commune: str = DEFAULT_COMMUNE, *,
                       heating_comfort_c: float | None = None,
                       heating_setback_c: float | None = None) -> dict[str, int]:
    """Upsert a YAML (.yaml/.yml) or CSV (.csv) registry file; returns counts per kind.

    ``default_commune`` (``settings.commune``) goes to new households and to buildings that name
    none; ``heating_comfort_c``/``heating_setback_c`` (settings) to heating rooms that set none.
    Raises :class:`RegistryError` on a malformed file (nothing is written then).
    """
    # Home sensors (vigie.sensors, which builds on this module) ride in the same YAML file, or in a
    # CSV of their own recognised by its friendly_name column; so do buildings and LoRaWAN devices
    # (vigie.heating_registry, YAML only). All of it is parsed, and the heating part checked
    # against the registry, before any write; households go first (LoRaWAN radios name their meters).
    from vigie.heating_registry import HeatingFile, check_heating, parse_heating_file, upsert_heating
    from vigie.sensors import parse_sensors_file, upsert_sensors

    path = Path(path)
    heating = HeatingFile(str(path))
    if path.suffix.lower() in (".yaml", ".yml"):
        rows, sensors, heating = _rows_from_yaml(path), parse_sensors_file(path), parse_heating_file(path)
    elif path.suffix.lower() == ".csv":
        with path.open(encoding="utf-8", newline="") as fh:
            header = next(csv.reader(fh), [])
        if "friendly_name" in header:
            return upsert_sensors(session, parse_sensors_file(path), where=str(path))
        rows, sensors = _rows_from_csv(path), []
    else:
        raise RegistryError(f"{path}: expected a .yaml, .yml or .csv file")
    temperatures = {"comfort_c": heating_comfort_c, "setback_c": heating_setback_c}
    if heating:
        check_heating(session, heating, known_meters={r.meter_id for r in rows if r.meter_id}, **temperatures)
    counts = upsert_rows(session, rows, default_commune)
    if sensors:
        counts.update(upsert_sensors(session, sensors, where=str(path)))
    if heating:
        counts.update(upsert_heating(session, heating, default_commune=default_commune, **temperatures))
    return counts


def upsert_rows(session: Session, rows: list[RegistryRow], default_commune: str = DEFAULT_COMMUNE) -> dict[str, int]:
    """Upsert parsed rows (see the module docstring); new households without a commune get
    ``default_commune``. Returns counts of distinct households, meters and persons seen."""
    counts = {"households": 0, "meters": 0, "persons": 0}
    seen: set[tuple[str, str]] = set()
    for row in rows:
        if row.role == "staff":
            _upsert_person(session, row).staff_commune = row.commune or default_commune
            if ("p", row.person_id) not in seen:
                counts["persons"] += 1
                seen.add(("p", row.person_id))
            session.flush()
            continue
        hh = session.get(Household, row.household_id)
        if hh is None:
            hh = Household(id=row.household_id, commune=row.commune or default_commune)
            session.add(hh)
        elif row.commune:
            hh.commune = row.commune
        if ("h", row.household_id) not in seen:
            counts["households"] += 1
            seen.add(("h", row.household_id))
        if row.address:
            hh.address = row.address
        if row.escalation_wait_min is not None:
            hh.escalation_wait_min = row.escalation_wait_min
        if row.reminder_interval_min is not None:
            hh.reminder_interval_min = row.reminder_interval_min
        if row.meter_id:
            m = session.get(Meter, row.meter_id) or Meter(id=row.meter_id)
            m.household = hh
            if row.driver:
                m.driver = row.driver
            if row.gateway:
                m.gateway = row.gateway
            if row.topic_name:
                m.topic_name = row.topic_name
            session.add(m)
            if ("m", row.meter_id) not in seen:
                counts["meters"] += 1
                seen.add(("m", row.meter_id))
        if row.person_id:
            p = _upsert_person(session, row)
            if row.role == "caregiver":
                _upsert_caregiver(session, hh, p, row)
            elif hh not in p.households:
                p.households.append(hh)
            if ("p", row.person_id) not in seen:
                counts["persons"] += 1
                seen.add(("p", row.person_id))
        session.flush()
    session.commit()
    return counts


def _upsert_person(session: Session, row: RegistryRow) -> Person:
    p = session.get(Person, row.person_id) or Person(id=row.person_id)
    for attr in ("name", "email", "phone", "language", "availability", "quiet_hours", "notify"):
        if getattr(row, attr):
            setattr(p, attr, getattr(row, attr))
    if row.channels:
        p.channels = " ".join(row.channels)
    if p.language is None:
        p.language = "fr"
    session.add(p)
    return p


def _upsert_caregiver(session: Session, hh: Household, person: Person, row: RegistryRow) -> None:
    link = session.get(CaregiverLink, (hh.id, person.id))
    if link is None:
        link = CaregiverLink(household=hh, person=person, history_granted=False)
        session.add(link)
    if row.relation:
        link.relation = row.relation
    if row.level is not None:
        link.level = row.level


def set_history_grant(session: Session, household_id: str, person_id: str, granted: bool) -> None:
    """Allow (or stop allowing) a caregiver to read the household's consumption history; commits.

    Raises ``LookupError`` when ``person_id`` is not a caregiver of ``household_id``.
    """
    link = session.get(CaregiverLink, (household_id, person_id))
    if link is None:
        raise LookupError(f"person {person_id} is not a caregiver of household {household_id}")
    link.history_granted = granted
    session.commit()


def known_meter_ids(session: Session) -> set[str]:
    return set(session.scalars(select(Meter.id)))


def residents_of_meter(session: Session, meter_id: str) -> list[Person]:
    """The people to tell about a meter: the residents of its household."""
    meter = session.get(Meter, meter_id)
    if meter is None or meter.household is None:
        return []
    return list(meter.household.residents)
