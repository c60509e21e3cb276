"""docker-compose.yml, checked without a Docker engine: Debian's ``docker-compose`` 1.29 resolves it
(``docker-compose config``: schema, interpolation, anchors) with a filled-in copy of .env.example,
and the resolved file is checked against the repository — every mounted or built path exists,
images are pinned, long-running services have a health check and a restart policy, the simulators
run only under their profile, the Vigie containers' ``VIGIE_*`` variables are settings with valid
values, and the accounts and paths the services share agree."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from sqlalchemy.engine import make_url

from vigie.config import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
PASSWORDS = ("INFLUXDB_ADMIN_PASSWORD", "VIGIE_INFLUX_PASSWORD", "GRAFANA_INFLUX_PASSWORD", "GRAFANA_ADMIN_PASSWORD",
             "POSTGRES_PASSWORD", "POSTGRES_VIGIE_PASSWORD", "GRAFANA_DB_PASSWORD", "VIGIE_MQTT_PASSWORD",
             "VIGIE_SIMULATOR_MQTT_PASSWORD")
SIMULATOR_COMMANDS = ("simulate", "replay")

pytestmark = pytest.mark.skipif(shutil.which("docker-compose") is None,
                                reason="docker-compose not installed (Debian package docker-compose; "
                                       "deploy/bootstrap.sh installs it)")


def dotenv(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines()
                if "=" in line and not line.lstrip().startswith("#"))


def compose_config(env_file: Path, cwd: Path) -> subprocess.CompletedProcess:
    # Only the env file counts: none of this machine's VIGIE_* variables or the checkout's own .env.
    env = {"PATH": os.environ["PATH"], "HOME": str(cwd)}
    return subprocess.run(["docker-compose", "--env-file", str(env_file), "-f", str(COMPOSE), "config"],
                          env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def filled_env(tmp_path_factory) -> Path:
    """.env.example with every password set, as an operator fills it."""
    path = tmp_path_factory.mktemp("compose") / "test.env"
    lines = [f"{line}pw{line[:-1].lower().replace('_', '')}" if line.endswith("=") and line[:-1] in PASSWORDS else line
             for line in ENV_EXAMPLE.read_text().splitlines()]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def config(filled_env) -> dict:
    done = compose_config(filled_env, filled_env.parent)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def volumes(service: dict) -> list[tuple[str, str]]:
    """(source, target) of each mount; docker-compose config gives bind sources as absolute paths."""
    return [tuple(v.split(":")[:2]) for v in service.get("volumes", [])]


def strings(node) -> list[str]:
    """Every string value in a parsed YAML document."""
    if isinstance(node, dict):
        return [s for v in node.values() for s in strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in strings(v)]
    return [node] if isinstance(node, str) else []


def from_repo(service: dict) -> bool:
    return "build" in service


def test_resolves_with_a_filled_env_and_names_a_missing_password(config, filled_env, tmp_path):
    assert set(config["services"]) >= {"mosquitto", "influxdb", "influxdb-setup", "postgres", "grafana-grants",
                                       "prometheus", "vigie", "grafana"}
    done = compose_config(ENV_EXAMPLE, tmp_path)  # passwords left empty
    assert done.returncode != 0
    named = re.search(r"set ([A-Z_]+_PASSWORD) in \.env", done.stderr)
    assert named and named.group(1) in PASSWORDS, done.stderr


def test_every_mounted_or_built_path_exists_in_the_repository(config):
    declared = set(config.get("volumes", {}))
    for name, svc in config["services"].items():
        if from_repo(svc):
            context = Path(svc["build"]["context"])
            assert context == ROOT and (context / svc["build"].get("dockerfile", "Dockerfile")).is_file(), name
        for source, target in volumes(svc):
            if source.startswith("/"):
                path = Path(source)
                assert path.is_relative_to(ROOT) and path.exists(), f"{name}: {source} -> {target}"
            else:
                assert source in declared, f"{name}: volume {source} is not declared"


def test_the_image_builds_from_files_the_context_sends():
    copies = re.findall(r"^COPY\s+(?:--\S+\s+)*(.+?)\s+\S+$", (ROOT / "Dockerfile").read_text(), re.M)
    sources = {src.rstrip("/") for line in copies for src in line.split()}
    ignored = {line.strip().rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    for src in sources:
        assert (ROOT / src).exists(), f"Dockerfile copies {src}, which does not exist"
        assert src not in ignored, f"Dockerfile copies {src}, which .dockerignore leaves out of the context"
    assert {".env", ".venv", ".git"} <= ignored  # secrets and local state stay out of the build context
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert set(tool["package-dir"].values()) <= sources, "a package folder pip installs is not copied"


def test_images_are_pinned(config):
    for name, svc in config["services"].items():
        if from_repo(svc):
            continue
        image, _, tag = svc["image"].rpartition(":")
        assert image and re.match(r"^v?\d+(\.\d+)+", tag), f"{name}: {svc['image']} (a version, not latest)"
    images = {name: svc["image"] for name, svc in config["services"].items()}
    assert images["mosquitto"].startswith("eclipse-mosquitto:2.")
    assert images["influxdb"].startswith("influxdb:1.8.")  # the v1 API the tests prove


def test_long_running_services_have_a_health_check_and_a_restart_policy(config):
    services = config["services"]
    for name, svc in services.items():
        assert "restart" in svc, f"{name}: no restart policy"
        if svc["restart"] == "no":  # a one-shot: setup steps, simulators
            continue
        assert svc["restart"] in ("always", "unless-stopped", "on-failure"), name
        test = svc.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name}: no health check"
    for name, svc in services.items():
        for dep, cond in svc.get("depends_on", {}).items():
            wanted = "service_completed_successfully" if services[dep]["restart"] == "no" else "service_healthy"
            assert cond.get("condition") == wanted, f"{name} starts before {dep} is done or healthy"


def test_simulators_run_only_under_their_profile(config):
    services = config["services"]
    simulators = {n for n, s in services.items() if s.get("command") and s["command"][0] in SIMULATOR_COMMANDS}
    assert simulators, "no simulator service"
    assert {n for n, s in services.items() if "simulators" in s.get("profiles", [])} == simulators
    for name in simulators:
        assert services[name]["profiles"] == ["simulators"], name
    for name, svc in services.items():
        if not svc.get("profiles"):  # started by a plain `docker compose up`
            assert not set(svc.get("depends_on", {})) & {n for n, s in services.items() if s.get("profiles")}, name


def test_vigie_variables_are_settings_with_valid_values(config, monkeypatch):
    fields = Settings.model_fields
    documented = {k for k in dotenv(ENV_EXAMPLE) if k.startswith("VIGIE_")}
    assert {k for k in documented if k[6:].lower() not in fields} == set(), "unknown VIGIE_ variable in .env.example"
    for name, svc in config["services"].items():
        if not from_repo(svc):
            continue
        env = {k: str(v) for k, v in svc.get("environment", {}).items()}
        unknown = [k for k in env if not k.startswith("VIGIE_") or k[6:].lower() not in fields]
        assert not unknown, f"{name}: not Vigie settings: {unknown}"
        for key in list(os.environ):
            if key.startswith("VIGIE_"):
                monkeypatch.delenv(key)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        settings = Settings(_env_file=None)  # raises on a bad value, naming it
        assert settings.mqtt_host == "mosquitto" and settings.influx_url == "http://influxdb:8086", name


def test_every_variable_is_documented_in_env_example():
    text = COMPOSE.read_text()
    used = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", text))
    documented = set(dotenv(ENV_EXAMPLE))
    assert used - documented == set(), "used by docker-compose.yml, missing from .env.example"
    assert documented - used == set(), "in .env.example, unused by docker-compose.yml"


def test_services_agree_on_accounts_paths_and_ports(config):
    s = config["services"]
    influx, vigie, setup, grafana = s["influxdb"]["environment"], s["vigie"]["environment"], \
        s["influxdb-setup"]["environment"], s["grafana"]["environment"]
    assert influx["INFLUXDB_HTTP_AUTH_ENABLED"] == "true"
    assert (vigie["VIGIE_INFLUX_USERNAME"], vigie["VIGIE_INFLUX_PASSWORD"]) == \
        (influx["INFLUXDB_USER"], influx["INFLUXDB_USER_PASSWORD"])
    assert (setup["VIGIE_INFLUX_USERNAME"], setup["VIGIE_INFLUX_PASSWORD"]) == \
        (influx["INFLUXDB_ADMIN_USER"], influx["INFLUXDB_ADMIN_PASSWORD"])
    assert (grafana["GRAFANA_INFLUX_USERNAME"], grafana["GRAFANA_INFLUX_PASSWORD"]) == \
        (influx["INFLUXDB_READ_USER"], influx["INFLUXDB_READ_USER_PASSWORD"])
    assert setup["VIGIE_INFLUX_USERNAME"] != vigie["VIGIE_INFLUX_USERNAME"]  # the service is no admin
    assert influx["INFLUXDB_DB"] == vigie["VIGIE_INFLUX_DATABASE"] == grafana["VIGIE_INFLUX_DATABASE"]
    assert s["vigie"]["command"] == ["serve"] and s["influxdb-setup"]["command"] == ["influx", "setup"]

    # Mosquitto's files lie in its mounts; its auth volume is the one broker-credentials writes.
    mounts = dict((t, src) for src, t in volumes(s["mosquitto"]))
    conf = Path(mounts["/mosquitto/config/mosquitto.conf"]).read_text()
    assert conf == (ROOT / "deploy/mosquitto/mosquitto.docker.conf").read_text()
    paths = dict(re.findall(r"^(password_file|acl_file|persistence_location)\s+(\S+)", conf, re.M))
    assert set(paths) == {"password_file", "acl_file", "persistence_location"}
    assert re.search(r"^allow_anonymous false$", conf, re.M)
    for key, path in paths.items():
        assert any(path.startswith(t.rstrip("/") + "/") for t in mounts), f"{key} {path} is not in a volume"
    auth_volume = mounts[str(Path(paths["password_file"]).parent)]
    writer = s["broker-credentials"]
    out = writer["command"][writer["command"].index("--out") + 1]
    assert dict((t, src) for src, t in volumes(writer))[out] == auth_volume
    assert "mosquitto-auth" not in {src for src, _ in volumes(s["vigie"])}  # the service cannot edit its ACL

    # Grafana's provisioning: mounted where Grafana reads it, every variable it names is set.
    grafana_mounts = dict((t, src) for src, t in volumes(s["grafana"]))
    provisioning = Path(grafana_mounts["/etc/grafana/provisioning"])
    assert provisioning == ROOT / "grafana/provisioning"
    for f in provisioning.rglob("*.y*ml"):  # Grafana expands $VAR / ${VAR} in the values it reads
        for value in strings(yaml.safe_load(f.read_text())):
            for var in re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", value):
                assert var in grafana, f"{f.relative_to(ROOT)} uses ${var}, unset in the grafana service"

    # PostgreSQL: the roles its first start creates are the ones Vigie and Grafana log in as.
    pg, grants = s["postgres"]["environment"], s["grafana-grants"]
    url = make_url(vigie["VIGIE_DATABASE_URL"])
    assert url.get_backend_name() == "postgresql" and (url.host, url.port) == ("postgres", 5432)
    assert (url.username, url.password, url.database) == ("vigie", pg["POSTGRES_VIGIE_PASSWORD"], "vigie")
    assert grafana["GRAFANA_DB_HOST"] == "postgres:5432" and grafana["GRAFANA_DB_NAME"] == url.database
    assert (grafana["GRAFANA_DB_USER"], grafana["GRAFANA_DB_PASSWORD"]) == ("grafana", pg["GRAFANA_DB_PASSWORD"])
    assert grants["environment"]["PGPASSWORD"] == url.password
    cmd = grants["command"]
    assert (cmd[cmd.index("-U") + 1], cmd[cmd.index("-d") + 1]) == ("vigie", "vigie") and "grafana_role=grafana" in cmd
    assert {t for _, t in volumes(s["postgres"])} >= {"/docker-entrypoint-initdb.d", "/var/lib/postgresql/data"}
    for svc in ("vigie", "broker-credentials", "simulate-water"):
        assert s[svc]["environment"]["VIGIE_DATABASE_URL"] == vigie["VIGIE_DATABASE_URL"], svc
    assert "VIGIE_DATABASE_URL" not in setup  # the InfluxDB setup needs no database password

    # Prometheus scrapes Vigie where it listens; Grafana reads Prometheus where it listens.
    prom_mounts = dict((t, src) for src, t in volumes(s["prometheus"]))
    prom = yaml.safe_load(Path(prom_mounts["/etc/prometheus/prometheus.yml"]).read_text())
    assert "--config.file=/etc/prometheus/prometheus.yml" in s["prometheus"]["command"]
    assert prom["scrape_configs"][0]["static_configs"][0]["targets"] == [f"vigie:{vigie['VIGIE_API_PORT']}"]
    assert grafana["GRAFANA_PROMETHEUS_URL"] == "http://prometheus:9090"

    # The health check asks the port Vigie listens on, the one published.
    port = vigie["VIGIE_API_PORT"]
    assert f":{port}/ready" in " ".join(s["vigie"]["healthcheck"]["test"])
    targets = [str(p["target"]) if isinstance(p, dict) else str(p).split(":")[-1].split("/")[0]
               for p in s["vigie"]["ports"]]
    assert port in targets
