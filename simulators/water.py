"""A household water-meter fleet: realistic indices, injectable faults, and the ground truth.

Each meter belongs to one household (1–5 people, or an empty secondary residence) whose water use
is drawn as discrete events — toilet flushes, taps, kitchen sink, showers and baths, washing
machine and dishwasher fills — with a morning peak after waking (later on weekends), a lunch bump,
an evening peak, no use while asleep except an occasional night flush, day-to-day variability and
the odd 1–3 day absence. Events are integrated exactly over each meter's reading intervals
(15, 30 or 60 min, a fixed phase per meter), and the index is kept in m³ at the register's
resolution of 1 L (floor of the true volume), so a quiet interval reads exactly zero.

Household behaviour is bounded so that, without a fault, no meter triggers the J+1 leak rules
(``vigie.analytics.leaks``): every local day has at least one zero-consumption interval (at least
5¼ h of sleep between 00:30 and 05:45 local, at most two night flushes), no flow above 500 L/h is
sustained for 30 min (one bathroom, used in turn; showers ≤ 9 L/min × 9 min, baths ≤ 110 L), and
weekly volumes stay well within twice the previous weeks' average (absences of at most 3 days).

Faults (:class:`Leak`, :class:`Replacement`, :class:`Gap`, :class:`Duplicates`,
:class:`OutOfOrder`) are applied on top, and described in the ground truth
(:meth:`SimResult.ground_truth`). Randomness comes from independent streams of one seed (fleet,
events, faults), so adding a fault never changes the households' own consumption.

Shapes: :attr:`SimResult.readings` is a frame of the distinct readings taken, sorted by time then
meter — ``meter_id`` (categorical str), ``meter_index`` (int), ``time`` (datetime64[s, UTC],
whole seconds), ``index_m3`` (float, 3 decimals), ``alarms`` (str, space-separated
:class:`~vigie.records.MeterAlarm` names, "" when none). :attr:`SimResult.publish_order` indexes
those rows in the order a gateway publishes them (duplicates repeat a row, late messages move).

Figures: French domestic use ~145 L/person/day (ours: ~110–130 indoors); dual-flush 3/6 L, older
cisterns 9 L; showers 6–9 L/min; leak rates from ista (dripping tap ~3.4 L/h, running toilet
≥ 20 L/h) — see ``shared/reference/domain-rules.md``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import ClassVar, Iterator
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import yaml

from vigie.records import MeterAlarm
from vigie.simulators.publish import WmbusReading

#: Drivers of the fleet and their shares (IZAR and Multical are the common French/EU radio meters).
DRIVER_SHARES = {"izar": 0.4, "kamwater": 0.3, "iperl": 0.2, "apator162": 0.1}
#: Household sizes 1–5 and their shares (INSEE: one-person households ~37 % in France).
PEOPLE_SHARES = (0.36, 0.33, 0.14, 0.12, 0.05)
#: The register holds 99 999.999 m³ and then rolls over to 0.
REGISTER_CAPACITY_L = 100_000_000

_H = 3600.0
_MIN = 60.0
# Sleep is at least 00:30 → 05:45 local: ≥ 5¼ h, so ≥ 4 whole 60-min intervals, of which at most
# two get a night flush — the guaranteed zero-consumption interval of every day.
_BED_MIN, _BED_MAX = 21.5 * _H, 24.5 * _H
_WAKE_MIN, _WAKE_MAX = 5.75 * _H, 10.5 * _H
_MAX_NIGHT_FLUSHES = 2
_BATHROOM_GAP_MIN = (8.0, 15.0)  # minutes between two people's turns in the bathroom

MeterRef = int | str  # fleet position (0-based) or meter id


# --- configuration and faults ---------------------------------------------------------------

@dataclass(frozen=True)
class Leak:
    """A continuous added flow of ``rate_l_per_h`` on ``meter`` from ``start`` to ``end`` (the end
    of the simulation when None). Naive datetimes are local time in the simulation's zone.

    Typical rates: drip 1–5 L/h, running toilet 10–30 L/h, burst > 100 L/h. At 1 L index
    resolution the continuous-flow rule sees a leak only if it adds ≥ 1 L per reading interval.
    ``alarm``: a :class:`~vigie.records.MeterAlarm` name (``LEAK``, ``BURST``) the meter itself
    reports on every reading of the leak; such a meter gets the ``kamwater`` driver (the only one
    of the four that reports both). None (default): the meter reports no flag.
    """

    meter: MeterRef
    rate_l_per_h: float
    start: datetime
    end: datetime | None = None
    alarm: str | None = None
    kind: ClassVar[str] = "leak"


@dataclass(frozen=True)
class Replacement:
    """``meter`` is replaced at ``at`` (same id): the index restarts at ``new_index_m3``
    (drawn in 0–0.05 m³ when None) and counts on from there."""

    meter: MeterRef
    at: datetime
    new_index_m3: float | None = None
    kind: ClassVar[str] = "replacement"


@dataclass(frozen=True)
class Gap:
    """``meter`` sends nothing during ``hours`` from ``start`` (radio loss, gateway down)."""

    meter: MeterRef
    start: datetime
    hours: float
    kind: ClassVar[str] = "gap"


@dataclass(frozen=True)
class Duplicates:
    """``count`` messages of ``meter`` — or of each of a ``share`` (0–1) of the fleet's meters —
    are published twice in a row (QoS 1 redelivery, two gateways hearing one telegram)."""

    count: int = 1
    meter: MeterRef | None = None
    share: float | None = None
    kind: ClassVar[str] = "duplicates"


@dataclass(frozen=True)
class OutOfOrder:
    """``count`` messages of ``meter`` are published late: after the meter's next
    2..``max_delay_readings`` readings (a gateway flushing a buffer)."""

    meter: MeterRef
    count: int = 1
    max_delay_readings: int = 4
    kind: ClassVar[str] = "out_of_order"


Fault = Leak | Replacement | Gap | Duplicates | OutOfOrder


@dataclass
class WaterSimConfig:
    """What to simulate.

    - ``meters``: fleet size; ``days``: local days simulated, from local midnight of ``start``
      (None: the ``days`` days ending yesterday, local) in zone ``tz``.
    - ``intervals_min``: reading intervals a meter is given (uniformly), minutes.
    - ``share_empty``: share of homes empty throughout (secondary residences: zero flow).
    - ``share_away``: share of occupied homes away once, 1–3 days (zero flow those days).
    - ``rollover_meters``: meters whose index starts less than 1 m³ below 99 999.999 m³ and rolls
      over to 0 during the run.
    - ``faults``: see :data:`Fault`.
    """

    meters: int = 500
    days: int = 30
    start: date | None = None
    tz: str = "Europe/Paris"
    seed: int = 0
    intervals_min: tuple[int, ...] = (15, 30, 60)
    share_empty: float = 0.04
    share_away: float = 0.25
    rollover_meters: int = 0
    faults: list[Fault] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.meters < 1 or self.days < 1:
            raise ValueError(f"meters={self.meters}, days={self.days}: both must be ≥ 1")
        if not self.intervals_min or any(int(i) != i or not 1 <= i <= 1440 for i in self.intervals_min):
            raise ValueError(f"intervals_min={self.intervals_min}: expected whole minutes in 1..1440")
        for name in ("share_empty", "share_away"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name}={getattr(self, name)}: expected a fraction in [0, 1]")
        if not 0 <= self.rollover_meters <= self.meters:
            raise ValueError(f"rollover_meters={self.rollover_meters}: expected 0..meters")
        ZoneInfo(self.tz)  # raises on an unknown zone

    def start_date(self) -> date:
        if self.start is not None:
            return self.start
        return datetime.now(ZoneInfo(self.tz)).date() - timedelta(days=self.days)


# --- fleet ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MeterProfile:
    """One meter and its household. ``interval_min``/``phase_s``: readings at
    ``period start − interval + phase + k × interval``; ``start_index_l``: index at the first
    reading, litres; ``away_days``: local days the household is away; ``worker``: out at work on
    weekdays; ``chronotype_min``: how much later than average the household lives (minutes)."""

    index: int
    meter_id: str
    driver: str
    interval_min: int
    phase_s: int
    start_index_l: int
    people: int
    empty: bool
    worker: bool
    dishwasher: bool
    flush_l: float
    intensity: float
    chronotype_min: float
    away_days: tuple[date, ...]


def _rng(seed: int, stream: int) -> np.random.Generator:
    # One seed, independent streams: fleet (1), household events (2), faults (3), registry (4),
    # scenario picks (5), registers' sub-litre start (6).
    return np.random.default_rng([seed, stream])


def _meter_ids(rng: np.random.Generator, n: int) -> list[str]:
    ids: set[int] = set()
    out: list[int] = []
    while len(out) < n:
        for x in rng.integers(0, 2**32, size=n - len(out)).tolist():
            if x not in ids:
                ids.add(x)
                out.append(x)
    return [f"{x:08x}" for x in out]


def plan_fleet(config: WaterSimConfig) -> list[MeterProfile]:
    """The fleet of ``config`` (ids, drivers, intervals, households), from the seed alone: the same
    for any fault list, so a scenario can pick meters (e.g. one with hourly readings) first."""
    rng = _rng(config.seed, 1)
    n, start = config.meters, config.start_date()
    ids = _meter_ids(rng, n)
    drivers = rng.choice(list(DRIVER_SHARES), size=n, p=list(DRIVER_SHARES.values()))
    intervals = rng.choice(np.asarray(config.intervals_min, dtype=np.int64), size=n)
    phase = (rng.random(n) * intervals * 60).astype(np.int64)
    start_l = rng.integers(5_000, 3_000_000, size=n)
    rolling = rng.choice(n, size=config.rollover_meters, replace=False)
    start_l[rolling] = REGISTER_CAPACITY_L - 1 - rng.integers(0, 1_000, size=len(rolling))
    people = rng.choice(np.arange(1, 6), size=n, p=PEOPLE_SHARES)
    empty = rng.random(n) < config.share_empty
    worker = rng.random(n) < np.where(people == 1, 0.45, 0.6)
    dishwasher = rng.random(n) < np.where(people >= 3, 0.8, 0.5)
    flush_l = rng.choice([6.0, 6.0, 9.0], size=n)
    intensity = rng.lognormal(0.0, 0.2, size=n)
    chrono = np.clip(rng.normal(0.0, 30.0, size=n), -60.0, 60.0)
    away = (rng.random(n) < config.share_away) & ~empty
    away_len = rng.integers(1, 4, size=n)
    away_first = rng.integers(0, config.days, size=n)
    fleet = []
    for i in range(n):
        away_days = tuple(start + timedelta(days=int(away_first[i]) + j) for j in range(int(away_len[i]))
                          if away[i] and away_first[i] + j < config.days)
        fleet.append(MeterProfile(
            index=i, meter_id=ids[i], driver=str(drivers[i]), interval_min=int(intervals[i]),
            phase_s=int(phase[i]), start_index_l=int(start_l[i]), people=int(people[i]), empty=bool(empty[i]),
            worker=bool(worker[i]), dishwasher=bool(dishwasher[i]), flush_l=float(flush_l[i]),
            intensity=float(intensity[i]), chronotype_min=float(chrono[i]), away_days=away_days))
    return fleet


# --- household events ---------------------------------------------------------------------------

@dataclass
class _Events:
    """Water-use events as columns: meter position, start (epoch s UTC), duration (s), flow (L/s)."""

    meter: np.ndarray
    start: np.ndarray
    duration: np.ndarray
    flow: np.ndarray


# Mixture of event times over the waking day: after waking, lunch, evening, anytime. Rows:
# weekday at home, weekday at work, weekend.
_PERSONAL_MIX = np.array([[0.35, 0.20, 0.30, 0.15], [0.40, 0.03, 0.50, 0.07], [0.30, 0.25, 0.25, 0.20]])
_KITCHEN_MIX = np.array([[0.25, 0.35, 0.35, 0.05], [0.30, 0.02, 0.63, 0.05], [0.20, 0.40, 0.35, 0.05]])


class _Days:
    """Household × local-day arrays for days −1 … ``days`` (one extra each side so intervals
    straddling the period's midnights see the neighbouring evening and morning)."""

    def __init__(self, fleet: list[MeterProfile], start: date, n_days: int, rng: np.random.Generator) -> None:
        self.dates = [start + timedelta(days=d) for d in range(-1, n_days + 1)]
        n_h, n_d = len(fleet), len(self.dates)
        self.n_h, self.n_d = n_h, n_d
        col = {d: j for j, d in enumerate(self.dates)}
        empty = np.array([p.empty for p in fleet])
        self.present = np.repeat(~empty[:, None], n_d, axis=1)
        for p in fleet:
            for d in p.away_days:
                self.present[p.index, col[d]] = False
        self.people = np.array([p.people for p in fleet])
        self.worker = np.array([p.worker for p in fleet])
        chrono = np.array([p.chronotype_min for p in fleet])[:, None] * _MIN
        self.chrono = chrono
        weekend = np.array([d.weekday() >= 5 for d in self.dates])[None, :]
        self.weekend = np.repeat(weekend, n_h, axis=0)
        wake_wd = 6.75 * _H + chrono + rng.normal(0, 15 * _MIN, (n_h, n_d))
        wake_we = 8.25 * _H + chrono + rng.normal(0, 30 * _MIN, (n_h, n_d))
        self.wake = np.clip(np.where(self.weekend, wake_we, wake_wd), _WAKE_MIN, _WAKE_MAX)
        bed = 23.0 * _H + chrono + rng.normal(0, 20 * _MIN, (n_h, n_d)) + np.where(self.weekend, 30 * _MIN, 0.0)
        self.bed = np.clip(bed, _BED_MIN, _BED_MAX)
        self.mult = np.array([p.intensity for p in fleet])[:, None] * rng.lognormal(0.0, 0.2, (n_h, n_d))
        # Mixture row: 0 weekday at home, 1 weekday at work, 2 weekend.
        self.case = np.where(self.weekend, 2, np.where(self.worker[:, None], 1, 0))


def _mixture_times(rng, days: _Days, h, d, table: np.ndarray) -> np.ndarray:
    """Event times (local s after midnight) for household-days ``(h, d)``, from ``table``'s
    mixture; always inside the waking day, and ≥ 10 min before bed."""
    n = len(h)
    wake, bed = days.wake[h, d], days.bed[h, d] - 10 * _MIN
    comp = (rng.random(n)[:, None] > np.cumsum(table[days.case[h, d]], axis=1)[:, :-1]).sum(axis=1)
    t = np.select(
        [comp == 0, comp == 1, comp == 2],
        [wake + rng.exponential(40 * _MIN, n),
         rng.normal(12.75 * _H, 60 * _MIN, n),
         rng.normal(19.5 * _H, 75 * _MIN, n) + days.chrono[h, 0] / 2],
        rng.uniform(wake, bed))
    outside = (t < wake) | (t >= bed)
    t[outside] = rng.uniform(wake[outside], bed[outside])
    return t


def _group_starts(group: np.ndarray) -> np.ndarray:
    """True where a run of equal ``group`` values begins."""
    starts = np.ones(len(group), dtype=bool)
    starts[1:] = group[1:] != group[:-1]
    return starts


def _turns(first: np.ndarray, lengths: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Start times of people taking turns: rows grouped contiguously by ``group``; the group's
    first row starts at its ``first``, each next row when the previous one's ``lengths`` is over."""
    starts = _group_starts(group)
    head = np.flatnonzero(starts)[np.cumsum(starts) - 1]
    before = np.cumsum(lengths) - lengths
    return first[head] + before - before[head]


def _household_events(fleet: list[MeterProfile], start: date, n_days: int, tz: str,
                      rng: np.random.Generator) -> _Events:
    days = _Days(fleet, start, n_days, rng)
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []  # h, d, t, dur, flow

    def add(h, d, t, volume_l, flow_l_per_min):
        flow = flow_l_per_min / _MIN
        parts.append((h, d, t, volume_l / flow, flow))

    hs, ds = np.nonzero(days.present)
    people, mult = days.people[hs], days.mult[hs, ds]
    flush_l = np.array([p.flush_l for p in fleet])

    def repeat(counts):
        return np.repeat(hs, counts), np.repeat(ds, counts)

    # Toilet flushes (dual flush: the small one is half), handwashing/teeth taps, kitchen sink.
    h, d = repeat(rng.poisson(4.5 * people * mult))
    vol = flush_l[h] * np.where(rng.random(len(h)) < 0.5, 0.5, 1.0)
    add(h, d, _mixture_times(rng, days, h, d, _PERSONAL_MIX), vol, rng.uniform(5.0, 8.0, len(h)))
    h, d = repeat(rng.poisson(12.0 * people * mult))
    add(h, d, _mixture_times(rng, days, h, d, _PERSONAL_MIX), np.clip(rng.lognormal(0.0, 0.6, len(h)), 0.2, 5.0),
        rng.uniform(4.0, 7.0, len(h)))
    h, d = repeat(rng.poisson((2.0 + 0.8 * people) * mult))
    add(h, d, _mixture_times(rng, days, h, d, _KITCHEN_MIX), rng.uniform(2.0, 12.0, len(h)),
        rng.uniform(5.0, 7.0, len(h)))

    # Showers and baths: one bathroom, people take turns (morning after waking, evening at ~21:00).
    # Each person keeps a habit (morning, evening, either), which steadies weekly volumes.
    offset = np.cumsum(days.people) - days.people
    habit = rng.choice(3, size=int(days.people.sum()), p=[0.6, 0.25, 0.15])
    hp, dp = np.repeat(hs, people), np.repeat(ds, people)
    person = offset[hp] + np.arange(len(hp)) - np.repeat(np.cumsum(people) - people, people)
    for when, prob_by_habit in (("morning", np.array([0.9, 0.05, 0.5])), ("evening", np.array([0.05, 0.9, 0.3]))):
        take = rng.random(len(hp)) < prob_by_habit[habit[person]]
        h, d = hp[take], dp[take]
        n = len(h)
        bath = (rng.random(n) < 0.04) if when == "evening" else np.zeros(n, dtype=bool)
        flow = np.where(bath, rng.uniform(9.0, 11.0, n), rng.uniform(6.0, 9.0, n))
        dur = np.where(bath, rng.uniform(70.0, 110.0, n) / flow, rng.uniform(4.0, 9.0, n)) * _MIN
        turn = dur + rng.uniform(*_BATHROOM_GAP_MIN, n) * _MIN
        if when == "morning":
            first = days.wake[h, d] + rng.uniform(2.0, 10.0, n) * _MIN
        else:
            first = 21.0 * _H + days.chrono[h, 0] / 2 + rng.normal(0, 20 * _MIN, n)
        t = _turns(first, turn, h * days.n_d + d)
        ok = (t >= days.wake[h, d]) & (t + dur <= days.bed[h, d] - 10 * _MIN)
        add(h[ok], d[ok], t[ok], (flow * dur / _MIN)[ok], flow[ok])

    # Washing machine, 1 + 1.1 loads a week per person (more on weekends): 4 fills over 75 min;
    # a second cycle later the same day in big households. Counts are floor(rate + U), the
    # least variable whole numbers with that mean: laundry is a routine.
    rate = (1.0 + 1.1 * people) / 7 * np.where(days.weekend[hs, ds], 1.4, 0.84)
    cycles = np.floor(rate + rng.random(len(hs))).astype(np.int64)
    h, d = repeat(cycles)
    first_cycle = _group_starts(h * days.n_d + d)
    lo, hi = days.wake[h, d] + 30 * _MIN, days.bed[h, d] - 150 * _MIN
    t = rng.uniform(lo, np.maximum(hi, lo))
    t = np.where(first_cycle, t, np.roll(t, 1) + rng.uniform(120, 180, len(t)) * _MIN)
    ok = (hi > lo) & (t <= hi)
    h, d, t = h[ok], d[ok], t[ok]
    for fill_min in (0, 15, 45, 75):
        add(h, d, t + fill_min * _MIN, rng.uniform(10.0, 14.0, len(h)), np.full(len(h), 8.0))

    # Dishwasher after dinner, finished before bed: 4 small fills over 75 min.
    has_dw = np.array([p.dishwasher for p in fleet])[hs]
    run = has_dw & (rng.random(len(hs)) < np.minimum(0.3 + 0.15 * people, 0.9))
    h, d = hs[run], ds[run]
    t = np.minimum(rng.normal(20.75 * _H, 30 * _MIN, len(h)), days.bed[h, d] - 90 * _MIN)
    ok = t >= days.wake[h, d]
    h, d, t = h[ok], d[ok], t[ok]
    for fill_min in (0, 20, 50, 75):
        add(h, d, t + fill_min * _MIN, rng.uniform(2.5, 3.5, len(h)), np.full(len(h), 5.0))

    # Night flushes: at most two between going to bed and waking, home both evening and morning.
    night = days.present[:, 1:] & days.present[:, :-1]
    hn, dn = np.nonzero(night)
    dn = dn + 1
    count = np.minimum(rng.poisson(0.12 * days.people[hn]), _MAX_NIGHT_FLUSHES)
    h, d = np.repeat(hn, count), np.repeat(dn, count)
    t = rng.uniform(days.bed[h, d - 1] - 24 * _H + 20 * _MIN, days.wake[h, d] - 15 * _MIN)
    add(h, d, t, flush_l[h] * np.where(rng.random(len(h)) < 0.5, 0.5, 1.0), rng.uniform(5.0, 8.0, len(h)))

    h = np.concatenate([p[0] for p in parts])
    d = np.concatenate([p[1] for p in parts])
    local_s = np.concatenate([p[2] for p in parts])
    # Local wall clock → UTC: a repeated (fall-back) hour reads as its first pass, a skipped one
    # (spring-forward) moves past the gap; only night flushes fall there.
    midnight = np.datetime64(days.dates[0], "ns")
    naive = midnight + (d * 86_400 * 1_000_000_000).astype("timedelta64[ns]") \
        + (local_s * 1e9).astype(np.int64).astype("timedelta64[ns]")
    utc = pd.DatetimeIndex(naive).tz_localize(tz, ambiguous=np.ones(len(naive), dtype=bool),
                                              nonexistent="shift_forward")
    return _Events(meter=h, start=utc.asi8 / 1e9, duration=np.concatenate([p[3] for p in parts]),
                   flow=np.concatenate([p[4] for p in parts]))


# --- ground truth -------------------------------------------------------------------------------

def _utc(dt: datetime, tz: ZoneInfo) -> datetime:
    """An aware UTC datetime; naive means local wall time in ``tz`` (first pass of a repeated hour)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=tz)
    return dt.astimezone(timezone.utc)


def _local_midnight(day: date, tz: ZoneInfo) -> datetime:
    return pd.Timestamp(day).tz_localize(tz, nonexistent="shift_forward").to_pydatetime().astimezone(timezone.utc)


def days_fully_covered(start: datetime, end: datetime, tz: str | ZoneInfo) -> list[date]:
    """Local days (midnight to midnight in ``tz``, 23 or 25 h on DST days) lying entirely inside
    ``[start, end)`` — the days a continuous leak over that span makes flow without pause."""
    zone = ZoneInfo(tz) if isinstance(tz, str) else tz
    start, end = _utc(start, zone), _utc(end, zone)
    day = start.astimezone(zone).date()
    if _local_midnight(day, zone) < start:
        day += timedelta(days=1)
    out = []
    while _local_midnight(day + timedelta(days=1), zone) <= end:
        out.append(day)
        day += timedelta(days=1)
    return out


def _days_touched(start: datetime, end: datetime, zone: ZoneInfo) -> list[date]:
    """Local days that ``[start, end)`` overlaps at all."""
    first = start.astimezone(zone).date()
    last = (end - timedelta(microseconds=1)).astimezone(zone).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


@dataclass(frozen=True)
class FaultTruth:
    """One injected fault as the ground truth records it (times UTC).

    For leaks: ``days_fully_covered``, the local days the leak runs all day;
    ``days_continuous_flow``, those of them on which every reading interval overlapping the day
    gets ≥ 1 L (one index step) from the leak — the continuous-flow rule must flag exactly these
    whatever the household does (they differ from the fully covered days only for a leak too
    slow for the meter's interval, or one starting near midnight); ``days_partially_covered``,
    the other days the leak touches (flagged or not depending on the household's own quiet
    intervals). ``end`` None: still leaking when the simulation ends. ``params``: the fault's
    parameters (JSON values, units in the keys).
    """

    meter_id: str
    meter_index: int
    kind: str
    params: dict
    start: datetime | None
    end: datetime | None
    days_fully_covered: tuple[date, ...] = ()
    days_partially_covered: tuple[date, ...] = ()
    days_continuous_flow: tuple[date, ...] = ()

    def to_dict(self) -> dict:
        def iso(t: datetime | None) -> str | None:
            return None if t is None else t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {"meter_id": self.meter_id, "meter_index": self.meter_index, "kind": self.kind,
                "params": self.params, "start_utc": iso(self.start), "end_utc": iso(self.end),
                "days_fully_covered": [d.isoformat() for d in self.days_fully_covered],
                "days_partially_covered": [d.isoformat() for d in self.days_partially_covered],
                "days_continuous_flow": [d.isoformat() for d in self.days_continuous_flow]}


def leak_category(rate_l_per_h: float) -> str:
    """drip (< 10 L/h), running_toilet (10–100 L/h) or burst (≥ 100 L/h)."""
    return "drip" if rate_l_per_h < 10 else "running_toilet" if rate_l_per_h < 100 else "burst"


def _leak_truth(f: Leak, meter: MeterProfile, ls: datetime, le: datetime | None, p1: datetime, zone: ZoneInfo,
                grid: np.ndarray, litres: np.ndarray) -> FaultTruth:
    """Ground truth of one leak; ``grid`` the meter's reading times (epoch s), ``litres`` the leak's
    volume in each interval between them."""
    end = le if le is not None else p1
    full = days_fully_covered(ls, end, zone)
    touched = _days_touched(ls, end, zone)
    per_day = {}
    for d in touched:
        ds = max(_local_midnight(d, zone), ls)
        de = min(_local_midnight(d + timedelta(days=1), zone), end)
        per_day[d.isoformat()] = round((de - ds).total_seconds() / _H * f.rate_l_per_h, 1)
    # The rule reads every interval overlapping the day: it must fire when each gets ≥ 1 L (one
    # index step) from the leak, whatever the household does.
    flagged = []
    for d in full:
        ds, de = _local_midnight(d, zone).timestamp(), _local_midnight(d + timedelta(days=1), zone).timestamp()
        over = (grid[:-1] < de) & (grid[1:] > ds)
        if over.any() and (litres[over] >= 1.0 + 1e-6).all():
            flagged.append(d)
    return FaultTruth(
        meter.meter_id, meter.index, "leak",
        {"rate_l_per_h": f.rate_l_per_h, "category": leak_category(f.rate_l_per_h),
         "meter_alarm": None if f.alarm is None else str(f.alarm), "interval_min": meter.interval_min,
         "litres_per_interval": round(f.rate_l_per_h * meter.interval_min / 60, 3),
         "added_l_per_local_day": per_day},
        ls, le, tuple(full), tuple(d for d in touched if d not in full), tuple(flagged))


# --- result -------------------------------------------------------------------------------------

@dataclass
class SimResult:
    """A simulated fleet: its meters, readings, publish order and ground truth (module docstring)."""

    config: WaterSimConfig
    start: date
    period_start: datetime
    period_end: datetime
    meters: list[MeterProfile]
    readings: pd.DataFrame
    publish_order: np.ndarray
    faults: list[FaultTruth]

    def local_days(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range(self.config.days)]

    def published(self) -> Iterator[WmbusReading]:
        """The messages in publish order, as a wmbusmeters gateway would send them."""
        r = self.readings
        ids = r["meter_id"].to_numpy(dtype=object)
        secs = r["time"].to_numpy(dtype="datetime64[s]").astype(np.int64)
        index = r["index_m3"].to_numpy()
        alarms = r["alarms"].to_numpy(dtype=object)
        drivers = [m.driver for m in self.meters]
        meter = r["meter_index"].to_numpy()
        for i in self.publish_order.tolist():
            yield WmbusReading(meter_id=ids[i], time=datetime.fromtimestamp(int(secs[i]), timezone.utc),
                               index_m3=float(index[i]), driver=drivers[meter[i]],
                               alarms=tuple(alarms[i].split()) if alarms[i] else ())

    def ground_truth(self) -> dict:
        """Everything injected, as JSON values (format in ``simulators/README.md``)."""
        zone = self.config.tz
        counts = np.bincount(self.readings["meter_index"].to_numpy(), minlength=len(self.meters))
        return {
            "generator": "vigie.simulators.water",
            "seed": self.config.seed,
            "timezone": zone,
            "start": self.start.isoformat(),
            "days": self.config.days,
            "period_start_utc": self.period_start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "period_end_utc": self.period_end.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "readings": int(len(self.readings)),
            "messages": int(len(self.publish_order)),
            "meters": [{"meter_id": m.meter_id, "meter_index": m.index, "driver": m.driver,
                        "interval_min": m.interval_min, "people": m.people, "empty": m.empty,
                        "away_days": [d.isoformat() for d in m.away_days], "readings": int(counts[m.index]),
                        "rollover": m.start_index_l >= REGISTER_CAPACITY_L - 1_000}
                       for m in self.meters],
            "faults": [f.to_dict() for f in self.faults],
        }

    def write_ground_truth(self, path: Path | str) -> None:
        Path(path).write_text(json.dumps(self.ground_truth(), indent=1, ensure_ascii=False) + "\n",
                              encoding="utf-8")


# --- simulation ---------------------------------------------------------------------------------

def _resolve(ref: MeterRef, fleet: list[MeterProfile], by_id: dict[str, int], what: str) -> int:
    if isinstance(ref, bool) or not isinstance(ref, (int, str)):
        raise ValueError(f"{what}: meter {ref!r} must be a fleet position (int) or a meter id (str)")
    if isinstance(ref, int):
        if not 0 <= ref < len(fleet):
            raise ValueError(f"{what}: meter position {ref} outside the fleet (0..{len(fleet) - 1})")
        return ref
    if ref not in by_id:
        raise ValueError(f"{what}: no meter with id {ref!r} in the fleet")
    return by_id[ref]


def simulate(config: WaterSimConfig) -> SimResult:
    """Simulate the fleet of ``config`` with its faults. Raises ``ValueError`` on a fault that
    names an unknown meter, lies outside the period or has impossible parameters."""
    zone = ZoneInfo(config.tz)
    start = config.start_date()
    p0 = _local_midnight(start, zone)
    p1 = _local_midnight(start + timedelta(days=config.days), zone)
    t0, t1 = int(p0.timestamp()), int(p1.timestamp())
    fleet = plan_fleet(config)
    by_id = {m.meter_id: m.index for m in fleet}
    n = len(fleet)

    def in_period(t: datetime, what: str) -> datetime:
        u = _utc(t, zone)
        if not p0 <= u <= p1:
            raise ValueError(f"{what}: {t} outside the simulated period {p0:%Y-%m-%d %H:%M}Z – {p1:%Y-%m-%d %H:%M}Z")
        return u

    # Meters reporting a leak flag need a driver that can say so.
    for f in config.faults:
        if isinstance(f, Leak) and f.alarm is not None:
            if f.alarm not in (MeterAlarm.LEAK, MeterAlarm.BURST):
                raise ValueError(f"leak alarm {f.alarm!r}: expected 'LEAK' or 'BURST'")
            i = _resolve(f.meter, fleet, by_id, "leak")
            fleet[i] = MeterProfile(**{**fleet[i].__dict__, "driver": "kamwater"})

    # Reading grid: meter m reads at g0[m] + k·step[m], k = 0..last[m]; first ≤ t0, last ≥ t1.
    step = np.array([m.interval_min * 60 for m in fleet], dtype=np.int64)
    g0 = t0 - step + np.array([m.phase_s for m in fleet], dtype=np.int64)
    last = -((g0 - t1) // step)  # ceil((t1 − g0) / step)
    width = int(last.max()) + 1
    k = np.arange(width, dtype=np.int64)
    times = g0[:, None] + k[None, :] * step[:, None]            # (n, width) epoch s
    valid = k[None, :] <= last[:, None]

    # Interval volumes (litres): interval j of meter m is [times[m, j], times[m, j+1]).
    events = _household_events(fleet, start, config.days, config.tz, _rng(config.seed, 2))
    vol = np.zeros(n * (width - 1))
    s, e, m = events.start, events.start + events.duration, events.meter
    j0 = np.floor((s - g0[m]) / step[m]).astype(np.int64)
    span = int(np.ceil(events.duration.max() / step.min())) + 1 if len(s) else 0
    for jj in range(span):
        j = j0 + jj
        lo = g0[m] + j * step[m]
        overlap = np.minimum(e, lo + step[m]) - np.maximum(s, lo)
        ok = (overlap > 0) & (j >= 0) & (j < last[m])
        vol += np.bincount(m[ok] * (width - 1) + j[ok], weights=(overlap * events.flow)[ok], minlength=len(vol))
    vol = vol.reshape(n, width - 1)

    frng = _rng(config.seed, 3)
    truths: list[FaultTruth] = []
    alarm = np.full((n, width), "", dtype=object)
    keep = valid.copy()
    publish_delay: list[tuple[int, int, float]] = []  # (meter, k, seconds late)

    for f in config.faults:
        if isinstance(f, Leak):
            i = _resolve(f.meter, fleet, by_id, "leak")
            if not f.rate_l_per_h > 0:
                raise ValueError(f"leak on meter {fleet[i].meter_id}: rate_l_per_h={f.rate_l_per_h} must be > 0")
            ls = in_period(f.start, "leak start")
            le = in_period(f.end, "leak end") if f.end is not None else None
            if le is not None and le <= ls:
                raise ValueError(f"leak on meter {fleet[i].meter_id}: end {le} not after start {ls}")
            grid = times[i, : last[i] + 1]
            # An open-ended leak still runs through the last reading after the period.
            b = le.timestamp() if le is not None else float(grid[-1])
            litres = np.clip(np.minimum(b, grid[1:]) - np.maximum(ls.timestamp(), grid[:-1]), 0, None) \
                * f.rate_l_per_h / _H
            vol[i, : last[i]] += litres
            if f.alarm is not None:
                alarm[i, : last[i] + 1][(grid >= ls.timestamp()) & (grid <= b)] = str(f.alarm)
            truths.append(_leak_truth(f, fleet[i], ls, le, p1, zone, grid, litres))

    cum = np.zeros((n, width))
    np.cumsum(vol, axis=1, out=cum[:, 1:])
    u0 = _rng(config.seed, 6).random(n)  # sub-litre part of each register at the first reading
    index_l = np.array([m.start_index_l for m in fleet], dtype=np.int64)[:, None] \
        + np.floor(u0[:, None] + cum).astype(np.int64)

    for f in config.faults:
        if isinstance(f, Replacement):
            i = _resolve(f.meter, fleet, by_id, "replacement")
            at = in_period(f.at, "replacement")
            a = at.timestamp()
            kk = int(np.searchsorted(times[i, : last[i] + 1], a, side="left"))
            if kk == 0:
                raise ValueError(f"replacement of meter {fleet[i].meter_id} at {at}: before its first reading")
            # The old meter counted until `at`; the new one from there (flow spread evenly in the interval).
            v_at = cum[i, kk - 1] + vol[i, kk - 1] * (a - times[i, kk - 1]) / step[i]
            new_l = int(round((f.new_index_m3 if f.new_index_m3 is not None else frng.uniform(0, 0.05)) * 1000))
            if new_l < 0:
                raise ValueError(f"replacement of meter {fleet[i].meter_id}: new_index_m3 must be ≥ 0")
            old_l = int(index_l[i, kk - 1]) % REGISTER_CAPACITY_L
            index_l[i, kk:] = new_l + np.floor(frng.random() + np.maximum(cum[i, kk:] - v_at, 0.0)).astype(np.int64)
            truths.append(FaultTruth(fleet[i].meter_id, i, "replacement",
                                     {"old_index_m3": old_l / 1000, "new_index_m3": new_l / 1000},
                                     at, at))
    index_l %= REGISTER_CAPACITY_L

    for f in config.faults:
        if isinstance(f, Gap):
            i = _resolve(f.meter, fleet, by_id, "gap")
            if not f.hours > 0:
                raise ValueError(f"gap on meter {fleet[i].meter_id}: hours={f.hours} must be > 0")
            gs = in_period(f.start, "gap start")
            ge = gs + timedelta(hours=f.hours)
            hole = valid[i] & (times[i] >= gs.timestamp()) & (times[i] < ge.timestamp())
            keep[i, hole] = False
            truths.append(FaultTruth(fleet[i].meter_id, i, "gap",
                                     {"hours": f.hours, "readings_missing": int(hole.sum()),
                                      "local_days": [d.isoformat() for d in _days_touched(gs, ge, zone)]},
                                     gs, ge))

    def readable(i: int) -> np.ndarray:
        return np.flatnonzero(keep[i])

    for f in config.faults:
        if isinstance(f, Duplicates):
            if f.count < 1 or (f.meter is None) == (f.share is None):
                raise ValueError("duplicates: give count ≥ 1 and exactly one of meter, share")
            if f.meter is not None:
                targets = [_resolve(f.meter, fleet, by_id, "duplicates")]
            else:
                if not 0 < f.share <= 1:
                    raise ValueError(f"duplicates: share={f.share} must be in (0, 1]")
                targets = sorted(frng.choice(n, size=max(1, round(f.share * n)), replace=False).tolist())
            for i in targets:
                ks = np.sort(frng.choice(readable(i), size=min(f.count, len(readable(i))), replace=False))
                publish_delay.extend((i, int(kk), 0.5) for kk in ks)
                truths.append(FaultTruth(fleet[i].meter_id, i, "duplicates",
                                         {"count": len(ks), "times_utc": [_iso(times[i, kk]) for kk in ks]},
                                         None, None))
        elif isinstance(f, OutOfOrder):
            i = _resolve(f.meter, fleet, by_id, "out_of_order")
            if f.count < 1 or f.max_delay_readings < 2:
                raise ValueError("out_of_order: count must be ≥ 1 and max_delay_readings ≥ 2")
            cand = readable(i)[: -f.max_delay_readings]
            ks = np.sort(frng.choice(cand, size=min(f.count, len(cand)), replace=False))
            delays = frng.integers(2, f.max_delay_readings + 1, size=len(ks))
            msgs = []
            for kk, dl in zip(ks.tolist(), delays.tolist()):
                late = dl * float(step[i]) + 0.25
                publish_delay.append((i, kk, late))
                msgs.append({"time_utc": _iso(times[i, kk]), "published_after_utc": _iso(times[i, kk] + dl * step[i])})
            truths.append(FaultTruth(fleet[i].meter_id, i, "out_of_order", {"count": len(ks), "messages": msgs},
                                     None, None))
        elif not isinstance(f, (Leak, Replacement, Gap)):
            raise ValueError(f"unknown fault {f!r}")

    # Distinct readings, sorted by time then meter.
    mi, kk = np.nonzero(keep)
    t = times[mi, kk]
    order = np.lexsort((mi, t))
    mi, kk, t = mi[order], kk[order], t[order]
    ids = pd.Categorical.from_codes(mi, categories=pd.Index([x.meter_id for x in fleet], dtype=object))
    readings = pd.DataFrame({
        "meter_id": ids,
        "meter_index": mi,
        "time": pd.to_datetime(t, unit="s", utc=True).as_unit("s"),
        "index_m3": index_l[mi, kk] / 1000.0,
        "alarms": alarm[mi, kk],
    })

    # Publish order: by time; a duplicate right after its original, a late message after the
    # meter's next readings.
    # Rows are sorted by (time, meter), so (time · n + meter) is sorted too: find rows by search.
    row_key = t * n + mi
    want = np.array([times[i, kx] * n + i for i, kx, _ in publish_delay], dtype=np.int64)
    extra_rows = np.searchsorted(row_key, want)
    extra_key = np.array([times[i, kx] + dl for i, kx, dl in publish_delay], dtype=np.float64)
    is_late = np.array([dl > 1 for _, _, dl in publish_delay], dtype=bool)
    rows = np.arange(len(t))
    key = t.astype(np.float64)
    # A late message replaces its on-time publication; a duplicate adds a second one.
    on_time = np.ones(len(t), dtype=bool)
    on_time[extra_rows[is_late]] = False
    all_rows = np.concatenate([rows[on_time], extra_rows])
    all_key = np.concatenate([key[on_time], extra_key])
    publish_order = all_rows[np.lexsort((mi[all_rows], all_key))]

    return SimResult(config=config, start=start, period_start=p0, period_end=p1, meters=fleet,
                     readings=readings, publish_order=publish_order, faults=truths)


def _iso(epoch_s) -> str:
    return datetime.fromtimestamp(int(epoch_s), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- registry and scenarios ---------------------------------------------------------------------

def write_registry(result: SimResult, path: Path | str, email_domain: str = "example.org",
                   lorawan: bool = False) -> None:
    """A YAML registry (format of :func:`vigie.registry.load_registry_file`) giving each meter a
    household ``h-NNNN`` (address "NNNN rue de l'Exemple") and one resident ``p-NNNN`` ("Résident
    NNNN", ``resident-NNNN@<email_domain>``, phone ``+33 6 00 NN NN NN``, language fr, about 1 in 20
    en); NNNN = position + 1. Fictitious details, so tests can look for them where they must not be.
    ``lorawan``: also the ``lorawan:`` section for meters published as Axioma W1 uplinks
    (:func:`vigie.simulators.lorawan.lorawan_registry_section`)."""
    width = max(4, len(str(len(result.meters))))
    lang = _rng(result.config.seed, 4).random(len(result.meters)) < 0.05
    households = []
    for m in result.meters:
        num = f"{m.index + 1:0{width}d}"
        households.append({
            "id": f"h-{num}",
            "address": f"{num} rue de l'Exemple",
            "meters": [{"id": m.meter_id, "driver": m.driver}],
            "residents": [{"id": f"p-{num}", "name": f"Résident {num}", "email": f"resident-{num}@{email_domain}",
                           "phone": "+33 6 00 " + " ".join(f"{m.index + 1:06d}"[i:i + 2] for i in (0, 2, 4)),
                           "language": "en" if lang[m.index] else "fr"}],
        })
    doc: dict = {"households": households}
    if lorawan:
        from vigie.simulators.lorawan import lorawan_registry_section

        doc["lorawan"] = lorawan_registry_section(result)
    Path(path).write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")


#: Leaks of :func:`e2e_scenario`: (L/h, day offset, local start "HH:MM", end (day offset, "HH:MM") or
#: None, home empty?). Starts after 06:00 and the end at 01:00 leave the partly covered days a quiet
#: interval, so exactly the fully covered days show continuous flow.
E2E_LEAKS = (
    (2.0, 3, "14:20", None, False),
    (4.0, 6, "23:40", None, False),
    (15.0, 11, "11:05", None, True),
    (25.0, 19, "19:40", None, False),
    (150.0, 22, "08:10", (24, "01:00"), False),
    (600.0, 26, "13:30", None, False),
)


def e2e_scenario(seed: int, start: date = date(2026, 10, 12), meters: int = 500) -> WaterSimConfig:
    """The end-to-end preset: ``meters`` meters × 30 days from ``start`` (default: a past month that
    holds the 2026-10-25 fall-back, a 25-hour day), one meter rolling over, and faults on distinct
    meters — six leaks (:data:`E2E_LEAKS`: 2, 4, 15 (an empty home), 25 L/h and bursts of 150 L/h
    (repaired after ~41 h) and 600 L/h), each on a meter whose interval gives ≥ 2 L per reading;
    gaps of 8 h (over a night: that day's coverage drops below 80 %) and 30 h; one replacement;
    3 duplicated messages on 2 % of the fleet; 2 late messages on each of 4 meters (leaking and
    fault-free). ValueError when the fleet is too small to give each fault a meter of its own."""
    base = WaterSimConfig(meters=meters, days=30, start=start, seed=seed, rollover_meters=1)
    fleet = plan_fleet(base)
    rng = _rng(seed, 5)
    used = {m.index for m in fleet if m.start_index_l >= REGISTER_CAPACITY_L - 1_000}

    def pick(ok) -> int:
        cand = [m.index for m in fleet if m.index not in used and ok(m)]
        if not cand:
            raise ValueError("e2e scenario: no meter left for a fault; use more meters")
        i = int(rng.choice(cand))
        used.add(i)
        return i

    def at(day: int, hhmm: str) -> datetime:
        hh, mm = map(int, hhmm.split(":"))
        return datetime.combine(start + timedelta(days=day), datetime.min.time()).replace(hour=hh, minute=mm)

    faults: list[Fault] = []
    leak_meters = []
    for rate, day, hhmm, end, in_empty in E2E_LEAKS:
        i = pick(lambda m: m.empty == in_empty and rate * m.interval_min / 60 >= 2.0)
        leak_meters.append(i)
        faults.append(Leak(i, rate, at(day, hhmm), None if end is None else at(*end)))
    faults.append(Gap(pick(lambda m: not m.empty), at(9, "22:00"), 8.0))
    faults.append(Gap(pick(lambda m: not m.empty), at(14, "06:00"), 30.0))
    faults.append(Replacement(pick(lambda m: not m.empty), at(16, "10:15")))
    faults.append(Duplicates(count=3, share=0.02))
    late = [pick(lambda m: True) for _ in range(3)] + [int(rng.choice(leak_meters))]
    faults.extend(OutOfOrder(i, count=2) for i in late)
    return WaterSimConfig(meters=base.meters, days=base.days, start=start, seed=seed, rollover_meters=1,
                          faults=faults)


def parse_leak_spec(spec: str) -> Leak:
    """A ``--leak`` option ``METER:RATE:START`` → :class:`Leak`: METER the fleet position
    (0-based), RATE in L/h, START an ISO 8601 date-time (local time in the simulation's zone
    unless it has an offset). Raises ``ValueError`` naming the part that is wrong."""
    parts = spec.split(":", 2)
    if len(parts) != 3:
        raise ValueError(f"--leak {spec!r}: expected METER:RATE:START, e.g. 17:4:2026-10-20T14:00")
    meter, rate, start = parts
    return Leak(_parse_position(spec, "--leak", meter), _parse_positive(spec, "--leak", "RATE", rate, "L/h"),
                _parse_time(spec, "--leak", "START", start))


def _parse_position(spec: str, option: str, meter: str) -> int:
    if not meter.isdigit():
        raise ValueError(f"{option} {spec!r}: METER {meter!r} must be the meter's fleet position (0, 1, …)")
    return int(meter)


def _parse_time(spec: str, option: str, name: str, value: str) -> datetime:
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{option} {spec!r}: {name} {value!r} is not an ISO 8601 date-time") from None


def _parse_positive(spec: str, option: str, name: str, value: str, unit: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise ValueError(f"{option} {spec!r}: {name} {value!r} is not a number of {unit}") from None
    if not math.isfinite(x) or x <= 0:
        raise ValueError(f"{option} {spec!r}: {name} must be > 0 {unit}")
    return x


def parse_gap_spec(spec: str) -> Gap:
    """A ``--gap`` option ``METER:START:HOURS`` → :class:`Gap` (START local unless it has an
    offset). Raises ``ValueError`` naming the part that is wrong."""
    meter, _, rest = spec.partition(":")
    start, _, hours = rest.rpartition(":")
    if not start or not hours:
        raise ValueError(f"--gap {spec!r}: expected METER:START:HOURS, e.g. 3:2026-10-20T08:00:12")
    return Gap(_parse_position(spec, "--gap", meter), _parse_time(spec, "--gap", "START", start),
               _parse_positive(spec, "--gap", "HOURS", hours, "hours"))


def parse_replacement_spec(spec: str) -> Replacement:
    """A ``--replace`` option ``METER:AT`` → :class:`Replacement` (AT local unless it has an offset)."""
    meter, _, at = spec.partition(":")
    if not at:
        raise ValueError(f"--replace {spec!r}: expected METER:AT, e.g. 5:2026-10-20T10:30")
    return Replacement(_parse_position(spec, "--replace", meter), _parse_time(spec, "--replace", "AT", at))
