"""`jobrunner simulate`: its help, its errors, and a short run against a real broker."""

from __future__ import annotations

import signal
import subprocess
import sys

from click.testing import CliRunner

from jobrunner.cli.simulate import simulate
from jobrunner.simulator.broker import RunningBroker
from jobrunner.simulator.operations import GROUPS, OPERATIONS
from tests.simulator.conftest import Requester


def test_help_reads_like_a_manual_and_lists_every_operation() -> None:
    result = CliRunner().invoke(simulate, ["--help"], terminal_width=100)
    assert result.exit_code == 0
    for words in (
        "Connection modes:",
        "per-device",
        "shared",
        "Faults",
        "Examples:",
        "--fail-rate",
        "--disconnect",
        "--offline",
        "--stray",
        "CERT-V1",
        "ANSIBLE-V1",
    ):
        assert words in result.output
    for name in (*OPERATIONS, *GROUPS):
        assert name in result.output, name


def test_a_wrong_fault_or_broker_is_a_usage_error() -> None:
    result = CliRunner().invoke(simulate, ["--fail", "gw-0001:explode"])
    assert result.exit_code == 2 and "unknown operation 'explode'" in result.output
    result = CliRunner().invoke(simulate, ["--broker", "http://example.com"])
    assert result.exit_code == 2 and "has scheme 'http'; write mqtt://host:port" in result.output
    result = CliRunner().invoke(simulate, ["--apps", "gw-0001=CMD-V1,NOPE-V9"])
    assert result.exit_code == 2 and "NOPE-V9" in result.output
    result = CliRunner().invoke(simulate, ["--kura-version", "KURA_5.5.0"])
    assert result.exit_code == 2
    assert "'KURA_5.5.0': write DEVICES=VERSION, e.g. 'gw-000[1-4]=KURA_5.5.0'" in result.output


def test_an_unreachable_broker_is_a_clear_error() -> None:
    result = CliRunner().invoke(simulate, ["-n", "1", "--broker", "mqtt://127.0.0.1:9"])
    assert result.exit_code == 1
    assert "cannot reach the broker at 127.0.0.1:9" in result.output


def _simulate(broker: RunningBroker, account: str, *options: str) -> list[str]:
    return [
        sys.executable, "-c", "from jobrunner.cli.simulate import simulate; simulate()",
        "--broker", broker.url, "--account", account, *options,
    ]  # fmt: skip


def test_it_runs_a_fleet_with_its_faults_and_stops_with_dc(
    broker: RunningBroker, account: str
) -> None:
    requester = Requester(broker, account)
    command = _simulate(
        broker, account, "-n", "3", "--fail", "gw-0002:bundle-stop=400", "--legacy", "gw-0003",
        "--kura-version", "gw-000[13]=KURA_5.5.0",
    )  # fmt: skip
    try:
        with subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        ) as process:
            try:
                assert process.stdout is not None and process.stderr is not None
                first = process.stdout.readline()
                assert first.startswith("fleet up in "), first + process.stderr.read()
                assert "3 simulated devices (gw-0001..gw-0003)" in first
                births = {
                    device: requester.wait_lifecycle(device, "BIRTH")[0].payload.metrics
                    for device in ("gw-0001", "gw-0002", "gw-0003")
                }
                versions = {d: m["kura_version"].value for d, m in births.items()}
                assert versions == {
                    "gw-0001": "KURA_5.5.0",
                    "gw-0002": "KURA_5.4.1",
                    "gw-0003": "KURA_5.5.0",  # a legacy gateway, with the version it was given
                }
                assert births["gw-0003"]["model_id"].value == "RPI-3B"
                assert requester.call("gw-0002", "DEPLOY-V2", "EXEC", "stop", "42").code == 400
                assert requester.call("gw-0001", "DEPLOY-V2", "EXEC", "stop", "42").code == 200
                legacy = requester.send("gw-0003", "KEYS-V1", "GET", "keystores")
                requester.answered_in_order("gw-0003")
                assert requester.replies(legacy) == []  # no KEYS-V1 on an older gateway
                process.send_signal(signal.SIGTERM)  # the fleet runs until told to stop
                assert process.wait(30) == 0
                output = process.stdout.read()
                assert "fleet stopped: 3 devices disconnected, 4 requests received" in output
            finally:
                if process.poll() is None:
                    process.kill()
        requester.wait(lambda _: len(requester.lifecycle(kind="DC")) == 3)
    finally:
        requester.close()


def test_run_for_ends_the_fleet_by_itself_with_dc(broker: RunningBroker, account: str) -> None:
    requester = Requester(broker, account)
    try:
        result = subprocess.run(
            _simulate(broker, account, "-n", "2", "--run-for", "1s"),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "fleet stopped: 2 devices disconnected" in result.stdout
        requester.wait(lambda _: len(requester.lifecycle(kind="DC")) == 2)
    finally:
        requester.close()


def test_sigterm_stops_the_fleet_with_dc_and_exit_0(broker: RunningBroker, account: str) -> None:
    requester = Requester(broker, account)
    command = _simulate(broker, account, "-n", "2")
    try:
        with subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        ) as process:
            try:
                assert process.stdout is not None and process.stderr is not None
                first = process.stdout.readline()
                assert first.startswith("fleet up in "), first + process.stderr.read()
                requester.wait_lifecycle("gw-0002", "BIRTH")
                process.send_signal(signal.SIGTERM)
                assert process.wait(30) == 0
                assert "fleet stopped: 2 devices disconnected" in process.stdout.read()
            finally:
                if process.poll() is None:
                    process.kill()
        requester.wait(lambda _: len(requester.lifecycle(kind="DC")) == 2)
        assert requester.lifecycle(kind="LWT") == []
    finally:
        requester.close()
