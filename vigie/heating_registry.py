"""Town-hall heating and LoRaWAN devices in the registry: tables, file loader, ingest lookup, layout.

A **building** (its name is not personal data) belongs to a commune, follows a country's public
holidays and has closure days; its **rooms** have an occupancy schedule (:mod:`vigie.timewindows`
weekly windows, local time), closures of their own and comfort / set-back temperatures; a room's
**heating devices** (:class:`~vigie.records.HeatingDeviceKind`: TRVs, heat meters, room and outdoor
sensors) publish through zigbee2mqtt (``friendly_name``) or a LoRaWAN network server (``lorawan:
{dev_eui, type}``). A LoRaWAN **device type** maps a network server's decoded payload to the
canonical fields (:class:`FieldMapping`); the water meters a LoRaWAN radio reads are listed under
``lorawan.devices``. Format: ``docs/registry.md`` ("Buildings and heating devices", "LoRaWAN
devices"); issue 5.

YAML, beside ``households:`` and ``staff:`` in the registry file::

    buildings:
      - id: b-mairie
        name: Mairie
        commune: exemple                 # default: settings.commune
        holidays: FR                     # python-holidays country, optional "-subdivision" (FR-57)
        closures: ["2026-12-24..2027-01-01", "2026-08-15"]
        outdoor_device: out-mairie       # a device of kind outdoor of this building
        rooms:
          - id: r-conseil
            name: Salle du conseil
            area_m2: 60
            comfort_c: 20                # default: settings.heating_comfort_c
            setback_c: 16                # default: settings.heating_setback_c
            schedule: "mon-fri 08:00-12:00; mon-fri 13:30-18:00"
            closures: ["2026-11-12"]
            devices:
              - {id: trv-0001, kind: trv, friendly_name: mairie/conseil/trv_1, radiator_w: 1500,
                 expected_interval_s: 1800}
              - {id: hm-0001, kind: heat_meter, lorawan: {dev_eui: "a84041000181c6a1", type: milesight-wt101}}
    lorawan:
      device_types:
        axioma-w1:
          family: water
          fields: {index_m3: current_volume_m3, flow_l_per_h: {path: flow_m3h, scale: 1000}}
          alarms: {leakage: LEAK, burst: BURST}
      devices:
        - {dev_eui: "70B3D5FFFE0A1B2C", type: axioma-w1, meter: "axw1-000123"}

Loading is an upsert by id (device types by name, LoRaWAN devices by dev_eui): an entry of the
file replaces what the registry held for that entity (a setting it leaves out takes its default;
a device without ``lorawan:`` loses its former dev_eui), entities the file does not name are left
alone, nothing is deleted. The water meters of ``lorawan.devices`` must be registered (in the same
file's households or before). Anything malformed, an unknown canonical field or family, a type
used but not defined (in the file or before), a friendly name or dev_eui that belongs to another
device raises :class:`~vigie.registry.RegistryError` naming the file and the entry, and nothing
is written.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import yaml
from sqlalchemy import JSON, Enum, Float, ForeignKey, Integer, String, delete, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from vigie.config import Settings
from vigie.db import Base
from vigie.records import HeatingDeviceKind, HeatingReading, MeterAlarm
from vigie.registry import DEFAULT_COMMUNE, Meter, RegistryError
from vigie.timewindows import WindowError, normalise, parse_windows

log = logging.getLogger(__name__)

#: Families a LoRaWAN device type may feed: ``water`` → MeterReading, ``heating`` → HeatingReading.
FAMILIES = ("water", "heating")
#: Canonical fields a mapping may fill, per family (``time`` optional in both: else reception time).
WATER_FIELDS = frozenset({"index_m3", "time", "flow_l_per_h", "battery_pct"})
HEATING_FIELDS = frozenset({f for f in HeatingReading.__dataclass_fields__ if f not in ("device_id", "time", "source")}
                           | {"time"})
CANONICAL_FIELDS = {"water": WATER_FIELDS, "heating": HEATING_FIELDS}
REQUIRED_FIELDS = {"water": frozenset({"index_m3"}), "heating": frozenset()}
#: Canonical fields that are flags (JSON booleans, true/false/on/off/yes/no text, or 0/1).
BOOLEAN_FIELDS = frozenset({"heating", "window_open", "occupied", "battery_low"})
#: Dead-letter kind of every :class:`MappingError` (issue 5 contract).
MAPPING_ERROR = "mapping_error"
#: Room temperatures given to rooms that set none, °C (settings.heating_comfort_c / heating_setback_c).
DEFAULT_COMFORT_C: float = Settings.model_fields["heating_comfort_c"].default
DEFAULT_SETBACK_C: float = Settings.model_fields["heating_setback_c"].default
#: zigbee2mqtt's passive availability timeout for battery devices (25 h, as vigie.sensors'): the
#: longest normal silence of a device whose entry sets no ``expected_interval_s``.
DEFAULT_EXPECTED_INTERVAL_S = 90_000
MAX_FRIENDLY_NAME = 200
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_DEV_EUI = re.compile(r"[0-9a-f]{16}")
_PATH = re.compile(r"[^.\s]+(?:\.[^.\s]+)*")
_HOLIDAYS = re.compile(r"(?P<country>[A-Z]{2,3})(?:-(?P<subdiv>.+))?")
_TRUE = frozenset({"true", "on", "yes", "1"})
_FALSE = frozenset({"false", "off", "no", "0"})
# Allowed keys of each entry: a misspelt key (comfort instead of comfort_c) is an error, not a default.
_BUILDING_KEYS = frozenset({"id", "name", "commune", "holidays", "closures", "outdoor_device", "rooms"})
_ROOM_KEYS = frozenset({"id", "name", "area_m2", "comfort_c", "setback_c", "schedule", "closures", "devices"})
_DEVICE_KEYS = frozenset({"id", "kind", "friendly_name", "radiator_w", "expected_interval_s", "lorawan"})
_TYPE_KEYS = frozenset({"family", "fields", "alarms"})


def _enum(cls) -> Enum:
    return Enum(cls, native_enum=False, length=20, values_callable=lambda e: [m.value for m in e],
                validate_strings=True)


# --- tables -----------------------------------------------------------------------------------

class Building(Base):
    """A heated public building. ``closures``: ``[[first, last], …]`` ISO local dates, inclusive;
    ``holidays``: python-holidays country code with an optional ``-subdivision``."""

    __tablename__ = "buildings"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    commune: Mapped[str] = mapped_column(String(64), default=DEFAULT_COMMUNE, index=True)
    holidays: Mapped[str | None] = mapped_column(String(40))
    closures: Mapped[list | None] = mapped_column(JSON)
    # Not a foreign key: the device lives in a room of this building (a cycle of keys otherwise).
    outdoor_device: Mapped[str | None] = mapped_column(String(64))


class HeatingRoom(Base):
    """A heated room: ``comfort_c``/``setback_c`` °C, ``schedule`` weekly occupancy windows
    (normalised :mod:`vigie.timewindows` text, None: never scheduled), ``closures`` as Building's."""

    __tablename__ = "heating_rooms"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    building_id: Mapped[str] = mapped_column(ForeignKey("buildings.id", ondelete="CASCADE"), index=True)
    name: Mapped[str | None] = mapped_column(String(200))
    area_m2: Mapped[float | None] = mapped_column(Float)
    comfort_c: Mapped[float] = mapped_column(Float)
    setback_c: Mapped[float] = mapped_column(Float)
    schedule: Mapped[str | None] = mapped_column(String(500))
    closures: Mapped[list | None] = mapped_column(JSON)


