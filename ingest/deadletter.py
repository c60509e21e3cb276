"""The dead-letter store: every message the ingestor could not store as readings, kept whole.

File: ``<data_dir>/dead-letters.jsonl``, JSON Lines (one object per line, UTF-8, append-only):

``{"topic": str, "payload": str, "reason": str, "received_at": RFC 3339 UTC, "decoder": str|null,
"payload_encoding": "utf-8"|"base64"}``

- ``payload`` is the MQTT payload unchanged: as text when it is valid UTF-8, else base64 of the
  raw bytes with ``payload_encoding: "base64"`` — nothing is replaced, so a dead letter can be
  fixed and re-published byte for byte.
- ``reason`` is ``"<kind>: <human reason>"``; ``kind`` is a short code (``not_json``,
  ``bad_index``, ``future_time``, ``unknown_meter``, ``store_rejected``…, see
  ``ingest/README.md``), for counting and filtering (``jq 'select(.reason|startswith("bad_index"))'``).
- Readings InfluxDB refused (``store_rejected``) have ``topic`` ``""``, the reading's decoder and
  the refused point, the line-protocol line that was posted, for payload.

The file has mode 0600 and its directory, when Vigie creates it, 0700 (:mod:`vigie.private_files`):
payloads may name people. Appends are flushed and fsync'd before :meth:`DeadLetterStore.append` returns: the ingestor
acknowledges an MQTT message only after its dead letter is on disk.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from vigie.private_files import make_private_dir, open_private
from vigie.records import DeadLetter

FILE_NAME = "dead-letters.jsonl"


@dataclass(frozen=True, slots=True)
class StoredDeadLetter(DeadLetter):
    """A :class:`DeadLetter` with how its ``payload`` text encodes the message bytes
    (``"utf-8"``: the text itself; ``"base64"``: base64 of bytes that were not UTF-8)."""

    payload_encoding: str = "utf-8"

    @classmethod
    def from_message(cls, topic: str, payload: bytes, reason: str, received_at: datetime,
                     decoder: str | None = None) -> "StoredDeadLetter":
        try:
            return cls(topic, payload.decode("utf-8"), reason, received_at, decoder)
        except UnicodeDecodeError:
            return cls(topic, base64.b64encode(payload).decode("ascii"), reason, received_at, decoder,
                       payload_encoding="base64")

    @property
    def kind(self) -> str:
        """The reason's kind code (the text before the first colon)."""
        return reason_kind(self.reason)

    def payload_bytes(self) -> bytes:
        """The original message body."""
        if self.payload_encoding == "base64":
            return base64.b64decode(self.payload)
        return self.payload.encode("utf-8")


def reason_kind(reason: str) -> str:
    return reason.split(":", 1)[0].strip()


class DeadLetterStore:
    """Append-only JSON Lines file of dead letters. Thread-safe; one writer process per file.

    ``counts()`` gives the dead letters appended by this instance, by reason kind.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        make_private_dir(self.path.parent)
        new = not self.path.exists()
        self._fh = os.fdopen(open_private(self.path, os.O_WRONLY | os.O_APPEND), "ab")
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        if new:
            _fsync_dir(self.path.parent)
        elif self._fh.tell() > 0 and not _ends_with_newline(self.path):
            # A crash mid-append left a partial line: end it so the next record starts clean
            # (the reader skips the fragment).
            self._fh.write(b"\n")
            self._sync()

    def append(self, letters: Iterable[DeadLetter]) -> int:
        """Write ``letters`` and fsync; returns how many were written."""
        letters = list(letters)
        if not letters:
            return 0
        data = "".join(_line(dl) + "\n" for dl in letters).encode("utf-8")
        with self._lock:
            self._fh.write(data)
            self._sync()
            for dl in letters:
                self._counts[reason_kind(dl.reason)] += 1
        return len(letters)

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def close(self) -> None:
        with self._lock:
            if not self._fh.closed:
                self._fh.close()

    def _sync(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())


def read_dead_letters(path: Path, limit: int | None = None) -> list[StoredDeadLetter]:
    """The dead letters in ``path``, oldest first; with ``limit``, only the newest ``limit``.

    A missing file is an empty store. Lines that are not complete records (a write cut by a
    crash) are skipped.
    """
    path = Path(path)
    if not path.exists():
        return []
    out: deque[StoredDeadLetter] = deque(maxlen=limit or None)
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if not line.endswith("\n"):
                break
            try:
                d = json.loads(line)
                out.append(StoredDeadLetter(
                    topic=d["topic"], payload=d["payload"], reason=d["reason"],
                    received_at=datetime.fromisoformat(d["received_at"]), decoder=d.get("decoder"),
                    payload_encoding=d.get("payload_encoding", "utf-8")))
            except (ValueError, KeyError, TypeError):
                continue
    return list(out)


def read_data_dir_dead_letters(data_dir: Path, limit: int | None = None) -> list[StoredDeadLetter]:
    """The dead letters of an ingestor's ``data_dir`` — its own file and those of its worker
    processes (``worker-<i>/``, see :mod:`vigie.ingest.workers`) — oldest first by
    ``received_at``; with ``limit``, only the newest ``limit``."""
    data_dir = Path(data_dir)
    paths = [data_dir / FILE_NAME, *sorted(data_dir.glob(f"worker-*/{FILE_NAME}"))]
    letters = sorted((dl for p in paths for dl in read_dead_letters(p, limit)), key=lambda dl: dl.received_at)
    return letters[-limit:] if limit else letters


def _line(dl: DeadLetter) -> str:
    if isinstance(dl, StoredDeadLetter):
        return dl.to_json()
    d = json.loads(dl.to_json())
    d["payload_encoding"] = "utf-8"
    return json.dumps(d, ensure_ascii=False, separators=(",", ":"))


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"


def _fsync_dir(path: Path) -> None:
    """Make a new file's directory entry durable (POSIX: fsync the directory)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
