"""Several ingestor processes on one MQTT 5 shared subscription, for more than one core.

One ingestor process is bound to one core (paho's receive path, decoding and the spool share one
GIL). With ``ingest_workers`` = N > 1, :class:`~vigie.ingest.service.Ingestor` runs N worker
processes instead, each a complete single-process ingestor:

- its own durable session, client id ``<mqtt_client_id>-<i>`` (i = 0 … N-1);
- the topic filters as shared subscriptions ``$share/<mqtt_client_id>/<filter>`` (MQTT 5 §4.8.2):
  the broker hands each message to one session of the group, and keeps queuing for a session
  that is away, as for one ingestor;
- its own spool and dead-letter file under ``<data_dir>/worker-<i>``.

Each message keeps the single-process guarantees (acknowledged after fsync, at least once from the
broker, one point per reading). Each worker writes its messages in their arrival order; messages of
different workers reach InfluxDB in no fixed order (a point's identity is meter and time, so the
stored series is the same). Lowering N leaves the sessions and spools of the workers dropped: run
``vigie ingest --wait-idle`` with the old N first.

The parent talks to each worker over a pipe (stats, waits, stop); a worker ignores SIGINT and
SIGTERM and stops when the parent asks or goes away, so a stop is always the graceful one.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import signal
import threading
import time
from collections import Counter

from vigie.ingest.service import IngestStats

log = logging.getLogger(__name__)

START_TIMEOUT_S = 60.0


def worker_settings(settings, index: int):
    """The settings of worker ``index``: own client id and data directory, shared subscriptions.
    Raises :class:`ValueError` when ``mqtt_client_id`` cannot name a share group."""
    group = settings.mqtt_client_id
    if not group or any(c in group for c in "/+#"):
        raise ValueError(f"VIGIE_MQTT_CLIENT_ID {group!r} cannot name an MQTT share group (no / + #)")
    def shared(pairs: list[tuple[str, str]]) -> list[str]:
        return [f"{t}={d}" if t.startswith("$share/") else f"$share/{group}/{t}={d}" for t, d in pairs]

    return settings.model_copy(update={"mqtt_client_id": f"{group}-{index}",
                                       "water_topics": shared(settings.topic_decoders()),
                                       "home_topics": shared(settings.home_topic_decoders()),
                                       "heating_topics": shared(settings.heating_topic_decoders()),
                                       "lorawan_topics": shared(settings.lorawan_topic_decoders()),
                                       "data_dir": settings.data_dir / f"worker-{index}", "ingest_workers": 1})


def sum_stats(parts: list[IngestStats]) -> IngestStats:
    """The workers' counters as one ingestor's (``connected``/``store_available``: all of them)."""
    dead: Counter[str] = Counter()
    for p in parts:
        dead.update(p.dead_letters)
    return IngestStats(
        received=sum(p.received for p in parts), ignored=sum(p.ignored for p in parts),
        stored=sum(p.stored for p in parts), dead_letters=dict(dead), written=sum(p.written for p in parts),
        pending=sum(p.pending for p in parts), commits=sum(p.commits for p in parts),
        max_commit_group=max((p.max_commit_group for p in parts), default=0),
        clock_points=sum(p.clock_points for p in parts),
        connected=bool(parts) and all(p.connected for p in parts),
        store_available=all(p.store_available for p in parts))


class WorkerPool:
    """N worker processes (spawned: no inherited threads or sockets), each running an
    :class:`~vigie.ingest.service.Ingestor` on :func:`worker_settings`. Same interface as the
    ingestor's life cycle; thread-safe."""

    def __init__(self, settings, *, accept_unknown: bool = False, max_backoff_s: float = 30.0) -> None:
        self.settings = [worker_settings(settings, i) for i in range(settings.ingest_workers)]
        self.accept_unknown = accept_unknown
        self.max_backoff_s = max_backoff_s
        self._procs: list = []
        self._conns: list = []
        self._locks: list[threading.Lock] = []

    def start(self) -> None:
        ctx = mp.get_context("spawn")
        level = logging.getLogger().getEffectiveLevel()
        for s in self.settings:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker_main, name=f"vigie-ingest-{s.mqtt_client_id}",
                               args=(child, s, self.accept_unknown, self.max_backoff_s, level), daemon=True)
            proc.start()
            child.close()
            self._procs.append(proc)
            self._conns.append(parent)
            self._locks.append(threading.Lock())
        for i in range(len(self._procs)):
            if self._ask(i, "started", None, START_TIMEOUT_S) is not True:
                raise RuntimeError(f"ingest worker {i} did not start")
        log.info("ingest started in %d worker processes (shared subscription group %s)",
                 len(self._procs), self.settings[0].mqtt_client_id.rsplit("-", 1)[0])

    def stop(self, flush_timeout_s: float = 10.0) -> None:
        """Stop every worker gracefully (they flush their spools in parallel)."""
        for i, conn in enumerate(self._conns):
            with self._locks[i]:
                try:
                    conn.send(("stop", flush_timeout_s))
                except OSError:
                    pass
        for i, proc in enumerate(self._procs):
            try:
                if self._conns[i].poll(flush_timeout_s + 30):
                    self._conns[i].recv()
            except (OSError, EOFError):
                pass
            proc.join(10)
            if proc.is_alive():
                log.error("ingest worker %d did not stop; terminating it", i)
                proc.terminate()
                proc.join(5)
            self._conns[i].close()
        self._procs, self._conns, self._locks = [], [], []

    @property
    def connected(self) -> bool:
        return bool(self._conns) and self.stats().connected

    def stats(self) -> IngestStats:
        return sum_stats(self.worker_stats())

    def worker_stats(self) -> list[IngestStats]:
        """Each worker's counters, by index."""
        return [self._ask(i, "stats", None) for i in range(len(self._conns))]

    def wait_subscribed(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        return all(self._ask(i, "subscribed", max(0.0, deadline - time.monotonic()))
                   for i in range(len(self._conns)))

    def wait_idle(self, timeout: float, quiet_s: float = 1.0) -> bool:
        """Every worker idle (see :meth:`Ingestor.wait_idle`), checked again in one last pass so a
        worker that got messages while another was waited for is not missed."""
        deadline = time.monotonic() + timeout
        while True:
            for i in range(len(self._conns)):
                if not self._ask(i, "idle", (max(0.0, deadline - time.monotonic()), quiet_s)):
                    return False
            if all(self._ask(i, "idle", (0.0, quiet_s)) for i in range(len(self._conns))):
                return True
            if time.monotonic() >= deadline:
                return False

    def _ask(self, i: int, command: str, arg, timeout: float | None = None):
        with self._locks[i]:
            conn = self._conns[i]
            conn.send((command, arg))
            if timeout is not None and not conn.poll(timeout):
                raise TimeoutError(f"ingest worker {i} did not answer {command!r}")
            return conn.recv()


def _worker_main(conn, settings, accept_unknown: bool, max_backoff_s: float, log_level: int) -> None:
    """One worker process: an Ingestor driven by the parent's requests on ``conn``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # the parent stops the workers gracefully
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=log_level, format=f"%(asctime)s %(levelname)s [{settings.mqtt_client_id}] "
                                                "%(name)s: %(message)s")
    from vigie.db import make_engine, make_sessionmaker
    from vigie.ingest.service import Ingestor
    from vigie.store import store_for

    store = store_for(settings)
    sessions = None if accept_unknown else make_sessionmaker(make_engine(settings.database_url))
    ing = Ingestor(settings, store, sessions, accept_unknown=accept_unknown, max_backoff_s=max_backoff_s)
    try:
        ing.start()
        while True:
            try:
                command, arg = conn.recv()
            except EOFError:  # the parent is gone
                return
            if command == "started":
                conn.send(True)
            elif command == "stats":
                conn.send(ing.stats())
            elif command == "subscribed":
                conn.send(ing.wait_subscribed(arg))
            elif command == "idle":
                conn.send(ing.wait_idle(arg[0], arg[1]))
            elif command == "stop":
                ing.stop(arg)
                conn.send(ing.stats())
                return
    finally:
        ing.stop()
        store.close()
