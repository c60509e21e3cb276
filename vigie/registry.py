"""Registry of households, the meters they own and the people living there.

Personal details (names, addresses, e-mails, phone numbers, channel URLs) live only here, in the
relational store; InfluxDB and logs know meters and households by opaque ids.

File formats for :func:`load_registry_file` (also in docs/registry.md):

YAML::

    households:
      - id: h-0001
        address: "3 rue de l'Église, 12345 Exemple"
        meters:
          - {id: "2a31f0c4", driver: izar}
        residents:
          - {id: p-0001, name: Marie Exemple, email: marie@example.org, language: fr,
             channels: ["ntfy://ntfy.example.org/topic"]}

CSV (one row per meter × resident; header required)::

    household_id,meter_id,driver,person_id,name,email,phone,language,channels

``channels`` holds extra Apprise URLs separated by spaces. Loading is an upsert: rows already present
are updated, nothing is deleted.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from sqlalchemy import Column, ForeignKey, String, Table, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from vigie.db import Base

household_residents = Table(
    "household_residents", Base.metadata,
    Column("household_id", ForeignKey("households.id", ondelete="CASCADE"), primary_key=True),
    Column("person_id", ForeignKey("persons.id", ondelete="CASCADE"), primary_key=True),
)


class Household(Base):
    __tablename__ = "households"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    address: Mapped[str | None] = mapped_column(String(300))
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
    households: Mapped[list[Household]] = relationship(secondary=household_residents, back_populates="residents")


class Meter(Base):
    __tablename__ = "meters"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    household_id: Mapped[str | None] = mapped_column(ForeignKey("households.id"))
    driver: Mapped[str | None] = mapped_column(String(40))
    household: Mapped[Household | None] = relationship(back_populates="meters")


@dataclass
class RegistryRow:
    """One meter × resident row of a registry file, after parsing."""

    household_id: str
    meter_id: str | None = None
    driver: str | None = None
    address: str | None = None
    person_id: str | None = None
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    language: str | None = None
    channels: list[str] = field(default_factory=list)


class RegistryError(ValueError):
    """A registry file that cannot be loaded; the message names the file and the entry."""


def _rows_from_yaml(path: Path) -> list[RegistryRow]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise RegistryError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("households", []), list):
        raise RegistryError(f"{path}: expected a mapping with a 'households' list")
    rows: list[RegistryRow] = []
    for i, hh in enumerate(data.get("households") or []):
        if not isinstance(hh, dict) or not hh.get("id"):
            raise RegistryError(f"{path}: households[{i}] needs an 'id'")
        hid = str(hh["id"])
        rows.append(RegistryRow(household_id=hid, address=hh.get("address")))
        for m in hh.get("meters") or []:
            m = m if isinstance(m, dict) else {"id": m}
            if not m.get("id"):
                raise RegistryError(f"{path}: household {hid}: a meter needs an 'id'")
            rows.append(RegistryRow(household_id=hid, meter_id=str(m["id"]), driver=m.get("driver")))
        for p in hh.get("residents") or []:
            if not isinstance(p, dict) or not p.get("id"):
                raise RegistryError(f"{path}: household {hid}: a resident needs an 'id'")
            rows.append(RegistryRow(household_id=hid, person_id=str(p["id"]), name=p.get("name"),
                                    email=p.get("email"), phone=p.get("phone"), language=p.get("language"),
                                    channels=list(p.get("channels") or [])))
    return rows


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
            rows.append(RegistryRow(
                household_id=clean["household_id"], meter_id=clean.get("meter_id"), driver=clean.get("driver"),
                address=clean.get("address"), person_id=clean.get("person_id"), name=clean.get("name"),
                email=clean.get("email"), phone=clean.get("phone"), language=clean.get("language"),
                channels=(clean.get("channels") or "").split()))
    return rows


def load_registry_file(session: Session, path: Path) -> dict[str, int]:
    """Upsert a YAML (.yaml/.yml) or CSV (.csv) registry file; returns counts per kind.

    Raises :class:`RegistryError` on a malformed file (nothing is written then).
    """
    path = Path(path)
    if path.suffix.lower() in (".yaml", ".yml"):
        rows = _rows_from_yaml(path)
    elif path.suffix.lower() == ".csv":
        rows = _rows_from_csv(path)
    else:
        raise RegistryError(f"{path}: expected a .yaml, .yml or .csv file")
    return upsert_rows(session, rows)


def upsert_rows(session: Session, rows: list[RegistryRow]) -> dict[str, int]:
    counts = {"households": 0, "meters": 0, "persons": 0}
    seen: set[tuple[str, str]] = set()
    for row in rows:
        hh = session.get(Household, row.household_id)
        if hh is None:
            hh = Household(id=row.household_id)
            session.add(hh)
        if ("h", row.household_id) not in seen:
            counts["households"] += 1
            seen.add(("h", row.household_id))
        if row.address:
            hh.address = row.address
        if row.meter_id:
            m = session.get(Meter, row.meter_id) or Meter(id=row.meter_id)
            m.household = hh
            if row.driver:
                m.driver = row.driver
            session.add(m)
            if ("m", row.meter_id) not in seen:
                counts["meters"] += 1
                seen.add(("m", row.meter_id))
        if row.person_id:
            p = session.get(Person, row.person_id) or Person(id=row.person_id)
            for attr in ("name", "email", "phone", "language"):
                if getattr(row, attr):
                    setattr(p, attr, getattr(row, attr))
            if row.channels:
                p.channels = " ".join(row.channels)
            if p.language is None:
                p.language = "fr"
            if hh not in p.households:
                p.households.append(hh)
            session.add(p)
            if ("p", row.person_id) not in seen:
                counts["persons"] += 1
                seen.add(("p", row.person_id))
        session.flush()
    session.commit()
    return counts


def known_meter_ids(session: Session) -> set[str]:
    return set(session.scalars(select(Meter.id)))


def residents_of_meter(session: Session, meter_id: str) -> list[Person]:
    """The people to tell about a meter: the residents of its household."""
    meter = session.get(Meter, meter_id)
    if meter is None or meter.household is None:
        return []
    return list(meter.household.residents)
