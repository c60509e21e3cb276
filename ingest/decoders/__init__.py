"""Payload decoders: turn one MQTT message into records — :class:`~vigie.records.MeterReading`
(water meters) or :class:`~vigie.records.SensorEvent` (assisted-living home sensors).

Like Telegraf's parsers, each payload format lives in its own module and registers one decoder
object under a name; the ingestor's configuration pairs topic filters with those names
(``VIGIE_WATER_TOPICS``, e.g. ``wmbusmeters/#=wmbusmeters``; ``VIGIE_HOME_TOPICS``, e.g.
``zigbee2mqtt/#=zigbee2mqtt``). Formats and field mappings are in ``ingest/decoders/README.md``.

A decoder is any object with

- ``name: str`` — the registry key;
- ``yields: type`` — the record type it makes, :data:`RECORD_TYPES` (optional: a decoder without
  it yields ``MeterReading``; :func:`record_type` reads it). The ingestor stores each type its own
  way (``ingest/README.md``);
- ``decode(topic: str, payload: bytes, received_at: datetime)`` — ``received_at`` is the
  timezone-aware UTC time the message reached the ingestor (used when the payload carries no time
  of its own, and to refuse times in the future). A ``MeterReading`` decoder returns
  ``list[MeterReading]``; a ``SensorEvent`` decoder returns ``list[SensorEvent]`` or one
  :class:`~vigie.ingest.decoders.zigbee2mqtt.DeviceAvailability`. An empty list means a status
  message, not a reading (counted, neither stored nor dead-lettered). Any payload that cannot be
  read raises :class:`DecodeError`.
- a ``SensorEvent`` decoder also has ``bind(sensor_for, base_topic) -> decoder``: the same
  format bound to the registry's sensors (friendly name → ``SensorInfo``) and to the base topic of
  the filter it serves; the registered object is unbound (its ``decode`` raises ``RuntimeError``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from vigie.records import MeterReading, SensorEvent

#: The record types a decoder may yield.
RECORD_TYPES = (MeterReading, SensorEvent)


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
    yields: type

    def decode(self, topic: str, payload: bytes, received_at: datetime) -> list | object: ...


def record_type(decoder: Decoder) -> type:
    """The record type ``decoder`` yields (``MeterReading`` when it does not say)."""
    return getattr(decoder, "yields", MeterReading)


_REGISTRY: dict[str, Decoder] = {}


def register(decoder: Decoder) -> Decoder:
    """Add ``decoder`` under ``decoder.name`` (replacing any decoder of that name); returns it."""
    if not getattr(decoder, "name", None):
        raise ValueError("a decoder needs a non-empty name")
    if record_type(decoder) not in RECORD_TYPES:
        raise ValueError(f"decoder {decoder.name}: yields must be one of "
                         f"{', '.join(t.__name__ for t in RECORD_TYPES)}")
    if record_type(decoder) is SensorEvent and not callable(getattr(decoder, "bind", None)):
        raise ValueError(f"decoder {decoder.name}: a SensorEvent decoder needs bind(sensor_for, base_topic)")
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
from vigie.ingest.decoders import native, wmbusmeters, zigbee2mqtt  # noqa: E402,F401
