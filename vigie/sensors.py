"""Assisted-living home sensors in the registry: the table, the file loader, the ingest lookup.

A home is a registry household (:mod:`vigie.registry`); each of its sensors has an opaque id (what
InfluxDB and the analytics know), the zigbee2mqtt friendly name it publishes under (which often names
the room or the resident, so it stays in the relational store), its :class:`~vigie.records.Room` and
:class:`~vigie.records.SensorKind`, and the longest normal silence between two of its messages
(``expected_interval_s``, for the silent-device check). Format and zigbee2mqtt setup:
``docs/homes.md``.

YAML — a ``sensors`` list inside each household entry of the registry file::

    households:
      - id: home-0001
        sensors:
          - {id: s-3f9a1c0b7e, friendly_name: home-0001/bathroom/door, room: bathroom, kind: contact,
             expected_interval_s: 3600}

CSV — a file of its own, header required::

    household_id,sensor_id,friendly_name,room,kind,expected_interval_s

Loading is an upsert by sensor id (a sensor may move to another household; nothing is deleted).
The households must already be registered (load the registry's households first). A malformed file,
an unknown household or a friendly name already used by another sensor raises
:class:`~vigie.registry.RegistryError` naming the file and the entry, and nothing is written.
"""

from __future__ import annotations

import csv
import logging
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import yaml
from sqlalchemy import Enum, ForeignKey, Integer, String, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from vigie.db import Base
from vigie.ingest.decoders.zigbee2mqtt import SensorInfo
from vigie.records import Room, SensorKind
from vigie.registry import Household, RegistryError

log = logging.getLogger(__name__)

#: zigbee2mqtt's passive availability timeout for battery devices (25 h, ``availability.passive``):
#: the silence after which zigbee2mqtt itself calls a device offline.
DEFAULT_EXPECTED_INTERVAL_S = 90_000
MAX_FRIENDLY_NAME = 200
CSV_COLUMNS = ("household_id", "sensor_id", "friendly_name", "room", "kind", "expected_interval_s")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# Topic levels zigbee2mqtt itself uses after a friendly name: a name ending so would be misread.
_RESERVED_LAST = frozenset({"availability", "set", "get", "bridge"})


def _enum(cls) -> Enum:
    return Enum(cls, native_enum=False, length=20, values_callable=lambda e: [m.value for m in e],
                validate_strings=True)


class Sensor(Base):
    """One home sensor (see the module docstring)."""

    __tablename__ = "home_sensors"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    household_id: Mapped[str] = mapped_column(ForeignKey("households.id", ondelete="CASCADE"), index=True)
    friendly_name: Mapped[str] = mapped_column(String(MAX_FRIENDLY_NAME), unique=True)
    room: Mapped[Room] = mapped_column(_enum(Room))
    kind: Mapped[SensorKind] = mapped_column(_enum(SensorKind))
    expected_interval_s: Mapped[int] = mapped_column(Integer, default=DEFAULT_EXPECTED_INTERVAL_S)

    def info(self) -> SensorInfo:
        return SensorInfo(sensor_id=self.id, kind=self.kind, room=self.room, home_id=self.household_id)


@dataclass(frozen=True, slots=True)
class SensorRow:
    """One sensor of a registry file, validated."""

    household_id: str
    sensor_id: str
    friendly_name: str
    room: Room
    kind: SensorKind
    expected_interval_s: int = DEFAULT_EXPECTED_INTERVAL_S


