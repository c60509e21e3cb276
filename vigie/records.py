"""Typed records that flow between stages: ingest → store → analytics → alerts.

One metric type for water: :class:`MeterReading`. Decoders produce it, the ingestor turns it into its
line-protocol line once (the spool keeps that line until InfluxDB has it), analytics read it back as
columns. Assisted-living homes: :class:`SensorEvent` in, :class:`HomeEvent` out of the detectors.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from datetime import date, datetime, timedelta, timezone
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


class HomeEventKind(StrEnum):
    """An unusual-behaviour (or technical) event of an assisted-living home; see analytics/homes.py."""

    INACTIVITY = "inactivity"          # no activity for longer than learned for this time of day
    NO_WAKEUP = "no_wakeup"            # no activity by the usual wake-up time plus a margin
    LONG_BATHROOM = "long_bathroom"    # in the bathroom for longer than usual (possible fall)
    NIGHT_EXIT = "night_exit"          # entrance door opened at night, no return
    DECLINE = "decline"                # daily activity level falling over several days
    WATER_LEAK = "water_leak"          # a water-leak sensor reports wet
    SENSOR_SILENT = "sensor_silent"    # a sensor sent nothing for too long (technical, staff only)


class HomeEventSeverity(StrEnum):
    HIGH = "high"        # possible fall or danger now: ignores quiet hours
    MEDIUM = "medium"
    LOW = "low"          # a check-in or a technical matter


HOME_EVENT_SEVERITY: dict[HomeEventKind, HomeEventSeverity] = {
    HomeEventKind.INACTIVITY: HomeEventSeverity.HIGH,
    HomeEventKind.NO_WAKEUP: HomeEventSeverity.HIGH,
    HomeEventKind.LONG_BATHROOM: HomeEventSeverity.HIGH,
    HomeEventKind.NIGHT_EXIT: HomeEventSeverity.HIGH,
    HomeEventKind.WATER_LEAK: HomeEventSeverity.MEDIUM,
    HomeEventKind.DECLINE: HomeEventSeverity.LOW,
    HomeEventKind.SENSOR_SILENT: HomeEventSeverity.LOW,
}

# Technical events go to staff only, never to the family or neighbours.
STAFF_ONLY_HOME_EVENTS = frozenset({HomeEventKind.SENSOR_SILENT})

_ROOM_NAMES = {
    "fr": {"bedroom": "chambre", "bathroom": "salle de bain", "kitchen": "cuisine",
           "living_room": "séjour", "entrance": "entrée", "other": "autre pièce"},
    "en": {"bedroom": "bedroom", "bathroom": "bathroom", "kitchen": "kitchen",
           "living_room": "living room", "entrance": "entrance", "other": "other room"},
}


def _duration_text(seconds: float) -> str:
    minutes = int(round(seconds / 60))
    return f"{minutes // 60} h {minutes % 60:02d}" if minutes >= 60 else f"{minutes} min"


@dataclass(frozen=True, slots=True)
class HomeEvent:
    """One unusual-behaviour event of one home, raised by ``analytics.homes.detect_home_events``.

    - ``start``: when the condition began (its threshold was crossed), UTC; it stays the same on
      every minute tick while the condition holds, so (``home_id``, ``kind``, ``sensor_id``,
      ``start``) identifies the episode. ``detected_at``: the tick that raised it, UTC.
    - Evidence: ``last_activity`` (UTC) and ``last_room`` (a :class:`Room` value) at detection;
      ``observed``, ``normal`` (what was learned for this home) and ``threshold`` in ``unit``
      (``"s"`` for durations, ``"motions/day"`` for decline (motion detections per day), ``"s_of_day"`` for a local time of
      day in seconds after midnight, ``""`` when not applicable).
    - ``limited_history``: the home had too little history; conservative defaults were used.
    - ``sensor_id``: the sensor concerned (water leak, silent sensor), else None.
    """

    home_id: str
    kind: HomeEventKind
    start: datetime
    detected_at: datetime
    severity: HomeEventSeverity
    last_activity: datetime | None = None
    last_room: str | None = None
    observed: float | None = None
    normal: float | None = None
    threshold: float | None = None
    unit: str = ""
    limited_history: bool = False
    sensor_id: str | None = None

    @property
    def staff_only(self) -> bool:
        return self.kind in STAFF_ONLY_HOME_EVENTS

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        for k in ("start", "detected_at", "last_activity"):
            d[k] = d[k].isoformat() if d[k] is not None else None
        d["kind"], d["severity"] = str(self.kind), str(self.severity)
        return d

    def summary(self, lang: str = "fr", tz: str = "Europe/Paris") -> str:
        """One line a caregiver understands (``lang`` "fr" or "en"), times in local ``tz``."""
        from zoneinfo import ZoneInfo

        if lang not in _ROOM_NAMES:
            raise ValueError(f"lang must be one of {sorted(_ROOM_NAMES)}, got {lang!r}")
        zone = ZoneInfo(tz)
        fr = lang == "fr"

        def at(t: datetime | None) -> str:
            return t.astimezone(zone).strftime("%H:%M") if t is not None else "?"

        room = _ROOM_NAMES[lang].get(self.last_room or "", self.last_room or "?")
        last = (f"dernière activité {at(self.last_activity)} ({room})" if fr
                else f"last activity {at(self.last_activity)} ({room})")
        obs = _duration_text(self.observed) if self.unit == "s" and self.observed is not None else ""
        thr = _duration_text(self.threshold) if self.unit == "s" and self.threshold is not None else ""
        norm = _duration_text(self.normal) if self.unit == "s" and self.normal is not None else "?"
        k = self.kind
        if k == HomeEventKind.INACTIVITY:
            return (f"Aucune activité depuis {obs} ; {last} ; habituel à cette heure jusqu'à {norm}, seuil {thr}."
                    if fr else f"No activity for {obs}; {last}; usual at this time up to {norm}, threshold {thr}.")
        if k == HomeEventKind.LONG_BATHROOM:
            return (f"Dans la salle de bain depuis {obs} ; habituel jusqu'à {norm}, seuil {thr}."
                    if fr else f"In the bathroom for {obs}; usual up to {norm}, threshold {thr}.")
        if k == HomeEventKind.NIGHT_EXIT:
            return (f"Porte d'entrée ouverte la nuit à {at(self.start - timedelta(seconds=self.threshold or 0))}, "
                    f"pas de retour depuis {obs} (seuil {thr})."
                    if fr else f"Front door opened at night at "
                    f"{at(self.start - timedelta(seconds=self.threshold or 0))}, not back for {obs} (threshold {thr}).")
        if k == HomeEventKind.NO_WAKEUP:
            def tod(s: float | None) -> str:
                return "?" if s is None else f"{int(s // 3600):02d}:{int(s % 3600 // 60):02d}"
            return (f"Pas de lever ce matin : lever habituel vers {tod(self.normal)}, aucune activité à "
                    f"{tod(self.threshold)} ; {last}."
                    if fr else f"No wake-up this morning: usually up around {tod(self.normal)}, no activity by "
                    f"{tod(self.threshold)}; {last}.")
        if k == HomeEventKind.DECLINE:
            return (f"Activité en baisse : {self.observed:.0f} mouvements détectés par jour ces derniers jours contre "
                    f"{self.normal:.0f} habituellement (seuil {self.threshold:.0f})."
                    if fr else f"Activity falling: {self.observed:.0f} movements detected a day over the last days against "
                    f"{self.normal:.0f} usually (threshold {self.threshold:.0f}).")
        if k == HomeEventKind.WATER_LEAK:
            return (f"Détecteur de fuite d'eau mouillé depuis {at(self.start)} (capteur {self.sensor_id})."
                    if fr else f"Water-leak sensor wet since {at(self.start)} (sensor {self.sensor_id}).")
        return (f"Capteur {self.sensor_id} silencieux depuis {obs} (attendu au plus {thr}) : pile ou liaison ?"
                if fr else f"Sensor {self.sensor_id} silent for {obs} (expected within {thr}): battery or link?")


class HeatingDeviceKind(StrEnum):
    """What a town-hall heating device measures (registry ``kind``; InfluxDB tag ``kind``)."""

    TRV = "trv"                  # thermostatic radiator valve: temperature, setpoint, valve position
    HEAT_METER = "heat_meter"    # radiator or room energy / power meter
    ROOM_SENSOR = "room_sensor"  # room temperature and/or occupancy (motion, head count)
    OUTDOOR = "outdoor"          # a building's outdoor temperature sensor


@dataclass(frozen=True, slots=True)
class HeatingReading:
    """One report of a heating device (zigbee2mqtt TRV, LoRaWAN thermostat, heat meter, room or
    outdoor sensor); only what the device reported is set, everything else is ``None``.

    - ``device_id``: the device's opaque registry id (its building and room come from the registry);
    - ``time``: timezone-aware UTC;
    - ``temperature_c``: measured temperature, °C (a TRV's ``local_temperature``);
    - ``setpoint_c``: heating setpoint, °C (``occupied_heating_setpoint`` / ``current_heating_setpoint``);
    - ``valve_pct``: valve position or heating demand, % open 0–100 (``position`` / ``pi_heating_demand``);
    - ``heating``: the valve says it is heating (``running_state`` ``heat``);
    - ``window_open``: the device detected an open window (a state, never the detection *feature* switch);
    - ``occupied``: someone is in the room (motion / presence / head count > 0);
    - ``power_w``: heat or electric power, W; ``energy_kwh``: cumulative energy register, kWh;
    - ``battery_pct``: 0–100; ``battery_low``: the device's own low-battery flag;
    - ``source``: the decoder that produced it.
    """

    device_id: str
    time: datetime
    temperature_c: float | None = None
    setpoint_c: float | None = None
    valve_pct: float | None = None
    heating: bool | None = None
    window_open: bool | None = None
    occupied: bool | None = None
    power_w: float | None = None
    energy_kwh: float | None = None
    battery_pct: float | None = None
    battery_low: bool | None = None
    source: str = ""

    def __post_init__(self) -> None:
        if self.time.tzinfo is None:
            raise ValueError("HeatingReading.time must be timezone-aware")
        if self.time.utcoffset() != timezone.utc.utcoffset(None):
            object.__setattr__(self, "time", self.time.astimezone(timezone.utc))