class HeatingDevice(Base):
    """A heating device of a room (its building kept beside it for the tags and the layout);
    reached by zigbee2mqtt ``friendly_name`` and/or LoRaWAN ``dev_eui`` (lower-case hex)."""

    __tablename__ = "heating_devices"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    room_id: Mapped[str] = mapped_column(ForeignKey("heating_rooms.id", ondelete="CASCADE"), index=True)
    building_id: Mapped[str] = mapped_column(ForeignKey("buildings.id", ondelete="CASCADE"), index=True)
    kind: Mapped[HeatingDeviceKind] = mapped_column(_enum(HeatingDeviceKind))
    friendly_name: Mapped[str | None] = mapped_column(String(MAX_FRIENDLY_NAME), unique=True)
    radiator_w: Mapped[float | None] = mapped_column(Float)
    expected_interval_s: Mapped[int] = mapped_column(Integer, default=DEFAULT_EXPECTED_INTERVAL_S)
    dev_eui: Mapped[str | None] = mapped_column(String(16), unique=True)
    lorawan_type: Mapped[str | None] = mapped_column(ForeignKey("lorawan_device_types.name"))

    def info(self) -> "HeatingDeviceInfo":
        return HeatingDeviceInfo(device_id=self.id, kind=self.kind, building_id=self.building_id,
                                 room_id=self.room_id)


class LorawanDeviceType(Base):
    """A LoRaWAN device type: ``family`` (water|heating) and ``mapping``
    ``{"fields": {canonical: [dotted path, scale]}, "alarms": {dotted path: MeterAlarm}}``."""

    __tablename__ = "lorawan_device_types"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    family: Mapped[str] = mapped_column(String(10))
    mapping: Mapped[dict] = mapped_column(JSON)

    def field_mapping(self) -> "FieldMapping":
        return FieldMapping(family=self.family,
                            fields={k: (str(v[0]), float(v[1])) for k, v in self.mapping.get("fields", {}).items()},
                            alarms={str(k): str(v) for k, v in self.mapping.get("alarms", {}).items()})


class LorawanDevice(Base):
    """A LoRaWAN end device by DevEUI (lower-case hex): a water meter's radio (``meter_id``) or a
    heating device (``device_id``), decoded by its ``type``."""

    __tablename__ = "lorawan_devices"
    dev_eui: Mapped[str] = mapped_column(String(16), primary_key=True)
    type: Mapped[str] = mapped_column(ForeignKey("lorawan_device_types.name"), index=True)
    meter_id: Mapped[str | None] = mapped_column(ForeignKey("meters.id"), index=True)
    device_id: Mapped[str | None] = mapped_column(ForeignKey("heating_devices.id", ondelete="CASCADE"), index=True)


# --- lookup records ---------------------------------------------------------------------------

class MappingError(ValueError):
    """A decoded payload that a :class:`FieldMapping` cannot read: a mapped path missing (for a
    required field) or holding the wrong type. ``kind`` is the dead-letter kind (``mapping_error``),
    ``path`` the dotted path at fault; the message names the canonical field, the path and the
    offending value (shortened), never the whole payload."""

    def __init__(self, reason: str, path: str | None = None, kind: str = MAPPING_ERROR) -> None:
        super().__init__(reason)
        self.kind = kind
        self.path = path


@dataclass(frozen=True, slots=True)
class HeatingDeviceInfo:
    """What the registry says about one heating device: its id, kind, building and room."""

    device_id: str
    kind: HeatingDeviceKind
    building_id: str
    room_id: str


@dataclass(frozen=True, slots=True)
class FieldMapping:
    """How one LoRaWAN device type's decoded payload (TTS ``uplink_message.decoded_payload``,
    ChirpStack ``object``) maps to canonical fields.

    - ``family``: ``water`` (→ MeterReading) or ``heating`` (→ HeatingReading);
    - ``fields``: canonical field → (dotted path, scale); a path step into a list is its index
      (``values.0.v``); the value read is multiplied by ``scale``;
    - ``alarms``: dotted path → :class:`~vigie.records.MeterAlarm` name, raised when the flag is true.
    """

    family: str
    fields: dict[str, tuple[str, float]]
    alarms: dict[str, str] = field(default_factory=dict)

    def extract(self, obj: Any) -> dict[str, float | bool | str]:
        """The canonical fields present in ``obj`` (absent or null ones are left out).

        Numbers (JSON numbers or decimal text, finite) come back as ``float`` × scale; flags
        (:data:`BOOLEAN_FIELDS`) as ``bool`` from JSON booleans, the texts true/false/on/off/yes/no
        (any case) or 0/1; ``time`` as the payload's text (ISO 8601, for the decoder to parse) or,
        when numeric, epoch seconds (× scale: a ms timestamp maps with ``scale: 0.001``).
        Raises :class:`MappingError` for a required field (water ``index_m3``) missing or null, a
        path through something that is not an object or list, or a value of the wrong type.
        """
        out: dict[str, float | bool | str] = {}
        for name, (path, scale) in self.fields.items():
            value = lookup(obj, path)
            if value is None:
                if name in REQUIRED_FIELDS.get(self.family, ()):
                    raise MappingError(f"{name}: {path} is missing or null", path)
                continue
            if name in BOOLEAN_FIELDS:
                out[name] = _flag(value, name, path)
            elif name == "time" and isinstance(value, str):
                out[name] = value
            else:
                out[name] = _number(value, name, path) * scale
        return out

    def alarms_of(self, obj: Any) -> tuple[str, ...]:
        """The alarm names whose flag is true in ``obj``, sorted, each once (absent or null: no
        alarm). Raises :class:`MappingError` for a flag of the wrong type."""
        raised = {alarm for path, alarm in self.alarms.items()
                  if (value := lookup(obj, path)) is not None and _flag(value, alarm, path)}
        return tuple(sorted(raised))


@dataclass(frozen=True, slots=True)
class LorawanDeviceInfo:
    """What the registry says about one DevEUI: its type and mapping, and the water meter
    (``meter_id``) or heating device (``device``) it reports for — exactly one is set."""

    dev_eui: str
    type: str
    mapping: FieldMapping
    meter_id: str | None
    device: HeatingDeviceInfo | None


