"""contrib/Containerfile: a non-root image with its state in a volume, whose health check
asks /livez, and whose command is one jobrunner accepts; built when a builder is at hand."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from jobrunner.cli.main import cli
from tests.web.conftest import Served

from .conftest import CONTRIB

CONTAINERFILE = CONTRIB / "Containerfile"
ROOT = CONTRIB.parent


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the final stage, continuation lines joined."""
    text = CONTAINERFILE.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    found = [tuple(line.split(None, 1)) for line in lines if line and not line.startswith("#")]
    stages = [i for i, (word, *_) in enumerate(found) if word == "FROM"]
    return [(word.upper(), rest) for word, rest in found[stages[-1] :]]


def argument(name: str) -> str:
    (value,) = [rest for word, rest in instructions() if word == name]
    return value


def healthcheck_code() -> str:
    command = json.loads(argument("HEALTHCHECK").split("CMD", 1)[1])
    assert command[:2] == ["python", "-c"]
    code: str = command[2]
    return code


def test_the_image_runs_as_a_user_with_its_state_in_a_volume() -> None:
    user = argument("USER")
    assert user not in ("root", "0")
    assert json.loads(argument("VOLUME")) == ["/var/lib/jobrunner"]
    env = argument("ENV")
    assert "JOBRUNNER_STATE_DIR=/var/lib/jobrunner" in env
    assert "/livez" in argument("HEALTHCHECK")


def test_its_command_is_one_jobrunner_accepts() -> None:
    entry = json.loads(argument("ENTRYPOINT"))
    command = json.loads(argument("CMD"))
    assert entry == ["jobrunner"]
    assert command[:3] == ["watch", "--http", "0.0.0.0:8080"]
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0, result.output


def test_the_health_check_passes_while_the_loop_turns_and_fails_when_it_stops(
    served: Served,
) -> None:
    code = healthcheck_code().replace("http://127.0.0.1:8080", served.url)
    assert served.url in code

    def check() -> int:
        return subprocess.run(
            [sys.executable, "-c", code], capture_output=True, timeout=30, check=False
        ).returncode

    assert check() == 0
    served.dashboard.health.clock = lambda: time.monotonic() + 3600  # its heartbeat is stale
    try:
        assert check() != 0
    finally:
        served.dashboard.health.clock = time.monotonic


def test_the_image_builds_and_its_command_runs(tmp_path: Path) -> None:
    docker = shutil.which("docker") or shutil.which("podman")
    if docker is None:
        pytest.skip("neither docker nor podman is installed")
    usable = subprocess.run(
        [docker, "info"], capture_output=True, text=True, timeout=60, check=False
    )
    if usable.returncode != 0:
        reason = (usable.stderr.strip().splitlines() or ["no answer"])[-1]
        pytest.skip(f"{docker} cannot build here: {reason}")
    tag = f"jobrunner-test:{int(time.time())}"
    built = subprocess.run(
        [docker, "build", "-f", str(CONTAINERFILE), "-t", tag, str(ROOT)],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert built.returncode == 0, built.stdout[-4000:] + built.stderr[-4000:]
    try:
        run = subprocess.run(
            [docker, "run", "--rm", tag, "watch", "--help"],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert run.returncode == 0, run.stderr
        assert "--log-format" in run.stdout
        user = subprocess.run(
            [docker, "run", "--rm", "--entrypoint", "id", tag, "-u"],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert user.stdout.strip() not in ("", "0"), shlex.join(user.args)
    finally:
        subprocess.run([docker, "rmi", "-f", tag], capture_output=True, timeout=300, check=False)
