"""Publish meter readings to an MQTT broker as a wmbusmeters gateway would.

Payloads follow wmbusmeters 3.0.x JSON (``shared/reference/payload-formats.md`` §1): common fields
``_`` ("telegram"), ``media``, ``meter`` (driver), ``name``, ``id`` (string), ``total_m3``,
``timestamp`` (UTC, ``%Y-%m-%dT%H:%M:%SZ``), plus the driver's status field — ``kamwater``
``status`` ("OK" or upper-case flags, space-separated) and ``current_status`` ("" when OK),
``izar`` ``current_alarms``/``previous_alarms`` ("no_alarm" or lower-case names, comma-separated);
``iperl`` and ``apator162`` report no alarms. Topic ``wmbusmeters/<id>`` (README example), QoS 1,
not retained.

Publishing uses paho-mqtt 2.x (``CallbackAPIVersion.VERSION2``) over MQTT 5, or MQTT 3.1.1 for a broker
that speaks only that (Vigie's embedded broker, ``protocol="3.1.1"``), with a wide in-flight window, runs
the network loop in the caller's thread and counts PUBACKs in ``on_publish``:
:func:`publish_messages` (any topic and payload; :func:`publish_readings` for wmbusmeters readings)
returns once the broker has acknowledged every message.
"""

from __future__ import annotations

import json
import os
import ssl
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol
from datetime import datetime, timezone
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from vigie.records import MeterAlarm

DRIVERS = ("izar", "kamwater", "iperl", "apator162")
_MEDIA = {"izar": "water", "kamwater": "cold water", "iperl": "water", "apator162": "water"}
# Normalised flag → the driver's own token (the inverse of the ingest decoder's mapping).
_KAMWATER = {MeterAlarm.LEAK: "LEAK", MeterAlarm.BURST: "BURST", MeterAlarm.REVERSE_FLOW: "REVERSE",
             MeterAlarm.DRY: "DRY", MeterAlarm.TAMPER: "TAMPER", MeterAlarm.LOW_BATTERY: "LOW_BATTERY"}
_IZAR = {MeterAlarm.LEAK: "leakage", MeterAlarm.REVERSE_FLOW: "back_flow", MeterAlarm.BLOCKED: "meter_blocked",
         MeterAlarm.OVERFLOW: "overflow", MeterAlarm.TAMPER: "mechanical_fraud"}

#: PUBLISH packets paho keeps in flight (unacknowledged) at once; the project's broker allows 1000.
MAX_INFLIGHT = 1000
#: Messages handed to paho but not yet acknowledged before publishing waits: no more than paho
#: keeps in flight, as paho scans its whole queue on every PUBACK.
MAX_PENDING = MAX_INFLIGHT


class PublishError(RuntimeError):
    """The broker refused the connection, or stopped acknowledging messages."""


@dataclass(frozen=True, slots=True)
class WmbusReading:
    """One reading as a wmbusmeters gateway publishes it: ``time`` aware (sent as UTC, whole
    seconds), ``index_m3`` the cumulative index (m³), ``driver`` one of :data:`DRIVERS`,
    ``alarms`` :class:`~vigie.records.MeterAlarm` names the driver can express, ``name`` the
    operator's name for the meter (the id when None)."""

    meter_id: str
    time: datetime
    index_m3: float
    driver: str = "izar"
    alarms: tuple[str, ...] = ()
    name: str | None = None


def wmbus_payload(r: WmbusReading) -> dict:
    """The wmbusmeters JSON object of ``r``. Raises ``ValueError`` for an unknown driver or an
    alarm the driver cannot report."""
    if r.driver not in _MEDIA:
        raise ValueError(f"meter {r.meter_id}: driver {r.driver!r} not one of {', '.join(DRIVERS)}")
    if r.time.tzinfo is None:
        raise ValueError(f"meter {r.meter_id}: reading time must be timezone-aware")
    obj = {"_": "telegram", "media": _MEDIA[r.driver], "meter": r.driver, "name": r.name or r.meter_id,
           "id": r.meter_id, "total_m3": round(r.index_m3, 3)}
    if r.driver == "kamwater":
        flags = " ".join(_token(_KAMWATER, r, a) for a in r.alarms)
        obj["status"] = flags or "OK"
        obj["current_status"] = flags
    elif r.driver == "izar":
        obj["current_alarms"] = ",".join(_token(_IZAR, r, a) for a in r.alarms) or "no_alarm"
        obj["previous_alarms"] = "no_alarm"
    elif r.alarms:
        raise ValueError(f"meter {r.meter_id}: driver {r.driver} reports no alarms, got {', '.join(r.alarms)}")
    obj["timestamp"] = r.time.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return obj


