"""The town-hall heating side of the ingestor: the registry lookups the ``zigbee2mqtt_heating`` and
LoRaWAN decoders are bound to, and their ``HeatingReading`` records as spool points.

- :class:`HeatingIndex` wraps :class:`vigie.heating_registry.HeatingDirectory`
  (``by_friendly_name``, ``by_dev_eui``) and remembers the heating device of each answer by its
  id, so a reading's building, room and kind are the ones the registry gave for the very message
  that produced it.
- :meth:`HeatingIndex.point` turns a reading into its ``heating`` line
  (:func:`vigie.store.heating.heating_line`: the writes' policy, precision s).

Not thread-safe: called from the MQTT network thread only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vigie.ingest.spool import SpooledPoint
from vigie.records import HeatingReading
from vigie.store.heating import heating_line

if TYPE_CHECKING:
    from vigie.heating_registry import HeatingDeviceInfo, HeatingDirectory, LorawanDeviceInfo


class HeatingIndex:
    """The decoders' lookups over ``directory``; each raises what the directory raises
    (``vigie.sensors.RegistryUnavailable`` before the registry was ever read)."""

    def __init__(self, directory: "HeatingDirectory") -> None:
        self.directory = directory
        self._by_id: dict[str, HeatingDeviceInfo] = {}

    def by_friendly_name(self, name: str) -> "HeatingDeviceInfo | None":
        info = self.directory.by_friendly_name(name)
        if info is not None:
            self._by_id[info.device_id] = info
        return info

    def by_dev_eui(self, dev_eui: str) -> "LorawanDeviceInfo | None":
        info = self.directory.by_dev_eui(dev_eui)
        if info is not None and info.device is not None:
            self._by_id[info.device.device_id] = info.device
        return info

    def point(self, reading: HeatingReading) -> SpooledPoint:
        """``reading`` as its spool point. Raises KeyError for a device this index never returned
        (a decoder bug), ValueError as :func:`heating_line` (a reading without any field)."""
        line = heating_line(reading, self._by_id[reading.device_id])
        return SpooledPoint(line, reading.device_id, reading.source)
