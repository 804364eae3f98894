"""The command line's habits over a recorded state: completion of job names and client ids,
CSV and JSON for scripts, short status names, the wave filter, a stop of a job that does not
run, one error prefix. The state is recorded by the engine over its in-memory link."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from jobrunner.cli.main import cli

from .conftest import FakeClock
from .rollout.test_rollout_in_memory import Fleet, World, at, start, until_ended

WAVES = "waves:\n  - {name: canary, devices: [gw-07]}\n  - {name: rest}\nsuccessThreshold: 50%\n"


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A job of 10 targets in two waves, two of which failed, run to its end."""
    root = tmp_path_factory.mktemp("habits")
    clock = FakeClock(at("2027-01-10T12:00:00Z"))
    world = World(root, clock, Fleet(clock, failing={"gw-02", "gw-05"}))
    world.job(WAVES)
    with world.runner() as runner:
        until_ended(runner, clock, start(runner))
    yield world


def run(world: World, *args: str) -> tuple[int, str, str]:
    result = CliRunner(mix_stderr=False).invoke(
        cli, [*args, "--state-dir", str(world.root / "state"), "--scope", "acme"]
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.stdout, result.stderr


def test_status_of_a_job_as_csv_has_a_row_per_target(recorded: World) -> None:
    code, out, _ = run(recorded, "status", "rollout", "-o", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 10
    assert list(rows[0]) == [
        "clientId", "wave", "stepIndex", "step", "status", "attempts", "message",
    ]  # fmt: skip
    by_id = {r["clientId"]: r for r in rows}
    assert (by_id["gw-07"]["wave"], by_id["gw-07"]["status"]) == ("canary", "PROCESS_OK")
    assert by_id["gw-02"]["status"] == "PROCESS_FAILED"
    assert "bundle not found" in by_id["gw-02"]["message"]

    code, out, _ = run(recorded, "status", "-o", "csv")
    (job,) = list(csv.DictReader(io.StringIO(out)))
    assert (job["name"], job["targets"], job["PROCESS_OK"], job["PROCESS_FAILED"]) == (
        "rollout", "10", "8", "2",
    )  # fmt: skip
    assert (job["lastExecution"], job["lastStatus"]) == ("1", "TERMINATED")


def test_status_filters_by_short_status_names_and_by_wave(recorded: World) -> None:
    code, out, _ = run(recorded, "status", "rollout", "--status", "failed", "-o", "json")
    assert code == 0
    assert sorted(t["clientId"] for t in json.loads(out)["targets"]) == ["gw-02", "gw-05"]
    code, out, _ = run(recorded, "status", "rollout", "--status", "PROCESS_OK", "--wave", "canary")
    assert code == 0 and "gw-07" in out and "gw-01" not in out.split("TARGET")[-1]

    code, _, err = run(recorded, "status", "rollout", "--status", "fialed")
    assert code == 2
    assert "'fialed' is not a target status; did you mean 'failed'?" in err
    code, _, err = run(recorded, "status", "rollout", "--wave", "canry")
    assert code == 2
    assert "job acme/rollout has no wave 'canry'; did you mean 'canary'?" in " ".join(err.split())


def test_logs_of_one_target_and_as_json(recorded: World) -> None:
    code, out, _ = run(recorded, "logs", "rollout", "--target", "gw-02")
    assert code == 0
    lines = out.splitlines()
    assert lines and all(" target gw-02 " in line for line in lines)
    assert any("PROCESS_FAILED" in line for line in lines)

    code, out, _ = run(recorded, "logs", "rollout", "-o", "json")
    records = [json.loads(line) for line in out.splitlines()]
    assert records[0]["subject"] == "execution" and records[0]["target"] is None
    assert {r["target"] for r in records} >= {"gw-02", "gw-07"}
    assert all(set(r) == {"time", "subject", "target", "message"} for r in records)


def test_a_stop_of_a_job_that_does_not_run_says_so_and_is_no_error(recorded: World) -> None:
    code, out, err = run(recorded, "stop", "rollout", "--broker", "mqtt://127.0.0.1:1")
    assert code == 0, err
    assert "job acme/rollout has no running execution; its last execution, 1, ended" in out


def test_every_error_has_one_prefix(recorded: World) -> None:
    code, _, err = run(recorded, "logs", "rollout", "--execution", "9")
    assert code == 1 and err.startswith("error: job acme/rollout has no execution 9")
    code, _, err = run(recorded, "status", "--stat-dir", "x")
    assert code == 2 and "error: no such option --stat-dir; did you mean --state-dir?" in err
    assert "Error:" not in err


def _complete(world: World, words: str) -> list[str]:
    """What bash's completion would offer, asked of `jobrunner` as the script asks it."""
    env = {
        **os.environ,
        "_JOBRUNNER_COMPLETE": "bash_complete",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split(" ")) - 1),
        "JOBRUNNER_STATE_DIR": str(world.root / "state"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "jobrunner"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [line.split(",", 1)[1] for line in done.stdout.splitlines()]


def test_completion_offers_job_names_and_client_ids_from_the_state(recorded: World) -> None:
    assert _complete(recorded, "jobrunner status ro") == ["rollout"]
    assert _complete(recorded, "jobrunner stop acme/") == ["acme/rollout"]
    assert _complete(recorded, "jobrunner start rollout --target gw-0") == [
        f"gw-{n:02d}" for n in range(1, 10)
    ]
    assert _complete(recorded, "jobrunner sta") == ["start", "status"]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_the_completion_script_of_each_shell(shell: str) -> None:
    result = CliRunner(mix_stderr=False).invoke(cli, ["completion", shell])
    assert result.exit_code == 0
    assert "_JOBRUNNER_COMPLETE" in result.output
    if shell == "bash":  # and bash takes it
        done = subprocess.run(
            ["bash", "-c", f"{result.output}\ncomplete -p jobrunner"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0 and "_jobrunner_completion" in done.stdout, done.stderr


def test_a_bad_broker_url_exits_2_with_the_url_probably_meant(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    result = CliRunner(mix_stderr=False).invoke(
        cli, ["reconcile", "--broker", "htp://localhost:18831", "--state-dir", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "did you mean mqtt://localhost:18831?" in result.stderr
    result = CliRunner(mix_stderr=False).invoke(
        cli, ["reconcile", "--broker", "localhost:18831", "--state-dir", str(tmp_path)]
    )
    assert result.exit_code == 2 and "did you mean mqtt://localhost:18831?" in result.stderr


def test_a_mistyped_configuration_key_is_refused_and_config_still_shows_the_rest(
    tmp_path: Path,
) -> None:
    config = tmp_path / "jobrunner.yaml"
    config.write_text("brokr: mqtt://x:1\nscope: plant\n")
    result = CliRunner(mix_stderr=False).invoke(cli, ["status", "--config", str(config)])
    assert result.exit_code == 2
    assert f"error: {config}: unknown setting 'brokr'; did you mean 'broker'?" in result.stderr
    result = CliRunner(mix_stderr=False).invoke(cli, ["config", "--config", str(config)])
    assert result.exit_code == 2
    assert "plant" in result.stdout and "(configuration file)" in result.stdout
    assert "unknown setting 'brokr'" in result.stderr
