"""Lifecycle messages read into typed facts; odd payloads tolerated and reported."""

from __future__ import annotations

from jobrunner.device.lifecycle import ConnectionStatus, DeviceFacts, read_lifecycle
from jobrunner.device.model import AnomalyKind
from jobrunner.device.payload import KuraPayload, Metric, Position, ProtobufCodec
from jobrunner.device.topics import Lifecycle, LifecycleTopic

BIRTH = {
    "uptime": "3593060",
    "display_name": "Line 3 gateway A",
    "model_name": "ReliaGATE 10-20",
    "model_id": "rg1020",
    "serial_number": "SN-1",
    "firmware_version": "fw.v42",
    "kura_version": "KURA_5.4.0",
    "application_framework": "Kura",
    "application_framework_version": "5.4.0",
    "os": "Linux",
    "os_version": "6.1",
    "jvm_version": "17",
    "connection_ip": "10.0.0.7",
    "connection_interface": "eth0 (00:11:22:33:44:55)",
    "payload_encoding": "KURA_PROTOBUF",
    "accept_encoding": "gzip",
    "application_ids": "CMD-V1,DEPLOY-V2, CONF-V1,,ASSET-V1,CMD-V1",
}


def topic(kind: Lifecycle, device: str = "gw-1") -> LifecycleTopic:
    return LifecycleTopic("acme", device, kind)


def test_a_birth_gives_the_device_facts() -> None:
    payload = KuraPayload.of(
        {name: Metric.string(value) for name, value in BIRTH.items()}, timestamp=1700000000000
    )
    payload.position = Position(45.5, 12.2, 10.0)
    event = read_lifecycle(
        topic(Lifecycle.BIRTH), ProtobufCodec().decode(ProtobufCodec().encode(payload))
    )

    assert (event.device, event.kind, event.status) == (
        ("acme", "gw-1"),
        Lifecycle.BIRTH,
        ConnectionStatus.CONNECTED,
    )
    assert event.timestamp == 1700000000000
    assert event.anomalies == ()
    facts = event.facts
    assert facts is not None
    assert facts.application_ids == ("CMD-V1", "DEPLOY-V2", "CONF-V1", "ASSET-V1")
    assert (facts.display_name, facts.model, facts.firmware_version) == (
        "Line 3 gateway A",
        "ReliaGATE 10-20",
        "fw.v42",
    )
    assert (facts.framework_version, facts.uptime_ms, facts.connection_ip) == (
        "KURA_5.4.0",
        3593060,
        "10.0.0.7",
    )
    assert facts.position == Position(45.5, 12.2, 10.0)


def test_birth_metrics_of_other_types_are_read_as_text_with_an_anomaly() -> None:
    payload = KuraPayload.of(
        {
            "uptime": Metric.int64(12),
            "display_name": Metric.string("gw"),
            "application_ids": Metric.raw(b"CMD-V1"),
            "firmware_version": Metric.boolean(True),
        }
    )
    event = read_lifecycle(topic(Lifecycle.BIRTH), payload)
    assert event.facts is not None
    assert (event.facts.uptime_ms, event.facts.application_ids, event.facts.firmware_version) == (
        12,
        ("CMD-V1",),
        "true",
    )
    assert [a.kind for a in event.anomalies] == [AnomalyKind.BAD_METRIC] * 3
    assert all(a.device == ("acme", "gw-1") for a in event.anomalies)
    assert all(a.topic == "$EDC/acme/gw-1/MQTT/BIRTH" for a in event.anomalies)
    assert "metric 'uptime' is INT64; Kura sends STRING" in event.anomalies[-1].message


def test_a_birth_with_a_bad_uptime_or_no_metrics_still_counts() -> None:
    event = read_lifecycle(topic(Lifecycle.BIRTH), KuraPayload.of({"uptime": Metric.string("x")}))
    assert event.facts == DeviceFacts()
    assert event.anomalies[0].message.startswith("BIRTH metric 'uptime' is 'x'")
    empty = read_lifecycle(topic(Lifecycle.BIRTH), KuraPayload())
    assert empty.facts == DeviceFacts() and empty.facts.application_ids is None
    assert empty.status is ConnectionStatus.CONNECTED


def test_apps_updates_the_application_ids() -> None:
    payload = KuraPayload.of({"application_ids": Metric.string("CMD-V1")})
    event = read_lifecycle(topic(Lifecycle.APPS), payload)
    assert event.status is ConnectionStatus.CONNECTED
    assert event.facts is not None and event.facts.application_ids == ("CMD-V1",)


def test_dc_and_lwt() -> None:
    dc = read_lifecycle(
        topic(Lifecycle.DC), KuraPayload.of({"uptime": Metric.string("5")}, timestamp=9)
    )
    assert (dc.status, dc.facts, dc.timestamp) == (ConnectionStatus.DISCONNECTED, None, 9)
    lwt = read_lifecycle(topic(Lifecycle.LWT), KuraPayload(body=b"offline"))
    assert (lwt.status, lwt.facts, lwt.anomalies) == (ConnectionStatus.MISSING, None, ())
