"""Devices and the broker (issue 3): per-device credentials and ACL from the registry, the
ingestor's topic ↔ payload identity check, and TLS — on a real Mosquitto started with the shipped
``deploy/mosquitto/mosquitto.conf`` and credentials written by ``vigie broker credentials``."""

from __future__ import annotations

import json
import ssl
import stat
import subprocess
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

import services
from vigie.broker_auth import (BrokerAuthError, Credential, MeterRoute, SensorRoute, acl_text, plan_credentials,
                               write_broker_files)
from vigie.config import Settings
from vigie.db import make_engine, make_sessionmaker
from vigie.ingest.deadletter import read_dead_letters
from vigie.ingest.directory import MeterDirectory
from vigie.ingest.identity import TopicIdentityCheck
from vigie.ingest.service import Ingestor
from vigie.records import MeterReading
from vigie.registry import RegistryError, load_registry_file
from vigie.simulators.publish import PublishError, WmbusReading, publish_readings
from vigie.store.water import read_indices

UTC = timezone.utc
TOPICS = [("wmbusmeters/#", "wmbusmeters"), ("vigie/water/#", "native")]
NOT_AUTHORIZED = 135  # MQTT 5 reason code 0x87
ACCEPTED = (0, 16)    # PUBACK success, or 0x10 "no matching subscribers" (accepted all the same)

REGISTRY = """
households:
  - id: h-a
    meters:
      - {id: "a1000001", driver: kamwater, gateway: gw-a, topic_name: Apt_A1}
      - {id: "a1000002", driver: izar, gateway: gw-a}
  - id: h-b
    meters:
      - {id: "b2000001", driver: izar, gateway: gw-b}
  - id: h-s
    meters:
      - {id: "s3000001", driver: iperl}
  - id: home-a
    sensors:
      - {id: s-a1, friendly_name: home-a/bathroom/motion, room: bathroom, kind: motion}
      - {id: s-a2, friendly_name: home-a/entrance/door, room: entrance, kind: contact}
  - id: home-b
    sensors:
      - {id: s-b1, friendly_name: home-b/bathroom/motion, room: bathroom, kind: motion}
"""
HOME_TOPICS = [("zigbee2mqtt/#", "zigbee2mqtt")]


