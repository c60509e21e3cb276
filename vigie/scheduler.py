"""Periodic jobs of ``vigie serve`` (APScheduler, in the configured time zone):

- the J+1 leak job daily at ``leak_check_time`` for the day before; at start-up it also runs for
  yesterday if no result for yesterday is stored yet (the service was down at check time);
- notification delivery every 30 s (first sends and retries with back-off);
- the assisted-living tick every ``home_tick_s`` (60 s; :func:`vigie.home_jobs.home_job`): detect
  unusual behaviour for every home, open/clear alerts, then the home-alert escalation tick (levels,
  repeats and reminders due) and delivery, resumed from the database after a restart. Detection
  and escalation are one job, so the escalation tick always sees the alerts of the same minute's
  detection and two ticks never race in this process (``max_instances=1``; another process
  ticking at once — ``vigie escalate`` — is safe too: steps are unique per alert in the database);
- the daily re-learning of the home routines at ``home_learn_time`` (its own job, so a minute tick
  never waits for it; the tick keeps using the routine already learned);
- the daily staff job at ``heating_check_time`` (:func:`vigie.heating_jobs.heating_job`): heating
  analytics of the day before and device health of every family, findings recorded and one digest
  per commune with new ones; on Mondays, then, the weekly report of every building for the week
  before (:func:`vigie.heating_jobs.weekly_reports`).
"""

from __future__ import annotations

import logging
from datetime import datetime

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

from vigie.context import AppContext
from vigie.home_jobs import HomeMonitor, home_job
from vigie.jobs import leak_job, yesterday
from vigie.metrics import DETECTOR_FAILURES, HEATING, LEAK

log = logging.getLogger(__name__)


def _daily_leak_check(ctx: AppContext) -> None:
    try:
        leak_job(ctx, yesterday(ctx))
    except Exception:  # the scheduler must survive a failed run; the next one retries
        DETECTOR_FAILURES.labels(LEAK).inc()
        log.exception("daily leak check failed")


def _deliver(ctx: AppContext) -> None:
    from vigie.alerts.delivery import Deliverer

    try:
        Deliverer(ctx.sessions, ctx.settings).deliver_due()
    except Exception:
        log.exception("notification delivery failed")


def escalation_job(ctx: AppContext, now: datetime | None = None) -> None:
    """One escalation tick at ``now`` (default: the clock), then delivery of what is due; never
    raises. Not scheduled: the home tick (:func:`vigie.home_jobs.home_job`) takes the escalation
    tick after its detection; this is the escalation alone, for a process without detection."""
    from vigie.alerts.delivery import Deliverer
    from vigie.alerts.escalation import Escalation

    try:
        outcome = Escalation(ctx.sessions, ctx.settings).tick(now)
        if outcome.steps or outcome.reminders:
            log.info("escalation: %d steps, %d calls, %d reminders", outcome.steps, outcome.calls,
                     outcome.reminders)
        Deliverer(ctx.sessions, ctx.settings).deliver_due(now)
    except Exception:
        log.exception("escalation tick failed")


def _daily_staff_job(ctx: AppContext) -> None:
    from vigie.heating_jobs import heating_job, week_of, weekly_reports

    day = yesterday(ctx)
    try:
        heating_job(ctx, day)
    except Exception:  # the next day's run retries; findings are idempotent
        DETECTOR_FAILURES.labels(HEATING).inc()
        log.exception("daily heating and device-health job failed")
    if day.weekday() == 6:  # yesterday was a Sunday: its week is complete
        try:
            weekly_reports(ctx, week_of(day))
        except Exception:
            log.exception("weekly heating reports failed")


def _learn_routines(monitor: HomeMonitor) -> None:
    try:
        monitor.learn()
    except Exception:  # the routine already held stays in use; the tick relearns a stale one
        log.exception("home routine learning failed")


def _catch_up(ctx: AppContext) -> None:
    from vigie.store.water import read_checks

    day = yesterday(ctx)
    try:
        if not read_checks(ctx.store, day, day, ctx.tz):
            log.info("no leak check stored for %s: running it now", day)
            _daily_leak_check(ctx)
    except Exception:
        log.exception("catch-up leak check failed")


def build_scheduler(ctx: AppContext) -> BackgroundScheduler:
    hour, minute = (int(x) for x in ctx.settings.leak_check_time.split(":"))
    sched = BackgroundScheduler(timezone=ctx.tz)
    sched.add_job(_daily_leak_check, CronTrigger(hour=hour, minute=minute, timezone=ctx.tz), args=[ctx],
                  id="leak-check", coalesce=True, misfire_grace_time=3600, max_instances=1)
    sched.add_job(_deliver, "interval", seconds=30, args=[ctx], id="deliver", coalesce=True, max_instances=1)
    monitor = HomeMonitor(ctx)
    sched.add_job(home_job, "interval", seconds=ctx.settings.home_tick_s, args=[ctx], kwargs={"monitor": monitor},
                  id="home-tick", coalesce=True, max_instances=1)
    hh, mm = (int(x) for x in ctx.settings.home_learn_time.split(":"))
    sched.add_job(_learn_routines, CronTrigger(hour=hh, minute=mm, timezone=ctx.tz), args=[monitor],
                  id="home-learn", coalesce=True, misfire_grace_time=3600, max_instances=1)
    hh, mm = (int(x) for x in ctx.settings.heating_check_time.split(":"))
    sched.add_job(_daily_staff_job, CronTrigger(hour=hh, minute=mm, timezone=ctx.tz), args=[ctx],
                  id="staff-daily", coalesce=True, misfire_grace_time=3600, max_instances=1)
    sched.add_job(_catch_up, args=[ctx], id="catch-up")
    return sched
