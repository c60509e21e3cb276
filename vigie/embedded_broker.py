"""Vigie's embedded MQTT broker: amqtt in a child process on a free loopback port.

Used when no broker is configured (``VIGIE_MQTT_URL`` set nowhere: environment, ``.env`` or the
``VIGIE_CONFIG`` file — see :func:`vigie.config.Settings.is_configured`), by ``vigie demo``. It
speaks MQTT 3.1.1 only, so clients on it use ``VIGIE_MQTT_PROTOCOL=3.1.1`` (``auto`` resolves to it
there) and the ingestor keeps a persistent 3.1.1 session (``clean_session=False``). Sessions and
queued messages live in the broker's memory: they survive an ingestor restart, not a broker restart.

The broker is a child process (``python -m vigie.amqtt_server``, which also corrects amqtt's
at-least-once delivery, see there) rather than a thread: it gets its own interpreter lock, so
publishing and ingesting at full speed do not share one core's Python with it. It refuses
anonymous clients (amqtt queues nothing for them); :meth:`EmbeddedBroker.add_user` accounts are
handed over on its standard input, and the child exits when that pipe closes, so it never outlives
the process that started it.
"""

from __future__ import annotations

import json
import os
import secrets
import selectors
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


class EmbeddedBrokerError(RuntimeError):
    """The embedded broker could not start (amqtt missing, no free port, or it failed)."""


@dataclass(frozen=True, slots=True)
class BrokerAccount:
    """A user of the embedded broker; ``password`` is random unless given (secret: never logged)."""

    username: str
    password: str


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` now (the OS's choice; another process may take it before use)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class EmbeddedBroker:
    """amqtt (MQTT 3.1.1) as a child process on ``host`` (loopback) and a free port.

    ``log_file``: where the broker's own errors go (default: this process's standard error).
    Use as a context manager or :meth:`start`/:meth:`stop`. Raises :class:`EmbeddedBrokerError`
    from :meth:`start` when it cannot start within ``start_timeout_s``.
    """

    PROTOCOL = "3.1.1"

    def __init__(self, host: str = "127.0.0.1", port: int | None = None, *, log_file: Path | None = None,
                 start_timeout_s: float = 30.0) -> None:
        self.host = host
        self.port = port
        self.log_file = log_file
        self.start_timeout_s = start_timeout_s
        self._users: dict[str, str] = {}
        self._proc: subprocess.Popen | None = None
        self._log = None

    def add_user(self, username: str, password: str | None = None) -> BrokerAccount:
        """Register an account before :meth:`start` (a random password when none is given)."""
        if self._proc is not None:
            raise EmbeddedBrokerError("accounts are set before the broker starts")
        account = BrokerAccount(username, password if password is not None else secrets.token_urlsafe(18))
        self._users[account.username] = account.password
        return account

    @property
    def url(self) -> str:
        """``mqtt://host:port`` (no credentials)."""
        if self.port is None:
            raise EmbeddedBrokerError("the embedded broker has not started")
        return f"mqtt://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> "EmbeddedBroker":
        """Start the child and wait for it to listen; retried on another port when the chosen one
        was taken meanwhile (a port given to the constructor is not changed)."""
        try:
            import amqtt  # noqa: F401  - fail here, with the fix, rather than in the child
        except ImportError as exc:
            raise EmbeddedBrokerError(f"the embedded broker needs amqtt (pip install amqtt): {exc}") from None
        fixed = self.port is not None
        last = ""
        for _ in range(1 if fixed else 3):
            port = self.port if fixed else free_port(self.host)
            ok, last = self._spawn(port)
            if ok:
                self.port = port
                return self
        raise EmbeddedBrokerError(f"embedded MQTT broker did not start: {last}")

    def _spawn(self, port: int) -> tuple[bool, str]:
        if self.log_file is not None:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_file, "ab")
        proc = subprocess.Popen([sys.executable, "-m", "vigie.amqtt_server"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=self._log if self._log else None,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        proc.stdin.write((json.dumps({"host": self.host, "port": port, "users": self._users}) + "\n").encode())
        proc.stdin.flush()
        deadline = time.monotonic() + self.start_timeout_s
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            while time.monotonic() < deadline:
                if sel.select(timeout=0.2):
                    line = proc.stdout.readline().decode(errors="replace").strip()
                    if line.startswith("ready"):
                        self._proc = proc
                        return True, ""
                    if not line and proc.poll() is not None:
                        break
                elif proc.poll() is not None:
                    break
        self._terminate(proc)
        return False, (f"exit code {proc.returncode}" if proc.returncode is not None else
                       f"not listening after {self.start_timeout_s:.0f} s") + (
                           f" (its log: {self.log_file})" if self.log_file else "")

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the broker (sessions and queued messages are lost with it)."""
        if self._proc is not None:
            self._terminate(self._proc, timeout_s)
            self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    @staticmethod
    def _terminate(proc: subprocess.Popen, timeout_s: float = 10.0) -> None:
        try:
            proc.stdin.close()        # the child stops when its standard input closes
        except OSError:
            pass
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    def __enter__(self) -> "EmbeddedBroker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
