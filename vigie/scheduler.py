"""Periodic jobs of ``vigie serve`` (APScheduler, in the configured time zone):

- the J+1 leak job daily at ``leak_check_time`` for the day before; at start-up it also runs for
  yesterday if no result for yesterday is stored yet (the service was down at check time);
- notification delivery every 30 s (first sends and retries with back-off);
- home-alert escalation every minute (:func:`escalation_job`: levels, repeats and reminders due,
  then delivery), resumed from the database after a restart.
"""

from __future__ import annotations

import logging
from datetime import datetime

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

from vigie.context import AppContext
from vigie.jobs import leak_job, yesterday

log = logging.getLogger(__name__)


def _daily_leak_check(ctx: AppContext) -> None:
    try:
        leak_job(ctx, yesterday(ctx))
    except Exception:  # the scheduler must survive a failed run; the next one retries
        log.exception("daily leak check failed")


def _deliver(ctx: AppContext) -> None:
    from vigie.alerts.delivery import Deliverer

    try:
        Deliverer(ctx.sessions, ctx.settings).deliver_due()
    except Exception:
        log.exception("notification delivery failed")


def escalation_job(ctx: AppContext, now: datetime | None = None) -> None:
    """One escalation tick at ``now`` (default: the clock), then delivery of what is due; never
    raises (the next minute retries). ``vigie escalate --once`` runs the same function."""
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
    sched.add_job(escalation_job, "interval", minutes=1, args=[ctx], id="escalate", coalesce=True,
                  max_instances=1)
    sched.add_job(_catch_up, args=[ctx], id="catch-up")
    return sched
