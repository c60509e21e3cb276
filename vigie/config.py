"""Service configuration: environment variables ``VIGIE_*``, then a ``.env`` file in the working
directory (``deploy/start-services.sh`` writes the broker URL there), then an optional YAML file,
then defaults.

The file is named by ``VIGIE_CONFIG`` (YAML, keys as the field names below, lower case).
Every setting is documented in ``docs/configuration.md``; a setting error names the variable.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

if TYPE_CHECKING:  # the store imports nothing of this module, but keep settings import-light
    from vigie.store.influx import RetentionPolicy


class _YamlFileSource(PydanticBaseSettingsSource):
    """Reads the YAML file named by ``VIGIE_CONFIG``, if any."""

    def get_field_value(self, field, field_name):  # pragma: no cover - unused, __call__ does the work
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = os.environ.get("VIGIE_CONFIG")
        if not path:
            return {}
        try:
            with open(path, encoding="utf-8") as fh:
                data = yaml.safe_load(fh) or {}
        except yaml.YAMLError as exc:
            raise ValueError(f"VIGIE_CONFIG={path}: not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError(f"VIGIE_CONFIG={path}: expected a mapping of setting names to values")
        # A misspelt name would otherwise be ignored silently and its default used.
        unknown = sorted(str(k) for k in data if k not in self.settings_cls.model_fields)
        if unknown:
            raise ValueError(f"VIGIE_CONFIG={path}: unknown setting(s) "
                             f"{', '.join(_with_suggestion(k, self.settings_cls.model_fields) for k in unknown)} "
                             "(names as in docs/configuration.md, lower case, without VIGIE_)")
        return data


class Settings(BaseSettings):
    """All of Vigie's settings. Environment: ``VIGIE_<NAME>`` (e.g. ``VIGIE_MQTT_URL``)."""

    # An empty variable counts as unset (its default applies): docker-compose.yml passes optional
    # settings as ${VIGIE_X:-}, and an empty secret key or SMTP URL must not count as configured.
    model_config = SettingsConfigDict(env_prefix="VIGIE_", extra="ignore", env_file=".env",
                                      env_file_encoding="utf-8", env_ignore_empty=True)

    # --- MQTT -----------------------------------------------------------------------------
    mqtt_url: str = Field("mqtt://127.0.0.1:1883", description="Broker URL, mqtt:// or mqtts://")
    mqtt_username: str | None = Field(None, description="Broker user of the ingestor (service account)")
    mqtt_password: SecretStr | None = Field(None, description="Broker password (secret)")
    mqtt_ca_file: Path | None = Field(None, description="CA certificate(s), PEM, that sign the broker's certificate "
                                      "(mqtts://); default: the system's CA store")
    simulator_mqtt_username: str | None = Field(None, description="Broker user of `vigie simulate` and "
                                                "`vigie replay` (a test gateway, see docs/security.md)")
    simulator_mqtt_password: SecretStr | None = Field(None, description="Its password (secret)")
    mqtt_client_id: str = Field("vigie-ingest", description="Durable session identity of the ingestor")
    mqtt_session_expiry_s: int = Field(7 * 24 * 3600, ge=0, le=4294967295, description="Session Expiry Interval (MQTT 5), s")
    mqtt_protocol: Literal["auto", "5", "3.1.1"] = Field(
        "auto", description="MQTT version the ingestor and the simulators speak: 5, 3.1.1, or auto (3.1.1 on "
                            "Vigie's embedded broker, which `vigie demo` starts when VIGIE_MQTT_URL is set nowhere; "
                            "5 otherwise). On 3.1.1 the ingestor's session is persistent (clean session 0) for as "
                            "long as the broker keeps it (no Session Expiry), a publish the broker refuses goes "
                            "unnoticed (no PUBACK reason code), and VIGIE_INGEST_WORKERS must be 1 (no shared "
                            "subscriptions)")
    water_topics: list[str] = Field(
        default_factory=lambda: ["wmbusmeters/#=wmbusmeters", "vigie/water/#=native"],
        description="Topic filter=decoder pairs the ingestor subscribes to (QoS 1)",
    )
    home_topics: list[str] = Field(
        default_factory=lambda: ["zigbee2mqtt/#=zigbee2mqtt"],
        description="Assisted-living homes: topic filter=decoder pairs (QoS 1), filters <base>/# with the "
                    "zigbee2mqtt base topic; each home's bridge publishes under <base>/<home prefix>/ "
                    "(docs/homes.md)",
    )
    heating_topics: list[str] = Field(
        default_factory=lambda: ["zigbee2mqtt-heating/#=zigbee2mqtt_heating"],
        description="Town-hall heating: topic filter=decoder pairs (QoS 1), filters <base>/# with the "
                    "zigbee2mqtt base topic; each building's bridge publishes under <base>/<building prefix>/",
    )
    lorawan_topics: list[str] = Field(
        default_factory=lambda: ["v3/+/devices/+/up=tts_v3", "application/+/device/+/event/up=chirpstack_v4"],
        description="LoRaWAN network servers' uplinks (The Things Stack v3, ChirpStack v4): topic "
                    "filter=decoder pairs (QoS 1); devices mapped by DevEUI through the registry's lorawan section",
    )
    ingest_workers: int = Field(1, ge=1, le=64, description="Ingestor processes; above 1 each has its own "
                                "session <mqtt_client_id>-<i> and <data_dir>/worker-<i> and the topics are "
                                "MQTT 5 shared subscriptions $share/<mqtt_client_id>/<filter>")

    # --- InfluxDB (v1 HTTP API) -------------------------------------------------------------
    influx_url: str = Field("http://127.0.0.1:8086", description="InfluxDB base URL (v1 HTTP API)")
    influx_database: str = Field("vigie", description="InfluxDB database (2.x: the DBRP-mapped name)")
    influx_username: str | None = Field(None, description="InfluxDB user, if authentication is on")
    influx_password: SecretStr | None = Field(None, description="InfluxDB password (secret)")
    influx_retention_policy: str = Field("vigie_raw", description="Retention policy for raw readings")
    influx_retention_duration: str = Field("INF", description="How long raw readings are kept: INF or "
                                           "whole h/d/w, e.g. 730d (replays of old data sets need INF)")
    influx_aggregates_policy: str = Field("vigie_aggregates", description="Retention policy for daily "
                                          "results (J+1 checks, daily volumes)")
    influx_aggregates_duration: str = Field("INF", description="How long daily results are kept "
                                            "(they feed the Warsmann comparison with past periods)")
    influx_events_policy: str = Field("vigie_events", description="Retention policy for raw "
                                      "assisted-living sensor events")
    influx_events_duration: str = Field("90d", description="How long raw assisted-living events are "
                                        "kept (personal data: keep it short)")
    write_batch_size: int = Field(5000, ge=1, description="Points per /write request at most")
    write_batch_interval_s: float = Field(1.0, gt=0, description="Flush a partial batch after this long")

    # --- Time-series store (vigie.store.factory) -------------------------------------------
    store: Literal["influxdb", "embedded", "auto"] = Field(
        "influxdb", description="Time-series store: influxdb (the server at VIGIE_INFLUX_URL: production), "
                                "embedded (a SQLite file, VIGIE_STORE_FILE, answering as InfluxDB does: `vigie demo`, "
                                "a trial on one machine), or auto (embedded when VIGIE_INFLUX_URL is set nowhere). "
                                "The VIGIE_INFLUX_DATABASE and retention settings apply to both")
    store_file: Path | None = Field(None, description="The embedded store's SQLite file (default "
                                    "<data_dir>/timeseries.sqlite3)")

    # --- Relational store -----------------------------------------------------------------
    database_url: str = Field("sqlite:///vigie.db", description="SQLAlchemy URL for registry and alerts")

    # --- Local state ----------------------------------------------------------------------
    data_dir: Path = Field(Path("var"), description="Spool (disk buffer) and dead-letter store")
    log_format: Literal["text", "json"] = Field("text", description="Logs on stderr: text (one line per record) "
                                                "or json (one JSON object per line: time, level, logger, "
                                                "message and the record's extra fields), for a log collector")

    # --- Analytics ------------------------------------------------------------------------
    timezone: str = Field("Europe/Paris", description="IANA zone of the commune: local days, messages")
    leak_check_time: str = Field("06:00", description="Daily J+1 run, local HH:MM")
    min_coverage: float = Field(0.8, gt=0, le=1, description="Fraction of the day a meter's readings must cover")
    max_interval_h: float = Field(3.0, gt=0, description="Longer gaps between readings count as missing data")
    zero_flow_tolerance_l_per_h: float = Field(0.0, ge=0, description="Interval flow at or below this is zero")
    reverse_tolerance_l: float = Field(5.0, ge=0, description="Index drops up to this are jitter or reverse flow "
                                       "(zero consumption); larger drops are a meter reset or replacement")
    max_flow_l_per_h: float = Field(10000.0, gt=0, description="A flow above this between two readings is not "
                                    "water but a replaced or corrupt index: that interval is unknown")
    burst_flow_l_per_h: float = Field(500.0, gt=0, description="Burst rule: flow above this …")
    burst_min_duration_min: float = Field(30.0, gt=0, description="… for at least this long")
    abnormal_period_days: int = Field(7, ge=1, description="Loi Warsmann check: period length, days")
    abnormal_history_periods: int = Field(3, ge=1, description="Comparable past periods needed for an average")
    abnormal_min_excess_l_per_day: float = Field(100.0, ge=0, description="Ignore excess below this, L/day")
    # Assisted-living homes (vigie.home_jobs): the minute tick reads the recent events, detects with
    # the routine learned once a day, and escalates.
    home_window_days: int = Field(28, ge=1, le=90, description="Homes: days of history a routine is learned "
                                  "from (rolling window, at most the events retention)")
    home_learn_time: str = Field("03:30", description="Homes: daily re-learning of every routine, local HH:MM "
                                 "(and at start); the minute tick uses the latest routine meanwhile")
    home_tick_s: int = Field(60, ge=10, le=600, description="Homes: detection and escalation tick period, s "
                             "(an event is raised within one tick of its threshold)")
    home_lookback_h: float = Field(24.0, ge=12.0, description="Homes: recent events the tick keeps in memory, "
                                   "h (≥ the 12 h inactivity ceiling; also covers a long outing)")
    home_late_s: float = Field(600.0, ge=0, description="Homes: each tick re-reads this many seconds before its "
                               "previous read, so reports stored late (ingest batching) are seen")
    home_resync_min: float = Field(60.0, gt=0, description="Homes: re-read the whole lookback this often, min "
                                   "(reports stored very late, e.g. a spool replayed after an outage)")
    # Town-hall heating rooms (vigie.heating_registry): given to rooms that name none when loaded.
    # French Code de l'énergie R241-26 caps occupied public buildings at 19 °C on average;
    # R241-27 sets 16 °C for a stay empty of 24–48 h.
    heating_comfort_c: float = Field(19.0, ge=5, le=30, description="Heating: comfort temperature of an "
                                     "occupied room, °C, for registry rooms that set no comfort_c")
    heating_setback_c: float = Field(16.0, ge=5, le=30, description="Heating: set-back temperature of an "
                                     "unoccupied room, °C, for registry rooms that set no setback_c")
    # Heating analytics (vigie.analytics.heating.HeatingParams, same names without the prefix).
    heating_step_min: int = Field(15, ge=1, le=60, description="Heating: grid step of the analytics, min "
                                  "(a divisor of 60)")
    heating_max_age_h: float = Field(3.0, gt=0, description="Heating: a device's last value is carried forward "
                                     "this long, h (longer for a device whose expected interval × 3 is longer)")
    heating_preheat_min: float = Field(60.0, ge=0, description="Heating: heating this long before a room's "
                                       "occupancy begins is pre-heat, not unoccupied heating, min")
    heating_tolerance_c: float = Field(0.5, ge=0, description="Heating: allowed above the comfort (occupied) or "
                                       "set-back (unoccupied) temperature, °C")
    heating_valve_open_pct: float = Field(10.0, ge=0, le=100, description="Heating: a radiator is heating when "
                                          "its valve is open at least this much, %")
    heating_min_duration_min: float = Field(30.0, ge=0, description="Heating: open-window, unoccupied and "
                                            "setpoint findings need this much flagged time, min")
    heating_cannot_reach_valve_pct: float = Field(80.0, ge=0, le=100, description="Heating: a radiator that "
                                                  "cannot reach its setpoint has its valve open at least this much…")
    heating_cannot_reach_gap_c: float = Field(2.0, ge=0, description="Heating: …the room at least this far "
                                              "below the setpoint, °C…")
    heating_cannot_reach_min_h: float = Field(3.0, gt=0, description="Heating: …for at least this long, h "
                                              "(longer than a pre-heat)")
    heating_trend_factor: float = Field(1.3, gt=0, description="Heating: energy trend when the last 7 days' "
                                        "kWh per degree-day exceed the previous weeks' mean × this")
    heating_trend_min_weeks: int = Field(2, ge=1, description="Heating: previous weeks the energy trend needs")
    heating_outdoor_csv: Path | None = Field(None, description="Heating: outdoor temperature series (CSV time,"
                                             "temperature_c; ISO 8601 times with offset) for buildings without "
                                             "an outdoor sensor")
    heating_occupancy: Literal["schedule", "observed"] = Field(
        "schedule", description="Heating: a room's occupancy from its registry schedule (holidays, closures) or "
                                "from its devices' observed `occupied` reports")
    heating_history_days: int = Field(28, ge=7, le=366, description="Heating: days read before a checked day, "
                                      "for the energy trend against the previous weeks")
    heating_check_time: str = Field("06:30", description="Heating and device health: daily run for the day "
                                    "before and the staff digest, local HH:MM; on Mondays also the weekly "
                                    "report of each building for the week before")

    # Device health of every family (vigie.analytics.devices, `vigie devices`, docs/devices.md).
    device_silent_factor: float = Field(3.0, gt=0, description="Devices: silent after no message for the "
                                        "expected interval × this (water, home sensors, heating)")
    device_water_interval_s: float = Field(3600.0, gt=0, description="Devices: expected interval between two "
                                           "readings of a water meter, s (the registry has none per meter)")
    device_battery_pct: float = Field(20.0, ge=0, le=100, description="Devices: low battery at or below this "
                                      "percentage (or the device's own low-battery flag)")
    device_clock_drift_s: float = Field(300.0, gt=0, description="Devices: clock drift when the device's clock "
                                        "is off by this much or more (device time − reception time, either sign), s")
    device_clock_min_span_s: float = Field(3600.0, ge=0, description="Devices: clock drift only once the offsets "
                                           "have stayed at or past VIGIE_DEVICE_CLOCK_DRIFT_S over at least this "
                                           "much reception time (the drift's first to latest point), s: a backlog "
                                           "delivering old records within seconds is not a drift")

    # --- Alerts and delivery --------------------------------------------------------------
    language: Literal["fr", "en"] = Field("fr", description="Default message language (fr or en)")
    water_price_eur_per_m3: float = Field(4.34, ge=0, description="Tariff used for cost estimates, €/m³")
    renotify_after_days: int = Field(3, ge=1, description="Remind an unacknowledged open alert after N days")
    delivery_max_attempts: int = Field(6, ge=1, description="Delivery tries before a notification is failed")
    delivery_backoff_s: float = Field(60.0, gt=0, description="First retry delay; doubles each attempt")
    delivery_backoff_max_s: float = Field(21600.0, gt=0, description="Longest retry delay, s")
    notify_resolved: bool = Field(True, description="Tell residents when a leak alert resolves")
    public_url: str | None = Field(None, description="Base URL residents reach Vigie at (links in messages)")
    registry_file: Path | None = Field(None, description="YAML/CSV registry loaded at start")
    smtp_url: str | None = Field(None, description="Apprise e-mail base URL for residents' e-mail "
                                 "(e.g. mailtos://user:pass@smtp.example.org?from=vigie@commune.example), or "
                                 "outbox:///ABSOLUTE/DIR to write each e-mail to a file there instead")
    escalation_wait_min: float = Field(10.0, gt=0, description="Home alerts: wait before the next escalation "
                                       "level (and between repeats of the last), min; a home may set its own")
    escalation_reminder_min: float = Field(15.0, gt=0, description="Home alerts: remind everyone notified this "
                                           "often until someone acknowledges, min; a home may set its own")

    # --- API ------------------------------------------------------------------------------
    api_host: str = Field("127.0.0.1", description="API listen address")
    api_port: int = Field(8000, ge=1, le=65535, description="API listen port")
    commune: str = Field("default", min_length=1, max_length=64,
                         description="Commune given to registry households that name none (API scoping)")
    secret_key: SecretStr | None = Field(None, description="Key signing acknowledgement links (secret); when "
                                         "unset, one is generated once into VIGIE_DATA_DIR/secret_key (mode 0600)")
    ack_link_ttl_h: float = Field(72.0, gt=0, description="Acknowledgement links in messages expire after "
                                  "this many hours")

    @field_validator("mqtt_protocol", mode="before")
    @classmethod
    def _mqtt_protocol_text(cls, v):
        # YAML reads `mqtt_protocol: 5` as a number
        return str(v) if isinstance(v, (int, float)) else v

    @field_validator("mqtt_url")
    @classmethod
    def _check_mqtt_url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError(f"VIGIE_MQTT_URL={v!r}: expected mqtt://host[:port] or mqtts://host[:port]")
        return v

    @field_validator("influx_url")
    @classmethod
    def _check_influx_url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"VIGIE_INFLUX_URL={v!r}: expected http://host:port")
        return v.rstrip("/")

    @field_validator("influx_retention_duration", "influx_aggregates_duration", "influx_events_duration")
    @classmethod
    def _check_duration(cls, v: str, info) -> str:
        from vigie.store.influx import DURATION_RE

        if not DURATION_RE.match(v):
            raise ValueError(f"VIGIE_{info.field_name.upper()}={v!r}: expected INF or a whole number of hours, "
                             "days or weeks, at least 1h (e.g. 90d, 52w)")
        return v

    @field_validator("leak_check_time", "home_learn_time", "heating_check_time")
    @classmethod
    def _check_time(cls, v: str, info) -> str:
        try:
            hour, minute = (int(x) for x in v.split(":"))
            if not (0 <= hour < 24 and 0 <= minute < 60):
                raise ValueError
        except ValueError:
            raise ValueError(f"VIGIE_{info.field_name.upper()}={v!r}: expected HH:MM (24 h)") from None
        return v

    @field_validator("heating_step_min")
    @classmethod
    def _check_heating_step(cls, v: int) -> int:
        # The heating grid must put local midnights on slot boundaries (HeatingParams): refused
        # here rather than when the daily heating pass first runs.
        if 60 % v:
            divisors = ", ".join(str(d) for d in range(1, 61) if 60 % d == 0)
            raise ValueError(f"VIGIE_HEATING_STEP_MIN={v!r}: expected a whole divisor of 60 ({divisors})")
        return v

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, v: str) -> str:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            make_url(v)
        except ArgumentError:
            raise ValueError(f"VIGIE_DATABASE_URL={v!r}: expected a SQLAlchemy URL, e.g. sqlite:///var/vigie.db "
                             "or postgresql+psycopg://vigie@db-host/vigie") from None
        return v

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, v: str | None) -> str | None:
        if v is not None:
            parts = urlsplit(v)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"VIGIE_PUBLIC_URL={v!r}: expected https://host[/path], the address residents "
                                 "open Vigie at")
        return v

    @field_validator("timezone")
    @classmethod
    def _check_tz(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"VIGIE_TIMEZONE={v!r}: not an IANA time zone (e.g. Europe/Paris)") from None
        return v

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings):
        return (init_settings, env_settings, dotenv_settings, _YamlFileSource(settings_cls), file_secret_settings)

    # Parsed views ----------------------------------------------------------------------
    @property
    def mqtt_host(self) -> str:
        return urlsplit(self.mqtt_url).hostname or "127.0.0.1"

    @property
    def mqtt_port(self) -> int:
        parts = urlsplit(self.mqtt_url)
        return parts.port or (8883 if parts.scheme == "mqtts" else 1883)

    @property
    def mqtt_tls(self) -> bool:
        return urlsplit(self.mqtt_url).scheme == "mqtts"

    @property
    def mqtt_protocol_version(self) -> Literal["5", "3.1.1"]:
        """``mqtt_protocol`` with ``auto`` resolved: "5" for a broker named by ``mqtt_url`` (whoever
        starts the embedded broker sets "3.1.1" in the settings it hands on)."""
        return "5" if self.mqtt_protocol == "auto" else self.mqtt_protocol

    @property
    def store_kind(self) -> Literal["influxdb", "embedded"]:
        """``store`` with ``auto`` resolved (embedded when ``influx_url`` was given nowhere)."""
        if self.store == "auto":
            return "influxdb" if self.is_configured("influx_url") else "embedded"
        return self.store

    @property
    def store_path(self) -> Path:
        """The embedded store's file: ``store_file``, or ``timeseries.sqlite3`` in ``data_dir``."""
        return self.store_file or self.data_dir / "timeseries.sqlite3"

    def is_configured(self, name: str) -> bool:
        """Whether setting ``name`` was given (environment, ``.env`` or the ``VIGIE_CONFIG`` file)
        rather than left at its default. "No broker configured" is ``not is_configured("mqtt_url")``:
        `vigie demo` then starts its embedded broker."""
        return name in self.model_fields_set

    def influx_extra_policies(self) -> list["RetentionPolicy"]:
        """The retention policies kept beside the raw readings' one (aggregates, events)."""
        from vigie.store.influx import RetentionPolicy

        return [RetentionPolicy(self.influx_aggregates_policy, self.influx_aggregates_duration, "aggregates"),
                RetentionPolicy(self.influx_events_policy, self.influx_events_duration, "events")]

    def topic_decoders(self) -> list[tuple[str, str]]:
        """``water_topics`` as (topic filter, decoder name) pairs."""
        return _topic_pairs(self.water_topics, "VIGIE_WATER_TOPICS")

    def home_topic_decoders(self) -> list[tuple[str, str]]:
        """``home_topics`` as (topic filter, decoder name) pairs."""
        return _topic_pairs(self.home_topics, "VIGIE_HOME_TOPICS")

    def heating_topic_decoders(self) -> list[tuple[str, str]]:
        """``heating_topics`` as (topic filter, decoder name) pairs."""
        return _topic_pairs(self.heating_topics, "VIGIE_HEATING_TOPICS")

    def lorawan_topic_decoders(self) -> list[tuple[str, str]]:
        """``lorawan_topics`` as (topic filter, decoder name) pairs."""
        return _topic_pairs(self.lorawan_topics, "VIGIE_LORAWAN_TOPICS")


