"""The test brokers relay Kura's $EDC topics, and can be restarted."""

from __future__ import annotations

import threading

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from jobrunner.simulator.broker import RunningBroker, find_mosquitto, start_broker

pytestmark = pytest.mark.integration

KINDS = ["embedded"] + (["mosquitto"] if find_mosquitto() else [])


def relays_edc_topics(broker: RunningBroker, client_id: str) -> bool:
    received = threading.Event()
    subscribed = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    client.on_message = lambda *_: received.set()
    client.on_subscribe = lambda *_: subscribed.set()
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        client.subscribe("$EDC/acme/+/MQTT/+")
        assert subscribed.wait(5)
        client.publish("$EDC/acme/gw-1/MQTT/BIRTH", b"")
        return received.wait(5)
    finally:
        client.loop_stop()
        client.disconnect()


@pytest.mark.parametrize("kind", KINDS)
def test_broker_relays_edc_topics_and_survives_a_restart(kind: str) -> None:
    with start_broker(kind) as broker:  # type: ignore[arg-type]
        assert relays_edc_topics(broker, f"probe-{kind}-1"), f"{kind} did not relay $EDC"
        broker.restart()
        assert relays_edc_topics(broker, f"probe-{kind}-2"), f"{kind} lost $EDC on restart"
