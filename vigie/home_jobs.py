"""The assisted-living minute tick: recent events → detectors for every home at once → alerts →
escalation → delivery.

:class:`HomeMonitor` keeps, between ticks of one process:

- the **learned routines** of every registered home (``analytics.routine.learn_routines`` over the
  ``home_window_days`` before the moment of learning). Learning reads weeks of events, so it is
  done once a day, at ``home_learn_time`` local (:meth:`HomeMonitor.learn`, its own scheduled
  job, see :mod:`vigie.scheduler`), so a tick never waits for it; ticks meanwhile use the routine
  already held (immutable, swapped in one assignment). The tick learns itself only when it holds
  none (start-up) or a stale one (:data:`STALE_S`: the daily learning failed). A home registered
  since gets the conservative defaults (``limited_history``) until the next learning.
- the **recent events** (the last ``home_lookback_h``), read incrementally: each tick re-reads only
  from ``home_late_s`` before its previous read's end (reports stored a little late are picked up,
  and the rows of that span replace the ones held, so nothing is counted twice), and the whole
  lookback is re-read every ``home_resync_min`` (reports stored much later, e.g. an ingest spool
  replayed after an InfluxDB outage).

:func:`home_job` runs one tick: detect at ``now`` (:func:`tick_events`), apply
the events to the escalation engine (``Escalation.apply_events``: new episodes open alerts, ended
ones clear) with the homes that have reports in the lookback as evaluated (a home without data
clears nothing), take the escalation
steps due (``Escalation.tick``), then deliver. The escalation tick runs even when detection failed
(InfluxDB down): calls already due must not wait for the data. In a failed detection no home is
evaluated, so no alert clears for lack of data.

:func:`tick_events` is the tick's "given the routines and the events up to t, what is raised" —
the live tick calls it with ``[now]``, :func:`backtest_events` (``vigie events``) with every tick
of a stored period, so the two share one code path.
"""

from __future__ import annotations

import logging
import threading
import time as _time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from vigie.analytics.routine import HomeRoutines, learn_routines
from vigie.config import Settings
from vigie.context import AppContext
from vigie.metrics import DETECTOR_FAILURES, DETECTOR_SECONDS, HOME
from vigie.records import HomeEvent
from vigie.store.homes import HomeSensors, concat_events, empty_events, read_events

log = logging.getLogger(__name__)

#: A routine older than this is relearned by the tick itself (the daily learning failed or was missed).
STALE_S = 25 * 3600
#: ``backtest_events`` evaluates at most this many (home, tick) queries in one ``detect_at`` call
#: (a day of minutes for ~170 homes): bounds its memory whatever the fleet.
BACKTEST_QUERIES = 250_000


@dataclass
class HomeTickOutcome:
    """What one :func:`home_job` run did. ``detected`` False: detection failed or was skipped (no
    home sensor registered); ``learned``: this tick learned the routines first; ``homes``: the homes
    evaluated (with reports in the lookback); ``events``: the unusual-behaviour events raised at
    ``now`` (ongoing episodes included)."""

    now: datetime
    detected: bool = False
    learned: bool = False
    homes: int = 0
    events: list[HomeEvent] = field(default_factory=list)
    opened: int = 0
    updated: int = 0
    cleared: int = 0
    resolved: int = 0
    steps: int = 0
    calls: int = 0
    reminders: int = 0
    seconds: float = 0.0


