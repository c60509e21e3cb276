"""Learned daily routine of assisted-living homes, for every home at once.

Input contract — the **events frame** (produced by the store and by ``simulators.ordonez``): one
pandas DataFrame of sensor state reports for all homes, one row per report, any row order:

- ``home_id`` (str or category): the home's opaque id;
- ``sensor_id`` (str or category): the sensor's opaque id (unique within its home);
- ``room``: a :class:`vigie.records.Room` value; ``kind``: a :class:`vigie.records.SensorKind` value;
- ``time`` (int64): epoch seconds, UTC;
- ``value`` (float64): see ``SensorKind`` (binary states 1.0/0.0, contact 1 = open, power in W).

**Activity** (what resets inactivity) is a motion report of 1, a contact or presence change, a
power reading rising above ``RoutineParams.power_on_w``, or a ``use`` report of 1. The first report
of a sensor in the frame counts as a change only if it is active (1, or power above threshold).
Water-leak reports are never activity.

**Away**: the person is out when the entrance door (an entrance contact) moved and nothing was
detected in any other room since. A home without an entrance contact is never away. Limitation:
someone who comes in and collapses before reaching a sensor looks away.

**In bed**: a bedroom presence sensor (bed strap or mat) last reported occupied. Together with the
last activity being in the bedroom, ``analytics.homes`` reads the time before the home's wake-up
deadline as sleep (see there).

**Resting**: a seat presence sensor (a chair or seat mat: a presence sensor outside the bedroom)
last reported occupied, and the last activity in that mat's room. A person sitting in an armchair
is not on the floor, and sitting still is part of an ordinary sit (a PIR firing while seated is
incidental), so while resting the inactivity line is a separately learned *resting line* from the
home's sit durations (a sit: a run of "occupied" reports of the home's seat mats): per day and
time-of-day bin the longest time since a sit began (at bin ends and at the sit's end), over days a
high quantile of the days that had a sit in that bin, smoothed, × factor — the general line's
method (Cuddihy et al. 2007) applied to sits. It is never below the general line of the bin (being
seated only ever makes the detector more patient) and never above ``resting_ceiling_s``, so a sit
still longer than the home's usual sits, or extremely long, alerts. A bin with fewer than
``resting_min_days`` days of sits, a home with limited history and a home without a seat mat keep
the general line. Getting up releases the mat (an activity), so a fall after leaving the chair is
judged on the general line. Limitations: a mat stuck "occupied" reads as a sit (its length is
capped only by the ceiling), and a person fallen in the same room beside a stuck
mat is judged on the resting line; with several mats the last report of any of them decides.

**Decline** (a soft daily check-in) compares the mean motion detections per day of the last
``decline_days`` complete days with a *reference* level learned from the window's days that ended
at least ``decline_reference_gap_days`` before them: the routine is relearned daily, so a baseline
taken from all earlier days of the window already holds the first declining days and follows a
slow decline down; with a 14-day gap a decline that began within the last two weeks has not
entered the reference yet. Motion detections (not every activity event) measure how much the
person moves about: bed, chair, door and appliance changes follow fixed routines (bedtime, meals)
that persist when the person moves less (daily motion-sensor counts as the activity measure, as in
Skubic, Guevara & Rantz, "Automated health alerts using in-home sensor data for embedded health
assessment", IEEE J. Transl. Eng. Health Med. 2015;3:2700111, which alerts on changes from each
resident's own baseline). Only motion sensors that sent messages on every recent day count, on
every day, so a dead battery (a ``sensor_silent`` event for staff) is not read as a decline. A
decline is raised when the recent mean is both ``decline_drop`` below the reference mean and
``decline_z`` standard errors below it (reference sd · √(1/n_recent + 1/n_reference)). The gap,
the 3-day span, the 30 % drop and the z test are our own rule, not a published one.

Local time is DST-correct: every time of day is the wall-clock time in ``tz`` of the instant.

Method sources: inactivity by time of day follows Cuddihy et al. 2007 (per-home learned model of
normal inactivity durations by time of day, alert beyond it); the bathroom floor of 15 min at night
is a commercial rule (docs in /work/shared/reference/domain-rules.md); Fleming & Brayne, BMJ 2008
(30 % of fallers alone lay ≥ 1 h) motivates the 1 h inactivity floor and the 12 h ceiling.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from vigie.records import Room, SensorKind

EVENT_COLUMNS = ("home_id", "sensor_id", "room", "kind", "time", "value")
DAY_S = 86_400
ROOMS = list(Room)
KINDS = list(SensorKind)
R_BEDROOM, R_BATHROOM, R_KITCHEN = ROOMS.index(Room.BEDROOM), ROOMS.index(Room.BATHROOM), ROOMS.index(Room.KITCHEN)
R_ENTRANCE = ROOMS.index(Room.ENTRANCE)
K_MOTION, K_CONTACT, K_PRESENCE = (KINDS.index(k) for k in (SensorKind.MOTION, SensorKind.CONTACT,
                                                            SensorKind.PRESENCE))
K_WATER, K_POWER, K_USE = (KINDS.index(k) for k in (SensorKind.WATER_LEAK, SensorKind.POWER, SensorKind.USE))


@dataclass(frozen=True)
class RoutineParams:
    """Learning parameters and the defaults a home with too little history gets.

    Durations in seconds, hours of the day in local decimal hours (22.5 = 22:30).
    """

    bin_minutes: int = 30                 # time-of-day bin (48 a day); must divide 24 h
    min_history_days: float = 7.0         # less → limited_history, defaults used
    power_on_w: float = 20.0              # a plug above this is "in use" (kettle, microwave…)
    night_start_h: float = 22.0           # night window (bathroom floor, night exits), per the
    night_end_h: float = 6.0              # commercial rule "22:00–06:00"
    # Inactivity (Cuddihy et al. 2007): per day and bin, the longest inactivity seen in that bin;
    # over days a high quantile, smoothed (max with ± smooth bins), × factor, clamped.
    inactivity_quantile: float = 0.95
    inactivity_factor: float = 1.5
    inactivity_smooth_bins: int = 1
    inactivity_min_days: int = 5          # fewer valid days in a bin → that bin's default
    inactivity_floor_s: float = 3_600.0
    inactivity_ceiling_s: float = 12 * 3_600.0
    # Resting on a seat mat (module docstring, "Resting"): the same learning on sit durations;
    # floor = the general line of the bin.
    resting_quantile: float = 0.95
    resting_factor: float = 1.5
    resting_min_days: int = 5
    resting_ceiling_s: float = 12 * 3_600.0
    default_inactivity_day_s: float = 3 * 3_600.0    # conservative: alert early by day…
    default_inactivity_rest_s: float = 12 * 3_600.0  # …and only after a full night at rest
    default_rest_start_h: float = 22.0
    default_rest_end_h: float = 10.0
    # Wake-up: first activity in [wake_from, wake_to) not followed within back_to_bed_s by a
    # bedroom activity after which nothing happens outside the bedroom for ≥ sleep_gap_s (a night
    # trip to the toilet).
    wake_from_h: float = 4.0
    wake_to_h: float = 14.0
    back_to_bed_s: float = 1_800.0
    sleep_gap_s: float = 3_600.0
    wake_min_days: int = 5
    wake_spread_k: float = 2.0            # deadline = median + k·spread + margin
    wake_margin_s: float = 3_600.0
    default_wake_lo_h: float = 5.0        # activity after this counts as "up" (no history)
    default_wake_deadline_h: float = 10.5
    # Bathroom stays: entry → first activity elsewhere.
    bathroom_quantile: float = 0.95
    bathroom_factor: float = 1.5
    bathroom_min_stays: int = 5
    bathroom_floor_night_s: float = 15 * 60.0   # commercial rule: > 15 min 22:00–06:00
    bathroom_floor_day_s: float = 30 * 60.0
    bathroom_ceiling_s: float = 90 * 60.0
    default_bathroom_day_s: float = 45 * 60.0
    # Night exits (entrance opened at night, nothing inside within this).
    night_exit_return_s: float = 1_800.0
    # Daily level and decline (module docstring, "Decline").
    away_day_fraction: float = 0.5        # days away longer than this are left out of levels
    decline_days: int = 3                 # the recent days (all needed), compared…
    decline_reference_gap_days: int = 14  # …with the window's days older than this before their end
    decline_min_baseline_days: int = 7    # (at least this many reference days)
    decline_drop: float = 0.3             # decline: recent mean < (1 − drop) × reference mean…
    decline_z: float = 3.0                # …and below it by ≥ z standard errors of the difference
    # Sensors silent: q-quantile of the gaps between a sensor's messages × factor, ≥ floor.
    silent_quantile: float = 0.99
    silent_factor: float = 3.0
    silent_floor_s: float = 6 * 3_600.0
    silent_min_messages: int = 10
    silent_default_s: float = 7 * DAY_S   # a sensor too quiet to learn from

    def __post_init__(self) -> None:
        if self.bin_minutes <= 0 or (24 * 60) % self.bin_minutes:
            raise ValueError(f"bin_minutes must divide 1440, got {self.bin_minutes}")
        for name in ("inactivity_quantile", "resting_quantile", "bathroom_quantile", "silent_quantile"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in (0, 1]")
        if self.inactivity_floor_s > self.inactivity_ceiling_s:
            raise ValueError("inactivity_floor_s must not exceed inactivity_ceiling_s")
        if self.decline_days < 1 or self.decline_reference_gap_days < self.decline_days:
            raise ValueError("decline_days must be ≥ 1 and ≤ decline_reference_gap_days")

    @property
    def bin_s(self) -> int:
        return self.bin_minutes * 60

    @property
    def n_bins(self) -> int:
        return DAY_S // self.bin_s


@dataclass(frozen=True)
class HomeRoutines:
    """What :func:`learn_routines` learned; every frame is indexed by ``home_id`` (row order = ``homes``).

    - ``history_days``: days of data in the window; ``limited_history``: below the minimum, so the
      conservative defaults of ``params`` are used for everything learned;
    - ``activity_by_bin`` (homes × bins): mean activity events per day in each local time-of-day bin
      (columns: bin start, minutes after midnight);
    - ``inactivity_q_s`` (homes × bins): learned quantile of the longest inactivity per bin and day
      (NaN where too few days); ``inactivity_threshold_s``: the alert line used (smoothed, × factor,
      clamped, defaults filled), seconds;
    - ``resting_q_s`` (homes × bins): the same quantile over the longest sit on a seat mat per bin
      and day, smoothed over ± ``inactivity_smooth_bins`` (the usual sit the line is built from; NaN
      where too few days); ``resting_threshold_s``: the line used while resting
      (module docstring, "Resting"; the general line where not learned), seconds;
    - ``wake``: columns ``median_s``, ``spread_s`` (1.4826·MAD) of the wake-up time, seconds after
      local midnight, ``n_days``, ``lo_s`` (activity after it counts as up), ``deadline_s``,
      ``default`` (bool);
    - ``bathroom``: ``n_stays``, ``q_day_s``, ``q_night_s``, ``threshold_day_s``,
      ``threshold_night_s``;
    - ``night_exits``: ``count``, ``per_night`` in the window;
    - ``daily_activity`` (homes × local dates): activity events per day, NaN for incomplete days or
      days mostly away; ``daily_motion`` (same shape): motion detections per day of the motion
      sensors alive on every recent day (the decline measure); ``activity_level``: ``mean``,
      ``sd``, ``n_days`` of ``daily_activity``, and the decline check on ``daily_motion``:
      ``reference_mean``, ``reference_sd``, ``reference_days``, ``recent_mean``,
      ``decline_threshold`` (detections/day), ``decline`` (bool), ``decline_since`` (epoch s UTC,
      the end of the last day counted);
    - ``appliance_use`` (homes × local dates): power rising above threshold + kitchen contact
      openings per day (NaN for incomplete days); ``appliance_level``: ``mean``, ``sd``;
    - ``last_activity``: ``time`` (epoch s, NaN if none), ``room``, ``away``, ``in_bed``, and
      ``seat_room`` (the room of the seat mat last reported occupied, None if none or free) at ``now``;
    - ``sensors``: one row per (home_id, sensor_id): ``room``, ``kind``, ``n_messages``,
      ``last_seen`` (epoch s), ``expected_gap_s``, ``silent_after_s``.
    """

    now: int
    tz: str
    window_days: int
    params: RoutineParams
    homes: pd.Index
    history_days: pd.Series
    limited_history: pd.Series
    activity_by_bin: pd.DataFrame
    inactivity_q_s: pd.DataFrame
    inactivity_threshold_s: pd.DataFrame
    resting_q_s: pd.DataFrame
    resting_threshold_s: pd.DataFrame
    wake: pd.DataFrame
    bathroom: pd.DataFrame
    night_exits: pd.DataFrame
    daily_activity: pd.DataFrame
    daily_motion: pd.DataFrame
    activity_level: pd.DataFrame
    appliance_use: pd.DataFrame
    appliance_level: pd.DataFrame
    last_activity: pd.DataFrame
    sensors: pd.DataFrame = field(repr=False)

    def defaults_for(self, home_ids: pd.Index) -> "HomeRoutines":
        """These routines re-indexed on ``home_ids``; homes not learned get the defaults (limited)."""
        new = home_ids.difference(self.homes)
        if len(new) == 0 and home_ids.equals(self.homes):
            return self
        empty = learn_routines(_empty_events(), self.now, self.tz, self.window_days, self.params,
                               homes=new)
        def cat(a, b):
            return pd.concat([a, b]).reindex(home_ids)
        return HomeRoutines(
            now=self.now, tz=self.tz, window_days=self.window_days, params=self.params, homes=home_ids,
            history_days=cat(self.history_days, empty.history_days),
            limited_history=cat(self.limited_history, empty.limited_history),
            activity_by_bin=cat(self.activity_by_bin, empty.activity_by_bin),
            inactivity_q_s=cat(self.inactivity_q_s, empty.inactivity_q_s),
            inactivity_threshold_s=cat(self.inactivity_threshold_s, empty.inactivity_threshold_s),
            resting_q_s=cat(self.resting_q_s, empty.resting_q_s),
            resting_threshold_s=cat(self.resting_threshold_s, empty.resting_threshold_s),
            wake=cat(self.wake, empty.wake), bathroom=cat(self.bathroom, empty.bathroom),
            night_exits=cat(self.night_exits, empty.night_exits),
            daily_activity=cat(self.daily_activity, empty.daily_activity),
            daily_motion=cat(self.daily_motion, empty.daily_motion),
            activity_level=cat(self.activity_level, empty.activity_level),
            appliance_use=cat(self.appliance_use, empty.appliance_use),
            appliance_level=cat(self.appliance_level, empty.appliance_level),
            last_activity=cat(self.last_activity, empty.last_activity),
            sensors=self.sensors)


# --------------------------------------------------------------------------------------------
# Shared vectorized machinery (also used by analytics.homes)


def local_seconds(t: np.ndarray, tz: str) -> np.ndarray:
    """UTC epoch seconds → local wall-clock seconds in ``tz`` (the wall clock read as if UTC)."""
    t = np.asarray(t, dtype=np.int64)
    if t.size == 0:
        return t.copy()
    idx = pd.DatetimeIndex(t.astype("datetime64[s]")).tz_localize("UTC").tz_convert(tz).tz_localize(None)
    return np.asarray(idx).astype("datetime64[s]").astype(np.int64)


def in_window(sod: np.ndarray, start_h: float, end_h: float) -> np.ndarray:
    """Whether seconds-of-day ``sod`` fall in [start, end), a window that may cross midnight."""
    a, b = start_h * 3600, end_h * 3600
    return (sod >= a) & (sod < b) if a <= b else (sod >= a) | (sod < b)


@dataclass(frozen=True)
class Prepared:
    """The events frame as arrays sorted by (home, time); ``homes[code]`` is a home's id.

    ``activity`` marks activity reports (see module docstring); ``sensor`` is a code into
    ``sensor_table`` (columns home, home_id, sensor_id, room, kind). ``base`` is subtracted from
    times in search keys.
    """

    homes: pd.Index
    home: np.ndarray
    time: np.ndarray
    room: np.ndarray
    kind: np.ndarray
    value: np.ndarray
    sensor: np.ndarray
    activity: np.ndarray
    sensor_table: pd.DataFrame
    base: np.int64
    by_sensor: np.ndarray   # row order sorting by (sensor, time)


def _empty_events() -> pd.DataFrame:
    return pd.DataFrame({"home_id": pd.Series([], dtype=str), "sensor_id": pd.Series([], dtype=str),
                         "room": pd.Series([], dtype=str), "kind": pd.Series([], dtype=str),
                         "time": pd.Series([], dtype=np.int64), "value": pd.Series([], dtype=np.float64)})


def _codes(values: pd.Series, categories, column: str) -> np.ndarray:
    """Codes of ``values`` in ``categories`` (-1 allowed only when ``column`` is None)."""
    cat = values.array if isinstance(values.dtype, pd.CategoricalDtype) else pd.Categorical(values)
    mapping = pd.Index([str(c) for c in categories]).get_indexer(cat.categories.astype(str))
    codes = np.where(cat.codes >= 0, mapping[cat.codes], -1) if mapping.size else np.full(len(cat), -1)
    if column is not None and (codes < 0).any():
        bad = sorted({str(v) for v in values[codes < 0]})[:5]
        raise ValueError(f"events frame: unknown {column} values {bad}; expected {[str(c) for c in categories]}")
    return codes


def prepare(events: pd.DataFrame, params: RoutineParams, homes: pd.Index | None = None) -> Prepared:
    """Validate the events frame and lay it out for the vectorized passes.

    ``homes`` fixes the home codes (rows of other homes are dropped); by default the sorted
    distinct ``home_id`` values. Raises ValueError on missing columns, unknown rooms or kinds,
    or missing times/values (nothing is silently dropped).
    """
    missing = [c for c in EVENT_COLUMNS if c not in events.columns]
    if missing:
        raise ValueError(f"events frame lacks columns {missing}; expected {list(EVENT_COLUMNS)}")
    time = events["time"].to_numpy()
    if not np.issubdtype(time.dtype, np.integer):
        raise ValueError(f"events frame: 'time' must be int64 epoch seconds, got {time.dtype}")
    value = events["value"].to_numpy(dtype=np.float64)
    if np.isnan(value).any():
        raise ValueError("events frame: 'value' holds NaN")
    if events["home_id"].isna().any() or events["sensor_id"].isna().any():
        raise ValueError("events frame: 'home_id' or 'sensor_id' missing on some rows")
    if homes is None:
        homes = pd.Index(sorted({str(h) for h in pd.unique(events["home_id"])}), name="home_id", dtype=object)
    home = _codes(events["home_id"], homes, None).astype(np.int64)
    keep = home >= 0
    room = _codes(events["room"], ROOMS, "room").astype(np.int8)
    kind = _codes(events["kind"], KINDS, "kind").astype(np.int8)
    sensor_cat = (events["sensor_id"].array if isinstance(events["sensor_id"].dtype, pd.CategoricalDtype)
                  else pd.Categorical(events["sensor_id"]))
    sensor_raw = sensor_cat.codes.astype(np.int64)
    sensor_uniques = np.asarray(sensor_cat.categories.astype(str), dtype=object)
    home, time, value, room, kind, sensor_raw = (a[keep] for a in (home, time.astype(np.int64), value,
                                                                    room, kind, sensor_raw))
    sensor, pair_index = pd.factorize(home * np.int64(len(sensor_uniques) + 1) + sensor_raw)
    sensor = sensor.astype(np.int64)
    base = np.int64(time.min() - 1) if time.size else np.int64(0)

    # Activity needs each sensor's previous report: order by (sensor, time).
    order = np.argsort((sensor << 34) | (time - base), kind="stable")
    s_sorted, v_sorted, k_sorted = sensor[order], value[order], kind[order]
    on = np.where(k_sorted == K_POWER, v_sorted > params.power_on_w, v_sorted >= 0.5)
    first = np.ones(order.size, bool)
    first[1:] = s_sorted[1:] != s_sorted[:-1]
    prev_on = np.empty_like(on)
    prev_on[1:] = on[:-1]
    changed = np.where(first, on, on != prev_on)
    act_sorted = np.select(
        [np.isin(k_sorted, (K_MOTION, K_USE)), np.isin(k_sorted, (K_CONTACT, K_PRESENCE)), k_sorted == K_POWER],
        [on, changed, changed & on], default=False)
    activity = np.empty_like(act_sorted)
    activity[order] = act_sorted

    by_time = np.argsort((home << 34) | (time - base), kind="stable")
    rank = np.empty_like(by_time)
    rank[by_time] = np.arange(by_time.size)
    by_sensor = rank[order]
    order = by_time
    table_home = (pair_index // np.int64(len(sensor_uniques) + 1)).astype(np.int64)
    first_row = np.zeros(len(pair_index), np.int64)
    first_row[sensor] = np.arange(sensor.size)  # any row: a sensor's room and kind are fixed
    sensor_table = pd.DataFrame({
        "home": table_home, "home_id": homes[table_home] if len(homes) else [],
        "sensor_id": sensor_uniques[pair_index % np.int64(len(sensor_uniques) + 1)],
        "room": np.array([str(r) for r in ROOMS], dtype=object)[room[first_row]] if sensor.size else [],
        "kind": np.array([str(k) for k in KINDS], dtype=object)[kind[first_row]] if sensor.size else []})
    return Prepared(homes=homes, home=home[order], time=time[order], room=room[order], kind=kind[order],
                    value=value[order], sensor=sensor[order], activity=activity[order],
                    sensor_table=sensor_table, base=base, by_sensor=by_sensor)


class LastIndex:
    """Vectorized "last row at or before t" over rows sorted by (group, time).

    One int64 key per row, ``group << 34 | (time − base)`` (2^34 s ≈ 544 years of range), so a
    single ``searchsorted`` answers every (group, t) query at once.
    """

    def __init__(self, group: np.ndarray, time: np.ndarray, base: np.int64):
        self.group, self.base = group, base
        self.keys = (group << 34) | (time - base)

    def query(self, group: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Index (into the rows given) of the last row of ``group`` with time ≤ ``t``, else -1."""
        rel = np.asarray(t, np.int64) - self.base
        pos = np.searchsorted(self.keys, (group << 34) | np.maximum(rel, 0), side="right") - 1
        ok = (pos >= 0) & (rel >= 0)
        ok[ok] &= self.group[pos[ok]] == group[ok]
        return np.where(ok, pos, -1)


