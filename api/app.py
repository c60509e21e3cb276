"""The HTTP API (FastAPI): meters, consumption, alerts and acknowledgement, home alerts, health.

OpenAPI documentation is served at ``/docs`` and ``/openapi.json``.

Authentication: every endpoint except ``/health``, ``/ready``, ``/metrics`` and the acknowledgement links takes an
API key as ``Authorization: Bearer vigie_<key id>_<secret>`` (:mod:`vigie.auth`; ``vigie keys``);
none or a bad one is 401. What the key's principal may see is decided in one place, the query layer
:mod:`vigie.access`: an object out of its scope is 404 like an absent one, 403 is only for what its
role may never do. ``/ack/{token}`` is authenticated by the signed token itself
(:mod:`vigie.alerts.acklinks`).
"""


import socket
from datetime import date, datetime, timedelta
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from vigie.access import Access, Forbidden, NotFound
from vigie.alerts.acklinks import AckLinks, AlertType, LinkState, secret_key_for
from vigie.alerts.escalation import AlertNotAcknowledgedError, Escalation
from vigie.alerts.messages import evidence_event, pick_language
from vigie.alerts.models import AlertStatus, EscalationStep, HomeAlert
from vigie.alerts.router import AlertResolvedError, AlertRouter
from vigie.api.ack_pages import page
from vigie.api.schemas import (AlertOut, BuildingOut, ComponentHealth, ConsumptionOut, ConsumptionPoint,
                               FindingOut, HealthOut, HeatingReportOut, HomeAlertOut, HouseholdStatusOut, MeterOut)
from vigie.auth import Principal, authenticate
from vigie.context import AppContext
from vigie.metrics import app_registry, exposition
from vigie.registry import Person
from vigie.store import StoreError
from vigie.store.homes import last_report_time
from vigie.store.water import last_reading_times


def _tcp_ok(host: str, port: int, timeout: float = 1.0) -> tuple[bool, str]:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True, ""
    except OSError as exc:
        return False, str(exc)


# Alert ids are 64-bit integers in every supported database.
AlertId = Annotated[int, Path(ge=1, le=2**63 - 1, description="Alert id")]
HomeAlertId = Annotated[int, Path(ge=1, le=2**63 - 1, description="Home alert id")]

_AUTH_ERRORS = {401: {"description": "No API key, or an invalid, expired or revoked one"}}
_NOT_FOUND = {404: {"description": "Unknown, or not visible to this key"}}

# Acknowledgement pages carry the token in their URL: never cache them, never leak it as a referrer.
_LINK_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


