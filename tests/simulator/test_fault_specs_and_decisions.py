"""The command-line form of the faults, and the decisions a device draws from them."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from jobrunner.simulator.faults import FailFault, FaultPlan, RateFault, Selector
from jobrunner.simulator.faultspec import (
    FaultSpecError,
    build_plan,
    parse_disconnect,
    parse_duration,
    parse_fail,
    parse_offline,
)
from jobrunner.simulator.operations import OPERATIONS, operation_name


def test_every_spec_form_reads_into_its_fault() -> None:
    plan = build_plan(
        seed=3,
        fail=["gw-0007:bundle-stop=400", "gw-00[1-3]?:download", "gw-0009:download=hash-mismatch"],
        fail_rate=["0.05", "download=0.2"],
        drop=["gw-0003:command", "gw-0004"],
        drop_rate=["steps=0.01"],
        slow=["gw-0005=3s", "gw-0006:command=500ms"],
        late=["gw-0008"],
        duplicate=["gw-0002:command=2"],
        disconnect=["gw-0009:download=2s/10s", "gw-0010:command"],
        offline=["gw-0012=30s", "gw-0013"],
        stray=["gw-0004:install=2s", "gw-0005"],
    )
    assert plan.fail[0] == FailFault(Selector("gw-0007", "bundle-stop"), 400)
    assert plan.fail[1].outcome is None and plan.fail[2].outcome == "hash-mismatch"
    assert plan.fail_rate == (RateFault(0.05, "*"), RateFault(0.2, "download"))
    assert plan.drop[1].where == Selector("gw-0004", "*")
    assert [d.delay for d in plan.slow] == [3.0, 0.5] and plan.late[0].delay == 35.0
    assert plan.duplicate[0].copies == 2
    assert (plan.disconnect[0].after, plan.disconnect[0].reconnect) == (2.0, 10.0)
    assert (plan.disconnect[1].after, plan.disconnect[1].reconnect) == (0.0, None)
    assert [o.connect_after for o in plan.offline] == [30.0, None]
    assert (plan.stray[0].kind, plan.stray[0].delay, plan.stray[1].kind) == (
        "install",
        2.0,
        "download",
    )


@pytest.mark.parametrize(
    ("parse", "spec", "says"),
    [
        (parse_fail, "gw-0007:bundle-stopp", "unknown operation 'bundle-stopp'"),
        (parse_fail, "gw-0007:bundle-stop=418", "none of 400, 404, 500"),
        (parse_fail, ":command", "names no device"),
        (parse_disconnect, "gw-1:download=soon", "not a duration"),
        (parse_offline, "gw-1:command=3s", "DEVICES[=AFTER]"),
    ],
)
def test_a_wrong_spec_says_how_to_write_it(
    parse: Callable[[str], object], spec: str, says: str
) -> None:
    with pytest.raises(FaultSpecError) as error:
        parse(spec)
    assert says in str(error.value)
    assert parse_fail("gw-0007").where.operation == "*"  # no operation: every operation


def test_rates_and_durations_are_checked() -> None:
    with pytest.raises(FaultSpecError, match="between 0 and 1"):
        build_plan(fail_rate=["1.5"])
    with pytest.raises(FaultSpecError, match="unknown operation"):
        build_plan(drop_rate=["downlaod=0.1"])
    assert (
        parse_duration("250ms") == 0.25 and parse_duration("2m") == 120 and parse_duration("4") == 4
    )


def test_device_patterns_match_ids_globs_and_lists() -> None:
    selector = Selector("gw-000[1-3],gw-0010")
    assert [selector.matches_device(f"gw-{n:04d}") for n in (1, 3, 4, 10)] == [
        True,
        True,
        False,
        True,
    ]
    assert FaultPlan().for_device("gw-0001") is None
    assert build_plan(drop=["gw-0002"]).for_device("gw-0001") is None


def test_groups_expand_and_every_request_has_an_operation_name() -> None:
    faults = build_plan(fail=["gw-0001:keystore=400"]).for_device("gw-0001")
    assert faults is not None
    assert (decision := faults.decide("keystore-delete")) is not None and decision.fail == 400
    assert faults.decide("keystores") is None
    assert operation_name("KEYS-V1", "DEL", ("keystores", "entries")) == "keystore-delete"
    assert operation_name("DEPLOY-V2", "EXEC", ("stop", "42")) == "bundle-stop"
    assert operation_name("ANSIBLE-V1", "SUBMIT", ()) == "activity"
    assert operation_name("NOPE", "GET", ()) == "other"
    assert "other" in OPERATIONS


def test_rate_decisions_depend_on_the_seed_only() -> None:
    def draws(seed: int) -> list[bool]:
        faults = build_plan(seed=seed, fail_rate=["command=0.3"]).for_device("gw-0042")
        assert faults is not None
        return [(d := faults.decide("command")) is not None and d.fail == 500 for _ in range(400)]

    first = draws(11)
    assert draws(11) == first
    assert 80 < sum(first) < 160  # about 30 %
    assert draws(12) != first


def test_disconnect_fires_once_and_defaults_follow_the_operation() -> None:
    faults = build_plan(disconnect=["gw-1:command"], fail=["gw-1:download"]).for_device("gw-1")
    assert faults is not None
    first = faults.decide("command")
    assert first is not None and first.disconnect is not None
    assert faults.decide("command") is None
    download = faults.decide("download")
    assert download is not None and download.fail == "failed"


def test_a_tag_selects_the_devices_the_fleet_gave_it() -> None:
    plan = build_plan(fail_rate=["tag:canary:bundle-start=1"], fail=["tag:edge:command"])
    assert plan.fail_rate == (RateFault(1.0, "bundle-start", "tag:canary"),)
    canary = plan.for_device("gw-0001", frozenset({"canary"}))
    assert canary is not None
    decision = canary.decide("bundle-start")
    assert decision is not None and decision.fail == 500
    assert plan.for_device("gw-0002", frozenset({"other"})) is None
    edge = plan.for_device("gw-0003", frozenset({"edge"}))
    assert edge is not None and edge.fail[0].where == Selector("tag:edge", "command")
    assert Selector("gw-0001,tag:x").matches_device("gw-0009", frozenset({"x"}))