def _token(table: dict, r: WmbusReading, alarm: str) -> str:
    try:
        return table[MeterAlarm(alarm)]
    except (KeyError, ValueError):
        raise ValueError(f"meter {r.meter_id}: driver {r.driver} cannot report alarm {alarm!r}") from None


def topic_of(r: WmbusReading, prefix: str = "wmbusmeters") -> str:
    return f"{prefix}/{r.meter_id}"


#: ``protocol`` values of :func:`publish_messages` → paho's protocol constants.
PROTOCOLS = {"5": mqtt.MQTTv5, "3.1.1": mqtt.MQTTv311}


def _client(mqtt_url: str, username: str | None, password: str | None, client_id: str | None,
            ca_file: str | None = None, protocol: str = "5"):
    """A paho client for ``mqtt://`` or ``mqtts://`` URLs (TLS: ``ca_file``, else the system CA store)."""
    u = urlsplit(mqtt_url)
    if u.scheme not in ("mqtt", "mqtts") or not u.hostname:
        raise ValueError(f"MQTT URL {mqtt_url!r}: expected mqtt://host[:port] or mqtts://host[:port]")
    if protocol not in PROTOCOLS:
        raise ValueError(f"MQTT protocol {protocol!r}: expected one of {', '.join(PROTOCOLS)}")
    # v5: a refused publish comes back as a PUBACK reason code; 3.1.1 has none (a broker's ACL
    # drops the message silently there).
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"vigie-sim-{uuid.uuid4().hex[:8]}",
                         protocol=PROTOCOLS[protocol])
    if u.scheme == "mqtts":
        client.tls_set(ca_certs=ca_file, cert_reqs=ssl.CERT_REQUIRED)
    user = username if username is not None else (unquote(u.username) if u.username else None)
    pwd = password if password is not None else (unquote(u.password) if u.password else None)
    if user is not None:
        client.username_pw_set(user, pwd)
    client.max_inflight_messages_set(MAX_INFLIGHT)
    client.max_queued_messages_set(0)
    return client, u.hostname, u.port or (8883 if u.scheme == "mqtts" else 1883)


class OutboundMessage(Protocol):
    """What :func:`publish_messages` sends: ``topic``, ``payload``, ``time`` (the simulated UTC time
    it is sent at, for pacing) and ``retain``."""

    topic: str
    payload: bytes
    time: datetime
    retain: bool


@dataclass(frozen=True, slots=True)
class WmbusMessage:
    """A wmbusmeters gateway's message for one reading."""

    topic: str
    payload: bytes
    time: datetime
    retain: bool = False


def publish_readings(readings: Iterable[WmbusReading], mqtt_url: str, *, topic_prefix: str = "wmbusmeters",
                     **options) -> int:
    """Publish ``readings`` in the given order as wmbusmeters JSON on ``<topic_prefix>/<id>`` (QoS 1,
    not retained); ``options`` as :func:`publish_messages`. Raises what it raises, and
    ``ValueError`` for a reading its driver cannot encode (nothing of that reading is sent)."""
    return publish_messages((WmbusMessage(topic_of(r, topic_prefix),
                                          json.dumps(wmbus_payload(r), separators=(",", ":")).encode(), r.time)
                             for r in readings), mqtt_url, **options)


