"""The J+1 leak job: check the day, store the results, route alerts, deliver what is due.

The scheduled run (06:00 local by default) and ``vigie leaks`` share this one code path.
"""

from __future__ import annotations

import logging
import time as _time
from datetime import date, datetime, timedelta

from sqlalchemy import select

from vigie.context import AppContext
from vigie.metrics import DETECTOR_SECONDS, LEAK
from vigie.records import CheckResult

log = logging.getLogger(__name__)


def registered_meter_ids(ctx: AppContext) -> list[str]:
    from vigie.registry import Meter

    with ctx.sessions() as s:
        return sorted(s.scalars(select(Meter.id)))


def leak_job(ctx: AppContext, first_day: date, last_day: date | None = None, *, route: bool = True,
             deliver: bool = True) -> list[CheckResult]:
    """Run the J+1 check for each local day ``first_day..last_day`` in order; with ``route`` the
    alert router sees each day's results before the next day is checked, and with ``deliver`` due
    notifications are sent at the end. Returns every result."""
    from vigie.alerts.delivery import Deliverer
    from vigie.alerts.router import AlertRouter
    from vigie.analytics.job import run_leak_check

    last_day = last_day or first_day
    meters = registered_meter_ids(ctx)
    router = AlertRouter(ctx.sessions, ctx.settings) if route else None
    out: list[CheckResult] = []
    day = first_day
    while day <= last_day:
        t0 = _time.monotonic()
        results = run_leak_check(ctx.store, day, ctx.settings, meter_ids=meters)
        if router is not None:
            router.apply_results(results)
        flagged = sum(1 for r in results if r.status == "leak")
        seconds = _time.monotonic() - t0
        DETECTOR_SECONDS.labels(LEAK).observe(seconds)
        log.info("leak check %s: %d results, %d flagged, %.2fs", day, len(results), flagged, seconds)
        out.extend(results)
        day += timedelta(days=1)
    if route and deliver:
        Deliverer(ctx.sessions, ctx.settings).deliver_due()
    return out


def yesterday(ctx: AppContext, now: datetime | None = None) -> date:
    now = now or datetime.now(ctx.tz)
    return (now.astimezone(ctx.tz) - timedelta(days=1)).date()
