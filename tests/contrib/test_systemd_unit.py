"""contrib/jobrunner.service: `systemd-analyze verify` finds nothing to say about it, and what it
asks of jobrunner (options, notify, directories, credentials) is what jobrunner does."""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from jobrunner.cli.configfile import SYSTEMD_CREDENTIALS
from jobrunner.cli.main import cli
from jobrunner.engine.core.executions import DRAIN

from .conftest import CONTRIB

UNIT = CONTRIB / "jobrunner.service"
INSTALLED_AT = "/opt/jobrunner/bin/jobrunner"


def verify(unit: Path) -> subprocess.CompletedProcess[str]:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian: apt-get install systemd)")
    return subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )


def installed(tmp_path: Path, text: str) -> Path:
    """The unit as installed here: its ExecStart names this environment's jobrunner (verify
    checks that the command exists)."""
    command = Path(sys.executable).parent / "jobrunner"
    if not command.exists():
        pytest.skip(f"no jobrunner command beside {sys.executable}: pip install . first")
    unit = tmp_path / "jobrunner.service"
    unit.write_text(text.replace(INSTALLED_AT, str(command)))
    return unit


def test_systemd_analyze_verify_has_nothing_to_say(tmp_path: Path) -> None:
    text = UNIT.read_text()
    assert INSTALLED_AT in text
    result = verify(installed(tmp_path, text))
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_verify_would_see_a_mistake(tmp_path: Path) -> None:
    broken = (
        UNIT.read_text()
        .replace("Type=notify", "Type=notfy")
        .replace("ProtectHome=yes", "ProtectHomes=yes")
    )
    result = verify(installed(tmp_path, broken))
    assert "Failed to parse service type" in result.stderr
    assert "Unknown key 'ProtectHomes'" in result.stderr


def test_what_the_unit_asks_is_what_jobrunner_does() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are cased
    unit.read_string(UNIT.read_text())
    service = unit["Service"]
    assert service["Type"] == "notify"  # jobrunner.engine.service.systemd tells READY=1
    assert int(service["WatchdogSec"]) > 0  # fed from the loop at half the interval
    assert service["StateDirectory"] == "jobrunner"  # $STATE_DIRECTORY: the default state
    assert service["LoadCredential"].startswith(f"{SYSTEMD_CREDENTIALS}:")
    for hardening in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "DynamicUser"):
        assert service[hardening] == "yes", hardening
    assert service["ProtectSystem"] == "strict"
    # Its command line is one jobrunner accepts (an unknown option fails even before --help).
    command = shlex.split(service["ExecStart"])
    assert command[0] == INSTALLED_AT
    result = CliRunner().invoke(cli, [*command[1:], "--help"])
    assert result.exit_code == 0, result.output
    assert "--drain" not in command  # the default drain ...
    assert float(service["TimeoutStopSec"]) > DRAIN  # ... fits in the stop timeout