def lookup(obj: Any, path: str) -> Any:
    """The value at dotted ``path`` in ``obj`` (objects by key, lists by decimal index); ``None``
    when a step is absent or null. Raises :class:`MappingError` when a step meets a value that
    is neither an object nor a list (the payload's shape is not the mapping's)."""
    node = obj
    for step in path.split("."):
        if node is None:
            return None
        if isinstance(node, dict):
            node = node.get(step)
        elif isinstance(node, list):
            if not step.isdigit():
                raise MappingError(f"{path}: {step!r} indexes a list", path)
            i = int(step)
            node = node[i] if i < len(node) else None
        else:
            raise MappingError(f"{path}: {step!r} steps into {_short(node)}, not an object", path)
    return node


def _number(value: Any, name: str, path: str) -> float:
    try:
        x = _fields.number({"v": value}, "v", MAPPING_ERROR)
    except ValueError:
        raise MappingError(f"{name}: {path} is not a finite number: {_short(value)}", path) from None
    assert x is not None
    return x


def _flag(value: Any, name: str, path: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise MappingError(f"{name}: {path} must be true/false, on/off, yes/no or 0/1, got {_short(value)}", path)


def _short(value: Any) -> str:
    return _fields._short(value)


# --- parsing ----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class BuildingRow:
    """One building of a registry file, validated (``commune`` None: the default)."""

    building_id: str
    name: str | None
    commune: str | None
    holidays: str | None
    closures: tuple[tuple[date, date], ...]
    outdoor_device: str | None


@dataclass(frozen=True, slots=True)
class RoomRow:
    """One room of a registry file, validated (``comfort_c``/``setback_c`` None: the defaults)."""

    room_id: str
    building_id: str
    name: str | None
    area_m2: float | None
    comfort_c: float | None
    setback_c: float | None
    schedule: str | None
    closures: tuple[tuple[date, date], ...]


@dataclass(frozen=True, slots=True)
class DeviceRow:
    """One heating device of a registry file, validated (``dev_eui`` lower-case)."""

    device_id: str
    room_id: str
    building_id: str
    kind: HeatingDeviceKind
    friendly_name: str | None
    radiator_w: float | None
    expected_interval_s: int
    dev_eui: str | None
    lorawan_type: str | None
    where: str


@dataclass(frozen=True, slots=True)
class LorawanRow:
    """One ``lorawan.devices`` entry: a water meter's radio."""

    dev_eui: str
    type: str
    meter_id: str
    where: str


@dataclass(frozen=True)
class HeatingFile:
    """The ``buildings:`` and ``lorawan:`` sections of a registry file, validated on their own
    (:func:`check_heating` then checks them against the registry)."""

    where: str
    buildings: tuple[BuildingRow, ...] = ()
    rooms: tuple[RoomRow, ...] = ()
    devices: tuple[DeviceRow, ...] = ()
    device_types: dict[str, FieldMapping] = field(default_factory=dict)
    lorawan_devices: tuple[LorawanRow, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.buildings or self.device_types or self.lorawan_devices)


def parse_heating_file(path: Path | str) -> HeatingFile:
    """The ``buildings:`` and ``lorawan:`` sections of a YAML registry file (empty when it has
    neither). Raises :class:`RegistryError` naming the file and the entry."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise RegistryError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise RegistryError(f"{path}: expected a mapping at the top level")
    return parse_heating(data, str(path))


def parse_heating(data: dict, where: str) -> HeatingFile:
    """:func:`parse_heating_file` on an already loaded YAML mapping; ``where`` names its source."""
    types = _device_types(data.get("lorawan"), where)
    buildings, rooms, devices = [], [], []
    raw = data.get("buildings") or []
    if not isinstance(raw, list):
        raise RegistryError(f"{where}: 'buildings' must be a list")
    for i, b in enumerate(raw):
        building, b_rooms, b_devices = _building(b, f"{where}: buildings[{i}]")
        buildings.append(building)
        rooms.extend(b_rooms)
        devices.extend(b_devices)
    raw_meters = (data.get("lorawan") or {}).get("devices") or []
    if not isinstance(raw_meters, list):
        raise RegistryError(f"{where}: lorawan.devices must be a list")
    meters = [_lorawan_device(e, f"{where}: lorawan.devices[{i}]") for i, e in enumerate(raw_meters)]
    _unique(where, "building", [b.building_id for b in buildings])
    _unique(where, "room", [r.room_id for r in rooms])
    _unique(where, "device", [d.device_id for d in devices])
    _unique(where, "friendly_name", [d.friendly_name for d in devices if d.friendly_name])
    _unique(where, "dev_eui", [d.dev_eui for d in devices if d.dev_eui] + [m.dev_eui for m in meters])
    for b in buildings:
        if b.outdoor_device:
            dev = next((d for d in devices if d.device_id == b.outdoor_device), None)
            if dev is not None and (dev.building_id != b.building_id or dev.kind is not HeatingDeviceKind.OUTDOOR):
                raise RegistryError(f"{where}: building {b.building_id}: outdoor_device {b.outdoor_device} must be "
                                    "a device of kind outdoor in one of its rooms")
    for d in devices:
        if d.lorawan_type in types and types[d.lorawan_type].family != "heating":
            raise RegistryError(f"{d.where}: type {d.lorawan_type} is of family {types[d.lorawan_type].family}, "
                                "not heating")
    for m in meters:
        if m.type in types and types[m.type].family != "water":
            raise RegistryError(f"{m.where}: type {m.type} is of family {types[m.type].family}: lorawan.devices "
                                "lists water meters (heating devices say lorawan: under their room)")
    return HeatingFile(where, tuple(buildings), tuple(rooms), tuple(devices), types, tuple(meters))


def _unique(where: str, what: str, values: list[str]) -> None:
    seen: set[str] = set()
    for v in values:
        if v in seen:
            raise RegistryError(f"{where}: {what} {v} is listed twice")
        seen.add(v)


def _mapping(entry: Any, keys: frozenset[str], where: str) -> dict:
    if not isinstance(entry, dict):
        raise RegistryError(f"{where}: expected a mapping")
    unknown = sorted(map(str, set(entry) - keys))
    if unknown:
        raise RegistryError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(keys))})")
    return entry


def _id(value: Any, what: str, where: str) -> str:
    if value is None or isinstance(value, bool) or not _ID.fullmatch(str(value)):
        raise RegistryError(f"{where}: {what} {value!r} must be 1-64 letters, digits, '.', '_' or '-' "
                            "(starting with a letter or digit)")
    return str(value)


def _text(value: Any, what: str, where: str, limit: int = 200) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    if len(text) > limit or any(not c.isprintable() for c in text):
        raise RegistryError(f"{where}: {what} must be at most {limit} printable characters")
    return text or None


def _positive(value: Any, what: str, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise RegistryError(f"{where}: {what} must be a positive number, got {value!r}")
    return float(value)


def _temperature(value: Any, what: str, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 5 <= value <= 30:
        raise RegistryError(f"{where}: {what} must be a temperature from 5 to 30 °C, got {value!r}")
    return float(value)


def parse_closure(text: str) -> tuple[date, date]:
    """A closure ``YYYY-MM-DD`` or ``YYYY-MM-DD..YYYY-MM-DD`` → its inclusive (first, last) local
    dates. Raises ``ValueError`` quoting the text."""
    first, sep, last = str(text).partition("..")
    try:
        a = date.fromisoformat(first.strip())
        b = date.fromisoformat(last.strip()) if sep else a
    except ValueError:
        raise ValueError(f"closure {text!r} is not YYYY-MM-DD or YYYY-MM-DD..YYYY-MM-DD") from None
    if b < a:
        raise ValueError(f"closure {text!r} ends before it starts")
    return a, b


def _closures(value: Any, where: str) -> tuple[tuple[date, date], ...]:
    """``["2026-12-24..2027-01-01", "2026-08-15", …]`` → inclusive (first, last) local dates."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise RegistryError(f"{where}: closures must be a list of dates or date ranges FIRST..LAST")
    out = []
    for item in value:
        if isinstance(item, date) and not isinstance(item, datetime):
            out.append((item, item))
            continue
        try:
            out.append(parse_closure(item))
        except ValueError as exc:
            raise RegistryError(f"{where}: {exc}") from None
    return tuple(out)


def _holidays(value: Any, where: str) -> str | None:
    if value is None or value == "":
        return None
    m = _HOLIDAYS.fullmatch(str(value).strip())
    if m is None:
        raise RegistryError(f"{where}: holidays {value!r} must be an ISO country code, optionally -subdivision "
                            "(FR, FR-57)")
    try:
        holiday_calendar(m["country"], m["subdiv"])
    except NotImplementedError as exc:
        raise RegistryError(f"{where}: holidays {value!r}: {exc} (python-holidays)") from None
    return str(value).strip()


def holiday_calendar(country: str, subdiv: str | None = None, years: Iterable[int] = ()):
    """The python-holidays calendar of ``country`` (ISO 3166-1) and ``subdiv`` for ``years``.
    Raises ``NotImplementedError`` for a country or subdivision it does not know."""
    import holidays  # ~50 ms at first import: only when a building names its holidays

    return holidays.country_holidays(country, subdiv=subdiv, years=list(years) or None)


def _building(entry: Any, where: str) -> tuple[BuildingRow, list[RoomRow], list[DeviceRow]]:
    entry = _mapping(entry, _BUILDING_KEYS, where)
    bid = _id(entry.get("id"), "building id", where)
    where = f"{where} ({bid})"
    row = BuildingRow(building_id=bid, name=_text(entry.get("name"), "name", where),
                      commune=_text(entry.get("commune"), "commune", where, 64),
                      holidays=_holidays(entry.get("holidays"), where), closures=_closures(entry.get("closures"), where),
                      outdoor_device=None if entry.get("outdoor_device") is None
                      else _id(entry.get("outdoor_device"), "outdoor_device", where))
    raw_rooms = entry.get("rooms") or []
    if not isinstance(raw_rooms, list):
        raise RegistryError(f"{where}: 'rooms' must be a list")
    rooms, devices = [], []
    for j, r in enumerate(raw_rooms):
        room, room_devices = _room(r, bid, f"{where}: rooms[{j}]")
        rooms.append(room)
        devices.extend(room_devices)
    return row, rooms, devices


def _room(entry: Any, building_id: str, where: str) -> tuple[RoomRow, list[DeviceRow]]:
    entry = _mapping(entry, _ROOM_KEYS, where)
    rid = _id(entry.get("id"), "room id", where)
    where = f"{where} ({rid})"
    comfort = _temperature(entry.get("comfort_c"), "comfort_c", where)
    setback = _temperature(entry.get("setback_c"), "setback_c", where)
    if comfort is not None and setback is not None and setback > comfort:
        raise RegistryError(f"{where}: setback_c {setback:g} is above comfort_c {comfort:g}")
    try:
        schedule = normalise(entry.get("schedule"))
    except WindowError as exc:
        raise RegistryError(f"{where}: schedule {exc}") from None
    if schedule is not None and len(schedule) > 500:
        raise RegistryError(f"{where}: schedule is longer than 500 characters")
    row = RoomRow(room_id=rid, building_id=building_id, name=_text(entry.get("name"), "name", where),
                  area_m2=_positive(entry.get("area_m2"), "area_m2", where), comfort_c=comfort, setback_c=setback,
                  schedule=schedule, closures=_closures(entry.get("closures"), where))
    raw = entry.get("devices") or []
    if not isinstance(raw, list):
        raise RegistryError(f"{where}: 'devices' must be a list")
    return row, [_device(d, building_id, rid, f"{where}: devices[{k}]") for k, d in enumerate(raw)]


def _device(entry: Any, building_id: str, room_id: str, where: str) -> DeviceRow:
    entry = _mapping(entry, _DEVICE_KEYS, where)
    did = _id(entry.get("id"), "device id", where)
    where = f"{where} ({did})"
    try:
        kind = HeatingDeviceKind(str(entry.get("kind")).strip().lower())
    except ValueError:
        raise RegistryError(f"{where}: kind must be one of {', '.join(HeatingDeviceKind)}, "
                            f"got {entry.get('kind')!r}") from None
    name = entry.get("friendly_name")
    if name is not None:
        name = _sensors._friendly_name(name, where)
    dev_eui = lorawan_type = None
    lw = entry.get("lorawan")
    if lw is not None:
        lw = _mapping(lw, frozenset({"dev_eui", "type"}), f"{where}: lorawan")
        dev_eui = _dev_eui(lw.get("dev_eui"), f"{where}: lorawan")
        lorawan_type = _id(lw.get("type"), "lorawan type", f"{where}: lorawan")
    if name is None and dev_eui is None:
        raise RegistryError(f"{where}: a device needs a friendly_name (zigbee2mqtt) or lorawan: {{dev_eui, type}}")
    interval = entry.get("expected_interval_s")
    if interval is not None and (isinstance(interval, bool) or not isinstance(interval, int) or interval < 1):
        raise RegistryError(f"{where}: expected_interval_s must be a whole number of seconds ≥ 1, got {interval!r}")
    return DeviceRow(device_id=did, room_id=room_id, building_id=building_id, kind=kind, friendly_name=name,
                     radiator_w=_positive(entry.get("radiator_w"), "radiator_w", where),
                     expected_interval_s=interval or DEFAULT_EXPECTED_INTERVAL_S, dev_eui=dev_eui,
                     lorawan_type=lorawan_type, where=where)


def _dev_eui(value: Any, where: str) -> str:
    text = str(value).strip().lower() if isinstance(value, str) else ""
    if not _DEV_EUI.fullmatch(text):
        raise RegistryError(f"{where}: dev_eui {value!r} must be 16 hexadecimal digits (quote it in YAML)")
    return text


def _device_types(lorawan: Any, where: str) -> dict[str, FieldMapping]:
    if lorawan is None:
        return {}
    lorawan = _mapping(lorawan, frozenset({"device_types", "devices"}), f"{where}: lorawan")
    raw = lorawan.get("device_types") or {}
    if not isinstance(raw, dict):
        raise RegistryError(f"{where}: lorawan.device_types must map type names to their mapping")
    return {_id(name, "device type", f"{where}: lorawan.device_types"):
            _device_type(spec, f"{where}: lorawan.device_types.{name}") for name, spec in raw.items()}


def _device_type(spec: Any, where: str) -> FieldMapping:
    spec = _mapping(spec, _TYPE_KEYS, where)
    family = spec.get("family")
    if family not in FAMILIES:
        raise RegistryError(f"{where}: family must be one of {', '.join(FAMILIES)}, got {family!r}")
    raw = spec.get("fields")
    if not isinstance(raw, dict) or not raw:
        raise RegistryError(f"{where}: fields must map canonical fields to dotted paths")
    fields: dict[str, tuple[str, float]] = {}
    for name, target in raw.items():
        if name not in CANONICAL_FIELDS[family]:
            raise RegistryError(f"{where}: unknown {family} field {name!r} (known: "
                                f"{', '.join(sorted(CANONICAL_FIELDS[family]))})")
        path, scale = target, 1.0
        if isinstance(target, dict):
            _mapping(target, frozenset({"path", "scale"}), f"{where}: fields.{name}")
            path, scale = target.get("path"), target.get("scale", 1.0)
        if not isinstance(path, str) or not _PATH.fullmatch(path):
            raise RegistryError(f"{where}: fields.{name}: path {path!r} must be a dotted path (a.b.c)")
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale == 0:
            raise RegistryError(f"{where}: fields.{name}: scale must be a non-zero number, got {scale!r}")
        if name in BOOLEAN_FIELDS and scale != 1:
            raise RegistryError(f"{where}: fields.{name} is a flag: it takes no scale")
        fields[str(name)] = (path, float(scale))
    missing = REQUIRED_FIELDS[family] - set(fields)
    if missing:
        raise RegistryError(f"{where}: a {family} type must map {', '.join(sorted(missing))}")
    if not set(fields) - {"time"}:
        raise RegistryError(f"{where}: fields map only time: nothing to read")
    alarms: dict[str, str] = {}
    raw_alarms = spec.get("alarms") or {}
    if raw_alarms and family != "water":
        raise RegistryError(f"{where}: alarms are meter alarms: only a water type has them")
    if not isinstance(raw_alarms, dict):
        raise RegistryError(f"{where}: alarms must map dotted paths to meter alarms")
    for path, alarm in raw_alarms.items():
        if not isinstance(path, str) or not _PATH.fullmatch(path):
            raise RegistryError(f"{where}: alarms: path {path!r} must be a dotted path (a.b.c)")
        try:
            alarms[path] = str(MeterAlarm(str(alarm).strip().upper()))
        except ValueError:
            raise RegistryError(f"{where}: alarms.{path}: {alarm!r} is not one of "
                                f"{', '.join(MeterAlarm)}") from None
    return FieldMapping(family=family, fields=fields, alarms=alarms)


def _lorawan_device(entry: Any, where: str) -> LorawanRow:
    entry = _mapping(entry, frozenset({"dev_eui", "type", "meter"}), where)
    eui = _dev_eui(entry.get("dev_eui"), where)
    where = f"{where} ({eui})"
    meter = entry.get("meter")
    if not isinstance(meter, str) or not meter.strip() or len(meter) > 64:
        raise RegistryError(f"{where}: meter must name a registered water meter (a string of 1-64 characters)")
    return LorawanRow(dev_eui=eui, type=_id(entry.get("type"), "type", where), meter_id=meter, where=where)


# --- loading ----------------------------------------------------------------------------------

def check_heating(session: Session, spec: HeatingFile, known_meters: Iterable[str] = (), *,
                  comfort_c: float | None = None, setback_c: float | None = None) -> None:
    """Check ``spec`` against the registry without writing: every type it uses defined (in the
    file or the registry) and of the right family, every meter registered (or in
    ``known_meters``: the same file's households, about to be loaded), every outdoor device
    known, no friendly name or dev_eui of another device, no room whose set-back is above its
    comfort once the defaults ``comfort_c``/``setback_c`` are applied (None: the settings'
    defaults). Raises :class:`RegistryError`."""
    comfort_c = DEFAULT_COMFORT_C if comfort_c is None else comfort_c
    setback_c = DEFAULT_SETBACK_C if setback_c is None else setback_c
    for r in spec.rooms:
        comfort, setback = _or(r.comfort_c, comfort_c), _or(r.setback_c, setback_c)
        if setback > comfort:
            raise RegistryError(f"{spec.where}: room {r.room_id}: setback_c {setback:g} is above comfort_c "
                                f"{comfort:g} (defaults applied)")
    used = {d.lorawan_type for d in spec.devices if d.lorawan_type} | {m.type for m in spec.lorawan_devices}
    stored = {t.name: t.family for t in session.scalars(
        select(LorawanDeviceType).where(LorawanDeviceType.name.in_(used - set(spec.device_types))))}
    families = {**stored, **{n: m.family for n, m in spec.device_types.items()}}
    for d in spec.devices:
        if d.lorawan_type:
            _check_type(d.lorawan_type, "heating", families, d.where)
    for m in spec.lorawan_devices:
        _check_type(m.type, "water", families, m.where)
    meters = {m.meter_id for m in spec.lorawan_devices} - set(known_meters)
    registered = set(session.scalars(select(Meter.id).where(Meter.id.in_(meters)))) if meters else set()
    for m in spec.lorawan_devices:
        if m.meter_id in meters and m.meter_id not in registered:
            raise RegistryError(f"{m.where}: meter {m.meter_id} is not registered (list it under a household "
                                "of the registry first)")
    in_file = {d.device_id for d in spec.devices}
    for b in spec.buildings:
        if b.outdoor_device and b.outdoor_device not in in_file:
            dev = session.get(HeatingDevice, b.outdoor_device)
            if dev is None or dev.building_id != b.building_id or dev.kind is not HeatingDeviceKind.OUTDOOR:
                raise RegistryError(f"{spec.where}: building {b.building_id}: outdoor_device {b.outdoor_device} "
                                    "is not a registered device of kind outdoor in this building")
    names = {d.friendly_name: d for d in spec.devices if d.friendly_name}
    if names:
        for device_id, name in session.execute(select(HeatingDevice.id, HeatingDevice.friendly_name)
                                               .where(HeatingDevice.friendly_name.in_(names))):
            if device_id != names[name].device_id:
                raise RegistryError(f"{names[name].where}: friendly_name {name!r} already belongs to device {device_id}")
    euis = {d.dev_eui: d.device_id for d in spec.devices if d.dev_eui}
    where_eui = {d.dev_eui: d.where for d in spec.devices if d.dev_eui} | {m.dev_eui: m.where for m in spec.lorawan_devices}
    if euis:
        for device_id, eui in session.execute(select(HeatingDevice.id, HeatingDevice.dev_eui)
                                              .where(HeatingDevice.dev_eui.in_(euis))):
            if device_id != euis[eui]:
                raise RegistryError(f"{where_eui[eui]}: dev_eui {eui} already belongs to device {device_id}")
    if where_eui:
        for row in session.scalars(select(LorawanDevice).where(LorawanDevice.dev_eui.in_(where_eui))):
            if row.device_id is not None and row.device_id != euis.get(row.dev_eui):
                raise RegistryError(f"{where_eui[row.dev_eui]}: dev_eui {row.dev_eui} already belongs to "
                                    f"device {row.device_id}")


def _check_type(name: str, family: str, families: dict[str, str], where: str) -> None:
    if name not in families:
        raise RegistryError(f"{where}: LoRaWAN device type {name} is not defined (lorawan.device_types)")
    if families[name] != family:
        raise RegistryError(f"{where}: LoRaWAN device type {name} is of family {families[name]}, not {family}")


def upsert_heating(session: Session, spec: HeatingFile, *, default_commune: str = DEFAULT_COMMUNE,
                   comfort_c: float | None = None, setback_c: float | None = None) -> dict[str, int]:
    """Check (:func:`check_heating`) and upsert ``spec``, then commit; returns counts of
    buildings, rooms, heating devices, device types and LoRaWAN devices written. Defaults for
    what an entry leaves out: ``default_commune`` (settings.commune), ``comfort_c`` /
    ``setback_c`` (settings.heating_comfort_c / heating_setback_c; None: the settings' defaults).
    Raises :class:`RegistryError` (nothing written)."""
    if not spec:
        return {}
    check_heating(session, spec, comfort_c=comfort_c, setback_c=setback_c)
    comfort_c = DEFAULT_COMFORT_C if comfort_c is None else comfort_c
    setback_c = DEFAULT_SETBACK_C if setback_c is None else setback_c
    try:
        for name, mapping in spec.device_types.items():
            t = session.get(LorawanDeviceType, name) or LorawanDeviceType(name=name)
            t.family = mapping.family
            t.mapping = {"fields": {k: [p, s] for k, (p, s) in mapping.fields.items()}, "alarms": dict(mapping.alarms)}
            session.add(t)
        for b in spec.buildings:
            building = session.get(Building, b.building_id) or Building(id=b.building_id)
            building.name = b.name
            building.commune = b.commune or default_commune
            building.holidays = b.holidays
            building.closures = _closure_json(b.closures)
            building.outdoor_device = b.outdoor_device
            session.add(building)
        session.flush()
        for r in spec.rooms:
            room = session.get(HeatingRoom, r.room_id) or HeatingRoom(id=r.room_id)
            moved = room.building_id is not None and room.building_id != r.building_id
            room.building_id = r.building_id
            room.name = r.name
            room.area_m2 = r.area_m2
            room.comfort_c = _or(r.comfort_c, comfort_c)
            room.setback_c = _or(r.setback_c, setback_c)
            room.schedule = r.schedule
            room.closures = _closure_json(r.closures)
            session.add(room)
            if moved:  # devices the file does not list follow their room
                session.execute(update(HeatingDevice).where(HeatingDevice.room_id == r.room_id)
                                .values(building_id=r.building_id))
        session.flush()
        for d in spec.devices:
            device = session.get(HeatingDevice, d.device_id) or HeatingDevice(id=d.device_id)
            device.room_id, device.building_id, device.kind = d.room_id, d.building_id, d.kind
            device.friendly_name, device.radiator_w = d.friendly_name, d.radiator_w
            device.expected_interval_s = d.expected_interval_s
            device.dev_eui, device.lorawan_type = d.dev_eui, d.lorawan_type
            session.add(device)
        session.flush()
        for d in spec.devices:
            # The device's former radio, if it changed or went: that binding is part of this entry.
            stale = delete(LorawanDevice).where(LorawanDevice.device_id == d.device_id)
            if d.dev_eui:
                stale = stale.where(LorawanDevice.dev_eui != d.dev_eui)
            session.execute(stale)
            if d.dev_eui:
                _bind(session, d.dev_eui, d.lorawan_type, meter_id=None, device_id=d.device_id)
        for m in spec.lorawan_devices:
            _bind(session, m.dev_eui, m.type, meter_id=m.meter_id, device_id=None)
        session.commit()
    except SQLAlchemyError:
        session.rollback()
        raise
    return {"buildings": len(spec.buildings), "heating_rooms": len(spec.rooms),
            "heating_devices": len(spec.devices), "lorawan_device_types": len(spec.device_types),
            "lorawan_devices": len(spec.lorawan_devices) + sum(1 for d in spec.devices if d.dev_eui)}


def load_heating_file(session: Session, path: Path | str, **defaults) -> dict[str, int]:
    """Parse (:func:`parse_heating_file`) and upsert (:func:`upsert_heating`) one registry file."""
    return upsert_heating(session, parse_heating_file(path), **defaults)


def _bind(session: Session, dev_eui: str, type_: str | None, *, meter_id: str | None, device_id: str | None) -> None:
    row = session.get(LorawanDevice, dev_eui) or LorawanDevice(dev_eui=dev_eui)
    row.type, row.meter_id, row.device_id = type_, meter_id, device_id
    session.add(row)


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def _closure_json(closures: tuple[tuple[date, date], ...]) -> list[list[str]] | None:
    return [[a.isoformat(), b.isoformat()] for a, b in closures] or None


# --- ingest lookup ----------------------------------------------------------------------------

class HeatingDirectory:
    """Cached lookups of the ingestor's heating and LoRaWAN decoders: :meth:`by_friendly_name`
    (zigbee2mqtt heating devices) and :meth:`by_dev_eui` (LoRaWAN devices, any case).

    As :class:`vigie.sensors.SensorDirectory`: everything is loaded at the first call and again
    every ``refresh_s``; a miss queries at once (a device registered a moment ago is known on its
    next message) and is remembered for ``miss_ttl_s``; if the registry cannot be read the last
    loaded devices stay in use, and before any load succeeded
    :class:`vigie.sensors.RegistryUnavailable` is raised. Thread-safe.
    """

    def __init__(self, sessions: sessionmaker, *, refresh_s: float = 60.0, miss_ttl_s: float = 5.0) -> None:
        self._sessions = sessions
        self.refresh_s = refresh_s
        self.miss_ttl_s = miss_ttl_s
        self._by_name: dict[str, HeatingDeviceInfo] | None = None
        self._by_eui: dict[str, LorawanDeviceInfo] = {}
        self._misses: dict[tuple[str, str], float] = {}  # ("name"|"eui", key) → monotonic time found unknown
        self._loaded_at = float("-inf")
        self._lock = threading.Lock()

    def by_friendly_name(self, name: str) -> HeatingDeviceInfo | None:
        """The heating device publishing as zigbee2mqtt ``name``; None when none is registered."""
        return self._get("name", name)

    def by_dev_eui(self, dev_eui: str) -> LorawanDeviceInfo | None:
        """The LoRaWAN device ``dev_eui`` (16 hex digits, any case); None when unknown or malformed."""
        key = dev_eui.strip().lower() if isinstance(dev_eui, str) else ""
        if not _DEV_EUI.fullmatch(key):
            return None
        return self._get("eui", key)

    def refresh(self) -> None:
        """Reload every device now."""
        with self._lock:
            self._load(time.monotonic())

    def _get(self, what: str, key: str):
        with self._lock:
            now = time.monotonic()
            if self._by_name is None or now - self._loaded_at >= self.refresh_s:
                self._load(now)
            if self._by_name is None:
                raise _sensors.RegistryUnavailable("the registry's heating devices cannot be read")
            cache = self._by_name if what == "name" else self._by_eui
            info = cache.get(key)
            if info is not None:
                return info
            missed = self._misses.get((what, key))
            if missed is not None and now - missed < self.miss_ttl_s:
                return None
            try:
                with self._sessions() as s:
                    info = _device_by_name(s, key) if what == "name" else _lorawan_by_eui(s, key)
            except SQLAlchemyError as exc:
                log.error("registry unreadable: %s", type(exc).__name__)
                info = None
            if info is None:
                self._misses[(what, key)] = now
            else:
                cache[key] = info
                self._misses.pop((what, key), None)
            return info

    def _load(self, now: float) -> None:
        self._loaded_at = now
        try:
            with self._sessions() as s:
                devices = {d.id: d for d in s.scalars(select(HeatingDevice))}
                types = {t.name: t.field_mapping() for t in s.scalars(select(LorawanDeviceType))}
                by_eui = {row.dev_eui: _lorawan_info(row, types, devices) for row in s.scalars(select(LorawanDevice))}
            self._by_name = {d.friendly_name: d.info() for d in devices.values() if d.friendly_name}
            self._by_eui = {k: v for k, v in by_eui.items() if v is not None}
            self._misses.clear()
        except SQLAlchemyError as exc:
            log.error("registry unreadable, %s: %s", "keeping the last known heating devices"
                      if self._by_name is not None else "no heating devices known yet", type(exc).__name__)


def _device_by_name(session: Session, name: str) -> HeatingDeviceInfo | None:
    device = session.scalars(select(HeatingDevice).where(HeatingDevice.friendly_name == name)).first()
    return device.info() if device is not None else None


def _lorawan_by_eui(session: Session, dev_eui: str) -> LorawanDeviceInfo | None:
    row = session.get(LorawanDevice, dev_eui)
    if row is None:
        return None
    t = session.get(LorawanDeviceType, row.type)
    devices = {row.device_id: session.get(HeatingDevice, row.device_id)} if row.device_id else {}
    return _lorawan_info(row, {t.name: t.field_mapping()} if t else {}, devices)


def _lorawan_info(row: LorawanDevice, types: dict[str, FieldMapping],
                  devices: dict[str, HeatingDevice]) -> LorawanDeviceInfo | None:
    mapping = types.get(row.type)
    device = devices.get(row.device_id) if row.device_id else None
    if mapping is None or (row.device_id and device is None):
        return None
    return LorawanDeviceInfo(dev_eui=row.dev_eui, type=row.type, mapping=mapping, meter_id=row.meter_id,
                             device=device.info() if device is not None else None)


# --- layout and occupancy for the analytics ---------------------------------------------------

ROOM_COLUMNS = ("room_id", "building_id", "name", "comfort_c", "setback_c", "area_m2", "radiator_w", "schedule")
DEVICE_COLUMNS = ("device_id", "kind", "room_id", "building_id", "expected_interval_s", "radiator_w")
BUILDING_COLUMNS = ("building_id", "name", "commune", "holidays", "outdoor_device")
CLOSURE_COLUMNS = ("room_id", "first", "last")


@dataclass(frozen=True)
class HeatingLayout:
    """The registry's heating side as frames (ids are registry ids, plain strings):

    - ``buildings``: ``building_id``, ``name``, ``commune``, ``holidays`` (python-holidays code or
      None), ``outdoor_device`` (device id or None);
    - ``rooms``: ``room_id``, ``building_id``, ``name``, ``comfort_c``, ``setback_c`` (°C),
      ``area_m2`` (NaN when unknown), ``radiator_w`` (W, Σ of the room's TRVs' ``radiator_w``, NaN
      when none gives one), ``schedule`` (:mod:`vigie.timewindows` text or None); sorted by
      building then room — the row order of :func:`occupancy_schedule`;
    - ``devices``: ``device_id``, ``kind`` (a HeatingDeviceKind value), ``room_id``,
      ``building_id``, ``expected_interval_s`` (int), ``radiator_w`` (NaN when none);
    - ``closures``: ``room_id``, ``first``, ``last`` (``datetime.date``, inclusive local days), the
      room's own and its building's.
    """

    buildings: pd.DataFrame
    rooms: pd.DataFrame
    devices: pd.DataFrame
    closures: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(CLOSURE_COLUMNS)))


