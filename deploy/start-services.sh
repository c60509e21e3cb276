#!/usr/bin/env bash
# Start Mosquitto (project config) and InfluxDB 1.x on loopback if nothing listens on their ports.
# State lives under ${VIGIE_SERVICES_DIR:-/var/lib/vigie-services}. Idempotent.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
state=${VIGIE_SERVICES_DIR:-/var/lib/vigie-services}
mkdir -p "$state/mosquitto" "$state/influxdb"

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if ! listening 1883; then
  sed -e "s#^persistence_location .*#persistence_location $state/mosquitto/#" \
      -e "s#^log_dest stderr#log_dest file $state/mosquitto/mosquitto.log#" \
      "$here/mosquitto/mosquitto.conf" > "$state/mosquitto/mosquitto.conf"
  chown -R mosquitto: "$state/mosquitto" 2>/dev/null || true
  mosquitto -d -c "$state/mosquitto/mosquitto.conf"
fi

if ! listening 8086; then
  sed -e "s#\${DATA_DIR}#$state/influxdb#g" -e "s#\${HTTP_PORT}#8086#g" -e "s#\${RPC_PORT}#8088#g" \
      "$here/influxdb/influxdb.conf.template" > "$state/influxdb/influxdb.conf"
  nohup influxd -config "$state/influxdb/influxdb.conf" > "$state/influxdb/influxd.log" 2>&1 &
fi

for _ in $(seq 1 100); do
  listening 1883 && listening 8086 && exit 0
  sleep 0.2
done
echo "services did not start; see $state/*/*.log" >&2
exit 1
