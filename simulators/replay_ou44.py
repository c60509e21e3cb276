"""Replay the OU44 heating data set (:mod:`vigie.simulators.ou44`) as the zigbee2mqtt messages its
devices would have sent, for ``vigie replay ou44``.

Devices of building ``ou44`` (friendly names ``ou44/<room>/<device>``, topics
``<base>/<friendly name>``, base ``zigbee2mqtt-heating``, the ``heating_topics`` default), with the
fields of ``shared/reference/payload-formats.md`` §2:

=============== ========================= ====================================================
device          like (zigbee2mqtt model)  fields
=============== ========================= ====================================================
``trv``         Danfoss Ally 014G2461     ``local_temperature`` (``df_t``, °C),
(one per room)                            ``pi_heating_demand`` (``df_hpos`` as % open)
``room_sensor`` a motion sensor           ``occupancy`` (see :class:`Occupancy`)
``outdoor``     a temperature sensor      ``temperature`` (``df_tamb``, °C)
=============== ========================= ====================================================

Every payload carries ``last_seen`` (zigbee2mqtt ``ISO_8601``: UTC, milliseconds, ``Z``) = the
data's minute, which is also when the message is sent. Nothing the data do not hold is sent: no
setpoint (the data set has none), no battery, link quality, running state, availability or bridge
messages.

Reporting: a device reports when one of its published values changes (as zigbee2mqtt devices with
attribute reporting do) and otherwise every ``refresh_s`` after its last report (the attributes'
maximum reporting interval); its first report is at the first minute. Times are the data's
(2017-03-21 … 2017-04-04 UTC), not moved.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from vigie.records import HeatingDeviceKind
from vigie.simulators.ou44 import Ou44Data

BUILDING = "ou44"
BASE_TOPIC = "zigbee2mqtt-heating"
DEFAULT_REFRESH_S = 1800


class Occupancy(StrEnum):
    """What the room sensor's ``occupancy`` is made of.

    ``pir`` (default): the room's motion sensor. The camera head count sticks at 1–3 for hours
    while the PIR says 0 and CO2 stays at its empty-room level (e22-508-1: 349 ppm then vs 347 ppm
    with both 0 and 479 ppm with PIR 1), i.e. a door-line counter's residual, not people.
    ``camera``: head count > 0. ``either``: PIR 1 or head count > 0.
    """

    PIR = "pir"
    CAMERA = "camera"
    EITHER = "either"


@dataclass(frozen=True, slots=True)
class HeatingMessage:
    """One zigbee2mqtt message (a :class:`~vigie.simulators.publish.OutboundMessage`): ``time`` (UTC)
    is when it is sent; device messages are not retained."""

    topic: str
    payload: bytes
    time: datetime
    retain: bool = False


@dataclass(frozen=True, slots=True)
class Ou44Device:
    """One replayed device: registry ``device_id``, ``kind``, the data set's ``room`` (the outdoor
    sensor is filed under the first room), ``friendly_name``, and the TRV's ``radiator_w``."""

    device_id: str
    kind: HeatingDeviceKind
    room: str
    friendly_name: str
    radiator_w: float | None = None


@dataclass(frozen=True)
class Ou44Replay:
    """The replay: ``devices``, ``messages`` in publishing order (time, then device order),
    ``reports`` per device id (messages sent), ``changes`` per device id (those sent because a
    value changed, the first report included), first and last minute (UTC), ``refresh_s`` and the
    ``occupancy`` rule."""

    devices: tuple[Ou44Device, ...]
    messages: tuple[HeatingMessage, ...]
    reports: dict[str, int]
    changes: dict[str, int]
    start: datetime
    end: datetime
    refresh_s: int
    occupancy: Occupancy


def devices_of(data: Ou44Data, building: str = BUILDING) -> tuple[Ou44Device, ...]:
    """The devices of ``data``: a TRV and a room sensor per room, one outdoor sensor."""
    out = []
    for r in data.room_info:
        out.append(Ou44Device(f"{building}-{r.room}-trv", HeatingDeviceKind.TRV, r.room,
                              f"{building}/{r.room}/trv", r.radiator_w))
        out.append(Ou44Device(f"{building}-{r.room}-room", HeatingDeviceKind.ROOM_SENSOR, r.room,
                              f"{building}/{r.room}/room_sensor"))
    out.append(Ou44Device(f"{building}-outdoor", HeatingDeviceKind.OUTDOOR, data.room_info[0].room,
                          f"{building}/outdoor"))
    return tuple(out)


