#!/usr/bin/env bash
# Start Mosquitto and InfluxDB 1.x on loopback with the project's configuration (deploy/).
#
# A broker already listening on 1883 is not reused: Vigie needs the project's Mosquitto settings
# (persistence, deep queues, a wide in-flight window, authentication) or a fast publisher makes the
# broker drop messages. If 1883 is taken by another broker, the project's one listens on 1884
# (VIGIE_MQTT_PORT forces a port) and the chosen URL — with a client id of this checkout's own — is
# written to .env (read by vigie from the
# working directory). The broker refuses anonymous clients: the service account (VIGIE_MQTT_USERNAME,
# default vigie-ingest) and the simulator's test gateway (VIGIE_SIMULATOR_MQTT_USERNAME, default
# vigie-simulator) get credentials from `vigie broker credentials`, their passwords go to .env (mode
# 0600); gateways and devices of the registry get theirs too (new passwords: the new-credentials file
# named below). Re-running reloads the registry's credentials into a running broker (SIGHUP).
# The broker and its state are the machine's, shared by every checkout: the service and simulator
# user names and passwords are kept in $state/mosquitto/auth/service-accounts.env (0600) and copied
# into the .env of a checkout that runs this script, so a second checkout gets the same, working
# credentials and never renews them under the first. They are renewed only when asked
# (VIGIE_ROTATE_SERVICE_CREDENTIALS=1; other checkouts get the new ones on their next run), or when
# neither this file nor .env knows them. A .env naming other service or simulator users than the
# machine's is refused (their accounts would replace the ones other checkouts use).
# An InfluxDB already on ${VIGIE_INFLUXDB_PORT:-8086} is reused (its settings do not matter to
# Vigie); a port other than 8086 is written to .env as VIGIE_INFLUX_URL. State lives under
# ${VIGIE_SERVICES_DIR:-/var/lib/vigie-services}. Idempotent.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
state=${VIGIE_SERVICES_DIR:-/var/lib/vigie-services}
auth="$state/mosquitto/auth"
env_file="$root/.env"
mkdir -p "$state/mosquitto" "$state/influxdb" "$auth"
chmod 700 "$auth"

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
ours_running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
env_get() { [ -f "$env_file" ] && sed -n "s/^$1=//p" "$env_file" | tail -n 1 || true; }
env_set() {
  touch "$env_file"
  (umask 077 && { grep -v "^$1=" "$env_file" || true; echo "$1=$2"; } > "$env_file.tmp")
  mv "$env_file.tmp" "$env_file"  # mode 0600: it holds broker passwords
}

vigie="$root/.venv/bin/vigie"
[ -x "$vigie" ] || vigie=$(command -v vigie) || { echo "vigie is not installed: run deploy/bootstrap.sh" >&2; exit 1; }

mq_pid="$state/mosquitto/mosquitto.pid"
mq_port_file="$state/mosquitto/port"
if ours_running "$mq_pid"; then
  mq_port=$(cat "$mq_port_file")
elif [ -n "${VIGIE_MQTT_PORT:-}" ]; then
  mq_port=$VIGIE_MQTT_PORT
else
  mq_port=1883
  listening 1883 && mq_port=1884
fi

# Credentials before the broker starts (Mosquitto refuses to start without its password file).
accounts="$auth/service-accounts.env"
machine_get() { [ -f "$accounts" ] && sed -n "s/^$1=//p" "$accounts" | tail -n 1 || true; }
rotate=()
adopt_account() {  # $1 user key, $2 password key, $3 default user name
  local user machine_user
  user=$(env_get "$1")
  machine_user=$(machine_get "$1")
  if [ -n "$user" ] && [ -n "$machine_user" ] && [ "$user" != "$machine_user" ]; then
    echo "$env_file sets $1=$user but this machine's broker serves $machine_user ($accounts):" \
         "use $machine_user, or give this checkout a broker of its own (VIGIE_SERVICES_DIR, VIGIE_MQTT_PORT)" >&2
    return 1
  fi
  user=${user:-${machine_user:-$3}}
  env_set "$1" "$user"
  if [ "${VIGIE_ROTATE_SERVICE_CREDENTIALS:-0}" = 1 ]; then
    rotate+=(--rotate "$user")
  elif [ -n "$(machine_get "$2")" ]; then
    env_set "$2" "$(machine_get "$2")"  # the machine's password is the one the broker knows
  elif [ -z "$(env_get "$2")" ]; then
    rotate+=(--rotate "$user")  # known to nobody: renewed
  fi  # else a .env from before the machine kept them: its password is recorded below
}
adopt_account VIGIE_MQTT_USERNAME VIGIE_MQTT_PASSWORD vigie-ingest
adopt_account VIGIE_SIMULATOR_MQTT_USERNAME VIGIE_SIMULATOR_MQTT_PASSWORD vigie-simulator
service_user=$(env_get VIGIE_MQTT_USERNAME)
sim_user=$(env_get VIGIE_SIMULATOR_MQTT_USERNAME)
new=$(mktemp "$auth/.new.XXXXXX")
trap 'rm -f "$new"' EXIT
err=$(cd "$root" && "$vigie" broker credentials --out "$auth" --simulator --secrets "$new" "${rotate[@]}" 2>&1 >/dev/null) \
  || { echo "$err" >&2; exit 1; }
