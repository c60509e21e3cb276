"""Alert router tables (placeholder replaced by the alerts stage)."""
