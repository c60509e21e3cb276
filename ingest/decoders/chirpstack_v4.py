"""ChirpStack v4 uplink events (MQTT integration, JSON) → :class:`~vigie.records.MeterReading` or
:class:`~vigie.records.HeatingReading`, by the registered device type's family.

Source: chirpstack/chirpstack (``api/proto/integration/integration.proto`` ``UplinkEvent``,
``chirpstack/src/integration/mqtt.rs``) and chirpstack-docs (``integrations/events.md``), summarised
in ``shared/reference/payload-formats.md`` §3. The integration publishes (QoS 0 by default, JSON by
default: the protobuf JSON mapping, camelCase) on
``application/{application_id}/device/{dev_eui}/event/up`` (template configurable) of the broker
it is given, Vigie's: it needs a broker credential allowed on that topic (``ingest/README.md``,
"Heating and LoRaWAN network servers").

=========================== ================================================================
field                        use
=========================== ================================================================
``deviceInfo.devEui``        the registry key (lower-case hex); must be the topic's
                             ``{dev_eui}`` (when the topic has the ``…/device/{dev_eui}/event/up``
                             shape)
``object``                   the device-profile codec's output, mapped by the device type
                             (:mod:`.lorawan`); absent when the profile has no codec (or the codec
                             failed: ChirpStack then publishes a ``log`` event)
``time``                     the reading's time when the mapping gives none (RFC 3339 with
                             ``+00:00``, nanoseconds)
everything else              ignored (``deduplicationId``, ``data``, ``rxInfo``, ``txInfo``, ``fCnt``…)
=========================== ================================================================

Refusals (:class:`~vigie.ingest.decoders.DecodeError` kinds): ``not_utf8``, ``not_json``,
``not_object`` (the message or ``deviceInfo`` not an object), ``bad_id``, ``topic_mismatch``,
``unknown_device``, ``no_decoded_payload``, ``mapping_error``, ``bad_index``, ``bad_field``,
``bad_time``, ``future_time``.
"""

from __future__ import annotations

from datetime import datetime

from vigie.ingest.decoders import DecodeError, fields, lorawan, register
from vigie.records import HeatingReading, MeterReading


class ChirpstackV4Decoder:
    """Decoder ``chirpstack_v4``: one uplink event → ``[MeterReading]``, ``[HeatingReading]`` or
    ``[]`` (a heating payload without any mapped field).

    ``device_for``: DevEUI → ``LorawanDeviceInfo`` (None: unknown); None makes the unbound decoder
    (the registered one), whose :meth:`decode` raises ``RuntimeError`` until :meth:`bind`.
    ``max_future_s``: a time later than reception by more than this is refused.
    """

    name = "chirpstack_v4"
    yields = (MeterReading, HeatingReading)
    lookup = "lorawan_device"

    def __init__(self, device_for: lorawan.LorawanDeviceLookup | None = None, max_future_s: float = 300.0) -> None:
        self.device_for = device_for
        self.max_future_s = max_future_s

    def bind(self, device_for: lorawan.LorawanDeviceLookup, base_topic: str | None = None) -> "ChirpstackV4Decoder":
        """This decoder for the registry's LoRaWAN devices (the topic filter's shape is free)."""
        return ChirpstackV4Decoder(device_for, self.max_future_s)

    def decode(self, topic: str, payload: bytes, received_at: datetime) -> list[MeterReading | HeatingReading]:
        if self.device_for is None:
            raise RuntimeError("the chirpstack_v4 decoder needs a device lookup: use bind(device_for, base_topic)")
        obj = fields.load_json(payload)
        if not isinstance(obj, dict):
            raise DecodeError(f"expected a JSON object, got {type(obj).__name__}", "not_object")
        eui = lorawan.dev_eui(lorawan.sub_object(obj, "deviceInfo").get("devEui"), "deviceInfo.devEui")
        levels = topic.split("/")
        if (len(levels) >= 4 and levels[-1] == "up" and levels[-2] == "event" and levels[-4] == "device"
                and levels[-3].lower() != eui):
            raise DecodeError(f"topic {topic} is device {levels[-3]!r}, the payload DevEUI {eui}", "topic_mismatch")
        info = lorawan.device(self.device_for, eui)
        decoded = obj.get("object")
        if decoded is None:
            raise DecodeError(f"DevEUI {eui}: the event has no object (give the device profile a codec)",
                              "no_decoded_payload")
        server_time = fields.timestamp(obj, "time", received_at, self.max_future_s, naive_is_utc=False)
        return lorawan.readings(info, decoded, server_time, received_at, self.max_future_s, self.name)


register(ChirpstackV4Decoder())
