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

:func:`home_job` runs one tick: detect at ``now`` (``analytics.homes.detect_home_events``), apply
the events to the escalation engine (``Escalation.apply_events``: new episodes open alerts, ended
ones clear) with the homes that have reports in the lookback as evaluated (a home without data
clears nothing), take the escalation
steps due (``Escalation.tick``), then deliver. The escalation tick runs even when detection failed
(InfluxDB down): calls already due must not wait for the data. In a failed detection no home is
evaluated, so no alert clears for lack of data.
"""

from __future__ import annotations

import logging
import threading
import time as _time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import pandas as pd

from vigie.analytics.routine import HomeRoutines, learn_routines
from vigie.context import AppContext
from vigie.records import HomeEvent
from vigie.store.homes import HomeSensors, concat_events, empty_events, read_events

log = logging.getLogger(__name__)

#: A routine older than this is relearned by the tick itself (the daily learning failed or was missed).
STALE_S = 25 * 3600


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
        routines = learn_routines(events, int(now.timestamp()), s.timezone, s.home_window_days,
                                  homes=sensors.homes)
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


def home_job(ctx: AppContext, now: datetime | None = None, monitor: HomeMonitor | None = None) -> HomeTickOutcome:
    """One home tick at ``now`` (default: the clock): detect, apply, escalate, deliver (module
    docstring). ``monitor`` keeps the routines and recent events between ticks; without one, a new
    one learns first (a one-off run). Never raises: failures are logged and the next tick retries."""
    from vigie.alerts.delivery import Deliverer
    from vigie.alerts.escalation import Escalation
    from vigie.analytics.homes import detect_home_events

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
            out.events = detect_home_events(events, routines.defaults_for(homes), int(now.timestamp()))
            # Only homes with reports in the lookback count as evaluated: a data gap (gateway or
            # store down) must never read as "back to normal" and clear their alerts.
            evaluated = sorted(set(events["home_id"].astype(str)))
            out.homes, out.detected = len(evaluated), True
            applied = escalation.apply_events(out.events, evaluated, now)
            out.opened, out.updated, out.cleared, out.resolved = (applied.opened, applied.updated, applied.cleared,
                                                                  applied.resolved)
    except Exception:  # the escalation below must still run; the next tick retries detection
        log.exception("home detection failed")
    try:
        ticked = escalation.tick(now)
        out.steps, out.calls, out.reminders = ticked.steps, ticked.calls, ticked.reminders
        Deliverer(ctx.sessions, ctx.settings).deliver_due(now)
    except Exception:
        log.exception("escalation tick failed")
    out.seconds = _time.monotonic() - t0
    if out.opened or out.resolved or out.steps or out.reminders:
        log.info("home tick: %d homes, %d events, %d opened, %d resolved, %d steps, %d calls, %d reminders, %.2fs",
                 out.homes, len(out.events), out.opened, out.resolved, out.steps, out.calls, out.reminders,
                 out.seconds)
    return out
