"""The command line's surface: every command's options pinned, `--help` cheap to run, and the
listing of `jobrunner --help` alike each command's own first line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click

from jobrunner.cli.main import COMMANDS, cli

SNAPSHOT = Path(__file__).with_name("cli_surface.json")


def _surface(group: click.Group, path: str = "") -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    context = click.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        assert command is not None
        label = f"{path} {name}".strip()
        if isinstance(command, click.Group):
            found.update(_surface(command, label))
            continue
        found[label] = sorted(_shown(param) for param in command.params)
    return found


def _shown(param: click.Parameter) -> str:
    if not isinstance(param, click.Option):
        return f"<{param.name}>"
    name = "/".join(param.opts)
    if param.expose_value:
        return name
    return f"{name} (read by the group)" if name in ("--config", "--debug") else f"{name} (ignored)"


def test_every_command_keeps_its_options() -> None:
    """A renamed or dropped option breaks scripts: change the snapshot only on purpose
    (regenerate it with `python -c 'from tests.test_cli_surface import write; write()'`)."""
    assert _surface(cli) == json.loads(SNAPSHOT.read_text())


def write() -> None:
    SNAPSHOT.write_text(json.dumps(_surface(cli), indent=2) + "\n")


def test_the_help_listing_says_what_each_command_says_of_itself() -> None:
    context = click.Context(cli)
    for name, (_, short) in COMMANDS.items():
        command = cli.get_command(context, name)
        assert command is not None and command.help is not None
        assert command.help.strip().splitlines()[0] == short, name


def test_help_imports_neither_the_engine_nor_the_simulator_nor_paho() -> None:
    probe = (
        "import sys, contextlib, io\n"
        "from jobrunner.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['--help'])\n"
        "print(sorted(m for m in sys.modules if m.startswith(('jobrunner', 'paho', 'amqtt'))))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded = json.loads(done.stdout.strip().replace("'", '"'))
    heavy = [
        m
        for m in loaded
        if m.startswith(
            ("jobrunner.engine", "jobrunner.simulator", "jobrunner.device", "paho", "amqtt")
        )
    ]
    assert heavy == []
