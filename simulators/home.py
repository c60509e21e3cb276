"""Assisted-living homes: daily routines of a person living alone, as zigbee2mqtt messages, with
injectable anomalies and their ground truth.

Each home gets twelve sensors (:data:`DEVICES`): a PIR motion sensor in each room (Aqara
RTCGQ11LM), a bed pressure strap (Tuya TS0601_bed_presence_sensor), a chair pressure mat (HOBEIAN
ZG-210Z), door contacts on the bathroom, the fridge and the entrance (Aqara MCCGQ11LM), a water
leak sensor in the bathroom (Aqara SJCGQ11LM) and a metering plug under the kettle (Tuya TS011F).
Payloads follow zigbee2mqtt 2.x with ``cache_state`` on (every message repeats all attributes),
``last_seen: ISO_8601`` and ``linkquality`` — ``shared/reference/payload-formats.md`` §2 and
``docs/homes.md``.

**Routine.** One resident per home with a persona drawn from the seed: usual wake-up time
(06:15–08:30) and its day-to-day spread (σ 10–30 min), later at weekends, sleep 7.5–9.5 h, night
bathroom visits (Poisson, 0.4–2 a night), meals at personal times (breakfast with the kettle, lunch,
dinner; fridge opened at each), a bathroom visit every 1.5–3.5 h, sitting in the living-room chair,
an afternoon nap some days, outings (1–3 h) and visitors (45–120 min, tea) on some days, fewer outings
and more visitors at weekends. Motion sensors behave as the Aqara PIR does under zigbee2mqtt: a
detection reports ``occupancy: true``, the sensor is blind for 60 s, and zigbee2mqtt publishes
``occupancy: false`` 90 s (``occupancy_timeout``) after the last detection. Contacts, the bed, the
chair and the plug report on change; battery devices and the plug also report every 50 min
(the Aqara heartbeat), repeating their cached state. Availability (``<name>/availability``,
``{"state":"online"}``, retained) and the bridge state are published at the start.

**Anomalies** (``home`` is the home's position 0…N−1 or its id; naive datetimes are local time):

- :class:`Fall` — at ``at`` the resident walks into the bathroom (one motion detection, the door
  closes) and does not move for ``minutes``; truth ``[at, at + minutes)``.
- :class:`NoWakeUp` — on ``day`` the resident stays in bed, motionless, from the day's planned
  wake-up for ``minutes``; truth ``[planned wake-up, + minutes)``.
- :class:`NightWandering` — at ``at`` the resident gets up, goes out through the entrance and comes
  back after ``minutes``; truth ``[door opened on leaving, door opened on return)``.
- :class:`Decline` — from local midnight of ``start``, activity (motion rate, outings, snacks) falls
  linearly over ``days`` to ``final_level`` of normal, wake-ups get later, naps more frequent;
  truth ``[start midnight, start + days midnight or the period's end)``.
- :class:`BatteryDying` — the ``sensor``'s battery falls to 2 % over ``days`` before ``at``, then
  the device sends nothing; zigbee2mqtt marks it offline 25 h after its last message (passive
  availability); truth ``[at, None)``.

:func:`simulate_homes` is pure (no MQTT): it returns the messages and the
:class:`~vigie.records.SensorEvent` records the zigbee2mqtt decoder makes of them (for analytics
evaluation). Randomness comes from independent streams of the seed per home and per day, so an
anomaly changes its own home's days only. :func:`vigie.simulators.publish.publish_messages` sends the messages over MQTT
(QoS 1), :func:`write_home_registry` the registry YAML (households, fake resident and caregivers,
sensors: ``docs/homes.md``).
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import ClassVar
from zoneinfo import ZoneInfo

import numpy as np
import yaml

from vigie.ingest.decoders.zigbee2mqtt import DeviceAvailability, SensorInfo
from vigie.records import Room, SensorEvent, SensorKind


@dataclass(frozen=True)
class DeviceSpec:
    """A sensor every simulated home has: ``key`` (``room/device``, the friendly name after the
    home's prefix), room, kind and zigbee2mqtt model."""

    key: str
    room: Room
    kind: SensorKind
    model: str


DEVICES: tuple[DeviceSpec, ...] = (
    DeviceSpec("bedroom/motion", Room.BEDROOM, SensorKind.MOTION, "RTCGQ11LM"),
    DeviceSpec("bedroom/bed", Room.BEDROOM, SensorKind.PRESENCE, "TS0601_bed_presence_sensor"),
    DeviceSpec("bathroom/motion", Room.BATHROOM, SensorKind.MOTION, "RTCGQ11LM"),
    DeviceSpec("bathroom/door", Room.BATHROOM, SensorKind.CONTACT, "MCCGQ11LM"),
    DeviceSpec("bathroom/leak", Room.BATHROOM, SensorKind.WATER_LEAK, "SJCGQ11LM"),
    DeviceSpec("kitchen/motion", Room.KITCHEN, SensorKind.MOTION, "RTCGQ11LM"),
    DeviceSpec("kitchen/fridge", Room.KITCHEN, SensorKind.CONTACT, "MCCGQ11LM"),
    DeviceSpec("kitchen/kettle", Room.KITCHEN, SensorKind.POWER, "TS011F"),
    DeviceSpec("living_room/motion", Room.LIVING_ROOM, SensorKind.MOTION, "RTCGQ11LM"),
    DeviceSpec("living_room/chair", Room.LIVING_ROOM, SensorKind.PRESENCE, "ZG-210Z"),
    DeviceSpec("entrance/door", Room.ENTRANCE, SensorKind.CONTACT, "MCCGQ11LM"),
    DeviceSpec("entrance/motion", Room.ENTRANCE, SensorKind.MOTION, "RTCGQ11LM"),
)
_KEYS = {d.key: i for i, d in enumerate(DEVICES)}
_PIR = {d.room: i for i, d in enumerate(DEVICES) if d.kind is SensorKind.MOTION}
_BED, _CHAIR = _KEYS["bedroom/bed"], _KEYS["living_room/chair"]
_BATH_DOOR, _FRIDGE, _KETTLE, _DOOR = (_KEYS["bathroom/door"], _KEYS["kitchen/fridge"], _KEYS["kitchen/kettle"],
                                       _KEYS["entrance/door"])

#: zigbee2mqtt's ``occupancy_timeout`` for Aqara PIRs, and the sensor's own blind time after a detection.
OCCUPANCY_TIMEOUT_S = 90.0
PIR_BLIND_S = 60.0
#: The Aqara heartbeat (and the plug's periodic energy report): every 50 min.
HEARTBEAT_S = 3000.0
#: zigbee2mqtt's passive availability timeout for battery devices.
PASSIVE_TIMEOUT_S = 25 * 3600.0
#: The registry's ``expected_interval_s`` for every simulated sensor: longer than the heartbeat.
EXPECTED_INTERVAL_S = 3600
#: Motion detections per minute by what the resident is doing (before the persona's activity).
PIR_RATE = {"active": 0.8, "cook": 1.0, "visit": 0.5, "sit": 0.08, "nap": 0.01, "sleep": 0.004,
            "still": 0.0, "fallen": 0.0, "out": 0.0}
_IN_BED = frozenset({"sleep", "nap", "still"})
_IN_CHAIR = frozenset({"sit", "visit"})

HomeRef = int | str


# --- anomalies --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Fall:
    """The resident enters the bathroom at ``at`` and lies still for ``minutes``."""

    home: HomeRef
    at: datetime
    minutes: float = 120.0
    kind: ClassVar[str] = "fall"


@dataclass(frozen=True)
class NoWakeUp:
    """On local ``day`` the resident stays in bed, motionless, ``minutes`` past the planned wake-up."""

    home: HomeRef
    day: date
    minutes: float = 180.0
    kind: ClassVar[str] = "no_wakeup"


@dataclass(frozen=True)
class NightWandering:
    """At ``at`` the resident leaves the home through the entrance and returns after ``minutes``."""

    home: HomeRef
    at: datetime
    minutes: float = 45.0
    kind: ClassVar[str] = "night_wandering"


@dataclass(frozen=True)
class Decline:
    """From local ``start``, activity falls linearly over ``days`` to ``final_level`` (0–1) of normal."""

    home: HomeRef
    start: date
    days: int = 10
    final_level: float = 0.4
    kind: ClassVar[str] = "decline"


@dataclass(frozen=True)
class BatteryDying:
    """The home's ``sensor`` (a :data:`DEVICES` key, e.g. ``bathroom/motion``) runs its battery
    down to 2 % over ``days`` before ``at`` and is silent from ``at``."""

    home: HomeRef
    sensor: str
    at: datetime
    days: float = 7.0
    kind: ClassVar[str] = "battery_dying"


Anomaly = Fall | NoWakeUp | NightWandering | Decline | BatteryDying


@dataclass
class HomeSimConfig:
    """What to simulate: ``homes`` homes over ``days`` local days from local midnight of ``start``
    (None: the ``days`` days ending yesterday) in zone ``tz``; ``base_topic`` as zigbee2mqtt's;
    ``anomalies``: see :data:`Anomaly`. ``end`` (aware): the period stops there if it comes before
    the last day's end — nothing from that moment on is simulated (a live test ends the days
    "now" so that an anomaly under way is still under way)."""

    homes: int = 10
    days: int = 14
    start: date | None = None
    tz: str = "Europe/Paris"
    seed: int = 0
    anomalies: list[Anomaly] = field(default_factory=list)
    base_topic: str = "zigbee2mqtt"
    end: datetime | None = None

    def __post_init__(self) -> None:
        if self.homes < 1 or self.days < 1:
            raise ValueError(f"homes={self.homes}, days={self.days}: both must be ≥ 1")
        if self.end is not None and self.end.tzinfo is None:
            raise ValueError(f"end {self.end.isoformat()}: expected a moment with a UTC offset")
        ZoneInfo(self.tz)

    def start_date(self) -> date:
        if self.start is not None:
            return self.start
        return datetime.now(ZoneInfo(self.tz)).date() - timedelta(days=self.days)


# --- homes ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Persona:
    """A resident's habits; times in minutes after local midnight, durations in minutes."""

    wake_mean: float
    wake_sd: float
    weekend_delay: float
    sleep_h: float
    bed_sd: float
    night_visits: float          # mean bathroom visits a night
    outing_weekday: float        # probability of going out on a weekday
    outing_weekend: float
    visit_weekday: float         # probability of a visitor
    visit_weekend: float
    activity: float              # multiplies the motion rates
    nap_prob: float
    lunch: float
    dinner: float


@dataclass(frozen=True)
class SimSensor:
    sensor_id: str
    friendly_name: str
    spec: DeviceSpec


@dataclass(frozen=True)
class SimHome:
    index: int
    home_id: str
    persona: Persona
    sensors: tuple[SimSensor, ...]


def _rng(seed: int, *stream) -> random.Random:
    return random.Random(":".join(map(str, (seed, *stream))))


def plan_homes(config: HomeSimConfig) -> list[SimHome]:
    """The homes, their residents' personas and sensors (independent of the anomalies)."""
    homes, ids = [], set()
    for i in range(config.homes):
        r = _rng(config.seed, "persona", i)
        persona = Persona(
            wake_mean=r.uniform(6.25, 8.5) * 60, wake_sd=r.uniform(10, 30), weekend_delay=r.uniform(0, 50),
            sleep_h=r.uniform(7.5, 9.5), bed_sd=r.uniform(10, 25), night_visits=r.uniform(0.4, 2.0),
            outing_weekday=r.uniform(0.3, 0.7), outing_weekend=r.uniform(0.1, 0.45),
            visit_weekday=r.uniform(0.1, 0.3), visit_weekend=r.uniform(0.25, 0.5),
            activity=r.uniform(0.75, 1.25), nap_prob=r.uniform(0.1, 0.5),
            lunch=r.uniform(12.0, 13.0) * 60, dinner=r.uniform(18.5, 19.75) * 60)
        home_id = f"home-{i + 1:04d}"
        sensors = []
        for spec in DEVICES:
            sid = f"s-{r.getrandbits(40):010x}"
            while sid in ids:
                sid = f"s-{r.getrandbits(40):010x}"
            ids.add(sid)
            sensors.append(SimSensor(sid, f"{home_id}/{spec.key}", spec))
        homes.append(SimHome(i, home_id, persona, tuple(sensors)))
    return homes


# --- timeline ---------------------------------------------------------------------------------

@dataclass
class _Use:
    """An appliance or door used from ``t_on`` to ``t_off`` (epoch s): ``device`` index, value while
    in use (1 open / W) and after (0)."""

    t_on: float
    t_off: float
    device: int
    value: float


@dataclass
class _Seg:
    """The resident from ``t0`` to ``t1`` (epoch s) in ``room`` (None: out) doing ``mode``."""

    t0: float
    t1: float
    room: Room | None
    mode: str
    uses: list[_Use] = field(default_factory=list)


class _Clock:
    """Local wall-clock minutes of a day → epoch seconds (nonexistent times read in the earlier offset)."""

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone

    def epoch(self, day: date, minute: float) -> float:
        return (datetime.combine(day, time()) + timedelta(minutes=minute)).replace(tzinfo=self.zone).timestamp()


class _DayBuilder:
    """Appends segments (local minutes of ``day``) converted to epoch seconds."""

    def __init__(self, clock: _Clock, day: date, rng: random.Random) -> None:
        self.clock, self.day, self.r = clock, day, rng
        self.segs: list[_Seg] = []

    def add(self, m0: float, m1: float, room: Room | None, mode: str) -> _Seg:
        seg = _Seg(self.clock.epoch(self.day, m0), self.clock.epoch(self.day, m1), room, mode)
        self.segs.append(seg)
        return seg

    def use(self, seg: _Seg, offset_s: float, duration_s: float, device: int, value: float) -> None:
        t_on = min(seg.t0 + offset_s, seg.t1 - 1.0)
        seg.uses.append(_Use(t_on, t_on + duration_s, device, value))

    def fridge(self, seg: _Seg, times: int) -> None:
        span = max(seg.t1 - seg.t0 - 90.0, 10.0)
        for k in range(times):
            self.use(seg, 20.0 + span * (k + self.r.random()) / times, self.r.uniform(10, 50), _FRIDGE, 1.0)

    def kettle(self, seg: _Seg, offset_s: float) -> None:
        self.use(seg, offset_s, self.r.uniform(150, 240), _KETTLE, round(self.r.gauss(2000, 60), 1))


def _level(d: date, declines: list[Decline]) -> float:
    level = 1.0
    for a in declines:
        if d >= a.start:
            done = min(1.0, ((d - a.start).days + 1) / max(a.days, 1))
            level = min(level, 1.0 - (1.0 - a.final_level) * done)
    return level


def _wake_and_bed(p: Persona, d: date, level: float, r: random.Random) -> tuple[float, float]:
    weekend = d.weekday() >= 5
    wake = p.wake_mean + (p.weekend_delay if weekend else 0.0) + (1.0 - level) * 45.0 + r.gauss(0, p.wake_sd)
    wake = min(max(wake, 300.0), 660.0)
    bed = p.wake_mean + 1440 - p.sleep_h * 60 + (30.0 if d.weekday() in (4, 5) else 0.0) + r.gauss(0, p.bed_sd)
    return wake, min(max(bed, 1230.0), 1470.0)


def _plan_day(b: _DayBuilder, p: Persona, level: float, wake: float, bed: float) -> None:
    """The resident's day from ``wake`` to ``bed`` (local minutes)."""
    r, d = b.r, b.day
    weekend = d.weekday() >= 5
    t = _step(b, wake, r.uniform(2, 5), Room.BEDROOM, "active")
    t_bath = t
    t = _step(b, t, r.uniform(8, 20), Room.BATHROOM, "active")
    breakfast = b.add(t, t + r.uniform(15, 30), Room.KITCHEN, "cook")
    if r.random() < 0.9:
        b.kettle(breakfast, r.uniform(60, 240))
    b.fridge(breakfast, r.choice((1, 2)))
    t += (breakfast.t1 - breakfast.t0) / 60
    evening = bed - r.uniform(12, 22)
    blocks: list[tuple[float, float, str]] = []
    lunch = max(p.lunch + r.gauss(0, 15), t + 30)
    blocks.append((lunch, lunch + r.uniform(25, 45), "meal"))
    dinner = max(p.dinner + r.gauss(0, 20), blocks[-1][1] + 60)
    if dinner + 30 < evening - 20:
        blocks.append((dinner, dinner + r.uniform(25, 40), "meal"))
    if r.random() < (p.outing_weekend if weekend else p.outing_weekday) * level:
        _place(blocks, r, r.uniform(60, 180), t + 20, evening - 30, "outing")
    if r.random() < (p.visit_weekend if weekend else p.visit_weekday):
        _place(blocks, r, r.uniform(45, 120), max(t + 20, 13.5 * 60), evening - 30, "visit")
    napped = False
    for start, end, what in sorted(blocks):
        t_bath, napped = _fill(b, p, level, t, start, t_bath, napped)
        t = start
        if what == "meal":
            seg = b.add(t, end, Room.KITCHEN, "cook")
            b.fridge(seg, r.choice((1, 2, 3)))
            if r.random() < 0.3:
                b.kettle(seg, r.uniform(60, 600))
        elif what == "outing":
            leave = b.add(t, t + 1.5, Room.ENTRANCE, "active")
            b.use(leave, 60 + r.uniform(0, 10), r.uniform(5, 12), _DOOR, 1.0)
            b.add(t + 1.5, end - 1.5, None, "out")
            back = b.add(end - 1.5, end, Room.ENTRANCE, "active")
            b.use(back, r.uniform(1, 5), r.uniform(5, 12), _DOOR, 1.0)
        else:  # a visitor: let in, tea in the kitchen, the living room, seen out
            arrive = b.add(t, t + 1, Room.ENTRANCE, "active")
            b.use(arrive, r.uniform(15, 25), r.uniform(8, 15), _DOOR, 1.0)
            tea = b.add(t + 1, t + 7, Room.KITCHEN, "cook")
            b.kettle(tea, r.uniform(30, 90))
            b.fridge(tea, 1)
            b.add(t + 7, end - 1, Room.LIVING_ROOM, "visit")
            leave = b.add(end - 1, end, Room.ENTRANCE, "active")
            b.use(leave, r.uniform(15, 25), r.uniform(8, 15), _DOOR, 1.0)
        t = end
    _fill(b, p, level, t, evening, t_bath, napped)
    t = _step(b, evening, max(bed - 3 - evening, 2.0), Room.BATHROOM, "active")
    b.add(t, bed, Room.BEDROOM, "active")


def _step(b: _DayBuilder, t: float, minutes: float, room: Room, mode: str) -> float:
    b.add(t, t + minutes, room, mode)
    return t + minutes


def _place(blocks: list[tuple[float, float, str]], r: random.Random, duration: float, lo: float, hi: float,
           what: str) -> None:
    """Add a block of ``duration`` in a free gap of [lo, hi] (15 min clear of other blocks), if any fits."""
    busy = sorted(blocks)
    edges = [lo] + [x for s, e, _ in busy for x in (s - 15, e + 15)] + [hi]
    gaps = [(max(a, lo), min(z, hi)) for a, z in zip(edges[::2], edges[1::2])]
    gaps = [(a, z) for a, z in gaps if z - a >= duration]
    if gaps:
        a, z = r.choice(gaps)
        start = r.uniform(a, z - duration)
        blocks.append((start, start + duration, what))


def _fill(b: _DayBuilder, p: Persona, level: float, t: float, end: float, t_bath: float,
          napped: bool) -> tuple[float, bool]:
    """Ordinary time at home from ``t`` to ``end``: the chair, the bathroom now and then, the odd
    kitchen trip or bedroom errand, maybe a nap. Returns the last bathroom visit and whether napped."""
    r = b.r
    bath_every = r.uniform(90, 210)
    nap_prob = min(1.0, p.nap_prob + (1.0 - level) * 0.5)
    while end - t > 1.0:
        x = r.random()
        if t - t_bath > bath_every:
            t_bath, bath_every = t, r.uniform(90, 210)
            t = _step(b, t, min(r.uniform(3, 8), end - t), Room.BATHROOM, "active")
        elif not napped and 13.5 * 60 <= t <= 16 * 60 and end - t > 40 and x < nap_prob:
            napped = True
            t = _step(b, t, 1.0, Room.BEDROOM, "active")
            t = _step(b, t, min(r.uniform(20, 60), end - t - 1), Room.BEDROOM, "nap")
            t = _step(b, t, min(1.0, end - t), Room.BEDROOM, "active")
        elif x < 0.08 * level:
            seg = b.add(t, t + min(r.uniform(2, 6), end - t), Room.KITCHEN, "active")
            if r.random() < 0.7:
                b.fridge(seg, 1)
            t += (seg.t1 - seg.t0) / 60
        elif x < 0.12:
            t = _step(b, t, min(r.uniform(3, 10), end - t), Room.BEDROOM, "active")
        else:
            t = _step(b, t, min(r.uniform(1, 3), end - t), Room.LIVING_ROOM, "active")
            if end - t > 1.0:
                t = _step(b, t, min(r.uniform(15, 70), end - t), Room.LIVING_ROOM, "sit")
    return t_bath, napped


def _night(t0: float, t1: float, p: Persona, r: random.Random) -> list[_Seg]:
    """Sleep from ``t0`` to ``t1`` (epoch s) with bathroom visits."""
    n = _poisson(r, p.night_visits)
    lo, hi = t0 + 45 * 60, t1 - 30 * 60
    times = sorted(r.uniform(lo, hi) for _ in range(n)) if hi > lo else []
    segs, t = [], t0
    for v in times:
        if v - t < 30 * 60:
            continue
        segs.append(_Seg(t, v, Room.BEDROOM, "sleep"))
        t = v
        for room, minutes in ((Room.BEDROOM, r.uniform(0.5, 1)), (Room.BATHROOM, r.uniform(3, 8)),
                              (Room.BEDROOM, r.uniform(0.3, 0.8))):
            segs.append(_Seg(t, t + minutes * 60, room, "active"))
            t += minutes * 60
    segs.append(_Seg(t, t1, Room.BEDROOM, "sleep"))
    return segs


def _poisson(r: random.Random, lam: float) -> int:
    k, p, limit = 0, 1.0, math.exp(-lam)
    while True:
        p *= r.random()
        if p <= limit:
            return k
        k += 1


def _splice(segs: list[_Seg], t0: float, t1: float, new: list[_Seg]) -> list[_Seg]:
    """``segs`` with ``[t0, t1)`` replaced by ``new``. Uses begun before ``t0`` end at ``t0`` at the
    latest; uses beginning inside the window are dropped."""
    out = []
    for s in segs:
        if s.t1 <= t0 or s.t0 >= t1:
            out.append(s)
            continue
        if s.t0 < t0:
            out.append(_Seg(s.t0, t0, s.room, s.mode,
                            [_Use(u.t_on, min(u.t_off, t0), u.device, u.value) for u in s.uses if u.t_on < t0]))
        if s.t1 > t1:
            out.append(_Seg(t1, s.t1, s.room, s.mode, [u for u in s.uses if u.t_on >= t1]))
    out.extend(new)
    out.sort(key=lambda s: s.t0)
    return out


def _chain(t: float, parts: list[tuple[Room | None, str, float]]) -> list[_Seg]:
    segs = []
    for room, mode, seconds in parts:
        segs.append(_Seg(t, t + seconds, room, mode))
        t += seconds
    return segs


# --- ground truth -----------------------------------------------------------------------------

@dataclass(frozen=True)
class AnomalyTruth:
    """One injected anomaly: ``home`` id, ``kind`` (the anomaly class's ``kind``), ``start``/``end``
    UTC (``end`` None: lasts past the period), ``detail`` (parameters, sensor ids)."""

    home: str
    kind: str
    start: datetime
    end: datetime | None
    detail: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"home": self.home, "kind": self.kind, "start": _iso(self.start),
                "end": None if self.end is None else _iso(self.end), "detail": self.detail}


