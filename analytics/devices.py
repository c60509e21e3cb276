"""Device health for every family — water meters, home sensors, heating devices — in one pass
over the registry and InfluxDB, vectorized over all devices.

Kinds (:class:`DeviceHealthKind`), each judged on a device's latest state:

- ``silent``: no message for longer than its expected interval × ``k``
  (``settings.device_silent_factor``). The interval is the registry's ``expected_interval_s`` of a
  home sensor or heating device; water meters have none in the registry and share
  ``settings.device_water_interval_s``. ``since`` = the device's last message. A registered device
  with no message stored is silent with ``since`` None (evidence ``reason: never_seen``; the
  registry keeps no registration date); a home sensor that zigbee2mqtt declared offline after its
  last message is silent at once (``reason: zigbee2mqtt_offline``: zigbee2mqtt's own check, 25 h
  for battery devices, minutes for mains-powered ones). A home sensor silent for longer than the
  events retention (90 days) reads as never seen.
- ``low_battery``: the latest battery percentage ≤ ``settings.device_battery_pct``, or the device's
  own flag in its latest report that carried one — a water meter's ``LOW_BATTERY`` alarm, a heating
  device's ``battery_low``. ``since`` = the first report of the current low state (after the last
  report above the threshold).
- ``clock_drift``: the latest ``device_clock`` offset (device time − reception time) with
  ``|offset_s| ≥ settings.device_clock_drift_s``, and offsets that have stayed so for at least
  ``settings.device_clock_min_span_s`` of reception time: the current drift's first and latest
  ``device_clock`` points are that far apart or more. A backlog (a gateway back online, a replay,
  ``vigie simulate heating``) delivers hours of old records within seconds, each far behind its
  reception: one drifting point or a burst of them, over no reception time, is not a clock; a
  drifting clock keeps its offset message after message (:mod:`vigie.ingest.clock` writes a point
  per device at least each hour while the offset is steady). ``since`` = first offset of the
  current drift.

The home detectors' ``sensor_silent`` event (:mod:`vigie.analytics.homes`) is a different check
for a different reader: it learns each sensor's normal gap from its own history (99th percentile
× 3) to warn staff within a minute tick, per home. Device health uses the declared interval with
the same factor 3 by default, across all families, as the technical inventory staff work through
(``vigie devices``; staff digests). Both only ever name ids: evidence never holds a person's name.

Reads (:mod:`vigie.store.devices`): one request per measurement for every device's latest values
(``last()`` per field ``GROUP BY`` device tag) over the family's longest silence threshold
(:func:`read_windows`); for the registered devices silent over all of it, their history
(:data:`~vigie.store.devices.KEYS_PER_STATEMENT` devices a request); for the devices found low or
drifting, one more request per measurement to date the start of that state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import StrEnum

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from vigie.records import MeterAlarm
from vigie.store.devices import Condition, condition_since, last_values, tag_filters
from vigie.store.heating import DEVICE_CLOCK
from vigie.store.influx import InfluxStore, time_literal

class DeviceFamily(StrEnum):
    WATER = "water"
    HOME = "home"
    HEATING = "heating"


class DeviceHealthKind(StrEnum):
    SILENT = "silent"
    LOW_BATTERY = "low_battery"
    CLOCK_DRIFT = "clock_drift"


@dataclass(frozen=True)
class DeviceHealth:
    """One device problem.

    - ``family``/``device``: the registry's family and opaque device id (meter, sensor or heating
      device id); ``kind``: what is wrong;
    - ``since``: UTC, when it began (module docstring per kind); None for a device never seen;
    - ``evidence``: JSON-able figures, units in the key names (``silent_for_s``, ``battery_pct``,
      ``offset_s``…), times as ISO 8601 UTC text;
    - where it is, as registry ids only: ``commune`` (whose staff own it), ``household`` (water
      meters, home sensors), ``building``/``room`` (heating devices).
    """

    family: DeviceFamily
    device: str
    kind: DeviceHealthKind
    since: datetime | None
    evidence: dict[str, float | int | str | bool | None] = field(default_factory=dict)
    commune: str | None = None
    household: str | None = None
    building: str | None = None
    room: str | None = None

    def to_dict(self) -> dict:
        """The JSON shape of ``vigie devices --json``: every field, ``since`` as ISO text or null."""
        return {"family": str(self.family), "device": self.device, "kind": str(self.kind),
                "since": self.since.isoformat() if self.since else None, "commune": self.commune,
                "household": self.household, "building": self.building, "room": self.room,
                "evidence": dict(self.evidence)}


@dataclass(frozen=True)
class DeviceHealthParams:
    """Thresholds (settings ``device_*``, docs/configuration.md)."""

    silent_factor: float = 3.0        # silent after expected interval × this
    water_interval_s: float = 3600.0  # a water meter's expected interval (the registry has none)
    battery_pct: float = 20.0         # low battery at or below this, %
    clock_drift_s: float = 300.0      # drifting when |device time − reception time| ≥ this, s
    clock_min_span_s: float = 3600.0  # … over at least this much reception time, s (a backlog: none)

    def __post_init__(self) -> None:
        if not self.silent_factor > 0 or not self.water_interval_s > 0 or not self.clock_drift_s > 0:
            raise ValueError("silent_factor, water_interval_s and clock_drift_s must be > 0")
        if not self.clock_min_span_s >= 0:
            raise ValueError(f"clock_min_span_s must be ≥ 0, got {self.clock_min_span_s}")
        if not 0 <= self.battery_pct <= 100:
            raise ValueError(f"battery_pct must be within 0..100, got {self.battery_pct}")

    @classmethod
    def from_settings(cls, settings) -> "DeviceHealthParams":
        return cls(silent_factor=settings.device_silent_factor, water_interval_s=settings.device_water_interval_s,
                   battery_pct=settings.device_battery_pct, clock_drift_s=settings.device_clock_drift_s,
                   clock_min_span_s=settings.device_clock_min_span_s)


# --- where each family's messages are stored ------------------------------------------------

@dataclass(frozen=True)
class Source:
    """A family's measurement: ``tag`` names the device, ``fields`` every field a message may carry
    (its last message is the latest of their last times), ``purpose`` the retention policy
    (``None``: the writes' policy), ``flag`` the field carrying the device's own low-battery flag
    (``alarms``: a water meter's alarm list; ``battery_low``: 1.0/0.0)."""

    family: DeviceFamily
    measurement: str
    tag: str
    fields: tuple[str, ...]
    purpose: str | None = None
    flag: str | None = None


def sources() -> tuple[Source, ...]:
    """The measurements read, one per family."""
    from vigie.store import heating, homes, water

    # Every water reading carries ``alarms`` ("" when none; vigie.store.water.reading_line), so it
    # dates the last reading without a third statement for ``index_m3``.
    return (Source(DeviceFamily.WATER, water.READING, "meter_id", ("alarms", "battery_pct"), flag="alarms"),
            Source(DeviceFamily.HOME, homes.EVENT, "sensor_id", ("value", "battery_pct"),
                   purpose=homes.EVENTS_PURPOSE),
            Source(DeviceFamily.HEATING, heating.HEATING, "device", heating.FIELDS, flag="battery_low"))


# One alarm name among the space-separated ones (Go's RE2 in InfluxDB, Python's re here).
_LOW_BATTERY = f"(?:^| ){MeterAlarm.LOW_BATTERY}(?: |$)"


def flag_condition(flag: str) -> Condition:
    """The low-battery flag of a :attr:`Source.flag` field as InfluxQL predicates."""
    if flag == "alarms":
        return Condition("alarms", f"alarms =~ /{_LOW_BATTERY}/", f"alarms !~ /{_LOW_BATTERY}/")
    return Condition(flag, f"{flag} >= 0.5", f"{flag} < 0.5")


def battery_condition(params: DeviceHealthParams) -> Condition:
    t = float(params.battery_pct)
    return Condition("battery_pct", f"battery_pct <= {t!r}", f"battery_pct > {t!r}")


def clock_condition(params: DeviceHealthParams) -> Condition:
    t = float(params.clock_drift_s)
    return Condition("offset_s", f"offset_s >= {t!r} OR offset_s <= {-t!r}", f"offset_s > {-t!r} AND offset_s < {t!r}")


# --- the registry ----------------------------------------------------------------------------

INVENTORY_COLUMNS = ("family", "device", "commune", "household", "building", "room", "expected_interval_s")


def device_inventory(session: Session) -> pd.DataFrame:
    """Every registered device: columns :data:`INVENTORY_COLUMNS` (str or None;
    ``expected_interval_s`` float, NaN for water meters, whose interval is a setting)."""
    from vigie.heating_registry import Building, HeatingDevice
    from vigie.registry import Household, Meter
    from vigie.sensors import Sensor

    water = pd.DataFrame(session.execute(
        select(Meter.id, Household.commune, Meter.household_id).outerjoin(Household, Meter.household_id == Household.id)
    ).all(), columns=["device", "commune", "household"]).assign(family=str(DeviceFamily.WATER))
    home = pd.DataFrame(session.execute(
        select(Sensor.id, Household.commune, Sensor.household_id, Sensor.expected_interval_s)
        .join(Household, Sensor.household_id == Household.id)
    ).all(), columns=["device", "commune", "household", "expected_interval_s"]).assign(family=str(DeviceFamily.HOME))
    heating = pd.DataFrame(session.execute(
        select(HeatingDevice.id, Building.commune, HeatingDevice.building_id, HeatingDevice.room_id,
               HeatingDevice.expected_interval_s).join(Building, HeatingDevice.building_id == Building.id)
    ).all(), columns=["device", "commune", "building", "room", "expected_interval_s"]).assign(
        family=str(DeviceFamily.HEATING))
    frames = [water, home, heating]
    out = pd.concat([f.reindex(columns=list(INVENTORY_COLUMNS)) for f in frames], ignore_index=True)
    out["expected_interval_s"] = out["expected_interval_s"].astype(np.float64)
    return out.astype({c: object for c in INVENTORY_COLUMNS[:-1]}).replace({np.nan: None})


# --- InfluxDB --------------------------------------------------------------------------------

STATE_COLUMNS = ("family", "device", "seen", "battery_pct", "battery_pct_at", "battery_flag", "battery_flag_at",
                 "online", "online_at")


@dataclass(frozen=True)
class DeviceState:
    """Every device's latest state as stored.

    ``last``: one row per (family, device) with any message: ``seen`` (its last message, UTC),
    ``battery_pct`` and ``battery_pct_at`` (the latest battery percentage reported and when),
    ``battery_flag`` (float 1/0, NaN: never reported: the device's own low-battery flag in the
    latest report carrying one) and ``battery_flag_at``, ``online`` and ``online_at`` (home sensors:
    zigbee2mqtt's latest availability, 1/0). ``clock``: one row per (family, device) of
    ``device_clock``: ``offset_s``, ``offset_s_at``.
    """

    last: pd.DataFrame
    clock: pd.DataFrame


def read_device_state(store: InfluxStore, now: datetime, windows: Mapping[str, float],
                      registered: pd.DataFrame | None = None, srcs: tuple[Source, ...] | None = None) -> DeviceState:
    """The latest state of every device of every family.

    ``windows``: seconds per family (:func:`read_windows`): a family's measurement is read over
    (``now`` − window, ∞) only, one request for all its devices — InfluxDB's ``last()`` scans the
    points in the time range, so an unbounded read would grow with the history kept. The
    ``registered`` devices (``family``, ``device`` columns) with no message in that window are
    silent whatever happens next; their latest values are read over all their history (their last
    message and their last battery, however old), :data:`~vigie.store.devices.KEYS_PER_STATEMENT`
    devices a request. Clock offsets are read over the longest window. Raises the store's errors.
    """
    from vigie.store import homes

    parts = []
    for src in srcs or sources():
        rp = store.policy_for(src.purpose) if src.purpose else None
        window = windows.get(str(src.family))
        if window is None:
            continue
        df = last_values(store, src.measurement, [src.tag], src.fields, retention_policy=rp,
                         where=f"time > {time_literal(now - timedelta(seconds=float(window)))}")
        if registered is not None:
            mine = registered.loc[registered["family"] == str(src.family), "device"].astype(str)
            unseen = mine[~mine.isin(df[src.tag].astype(str))].tolist()
            for where in tag_filters(src.tag, unseen):
                df = pd.concat([df, last_values(store, src.measurement, [src.tag], src.fields,
                                                retention_policy=rp, where=where)], ignore_index=True)
        part = _state_of(df, src)
        if src.family == DeviceFamily.HOME:
            # Written on change only, so read over all of the events policy (90 days).
            avail = last_values(store, homes.AVAILABILITY, ["device_id"], ["online"],
                                retention_policy=homes.events_policy(store), where="device_kind = 'sensor'")
            avail = avail.rename(columns={"device_id": "device"}).assign(family=str(src.family))
            part = part.merge(avail, on=["family", "device"], how="outer")
        parts.append(part)
    last = pd.concat([p.reindex(columns=list(STATE_COLUMNS)) for p in parts]
                     or [pd.DataFrame(columns=list(STATE_COLUMNS))], ignore_index=True)
    for c in ("seen", "battery_pct_at", "battery_flag_at", "online_at"):
        last[c] = pd.to_datetime(last[c], utc=True)
    for c in ("battery_pct", "battery_flag", "online"):
        last[c] = last[c].astype(np.float64)
    longest = max(windows.values(), default=0.0)
    clock = last_values(store, DEVICE_CLOCK, ["family", "device"], ["offset_s"],
                        where=f"time > {time_literal(now - timedelta(seconds=float(longest)))}")
    return DeviceState(last=last, clock=clock.astype({"family": str, "device": str}))


def _state_of(df: pd.DataFrame, src: Source) -> pd.DataFrame:
    """:func:`last_values`' frame of ``src`` as :data:`STATE_COLUMNS` (those it has)."""
    at = df[[f + "_at" for f in src.fields]]
    part = pd.DataFrame({"family": str(src.family), "device": df[src.tag].astype(str), "seen": at.max(axis=1)})
    if "battery_pct" in src.fields:
        part["battery_pct"], part["battery_pct_at"] = df["battery_pct"], df["battery_pct_at"]
    if src.flag == "alarms":
        alarms = df["alarms"].astype(object)
        low = alarms.str.contains(_LOW_BATTERY, regex=True)
        part["battery_flag"] = np.where(alarms.isna(), np.nan, low.fillna(False).astype(np.float64))
        part["battery_flag_at"] = df["alarms_at"]
    elif src.flag:
        part["battery_flag"] = (df[src.flag] >= 0.5).astype(np.float64).where(df[src.flag].notna())
        part["battery_flag_at"] = df[src.flag + "_at"]
    return part


def silence_thresholds(inventory: pd.DataFrame, params: DeviceHealthParams) -> pd.DataFrame:
    """``interval_s`` (the registry's, or the water setting) and ``threshold_s`` (× the factor),
    aligned with ``inventory``'s rows."""
    interval = inventory["expected_interval_s"].astype(np.float64).where(
        inventory["family"] != str(DeviceFamily.WATER), params.water_interval_s)
    return pd.DataFrame({"interval_s": interval, "threshold_s": interval * params.silent_factor})


def read_windows(inventory: pd.DataFrame, params: DeviceHealthParams) -> dict[str, float]:
    """Per family with registered devices: its longest silence threshold, s — the window over
    which :func:`read_device_state` reads it (a device without a message in it is silent)."""
    th = silence_thresholds(inventory, params)["threshold_s"]
    return {str(f): float(v) for f, v in th.groupby(inventory["family"].to_numpy()).max().items()}


# --- the assessment --------------------------------------------------------------------------

def assess(inventory: pd.DataFrame, state: DeviceState, now: datetime, params: DeviceHealthParams) -> pd.DataFrame:
    """The problems of every registered device, vectorized: one row per (device, kind) found.

    Columns: the inventory's, ``kind`` (str), ``since`` (datetime64 UTC; NaT where it is still to
    be dated from InfluxDB: low battery, clock drift — :func:`date_states`, which also drops the
    drifts too brief to be a clock's — or for a device never seen), ``interval_s``, ``threshold_s``, the state's columns, ``offset_s``, ``offset_s_at``.
    Devices stored but not registered are left out. Silence is compared in whole milliseconds: a
    device silent exactly ``threshold_s`` is not silent yet.
    """
    now_ts = pd.Timestamp(now).tz_convert("UTC")
    df = inventory.merge(state.last, on=["family", "device"], how="left")
    df = df.merge(state.clock[["family", "device", "offset_s", "offset_s_at"]], on=["family", "device"], how="left")
    th = silence_thresholds(df, params)
    df["interval_s"], df["threshold_s"] = th["interval_s"], th["threshold_s"]
    never = df["seen"].isna().to_numpy()
    quiet_ms = (now_ts - df["seen"]).dt.total_seconds().mul(1000).round().to_numpy()
    overdue = quiet_ms > df["threshold_s"].to_numpy() * 1000
    offline = ((df["online"] == 0) & (never | (df["online_at"] >= df["seen"]))).to_numpy()
    silent = never | overdue | offline
    df["reason"] = np.select([never, overdue, offline], ["never_seen", "no_message", "zigbee2mqtt_offline"], "")
    low = ((df["battery_pct"] <= params.battery_pct) | (df["battery_flag"] >= 0.5)).to_numpy()
    drift = (df["offset_s"].abs() >= params.clock_drift_s).to_numpy()
    out = []
    for kind, mask in ((DeviceHealthKind.SILENT, silent), (DeviceHealthKind.LOW_BATTERY, low),
                       (DeviceHealthKind.CLOCK_DRIFT, drift)):
        part = df[mask].assign(kind=str(kind))
        part["since"] = part["seen"] if kind == DeviceHealthKind.SILENT else pd.NaT
        out.append(part)
    found = pd.concat(out, ignore_index=True)
    found["since"] = pd.to_datetime(found["since"], utc=True)
    return found.sort_values(["family", "kind", "device"], kind="stable", ignore_index=True)


def date_states(store: InfluxStore, found: pd.DataFrame, params: DeviceHealthParams,
                srcs: tuple[Source, ...] | None = None) -> pd.DataFrame:
    """``found`` with ``since`` set for its low-battery and clock-drift rows: the start of the
    current state, from each flagged device's history (a low-battery device flagged both by its
    percentage and by its own flag: the earlier start). Clock-drift rows whose drift has lasted
    less than ``params.clock_min_span_s`` of reception time (``offset_s_at`` − ``since``: a
    backlog's burst) are dropped: candidates only until dated."""
    found = found.copy()
    low = found["kind"] == str(DeviceHealthKind.LOW_BATTERY)
    for src in srcs or sources():
        rp = store.policy_for(src.purpose) if src.purpose else None
        mine = low & (found["family"] == str(src.family))
        signals = [(found["battery_pct"] <= params.battery_pct, battery_condition(params))]
        if src.flag:
            signals.append((found["battery_flag"] >= 0.5, flag_condition(src.flag)))
        for flagged, cond in signals:
            rows = found[mine & flagged]
            if rows.empty:
                continue
            keys = rows[["device"]].rename(columns={"device": src.tag})
            since = condition_since(store, src.measurement, [src.tag], keys, cond, retention_policy=rp)
            found.loc[rows.index, "since"] = found.loc[rows.index, "since"].combine(
                since, lambda a, b: b if pd.isna(a) else (a if pd.isna(b) else min(a, b)))
    drift = found[found["kind"] == str(DeviceHealthKind.CLOCK_DRIFT)]
    if not drift.empty:
        found.loc[drift.index, "since"] = condition_since(store, DEVICE_CLOCK, ["family", "device"],
                                                          drift[["family", "device"]], clock_condition(params))
    found["since"] = pd.to_datetime(found["since"], utc=True)
    if not drift.empty:
        # Whole milliseconds, like silence: a drift lasting exactly the span drifts.
        span_ms = (found["offset_s_at"] - found["since"]).dt.total_seconds().mul(1000).round()
        brief = (found["kind"] == str(DeviceHealthKind.CLOCK_DRIFT)) & ~(span_ms >= params.clock_min_span_s * 1000)
        found = found[~brief].reset_index(drop=True)
    return found


def to_records(found: pd.DataFrame, now: datetime, params: DeviceHealthParams) -> list[DeviceHealth]:
    """:func:`assess`'s rows (dated) as :class:`DeviceHealth` records, in the frame's order."""
    now_ts = pd.Timestamp(now).tz_convert("UTC")
    out = []
    for r in found.itertuples(index=False):
        kind = DeviceHealthKind(r.kind)
        if kind == DeviceHealthKind.SILENT:
            ev = {"reason": r.reason, "last_seen": _iso(r.seen),
                  "silent_for_s": None if pd.isna(r.seen) else round((now_ts - r.seen).total_seconds(), 3),
                  "expected_interval_s": float(r.interval_s), "threshold_s": float(r.threshold_s)}
            if r.family == DeviceFamily.HOME and not pd.isna(r.online):
                ev["zigbee2mqtt_online"] = bool(r.online >= 0.5)
        elif kind == DeviceHealthKind.LOW_BATTERY:
            ev = {"battery_pct": _num(r.battery_pct), "threshold_pct": float(params.battery_pct),
                  "battery_reported_at": _iso(r.battery_pct_at)}
            if not pd.isna(r.battery_flag):
                ev["battery_low_flag"] = bool(r.battery_flag >= 0.5)
                ev["flag_reported_at"] = _iso(r.battery_flag_at)
        else:
            ev = {"offset_s": float(r.offset_s), "threshold_s": float(params.clock_drift_s),
                  "measured_at": _iso(r.offset_s_at)}
        out.append(DeviceHealth(
            family=DeviceFamily(r.family), device=str(r.device), kind=kind,
            since=None if pd.isna(r.since) else r.since.to_pydatetime().astimezone(timezone.utc), evidence=ev,
            commune=_str(r.commune), household=_str(r.household), building=_str(r.building), room=_str(r.room)))
    return out


def device_health(store: InfluxStore, sessions: sessionmaker, now: datetime | None = None,
                  params: DeviceHealthParams | None = None) -> list[DeviceHealth]:
    """Every registered device's problems at ``now`` (default: the current time), sorted by family,
    kind and device. Raises the store's :class:`~vigie.store.StoreError` subclasses."""
    now = now or datetime.now(timezone.utc)
    params = params or DeviceHealthParams()
    with sessions() as s:
        inventory = device_inventory(s)
    state = read_device_state(store, now, read_windows(inventory, params), inventory[["family", "device"]])
    found = assess(inventory, state, now, params)
    return to_records(date_states(store, found, params), now, params)


def _iso(t) -> str | None:
    return None if t is None or pd.isna(t) else pd.Timestamp(t).tz_convert("UTC").isoformat()


def _num(v) -> float | None:
    return None if v is None or pd.isna(v) else float(v)


def _str(v) -> str | None:
    return None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
