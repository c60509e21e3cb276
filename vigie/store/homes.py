"""The assisted-living schema in InfluxDB (documented in docs/schema.md), in the events retention
policy (``store.policy_for("events")``, 90 days by default: raw behaviour data are personal data).

- measurement ``home_event``: one point per sensor state report (:class:`~vigie.records.SensorEvent`);
  tags ``home_id``, ``sensor_id`` (opaque registry ids, never friendly names), ``kind``; fields
  ``value`` (float), ``battery_pct``, ``link_quality`` (floats, when the report has them);
  timestamp = the report's ``last_seen``, **precision ms**. zigbee2mqtt dates reports to the
  millisecond, and one sensor may report twice within a second (a door opened and shut, a plug
  switched on and off, a PIR detection and a heartbeat): at precision s the second report would
  overwrite the first and a state change would be lost. At ms, only a report delivered twice (MQTT
  QoS 1 re-delivery, a spool batch re-sent) falls on the same point, and overwrites itself.
- measurement ``sensor_availability``: one point per change of a device's zigbee2mqtt availability
  (:class:`~vigie.ingest.decoders.zigbee2mqtt.DeviceAvailability`); tags ``device_kind``
  (``sensor``/``bridge``), ``device_id`` (sensor id or bridge base topic), ``home_id`` (sensors
  only); field ``online`` (float 1/0); timestamp = reception time, precision ms. Written only when
  the value differs from the device's last stored one (the message is retained, so every reconnect
  receives it again).

The ingestor writes both through its spool (``ingest/homes.py``: :func:`event_line`,
:func:`availability_line`; the change check against the last availability it spooled);
:func:`write_events` and :func:`write_availability` write directly (tools, tests).

The rooms are not stored: :func:`read_events` joins the registry's sensors (:class:`HomeSensors`)
and returns the analytics' events frame (``analytics.routine`` module docstring);
:func:`last_report_time` gives a home's latest report (the API's household status).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
from influxdb_client import Point, WritePrecision
from pandas.api.types import union_categoricals
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from vigie.ingest.decoders.zigbee2mqtt import DeviceAvailability, SensorInfo
from vigie.records import Room, SensorEvent, SensorKind
from vigie.store.influx import InfluxStore, quote_str, time_literal

log = logging.getLogger(__name__)

EVENT = "home_event"
AVAILABILITY = "sensor_availability"
EVENTS_PURPOSE = "events"
#: Timestamp precision of both measurements' lines.
PRECISION = "ms"
#: Points per /write request.
BATCH = 5000
#: A read is split into slices of this length: one slice's CSV answer is held in memory at a time.
READ_SLICE = timedelta(days=1)
_ROOMS = [str(r) for r in Room]
_KINDS = [str(k) for k in SensorKind]


@dataclass(frozen=True)
class HomeSensors:
    """The registry's home sensors as a table: ``frame`` indexed by ``sensor_id`` with columns
    ``home_id``, ``room`` (a :class:`Room` value), ``kind`` (a :class:`SensorKind` value)."""

    frame: pd.DataFrame

    @classmethod
    def of(cls, infos: Iterable[SensorInfo]) -> "HomeSensors":
        rows = [(i.sensor_id, i.home_id, str(i.room), str(i.kind)) for i in infos]
        frame = pd.DataFrame(rows, columns=["sensor_id", "home_id", "room", "kind"]).set_index("sensor_id")
        return cls(frame)

    @classmethod
    def from_registry(cls, sessions: sessionmaker) -> "HomeSensors":
        """Every sensor of the registry (``home_sensors`` table)."""
        from vigie.sensors import Sensor

        with sessions() as s:
            return cls.of(sensor.info() for sensor in s.scalars(select(Sensor)))

    @property
    def homes(self) -> pd.Index:
        """The homes with at least one sensor, sorted."""
        return pd.Index(sorted(set(self.frame["home_id"])), name="home_id", dtype=object)

    def home_of(self, sensor_ids: Sequence[str]) -> list[str | None]:
        homes = self.frame["home_id"].reindex(list(sensor_ids))
        return [None if pd.isna(h) else str(h) for h in homes]


# --- writes -----------------------------------------------------------------------------------

def _ms(t: datetime) -> int:
    # Integer arithmetic on the datetime's parts: float timestamps round some milliseconds down.
    return (t - _EPOCH) // timedelta(milliseconds=1)


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def event_line(event: SensorEvent, home_id: str) -> str:
    """One report as a ``home_event`` line-protocol line (precision ms). Raises ValueError for a
    value that is not a finite number or an empty id."""
    if not home_id or not event.sensor_id:
        raise ValueError(f"sensor event {event.sensor_id!r}: home_id and sensor_id must not be empty")
    value = float(event.value)
    if not np.isfinite(value):
        raise ValueError(f"sensor event {event.sensor_id}: value {event.value!r} is not a finite number")
    p = (Point(EVENT).tag("home_id", home_id).tag("sensor_id", event.sensor_id).tag("kind", str(event.kind))
         .field("value", value))
    for name in ("battery_pct", "link_quality"):
        v = getattr(event, name)
        if v is not None and np.isfinite(float(v)):
            p.field(name, float(v))
    p.time(_ms(event.time), WritePrecision.MS)
    return p.to_line_protocol()


def write_events(store: InfluxStore, events: Iterable[SensorEvent], directory: HomeSensors) -> int:
    """Write the reports into the events policy; returns the points written. Every report is kept,
    heartbeats too (a repeated state is not activity for the analytics, but it is the sensor's
    proof of life and carries its battery). Raises ValueError naming the sensors the registry does
    not know (nothing is written then): a report must not lose its home."""
    events = list(events)
    homes = directory.home_of([e.sensor_id for e in events])
    unknown = sorted({e.sensor_id for e, h in zip(events, homes) if h is None})
    if unknown:
        raise ValueError(f"sensors not in the registry: {unknown[:10]}{' …' if len(unknown) > 10 else ''}")
    lines = [event_line(e, h) for e, h in zip(events, homes)]
    rp = events_policy(store)
    for i in range(0, len(lines), BATCH):
        store.write_lines(lines[i:i + BATCH], precision=PRECISION, retention_policy=rp)
    return len(lines)


def events_policy(store: InfluxStore) -> str | None:
    """The events retention policy's name (``None``: the store has none, writes go to its default)."""
    return store.policy_for(EVENTS_PURPOSE)


