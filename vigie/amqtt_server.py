"""The embedded MQTT broker's process: amqtt (MQTT 3.1.1, in memory) with at-least-once delivery.

Run as ``python -m vigie.amqtt_server`` by :class:`vigie.embedded_broker.EmbeddedBroker`, never by
hand. It reads one JSON line on standard input — ``{"host": "127.0.0.1", "port": 18830, "users":
{"name": "password", ...}}`` — (secrets never on the command line, which other local users can
read), starts the broker, prints ``ready <port>`` on standard output, and stops when standard
input closes (the parent exited or stopped it) or on SIGTERM.

Why amqtt, and why it is corrected here. amqtt 0.12 is the maintained pure-Python broker (MIT,
Python 3.10–3.14); its persistent sessions (``clean_session=False``) keep subscriptions and queue
QoS 1 messages for a disconnected *authenticated* client, but three of its behaviours break the
ingestor's guarantee, acknowledge after commit (MQTT 3.1.1 §4.4: a session's unacknowledged QoS 1
messages are re-sent when the client reconnects, [MQTT-4.4.0-1]):

1. an outgoing QoS 1 message not acknowledged within 5 s is dropped from the session;
2. a message in flight when the client's connection drops is dropped too (its PUBACK waiter is
   cancelled and the message removed), so a crash between reception and commit loses it;
3. messages queued while the client was away are delivered with RETAIN=1, which
   [MQTT-3.3.1-9] forbids (the ingestor treats retained messages as a device's last known state,
   e.g. no clock-drift point).

:func:`install_at_least_once` replaces those three code paths (amqtt's own methods, pinned to
``amqtt==0.12.1`` in pyproject.toml, and proven by tests/test_embedded_broker.py against the real
broker): an outgoing QoS 1 message stays in the session's ``inflight_out`` until its PUBACK, with no
timeout; a reconnect re-sends every one of them (DUP=1) without blocking the new connection; queued
messages go out with RETAIN=0. QoS 2 is left as amqtt does it (Vigie uses QoS 1 only).

Authentication: :class:`UsersAuthPlugin` checks the user and password against the table given on
standard input (constant-time comparison); anonymous clients are refused, as amqtt queues nothing
for an anonymous session.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import json
import logging
import os
import signal
import sys
from dataclasses import dataclass, field

from amqtt.plugins.base import BaseAuthPlugin

log = logging.getLogger("vigie.amqtt_server")


def install_at_least_once() -> None:
    """Patch amqtt's QoS 1 outgoing flow, reconnect re-sending and queued-message delivery (module
    docstring). Idempotent; affects this process only."""
    from amqtt.broker import Broker
    from amqtt.mqtt.protocol.handler import ProtocolHandler
    from amqtt.session import OUTGOING

    if getattr(ProtocolHandler, "_vigie_at_least_once", False):
        return
    original_qos1 = ProtocolHandler._handle_qos1_message_flow

    async def qos1_flow(self, app_message) -> None:
        if app_message.direction != OUTGOING:
            return await original_qos1(self, app_message)
        session = self.session
        packet_id = app_message.packet_id
        # In the session until acknowledged, whatever happens to this connection.
        session.inflight_out[packet_id] = app_message
        waiter = asyncio.get_running_loop().create_future()
        # Registered before the send: the PUBACK may be read before the send returns.
        self._puback_waiters[packet_id] = waiter
        try:
            packet = app_message.build_publish_packet(dup=app_message.publish_packet is not None)
            await self._send_packet(packet)
            app_message.publish_packet = packet
            app_message.puback_packet = await waiter
        finally:
            if self._puback_waiters.get(packet_id) is waiter:
                del self._puback_waiters[packet_id]

    async def handle_puback(self, puback) -> None:
        packet_id = puback.variable_header.packet_id
        if self.session is not None:
            self.session.inflight_out.pop(packet_id, None)
        waiter = self._puback_waiters.get(packet_id)
        if waiter is not None and not waiter.done():
            waiter.set_result(puback)

    async def retry_deliveries(self) -> None:
        # Re-send in the background: the connection must go on (subscriptions, new messages, more
        # acknowledgements) while the client works through what it had not acknowledged.
        for message in list(itertools.chain(self.session.inflight_in.values(), self.session.inflight_out.values())):
            _spawn(self._handle_message_flow(message))

    async def publish_session_queued(self, session) -> None:
        handler = self._get_handler(session)
        if handler is None:
            return
        while not session.retained_messages.empty():
            queued = session.retained_messages.get_nowait()
            _spawn(handler.mqtt_publish(queued.topic, queued.data, queued.qos, retain=False))

    ProtocolHandler._handle_qos1_message_flow = qos1_flow
    ProtocolHandler.handle_puback = handle_puback
    ProtocolHandler._retry_deliveries = retry_deliveries
    Broker._publish_session_retained_messages = publish_session_queued
    ProtocolHandler._vigie_at_least_once = True


_TASKS: set[asyncio.Task] = set()


def _spawn(coro) -> None:
    """Run ``coro`` as a task kept alive until done; a connection that closes cancels its sends
    (the messages stay in the session), which is not an error."""
    task = asyncio.ensure_future(coro)
    _TASKS.add(task)

    def done(t: asyncio.Task) -> None:
        _TASKS.discard(t)
        if not t.cancelled() and t.exception() is not None:
            log.debug("send ended: %r", t.exception())

    task.add_done_callback(done)


class UsersAuthPlugin(BaseAuthPlugin):
    """Password check against the table handed to the process (never anonymous)."""

    async def authenticate(self, *, session) -> bool:
        users: dict[str, str] = self.context.config.users
        expected = users.get(session.username or "")
        given = session.password or ""
        if isinstance(given, bytes):
            given = given.decode("utf-8", "replace")
        return expected is not None and hmac.compare_digest(expected.encode(), given.encode())

    @dataclass
    class Config:
        users: dict = field(default_factory=dict)


def broker_config(host: str, port: int, users: dict[str, str]) -> dict:
    """amqtt's configuration: one TCP listener, our authentication, no $SYS topics, sessions kept
    until the broker stops (in memory). The plugin is named by this module's own name (``__main__``
    when run with ``-m``), so amqtt finds the class of the running module."""
    return {"listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}", "max_connections": 64}},
            "plugins": {f"{__name__}.UsersAuthPlugin": {"users": users}}}


async def serve(host: str, port: int, users: dict[str, str], stop: asyncio.Event) -> None:
    """Run the broker until ``stop`` is set. Raises OSError when the port is taken."""
    from amqtt.broker import Broker

    install_at_least_once()
    broker = Broker(broker_config(host, port, users))
    await broker.start()
    print(f"ready {port}", flush=True)
    try:
        await stop.wait()
    finally:
        await broker.shutdown()


def main() -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s embedded-broker %(name)s: %(message)s")
    # amqtt logs every refused or dropped connection at WARNING/ERROR with a traceback; keep real errors only
    logging.getLogger("amqtt").setLevel(logging.CRITICAL)
    line = sys.stdin.readline()
    try:
        conf = json.loads(line)
        host, port, users = str(conf["host"]), int(conf["port"]), dict(conf["users"])
    except (ValueError, KeyError, TypeError) as exc:
        print(f"embedded broker: bad configuration on standard input: {exc}", file=sys.stderr)
        return 2

    async def run() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        # Standard input closing = the parent is gone: never outlive it.
        fd = sys.stdin.fileno()
        loop.add_reader(fd, lambda: stop.set() if not os.read(fd, 4096) else None)
        await serve(host, port, users, stop)

    try:
        asyncio.run(run())
    except OSError as exc:
        print(f"embedded broker: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
