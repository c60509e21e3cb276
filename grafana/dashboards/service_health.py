"""Service health: ingest rate, dead letters, spool (buffer) depth, notification outcomes and detector
run times from the Prometheus metrics of ``/metrics`` (vigie/metrics.py, docs/metrics.md), and what
InfluxDB itself received (points per measurement, device clock offsets).

The Prometheus panels need a Prometheus server scraping Vigie's ``/metrics`` (the provisioned
``vigie-prometheus`` data source points at it); the InfluxDB panels work without one.
"""

from __future__ import annotations

from grafana.panels import BuildConfig, Layout, influx, prom, thresholds
from grafana.schema import Dashboard, DashboardLink, TimeRange

FOLDER = "vigie"
UID = "vigie-service-health"
_RATE = "[$__rate_interval]"


def build(cfg: BuildConfig) -> Dashboard:
    L = Layout()
    L.row("Ingest (Prometheus)")
    L.stat("MQTT session", "1: the ingestor's MQTT session is up.",
           [prom("min(vigie_ingest_connected)", "connected")], steps=thresholds(("red", None), ("green", 1)))
    L.stat("InfluxDB writes", "0 while InfluxDB refuses or misses writes (the spool keeps the points).",
           [prom("min(vigie_ingest_store_available)", "available")], steps=thresholds(("red", None), ("green", 1)))
    L.stat("Spool depth (points)", "Points on disk waiting for InfluxDB: grows while it is down, drains after.",
           [prom("sum(vigie_ingest_spool_points)", "points")],
           steps=thresholds(("green", None), ("orange", 10000), ("red", 1000000)))
    L.stat("Dead letters (24 h)", "Messages refused at ingest and points refused by InfluxDB over the last "
           "day; `vigie dead-letters` shows them.",
           [prom("sum(increase(vigie_ingest_dead_letters_total[1d]))", "dead letters")],
           steps=thresholds(("green", None), ("orange", 1)))
    L.timeseries("Ingest rate (per second)", "MQTT messages received, points committed to the spool and "
                 "points written to InfluxDB.",
                 [prom(f"sum(rate(vigie_ingest_messages_received_total{_RATE}))", "messages received", "A"),
                  prom(f"sum(rate(vigie_ingest_points_stored_total{_RATE}))", "points stored", "B"),
                  prom(f"sum(rate(vigie_ingest_points_written_total{_RATE}))", "points written", "C")],
                 unit="ops")
    L.timeseries("Dead letters by reason", "Per interval, by reason kind.",
                 [prom(f"sum by (reason) (increase(vigie_ingest_dead_letters_total{_RATE}))", "{{reason}}")],
                 unit="none", draw="bars", stack=True, min_value=0)
    L.timeseries("Spool depth (points)", "Points waiting for InfluxDB.",
                 [prom("sum(vigie_ingest_spool_points)", "spool")], unit="none", min_value=0)

    L.row("Notifications and detectors (Prometheus)")
    L.timeseries("Notifications by outcome", "Delivery tries per interval: sent, retry (every channel failed, "
                 "tried again later), failed (given up).",
                 [prom(f"sum by (outcome) (increase(vigie_notifications_total{_RATE}))", "{{outcome}}")],
                 unit="none", draw="bars", stack=True, min_value=0, w=8)
    L.timeseries("Failed sends by channel", "Sends a channel refused, by Apprise scheme (mailto, ntfy…).",
                 [prom(f"sum by (channel) (increase(vigie_notification_attempts_total{{outcome=\"failed\"}}{_RATE}))",
                       "{{channel}}")],
                 unit="none", draw="bars", stack=True, min_value=0, w=8)
    L.timeseries("Detector run time (mean over a day, s)", "leak: the J+1 check; home: one assisted-living "
                 "tick; heating: the daily staff job. Failures beside.",
                 [prom("sum by (detector) (increase(vigie_detector_duration_seconds_sum[1d])) / "
                       "sum by (detector) (increase(vigie_detector_duration_seconds_count[1d]))", "{{detector}}", "A"),
                  prom("sum by (detector) (increase(vigie_detector_failures_total[1d]))", "{{detector}} failures",
                       "B")],
                 unit="s", w=8)

    L.row("Storage (InfluxDB)")
    L.timeseries("Points stored per interval", "Water readings, heating reports with a temperature, and "
                 "assisted-living sensor reports that reached InfluxDB: a family falling to zero while "
                 "devices should report is an ingest or radio problem.",
                 [influx('SELECT count("index_m3") AS "water_reading" FROM "water_reading" WHERE $timeFilter '
                         'GROUP BY time($__interval) fill(0)', ref="A", alias="water_reading"),
                  influx('SELECT count("temperature_c") AS "heating" FROM "heating" WHERE $timeFilter '
                         'GROUP BY time($__interval) fill(0)', ref="B", alias="heating"),
                  influx(f'SELECT count("value") AS "home_event" FROM {cfg.events("home_event")} WHERE $timeFilter '
                         f'GROUP BY time($__interval) fill(0)', ref="C", alias="home_event")],
                 unit="none", interval="1h", min_value=0)
    L.timeseries("Device clock offset, worst per family (s)", "Largest device clock minus reception time "
                 "(device_clock, written at most hourly per device): positive ahead, negative behind.",
                 [influx('SELECT max("offset_s") AS "ahead", min("offset_s") AS "behind" FROM "device_clock" '
                         'WHERE $timeFilter GROUP BY time($__interval), "family" fill(none)',
                         alias="$tag_family $col")],
                 unit="s", interval="1h")
    return Dashboard(
        uid=UID, title="Vigie service health", tags=["vigie", "service"],
        description="Ingest, dead letters, spool, notifications and detectors (Prometheus metrics of /metrics), "
                    "and what reached InfluxDB.",
        time=TimeRange(from_="now-24h", to="now"), refresh="1m",
        links=[DashboardLink(title="Vigie dashboards", tags=["vigie"], asDropdown=True)],
        panels=L.items)
