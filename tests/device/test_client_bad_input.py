"""Whatever devices send, the client reports it with device and topic, and carries on.

Each case ends with proof that other requests were not disturbed: a request sent before the
bad message, still pending, gets its reply afterwards.
"""

from __future__ import annotations

import gzip
from types import SimpleNamespace

import pytest

from jobrunner.device.client import DeviceClient
from jobrunner.device.correlation import PendingTable
from jobrunner.device.inbound import Inbound
from jobrunner.device.model import AnomalyKind, Request
from jobrunner.device.payload import MAX_DECOMPRESSED_BYTES, KuraPayload, Metric
from jobrunner.device.topics import Lifecycle
from tests.device.conftest import CODEC, Recorder, Responder

pytestmark = pytest.mark.integration

PING = Request("CMD-V1", "EXEC", ("command",), {"command.command": Metric.string("true")})
DOWNLOAD = Request(
    "DEPLOY-V2", "EXEC", ("download",), {"job.id": Metric.int64(77)}, operation_id=77
)
NOT_PROTOBUF = b"\xff\xff\xff\xff not a KuraPayload"
TRUNCATED = CODEC.encode(KuraPayload.of({"response.code": Metric.int32(200)}, body=b"x" * 50))[:-9]
GZIP_BOMB = gzip.compress(b"\0" * (MAX_DECOMPRESSED_BYTES + 1024))


@pytest.fixture
def holding(responder: Responder) -> Responder:
    responder.behaviour = Responder.hold
    return responder


def _still_works(
    client: DeviceClient[str], holding: Responder, recorder: Recorder, rid: str
) -> None:
    """The held reply to `rid` (sent before the bad message) is still taken."""
    holding.release()
    recorder.reply_for(rid)
    assert client.in_flight == 0


@pytest.mark.parametrize(
    ("data", "says"),
    [(NOT_PROTOBUF, "not a KuraPayload"), (TRUNCATED, "protobuf"), (GZIP_BOMB, "refused")],
    ids=["not-protobuf", "truncated", "gzip-bomb"],
)
def test_an_unreadable_reply_is_an_anomaly_and_the_request_still_waits(
    client: DeviceClient[str],
    holding: Responder,
    recorder: Recorder,
    account: str,
    data: bytes,
    says: str,
) -> None:
    request_id = client.send((account, "gw-1"), PING, "t")
    holding.wait_held(1)
    topic = f"$EDC/{account}/{client.client_id}/CMD-V1/REPLY/{request_id}"
    holding.publish(topic, data)

    anomaly = recorder.anomaly_of(AnomalyKind.UNDECODABLE, request_id)
    assert says in anomaly.message
    assert (anomaly.topic, anomaly.device) == (topic, (account, "gw-1"))
    assert "still waiting" in anomaly.message
    assert recorder.replies == []
    _still_works(client, holding, recorder, request_id)


@pytest.mark.parametrize(
    ("suffix", "says"),
    [
        ("{me}//REPLY/abc", "segment 3"),
        ("{me}/CMD-V1/REPLY/", "segment 5"),
        ("{me}/DEPLOY-V2/NOTIFY/gw-1", "NOTIFY/{device}/{resource}"),
        ("/MQTT/BIRTH", "segment 2"),
        ("gw-1/MQTT/HELLO", "unknown lifecycle"),
    ],
    ids=[
        "empty-app",
        "empty-request-id",
        "notify-without-resource",
        "no-device",
        "bad-kind",
    ],
)
def test_a_topic_with_missing_segments_is_an_anomaly(
    client: DeviceClient[str],
    holding: Responder,
    recorder: Recorder,
    account: str,
    suffix: str,
    says: str,
) -> None:
    request_id = client.send((account, "gw-1"), PING, "t")
    holding.wait_held(1)
    topic = f"$EDC/{account}/" + suffix.format(me=client.client_id)
    holding.publish(topic, Responder.ok())

    anomaly = recorder.anomaly_of(AnomalyKind.BAD_TOPIC)
    assert anomaly.topic == topic
    assert says in anomaly.message
    assert "expected $EDC/" in anomaly.message
    _still_works(client, holding, recorder, request_id)


def _notify(
    account: str, client: DeviceClient[str], device: str, resource: str = "download"
) -> str:
    return f"$EDC/{account}/{client.client_id}/DEPLOY-V2/NOTIFY/{device}/{resource}"


def _notification(job: Metric | None, device: str = "gw-1", **metrics: Metric) -> bytes:
    return CODEC.encode(
        KuraPayload.of(
            {
                "client.id": Metric.string(device),
                "job.id": job,
                "dp.download.status": Metric.string("IN_PROGRESS"),
                **metrics,
            }
        )
    )


def test_notifications_of_a_tracked_operation_reach_the_handler(
    client: DeviceClient[str], responder: Responder, recorder: Recorder, account: str
) -> None:
    request_id = client.send((account, "gw-1"), DOWNLOAD, "dl")
    recorder.reply_for(request_id)
    responder.publish(_notify(account, client, "gw-1"), _notification(Metric.int64(77)))

    recorder.wait(lambda: len(recorder.notifications) == 1, "the notification")
    tracked, topic, payload = recorder.notifications[0]
    assert (tracked.tag, tracked.operation_id, tracked.device) == ("dl", 77, (account, "gw-1"))
    assert (topic.device, topic.resources, topic.requester) == (
        "gw-1",
        ("download",),
        client.client_id,
    )
    assert payload.string("dp.download.status") == "IN_PROGRESS"
    assert client.untrack(account, 77)
    responder.publish(_notify(account, client, "gw-1"), _notification(Metric.int64(77)))
    recorder.anomaly_of(AnomalyKind.UNKNOWN_OPERATION, "operation 77")


