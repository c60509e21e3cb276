"""Town-hall heating analytics: every room of every building on one regular time grid, in one
vectorized pass (numpy over rooms × slots; no per-room Python loop).

Input (:func:`analyse_heating`):

- ``frame``: the long frame of :func:`vigie.store.heating.read_heating` — columns ``time``
  (datetime64, UTC), ``device``, ``room``, ``building``, ``kind`` (categoricals or str) and the
  float field columns of :class:`vigie.records.HeatingReading` (NaN when not reported; booleans
  1.0/0.0). It should start ``max_age_h`` (or the longest device staleness limit) before ``start``
  so that the state at ``start`` is known;
- ``layout``: anything with the two frames of ``vigie.heating_registry.HeatingLayout``
  (:class:`HeatingLayoutLike`): ``rooms`` (room_id, building_id, comfort_c, setback_c,
  radiator_w, …) and ``devices`` (device_id, kind, room_id, building_id, expected_interval_s,
  optionally radiator_w);
- ``occupancy``: bool array rooms × slots (rows in ``layout.rooms`` order, one column per slot,
  more columns allowed: the pre-heat lead looks ahead into them), e.g.
  ``vigie.heating_registry.occupancy_schedule``; or ``None`` to use the observed ``occupied``
  field of the rooms' devices (unknown counts as occupied, so it never raises a finding);
- ``outdoor``: a configured outdoor temperature series (°C, tz-aware DatetimeIndex; see
  :func:`load_outdoor_csv` and the ``heating_outdoor_csv`` setting) for the slots where a
  building's own ``outdoor`` devices say nothing; or ``None``.

**The grid** (:func:`room_grid`). Slot ``k`` starts at ``start + k·step`` (default 15 min; ``start``
on a multiple of the step since the epoch, so local midnights of whole-hour zones are slot
boundaries) and holds the state *at its start*: for each device and field the last reported value
at or before that instant, carried forward while it is at most the device's staleness limit old —
``max(max_age_h, stale_factor × expected_interval_s)`` — and unknown (NaN) after. TRVs report on
change, so carrying the last value is what they mean; the limit stops a dead device from
"reporting" for ever. The sampling lags a change by less than one step. Devices are combined per
room, slot by slot, over their known values:

- temperature: the mean of the room sensors (kind ``room_sensor``) when any is known, else the mean
  of the TRVs. A TRV measures beside its radiator and reads high while heating; a room sensor
  measures the room the comfort policy is about, so it wins whenever it has a value;
- setpoint: the highest TRV setpoint (a policy breach by any valve counts); valve: the highest
  TRV position (``valve_max``, for "is it heating" and "cannot reach") and the mean weighted by
  the devices' ``radiator_w`` when every TRV of the room has one, else the plain mean
  (``valve_mean``, for energy);
- window open, heating flag, occupied: the highest (any device saying so);
- heat meters: power and energy summed over the room's meters, unknown when any is unknown.

Outdoor temperature: the mean of a building's ``outdoor`` devices, else the configured series
(carried forward under ``max_age_h`` the same way).

**Energy** per slot, one method per room for the whole pass: ``meter`` (the room has a heat meter
reporting ``energy_kwh``: sum of the registers' increases over the slot; a drop — register reset or
meter replaced — or an increase beyond ``max_heat_w`` is unknown), else ``power`` (``power_w`` ×
step), else ``valve`` (``valve_mean``/100 × the room's ``radiator_w`` × step: an estimate — a
valve's heat output is not linear in its position and depends on the supply temperature, so read
it as an upper bound), else ``none``.
Daily energy (:class:`RoomDay`) sums the known slots of each local day (23 or 25 hours on DST days)
scaled to the whole day by its coverage; below ``min_coverage`` it is NaN. A building's day
(:class:`BuildingDay`) is the sum of its rooms with an energy method, known only when all of them
are.

**Heating degree-days**: the French DJU convention (degrés-jours unifiés, base 18 °C, "méthode
météo" of Météo-France, also the one of Cegibat/GRDF's DJU calculator and of the SDES series):
``DJU = max(0, 18 − (Tn + Tx) / 2)`` with ``Tn``/``Tx`` the day's minimum and maximum outdoor
temperature. Here the day is the local calendar day and Tn/Tx come from the grid's known outdoor
slots (≥ ``min_coverage`` of the day, else NaN). Météo-France takes Tn over 18 h UTC (D−1) → 18 h
UTC (D) and Tx over 06 h UTC (D) → 06 h UTC (D+1); the difference is small against a daily
energy figure. kWh/DJU is ``None`` below ``min_hdd``.

**Findings** (:class:`HeatingFinding`, one per room and run of flagged slots; runs separated by at
most ``merge_gap_min`` of unflagged slots are merged; a run is kept when its flagged slots add up
to the rule's minimum duration). "Heating" in a slot: ``valve_max ≥ valve_open_pct``, or the
heating flag (``running_state: heat``), or heat-meter power (or register increase) of at least
``heating_power_w``. A slot is *in occupancy* when the room is occupied in it or within the next
``preheat_min`` (the pre-heat lead); the comfort policy applies there and the set-back policy
everywhere else (French Code de l'énergie art. R241-26: 19 °C on average in occupied offices and
buildings open to the public; R241-27: 16 °C when empty for 24 to 48 h, 8 °C beyond 48 h — the
8 °C step is not applied here: rooms have one set-back temperature).

- ``window_open_heating``: a window open (any device's ``window_open``) and heating;
- ``unoccupied_heating``: outside occupancy, heating, and the setpoint above ``setback_c +
  tolerance_c`` (rooms whose TRVs report no setpoint: the temperature above it — heating to keep
  the set-back temperature is what an empty room needs, not waste);
- ``setpoint_above_comfort``: in occupancy and the setpoint above ``comfort_c + tolerance_c``
  (a policy breach whether or not the radiator runs at that moment);
- ``cannot_reach_setpoint`` (maintenance): ``valve_max ≥ cannot_reach_valve_pct`` and the
  temperature at least ``cannot_reach_gap_c`` below the setpoint, no window open, for at least
  ``cannot_reach_min_h`` (longer than a pre-heat from set-back to comfort takes);
- ``energy_trend``: per room and per building (room ``""``): the kWh/DJU of the last 7 local days
  of the window above ``trend_factor`` × the mean of the previous 7-day weeks (at least
  ``trend_min_weeks`` of them). A week counts with ≥ ``min_coverage`` of its days known and at
  least ``trend_min_hdd`` DJU; the current week needs ``trend_min_kwh``. Pass ≥ 3 weeks for it.

Evidence (JSON-able floats, units in the key names; a value unknown over the whole run is left
out): ``duration_h`` (start to end), ``flagged_h``, ``valve_pct`` (mean valve_max),
``temperature_c``, ``setpoint_c``, ``outdoor_c``, the policy temperature (``comfort_c`` or
``setback_c``), ``gap_c`` (mean setpoint − temperature) and ``wasted_kwh``: the whole energy
of the flagged slots for an open window; for the two setpoint rules the share of it above the
policy temperature by the steady-state heat-loss model (loss ∝ indoor − outdoor temperature, so
``E × (T − T_policy) / (T − T_out)`` with ``T`` the room temperature, else the setpoint, clipped to
0–1), slots without outdoor temperature not counted.

Cost: one pass per field over the readings, plus a handful of passes over rooms × slots arrays
(5 000 rooms × 7 days: see docs/benchmarks.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta, timezone
from enum import StrEnum
from pathlib import Path
from typing import Protocol
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from vigie.analytics.intervals import local_midnight
from vigie.records import HeatingDeviceKind

NS = 1_000_000_000
KINDS = tuple(str(k) for k in HeatingDeviceKind)
K_TRV, K_METER, K_SENSOR, K_OUTDOOR = (KINDS.index(str(k)) for k in (
    HeatingDeviceKind.TRV, HeatingDeviceKind.HEAT_METER, HeatingDeviceKind.ROOM_SENSOR, HeatingDeviceKind.OUTDOOR))
FIELDS = ("temperature_c", "setpoint_c", "valve_pct", "heating", "window_open", "occupied", "power_w",
          "energy_kwh")
FRAME_COLUMNS = ("time", "device", "room", "building", "kind")
METHODS = ("none", "valve", "power", "meter")


class HeatingFindingKind(StrEnum):
    WINDOW_OPEN_HEATING = "window_open_heating"
    UNOCCUPIED_HEATING = "unoccupied_heating"
    SETPOINT_ABOVE_COMFORT = "setpoint_above_comfort"
    CANNOT_REACH_SETPOINT = "cannot_reach_setpoint"
    ENERGY_TREND = "energy_trend"


@dataclass(frozen=True)
class HeatingFinding:
    """One finding: ``room`` ``""`` for a building-level energy trend; ``start``/``end`` UTC
    (end exclusive); ``evidence`` see the module docstring."""

    building: str
    room: str
    kind: HeatingFindingKind
    start: datetime
    end: datetime
    evidence: dict[str, float | str]


@dataclass(frozen=True)
class RoomDay:
    """A room's heating energy of one local day (kWh, NaN when unknown: coverage below
    ``min_coverage`` or no energy method), the building's DJU (°C·day, NaN when unknown) and
    their ratio (None when either is unknown or DJU below ``min_hdd``). ``coverage``: the known
    fraction of the day's slots (0–1); ``method``: ``meter``, ``power``, ``valve`` or ``none``."""

    building: str
    room: str
    day: date
    energy_kwh: float
    hdd: float
    kwh_per_hdd: float | None
    coverage: float = 0.0
    method: str = "none"


