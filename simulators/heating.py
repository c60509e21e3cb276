"""Town-hall heating: rooms warmed by radiators under thermostatic radiator valves (TRVs), published
as zigbee2mqtt messages, with injectable faults and their ground truth.

**Fleet.** ``rooms`` rooms in buildings of ``rooms_per_building`` (ids ``b-01``…, rooms
``r-0001``… numbered across buildings). Each room has a type (:data:`ROOM_TYPES`: office, reception,
meeting room, council chamber, classroom, library, village hall) giving its floor area, occupancy
schedule (``vigie.timewindows`` text, the registry ``schedule``), comfort and set-back temperatures
(19 °C / 16 °C, the French ceiling for heated occupied rooms, Code de l'énergie R241-26; the village
hall 18 / 14). Its heat-loss coefficient is 1.8–2.6 W/K per m² of floor, its time constant 6–14 h,
its radiators sized 1.6–2.0 × the loss at 25 K (one TRV per radiator, 1–6 radiators of ≤ 3 kW).
Every building has an outdoor sensor (Aqara WSDCGQ11LM).

**Physics** (vectorized over rooms and TRVs, one step of ``step_s`` for all of them at once): a
1R1C model per room, ``C dT/dt = UA (T_out − T) + Σ valve/100 × radiator_w + gains``, integrated
exactly over each step (inputs held constant). Outdoor temperature: a daily cosine (minimum ~03:00,
maximum ~15:00 local) plus weather (an Ornstein–Uhlenbeck process, τ 36 h) and a fast term (τ 1 h),
common to the commune, with a small bias per building. Internal gains (5–10 W/m², people, lights,
computers) while the room is occupied by its schedule.

**TRVs.** Each runs a PI controller on its own measured temperature — the room's plus a fixed
offset (±0.5 K), a warm bias near a hot radiator (0.6 K at full valve) and noise: proportional band
2.5 K, integral time 30 min, conditional integration (no wind-up), valve 0–100 %. Setpoint = the
room's comfort temperature from ``preheat_min`` (60) before each occupancy window to its end (a
lunch break shorter than that stays at comfort), set-back otherwise; public holidays
(python-holidays, ``holidays``) and ``closures`` have no occupancy. Models (:data:`TRV_MODELS`):
Danfoss Ally 014G2461 (``occupied_heating_setpoint``, ``pi_heating_demand``, ``battery``,
``window_open_internal``), Bosch BTH-RA (``occupied_heating_setpoint``, ``pi_heating_demand``,
``battery``, no window detection of its own), Tuya TS0601_thermostat (``current_heating_setpoint``,
``position``, ``battery_low`` only, ``window_open``). A TRV reports (zigbee2mqtt ``cache_state``:
every message repeats every attribute) when its temperature moved ≥ 0.2 K, its valve ≥ 5 points or
across 0, its setpoint or window state changed, and at least every ``TRV_HEARTBEAT_S`` (±60 s);
the outdoor sensor on a 0.3 K change and at least every ``OUTDOOR_HEARTBEAT_S``. Payloads follow
``shared/reference/payload-formats.md`` §2; topic ``<base_topic>/<building>/<room>/trv_<n>`` and
``<base_topic>/<building>/exterieur``.

**Faults** (``room`` = fleet position 0…N−1 or room id; naive datetimes are local time):

- :class:`WindowOpen` — heat loss × (1 + ``loss_factor``) from ``start`` for ``hours``, a cold
  draught of 1 K at the valves. Danfoss and Tuya detect it after 4 min (``window_open_internal``
  ``open`` / ``window_open`` true until the window closes) and close the valve for 30 min, then
  heat again (their window-open timeout); Bosch never sees it. Expected finding
  ``window_open_heating``.
- :class:`StuckValve` — the valve pin is seized at ``max_pct`` (0: shut): the TRV still reports its
  demand (up to 100 %) while the radiator gives at most that share. ``cannot_reach_setpoint``.
- :class:`ScheduleIgnored` — the TRVs keep the comfort setpoint around the clock.
  ``unoccupied_heating``.
- :class:`SetpointAboveComfort` — comfort periods run at comfort + ``delta_c``.
  ``setpoint_above_comfort``.
- :class:`BatteryDying` — one TRV's battery falls linearly to 2 % over ``days`` before ``at``
  (Tuya: ``battery_low`` turns true below 10 %), then the device sends nothing and its valve is
  parked shut (a modelling choice). Device health: ``low_battery``, then ``silent``.

Randomness comes from independent streams of one seed (plan, weather, measurement noise, links), so
the same seed gives the same buildings whatever the faults and a fault changes only its own room.
:func:`simulate_heating` is pure (no MQTT); :func:`vigie.simulators.publish.publish_messages` sends
:meth:`HeatingSimResult.messages`; :func:`write_heating_registry` writes the ``buildings:``
registry (``docs``: the heating design's YAML); :meth:`HeatingSimResult.write_ground_truth` the
truth (``simulators/README.md``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import ClassVar
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import yaml

from vigie.heating_registry import parse_closure
from vigie.records import HeatingDeviceKind, HeatingReading
from vigie.simulators.home import Z2mMessage
from vigie.timewindows import parse_windows

RoomRef = int | str

#: Maximum reporting interval of the simulated TRVs and outdoor sensors (s); the registry's
#: ``expected_interval_s`` is twice that.
TRV_HEARTBEAT_S = 900
OUTDOOR_HEARTBEAT_S = 1800
#: Report thresholds: temperature (K), valve (percentage points), outdoor temperature (K).
TEMP_REPORT_K, VALVE_REPORT_PCT, OUTDOOR_REPORT_K = 0.2, 5.0, 0.3
#: TRV controller: proportional gain (%/K; band 2.5 K), integral time (s), control period (s: a
#: TRV moves its valve every few minutes, not continuously).
KP_PCT_PER_K, TI_S, TRV_CONTROL_S = 40.0, 1800.0, 300
#: Warm bias of a TRV's sensor beside a radiator at full valve (K), cold draught of an open window (K).
HEAT_BIAS_K, DRAUGHT_K = 0.6, 1.0
#: Window detection of the models that have one: delay after opening, valve shut for (s).
WINDOW_DETECT_S, WINDOW_HOLD_S = 240, 1800
#: Tuya TRVs raise ``battery_low`` below this battery level (%); a dying battery ends at 2 %.
BATTERY_LOW_PCT, BATTERY_END_PCT = 10.0, 2.0
#: Spin-up simulated before the period (not published), so controllers and rooms start settled.
SPIN_UP_S = 2 * 86400
#: Room series in :attr:`HeatingSimResult.room_series` are sampled every 15 min.
SAMPLE_S = 900


@dataclass(frozen=True)
class RoomType:
    """A kind of room: name, floor area range (m²), occupancy schedule, comfort and set-back (°C),
    share of the fleet."""

    key: str
    name: str
    area_m2: tuple[float, float]
    schedule: str
    comfort_c: float
    setback_c: float
    share: float


ROOM_TYPES: tuple[RoomType, ...] = (
    RoomType("bureau", "Bureau", (12, 25), "mon-fri 08:00-12:00; mon-fri 13:30-18:00", 19.0, 16.0, 0.34),
    RoomType("accueil", "Accueil", (20, 40), "mon-fri 08:30-12:00; mon-fri 13:30-17:30; sat 09:00-12:00",
             19.0, 16.0, 0.10),
    RoomType("reunion", "Salle de réunion", (20, 45), "mon-fri 09:00-12:00; tue,thu 14:00-17:00", 19.0, 16.0, 0.14),
    RoomType("conseil", "Salle du conseil", (40, 70), "mon,thu 18:00-22:00", 19.0, 16.0, 0.06),
    RoomType("classe", "Salle de classe", (45, 60), "mon,tue,thu,fri 08:30-16:30", 19.0, 16.0, 0.14),
    RoomType("bibliotheque", "Bibliothèque", (40, 90), "tue 16:00-19:00; wed 10:00-18:00; sat 10:00-17:00",
             19.0, 16.0, 0.12),
    RoomType("fetes", "Salle des fêtes", (80, 120), "sat 14:00-24:00; sun 10:00-18:00", 18.0, 14.0, 0.10),
)
_TYPE = {t.key: t for t in ROOM_TYPES}
BUILDING_NAMES = ("Mairie", "École élémentaire", "Médiathèque", "Salle polyvalente", "Services techniques",
                  "Maison des associations")


@dataclass(frozen=True)
class TrvModel:
    """What a TRV model publishes: its setpoint and valve keys, temperature resolution (decimals),
    battery as a percentage or only a low flag, and its window reporting (``internal``: Danfoss
    ``window_open_internal`` enum, ``flag``: ``window_open`` bool, ``none``)."""

    model: str
    setpoint_key: str
    valve_key: str
    decimals: int
    battery: str
    window: str
    share: float


TRV_MODELS: tuple[TrvModel, ...] = (
    TrvModel("014G2461", "occupied_heating_setpoint", "pi_heating_demand", 2, "pct", "internal", 0.4),
    TrvModel("BTH-RA", "occupied_heating_setpoint", "pi_heating_demand", 1, "pct", "none", 0.3),
    TrvModel("TS0601_thermostat", "current_heating_setpoint", "position", 1, "low", "flag", 0.3),
)
OUTDOOR_MODEL = "WSDCGQ11LM"


# --- configuration and faults --------------------------------------------------------------------

@dataclass(frozen=True)
class WindowOpen:
    """A window of ``room`` open from ``start`` for ``hours``: heat loss × (1 + ``loss_factor``)."""

    room: RoomRef
    start: datetime
    hours: float
    loss_factor: float = 4.0
    kind: ClassVar[str] = "window_open"


@dataclass(frozen=True)
class StuckValve:
    """From ``start`` for ``hours`` (None: to the end) the valve pin of TRV ``trv`` (1-based; None:
    every TRV of the room) is seized: the radiator gives at most ``max_pct`` % of its power."""

    room: RoomRef
    start: datetime
    hours: float | None = None
    max_pct: float = 0.0
    trv: int | None = None
    kind: ClassVar[str] = "stuck_valve"


@dataclass(frozen=True)
class ScheduleIgnored:
    """From ``start`` for ``hours`` (None: to the end) the room's TRVs stay at comfort day and night."""

    room: RoomRef
    start: datetime
    hours: float | None = None
    kind: ClassVar[str] = "schedule_ignored"