def wm(meter_id: str, index: float, minutes_ago: int = 60) -> bytes:
    t = (datetime.now(UTC) - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return json.dumps({"_": "telegram", "meter": "kamwater", "id": meter_id, "total_m3": index,
                       "status": "OK", "timestamp": t}).encode()


# -- unit: credentials and ACL -----------------------------------------------------------------
ROUTES = [MeterRoute("a1000001", "gw-a", "Apt_A1"), MeterRoute("a1000002", "gw-a"),
          MeterRoute("b2000001", "gw-b"), MeterRoute("s3000001")]


def test_plan_grants_each_device_only_its_own_topics():
    creds = {c.username: c for c in plan_credentials(ROUTES, TOPICS, "svc", "sim")}
    assert set(creds) == {"svc", "sim", "gw-a", "gw-b", "s3000001"}
    assert set(creds["gw-a"].write) == {f"{p}/{lvl}" for p in ("wmbusmeters", "vigie/water")
                                        for lvl in ("gw-a", "a1000001", "Apt_A1", "a1000002")}
    assert set(creds["gw-b"].write) == {"wmbusmeters/gw-b", "wmbusmeters/b2000001",
                                        "vigie/water/gw-b", "vigie/water/b2000001"}
    assert creds["s3000001"].role == "device"
    assert set(creds["s3000001"].write) == {"wmbusmeters/s3000001", "vigie/water/s3000001"}
    assert creds["svc"].read == ("wmbusmeters/#", "vigie/water/#") and creds["svc"].write == ()
    assert creds["sim"].write == ("wmbusmeters/#", "vigie/water/#") and creds["sim"].read == ()
    assert all(c.read == () for n, c in creds.items() if n != "svc")
    acl = acl_text(list(creds.values())).splitlines()
    assert not [ln for ln in acl[:acl.index("user svc")] if ln and not ln.startswith("#")]  # nothing anonymous
    assert "user gw-b" in acl and "topic write wmbusmeters/b2000001" in acl and "topic read wmbusmeters/#" in acl


SENSORS = [SensorRoute("home-a", "home-a/bathroom/motion"), SensorRoute("home-a", "home-a/entrance/door"),
           SensorRoute("home-b", "home-b/bathroom/motion")]


def test_plan_gives_each_home_bridge_only_its_own_prefix():
    creds = {c.username: c for c in plan_credentials(ROUTES, TOPICS, "svc", "sim", sensors=SENSORS,
                                                     home_topic_decoders=HOME_TOPICS)}
    assert creds["home-a"].role == "bridge" and creds["home-a"].write == ("zigbee2mqtt/home-a/#",)
    assert creds["home-b"].write == ("zigbee2mqtt/home-b/#",) and creds["home-b"].read == ()
    assert creds["svc"].read == ("wmbusmeters/#", "vigie/water/#", "zigbee2mqtt/#")
    assert creds["sim"].write == ("wmbusmeters/#", "vigie/water/#", "zigbee2mqtt/#")
    assert set(creds["gw-a"].write) >= {"wmbusmeters/gw-a"}  # water grants unchanged beside the homes


@pytest.mark.parametrize("sensors,message", [
    ([SensorRoute("home-a", "door")], "friendly name 'door' has no home prefix"),
    ([SensorRoute("home-a", "home-a/door"), SensorRoute("home-a", "flat-2/pir")], "start with both 'flat-2' and 'home-a'"),
    ([SensorRoute("home-a", "shared/door"), SensorRoute("home-b", "shared/pir")], "used by households home-a and home-b"),
    ([SensorRoute("gw-a", "gw-a/door")], "household 'gw-a' (its home bridge's broker user) is also a water device"),
    ([SensorRoute("sim", "sim/door")], "simulator user 'sim' is also a device id or household"),
])
def test_plan_refuses_homes_whose_bridge_could_not_be_confined(sensors, message):
    with pytest.raises(BrokerAuthError, match=message.replace("(", r"\(").replace(")", r"\)")):
        plan_credentials(ROUTES, TOPICS, "svc", "sim", sensors=sensors, home_topic_decoders=HOME_TOPICS)


def test_plan_reads_the_filter_under_a_shared_subscription():
    creds = plan_credentials([], [("$share/vigie/wmbusmeters/#", "wmbusmeters")], "svc")
    assert [(c.username, c.read) for c in creds] == [("svc", ("wmbusmeters/#",))]


@pytest.mark.parametrize("routes,topics,message", [
    ([MeterRoute("a/b")], TOPICS, "meter a/b"),
    ([MeterRoute("#")], TOPICS, "cannot be an MQTT topic level"),
    ([MeterRoute("x1", "gw-a", "y1"), MeterRoute("y1", "gw-b")], TOPICS, "already belongs to device 'gw-a'"),
    ([MeterRoute("x1", "gw-x"), MeterRoute("gw-x")], TOPICS, "both a gateway and a meter without a gateway"),
    ([MeterRoute("svc")], TOPICS, "service user 'svc' is also a device id"),
    ([], [("wmbusmeters/+/state", "wmbusmeters")], "<prefix>/#"),
])
def test_plan_refuses_ids_that_would_widen_or_share_grants(routes, topics, message):
    with pytest.raises(BrokerAuthError, match=message.replace("+", r"\+")):
        plan_credentials(routes, topics, "svc")


def test_password_file_is_idempotent_and_rotates_one_credential(tmp_path):
    creds = plan_credentials(ROUTES, TOPICS, "svc", "sim")
    out = tmp_path / "auth"
    first = write_broker_files(out, creds)
    names = [c.username for c in creds]
    assert first.created == names and first.rotated == [] and first.secrets == out / "new-credentials"
    passwords = dict(line.split(":", 1) for line in first.secrets.read_text().splitlines())
    assert list(passwords) == names and len(set(passwords.values())) == len(names)
    for path in (out / "passwd", out / "acl", first.secrets):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    hashed = (out / "passwd").read_text()
    assert all(f"{n}:$7$" in hashed for n in names)  # PBKDF2-SHA512, mosquitto_passwd's own format
    assert not any(p in hashed for p in passwords.values())
    first.secrets.unlink()  # provisioned

    again = write_broker_files(out, creds)
    assert (again.created, again.rotated, again.secrets) == ([], [], None)
    assert (out / "passwd").read_text() == hashed

    rotated = write_broker_files(out, creds, rotate=["gw-b"])
    assert rotated.rotated == ["gw-b"] and rotated.created == []
    assert [ln.split(":")[0] for ln in rotated.secrets.read_text().splitlines()] == ["gw-b"]
    old, new = (dict(ln.split(":", 1) for ln in t.splitlines()) for t in (hashed, (out / "passwd").read_text()))
    assert new["gw-b"] != old["gw-b"] and {k: v for k, v in new.items() if k != "gw-b"} == \
        {k: v for k, v in old.items() if k != "gw-b"}

    dropped = write_broker_files(out, [c for c in creds if c.username != "s3000001"])
    assert dropped.removed == ["s3000001"] and "s3000001:" not in (out / "passwd").read_text()


def test_password_tool_missing_or_unknown_rotation_is_a_clear_error(tmp_path):
    creds = [Credential("svc", "service", read=("wmbusmeters/#",))]
    with pytest.raises(BrokerAuthError, match="mosquitto_passwd not found"):
        write_broker_files(tmp_path, creds, mosquitto_passwd=str(tmp_path / "nowhere"))
    with pytest.raises(BrokerAuthError, match="--rotate gw-z: no such credential"):
        write_broker_files(tmp_path, creds, rotate=["gw-z"])
    assert not (tmp_path / "passwd").exists()


def test_registry_refuses_a_topic_name_that_is_not_one_topic_level(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text('households: [{id: h, meters: [{id: "m1", gateway: gw, topic_name: "a/#"}]}]')
    sessions = make_sessionmaker(make_engine(f"sqlite:///{tmp_path / 'r.db'}"))
    with sessions() as s, pytest.raises(RegistryError, match="topic_name 'a/#' cannot be an MQTT topic level"):
        load_registry_file(s, path)


# -- unit: topic ↔ payload identity ------------------------------------------------------------
@pytest.fixture
def registry_url(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    (tmp_path / "registry.yaml").write_text(REGISTRY)
    with make_sessionmaker(make_engine(url))() as s:
        load_registry_file(s, tmp_path / "registry.yaml")
    return url


def reading(meter_id: str) -> MeterReading:
    return MeterReading(meter_id=meter_id, time=datetime.now(UTC), index_m3=1.0, source="test")


def test_identity_check_binds_the_payload_to_the_topic(registry_url):
    sessions = make_sessionmaker(make_engine(registry_url))
    check = TopicIdentityCheck(MeterDirectory(sessions))
    ok = [("wmbusmeters/a1000001", ["a1000001"]), ("wmbusmeters/Apt_A1", ["a1000001"]),
          ("vigie/water/gw-a", ["a1000001", "a1000002"]), ("vigie/water/s3000001", ["s3000001"]),
          ("wmbusmeters/unregistered-name", ["b2000001"])]  # names no device: no claim (ACL bounds it)
    for topic, ids in ok:
        assert check.mismatch(topic, [reading(i) for i in ids]) is None, topic
    assert check.mismatch("wmbusmeters/a1000001", [reading("a1000002")]) == \
        "topic wmbusmeters/a1000001 belongs to meter a1000001, payload claims meter a1000002"
    assert check.mismatch("wmbusmeters/Apt_A1", [reading("b2000001")]) == \
        "topic wmbusmeters/Apt_A1 belongs to meter a1000001, payload claims meter b2000001"
    assert check.mismatch("vigie/water/gw-a", [reading("a1000002"), reading("b2000001"), reading("zz")]) == \
        "topic vigie/water/gw-a belongs to gateway gw-a, payload claims meter b2000001, zz"
    assert TopicIdentityCheck(MeterDirectory(None, accept_unknown=True)).mismatch(
        "wmbusmeters/a1000001", [reading("b2000001")]) is None


def test_identity_check_follows_registry_changes(registry_url, tmp_path):
    sessions = make_sessionmaker(make_engine(registry_url))
    directory = MeterDirectory(sessions)
    check = TopicIdentityCheck(directory)
    assert check.mismatch("wmbusmeters/Flat_9", [reading("b2000001")]) is None
    (tmp_path / "more.yaml").write_text('households: [{id: h-b, meters: [{id: "b2000001", topic_name: Flat_9}]}]')
    with sessions() as s:
        load_registry_file(s, tmp_path / "more.yaml")
    directory.refresh()
    assert check.mismatch("wmbusmeters/Flat_9", [reading("b2000001")]) is None
    assert "belongs to meter b2000001" in check.mismatch("wmbusmeters/Flat_9", [reading("a1000002")])


# -- a real Mosquitto with the shipped configuration ----------------------------------------------
def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_test_ca(d: Path) -> services.TlsFiles:
    """A throw-away CA and a server certificate for localhost / 127.0.0.1 (docs/security.md)."""
    d.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=Vigie test CA",
             cwd=d)
    _openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost", cwd=d)
    (d / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "server.crt", "-days", "2", "-extfile", "san.ext", cwd=d)
    return services.TlsFiles(ca=d / "ca.crt", cert=d / "server.crt", key=d / "server.key")


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    """The shipped config with a TLS listener, credentials from `vigie broker credentials` on the
    test registry. Yields (service, passwords by user, registry URL, TLS files)."""
    work = tmp_path_factory.mktemp("secure-broker")
    url = f"sqlite:///{work / 'registry.db'}"
    (work / "registry.yaml").write_text(REGISTRY)
    with make_sessionmaker(make_engine(url))() as s:
        load_registry_file(s, work / "registry.yaml")
    passwords = services.broker_credentials(work / "auth", url)
    assert set(passwords) == {services.SERVICE_USER, services.SIMULATOR_USER, "gw-a", "gw-b", "s3000001",
                              "home-a", "home-b"}
    tls = make_test_ca(work / "tls")
    svc = services.mosquitto(work / "mosquitto", auth_dir=work / "auth", tls=tls).start()
    yield svc, passwords, url, tls
    svc.stop()


class Client:
    """A paho client recording CONNACK, PUBACK and SUBACK reason codes and messages."""

    def __init__(self, port: int, username: str | None = None, password: str | None = None, *,
                 v5: bool = True, ca: Path | None = None, tls: bool = False) -> None:
        self.connack = None
        self.connected = threading.Event()
        self.pubacks: dict[int, int] = {}
        self.subacks: list[int] = []
        self.messages: list[tuple[str, bytes]] = []
        self.c = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:8]}",
                             protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311)
        if username is not None:
            self.c.username_pw_set(username, password)
        if tls or ca:
            self.c.tls_set(ca_certs=str(ca) if ca else None, cert_reqs=ssl.CERT_REQUIRED)
        self.c.on_connect = self._on_connect
        self.c.on_publish = lambda c, u, mid, rc, p: self.pubacks.__setitem__(mid, rc.value)
        self.c.on_subscribe = lambda c, u, mid, rcs, p: self.subacks.extend(rc.value for rc in rcs)
        self.c.on_message = lambda c, u, m: self.messages.append((m.topic, m.payload))
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        assert self.connected.wait(10), "no CONNACK"

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connack = reason_code.value
        self.connected.set()

    def publish(self, topic: str, payload: bytes) -> int:
        """PUBACK reason code of a QoS 1 publish."""
        info = self.c.publish(topic, payload, qos=1)
        info.wait_for_publish(10)
        deadline = time.monotonic() + 10
        while info.mid not in self.pubacks and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.pubacks[info.mid]

    def subscribe(self, topic_filter: str) -> int:
        n = len(self.subacks)
        self.c.subscribe(topic_filter, qos=1)
        deadline = time.monotonic() + 10
        while len(self.subacks) == n and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.subacks[-1]

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def test_anonymous_and_wrong_password_are_refused(broker):
    svc, passwords, _, _ = broker
    for v5 in (True, False):
        anon = Client(svc.port, v5=v5)
        assert anon.connack == NOT_AUTHORIZED  # v3.1.1 return code 5 (not authorised), as paho maps it
        anon.close()
    wrong = Client(svc.port, "gw-a", passwords["gw-b"])
    assert wrong.connack == NOT_AUTHORIZED  # Mosquitto 2.0.11 says 0x87, not 0x86 (bad user name or password)
    wrong.close()
    right = Client(svc.port, "gw-a", passwords["gw-a"])
    assert right.connack == 0
    right.close()