def _iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(round(epoch, 3), timezone.utc)


# --- device reports → messages and events -----------------------------------------------------

@dataclass(frozen=True, slots=True)
class Z2mMessage:
    """One MQTT message as zigbee2mqtt publishes it: ``time`` (UTC) is when it is sent."""

    topic: str
    payload: bytes
    time: datetime
    retain: bool = False


@dataclass
class _Device:
    """Per-device state while its reports are produced."""

    sensor: SimSensor
    battery0: float
    link: float
    r: random.Random
    dying: BatteryDying | None = None
    dying_from: float = math.inf
    silent_from: float = math.inf

    def battery(self, t: float) -> int:
        if t < self.dying_from:
            return int(round(self.battery0))
        share = min(1.0, (t - self.dying_from) / max(self.silent_from - self.dying_from, 1.0))
        return int(round(self.battery0 + (2.0 - self.battery0) * share))


#: ``HomeSimResult.reports`` row types: a device state message, an availability message.
STATE, AVAILABILITY = 0, 1
_BRIDGE = -1
_REPORT_COLUMNS = ("t_ms", "home", "device", "type", "value", "battery", "link", "energy")


@dataclass
class HomeSimResult:
    """What :func:`simulate_homes` produced.

    ``homes``: :class:`SimHome` (ids, personas, sensors); ``truths``: the injected anomalies;
    ``reports``: one row per message in publishing order (by time), as numpy columns — ``t_ms``
    (int64, epoch ms UTC), ``home`` (position), ``device`` (:data:`DEVICES` index, −1 the bridge),
    ``type`` (:data:`STATE` or :data:`AVAILABILITY`), ``value`` (the SensorEvent value; 1/0
    online for availability), ``battery`` (%, −1 none), ``link`` (LQI), ``energy`` (plug kWh).
    :meth:`messages`, :meth:`events` and :meth:`availability` expand them lazily, so a large
    fleet costs a few tens of bytes per message.
    """

    config: HomeSimConfig
    homes: list[SimHome]
    truths: list[AnomalyTruth]
    reports: dict[str, np.ndarray]
    period_start: datetime
    period_end: datetime

    def __len__(self) -> int:
        return len(self.reports["t_ms"])

    def sensor_infos(self) -> dict[str, SensorInfo]:
        """Friendly name → :class:`SensorInfo`, the decoder's lookup for these homes."""
        return {s.friendly_name: SensorInfo(s.sensor_id, s.spec.kind, s.spec.room, h.home_id)
                for h in self.homes for s in h.sensors}

    def _rows(self, kind: int | None = None) -> Iterator[tuple]:
        """Report rows as tuples in :data:`_REPORT_COLUMNS` order, all or those of one ``type``."""
        c = self.reports
        keep = slice(None) if kind is None else c["type"] == kind
        return zip(*(c[k][keep].tolist() for k in _REPORT_COLUMNS))

    def messages(self) -> Iterator[Z2mMessage]:
        """Every message, in publishing order."""
        base = self.config.base_topic
        for row in self._rows():
            yield _message(base, self.homes[row[1]], row)

    def events(self) -> Iterator[SensorEvent]:
        """The :class:`~vigie.records.SensorEvent` of each state message, in order — what the
        zigbee2mqtt decoder makes of them."""
        for t_ms, home, device, _, value, battery, link, _ in self._rows(STATE):
            s = self.homes[home].sensors[device]
            yield SensorEvent(sensor_id=s.sensor_id, time=_utc_ms(t_ms), kind=s.spec.kind, value=value,
                              battery_pct=None if battery < 0 else float(battery), link_quality=float(link),
                              source="zigbee2mqtt")

    def availability(self) -> Iterator[DeviceAvailability]:
        """The :class:`DeviceAvailability` of each availability message (time = when sent)."""
        base = self.config.base_topic
        for t_ms, home_index, device, _, value, _, _, _ in self._rows(AVAILABILITY):
            home, online, when = self.homes[home_index], value > 0, _utc_ms(t_ms)
            if device == _BRIDGE:
                yield DeviceAvailability("bridge", f"{base}/{home.home_id}", online, when)
            else:
                yield DeviceAvailability("sensor", home.sensors[device].sensor_id, online, when, home_id=home.home_id)

    def write_ground_truth(self, path: Path | str) -> None:
        """The anomalies as JSON lines: ``{"home", "kind", "start", "end", "detail"}`` (UTC, ``Z``)."""
        with Path(path).open("w", encoding="utf-8") as fh:
            for t in self.truths:
                fh.write(json.dumps(t.to_dict(), ensure_ascii=False) + "\n")