class HomeMonitor:
    """The state one process keeps between home ticks (module docstring). Thread-safe: the daily
    learning and the minute tick may run at once."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.routines: HomeRoutines | None = None
        self._events: pd.DataFrame | None = None
        self._read_to: int | None = None      # epoch s: the last read covered times < this
        self._synced_at: int | None = None    # epoch s of the last full read of the lookback
        self._lock = threading.Lock()         # one reader of the recent events at a time

    # --- learning -----------------------------------------------------------------------------
    def learn(self, now: datetime | None = None, sensors: HomeSensors | None = None) -> HomeRoutines:
        """Learn every registered home's routine from the ``home_window_days`` before ``now`` and
        hold it. Raises the store's errors (the routine held stays in use)."""
        s = self.ctx.settings
        now = _utc(now)
        sensors = sensors or HomeSensors.from_registry(self.ctx.sessions)
        t0 = _time.monotonic()
        start = now - timedelta(days=s.home_window_days)
        events = read_events(self.ctx.store, start, now + timedelta(seconds=1), sensors)
        routines = learn_at(s, events, int(now.timestamp()), sensors.homes)
        self.routines = routines
        log.info("home routines learned: %d homes (%d limited history), %d events, %.1fs", len(routines.homes),
                 int(routines.limited_history.sum()), len(events), _time.monotonic() - t0)
        return routines

    def learn_due(self, now: datetime) -> bool:
        """No routine held, or it is older than a day and an hour: the daily learning failed or did
        not run (the tick then learns itself)."""
        return self.routines is None or int(now.timestamp()) - self.routines.now > STALE_S

    # --- recent events ------------------------------------------------------------------------
    def recent(self, now: datetime, sensors: HomeSensors) -> pd.DataFrame:
        """The events of the last ``home_lookback_h`` up to ``now`` (incremental, module docstring)."""
        s = self.ctx.settings
        t_now = int(now.timestamp())
        end = t_now + 1   # read_events' end is exclusive; reports at now belong to this tick
        lookback = t_now - int(s.home_lookback_h * 3600)
        with self._lock:
            full = (self._events is None or self._read_to is None or t_now - self._synced_at >= s.home_resync_min * 60
                    or t_now < self._read_to - s.home_late_s)   # a tick back in time: start over
            cut = lookback if full else max(lookback, self._read_to - int(s.home_late_s))
            new = read_events(self.ctx.store, _dt(cut), _dt(end), sensors)
            if full:
                self._synced_at = t_now
                kept = empty_events()
            else:
                old = self._events
                kept = old[(old["time"] >= lookback) & (old["time"] < cut)]
            self._events = concat_events([kept, new])
            self._read_to = end
            return self._events


def _utc(now: datetime | None) -> datetime:
    return (now or datetime.now(timezone.utc)).astimezone(timezone.utc)


def _dt(epoch_s: int) -> datetime:
    return datetime.fromtimestamp(epoch_s, timezone.utc)


def learn_at(settings: Settings, events: pd.DataFrame, now: int, homes: pd.Index) -> HomeRoutines:
    """The routines of ``homes`` learned at ``now`` (epoch s UTC) from ``events`` (the
    ``home_window_days`` before it), in the service's zone: the daily learning's one call."""
    return learn_routines(events, now, settings.timezone, settings.home_window_days, homes=homes)


def tick_events(events: pd.DataFrame, routines: HomeRoutines, homes: pd.Index,
                times: Sequence[int] | np.ndarray) -> list[HomeEvent]:
    """What the tick raises for every home of ``homes`` at each instant of ``times`` (epoch s UTC),
    given ``routines`` and ``events`` (the events frame; each instant sees only the rows at or
    before it; rows of other homes ignored). One vectorized ``analytics.homes.detect_at`` call
    over homes × times; homes the routines lack get the conservative defaults.

    Returns one :class:`HomeEvent` per episode — (home_id, kind, sensor_id, start), the alert
    router's key — as first raised (``detected_at`` = the earliest of ``times`` raising it), sorted
    by (home_id, kind, start). With one instant: every event raised then, ongoing ones included.
    """
    from vigie.analytics.homes import Raised, detect_at, to_home_events

    times = np.asarray(times, np.int64)
    routines = routines.defaults_for(homes)
    events = events[events["home_id"].isin(homes)]
    q_home = np.repeat(np.arange(len(homes), dtype=np.int64), times.size)
    q_time = np.tile(times, len(homes))
    raised, ctx = detect_at(events, routines, q_home, q_time)
    if times.size > 1 and raised.kind.size:
        rows = pd.DataFrame({"home": raised.home, "kind": raised.kind.astype(str), "sensor": raised.sensor,
                             "start": raised.start, "tick": ctx.q_time[raised.query]})
        first = rows.sort_values("tick", kind="stable").drop_duplicates(["home", "kind", "sensor", "start"])
        keep = np.sort(first.index.to_numpy())
        raised = Raised(**{f: getattr(raised, f)[keep] for f in Raised.__dataclass_fields__})
    return to_home_events(raised, ctx, routines)


