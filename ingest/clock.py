"""The devices' clocks as the ingestor sees them: ``device_clock`` points (``vigie.store.heating``
schema: tags ``family``, ``device``; field ``offset_s`` = the record's time − its reception time;
timestamp = reception time, precision s, the writes' policy), read by the device-health pass.

The offset is that of the clock that dated the record: the device's own where the payload carries
it, else its gateway's (wmbusmeters ``timestamp``, zigbee2mqtt ``last_seen``, a LoRaWAN network
server's reception time when the device type maps no ``time``). A record dated at reception (no
time in the payload) says nothing of any clock and gives no point; neither does a retained message
(an old report) or a record more than :data:`STALE_S` behind reception (a backlog or a replay of
old data, not a clock). Queueing on the way (broker, gateway) makes an offset more negative, never
positive: the health check should judge a device by its offsets nearest zero.

A device gets a point at most once per :data:`INTERVAL_S` of reception time, or sooner when its
offset moved by more than :data:`MIN_CHANGE_S` since its last point — but never twice within
:data:`MIN_SPACING_S`, so a replay at full speed writes about one point per device per minute.
The per-record cost on the ingest path is one comparison, one subtraction and one dict lookup.

Not thread-safe: called from the MQTT network thread only. Points go through the spool with the
readings (:class:`~vigie.ingest.spool.SpooledPoint` ``source`` :data:`SOURCE`), but are counted
apart from them (``IngestStats.clock_points``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from operator import attrgetter

from vigie.ingest.spool import SpooledPoint
from vigie.store.heating import device_clock_line

#: ``SpooledPoint.source`` of device_clock points (the writer counts them apart).
SOURCE = "device_clock"
INTERVAL_S = 3600.0
MIN_CHANGE_S = 60.0
MIN_SPACING_S = 60.0
STALE_S = 86400.0
#: Devices remembered per family at most; beyond this the memory starts over (a point each again).
MAX_DEVICES = 500_000
_ID = {"water": attrgetter("meter_id"), "home": attrgetter("sensor_id"), "heating": attrgetter("device_id")}
_INTERVAL = timedelta(seconds=INTERVAL_S)
_SPACING = timedelta(seconds=MIN_SPACING_S)


class DeviceClocks:
    """Decides which records give a ``device_clock`` point, and makes it."""

    def __init__(self) -> None:
        # family → device → (reception time after which a point is due anyway, reception time
        # before which none is written, offset of the last point in s)
        self._last: dict[str, dict[str, tuple[datetime, datetime, float]]] = {f: {} for f in _ID}

    def points(self, family: str, records: Iterable, received_at: datetime) -> Sequence[SpooledPoint]:
        """The points due for ``records`` (each with ``time`` and the id attribute of ``family``:
        ``meter_id`` water, ``sensor_id`` home, ``device_id`` heating) received at ``received_at``."""
        out: list[SpooledPoint] | tuple = ()
        last = self._last[family]
        device_of = _ID[family]
        for r in records:
            t = r.time
            if t == received_at:
                continue
            offset = (t - received_at).total_seconds()
            device = device_of(r)
            seen = last.get(device)
            # The common case — a device seen within the hour, its clock steady — in comparisons only.
            if seen is not None and (received_at < seen[1] or (
                    received_at < seen[0] and -MIN_CHANGE_S <= offset - seen[2] <= MIN_CHANGE_S)):
                continue
            if offset < -STALE_S:
                continue
            if len(last) >= MAX_DEVICES:
                last.clear()
            last[device] = (received_at + _INTERVAL, received_at + _SPACING, offset)
            if not out:
                out = []
            out.append(SpooledPoint(device_clock_line(family, device, received_at, offset), device, SOURCE))
        return out
