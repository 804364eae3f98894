"""CMD-V1 EXEC/command: Kura's CommandCloudApp rules (kura-protocol.md §4.1)."""

from __future__ import annotations

import time
from collections.abc import Callable

from jobrunner.device.payload import Metric
from jobrunner.simulator.config import DeviceProfile
from jobrunner.simulator.fleet import Fleet
from tests.simulator.conftest import Received, Requester


def run(requester: Requester, device: str, command: str, *args: str, **metrics: Metric) -> Received:
    values = {"command.command": Metric.string(command)}
    values.update({f"command.argument{i}": Metric.string(a) for i, a in enumerate(args)})
    values.update({name.replace("_", "."): m for name, m in metrics.items()})
    return requester.call(device, "CMD-V1", "EXEC", "command", metrics=values)


def test_output_exit_code_and_their_types(
    requester: Requester, make_fleet: Callable[..., Fleet]
) -> None:
    make_fleet()
    reply = run(requester, "gw-0002", "uname", "-n")
    assert reply.code == 200
    assert reply.value("command.stdout") == "gw-0002\n"
    assert reply.value("command.stderr") == ""
    assert reply.value("command.exit.code") == 0
    assert reply.value("command.timedout") is False
    assert [reply.kind(n) for n in ("command.stdout", "command.stderr")] == ["STRING", "STRING"]
    assert reply.kind("command.exit.code") == "INT32"
    assert reply.kind("command.timedout") == "BOOL"
    assert run(requester, "gw-0002", "df -h").value("command.stdout").startswith("Filesystem")


def test_non_zero_exit_is_500_with_stderr_as_the_message(
    requester: Requester, make_fleet: Callable[..., Fleet]
) -> None:
    make_fleet()
    failed = run(requester, "gw-0001", "false")
    assert failed.code == 500 and failed.value("command.exit.code") == 1
    assert failed.value("response.exception.message") == ""
    missing = run(requester, "gw-0001", "/opt/nothing/here")
    assert missing.code == 500 and missing.value("command.exit.code") == 127
    assert (
        missing.value("response.exception.message") == "/bin/sh: 1: /opt/nothing/here: not found\n"
    )
    assert missing.value("command.stderr") == missing.value("response.exception.message")


def test_arguments_stop_at_the_first_empty_one_and_environment_at_the_first_missing(
    requester: Requester, make_fleet: Callable[..., Fleet]
) -> None:
    make_fleet()
    echoed = run(requester, "gw-0001", "echo", "a", "b", "", "c")
    assert echoed.value("command.stdout") == "a b\n"
    env = requester.call(
        "gw-0001",
        "CMD-V1",
        "EXEC",
        "command",
        metrics={
            "command.command": Metric.string("env"),
            "command.environment.pair0": Metric.string("LC_ALL=C"),
            "command.environment.pair1": Metric.string("MODE=test"),
            "command.environment.pair3": Metric.string("LOST=yes"),
            "command.working.directory": Metric.string("/var/tmp"),
        },
    )
    assert env.value("command.stdout") == "LC_ALL=C\nMODE=test\n"
    pwd = run(requester, "gw-0001", "pwd", command_working_directory=Metric.string("/var/tmp"))
    assert pwd.value("command.stdout") == "/var/tmp\n"


def test_a_command_longer_than_its_timeout_times_out_with_200_and_no_exit_code(
    requester: Requester, make_fleet: Callable[..., Fleet]
) -> None:
    make_fleet()
    started = time.monotonic()
    reply = run(requester, "gw-0001", "sleep", "30", command_timeout=Metric.int32(1))
    assert time.monotonic() - started >= 0.9  # answered when the timeout struck
    assert reply.code == 200
    assert reply.value("command.timedout") is True
    assert "command.exit.code" not in reply.payload.metrics


def test_a_short_sleep_replies_when_it_is_over(
    requester: Requester, make_fleet: Callable[..., Fleet]
) -> None:
    make_fleet()
    started = time.monotonic()
    reply = run(requester, "gw-0001", "sleep 0.3 && echo done")
    assert time.monotonic() - started >= 0.25
    assert reply.value("command.stdout") == "done\n" and reply.value("command.exit.code") == 0


def test_run_async_replies_at_once_without_output(
    requester: Requester, make_fleet: Callable[..., Fleet]
) -> None:
    make_fleet()
    reply = run(requester, "gw-0001", "sleep", "60", command_run_async=Metric.boolean(True))
    assert reply.code == 200
    assert set(reply.payload.metrics) == {"response.code"}


def test_password_and_blank_command_are_400_and_a_mistyped_metric_500_without_message(
    requester: Requester, make_fleet: Callable[..., Fleet]
) -> None:
    make_fleet(profile=DeviceProfile(command_password="s3cret"))
    assert run(requester, "gw-0001", "true").code == 400
    assert run(requester, "gw-0001", "true", command_password=Metric.string("nope")).code == 400
    assert run(requester, "gw-0001", "true", command_password=Metric.string("s3cret")).code == 200
    blank = run(requester, "gw-0001", "  ", command_password=Metric.string("s3cret"))
    assert blank.code == 400
    mistyped = run(
        requester,
        "gw-0001",
        "true",
        command_password=Metric.string("s3cret"),
        command_timeout=Metric.int64(5),
    )
    assert mistyped.code == 500 and "response.exception.message" not in mistyped.payload.metrics


def test_agent_check_of_the_example_job_sees_the_installed_package(
    requester: Requester, make_fleet: Callable[..., Fleet]
) -> None:
    make_fleet()
    before = run(
        requester, "gw-0001", "/opt/acme/agent/bin/agent-check", "--expect-version", "2.4.0"
    )
    assert before.code == 500
    assert "expected agent 2.4.0, found 2.3.1" in before.value("response.exception.message")
    requester.call(
        "gw-0001",
        "DEPLOY-V2",
        "EXEC",
        "download",
        metrics={
            "dp.uri": Metric.string("https://repo.example.com/agent-2.4.0.dp"),
            "dp.name": Metric.string("com.acme.monitoring.agent"),
            "dp.version": Metric.string("2.4.0"),
            "dp.download.protocol": Metric.string("HTTP"),
            "job.id": Metric.int64(1),
            "dp.install.system.update": Metric.boolean(False),
        },
    )
    requester.wait_notification("gw-0001", "install", "dp.install.status", {"COMPLETED"})
    after = run(
        requester, "gw-0001", "/opt/acme/agent/bin/agent-check", "--expect-version", "2.4.0"
    )
    assert after.code == 200 and after.value("command.stdout").startswith("agent 2.4.0 running")


def test_reboot_goes_offline_with_dc_and_comes_back_with_a_new_birth(
    requester: Requester, make_fleet: Callable[..., Fleet]
) -> None:
    make_fleet()
    requester.wait_lifecycle("gw-0001", "BIRTH")
    assert run(requester, "gw-0001", "reboot").code == 200
    requester.wait_lifecycle("gw-0001", "DC")
    births = requester.wait_lifecycle("gw-0001", "BIRTH", count=2)
    assert int(births[-1].value("uptime")) < 5000
    assert run(requester, "gw-0001", "true").code == 200
