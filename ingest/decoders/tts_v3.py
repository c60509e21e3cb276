"""The Things Stack v3 (TTN, TTS Cloud / Enterprise / Open Source) uplink messages →
:class:`~vigie.records.MeterReading` or :class:`~vigie.records.HeatingReading`, by the registered
device type's family.

Source: TheThingsIndustries/lorawan-stack-docs (``integrations/data-formats``, ``integrations/mqtt``),
summarised in ``shared/reference/payload-formats.md`` §3. The MQTT server of The Things Stack
publishes ``v3/{application_id}[@{tenant_id}]/devices/{device_id}/up`` (MQTT 3.1.1, QoS 0 only); a
Mosquitto bridge forwards that topic to Vigie's broker unchanged (``ingest/README.md``, "Heating and LoRaWAN
network servers"). Empty fields (``""``, ``0``, ``false``) are omitted by the server, so every field
is optional to it.

=========================================== ===============================================
field                                        use
=========================================== ===============================================
``end_device_ids.dev_eui`` (upper-case hex)  the registry key (``lorawan.devices`` or a heating
                                             device's ``lorawan.dev_eui``), lower-cased
``end_device_ids.device_id``                 must be the topic's ``{device_id}`` (when the topic
                                             has the ``…/devices/{device_id}/up`` shape)
``uplink_message.decoded_payload``           mapped by the device type (:mod:`.lorawan`); absent
                                             when the application has no payload formatter
``uplink_message.received_at``, else         the reading's time when the mapping gives none
``received_at``                              (RFC 3339, nanoseconds)
``simulated: true``                          an uplink simulated from the console: ignored
everything else (``frm_payload``,            ignored
``rx_metadata``, ``settings``, ``f_cnt``…)
=========================================== ===============================================

Refusals (:class:`~vigie.ingest.decoders.DecodeError` kinds): ``not_utf8``, ``not_json``,
``not_object`` (the message, ``end_device_ids`` or ``uplink_message`` not an object), ``bad_id``
(DevEUI missing or not 16 hex digits), ``topic_mismatch`` (the payload's device id is not the
topic's: a message copied to another device's topic), ``unknown_device`` (DevEUI not registered),
``no_decoded_payload``, ``mapping_error``, ``bad_index``, ``bad_field``, ``bad_time``,
``future_time``.
"""

from __future__ import annotations

from datetime import datetime

from vigie.ingest.decoders import DecodeError, fields, lorawan, register
from vigie.records import HeatingReading, MeterReading


class TtsV3Decoder:
    """Decoder ``tts_v3``: one uplink → ``[MeterReading]``, ``[HeatingReading]`` or ``[]``
    (simulated uplink, a heating payload without any mapped field).

    ``device_for``: DevEUI → ``LorawanDeviceInfo`` (None: unknown); None makes the unbound decoder
    (the registered one), whose :meth:`decode` raises ``RuntimeError`` until :meth:`bind`.
    ``max_future_s``: a time later than reception by more than this is refused.
    """

    name = "tts_v3"
    yields = (MeterReading, HeatingReading)
    lookup = "lorawan_device"

    def __init__(self, device_for: lorawan.LorawanDeviceLookup | None = None, max_future_s: float = 300.0) -> None:
        self.device_for = device_for
        self.max_future_s = max_future_s

    def bind(self, device_for: lorawan.LorawanDeviceLookup, base_topic: str | None = None) -> "TtsV3Decoder":
        """This decoder for the registry's LoRaWAN devices (the topic filter's shape is free)."""
        return TtsV3Decoder(device_for, self.max_future_s)

    def decode(self, topic: str, payload: bytes, received_at: datetime) -> list[MeterReading | HeatingReading]:
        if self.device_for is None:
            raise RuntimeError("the tts_v3 decoder needs a device lookup: use bind(device_for, base_topic)")
        obj = fields.load_json(payload)
        if not isinstance(obj, dict):
            raise DecodeError(f"expected a JSON object, got {type(obj).__name__}", "not_object")
        if obj.get("simulated") is True:
            return []
        ids = lorawan.sub_object(obj, "end_device_ids")
        eui = lorawan.dev_eui(ids.get("dev_eui"), "end_device_ids.dev_eui")
        levels = topic.split("/")
        if len(levels) >= 3 and levels[-1] == "up" and levels[-3] == "devices" and ids.get("device_id") != levels[-2]:
            raise DecodeError(f"topic {topic} is device {levels[-2]!r}, the payload device "
                              f"{fields._short(ids.get('device_id'))}", "topic_mismatch")
        up = lorawan.sub_object(obj, "uplink_message")
        info = lorawan.device(self.device_for, eui)
        decoded = up.get("decoded_payload")
        if decoded is None:
            raise DecodeError(f"DevEUI {eui}: uplink_message has no decoded_payload (set a payload formatter "
                              "for the device or its application)", "no_decoded_payload")
        # The network server's reception (uplink_message), else the application server's.
        dated = up if up.get("received_at") is not None else obj
        server_time = fields.timestamp(dated, "received_at", received_at, self.max_future_s, naive_is_utc=False)
        return lorawan.readings(info, decoded, server_time, received_at, self.max_future_s, self.name)


register(TtsV3Decoder())
