"""Response and request bodies of the HTTP API (pydantic models; the OpenAPI schema comes from them)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator


class MeterOut(BaseModel):
    id: str
    household_id: str | None
    driver: str | None
    open_alerts: int = Field(description="Alerts of this meter not yet resolved")


class ConsumptionPoint(BaseModel):
    start: datetime = Field(description="Bucket start, local time with offset")
    volume_l: float | None = Field(description="Consumption in the bucket, L; null where no data covers it")
    coverage: float = Field(description="Fraction of the bucket covered by readings, 0–1")


class ConsumptionOut(BaseModel):
    meter_id: str
    resolution: Literal["hour", "day"]
    timezone: str
    points: list[ConsumptionPoint]


class AlertOut(BaseModel):
    id: int
    meter_id: str
    household_id: str | None
    kind: str
    status: str
    first_day: date
    last_day: date
    rate_l_per_h: float | None
    night_flow_l_per_h: float | None
    volume_l: float | None
    detail: str
    opened_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_day: date | None

    model_config = {"from_attributes": True}


class HomeAlertOut(BaseModel):
    """An unusual-behaviour alert of an assisted-living home and where its escalation stands."""

    id: int
    household_id: str
    kind: str = Field(description="inactivity, no_wakeup, long_bathroom, night_exit, decline, water_leak, "
                      "sensor_silent")
    severity: Literal["high", "medium", "low"]
    sensor_id: str | None = Field(description="The sensor concerned, if any")
    start: datetime = Field(description="When the condition began (threshold crossed), UTC")
    summary: str = Field(description="The evidence in one line, in the service's language and time zone")
    evidence: dict[str, Any] = Field(description="Last activity time and room, learned normal, threshold, unit")
    status: Literal["open", "acknowledged", "resolved"]
    opened_at: datetime
    condition_cleared_at: datetime | None = Field(description="The detectors stopped reporting it; for "
                                                  "possible-fall kinds a person still closes it")
    acknowledged_at: datetime | None
    acknowledged_by: str | None = Field(description="Person id of the acknowledger")
    acknowledged_as: str | None = Field(description="What others are told: a relation, caregiver or staff")
    resolved_at: datetime | None
    escalation_steps: int = Field(description="Escalation steps taken so far (levels called, repeats)")

    model_config = {"from_attributes": True}

    @field_validator("sensor_id", mode="before")
    @classmethod
    def _no_sensor(cls, v):
        return v or None


class HouseholdStatusOut(BaseModel):
    """What a caregiver may know of a home: no address, no consumption history, no sensor events."""

    household_id: str
    open_alerts: int = Field(description="Water alerts of the household not yet resolved (open or acknowledged)")
    alert_kinds: list[str] = Field(description="Rules of those water alerts, e.g. continuous_flow")
    unacknowledged: int = Field(description="Of those water alerts, the ones nobody has acknowledged yet")
    last_reading_at: datetime | None = Field(description="Latest reading of any of its meters, UTC; "
                                             "null when none was ever received")
    home_alerts_open: int = Field(description="Home (assisted-living) alerts not yet resolved (open or "
                                  "acknowledged); technical ones (sensor_silent) only for staff and grafana keys")
    home_alert_kinds: list[str] = Field(description="Kinds of those home alerts, e.g. inactivity, long_bathroom")
    home_alerts_unacknowledged: int = Field(description="Of those home alerts, the ones nobody has taken on yet "
                                            "(their escalation is still calling people)")
    last_sensor_report_at: datetime | None = Field(description="Latest report of any of the home's sensors "
                                                   "(heartbeats included), UTC to the millisecond; null when "
                                                   "none is stored (raw home events are kept 90 days by default)")


class ComponentHealth(BaseModel):
    ok: bool
    detail: str = ""


class HealthOut(BaseModel):
    status: Literal["ok", "degraded"]
    influxdb: ComponentHealth
    broker: ComponentHealth
    database: ComponentHealth
    ingest_pending: int | None = Field(None, description="Readings spooled on disk, not yet in InfluxDB")
    ingest_received: int | None = None
    dead_letters: int | None = None


class BuildingOut(BaseModel):
    """A heated public building of the key's commune."""

    id: str
    name: str | None
    commune: str


class FindingOut(BaseModel):
    """A staff finding: a heating fault of a room or building, or a device problem."""

    id: int
    family: Literal["heating", "water", "home"]
    kind: str = Field(description="window_open_heating, unoccupied_heating, setpoint_above_comfort, "
                      "cannot_reach_setpoint, energy_trend (heating); silent, low_battery, clock_drift (devices)")
    subject: str = Field(description="What it is about: <building>/<room>, <building>, or <family>:<device>")
    label: str = Field(description="How staff read the subject: building and room names, device ids")
    building_id: str | None
    room_id: str | None
    device_id: str | None
    start: datetime = Field(description="When the condition was first seen, UTC")
    end: datetime = Field(description="When it was last seen, UTC")
    evidence: dict[str, Any] = Field(description="Figures with their unit in the key (valve_pct, wasted_kwh…)")
    status: Literal["open", "acknowledged", "resolved"]
    opened_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None = Field(description="Person or key id of who took it in hand")
    resolved_at: datetime | None = Field(description="When the analysis stopped seeing it")
    digest_id: int | None = Field(description="The staff digest that announced it")


class HeatingReportOut(BaseModel):
    """A building's weekly heating report: energy (kWh), degree-days (DJU base 18 °C), kWh per
    DJU against the previous weeks, energy per room, estimated waste per finding kind and the
    faults open when it was made."""

    building_id: str
    week_start: date = Field(description="The local Monday of the week")
    created_at: datetime
    report: dict[str, Any]