def simulate_homes(config: HomeSimConfig) -> HomeSimResult:
    """Simulate every home over the period (no I/O). Raises ``ValueError`` for an anomaly that names
    an unknown home or sensor, or lies outside the period."""
    zone = ZoneInfo(config.tz)
    clock = _Clock(zone)
    start = config.start_date()
    days = [start + timedelta(days=i) for i in range(config.days)]
    p0, p1 = clock.epoch(start, 0), clock.epoch(start + timedelta(days=config.days), 0)
    if config.end is not None:
        if config.end.timestamp() <= p0:
            raise ValueError(f"end {config.end.isoformat()}: before the first simulated day {start}")
        p1 = min(p1, config.end.timestamp())
    homes = plan_homes(config)
    by_id = {h.home_id: h.index for h in homes}
    per_home: dict[int, list[Anomaly]] = {}
    for a in config.anomalies:
        per_home.setdefault(_resolve(a.home, homes, by_id), []).append(a)
    parts: list[dict[str, np.ndarray]] = []
    truths: list[AnomalyTruth] = []
    for home in homes:
        anomalies = per_home.get(home.index, [])
        segs, home_truths = _timeline(config, home, anomalies, clock, days, p0, p1)
        parts.append(_home_reports(config, home, anomalies, segs, p0, p1, zone, home_truths))
        truths.extend(home_truths)
    reports = {k: np.concatenate([part[k] for part in parts]) for k in _REPORT_COLUMNS}
    order = np.lexsort((np.arange(len(reports["t_ms"])), reports["home"], reports["t_ms"]))
    reports = {k: v[order] for k, v in reports.items()}
    return HomeSimResult(config, homes, sorted(truths, key=lambda t: (t.start, t.home)), reports,
                         _utc(p0), _utc(p1))


