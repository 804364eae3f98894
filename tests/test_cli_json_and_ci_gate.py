"""`-o json` of validate, plan and config, and the README's pull-request gate as written."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from jobrunner.cli.main import cli

ROOT = Path(__file__).resolve().parents[1]
JOB = """\
apiVersion: jobrunner/v1
kind: Job
metadata: {name: rollout, scope: acme}
spec:
  targets: {devices: [gw-0001]}
  steps:
    - {name: stop, definition: Bundle Stop, properties: {bundleId: 42}}
"""


def _jobs(tmp_path: Path, text: str = JOB) -> Path:
    folder = tmp_path / "jobs.d"
    folder.mkdir(exist_ok=True)
    (folder / "job.yaml").write_text(text)
    (tmp_path / "state").mkdir(exist_ok=True)
    return folder


def test_validate_json_lists_every_diagnostic(tmp_path: Path) -> None:
    folder = _jobs(tmp_path, JOB.replace("bundleId", "bundleID"))

    result = CliRunner().invoke(cli, ["validate", str(folder), "-o", "json"])

    assert result.exit_code == 1
    found = json.loads(result.output)
    assert found["errors"] == 2 and found["files"] == [str(folder / "job.yaml")]
    error = next(d for d in found["diagnostics"] if d["message"].startswith("unknown key"))
    assert error == {
        "file": str(folder / "job.yaml"),
        "line": 7,
        "severity": "error",
        "message": "unknown key 'bundleID'; did you mean 'bundleId'?",
    }


def test_plan_json_has_every_job_and_the_exit_code(tmp_path: Path) -> None:
    folder = _jobs(tmp_path)

    result = CliRunner().invoke(
        cli, ["plan", "--jobs-dir", str(folder), "--state-dir", str(tmp_path / "state"),
              "-o", "json"],
    )  # fmt: skip

    assert result.exit_code == 2
    found = json.loads(result.output)
    assert found["exitCode"] == 2
    (job,) = found["jobs"]
    assert (job["scope"], job["name"], job["action"]) == ("acme", "rollout", "create")
    assert job["targets"] == ["gw-0001"] and job["conflict"] is None


def test_config_json_gives_each_setting_with_its_source(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["config", "-o", "json", "--scope", "acme"], env={"JOBRUNNER_MAX_IN_FLIGHT": "50"}
    )

    assert result.exit_code == 0
    found = json.loads(result.output)
    assert found["scope"] == {"value": "acme", "source": "flag"}
    assert found["maxInFlight"] == {"value": 50, "source": "environment"}


def test_config_masks_the_dashboard_token() -> None:
    env = {"JOBRUNNER_HTTP": "0.0.0.0:8080", "JOBRUNNER_HTTP_TOKEN": "hunter2-token"}
    result = CliRunner().invoke(cli, ["config", "-o", "json"], env=env)
    assert result.exit_code == 0
    found = json.loads(result.output)
    assert found["http"]["value"] == "0.0.0.0:8080"
    assert found["httpToken"]["value"] == "***"
    assert "hunter2-token" not in result.output


def _readme_gate() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = text.split("### In CI: plan as a pull-request gate", 1)[1]
    code = re.search(r"```sh\n(.*?)```", block, re.S)
    assert code is not None
    return [line for line in code.group(1).splitlines() if line.strip()]


def test_the_readme_gate_passes_a_change_and_fails_an_error(tmp_path: Path) -> None:
    """The snippet as the README prints it, in a checkout with jobs.d/ (the state directory
    stands in for the runner's)."""
    folder = _jobs(tmp_path)
    script = "set -e\n" + "\n".join(_readme_gate()).replace("/var/lib/jobrunner", "state")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}

    def gate() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["sh", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
            check=False,
        )  # fmt: skip

    changed = gate()
    assert changed.returncode == 0, changed.stdout + changed.stderr
    assert "+ create" in changed.stdout

    (folder / "job.yaml").write_text(JOB.replace("bundleId", "bundleID"))
    assert gate().returncode != 0