def parse_sensors_file(path: Path | str) -> list[SensorRow]:
    """The sensors of a YAML registry file (``households[].sensors``) or a sensors CSV file.

    Raises :class:`RegistryError` (file and entry named) for anything malformed, including a sensor
    id or friendly name given twice in the file.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        rows = _rows_from_yaml(path)
    elif suffix == ".csv":
        rows = _rows_from_csv(path)
    else:
        raise RegistryError(f"{path}: expected a .yaml, .yml or .csv file")
    seen_ids: dict[str, str] = {}
    seen_names: dict[str, str] = {}
    for row in rows:
        if row.sensor_id in seen_ids:
            raise RegistryError(f"{path}: sensor {row.sensor_id} is listed twice")
        if row.friendly_name in seen_names:
            raise RegistryError(f"{path}: sensors {seen_names[row.friendly_name]} and {row.sensor_id} have the "
                                f"same friendly_name {row.friendly_name!r}")
        seen_ids[row.sensor_id] = row.household_id
        seen_names[row.friendly_name] = row.sensor_id
    return rows


def load_sensors_file(session: Session, path: Path | str) -> dict[str, int]:
    """Parse ``path`` (:func:`parse_sensors_file`) and upsert its sensors (:func:`upsert_sensors`)."""
    return upsert_sensors(session, parse_sensors_file(path), where=str(path))


def upsert_sensors(session: Session, rows: list[SensorRow], where: str = "sensors") -> dict[str, int]:
    """Upsert ``rows`` and commit; returns ``{"sensors": n}``. Raises :class:`RegistryError`
    (nothing written) when a household is not registered or a friendly name belongs to another
    sensor already."""
    households = {r.household_id for r in rows}
    known = set(session.scalars(select(Household.id).where(Household.id.in_(households)))) if rows else set()
    for row in rows:
        if row.household_id not in known:
            raise RegistryError(f"{where}: sensor {row.sensor_id}: household {row.household_id} is not registered "
                                "(load the registry's households first)")
    names = {r.friendly_name: r.sensor_id for r in rows}
    if names:
        for sensor_id, name in session.execute(select(Sensor.id, Sensor.friendly_name)
                                               .where(Sensor.friendly_name.in_(names))):
            if sensor_id != names[name]:
                raise RegistryError(f"{where}: friendly_name {name!r} of sensor {names[name]} already belongs "
                                    f"to sensor {sensor_id}")
    for row in rows:
        sensor = session.get(Sensor, row.sensor_id) or Sensor(id=row.sensor_id)
        sensor.household_id = row.household_id
        sensor.friendly_name = row.friendly_name
        sensor.room = row.room
        sensor.kind = row.kind
        sensor.expected_interval_s = row.expected_interval_s
        session.add(sensor)
    try:
        session.commit()
    except SQLAlchemyError:
        session.rollback()
        raise
    return {"sensors": len(rows)}


def _rows_from_yaml(path: Path) -> list[SensorRow]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise RegistryError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("households", []), list):
        raise RegistryError(f"{path}: expected a mapping with a 'households' list")
    rows = []
    for i, hh in enumerate(data.get("households") or []):
        if not isinstance(hh, dict) or not hh.get("id"):
            raise RegistryError(f"{path}: households[{i}] needs an 'id'")
        hid = str(hh["id"])
        sensors = hh.get("sensors") or []
        if not isinstance(sensors, list):
            raise RegistryError(f"{path}: household {hid}: 'sensors' must be a list")
        for j, entry in enumerate(sensors):
            where = f"{path}: household {hid}: sensors[{j}]"
            if not isinstance(entry, dict):
                raise RegistryError(f"{where}: expected a mapping with id, friendly_name, room, kind")
            rows.append(_row(hid, entry.get("id"), entry.get("friendly_name"), entry.get("room"), entry.get("kind"),
                             entry.get("expected_interval_s"), where))
    return rows


def _rows_from_csv(path: Path) -> list[SensorRow]:
    rows = []
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in CSV_COLUMNS[:5] if c not in (reader.fieldnames or ())]
        if missing:
            raise RegistryError(f"{path}: header must name {', '.join(CSV_COLUMNS)} (missing {', '.join(missing)})")
        for n, rec in enumerate(reader, start=2):
            clean = {k: (v.strip() or None) if isinstance(v, str) else v for k, v in rec.items() if k}
            if not clean.get("household_id"):
                raise RegistryError(f"{path}:{n}: household_id is empty")
            rows.append(_row(clean["household_id"], clean.get("sensor_id"), clean.get("friendly_name"),
                             clean.get("room"), clean.get("kind"), clean.get("expected_interval_s"), f"{path}:{n}"))
    return rows


def _row(household_id, sensor_id, friendly_name, room, kind, interval, where: str) -> SensorRow:
    if sensor_id is None or not _ID.fullmatch(str(sensor_id)):
        raise RegistryError(f"{where}: sensor id {sensor_id!r} must be 1-64 letters, digits, '.', '_' or '-'")
    where = f"{where} ({sensor_id})"
    return SensorRow(household_id=str(household_id), sensor_id=str(sensor_id),
                     friendly_name=_friendly_name(friendly_name, where),
                     room=_member(Room, room, "room", where), kind=_member(SensorKind, kind, "kind", where),
                     expected_interval_s=_interval(interval, where))


def _friendly_name(value, where: str) -> str:
    """A zigbee2mqtt friendly name as it appears after the base topic: 1–200 printable characters,
    '/'-separated non-empty levels, no MQTT wildcards, not ending in a level zigbee2mqtt reserves."""
    if not isinstance(value, str) or not value:
        raise RegistryError(f"{where}: friendly_name is missing")
    levels = value.split("/")
    if (len(value) > MAX_FRIENDLY_NAME or "" in levels or any(c in "+#" or not c.isprintable() for c in value)
            or value != value.strip() or levels[-1] in _RESERVED_LAST):
        raise RegistryError(f"{where}: friendly_name {value!r} cannot be a zigbee2mqtt topic (1-{MAX_FRIENDLY_NAME} "
                            "printable characters, no + or #, no empty level or surrounding spaces, not ending "
                            f"in /{', /'.join(sorted(_RESERVED_LAST))})")
    return value


def _member(cls, value, what: str, where: str):
    try:
        return cls(str(value).strip().lower())
    except ValueError:
        raise RegistryError(f"{where}: {what} must be one of {', '.join(m.value for m in cls)}, got {value!r}") from None


def _interval(value, where: str) -> int:
    if value is None or value == "":
        return DEFAULT_EXPECTED_INTERVAL_S
    try:
        seconds = int(str(value).strip())
    except ValueError:
        seconds = 0
    if seconds < 1:
        raise RegistryError(f"{where}: expected_interval_s must be a whole number of seconds ≥ 1, got {value!r}")
    return seconds


class RegistryUnavailable(RuntimeError):
    """The sensors cannot be read from the registry and none were ever loaded: not the message's
    fault, so the caller should retry rather than dead-letter it as an unknown device."""


class SensorDirectory:
    """Cached friendly name → :class:`~vigie.ingest.decoders.zigbee2mqtt.SensorInfo`, the
    zigbee2mqtt decoder's ``sensor_for`` lookup (call the object).

    All sensors are loaded at the first call and again every ``refresh_s``. A miss looks the name
    up at once (one indexed query), so a sensor registered a moment ago is known on its next
    message; a name still unknown is remembered as such for ``miss_ttl_s``, so an unregistered
    device publishing in a loop costs one query per ``miss_ttl_s``. If the registry cannot be read
    the last loaded sensors stay in use; before any load succeeded :class:`RegistryUnavailable`
    is raised.
    """

    def __init__(self, sessions: sessionmaker, *, refresh_s: float = 60.0, miss_ttl_s: float = 5.0) -> None:
        self._sessions = sessions
        self.refresh_s = refresh_s
        self.miss_ttl_s = miss_ttl_s
        self._by_name: dict[str, SensorInfo] | None = None
        self._misses: dict[str, float] = {}  # friendly name → monotonic time it was found unknown
        self._loaded_at = float("-inf")
        self._lock = threading.Lock()

    def __call__(self, friendly_name: str) -> SensorInfo | None:
        with self._lock:
            now = time.monotonic()
            if self._by_name is None or now - self._loaded_at >= self.refresh_s:
                self._load(now)
            if self._by_name is None:
                raise RegistryUnavailable("the registry's sensors cannot be read")
            info = self._by_name.get(friendly_name)
            if info is not None:
                return info
            missed = self._misses.get(friendly_name)
            if missed is not None and now - missed < self.miss_ttl_s:
                return None
            info = self._lookup(friendly_name)
            if info is None:
                self._misses[friendly_name] = now
            else:
                self._by_name[friendly_name] = info
                self._misses.pop(friendly_name, None)
            return info

    def refresh(self) -> None:
        """Reload every sensor now."""
        with self._lock:
            self._load(time.monotonic())

    def _lookup(self, friendly_name: str) -> SensorInfo | None:
        try:
            with self._sessions() as s:
                sensor = s.scalars(select(Sensor).where(Sensor.friendly_name == friendly_name)).first()
                return sensor.info() if sensor is not None else None
        except SQLAlchemyError as exc:
            log.error("registry unreadable: %s", type(exc).__name__)
            return None

    def _load(self, now: float) -> None:
        self._loaded_at = now
        try:
            with self._sessions() as s:
                self._by_name = {sensor.friendly_name: sensor.info() for sensor in s.scalars(select(Sensor))}
            self._misses.clear()
        except SQLAlchemyError as exc:
            log.error("registry unreadable, %s: %s", "keeping the last known sensors" if self._by_name is not None
                      else "no sensors known yet", type(exc).__name__)