def test_a_gateway_publishes_only_on_its_own_meters_topics(broker):
    svc, passwords, _, _ = broker
    reader = Client(svc.port, services.SERVICE_USER, passwords[services.SERVICE_USER])
    assert reader.subscribe("$share/t/wmbusmeters/#") == 1  # a shared subscription: ACL read on the filter
    gw_a = Client(svc.port, "gw-a", passwords["gw-a"])
    # Mosquitto 2.0 grants any SUBSCRIBE and applies read grants on delivery: a device gets nothing.
    assert gw_a.subscribe("wmbusmeters/#") == 1
    # It answers a denied QoS 1 PUBLISH under MQTT 5 with PUBACK 0x87 and drops the message.
    assert gw_a.publish("wmbusmeters/b2000001", wm("b2000001", 5.0)) == NOT_AUTHORIZED
    assert gw_a.publish("wmbusmeters/s3000001", wm("s3000001", 5.0)) == NOT_AUTHORIZED
    assert gw_a.publish("wmbusmeters/a1000001", wm("a1000001", 1.0)) == 0
    assert gw_a.publish("wmbusmeters/Apt_A1", wm("a1000001", 1.1)) == 0
    deadline = time.monotonic() + 10
    while len(reader.messages) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)
    assert sorted(t for t, _ in reader.messages) == ["wmbusmeters/Apt_A1", "wmbusmeters/a1000001"]
    assert gw_a.messages == []
    # The service account may not publish a reading.
    assert reader.publish("wmbusmeters/a1000001", wm("a1000001", 9.0)) == NOT_AUTHORIZED
    for c in (reader, gw_a):
        c.close()


