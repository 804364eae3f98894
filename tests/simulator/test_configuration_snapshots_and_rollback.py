"""CONF-V1 snapshots and rollbacks as Kura does them, the apply delay of a PUT, and the
faults of safe changes: a value that does not stick, a snapshot that is gone, a rollback
that fails."""

from __future__ import annotations

from collections.abc import Callable
from xml.etree import ElementTree

import pytest

from jobrunner.simulator.apps.snapshots import KEPT, not_found
from jobrunner.simulator.config import Timing
from jobrunner.simulator.faults import FaultPlan, NoStickFault
from jobrunner.simulator.faultspec import FaultSpecError, build_plan
from jobrunner.simulator.fleet import Fleet
from tests.simulator.conftest import FAST, WAIT, Requester
from tests.simulator.test_configuration_put_and_get import PID, document, interval

ESF = {"esf": "http://eurotech.com/esf/2.0"}


def ids(reply_body: bytes | None) -> list[int]:
    root = ElementTree.fromstring(reply_body or b"")
    assert root.tag == "{http://eurotech.com/esf/2.0}snapshot-ids"
    return [int(e.text or "") for e in root.findall("esf:snapshotIds", ESF)]


def snapshot(requester: Requester, device: str = "gw-0001") -> int:
    reply = requester.call(device, "CONF-V1", "EXEC", "snapshot")
    assert reply.code == 200
    (taken,) = ids(reply.payload.body)
    return taken


def kept(requester: Requester, device: str = "gw-0001") -> list[int]:
    reply = requester.call(device, "CONF-V1", "GET", "snapshots")
    assert reply.code == 200
    return ids(reply.payload.body)


def put(requester: Requester, value: str, device: str = "gw-0001") -> None:
    body = document(value=value)
    assert requester.call(device, "CONF-V1", "PUT", "configurations", body=body).code == 200


def test_a_snapshot_has_a_new_id_and_holds_the_configuration_of_its_time(
    requester: Requester, make_fleet: Callable[..., Fleet], dots_in_topics: None
) -> None:
    fleet = make_fleet(devices=1)
    assert kept(requester) == [0]  # Kura's seeding snapshot
    first = snapshot(requester)
    put(requester, "300")
    assert fleet.wait_for(lambda: interval(fleet) == "300", WAIT)
    second = snapshot(requester)
    assert 0 < first < second and kept(requester) == [0, first, second]
    reply = requester.call("gw-0001", "CONF-V1", "GET", "snapshots", str(first))
    root = ElementTree.fromstring(reply.payload.body or b"")
    (config,) = [c for c in root.findall("esf:configuration", ESF) if c.get("pid") == PID]
    values = {
        p.get("name"): p.findtext("esf:value", namespaces=ESF)
        for p in config.iterfind("esf:properties/esf:property", ESF)
    }
    assert values["publish.interval"] == "60"  # the value when it was taken


def test_ten_snapshots_are_kept_and_a_gone_one_gets_kuras_error(
    requester: Requester, make_fleet: Callable[..., Fleet]
) -> None:
    make_fleet(devices=1)
    taken = [snapshot(requester) for _ in range(KEPT + 2)]
    left = kept(requester)
    assert len(left) == KEPT and left[0] == 0  # snapshot 0 is never deleted
    assert left[1:] == taken[-(KEPT - 1) :]
    gone = requester.call("gw-0001", "CONF-V1", "GET", "snapshots", str(taken[0]))
    assert gone.code == 500
    assert gone.value("response.exception.message") == not_found(taken[0])
    assert not_found(taken[0]).endswith(f"snapshot_{taken[0]}.xml was not found.")
    bad = requester.call("gw-0001", "CONF-V1", "GET", "snapshots", "latest")
    assert bad.code == 500 and "response.exception.message" not in bad.payload.metrics


def test_rollback_answers_at_once_and_restores_a_moment_later(
    requester: Requester, make_fleet: Callable[..., Fleet], dots_in_topics: None
) -> None:
    fleet = make_fleet(devices=1, timing=Timing(config_apply_seconds=0.3))
    before = snapshot(requester)
    put(requester, "300")
    assert fleet.wait_for(lambda: interval(fleet) == "300", WAIT)
    reply = requester.call("gw-0001", "CONF-V1", "EXEC", "rollback", str(before))
    assert reply.code == 200
    assert interval(fleet) == "300"  # answered before it is applied, as Kura does
    assert fleet.wait_for(lambda: interval(fleet) == "60", WAIT)
    # Kura saves a copy of the snapshot it rolled back to as the newest one.
    assert fleet.wait_for(lambda: len(kept(requester)) == 3, WAIT)
    for bad in (("rollback", "x"), ("rollback", "1", "2"), ("snapshot", "1")):
        assert requester.call("gw-0001", "CONF-V1", "EXEC", *bad).code == 400
    assert requester.call("gw-0001", "CONF-V1", "EXEC", "restore").code == 404


def test_rollback_without_an_id_goes_to_the_second_newest(
    requester: Requester, make_fleet: Callable[..., Fleet], dots_in_topics: None
) -> None:
    fleet = make_fleet(devices=1)
    put(requester, "300")
    assert fleet.wait_for(lambda: interval(fleet) == "300", WAIT)
    snapshot(requester)  # newest: 300; second newest: the seeding one (60)
    assert requester.call("gw-0001", "CONF-V1", "EXEC", "rollback").code == 200
    assert fleet.wait_for(lambda: interval(fleet) == "60", WAIT)


