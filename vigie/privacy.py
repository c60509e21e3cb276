"""Data-subject requests: access (export) and erasure of one person's data.

Source: Regulation (EU) 2016/679 (GDPR) art. 15 (right of access: the data and who it was
disclosed to), art. 20 (portability: a structured, machine-readable format) and art. 17 (erasure);
what Vigie stores, why and for how long is in docs/data-protection.md.

What belongs to a person:

- their registry record (name, e-mail, phone, language, channels) and their links to households,
  as a resident or as a caregiver (relation, escalation level, history grant);
- their API keys (metadata only: secrets are never stored);
- for a **resident**: their households' meters, those meters' readings and daily check results in
  InfluxDB, the alerts raised on them, and, for assisted living, the home's sensor reports
  (``home_event``) and sensor availability changes (``sensor_availability``) in the events
  retention policy, and its unusual-behaviour alerts;
- the notifications addressed to them and every delivery attempt, and the acknowledgements they
  made;
- the audit log's entries about them (who read their data) and by them.

Erasure removes the registry record and links, the notifications addressed to them, their API
keys and the single-use records of the acknowledgement links they followed. When the person was
the **last resident** of a household, that household's meter series (every measurement, every
retention policy), its home sensor series (``home_event`` and ``sensor_availability`` series tagged
with its id), its water alerts and its home alerts (with their escalation steps and notifications)
are erased too, unless ``keep_meter_data`` (e.g. an open dispute); the household, its meters and
its sensors stay in the registry as the commune's equipment, without people. A zigbee2mqtt bridge's
availability is tagged by its base topic, not by home, and is not erased. Audit entries stay (they
hold opaque ids only and account for past access); alerts of households with other residents stay,
with opaque ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from vigie.alerts.acklinks import UsedAckLink
from vigie.alerts.models import Alert, DeliveryAttempt, HomeAlert, Notification
from vigie.audit import read_events
from vigie.auth import ApiKey
from vigie.registry import CaregiverLink, Household, Meter, Person
from vigie.store.homes import AVAILABILITY, EVENT, events_policy
from vigie.store.influx import InfluxStore, quote_ident, quote_str

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class UnknownPerson(LookupError):
    """No person with that id in the registry."""


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


def _person_record(p: Person) -> dict:
    return {"id": p.id, "name": p.name, "email": p.email, "phone": p.phone, "language": p.language,
            "channels": p.channels.split() if p.channels else [], "availability": p.availability,
            "quiet_hours": p.quiet_hours, "notify": p.notify, "staff_commune": p.staff_commune}


def _home_alert_record(a: HomeAlert) -> dict:
    return {"id": a.id, "household_id": a.household_id, "kind": a.kind, "severity": a.severity,
            "sensor_id": a.sensor_id or None, "start": _iso(a.start), "evidence": a.evidence, "status": a.status,
            "opened_at": _iso(a.opened_at), "acknowledged_at": _iso(a.acknowledged_at),
            "acknowledged_by": a.acknowledged_by, "resolved_at": _iso(a.resolved_at)}


def _alert_record(a: Alert) -> dict:
    return {"id": a.id, "meter_id": a.meter_id, "household_id": a.household_id, "kind": a.kind,
            "status": a.status, "first_day": _iso(a.first_day), "last_day": _iso(a.last_day),
            "rate_l_per_h": a.rate_l_per_h, "night_flow_l_per_h": a.night_flow_l_per_h, "volume_l": a.volume_l,
            "opened_at": _iso(a.opened_at), "acknowledged_at": _iso(a.acknowledged_at),
            "acknowledged_by": a.acknowledged_by, "resolved_at": _iso(a.resolved_at)}


def _notification_record(n: Notification) -> dict:
    return {"id": n.id, "alert_id": n.alert_id, "home_alert_id": n.home_alert_id, "reason": n.reason,
            "status": n.status,
            "created_at": _iso(n.created_at), "sent_at": _iso(n.sent_at),
            "attempts": [{"at": _iso(a.at), "channel": a.channel, "outcome": a.outcome}
                         for a in n.attempts_log]}


def _series_measurements(store: InfluxStore) -> list[tuple[str | None, str]]:
    """(retention policy, measurement) pairs holding meter series: the writes' policy and the
    aggregates one (events belong to homes, issue 4)."""
    names = [v[0] for s in store.query_json(f"SHOW MEASUREMENTS ON {quote_ident(store.database)}")
             for v in s.get("values", [])]
    return [(rp, name) for rp in dict.fromkeys([store.retention_policy, store.policy_for("aggregates")])
            for name in names]


def _points(store: InfluxStore, rp: str | None, measurement: str, tag: str, values: list[str], *,
            ms: bool = False) -> list[dict]:
    """Every point of ``measurement`` in ``rp`` whose ``tag`` is one of ``values``: [{time, tags…,
    fields…}], time ISO 8601 UTC (to the millisecond when ``ms``: the assisted-living measurements
    are stored at precision ms)."""
    cond = " OR ".join(f"{quote_ident(tag)} = {quote_str(v)}" for v in values)
    out = []
    for s in store.query_json(f"SELECT * FROM {store.measurement(measurement, rp)} WHERE {cond}",
                              epoch="ms" if ms else "s"):
        cols = s["columns"]
        for row in s.get("values", []):
            point = {k: v for k, v in zip(cols, row) if v is not None}
            point["time"] = ((_EPOCH + timedelta(milliseconds=point["time"])).isoformat(timespec="milliseconds")
                             if ms else datetime.fromtimestamp(point["time"], timezone.utc).isoformat())
            out.append(point)
    return out


def _meter_series(store: InfluxStore, meter_ids: list[str]) -> dict[str, list[dict]]:
    """Every point of ``meter_ids`` per ``"policy.measurement"``: {key: [{time, tags…, fields…}]}."""
    if not meter_ids:
        return {}
    out: dict[str, list[dict]] = {}
    for rp, measurement in _series_measurements(store):
        if rows := _points(store, rp, measurement, "meter_id", meter_ids):
            out.setdefault(f"{rp}.{measurement}", []).extend(rows)
    return out


def _home_series(store: InfluxStore, home_ids: list[str]) -> dict[str, list[dict]]:
    """Every ``home_event`` and ``sensor_availability`` point of ``home_ids`` (events retention
    policy) per ``"policy.measurement"``; bridges' availability has no home and is not included."""
    if not home_ids:
        return {}
    rp = events_policy(store)
    out: dict[str, list[dict]] = {}
    for measurement in (EVENT, AVAILABILITY):
        if rows := _points(store, rp, measurement, "home_id", home_ids, ms=True):
            out[f"{rp or store.retention_policy}.{measurement}"] = rows
    return out