def test_a_home_bridge_publishes_only_under_its_own_home_prefix(broker):
    svc, passwords, _, _ = broker
    reader = Client(svc.port, services.SERVICE_USER, passwords[services.SERVICE_USER])
    assert reader.subscribe("zigbee2mqtt/#") == 1
    bridge_a = Client(svc.port, "home-a", passwords["home-a"])
    state = b'{"occupancy":true,"battery":90}'
    assert bridge_a.publish("zigbee2mqtt/home-a/bathroom/motion", state) == 0
    assert bridge_a.publish("zigbee2mqtt/home-a/bridge/state", b'{"state":"online"}') == 0
    # Another home's device, a top-level name, or a water topic: refused, and nobody receives them.
    assert bridge_a.publish("zigbee2mqtt/home-b/bathroom/motion", state) == NOT_AUTHORIZED
    assert bridge_a.publish("zigbee2mqtt/bathroom/motion", state) == NOT_AUTHORIZED
    assert bridge_a.publish("wmbusmeters/a1000001", wm("a1000001", 1.0)) == NOT_AUTHORIZED
    sim = Client(svc.port, services.SIMULATOR_USER, passwords[services.SIMULATOR_USER])
    assert sim.publish("zigbee2mqtt/home-b/bathroom/motion", state) == 0  # the test simulator: every home
    deadline = time.monotonic() + 10
    while len(reader.messages) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)
    assert sorted(t for t, _ in reader.messages) == ["zigbee2mqtt/home-a/bathroom/motion",
                                                     "zigbee2mqtt/home-a/bridge/state",
                                                     "zigbee2mqtt/home-b/bathroom/motion"]
    for c in (reader, bridge_a, sim):
        c.close()