@dataclass(frozen=True)
class BuildingDay:
    """A building's heating energy of one local day (kWh: the sum over its ``rooms`` with an energy
    method, NaN unless all of them are known that day), DJU and kWh/DJU as in :class:`RoomDay`."""

    building: str
    day: date
    energy_kwh: float
    hdd: float
    kwh_per_hdd: float | None
    rooms: int


class HeatingLayoutLike(Protocol):
    """What the analytics read of ``vigie.heating_registry.HeatingLayout``."""

    rooms: pd.DataFrame
    devices: pd.DataFrame


@dataclass(frozen=True, slots=True)
class HeatingParams:
    """Thresholds of the heating analytics, units in the names (``_min`` minutes, ``_h`` hours,
    ``_c`` °C, ``_pct`` %, ``_w`` W, ``_kwh`` kWh); settings ``heating_<name>`` of
    :class:`vigie.config.Settings` set them (:meth:`from_settings`).

    - ``step_min`` (15): grid step; divides 60 so local midnights fall on slot boundaries;
    - ``max_age_h`` (3): a carried value older than this is unknown…
    - ``stale_factor`` (3): …unless the device's ``expected_interval_s`` × this is longer;
    - ``comfort_c`` (19) / ``setback_c`` (16): for rooms of the layout without their own (Code de
      l'énergie R241-26 / R241-27); ``tolerance_c`` (0.5): allowed above either;
    - ``preheat_min`` (60): heating this long before occupancy begins counts as occupancy;
    - ``valve_open_pct`` (10) / ``heating_power_w`` (50): a slot is heating from these;
    - ``max_heat_w`` (50 000): a heat-meter register increase above this mean power is a glitch;
    - ``min_duration_min`` (30): flagged time a window / unoccupied / setpoint finding needs;
    - ``merge_gap_min`` (15): runs this close merge into one finding;
    - ``cannot_reach_valve_pct`` (80), ``cannot_reach_gap_c`` (2), ``cannot_reach_min_h`` (3);
    - ``min_coverage`` (0.8): known fraction of a day for its energy or DJU, of a week's days;
    - ``hdd_base_c`` (18): DJU base; ``min_hdd`` (1): kWh/DJU undefined below;
    - ``trend_factor`` (1.3), ``trend_min_weeks`` (2), ``trend_min_hdd`` (10, per week),
      ``trend_min_kwh`` (5, the current week).
    """

    step_min: int = 15
    max_age_h: float = 3.0
    stale_factor: float = 3.0
    comfort_c: float = 19.0
    setback_c: float = 16.0
    tolerance_c: float = 0.5
    preheat_min: float = 60.0
    valve_open_pct: float = 10.0
    heating_power_w: float = 50.0
    max_heat_w: float = 50_000.0
    min_duration_min: float = 30.0
    merge_gap_min: float = 15.0
    cannot_reach_valve_pct: float = 80.0
    cannot_reach_gap_c: float = 2.0
    cannot_reach_min_h: float = 3.0
    min_coverage: float = 0.8
    hdd_base_c: float = 18.0
    min_hdd: float = 1.0
    trend_factor: float = 1.3
    trend_min_weeks: int = 2
    trend_min_hdd: float = 10.0
    trend_min_kwh: float = 5.0

    def __post_init__(self) -> None:
        if int(self.step_min) != self.step_min or self.step_min < 1 or 60 % self.step_min:
            raise ValueError(f"step_min={self.step_min}: expected a whole divisor of 60")
        if not 0 < self.min_coverage <= 1:
            raise ValueError(f"min_coverage={self.min_coverage}: expected a fraction in (0, 1]")
        for name in ("max_age_h", "trend_factor", "cannot_reach_min_h", "max_heat_w"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}={getattr(self, name)}: expected > 0")
        for name in ("stale_factor", "tolerance_c", "preheat_min", "valve_open_pct", "heating_power_w",
                     "min_duration_min", "merge_gap_min", "cannot_reach_gap_c", "min_hdd", "trend_min_hdd",
                     "trend_min_kwh"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name}={getattr(self, name)}: expected ≥ 0")
        if not 0 <= self.cannot_reach_valve_pct <= 100:
            raise ValueError(f"cannot_reach_valve_pct={self.cannot_reach_valve_pct}: expected 0–100")
        if int(self.trend_min_weeks) != self.trend_min_weeks or self.trend_min_weeks < 1:
            raise ValueError(f"trend_min_weeks={self.trend_min_weeks}: expected a whole number ≥ 1")

    @classmethod
    def from_settings(cls, settings) -> "HeatingParams":
        """The thresholds from :class:`vigie.config.Settings` (``heating_<field>``, when set there)."""
        return cls(**{f.name: getattr(settings, "heating_" + f.name) for f in fields(cls)
                      if hasattr(settings, "heating_" + f.name)})

    @property
    def step_ns(self) -> int:
        return int(self.step_min) * 60 * NS

    def slots(self, minutes: float) -> int:
        """Whole slots in ``minutes`` (rounded up: a 20-min minimum on a 15-min grid is 2 slots)."""
        return int(math.ceil(minutes / self.step_min - 1e-9))