def last_time(idx: np.ndarray, time: np.ndarray) -> np.ndarray:
    """Times at ``idx`` as float seconds, NaN where ``idx`` is -1."""
    out = np.full(idx.shape, np.nan)
    ok = idx >= 0
    out[ok] = time[idx[ok]]
    return out


@dataclass(frozen=True)
class Activity:
    """The activity rows of a :class:`Prepared`, with each row's context, sorted by (home, time).

    ``away_after[i]``: the home is away just after row i; ``bath_entry[i]``: row i is a bathroom
    activity whose previous activity (same home) was elsewhere or absent. ``bed_index`` /
    ``bed_occupied``: every report (heartbeats too) of a bedroom presence sensor and whether it
    says occupied; ``seat_*``: the same for the seat mats (presence sensors outside the bedroom),
    with each report's home, time, room code and, when occupied, ``seat_since``: when the run of
    "occupied" reports it belongs to began (the sit's start; the home's mats together).
    """

    home: np.ndarray
    time: np.ndarray
    room: np.ndarray
    is_door: np.ndarray
    door_open: np.ndarray
    inside: np.ndarray
    away_after: np.ndarray
    bath_entry: np.ndarray
    index: LastIndex
    door_index: LastIndex
    door_open_index: LastIndex
    door_open_rows: np.ndarray
    inside_index: LastIndex
    bath_entry_index: LastIndex
    bath_entry_rows: np.ndarray
    door_rows: np.ndarray
    inside_rows: np.ndarray
    bed_index: LastIndex
    bed_occupied: np.ndarray
    seat_index: LastIndex
    seat_home: np.ndarray
    seat_time: np.ndarray
    seat_occupied: np.ndarray
    seat_room: np.ndarray
    seat_since: np.ndarray


