"""Time-series store (InfluxDB v1 HTTP API) and the schema Vigie writes there."""

from vigie.store.influx import InfluxStore, StoreError, StoreRejected, StoreUnavailable

__all__ = ["InfluxStore", "StoreError", "StoreRejected", "StoreUnavailable"]
