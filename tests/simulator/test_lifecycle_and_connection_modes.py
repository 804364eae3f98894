"""BIRTH, APPS, DC and LWT in both connection modes, and the simple-json encoding."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import pytest

from jobrunner.device.payload import Metric
from jobrunner.simulator.broker import RunningBroker
from jobrunner.simulator.catalog import ALL_APPS, LEGACY_APPS
from jobrunner.simulator.config import LEGACY_PROFILE, DeviceProfile, FleetConfig
from jobrunner.simulator.fleet import Fleet, FleetError
from tests.simulator.conftest import WAIT, Requester

BIRTH_METRICS = {
    "uptime",
    "display_name",
    "model_name",
    "firmware_version",
    "kura_version",
    "application_ids",
    "payload_encoding",
    "accept_encoding",
    "connection_ip",
    "application_framework",
    "os",
    "jvm_version",
}


@pytest.mark.parametrize("mode", ["per-device", "shared"])
def test_births_carry_kuras_string_metrics_and_every_device_answers(
    requester: Requester, make_fleet: Callable[..., Fleet], mode: str
) -> None:
    fleet = make_fleet(
        devices=5, mode=mode, connections=2, profiles=(("gw-0004,gw-0005", LEGACY_PROFILE),)
    )
    assert fleet.mode == mode
    births = requester.wait(
        lambda _: len(requester.lifecycle(kind="BIRTH")) == 5 and requester.lifecycle(kind="BIRTH")
    )
    by_device = {b.parsed.device: b for b in births}
    assert set(by_device) == {f"gw-000{i}" for i in range(1, 6)}
    birth = by_device["gw-0001"]
    assert set(birth.payload.metrics) >= BIRTH_METRICS
    assert {m.type.name for m in birth.payload.metrics.values()} == {"STRING"}
    assert birth.value("application_ids") == ",".join(ALL_APPS)
    assert birth.value("payload_encoding") == "KURA_PROTOBUF"
    assert birth.value("display_name") == "gw-0001"
    assert birth.payload.position is not None
    assert by_device["gw-0005"].value("application_ids") == ",".join(LEGACY_APPS)
    assert by_device["gw-0005"].value("kura_version") == "KURA_4.1.0"
    for device in by_device:
        assert requester.call(device, "DEPLOY-V2", "EXEC", "start", "42").code == 200
    fleet.stop()
    dcs = requester.wait(
        lambda _: len(requester.lifecycle(kind="DC")) == 5 and requester.lifecycle(kind="DC")
    )
    assert set(dcs[0].payload.metrics) == {"uptime", "display_name"}
    assert requester.lifecycle(kind="LWT") == []  # a clean stop leaves no will


@pytest.mark.parametrize("mode", ["per-device", "shared"])
def test_a_dropped_device_leaves_an_lwt_in_either_mode(
    requester: Requester, make_fleet: Callable[..., Fleet], mode: str
) -> None:
    fleet = make_fleet(mode=mode)
    requester.wait_lifecycle("gw-0002", "BIRTH")
    fleet.disconnect("gw-0002", reconnect_after=0.2)
    (will,) = requester.wait_lifecycle("gw-0002", "LWT")
    assert will.raw == b""
    requester.wait_lifecycle("gw-0002", "BIRTH", count=2)
    assert requester.call("gw-0002", "DEPLOY-V2", "GET", "bundles").code == 200
    assert [e.kind for e in fleet.lifecycle("gw-0002")] == ["BIRTH", "LWT", "BIRTH"]


def test_a_clean_disconnect_publishes_dc_not_lwt(
    requester: Requester, make_fleet: Callable[..., Fleet]
) -> None:
    fleet = make_fleet()
    requester.wait_lifecycle("gw-0001", "BIRTH")
    fleet.disconnect("gw-0001", clean=True)
    requester.wait_lifecycle("gw-0001", "DC")
    fleet.connect("gw-0001")
    requester.wait_lifecycle("gw-0001", "BIRTH", count=2)
    assert requester.lifecycle("gw-0001", "LWT") == []


def test_changing_the_apps_publishes_apps_and_changes_what_is_answered(
    requester: Requester, make_fleet: Callable[..., Fleet]
) -> None:
    fleet = make_fleet()
    assert requester.call("gw-0001", "KEYS-V1", "GET", "keystores").code == 200
    fleet.set_apps("gw-0001", ["CMD-V1", "DEPLOY-V2"])
    (apps,) = requester.wait_lifecycle("gw-0001", "APPS")
    assert apps.value("application_ids") == "CMD-V1,DEPLOY-V2"
    dropped = requester.send("gw-0001", "KEYS-V1", "GET", "keystores")
    requester.answered_in_order("gw-0001")
    assert requester.replies(dropped) == []  # Kura answers nothing for an app it does not run


def test_simple_json_devices_speak_json_and_cast_like_kura(
    json_requester: Requester, make_fleet: Callable[..., Fleet]
) -> None:
    make_fleet(profile=DeviceProfile(encoding="simple-json"))
    (birth,) = json_requester.wait_lifecycle("gw-0001", "BIRTH")
    assert birth.raw.startswith(b"{") and birth.value("payload_encoding") == "SIMPLE_JSON"
    assert birth.value("accept_encoding") == ""
    reply = json_requester.call(
        "gw-0001",
        "CMD-V1",
        "EXEC",
        "command",
        metrics={"command.command": Metric.string("echo json")},
    )
    assert reply.raw.startswith(b"{") and reply.code == 200
    assert reply.value("command.stdout") == "json\n"
    # JSON has no INT32: Kura's Integer cast of command.timeout fails (kura-protocol.md §1.3).
    timed = json_requester.call(
        "gw-0001",
        "CMD-V1",
        "EXEC",
        "command",
        metrics={"command.command": Metric.string("true"), "command.timeout": Metric.int32(5)},
    )
    assert timed.code == 500
    large = json_requester.call("gw-0001", "CONF-V1", "GET", "configurations")
    assert large.raw.startswith(b"{")  # simple-json is never gzipped


def test_no_gzip_keeps_large_replies_plain(
    requester: Requester, make_fleet: Callable[..., Fleet]
) -> None:
    make_fleet(profile=DeviceProfile(gzip=False))
    (birth,) = requester.wait_lifecycle("gw-0001", "BIRTH")
    assert birth.value("accept_encoding") == ""
    assert requester.call("gw-0001", "CONF-V1", "GET", "configurations").raw[:2] != b"\x1f\x8b"


@pytest.mark.parametrize("mode", ["per-device", "shared"])
def test_devices_reconnect_and_are_born_again_after_a_broker_restart(
    own_broker: RunningBroker, mode: Literal["per-device", "shared"]
) -> None:
    config = FleetConfig(
        devices=3, broker=own_broker.url, account="restart", mode=mode, start_timeout=WAIT
    )
    with Fleet(config) as fleet:
        own_broker.restart()
        requester = Requester(own_broker, "restart")
        try:
            # The devices retry every second; once back they publish a new BIRTH.
            for device in fleet.devices:
                requester.wait_lifecycle(device, "BIRTH")
            assert requester.call("gw-0003", "DEPLOY-V2", "EXEC", "stop", "42").code == 200
            for device in fleet.devices:  # one before the restart, one (or more) after
                assert len(fleet.lifecycle(device, "BIRTH")) >= 2
        finally:
            requester.close()


def test_a_fleet_that_cannot_come_up_says_so() -> None:
    config = FleetConfig(devices=2, broker="mqtt://127.0.0.1:9", start_timeout=1.0)
    with pytest.raises(FleetError, match=r"0 of 2 simulated devices came up on 127.0.0.1:9"):
        Fleet(config).start()
