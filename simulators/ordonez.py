"""Load the Ordóñez ADL binary-sensor dataset (home A) as Vigie sensor events.

Source: F. J. Ordóñez, P. de Toledo, A. Sanchis, "Activity Recognition Using Hybrid
Generative/Discriminative Models on Home Environments Using Binary Sensors", Sensors 2013, 13,
5460–5477 (UCI "Activities of Daily Living (ADLs) Recognition Using Binary Sensors"). Its terms
forbid commercial use: the data are read from where they lie (``/work/shared/data/ordonez-adl``)
and never copied into this repository.

File format (``OrdonezA_Sensors.txt``, ``OrdonezA_ADLs.txt``): two header lines (names, dashes),
then one row per interval, fields separated by one or two TABs (trailing TABs and spaces
possible), CRLF line ends. A sensor row ``start, end, location, type, place`` is an interval during
which the sensor was active; it becomes two events: the active value at ``start`` and 0 at ``end``.

The files state no time zone: the times are read as the resident's wall clock in Spain,
``Europe/Madrid`` (CET in Nov–Dec 2011, no DST change inside the period); pass ``tz`` to change it.

Sensor kinds: PIR → motion, Magnetic → contact (1 = open), Pressure → presence, Flush → use,
Electric → power with a nominal wattage (the dataset only says on/off; the wattage is ours).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from vigie.records import Room, SensorEvent, SensorKind

SENSORS_FILE = "OrdonezA_Sensors.txt"
ADLS_FILE = "OrdonezA_ADLs.txt"
DEFAULT_TZ = "Europe/Madrid"

_KINDS = {"PIR": SensorKind.MOTION, "Magnetic": SensorKind.CONTACT, "Pressure": SensorKind.PRESENCE,
          "Flush": SensorKind.USE, "Electric": SensorKind.POWER}
_ROOMS = {"Bedroom": Room.BEDROOM, "Bathroom": Room.BATHROOM, "Kitchen": Room.KITCHEN,
          "Living": Room.LIVING_ROOM, "Entrance": Room.ENTRANCE}
# Nominal active power of the appliances, W (typical ratings; the dataset records on/off only).
NOMINAL_W = {"Microwave": 800.0, "Toaster": 900.0}
DEFAULT_NOMINAL_W = 1000.0


@dataclass(frozen=True, slots=True)
class OrdonezSensor:
    """One sensor of the home: ``sensor_id`` (ours, ``<prefix><location>`` lower case), the dataset's
    ``location`` and ``type``, our ``room`` and ``kind``, and for power sensors ``nominal_w``."""

    sensor_id: str
    location: str
    type: str
    room: Room
    kind: SensorKind
    nominal_w: float | None = None


@dataclass(frozen=True, slots=True)
class AdlLabel:
    """One labelled activity interval, UTC; ``activity`` as in the dataset ("Leaving" = away)."""

    start: datetime
    end: datetime
    activity: str


@dataclass(frozen=True)
class OrdonezData:
    sensors: tuple[OrdonezSensor, ...]
    events: tuple[SensorEvent, ...]      # sorted by time (then sensor)
    adls: tuple[AdlLabel, ...]
    tz: str

    def to_frame(self, home_id: str) -> pd.DataFrame:
        """The events as the analytics events frame (``analytics.routine`` contract), one home."""
        by_id = {s.sensor_id: s for s in self.sensors}
        return pd.DataFrame({
            "home_id": np.full(len(self.events), home_id, dtype=object),
            "sensor_id": [e.sensor_id for e in self.events],
            "room": [str(by_id[e.sensor_id].room) for e in self.events],
            "kind": [str(e.kind) for e in self.events],
            "time": np.array([int(e.time.timestamp()) for e in self.events], dtype=np.int64),
            "value": np.array([e.value for e in self.events], dtype=np.float64)})


def _rows(path: Path, n_fields: int) -> list[tuple[int, list[str]]]:
    """Data rows as (line number, fields); a row with another field count is an error."""
    text = path.read_bytes().decode("latin-1")
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if len(lines) < 2 or not lines[1].lstrip().startswith("-"):
        raise ValueError(f"{path}: expected two header lines (names, then dashes)")
    out = []
    for no, line in enumerate(lines[2:], start=3):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split("\t") if f.strip()]
        if len(fields) != n_fields:
            raise ValueError(f"{path}:{no}: expected {n_fields} fields, got {len(fields)}: {line!r}")
        out.append((no, fields))
    return out


def _utc(text: str, zone: ZoneInfo, where: str) -> datetime:
    try:
        local = datetime.strptime(text, "%Y-%m-%d %H:%M:%S")
    except ValueError as exc:
        raise ValueError(f"{where}: bad time {text!r} (expected YYYY-MM-DD HH:MM:SS)") from exc
    return local.replace(tzinfo=zone).astimezone(timezone.utc)


def load_ordonez(data_dir: str | Path, tz: str = DEFAULT_TZ, id_prefix: str = "ordonez-a-") -> OrdonezData:
    """Parse home A of the dataset in ``data_dir`` into sensors, events and ADL labels.

    Raises FileNotFoundError if a file is missing, ValueError (file and line) on a malformed row,
    an unknown sensor type or room, or an interval that ends before it starts.
    """
    data_dir = Path(data_dir)
    zone = ZoneInfo(tz)
    sensors: dict[str, OrdonezSensor] = {}
    events: list[SensorEvent] = []
    path = data_dir / SENSORS_FILE
    for no, (start, end, location, typ, place) in _rows(path, 5):
        where = f"{path}:{no}"
        if typ not in _KINDS or place not in _ROOMS:
            raise ValueError(f"{where}: unknown sensor type {typ!r} or place {place!r}")
        sid = id_prefix + location.lower()
        sensor = sensors.setdefault(sid, OrdonezSensor(
            sid, location, typ, _ROOMS[place], _KINDS[typ],
            NOMINAL_W.get(location, DEFAULT_NOMINAL_W) if _KINDS[typ] is SensorKind.POWER else None))
        if (sensor.type, sensor.room) != (typ, _ROOMS[place]):
            raise ValueError(f"{where}: sensor {location!r} changes type or place")
        t0, t1 = _utc(start, zone, where), _utc(end, zone, where)
        if t1 < t0:
            raise ValueError(f"{where}: interval ends before it starts")
        on = sensor.nominal_w if sensor.kind is SensorKind.POWER else 1.0
        events.append(SensorEvent(sid, t0, sensor.kind, on, source="ordonez"))
        events.append(SensorEvent(sid, t1, sensor.kind, 0.0, source="ordonez"))
    events.sort(key=lambda e: (e.time, e.sensor_id))
    adls = []
    path = data_dir / ADLS_FILE
    for no, (start, end, activity) in _rows(path, 3):
        where = f"{path}:{no}"
        adls.append(AdlLabel(_utc(start, zone, where), _utc(end, zone, where), activity))
    return OrdonezData(sensors=tuple(sorted(sensors.values(), key=lambda s: s.sensor_id)),
                       events=tuple(events), adls=tuple(adls), tz=tz)
