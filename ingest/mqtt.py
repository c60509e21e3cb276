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
import threading
import time
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
    API 2) holding the durable session.

    ``filters``: topic filters subscribed at QoS 1. ``handler`` is called on paho's network
    thread for each message and must not block long; the caller later passes handled messages
    to :meth:`ack` in arrival order. Reconnects by itself with back-off (1 s doubling to 30 s).
    """

    def __init__(self, settings, filters: Iterable[str], handler: Callable[[InboundMessage], None], *,
                 receive_maximum: int = RECEIVE_MAXIMUM) -> None:
        self.settings = settings
        self.filters = list(filters)
        self._handler = handler
        self._epoch = 0
        self._epoch_lock = threading.Lock()
        self._connected = False
        self._stopping = False
        self._down_since: float | None = None
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
        c.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        c.on_pre_connect = self._on_pre_connect
        c.on_connect = self._on_connect
        c.on_subscribe = self._on_subscribe
        c.on_disconnect = self._on_disconnect
        c.on_connect_fail = self._on_connect_fail
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
        self._client.loop_start()

    def ack(self, messages: Iterable[InboundMessage]) -> int:
        """Acknowledge ``messages`` (in the order given, which must be arrival order). QoS 0
        messages and messages of an earlier connection are skipped. Returns how many were sent."""
        sent = 0
        with self._epoch_lock:
            for m in messages:
                if m.qos > 0 and m.epoch == self._epoch:
                    self._client.ack(m.mid, m.qos)
                    sent += 1
        return sent

    def stop(self) -> None:
        """Send the queued acknowledgements, then DISCONNECT (the session stays on the broker)."""
        self._stopping = True
        self._client.disconnect()
        self._client.loop_stop()
        self._connected = False

    # -- paho callbacks (network thread) -----------------------------------------------------
    def _new_epoch(self) -> None:
        with self._epoch_lock:
            self._epoch += 1

    def _on_pre_connect(self, client, userdata) -> None:
        self._new_epoch()

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
        self._new_epoch()
        self._connected = False
        self.subscribed.clear()
        if not self._stopping and self._down_since is None:
            self._down_since = time.monotonic()
            log.warning("MQTT connection to %s:%d lost (%s); reconnecting", self.settings.mqtt_host,
                        self.settings.mqtt_port, reason_code)

    def _on_connect_fail(self, client, userdata) -> None:
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning("MQTT broker %s:%d unreachable; retrying", self.settings.mqtt_host, self.settings.mqtt_port)

    def _on_message(self, client, userdata, message: paho.MQTTMessage) -> None:
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
