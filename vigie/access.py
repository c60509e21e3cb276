"""The query layer of the API: what an authenticated principal may see and do, in one place.

Every endpoint reads through :class:`Access`, which builds its queries from two scopes:

- *visible households* — staff and grafana: the households of their commune; residents: the
  households they live in; caregivers: the households they care for.
- *history households* (consumption history allowed) — the same, except caregivers: only the
  households where staff granted it (``household_caregivers.history_granted``).

Home (assisted-living) alerts are visible when their household is, except technical ones
(``STAFF_ONLY_HOME_EVENTS``: a silent sensor) which residents and caregivers never see, neither
listed nor counted in a household's status. Caregivers and staff acknowledge and close home
alerts; residents only read their own home's (a resident pressing "all is well" must not stop the
escalation a fall started); grafana only reads.

Meters and alerts are visible when their household is (an alert keeps the household it was raised
for, so a meter changing hands does not show new residents the old ones' alerts). Meters and alerts
without a household belong to no commune and are visible to nobody through the API.

Errors: :class:`NotFound` for an object out of scope, exactly as for one that does not exist (the
API answers 404 for both, so a caller learns nothing about other households); :class:`Forbidden`
only for what a role may never do whatever the object (grafana acknowledging) or, for a caregiver,
reading the history of a household they can see but were not granted.

Buildings, staff findings (heating faults, device problems) and weekly heating reports belong to
a commune: its staff and grafana keys read them, its staff acknowledge findings; residents and
caregivers get :class:`Forbidden`. They hold no personal data and are not audited.

Reads of a household's data and acknowledgements are written to the audit log (:mod:`vigie.audit`)
here, not by the endpoints; each such method commits its event on the caller's session. A request
refused (403/404) writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from vigie.alerts.escalation import Escalation
from vigie.alerts.findings import FacilityFinding, acknowledge_finding, list_findings
from vigie.alerts.models import Alert, AlertStatus, HomeAlert
from vigie.alerts.router import AlertRouter, list_alerts
from vigie.audit import Actor, AuditAction, record, record_many
from vigie.auth import Principal, Role
from vigie.heating_registry import Building
from vigie.heating_reports import HeatingReport
from vigie.records import STAFF_ONLY_HOME_EVENTS
from vigie.registry import CaregiverLink, Household, Meter, household_residents


class NotFound(LookupError):
    """No such object for this principal (absent or out of scope: indistinguishable on purpose)."""


class Forbidden(PermissionError):
    """The principal's role may not do this."""


def visible_households(p: Principal) -> Select:
    """A ``SELECT household_id`` of the households ``p`` may see."""
    if p.role in (Role.STAFF, Role.GRAFANA):
        return select(Household.id).where(Household.commune == p.commune)
    if p.role is Role.RESIDENT:
        return select(household_residents.c.household_id).where(household_residents.c.person_id == p.person_id)
    if p.role is Role.CAREGIVER:
        return select(CaregiverLink.household_id).where(CaregiverLink.person_id == p.person_id)
    raise ValueError(f"unknown role {p.role!r}")


def history_households(p: Principal) -> Select:
    """A ``SELECT household_id`` of the households whose consumption history ``p`` may read."""
    if p.role is Role.CAREGIVER:
        return select(CaregiverLink.household_id).where(CaregiverLink.person_id == p.person_id,
                                                        CaregiverLink.history_granted.is_(True))
    return visible_households(p)


@dataclass(frozen=True, slots=True)
class MeterView:
    """A visible meter with its count of unresolved alerts."""

    meter: Meter
    open_alerts: int


@dataclass(frozen=True, slots=True)
class HouseholdStatusView:
    """A household's minimal status (no address, no history): its meter ids, its unresolved water
    alerts and its unresolved home alerts the principal may see (technical ones for staff and
    grafana only)."""

    household_id: str
    meter_ids: list[str]
    open_alerts: list[Alert]
    open_home_alerts: list[HomeAlert]


