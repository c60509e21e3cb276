"""Time-series store (InfluxDB v1 HTTP API, or the embedded SQLite store that answers as it does) and
the schema Vigie writes there."""

from vigie.store.influx import InfluxStore, StoreError, StoreRejected, StoreUnavailable
from vigie.store.factory import TimeSeriesStore, store_for

__all__ = ["InfluxStore", "StoreError", "StoreRejected", "StoreUnavailable", "TimeSeriesStore", "store_for"]
