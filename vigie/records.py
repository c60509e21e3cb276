"""Typed records that flow between stages: ingest → store → analytics → alerts.

One metric type for water: :class:`MeterReading`. Decoders produce it, the spool keeps it, the store
writes it as line protocol, analytics read it back as columns.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from datetime import date, datetime, timezone
from enum import StrEnum


class MeterAlarm(StrEnum):
    """Meter-reported alarm flags, normalised across drivers (the raw status is kept beside them)."""

    LEAK = "LEAK"
    BURST = "BURST"
    REVERSE_FLOW = "REVERSE_FLOW"
    DRY = "DRY"
    TAMPER = "TAMPER"
    LOW_BATTERY = "LOW_BATTERY"
    BLOCKED = "BLOCKED"
    OVERFLOW = "OVERFLOW"
    ERROR = "ERROR"


@dataclass(frozen=True, slots=True)
class MeterReading:
    """One water-meter reading.

    - ``meter_id``: the meter's own id as a string (wM-Bus ids may hold hex letters; never an int).
    - ``time``: when the index was read, timezone-aware UTC.
    - ``index_m3``: cumulative index (register), m³, ≥ 0.
    - ``flow_l_per_h``: instantaneous flow if the meter reports one, L/h.
    - ``battery_pct`` / ``battery_life_y``: battery as % or remaining years, whichever the meter gives.
    - ``alarms``: normalised :class:`MeterAlarm` names, sorted; ``status_raw``: the meter's own text.
    - ``source``: the decoder that produced it.
    """

    meter_id: str
    time: datetime
    index_m3: float
    flow_l_per_h: float | None = None
    battery_pct: float | None = None
    battery_life_y: float | None = None
    alarms: tuple[str, ...] = ()
    status_raw: str | None = None
    source: str = ""

    def __post_init__(self) -> None:
        if self.time.tzinfo is None:
            raise ValueError("MeterReading.time must be timezone-aware")
        if self.time.utcoffset() != timezone.utc.utcoffset(None):
            object.__setattr__(self, "time", self.time.astimezone(timezone.utc))

    def to_json(self) -> str:
        # Not dataclasses.asdict: it deep-copies every field (5x slower, on the ingest path).
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["time"] = self.time.isoformat()
        d["alarms"] = list(self.alarms)
        return json.dumps(d, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "MeterReading":
        d = json.loads(text)
        d["time"] = datetime.fromisoformat(d["time"])
        d["alarms"] = tuple(d["alarms"])
        return cls(**d)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message the ingestor could not turn into readings, kept with its reason.

    ``payload`` is the message body as text (the dead-letter store keeps a body that is not
    UTF-8 as base64 and says so), ``received_at`` UTC.
    """

    topic: str
    payload: str
    reason: str
    received_at: datetime
    decoder: str | None = None

    def to_json(self) -> str:
        d = asdict(self)
        d["received_at"] = self.received_at.isoformat()
        return json.dumps(d, ensure_ascii=False, separators=(",", ":"))


class CheckStatus(StrEnum):
    LEAK = "leak"                      # the rule fired
    OK = "ok"                          # the rule was evaluated and did not fire
    INSUFFICIENT_DATA = "insufficient_data"


class LeakRule(StrEnum):
    CONTINUOUS_FLOW = "continuous_flow"
    BURST = "burst"
    ABNORMAL_CONSUMPTION = "abnormal_consumption"
    METER_FLAG = "meter_flag"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The outcome of one leak rule for one meter on one local day.

    Units: ``rate_l_per_h`` (the rule's estimate: minimum flow for continuous flow, peak sustained
    flow for burst), ``night_flow_l_per_h`` (mean flow 02:00–05:00 local), ``volume_l`` (the day's
    consumption), ``coverage`` (0–1, fraction of the day covered by readings). ``detail`` is a short
    human text (e.g. the meter's flags, or the reference average for abnormal consumption).
    """

    meter_id: str
    day: date
    rule: LeakRule
    status: CheckStatus
    rate_l_per_h: float | None = None
    night_flow_l_per_h: float | None = None
    volume_l: float | None = None
    coverage: float | None = None
    detail: str = ""

    def to_dict(self) -> dict:
        return {
            "meter_id": self.meter_id,
            "day": self.day.isoformat(),
            "rule": str(self.rule),
            "status": str(self.status),
            "rate_l_per_h": self.rate_l_per_h,
            "night_flow_l_per_h": self.night_flow_l_per_h,
            "volume_l": self.volume_l,
            "coverage": self.coverage,
            "detail": self.detail,
        }


class SensorKind(StrEnum):
    """What a home sensor measures, and what its ``value`` means in a :class:`SensorEvent`."""

    MOTION = "motion"            # PIR occupancy: 1 motion detected, 0 clear
    CONTACT = "contact"          # door / cupboard / fridge reed contact: 1 OPEN, 0 closed
    #                              (zigbee2mqtt's ``contact: true`` means closed — inverted here)
    PRESENCE = "presence"        # bed / chair / seat pressure mat: 1 occupied, 0 free
    WATER_LEAK = "water_leak"    # 1 wet, 0 dry
    POWER = "power"              # smart plug: active power, W (appliance use: kettle, microwave…)
    USE = "use"                  # a one-shot use signal (toilet flush…): 1 used, 0 idle


class Room(StrEnum):
    """Rooms the routine model knows; anything else is ``other``."""

    BEDROOM = "bedroom"
    BATHROOM = "bathroom"        # includes the toilet
    KITCHEN = "kitchen"
    LIVING_ROOM = "living_room"
    ENTRANCE = "entrance"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class SensorEvent:
    """One state report of an assisted-living home sensor.

    - ``sensor_id``: the sensor's opaque id in the registry (not its zigbee2mqtt friendly name,
      which often names the room or the person);
    - ``time``: when the state was reported, timezone-aware UTC;
    - ``kind`` and ``value``: see :class:`SensorKind` (binary states as 1.0/0.0, power in W);
    - ``battery_pct``: battery %, when the message carries it; ``link_quality``: 0–255 (LQI);
    - ``source``: the decoder that produced it.

    The home and room come from the registry by ``sensor_id``; they are not repeated per event.
    """

    sensor_id: str
    time: datetime
    kind: SensorKind
    value: float
    battery_pct: float | None = None
    link_quality: float | None = None
    source: str = ""
