"""Payload decoders: turn one MQTT message into :class:`~vigie.records.MeterReading` records.

Like Telegraf's parsers, each payload format lives in its own module and registers one decoder
object under a name; the ingestor's configuration pairs topic filters with those names
(``VIGIE_WATER_TOPICS``, e.g. ``wmbusmeters/#=wmbusmeters``). Formats and field mappings are in
``ingest/decoders/README.md``.

A decoder is any object with

- ``name: str`` — the registry key;
- ``decode(topic: str, payload: bytes, received_at: datetime) -> list[MeterReading]`` —
  ``received_at`` is the timezone-aware UTC time the message reached the ingestor (used when the
  payload carries no time of its own, and to refuse times in the future). An empty list means the
  message is a gateway status message, not a reading (counted, neither stored nor dead-lettered).
  Any payload that cannot be read raises :class:`DecodeError`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from vigie.records import MeterReading


class DecodeError(ValueError):
    """A payload that cannot be turned into readings.

    ``str(error)`` is the human reason (ids and offending values, never the whole payload);
    ``kind`` is a short stable code for counting (``not_json``, ``bad_index``, ``future_time``…).
    """

    def __init__(self, reason: str, kind: str = "invalid") -> None:
        super().__init__(reason)
        self.kind = kind


class Decoder(Protocol):
    name: str

    def decode(self, topic: str, payload: bytes, received_at: datetime) -> list[MeterReading]: ...


_REGISTRY: dict[str, Decoder] = {}


def register(decoder: Decoder) -> Decoder:
    """Add ``decoder`` under ``decoder.name`` (replacing any decoder of that name); returns it."""
    if not getattr(decoder, "name", None):
        raise ValueError("a decoder needs a non-empty name")
    _REGISTRY[decoder.name] = decoder
    return decoder


def get_decoder(name: str) -> Decoder:
    """The decoder registered as ``name``; :class:`KeyError` naming the known decoders otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"no decoder named {name!r}; known decoders: {', '.join(decoder_names())}") from None


def decoder_names() -> list[str]:
    """Registered decoder names, sorted."""
    return sorted(_REGISTRY)


# The built-in formats register themselves on import (after the names above exist).
from vigie.ingest.decoders import native, wmbusmeters  # noqa: E402,F401
