"""The simulators' publisher on the secured broker: a refused message is an error, never a silent success."""

from datetime import datetime, timezone

import pytest

import services
from vigie.simulators.publish import PublishError, WmbusMessage, publish_messages


def test_a_message_the_acl_refuses_fails_the_publish(secured_mosquitto):
    broker, passwords = secured_mosquitto
    url = f"mqtt://127.0.0.1:{broker.port}"
    creds = {"username": services.SIMULATOR_USER, "password": passwords[services.SIMULATOR_USER]}
    now = datetime.now(timezone.utc)
    ok = publish_messages([WmbusMessage("wmbusmeters/sim-ok", b'{"id":"sim-ok"}', now)], url, **creds)
    assert ok == 1
    with pytest.raises(PublishError, match=r"refused 1 of 2 messages .*[Nn]ot authori"):
        publish_messages([WmbusMessage("wmbusmeters/sim-ok", b"{}", now),
                          WmbusMessage("elsewhere/x", b"{}", now)], url, **creds)
