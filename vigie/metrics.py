"""Prometheus metrics of the service, served by the API at ``/metrics`` (docs/metrics.md lists
every name; the service-health dashboard in ``grafana/`` is built on them).

Two kinds:

- **Event metrics** defined here and updated where the event happens: detector run times
  (:data:`DETECTOR_SECONDS`, :data:`DETECTOR_FAILURES`), notification outcomes
  (:data:`NOTIFICATIONS`, :data:`NOTIFICATION_ATTEMPTS`, :data:`DELIVERY_SECONDS`). They live in
  the process-wide :data:`REGISTRY` and count since the process started.
- **Ingest metrics** read from :meth:`vigie.ingest.service.Ingestor.stats` at scrape time
  (:class:`IngestCollector`): the ingestor keeps its own counters, so its hot path is untouched.
  They exist only in a process that runs an ingestor (``vigie serve``).

Counters reset when the process restarts; Prometheus' ``rate()`` and ``increase()`` handle that.
No label carries personal data: labels are detector names, dead-letter reason kinds, outcome
words and Apprise schemes.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

#: The process-wide registry of the event metrics (not prometheus_client's global one, so that
#: importing Vigie into another program adds nothing to that program's metrics).
REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)  # process_cpu_seconds_total, process_resident_memory_bytes, …

#: Detectors timed by :data:`DETECTOR_SECONDS`.
LEAK, HOME, HEATING = "leak", "home", "heating"

DETECTOR_SECONDS = Histogram(
    "vigie_detector_duration_seconds",
    "Run time of a detector pass, s: leak = the J+1 check of one day (rules and alert routing), "
    "home = one assisted-living tick (detection, escalation, delivery), heating = the daily staff "
    "job (heating analytics, device health, findings, digests)",
    ["detector"], registry=REGISTRY,
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800))
DETECTOR_FAILURES = Counter(
    "vigie_detector_failures", "Detector passes that failed with an error (logged; the next pass retries)",
    ["detector"], registry=REGISTRY)
NOTIFICATIONS = Counter(
    "vigie_notifications",
    "Delivery tries of queued notifications by outcome: sent (a channel accepted it), retry "
    "(every channel failed, tried again later), failed (given up: last attempt, or no channel)",
    ["outcome"], registry=REGISTRY)
NOTIFICATION_ATTEMPTS = Counter(
    "vigie_notification_attempts", "Sends to one channel by Apprise scheme (mailto, ntfy…; none: the "
    "person has no channel) and outcome (sent, failed)", ["channel", "outcome"], registry=REGISTRY)
DELIVERY_SECONDS = Histogram(
    "vigie_notification_delivery_seconds",
    "From a notification being queued to its sending, s (retries included)", registry=REGISTRY,
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400))

for _outcome in ("sent", "retry", "failed"):   # export zeros before the first delivery
    NOTIFICATIONS.labels(_outcome)
for _detector in (LEAK, HOME, HEATING):
    DETECTOR_FAILURES.labels(_detector)

try:
    _VERSION = version("vigie")
except PackageNotFoundError:  # running from a source tree that is not installed
    _VERSION = "unknown"
Gauge("vigie_info", "Vigie's version (value always 1)", ["version"], registry=REGISTRY).labels(_VERSION).set(1)


class IngestCollector(Collector):
    """Ingest metrics from ``ingestor.stats()`` (an :class:`~vigie.ingest.service.IngestStats`)
    at each scrape. ``ingestor`` None: collects nothing."""

    def __init__(self, ingestor) -> None:
        self._ingestor = ingestor

    def describe(self) -> list[Metric]:
        return []   # names are fixed, but the ingestor may be absent: nothing to register up front

    def collect(self) -> Iterator[Metric]:
        if self._ingestor is None:
            return
        st = self._ingestor.stats()
        counters = (
            ("vigie_ingest_messages_received", "MQTT messages delivered by the broker", st.received),
            ("vigie_ingest_messages_ignored", "MQTT messages that carry no reading (gateway status, "
             "bridge messages, cleared retained messages)", st.ignored),
            ("vigie_ingest_points_stored", "Points (readings, home sensor events, heating readings) "
             "committed to the spool; each message is acknowledged once its points are", st.stored),
            ("vigie_ingest_points_written", "Points written from the spool to InfluxDB", st.written),
            ("vigie_ingest_commits", "Group commits of the spool (one fsync each)", st.commits),
        )
        for name, doc, value in counters:
            yield CounterMetricFamily(name, doc, value=value)
        dead = CounterMetricFamily("vigie_ingest_dead_letters", "Dead letters by reason kind (messages "
                                   "refused at ingest, points refused by InfluxDB): `vigie dead-letters` "
                                   "shows them", labels=["reason"])
        for reason, count in sorted(st.dead_letters.items()):
            dead.add_metric([reason], count)
        yield dead
        yield GaugeMetricFamily("vigie_ingest_spool_points", "Points waiting in the spool (disk buffer) "
                                "for InfluxDB: grows while InfluxDB is down", value=st.pending)
        yield GaugeMetricFamily("vigie_ingest_connected", "1 while the MQTT session is up",
                                value=int(st.connected))
        yield GaugeMetricFamily("vigie_ingest_store_available", "0 while InfluxDB refuses or misses writes "
                                "(the spool keeps the points)", value=int(st.store_available))


class _Shared(Collector):
    """The process-wide :data:`REGISTRY`, inside another registry."""

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        return REGISTRY.collect()


def app_registry(ingestor=None) -> CollectorRegistry:
    """The registry one API serves: the event metrics and, with ``ingestor``, its ingest metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Shared())
    registry.register(IngestCollector(ingestor))
    return registry


def exposition(registry: CollectorRegistry, accept: str | None) -> tuple[bytes, str]:
    """``registry`` in the text format the ``Accept`` header asks for (Prometheus text 0.0.4, or
    OpenMetrics): (body, content type)."""
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type
