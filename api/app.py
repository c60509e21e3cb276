"""The HTTP API (FastAPI): meters, consumption, alerts and acknowledgement, health.

OpenAPI documentation is served at ``/docs`` and ``/openapi.json``.
"""


import socket
from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, HTTPException, Path, Query
from fastapi.responses import JSONResponse
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from vigie.alerts.models import Alert, AlertStatus
from vigie.api.schemas import (AckIn, AlertOut, ComponentHealth, ConsumptionOut, ConsumptionPoint, HealthOut,
                               MeterOut)
from vigie.context import AppContext
from vigie.registry import Meter
from vigie.store import StoreError


def _tcp_ok(host: str, port: int, timeout: float = 1.0) -> tuple[bool, str]:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True, ""
    except OSError as exc:
        return False, str(exc)


# Alert ids are 64-bit integers in every supported database.
AlertId = Annotated[int, Path(ge=1, le=2**63 - 1, description="Alert id")]


def create_app(ctx: AppContext, ingestor=None) -> FastAPI:
    """The API over ``ctx``'s stores. ``ingestor`` (optional, the in-process ingestor) adds its
    pending and dead-letter counts to ``/health``."""
    app = FastAPI(title="Vigie", version="0.1.0",
                  description="Water meters, leak alerts and acknowledgements for a commune.")

    def session():
        with ctx.sessions() as s:
            yield s

    SessionDep = Annotated[Session, Depends(session)]

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

    @app.get("/meters", response_model=list[MeterOut], tags=["water"])
    def list_meters(s: SessionDep) -> list[MeterOut]:
        """Every registered meter with its count of unresolved alerts."""
        open_counts = dict(s.execute(
            select(Alert.meter_id, func.count()).where(Alert.status != AlertStatus.RESOLVED)
            .group_by(Alert.meter_id)).all())
        return [MeterOut(id=m.id, household_id=m.household_id, driver=m.driver, open_alerts=open_counts.get(m.id, 0))
                for m in s.scalars(select(Meter).order_by(Meter.id))]

    @app.get("/meters/{meter_id}/consumption", response_model=ConsumptionOut, tags=["water"],
             responses={404: {"description": "Unknown meter"}})
    def consumption(
        meter_id: str, s: SessionDep,
        start: Annotated[datetime, Query(description="Start, ISO 8601 (local time if no offset)")],
        end: Annotated[datetime, Query(description="End (exclusive), ISO 8601")],
        resolution: Literal["hour", "day"] = "hour",
    ) -> ConsumptionOut:
        """Consumption per local hour or day, computed from the cumulative index (L)."""
        if s.get(Meter, meter_id) is None:
            raise HTTPException(404, "unknown meter")
        tz = ctx.tz
        start = start if start.tzinfo else start.replace(tzinfo=tz)
        end = end if end.tzinfo else end.replace(tzinfo=tz)
        if end <= start:
            raise HTTPException(422, "end must be after start")
        if end - start > timedelta(days=400):
            raise HTTPException(422, "at most 400 days per request")
        from vigie.analytics.consumption import meter_consumption

        try:
            frame = meter_consumption(ctx.store, meter_id, start, end, resolution, ctx.settings)
        except StoreError as exc:
            raise HTTPException(503, f"time-series store unavailable: {exc}")
        points = [ConsumptionPoint(start=row.start, volume_l=row.volume_l, coverage=row.coverage)
                  for row in frame.itertuples(index=False)]
        return ConsumptionOut(meter_id=meter_id, resolution=resolution, timezone=ctx.settings.timezone,
                              points=points)

    @app.get("/alerts", response_model=list[AlertOut], tags=["alerts"])
    def alerts(s: SessionDep, status: Literal["open", "acknowledged", "resolved"] | None = None,
               meter_id: str | None = None) -> list[AlertOut]:
        """Alerts, newest first, optionally filtered by status and meter."""
        from vigie.alerts.router import list_alerts

        alerts = list_alerts(s, status=status, meter_ids=[meter_id] if meter_id else None)
        return [AlertOut.model_validate(a) for a in alerts]

    @app.get("/alerts/{alert_id}", response_model=AlertOut, tags=["alerts"],
             responses={404: {"description": "Unknown alert"}})
    def get_alert(alert_id: AlertId, s: SessionDep) -> AlertOut:
        a = s.get(Alert, alert_id)
        if a is None:
            raise HTTPException(404, "unknown alert")
        return AlertOut.model_validate(a)

    @app.post("/alerts/{alert_id}/ack", response_model=AlertOut, tags=["alerts"],
              responses={404: {"description": "Unknown alert"}, 409: {"description": "Alert already resolved"}})
    def acknowledge(alert_id: AlertId, body: AckIn) -> AlertOut:
        """Acknowledge an alert: reminders stop; acknowledging twice is harmless."""
        from vigie.alerts.router import AlertRouter

        router = AlertRouter(ctx.sessions, ctx.settings)
        try:
            alert = router.acknowledge(alert_id, body.by)
        except LookupError:
            raise HTTPException(404, "unknown alert")
        except ValueError as exc:
            raise HTTPException(409, str(exc))
        return AlertOut.model_validate(alert)

    return app
