"""The test brokers relay Kura's $EDC topics, and can be restarted."""

from __future__ import annotations

import threading

import paho.mqtt.client as mqtt
import pytest

from jobrunner.simulator.broker import find_mosquitto, start_broker

KINDS = ["embedded"] + (["mosquitto"] if find_mosquitto() else [])


@pytest.mark.parametrize("kind", KINDS)
def test_broker_relays_edc_topics_and_survives_a_restart(kind: str) -> None:
    with start_broker(kind) as broker:  # type: ignore[arg-type]
        for _ in range(2):
            received = threading.Event()
            client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"probe-{kind}")
            client.on_message = lambda c, u, m: received.set()
            client.connect(broker.host, broker.port)
            client.loop_start()
            subscribed = threading.Event()
            client.on_subscribe = lambda *a: subscribed.set()
            client.subscribe("$EDC/acme/+/MQTT/+")
            assert subscribed.wait(5)
            client.publish("$EDC/acme/gw-1/MQTT/BIRTH", b"")
            assert received.wait(5), f"{kind} did not relay a $EDC message"
            client.loop_stop()
            client.disconnect()
            broker.restart()
