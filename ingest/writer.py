"""The spool writer: a thread that drains the spool to InfluxDB, oldest record first, posting the
line-protocol lines the spool keeps as they are: each batch as one ``/write`` per retention policy
and precision it holds (water readings to the writes' policy at precision s, assisted-living
events to the events policy at ms; :class:`~vigie.ingest.spool.SpooledPoint`).

Batching (as Telegraf's ``metric_batch_size``/``flush_interval``): a write goes out as soon as
``batch_size`` readings wait, or ``interval_s`` after readings started waiting.

Failures (:mod:`vigie.store.influx` errors):

- :class:`StoreUnavailable` (unreachable, 5xx): the batch stays in the spool and is retried with
  exponential back-off (``initial_backoff_s`` doubling up to ``max_backoff_s``); one warning when
  the outage starts, one line when it ends.
- :class:`StoreRejected` for points (400 bad point or field type conflict, 413 too large, 422
  outside retention): the batch is bisected until the refused readings are isolated; the others
  are written and the refused ones go to the dead-letter store (their line as payload) with
  InfluxDB's message.
- :class:`StoreRejected` not about points (401/403 credentials, 404 database missing): a
  configuration fault, retried with back-off like an outage, logged as an error.

Readings leave the spool only after InfluxDB accepted them (or they were dead-lettered), so a
crash re-sends at most the batch in flight; InfluxDB overwrites a point with the same
measurement, tags and timestamp, so that re-send leaves one point per reading.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timezone

from vigie.ingest.clock import SOURCE as CLOCK_SOURCE
from vigie.ingest.deadletter import DeadLetterStore, StoredDeadLetter
from vigie.ingest.spool import Spool, SpooledPoint
from vigie.store.influx import InfluxStore, StoreRejected, StoreUnavailable

log = logging.getLogger(__name__)

# HTTP statuses by which InfluxDB (1.x, 2.x v1 API) refuses points rather than the request.
POINT_REJECTIONS = {400, 413, 422}


class _Stopped(Exception):
    """The writer was asked to stop while waiting to retry."""


class SpoolWriter:
    """Drains ``spool`` into ``store`` on a background thread.

    ``retention_duration``: when given, the database and retention policy are ensured
    (:meth:`InfluxStore.ensure_database`) before the first write, retried like a write.
    """

    def __init__(self, spool: Spool, store: InfluxStore, dead_letters: DeadLetterStore, *,
                 batch_size: int = 5000, interval_s: float = 1.0, retention_duration: str | None = None,
                 initial_backoff_s: float = 0.5, max_backoff_s: float = 30.0) -> None:
        self.spool = spool
        self.store = store
        self.dead_letters = dead_letters
        self.batch_size = max(1, batch_size)
        self.interval_s = interval_s
        self.retention_duration = retention_duration
        self.initial_backoff_s = initial_backoff_s
        self.max_backoff_s = max_backoff_s
        self.written = 0
        self.clock_written = 0
        self.rejected = 0
        self.available = True
        self._db_ready = retention_duration is None
        self._cond = threading.Condition()
        self._stop_deadline: float | None = None
        self._thread = threading.Thread(target=self._run, name="vigie-spool-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def notify(self, appended: int) -> None:
        """``appended`` readings were appended to the spool. Wakes the thread only when that
        changes what it waits for: a first reading (starts the interval) or a full batch."""
        pending = self.spool.pending()
        if pending == appended or pending >= self.batch_size:
            with self._cond:
                self._cond.notify_all()

    def stop(self, flush_timeout_s: float = 10.0) -> None:
        """Write what the spool holds (for at most ``flush_timeout_s``; not at all while InfluxDB
        is unavailable — the readings stay in the spool for the next start), then end the thread."""
        with self._cond:
            self._stop_deadline = time.monotonic() + flush_timeout_s
            self._cond.notify_all()
        self._thread.join()

    # -- thread ------------------------------------------------------------------------------
    def _run(self) -> None:
        while self._wait_for_batch():
            try:
                self._deliver(self.spool.peek(self.batch_size))
            except _Stopped:
                return
            except Exception:  # a spool or dead-letter fault: keep the readings, try again later
                log.exception("spool writer error; retrying")
                try:
                    self._pause(self.max_backoff_s)
                except _Stopped:
                    return

    def _stopping(self) -> bool:
        return self._stop_deadline is not None

    def _wait_for_batch(self) -> bool:
        """Block until a batch is due; False when the thread should end."""
        due: float | None = None
        with self._cond:
            while True:
                n = self.spool.pending()
                if self._stopping():
                    return n > 0 and time.monotonic() < self._stop_deadline
                if n >= self.batch_size:
                    return True
                now = time.monotonic()
                if n == 0:
                    due = None
                    self._cond.wait()
                    continue
                if due is None:
                    due = now + self.interval_s
                if now >= due:
                    return True
                self._cond.wait(due - now)

    def _pause(self, seconds: float) -> None:
        with self._cond:
            if not self._stopping():
                self._cond.wait(seconds)
            if self._stopping():
                raise _Stopped

    def _deliver(self, batch: list[tuple[int, SpooledPoint]]) -> None:
        if not batch:
            return
        points = [p for _, p in batch]
        backoff = self.initial_backoff_s
        outage_start: float | None = None
        while True:
            try:
                if not self._db_ready:
                    self.store.ensure_database(self.retention_duration)
                    self._db_ready = True
                refused = self._write(points)
                break
            except (StoreUnavailable, StoreRejected) as exc:
                if outage_start is None:
                    outage_start = time.monotonic()
                    self.available = False
                    if isinstance(exc, StoreUnavailable):
                        log.warning("InfluxDB unavailable; %d reading(s) kept in the spool, retrying: %s",
                                    self.spool.pending(), exc)
                    else:
                        log.error("InfluxDB refuses writes (check database and credentials); "
                                  "readings kept in the spool, retrying: %s", exc)
                if self._stopping():
                    raise _Stopped from None
                self._pause(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)
        if outage_start is not None:
            self.available = True
            log.info("InfluxDB writes resume after %.1f s", time.monotonic() - outage_start)
        if refused:
            now = datetime.now(timezone.utc)
            self.dead_letters.append(
                StoredDeadLetter(topic="", payload=p.line, reason=f"store_rejected: {why}", received_at=now,
                                 decoder=p.source or None) for p, why in refused)
            log.warning("InfluxDB refused %d point(s), dead-lettered (devices %s)", len(refused),
                        ", ".join(sorted({p.device_id for p, _ in refused})[:10]))
        self.spool.remove_through(batch[-1][0])
        # device_clock points describe devices, not readings: counted apart.
        clock = sum(p.source == CLOCK_SOURCE for p in points) - sum(p.source == CLOCK_SOURCE for p, _ in refused)
        self.written += len(points) - len(refused) - clock
        self.clock_written += clock
        self.rejected += len(refused)

    def _write(self, points: list[SpooledPoint]) -> list[tuple[SpooledPoint, str]]:
        """Write ``points``, one request (and its bisection) per policy and precision; the refused
        ones with InfluxDB's reason. When a later request fails the retry sends the whole batch
        again, and InfluxDB overwrites the points already written."""
        purpose, precision = points[0].purpose, points[0].precision
        # The common case, a batch of one target, costs two comparisons per point.
        if all(p.purpose == purpose and p.precision == precision for p in points):
            return self._bisect(points, purpose, precision)
        groups: dict[tuple[str, str], list[SpooledPoint]] = {}
        for p in points:
            groups.setdefault((p.purpose, p.precision), []).append(p)
        return [r for (purpose, precision), group in groups.items() for r in self._bisect(group, purpose, precision)]

    def _bisect(self, points: list[SpooledPoint], purpose: str, precision: str) -> list[tuple[SpooledPoint, str]]:
        """Write ``points`` to the policy kept for ``purpose`` (``""``: the store's own); the ones
        InfluxDB refuses, with its reason. Raises :class:`StoreUnavailable` and request-level
        :class:`StoreRejected` unchanged."""
        if not points:
            return []
        try:
            self.store.write_lines([p.line for p in points], precision=precision,
                                   retention_policy=self.store.policy_for(purpose) if purpose else None)
            return []
        except StoreRejected as exc:
            if not _refuses_points(exc):
                raise
            if len(points) == 1:
                return [(points[0], str(exc))]
            mid = len(points) // 2
            return (self._bisect(points[:mid], purpose, precision)
                    + self._bisect(points[mid:], purpose, precision))


def _refuses_points(exc: StoreRejected) -> bool:
    return exc.status in POINT_REJECTIONS