@dataclass(frozen=True)
class SetpointAboveComfort:
    """From ``start`` for ``hours`` (None: to the end) comfort periods run at comfort + ``delta_c``."""

    room: RoomRef
    start: datetime
    hours: float | None = None
    delta_c: float = 3.0
    kind: ClassVar[str] = "setpoint_above_comfort"


@dataclass(frozen=True)
class BatteryDying:
    """TRV ``trv`` (1-based) of ``room``: battery down to 2 % over ``days`` before ``at``, silent from ``at``."""

    room: RoomRef
    at: datetime
    days: float = 5.0
    trv: int = 1
    kind: ClassVar[str] = "battery_dying"


Fault = WindowOpen | StuckValve | ScheduleIgnored | SetpointAboveComfort | BatteryDying

#: The finding the heating analytics should raise for each fault kind (battery: device health).
EXPECTED_FINDING = {"window_open": "window_open_heating", "stuck_valve": "cannot_reach_setpoint",
                    "schedule_ignored": "unoccupied_heating", "setpoint_above_comfort": "setpoint_above_comfort",
                    "battery_dying": None}


@dataclass
class HeatingSimConfig:
    """What to simulate: ``rooms`` rooms, ``rooms_per_building`` per building, over ``days`` local
    days from local midnight of ``start`` (None: the ``days`` days ending yesterday) in zone ``tz``.

    Outdoor temperature (°C): ``outdoor_mean_c`` ± ``outdoor_daily_amplitude_c`` (daily cosine) +
    weather with standard deviation ``outdoor_weather_sd_c``. ``preheat_min``: the comfort setpoint
    starts this long before each occupancy window. ``holidays``: ISO country (optionally
    ``FR-57``-style subdivision) whose public holidays close every building, None for none;
    ``closures``: local dates or ``D1..D2`` inclusive ranges every building is closed (written to
    the registry). ``step_s``: physics step (s, divides 900). ``base_topic``: zigbee2mqtt's.
    """

    rooms: int = 24
    days: int = 14
    start: date | None = None
    tz: str = "Europe/Paris"
    seed: int = 0
    rooms_per_building: int = 8
    outdoor_mean_c: float = 7.0
    outdoor_daily_amplitude_c: float = 3.5
    outdoor_weather_sd_c: float = 3.0
    preheat_min: int = 60
    holidays: str | None = "FR"
    closures: tuple[str, ...] = ()
    faults: list[Fault] = field(default_factory=list)
    base_topic: str = "zigbee2mqtt-heating"
    step_s: int = 60

    def __post_init__(self) -> None:
        if self.rooms < 1 or self.days < 1 or self.rooms_per_building < 1:
            raise ValueError(f"rooms={self.rooms}, days={self.days}, rooms_per_building={self.rooms_per_building}: "
                             "all must be ≥ 1")
        if not (1 <= self.step_s <= SAMPLE_S and SAMPLE_S % self.step_s == 0):
            raise ValueError(f"step_s={self.step_s}: expected a divisor of {SAMPLE_S} s")
        if not 0 <= self.preheat_min <= 360:
            raise ValueError(f"preheat_min={self.preheat_min}: expected 0..360")
        ZoneInfo(self.tz)
        for c in self.closures:
            _closure_days(c)

    def start_date(self) -> date:
        if self.start is not None:
            return self.start
        return datetime.now(ZoneInfo(self.tz)).date() - timedelta(days=self.days)


def _closure_days(text: str) -> list[date]:
    """A registry closure (``YYYY-MM-DD`` or ``YYYY-MM-DD..YYYY-MM-DD``, inclusive) → its local dates.
    Raises ``ValueError`` for a malformed one."""
    a, b = parse_closure(text)
    return [a + timedelta(days=i) for i in range((b - a).days + 1)]


# --- plan ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SimTrv:
    """One TRV: global ``index``, ``number`` in its room (1-based), model, radiator power (W)."""

    index: int
    device_id: str
    room_index: int
    number: int
    model: TrvModel
    radiator_w: int
    friendly_name: str


@dataclass(frozen=True)
class SimRoom:
    """One room and its thermal parameters: ``ua_w_per_k`` heat-loss coefficient, ``capacity_j_per_k``,
    ``gains_w`` while occupied; ``trvs`` the global indices of its TRVs."""

    index: int
    room_id: str
    building_index: int
    name: str
    type: str
    area_m2: int
    comfort_c: float
    setback_c: float
    schedule: str
    ua_w_per_k: float
    capacity_j_per_k: float
    gains_w: float
    trvs: tuple[int, ...]


@dataclass(frozen=True)
class SimBuilding:
    index: int
    building_id: str
    name: str
    outdoor_device_id: str
    outdoor_friendly_name: str
    rooms: tuple[int, ...]


@dataclass
class HeatingPlan:
    """Buildings, rooms and TRVs drawn from the seed alone (whatever the faults), plus per-device
    arrays: ``offset_k`` sensor offset, ``battery0`` (%), ``drain_pct_per_day``, ``link`` base LQI,
    ``phase_s`` report phase within a step, ``heartbeat_s`` — TRVs first, then one outdoor sensor
    per building (device index ``n_trv + building``)."""

    buildings: list[SimBuilding]
    rooms: list[SimRoom]
    trvs: list[SimTrv]
    offset_k: np.ndarray
    battery0: np.ndarray
    drain_pct_per_day: np.ndarray
    link: np.ndarray
    phase_s: np.ndarray
    heartbeat_s: np.ndarray
    building_bias_k: np.ndarray

    @property
    def n_trv(self) -> int:
        return len(self.trvs)

    def room_radiator_w(self, room: int) -> int:
        return sum(self.trvs[i].radiator_w for i in self.rooms[room].trvs)

    def device_id(self, dev: int) -> str:
        return self.trvs[dev].device_id if dev < self.n_trv else self.buildings[dev - self.n_trv].outdoor_device_id


