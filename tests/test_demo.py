"""The README's first command: `jobrunner demo` runs a rollout end to end and exits 0."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from jobrunner.cli.demo import INSTALLED_EXAMPLES, command_again, examples_dir
from jobrunner.cli.main import cli

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.integration


def test_demo_rolls_out_the_examples_with_the_expected_final_statuses(tmp_path: Path) -> None:
    state = tmp_path / "state"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "jobrunner",
            "demo",
            "--state-dir",
            str(state),
            "--timeout",
            "90",
        ],
        cwd=tmp_path,  # outside the checkout: the examples installed with the package
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr[-3000:]
    assert f"state written to {state}" in completed.stderr
    # the commands it prints work as printed, in the same shell
    printed = completed.stderr.split(f"state written to {state}\n")[1].splitlines()[0]
    again = subprocess.run(
        printed.strip(),
        shell=True,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert again.returncode == 0, (printed, again.stderr)
    assert "acme/modbus-driver-1.2" in again.stdout
    # the daemon served the dashboard where the demo said
    url = re.search(r"dashboard: (http://127\.0\.0\.1:\d+/)", completed.stderr)
    assert url is not None, completed.stderr[-3000:]
    assert f"dashboard: {url.group(1)}" in (state.parent / "watch.log").read_text()
    # not a terminal: one line per event, prefixed by the job
    assert "acme/modbus-driver-1.2 " in completed.stderr and "sent DEPLOY-V2" in completed.stderr

    result = CliRunner().invoke(
        cli, ["status", "acme/modbus-driver-1.2", "-o", "json", "--state-dir", str(state)]
    )
    view = json.loads(result.output)
    statuses = {t["clientId"]: (t["stepIndex"], t["status"]) for t in view["targets"]}
    assert statuses.pop("gw-0011") == (0, "PROCESS_FAILED"), "it rejects the bundle stop"
    assert set(statuses.values()) == {(2, "PROCESS_OK")}, "gw-0012 too, once it connected"
    triggers = [e["trigger"] for e in view["executions"]]
    assert triggers == ["run (2026-11-27-1)", "device-connect (gw-0012)"]

    # The OPC UA rollout: its canary (the test benches) fails, no production bridge is touched.
    result = CliRunner().invoke(
        cli, ["status", "acme/opcua-bridge-3.0", "-o", "json", "--state-dir", str(state)]
    )
    view = json.loads(result.output)
    assert [e["status"] for e in view["executions"]] == ["ABORTED"]
    assert view["rollout"]["state"] == "aborted"
    bridges = [t for t in view["targets"] if t["clientId"] in ("gw-0004", "gw-0008", "gw-0014")]
    assert [(t["stepIndex"], t["status"]) for t in bridges] == [(0, "PROCESS_AWAITING")] * 3
    assert all(t["message"].startswith("not started: the execution was aborted") for t in bridges)

    # The publisher's put took a snapshot first, and was read back once applied.
    result = CliRunner().invoke(
        cli, ["status", "acme/cloud-publisher-tuning", "-o", "json", "--state-dir", str(state)]
    )
    view = json.loads(result.output)
    assert {(t["stepIndex"], t["status"]) for t in view["targets"]} == {(1, "PROCESS_OK")}
    assert all(t["snapshot"]["rollback"] is None for t in view["targets"])
    result = CliRunner().invoke(
        cli, ["logs", "acme/cloud-publisher-tuning", "--state-dir", str(state)]
    )
    assert "read back as written: org.eclipse.kura.cloud.publisher" in result.output

    # Each utilities gateway got its own NTP server and Modbus address, frozen with it.
    result = CliRunner().invoke(
        cli, ["status", "acme/site-settings", "-o", "json", "--state-dir", str(state)]
    )
    view = json.loads(result.output)
    assert {(t["stepIndex"], t["status"]) for t in view["targets"]} == {(0, "PROCESS_OK")}
    values = {t["clientId"]: t["values"] for t in view["targets"]}
    assert values["gw-0021"] == {
        "device.vars.modbusAddress": "192.168.21.10",
        "device.vars.modbusPort": 5020,
        "device.vars.ntpServer": "10.20.0.2",
    }


def test_the_commands_it_prints_name_the_jobrunner_that_ran(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = tmp_path / ".venv" / "bin" / "jobrunner"
    script.parent.mkdir(parents=True)
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # .venv/bin is not on it, as after make demo
    monkeypatch.setattr(sys, "argv", [str(script), "demo"])
    assert command_again() == ".venv/bin/jobrunner"
    monkeypatch.setenv("PATH", f"{script.parent}:/usr/bin:/bin")  # an activated environment
    assert command_again() == "jobrunner"
    monkeypatch.setattr(sys, "argv", ["/somewhere/jobrunner/__main__.py", "demo"])
    assert command_again().endswith(" -m jobrunner")


def test_the_examples_ship_with_the_package_and_the_checkout_links_to_them(
    tmp_path: Path,
) -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    shipped = pyproject["tool"]["setuptools"]["package-data"]["jobrunner"]
    package = ROOT / "jobrunner"
    examples = sorted(INSTALLED_EXAMPLES.rglob("*.yaml"))
    assert examples, "the examples are in the package"
    for file in examples:
        relative = file.relative_to(package)
        assert any(relative.match(pattern) for pattern in shipped), relative
    assert (ROOT / "jobs.d").resolve() == INSTALLED_EXAMPLES
    assert examples_dir(tmp_path) == INSTALLED_EXAMPLES  # nowhere near a checkout
    (tmp_path / "jobs.d").mkdir()
    (tmp_path / "jobs.d" / "mine.yaml").write_text("apiVersion: jobrunner/v1\n")
    assert examples_dir(tmp_path) == tmp_path / "jobs.d"  # the operator's own come first