def write_availability(store: InfluxStore, items: Iterable[DeviceAvailability]) -> int:
    """Store the availability messages that change a device's state (against its last stored value
    and the earlier items); returns the points written."""
    items = sorted(items, key=lambda a: a.time)
    if not items:
        return 0
    last = last_availability(store, sorted({a.device_id for a in items}))
    lines = []
    for a in items:
        if last.get(a.device_id) == a.online:
            continue
        last[a.device_id] = a.online
        lines.append(availability_line(a))
    for i in range(0, len(lines), BATCH):
        store.write_lines(lines[i:i + BATCH], precision=PRECISION, retention_policy=events_policy(store))
    return len(lines)


def availability_line(a: DeviceAvailability) -> str:
    """One availability change as a ``sensor_availability`` line-protocol line (precision ms)."""
    p = Point(AVAILABILITY).tag("device_kind", a.device_kind).tag("device_id", a.device_id)
    if a.home_id:
        p.tag("home_id", a.home_id)
    return p.field("online", 1.0 if a.online else 0.0).time(_ms(a.time), WritePrecision.MS).to_line_protocol()


def last_availability(store: InfluxStore, device_ids: Sequence[str]) -> dict[str, bool]:
    """The last stored availability of each device (devices never stored are left out)."""
    out: dict[str, bool] = {}
    m = store.measurement(AVAILABILITY, events_policy(store))
    for i in range(0, len(device_ids), 200):  # keeps the query string short
        where = " OR ".join(f"device_id = {quote_str(d)}" for d in device_ids[i:i + 200])
        for s in store.query_json(f"SELECT last(online) FROM {m} WHERE ({where}) GROUP BY device_id"):
            for row in s.get("values", []):
                out[s["tags"]["device_id"]] = row[1] >= 0.5
    return out


# --- reads ------------------------------------------------------------------------------------

