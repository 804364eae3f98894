"""Every fault of a FaultPlan, seen from the runner's side of the broker."""

from __future__ import annotations

import time
from collections.abc import Callable

from jobrunner.device.payload import Metric
from jobrunner.simulator.faults import (
    DelayFault,
    DisconnectFault,
    DropFault,
    DuplicateFault,
    FailFault,
    FaultPlan,
    OfflineFault,
    RateFault,
    Selector,
    StrayFault,
)
from jobrunner.simulator.fleet import Fleet
from tests.simulator.conftest import WAIT, Requester
from tests.simulator.test_deploy_bundles_and_packages import download_metrics


def plan(**faults: object) -> FaultPlan:
    return FaultPlan(**faults)  # type: ignore[arg-type]


def stop_42(requester: Requester, device: str) -> int | None:
    return requester.call(device, "DEPLOY-V2", "EXEC", "stop", "42").code


def test_a_named_device_fails_a_named_operation_with_the_given_code(
    requester: Requester, make_fleet: Callable[..., Fleet]
) -> None:
    make_fleet(faults=plan(fail=(FailFault(Selector("gw-0002", "bundle-stop"), 400),)))
    failed = requester.call("gw-0002", "DEPLOY-V2", "EXEC", "stop", "42")
    assert failed.code == 400
    assert failed.value("response.exception.message") == "simulated failure: bundle-stop on gw-0002"
    assert stop_42(requester, "gw-0001") == 200  # another device
    assert requester.call("gw-0002", "DEPLOY-V2", "EXEC", "start", "42").code == 200  # another op


def test_a_failed_download_is_accepted_then_reported_failed(
    requester: Requester, make_fleet: Callable[..., Fleet]
) -> None:
    make_fleet(faults=plan(fail=(FailFault(Selector("gw-0001", "download")),)))
    assert (
        requester.call("gw-0001", "DEPLOY-V2", "EXEC", "download", metrics=download_metrics()).code
        == 200
    )
    notes = requester.wait_notification("gw-0001", "download", "dp.download.status", {"FAILED"}, 2)
    assert [n.value("dp.download.status") for n in notes][-2:] == ["FAILED", "FAILED"]
    assert notes[-1].value("dp.download.error.message") == (
        "Error during download process and verification!"
    )
    assert "COMPLETED" not in [n.value("dp.download.status") for n in notes]
    assert requester.notifications("gw-0001", "install") == []
    # The device is free again for the next download.
    assert (
        requester.call(
            "gw-0001", "DEPLOY-V2", "EXEC", "download", metrics=download_metrics("x", "1", 2)
        ).code
        == 200
    )


def test_a_hash_mismatch_completes_the_transfer_then_fails(
    requester: Requester, make_fleet: Callable[..., Fleet]
) -> None:
    make_fleet(faults=plan(fail=(FailFault(Selector("*", "download"), "hash-mismatch"),)))
    metrics = download_metrics(
        dp_download_hash=Metric.string("MD5:8c7dd922ad47494fc02c388e12c00eac")
    )
    requester.call("gw-0001", "DEPLOY-V2", "EXEC", "download", metrics=metrics)
    notes = requester.wait_notification("gw-0001", "download", "dp.download.status", {"FAILED"})
    assert [n.value("dp.download.status") for n in notes][-2:] == ["COMPLETED", "FAILED"]
    assert requester.notifications("gw-0001", "install") == []
    # Without a hash in the request there is nothing to mismatch.
    requester.call("gw-0002", "DEPLOY-V2", "EXEC", "download", metrics=download_metrics())
    requester.wait_notification("gw-0002", "install", "dp.install.status", {"COMPLETED"})


def test_install_uninstall_and_activity_failures_come_as_failed_notifications(
    requester: Requester, make_fleet: Callable[..., Fleet]
) -> None:
    fleet = make_fleet(
        faults=plan(
            fail=(
                FailFault(Selector("gw-0001", "install")),
                FailFault(Selector("gw-0001", "uninstall")),
                FailFault(Selector("gw-0001", "activity")),
            )
        )
    )
    requester.call("gw-0001", "DEPLOY-V2", "EXEC", "download", metrics=download_metrics())
    (install,) = requester.wait_notification("gw-0001", "install", "dp.install.status", {"FAILED"})
    assert install.value("dp.install.progress") == 0 and install.value("dp.install.error.message")
    assert (
        fleet.device("gw-0001").state.packages["org.eclipse.kura.driver.modbus"].version == "1.1.0"
    )
    requester.call(
        "gw-0001",
        "DEPLOY-V2",
        "EXEC",
        "uninstall",
        metrics={"dp.name": Metric.string("com.acme.monitoring.agent"), "job.id": Metric.int64(3)},
    )
    (gone,) = requester.wait_notification("gw-0001", "uninstall", "dp.uninstall.status", {"FAILED"})
    assert gone.value("dp.uninstall.progress") == 0
    requester.call(
        "gw-0001",
        "ANSIBLE-V1",
        "SUBMIT",
        metrics={
            "id": Metric.int64(9),
            "job.id": Metric.int64(9),
            "download.url": Metric.string("http://x"),
        },
    )
    notes = requester.wait_notification("gw-0001", "activity", "status", {"FAILED"})
    assert notes[-1].value("message").startswith("activity failed")


