#!/usr/bin/env bash
# One-time setup on a Debian machine (as root): Mosquitto, InfluxDB 1.x and docker-compose (only to
# check docker-compose.yml) from Debian's packages, a virtual environment in .venv with Vigie
# installed, and both services started on loopback (Mosquitto with authentication: the service's and
# the simulator's credentials go to .env).
# Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

need=()
command -v mosquitto >/dev/null 2>&1 || need+=(mosquitto)
command -v influxd >/dev/null 2>&1 || need+=(influxdb)
python3 -m venv --help >/dev/null 2>&1 || need+=(python3-venv)
# Validates docker-compose.yml without a Docker engine (`docker-compose config`, tests/test_compose.py).
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${need[@]}"
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'

bash deploy/start-services.sh
echo "ready: . .venv/bin/activate"
