"""Ingest stage: MQTT messages → meter readings → durable spool → InfluxDB (see ingest/README.md)."""
