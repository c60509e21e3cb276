"""The heating and device-health jobs: analyse, record staff findings, send the digest; and the
weekly report per building.

One code path for the scheduled runs and the commands: :func:`heating_pass` reads the stored
period (with the history the energy trend needs) and runs :func:`vigie.analytics.heating.analyse_heating`;
``vigie heating --from --to`` prints it, :func:`heating_job` (daily, for yesterday) turns it and
:func:`vigie.analytics.devices.device_health` into :class:`~vigie.alerts.findings.StaffFinding`
rows and queues the staff digest (:mod:`vigie.alerts.digest`), :func:`weekly_reports` (Mondays, for
the week before) persists one :class:`~vigie.heating_reports.HeatingReport` per building.
"""

from __future__ import annotations

import logging
import time as _time
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

import numpy as np

from vigie.alerts.findings import FindingOutcome, StaffFinding
from vigie.analytics.devices import DeviceHealth, DeviceHealthKind
from vigie.analytics.heating import HeatingAnalysis, HeatingFinding, HeatingFindingKind, HeatingParams
from vigie.context import AppContext
from vigie.heating_registry import HeatingLayout
from vigie.metrics import DETECTOR_SECONDS, HEATING

log = logging.getLogger(__name__)

OCCUPANCY_SOURCES = ("schedule", "observed")


@dataclass(frozen=True)
class HeatingRun:
    """One heating pass over the local days ``first..last``: ``analysis`` covers ``history_start``
    to ``end`` (UTC; the weeks before ``first`` feed the energy trend) and :meth:`findings` /
    :meth:`room_days` keep what concerns ``first..last``."""

    first: date
    last: date
    start: datetime
    end: datetime
    history_start: datetime
    occupancy: str
    layout: HeatingLayout
    analysis: HeatingAnalysis

    def findings(self) -> list[HeatingFinding]:
        """Findings overlapping ``first..last`` (an energy trend: the week ending on ``last``)."""
        return [f for f in self.analysis.findings if f.end > self.start and f.start < self.end]

    def room_days(self):
        return [d for d in self.analysis.room_days if self.first <= d.day <= self.last]

    def building_days(self):
        return [d for d in self.analysis.building_days if self.first <= d.day <= self.last]


def _midnight(day: date, tz) -> datetime:
    """Local midnight starting ``day``, as aware UTC."""
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(timezone.utc)


def heating_pass(ctx: AppContext, first: date, last: date, *, occupancy: str | None = None) -> HeatingRun:
    """Analyse the local days ``first..last`` for every room of the registry, with
    ``settings.heating_history_days`` before them for the energy trend. ``occupancy``:
    ``schedule`` (the rooms' registry schedules, holidays and closures) or ``observed`` (the rooms'
    own ``occupied`` reports); default ``settings.heating_occupancy``. Raises ``ValueError`` for
    ``last`` before ``first`` or an unknown occupancy source, the store's errors when InfluxDB
    cannot be read."""
    from vigie.analytics.heating import analyse_heating, load_outdoor_csv
    from vigie.heating_registry import load_heating_layout, occupancy_schedule
    from vigie.store.heating import read_heating

    occupancy = occupancy or ctx.settings.heating_occupancy
    if occupancy not in OCCUPANCY_SOURCES:
        raise ValueError(f"occupancy must be one of {OCCUPANCY_SOURCES}, not {occupancy!r}")
    if last < first:
        raise ValueError(f"the last day {last} is before the first {first}")
    tz, settings = ctx.tz, ctx.settings
    params = HeatingParams.from_settings(settings)
    history_first = min(first, last - timedelta(days=settings.heating_history_days - 1))
    start, end = _midnight(first, tz), _midnight(last + timedelta(days=1), tz)
    history_start = _midnight(history_first, tz)
    with ctx.sessions() as s:
        layout = load_heating_layout(s)
    # The state at the first slot is the last report before it, as old as a device may go quiet.
    intervals = layout.devices["expected_interval_s"].astype(float)
    lookback_s = max(params.max_age_h * 3600, params.stale_factor * float(intervals.max()) if len(intervals) else 0)
    frame = read_heating(ctx.store, history_start - timedelta(seconds=lookback_s), end)
    slots = None
    if occupancy == "schedule":
        step = timedelta(minutes=params.step_min)
        periods = int((end - history_start) / step) + int(np.ceil(params.preheat_min / params.step_min)) + 1
        slots = occupancy_schedule(layout, history_start, periods, f"{params.step_min}min", tz)
    outdoor = load_outdoor_csv(settings.heating_outdoor_csv) if settings.heating_outdoor_csv else None
    t0 = _time.monotonic()
    analysis = analyse_heating(frame, layout, slots, outdoor, start=history_start, end=end, tz=tz, params=params)
    run = HeatingRun(first, last, start, end, history_start, occupancy, layout, analysis)
    log.info("heating pass %s..%s: %d rooms, %d readings, %d findings, %.2fs", first, last, len(layout.rooms),
             len(frame), len(run.findings()), _time.monotonic() - t0)
    return run


