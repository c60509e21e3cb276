-- Grafana's read-only role (grafana/provisioning/datasources/vigie-postgres.yaml) reads the state of
-- assisted-living alerts, their escalation steps and the facility findings: ids, kinds, times and
-- levels. Never persons, households, contacts, API keys or the audit log.
-- Run as Vigie's role, which owns the tables, after its migrations created them (the grafana-grants
-- one-shot of docker-compose.yml, on every `up`, once Vigie is healthy):
--   psql -v ON_ERROR_STOP=1 -v grafana_role=grafana -h postgres -U vigie -d vigie -f grafana-grants.sql
GRANT USAGE ON SCHEMA public TO :"grafana_role";
GRANT SELECT ON home_alerts, home_alert_steps, facility_findings TO :"grafana_role";