def publish_messages(messages: Iterable[OutboundMessage], mqtt_url: str, *, speed: float | None = None,
                     progress: Callable[[int, int], None] | None = None, username: str | None = None,
                     password: str | None = None, client_id: str | None = None, stall_timeout_s: float = 60.0,
                     ca_file: str | os.PathLike | None = None, protocol: str = "5") -> int:
    """Publish ``messages`` in the given order at QoS 1 (retained when a message says so) and return
    how many were published, once the broker has acknowledged (PUBACK) all of them.

    ``speed``: simulated seconds per wall-clock second (3600 = an hour of messages per second),
    paced on the latest message time seen so far; None publishes as fast as the broker takes.
    ``progress(sent, acknowledged)`` is called every 1000 messages and at the end. Credentials in
    the URL (``mqtt://user:pass@host``) are used unless given here. ``ca_file``: PEM CA
    certificate(s) that sign the broker's certificate (``mqtts://``; default: the system store).
    ``protocol``: "5" (default) or "3.1.1" (``VIGIE_MQTT_PROTOCOL``; a refusal is then not seen).

    Raises :class:`PublishError` if the broker cannot be reached or refuses the connection, or
    acknowledges nothing for ``stall_timeout_s`` while messages are pending, or refuses any (a PUBACK
    reason code such as 0x87 not authorised: the ACL does not grant the topic); ``ValueError`` for a
    bad URL or speed. After a lost connection the client reconnects and paho re-sends what was not
    acknowledged.
    """
    if speed is not None and not speed > 0:
        raise ValueError(f"speed={speed}: expected > 0 (simulated seconds per wall second)")
    client, host, port = _client(mqtt_url, username, password, client_id, None if ca_file is None else str(ca_file),
                                 protocol)
    link = _Link(client, host, port, stall_timeout_s)
    # The network loop runs in this thread (client.loop): no hand-off to a second thread per
    # message, which is what limits paho's threaded mode to a few thousand messages a second.
    client.on_connect = link.on_connect
    client.on_publish = link.on_publish
    link.connect()
    sent = 0
    try:
        wall0 = sim0 = sim_max = None
        for m in messages:
            if speed is not None:
                t = m.time.timestamp()
                if sim0 is None:
                    wall0, sim0, sim_max = time.monotonic(), t, t
                sim_max = max(sim_max, t)
                while (wait := wall0 + (sim_max - sim0) / speed - time.monotonic()) > 0:
                    link.service(min(wait, 0.5))
            while sent - link.acked >= MAX_PENDING:
                link.service(0.05, sent)
            info = client.publish(m.topic, m.payload, qos=1, retain=m.retain)
            if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                # NO_CONN: paho keeps a QoS 1 message and sends it after reconnecting.
                raise PublishError(f"paho refused to publish on {m.topic}: {mqtt.error_string(info.rc)}")
            sent += 1
            if sent % 200 == 0:
                link.service(0.0, sent)
            if progress is not None and sent % 1000 == 0:
                progress(sent, link.acked)
        while link.acked < sent:
            link.service(0.1, sent)
        if progress is not None:
            progress(sent, link.acked)
        if link.refused:
            raise PublishError(f"the broker refused {link.refused} of {sent} messages ({link.refusal}): check the "
                               "publisher's credentials and the broker's ACL (vigie broker credentials)")
        return sent
    finally:
        client.disconnect()


class _Link:
    """Connection upkeep for :func:`publish_messages`: CONNACK, PUBACK counting, reconnects."""

    def __init__(self, client: mqtt.Client, host: str, port: int, stall_timeout_s: float) -> None:
        self.client, self.host, self.port, self.stall_timeout_s = client, host, port, stall_timeout_s
        self.acked = 0
        self.refused = 0             # PUBACKs with a failure reason code (e.g. 0x87 not authorised)
        self.refusal = ""
        self.connack = None
        self._progress_at = time.monotonic()

    def on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connack = reason_code

    def on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        self.acked += 1
        if reason_code.is_failure:
            self.refused += 1
            self.refusal = self.refusal or str(reason_code)
        self._progress_at = time.monotonic()

    def connect(self) -> None:
        try:
            self.client.connect(self.host, self.port, keepalive=60)
        except OSError as exc:
            raise PublishError(f"cannot reach MQTT broker {self.host}:{self.port}: {exc}") from exc
        deadline = time.monotonic() + self.stall_timeout_s
        while self.connack is None:
            if time.monotonic() > deadline:
                raise PublishError(f"no CONNACK from {self.host}:{self.port} within {self.stall_timeout_s:.0f} s")
            self.client.loop(timeout=0.1)
        if self.connack.is_failure:
            raise PublishError(f"MQTT broker {self.host}:{self.port} refused the connection: {self.connack}")
        self._progress_at = time.monotonic()

    def service(self, timeout: float, sent: int | None = None) -> None:
        """Run the network loop once (write queued packets, read PUBACKs), reconnecting if the
        connection dropped; fail when acknowledgements stall."""
        rc = self.client.loop(timeout=timeout)
        if rc != mqtt.MQTT_ERR_SUCCESS:
            try:
                self.client.reconnect()
            except OSError:
                time.sleep(min(1.0, self.stall_timeout_s / 10))
        if sent is not None and self.acked < sent and time.monotonic() - self._progress_at > self.stall_timeout_s:
            raise PublishError(f"broker acknowledged nothing for {self.stall_timeout_s:.0f} s "
                               f"({sent} sent, {self.acked} acknowledged)")