def _resolve(ref: HomeRef, homes: list[SimHome], by_id: dict[str, int]) -> int:
    if isinstance(ref, int):
        if not 0 <= ref < len(homes):
            raise ValueError(f"anomaly on home {ref}: expected a position 0..{len(homes) - 1}")
        return ref
    if ref not in by_id:
        raise ValueError(f"anomaly on home {ref!r}: no such home")
    return by_id[ref]


def _timeline(config: HomeSimConfig, home: SimHome, anomalies: list[Anomaly], clock: _Clock, days: list[date],
              p0: float, p1: float) -> tuple[list[_Seg], list[AnomalyTruth]]:
    """The resident's segments over the whole period, anomalies applied, and their truths."""
    p = home.persona
    declines = [a for a in anomalies if isinstance(a, Decline)]
    wakes, beds, builders = [], [], []
    for i, d in enumerate(days):
        r = _rng(config.seed, "day", home.index, i)
        level = _level(d, declines)
        wake, bed = _wake_and_bed(p, d, level, r)
        b = _DayBuilder(clock, d, r)
        _plan_day(b, p, level, wake, bed)
        wakes.append(clock.epoch(d, wake))
        beds.append(clock.epoch(d, bed))
        builders.append(b)
    segs: list[_Seg] = []
    night_start = p0
    for i, b in enumerate(builders):
        segs.extend(_night(night_start, wakes[i], p, _rng(config.seed, "night", home.index, i)))
        segs.extend(b.segs)
        night_start = beds[i]
    segs.extend(_night(night_start, p1, p, _rng(config.seed, "night", home.index, len(days))))
    _monotonic(segs)
    truths = []
    for a in anomalies:
        if isinstance(a, Fall):
            t0 = _epoch(a.at, clock.zone, p0, p1, a)
            t1 = t0 + a.minutes * 60
            segs = _splice(segs, t0, t1 + 12 * 60, _chain(t0, [(Room.BATHROOM, "fallen", a.minutes * 60),
                                                                (Room.BATHROOM, "active", 120),
                                                                (Room.LIVING_ROOM, "active", 600)]))
            truths.append(AnomalyTruth(home.home_id, a.kind, _utc(t0), _utc(t1), {"minutes": a.minutes}))
        elif isinstance(a, NoWakeUp):
            if a.day not in days:
                raise ValueError(f"no-wakeup on {a.day}: outside the simulated days {days[0]}..{days[-1]}")
            t0 = wakes[days.index(a.day)]
            t1 = t0 + a.minutes * 60
            segs = _splice(segs, t0, t1 + 13 * 60, _chain(t0, [(Room.BEDROOM, "still", a.minutes * 60),
                                                                (Room.BEDROOM, "active", 180),
                                                                (Room.BATHROOM, "active", 600)]))
            truths.append(AnomalyTruth(home.home_id, a.kind, _utc(t0), _utc(t1), {"minutes": a.minutes}))
        elif isinstance(a, NightWandering):
            t0 = _epoch(a.at, clock.zone, p0, p1, a)
            out = a.minutes * 60
            new = _chain(t0, [(Room.BEDROOM, "active", 60), (Room.ENTRANCE, "active", 60), (None, "out", out),
                              (Room.ENTRANCE, "active", 60), (Room.BEDROOM, "active", 60)])
            leave, back = new[1], new[3]
            leave.uses.append(_Use(leave.t1 - 8, leave.t1 - 1, _DOOR, 1.0))
            back.uses.append(_Use(back.t0 + 2, back.t0 + 10, _DOOR, 1.0))
            segs = _splice(segs, t0, new[-1].t1, new)
            truths.append(AnomalyTruth(home.home_id, a.kind, _utc(leave.t1 - 8), _utc(back.t0 + 2),
                                       {"minutes": a.minutes, "sensor_id": home.sensors[_DOOR].sensor_id}))
        elif isinstance(a, Decline):
            if not 0 < a.final_level <= 1 or a.days < 1:
                raise ValueError(f"decline: final_level {a.final_level} must be in (0, 1], days {a.days} ≥ 1")
            t0 = clock.epoch(a.start, 0)
            if not p0 <= t0 < p1:
                raise ValueError(f"decline from {a.start}: outside the simulated days {days[0]}..{days[-1]}")
            t1 = clock.epoch(a.start + timedelta(days=a.days), 0)
            truths.append(AnomalyTruth(home.home_id, a.kind, _utc(t0), _utc(t1) if t1 < p1 else None,
                                       {"days": a.days, "final_level": a.final_level}))
        else:  # BatteryDying: applied when the device's reports are encoded
            if a.sensor not in _KEYS:
                raise ValueError(f"battery-dying sensor {a.sensor!r}: expected one of {', '.join(_KEYS)}")
            _epoch(a.at, clock.zone, p0, p1, a)
    return segs, truths


