"""What any request gets, whatever the app: Kura's dispatcher rules (kura-protocol.md §2)."""

from __future__ import annotations

from collections.abc import Callable

from jobrunner.device.payload import Metric, MetricType
from jobrunner.simulator.catalog import LEGACY_APPS
from jobrunner.simulator.config import LEGACY_PROFILE
from jobrunner.simulator.fleet import Fleet
from tests.simulator.conftest import Requester


def test_reply_goes_to_the_requester_at_qos0_with_an_int32_code_and_a_timestamp(
    requester: Requester, make_fleet: Callable[..., Fleet]
) -> None:
    make_fleet()
    request_id = requester.send("gw-0002", "DEPLOY-V2", "EXEC", "stop", "42")
    reply = requester.reply(request_id)
    assert (
        reply.topic
        == f"$EDC/{requester.account}/{requester.client_id}/DEPLOY-V2/REPLY/{request_id}"
    )
    assert reply.code == 200
    assert reply.kind("response.code") == "INT32"
    assert reply.payload.timestamp is not None
    assert set(reply.payload.metrics) == {"response.code"}


def test_requests_without_request_id_or_requester_are_ignored(
    requester: Requester, make_fleet: Callable[..., Fleet]
) -> None:
    fleet = make_fleet()
    no_ids = requester.send(
        "gw-0001",
        "CMD-V1",
        "EXEC",
        "command",
        with_ids=False,
        metrics={"command.command": Metric.string("true")},
    )
    only_id = requester.send(
        "gw-0001",
        "CMD-V1",
        "EXEC",
        "command",
        with_ids=False,
        metrics={"request.id": Metric.string("only-id"), "command.command": Metric.string("true")},
    )
    numeric_id = requester.send(
        "gw-0001",
        "CMD-V1",
        "EXEC",
        "command",
        with_ids=False,
        metrics={
            "request.id": Metric(MetricType.INT64, 5),  # Kura casts it to String: no reply
            "requester.client.id": Metric.string(requester.client_id),
            "command.command": Metric.string("true"),
        },
    )
    requester.answered_in_order("gw-0001")
    assert requester.replies(no_ids) == []
    assert requester.replies(only_id) == [] and requester.replies("only-id") == []
    assert requester.replies(numeric_id) == []
    # The device did receive them: its log says so, without the ids it needs.
    ignored = [
        r for r in fleet.requests("gw-0001", "command") if None in (r.request_id, r.requester)
    ]
    assert len(ignored) == 3


def test_a_payload_that_is_not_protobuf_is_ignored(
    requester: Requester, make_fleet: Callable[..., Fleet]
) -> None:
    make_fleet()
    garbage = requester.send("gw-0001", "CMD-V1", "EXEC", "command", raw=b"\xff\xfe not protobuf")
    requester.answered_in_order("gw-0001")
    assert requester.replies(garbage) == []


def test_an_app_the_device_does_not_run_gets_no_reply_at_all_as_from_kura(
    requester: Requester, make_fleet: Callable[..., Fleet]
) -> None:
    fleet = make_fleet(profiles=(("gw-0003", LEGACY_PROFILE),))
    unknown = requester.send("gw-0001", "NOPE-V1", "GET", "things")
    lacking = requester.send("gw-0003", "KEYS-V1", "GET", "keystores")
    requester.answered_in_order("gw-0001")
    requester.answered_in_order("gw-0003")
    assert requester.replies(unknown) == []
    assert requester.replies(lacking) == []
    assert "KEYS-V1" not in LEGACY_APPS
    received = [(r.device, r.app_id) for r in fleet.requests() if r.app_id != "DEPLOY-V2"]
    assert sorted(received) == [("gw-0001", "NOPE-V1"), ("gw-0003", "KEYS-V1")]  # heard, unanswered
    assert requester.call("gw-0001", "KEYS-V1", "GET", "keystores").code == 200


def test_unknown_method_is_400_and_an_unimplemented_one_500(
    requester: Requester, make_fleet: Callable[..., Fleet]
) -> None:
    make_fleet()
    bad = requester.call("gw-0001", "CMD-V1", "FETCH", "command")
    assert bad.code == 400 and "response.exception.message" not in bad.payload.metrics
    assert requester.call("gw-0001", "CMD-V1", "SUBMIT").code == 400
    assert requester.call("gw-0001", "ANSIBLE-V1", "CANCEL").code == 400
    unsupported = requester.call("gw-0001", "CMD-V1", "GET", "command")
    assert unsupported.code == 500
    assert unsupported.value("response.exception.message") == "Operation not supported"


def test_unknown_resources_follow_each_app(
    requester: Requester, make_fleet: Callable[..., Fleet]
) -> None:
    make_fleet()
    assert requester.call("gw-0001", "CMD-V1", "EXEC", "shell").code == 404
    assert requester.call("gw-0001", "CMD-V1", "EXEC", "command", "extra").code == 400
    assert requester.call("gw-0001", "DEPLOY-V2", "GET", "nothing").code == 404
    assert requester.call("gw-0001", "KEYS-V1", "GET", "nothing").code == 400  # Kura: never 404
    assert requester.call("gw-0001", "CONF-V1", "GET", "snapshot").code == 404  # snapshots


def test_the_log_counts_requests_per_device_and_operation(
    requester: Requester, make_fleet: Callable[..., Fleet]
) -> None:
    fleet = make_fleet(devices=5)
    for device in ("gw-0001", "gw-0003"):
        requester.call(device, "DEPLOY-V2", "EXEC", "start", "42")
    requester.call("gw-0003", "DEPLOY-V2", "EXEC", "start", "42")
    assert fleet.count("gw-0003", "bundle-start") == 2
    assert fleet.count(operation="bundle-start") == 3
    assert fleet.contacted("bundle-start") == {"gw-0001", "gw-0003"}
    assert [r.resources for r in fleet.requests("gw-0001")] == [("start", "42")]
    fleet.reset_observations()
    assert fleet.count() == 0 and fleet.contacted() == set()
