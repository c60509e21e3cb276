"""Mosquitto password and ACL files from the registry: one credential per gateway or device.

Who gets a credential (user name = the id) and what it may do (docs/security.md, "Broker"):

- each **gateway** named by a meter's ``gateway``, and each **meter without a gateway** (it
  publishes for itself): *write* ``<prefix>/<level>`` for every configured water topic prefix
  (``VIGIE_WATER_TOPICS`` filters ``<prefix>/#``), where ``level`` is the device's own id or the
  id or ``topic_name`` of one of its meters — exactly the topics the ingestor's identity check
  (:mod:`vigie.ingest.identity`) accepts for it;
- each **home** with sensors (user name = the household id): its zigbee2mqtt bridge, *write*
  ``<base>/<home prefix>/#`` for every configured home topic base (``VIGIE_HOME_TOPICS`` filters
  ``<base>/#``), where ``home prefix`` is the first level shared by the friendly names of all the
  home's sensors — the bridge runs with ``base_topic: <base>/<home prefix>``, so it may speak only
  for its own home's devices (a friendly name is the topic after ``<base>/``, and the decoder finds
  the sensor, hence the home, by it);
- each **building** with zigbee2mqtt heating devices (user name = the building id): its heating
  bridge, *write* ``<base>/<building prefix>/#`` for every heating topic base
  (``VIGIE_HEATING_TOPICS``), the building prefix being the first level of its devices' friendly
  names, by the same rule as homes;
- when the registry has LoRaWAN devices, one **network server** integration per LoRaWAN decoder
  configured (user name ``lorawan-<decoder>``, e.g. ``lorawan-chirpstack_v4``): *write* exactly
  that decoder's ``VIGIE_LORAWAN_TOPICS`` filters (``application/+/device/+/event/up``). A network
  server speaks for all its devices (the decoder checks each payload's DevEUI against the topic),
  so it cannot be confined further; a Mosquitto bridge to The Things Stack needs no credential
  (``ingest/README.md``, "Heating and LoRaWAN network servers");
- the **service account** (``VIGIE_MQTT_USERNAME``): *read* every configured water, home, heating
  and LoRaWAN topic filter (without its ``$share/<group>/`` prefix: Mosquitto checks a shared
  subscription against the underlying filter);
- optionally the **simulator** (``VIGIE_SIMULATOR_MQTT_USERNAME``, for testing only): *write*
  ``<prefix>/#`` for the water prefixes, ``<base>/#`` for the home and heating bases and the
  LoRaWAN filters — it publishes for every simulated meter, home, building and radio.

Nothing else for anybody (Mosquitto denies what no ACL line grants). Passwords are hashed by
Mosquitto's own ``mosquitto_passwd -U`` (PBKDF2-SHA512 in 2.x). A credential already in the
password file keeps its hash (re-running is idempotent); new ones, and those named in
``rotate``, get a random password that is written once, in clear, to a 0600 secrets file for
provisioning. Credentials no longer derived from the registry are dropped (revoked).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PASSWD_FILE = "passwd"
ACL_FILE = "acl"
SECRETS_FILE = "new-credentials"
DEFAULT_SIMULATOR_USER = "vigie-simulator"


class BrokerAuthError(ValueError):
    """Registry or settings that cannot become broker credentials, or ``mosquitto_passwd`` failing;
    the message names the entry."""


@dataclass(frozen=True, slots=True)
class MeterRoute:
    """What the broker needs to know of one registered meter."""

    meter_id: str
    gateway: str | None = None
    topic_name: str | None = None


@dataclass(frozen=True, slots=True)
class SensorRoute:
    """What the broker needs to know of one registered home sensor."""

    household_id: str
    friendly_name: str


@dataclass(frozen=True, slots=True)
class HeatingRoute:
    """What the broker needs to know of one zigbee2mqtt heating device."""

    building_id: str
    friendly_name: str


@dataclass(frozen=True, slots=True)
class Credential:
    """One broker user: ``write`` topics it may publish on, ``read`` filters it may subscribe to."""

    username: str
    role: str  # "gateway", "device", "bridge", "network_server", "service" or "simulator"
    write: tuple[str, ...] = ()
    read: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CredentialsReport:
    """What :func:`write_broker_files` did. Names only: passwords go to ``secrets`` alone."""

    passwd: Path
    acl: Path
    users: int
    created: list[str] = field(default_factory=list)
    rotated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    secrets: Path | None = None


def topic_prefixes(topic_decoders: Iterable[tuple[str, str]], setting: str = "VIGIE_WATER_TOPICS") -> list[str]:
    """The ``<prefix>`` of each ``<prefix>/#`` topic filter (``$share/<group>/`` removed) of
    ``setting``. Raises :class:`BrokerAuthError` for a filter of another shape (per-device grants
    need it)."""
    prefixes = []
    for topic_filter, _decoder in topic_decoders:
        plain = _unshared(topic_filter)
        prefix = plain[:-2] if plain.endswith("/#") else ""
        if not prefix or "+" in prefix or "#" in prefix:
            raise BrokerAuthError(f"{setting} filter {topic_filter!r}: per-device broker credentials "
                                  "need filters of the form <prefix>/# (e.g. wmbusmeters/#)")
        if prefix not in prefixes:
            prefixes.append(prefix)
    return prefixes


def home_prefixes(sensors: Iterable[SensorRoute]) -> dict[str, str]:
    """Household id → its home prefix: the first level of its sensors' friendly names, which must
    be the same for all of them and differ between households. Raises :class:`BrokerAuthError`
    naming the household otherwise (a bridge publishing at the base topic itself could not be
    confined to its home)."""
    return _bridge_prefixes(((r.household_id, r.friendly_name) for r in sensors), "household", "home", "docs/homes.md")


def building_prefixes(devices: Iterable[HeatingRoute]) -> dict[str, str]:
    """Building id → its building prefix (the first level of its heating devices' friendly names),
    by the rules of :func:`home_prefixes`."""
    return _bridge_prefixes(((d.building_id, d.friendly_name) for d in devices), "building", "building",
                            "ingest/README.md")


def _bridge_prefixes(names: Iterable[tuple[str, str]], owner: str, place: str, doc: str) -> dict[str, str]:
    prefix_of: dict[str, str] = {}
    first_owner: dict[str, str] = {}
    for who, name in sorted(names):
        first, sep, _rest = name.partition("/")
        if not sep:
            raise BrokerAuthError(f"{owner} {who}: friendly name {name!r} has no {place} prefix: name devices "
                                  f"<{place} prefix>/<device> and run the {place}'s bridge with base_topic "
                                  f"<base>/<{place} prefix> ({doc})")
        _check_level(first, f"{owner} {who} {place} prefix")
        known = prefix_of.setdefault(who, first)
        if known != first:
            raise BrokerAuthError(f"{owner} {who}: friendly names start with both {known!r} and "
                                  f"{first!r}: all of a {place}'s devices share its bridge's prefix")
        other = first_owner.setdefault(first, who)
        if other != who:
            raise BrokerAuthError(f"{place} prefix {first!r} is used by {owner}s {other} and {who}: "
                                  f"each {place}'s bridge needs its own")
    return prefix_of


def network_servers(lorawan_topic_decoders: Iterable[tuple[str, str]]) -> dict[str, tuple[str, ...]]:
    """Broker user of each LoRaWAN decoder's network server (``lorawan-<decoder>``) → the filters
    it may publish on (without ``$share/<group>/``), in the order configured."""
    users: dict[str, list[str]] = {}
    for topic_filter, decoder in lorawan_topic_decoders:
        plain = _unshared(topic_filter)
        grants = users.setdefault(f"lorawan-{decoder}", [])
        if plain not in grants:
            grants.append(plain)
    return {u: tuple(f) for u, f in users.items()}


def plan_credentials(meters: Iterable[MeterRoute], topic_decoders: Sequence[tuple[str, str]], service_user: str,
                     simulator_user: str | None = None, *, sensors: Iterable[SensorRoute] = (),
                     home_topic_decoders: Sequence[tuple[str, str]] = (), heating: Iterable[HeatingRoute] = (),
                     heating_topic_decoders: Sequence[tuple[str, str]] = (),
                     lorawan_topic_decoders: Sequence[tuple[str, str]] = (),
                     lorawan_devices: bool = False) -> list[Credential]:
    """The credentials and grants for ``meters``, the homes of ``sensors``, the buildings of the
    ``heating`` devices and, when ``lorawan_devices`` (the registry has LoRaWAN devices), the
    network servers of ``lorawan_topic_decoders`` (see the module docstring), sorted by user name
    after the service and simulator accounts. Raises :class:`BrokerAuthError` when an id cannot be
    a topic level or a user name, two devices would share a user name, one topic would belong to
    two devices, or a home's or building's friendly names do not give it a prefix of its own
    (:func:`home_prefixes`)."""
    prefixes = topic_prefixes(topic_decoders)
    bases = topic_prefixes(home_topic_decoders, "VIGIE_HOME_TOPICS")
    heating_bases = topic_prefixes(heating_topic_decoders, "VIGIE_HEATING_TOPICS")
    homes = home_prefixes(sensors)
    buildings = building_prefixes(heating) if heating_bases else {}
    servers = network_servers(lorawan_topic_decoders) if lorawan_devices else {}
    levels: dict[str, list[str]] = {}   # device (user name) → topic levels it speaks for
    level_owner: dict[str, str] = {}
    standalone: set[str] = set()
    gateways: set[str] = set()

    def claim(device: str, level: str, what: str) -> None:
        _check_level(level, what)
        other = level_owner.setdefault(level, device)
        if other != device:
            raise BrokerAuthError(f"{what}: topic level {level!r} already belongs to device {other!r}")
        if level not in levels[device]:
            levels[device].append(level)

    for m in sorted(meters, key=lambda m: m.meter_id):
        device = m.gateway or m.meter_id
        (gateways if m.gateway else standalone).add(device)
        levels.setdefault(device, [])
        if m.gateway:
            claim(device, m.gateway, f"gateway {m.gateway}")
        claim(device, m.meter_id, f"meter {m.meter_id}")
        if m.topic_name:
            claim(device, m.topic_name, f"meter {m.meter_id} topic_name")
    both = gateways & standalone
    if both:
        raise BrokerAuthError(f"{sorted(both)[0]!r} is both a gateway and a meter without a gateway: "
                              "one broker user cannot be two devices")
    for household in homes:
        _check_level(household, f"household {household}")
        if household in levels:
            raise BrokerAuthError(f"household {household!r} (its home bridge's broker user) is also a water "
                                  "device id: one broker user cannot be two devices")
    for building in buildings:
        _check_level(building, f"building {building}")
        if building in levels or building in homes:
            raise BrokerAuthError(f"building {building!r} (its heating bridge's broker user) is also a water device "
                                  "id or a household: one broker user cannot be two devices")
    for server in servers:
        if server in levels or server in homes or server in buildings:
            raise BrokerAuthError(f"{server!r} (a LoRaWAN network server's broker user) is also a device id, "
                                  "household or building in the registry")
    filters = [*topic_decoders, *home_topic_decoders, *heating_topic_decoders, *lorawan_topic_decoders]
    accounts = [Credential(service_user, "service", read=tuple(dict.fromkeys(_unshared(f) for f, _ in filters)))]
    if simulator_user:
        lorawan_filters = [f for grants in network_servers(lorawan_topic_decoders).values() for f in grants]
        accounts.append(Credential(simulator_user, "simulator", write=tuple(
            [f"{p}/#" for p in [*prefixes, *bases, *heating_bases]] + lorawan_filters)))
    for acc in accounts:
        _check_level(acc.username, f"{acc.role} user")
        if acc.username in levels or acc.username in homes or acc.username in buildings or acc.username in servers:
            raise BrokerAuthError(f"{acc.role} user {acc.username!r} is also a device id or household (or a "
                                  "building or network server) in the registry")
    if simulator_user == service_user:
        raise BrokerAuthError(f"the simulator and the service cannot share the broker user {service_user!r}")
    devices = [Credential(d, "gateway" if d in gateways else "device",
                          write=tuple(f"{p}/{lvl}" for p in prefixes for lvl in levels[d])) for d in sorted(levels)]
    bridges = [Credential(h, "bridge", write=tuple(f"{b}/{homes[h]}/#" for b in bases)) for h in sorted(homes)]
    bridges += [Credential(b, "bridge", write=tuple(f"{base}/{buildings[b]}/#" for base in heating_bases))
                for b in sorted(buildings)]
    lns = [Credential(u, "network_server", write=grants) for u, grants in servers.items()]
    return accounts + sorted(devices + bridges + lns, key=lambda c: c.username)


def acl_text(credentials: Sequence[Credential]) -> str:
    """Mosquitto ``acl_file`` content granting exactly each credential's topics."""
    out = ["# Generated by `vigie broker credentials` from the registry; do not edit (re-run it).",
           "# No line before the first `user`: anonymous clients are granted nothing.", ""]
    for c in credentials:
        out.append(f"# {c.role}")
        out.append(f"user {c.username}")
        out.extend(f"topic write {t}" for t in c.write)
        out.extend(f"topic read {t}" for t in c.read)
        out.append("")
    return "\n".join(out) + "\n"


def write_broker_files(out_dir: Path, credentials: Sequence[Credential], *, rotate: Iterable[str] = (),
                       secrets_path: Path | None = None, mosquitto_passwd: str | None = None) -> CredentialsReport:
    """Write ``out_dir/passwd`` (hashed with ``mosquitto_passwd -U``) and ``out_dir/acl``, both 0600.

    Users already in ``out_dir/passwd`` keep their hash unless named in ``rotate``; new and
    rotated users get a random password appended as ``user:password`` lines to ``secrets_path``
    (default ``out_dir/new-credentials``, mode 0600) before the password file is replaced.
    Raises :class:`BrokerAuthError` when a ``rotate`` id is not a credential or the tool is
    missing or fails.
    """
    out_dir = Path(out_dir)
    names = [c.username for c in credentials]
    rotate = list(dict.fromkeys(rotate))
    unknown = [r for r in rotate if r not in names]
    if unknown:
        raise BrokerAuthError(f"--rotate {unknown[0]}: no such credential (known: gateways, meters without "
                              "a gateway, households with sensors, buildings with zigbee2mqtt heating devices, "
                              "lorawan-<decoder> network servers, the service and simulator users)")
    tool = mosquitto_passwd or shutil.which("mosquitto_passwd")
    if not tool or not Path(tool).exists():
        raise BrokerAuthError("mosquitto_passwd not found: it comes with Mosquitto (Debian: apt-get install "
                              "mosquitto); Vigie hashes passwords with Mosquitto's own tool")
    out_dir.mkdir(parents=True, exist_ok=True)
    passwd, acl = out_dir / PASSWD_FILE, out_dir / ACL_FILE
    existing = _read_passwd(passwd)
    fresh = {n: secrets.token_urlsafe(24) for n in names if n not in existing or n in rotate}
    hashed = _hash(tool, fresh, out_dir)
    report_secrets = None
    if fresh:
        report_secrets = Path(secrets_path) if secrets_path else out_dir / SECRETS_FILE
        fd = os.open(report_secrets, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.writelines(f"{n}:{fresh[n]}\n" for n in names if n in fresh)
            fh.flush()
            os.fsync(fh.fileno())
    _write_private(passwd, "".join(f"{hashed.get(n) or existing[n]}\n" for n in names))
    _write_private(acl, acl_text(credentials))
    return CredentialsReport(passwd=passwd, acl=acl, users=len(names),
                             created=[n for n in names if n in fresh and n not in existing],
                             rotated=[n for n in names if n in fresh and n in existing],
                             removed=sorted(set(existing) - set(names)), secrets=report_secrets)


def _hash(tool: str, fresh: dict[str, str], work_dir: Path) -> dict[str, str]:
    """``user → "user:hash"`` for the clear passwords in ``fresh``, hashed by ``mosquitto_passwd -U``
    in a private temporary file (removed, whatever happens)."""
    if not fresh:
        return {}
    fd, tmp = tempfile.mkstemp(prefix=".passwd-", dir=work_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.writelines(f"{n}:{p}\n" for n, p in fresh.items())
        done = subprocess.run([tool, "-U", tmp], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise BrokerAuthError(f"mosquitto_passwd -U failed ({done.returncode}): "
                                  f"{(done.stderr or done.stdout).strip()[:500]}")
        return _read_passwd(Path(tmp))
    finally:
        os.unlink(tmp)


def _read_passwd(path: Path) -> dict[str, str]:
    """``user → whole line`` of a Mosquitto password file (empty when absent)."""
    if not path.exists():
        return {}
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            out[line.split(":", 1)[0]] = line
    return out


def _write_private(path: Path, text: str) -> None:
    """Replace ``path`` atomically with a 0600 file holding ``text``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _check_level(value: str, what: str) -> None:
    """An id used as one topic level, ACL user name and password-file user: no ``/ + # :``,
    spaces or control characters, not starting with ``$``, 1–64 characters."""
    if (not value or len(value) > 64 or value.startswith("$")
            or any(c in "/+#:" or c.isspace() or not c.isprintable() for c in value)):
        raise BrokerAuthError(f"{what}: {value!r} cannot be an MQTT topic level and broker user name "
                              "(1-64 characters, no / + # : spaces or control characters, not starting with $)")


def _unshared(topic_filter: str) -> str:
    """The filter without an MQTT 5 shared-subscription prefix (``$share/<group>/…``)."""
    if topic_filter.startswith("$share/"):
        parts = topic_filter.split("/", 2)
        return parts[2] if len(parts) == 3 else topic_filter
    return topic_filter