devices_new=0
while IFS=: read -r user pw; do
  if [ "$user" = "$service_user" ]; then env_set VIGIE_MQTT_PASSWORD "$pw"
  elif [ "$user" = "$sim_user" ]; then env_set VIGIE_SIMULATOR_MQTT_PASSWORD "$pw"
  else
    (umask 077 && echo "$user:$pw" >> "$auth/new-credentials")
    devices_new=$((devices_new + 1))
  fi
done < "$new"
(umask 077 && for key in VIGIE_MQTT_USERNAME VIGIE_MQTT_PASSWORD VIGIE_SIMULATOR_MQTT_USERNAME \
    VIGIE_SIMULATOR_MQTT_PASSWORD; do echo "$key=$(env_get "$key")"; done > "$accounts.tmp")
mv "$accounts.tmp" "$accounts"
[ "$devices_new" -eq 0 ] || echo "new broker passwords of $devices_new gateway(s)/device(s) in $auth/new-credentials: provision them, then delete the file"

sed -e "s#^persistence_location .*#persistence_location $state/mosquitto/#" \
    -e "s#^log_dest stderr#log_dest file $state/mosquitto/mosquitto.log#" \
    -e "s#^listener 1883 127.0.0.1#listener $mq_port 127.0.0.1#" \
    -e "s#^password_file .*#password_file $auth/passwd#" \
    -e "s#^acl_file .*#acl_file $auth/acl#" \
    "$here/mosquitto/mosquitto.conf" > "$state/mosquitto/mosquitto.conf"
printf 'pid_file %s\nuser root\n' "$mq_pid" >> "$state/mosquitto/mosquitto.conf"
if ours_running "$mq_pid"; then
  kill -HUP "$(cat "$mq_pid")"  # reloads the configuration, password file and ACL
else
  mosquitto -d -c "$state/mosquitto/mosquitto.conf"
  echo "$mq_port" > "$mq_port_file"
fi

influx_port=${VIGIE_INFLUXDB_PORT:-8086}
if ! listening "$influx_port"; then
  sed -e "s#\${DATA_DIR}#$state/influxdb#g" -e "s#\${HTTP_PORT}#$influx_port#g" -e "s#\${RPC_PORT}#8088#g" \
      "$here/influxdb/influxdb.conf.template" > "$state/influxdb/influxdb.conf"
  nohup influxd -config "$state/influxdb/influxdb.conf" > "$state/influxdb/influxd.log" 2>&1 &
fi

for _ in $(seq 1 100); do
  if listening "$mq_port" && listening "$influx_port"; then
    env_set VIGIE_MQTT_URL "mqtt://127.0.0.1:$mq_port"
    # Two checkouts on one broker with the same client id would take the durable session from each
    # other every few seconds: each checkout gets its own, once.
    [ -n "$(env_get VIGIE_MQTT_CLIENT_ID)" ] || \
      env_set VIGIE_MQTT_CLIENT_ID "vigie-ingest-$(printf %s "$root" | sha1sum | cut -c1-8)"
    [ "$influx_port" = 8086 ] || env_set VIGIE_INFLUX_URL "http://127.0.0.1:$influx_port"
    echo "Mosquitto (project configuration, authentication on) on 127.0.0.1:$mq_port, InfluxDB on 127.0.0.1:$influx_port;" \
         "VIGIE_MQTT_URL and the service and simulator broker credentials in $env_file"
    exit 0
  fi
  sleep 0.2
done
echo "services did not start; see $state/*/*.log" >&2
exit 1