def load_heating_layout(session: Session) -> HeatingLayout:
    """Every building, room, heating device and closure of the registry (:class:`HeatingLayout`)."""
    buildings = list(session.scalars(select(Building).order_by(Building.id)))
    rooms = list(session.scalars(select(HeatingRoom).order_by(HeatingRoom.building_id, HeatingRoom.id)))
    devices = list(session.scalars(select(HeatingDevice).order_by(HeatingDevice.id)))
    b_frame = pd.DataFrame([(b.id, b.name, b.commune, b.holidays, b.outdoor_device) for b in buildings],
                           columns=list(BUILDING_COLUMNS), dtype=object)
    d_frame = pd.DataFrame({
        "device_id": pd.Series([d.id for d in devices], dtype=object),
        "kind": pd.Series([str(d.kind) for d in devices], dtype=object),
        "room_id": pd.Series([d.room_id for d in devices], dtype=object),
        "building_id": pd.Series([d.building_id for d in devices], dtype=object),
        "expected_interval_s": np.array([d.expected_interval_s for d in devices], dtype=np.int64),
        "radiator_w": np.array([np.nan if d.radiator_w is None else d.radiator_w for d in devices], dtype=np.float64)})
    trv = d_frame[d_frame["kind"] == str(HeatingDeviceKind.TRV)]
    radiator = trv.groupby("room_id")["radiator_w"].sum(min_count=1)
    r_frame = pd.DataFrame({
        "room_id": pd.Series([r.id for r in rooms], dtype=object),
        "building_id": pd.Series([r.building_id for r in rooms], dtype=object),
        "name": pd.Series([r.name for r in rooms], dtype=object),
        "comfort_c": np.array([r.comfort_c for r in rooms], dtype=np.float64),
        "setback_c": np.array([r.setback_c for r in rooms], dtype=np.float64),
        "area_m2": np.array([np.nan if r.area_m2 is None else r.area_m2 for r in rooms], dtype=np.float64),
        "radiator_w": radiator.reindex([r.id for r in rooms]).to_numpy(dtype=np.float64),
        "schedule": pd.Series([r.schedule for r in rooms], dtype=object)})
    by_building: dict[str, list] = {b.id: b.closures or [] for b in buildings}
    closures = [(r.id, date.fromisoformat(a), date.fromisoformat(z))
                for r in rooms for a, z in [*(r.closures or []), *by_building.get(r.building_id, [])]]
    c_frame = pd.DataFrame(closures, columns=list(CLOSURE_COLUMNS), dtype=object)
    return HeatingLayout(buildings=b_frame, rooms=r_frame, devices=d_frame, closures=c_frame)