def _epoch(t: datetime, zone: ZoneInfo, p0: float, p1: float, what: Anomaly) -> float:
    e = (t if t.tzinfo else t.replace(tzinfo=zone)).timestamp()
    if not p0 <= e < p1:
        raise ValueError(f"{what.kind} at {t.isoformat()}: outside the simulated period")
    return e


def _monotonic(segs: list[_Seg]) -> None:
    """Clamp boundaries so time never runs backwards (local times in a spring-forward gap)."""
    t = -math.inf
    for s in segs:
        s.t0 = max(s.t0, t)
        s.t1 = max(s.t1, s.t0)
        t = s.t1


def _changes(segs: list[_Seg], r: random.Random, activity: float, level_at: Callable[[float], float]
             ) -> list[tuple[float, int, float]]:
    """State reports (epoch s, device index, value) the resident's segments cause, before the
    heartbeats: PIR detections and clears, bed, chair, doors, fridge, kettle."""
    out: list[tuple[float, int, float]] = []
    last_pir: dict[int, float] = {}
    triggers: dict[int, list[float]] = {i: [] for i in _PIR.values()}
    prev_room: Room | None = Room.BEDROOM
    bed_from = chair_from = None
    for k, s in enumerate(segs):
        pir = _PIR.get(s.room) if s.room else None
        if s.room != prev_room:
            if s.room is Room.BATHROOM:
                out.append((s.t0 + r.uniform(3, 10), _BATH_DOOR, 0.0))  # closed behind the resident
            if prev_room is Room.BATHROOM:
                out.append((s.t0, _BATH_DOOR, 1.0))
            if pir is not None and s.mode not in _IN_BED and s.t0 - last_pir.get(pir, -math.inf) >= PIR_BLIND_S:
                t = s.t0 + r.uniform(1, 4)
                triggers[pir].append(t)
                last_pir[pir] = t
        rate = PIR_RATE[s.mode] * activity * level_at(s.t0) / 60.0
        if pir is not None and rate > 0:
            t = max(s.t0, last_pir.get(pir, -math.inf) + PIR_BLIND_S)
            while True:
                t += r.expovariate(rate)
                if t >= s.t1:
                    break
                triggers[pir].append(t)
                last_pir[pir] = t
                t += PIR_BLIND_S
        nxt = segs[k + 1] if k + 1 < len(segs) else None
        if s.mode in _IN_BED:
            bed_from = s.t0 if bed_from is None else bed_from
            if nxt is None or nxt.mode not in _IN_BED:
                # Asleep when the period starts: the strap's first report is at the start.
                settle = 0.0 if bed_from == segs[0].t0 else min(r.uniform(10, 60), (s.t1 - bed_from) / 3)
                out.append((bed_from + settle, _BED, 1.0))
                if nxt is not None:
                    out.append((s.t1 + r.uniform(1, 5), _BED, 0.0))  # the strap reports once released
                bed_from = None
        if s.mode in _IN_CHAIR:
            chair_from = s.t0 if chair_from is None else chair_from
            if nxt is None or nxt.mode not in _IN_CHAIR:
                span = s.t1 - chair_from
                out.append((chair_from + min(r.uniform(5, 20), span / 3), _CHAIR, 1.0))
                if nxt is not None:
                    out.append((s.t1 - min(r.uniform(2, 8), span / 3), _CHAIR, 0.0))
                chair_from = None
        for u in s.uses:
            out.append((u.t_on, u.device, u.value))
            out.append((u.t_off, u.device, 0.0))
        prev_room = s.room
    for pir, ts in triggers.items():
        for j, t in enumerate(ts):
            out.append((t, pir, 1.0))
            if j + 1 == len(ts) or ts[j + 1] > t + OCCUPANCY_TIMEOUT_S:
                out.append((t + OCCUPANCY_TIMEOUT_S, pir, 0.0))
    return out