def home_job(ctx: AppContext, now: datetime | None = None, monitor: HomeMonitor | None = None) -> HomeTickOutcome:
    """One home tick at ``now`` (default: the clock): detect, apply, escalate, deliver (module
    docstring). ``monitor`` keeps the routines and recent events between ticks; without one, a new
    one learns first (a one-off run). Never raises: failures are logged and the next tick retries."""
    from vigie.alerts.delivery import Deliverer
    from vigie.alerts.escalation import Escalation

    now = _utc(now)
    out = HomeTickOutcome(now=now)
    t0 = _time.monotonic()
    monitor = monitor or HomeMonitor(ctx)
    escalation = Escalation(ctx.sessions, ctx.settings)
    try:
        sensors = HomeSensors.from_registry(ctx.sessions)
        if len(sensors.frame):
            if monitor.learn_due(now):
                monitor.learn(now, sensors)
                out.learned = True
            routines = monitor.routines
            homes = sensors.homes
            events = monitor.recent(now, sensors)
            events = events[events["home_id"].isin(homes)]   # a household gone from the registry
            out.events = tick_events(events, routines, homes, [int(now.timestamp())])
            # Only homes with reports in the lookback count as evaluated: a data gap (gateway or
            # store down) must never read as "back to normal" and clear their alerts.
            evaluated = sorted(set(events["home_id"].astype(str)))
            out.homes, out.detected = len(evaluated), True
            applied = escalation.apply_events(out.events, evaluated, now)
            out.opened, out.updated, out.cleared, out.resolved = (applied.opened, applied.updated, applied.cleared,
                                                                  applied.resolved)
    except Exception:  # the escalation below must still run; the next tick retries detection
        DETECTOR_FAILURES.labels(HOME).inc()
        log.exception("home detection failed")
    try:
        ticked = escalation.tick(now)
        out.steps, out.calls, out.reminders = ticked.steps, ticked.calls, ticked.reminders
        Deliverer(ctx.sessions, ctx.settings).deliver_due(now)
    except Exception:
        log.exception("escalation tick failed")
    out.seconds = _time.monotonic() - t0
    DETECTOR_SECONDS.labels(HOME).observe(out.seconds)
    if out.opened or out.resolved or out.steps or out.reminders:
        log.info("home tick: %d homes, %d events, %d opened, %d resolved, %d steps, %d calls, %d reminders, %.2fs",
                 out.homes, len(out.events), out.opened, out.resolved, out.steps, out.calls, out.reminders,
                 out.seconds)
    return out


# --- backtest (``vigie events``) ---------------------------------------------------------------

def learn_times(first: date, last: date, settings: Settings) -> list[int]:
    """The daily learning instants (``home_learn_time`` local, epoch s UTC) that govern the local
    days ``first``..``last``: the last one before ``first`` began, then one each day."""
    zone = ZoneInfo(settings.timezone)
    hh, mm = (int(x) for x in settings.home_learn_time.split(":"))
    days = [first - timedelta(days=1) + timedelta(days=i) for i in range((last - first).days + 2)]
    instants = [int(datetime.combine(d, time(hh, mm), tzinfo=zone).timestamp()) for d in days]
    period_start = int(datetime.combine(first, time(0), tzinfo=zone).timestamp())
    return [t for i, t in enumerate(instants) if i + 1 == len(instants) or instants[i + 1] > period_start]