def test_a_failure_rate_is_deterministic_for_a_seed(
    requester: Requester, make_fleet: Callable[..., Fleet]
) -> None:
    def codes(seed: int) -> list[int | None]:
        fleet = make_fleet(
            devices=1, faults=plan(seed=seed, fail_rate=(RateFault(0.5, "bundle-start"),))
        )
        found = [
            requester.call("gw-0001", "DEPLOY-V2", "EXEC", "start", "42").code for _ in range(24)
        ]
        assert requester.call("gw-0001", "DEPLOY-V2", "GET", "bundles").code == 200  # not a start
        fleet.stop()
        return found

    first = codes(7)
    assert set(first) == {200, 500}
    assert codes(7) == first
    assert codes(8) != first


def test_a_dropped_reply_is_lost_but_the_work_is_done(
    requester: Requester, make_fleet: Callable[..., Fleet]
) -> None:
    fleet = make_fleet(faults=plan(drop=(DropFault(Selector("gw-0001", "bundle-stop")),)))
    lost = requester.send("gw-0001", "DEPLOY-V2", "EXEC", "stop", "42")
    requester.answered_in_order("gw-0001")
    assert requester.replies(lost) == []
    assert fleet.device("gw-0001").state.bundles[42].state == "RESOLVED"


def test_slow_and_late_devices_answer_after_their_delay(
    requester: Requester, make_fleet: Callable[..., Fleet]
) -> None:
    make_fleet(
        faults=plan(
            slow=(DelayFault(Selector("gw-0001"), 0.4),),
            late=(DelayFault(Selector("gw-0002", "command"), 0.6),),
        )
    )
    started = time.monotonic()
    assert stop_42(requester, "gw-0001") == 200
    assert time.monotonic() - started >= 0.35
    started = time.monotonic()
    reply = requester.call(
        "gw-0002", "CMD-V1", "EXEC", "command", metrics={"command.command": Metric.string("true")}
    )
    assert reply.code == 200 and time.monotonic() - started >= 0.55


def test_duplicate_replies_repeat_the_same_reply(
    requester: Requester, make_fleet: Callable[..., Fleet]
) -> None:
    make_fleet(faults=plan(duplicate=(DuplicateFault(Selector("gw-0001"), 2),)))
    request_id = requester.send("gw-0001", "DEPLOY-V2", "EXEC", "stop", "42")
    replies = requester.wait(
        lambda _: len(requester.replies(request_id)) == 3 and requester.replies(request_id)
    )
    assert len({r.raw for r in replies}) == 1


def test_a_device_that_drops_mid_operation_leaves_a_will_and_comes_back_with_a_birth(
    requester: Requester, make_fleet: Callable[..., Fleet]
) -> None:
    fleet = make_fleet(
        faults=plan(
            disconnect=(
                DisconnectFault(Selector("gw-0001", "bundle-stop"), after=0.0, reconnect=0.3),
            )
        )
    )
    requester.wait_lifecycle("gw-0001", "BIRTH")
    unanswered = requester.send("gw-0001", "DEPLOY-V2", "EXEC", "stop", "42")
    (will,) = requester.wait_lifecycle("gw-0001", "LWT")
    assert will.raw == b""  # Kura's default lwt.payload, published by the broker
    requester.wait_lifecycle("gw-0001", "BIRTH", count=2)
    assert requester.replies(unanswered) == []
    assert fleet.device("gw-0001").state.bundles[42].state == "ACTIVE"  # never done
    assert stop_42(requester, "gw-0001") == 200  # the fault fires once


def test_a_shared_mode_device_dropping_during_a_download_loses_its_notifications(
    requester: Requester, make_fleet: Callable[..., Fleet]
) -> None:
    fleet = make_fleet(
        mode="shared",
        faults=plan(
            disconnect=(
                DisconnectFault(Selector("gw-0001", "download"), after=0.08, reconnect=0.6),
            )
        ),
    )
    assert (
        requester.call("gw-0001", "DEPLOY-V2", "EXEC", "download", metrics=download_metrics()).code
        == 200
    )
    requester.wait_lifecycle("gw-0001", "LWT")
    assert fleet.wait_for(lambda: fleet.device("gw-0001").state.download is None, WAIT)
    requester.wait_lifecycle("gw-0001", "BIRTH", count=2)
    statuses = [
        n.value("dp.download.status") for n in requester.notifications("gw-0001", "download")
    ]
    assert statuses and "COMPLETED" not in statuses
    assert requester.notifications("gw-0001", "install") == []
    # What it missed, the runner can ask for: the package is installed.
    status = requester.call("gw-0001", "DEPLOY-V2", "GET", "download")
    assert status.value("dp.download.status") == "ALREADY DONE"
    assert (
        fleet.device("gw-0001").state.packages["org.eclipse.kura.driver.modbus"].version == "1.2.0"
    )


def test_a_device_offline_at_start_connects_later(
    requester: Requester, make_fleet: Callable[..., Fleet]
) -> None:
    fleet = make_fleet(faults=plan(offline=(OfflineFault("gw-0002", 0.3), OfflineFault("gw-0003"))))
    assert set(fleet.online()) == {"gw-0001"}
    requester.wait_lifecycle("gw-0002", "BIRTH")
    assert set(fleet.online()) == {"gw-0001", "gw-0002"}
    fleet.connect("gw-0003")
    requester.wait_lifecycle("gw-0003", "BIRTH")
    assert stop_42(requester, "gw-0003") == 200


def test_a_stray_notification_names_an_operation_nobody_asked_for(
    requester: Requester, make_fleet: Callable[..., Fleet]
) -> None:
    make_fleet(faults=plan(stray=(StrayFault("gw-0001", "install", 0.05),)))
    stop_42(requester, "gw-0001")
    (stray,) = requester.wait(lambda _: requester.notifications("gw-0001", "install"))
    assert stray.value("dp.install.status") == "COMPLETED"
    assert stray.kind("job.id") == "INT64" and stray.value("job.id") != 9_000_000_001