def occupancy_schedule(layout: HeatingLayout, start_utc: datetime, periods: int, freq: str = "15min",
                       tz: ZoneInfo | str = "Europe/Paris") -> np.ndarray:
    """Scheduled occupancy, ``bool`` array of shape (rooms of ``layout.rooms`` in row order ×
    ``periods``): period *p* starts at ``start_utc + p × freq`` and is occupied when that instant,
    as wall-clock time in ``tz`` (DST-correct: a window keeps its local hours in summer and
    winter), falls in one of the room's weekly windows, and its local date is neither a closure of
    the room or its building nor a public holiday of the building's ``holidays`` calendar
    (python-holidays). A room without schedule is never scheduled occupied.

    Vectorized over rooms: windows are evaluated once per distinct schedule text and distinct
    minute-of-week, holidays once per distinct calendar, closures by a cumulative sum.
    """
    tz = ZoneInfo(tz) if isinstance(tz, str) else tz
    rooms = layout.rooms
    n = len(rooms)
    if n == 0 or periods <= 0:
        return np.zeros((n, max(periods, 0)), dtype=bool)
    local = pd.date_range(pd.Timestamp(start_utc).tz_convert("UTC"), periods=periods, freq=freq).tz_convert(tz)
    minute_of_week = (local.day_of_week * 1440 + local.hour * 60 + local.minute).to_numpy(np.int64)
    day = local.tz_localize(None).to_numpy().astype("datetime64[D]").astype(np.int64)   # local date, days since 1970

    # Weekly windows: each distinct schedule as [a, b) intervals of minute-of-week.
    sched_code, schedules = pd.factorize(rooms["schedule"].fillna("").to_numpy(dtype=object))
    spans = [(s, a, b) for s, text in enumerate(schedules) for a, b in _week_intervals(str(text))]
    week_minutes, period_minute = np.unique(minute_of_week, return_inverse=True)
    counts = np.zeros((len(schedules), len(week_minutes)), dtype=np.int32)
    if spans:
        s_idx, a, b = (np.array(x, dtype=np.int64) for x in zip(*spans))
        hit = (a[:, None] <= week_minutes[None, :]) & (week_minutes[None, :] < b[:, None])
        np.add.at(counts, s_idx, hit.astype(np.int32))
    occupied = (counts > 0)[:, period_minute][sched_code]

    # Closed days: closures (inclusive ranges) and public holidays, over the local days covered.
    first_day = int(day.min())
    n_days = int(day.max()) - first_day + 1
    delta = np.zeros((n, n_days + 1), dtype=np.int32)
    c = layout.closures
    if len(c):
        row = pd.Index(rooms["room_id"]).get_indexer(c["room_id"])
        lo = np.array([d.toordinal() for d in c["first"]], dtype=np.int64) - _EPOCH_ORDINAL - first_day
        hi = np.array([d.toordinal() for d in c["last"]], dtype=np.int64) - _EPOCH_ORDINAL - first_day
        keep = (row >= 0) & (hi >= 0) & (lo < n_days)
        np.add.at(delta, (row[keep], np.clip(lo[keep], 0, n_days)), 1)
        np.add.at(delta, (row[keep], np.clip(hi[keep] + 1, 0, n_days)), -1)
    closed = np.cumsum(delta[:, :n_days], axis=1) > 0
    calendars = rooms["building_id"].map(layout.buildings.set_index("building_id")["holidays"]
                                         if len(layout.buildings) else {})
    cal_code, cal_names = pd.factorize(calendars.to_numpy(dtype=object), use_na_sentinel=True)
    if len(cal_names):
        days = np.arange(first_day, first_day + n_days).astype("datetime64[D]")
        years = range(int(str(days[0])[:4]), int(str(days[-1])[:4]) + 1)
        holiday = np.zeros((len(cal_names) + 1, n_days), dtype=bool)   # last row: no calendar
        for k, name in enumerate(cal_names):
            m = _HOLIDAYS.fullmatch(str(name))
            dates = np.array(sorted(holiday_calendar(m["country"], m["subdiv"], years)), dtype="datetime64[D]")
            holiday[k] = np.isin(days, dates)
        closed |= holiday[np.where(cal_code < 0, len(cal_names), cal_code)]
    return occupied & ~closed[:, day - first_day]


_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def _week_intervals(text: str) -> list[tuple[int, int]]:
    """The windows of ``text`` as [start, end) minutes of the week (Monday 00:00 = 0), a window
    crossing midnight belonging to its first day and one crossing Sunday night wrapping to Monday."""
    week = 7 * 1440
    out = []
    for w in parse_windows(text or None):
        length = w.end - w.start if w.end > w.start else w.end + 1440 - w.start
        for d in w.days:
            a = d * 1440 + w.start
            b = a + length
            out.append((a, min(b, week)))
            if b > week:
                out.append((0, b - week))
    return out


# Imported last: vigie.sensors and the decoders' package import the decoders, which may import
# this module's records; by now those names exist, so either module may be imported first.
from vigie import sensors as _sensors  # noqa: E402
from vigie.ingest.decoders import fields as _fields  # noqa: E402