@pytest.mark.parametrize(
    ("device", "data", "kind", "says"),
    [
        ("gw-1", _notification(Metric.int64(999)), AnomalyKind.UNKNOWN_OPERATION, "operation 999"),
        (
            "gw-1",
            _notification(Metric.int64(77), device="gw-2"),
            AnomalyKind.WRONG_SENDER,
            "'gw-2'",
        ),
        (
            "gw-2",
            _notification(Metric.int64(77), device="gw-2"),
            AnomalyKind.WRONG_SENDER,
            "went to",
        ),
        ("gw-1", _notification(Metric.string("77")), AnomalyKind.BAD_METRIC, "type STRING"),
        ("gw-1", _notification(None), AnomalyKind.BAD_METRIC, "no job.id"),
        ("gw-1", NOT_PROTOBUF, AnomalyKind.UNDECODABLE, "not a readable"),
        ("gw-1", GZIP_BOMB, AnomalyKind.UNDECODABLE, "refused"),
    ],
    ids=[
        "unknown-operation",
        "client-id-differs-from-topic",
        "other-device",
        "job-id-not-integer",
        "no-job-id",
        "not-protobuf",
        "gzip-bomb",
    ],
)
def test_a_bad_notification_is_an_anomaly_naming_device_and_topic(
    client: DeviceClient[str],
    responder: Responder,
    recorder: Recorder,
    account: str,
    device: str,
    data: bytes,
    kind: AnomalyKind,
    says: str,
) -> None:
    recorder.reply_for(client.send((account, "gw-1"), DOWNLOAD, "dl"))
    responder.behaviour = Responder.hold
    waiting = client.send((account, "gw-3"), PING, "t")
    responder.wait_held(1)
    topic = _notify(account, client, device)
    responder.publish(topic, data)

    anomaly = recorder.anomaly_of(kind, says)
    assert (anomaly.topic, anomaly.device) == (topic, (account, device))
    assert recorder.notifications == []
    _still_works(client, responder, recorder, waiting)


def test_lifecycle_messages_are_delivered_and_garbage_births_are_anomalies_not_devices(
    client: DeviceClient[str], responder: Responder, recorder: Recorder, account: str
) -> None:
    birth = KuraPayload.of({"display_name": Metric.string("Line 3"), "uptime": Metric.string("9")})
    responder.publish(f"$EDC/{account}/gw-2/MQTT/BIRTH", NOT_PROTOBUF, qos=1)
    responder.publish(f"$EDC/{account}/gw-3/MQTT/DC", NOT_PROTOBUF, qos=1)
    responder.publish(f"$EDC/{account}/gw-1/MQTT/BIRTH", CODEC.encode(birth), qos=1)
    responder.publish(f"$EDC/{account}/gw-1/MQTT/LWT", b"gone")  # raw text: not an anomaly
    recorder.wait(lambda: len(recorder.lifecycles) == 2, "the two readable lifecycle messages")
    recorder.wait(lambda: len(recorder.anomalies) == 2, "the two unreadable ones")

    by_device = {(t.device, t.kind): p for t, p in recorder.lifecycles}
    assert set(by_device) == {("gw-1", Lifecycle.BIRTH), ("gw-1", Lifecycle.LWT)}
    assert by_device[("gw-1", Lifecycle.BIRTH)].string("display_name") == "Line 3"
    assert by_device[("gw-1", Lifecycle.LWT)].metrics == {}
    assert {a.device for a in recorder.anomalies} == {(account, "gw-2"), (account, "gw-3")}
    assert all(a.kind is AnomalyKind.UNDECODABLE for a in recorder.anomalies)
    assert all(a.message.endswith("; ignored") for a in recorder.anomalies)


def test_messages_of_an_account_no_longer_served_are_anomalies(
    client: DeviceClient[str], responder: Responder, recorder: Recorder, account: str
) -> None:
    client.add_account("second-" + account)
    other = "second-" + account
    responder.publish(f"$EDC/{other}/gw-1/MQTT/BIRTH", CODEC.encode(KuraPayload()), qos=1)
    recorder.wait(lambda: len(recorder.lifecycles) == 1, "the birth")
    client.remove_account(other)
    assert client.connected
    # The subscription is gone, so the broker no longer relays this account's messages.
    responder.publish(f"$EDC/{other}/gw-1/MQTT/BIRTH", CODEC.encode(KuraPayload()), qos=1)
    recorder.reply_for(client.send((account, "gw-1"), PING, "t"))
    assert len(recorder.lifecycles) == 1


def test_a_reply_topic_whose_dots_became_levels_says_so() -> None:
    """RabbitMQ's MQTT plugin maps '.' to a topic level both ways: a runner whose client id
    has a dot gets its replies on a topic with more levels than Kura's."""
    recorder = Recorder()
    table: PendingTable[str] = PendingTable(10)
    inbound = Inbound("jobrunner-host.example.com", recorder, table, {}, {})
    rewritten = "$EDC/acme/jobrunner-host/example/com/CMD-V1/REPLY/42"

    inbound.handle(SimpleNamespace(topic=rewritten, payload=b""))

    (anomaly,) = recorder.anomalies
    assert anomaly.kind is AnomalyKind.BAD_TOPIC and anomaly.topic == rewritten
    assert "ids had their '.' turned into topic levels by the broker" in anomaly.message
    assert "RabbitMQ's MQTT plugin" in anomaly.message