class Access:
    """``principal``'s view of the relational store through ``session``."""

    def __init__(self, session: Session, principal: Principal) -> None:
        self._s = session
        self.principal = principal
        self._actor = Actor(principal.key_id, str(principal.role), principal.person_id)

    def _visible_meter(self, meter_id: str) -> Meter:
        meter = self._s.scalars(select(Meter).where(
            Meter.id == meter_id, Meter.household_id.in_(visible_households(self.principal)))).one_or_none()
        if meter is None:
            raise NotFound("unknown meter")
        return meter

    def _visible_alert(self, alert_id: int) -> Alert:
        alert = self._s.scalars(select(Alert).where(
            Alert.id == alert_id, Alert.household_id.in_(visible_households(self.principal)))).one_or_none()
        if alert is None:
            raise NotFound("unknown alert")
        return alert

    def meters(self) -> list[MeterView]:
        """The visible meters, by id. Not audited: ids, driver and alert counts only."""
        visible = visible_households(self.principal)
        counts = dict(self._s.execute(
            select(Alert.meter_id, func.count()).where(Alert.status != AlertStatus.RESOLVED,
                                                       Alert.household_id.in_(visible))
            .group_by(Alert.meter_id)).all())
        meters = self._s.scalars(select(Meter).where(Meter.household_id.in_(visible)).order_by(Meter.id))
        return [MeterView(m, counts.get(m.id, 0)) for m in meters]

    def meter_for_history(self, meter_id: str) -> Meter:
        """The meter whose consumption history is about to be read; audited.

        Raises :class:`NotFound` if invisible, :class:`Forbidden` if visible without history rights.
        """
        meter = self._visible_meter(meter_id)
        allowed = self._s.scalar(select(Household.id).where(
            Household.id == meter.household_id, Household.id.in_(history_households(self.principal))))
        if allowed is None:
            raise Forbidden("consumption history of this household is not granted to you")
        record(self._s, self._actor, AuditAction.READ_CONSUMPTION, household_id=meter.household_id,
               meter_id=meter.id)
        self._s.commit()
        return meter

    def alerts(self, status: str | None = None, meter_id: str | None = None) -> list[Alert]:
        """Visible alerts, newest first, optionally by status and meter; audited per household."""
        alerts = list_alerts(self._s, status=status, meter_ids=[meter_id] if meter_id else None,
                             household_ids=visible_households(self.principal))
        record_many(self._s, self._actor, AuditAction.LIST_ALERTS, (a.household_id for a in alerts))
        self._s.commit()
        return alerts

    def alert(self, alert_id: int) -> Alert:
        """One visible alert; audited. Raises :class:`NotFound`."""
        alert = self._visible_alert(alert_id)
        record(self._s, self._actor, AuditAction.READ_ALERT, household_id=alert.household_id,
               meter_id=alert.meter_id, alert_id=alert.id)
        self._s.commit()
        return alert

    def household_status(self, household_id: str) -> HouseholdStatusView:
        """A visible household's meters and unresolved water and home alerts; audited. Raises
        :class:`NotFound`."""
        visible = self._s.scalar(select(Household.id).where(
            Household.id == household_id, Household.id.in_(visible_households(self.principal))))
        if visible is None:
            raise NotFound("unknown household")
        meter_ids = list(self._s.scalars(select(Meter.id).where(Meter.household_id == household_id)
                                         .order_by(Meter.id)))
        open_alerts = list_alerts(self._s, status=[AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED],
                                  household_ids=[household_id])
        open_home_alerts = list(self._s.scalars(self._home_alerts_query().where(
            HomeAlert.household_id == household_id, HomeAlert.status != str(AlertStatus.RESOLVED))
            .order_by(HomeAlert.id)))
        record(self._s, self._actor, AuditAction.READ_STATUS, household_id=household_id)
        self._s.commit()
        return HouseholdStatusView(household_id, meter_ids, open_alerts, open_home_alerts)

    def acknowledge(self, router: AlertRouter, alert_id: int) -> Alert:
        """Acknowledge a visible alert as the principal's person; audited.

        Raises :class:`Forbidden` for grafana (whatever the alert), :class:`NotFound`, and the
        router's :class:`~vigie.alerts.router.AlertResolvedError`.
        """
        if self.principal.role is Role.GRAFANA or not self.principal.person_id:
            raise Forbidden("this key is read-only")
        self._visible_alert(alert_id)
        self._s.rollback()   # end this read before the router's own transaction locks the row
        alert = router.acknowledge(alert_id, self.principal.person_id)
        record(self._s, self._actor, AuditAction.ACKNOWLEDGE, household_id=alert.household_id,
               meter_id=alert.meter_id, alert_id=alert.id)
        self._s.commit()
        return alert

    # --- home (assisted-living) alerts ------------------------------------------------------------
    def _home_alerts_query(self) -> Select:
        query = select(HomeAlert).where(HomeAlert.household_id.in_(visible_households(self.principal)))
        if self.principal.role in (Role.RESIDENT, Role.CAREGIVER):
            query = query.where(HomeAlert.kind.not_in([str(k) for k in STAFF_ONLY_HOME_EVENTS]))
        return query

    def _visible_home_alert(self, alert_id: int) -> HomeAlert:
        alert = self._s.scalars(self._home_alerts_query().where(HomeAlert.id == alert_id)).one_or_none()
        if alert is None:
            raise NotFound("unknown home alert")
        return alert

    def home_alerts(self, status: str | None = None) -> list[HomeAlert]:
        """Visible home alerts, newest first, optionally by status; audited per household.
        Raises ``ValueError`` for an unknown status."""
        query = self._home_alerts_query().order_by(HomeAlert.opened_at.desc(), HomeAlert.id.desc())
        if status is not None:
            query = query.where(HomeAlert.status == str(AlertStatus(status)))
        alerts = list(self._s.scalars(query))
        record_many(self._s, self._actor, AuditAction.LIST_HOME_ALERTS, (a.household_id for a in alerts))
        self._s.commit()
        return alerts

    def home_alert(self, alert_id: int) -> HomeAlert:
        """One visible home alert; audited. Raises :class:`NotFound`."""
        alert = self._visible_home_alert(alert_id)
        record(self._s, self._actor, AuditAction.READ_HOME_ALERT, household_id=alert.household_id,
               alert_id=alert.id)
        self._s.commit()
        return alert

    def _may_act_on_home_alert(self, alert_id: int) -> None:
        if self.principal.role not in (Role.STAFF, Role.CAREGIVER) or not self.principal.person_id:
            raise Forbidden("this key may not acknowledge or close home alerts")
        self._visible_home_alert(alert_id)
        self._s.rollback()   # end this read before the engine's own transaction locks the row

    def acknowledge_home_alert(self, escalation: Escalation, alert_id: int) -> HomeAlert:
        """Acknowledge a visible home alert as the principal's person (staff or caregiver); audited.

        Raises :class:`Forbidden` (resident, grafana), :class:`NotFound`, and the engine's
        :class:`~vigie.alerts.router.AlertResolvedError`.
        """
        self._may_act_on_home_alert(alert_id)
        alert = escalation.acknowledge(alert_id, self.principal.person_id, staff=self.principal.role is Role.STAFF)
        record(self._s, self._actor, AuditAction.ACKNOWLEDGE_HOME_ALERT, household_id=alert.household_id,
               alert_id=alert.id)
        self._s.commit()
        return alert

    def resolve_home_alert(self, escalation: Escalation, alert_id: int) -> HomeAlert:
        """Close a visible, acknowledged home alert (staff or caregiver); audited.

        Raises :class:`Forbidden`, :class:`NotFound`, and the engine's
        :class:`~vigie.alerts.escalation.AlertNotAcknowledgedError`.
        """
        self._may_act_on_home_alert(alert_id)
        alert = escalation.resolve(alert_id, self.principal.person_id)
        record(self._s, self._actor, AuditAction.RESOLVE_HOME_ALERT, household_id=alert.household_id,
               alert_id=alert.id)
        self._s.commit()
        return alert

    # --- buildings, staff findings and weekly heating reports (staff and grafana of the commune) ---
    def _commune(self) -> str:
        if self.principal.role not in (Role.STAFF, Role.GRAFANA) or not self.principal.commune:
            raise Forbidden("buildings, findings and heating reports are for staff and grafana keys")
        return self.principal.commune

    def buildings(self) -> list[Building]:
        """The commune's buildings, by id. Not audited: no personal data."""
        return list(self._s.scalars(select(Building).where(Building.commune == self._commune()).order_by(Building.id)))

    def findings(self, status: str | None = None, building_id: str | None = None) -> list[FacilityFinding]:
        """The commune's staff findings (heating faults, device problems), newest first. Not audited:
        building and device ids only. Raises :class:`Forbidden` for residents and caregivers."""
        return list_findings(self._s, communes=[self._commune()],
                             status=str(AlertStatus(status)) if status else None, building_id=building_id)

    def acknowledge_finding(self, finding_id: int) -> FacilityFinding:
        """Take a finding of the commune in hand (staff only; acknowledging twice is harmless).
        Raises :class:`Forbidden` for other roles, :class:`NotFound`."""
        commune = self._commune()
        if self.principal.role is not Role.STAFF:
            raise Forbidden("this key is read-only")
        row = self._s.get(FacilityFinding, finding_id)
        if row is None or row.commune != commune:
            raise NotFound("unknown finding")
        acknowledge_finding(self._s, finding_id, self.principal.person_id or self.principal.key_id)
        self._s.commit()
        return row

    def heating_reports(self, building_id: str, week_start=None) -> list[HeatingReport]:
        """A building's weekly heating reports, newest first (``week_start``: that week's only).
        Raises :class:`Forbidden` for residents and caregivers, :class:`NotFound` for a building
        of another commune or none."""
        commune = self._commune()
        building = self._s.get(Building, building_id)
        if building is None or building.commune != commune:
            raise NotFound("unknown building")
        query = select(HeatingReport).where(HeatingReport.building_id == building_id)
        if week_start is not None:
            query = query.where(HeatingReport.week_start == week_start)
        return list(self._s.scalars(query.order_by(HeatingReport.week_start.desc())))
