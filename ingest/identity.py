"""Topic ↔ payload identity: a message may only carry readings of the device its topic belongs to.

The broker's ACL (``vigie broker credentials``, docs/security.md) lets each gateway or device
credential publish only on its own topics; this check binds the payload to the topic, so a
credential cannot speak for another device by putting a foreign id in a message on its own topic.

The last topic level names the claimed device (both formats: ``wmbusmeters/<id>`` or
``wmbusmeters/<topic_name>``, ``vigie/water/<gateway or meter id>``), resolved through the registry
(:meth:`~vigie.ingest.directory.MeterDirectory.topic_owner`):

- it names a **meter** (its id or its registered ``topic_name``): every reading must be that meter's;
- it names a **gateway**: every reading must be of a meter registered with that gateway;
- it names nothing registered: the topic makes no claim and the message passes (only a credential
  with a wildcard grant — the test ``simulator`` — can publish there under the shipped ACL).

Results per topic are cached until the directory's ``generation`` changes, so the per-message cost
is one dict lookup and one comparison per reading.
"""

from __future__ import annotations

from collections.abc import Sequence

from vigie.ingest.directory import MeterDirectory, TopicOwner
from vigie.records import MeterReading

#: Topics remembered at most; a fleet has one or two per meter. Beyond this the cache starts over.
MAX_TOPICS = 200_000


class TopicIdentityCheck:
    """Checks readings against the device their topic names. Not thread-safe: call it from one
    thread (the MQTT network thread)."""

    def __init__(self, directory: MeterDirectory) -> None:
        self.directory = directory
        self._owners: dict[str, TopicOwner | None] = {}
        self._generation = -1

    def mismatch(self, topic: str, readings: Sequence[MeterReading]) -> str | None:
        """None when every reading may be published on ``topic``; otherwise the reason, naming the
        topic, the device it belongs to and the ids claimed (ids are opaque, fine to log)."""
        directory = self.directory
        directory.refresh_if_stale()
        if directory.generation != self._generation or len(self._owners) >= MAX_TOPICS:
            self._owners.clear()
            self._generation = directory.generation
        try:
            owner = self._owners[topic]
        except KeyError:
            owner = self._owners[topic] = directory.topic_owner(topic.rpartition("/")[2])
        if owner is None:
            return None
        if owner.kind == "meter":
            for r in readings:  # the common case, one reading of the topic's own meter, in a plain loop
                if r.meter_id != owner.id:
                    break
            else:
                return None
            foreign = sorted({r.meter_id for r in readings if r.meter_id != owner.id})
        else:
            ids = {r.meter_id for r in readings}
            directory.unknown(ids)  # looks up meters registered since the last load
            foreign = sorted(i for i in ids if directory.gateway_of(i) != owner.id)
        if not foreign:
            return None
        shown = ", ".join(foreign[:10]) + (f" and {len(foreign) - 10} more" if len(foreign) > 10 else "")
        return f"topic {topic} belongs to {owner.kind} {owner.id}, payload claims meter {shown}"