def _rng(seed: int, stream: int) -> np.random.Generator:
    # Streams: plan (1), weather (2), measurement noise (3), scenario picks (5).
    return np.random.default_rng([seed, stream])


def plan_heating(config: HeatingSimConfig) -> HeatingPlan:
    """The buildings, rooms and TRVs of ``config`` (from the seed alone)."""
    rng = _rng(config.seed, 1)
    n = config.rooms
    n_b = math.ceil(n / config.rooms_per_building)
    shares = np.array([t.share for t in ROOM_TYPES])
    kinds = rng.choice(len(ROOM_TYPES), size=n, p=shares / shares.sum())
    area_u = rng.random(n)
    ua_m2 = rng.uniform(1.8, 2.6, n)
    tau_h = rng.uniform(6.0, 14.0, n)
    sizing = rng.uniform(1.6, 2.0, n)
    gains_m2 = rng.uniform(5.0, 10.0, n)
    model_shares = np.array([m.share for m in TRV_MODELS])
    buildings: list[SimBuilding] = []
    rooms: list[SimRoom] = []
    trvs: list[SimTrv] = []
    width = max(4, len(str(n)))
    for b in range(n_b):
        bid = f"b-{b + 1:02d}"
        cycle, kind = divmod(b, len(BUILDING_NAMES))
        name = BUILDING_NAMES[kind] + (f" {cycle + 1}" if cycle else "")
        members = range(b * config.rooms_per_building, min(n, (b + 1) * config.rooms_per_building))
        counts: dict[str, int] = {}
        for r in members:
            rt = ROOM_TYPES[kinds[r]]
            counts[rt.key] = counts.get(rt.key, 0) + 1
            rid = f"r-{r + 1:0{width}d}"
            area = int(round(rt.area_m2[0] + area_u[r] * (rt.area_m2[1] - rt.area_m2[0])))
            ua = area * float(ua_m2[r])
            need_w = float(sizing[r]) * ua * 25.0
            k = int(np.clip(math.ceil(need_w / 2500.0), 1, 6))
            radiator_w = int(min(3000, math.ceil(need_w / k / 100.0) * 100))
            first = len(trvs)
            models = rng.choice(len(TRV_MODELS), size=k, p=model_shares / model_shares.sum())
            for j in range(k):
                trvs.append(SimTrv(len(trvs), f"trv-{r + 1:0{width}d}-{j + 1}", r, j + 1, TRV_MODELS[models[j]],
                                   radiator_w, f"{bid}/{rid}/trv_{j + 1}"))
            rooms.append(SimRoom(r, rid, b, f"{rt.name} {counts[rt.key]}", rt.key, area, rt.comfort_c, rt.setback_c,
                                 rt.schedule, ua, float(tau_h[r]) * 3600.0 * ua, float(gains_m2[r]) * area,
                                 tuple(range(first, len(trvs)))))
        buildings.append(SimBuilding(b, bid, name, f"out-{bid}", f"{bid}/exterieur", tuple(members)))
    n_dev = len(trvs) + n_b
    offset = np.clip(rng.normal(0.0, 0.2, n_dev), -0.5, 0.5)
    offset[len(trvs):] = 0.0
    return HeatingPlan(
        buildings=buildings, rooms=rooms, trvs=trvs, offset_k=offset,
        battery0=rng.uniform(55.0, 100.0, n_dev), drain_pct_per_day=rng.uniform(0.03, 0.12, n_dev),
        link=rng.uniform(40.0, 200.0, n_dev), phase_s=rng.uniform(0.0, config.step_s, n_dev),
        heartbeat_s=np.concatenate([TRV_HEARTBEAT_S + rng.uniform(-60, 60, len(trvs)),
                                    OUTDOOR_HEARTBEAT_S + rng.uniform(-60, 60, n_b)]),
        building_bias_k=rng.normal(0.0, 0.3, n_b))


# --- schedule ------------------------------------------------------------------------------------

def closed_days(config: HeatingSimConfig, first: date, last: date) -> set[date]:
    """Local dates in ``[first, last]`` every building is closed: public holidays of
    ``config.holidays`` (python-holidays) and ``config.closures``."""
    out: set[date] = set()
    if config.holidays:
        import holidays

        country, _, subdiv = config.holidays.partition("-")
        cal = holidays.country_holidays(country, subdiv=subdiv or None, years=range(first.year, last.year + 1))
        out.update(d for d in cal if first <= d <= last)
    for c in config.closures:
        out.update(d for d in _closure_days(c) if first <= d <= last)
    return out


def occupancy(schedule: str, weekday: np.ndarray, minute: np.ndarray, closed: np.ndarray) -> np.ndarray:
    """Boolean occupancy at local moments given by ``weekday`` (0 = Monday) and ``minute`` after
    local midnight, from a ``vigie.timewindows`` schedule; False where ``closed`` (the moment's
    local date is a holiday or closure)."""
    occ = np.zeros(len(weekday), dtype=bool)
    for w in parse_windows(schedule):
        days = np.zeros(7, dtype=bool)
        days[list(w.days)] = True
        if w.start < w.end:
            occ |= days[weekday] & (minute >= w.start) & (minute < w.end)
        else:
            occ |= (days[weekday] & (minute >= w.start)) | (days[(weekday - 1) % 7] & (minute < w.end))
    return occ & ~closed


def _with_preheat(occ: np.ndarray, steps: int) -> np.ndarray:
    """True where ``occ`` holds now or within the next ``steps`` steps (along axis 0)."""
    if steps <= 0:
        return occ.copy()
    cs = np.concatenate([np.zeros((1,) + occ.shape[1:], dtype=np.int64), np.cumsum(occ, axis=0)])
    n = occ.shape[0]
    hi = np.minimum(np.arange(n) + steps + 1, n)
    return (cs[hi] - cs[:-1]) > 0


# --- ground truth --------------------------------------------------------------------------------

@dataclass(frozen=True)
class HeatingFaultTruth:
    """One injected fault: ``building``/``room`` ids, ``kind`` (the fault class's ``kind``),
    ``start``/``end`` UTC (``end`` None: to the end of the period or beyond), ``devices`` (TRV ids
    concerned), ``finding`` (the heating-analytics finding kind expected, None for a battery),
    ``params`` and ``evidence`` (what the simulation did: hours, kWh, temperatures; JSON values)."""

    building: str
    room: str
    kind: str
    start: datetime
    end: datetime | None
    devices: tuple[str, ...]
    finding: str | None
    params: dict
    evidence: dict

    def to_dict(self) -> dict:
        return {"building": self.building, "room": self.room, "kind": self.kind, "start_utc": _iso(self.start),
                "end_utc": None if self.end is None else _iso(self.end), "devices": list(self.devices),
                "finding": self.finding, "params": self.params, "evidence": self.evidence}


def _iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _utc_of(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, timezone.utc)


# --- result --------------------------------------------------------------------------------------

#: Report row columns (see :class:`HeatingSimResult`).
_REPORT_COLUMNS = ("t_ms", "device", "temperature", "setpoint", "valve", "window", "battery", "link")
_JSON_BOOL = ("false", "true")


