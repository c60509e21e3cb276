"""The embedded broker (amqtt, MQTT 3.1.1, vigie.embedded_broker) against real clients: the
ingestor's persistent 3.1.1 session survives a restart and gets what was published meanwhile, once;
messages a client received but never acknowledged come back after its connection drops (the
at-least-once corrections of vigie.amqtt_server); queued messages are not flagged retained;
anonymous and wrong-password clients are refused."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from pydantic import SecretStr

from test_ingest import count_points, registry
from vigie.config import Settings
from vigie.embedded_broker import EmbeddedBroker
from vigie.ingest.service import Ingestor
from vigie.simulators.publish import WmbusReading, publish_readings

pytestmark = pytest.mark.e2e
UTC = timezone.utc


@pytest.fixture
def broker(tmp_path):
    b = EmbeddedBroker(log_file=tmp_path / "broker.log")
    b.add_user("ingest", "ingest-pw")
    b.add_user("sim", "sim-pw")
    with b:
        yield b


def readings(meters: list[str], start: datetime, n: int) -> list[WmbusReading]:
    """``n`` hourly readings per meter, index rising 10 L an hour."""
    return [WmbusReading(m, start + timedelta(hours=h), 100.0 + 0.01 * h, driver="iperl")
            for h in range(n) for m in meters]


def settings_for(broker: EmbeddedBroker, tmp_path, store, sqlite_url: str, client_id: str) -> Settings:
    return Settings(mqtt_url=broker.url, mqtt_username="ingest", mqtt_password=SecretStr("ingest-pw"),
                    mqtt_protocol="3.1.1", mqtt_client_id=client_id, influx_url=store.url,
                    influx_database=store.database, influx_retention_policy="vigie_raw", data_dir=tmp_path / "data",
                    database_url=sqlite_url, write_batch_interval_s=0.2)


def test_durable_session_across_an_ingestor_restart(broker, influx_store, tmp_path, sqlite_url):
    meters = [f"emb-{i:02d}" for i in range(5)]
    sessions = registry(sqlite_url, meters)
    settings = settings_for(broker, tmp_path, influx_store, sqlite_url, f"vigie-emb-{uuid.uuid4().hex[:6]}")
    start = (datetime.now(UTC) - timedelta(days=3)).replace(minute=0, second=0, microsecond=0)
    first, during, after = readings(meters, start, 20), readings(meters, start + timedelta(hours=20), 20), \
        readings(meters, start + timedelta(hours=40), 20)
    publish = lambda rs: publish_readings(rs, broker.url, username="sim", password="sim-pw",  # noqa: E731
                                          protocol="3.1.1")

    ing = Ingestor(settings, influx_store, sessions)
    ing.start()
    assert ing.wait_subscribed(10)
    assert publish(first) == len(first)
    # Stopped while messages are still arriving: what it received and committed is acknowledged,
    # the rest stays with the broker.
    stopper = threading.Timer(0.05, ing.stop)
    stopper.start()
    assert publish(during) == len(during)
    stopper.join()
    assert publish(after) == len(after)     # the ingestor is away: the broker queues for its session

    ing = Ingestor(settings, influx_store, sessions)
    ing.start()
    try:
        assert ing.wait_subscribed(10)
        deadline = time.monotonic() + 60
        while count_points(influx_store) < 300 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert ing.wait_idle(30)
        assert ing.stats().dead_letters == {}
    finally:
        ing.stop()
    assert count_points(influx_store) == 300          # every reading, each once (a re-sent one overwrites)


class _Client:
    """A plain paho MQTT 3.1.1 subscriber with a persistent session and manual acknowledgement."""

    def __init__(self, port: int, client_id: str, ack: bool) -> None:
        self.got: list[tuple[str, bool, bool]] = []     # (payload, retain, dup)
        self.ack = ack
        self.subscribed = threading.Event()
        self.connack: list = []
        c = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv311,
                        clean_session=False, manual_ack=True)
        c.username_pw_set("ingest", "ingest-pw")
        c.on_connect = lambda cl, u, flags, rc, p: (self.connack.append((rc, flags.session_present)),
                                                    cl.subscribe("t/#", qos=1))
        c.on_subscribe = lambda *a: self.subscribed.set()
        c.on_message = self._on_message
        c.connect("127.0.0.1", port, keepalive=30)
        c.loop_start()
        assert self.subscribed.wait(10)
        self.client = c

    def _on_message(self, client, userdata, m) -> None:
        self.got.append((m.payload.decode(), bool(m.retain), bool(m.dup)))
        if self.ack:
            client.ack(m.mid, m.qos)

    def wait(self, n: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.got) < n and time.monotonic() < deadline:
            time.sleep(0.05)

    def crash(self) -> None:
        """Drop the connection without DISCONNECT, as a killed process would."""
        self.client.socket().shutdown(socket.SHUT_RDWR)
        self.client.loop_stop()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _publish(port: int, payloads: list[str]) -> None:
    p = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:6]}",
                    protocol=MQTTProtocolVersion.MQTTv311)
    p.username_pw_set("sim", "sim-pw")
    p.max_inflight_messages_set(1000)
    p.connect("127.0.0.1", port)
    p.loop_start()
    try:
        for info in [p.publish(f"t/{i % 7}", x, qos=1) for i, x in enumerate(payloads)]:
            info.wait_for_publish(30)
    finally:
        p.disconnect()
        p.loop_stop()


def test_unacknowledged_messages_come_back_after_a_crash(broker):
    cid = f"crash-{uuid.uuid4().hex[:6]}"
    _Client(broker.port, cid, ack=True).close()            # the session exists from now on
    queued = [f"q{i}" for i in range(500)]
    _publish(broker.port, queued)                           # queued while the client is away

    first = _Client(broker.port, cid, ack=False)           # receives them, commits nothing
    first.wait(len(queued))
    assert sorted(p for p, _, _ in first.got) == sorted(queued)
    assert not any(retain for _, retain, _ in first.got)   # [MQTT-3.3.1-9]: queued is not retained
    live = [f"l{i}" for i in range(200)]
    _publish(broker.port, live)                             # delivered live, not acknowledged either
    first.wait(len(queued) + len(live))
    assert len(first.got) == len(queued) + len(live)
    time.sleep(6)                                           # amqtt alone dropped them after 5 s
    first.crash()

    second = _Client(broker.port, cid, ack=True)            # the restarted ingestor
    second.wait(len(queued) + len(live))
    assert second.connack[0][1] is True                     # session present
    assert sorted(p for p, _, _ in second.got) == sorted(queued + live)
    assert all(dup for _, _, dup in second.got)             # re-sent, DUP=1
    second.close()

    third = _Client(broker.port, cid, ack=True)             # acknowledged: never sent again
    time.sleep(1.0)
    assert third.got == []
    third.close()


@pytest.mark.parametrize("user, password", [(None, None), ("ingest", "wrong")])
def test_unknown_clients_are_refused(broker, user, password):
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"x-{uuid.uuid4().hex[:6]}",
                    protocol=MQTTProtocolVersion.MQTTv311)
    if user:
        c.username_pw_set(user, password)
    codes = []
    c.on_connect = lambda cl, u, flags, rc, p: codes.append(rc)
    c.connect("127.0.0.1", broker.port)
    deadline = time.monotonic() + 10
    while not codes and time.monotonic() < deadline:
        c.loop(0.1)
    c.disconnect()
    assert codes and codes[0].is_failure, codes


def test_the_broker_stops_with_its_parent_pipe(tmp_path):
    b = EmbeddedBroker(log_file=tmp_path / "broker.log").start()
    proc = b._proc
    b.stop()
    assert proc.poll() is not None
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", b.port), timeout=1).close()
