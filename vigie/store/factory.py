"""Which time-series store a configuration gets, and the interface both stores share."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import pandas as pd

from vigie.store.influx import InfluxStore, RetentionPolicy


@runtime_checkable
class TimeSeriesStore(Protocol):
    """What Vigie's store modules, analytics, ingest and privacy use of a store: InfluxDB's v1
    interface (line protocol in, InfluxQL out). Implemented by
    :class:`~vigie.store.influx.InfluxStore` (an InfluxDB server) and
    :class:`~vigie.store.embedded.EmbeddedStore` (a SQLite file); errors are the
    :class:`~vigie.store.StoreError` subclasses."""

    database: str
    retention_policy: str | None
    policies: tuple[RetentionPolicy, ...]

    @property
    def location(self) -> str: ...

    def close(self) -> None: ...

    def ping(self) -> bool: ...

    def execute(self, statement: str) -> dict: ...

    def ensure_database(self, retention_duration: str = "INF") -> None: ...

    def retention_policies(self) -> dict[str, str]: ...

    def policy_for(self, purpose: str) -> str | None: ...

    def measurement(self, name: str, retention_policy: str | None = None) -> str: ...

    def write_lines(self, lines: Sequence[str] | str, precision: str = "s",
                    retention_policy: str | None = None) -> None: ...

    def query_csv(self, query: str, *, epoch: str = "s", chunk_size: int = 100_000,
                  dtypes: dict | None = None) -> pd.DataFrame: ...

    def query_json(self, query: str, *, epoch: str = "s") -> list[dict]: ...


def store_for(settings) -> TimeSeriesStore:
    """The store ``settings`` name (:attr:`~vigie.config.Settings.store_kind`): the InfluxDB server
    at ``influx_url``, or the embedded store in ``store_path``; same database name and retention
    policies either way. Nothing is opened or created until first used."""
    if settings.store_kind == "embedded":
        from vigie.store.embedded import EmbeddedStore

        return EmbeddedStore.from_settings(settings)
    return InfluxStore.from_settings(settings)