def backtest_events(ctx: AppContext, first: date, last: date, home_ids: Sequence[str] | None = None,
                    now: datetime | None = None) -> list[HomeEvent]:
    """The episodes the minute tick would have raised live over the local days ``first``..``last``
    (inclusive; instants after ``now``, default the clock, are not evaluated), from what InfluxDB
    holds now (:func:`~vigie.store.homes.read_events`).

    As the service: the routines are relearned at each day's ``home_learn_time`` from the
    ``home_window_days`` before that instant (:func:`learn_at`), and used until the next learning;
    the detectors run every ``home_tick_s`` from local midnight of ``first`` (:func:`tick_events`,
    all the ticks of one learning's span in one call per slice of homes). Each tick sees only the
    events up to it, from ``home_lookback_h`` before the span's first tick (the live tick holds its
    own last ``home_lookback_h``; with more context a late tick finds an activity older than that
    where the live one falls back to the routine's last activity — the same instant unless it is
    older than the learning). Reports stored late are seen as if on time.

    ``home_ids``: only these registered homes (default: every home of the registry). Returns one
    :class:`HomeEvent` per episode (home_id, kind, sensor_id, start) as first raised, sorted by
    (start, home_id, kind). Raises ValueError for a home not in the registry or ``last < first``,
    and the store's errors.
    """
    s = ctx.settings
    if last < first:
        raise ValueError(f"period ends ({last}) before it starts ({first})")
    sensors = HomeSensors.from_registry(ctx.sessions)
    homes = sensors.homes
    if home_ids:
        unknown = sorted(set(home_ids) - set(homes))
        if unknown:
            raise ValueError(f"homes not in the registry (no sensors): {unknown}")
        homes = pd.Index(sorted(set(home_ids)), name="home_id", dtype=object)
    if not len(homes):
        return []
    zone = ZoneInfo(s.timezone)
    t_first = int(datetime.combine(first, time(0), tzinfo=zone).timestamp())
    t_end = min(int(datetime.combine(last + timedelta(days=1), time(0), tzinfo=zone).timestamp()),
                int(_utc(now).timestamp()) + 1)
    ticks = np.arange(t_first, t_end, s.home_tick_s, dtype=np.int64)
    learns = learn_times(first, last, s)
    window_s, lookback_s = s.home_window_days * 86_400, int(s.home_lookback_h * 3600)
    if not ticks.size:
        return []
    events = read_events(ctx.store, _dt(min(learns[0] - window_s, t_first - lookback_s)), _dt(int(ticks[-1]) + 1),
                         sensors, homes=list(homes) if home_ids else None)
    events = events[events["home_id"].isin(homes)].reset_index(drop=True)
    times = events["time"].to_numpy()
    found: dict[tuple, HomeEvent] = {}
    per_call = max(1, BACKTEST_QUERIES // max(1, min(ticks.size, 86_400 // s.home_tick_s)))
    for i, learned in enumerate(learns):
        span = ticks[(ticks >= learned) & ((ticks < learns[i + 1]) if i + 1 < len(learns) else True)]
        if not span.size:
            continue
        # The learning reads [learned − window, learned + 1 s) at ms precision: whole seconds ≤ learned.
        past = events.iloc[np.searchsorted(times, learned - window_s):np.searchsorted(times, learned, "right")]
        routines = learn_at(s, past, learned, homes)
        recent = events.iloc[np.searchsorted(times, int(span[0]) - lookback_s):
                             np.searchsorted(times, int(span[-1]), "right")]
        for j in range(0, len(homes), per_call):
            chunk = homes[j:j + per_call]
            for e in tick_events(recent, routines, chunk, span):
                key = (e.home_id, e.kind, e.sensor_id, e.start)
                if key not in found or e.detected_at < found[key].detected_at:
                    found[key] = e
    return sorted(found.values(), key=lambda e: (e.start, e.home_id, str(e.kind), e.sensor_id or ""))
