"""The ingestor: MQTT → decoders → registry check → spool (group commit) → acknowledgements,
and the spool writer → InfluxDB. Documented in ``ingest/README.md``.

Message path:

1. The MQTT network thread (:class:`~vigie.ingest.mqtt.DurableSubscriber`) receives a message
   and :meth:`Ingestor._on_message` picks the decoder of the first matching topic filter
   (``settings.topic_decoders()`` for water, then ``settings.home_topic_decoders()``,
   ``heating_topic_decoders()``, ``lorawan_topic_decoders()``) and decodes it. Water readings
   are checked against their topic and the registry's meters and serialized (``water_reading``,
   the writes' policy, precision s); home records are looked up in the registry's sensors by the
   decoder and serialized by :class:`~vigie.ingest.homes.HomePoints` (``home_event``,
   ``sensor_availability`` on change, the events policy, precision ms); the records of decoders
   bound to the heating registry (zigbee2mqtt heating, LoRaWAN) are routed by type:
   ``MeterReading`` through the registry's meter check to ``water_reading``, ``HeatingReading``
   to ``heating`` (the writes' policy, precision s). Records dated by a clock give
   ``device_clock`` points now and then (:mod:`vigie.ingest.clock`). The outcome (points, a dead
   letter, or "status message, ignore") goes on a queue.
2. The commit thread takes everything queued, appends all points (and the devices' new
   availability) to the spool in one SQLite transaction and all dead letters to the dead-letter
   file (both fsync'd), then hands the group's acknowledgements to the network thread, which
   sends them in arrival order. A message is thus acknowledged only once it is on disk.
3. The spool writer sends the spool to InfluxDB in batches and removes what was written.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from paho.mqtt.client import topic_matches_sub
from sqlalchemy.orm import sessionmaker

from vigie.ingest.deadletter import FILE_NAME as DEAD_LETTER_FILE
from vigie.ingest.deadletter import DeadLetterStore, StoredDeadLetter
from vigie.heating_registry import HeatingDirectory
from vigie.ingest.clock import DeviceClocks
from vigie.ingest.decoders import LOOKUPS, DecodeError, Decoder, get_decoder, lookup_of
from vigie.ingest.directory import MeterDirectory
from vigie.ingest.heating import HeatingIndex
from vigie.ingest.homes import HomePoints, SensorIndex
from vigie.ingest.identity import TopicIdentityCheck
from vigie.ingest.mqtt import DurableSubscriber, InboundMessage
from vigie.ingest.spool import FILE_NAME as SPOOL_FILE
from vigie.ingest.spool import Spool, SpooledPoint
from vigie.ingest.writer import SpoolWriter
from vigie.private_files import make_private_dir
from vigie.records import HeatingReading, MeterReading
from vigie.sensors import RegistryUnavailable, SensorDirectory
from vigie.store.influx import InfluxStore

log = logging.getLogger(__name__)

MAX_GROUP = 5000           # messages per group commit at most
COMMIT_RETRY_MAX_S = 30.0  # back-off cap when the disk refuses a commit
# A group gathers this long after its first message: fewer, larger commits (each costs an fsync,
# a transaction and thread wake-ups) for 20 ms more before the acknowledgements.
COMMIT_LINGER_S = 0.02
#: While the registry's sensors cannot be read at all, a home message is retried this often.
REGISTRY_RETRY_S = 1.0
# Route kinds: how a decoder's output reaches the spool (see Ingestor._decode).
WATER, HOME, REGISTRY = "water", "home", "registry"


@dataclass(frozen=True, slots=True)
class IngestStats:
    """Counters since :meth:`Ingestor.start` (messages are MQTT messages; points are water readings,
    home sensor events and availability changes, heating readings, one InfluxDB point each).

    - ``received``: messages delivered by the broker (QoS 0 and 1, retained included);
    - ``ignored``: messages that are not readings: gateway status (wmbusmeters ``bridge/state``,
      ``online``/``offline``; zigbee2mqtt ``bridge/…`` and commands), availability that changes
      nothing, messages without a state, and empty bodies (a retained message being cleared);
    - ``stored``: points committed to the spool; ``dead_letters``: dead letters by reason kind
      (messages refused at ingest, points refused by InfluxDB);
    - ``written``: points written to InfluxDB; ``pending``: points in the spool now (device_clock
      points included);
    - ``clock_points``: ``device_clock`` points committed to the spool (not in ``stored`` nor
      ``written``: they describe devices, not readings);
    - ``commits``: group commits, ``max_commit_group``: most messages acknowledged by one commit;
    - ``connected``: MQTT session up; ``store_available``: False during an InfluxDB outage.
    """

    received: int = 0
    ignored: int = 0
    stored: int = 0
    dead_letters: dict[str, int] = field(default_factory=dict)
    written: int = 0
    pending: int = 0
    commits: int = 0
    max_commit_group: int = 0
    clock_points: int = 0
    connected: bool = False
    store_available: bool = True

    @property
    def dead_letters_total(self) -> int:
        return sum(self.dead_letters.values())

    def as_dict(self) -> dict:
        d = asdict(self)
        d["dead_letters_total"] = self.dead_letters_total
        return d


@dataclass(slots=True)
class _Outcome:
    """What became of one message, waiting for the group commit. ``points``: its records as the
    spool keeps them (each serialized once: water readings by :meth:`Ingestor._to_points`, other
    records when decoded); ``clock``: its ``device_clock`` points; ``availability``: the devices'
    availability it changes."""

    message: InboundMessage
    readings: list[MeterReading]
    dead_letter: StoredDeadLetter | None = None
    ignored: bool = False
    points: Sequence[SpooledPoint] = ()
    availability: dict[str, bool] | None = None
    clock: Sequence[SpooledPoint] = ()


_STOP = object()


class Ingestor:
    """MQTT → InfluxDB ingest with a durable spool and a dead-letter store under ``settings.data_dir``.

    ``sessions``: sessionmaker of the relational store (the registry of known meters, home
    sensors, heating and LoRaWAN devices); ``accept_unknown=True`` skips the meters' registry check
    (then ``sessions`` may be None when no home, heating or LoRaWAN topic is configured: their
    devices are always looked up, their home or building comes from the registry).
    ``max_backoff_s``: cap of the InfluxDB retry back-off. Raises :class:`ValueError` at
    construction when a configured decoder name is unknown, a zigbee2mqtt filter is not
    ``<base>/#``, or home, heating or LoRaWAN topics are configured without ``sessions``.
    """

    def __init__(self, settings, store: InfluxStore, sessions: sessionmaker | None, *,
                 accept_unknown: bool = False, max_backoff_s: float = 30.0) -> None:
        self.settings = settings
        self.store = store
        self._sensors: SensorIndex | None = None
        self._homes: HomePoints | None = None
        self._heating: HeatingIndex | None = None
        # (filter, decoder, route kind): WATER for unbound decoders (their readings are checked
        # here), HOME for decoders bound to the home sensors, REGISTRY for those bound to the
        # heating registry (their records routed by type). What a decoder is bound to comes from the
        # decoder (its lookup), not from the setting that names it.
        self._routes: list[tuple[str, Decoder, str]] = []
        for setting, pairs in (("VIGIE_WATER_TOPICS", settings.topic_decoders()),
                               ("VIGIE_HOME_TOPICS", settings.home_topic_decoders()),
                               ("VIGIE_HEATING_TOPICS", settings.heating_topic_decoders()),
                               ("VIGIE_LORAWAN_TOPICS", settings.lorawan_topic_decoders())):
            for topic_filter, name in pairs:
                try:
                    decoder = get_decoder(name)
                except KeyError as exc:
                    raise ValueError(f"{setting}: {exc.args[0]}") from None
                lookup = lookup_of(decoder)
                kind = WATER if lookup is None else HOME if lookup == "home_sensor" else REGISTRY
                if lookup is not None:
                    base = _base_topic(topic_filter, setting) if LOOKUPS[lookup] == "friendly_name" else None
                    decoder = decoder.bind(self._lookup(lookup, sessions, setting), base)
                self._routes.append((topic_filter, decoder, kind))
        # paho's topic_matches_sub builds a matcher tree on every call; a meter keeps its topic,
        # so remembering each topic's decoder makes routing a dict lookup.
        self._decoder_for = functools.lru_cache(maxsize=100_000)(self._match_decoder)
        self.directory = MeterDirectory(sessions, accept_unknown=accept_unknown)
        self._identity = TopicIdentityCheck(self.directory)  # topic ↔ payload id, cached per topic
        self.max_backoff_s = max_backoff_s
        self._queue: queue.SimpleQueue = queue.SimpleQueue()  # in C: a put costs ~0.1 µs, not ~2
        self._lock = threading.Lock()
        self._received = self._ignored = self._stored = self._commits = self._max_group = self._clock_points = 0
        self._clocks = DeviceClocks()
        # Messages handed to the commit thread, and committed: each written by one thread only
        # (network, commit), so the per-message path takes no lock; in flight = the difference.
        self._handed = self._committed = 0
        self._last_message = 0.0     # monotonic time of the last message
        self._closing = False
        self._kinds_logged: set[str] = set()
        self._registry_down_logged = False
        self._started = False
        self.spool: Spool | None = None
        self.dead_letters: DeadLetterStore | None = None
        self._writer: SpoolWriter | None = None
        self._mqtt: DurableSubscriber | None = None
        self._committer: threading.Thread | None = None
        # ingest_workers > 1: this object only drives worker processes (vigie.ingest.workers).
        self._pool = None
        if settings.ingest_workers > 1:
            from vigie.ingest.workers import WorkerPool

            if settings.mqtt_protocol_version == "3.1.1":
                raise ValueError(f"VIGIE_INGEST_WORKERS={settings.ingest_workers} needs MQTT 5 shared "
                                 "subscriptions, and the broker is spoken to in MQTT 3.1.1 (VIGIE_MQTT_PROTOCOL): "
                                 "set VIGIE_INGEST_WORKERS=1, or VIGIE_MQTT_PROTOCOL=5 with a broker that speaks it")

            self._pool = WorkerPool(settings, accept_unknown=accept_unknown, max_backoff_s=max_backoff_s)

    # -- life cycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Open the spool and dead-letter store, start the writer and commit threads and connect
        to the broker (in the background: a broker or InfluxDB that is down is retried)."""
        if self._started:
            raise RuntimeError("Ingestor already started")
        self._started = True
        if self._pool is not None:
            self._pool.start()
            return
        data_dir = self.settings.data_dir
        make_private_dir(data_dir)
        self.spool = Spool(data_dir / SPOOL_FILE)
        self.dead_letters = DeadLetterStore(data_dir / DEAD_LETTER_FILE)
        if self._sensors is not None:
            self._homes = HomePoints(self._sensors, self.spool.availability())
        self._writer = SpoolWriter(self.spool, self.store, self.dead_letters,
                                   batch_size=self.settings.write_batch_size,
                                   interval_s=self.settings.write_batch_interval_s,
                                   retention_duration=self.settings.influx_retention_duration,
                                   max_backoff_s=self.max_backoff_s)
        if self.spool.pending():
            log.info("spool holds %d point(s) from an earlier run; writing them first", self.spool.pending())
        self._writer.start()
        self._committer = threading.Thread(target=self._commit_loop, name="vigie-ingest-commit", daemon=True)
        self._committer.start()
        self._mqtt = DurableSubscriber(self.settings, [f for f, _, _ in self._routes], self._on_message)
        self._mqtt.start()
        log.info("ingest started: topics %s; data in %s",
                 ", ".join(f"{f}={d.name}" for f, d, _ in self._routes), data_dir)

    def stop(self, flush_timeout_s: float = 10.0) -> None:
        """Graceful stop: commit and acknowledge what was received, disconnect (the broker keeps
        the session and queues for the next start), write the spool to InfluxDB for at most
        ``flush_timeout_s`` (what is left stays in the spool), close the files."""
        if self._pool is not None:
            if self._started:
                self._started = False
                self._pool.stop(flush_timeout_s)
            return
        if not self._started or self._committer is None:
            return
        self._closing = True  # messages still arriving are not acknowledged: the broker re-sends them
        self._queue.put(_STOP)
        self._committer.join()
        self._mqtt.stop()
        self._writer.stop(flush_timeout_s)
        left = self.spool.pending()
        self.spool.close()
        self.dead_letters.close()
        self._committer = None
        log.info("ingest stopped%s", f"; {left} point(s) left in the spool for the next start" if left else "")

    @property
    def connected(self) -> bool:
        if self._pool is not None:
            return self._started and self._pool.connected
        return self._mqtt is not None and self._mqtt.connected

    def stats(self) -> IngestStats:
        if self._pool is not None:
            return self._pool.stats() if self._started else IngestStats()
        with self._lock:
            return IngestStats(
                received=self._received, ignored=self._ignored, stored=self._stored,
                dead_letters=self.dead_letters.counts() if self.dead_letters else {},
                written=self._writer.written if self._writer else 0,
                pending=self.spool.pending() if self.spool else 0,
                commits=self._commits, max_commit_group=self._max_group, clock_points=self._clock_points,
                connected=self.connected,
                store_available=self._writer.available if self._writer else True)

    def wait_subscribed(self, timeout: float) -> bool:
        """Wait until the broker has acknowledged the subscriptions; False on timeout."""
        if self._pool is not None:
            return self._started and self._pool.wait_subscribed(timeout)
        return self._mqtt is not None and self._mqtt.subscribed.wait(timeout)

    def wait_idle(self, timeout: float, quiet_s: float = 1.0) -> bool:
        """Wait until the session is subscribed, no message has arrived for ``quiet_s`` (counted
        from the subscription at the earliest), every received message is committed and the spool
        is empty (all in InfluxDB). False on timeout.

        "Quiet" cannot see messages the broker has not sent yet: a backlog queued for the durable
        session arrives right after connecting, but to wait for messages still being published,
        compare :meth:`stats` counters instead."""
        if self._pool is not None:
            return self._started and self._pool.wait_idle(timeout, quiet_s)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._idle(quiet_s):
                return True
            time.sleep(0.05)
        return self._idle(quiet_s)

    def _idle(self, quiet_s: float) -> bool:
        if self._mqtt is None or not self._mqtt.subscribed.is_set():
            return False
        with self._lock:
            last = max(self._last_message, self._mqtt.subscribed_at)
            quiet = time.monotonic() - last >= quiet_s and self._handed == self._committed
        return quiet and self.spool.pending() == 0

    # -- network thread ------------------------------------------------------------------------
    def _on_message(self, msg: InboundMessage) -> None:
        self._received += 1
        self._last_message = time.monotonic()
        if self._closing:
            return
        out = self._decode(msg)
        if out is None:  # stopping while the registry was unreadable: not acknowledged, re-sent
            return
        self._handed += 1
        self._queue.put(self._to_points(out))

    def _to_points(self, out: _Outcome) -> _Outcome:
        """``out`` with its readings serialized for the spool; a reading that cannot be written as
        line protocol (a decoder bug: a field of the wrong type) dead-letters its message."""
        if out.readings:
            try:
                out.points = [SpooledPoint.of(r) for r in out.readings]
            except (TypeError, ValueError) as exc:
                log.exception("decoder %s produced a reading that cannot be written", out.readings[0].source)
                return self._refuse(out.message, out.readings[0].source or None,
                                    f"decoder_error: reading cannot be written as line protocol: {exc}")
            if not out.message.retain:  # a retained reading is an old one: its offset is no clock's
                out.clock = self._clocks.points("water", out.readings, out.message.received_at)
        return out

    def _lookup(self, lookup: str, sessions: sessionmaker | None, setting: str):
        """The registry lookup named ``lookup`` (:data:`~vigie.ingest.decoders.LOOKUPS`), one per
        ingestor. ValueError naming ``setting`` without ``sessions``."""
        if sessions is None:
            what = {"home_sensor": "home sensors", "heating_device": "heating devices",
                    "lorawan_device": "LoRaWAN devices"}[lookup]
            raise ValueError(f"{setting}: {what} are looked up in the registry: the ingestor needs the relational "
                             f"store (or no {setting.removeprefix('VIGIE_').replace('_', ' ').lower()})")
        if lookup == "home_sensor":
            if self._sensors is None:
                self._sensors = SensorIndex(SensorDirectory(sessions))
            return self._sensors
        if self._heating is None:
            self._heating = HeatingIndex(HeatingDirectory(sessions))
        return self._heating.by_friendly_name if lookup == "heating_device" else self._heating.by_dev_eui

    def _match_decoder(self, topic: str) -> tuple[Decoder, str] | None:
        for topic_filter, decoder, kind in self._routes:
            if topic_matches_sub(_unshared(topic_filter), topic):
                return decoder, kind
        return None

    def _decode(self, msg: InboundMessage) -> _Outcome | None:
        if not msg.payload:  # a retained message being cleared (MQTT 5 §3.3.1.3), not a reading
            return _Outcome(msg, [], ignored=True)
        route = self._decoder_for(msg.topic)
        if route is None:
            return self._refuse(msg, None, "no_decoder: no topic filter of VIGIE_WATER_TOPICS, VIGIE_HOME_TOPICS, "
                                           "VIGIE_HEATING_TOPICS or VIGIE_LORAWAN_TOPICS matches this topic")
        decoder, kind = route
        if kind is not WATER:
            return self._decode_home(msg, decoder) if kind is HOME else self._decode_registry(msg, decoder)
        try:
            readings = decoder.decode(msg.topic, msg.payload, msg.received_at)
        except DecodeError as exc:
            return self._refuse(msg, decoder.name, f"{exc.kind}: {exc}")
        except Exception as exc:  # a decoder bug must not lose the message
            log.exception("decoder %s failed", decoder.name)
            return self._refuse(msg, decoder.name, f"decoder_error: {type(exc).__name__}: {exc}")
        if not readings:
            return _Outcome(msg, [], ignored=True)
        mismatch = self._identity.mismatch(msg.topic, readings)
        if mismatch:  # a credential speaking for another device: nothing of the message is stored
            return self._refuse(msg, decoder.name, f"topic_mismatch: {mismatch}")
        return self._registered(msg, decoder.name, readings)

    def _registered(self, msg: InboundMessage, decoder: str, readings: list[MeterReading]) -> _Outcome:
        """``msg``'s readings of meters in the registry; a dead letter ``unknown_meter`` naming the
        others (the readings of known meters are still stored)."""
        unknown = self.directory.unknown(r.meter_id for r in readings)
        if not unknown:
            return _Outcome(msg, readings)
        known = [r for r in readings if r.meter_id not in unknown]
        shown = ", ".join(unknown[:10]) + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else "")
        out = self._refuse(msg, decoder, f"unknown_meter: not in the registry: {shown}"
                           + (f" ({len(known)} reading(s) of known meters stored)" if known else ""))
        return _Outcome(msg, known, out.dead_letter)

    def _decode_bound(self, msg: InboundMessage, decoder: Decoder, log_reason: bool):
        """``decoder.decode(msg)`` for a decoder that looks its devices up in the registry: what it
        decoded, or the message's refusal (an :class:`_Outcome`). While the registry has never been
        readable the message waits here (back-pressure: the broker keeps the rest queued), retried
        every :data:`REGISTRY_RETRY_S`; None when the ingestor stops meanwhile."""
        while True:
            try:
                return decoder.decode(msg.topic, msg.payload, msg.received_at)
            except DecodeError as exc:
                return self._refuse(msg, decoder.name, f"{exc.kind}: {exc}", log_reason=log_reason)
            except RegistryUnavailable:
                if not self._registry_down_logged:
                    self._registry_down_logged = True
                    log.error("the registry cannot be read; home, heating and LoRaWAN messages wait until it can")
                if self._closing:
                    return None
                time.sleep(REGISTRY_RETRY_S)
            except Exception as exc:  # a decoder bug must not lose the message
                log.exception("decoder %s failed", decoder.name)
                return self._refuse(msg, decoder.name, f"decoder_error: {type(exc).__name__}: {exc}",
                                    log_reason=log_reason)

    def _decode_home(self, msg: InboundMessage, decoder: Decoder) -> _Outcome | None:
        """A message of a home decoder: its events and availability change as points. Reasons name
        friendly names, which may name a person: only the kind is logged."""
        decoded = self._decode_bound(msg, decoder, log_reason=False)
        if decoded is None or isinstance(decoded, _Outcome):
            return decoded
        try:
            points, availability = self._homes.points(decoded)
        except (KeyError, TypeError, ValueError) as exc:
            log.error("decoder %s produced a record that cannot be written (%s)", decoder.name, type(exc).__name__)
            return self._refuse(msg, decoder.name, f"decoder_error: record cannot be written as line protocol: {exc}",
                                log_reason=False)
        if not points:
            return _Outcome(msg, [], ignored=True)
        clock = () if msg.retain or not isinstance(decoded, list) else \
            self._clocks.points("home", decoded, msg.received_at)
        return _Outcome(msg, [], points=points, availability=availability or None, clock=clock)

    def _decode_registry(self, msg: InboundMessage, decoder: Decoder) -> _Outcome | None:
        """A message of a decoder bound to the heating registry (zigbee2mqtt heating, LoRaWAN):
        ``HeatingReading`` → ``heating`` points; ``MeterReading`` → ``water_reading`` points of
        registered meters (:meth:`_registered`). No topic ↔ payload check by meter id here: the
        topic names the radio (DevEUI, device id), which the decoder checks against the payload,
        and the meter is the one the registry binds to that radio. Reasons may quote a friendly
        name, which staff may have written with a person's name in it ("bureau de Mme X"): only the
        kind is logged, the reason is in the dead-letter file."""
        decoded = self._decode_bound(msg, decoder, log_reason=False)
        if decoded is None or isinstance(decoded, _Outcome):
            return decoded
        if not decoded:
            return _Outcome(msg, [], ignored=True)
        meters = [r for r in decoded if type(r) is MeterReading]
        heating = [r for r in decoded if type(r) is HeatingReading]
        if len(meters) + len(heating) != len(decoded):
            log.error("decoder %s yields records other than MeterReading and HeatingReading", decoder.name)
            return self._refuse(msg, decoder.name, "decoder_error: a record that is neither a MeterReading nor a "
                                                   "HeatingReading")
        out = self._registered(msg, decoder.name, meters) if meters else _Outcome(msg, [])
        try:
            points = [SpooledPoint.of(r) for r in out.readings] + [self._heating.point(r) for r in heating]
        except (KeyError, TypeError, ValueError) as exc:
            log.error("decoder %s produced a record that cannot be written (%s)", decoder.name, type(exc).__name__)
            return self._refuse(msg, decoder.name, f"decoder_error: record cannot be written as line protocol: {exc}")
        clock = () if msg.retain else [*self._clocks.points("water", out.readings, msg.received_at),
                                       *self._clocks.points("heating", heating, msg.received_at)]
        return _Outcome(msg, [], out.dead_letter, points=points, clock=clock)

    def _refuse(self, msg: InboundMessage, decoder: str | None, reason: str, log_reason: bool = True) -> _Outcome:
        kind = reason.split(":", 1)[0]
        shown = reason if log_reason else f"{kind} (decoder {decoder}; reason in the dead-letter file)"
        if kind not in self._kinds_logged:
            self._kinds_logged.add(kind)
            log.warning("dead letter (first of its kind; later ones at DEBUG): %s", shown)
        else:
            log.debug("dead letter: %s", shown)
        dl = StoredDeadLetter.from_message(msg.topic, msg.payload, reason, msg.received_at, decoder)
        return _Outcome(msg, [], dl)

    # -- commit thread -------------------------------------------------------------------------
    def _commit_loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            # Sleeping, not waiting on the queue: the network thread enqueues without waking us.
            time.sleep(COMMIT_LINGER_S)
            group, stop_after = [first], False
            while len(group) < MAX_GROUP:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop_after = True
                    break
                group.append(item)
            if self._commit(group):
                acked = self._mqtt.ack(o.message for o in group)
                log.debug("committed %d message(s), %d acknowledged", len(group), acked)
                self._writer.notify(sum(len(o.points) + len(o.clock) for o in group))
            self._committed += len(group)
            if stop_after:
                return

    def _commit(self, group: list[_Outcome]) -> bool:
        """Spool the group's readings and file its dead letters (each fsync'd once). Retries a
        failing disk with back-off; False when stopping before it succeeded (nothing acknowledged)."""
        points = [p for o in group for p in o.points]
        clock = [p for o in group for p in o.clock]
        letters = [o.dead_letter for o in group if o.dead_letter is not None]
        availability = {d: online for o in group if o.availability for d, online in o.availability.items()}
        spooled = filed = False
        backoff = 0.5
        while True:
            try:
                if not spooled:
                    self.spool.append(points + clock if clock else points, availability)
                    spooled = True
                if not filed:
                    self.dead_letters.append(letters)
                    filed = True
                break
            except Exception:
                log.exception("cannot commit %d message(s) to disk; retrying in %.0f s", len(group), backoff)
                if self._closing:
                    return False
                time.sleep(backoff)
                backoff = min(backoff * 2, COMMIT_RETRY_MAX_S)
        with self._lock:
            self._stored += len(points)
            self._clock_points += len(clock)
            self._ignored += sum(o.ignored for o in group)
            self._commits += 1
            self._max_group = max(self._max_group, len(group))
        return True


def _base_topic(topic_filter: str, setting: str) -> str:
    """``<base>`` of a ``[$share/<group>/]<base>/#`` filter (ValueError naming ``setting`` otherwise):
    the zigbee2mqtt friendly name is the topic after it."""
    plain = _unshared(topic_filter)
    base = plain[:-2] if plain.endswith("/#") else ""
    if not base or "+" in base or "#" in base:
        raise ValueError(f"{setting} filter {topic_filter!r}: a zigbee2mqtt decoder needs a filter <base>/# "
                         "(the friendly name is the topic after <base>/)")
    return base


def _unshared(topic_filter: str) -> str:
    """The filter without an MQTT 5 shared-subscription prefix (``$share/<group>/…``)."""
    if topic_filter.startswith("$share/"):
        parts = topic_filter.split("/", 2)
        return parts[2] if len(parts) == 3 else topic_filter
    return topic_filter