@dataclass
class PersonData:
    """What :func:`collect` finds for one person (ORM rows of an open session)."""

    person: Person
    households: list[Household]
    caregiving: list[CaregiverLink]
    api_keys: list[ApiKey]
    meters: list[Meter]
    alerts: list[Alert]
    home_alerts: list[HomeAlert]
    notifications: list[Notification]
    acknowledged: list[Alert]
    sole_resident_of: list[Household] = field(default_factory=list)


def collect(session: Session, person_id: str) -> PersonData:
    """The registry and alert rows of ``person_id``; :class:`UnknownPerson` if there is none."""
    person = session.get(Person, person_id)
    if person is None:
        raise UnknownPerson(person_id)
    households = list(person.households)
    caregiving = list(session.scalars(select(CaregiverLink).where(CaregiverLink.person_id == person_id)))
    api_keys = list(session.scalars(select(ApiKey).where(ApiKey.person_id == person_id).order_by(ApiKey.created_at)))
    meters = [m for hh in households for m in hh.meters]
    meter_ids = [m.id for m in meters]
    alerts = list(session.scalars(select(Alert).where(Alert.meter_id.in_(meter_ids)).order_by(Alert.id))) \
        if meter_ids else []
    home_ids = [hh.id for hh in households]
    home_alerts = list(session.scalars(select(HomeAlert).where(HomeAlert.household_id.in_(home_ids))
                                       .order_by(HomeAlert.id))) if home_ids else []
    notifications = list(session.scalars(
        select(Notification).where(Notification.person_id == person_id).order_by(Notification.id)))
    acknowledged = list(session.scalars(select(Alert).where(Alert.acknowledged_by == person_id)))
    sole = [hh for hh in households if [p.id for p in hh.residents] == [person_id]]
    return PersonData(person, households, caregiving, api_keys, meters, alerts, home_alerts, notifications,
                      acknowledged, sole)