def _home_reports(config: HomeSimConfig, home: SimHome, anomalies: list[Anomaly], segs: list[_Seg], p0: float,
                  p1: float, zone: ZoneInfo, truths: list[AnomalyTruth]) -> dict[str, np.ndarray]:
    """The report columns (see :class:`HomeSimResult`) of every message of ``home``, unsorted;
    adds the battery truths to ``truths``."""
    declines = [a for a in anomalies if isinstance(a, Decline)]
    r = _rng(config.seed, "emit", home.index)

    def level_at(t: float) -> float:
        return _level(datetime.fromtimestamp(t, zone).date(), declines) if declines else 1.0

    changes = _changes(segs, r, home.persona.activity, level_at)
    devices = [_Device(s, r.uniform(70, 100), r.uniform(60, 200), _rng(config.seed, "device", home.index, i))
               for i, s in enumerate(home.sensors)]
    for a in anomalies:
        if isinstance(a, BatteryDying):
            dev = devices[_KEYS[a.sensor]]
            dev.dying, dev.silent_from = a, (a.at if a.at.tzinfo else a.at.replace(tzinfo=zone)).timestamp()
            dev.dying_from = dev.silent_from - a.days * 86400
    per_device: list[list[tuple[float, float | None]]] = [[] for _ in devices]
    for t, i, v in changes:
        if p0 <= t < p1:
            per_device[i].append((t, v))
    rows: list[tuple] = [(p0, _BRIDGE, AVAILABILITY, 1.0, -1, 0, 0.0)]
    for i, dev in enumerate(devices):
        kind = dev.sensor.spec.kind
        rows.append((p0, i, AVAILABILITY, 1.0, -1, 0, 0.0))
        beats = []
        t = p0 + dev.r.uniform(0, HEARTBEAT_S)
        while t < p1:
            beats.append((t, None))
            t += HEARTBEAT_S + dev.r.uniform(-30, 30)
        value, last, last_change, energy = 0.0, None, p0, 0.0
        mains = kind is SensorKind.POWER
        for t, v in sorted(per_device[i] + beats, key=lambda x: x[0]):
            if t >= dev.silent_from:
                break
            if v is not None:
                # PIR detections are reported each time; other devices report changes only.
                if v == value and kind is not SensorKind.MOTION:
                    continue
                if mains:
                    energy += value / 1000 * (t - last_change) / 3600
                    last_change = t
                value = v
            last = t
            link = min(255, max(0, round(dev.link + dev.r.gauss(0, 8))))
            rows.append((t, i, STATE, value, -1 if mains else dev.battery(t), link, energy))
        if dev.dying is not None:
            offline = None if last is None else last + PASSIVE_TIMEOUT_S
            if offline is not None and offline < p1:
                rows.append((offline, i, AVAILABILITY, 0.0, -1, 0, 0.0))
            truths.append(AnomalyTruth(
                home.home_id, BatteryDying.kind, _utc(dev.silent_from), None,
                {"sensor_id": dev.sensor.sensor_id, "sensor": dev.sensor.spec.key, "days": dev.dying.days,
                 "decline_start": _iso(_utc(dev.dying_from)),
                 "last_message": None if last is None else _iso(_utc(last)),
                 "offline_at": None if offline is None or offline >= p1 else _iso(_utc(offline))}))
    t, device, kind, value, battery, link, energy = zip(*rows)
    return {"t_ms": np.round(np.array(t) * 1000).astype(np.int64), "home": np.full(len(rows), home.index, np.int32),
            "device": np.array(device, np.int8), "type": np.array(kind, np.int8),
            "value": np.array(value, np.float64), "battery": np.array(battery, np.int16),
            "link": np.array(link, np.int16), "energy": np.array(energy, np.float64)}