# --- the grid ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class RoomGrid:
    """Rooms × slots state (module docstring, "The grid"). Rooms in ``layout.rooms`` order; slot
    ``k`` starts at ``times[k]`` (int64 epoch ns UTC). Float arrays (rooms × slots) are NaN where
    unknown; booleans as 1.0/0.0. ``energy_kwh``: the room's heating energy in the slot by its
    ``method`` (per room, a :data:`METHODS` name); ``heat_w``: heat-meter power (or register
    increase as mean power) where a room has a meter; ``outdoor_c``: per room, its building's."""

    rooms: np.ndarray
    buildings: np.ndarray
    times: np.ndarray
    step_ns: int
    temperature_c: np.ndarray
    setpoint_c: np.ndarray
    valve_max_pct: np.ndarray
    valve_mean_pct: np.ndarray
    heating: np.ndarray
    window_open: np.ndarray
    occupied: np.ndarray
    heat_w: np.ndarray
    energy_kwh: np.ndarray
    outdoor_c: np.ndarray
    method: np.ndarray
    comfort_c: np.ndarray
    setback_c: np.ndarray
    radiator_w: np.ndarray
    skipped_rows: int = 0


def _utc_ns(value: datetime | pd.Timestamp, name: str) -> int:
    ts = pd.Timestamp(value)
    if ts.tzinfo is None:
        raise ValueError(f"{name}={value!r}: expected a timezone-aware datetime")
    return int(ts.tz_convert("UTC").as_unit("ns").value)