def export_person(session: Session, store: InfluxStore, person_id: str) -> dict:
    """Everything Vigie holds about ``person_id`` as one JSON-ready document.

    Shape: ``{"exported_at", "person", "households": [{id, address, role, meters}], "caregiving":
    [{household_id, relation, level, history_granted}], "api_keys": [{key_id, role, created_at,
    expires_at, revoked_at, last_used_at}], "alerts", "home_alerts", "notifications", "acknowledged_alerts",
    "access_log": [{at, role, person_id, action, via, household_id, meter_id, alert_id}], "series":
    {"policy.measurement": [points]}}``; times ISO 8601 UTC, indices m³, flows L/h, volumes L. The
    series are their households' meter points (``water_reading``, ``leak_check``) and home sensor
    points (``home_event``, ``sensor_availability``, times to the millisecond). The access log is
    who read their households' data and what they did themselves (art. 15(1)(c)).
    Raises :class:`UnknownPerson`.
    """
    data = collect(session, person_id)
    return {
        "exported_at": datetime.now(timezone.utc).isoformat(),
        "person": _person_record(data.person),
        "households": [{"id": hh.id, "address": hh.address, "role": "resident",
                        "meters": [m.id for m in hh.meters]} for hh in data.households],
        "caregiving": [{"household_id": c.household_id, "relation": c.relation, "level": c.level,
                        "history_granted": c.history_granted} for c in data.caregiving],
        "api_keys": [{"key_id": k.key_id, "role": k.role, "created_at": _iso(k.created_at),
                      "expires_at": _iso(k.expires_at), "revoked_at": _iso(k.revoked_at),
                      "last_used_at": _iso(k.last_used_at)} for k in data.api_keys],
        "alerts": [_alert_record(a) for a in data.alerts],
        "home_alerts": [_home_alert_record(a) for a in data.home_alerts],
        "notifications": [_notification_record(n) for n in data.notifications],
        "acknowledged_alerts": [a.id for a in data.acknowledged],
        "access_log": [{"at": _iso(e.at), "role": e.role, "person_id": e.person_id, "action": e.action,
                        "via": e.via, "household_id": e.household_id, "meter_id": e.meter_id,
                        "alert_id": e.alert_id}
                       for e in read_events(session, person_id=person_id, limit=1_000_000)],
        "series": {**_meter_series(store, [m.id for m in data.meters]),
                   **_home_series(store, [hh.id for hh in data.households])},
    }


@dataclass
class ErasureReport:
    """What :func:`erase_person` removed (or would remove, on a dry run). Opaque ids only."""

    person_id: str
    dry_run: bool
    households_unlinked: list[str]
    caregiving_unlinked: list[str]
    api_keys: list[str]
    notifications: int
    meters_series_erased: list[str]
    alerts_erased: list[int]
    home_alerts_erased: list[int]
    #: Households whose ``home_event`` and ``sensor_availability`` series were erased.
    home_events_erased: list[str]


def erase_person(session: Session, store: InfluxStore, person_id: str, *, keep_meter_data: bool = False,
                 dry_run: bool = False) -> ErasureReport:
    """Erase ``person_id`` as the module docstring says; commits unless ``dry_run``.

    InfluxDB series go first: if the store is unreachable, :class:`~vigie.store.StoreUnavailable`
    is raised before anything relational changes, so the request can be run again whole.
    Raises :class:`UnknownPerson`.
    """
    data = collect(session, person_id)
    series_meters = [] if keep_meter_data else [m.id for hh in data.sole_resident_of for m in hh.meters]
    alerts = [] if keep_meter_data else [a.id for a in data.alerts if a.meter_id in set(series_meters)]
    sole_homes = {hh.id for hh in data.sole_resident_of}
    home_alerts = [] if keep_meter_data else [a.id for a in data.home_alerts if a.household_id in sole_homes]
    event_homes = [] if keep_meter_data else [hh.id for hh in data.sole_resident_of]
    report = ErasureReport(person_id, dry_run, [hh.id for hh in data.households],
                           [c.household_id for c in data.caregiving], [k.key_id for k in data.api_keys],
                           len(data.notifications), series_meters, alerts, home_alerts, event_homes)
    if dry_run:
        return report
    # DROP SERIES reaches every retention policy of the database (the events one included).
    for meter_id in series_meters:
        store.execute(f"DROP SERIES WHERE meter_id = {quote_str(meter_id)}")
    for home_id in event_homes:
        store.execute(f"DROP SERIES WHERE home_id = {quote_str(home_id)}")
    notification_ids = [n.id for n in data.notifications]
    if alerts:
        notification_ids += list(session.scalars(select(Notification.id).where(Notification.alert_id.in_(alerts))))
    if home_alerts:
        notification_ids += list(session.scalars(select(Notification.id)
                                                 .where(Notification.home_alert_id.in_(home_alerts))))
    if notification_ids:
        session.execute(delete(DeliveryAttempt).where(DeliveryAttempt.notification_id.in_(notification_ids)))
        session.execute(delete(Notification).where(Notification.id.in_(notification_ids)))
    if alerts:
        session.execute(delete(Alert).where(Alert.id.in_(alerts)))
    for home_alert in data.home_alerts:
        if home_alert.id in home_alerts:
            session.delete(home_alert)  # its escalation steps go with it (ORM cascade)
    session.execute(delete(CaregiverLink).where(CaregiverLink.person_id == person_id))
    session.execute(delete(ApiKey).where(ApiKey.person_id == person_id))
    session.execute(delete(UsedAckLink).where(UsedAckLink.person_id == person_id))
    data.person.households.clear()
    session.delete(data.person)
    session.commit()
    return report
