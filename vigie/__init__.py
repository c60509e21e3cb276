"""Vigie: telemetry and alerting for municipalities."""
