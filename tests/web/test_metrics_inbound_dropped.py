"""A message the runner drops unread (too many waiting to be read) is counted by lane."""

from __future__ import annotations

import paho.mqtt.client as mqtt
from prometheus_client import CollectorRegistry, generate_latest

from jobrunner.device import BrokerSettings
from jobrunner.engine.link.events import Inbox
from jobrunner.engine.link.mqtt import ClientLink
from jobrunner.web.metrics import EngineMetrics


def received(topic: str) -> mqtt.MQTTMessage:
    message = mqtt.MQTTMessage(mid=1, topic=topic.encode())
    message.payload = b""
    return message


def test_a_message_dropped_unread_is_counted_in_the_metrics_by_lane() -> None:
    registry = CollectorRegistry()
    link = ClientLink(
        BrokerSettings.from_url("mqtt://127.0.0.1:1", client_id="runner"),
        Inbox(),
        max_in_flight=10,
        observer=EngineMetrics(registry),
    )
    link.client._handover.max_waiting = 1  # the reader is not started: what comes waits
    for device in ("gw-1", "gw-2", "gw-3"):
        link.client._handover.put(received(f"$EDC/acme/{device}/MQTT/BIRTH"))
    link.client._handover.put(received("$EDC/acme/runner/CMD-V1/REPLY/1"))

    text = generate_latest(registry).decode()
    assert 'jobrunner_inbound_dropped_total{lane="lifecycle"} 2.0' in text
    assert 'jobrunner_inbound_dropped_total{lane="replies"} 1.0' in text