def test_a_put_is_seen_by_a_get_only_after_the_apply_delay(
    requester: Requester, make_fleet: Callable[..., Fleet], dots_in_topics: None
) -> None:
    fleet = make_fleet(devices=1, timing=Timing(config_apply_seconds=2.0))
    requester.send("gw-0001", "CONF-V1", "PUT", "configurations", body=document(value="300"))
    # The device reads its requests in order: the GET comes right after the PUT's 200.
    reply = requester.call("gw-0001", "CONF-V1", "GET", "configurations", PID)
    assert b">60<" in (reply.payload.body or b"")
    assert fleet.wait_for(lambda: interval(fleet) == "300", WAIT)
    reply = requester.call("gw-0001", "CONF-V1", "GET", "configurations", PID)
    assert b">300<" in (reply.payload.body or b"")


def test_a_value_that_does_not_stick(
    requester: Requester, make_fleet: Callable[..., Fleet], dots_in_topics: None
) -> None:
    plan = build_plan(no_stick=["gw-0001:publish.interval"])
    fleet = make_fleet(devices=2, faults=plan)
    for device in ("gw-0001", "gw-0002"):
        put(requester, "300", device)
    assert fleet.wait_for(lambda: interval(fleet, "gw-0002") == "300", WAIT)
    # The same PUT reached gw-0001 first; a later PUT of another property applies, so
    # gw-0001 has applied everything it will by then.
    body = document(value="warehouse/other").replace(
        b'name="publish.interval"', b'name="app.topic"'
    )
    body = body.replace(b'type="Integer"', b'type="String"')
    assert requester.call("gw-0001", "CONF-V1", "PUT", "configurations", body=body).code == 200
    stubborn = fleet.device("gw-0001")
    assert fleet.wait_for(
        lambda: stubborn.state.setting(PID, "app.topic") == "warehouse/other", WAIT
    )
    assert interval(fleet, "gw-0001") == "60"


def test_a_snapshot_that_is_gone(
    requester: Requester, make_fleet: Callable[..., Fleet], dots_in_topics: None
) -> None:
    fleet = make_fleet(devices=1, faults=build_plan(snapshot_gone=["gw-0001"]))
    taken = snapshot(requester)
    assert taken > 0 and kept(requester) == [0]
    gone = requester.call("gw-0001", "CONF-V1", "GET", "snapshots", str(taken))
    assert gone.code == 500 and gone.value("response.exception.message") == not_found(taken)
    put(requester, "300")
    assert fleet.wait_for(lambda: interval(fleet) == "300", WAIT)
    # Kura answers the rollback before it looks for the snapshot: 200, and nothing changes.
    assert requester.call("gw-0001", "CONF-V1", "EXEC", "rollback", str(taken)).code == 200
    put(requester, "301")  # applied after the rollback would have been
    assert fleet.wait_for(lambda: interval(fleet) == "301", WAIT)
    assert kept(requester) == [0]


def test_a_rollback_that_fails(
    requester: Requester, make_fleet: Callable[..., Fleet], dots_in_topics: None
) -> None:
    fleet = make_fleet(devices=1, faults=FaultPlan(rollback_fails=("gw-0001",)), timing=FAST)
    before = snapshot(requester)
    put(requester, "300")
    assert fleet.wait_for(lambda: interval(fleet) == "300", WAIT)
    assert requester.call("gw-0001", "CONF-V1", "EXEC", "rollback", str(before)).code == 200
    put(requester, "301")
    assert fleet.wait_for(lambda: interval(fleet) == "301", WAIT)
    assert kept(requester) == [0, before]  # no copy saved: nothing was restored
    # An error reply is the general fault of the operation named `rollback`.
    failing = make_fleet(devices=1, first=2, faults=build_plan(fail=["gw-0002:rollback=500"]))
    assert failing.device("gw-0002") is not None
    assert requester.call("gw-0002", "CONF-V1", "EXEC", "rollback").code == 500


@pytest.mark.parametrize(
    ("option", "spec", "message"),
    [
        ("no_stick", "gw-0001:publish.interval=3", "takes no value"),
        ("snapshot_gone", "gw-0001:snapshot", "write DEVICES only"),
        ("rollback_fails", "gw-0001=1", "write DEVICES only"),
        ("rollback_fails", "", "write DEVICES only"),
    ],
)
def test_fault_specs_of_safe_changes_say_how_to_write_them(
    option: str, spec: str, message: str
) -> None:
    with pytest.raises(FaultSpecError, match=message):
        build_plan(**{option: [spec]})  # type: ignore[arg-type]


def test_fault_specs_of_safe_changes_read() -> None:
    plan = build_plan(
        no_stick=["gw-0001", "tag:canary:app.*"],
        snapshot_gone=["gw-000[2-3]"],
        rollback_fails=["tag:canary"],
    )
    assert plan.no_stick == (NoStickFault("gw-0001", "*"), NoStickFault("tag:canary", "app.*"))
    faults = plan.for_device("gw-0004", frozenset({"canary"}))
    assert faults is not None and faults.rollback_fails and not faults.snapshot_gone
    assert faults.sticks("publish.interval") and not faults.sticks("app.topic")
    assert plan.for_device("gw-0009") is None
