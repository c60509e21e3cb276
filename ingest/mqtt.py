"""The ingestor's MQTT side: one durable MQTT 5 (or 3.1.1) session, QoS 1 subscriptions, manual
acknowledgement.

Why each choice (MQTT 5.0 §3.1.2.4, §3.1.2.11, §4.4, §4.9; paho-mqtt 2.x):

- ``clean_start=False`` + Session Expiry Interval: the broker keeps the session (subscriptions and
  unacknowledged or queued QoS 1 messages) while the ingestor is away, and delivers them when it
  returns. paho's default for MQTT 5 (``MQTT_CLEAN_START_FIRST_ONLY``) would wipe it at start.
- ``manual_ack=True``: a PUBACK is sent only once the message is on disk (spool or dead-letter
  file), so a crash before that makes the broker re-send it on reconnect (at-least-once).
- Receive Maximum (default 1000): how many unacknowledged QoS 1 messages the broker may send
  ahead; acknowledging after a group commit needs a window larger than one message
  (Mosquitto's own default is 20, see ``deploy/mosquitto/mosquitto.conf``).
- Re-subscribe on every connect with Retain Handling 1 ("send retained only for a new
  subscription"): a resumed session gets its subscriptions back without a fresh copy of every
  retained message; a new session gets the retained messages, which are normal input.
- An acknowledgement is only sent on the connection its message arrived on: packet ids belong to a
  connection, and the broker re-sends unacknowledged messages after a reconnect anyway.
- The network loop is ours (:class:`DurableSubscriber` ``_run``), driving paho through its
  external-event-loop API (``socket``, ``loop_read``, ``loop_write``, ``loop_misc``, ``reconnect``)
  rather than ``loop_start``: it reads every packet that has arrived before waiting in ``poll``
  again (paho's loop waits once per packet), and the acknowledgements of a commit are handed to it
  in one batch and sent from it, so no other thread calls into paho (paho's threaded mode wakes its
  loop through a socket pair once per PUBACK). In the ingest benchmark the ingestor's CPU per
  message fell from 258–267 to 217–248 µs (docs/benchmarks.md).

MQTT 3.1.1 (``VIGIE_MQTT_PROTOCOL=3.1.1``, Vigie's embedded broker; MQTT 3.1.1 §3.1.2.4, §4.4): the
same guarantee with ``clean_session=False`` — the broker keeps the session (subscriptions, queued and
unacknowledged QoS 1 messages) until a clean connect, and re-sends what was not acknowledged on
reconnect ([MQTT-4.4.0-1]); paho's ``manual_ack`` works alike there (the PUBACK is one packet in both
versions). 3.1.1 has no Session Expiry (the broker decides), no Receive Maximum (the broker sends
as fast as it can; the messages wait in the ingestor's memory for their commit), no Retain Handling
(a resumed session gets the retained messages again on re-subscribing; a reading re-sent overwrites
its own point and an availability already spooled stores nothing), and no shared subscriptions (one
ingestor process).
"""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

log = logging.getLogger(__name__)

