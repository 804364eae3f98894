"""`jobrunner validate` as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from jobrunner.cli.main import cli

ROOT = Path(__file__).resolve().parents[1]


def test_examples_validate_with_exit_0() -> None:
    result = CliRunner().invoke(cli, ["validate", str(ROOT / "jobs.d")])
    assert result.exit_code == 0, result.output
    assert "0 error(s)" in result.output


def test_errors_print_file_line_message_and_exit_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: jobrunner/v1\nkind: Jbo\n")
    result = CliRunner().invoke(cli, ["validate", str(tmp_path)])
    assert result.exit_code == 1
    assert f"{bad}:2: unknown kind 'Jbo'; did you mean 'Job'?" in result.output


def test_github_output_annotates_each_problem_on_its_line(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("apiVersion: jobrunner/v1\nkind: Jbo\n")
    (tmp_path / "empty, 100%.yaml").write_text("")
    done = subprocess.run(
        [sys.executable, "-m", "jobrunner", "validate", ".", "-o", "github"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        "::error file=bad.yaml,line=2,title=jobrunner validate::unknown kind 'Jbo'; did you"
        " mean 'Job'?",
        "::warning file=empty%2C 100%25.yaml,line=1,title=jobrunner validate::the file holds no"
        " manifest documents",
    ]


def test_warnings_alone_do_not_fail(tmp_path: Path) -> None:
    (tmp_path / "empty.yaml").write_text("")
    result = CliRunner().invoke(cli, ["validate", str(tmp_path)])
    assert result.exit_code == 0
    assert "warning: the file holds no manifest documents" in result.output


def test_jobs_dir_option_and_environment_variable(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("- 1\n")
    by_option = CliRunner().invoke(cli, ["validate", "--jobs-dir", str(tmp_path)])
    by_env = CliRunner().invoke(cli, ["validate"], env={"JOBRUNNER_JOBS_DIR": str(tmp_path)})
    assert by_option.exit_code == by_env.exit_code == 1


def test_python_dash_m_runs_the_same_command() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "jobrunner", "validate", str(ROOT / "jobs.d")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr


def test_help_reads_like_a_manual() -> None:
    result = CliRunner().invoke(cli, ["validate", "--help"])
    assert result.exit_code == 0
    assert "FILE:LINE: message" in result.output
    assert "Exit status: 0 when there is no error, 1 when there is at least one." in result.output