def test_the_service_ingests_and_dead_letters_a_topic_id_mismatch(broker, influx_store, tmp_path):
    svc, passwords, url, _ = broker
    settings = Settings(mqtt_url=f"mqtt://127.0.0.1:{svc.port}", mqtt_username=services.SERVICE_USER,
                        mqtt_password=passwords[services.SERVICE_USER], mqtt_client_id=f"sec-{uuid.uuid4().hex[:8]}",
                        influx_url=influx_store.url, influx_database=influx_store.database,
                        influx_retention_policy="vigie_raw", data_dir=tmp_path / "data", database_url=url,
                        write_batch_interval_s=0.2, mqtt_session_expiry_s=600)
    ing = Ingestor(settings, influx_store, make_sessionmaker(make_engine(url)))
    ing.start()
    try:
        assert ing.wait_subscribed(10)
        gw_a = Client(svc.port, "gw-a", passwords["gw-a"])
        assert gw_a.publish("wmbusmeters/a1000001", wm("a1000001", 10.0, 30)) == 0
        assert gw_a.publish("wmbusmeters/Apt_A1", wm("a1000001", 10.5, 20)) == 0
        assert gw_a.publish("wmbusmeters/a1000001", wm("b2000001", 99.0)) == 0  # B's id on A's topic
        assert gw_a.publish("wmbusmeters/a1000002", wm("a1000001", 11.0)) == 0  # its own meters, swapped
        native = json.dumps([{"meter_id": "a1000002", "index_m3": 3.0}]).encode()
        assert gw_a.publish("vigie/water/gw-a", native) == 0
        gw_a.close()
        assert ing.wait_idle(30)
        stats = ing.stats()
        assert stats.stored == 3 and stats.dead_letters == {"topic_mismatch": 2}
    finally:
        ing.stop()
    points = read_indices(influx_store, datetime.now(UTC) - timedelta(days=1), datetime.now(UTC) + timedelta(hours=1))
    assert sorted(zip(points["meter_id"], points["index_m3"])) == [("a1000001", 10.0), ("a1000001", 10.5),
                                                                   ("a1000002", 3.0)]
    letters = read_dead_letters(tmp_path / "data" / "dead-letters.jsonl", limit=10)
    assert sorted(d.reason for d in letters) == [
        "topic_mismatch: topic wmbusmeters/a1000001 belongs to meter a1000001, payload claims meter b2000001",
        "topic_mismatch: topic wmbusmeters/a1000002 belongs to meter a1000002, payload claims meter a1000001"]
    assert {json.loads(d.payload)["total_m3"] for d in letters} == {99.0, 11.0}  # kept whole