def activity_of(p: Prepared) -> Activity:
    a = p.activity
    home, time, room, kind, value = p.home[a], p.time[a], p.room[a], p.kind[a], p.value[a]
    is_door = (room == R_ENTRANCE) & (kind == K_CONTACT)
    inside = room != R_ENTRANCE
    keys = (home << 34) | (time - p.base)
    # Running "last door key" and "last inside key" per home (keys of another home compare lower).
    floor_key = home << 34
    last_door = np.maximum.accumulate(np.where(is_door, keys, floor_key)) if keys.size else keys
    last_inside = np.maximum.accumulate(np.where(inside, keys, floor_key)) if keys.size else keys
    has_door = (last_door >> 34 == home) & (last_door > floor_key)
    away_after = has_door & (last_door >= last_inside)
    bath = room == R_BATHROOM
    prev_bath = np.zeros_like(bath)
    prev_bath[1:] = bath[:-1] & (home[1:] == home[:-1])
    bath_entry = bath & ~prev_bath
    door_open = is_door & (value >= 0.5)
    bed = (p.kind == K_PRESENCE) & (p.room == R_BEDROOM)
    seat = (p.kind == K_PRESENCE) & (p.room != R_BEDROOM)
    s_home, s_time, s_occ = p.home[seat], p.time[seat], p.value[seat] >= 0.5
    s_first = s_occ.copy()
    s_first[1:] &= ~s_occ[:-1] | (s_home[1:] != s_home[:-1])
    s_start = np.maximum.accumulate(np.where(s_first, np.arange(s_occ.size), 0)) if s_occ.size else s_occ
    s_since = np.where(s_occ, s_time[s_start], 0) if s_occ.size else s_time
    rows = np.arange(home.size)
    sub = {}
    for name, m in (("door", is_door), ("door_open", door_open), ("inside", inside), ("bath_entry", bath_entry)):
        sub[name] = rows[m]
    return Activity(
        home=home, time=time, room=room, is_door=is_door, door_open=door_open, inside=inside,
        away_after=away_after, bath_entry=bath_entry, index=LastIndex(home, time, p.base),
        door_index=LastIndex(home[sub["door"]], time[sub["door"]], p.base),
        door_open_index=LastIndex(home[sub["door_open"]], time[sub["door_open"]], p.base),
        door_open_rows=sub["door_open"],
        inside_index=LastIndex(home[sub["inside"]], time[sub["inside"]], p.base),
        bath_entry_index=LastIndex(home[sub["bath_entry"]], time[sub["bath_entry"]], p.base),
        bath_entry_rows=sub["bath_entry"], door_rows=sub["door"], inside_rows=sub["inside"],
        bed_index=LastIndex(p.home[bed], p.time[bed], p.base), bed_occupied=p.value[bed] >= 0.5,
        seat_index=LastIndex(s_home, s_time, p.base), seat_home=s_home, seat_time=s_time,
        seat_occupied=s_occ, seat_room=p.room[seat], seat_since=s_since)