def occupied(rooms: pd.DataFrame, rule: Occupancy) -> np.ndarray:
    """The rows' occupancy (bool) under ``rule``, from ``pir`` and ``head_count``."""
    pir = rooms["pir"].to_numpy() > 0
    camera = rooms["head_count"].to_numpy() > 0
    return pir if rule is Occupancy.PIR else camera if rule is Occupancy.CAMERA else pir | camera


def report_rows(values: pd.DataFrame, refresh_s: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows at which a device reports: (row indices in time order, changed flags).

    ``values``: one device's published values, one row per minute (regular grid, in order). A row
    reports when any value differs from the previous row (the first row always), or when
    ``refresh_s`` passed since the device's last report: between two changes at minutes c and c'
    that is c + k·refresh for every k ≥ 1 with c + k·refresh < c'.
    """
    if refresh_s < 60 or refresh_s % 60:
        raise ValueError(f"refresh_s={refresh_s}: expected a whole number of minutes (≥ 60)")
    v = values.to_numpy(dtype=np.float64)
    n = len(v)
    changed = np.ones(n, dtype=bool)
    changed[1:] = np.any(v[1:] != v[:-1], axis=1)
    at = np.flatnonzero(changed)
    step = refresh_s // 60
    gaps = np.diff(np.append(at, n))
    k = (gaps - 1) // step                       # refreshes before the next change (or the end)
    base = np.repeat(at, k)
    nth = np.arange(k.sum()) - np.repeat(np.cumsum(k) - k, k) + 1
    refresh = base + nth * step
    rows = np.concatenate([at, refresh])
    flags = np.concatenate([np.ones(len(at), dtype=bool), np.zeros(len(refresh), dtype=bool)])
    order = np.argsort(rows, kind="stable")
    return rows[order], flags[order]


def _seen(times: pd.Series) -> list[str]:
    return times.dt.strftime("%Y-%m-%dT%H:%M:%S.000Z").tolist()


def plan_replay(data: Ou44Data, *, building: str = BUILDING, base_topic: str = BASE_TOPIC,
                refresh_s: int = DEFAULT_REFRESH_S, occupancy: Occupancy = Occupancy.PIR) -> Ou44Replay:
    """The messages of ``data``'s devices (module docstring). Raises ValueError for a building id
    or base topic that cannot be topic levels, or a bad ``refresh_s``."""
    if not building or any(c in building for c in "/+#") or building != building.strip():
        raise ValueError(f"building id {building!r}: expected one MQTT topic level (no / + # or spaces)")
    if not base_topic or any(c in base_topic for c in "+#") or base_topic.strip("/") != base_topic:
        raise ValueError(f"base topic {base_topic!r}: expected topic levels without wildcards")
    devices = devices_of(data, building)
    per_device: list[tuple[np.ndarray, list[bytes]]] = []
    reports, changes = {}, {}
    for order, d in enumerate(devices):   # five devices; each one's rows are vectorized
        if d.kind is HeatingDeviceKind.OUTDOOR:
            frame = data.outdoor
            values = pd.DataFrame({"temperature": frame["temperature_c"].round(2)})
        else:
            frame = data.rooms[data.rooms["room"] == d.room].reset_index(drop=True)
            if d.kind is HeatingDeviceKind.TRV:
                values = pd.DataFrame({"local_temperature": frame["temperature_c"].round(2),
                                       "pi_heating_demand": frame["valve_pct"].round(2)})
            else:
                values = pd.DataFrame({"occupancy": occupied(frame, occupancy)})
        rows, flags = report_rows(values, refresh_s)
        sent = values.iloc[rows].reset_index(drop=True)
        sent["last_seen"] = _seen(frame["time"].iloc[rows].reset_index(drop=True))
        payloads = [json.dumps(rec, separators=(",", ":")).encode() for rec in sent.to_dict("records")]
        per_device.append((rows, payloads))
        reports[d.device_id], changes[d.device_id] = len(rows), int(flags.sum())
    times = data.outdoor["time"]
    keyed = sorted((int(r), order, p) for order, (rows, payloads) in enumerate(per_device)
                   for r, p in zip(rows.tolist(), payloads))
    pytimes = [t.to_pydatetime() for t in times]
    messages = tuple(HeatingMessage(f"{base_topic}/{devices[order].friendly_name}", p, pytimes[r])
                     for r, order, p in keyed)
    return Ou44Replay(devices, messages, reports, changes, pytimes[0], pytimes[-1], refresh_s, occupancy)


def registry_document(replay: Ou44Replay, data: Ou44Data, building: str = BUILDING) -> dict:
    """The ``buildings:`` registry entry of the replayed building (docs: heating spec)."""
    outdoor = next(d for d in replay.devices if d.kind is HeatingDeviceKind.OUTDOOR)
    rooms = []
    for r in data.room_info:
        devices = []
        for d in replay.devices:
            if d.room != r.room:
                continue
            entry = {"id": d.device_id, "kind": str(d.kind), "friendly_name": d.friendly_name}
            if d.radiator_w is not None:
                entry["radiator_w"] = int(d.radiator_w) if float(d.radiator_w).is_integer() else d.radiator_w
            entry["expected_interval_s"] = replay.refresh_s
            devices.append(entry)
        rooms.append({"id": f"{building}-{r.room}", "name": r.room.upper(),
                      "area_m2": int(r.area_m2) if float(r.area_m2).is_integer() else r.area_m2,
                      "comfort_c": 21, "setback_c": 17, "schedule": _SCHEDULES.get(r.room, _DEFAULT_SCHEDULE),
                      "closures": [], "devices": devices})
    return {"buildings": [{"id": building, "name": "OU44 (SDU Odense)", "holidays": "DK", "closures": [],
                           "outdoor_device": outdoor.device_id, "rooms": rooms}]}


# Plausible weekday hours (Europe/Copenhagen) read off the rooms' hourly PIR profile; the SDU's
# bookings are not in the data set.
_SCHEDULES = {"e22-508-1": "mon-fri 07:00-18:00", "e22-511-2": "mon-fri 07:00-17:00"}
_DEFAULT_SCHEDULE = "mon-fri 08:00-17:00"

_HEADER = """\
# OU44 (University of Southern Denmark, Odense), rooms e22-508-1 and e22-511-2: written by
# `vigie replay ou44` from shared/data/ou44-heating (SDU CFEI mshoot, BSD 3-Clause; SOURCE.md).
# - area_m2 from areas.txt, radiator_w from radiators.txt (radiator capacity, W).
# - schedule, comfort_c, setback_c, holidays and closures are NOT in the data: the SDU's opening
#   hours and thermostat settings are unknown. The schedules are plausible weekday hours read off
#   the rooms' hourly motion profile; comfort/set-back are typical office values. The heating
#   analytics of this building are to be run with the rooms' *observed* occupancy (the room
#   sensors' `occupancy`: {occupancy}), not with these schedules.
# - The TRVs publish no setpoint (the data set has none).
# - The outdoor sensor is filed under the first room because devices are listed per room; the
#   building's outdoor_device names it. commune: left to the default (settings.commune).
# - expected_interval_s = the replay's refresh interval ({refresh_s} s): a device reports on change
#   and at least that often.
"""


def write_registry(replay: Ou44Replay, data: Ou44Data, path: Path | str, building: str = BUILDING) -> None:
    """Write the registry YAML (``buildings:`` only) of the replayed building to ``path``."""
    body = yaml.safe_dump(registry_document(replay, data, building), sort_keys=False, allow_unicode=True)
    Path(path).write_text(_HEADER.format(occupancy=_OCCUPANCY_TEXT[replay.occupancy], refresh_s=replay.refresh_s)
                          + body, encoding="utf-8")


_OCCUPANCY_TEXT = {Occupancy.PIR: "the PIR motion sensor",
                   Occupancy.CAMERA: "the camera head count > 0",
                   Occupancy.EITHER: "PIR 1 or camera head count > 0"}
