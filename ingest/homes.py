"""The assisted-living side of the ingestor: what a ``SensorEvent`` decoder (zigbee2mqtt) yields,
as spool points.

- :class:`SensorIndex` is the registry lookup the decoder is bound to (friendly name →
  :class:`~vigie.ingest.decoders.zigbee2mqtt.SensorInfo`, by :class:`vigie.sensors.SensorDirectory`);
  it remembers the sensors it handed out by id, so an event's home is the one the registry gave
  for the very message that produced it.
- :class:`HomePoints` turns a decoded message into points: each
  :class:`~vigie.records.SensorEvent` as its ``home_event`` line, a
  :class:`~vigie.ingest.decoders.zigbee2mqtt.DeviceAvailability` as its ``sensor_availability``
  line only when it changes the device's last spooled availability (zigbee2mqtt retains
  availability messages, so every new subscription receives them again). Both go to the events
  retention policy at precision ms (schema: :mod:`vigie.store.homes`, ``docs/schema.md``).

Not thread-safe: called from the MQTT network thread only, in arrival order, so the availability
held here is the one the spool will hold once the group is committed.
"""

from __future__ import annotations

from vigie.ingest.decoders.zigbee2mqtt import DeviceAvailability, SensorInfo, SensorLookup
from vigie.ingest.spool import SpooledPoint
from vigie.records import SensorEvent
from vigie.store.homes import EVENTS_PURPOSE, PRECISION, availability_line, event_line


class SensorIndex:
    """``sensor_for`` (a :class:`SensorLookup`) that remembers each sensor it found, by sensor id.
    Raises what ``sensor_for`` raises (``vigie.sensors.RegistryUnavailable``)."""

    def __init__(self, sensor_for: SensorLookup) -> None:
        self._sensor_for = sensor_for
        self._by_id: dict[str, SensorInfo] = {}

    def __call__(self, friendly_name: str) -> SensorInfo | None:
        info = self._sensor_for(friendly_name)
        if info is not None:
            self._by_id[info.sensor_id] = info
        return info

    def home_of(self, sensor_id: str) -> str:
        """The home of a sensor this index returned (KeyError for one it never did)."""
        return self._by_id[sensor_id].home_id


class HomePoints:
    """Decoded zigbee2mqtt messages → spool points. ``last_online``: device id → the last
    availability spooled (:meth:`vigie.ingest.spool.Spool.availability`), updated here."""

    def __init__(self, index: SensorIndex, last_online: dict[str, bool]) -> None:
        self.index = index
        self.last_online = last_online

    def points(self, decoded: list[SensorEvent] | DeviceAvailability) -> tuple[list[SpooledPoint], dict[str, bool]]:
        """The points of one message and the availability it changes (device id → online; empty
        when it changes none). Raises ValueError for an event that cannot be a line (a value that
        is not a finite number), KeyError for an event of a sensor the index did not look up."""
        if isinstance(decoded, DeviceAvailability):
            if self.last_online.get(decoded.device_id) == decoded.online:
                return [], {}
            self.last_online[decoded.device_id] = decoded.online
            return ([SpooledPoint(availability_line(decoded), decoded.device_id, decoded.source, EVENTS_PURPOSE,
                                  PRECISION)], {decoded.device_id: decoded.online})
        return [SpooledPoint(event_line(e, self.index.home_of(e.sensor_id)), e.sensor_id, e.source, EVENTS_PURPOSE,
                             PRECISION) for e in decoded], {}
