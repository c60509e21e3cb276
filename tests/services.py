"""Private instances of the real services for tests: InfluxDB and Mosquitto on free loopback ports.

Each instance lives in its own temporary directory with the project's own configuration
(``deploy/``), and is stopped by PID. The machine's own services are never touched.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, timeout: float, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"service exited with {proc.returncode}: {log.read_text()[-2000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"port {port} not open after {timeout}s; log: {log.read_text()[-2000:]}")


@dataclass
class Service:
    name: str
    workdir: Path
    port: int
    argv: list[str]
    proc: subprocess.Popen | None = None
    extra_ports: dict[str, int] = field(default_factory=dict)

    @property
    def log(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def start(self, timeout: float = 30.0) -> "Service":
        assert self.proc is None or self.proc.poll() is not None, "already running"
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen(self.argv, stdout=logf, stderr=subprocess.STDOUT, cwd=self.workdir,
                                     start_new_session=True)
        logf.close()
        _wait_port(self.port, timeout, self.proc, self.log)
        return self

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


def influxdb(workdir: Path, *, auth: bool = False) -> Service:
    """An ``influxd`` (1.x) with ``deploy/influxdb/influxdb.conf.template``; ``url`` in extra_ports.
    ``auth`` turns HTTP authentication on, as docs/security.md tells production to."""
    workdir.mkdir(parents=True, exist_ok=True)
    http_port, rpc_port = free_port(), free_port()
    conf = Template((ROOT / "deploy/influxdb/influxdb.conf.template").read_text()).substitute(
        DATA_DIR=str(workdir / "influx"), HTTP_PORT=http_port, RPC_PORT=rpc_port)
    if auth:
        conf = conf.replace("[http]\n", "[http]\n  auth-enabled = true\n", 1)
    (workdir / "influxdb.conf").write_text(conf)
    influxd = shutil.which("influxd") or "/usr/bin/influxd"
    svc = Service("influxd", workdir, http_port, [influxd, "-config", str(workdir / "influxdb.conf")])
    return svc


def influx_url(svc: Service) -> str:
    return f"http://127.0.0.1:{svc.port}"


def wait_influx_ready(svc: Service, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(influx_url(svc) + "/ping", timeout=1).status_code == 204:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError("influxd not ready")


@dataclass(frozen=True)
class TlsFiles:
    """PEM files for the broker's TLS listener: the CA, the server certificate and its key."""

    ca: Path
    cert: Path
    key: Path


def mosquitto(workdir: Path, *, auth_dir: Path | None = None, tls: TlsFiles | None = None) -> Service:
    """A ``mosquitto`` with the project's ``deploy/mosquitto/mosquitto.conf``, on a free port,
    persistence in ``workdir`` (so a restart keeps durable sessions, as in production).

    ``auth_dir``: the shipped authentication as is (no anonymous clients), with ``password_file``
    and ``acl_file`` in ``auth_dir`` (what ``vigie broker credentials --out auth_dir`` writes).
    None: anonymous access, for the tests of everything else (durability, decoding, throughput).
    ``tls``: the shipped TLS listener block uncommented with these files, on a second free port
    (``extra_ports["tls"]``)."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = (ROOT / "deploy/mosquitto/mosquitto.conf").read_text()
    conf = conf.replace("persistence_location /var/lib/mosquitto/", f"persistence_location {workdir}/")
    conf = conf.replace("listener 1883 127.0.0.1", f"listener {port} 127.0.0.1")
    lines = conf.splitlines()
    if auth_dir is None:
        lines = [("allow_anonymous true" if ln == "allow_anonymous false" else ln) for ln in lines
                 if not ln.startswith(("password_file ", "acl_file "))]
    else:
        lines = [f"password_file {auth_dir / 'passwd'}" if ln.startswith("password_file ") else
                 f"acl_file {auth_dir / 'acl'}" if ln.startswith("acl_file ") else ln for ln in lines]
    extra = {}
    if tls is not None:
        extra["tls"] = free_port()
        shipped = {"#listener 8883": f"listener {extra['tls']} 127.0.0.1", "#cafile ": f"cafile {tls.ca}",
                   "#certfile ": f"certfile {tls.cert}", "#keyfile ": f"keyfile {tls.key}",
                   "#tls_version ": None}
        for i, ln in enumerate(lines):
            for prefix, value in shipped.items():
                if ln.startswith(prefix):
                    lines[i] = value or ln[1:]
        assert f"listener {extra['tls']} 127.0.0.1" in lines, "no TLS listener block in mosquitto.conf"
    conf = "\n".join(lines) + "\n"
    if os.geteuid() == 0:
        # As root Mosquitto drops to the mosquitto user, which cannot write pytest's 0700
        # directories: the persistence file would not be saved and a restart would lose sessions.
        conf += "\nuser root\n"
    (workdir / "mosquitto.conf").write_text(conf)
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    return Service("mosquitto", workdir, port, [binary, "-c", str(workdir / "mosquitto.conf")], extra_ports=extra)


SERVICE_USER, SIMULATOR_USER = "vigie-ingest", "vigie-simulator"


def broker_credentials(auth_dir: Path, database_url: str, *args: str) -> dict[str, str]:
    """Run ``vigie broker credentials --out auth_dir --simulator`` on the registry at
    ``database_url`` (service user :data:`SERVICE_USER`, simulator :data:`SIMULATOR_USER`), as an
    operator would; returns the new passwords by user name (read from the secrets file, then
    removed). ``args``: more options (``--rotate ID``)."""
    secrets = auth_dir.parent / f"{auth_dir.name}-new-credentials"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIE_")}
    env.update(VIGIE_DATABASE_URL=database_url, VIGIE_MQTT_USERNAME=SERVICE_USER,
               VIGIE_SIMULATOR_MQTT_USERNAME=SIMULATOR_USER)
    done = subprocess.run([sys.executable, "-m", "vigie.cli", "broker", "credentials", "--out", str(auth_dir),
                           "--simulator", "--secrets", str(secrets), *args],
                          env=env, cwd=auth_dir.parent, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"vigie broker credentials failed: {done.stderr[-2000:]}")
    if not secrets.exists():
        return {}
    out = dict(line.split(":", 1) for line in secrets.read_text().splitlines())
    secrets.unlink()
    return out


class Subscriber:
    """A plain paho client collecting every message under ``topic_filter``."""

    def __init__(self, port: int, username: str | None = None, password: str | None = None,
                 topic_filter: str = "wmbusmeters/#") -> None:
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-sub-{uuid.uuid4().hex[:8]}")
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_connect = lambda c, *a: c.subscribe(topic_filter, qos=1)
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self._subscribed.wait(10), "no SUBACK"

    def _on_message(self, client, userdata, msg) -> None:
        with self._lock:
            self.messages.append((msg.topic, msg.payload))

    def wait_for(self, n: int, timeout: float = 30.0) -> list[tuple[str, bytes]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.messages) >= n:
                    return list(self.messages)
            time.sleep(0.05)
        with self._lock:
            raise AssertionError(f"received {len(self.messages)} of {n} messages")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait_until(predicate, timeout: float, what: str, interval: float = 0.5):
    """``predicate()``'s first truthy value, polled every ``interval`` s; AssertionError naming
    ``what`` (and the last value) after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")
