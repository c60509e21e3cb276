#!/usr/bin/env bash
# Start Mosquitto and InfluxDB 1.x on loopback with the project's configuration (deploy/).
#
# A broker already listening on 1883 is not reused: Vigie needs the project's Mosquitto settings
# (persistence, deep queues, a wide in-flight window) or a fast publisher makes the broker drop
# messages. If 1883 is taken by another broker, the project's one listens on 1884 and the chosen
# URL is written to .env (read by vigie from the working directory). An InfluxDB already on 8086
# is reused (its settings do not matter to Vigie). State lives under
# ${VIGIE_SERVICES_DIR:-/var/lib/vigie-services}. Idempotent.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
state=${VIGIE_SERVICES_DIR:-/var/lib/vigie-services}
mkdir -p "$state/mosquitto" "$state/influxdb"

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
ours_running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

mq_pid="$state/mosquitto/mosquitto.pid"
mq_port_file="$state/mosquitto/port"
if ours_running "$mq_pid"; then
  mq_port=$(cat "$mq_port_file")
else
  mq_port=1883
  listening 1883 && mq_port=1884
  sed -e "s#^persistence_location .*#persistence_location $state/mosquitto/#" \
      -e "s#^log_dest stderr#log_dest file $state/mosquitto/mosquitto.log#" \
      -e "s#^listener 1883 127.0.0.1#listener $mq_port 127.0.0.1#" \
      "$here/mosquitto/mosquitto.conf" > "$state/mosquitto/mosquitto.conf"
  printf 'pid_file %s\nuser root\n' "$mq_pid" >> "$state/mosquitto/mosquitto.conf"
  mosquitto -d -c "$state/mosquitto/mosquitto.conf"
  echo "$mq_port" > "$mq_port_file"
fi

if ! listening 8086; then
  sed -e "s#\${DATA_DIR}#$state/influxdb#g" -e "s#\${HTTP_PORT}#8086#g" -e "s#\${RPC_PORT}#8088#g" \
      "$here/influxdb/influxdb.conf.template" > "$state/influxdb/influxdb.conf"
  nohup influxd -config "$state/influxdb/influxdb.conf" > "$state/influxdb/influxd.log" 2>&1 &
fi

for _ in $(seq 1 100); do
  if listening "$mq_port" && listening 8086; then
    touch "$root/.env"
    grep -v '^VIGIE_MQTT_URL=' "$root/.env" > "$root/.env.tmp" || true
    echo "VIGIE_MQTT_URL=mqtt://127.0.0.1:$mq_port" >> "$root/.env.tmp"
    mv "$root/.env.tmp" "$root/.env"
    echo "Mosquitto (project configuration) on 127.0.0.1:$mq_port, InfluxDB on 127.0.0.1:8086; VIGIE_MQTT_URL in $root/.env"
    exit 0
  fi
  sleep 0.2
done
echo "services did not start; see $state/*/*.log" >&2
exit 1
