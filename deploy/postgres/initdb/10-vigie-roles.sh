#!/bin/sh
# Run once by the postgres image on its first start (empty data volume), as the superuser, from
# /docker-entrypoint-initdb.d (docker-compose.yml). Creates Vigie's role, owner of its database
# (its migrations create the tables as it: no superuser rights), and Grafana's read-only role, which
# may connect and is granted SELECT on three tables once they exist (grafana-grants.sql, run by the
# grafana-grants one-shot). Nobody else may connect. Passwords come from the container's environment
# (.env); names default to vigie / vigie / grafana.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "${POSTGRES_DB:-$POSTGRES_USER}" \
     -v vigie_role="${POSTGRES_VIGIE_USER:-vigie}" -v vigie_pw="$POSTGRES_VIGIE_PASSWORD" \
     -v vigie_db="${POSTGRES_VIGIE_DB:-vigie}" \
     -v grafana_role="${GRAFANA_DB_USER:-grafana}" -v grafana_pw="$GRAFANA_DB_PASSWORD" <<'SQL'
CREATE ROLE :"vigie_role" LOGIN PASSWORD :'vigie_pw';
CREATE DATABASE :"vigie_db" OWNER :"vigie_role";
REVOKE CONNECT, TEMPORARY ON DATABASE :"vigie_db" FROM PUBLIC;
CREATE ROLE :"grafana_role" LOGIN PASSWORD :'grafana_pw';
GRANT CONNECT ON DATABASE :"vigie_db" TO :"grafana_role";
SQL