def read_events(store: InfluxStore, start: datetime, end: datetime, sensors: HomeSensors,
                homes: Sequence[str] | None = None) -> pd.DataFrame:
    """Reports with ``start <= time < end`` as the analytics' events frame.

    Columns: ``home_id``, ``sensor_id``, ``room``, ``kind`` (categoricals of str), ``time`` (int64
    epoch s UTC, the stored ms floored), ``value`` (float64); rows in time order (reports of one
    second keep their millisecond order, which the analytics' stable sorts preserve). ``home_id``
    and ``kind`` are the stored tags (the home at the time of the report); ``room`` comes from
    ``sensors`` — a sensor the registry no longer knows gets ``other`` (logged). ``homes``
    restricts to those homes. Read slice by slice (:data:`READ_SLICE`) as chunked CSV, ids parsed
    straight into categories, so 1 000 homes × 28 days hold one day's answer at a time.
    """
    m = store.measurement(EVENT, events_policy(store))
    home_filter = ""
    if homes:
        home_filter = " AND (" + " OR ".join(f"home_id = {quote_str(h)}" for h in homes) + ")"
    parts = []
    t = start
    while t < end:
        t_next = min(t + READ_SLICE, end)
        q = (f"SELECT home_id, sensor_id, kind, value FROM {m} WHERE time >= {time_literal(t)} "
             f"AND time < {time_literal(t_next)}{home_filter}")
        df = store.query_csv(q, epoch="ms", dtypes={"home_id": "category", "sensor_id": "category",
                                                    "kind": "category"})
        if not df.empty:
            parts.append(df[["home_id", "sensor_id", "kind", "time", "value"]])
        t = t_next
    if not parts:
        return empty_events()
    df = _concat(parts, ("home_id", "sensor_id", "kind"))
    if not df["time"].is_monotonic_increasing:
        df = df.sort_values("time", kind="stable", ignore_index=True)
    df["time"] //= 1000
    rooms = sensors.frame["room"].reindex(df["sensor_id"].cat.categories)
    if rooms.isna().any():
        missing = list(rooms.index[rooms.isna()])
        log.warning("%d stored sensors not in the registry (room 'other'): %s", len(missing), missing[:10])
        rooms = rooms.fillna(str(Room.OTHER))
    codes = pd.Index(_ROOMS).get_indexer(rooms.to_numpy())
    room_codes = codes[df["sensor_id"].cat.codes.to_numpy()]
    df.insert(2, "room", pd.Categorical.from_codes(room_codes, categories=_ROOMS))
    return df


def last_report_time(store: InfluxStore, home_id: str) -> datetime | None:
    """Time (aware UTC, to the ms) of the home's latest stored sensor report, heartbeats included
    (proof its sensors are reporting); ``None`` when none is stored (within the events policy's
    retention). One ``last()`` on the home's series: about 20 ms for 89 days of 1 500 reports a
    day (InfluxDB 1.6)."""
    m = store.measurement(EVENT, events_policy(store))
    for s in store.query_json(f"SELECT last(value) FROM {m} WHERE home_id = {quote_str(home_id)}", epoch="ms"):
        for row in s.get("values", []):
            return _EPOCH + timedelta(milliseconds=int(row[0]))
    return None


def _concat(parts: Sequence[pd.DataFrame], categorical: Sequence[str]) -> pd.DataFrame:
    """Frames with the same columns stacked; categorical columns stay categorical (their categories
    united), where ``pd.concat`` would fall back to object columns."""
    out = {}
    for c in parts[0].columns:
        if c in categorical:
            out[c] = union_categoricals([p[c] for p in parts])
        else:
            out[c] = np.concatenate([p[c].to_numpy() for p in parts])
    return pd.DataFrame(out)


def concat_events(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Events frames of :func:`read_events` stacked in the order given (categoricals kept)."""
    frames = [f for f in frames if len(f)]
    if not frames:
        return empty_events()
    df = _concat(frames, ("home_id", "sensor_id", "room", "kind"))
    df["room"] = df["room"].cat.set_categories(_ROOMS)
    return df


def empty_events() -> pd.DataFrame:
    """An events frame with no rows and the columns and dtypes of :func:`read_events`."""
    cat = pd.CategoricalDtype
    return pd.DataFrame({"home_id": pd.Series(dtype=cat([])), "sensor_id": pd.Series(dtype=cat([])),
                         "room": pd.Series(dtype=cat(_ROOMS)), "kind": pd.Series(dtype=cat(_KINDS)),
                         "time": pd.Series(dtype=np.int64), "value": pd.Series(dtype=np.float64)})
