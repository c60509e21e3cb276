"""Replay the Ordóñez home (:mod:`vigie.simulators.ordonez`) as the zigbee2mqtt messages its sensors
would have sent, for ``vigie replay ordonez``.

Each active interval of a sensor becomes two state messages, at its start and at its end (the
events :func:`~vigie.simulators.ordonez.load_ordonez` makes of it), with the payload of a real
device of that kind under zigbee2mqtt 2.x (``cache_state`` on, ``last_seen: ISO_8601``; the fields
of ``shared/reference/payload-formats.md`` §2, as :mod:`vigie.simulators.home` sends them):

============ ============================== =========================================
dataset type device (zigbee2mqtt model)     state field
============ ============================== =========================================
PIR          Aqara RTCGQ11LM                ``occupancy`` true / false
Magnetic     Aqara MCCGQ11LM                ``contact`` false (open) / true (closed)
Pressure     bed: Tuya TS0601 bed strap;    ``occupancy``; ``pressure_state``
             seat: HOBEIAN ZG-210Z          ``sit`` / ``none``
Flush        on/off switch (Tuya TS0001)    ``state`` ``ON`` / ``OFF``
Electric     Tuya TS011F metering plug      ``power`` nominal W / 0 (``state`` ``ON``)
============ ============================== =========================================

Topics ``<base>/<home>/<room>/<location>`` (the home's bridge runs with base topic
``<base>/<home>``, docs/homes.md); each sensor's availability (``{"state":"online"}``, retained)
and the bridge state are sent first. Sensor ids are opaque (:func:`sensor_id`), the registry maps
them to the friendly names (:func:`write_registry`).

Times: the dataset's local wall-clock times (zone ``data.tz``) are moved by whole days so that its
first day is ``start`` (default: the days ending yesterday, so the events fall inside the events
retention); the clock time of day is kept. Two messages of one sensor at the same second (an
interval ending when the next begins, or lasting 0 s) are sent 1 ms apart, in the dataset's order,
so that InfluxDB (points identified by series and time) keeps both.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml

from vigie.records import SensorEvent, SensorKind
from vigie.simulators.home import Z2mMessage
from vigie.simulators.ordonez import SENSORS_FILE, OrdonezData, OrdonezSensor

DEFAULT_HOME = "ordonez-a"
_ONLINE = b'{"state":"online"}'
_MS = timedelta(milliseconds=1)


@dataclass(frozen=True)
class ReplaySensor:
    """One sensor of the replayed home: the dataset's, its opaque ``sensor_id``, ``friendly_name``
    and zigbee2mqtt ``model``."""

    source: OrdonezSensor
    sensor_id: str
    friendly_name: str
    model: str


@dataclass(frozen=True)
class OrdonezReplay:
    """The replay of one home: ``sensors``, ``messages`` in publishing order, the first and last
    local day replayed (``start``, ``end``) and the number of state messages (``events``)."""

    home_id: str
    sensors: tuple[ReplaySensor, ...]
    messages: tuple[Z2mMessage, ...]
    start: date
    end: date
    events: int


def sensor_id(home_id: str, dataset_sensor_id: str) -> str:
    """The opaque registry id of a dataset sensor in ``home_id`` (stable across runs)."""
    return "s-" + hashlib.sha256(f"{home_id}:{dataset_sensor_id}".encode()).hexdigest()[:10]


def data_dir_of(source: Path | str) -> Path:
    """The data set's directory from ``vigie replay ordonez``'s argument: the path of its sensors
    file ``OrdonezA_Sensors.txt`` (the labels file ``OrdonezA_ADLs.txt`` is read beside it), or the
    directory holding both. Raises ValueError for another file name, FileNotFoundError for a path
    that does not exist."""
    source = Path(source)
    if source.is_dir():
        return source
    if not source.exists():
        raise FileNotFoundError(f"{source}: no such file or directory")
    if source.name != SENSORS_FILE:
        raise ValueError(f"{source}: expected the data set's {SENSORS_FILE} or its directory")
    return source.parent


def _model(s: OrdonezSensor) -> str:
    if s.kind is SensorKind.MOTION:
        return "RTCGQ11LM"
    if s.kind is SensorKind.CONTACT:
        return "MCCGQ11LM"
    if s.kind is SensorKind.PRESENCE:
        return "TS0601_bed_presence_sensor" if s.location.lower() == "bed" else "ZG-210Z"
    if s.kind is SensorKind.POWER:
        return "TS011F"
    return "TS0001"


def plan_replay(data: OrdonezData, home_id: str = DEFAULT_HOME, start: date | None = None,
                base_topic: str = "zigbee2mqtt") -> OrdonezReplay:
    """The messages of ``data``'s home as ``home_id``, its first day moved to ``start`` (see the
    module docstring). Raises ValueError for a home id that cannot be one topic level."""
    if not home_id or any(c in home_id for c in "/+#") or home_id != home_id.strip():
        raise ValueError(f"home id {home_id!r}: expected one MQTT topic level (no / + # or surrounding spaces)")
    zone = ZoneInfo(data.tz)
    first = data.events[0].time.astimezone(zone).date()
    last = data.events[-1].time.astimezone(zone).date()
    if start is None:
        start = datetime.now(zone).date() - timedelta(days=(last - first).days + 1)
    shift = start - first
    sensors = tuple(ReplaySensor(s, sensor_id(home_id, s.sensor_id), f"{home_id}/{s.room}/{s.location.lower()}",
                                 _model(s)) for s in data.sensors)
    by_id = {s.source.sensor_id: s for s in sensors}
    t0 = _moved(data.events[0].time, shift, zone) - timedelta(seconds=1)
    messages = [Z2mMessage(f"{base_topic}/{home_id}/bridge/state", _ONLINE, t0, retain=True)]
    messages += [Z2mMessage(f"{base_topic}/{s.friendly_name}/availability", _ONLINE, t0, retain=True) for s in sensors]
    last_sent: dict[str, datetime] = {}
    energy: dict[str, float] = {}
    for e in data.events:
        s = by_id[e.sensor_id]
        t = _moved(e.time, shift, zone)
        if s.sensor_id in last_sent and t <= last_sent[s.sensor_id]:
            t = last_sent[s.sensor_id] + _MS
        last_sent[s.sensor_id] = t
        messages.append(Z2mMessage(f"{base_topic}/{s.friendly_name}", _payload(s, e, t, energy), t))
    return OrdonezReplay(home_id, sensors, tuple(messages), start, last + shift, len(data.events))


def _moved(t: datetime, shift: timedelta, zone: ZoneInfo) -> datetime:
    """``t`` moved by whole local days, the local clock time kept; UTC."""
    local = t.astimezone(zone).replace(tzinfo=None) + shift
    return local.replace(tzinfo=zone).astimezone(timezone.utc)


def _payload(s: ReplaySensor, e: SensorEvent, t: datetime, energy: dict[str, float]) -> bytes:
    """The device's zigbee2mqtt state message for event ``e`` sent at ``t``. Incidental attributes
    (battery, link quality, temperature, voltage) derive from the sensor id and the time, so the
    same replay always gives the same bytes."""
    h = int(s.sensor_id[2:], 16)
    t_ms = int(t.timestamp() * 1000)
    battery = 70 + h % 31
    link = 60 + (h + t_ms // 1000) % 120
    seen = t.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    on = "true" if e.value > 0 else "false"
    temp = 19 + (t_ms // 7) % 5
    volt = 2900 + 3 * battery + t_ms % 7
    if s.model == "RTCGQ11LM":
        body = (f'"battery":{battery},"device_temperature":{temp},"illuminance":{(t_ms // 13) % 250},'
                f'"last_seen":"{seen}","linkquality":{link},"occupancy":{on},"power_outage_count":1,"voltage":{volt}')
    elif s.model == "MCCGQ11LM":
        closed = "false" if e.value > 0 else "true"  # zigbee2mqtt: contact true = closed
        body = (f'"battery":{battery},"contact":{closed},"device_temperature":{temp},"last_seen":"{seen}",'
                f'"linkquality":{link},"power_outage_count":1,"voltage":{volt}')
    elif s.model == "TS0601_bed_presence_sensor":
        body = (f'"battery":{battery},"illuminance":{150 + t_ms % 200 if e.value > 0 else t_ms % 20},'
                f'"last_seen":"{seen}","linkquality":{link},"occupancy":{on},'
                f'"work_state":"{"presence" if e.value > 0 else "none"}"')
    elif s.model == "ZG-210Z":
        body = (f'"battery":{battery},"last_seen":"{seen}","linkquality":{link},'
                f'"pressure_state":"{"sit" if e.value > 0 else "none"}"')
    elif s.model == "TS011F":  # mains-powered metering plug: no battery
        volts = 228 + (t_ms % 60) / 10
        kwh = energy.get(s.sensor_id, 0.0)
        energy[s.sensor_id] = kwh + e.value * 0.001  # a rough running total, as the plug reports one
        body = (f'"current":{round(e.value / volts, 2)},"energy":{round(kwh, 2)},"last_seen":"{seen}",'
                f'"linkquality":{link},"power":{e.value},"state":"ON","voltage":{volts}')
    else:  # TS0001 switch: on/off only
        body = (f'"last_seen":"{seen}","linkquality":{link},"power_on_behavior":"previous",'
                f'"state":"{"ON" if e.value > 0 else "OFF"}"')
    return ("{" + body + "}").encode()


def write_registry(replay: OrdonezReplay, path: Path | str) -> None:
    """The registry YAML of the replayed home: household ``home_id`` (no people: add them with
    ``vigie registry load``) and its sensors with their opaque ids, friendly names, rooms and kinds."""
    sensors = [{"id": s.sensor_id, "friendly_name": s.friendly_name, "room": str(s.source.room),
                "kind": str(s.source.kind)} for s in replay.sensors]
    Path(path).write_text(yaml.safe_dump({"households": [{"id": replay.home_id, "sensors": sensors}]},
                                         sort_keys=False), encoding="utf-8")