def _with_suggestion(name: str, known) -> str:
    """``name``, with the closest known setting name when one is close (a misspelling)."""
    import difflib

    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.75)
    return f"{name} (did you mean {close[0]}?)" if close else name


def _topic_pairs(items: list[str], setting: str) -> list[tuple[str, str]]:
    """``topic/filter/#=decoder`` items as pairs; ValueError naming ``setting`` and the item."""
    pairs = []
    for item in items:
        topic, sep, decoder = item.rpartition("=")
        if not sep or not topic or not decoder:
            raise ValueError(f"{setting} item {item!r}: expected 'topic/filter/#=decoder'")
        pairs.append((topic, decoder))
    return pairs


def settings_markdown() -> str:
    """The settings reference (docs/configuration.md), generated from the fields above."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, f in Settings.model_fields.items():
        default = f.default_factory() if f.default_factory else f.default
        if isinstance(default, list):
            default = json.dumps(default)
        rows.append(f"| `VIGIE_{name.upper()}` | `{default}` | {f.description or ''} |")
    return ("# Configuration\n\n"
            "Settings come from environment variables, then from the YAML file named by `VIGIE_CONFIG`\n"
            "(keys are the lower-case names without the prefix, e.g. `mqtt_url: mqtt://broker:1883`),\n"
            "then from these defaults. List values in the environment are JSON arrays; an empty variable is unset.\n"
            "This page is generated: `python -m vigie.config > docs/configuration.md`.\n\n"
            + "\n".join(rows) + "\n")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()


if __name__ == "__main__":
    print(settings_markdown(), end="")
