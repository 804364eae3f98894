"""Message routing without a broker: the cases a broker would not relay."""

from __future__ import annotations

import paho.mqtt.client as mqtt

from jobrunner.device.correlation import PendingTable
from jobrunner.device.inbound import Inbound
from jobrunner.device.model import AnomalyKind, PayloadCodec, Tracked
from jobrunner.device.payload import ProtobufCodec
from tests.device.conftest import Recorder, Responder


def inbound(recorder: Recorder) -> Inbound[str]:
    table: PendingTable[str] = PendingTable(10)
    codecs: dict[str, PayloadCodec] = {"acme": ProtobufCodec()}
    tracked: dict[tuple[str, int], Tracked[str]] = {}
    return Inbound("runner", recorder, table, codecs, tracked)


def message(topic: bytes, payload: bytes = b"") -> mqtt.MQTTMessage:
    received = mqtt.MQTTMessage(topic=topic)
    received.payload = payload
    return received


def test_a_message_of_an_account_not_served_is_an_anomaly() -> None:
    recorder = Recorder()
    inbound(recorder).handle(message(b"$EDC/other/runner/CMD-V1/REPLY/1", Responder.ok()))
    [anomaly] = recorder.anomalies
    assert anomaly.kind is AnomalyKind.UNKNOWN_ACCOUNT
    assert anomaly.topic == "$EDC/other/runner/CMD-V1/REPLY/1"
    assert "does not serve" in anomaly.message


def test_a_topic_that_is_not_utf8_is_an_anomaly() -> None:
    recorder = Recorder()
    inbound(recorder).handle(message(b"$EDC/acme/\xff/MQTT/BIRTH"))
    [anomaly] = recorder.anomalies
    assert anomaly.kind is AnomalyKind.BAD_TOPIC
    assert "not UTF-8" in anomaly.message