def create_app(ctx: AppContext, ingestor=None) -> FastAPI:
    """The API over ``ctx``'s stores. ``ingestor`` (optional, the in-process ingestor) adds its
    pending and dead-letter counts to ``/health``."""
    app = FastAPI(title="Vigie", version="0.1.0",
                  description="Water meters, leak alerts and acknowledgements for a commune.")
    links = AckLinks(secret_key_for(ctx.settings), ctx.settings)
    bearer = HTTPBearer(auto_error=False, scheme_name="ApiKey",
                        description="API key `vigie_<key id>_<secret>` from `vigie keys create`")

    def session():
        with ctx.sessions() as s:
            yield s

    SessionDep = Annotated[Session, Depends(session)]

    def principal(s: SessionDep,
                  creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Principal:
        found = authenticate(s, creds.credentials) if creds is not None else None
        if found is None:
            raise HTTPException(401, "missing or invalid API key", headers={"WWW-Authenticate": "Bearer"})
        return found

    def access(s: SessionDep, p: Annotated[Principal, Depends(principal)]) -> Access:
        return Access(s, p)

    AccessDep = Annotated[Access, Depends(access)]

    @app.exception_handler(NotFound)
    def _not_found(_request: Request, exc: NotFound):
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(Forbidden)
    def _forbidden(_request: Request, exc: Forbidden):
        return JSONResponse({"detail": str(exc)}, status_code=403)

    def _health() -> HealthOut:
        influx_ok = ctx.store.ping()
        broker_ok, broker_err = _tcp_ok(ctx.settings.mqtt_host, ctx.settings.mqtt_port)
        if ingestor is not None:
            broker_ok = broker_ok and bool(getattr(ingestor, "connected", True))
        try:
            with ctx.sessions() as s:
                s.execute(text("SELECT 1"))
            db = ComponentHealth(ok=True)
        except Exception as exc:  # any driver error means "not ready"
            db = ComponentHealth(ok=False, detail=type(exc).__name__)
        out = HealthOut(
            status="ok" if influx_ok and broker_ok and db.ok else "degraded",
            influxdb=ComponentHealth(ok=influx_ok, detail="" if influx_ok else "no answer to /ping"),
            broker=ComponentHealth(ok=broker_ok, detail=broker_err), database=db)
        if ingestor is not None:
            st = ingestor.stats()
            out.ingest_pending = st.pending
            out.ingest_received = st.received
            out.dead_letters = st.dead_letters_total
        return out

    @app.get("/health", response_model=HealthOut, tags=["service"])
    def health() -> HealthOut:
        """Liveness with the state of each dependency; always 200 while the process runs."""
        return _health()

    @app.get("/ready", response_model=HealthOut, tags=["service"],
             responses={503: {"model": HealthOut, "description": "A dependency is unreachable"}})
    def ready():
        """Readiness: 200 when InfluxDB, the broker and the database answer, else 503."""
        h = _health()
        return JSONResponse(h.model_dump(mode="json"), status_code=200 if h.status == "ok" else 503)

    metrics_registry = app_registry(ingestor)

    @app.get("/metrics", tags=["service"], response_class=Response,
             responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}})
    def metrics(request: Request) -> Response:
        """Prometheus metrics (docs/metrics.md): ingest rate, dead letters, buffer depth, detector run
        times, notifications by outcome. No API key: counts only, keep it on the internal network."""
        body, content_type = exposition(metrics_registry, request.headers.get("accept"))
        return Response(body, media_type=content_type)

    @app.get("/meters", response_model=list[MeterOut], tags=["water"], responses=_AUTH_ERRORS)
    def list_meters(acc: AccessDep) -> list[MeterOut]:
        """The meters this key may see, with their count of unresolved alerts."""
        return [MeterOut(id=v.meter.id, household_id=v.meter.household_id, driver=v.meter.driver,
                         open_alerts=v.open_alerts) for v in acc.meters()]

    @app.get("/meters/{meter_id}/consumption", response_model=ConsumptionOut, tags=["water"],
             responses={**_AUTH_ERRORS, **_NOT_FOUND,
                        403: {"description": "History of this household not granted to this caregiver"},
                        503: {"description": "Time-series store unavailable"}})
    def consumption(
        meter_id: str, acc: AccessDep,
        start: Annotated[datetime, Query(description="Start, ISO 8601 (local time if no offset)")],
        end: Annotated[datetime, Query(description="End (exclusive), ISO 8601")],
        resolution: Literal["hour", "day"] = "hour",
    ) -> ConsumptionOut:
        """Consumption per local hour or day, computed from the cumulative index (L)."""
        tz = ctx.tz
        start = start if start.tzinfo else start.replace(tzinfo=tz)
        end = end if end.tzinfo else end.replace(tzinfo=tz)
        if end <= start:
            raise HTTPException(422, "end must be after start")
        if end - start > timedelta(days=400):
            raise HTTPException(422, "at most 400 days per request")
        acc.meter_for_history(meter_id)
        from vigie.analytics.consumption import meter_consumption

        try:
            frame = meter_consumption(ctx.store, meter_id, start, end, resolution, ctx.settings)
        except StoreError as exc:
            raise HTTPException(503, f"time-series store unavailable: {exc}")
        points = [ConsumptionPoint(start=row.start, volume_l=row.volume_l, coverage=row.coverage)
                  for row in frame.itertuples(index=False)]
        return ConsumptionOut(meter_id=meter_id, resolution=resolution, timezone=ctx.settings.timezone,
                              points=points)

    @app.get("/alerts", response_model=list[AlertOut], tags=["alerts"], responses=_AUTH_ERRORS)
    def alerts(acc: AccessDep, status: Literal["open", "acknowledged", "resolved"] | None = None,
               meter_id: str | None = None) -> list[AlertOut]:
        """The alerts this key may see, newest first, optionally filtered by status and meter."""
        return [AlertOut.model_validate(a) for a in acc.alerts(status=status, meter_id=meter_id)]

    @app.get("/alerts/{alert_id}", response_model=AlertOut, tags=["alerts"],
             responses={**_AUTH_ERRORS, **_NOT_FOUND})
    def get_alert(alert_id: AlertId, acc: AccessDep) -> AlertOut:
        return AlertOut.model_validate(acc.alert(alert_id))

    @app.post("/alerts/{alert_id}/ack", response_model=AlertOut, tags=["alerts"],
              responses={**_AUTH_ERRORS, **_NOT_FOUND, 403: {"description": "Read-only key (grafana)"},
                         409: {"description": "Alert already resolved"}})
    def acknowledge(alert_id: AlertId, acc: AccessDep) -> AlertOut:
        """Acknowledge an alert as the key's person: reminders stop; acknowledging twice is harmless
        (the first acknowledger stays)."""
        try:
            alert = acc.acknowledge(AlertRouter(ctx.sessions, ctx.settings), alert_id)
        except AlertResolvedError as exc:
            raise HTTPException(409, str(exc))
        return AlertOut.model_validate(alert)

    @app.get("/households/{household_id}/status", response_model=HouseholdStatusOut, tags=["alerts"],
             responses={**_AUTH_ERRORS, **_NOT_FOUND, 503: {"description": "Time-series store unavailable"}})
    def household_status(household_id: str, acc: AccessDep) -> HouseholdStatusOut:
        """A home's minimal status (what caregivers see): unresolved water and home alerts (technical
        home alerts for staff and grafana only), the latest meter reading and sensor report times; no
        address, no consumption, no sensor events."""
        view = acc.household_status(household_id)
        try:
            last = last_reading_times(ctx.store, view.meter_ids)
            last_report = last_report_time(ctx.store, view.household_id)
        except StoreError as exc:
            raise HTTPException(503, f"time-series store unavailable: {exc}")
        return HouseholdStatusOut(
            household_id=view.household_id, open_alerts=len(view.open_alerts),
            alert_kinds=sorted({a.kind for a in view.open_alerts}),
            unacknowledged=sum(a.status == AlertStatus.OPEN for a in view.open_alerts),
            last_reading_at=max(last.values(), default=None),
            home_alerts_open=len(view.open_home_alerts),
            home_alert_kinds=sorted({a.kind for a in view.open_home_alerts}),
            home_alerts_unacknowledged=sum(a.status == AlertStatus.OPEN for a in view.open_home_alerts),
            last_sensor_report_at=last_report)

    def _home_out(alert: HomeAlert) -> HomeAlertOut:
        with ctx.sessions() as s:
            steps = s.scalar(select(func.count()).where(EscalationStep.home_alert_id == alert.id))
        summary = evidence_event(alert.evidence).summary(ctx.settings.language, ctx.settings.timezone)
        return HomeAlertOut.model_validate({**{k: getattr(alert, k) for k in HomeAlertOut.model_fields
                                               if hasattr(alert, k)},
                                            "summary": summary, "escalation_steps": steps})

    _HOME_ACT = {**_AUTH_ERRORS, **_NOT_FOUND,
                 403: {"description": "Only staff and caregivers act on home alerts (residents and grafana read)"}}

    @app.get("/home-alerts", response_model=list[HomeAlertOut], tags=["homes"], responses=_AUTH_ERRORS)
    def home_alerts(acc: AccessDep,
                    status: Literal["open", "acknowledged", "resolved"] | None = None) -> list[HomeAlertOut]:
        """Unusual-behaviour alerts of the homes this key may see, newest first (caregivers: the homes
        they care for, without technical alerts; residents: their own home's; staff and grafana: the
        commune's)."""
        return [_home_out(a) for a in acc.home_alerts(status=status)]

    @app.get("/home-alerts/{alert_id}", response_model=HomeAlertOut, tags=["homes"],
             responses={**_AUTH_ERRORS, **_NOT_FOUND})
    def get_home_alert(alert_id: HomeAlertId, acc: AccessDep) -> HomeAlertOut:
        return _home_out(acc.home_alert(alert_id))

    @app.post("/home-alerts/{alert_id}/ack", response_model=HomeAlertOut, tags=["homes"],
              responses={**_HOME_ACT, 409: {"description": "Alert already resolved"}})
    def acknowledge_home_alert(alert_id: HomeAlertId, acc: AccessDep) -> HomeAlertOut:
        """Take the alert on as the key's person: the escalation stops and everyone already reached is
        told it is handled (by a relation or "staff", never a name). Acknowledging twice is harmless."""
        try:
            alert = acc.acknowledge_home_alert(Escalation(ctx.sessions, ctx.settings), alert_id)
        except AlertResolvedError as exc:
            raise HTTPException(409, str(exc))
        return _home_out(alert)

    @app.post("/home-alerts/{alert_id}/resolve", response_model=HomeAlertOut, tags=["homes"],
              responses={**_HOME_ACT, 409: {"description": "Nobody has acknowledged the alert yet"}})
    def resolve_home_alert(alert_id: HomeAlertId, acc: AccessDep) -> HomeAlertOut:
        """Close an acknowledged alert (the person is fine): everyone reached is told. Closing a closed
        alert is harmless."""
        try:
            alert = acc.resolve_home_alert(Escalation(ctx.sessions, ctx.settings), alert_id)
        except AlertNotAcknowledgedError as exc:
            raise HTTPException(409, str(exc))
        return _home_out(alert)

    # Buildings, staff findings and weekly heating reports: staff and grafana keys of the commune.
    _STAFF_ONLY = {**_AUTH_ERRORS, 403: {"description": "Staff and grafana keys only"}}

    @app.get("/buildings", response_model=list[BuildingOut], tags=["heating"], responses=_STAFF_ONLY)
    def buildings(acc: AccessDep) -> list[BuildingOut]:
        """The heated public buildings of the key's commune."""
        return [BuildingOut(id=b.id, name=b.name, commune=b.commune) for b in acc.buildings()]

    @app.get("/findings", response_model=list[FindingOut], tags=["heating"], responses=_STAFF_ONLY)
    def findings(acc: AccessDep, status: Literal["open", "acknowledged", "resolved"] | None = None,
                 building_id: str | None = None) -> list[FindingOut]:
        """Heating faults and device problems of the key's commune, newest first: what the daily
        staff job found and announced in its digests (open while the analysis still sees them)."""
        return [FindingOut.model_validate(f, from_attributes=True) for f in acc.findings(status, building_id)]

    @app.post("/findings/{finding_id}/ack", response_model=FindingOut, tags=["heating"],
              responses={**_STAFF_ONLY, **_NOT_FOUND})
    def acknowledge_finding(finding_id: Annotated[int, Path(ge=1, le=2**63 - 1)], acc: AccessDep) -> FindingOut:
        """Take a finding in hand (staff keys). It is no longer recalled as unhandled and closes by
        itself once the analysis no longer sees it. Acknowledging twice is harmless."""
        return FindingOut.model_validate(acc.acknowledge_finding(finding_id), from_attributes=True)

    @app.get("/buildings/{building_id}/reports", response_model=list[HeatingReportOut], tags=["heating"],
             responses={**_STAFF_ONLY, **_NOT_FOUND})
    def heating_reports(building_id: str, acc: AccessDep,
                        week_start: Annotated[date | None, Query(description="Only the week starting on this "
                                                                 "Monday")] = None) -> list[HeatingReportOut]:
        """A building's weekly heating reports, newest first (made every Monday for the week before)."""
        if week_start is not None and week_start.weekday() != 0:
            raise HTTPException(422, f"week_start {week_start} is not a Monday (reports cover Monday to Sunday)")
        return [HeatingReportOut(building_id=r.building_id, week_start=r.week_start, created_at=r.created_at,
                                 report=r.body) for r in acc.heating_reports(building_id, week_start)]

    # Acknowledgement links. Mail scanners and link previews fetch every URL in a message with GET,
    # so GET only shows a confirmation page with one button; the POST that button sends
    # acknowledges. Otherwise a scanner would spend the single-use link and acknowledge for the person.
    def _link_page(state: LinkState, person_id: str | None, alert_id: int | None,
                   alert_type: AlertType = AlertType.WATER) -> HTMLResponse:
        lang = ctx.settings.language
        if person_id is not None:
            with ctx.sessions() as s:
                person = s.get(Person, person_id)
                lang = pick_language(person.language if person else None, ctx.settings)
        shown = alert_id if state in (LinkState.VALID, LinkState.ACKNOWLEDGED, LinkState.RESOLVED) else None
        html, status = page(state, lang, shown, alert_type)
        return HTMLResponse(html, status_code=status, headers=_LINK_HEADERS)

    @app.get("/ack/{token}", response_class=HTMLResponse, tags=["links"],
             responses={400: {"description": "Invalid link"}, 409: {"description": "Alert already closed"},
                        410: {"description": "Link used or expired"}})
    def ack_link_page(token: str) -> HTMLResponse:
        """The page an acknowledgement link in a message opens: a confirmation button (changes nothing)."""
        check = links.check(ctx.sessions, token)
        return _link_page(check.state, check.person_id, check.alert_id, check.alert_type)

    @app.post("/ack/{token}", response_class=HTMLResponse, tags=["links"],
              responses={400: {"description": "Invalid link"}, 409: {"description": "Alert already closed"},
                         410: {"description": "Link used or expired"}})
    def ack_link_confirm(token: str) -> HTMLResponse:
        """Acknowledge the link's alert as the link's recipient; the link is spent."""
        result = links.redeem(ctx.sessions, token)
        return _link_page(result.state, result.person_id, result.alert_id, result.alert_type)

    return app