def _names(layout: HeatingLayout) -> tuple[dict[str, tuple[str, str]], dict[str, str]]:
    """building id → (name, commune); room id → name."""
    b = layout.buildings
    buildings = {str(i): (str(n or i), str(c)) for i, n, c in zip(b["building_id"], b["name"], b["commune"])}
    rooms = {str(i): str(n or i) for i, n in zip(layout.rooms["room_id"], layout.rooms["name"])}
    return buildings, rooms


def heating_staff_findings(run: HeatingRun, default_commune: str) -> tuple[list[StaffFinding], set[tuple[str, str]]]:
    """The run's findings as staff findings, and the (commune, kind) pairs the run evaluated
    (every heating kind for the commune of every building of the registry)."""
    buildings, rooms = _names(run.layout)
    out = []
    for f in run.findings():
        name, commune = buildings.get(f.building, (f.building, default_commune))
        label = f"{name} — {rooms.get(f.room, f.room)}" if f.room else name
        out.append(StaffFinding(commune=commune, family="heating", kind=str(f.kind),
                                subject=f"{f.building}/{f.room}" if f.room else f.building,
                                start=f.start, end=f.end, evidence=dict(f.evidence), building_id=f.building,
                                room_id=f.room or None, label=label))
    evaluated = {(commune, str(kind)) for _, commune in buildings.values() for kind in HeatingFindingKind}
    return out, evaluated


def device_staff_findings(found: list[DeviceHealth], layout: HeatingLayout, communes: set[str], now: datetime,
                          default_commune: str) -> tuple[list[StaffFinding], set[tuple[str, str]]]:
    """Device-health problems as staff findings (subject ``<family>:<device>``; labelled with
    building and room names for heating devices, registry ids otherwise — never a person), and
    the (commune, kind) pairs evaluated: every kind for ``communes`` and the problems' own."""
    buildings, rooms = _names(layout)
    out = []
    for d in found:
        commune = d.commune or default_commune
        if d.building:
            label = " — ".join(x for x in (buildings.get(d.building, (d.building, ""))[0],
                                            rooms.get(d.room or "", d.room or ""), d.device) if x)
        else:
            label = f"{d.device} ({d.household})" if d.household else d.device
        out.append(StaffFinding(commune=commune, family=str(d.family), kind=str(d.kind),
                                subject=f"{d.family}:{d.device}", start=d.since or now, end=now,
                                evidence={k: v for k, v in d.evidence.items() if v is not None},
                                building_id=d.building, room_id=d.room, device_id=d.device, label=label))
    evaluated = {(c, str(k)) for c in communes | {f.commune for f in out} for k in DeviceHealthKind}
    return out, evaluated


@dataclass(frozen=True)
class HeatingJobOutcome:
    """What :func:`heating_job` did: the heating run (None when no building is registered), the
    device problems found, the findings' changes and the digests queued."""

    run: HeatingRun | None
    device_problems: int
    heating: FindingOutcome
    devices: FindingOutcome
    digests: list[int]


def heating_job(ctx: AppContext, day: date, now: datetime | None = None, *, deliver: bool = True) -> HeatingJobOutcome:
    """The daily staff job for local ``day``: heating pass, device health at ``now`` (default the
    clock), findings recorded (opened, widened, resolved), one digest per commune with new ones,
    delivery of what is due. Raises the store's errors (the scheduler logs and retries next day)."""
    from vigie.alerts.delivery import Deliverer
    from vigie.alerts.digest import DigestBuilder
    from vigie.alerts.findings import FindingRouter
    from vigie.analytics.devices import DeviceHealthParams, device_health
    from vigie.registry import Household, Person

    t0 = _time.monotonic()
    now = now or datetime.now(timezone.utc)
    router = FindingRouter(ctx.sessions)
    run = heating_pass(ctx, day, day)
    heating_out = FindingOutcome()
    if len(run.layout.rooms):
        found, evaluated = heating_staff_findings(run, ctx.settings.commune)
        heating_out = router.apply(found, evaluated, now)
    problems = device_health(ctx.store, ctx.sessions, now, DeviceHealthParams.from_settings(ctx.settings))
    with ctx.sessions() as s:
        from sqlalchemy import select

        communes = set(s.scalars(select(Household.commune).distinct()))
        communes |= {c for c in s.scalars(select(Person.staff_commune).distinct()) if c}
    communes |= set(run.layout.buildings["commune"].astype(str))
    found, evaluated = device_staff_findings(problems, run.layout, communes, now, ctx.settings.commune)
    devices_out = router.apply(found, evaluated, now)
    digests = DigestBuilder(ctx.sessions).queue(now)
    if deliver:
        Deliverer(ctx.sessions, ctx.settings).deliver_due(now)
    DETECTOR_SECONDS.labels(HEATING).observe(_time.monotonic() - t0)
    return HeatingJobOutcome(run, len(problems), heating_out, devices_out, digests)


# -- weekly report ------------------------------------------------------------------------------
def _round(x: float | None, n: int = 2) -> float | None:
    return None if x is None or (isinstance(x, float) and np.isnan(x)) else round(float(x), n)


def week_of(day: date) -> date:
    """The Monday of ``day``'s week (ISO 8601)."""
    return day - timedelta(days=day.weekday())