def test_tls_listener_trusts_only_clients_that_trust_its_ca(broker):
    svc, passwords, _, tls = broker
    port = svc.extra_ports["tls"]
    trusted = Client(port, "gw-a", passwords["gw-a"], ca=tls.ca)
    assert trusted.connack == 0 and trusted.publish("wmbusmeters/a1000001", wm("a1000001", 2.0)) in ACCEPTED
    trusted.close()
    with pytest.raises(ssl.SSLCertVerificationError):
        Client(port, "gw-a", passwords["gw-a"], tls=True)  # the system store does not know the test CA
    # Vigie's own publisher over mqtts:// with VIGIE_MQTT_CA_FILE, as the simulator's test gateway.
    sim = services.SIMULATOR_USER
    n = publish_readings([WmbusReading("a1000001", datetime.now(UTC), 2.5)], f"mqtts://localhost:{port}",
                         username=sim, password=passwords[sim], ca_file=tls.ca)
    assert n == 1
    with pytest.raises(PublishError, match="refused"):
        publish_readings([WmbusReading("a1000001", datetime.now(UTC), 2.5)], f"mqtts://localhost:{port}",
                         username=sim, password="wrong", ca_file=tls.ca, stall_timeout_s=5)


def test_the_shipped_configs_refuse_anonymous_clients():
    root = Path(__file__).resolve().parents[1] / "deploy" / "mosquitto"
    for name in ("mosquitto.conf", "mosquitto.docker.conf"):
        lines = (root / name).read_text().splitlines()
        assert "allow_anonymous false" in lines and "allow_anonymous true" not in lines
        assert any(ln.startswith("password_file ") for ln in lines) and any(ln.startswith("acl_file ") for ln in lines)
        assert "#listener 8883" in lines and any(ln.startswith("#cafile ") for ln in lines)
        assert "max_packet_size 262144" in lines


def _mosquitto_pub(port: int, user: str, password: str, topic: str, payload: bytes, version: str) -> str:
    """Publish at QoS 1 with Mosquitto's own client, as a wmbusmeters gateway does; its debug output."""
    done = subprocess.run(["mosquitto_pub", "-p", str(port), "-u", user, "-P", password, "-V", version, "-q", "1",
                           "-t", topic, "-s", "-d"], input=payload, capture_output=True, timeout=30)
    return (done.stdout + done.stderr).decode(errors="replace")


def test_an_oversize_publish_is_not_forwarded(broker):
    """max_packet_size 262144: a larger QoS 1 publish is never delivered — an MQTT 5 publisher is told
    the limit and keeps it, an MQTT 3.1.1 one has its connection closed, unacknowledged; the next
    normal publish is delivered."""
    svc, passwords, _, _ = broker
    reader = Client(svc.port, services.SERVICE_USER, passwords[services.SERVICE_USER])
    assert reader.subscribe("wmbusmeters/a1000002") == 1
    oversize = b"x" * (256 * 1024)  # with the topic and header, over the packet limit
    out = _mosquitto_pub(svc.port, "gw-a", passwords["gw-a"], "wmbusmeters/a1000002", oversize, "mqttv5")
    assert "received CONNACK (0)" in out and "sending PUBLISH" not in out  # told the limit, it does not send
    out = _mosquitto_pub(svc.port, "gw-a", passwords["gw-a"], "wmbusmeters/a1000002", oversize, "mqttv311")
    assert "sending PUBLISH" in out and "received PUBACK" not in out  # sent, and the connection closed
    normal = wm("a1000002", 12.5)
    out = _mosquitto_pub(svc.port, "gw-a", passwords["gw-a"], "wmbusmeters/a1000002", normal, "mqttv311")
    assert "received PUBACK (Mid: 1, RC:0)" in out
    deadline = time.monotonic() + 10
    while not reader.messages and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)  # an oversize message, had it been forwarded, would have come before the normal one
    reader.close()
    assert reader.messages == [("wmbusmeters/a1000002", normal)]
    assert "disconnected due to oversize packet" in svc.log.read_text()