RECEIVE_MAXIMUM = 1000
KEEPALIVE_S = 30
RECONNECT_MIN_S, RECONNECT_MAX_S = 1, 30
#: Packets read in a row before the loop sends acknowledgements and checks the keepalive.
MAX_DRAIN = 1000
#: How long :meth:`DurableSubscriber.stop` waits for the queued acknowledgements and DISCONNECT.
STOP_FLUSH_S = 5.0
_READABLE = select.POLLIN | select.POLLERR | select.POLLHUP | select.POLLNVAL


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """One MQTT message as received. ``received_at`` is UTC; ``mid``/``epoch`` identify it for
    :meth:`DurableSubscriber.ack` (``epoch``: the connection it arrived on)."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    received_at: datetime
    mid: int
    epoch: int


class DurableSubscriber:
    """A paho-mqtt 2.x client (MQTT 5, or 3.1.1 by ``settings.mqtt_protocol_version``; callback
    API 2) holding the durable session, and the network thread that drives it.

    ``filters``: topic filters subscribed at QoS 1. ``handler`` is called on the network thread
    for each message and must not block long; the caller later passes handled messages to
    :meth:`ack` in arrival order. Reconnects by itself with back-off (1 s doubling to 30 s).
    """

    def __init__(self, settings, filters: Iterable[str], handler: Callable[[InboundMessage], None], *,
                 receive_maximum: int = RECEIVE_MAXIMUM) -> None:
        self.settings = settings
        self.filters = list(filters)
        self._handler = handler
        self._epoch = 0             # written on the network thread only
        self._handled = 0           # messages handled; tells the loop a read produced one
        self._connected = False
        self._stopping = threading.Event()
        self._down_since: float | None = None
        self._acks: deque[list[InboundMessage]] = deque()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._thread: threading.Thread | None = None
        self.subscribed = threading.Event()
        self.subscribed_at = 0.0  # monotonic time of the last SUBACK

        self.protocol = getattr(settings, "mqtt_protocol_version", "5")
        if self.protocol == "3.1.1":
            shared = [f for f in self.filters if f.startswith("$share/")]
            if shared:
                raise ValueError(f"MQTT 3.1.1 has no shared subscriptions ({shared[0]}): VIGIE_INGEST_WORKERS "
                                 "must be 1 with VIGIE_MQTT_PROTOCOL=3.1.1")
            c = paho.Client(CallbackAPIVersion.VERSION2, client_id=settings.mqtt_client_id,
                            protocol=MQTTProtocolVersion.MQTTv311, clean_session=False, manual_ack=True)
        else:
            c = paho.Client(CallbackAPIVersion.VERSION2, client_id=settings.mqtt_client_id,
                            protocol=MQTTProtocolVersion.MQTTv5, manual_ack=True)
        if settings.mqtt_username:
            pw = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
            c.username_pw_set(settings.mqtt_username, pw)
        if settings.mqtt_tls:
            # server certificate and host name checked, against VIGIE_MQTT_CA_FILE or the system store
            c.tls_set(ca_certs=str(settings.mqtt_ca_file) if settings.mqtt_ca_file else None)
        c.on_pre_connect = self._on_pre_connect
        c.on_connect = self._on_connect
        c.on_subscribe = self._on_subscribe
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        self._props = Properties(PacketTypes.CONNECT)
        self._props.SessionExpiryInterval = settings.mqtt_session_expiry_s
        self._props.ReceiveMaximum = receive_maximum
        self._client = c

    @property
    def connected(self) -> bool:
        return self._connected

    def start(self) -> None:
        """Connect in the background (a broker that is down is retried, not an error)."""
        if self.protocol == "3.1.1":   # clean_session=False was given to the client
            self._client.connect_async(self.settings.mqtt_host, self.settings.mqtt_port, keepalive=KEEPALIVE_S)
        else:
            self._client.connect_async(self.settings.mqtt_host, self.settings.mqtt_port, keepalive=KEEPALIVE_S,
                                       clean_start=False, properties=self._props)
        self._thread = threading.Thread(target=self._run, name="vigie-mqtt", daemon=True)
        self._thread.start()

    def ack(self, messages: Iterable[InboundMessage]) -> int:
        """Queue the acknowledgements of ``messages`` (in the order given, which must be arrival
        order) for the network thread, which sends them at once. QoS 0 messages are skipped, and
        messages of an earlier connection when sent. Returns how many were queued."""
        batch = [m for m in messages if m.qos > 0]
        if batch:
            self._acks.append(batch)
            self._wake()
        return len(batch)

    def stop(self) -> None:
        """Send the queued acknowledgements, then DISCONNECT (the session stays on the broker)."""
        self._stopping.set()
        self._wake()
        if self._thread is not None:
            self._thread.join(STOP_FLUSH_S + 2 * KEEPALIVE_S)
            self._thread = None
        self._connected = False
        self._wake_r.close()
        self._wake_w.close()

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):  # already awake (buffer full), or stopped
            pass

    # -- network thread ------------------------------------------------------------------------
    def _run(self) -> None:
        backoff = RECONNECT_MIN_S
        client = self._client
        while not self._stopping.is_set():
            try:
                client.reconnect()
            except OSError as exc:
                self._on_connect_fail(exc)
            else:
                try:
                    if self._serve():
                        backoff = RECONNECT_MIN_S
                except Exception:   # a paho bug must not end ingestion: reconnect (reconnect() closes the socket)
                    log.exception("MQTT network loop failed; reconnecting")
                    self._connected = False
                    self.subscribed.clear()
            if self._stopping.is_set():
                break
            self._stopping.wait(backoff)   # paho's own loop waits too, even after a clean drop
            backoff = min(backoff * 2, RECONNECT_MAX_S)
        self._disconnect()

    def _serve(self) -> bool:
        """Run the connection until it drops or :meth:`stop`. True when the broker had accepted it
        (CONNACK), which resets the reconnect back-off."""
        client = self._client
        accepted = False
        sock = client.socket()
        # poll, not select: select() refuses descriptors >= 1024 (FD_SETSIZE), which a process with
        # many files or connections open gives the MQTT socket; it never connected then.
        poller, writing = select.poll(), False
        try:
            fd, wake_fd = sock.fileno(), self._wake_r.fileno()
            poller.register(wake_fd, select.POLLIN)
            poller.register(fd, select.POLLIN)
        except (AttributeError, OSError, ValueError):   # no socket, or closed already
            return accepted
        while not self._stopping.is_set():
            if client.socket() is not sock:   # paho closed it: the connection is lost
                return accepted
            # A TLS socket may hold decrypted bytes that poll() cannot see.
            if getattr(sock, "pending", None) is not None and sock.pending():
                readable = True
            else:
                try:
                    if client.want_write() != writing:
                        writing = not writing
                        poller.modify(fd, select.POLLIN | (select.POLLOUT if writing else 0))
                    events = dict(poller.poll(1000))
                except (OSError, ValueError):   # a socket closed under us: start over
                    return accepted
                # hang-up, error or a closed descriptor: loop_read sees the lost connection
                readable = bool(events.get(fd, 0) & _READABLE)
                if wake_fd in events:
                    try:
                        self._wake_r.recv(4096)
                    except BlockingIOError:
                        pass
            if readable and not self._read(client):
                return accepted
            accepted = accepted or self._connected
            if self._acks and not self._send_acks(client):
                return accepted
            if client.want_write() and client.loop_write() != paho.MQTT_ERR_SUCCESS:
                return accepted
            if client.loop_misc() != paho.MQTT_ERR_SUCCESS:
                return accepted
        return True

    def _read(self, client: paho.Client) -> bool:
        """Read the packets that have arrived (paho's ``loop_read`` takes one): until a read
        handles no message or :data:`MAX_DRAIN`. False when the connection is lost."""
        for _ in range(MAX_DRAIN):
            before = self._handled
            if client.loop_read() != paho.MQTT_ERR_SUCCESS:
                return False
            if self._handled == before:
                break
        return True

    def _send_acks(self, client: paho.Client) -> bool:
        epoch = self._epoch
        while self._acks:
            for m in self._acks.popleft():
                if m.epoch == epoch and client.ack(m.mid, m.qos) != paho.MQTT_ERR_SUCCESS:
                    return False
        return True

    def _disconnect(self) -> None:
        """On stop: the queued acknowledgements, then DISCONNECT, written within STOP_FLUSH_S."""
        client = self._client
        if client.socket() is None:
            return
        self._send_acks(client)
        client.disconnect()
        deadline = time.monotonic() + STOP_FLUSH_S
        while client.socket() is not None and client.want_write() and time.monotonic() < deadline:
            poller = select.poll()
            try:
                poller.register(client.socket(), select.POLLOUT)
                poller.poll(100)
            except (OSError, ValueError, TypeError):
                break
            if client.loop_write() != paho.MQTT_ERR_SUCCESS:
                break

    # -- paho callbacks (network thread) --------------------------------------------------
    def _on_pre_connect(self, client, userdata) -> None:
        self._epoch += 1

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("MQTT broker %s:%d refused the connection: %s", self.settings.mqtt_host,
                      self.settings.mqtt_port, reason_code)
            return
        self._connected = True
        outage = "" if self._down_since is None else f" after {time.monotonic() - self._down_since:.0f} s"
        self._down_since = None
        log.info("MQTT connected to %s:%d as %s%s, session %s", self.settings.mqtt_host, self.settings.mqtt_port,
                 self.settings.mqtt_client_id, outage, "resumed" if flags.session_present else "new")
        if self.protocol == "3.1.1":
            client.subscribe([(f, 1) for f in self.filters])
        else:
            opts = SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB)
            client.subscribe([(f, opts) for f in self.filters])

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        for f, rc in zip(self.filters, reason_codes):
            if rc.is_failure:
                log.error("MQTT subscription to %s refused: %s", f, rc)
            elif rc.value < 1:
                log.warning("MQTT subscription to %s granted at QoS 0 only: no redelivery guarantee", f)
        self.subscribed_at = time.monotonic()
        self.subscribed.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._epoch += 1
        self._connected = False
        self.subscribed.clear()
        if not self._stopping.is_set() and self._down_since is None:
            self._down_since = time.monotonic()
            log.warning("MQTT connection to %s:%d lost (%s); reconnecting", self.settings.mqtt_host,
                        self.settings.mqtt_port, reason_code)

    def _on_connect_fail(self, exc: OSError) -> None:
        # The reason tells a broker that is down from one whose TLS certificate is not trusted.
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning("MQTT broker %s:%d unreachable (%s); retrying", self.settings.mqtt_host,
                        self.settings.mqtt_port, exc)

    def _on_message(self, client, userdata, message: paho.MQTTMessage) -> None:
        self._handled += 1
        try:
            topic = message.topic
        except UnicodeDecodeError:  # brokers should refuse such topics; keep the message anyway
            topic = message._topic.decode("utf-8", errors="replace")
        msg = InboundMessage(topic=topic, payload=bytes(message.payload), qos=message.qos, retain=bool(message.retain),
                             received_at=datetime.now(timezone.utc), mid=message.mid, epoch=self._epoch)
        try:
            self._handler(msg)
        except Exception:
            # Never let an exception stop paho's network loop; the message stays unacknowledged
            # and the broker re-sends it on the next connection.
            log.exception("MQTT message handler failed on topic %s", topic)