def weekly_reports(ctx: AppContext, week_start: date, now: datetime | None = None) -> list[dict]:
    """Build and store the report of the week ``week_start`` (a Monday) .. +6 days for every
    building (replacing a report of that week made earlier); returns the reports' bodies. A body:
    ``building_id``, ``name``, ``commune``, ``week_start``, ``week_end``, ``energy_kwh`` (None when a
    day is unknown), ``hdd`` (°C·day, DJU base 18), ``kwh_per_hdd`` and ``previous_kwh_per_hdd``
    (mean of the weeks before, within the history), ``rooms`` (per room: energy, kWh/DJU, method),
    ``waste`` (per finding kind: count and estimated ``wasted_kwh``), ``open_faults`` (findings and
    device problems of the building still open now). Raises ``ValueError`` when ``week_start`` is not
    a Monday."""
    from sqlalchemy import select

    from vigie.alerts.findings import FacilityFinding
    from vigie.alerts.models import AlertStatus
    from vigie.heating_reports import HeatingReport

    if week_start.weekday() != 0:
        raise ValueError(f"a week starts on a Monday; {week_start} is not one")
    now = now or datetime.now(timezone.utc)
    last = week_start + timedelta(days=6)
    run = heating_pass(ctx, week_start, last)
    buildings, rooms = _names(run.layout)
    bodies = []
    with ctx.sessions() as s:
        for building_id, (name, commune) in sorted(buildings.items()):
            days = [d for d in run.analysis.building_days if d.building == building_id]
            week = [d for d in days if week_start <= d.day <= last]
            before = [d for d in days if d.day < week_start]
            energy = sum(d.energy_kwh for d in week)
            hdd = sum(d.hdd for d in week)
            prev = [(sum(d.energy_kwh for d in chunk), sum(d.hdd for d in chunk))
                    for chunk in _weeks(before, week_start)]
            prev_ratio = [e / h for e, h in prev if h >= 1 and not np.isnan(e)]
            room_rows = []
            for room_id in run.layout.rooms.loc[run.layout.rooms["building_id"] == building_id, "room_id"]:
                rd = [d for d in run.room_days() if d.room == room_id]
                r_energy = sum(d.energy_kwh for d in rd)
                r_hdd = sum(d.hdd for d in rd)
                room_rows.append({"room_id": str(room_id), "name": rooms.get(str(room_id), str(room_id)),
                                  "energy_kwh": _round(r_energy),
                                  "kwh_per_hdd": _round(r_energy / r_hdd) if r_hdd >= 1 else None,
                                  "method": rd[0].method if rd else "none"})
            waste: dict[str, dict] = {}
            for f in run.findings():
                if f.building != building_id or f.kind == HeatingFindingKind.ENERGY_TREND:
                    continue
                w = waste.setdefault(str(f.kind), {"count": 0, "wasted_kwh": 0.0})
                w["count"] += 1
                w["wasted_kwh"] += float(f.evidence.get("wasted_kwh", 0.0) or 0.0)
            for w in waste.values():
                w["wasted_kwh"] = round(w["wasted_kwh"], 2)
            faults = s.scalars(select(FacilityFinding).where(
                FacilityFinding.building_id == building_id, FacilityFinding.status != AlertStatus.RESOLVED)
                .order_by(FacilityFinding.opened_at, FacilityFinding.id))
            body = {
                "building_id": building_id, "name": name, "commune": commune,
                "week_start": week_start.isoformat(), "week_end": last.isoformat(),
                "energy_kwh": _round(energy), "hdd": _round(hdd, 1),
                "kwh_per_hdd": _round(energy / hdd) if hdd >= 1 else None,
                "previous_kwh_per_hdd": _round(float(np.mean(prev_ratio))) if prev_ratio else None,
                "rooms": room_rows, "waste": waste,
                "wasted_kwh": round(sum(w["wasted_kwh"] for w in waste.values()), 2),
                "open_faults": [{"id": f.id, "kind": f.kind, "family": f.family, "label": f.label,
                                 "since": f.start.isoformat(), "status": f.status} for f in faults],
                "created_at": now.isoformat(),
            }
            row = s.scalars(select(HeatingReport).where(HeatingReport.building_id == building_id,
                                                        HeatingReport.week_start == week_start)).one_or_none()
            if row is None:
                s.add(HeatingReport(building_id=building_id, commune=commune, week_start=week_start,
                                    created_at=now, body=body))
            else:
                row.body, row.created_at, row.commune = body, now, commune
            bodies.append(body)
        s.commit()
    log.info("weekly heating reports for the week of %s: %d building(s)", week_start, len(bodies))
    return bodies


def _weeks(days: list, week_start: date) -> list[list]:
    """Whole 7-day weeks before ``week_start`` among ``days`` (building days), newest first."""
    by_day = {d.day: d for d in days}
    out = []
    end = week_start
    while True:
        chunk = [by_day.get(end - timedelta(days=i)) for i in range(1, 8)]
        if any(c is None for c in chunk):
            return out
        out.append(chunk)
        end -= timedelta(days=7)