@dataclass
class HeatingSimResult:
    """What :func:`simulate_heating` produced.

    ``plan``: buildings, rooms, TRVs. ``reports``: one row per message in publishing order, numpy
    columns ``t_ms`` (int64 epoch ms UTC), ``device`` (TRV index, or ``n_trv + building`` for an
    outdoor sensor), ``temperature`` (°C, measured), ``setpoint`` (°C, NaN outdoor), ``valve``
    (% reported: the TRV's demand, −1 outdoor), ``window`` (1 the TRV reports an open window, 0
    not, −1 the model cannot say), ``battery`` (%), ``link`` (LQI). ``room_series``: every 15 min
    from the period's start (``sample_times``, epoch s), rooms × samples arrays ``temperature_c``
    (the room's true air temperature), ``setpoint_c`` (what its TRVs aim at), ``valve_pct`` (share
    of radiator power delivered, %), ``heat_kwh`` (radiator energy over the following 15 min),
    ``occupied`` (schedule), ``comfort`` (comfort setpoint period, pre-heat included);
    ``outdoor_c`` buildings × samples. ``truths``: the injected faults.
    """

    config: HeatingSimConfig
    plan: HeatingPlan
    truths: list[HeatingFaultTruth]
    reports: dict[str, np.ndarray]
    room_series: dict[str, np.ndarray]
    outdoor_c: np.ndarray
    sample_times: np.ndarray
    period_start: datetime
    period_end: datetime

    def __len__(self) -> int:
        return len(self.reports["t_ms"])

    def _rows(self) -> Iterator[tuple]:
        c = self.reports
        return zip(*(c[k].tolist() for k in _REPORT_COLUMNS))

    def messages(self) -> Iterator[Z2mMessage]:
        """Every zigbee2mqtt message, in publishing order (not retained, as zigbee2mqtt's default)."""
        for row in self._rows():
            yield _message(self.config.base_topic, self.plan, row)

    def readings(self) -> Iterator[HeatingReading]:
        """The :class:`~vigie.records.HeatingReading` of each message — what a zigbee2mqtt heating
        decoder makes of it (Danfoss ``window_open_internal`` ``open`` → window open)."""
        plan = self.plan
        for t_ms, dev, temp, sp, valve, window, battery, _ in self._rows():
            when = _EPOCH + timedelta(milliseconds=t_ms)
            if dev >= plan.n_trv:
                yield HeatingReading(plan.device_id(dev), when, temperature_c=round(temp, 2),
                                     battery_pct=float(battery), source="zigbee2mqtt_heating")
                continue
            m = plan.trvs[dev].model
            pct = m.battery == "pct"
            yield HeatingReading(
                plan.trvs[dev].device_id, when, temperature_c=round(temp, m.decimals), setpoint_c=sp,
                valve_pct=float(valve), heating=valve > 0, window_open=None if window < 0 else bool(window),
                battery_pct=float(battery) if pct else None,
                battery_low=None if pct else battery < BATTERY_LOW_PCT, source="zigbee2mqtt_heating")

    def frame(self) -> pd.DataFrame:
        """The readings as the heating store returns them (``vigie.store.heating.read_heating``):
        ``time`` (datetime64[ns, UTC]), ``device``, ``room``, ``building``, ``kind`` (categoricals)
        and float64 fields ``temperature_c``, ``setpoint_c``, ``valve_pct``, ``heating``,
        ``window_open``, ``battery_pct``, ``battery_low`` (1.0/0.0, NaN when not reported); the
        outdoor sensors belong to their building's first room (as in the registry); sorted by
        device, time."""
        plan, c = self.plan, self.reports
        n_trv = plan.n_trv
        dev = c["device"].astype(np.int64)
        is_trv = dev < n_trv
        ids = [t.device_id for t in plan.trvs] + [b.outdoor_device_id for b in plan.buildings]
        room_of = np.array([t.room_index for t in plan.trvs] + [b.rooms[0] for b in plan.buildings], dtype=np.int64)
        bld_of = np.array([plan.rooms[r].building_index for r in room_of], dtype=np.int64)
        decimals = np.array([t.model.decimals for t in plan.trvs] + [2] * len(plan.buildings))
        pct = np.array([t.model.battery == "pct" for t in plan.trvs] + [True] * len(plan.buildings))
        scale = 10.0 ** decimals[dev]
        valve = c["valve"].astype(np.float64)
        window = c["window"].astype(np.float64)
        battery = c["battery"].astype(np.float64)
        nan = np.nan
        df = pd.DataFrame({
            "time": pd.to_datetime(c["t_ms"], unit="ms", utc=True).as_unit("ns"),
            "device": pd.Categorical.from_codes(dev, categories=pd.Index(ids, dtype=object)),
            "room": pd.Categorical.from_codes(room_of[dev], categories=pd.Index(
                [r.room_id for r in plan.rooms], dtype=object)),
            "building": pd.Categorical.from_codes(bld_of[dev], categories=pd.Index(
                [b.building_id for b in plan.buildings], dtype=object)),
            "kind": pd.Categorical(np.where(is_trv, str(HeatingDeviceKind.TRV), str(HeatingDeviceKind.OUTDOOR)),
                                   categories=[str(k) for k in HeatingDeviceKind]),
            "temperature_c": np.round(c["temperature"].astype(np.float64) * scale) / scale,
            "setpoint_c": np.where(is_trv, c["setpoint"].astype(np.float64), nan),
            "valve_pct": np.where(is_trv, valve, nan),
            "heating": np.where(is_trv, (valve > 0).astype(np.float64), nan),
            "window_open": np.where(is_trv & (window >= 0), window, nan),
            "battery_pct": np.where(pct[dev], battery, nan),
            "battery_low": np.where(pct[dev], nan, (battery < BATTERY_LOW_PCT).astype(np.float64)),
        })
        return df.sort_values(["device", "time"], kind="stable").reset_index(drop=True)

    def ground_truth(self) -> dict:
        """Everything injected, as JSON values (format in ``simulators/README.md``)."""
        plan = self.plan
        faulty = {t.room for t in self.truths}
        return {
            "generator": "vigie.simulators.heating",
            "seed": self.config.seed,
            "timezone": self.config.tz,
            "start": self.config.start_date().isoformat(),
            "days": self.config.days,
            "period_start_utc": _iso(self.period_start),
            "period_end_utc": _iso(self.period_end),
            "messages": len(self),
            "preheat_min": self.config.preheat_min,
            "buildings": [{"id": b.building_id, "name": b.name, "outdoor_device": b.outdoor_device_id,
                           "rooms": [plan.rooms[r].room_id for r in b.rooms]} for b in plan.buildings],
            "rooms": [{"building": plan.buildings[r.building_index].building_id, "room": r.room_id, "type": r.type,
                       "area_m2": r.area_m2, "comfort_c": r.comfort_c, "setback_c": r.setback_c,
                       "schedule": r.schedule, "radiator_w": plan.room_radiator_w(r.index),
                       "ua_w_per_k": round(r.ua_w_per_k, 1),
                       "time_constant_h": round(r.capacity_j_per_k / r.ua_w_per_k / 3600, 2),
                       "devices": [{"id": plan.trvs[i].device_id, "model": plan.trvs[i].model.model,
                                    "radiator_w": plan.trvs[i].radiator_w} for i in r.trvs]}
                      for r in plan.rooms],
            "clean_rooms": [r.room_id for r in plan.rooms if r.room_id not in faulty],
            "faults": [t.to_dict() for t in self.truths],
        }

    def write_ground_truth(self, path: Path | str) -> None:
        Path(path).write_text(json.dumps(self.ground_truth(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _num(x: float, decimals: int) -> str:
    """A JSON number as a JavaScript device would print it: 19 not 19.0."""
    v = round(float(x), decimals)
    return str(int(v)) if v == int(v) else repr(v)


def _message(base: str, plan: HeatingPlan, row: tuple) -> Z2mMessage:
    """The zigbee2mqtt message of one report row (keys sorted; incidental attributes derived from
    the time so that the same row always gives the same bytes)."""
    t_ms, dev, temp, sp, valve, window, battery, link = row
    when = _EPOCH + timedelta(milliseconds=t_ms)
    seen = when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if dev >= plan.n_trv:
        b = plan.buildings[dev - plan.n_trv]
        humidity = min(99.0, max(35.0, 95.0 - 2.2 * temp + (t_ms // 60_000) % 7))
        pressure = 1013.0 + ((t_ms // 3_600_000) % 23) - 11
        volt = int(2800 + 2 * battery + t_ms % 7)
        body = (f'"battery":{battery},"humidity":{_num(humidity, 2)},"last_seen":"{seen}","linkquality":{link},'
                f'"power_outage_count":0,"pressure":{_num(pressure, 1)},"temperature":{_num(temp, 2)},'
                f'"voltage":{volt}')
        return Z2mMessage(f"{base}/{b.outdoor_friendly_name}", ("{" + body + "}").encode(), when)
    trv = plan.trvs[dev]
    m = trv.model
    state = '"heat"' if valve > 0 else '"idle"'
    t_txt, sp_txt = _num(temp, m.decimals), _num(sp, 1)
    if m.model == "014G2461":
        body = (f'"battery":{battery},"keypad_lockout":"unlock","last_seen":"{seen}","linkquality":{link},'
                f'"local_temperature":{t_txt},"occupied_heating_setpoint":{sp_txt},"pi_heating_demand":{valve},'
                f'"running_state":{state},"system_mode":"heat","window_open_external":false,'
                f'"window_open_internal":"{"open" if window > 0 else "closed"}"')
    elif m.model == "BTH-RA":
        body = (f'"battery":{battery},"boost_heating":"OFF","child_lock":"UNLOCK","last_seen":"{seen}",'
                f'"linkquality":{link},"local_temperature":{t_txt},"occupied_heating_setpoint":{sp_txt},'
                f'"operating_mode":"manual","pi_heating_demand":{valve},"running_state":{state},'
                f'"system_mode":"heat","window_detection":"OFF"')
    else:  # TS0601_thermostat: battery_low only, window_open state beside the window_detection switch
        body = (f'"battery_low":{_JSON_BOOL[battery < BATTERY_LOW_PCT]},"child_lock":"UNLOCK",'
                f'"current_heating_setpoint":{sp_txt},"last_seen":"{seen}","linkquality":{link},'
                f'"local_temperature":{t_txt},"position":{valve},"running_state":{state},"system_mode":"auto",'
                f'"window_detection":"ON","window_open":{_JSON_BOOL[window > 0]}')
    return Z2mMessage(f"{base}/{trv.friendly_name}", ("{" + body + "}").encode(), when)


# --- simulation ----------------------------------------------------------------------------------

def _resolve(ref: RoomRef, plan: HeatingPlan, what: str) -> int:
    if isinstance(ref, bool) or not isinstance(ref, (int, str)):
        raise ValueError(f"{what}: room {ref!r} must be a fleet position (int) or a room id (str)")
    if isinstance(ref, int):
        if not 0 <= ref < len(plan.rooms):
            raise ValueError(f"{what}: room position {ref} outside the fleet (0..{len(plan.rooms) - 1})")
        return ref
    for r in plan.rooms:
        if r.room_id == ref:
            return r.index
    raise ValueError(f"{what}: no room with id {ref!r}")


@dataclass
class _Active:
    """A fault resolved to step indices ``[k0, k1)`` and the TRVs it concerns."""

    fault: Fault
    room: int
    trvs: np.ndarray
    k0: int
    k1: int


def _outdoor(config: HeatingSimConfig, hours_local: np.ndarray) -> np.ndarray:
    """Outdoor temperature (°C) at each step: daily cosine + weather (OU, τ 36 h) + fast term (τ 1 h)."""
    rng = _rng(config.seed, 2)
    dt = config.step_s
    n = len(hours_local)
    out = np.empty(n)
    slow, fast = rng.normal(0.0, config.outdoor_weather_sd_c), 0.0
    a_s, a_f = math.exp(-dt / (36 * 3600.0)), math.exp(-dt / 3600.0)
    e_s = rng.normal(0.0, config.outdoor_weather_sd_c * math.sqrt(1 - a_s * a_s), n)
    e_f = rng.normal(0.0, 0.3 * math.sqrt(1 - a_f * a_f), n)
    for k in range(n):
        slow = a_s * slow + e_s[k]
        fast = a_f * fast + e_f[k]
        out[k] = slow + fast
    return (config.outdoor_mean_c + config.outdoor_daily_amplitude_c
            * np.cos(2 * np.pi * (hours_local - 15.0) / 24.0) + out)


def simulate_heating(config: HeatingSimConfig) -> HeatingSimResult:
    """Simulate every room over the period (no I/O). Raises ``ValueError`` for a fault naming an
    unknown room or TRV, lying outside the period or with impossible parameters."""
    zone = ZoneInfo(config.tz)
    start = config.start_date()
    p0 = pd.Timestamp(start).tz_localize(zone).timestamp()
    p1 = pd.Timestamp(start + timedelta(days=config.days)).tz_localize(zone).timestamp()
    plan = plan_heating(config)
    dt = config.step_s
    t_first = p0 - SPIN_UP_S
    n = int(round((p1 - t_first) / dt))
    k_p0 = SPIN_UP_S // dt
    grid = t_first + np.arange(n) * dt
    local = pd.DatetimeIndex(pd.to_datetime(grid, unit="s", utc=True)).tz_convert(zone)
    weekday = local.day_of_week.to_numpy()
    minute = (local.hour * 60 + local.minute).to_numpy()
    local_days = local.normalize().tz_localize(None).to_numpy().astype("datetime64[D]")
    shut = closed_days(config, (local[0] - pd.Timedelta(days=1)).date(), local[-1].date() + timedelta(days=1))
    closed = np.isin(local_days, np.array(sorted(shut), dtype="datetime64[D]")) if shut else np.zeros(n, bool)

    rooms, trvs = plan.rooms, plan.trvs
    n_r, n_t, n_b = len(rooms), plan.n_trv, len(plan.buildings)
    # Occupancy per distinct schedule (rooms share few), as steps × schedules.
    schedules = sorted({r.schedule for r in rooms})
    sched_of = np.array([schedules.index(r.schedule) for r in rooms])
    occ_s = np.stack([occupancy(s, weekday, minute, closed) for s in schedules], axis=1)
    comfort_s = _with_preheat(occ_s, config.preheat_min * 60 // dt)

    tout = _outdoor(config, (local.hour + local.minute / 60.0).to_numpy())
    comfort_c = np.array([r.comfort_c for r in rooms])
    setback_c = np.array([r.setback_c for r in rooms])
    ua = np.array([r.ua_w_per_k for r in rooms])
    cap = np.array([r.capacity_j_per_k for r in rooms])
    gains = np.array([r.gains_w for r in rooms])
    bld = np.array([r.building_index for r in rooms])
    trv_room = np.array([t.room_index for t in trvs], dtype=np.int64)
    radiator = np.array([t.radiator_w for t in trvs], dtype=np.float64)
    detects = np.array([t.model.window != "none" for t in trvs])
    room_radiator = np.bincount(trv_room, weights=radiator, minlength=n_r)

    active = _resolve_faults(config, plan, p0, p1, t_first, n)
    silent_from = np.full(n_t, np.inf)
    for a in active:
        if isinstance(a.fault, BatteryDying):
            silent_from[a.trvs] = t_first + a.k0 * dt

    # State.
    temp = setback_c + 0.5
    integ = np.full(n_t, 30.0)
    u_phys = np.zeros(n_t)
    demand = np.zeros(n_t)
    sp_prev = np.full(n_t, np.nan)
    hold_prev = np.zeros(n_t, dtype=bool)
    control_steps = max(1, TRV_CONTROL_S // dt)
    control_phase = (plan.phase_s[:n_t] * 1000).astype(np.int64) % control_steps
    ki = KP_PCT_PER_K / TI_S
    noise_rng = _rng(config.seed, 3)
    last_t = np.full(n_t + n_b, -np.inf)
    last_temp = np.full(n_t + n_b, -1e9)
    last_valve = np.full(n_t, -100.0)
    last_sp = np.full(n_t, -1e9)
    last_win = np.zeros(n_t, dtype=bool)
    heartbeat = plan.heartbeat_s
    rows: list[tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    n_samples = int(round((p1 - p0) / SAMPLE_S))
    every = SAMPLE_S // dt
    series = {k: np.zeros((n_r, n_samples)) for k in ("temperature_c", "setpoint_c", "valve_pct", "heat_kwh")}
    series["occupied"] = np.zeros((n_r, n_samples), dtype=bool)
    series["comfort"] = np.zeros((n_r, n_samples), dtype=bool)
    outdoor_series = np.zeros((n_b, n_samples))

    for k in range(n):
        t = grid[k]
        occ_r = occ_s[k, sched_of]
        comf_r = comfort_s[k, sched_of]
        sp_r = np.where(comf_r, comfort_c, setback_c)
        window_r = np.zeros(n_r, dtype=bool)
        loss_r = np.ones(n_r)
        stuck = np.full(n_t, 100.0)
        hold = np.zeros(n_t, dtype=bool)
        flag = np.zeros(n_t, dtype=bool)
        for a in active:
            if not a.k0 <= k < a.k1:
                continue
            f = a.fault
            if isinstance(f, ScheduleIgnored):
                sp_r[a.room] = max(sp_r[a.room], comfort_c[a.room])
            elif isinstance(f, SetpointAboveComfort):
                if comf_r[a.room]:
                    sp_r[a.room] = comfort_c[a.room] + f.delta_c
            elif isinstance(f, WindowOpen):
                window_r[a.room] = True
                loss_r[a.room] = 1.0 + f.loss_factor
                since = (k - a.k0) * dt
                mine = a.trvs[detects[a.trvs]]
                if since >= WINDOW_DETECT_S:
                    flag[mine] = True
                    if since < WINDOW_DETECT_S + WINDOW_HOLD_S:
                        hold[mine] = True
            elif isinstance(f, StuckValve):
                stuck[a.trvs] = f.max_pct
        tout_b = tout[k] + plan.building_bias_k
        alive = t < silent_from

        # TRVs: measure, PI control (conditional integration), actuate.
        measured = (temp[trv_room] + plan.offset_k[:n_t] + HEAT_BIAS_K * u_phys / 100.0
                    - DRAUGHT_K * window_r[trv_room] + noise_rng.normal(0.0, 0.03, n_t))
        sp_t = sp_r[trv_room]
        err = sp_t - measured
        # Each TRV acts on its own control tick (every TRV_CONTROL_S, phase per device), or at once
        # when its setpoint or window state changes.
        tick = ((k + control_phase) % control_steps == 0) | (sp_t != sp_prev) | (hold != hold_prev)
        sp_prev, hold_prev = sp_t, hold
        trial = KP_PCT_PER_K * err + integ
        grow = tick & ~(((trial >= 100.0) & (err > 0)) | ((trial <= 0.0) & (err < 0)) | hold)
        integ = np.where(grow, np.clip(integ + ki * err * control_steps * dt, 0.0, 100.0), integ)
        demand = np.where(tick, np.clip(KP_PCT_PER_K * err + integ, 0.0, 100.0), demand)
        demand[hold] = 0.0
        u_phys = np.where(alive, np.minimum(demand, stuck), 0.0)

        # Rooms: exact 1R1C step with the inputs held over it.
        q = np.bincount(trv_room, weights=u_phys / 100.0 * radiator, minlength=n_r)
        ua_eff = ua * loss_r
        tout_r = tout_b[bld]
        t_eq = tout_r + (q + gains * occ_r) / ua_eff
        temp_before = temp
        temp = t_eq + (temp - t_eq) * np.exp(-dt * ua_eff / cap)

        # Reports: on change, or when the heartbeat is due.
        temp_q = np.round(measured, 2)
        valve_q = np.round(demand)
        rep = alive & ((t - last_t[:n_t] >= heartbeat[:n_t]) | (np.abs(temp_q - last_temp[:n_t]) >= TEMP_REPORT_K)
                       | (np.abs(valve_q - last_valve) >= VALVE_REPORT_PCT) | ((valve_q > 0) != (last_valve > 0))
                       | (sp_t != last_sp) | (flag != last_win))
        idx = np.flatnonzero(rep)
        if len(idx):
            last_t[idx], last_temp[idx], last_valve[idx], last_sp[idx], last_win[idx] = (
                t, temp_q[idx], valve_q[idx], sp_t[idx], flag[idx])
            if k >= k_p0:
                win = np.where(detects[idx], flag[idx].astype(np.int8), np.int8(-1))
                rows.append((k, idx, temp_q[idx], sp_t[idx], valve_q[idx], win))
        out_meas = np.round(tout_b + noise_rng.normal(0.0, 0.05, n_b), 2)
        j = n_t + np.arange(n_b)
        orep = (t - last_t[j] >= heartbeat[j]) | (np.abs(out_meas - last_temp[j]) >= OUTDOOR_REPORT_K)
        oidx = np.flatnonzero(orep)
        if len(oidx):
            last_t[j[oidx]], last_temp[j[oidx]] = t, out_meas[oidx]
            if k >= k_p0:
                rows.append((k, j[oidx], out_meas[oidx], np.full(len(oidx), np.nan), np.full(len(oidx), -1.0),
                             np.full(len(oidx), -1, np.int8)))

        if k >= k_p0:
            s = (k - k_p0) // every
            series["heat_kwh"][:, s] += q * dt / 3.6e6
            if (k - k_p0) % every == 0:
                series["temperature_c"][:, s] = temp_before
                series["setpoint_c"][:, s] = sp_r
                series["valve_pct"][:, s] = np.where(room_radiator > 0, q / np.maximum(room_radiator, 1) * 100, 0.0)
                series["occupied"][:, s] = occ_r
                series["comfort"][:, s] = comf_r
                outdoor_series[:, s] = tout_b

    reports = _assemble(rows, grid, plan, p0, config.seed, active)
    truths = [_truth(a, plan, grid, series, reports, p0, p1) for a in active]
    return HeatingSimResult(config=config, plan=plan, truths=sorted(truths, key=lambda x: (x.start, x.room)),
                            reports=reports, room_series=series, outdoor_c=outdoor_series,
                            sample_times=p0 + np.arange(n_samples) * SAMPLE_S, period_start=_utc_of(p0),
                            period_end=_utc_of(p1))


def _resolve_faults(config: HeatingSimConfig, plan: HeatingPlan, p0: float, p1: float, t_first: float,
                    n: int) -> list[_Active]:
    zone = ZoneInfo(config.tz)
    dt = config.step_s

    def epoch(t: datetime, what: str) -> float:
        e = (t if t.tzinfo else t.replace(tzinfo=zone)).timestamp()
        if not p0 <= e < p1:
            raise ValueError(f"{what} at {t.isoformat()}: outside the simulated period "
                             f"{_iso(_utc_of(p0))} – {_iso(_utc_of(p1))}")
        return e

    def step(e: float) -> int:
        return min(n, int(math.ceil((e - t_first) / dt - 1e-9)))

    out: list[_Active] = []
    battery_trvs: set[int] = set()
    for f in config.faults:
        if not isinstance(f, (WindowOpen, StuckValve, ScheduleIgnored, SetpointAboveComfort, BatteryDying)):
            raise ValueError(f"unknown fault {f!r}")
        r = _resolve(f.room, plan, f.kind)
        room = plan.rooms[r]
        trvs = np.array(room.trvs, dtype=np.int64)
        if isinstance(f, BatteryDying):
            if not 1 <= f.trv <= len(room.trvs):
                raise ValueError(f"battery_dying: room {room.room_id} has TRVs 1..{len(room.trvs)}, not {f.trv}")
            if not f.days > 0:
                raise ValueError(f"battery_dying: days={f.days} must be > 0")
            at = epoch(f.at, f.kind)
            dev = room.trvs[f.trv - 1]
            if dev in battery_trvs:
                raise ValueError(f"battery_dying: TRV {plan.trvs[dev].device_id} given twice")
            battery_trvs.add(dev)
            k0 = step(at)
            out.append(_Active(f, r, np.array([dev]), k0, n))
            continue
        s = epoch(f.start, f.kind)
        hours = getattr(f, "hours", None)
        if hours is not None and not hours > 0:
            raise ValueError(f"{f.kind} in room {room.room_id}: hours={hours} must be > 0")
        e = p1 if hours is None else min(p1, s + hours * 3600.0)
        if isinstance(f, StuckValve):
            if f.trv is not None:
                if not 1 <= f.trv <= len(room.trvs):
                    raise ValueError(f"stuck_valve: room {room.room_id} has TRVs 1..{len(room.trvs)}, not {f.trv}")
                trvs = np.array([room.trvs[f.trv - 1]])
            if not 0 <= f.max_pct < 100:
                raise ValueError(f"stuck_valve: max_pct={f.max_pct} must be in [0, 100)")
        if isinstance(f, WindowOpen) and not f.loss_factor > 0:
            raise ValueError(f"window_open: loss_factor={f.loss_factor} must be > 0")
        if isinstance(f, SetpointAboveComfort) and not f.delta_c > 0:
            raise ValueError(f"setpoint_above_comfort: delta_c={f.delta_c} must be > 0")
        out.append(_Active(f, r, trvs, step(s), step(e)))
    return out


def _assemble(rows: list[tuple], grid: np.ndarray, plan: HeatingPlan, p0: float, seed: int,
              active: list[_Active]) -> dict[str, np.ndarray]:
    """Report rows → columns in publishing order, with battery (slow drain; a dying battery falls
    linearly from its level at the decline start to 2 % at silence) and link quality."""
    if rows:
        k = np.concatenate([np.full(len(r[1]), r[0], dtype=np.int64) for r in rows])
        dev = np.concatenate([r[1] for r in rows]).astype(np.int64)
        temp = np.concatenate([r[2] for r in rows])
        sp = np.concatenate([r[3] for r in rows])
        valve = np.concatenate([r[4] for r in rows])
        win = np.concatenate([r[5] for r in rows])
    else:
        k = dev = np.zeros(0, np.int64)
        temp = sp = valve = np.zeros(0)
        win = np.zeros(0, np.int8)
    t_ms = np.round((grid[k] + plan.phase_s[dev]) * 1000).astype(np.int64)
    order = np.lexsort((dev, t_ms))
    dev, temp, sp, valve, win, t_ms = (x[order] for x in (dev, temp, sp, valve, win, t_ms))
    t = t_ms / 1000.0
    battery = plan.battery0[dev] - plan.drain_pct_per_day[dev] * (t - p0) / 86400.0
    for a in active:
        if isinstance(a.fault, BatteryDying):
            silent = float(grid[a.k0]) if a.k0 < len(grid) else float(grid[-1])
            decline = silent - a.fault.days * 86400.0
            mine = dev == a.trvs[0]
            level0 = plan.battery0[a.trvs[0]] - plan.drain_pct_per_day[a.trvs[0]] * (decline - p0) / 86400.0
            share = np.clip((t[mine] - decline) / (silent - decline), 0.0, 1.0)
            battery[mine] = np.where(t[mine] >= decline, level0 + (BATTERY_END_PCT - level0) * share, battery[mine])
    link = np.clip(np.round(plan.link[dev] + 16.0 * (_unit_hash(seed, dev, t_ms) - 0.5)), 0, 255)
    return {"t_ms": t_ms, "device": dev.astype(np.int32), "temperature": temp, "setpoint": sp,
            "valve": valve.astype(np.int16), "window": win.astype(np.int8),
            "battery": np.round(battery).astype(np.int16), "link": link.astype(np.int16)}


def _unit_hash(seed: int, dev: np.ndarray, t_ms: np.ndarray) -> np.ndarray:
    """A uniform [0, 1) draw per (seed, device, time) — splitmix64 — so one device's radio noise
    does not depend on how many messages other devices sent."""
    with np.errstate(over="ignore"):
        z = (t_ms.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
             + dev.astype(np.uint64) * np.uint64(0xBF58476D1CE4E5B9)
             + np.uint64(seed % 2**32) * np.uint64(0x94D049BB133111EB))
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(2**53)


def _truth(a: _Active, plan: HeatingPlan, grid: np.ndarray, series: dict, reports: dict[str, np.ndarray],
           p0: float, p1: float) -> HeatingFaultTruth:
    """The ground truth of one fault, with what the simulation did (``evidence``)."""
    f, room = a.fault, plan.rooms[a.room]
    building = plan.buildings[room.building_index].building_id
    start = float(grid[a.k0]) if a.k0 < len(grid) else p1
    end = float(grid[a.k1]) if a.k1 < len(grid) else p1
    s0 = int((start - p0) // SAMPLE_S)
    s1 = int(math.ceil((end - p0) / SAMPLE_S))
    r = a.room
    sl = slice(s0, s1)
    temp, sp = series["temperature_c"][r, sl], series["setpoint_c"][r, sl]
    heat, comfort = series["heat_kwh"][r, sl], series["comfort"][r, sl]
    devices = tuple(plan.trvs[i].device_id for i in a.trvs)
    params: dict = {}
    evidence: dict = {}
    if isinstance(f, BatteryDying):
        dev = int(a.trvs[0])
        mine = reports["device"] == dev
        decline = start - f.days * 86400.0
        t = reports["t_ms"][mine] / 1000.0
        b0 = float(plan.battery0[dev] - plan.drain_pct_per_day[dev] * (decline - p0) / 86400.0)
        low = t[reports["battery"][mine] < BATTERY_LOW_PCT]
        model = plan.trvs[dev].model
        params = {"days": f.days, "trv": f.trv, "model": model.model}
        evidence = {"decline_start_utc": _iso(_utc_of(decline)),
                    "battery_at_decline_pct": round(b0, 1),
                    "low_battery_from_utc": _iso(_utc_of(float(low[0]))) if len(low) else None,
                    "last_message_utc": _iso(_utc_of(float(t[-1]))) if len(t) else None,
                    "battery_reported": "battery_low" if model.battery == "low" else "battery"}
        return HeatingFaultTruth(building, room.room_id, f.kind, _utc_of(start), None, devices, None, params, evidence)
    if isinstance(f, WindowOpen):
        detecting = [plan.trvs[i].device_id for i in a.trvs if plan.trvs[i].model.window != "none"]
        params = {"hours": f.hours, "loss_factor": f.loss_factor}
        evidence = {"heating_kwh": round(float(heat.sum()), 2),
                    "temperature_at_start_c": round(float(temp[0]), 2) if len(temp) else None,
                    "temperature_min_c": round(float(temp.min()), 2) if len(temp) else None,
                    "flagging_devices": detecting}
    elif isinstance(f, StuckValve):
        below = temp < sp - 1.0
        params = {"hours": f.hours, "max_pct": f.max_pct, "trv": f.trv}
        evidence = {"hours_below_setpoint_1k": below.sum() * SAMPLE_S / 3600.0,
                    "temperature_min_c": round(float(temp.min()), 2) if len(temp) else None}
    elif isinstance(f, ScheduleIgnored):
        base = np.where(comfort, room.comfort_c, room.setback_c)
        outside = ~comfort
        params = {"hours": f.hours}
        evidence = {"unoccupied_hours": outside.sum() * SAMPLE_S / 3600.0,
                    "heating_kwh_outside_schedule": round(float(heat[outside].sum()), 2),
                    "scheduled_setpoint_c": sorted(set(base[outside].tolist()))}
    elif isinstance(f, SetpointAboveComfort):
        params = {"hours": f.hours, "delta_c": f.delta_c}
        evidence = {"comfort_hours": comfort.sum() * SAMPLE_S / 3600.0,
                    "setpoint_c": room.comfort_c + f.delta_c}
    evidence = {k: (round(v, 2) if isinstance(v, float) else v) for k, v in evidence.items()}
    end_dt = None if (getattr(f, "hours", None) is None) else _utc_of(end)
    return HeatingFaultTruth(building, room.room_id, f.kind, _utc_of(start), end_dt, devices,
                             EXPECTED_FINDING[f.kind], params, evidence)


# --- registry and scenarios ----------------------------------------------------------------------

def heating_registry(result: HeatingSimResult, commune: str | None = None) -> dict:
    """The ``buildings:`` registry section of the simulated fleet (the heating design's YAML):
    each building with ``holidays`` and ``closures`` as simulated and ``outdoor_device``; each room
    with ``name``, ``area_m2``, ``comfort_c``, ``setback_c``, ``schedule`` and its TRVs
    (``kind: trv``, ``friendly_name``, ``radiator_w``, ``expected_interval_s`` = twice the
    heartbeat); the outdoor sensor is listed under the building's first room. ``commune``: written
    on every building when given (else the loader's default)."""
    plan, config = result.plan, result.config
    buildings = []
    for b in plan.buildings:
        rooms = []
        for pos, r in enumerate(b.rooms):
            room = plan.rooms[r]
            devices = [{"id": plan.trvs[i].device_id, "kind": str(HeatingDeviceKind.TRV),
                        "friendly_name": plan.trvs[i].friendly_name, "radiator_w": plan.trvs[i].radiator_w,
                        "expected_interval_s": 2 * TRV_HEARTBEAT_S} for i in room.trvs]
            if pos == 0:
                devices.append({"id": b.outdoor_device_id, "kind": str(HeatingDeviceKind.OUTDOOR),
                                "friendly_name": b.outdoor_friendly_name,
                                "expected_interval_s": 2 * OUTDOOR_HEARTBEAT_S})
            rooms.append({"id": room.room_id, "name": room.name, "area_m2": room.area_m2,
                          "comfort_c": room.comfort_c, "setback_c": room.setback_c, "schedule": room.schedule,
                          "devices": devices})
        entry: dict = {"id": b.building_id, "name": b.name}
        if commune:
            entry["commune"] = commune
        if config.holidays:
            entry["holidays"] = config.holidays
        if config.closures:
            entry["closures"] = list(config.closures)
        entry["outdoor_device"] = b.outdoor_device_id
        entry["rooms"] = rooms
        buildings.append(entry)
    return {"buildings": buildings}


def write_heating_registry(result: HeatingSimResult, path: Path | str, commune: str | None = None) -> None:
    """Write :func:`heating_registry` as YAML (``vigie registry load FILE``)."""
    Path(path).write_text(yaml.safe_dump(heating_registry(result, commune), allow_unicode=True, sort_keys=False),
                          encoding="utf-8")


def e2e_scenario(seed: int = 0, start: date = date(2026, 11, 2), rooms: int = 24, days: int = 14) -> HeatingSimConfig:
    """The end-to-end preset: ``rooms`` rooms × ``days`` days from ``start`` (default Monday
    2026-11-02: two weeks holding the 11 November holiday), one fault of each kind on distinct rooms
    with weekday office-like schedules, every other room clean:

    - a window left open in a room from 17:30 on the first Tuesday for 15 h (over the night);
    - a valve seized shut in a one-TRV room from the first Wednesday 00:00 for 3 days;
    - the schedule ignored in a room from the first Friday 18:00 to Monday 08:00 (a weekend at comfort);
    - the setpoint 3 K above comfort in a room for the second Monday and Tuesday;
    - a TRV reporting its battery in % dying over 4 days, silent from the second Thursday 09:00.
    """
    base = HeatingSimConfig(rooms=rooms, days=days, start=start, seed=seed)
    plan = plan_heating(base)
    rng = _rng(seed, 5)
    used: set[int] = set()
    weekday_types = {"bureau", "accueil", "reunion", "classe"}

    def pick(ok) -> int:
        cand = [r.index for r in plan.rooms if r.index not in used and r.type in weekday_types and ok(r)]
        if not cand:
            raise ValueError("heating e2e scenario: no room left for a fault; use more rooms")
        i = int(rng.choice(cand))
        used.add(i)
        return i

    def at(day: int, hh: int, mm: int = 0) -> datetime:
        return datetime.combine(start + timedelta(days=day), datetime.min.time()).replace(hour=hh, minute=mm)

    faults: list[Fault] = [
        WindowOpen(pick(lambda r: True), at(1, 17, 30), 15.0),
        StuckValve(pick(lambda r: len(r.trvs) == 1), at(2, 0), 72.0),
        ScheduleIgnored(pick(lambda r: True), at(4, 18), 62.0),
        SetpointAboveComfort(pick(lambda r: True), at(7, 0), 48.0),
    ]
    battery_room = pick(lambda r: plan.trvs[r.trvs[0]].model.battery == "pct")
    faults.append(BatteryDying(battery_room, at(10, 9), days=4.0, trv=1))
    return HeatingSimConfig(rooms=rooms, days=days, start=start, seed=seed, faults=faults)


FAULT_SPECS = {
    "window": "window:ROOM:START,HOURS[,LOSS_FACTOR]",
    "stuck-valve": "stuck-valve:ROOM:START[,HOURS[,MAX_PCT]]",
    "schedule-ignored": "schedule-ignored:ROOM:START[,HOURS]",
    "setpoint-high": "setpoint-high:ROOM:START[,HOURS[,DELTA_C]]",
    "battery": "battery:ROOM:AT[,DAYS[,TRV]]",
}


def parse_fault_spec(spec: str) -> Fault:
    """A ``--fault`` option → a fault (see :data:`FAULT_SPECS`): ROOM the room's fleet position
    (0…N−1) or id, START/AT ISO 8601 date-times (local unless with an offset), HOURS/DAYS > 0; e.g.
    ``window:3:2026-11-03T17:30,15``, ``battery:r-0007:2026-11-12T09:00,4``. Raises ``ValueError``
    naming the part that is wrong."""
    kind, _, rest = spec.partition(":")
    room_text, _, rest = rest.partition(":")
    if kind not in FAULT_SPECS or not room_text or not rest:
        raise ValueError(f"--fault {spec!r}: expected one of {'; '.join(FAULT_SPECS.values())}")
    room: RoomRef = int(room_text) if room_text.isdigit() else room_text
    when_text, *params = rest.split(",")
    usage = FAULT_SPECS[kind]
    try:
        when = datetime.fromisoformat(when_text)
    except ValueError:
        raise ValueError(f"--fault {spec!r}: {when_text!r} is not an ISO 8601 date-time ({usage})") from None

    def number(i: int, name: str, default: float | None, allow_zero: bool = False) -> float | None:
        if len(params) <= i:
            if default is None and name == "HOURS" and kind == "window":
                raise ValueError(f"--fault {spec!r}: HOURS is required ({usage})")
            return default
        try:
            x = float(params[i])
        except ValueError:
            x = math.nan
        if not math.isfinite(x) or x < 0 or (x == 0 and not allow_zero):
            raise ValueError(f"--fault {spec!r}: {name} {params[i]!r} must be a number > 0 ({usage})")
        return x

    if kind == "window":
        return WindowOpen(room, when, number(0, "HOURS", None), number(1, "LOSS_FACTOR", 4.0))
    if kind == "stuck-valve":
        return StuckValve(room, when, number(0, "HOURS", None), number(1, "MAX_PCT", 0.0, allow_zero=True))
    if kind == "schedule-ignored":
        return ScheduleIgnored(room, when, number(0, "HOURS", None))
    if kind == "setpoint-high":
        return SetpointAboveComfort(room, when, number(0, "HOURS", None), number(1, "DELTA_C", 3.0))
    trv = number(1, "TRV", 1.0)
    if trv != int(trv):
        raise ValueError(f"--fault {spec!r}: TRV {params[1]!r} must be a whole number ({usage})")
    return BatteryDying(room, when, number(0, "DAYS", 5.0), int(trv))