def bed_occupied_at(act: Activity, home: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Whether each home's bedroom presence sensor last reported occupied at or before ``t``
    (False without such a report)."""
    bi = act.bed_index.query(home, t)
    return np.where(bi >= 0, act.bed_occupied[np.maximum(bi, 0)] if act.bed_occupied.size else False, False)


def occupied_seat_room(act: Activity, home: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Room code of the seat mat whose last report (of any of the home's seat mats) at or before
    ``t`` says occupied; -1 when free or never reported. Resting = this room is the last activity's."""
    si = act.seat_index.query(home, t)
    ok = si >= 0
    ok[ok] &= act.seat_occupied[si[ok]]
    return np.where(ok, act.seat_room[np.maximum(si, 0)] if act.seat_room.size else -1, -1)


def group_quantile(group: np.ndarray, values: np.ndarray, n_groups: int, q: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-group ``q`` quantile (numpy's linear interpolation) and count; NaN for empty groups."""
    v_int = values.astype(np.int64) if values.size else values.astype(np.int64)
    if values.size and (v_int == values).all() and 0 <= v_int.min() and v_int.max() < 2**34:
        order = np.argsort((group.astype(np.int64) << 34) | v_int)  # whole seconds: one-key sort
    else:
        order = np.lexsort((values, group))
    g, v = group[order], values[order]
    counts = np.bincount(g, minlength=n_groups)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    out = np.full(n_groups, np.nan)
    has = counts > 0
    rel = q * (counts[has] - 1)  # relative position: the result must not depend on the group's offset
    lo_rel = np.floor(rel).astype(np.int64)
    lo = starts[has] + lo_rel
    hi = np.minimum(lo + 1, starts[has] + counts[has] - 1)
    out[has] = v[lo] + (rel - lo_rel) * (v[hi] - v[lo])
    return out, counts


def nan_quantile_axis1(a: np.ndarray, q: float) -> tuple[np.ndarray, np.ndarray]:
    """``np.nanquantile(a, q, axis=1)`` (linear) of a 3-D array without a Python loop, and counts."""
    srt = np.sort(a, axis=1)  # NaN sort last
    n = np.sum(~np.isnan(a), axis=1)
    pos = q * np.maximum(n - 1, 0)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, np.maximum(n - 1, 0))
    v_lo = np.take_along_axis(srt, lo[:, None, :], axis=1)[:, 0, :]
    v_hi = np.take_along_axis(srt, hi[:, None, :], axis=1)[:, 0, :]
    return np.where(n > 0, v_lo + (pos - lo) * (v_hi - v_lo), np.nan), n


def _mad_stats(m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row-wise median, 1.4826·MAD and count of a 2-D array with NaNs."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        med = np.nanmedian(m, axis=1)
        spread = 1.4826 * np.nanmedian(np.abs(m - med[:, None]), axis=1)
    return med, spread, np.sum(~np.isnan(m), axis=1)


# --------------------------------------------------------------------------------------------


def learn_routines(events: pd.DataFrame, now: int, tz: str = "Europe/Paris", window_days: int = 28,
                   params: RoutineParams | None = None, homes: pd.Index | None = None) -> HomeRoutines:
    """Learn every home's routine from the ``window_days`` before ``now`` (epoch s UTC), vectorized.

    ``events``: the events frame (module docstring); rows after ``now`` are ignored, rows before
    the window only serve as context (the last activity before it). ``homes``: the homes to learn
    (default: those in ``events``); a home without enough history (``params.min_history_days``)
    gets the documented defaults and ``limited_history`` True. Returns :class:`HomeRoutines`.
    """
    params = params or RoutineParams()
    now = int(now)
    p = prepare(events, params, homes)
    H, B, bin_s = len(p.homes), params.n_bins, params.bin_s
    w_start = now - window_days * DAY_S
    act = activity_of(p)

    # Local days of the window: d = local day number − first local day number.
    loc_start = int(local_seconds(np.array([w_start]), tz)[0])
    loc_now = int(local_seconds(np.array([now]), tz)[0])
    day0, day_end = loc_start // DAY_S, loc_now // DAY_S
    D = int(day_end - day0 + 1)
    dates = pd.date_range(pd.Timestamp(day0 * DAY_S, unit="s"), periods=D, freq="D").date
    full_day = np.ones(D, bool)  # complete local days inside the window
    full_day[0] = loc_start % DAY_S == 0
    full_day[-1] = False

    # History per home (first report of any kind, not before the window).
    first_t = np.full(H, np.nan)
    if p.home.size:
        starts = np.searchsorted(p.home, np.arange(H))
        has = np.bincount(p.home, minlength=H) > 0
        first_t[has] = p.time[starts[has]]
    history_days = np.where(np.isnan(first_t), 0.0,
                            np.clip((now - np.fmax(first_t, w_start)) / DAY_S, 0, window_days))
    limited = history_days < params.min_history_days

    # Activity rows inside the window.
    win = (act.time >= w_start) & (act.time <= now)
    wi = np.flatnonzero(win)
    a_loc = local_seconds(act.time[wi], tz)
    a_day = a_loc // DAY_S - day0
    a_sod = a_loc % DAY_S
    a_bin = a_sod // bin_s
    a_home = act.home[wi]
    n_obs_days = np.maximum(history_days, 1.0)
    by_bin = np.bincount(a_home * B + a_bin, minlength=H * B).reshape(H, B) / n_obs_days[:, None]

    # ---- inactivity: longest inactivity per (home, day, bin) ----
    prev_ok = wi > 0
    prev_ok[prev_ok] &= act.home[wi[prev_ok] - 1] == a_home[prev_ok]
    prev_idx = np.where(prev_ok, wi - 1, 0)
    gap = np.where(prev_ok, act.time[wi] - act.time[prev_idx], np.nan)
    gap_away = prev_ok & act.away_after[prev_idx]
    end_loc = local_seconds(act.time[wi] - 1, tz)
    sel = prev_ok & ~gap_away
    s_home = [a_home[sel]]
    s_day = [(end_loc // DAY_S - day0)[sel]]
    s_bin = [(end_loc % DAY_S // bin_s)[sel]]
    s_val = [gap[sel]]
    # Bin ends: a grid every bin_s in UTC; elapsed there, credited to the bin holding t − 1 s.
    grid = np.arange((w_start // bin_s + 1) * bin_s, now + 1, bin_s, dtype=np.int64)
    if H and grid.size:
        g_home = np.repeat(np.arange(H, dtype=np.int64), grid.size)
        g_t = np.tile(grid, H)
        li = act.index.query(g_home, g_t)
        ok = li >= 0
        ok[ok] &= ~act.away_after[li[ok]]
        g_loc = np.tile(local_seconds(grid - 1, tz), H)
        s_home.append(g_home[ok])
        s_day.append((g_loc // DAY_S - day0)[ok])
        s_bin.append((g_loc % DAY_S // bin_s)[ok])
        s_val.append((g_t[ok] - act.time[li[ok]]).astype(float))
    s_home, s_day, s_bin, s_val = (np.concatenate(x) for x in (s_home, s_day, s_bin, s_val))
    inside_win = (s_day >= 0) & (s_day < D)
    key = (s_home * D + s_day) * B + s_bin
    q, smooth = _longest_quantiles(key[inside_win], s_val[inside_win], H, D, B, params.inactivity_quantile,
                                   params.inactivity_min_days, params.inactivity_smooth_bins)
    bin_sod = np.arange(B) * bin_s
    rest = in_window(bin_sod, params.default_rest_start_h, params.default_rest_end_h)
    default_thr = np.where(rest, params.default_inactivity_rest_s, params.default_inactivity_day_s)
    thr = np.clip(smooth * params.inactivity_factor, params.inactivity_floor_s, params.inactivity_ceiling_s)
    thr = np.where(np.isnan(thr) | limited[:, None], default_thr[None, :], thr)
    # Resting on a seat mat: the same learning on sit durations, never below the general line.
    r_key, r_val = _sit_samples(act, grid, H, D, B, day0, bin_s, tz)
    _, rest_q = _longest_quantiles(r_key, r_val, H, D, B, params.resting_quantile,
                                             params.resting_min_days, params.inactivity_smooth_bins)
    rest_thr = np.fmax(np.minimum(rest_q * params.resting_factor, params.resting_ceiling_s), thr)
    rest_thr = np.where(np.isnan(rest_thr) | limited[:, None], thr, rest_thr)

    # ---- wake-up ----
    # Back to bed: a bedroom activity with nothing outside the bedroom for sleep_gap_s after it
    # (movements in bed and a bed sensor settling late stay in the bedroom).
    outside = np.flatnonzero(act.room != R_BEDROOM)
    nxt = np.searchsorted(outside, np.arange(act.home.size), side="right")
    nxt_row = outside[np.minimum(nxt, max(outside.size - 1, 0))] if outside.size else nxt
    nxt_ok = (nxt < outside.size)
    nxt_ok[nxt_ok] &= act.home[nxt_row[nxt_ok]] == act.home[nxt_ok]
    next_out = np.where(nxt_ok, act.time[np.where(nxt_ok, nxt_row, 0)] if act.time.size else 0, now) - act.time
    back_to_bed = (act.room == R_BEDROOM) & (next_out >= params.sleep_gap_s)
    cs = np.concatenate(([0], np.cumsum(back_to_bed)))
    horizon = act.index.query(a_home, act.time[wi] + int(params.back_to_bed_s))
    returns = cs[horizon + 1] - cs[wi]
    cand = in_window(a_sod, params.wake_from_h, params.wake_to_h) & (returns == 0) & (a_day >= 0)
    wake = np.full((H, D), np.nan)
    ck = a_home[cand] * D + a_day[cand]
    uk, first_pos = np.unique(ck, return_index=True)  # rows are time-sorted: first = earliest
    wake.flat[uk] = a_sod[cand][first_pos]
    wake[:, ~full_day & (np.arange(D) == 0)] = np.nan  # the window may start mid-morning
    w_med, w_spread, w_n = _mad_stats(wake)
    w_default = limited | (w_n < params.wake_min_days)
    lo = np.maximum(params.wake_from_h * 3600, w_med - params.wake_spread_k * w_spread - params.wake_margin_s)
    deadline = np.minimum(params.wake_to_h * 3600, w_med + params.wake_spread_k * w_spread + params.wake_margin_s)
    lo = np.where(w_default, params.default_wake_lo_h * 3600, lo)
    deadline = np.where(w_default, params.default_wake_deadline_h * 3600, deadline)

    # ---- bathroom stays: entry → first activity elsewhere ----
    entries = act.bath_entry_rows[(act.time[act.bath_entry_rows] >= w_start)]
    non_bath = np.flatnonzero(act.room != R_BATHROOM)
    nb = np.searchsorted(non_bath, entries)
    ok = nb < non_bath.size
    exit_row = non_bath[np.minimum(nb, max(non_bath.size - 1, 0))] if non_bath.size else nb
    ok &= (exit_row < act.home.size)
    ok[ok] &= act.home[exit_row[ok]] == act.home[entries[ok]]
    stay = (act.time[exit_row[ok]] - act.time[entries[ok]]).astype(float)
    st_home = act.home[entries[ok]]
    st_night = in_window(local_seconds(act.time[entries[ok]], tz) % DAY_S, params.night_start_h, params.night_end_h)
    q_day, n_day = group_quantile(st_home[~st_night], stay[~st_night], H, params.bathroom_quantile)
    q_night, n_night = group_quantile(st_home[st_night], stay[st_night], H, params.bathroom_quantile)
    thr_day = np.clip(q_day * params.bathroom_factor, params.bathroom_floor_day_s, params.bathroom_ceiling_s)
    thr_night = np.clip(q_night * params.bathroom_factor, params.bathroom_floor_night_s, params.bathroom_ceiling_s)
    thr_day = np.where(limited | (n_day < params.bathroom_min_stays), params.default_bathroom_day_s, thr_day)
    # Too few night stays: the commercial rule's 15 min, not the (longer) day stays.
    thr_night = np.where(limited | (n_night < params.bathroom_min_stays), params.bathroom_floor_night_s,
                         thr_night)

    # ---- night exits: door opened at night, nothing inside within night_exit_return_s ----
    do = act.door_open_rows[act.time[act.door_open_rows] >= w_start]
    do_night = in_window(local_seconds(act.time[do], tz) % DAY_S, params.night_start_h, params.night_end_h)
    nxt_in = np.searchsorted(act.inside_rows, do)
    has_in = nxt_in < act.inside_rows.size
    in_row = act.inside_rows[np.minimum(nxt_in, max(act.inside_rows.size - 1, 0))] if act.inside_rows.size else do
    back = has_in.copy()
    back[has_in] &= (act.home[in_row[has_in]] == act.home[do[has_in]]) & (
        act.time[in_row[has_in]] - act.time[do[has_in]] <= params.night_exit_return_s)
    ne_count = np.bincount(act.home[do[do_night & ~back]], minlength=H)
    nights = np.maximum(np.floor(history_days), 1.0)

    # ---- daily level (days mostly away left out) and appliance use ----
    day_cnt = np.bincount(a_home * D + a_day, minlength=H * D).reshape(H, D).astype(float)
    away_s = np.zeros(H * D)
    ga = prev_ok & gap_away
    if ga.any():
        g_start_day = local_seconds(act.time[prev_idx[ga]], tz) // DAY_S - day0
        okd = g_start_day >= 0
        np.add.at(away_s, a_home[ga][okd] * D + g_start_day[okd], gap[ga][okd])
    mostly_away = away_s.reshape(H, D) > params.away_day_fraction * DAY_S
    day_known = full_day[None, :] & (np.arange(D)[None, :] >= (D - 1 - np.floor(history_days))[:, None])
    daily = np.where(day_known & ~mostly_away, day_cnt, np.nan)
    # Appliance use: power rising above threshold, or a kitchen contact opening.
    pw = (p.kind == K_POWER) | ((p.kind == K_CONTACT) & (p.room == R_KITCHEN))
    use = p.activity & pw & (p.value > 0) & (p.time >= w_start) & (p.time <= now)
    u_day = local_seconds(p.time[use], tz) // DAY_S - day0
    app = np.bincount(p.home[use] * D + u_day, minlength=H * D).reshape(H, D).astype(float)
    app = np.where(day_known, app, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        lvl_mean, lvl_sd = np.nanmean(daily, axis=1), np.nanstd(daily, axis=1, ddof=1)
        app_mean, app_sd = np.nanmean(app, axis=1), np.nanstd(app, axis=1, ddof=1)

    # ---- decline: recent motion level against a reference the decline has not reached ----
    last_full = np.flatnonzero(full_day)
    recent_cols = last_full[-params.decline_days:]
    ref_cols = (last_full[last_full <= recent_cols[-1] - params.decline_reference_gap_days]
                if recent_cols.size else last_full[:0])
    motion = _daily_motion(p, w_start, now, day0, D, recent_cols, H, tz)
    motion = np.where(day_known & ~mostly_away, motion, np.nan)
    n_recent = np.sum(~np.isnan(motion[:, recent_cols]), axis=1)
    n_ref = np.sum(~np.isnan(motion[:, ref_cols]), axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        recent = np.nanmean(motion[:, recent_cols], axis=1) if recent_cols.size else np.full(H, np.nan)
        ref_mean = np.nanmean(motion[:, ref_cols], axis=1) if ref_cols.size else np.full(H, np.nan)
        ref_sd = np.nanstd(motion[:, ref_cols], axis=1, ddof=1) if ref_cols.size else np.full(H, np.nan)
        std_err = np.nan_to_num(ref_sd) * np.sqrt(1 / np.maximum(n_recent, 1) + 1 / np.maximum(n_ref, 1))
    dec_thr = np.minimum((1 - params.decline_drop) * ref_mean, ref_mean - params.decline_z * std_err)
    decline = (~limited & (n_ref >= params.decline_min_baseline_days) & (n_recent == params.decline_days)
               & (recent < dec_thr))
    decline_since = np.nan
    if recent_cols.size:
        end_local = (day0 + recent_cols[-1] + 1) * DAY_S  # local midnight ending the last day
        decline_since = _local_midnight_utc(end_local, tz)

    # ---- last activity at now ----
    la = act.index.query(np.arange(H, dtype=np.int64), np.full(H, now))
    la_ok = la >= 0
    room_names = np.array([str(r) for r in ROOMS], dtype=object)
    seat_at_now = occupied_seat_room(act, np.arange(H, dtype=np.int64), np.full(H, now))

    # ---- sensors ----
    sensors = _sensor_stats(p, w_start, now, params)

    idx = p.homes
    bin_cols = pd.Index(bin_sod // 60, name="bin_start_min")
    date_cols = pd.Index(dates, name="date")
    return HomeRoutines(
        now=now, tz=tz, window_days=window_days, params=params, homes=idx,
        history_days=pd.Series(history_days, index=idx, name="history_days"),
        limited_history=pd.Series(limited, index=idx, name="limited_history"),
        activity_by_bin=pd.DataFrame(by_bin, index=idx, columns=bin_cols),
        inactivity_q_s=pd.DataFrame(q, index=idx, columns=bin_cols),
        inactivity_threshold_s=pd.DataFrame(thr, index=idx, columns=bin_cols),
        resting_q_s=pd.DataFrame(rest_q, index=idx, columns=bin_cols),
        resting_threshold_s=pd.DataFrame(rest_thr, index=idx, columns=bin_cols),
        wake=pd.DataFrame({"median_s": w_med, "spread_s": w_spread, "n_days": w_n, "lo_s": lo,
                           "deadline_s": deadline, "default": w_default}, index=idx),
        bathroom=pd.DataFrame({"n_stays": n_day + n_night, "q_day_s": q_day, "q_night_s": q_night,
                               "threshold_day_s": thr_day, "threshold_night_s": thr_night}, index=idx),
        night_exits=pd.DataFrame({"count": ne_count, "per_night": ne_count / nights}, index=idx),
        daily_activity=pd.DataFrame(daily, index=idx, columns=date_cols),
        daily_motion=pd.DataFrame(motion, index=idx, columns=date_cols),
        activity_level=pd.DataFrame({"mean": lvl_mean, "sd": lvl_sd, "n_days": np.sum(~np.isnan(daily), axis=1),
                                     "reference_mean": ref_mean, "reference_sd": ref_sd,
                                     "reference_days": n_ref, "recent_mean": recent,
                                     "decline_threshold": dec_thr, "decline": decline,
                                     "decline_since": decline_since}, index=idx),
        appliance_use=pd.DataFrame(app, index=idx, columns=date_cols),
        appliance_level=pd.DataFrame({"mean": app_mean, "sd": app_sd}, index=idx),
        last_activity=pd.DataFrame({
            "time": last_time(la, act.time),
            "room": np.where(la_ok, room_names[act.room[np.maximum(la, 0)]] if act.room.size else None, None),
            "away": np.where(la_ok, act.away_after[np.maximum(la, 0)] if act.room.size else False, False),
            "in_bed": bed_occupied_at(act, np.arange(H, dtype=np.int64), np.full(H, now)),
            "seat_room": np.where(seat_at_now >= 0, room_names[np.maximum(seat_at_now, 0)], None)},
            index=idx),
        sensors=sensors)


def _sit_samples(act: Activity, grid: np.ndarray, H: int, D: int, B: int, day0: int, bin_s: int,
                 tz: str) -> tuple[np.ndarray, np.ndarray]:
    """Sit durations as samples for :func:`_longest_quantiles`: at each sit's end (a seat mat
    released) its full length, credited to the bin holding the end − 1 s, and at each bin end of
    ``grid`` (UTC epoch s) during a sit the time since it began. A sit is a run of "occupied"
    reports of the home's seat mats. Returns (key, seconds) inside the window's days."""
    since, occupied = act.seat_since, act.seat_occupied
    ended = np.zeros(since.size, bool)
    ended[1:] = ~occupied[1:] & occupied[:-1] & (act.seat_home[1:] == act.seat_home[:-1])
    e_home = act.seat_home[ended]
    e_t = act.seat_time[ended]
    e_val = (e_t - since[np.flatnonzero(ended) - 1]).astype(float)
    g_home = np.repeat(np.arange(H, dtype=np.int64), grid.size)
    g_t = np.tile(grid, H)
    si = act.seat_index.query(g_home, g_t)
    on = si >= 0
    on[on] &= occupied[si[on]] & (since[si[on]] < g_t[on])   # a sit begun at the bin end is not in it
    home = np.concatenate((e_home, g_home[on]))
    loc = local_seconds(np.concatenate((e_t, g_t[on])) - 1, tz)
    val = np.concatenate((e_val, (g_t[on] - since[si[on]]).astype(float)))
    day = loc // DAY_S - day0
    ok = (day >= 0) & (day < D)
    return ((home * D + day) * B + loc % DAY_S // bin_s)[ok], val[ok]


def _longest_quantiles(key: np.ndarray, val: np.ndarray, H: int, D: int, B: int, quantile: float,
                       min_days: int, smooth_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Longest duration per (home, day, bin) from samples (``key`` = (home·D + day)·B + bin,
    ``val`` seconds; an inactivity or a sit), then per (home, bin) its ``quantile`` over the days that have a sample (NaN
    with fewer than ``min_days``), and that quantile smoothed (max with ± ``smooth_bins`` bins).
    Returns two homes × bins arrays (seconds)."""
    m = np.full(H * D * B, -1.0)
    np.maximum.at(m, key, val)
    longest = np.where(m >= 0, m, np.nan).reshape(H, D, B)
    q, n_valid = nan_quantile_axis1(longest, quantile)
    q = np.where(n_valid >= min_days, q, np.nan)
    smooth = q.copy()
    for s in range(1, smooth_bins + 1):
        smooth = np.fmax(smooth, np.fmax(np.roll(q, s, axis=1), np.roll(q, -s, axis=1)))
    return q, smooth


def _local_midnight_utc(local_s: int, tz: str) -> int:
    """The UTC epoch second of local wall-clock time ``local_s`` (seconds, wall clock read as UTC)."""
    ts = pd.Timestamp(local_s, unit="s").tz_localize(tz, ambiguous=False, nonexistent="shift_forward")
    return int(ts.tz_convert("UTC").timestamp())


def _daily_motion(p: Prepared, w_start: int, now: int, day0: int, n_days: int, recent_cols: np.ndarray,
                  n_homes: int, tz: str) -> np.ndarray:
    """Motion detections per (home, local day ``day0 + column``) in [w_start, now], counting only the
    motion sensors that sent at least one message (any report) on every ``recent_cols`` day.
    Returns a homes × ``n_days`` float array."""
    n_s = len(p.sensor_table)
    detection = p.activity & (p.kind == K_MOTION)
    recent_from = now - (recent_cols.size + 2) * DAY_S   # covers the recent days whatever the DST
    rows = np.flatnonzero((p.time >= w_start) & (p.time <= now) & (detection | (p.time >= recent_from)))
    key = p.sensor[rows] * n_days + (local_seconds(p.time[rows], tz) // DAY_S - day0)
    messages = np.bincount(key, minlength=n_s * n_days).reshape(n_s, n_days)
    detections = np.bincount(key[detection[rows]], minlength=n_s * n_days).reshape(n_s, n_days)
    alive = (messages[:, recent_cols] > 0).all(axis=1)
    cell = p.sensor_table["home"].to_numpy(np.int64)[:, None] * n_days + np.arange(n_days)[None, :]
    return np.bincount(cell.ravel(), weights=(detections * alive[:, None]).ravel(),
                       minlength=n_homes * n_days).reshape(n_homes, n_days)


def _sensor_stats(p: Prepared, w_start: int, now: int, params: RoutineParams) -> pd.DataFrame:
    """Per sensor: messages in the window, last seen, expected gap and the silence threshold."""
    s, t = p.sensor[p.by_sensor], p.time[p.by_sensor]
    m = t <= now
    s, t = s[m], t[m]
    n_s = len(p.sensor_table)
    last_seen = np.full(n_s, np.nan)
    if s.size:
        is_last = np.ones(s.size, bool)
        is_last[:-1] = s[1:] != s[:-1]
        last_seen[s[is_last]] = t[is_last]
    inw = t >= w_start
    s, t = s[inw], t[inw]
    same = np.zeros(s.size, bool)
    same[1:] = s[1:] == s[:-1]
    gaps = np.diff(t, prepend=0)[same].astype(float)
    q, _ = group_quantile(s[same], gaps, n_s, params.silent_quantile)
    n_msg = np.bincount(s, minlength=n_s)
    silent_after = np.where(n_msg >= params.silent_min_messages,
                            np.maximum(params.silent_floor_s, params.silent_factor * q), params.silent_default_s)
    out = p.sensor_table[["home_id", "sensor_id", "room", "kind"]].copy()
    out["n_messages"], out["last_seen"] = n_msg, last_seen
    out["expected_gap_s"], out["silent_after_s"] = q, silent_after
    return out.reset_index(drop=True)
