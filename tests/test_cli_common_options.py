"""DESIGN §4's common options are common: every command takes them, before or after its name."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from jobrunner.cli.main import cli


def _commands(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found: list[tuple[str, ...]] = []
    context = click.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        assert command is not None, name
        if isinstance(command, click.Group):
            found.extend(_commands(command, (*path, name)))
        else:
            found.append((*path, name))
    return found


COMMON = [
    "--jobs-dir", "somewhere/jobs.d", "--state-dir", "somewhere/state",
    "--broker", "mqtt://127.0.0.1:1", "--scope", "acme", "--debug",
]  # fmt: skip


@pytest.mark.parametrize("command", _commands(cli), ids=" ".join)
def test_every_command_accepts_the_common_options(command: tuple[str, ...], tmp_path: Path) -> None:
    config = tmp_path / "jobrunner.yaml"
    config.write_text("scope: acme\n")
    # --help comes last: an option the command does not know fails the parse before it.
    result = CliRunner().invoke(cli, [*command, *COMMON, "--config", str(config), "--help"])
    assert result.exit_code == 0, result.output
    assert "No such option" not in result.output


def test_config_and_debug_after_the_command_are_honoured(tmp_path: Path) -> None:
    config = tmp_path / "elsewhere.yaml"
    config.write_text("scope: from-the-file\nmaxInFlight: 17\n")

    result = CliRunner().invoke(cli, ["config", "--config", str(config)])

    assert result.exit_code == 0, result.output
    assert "from-the-file" in result.output and "(configuration file)" in result.output
    assert "17" in result.output


def test_a_missing_config_file_named_after_the_command_is_an_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["cron", "next", "0 0 * * * ?", "--config", "/nowhere.yaml"])

    assert result.exit_code == 1
    assert "cannot read the configuration file /nowhere.yaml" in result.output


def test_a_mistyped_command_or_option_gets_a_suggestion_in_a_sentence() -> None:
    result = CliRunner().invoke(cli, ["stauts"])
    assert result.exit_code == 2
    assert "no such command 'stauts'; did you mean 'status'?" in result.output

    result = CliRunner().invoke(cli, ["cron", "nxt"])
    assert "no such command 'nxt'; did you mean 'next'?" in result.output

    result = CliRunner().invoke(cli, ["status", "--stat-dir", "x"])
    assert result.exit_code == 2
    assert "no such option --stat-dir; did you mean --state-dir?" in result.output
