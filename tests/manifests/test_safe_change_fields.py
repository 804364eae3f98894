"""`rollback`, `verify` and `abort: {rollback: true}` as an operator writes them, and each
way of writing them wrong: the message, at its FILE:LINE, and the other jobs still read."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from jobrunner.cli.main import cli

JOB = """\
apiVersion: jobrunner/v1
kind: Job
metadata: {{name: {name}, scope: acme}}
spec:
  targets: {{all: true}}
  steps:
{steps}
"""
GOOD = """\
    - name: ntp
      definition: Configuration Put
      rollback: onFailure
      verify: true
      properties:
        configurations:
          - {pid: org.eclipse.kura.clock.ClockService, properties: {clock.ntp.host: 10.0.0.1}}
    - name: install
      definition: Package Download / Install
      verify: true
      properties: {uri: "http://repo/a.dp", name: a, version: 1.0.0}
"""


def validate(tmp_path: Path, steps: str, extra: str = "") -> tuple[int, str]:
    (tmp_path / "good.yaml").write_text(JOB.format(name="good", steps=GOOD))
    (tmp_path / "bad.yaml").write_text(JOB.format(name="bad", steps=steps) + extra)
    result = CliRunner().invoke(cli, ["validate", str(tmp_path)])
    return result.exit_code, result.output


def test_the_safe_change_fields_validate(tmp_path: Path) -> None:
    rollout = (
        "  rollout:\n"
        "    waves: [{name: canary, size: 1}, {name: rest}]\n"
        "    abort: {rollback: true}\n"
    )
    code, output = validate(tmp_path, GOOD, rollout)
    assert code == 0, output
    assert "2 job(s)" in output and "0 error(s)" in output


def test_a_rollback_other_than_on_failure_is_refused_at_its_line(tmp_path: Path) -> None:
    code, output = validate(tmp_path, GOOD.replace("rollback: onFailure", "rollback: always"))
    assert code == 1
    assert "bad.yaml:9:" in output and "onFailure" in output, output
    assert "1 error(s)" in output  # the good job was read all the same


def test_rollback_is_only_for_a_configuration_put(tmp_path: Path) -> None:
    steps = GOOD.replace(
        "      verify: true\n      properties: {uri",
        "      rollback: onFailure\n      properties: {uri",
    )
    code, output = validate(tmp_path, steps)
    assert code == 1
    assert "bad.yaml:16:" in output and "rollback" in output, output


def test_verify_of_a_download_that_does_not_install_says_why_it_cannot_be(tmp_path: Path) -> None:
    steps = GOOD.replace("version: 1.0.0}", "version: 1.0.0, install: false}")
    code, output = validate(tmp_path, steps)
    assert code == 1
    assert "verify: true checks the installed package, but this step only downloads it" in output
    assert "bad.yaml:" in output


def test_verify_must_be_a_boolean(tmp_path: Path) -> None:
    code, output = validate(
        tmp_path,
        GOOD.replace("verify: true\n      properties:\n", "verify: always\n      properties:\n", 1),
    )
    assert code == 1
    assert "bad.yaml:10:" in output and "verify" in output, output