def _utc_ms(t_ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=t_ms)


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ONLINE, _OFFLINE = b'{"state":"online"}', b'{"state":"offline"}'
_JSON_BOOL = ("false", "true")


def _message(base: str, home: SimHome, row: tuple) -> Z2mMessage:
    """The zigbee2mqtt message of one report row. With ``cache_state`` every state message carries
    all the device's attributes (keys sorted); the incidental ones (temperature, illuminance,
    voltage noise) are derived from the time so that the same row always gives the same bytes."""
    t_ms, _, device, kind, value, battery, link, energy = row
    when = _utc_ms(t_ms)
    if kind == AVAILABILITY:
        name = f"{home.home_id}/bridge/state" if device == _BRIDGE else f"{home.sensors[device].friendly_name}/availability"
        return Z2mMessage(f"{base}/{name}", _ONLINE if value > 0 else _OFFLINE, when, retain=True)
    s = home.sensors[device]
    on = _JSON_BOOL[value > 0]
    seen = when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    temp = 18 + (t_ms // 7) % 6
    volt = int(2850 + 1.5 * battery + t_ms % 11 - 5)
    model = s.spec.model
    if model == "RTCGQ11LM":
        body = (f'"battery":{battery},"device_temperature":{temp},"illuminance":{(t_ms // 13) % 250},'
                f'"last_seen":"{seen}","linkquality":{link},"occupancy":{on},"power_outage_count":2,"voltage":{volt}')
    elif model == "MCCGQ11LM":
        body = (f'"battery":{battery},"contact":{_JSON_BOOL[value <= 0]},"device_temperature":{temp},'
                f'"last_seen":"{seen}","linkquality":{link},"power_outage_count":1,"voltage":{volt}')
    elif model == "SJCGQ11LM":
        body = (f'"battery":{battery},"battery_low":{_JSON_BOOL[battery < 10]},"device_temperature":{temp},'
                f'"last_seen":"{seen}","linkquality":{link},"power_outage_count":0,"tamper":false,'
                f'"voltage":{volt},"water_leak":{on}')
    elif model == "TS0601_bed_presence_sensor":
        pressure = 150 + (t_ms // 13) % 250 if value > 0 else (t_ms // 13) % 20
        body = (f'"battery":{battery},"illuminance":{pressure},"last_seen":"{seen}","linkquality":{link},'
                f'"occupancy":{on},"work_state":"{"presence" if value > 0 else "none"}"')
    elif model == "ZG-210Z":
        body = (f'"battery":{battery},"last_seen":"{seen}","linkquality":{link},'
                f'"pressure_state":"{"sit" if value > 0 else "none"}"')
    else:  # TS011F metering plug: mains-powered, no battery
        volts = 228 + (t_ms % 60) / 10
        body = (f'"current":{round(value / volts, 2)},"energy":{round(energy, 2)},"last_seen":"{seen}",'
                f'"linkquality":{link},"power":{value},"state":"ON","voltage":{volts}')
    return Z2mMessage(f"{base}/{s.friendly_name}", ("{" + body + "}").encode(), when)


# --- registry ---------------------------------------------------------------------------------

def write_home_registry(result: HomeSimResult, path: Path | str, email_domain: str = "example.org") -> None:
    """The registry YAML for the simulated homes (``vigie.registry`` households with
    ``vigie.sensors`` sensors): household ``home-NNNN``, resident ``resident-NNNN`` ("Résident·e
    NNNN", fake e-mail), caregivers ``carer-NNNN-1`` (neighbour, level 1) and ``carer-NNNN-2``
    (family, level 2), the twelve sensors with their opaque ids."""
    households = []
    for h in result.homes:
        num = h.home_id.removeprefix("home-")
        households.append({
            "id": h.home_id,
            "residents": [{"id": f"resident-{num}", "name": f"Résident·e {num}",
                           "email": f"resident-{num}@{email_domain}", "language": "fr"}],
            "caregivers": [
                {"id": f"carer-{num}-1", "name": f"Voisin·e {num}", "email": f"neighbour-{num}@{email_domain}",
                 "relation": "neighbour", "level": 1},
                {"id": f"carer-{num}-2", "name": f"Famille {num}", "email": f"family-{num}@{email_domain}",
                 "relation": "family", "level": 2}],
            "sensors": [{"id": s.sensor_id, "friendly_name": s.friendly_name, "room": str(s.spec.room),
                         "kind": str(s.spec.kind), "expected_interval_s": EXPECTED_INTERVAL_S}
                        for s in h.sensors],
        })
    Path(path).write_text(yaml.safe_dump({"households": households}, allow_unicode=True, sort_keys=False),
                          encoding="utf-8")


# --- publishing -------------------------------------------------------------------------------

# --- command-line specs -----------------------------------------------------------------------

ANOMALY_SPECS = {
    "fall": "fall:HOME:START[,MINUTES]",
    "no-wakeup": "no-wakeup:HOME:DAY[,MINUTES]",
    "night-wandering": "night-wandering:HOME:START[,MINUTES]",
    "decline": "decline:HOME:DAY[,DAYS[,FINAL_LEVEL]]",
    "battery": "battery:HOME:AT,SENSOR[,DAYS]",
}


def parse_anomaly_spec(spec: str) -> Anomaly:
    """An ``--anomaly`` option → an anomaly (see :data:`ANOMALY_SPECS`): HOME the home's position
    (0…N−1) or id, START/AT ISO 8601 date-times (local unless with an offset), DAY a date, SENSOR a
    :data:`DEVICES` key; e.g. ``fall:3:2026-10-20T10:00,90``, ``battery:0:2026-10-25T08:00,kitchen/fridge``.
    Raises ``ValueError`` naming the part that is wrong."""
    kind, _, rest = spec.partition(":")
    home_text, _, rest = rest.partition(":")
    if kind not in ANOMALY_SPECS or not home_text or not rest:
        raise ValueError(f"--anomaly {spec!r}: expected one of {'; '.join(ANOMALY_SPECS.values())}")
    home: HomeRef = int(home_text) if home_text.isdigit() else home_text
    when, *params = rest.split(",")
    usage = ANOMALY_SPECS[kind]

    def number(i: int, name: str, default: float) -> float:
        if len(params) <= i:
            return default
        try:
            x = float(params[i])
        except ValueError:
            x = math.nan
        if not math.isfinite(x) or x <= 0:
            raise ValueError(f"--anomaly {spec!r}: {name} {params[i]!r} must be a number > 0 ({usage})")
        return x

    def moment() -> datetime:
        try:
            return datetime.fromisoformat(when)
        except ValueError:
            raise ValueError(f"--anomaly {spec!r}: {when!r} is not an ISO 8601 date-time ({usage})") from None

    def day() -> date:
        try:
            return date.fromisoformat(when)
        except ValueError:
            raise ValueError(f"--anomaly {spec!r}: {when!r} is not a date YYYY-MM-DD ({usage})") from None

    if kind == "fall":
        return Fall(home, moment(), number(0, "MINUTES", 120.0))
    if kind == "no-wakeup":
        return NoWakeUp(home, day(), number(0, "MINUTES", 180.0))
    if kind == "night-wandering":
        return NightWandering(home, moment(), number(0, "MINUTES", 45.0))
    if kind == "decline":
        return Decline(home, day(), int(number(0, "DAYS", 10)), number(1, "FINAL_LEVEL", 0.4))
    if not params or params[0] not in _KEYS:
        raise ValueError(f"--anomaly {spec!r}: SENSOR must be one of {', '.join(_KEYS)} ({usage})")
    return BatteryDying(home, params[0], moment(), number(1, "DAYS", 7.0))