def _codes(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes (−1 for missing) and labels of a categorical or text column."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return column.cat.codes.to_numpy().astype(np.int64), np.asarray(column.cat.categories, dtype=object)
    codes, labels = pd.factorize(column.to_numpy(dtype=object))
    return codes.astype(np.int64), np.asarray(labels, dtype=object)


def _lookup(labels: np.ndarray, index: pd.Index) -> np.ndarray:
    """Position in ``index`` of each label, −1 when absent; one more entry (−1) for code −1."""
    return np.append(index.get_indexer(pd.Index(labels.astype(str), dtype=object)), -1)


def _times_ns(column: pd.Series) -> np.ndarray:
    if not isinstance(column.dtype, pd.DatetimeTZDtype):
        raise ValueError(f"frame column 'time' is {column.dtype}: expected timezone-aware datetimes (UTC)")
    return column.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[ns]").view(np.int64)


def sample_last(code: np.ndarray, t: np.ndarray, v: np.ndarray, n: int, t0: int, step: int, periods: int,
                limit: np.ndarray) -> np.ndarray:
    """Last value carried forward onto a grid: ``out[c, k]`` = the value ``v`` of the last row of
    code ``c`` with ``t ≤ t0 + k·step``, NaN when there is none or it is older than ``limit[c]``.

    ``code`` (0…n−1), ``t`` (int64 ns) sorted by code then time; ``v`` without NaN; ``limit``
    int64 ns per code. Each reading goes to the first slot at or after it and the last one of each
    (code, slot) is kept. Events are numbered in (code, slot) order — reading ``i`` is ``2i``, the
    slot where it goes stale (when no later reading comes first) ``2i + 1`` — and a running
    maximum of event numbers along each code's slots carries the latest one forward; a stale event
    reads NaN. One scatter, one running maximum and one gather per cell.
    """
    if not len(code) or not periods:
        return np.full((n, periods), np.nan)
    slot = -((t0 - t) // step)  # ceil((t − t0) / step) in integers
    np.maximum(slot, 0, out=slot)
    keep = slot < periods
    if not keep.all():
        code, t, v, slot = code[keep], t[keep], v[keep], slot[keep]
    key = code * periods + slot
    last = np.flatnonzero(np.r_[key[1:] != key[:-1], True]) if len(key) else np.zeros(0, np.int64)
    if len(last) < len(key):
        code, t, v, slot, key = code[last], t[last], v[last], slot[last], key[last]
    k = len(key)
    expire = (t + limit[code] - t0) // step          # the last slot each reading may fill
    valid = expire >= slot
    stale = expire + 1
    superseded = np.r_[(code[1:] == code[:-1]) & (slot[1:] <= stale[:-1]), False]
    ends = np.flatnonzero(valid & (stale < periods) & ~superseded)
    values = np.full(2 * k + 1, np.nan)              # the last one answers event −1 (no reading yet)
    values[0:2 * k:2] = np.where(valid, v, np.nan)
    event = np.full(n * periods, -1, dtype=np.int64)   # int32 would save memory but numpy widens it to gather
    event[key] = np.arange(0, 2 * k, 2)
    event[code[ends] * periods + stale[ends]] = 2 * ends + 1
    event = event.reshape(n, periods)
    np.maximum.accumulate(event, axis=1, out=event)
    return values[event]


def _combine(values: np.ndarray, owner: np.ndarray, n: int, how: str, weights: np.ndarray | None = None) -> np.ndarray:
    """Rows of ``values`` (series × slots) combined per owner (room or building, 0…n−1) over their
    known values: ``mean`` (weighted when ``weights``), ``max``, or ``sum_all`` (NaN unless every
    series of the owner is known). Owners without series: NaN."""
    periods = values.shape[1]
    out = np.full((n, periods), np.nan)
    if not len(owner):
        return out
    # Series come ordered by device; a room's devices are usually neighbours, so the copy that
    # groups them is often not needed.
    order = None if (owner[1:] >= owner[:-1]).all() else np.argsort(owner, kind="stable")
    o = owner if order is None else owner[order]
    starts = np.flatnonzero(np.r_[True, o[1:] != o[:-1]])
    present = o[starts]
    v = values if order is None else values[order]
    if len(starts) == len(o):  # one series per owner: nothing to combine
        out[present] = v
        return out
    if how == "max":
        out[present] = np.fmax.reduceat(v, starts, axis=0)
        return out
    known = ~np.isnan(v)
    if how == "mean" and weights is not None and not (weights == weights[0]).all():
        w = (weights if order is None else weights[order])[:, None] * known
        total = np.add.reduceat(np.where(known, v, 0.0) * w, starts, axis=0)
        wsum = np.add.reduceat(w, starts, axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[present] = np.where(wsum > 0, total / wsum, np.nan)
        return out
    total = np.add.reduceat(np.where(known, v, 0.0), starts, axis=0)
    size = np.diff(np.r_[starts, len(o)])
    count = np.add.reduceat(known.astype(np.uint8 if size.max() < 255 else np.int64), starts, axis=0)
    if how == "mean":
        with np.errstate(invalid="ignore", divide="ignore"):
            out[present] = np.where(count > 0, total / count, np.nan)
    elif how == "sum_all":
        out[present] = np.where(count == size[:, None], total, np.nan)
    else:
        raise ValueError(f"how={how!r}")
    return out


@dataclass(frozen=True, slots=True)
class _Rows:
    """The usable readings: series codes (one per device × owner × kind), sorted by series then time."""

    series: np.ndarray      # per row
    t: np.ndarray           # per row, int64 ns
    rows: np.ndarray | None  # row numbers in the frame (None: all of them, in order)
    row_kind: np.ndarray    # per row: index in KINDS
    owner: np.ndarray       # per series: room (or building for outdoor devices) position
    kind: np.ndarray        # per series: index in KINDS
    device: np.ndarray      # per series: device id
    skipped: int


def _usable_rows(frame: pd.DataFrame, rooms: pd.Index, buildings: pd.Index) -> _Rows:
    missing = [c for c in FRAME_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"frame lacks column(s) {missing}; expected {list(FRAME_COLUMNS)} and field columns "
                         "(vigie.store.heating.read_heating)")
    t = _times_ns(frame["time"])
    dev, dev_ids = _codes(frame["device"])
    room_c, room_labels = _codes(frame["room"])
    bld_c, bld_labels = _codes(frame["building"])
    kind_c, kind_labels = _codes(frame["kind"])
    kind_of = np.array([KINDS.index(str(k)) if str(k) in KINDS else -1 for k in kind_labels] + [-1], dtype=np.int64)
    kind = kind_of[kind_c]
    room = _lookup(room_labels, rooms)[room_c]
    bld = _lookup(bld_labels, buildings)[bld_c]
    outdoor = kind == K_OUTDOOR
    owner = np.where(outdoor, bld, room)
    ok = (kind >= 0) & (owner >= 0) & (dev >= 0)
    skipped = int(len(ok) - np.count_nonzero(ok))
    rows = np.flatnonzero(ok) if skipped else np.arange(len(ok))
    if skipped:
        dev, t, kind, owner = dev[rows], t[rows], kind[rows], owner[rows]
    n_owner = max(len(rooms), len(buildings), 1)
    key = (dev * n_owner + owner) * len(KINDS) + kind
    series, uniq = pd.factorize(key, sort=True)
    series = series.astype(np.int64)
    in_order = len(series) < 2 or bool(
        ((series[1:] > series[:-1]) | ((series[1:] == series[:-1]) & (t[1:] >= t[:-1]))).all())
    if not in_order:
        order = np.lexsort((t, series))
        series, t, rows = series[order], t[order], rows[order]
    kinds = (uniq % len(KINDS)).astype(np.int64)
    owners = ((uniq // len(KINDS)) % n_owner).astype(np.int64)
    devices = dev_ids[uniq // len(KINDS) // n_owner]
    identity = not skipped and in_order
    return _Rows(series, t, None if identity else rows, kinds[series].astype(np.int8), owners, kinds, devices,
                 skipped)


def _field(frame: pd.DataFrame, r: _Rows, name: str, kinds: tuple[int, ...], limit: np.ndarray, t0: int,
           step: int, periods: int) -> tuple[np.ndarray, np.ndarray]:
    """Series × slots of one field (only series of ``kinds`` that reported it) and those series."""
    if name not in frame.columns:
        return np.zeros((0, periods)), np.zeros(0, dtype=np.int64)
    v = frame[name].to_numpy(dtype=np.float64)
    if r.rows is not None:
        v = v[r.rows]
    wanted = np.zeros(len(KINDS), dtype=bool)
    wanted[list(kinds)] = True
    use = ~np.isnan(v)
    use &= wanted[r.row_kind]
    code, t, v = r.series[use], r.t[use], v[use]
    if not len(code):
        return np.zeros((0, periods)), np.zeros(0, dtype=np.int64)
    change = np.r_[True, code[1:] != code[:-1]]
    which = code[change]
    compact = np.cumsum(change) - 1
    return sample_last(compact, t, v, len(which), t0, step, periods, limit[which]), which


def _room_column(rooms: pd.DataFrame, name: str, default: float) -> np.ndarray:
    if name not in rooms.columns:
        return np.full(len(rooms), default)
    values = pd.to_numeric(rooms[name], errors="coerce").to_numpy(dtype=np.float64)
    return np.where(np.isnan(values), default, values)


def _device_limits(r: _Rows, devices: pd.DataFrame, params: HeatingParams) -> tuple[np.ndarray, np.ndarray]:
    """Per series: staleness limit (ns) and radiator_w (NaN when the layout gives none)."""
    limit = np.full(len(r.kind), params.max_age_h * 3600.0)
    radiator = np.full(len(r.kind), np.nan)
    if len(devices) and "device_id" in devices.columns:
        index = pd.Index(devices["device_id"].astype(str).to_numpy(dtype=object))
        at = index.get_indexer(pd.Index(r.device.astype(str), dtype=object))
        found = at >= 0
        if "expected_interval_s" in devices.columns:
            expected = pd.to_numeric(devices["expected_interval_s"], errors="coerce").to_numpy(dtype=np.float64)
            longer = np.where(found, expected[np.maximum(at, 0)] * params.stale_factor, np.nan)
            limit = np.fmax(limit, longer)
        if "radiator_w" in devices.columns:
            w = pd.to_numeric(devices["radiator_w"], errors="coerce").to_numpy(dtype=np.float64)
            radiator = np.where(found, w[np.maximum(at, 0)], np.nan)
            radiator[~(radiator > 0)] = np.nan
    return (limit * NS).astype(np.int64), radiator


def _outdoor_series(outdoor: pd.Series, t0: int, step: int, periods: int, params: HeatingParams) -> np.ndarray:
    if not isinstance(outdoor.index, pd.DatetimeIndex) or outdoor.index.tz is None:
        raise ValueError("outdoor: expected a Series of °C with a timezone-aware DatetimeIndex")
    s = pd.to_numeric(outdoor, errors="coerce").dropna().sort_index()
    t = s.index.tz_convert("UTC").tz_localize(None).to_numpy("datetime64[ns]").view(np.int64)
    return sample_last(np.zeros(len(t), np.int64), t, s.to_numpy(np.float64), 1, t0, step, periods,
                       np.array([int(params.max_age_h * 3600 * NS)]))[0]


def room_grid(frame: pd.DataFrame, layout: HeatingLayoutLike, *, start: datetime, end: datetime,
              params: HeatingParams | None = None, outdoor: pd.Series | None = None) -> RoomGrid:
    """The rooms × slots :class:`RoomGrid` of ``[start, end)`` (module docstring, "The grid").

    Rows whose kind is unknown, whose room (building, for outdoor devices) is not in ``layout``
    or whose device is missing are left out and counted in ``skipped_rows``. Raises ``ValueError``
    for a missing column, naive times, ``start`` off the step or ``end`` not after ``start``.
    """
    params = params or HeatingParams()
    step = params.step_ns
    t0, t1 = _utc_ns(start, "start"), _utc_ns(end, "end")
    if t0 % step:
        raise ValueError(f"start={start}: expected a multiple of {params.step_min} min since the epoch")
    if t1 <= t0:
        raise ValueError(f"end={end} not after start={start}")
    periods = -((t0 - t1) // step)
    rooms_df = layout.rooms
    for col in ("room_id", "building_id"):
        if col not in rooms_df.columns:
            raise ValueError(f"layout.rooms lacks column {col!r}")
    room_ids = rooms_df["room_id"].astype(str).to_numpy(dtype=object)
    room_bld = rooms_df["building_id"].astype(str).to_numpy(dtype=object)
    rooms = pd.Index(room_ids)
    if rooms.has_duplicates:
        raise ValueError("layout.rooms: room_id not unique")
    buildings = pd.Index(pd.unique(room_bld))
    b_of_room = buildings.get_indexer(room_bld)
    R, B = len(rooms), len(buildings)
    r = _usable_rows(frame, rooms, buildings)
    limit, radiator = _device_limits(r, layout.devices, params)

    def field_of(name, kinds, periods=periods):
        return _field(frame, r, name, kinds, limit, t0, step, periods)

    nan = np.full((R, periods), np.nan)
    # Temperature: room sensors first, TRVs where no room sensor is known; outdoor per building.
    temp, s = field_of("temperature_c", (K_TRV, K_SENSOR, K_OUTDOOR))
    k = r.kind[s]
    room_temp = _combine(temp[k == K_SENSOR], r.owner[s][k == K_SENSOR], R, "mean")
    trv_temp = _combine(temp[k == K_TRV], r.owner[s][k == K_TRV], R, "mean")
    room_temp = np.where(np.isnan(room_temp), trv_temp, room_temp)
    out_b = _combine(temp[k == K_OUTDOOR], r.owner[s][k == K_OUTDOOR], B, "mean")
    del temp, trv_temp
    if outdoor is not None:
        fallback = _outdoor_series(outdoor, t0, step, periods, params)
        out_b = np.where(np.isnan(out_b), fallback[None, :], out_b)
    outdoor_c = out_b[b_of_room] if B else nan.copy()

    sp, s = field_of("setpoint_c", (K_TRV,))
    setpoint = _combine(sp, r.owner[s], R, "max")
    valve, s = field_of("valve_pct", (K_TRV,))
    valve_owner = r.owner[s]
    valve_max = _combine(valve, valve_owner, R, "max")
    # Weighted by radiator power only where every TRV of the room has one.
    w = radiator[s]
    all_w = np.ones(R, dtype=bool)
    if len(s):
        np.logical_and.at(all_w, valve_owner, ~np.isnan(w))
    weights = np.where(all_w[valve_owner], w, 1.0)
    valve_mean = _combine(valve, valve_owner, R, "mean", weights)
    del valve, sp
    flag, s = field_of("heating", (K_TRV,))
    heating = _combine(flag, r.owner[s], R, "max")
    win, s = field_of("window_open", (K_TRV, K_SENSOR))
    window = _combine(win, r.owner[s], R, "max")
    occ, s = field_of("occupied", (K_TRV, K_SENSOR))
    occupied = _combine(occ, r.owner[s], R, "max")
    del flag, win, occ

    step_h = step / NS / 3600.0
    power, s_power = field_of("power_w", (K_METER,))
    power = _combine(power, r.owner[s_power], R, "sum_all")
    reg, s_reg = field_of("energy_kwh", (K_METER,), periods + 1)
    delta = reg[:, 1:] - reg[:, :-1]
    # A register that drops (reset, meter replaced) or jumps beyond any radiator's power (a glitch
    # and its way back): that slot is unknown.
    delta[(delta < 0) | (delta > params.max_heat_w / 1000.0 * step_h)] = np.nan
    meter_kwh = _combine(delta, r.owner[s_reg], R, "sum_all")
    del reg, delta

    radiator_w = _room_column(rooms_df, "radiator_w", 0.0)
    method = np.zeros(R, dtype=np.int64)
    has_valve = np.zeros(R, dtype=bool)
    has_valve[valve_owner] = True
    method[has_valve & (radiator_w > 0)] = METHODS.index("valve")
    method[r.owner[s_power]] = METHODS.index("power")
    method[r.owner[s_reg]] = METHODS.index("meter")
    energy = nan.copy()
    m = method == METHODS.index("valve")
    energy[m] = valve_mean[m] / 100.0 * radiator_w[m, None] * step_h / 1000.0
    m = method == METHODS.index("power")
    energy[m] = power[m] * step_h / 1000.0
    m = method == METHODS.index("meter")
    energy[m] = meter_kwh[m]
    heat_w = np.where(np.isnan(meter_kwh), power, meter_kwh * 1000.0 / step_h)

    return RoomGrid(rooms=room_ids, buildings=room_bld, times=t0 + step * np.arange(periods, dtype=np.int64),
                    step_ns=step, temperature_c=room_temp, setpoint_c=setpoint, valve_max_pct=valve_max,
                    valve_mean_pct=valve_mean, heating=heating, window_open=window, occupied=occupied,
                    heat_w=heat_w, energy_kwh=energy, outdoor_c=outdoor_c,
                    method=np.array(METHODS, dtype=object)[method],
                    comfort_c=_room_column(rooms_df, "comfort_c", params.comfort_c),
                    setback_c=_room_column(rooms_df, "setback_c", params.setback_c),
                    radiator_w=radiator_w, skipped_rows=r.skipped)


# --- rules ------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Runs:
    """Runs of flagged slots: per run its room, first slot and end slot (exclusive), and for each
    flagged cell (row-major) the run it belongs to."""

    room: np.ndarray
    first: np.ndarray
    end: np.ndarray
    flagged: np.ndarray
    cell_run: np.ndarray
    cell_room: np.ndarray
    cell_slot: np.ndarray


def find_runs(mask: np.ndarray, merge_gap: int, min_flagged: int) -> Runs:
    """Runs of True along each row of ``mask`` (rooms × slots), merged across at most
    ``merge_gap`` False slots, kept when they hold at least ``min_flagged`` True slots."""
    R, P = mask.shape
    padded = np.zeros((R, P + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    d = np.diff(padded, axis=1)
    sr, sc = np.nonzero(d == 1)   # row-major: starts and ends pair up in order
    _, ec = np.nonzero(d == -1)
    if len(sr):
        new = np.r_[True, (sr[1:] != sr[:-1]) | (sc[1:] - ec[:-1] > merge_gap)]
        first = np.flatnonzero(new)
        last = np.r_[first[1:] - 1, len(sr) - 1]
        flagged = np.add.reduceat(ec - sc, first)
        room, start, end = sr[first], sc[first], ec[last]
        keep = flagged >= max(min_flagged, 1)
        room, start, end, flagged = room[keep], start[keep], end[keep], flagged[keep]
    else:
        room = start = end = flagged = np.zeros(0, dtype=np.int64)
    cr, cc = np.nonzero(mask)
    run = np.searchsorted(room * P + start, cr * P + cc, side="right") - 1
    inside = run >= 0
    inside[inside] = (room[run[inside]] == cr[inside]) & (end[run[inside]] > cc[inside])
    return Runs(room, start, end, flagged, run[inside], cr[inside], cc[inside])


def _run_means(runs: Runs, values: np.ndarray) -> np.ndarray:
    """Mean over each run's flagged cells of the known values of ``values`` (rooms × slots)."""
    v = values[runs.cell_room, runs.cell_slot]
    known = ~np.isnan(v)
    n = len(runs.room)
    total = np.bincount(runs.cell_run[known], weights=v[known], minlength=n)
    count = np.bincount(runs.cell_run[known], minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _run_sums(runs: Runs, values: np.ndarray) -> np.ndarray:
    """Sum over each run's flagged cells of the known values of ``values`` (0 when none)."""
    v = values[runs.cell_room, runs.cell_slot]
    known = ~np.isnan(v)
    return np.bincount(runs.cell_run[known], weights=v[known], minlength=len(runs.room))


@dataclass(frozen=True, slots=True)
class RuleMasks:
    """Rooms × slots booleans of the four slot rules, and the wasted kWh per slot of each."""

    window: np.ndarray
    unoccupied: np.ndarray
    comfort: np.ndarray
    cannot_reach: np.ndarray
    in_occupancy: np.ndarray
    heating: np.ndarray
    waste_window: np.ndarray
    waste_unoccupied: np.ndarray
    waste_comfort: np.ndarray


def _lookahead(occ: np.ndarray, periods: int, lead: int) -> np.ndarray:
    """``any(occ[:, k : k + lead + 1])`` for each slot ``k < periods`` (columns beyond ``periods`` used)."""
    cols = occ.shape[1]
    c = np.zeros((occ.shape[0], cols + 1), dtype=np.int64)
    np.cumsum(occ[:, ::-1], axis=1, out=c[:, -2::-1])   # c[:, k] = occupied slots in [k, cols)
    k = np.arange(periods)
    return (c[:, k] - c[:, np.minimum(k + lead + 1, cols)]) > 0


def _excess_share(temp: np.ndarray, setpoint: np.ndarray, policy: np.ndarray, outdoor: np.ndarray) -> np.ndarray:
    """Share of heating energy above ``policy`` °C by the steady-state loss model (NaN without outdoor)."""
    t = np.where(np.isnan(temp), setpoint, temp)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = (t - policy[:, None]) / (t - outdoor)
    share = np.where(t - outdoor <= 0, 1.0, share)  # heating while warmer outside: all of it
    share = np.clip(share, 0.0, 1.0)
    share[np.isnan(t) | np.isnan(outdoor)] = np.nan
    return share


def rule_masks(grid: RoomGrid, occupancy: np.ndarray | None, params: HeatingParams) -> RuleMasks:
    """The slot rules of the module docstring on ``grid``; ``occupancy`` as for :func:`analyse_heating`."""
    R, P = grid.energy_kwh.shape
    if occupancy is None:
        occ = ~(grid.occupied < 0.5)   # unknown (NaN) counts as occupied
    else:
        occ = np.asarray(occupancy)
        if occ.ndim != 2 or occ.shape[0] != R or occ.shape[1] < P:
            raise ValueError(f"occupancy has shape {occ.shape}: expected ({R}, ≥{P}) — rooms × slots")
        occ = occ.astype(bool, copy=False)
    in_occ = _lookahead(occ, P, params.slots(params.preheat_min))
    heating = ((grid.valve_max_pct >= params.valve_open_pct) | (grid.heating >= 0.5)
               | (grid.heat_w >= params.heating_power_w))
    window_open = grid.window_open >= 0.5
    tol = params.tolerance_c
    setback, comfort = grid.setback_c[:, None], grid.comfort_c[:, None]
    sp, temp = grid.setpoint_c, grid.temperature_c
    no_sp = np.isnan(sp)
    above_setback = (sp > setback + tol) | (no_sp & (temp > setback + tol))
    unoccupied = ~in_occ & heating & above_setback
    above_comfort = in_occ & (sp > comfort + tol)
    cannot = ((grid.valve_max_pct >= params.cannot_reach_valve_pct) & (sp - temp >= params.cannot_reach_gap_c)
              & ~window_open)
    energy = grid.energy_kwh
    return RuleMasks(
        window=window_open & heating, unoccupied=unoccupied, comfort=above_comfort, cannot_reach=cannot,
        in_occupancy=in_occ, heating=heating, waste_window=energy,
        waste_unoccupied=energy * _excess_share(temp, sp, grid.setback_c, grid.outdoor_c),
        waste_comfort=energy * _excess_share(temp, sp, grid.comfort_c, grid.outdoor_c))


def _utc(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / NS, tz=timezone.utc)


def _evidence(**values: float) -> dict[str, float]:
    """Rounded figures, NaN left out (JSON has no NaN)."""
    out = {}
    for key, v in values.items():
        if v is not None and not np.isnan(v):
            out[key] = round(float(v), 3 if key.endswith("_kwh") or key.endswith("_h") else 2)
    return out


def slot_findings(grid: RoomGrid, masks: RuleMasks, params: HeatingParams) -> list[HeatingFinding]:
    """Findings of the four slot rules (runs merged, minimum durations applied)."""
    step_h = grid.step_ns / NS / 3600.0
    gap = int(params.merge_gap_min // params.step_min)
    min_slots = params.slots(params.min_duration_min)
    rules = ((HeatingFindingKind.WINDOW_OPEN_HEATING, masks.window, min_slots, masks.waste_window, None),
             (HeatingFindingKind.UNOCCUPIED_HEATING, masks.unoccupied, min_slots, masks.waste_unoccupied,
              ("setback_c", grid.setback_c)),
             (HeatingFindingKind.SETPOINT_ABOVE_COMFORT, masks.comfort, min_slots, masks.waste_comfort,
              ("comfort_c", grid.comfort_c)),
             (HeatingFindingKind.CANNOT_REACH_SETPOINT, masks.cannot_reach,
              params.slots(params.cannot_reach_min_h * 60), None, None))
    out: list[HeatingFinding] = []
    for kind, mask, min_flagged, waste, policy in rules:
        runs = find_runs(mask, gap, min_flagged)
        if not len(runs.room):
            continue
        valve = _run_means(runs, grid.valve_max_pct)
        temp = _run_means(runs, grid.temperature_c)
        sp = _run_means(runs, grid.setpoint_c)
        out_c = _run_means(runs, grid.outdoor_c)
        gap_c = (_run_means(runs, grid.setpoint_c - grid.temperature_c)
                 if kind == HeatingFindingKind.CANNOT_REACH_SETPOINT else None)
        wasted = _run_sums(runs, waste) if waste is not None else None
        for i in range(len(runs.room)):
            room = runs.room[i]
            extra = {}
            if policy is not None:
                extra[policy[0]] = policy[1][room]
            if gap_c is not None:
                extra["gap_c"] = gap_c[i]
            if wasted is not None:
                extra["wasted_kwh"] = wasted[i]
            out.append(HeatingFinding(
                str(grid.buildings[room]), str(grid.rooms[room]), kind,
                _utc(int(grid.times[0] + runs.first[i] * grid.step_ns)),
                _utc(int(grid.times[0] + runs.end[i] * grid.step_ns)),
                _evidence(duration_h=(runs.end[i] - runs.first[i]) * step_h, flagged_h=runs.flagged[i] * step_h,
                          valve_pct=valve[i], temperature_c=temp[i], setpoint_c=sp[i], outdoor_c=out_c[i], **extra)))
    return out


# --- days, degree-days, trend -----------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Days:
    """Per local day of the grid: ``days`` (dates), rooms × days ``energy_kwh`` and ``coverage``,
    buildings × days ``hdd``, buildings × days ``building_kwh``, ``buildings`` (ids) and the
    building position of each room."""

    days: list[date]
    energy_kwh: np.ndarray
    coverage: np.ndarray
    hdd: np.ndarray
    buildings: np.ndarray
    room_building: np.ndarray
    building_kwh: np.ndarray
    building_rooms: np.ndarray


def daily(grid: RoomGrid, tz: ZoneInfo, params: HeatingParams) -> Days:
    """Daily energy per room and building and DJU per building (module docstring, "Energy")."""
    stamps = pd.to_datetime(grid.times, unit="ns", utc=True).tz_convert(tz)
    local = stamps.tz_localize(None).normalize()
    starts = np.flatnonzero(np.r_[True, local[1:] != local[:-1]])
    days = [d.date() for d in local[starts]]
    # Day lengths from the UTC instants of local midnights (23 h / 25 h on DST days): subtracting
    # two aware datetimes of one zone would give the wall-clock 24 h.
    full = np.array([(local_midnight(d + timedelta(days=1), tz) - local_midnight(d, tz)) * NS / grid.step_ns
                     for d in days])
    e = grid.energy_kwh
    known = ~np.isnan(e)
    total = np.add.reduceat(np.where(known, e, 0.0), starts, axis=1)
    count = np.add.reduceat(known.astype(np.int64), starts, axis=1)
    coverage = count / full
    with np.errstate(invalid="ignore", divide="ignore"):
        energy = np.where(coverage >= params.min_coverage, total / coverage, np.nan)

    buildings, room_b = np.unique(grid.buildings.astype(str), return_inverse=True)
    B = len(buildings)
    first_room = np.full(B, -1)
    first_room[room_b[::-1]] = np.arange(len(room_b))[::-1]
    out = grid.outdoor_c[first_room] if B else np.zeros((0, e.shape[1]))   # a building's rooms share it
    o_known = ~np.isnan(out)
    o_cov = np.add.reduceat(o_known.astype(np.int64), starts, axis=1) / full if B else np.zeros((0, len(days)))
    with np.errstate(invalid="ignore"):
        tn = np.fmin.reduceat(out, starts, axis=1) if B else o_cov
        tx = np.fmax.reduceat(out, starts, axis=1) if B else o_cov
        hdd = np.where(o_cov >= params.min_coverage, np.maximum(0.0, params.hdd_base_c - (tn + tx) / 2.0), np.nan)

    counted = grid.method != "none"
    b_total = np.zeros((B, len(days)))
    b_missing = np.zeros((B, len(days)), dtype=np.int64)
    np.add.at(b_total, room_b[counted], np.nan_to_num(energy[counted]))
    np.add.at(b_missing, room_b[counted], np.isnan(energy[counted]).astype(np.int64))
    b_rooms = np.bincount(room_b[counted], minlength=B)
    b_energy = np.where((b_missing == 0) & (b_rooms[:, None] > 0), b_total, np.nan)
    return Days(days, energy, coverage, hdd, buildings, room_b, b_energy, b_rooms)


def _ratio(energy: np.ndarray, hdd: np.ndarray, min_hdd: float) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(hdd >= min_hdd, energy / hdd, np.nan)


def energy_trend(energy: np.ndarray, hdd: np.ndarray, params: HeatingParams):
    """Per row (room or building) of daily ``energy``/``hdd`` (rows × days): ``(flag, current,
    reference, weeks, week_kwh, week_hdd)`` of the last 7 days against the previous 7-day weeks."""
    X, D = energy.shape
    W = D // 7
    nan = np.full(X, np.nan)
    if W < 2:
        return np.zeros(X, dtype=bool), nan, nan, np.zeros(X, dtype=np.int64), nan, nan
    e = energy[:, D - 7 * W:].reshape(X, W, 7)
    h = hdd[:, D - 7 * W:].reshape(X, W, 7)
    usable = ~np.isnan(e) & ~np.isnan(h)
    days_ok = usable.sum(axis=2)
    e_sum = np.where(usable, e, 0.0).sum(axis=2)
    h_sum = np.where(usable, h, 0.0).sum(axis=2)
    ok = (days_ok >= math.ceil(params.min_coverage * 7 - 1e-9)) & (h_sum >= max(params.trend_min_hdd, 1e-9))
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(ok, e_sum / h_sum, np.nan)
        weeks = ok[:, :-1].sum(axis=1)
        reference = np.where(weeks > 0, np.where(ok[:, :-1], rate[:, :-1], 0.0).sum(axis=1) / weeks, np.nan)
    current = rate[:, -1]
    week_kwh = np.where(ok[:, -1], e_sum[:, -1] * 7 / np.maximum(days_ok[:, -1], 1), np.nan)
    flag = (ok[:, -1] & (weeks >= params.trend_min_weeks) & (current > params.trend_factor * reference)
            & (week_kwh >= params.trend_min_kwh))
    return flag, current, reference, weeks, week_kwh, np.where(ok[:, -1], h_sum[:, -1], np.nan)


def trend_findings(grid: RoomGrid, d: Days, tz: ZoneInfo, params: HeatingParams) -> list[HeatingFinding]:
    if len(d.days) < 14:
        return []
    first = d.days[-7]
    start = _utc(local_midnight(first, tz) * NS)
    end = _utc(min(local_midnight(d.days[-1] + timedelta(days=1), tz) * NS, int(grid.times[-1] + grid.step_ns)))
    out = []
    room_hdd = d.hdd[d.room_building]
    for energy, hdd, building_of, room_of in (
            (d.energy_kwh, room_hdd, lambda i: str(grid.buildings[i]), lambda i: str(grid.rooms[i])),
            (d.building_kwh, d.hdd, lambda i: str(d.buildings[i]), lambda i: "")):
        flag, cur, ref, weeks, kwh, hdd_w = energy_trend(energy, hdd, params)
        for i in np.flatnonzero(flag):
            out.append(HeatingFinding(building_of(i), room_of(i), HeatingFindingKind.ENERGY_TREND, start, end,
                                      _evidence(kwh_per_hdd=cur[i], reference_kwh_per_hdd=ref[i],
                                                ratio=cur[i] / ref[i], weeks=float(weeks[i]), week_kwh=kwh[i],
                                                week_hdd=hdd_w[i])))
    return out


# --- the pass ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class HeatingAnalysis:
    """What :func:`analyse_heating` found: findings sorted by (building, room, kind, start), room
    days sorted by (building, room, day), building days by (building, day), the grid they were
    computed on, and the frame rows left out (unknown room, building or kind)."""

    findings: list[HeatingFinding]
    room_days: list[RoomDay]
    building_days: list[BuildingDay]
    grid: RoomGrid = field(repr=False)
    skipped_rows: int = 0


def _none_if_nan(x: float) -> float | None:
    return None if np.isnan(x) else float(x)


def analyse_heating(frame: pd.DataFrame, layout: HeatingLayoutLike, occupancy: np.ndarray | None,
                    outdoor: pd.Series | None, *, start: datetime, end: datetime, tz: ZoneInfo | str,
                    params: HeatingParams | None = None) -> HeatingAnalysis:
    """Run the heating analytics over ``[start, end)`` for every room of ``layout`` at once.

    Inputs and rules: module docstring. ``occupancy``: rooms × ≥ slots booleans (slots of
    ``params.step_min`` from ``start``) or ``None`` for the observed ``occupied`` field. Raises
    ``ValueError`` for inputs of the wrong shape (naming what was expected); rows of the frame it
    cannot place are counted in ``skipped_rows``, not raised.
    """
    params = params or HeatingParams()
    tz = ZoneInfo(tz) if isinstance(tz, str) else tz
    grid = room_grid(frame, layout, start=start, end=end, params=params, outdoor=outdoor)
    masks = rule_masks(grid, occupancy, params)
    d = daily(grid, tz, params)
    findings = slot_findings(grid, masks, params) + trend_findings(grid, d, tz, params)
    findings.sort(key=lambda f: (f.building, f.room, list(HeatingFindingKind).index(f.kind), f.start))

    room_hdd = d.hdd[d.room_building]
    ratio = _ratio(d.energy_kwh, room_hdd, params.min_hdd)
    order = sorted(range(len(grid.rooms)), key=lambda i: (str(grid.buildings[i]), str(grid.rooms[i])))
    room_days = [RoomDay(str(grid.buildings[i]), str(grid.rooms[i]), day, float(d.energy_kwh[i, j]),
                         float(room_hdd[i, j]), _none_if_nan(ratio[i, j]), float(d.coverage[i, j]),
                         str(grid.method[i]))
                 for i in order for j, day in enumerate(d.days)]
    b_ratio = _ratio(d.building_kwh, d.hdd, params.min_hdd)
    building_days = [BuildingDay(str(b), day, float(d.building_kwh[i, j]), float(d.hdd[i, j]),
                                 _none_if_nan(b_ratio[i, j]), int(d.building_rooms[i]))
                     for i, b in enumerate(d.buildings) for j, day in enumerate(d.days)]
    return HeatingAnalysis(findings, room_days, building_days, grid, grid.skipped_rows)


def load_outdoor_csv(path: str | Path) -> pd.Series:
    """A configured outdoor temperature series (setting ``heating_outdoor_csv``): a CSV with a
    header and columns ``time`` (ISO 8601 with an offset or ``Z``) and ``temperature_c`` (°C),
    e.g. hourly observations of the nearest weather station. Returns a Series of °C on a UTC
    DatetimeIndex, sorted. Raises ``ValueError`` naming the file (and the first bad line)."""
    path = Path(path)
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot read the outdoor temperature CSV: {exc}") from None
    missing = {"time", "temperature_c"} - set(raw.columns)
    if missing:
        raise ValueError(f"{path}: missing column(s) {sorted(missing)}; expected time,temperature_c")
    text = raw["time"].str.strip()
    # A time without its offset would be read as UTC silently: refuse it instead.
    with_offset = text.str.contains(r"(?:Z|[+-]\d{2}:?\d{2})$", regex=True).to_numpy(dtype=bool)
    times = pd.to_datetime(text, errors="coerce", format="ISO8601", utc=True)
    values = pd.to_numeric(raw["temperature_c"], errors="coerce")
    bad = np.flatnonzero(~with_offset | times.isna().to_numpy() | ~values.between(-60, 60).to_numpy())
    if len(bad):
        i = int(bad[0])
        raise ValueError(f"{path}, line {i + 2}: expected an ISO 8601 time with an offset and a temperature "
                         f"in °C (−60…60), got {raw['time'].iloc[i]!r}, {raw['temperature_c'].iloc[i]!r}")
    index = pd.DatetimeIndex(times).tz_convert("UTC")
    return pd.Series(values.to_numpy(np.float64), index=index, name="temperature_c").sort_index()
