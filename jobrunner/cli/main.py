"""The `jobrunner` command group: thin shells over the library, one module per command family."""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

import click

from jobrunner import __version__
from jobrunner.cli.config import load_config, show_config
from jobrunner.cli.cron import cron
from jobrunner.cli.demo import demo
from jobrunner.cli.devices import devices
from jobrunner.cli.group import Group
from jobrunner.cli.options import accept_common_options, group_options_in
from jobrunner.cli.plan import plan
from jobrunner.cli.run import reconcile, start, stop
from jobrunner.cli.simulate import simulate
from jobrunner.cli.status import logs, status
from jobrunner.cli.validate import validate
from jobrunner.cli.watch import watch

COMMANDS: list[click.Command] = [
    demo,
    validate,
    plan,
    reconcile,
    watch,
    start,
    stop,
    status,
    logs,
    devices,
    simulate,
    cron,
    show_config,
]

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(cls=Group, context_settings=CONTEXT)
@click.version_option(__version__, "--version", prog_name="jobrunner")
@click.option("--debug", is_flag=True, help="Show tracebacks of internal errors.")
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="JOBRUNNER_CONFIG",
    help="Configuration file (default: ./jobrunner.yaml when it exists).",
)
@click.pass_context
def cli(ctx: click.Context, debug: bool, config_file: Path | None) -> None:
    """Run device-management jobs on fleets of Eclipse Kura / ESF gateways, declared in git.

    \b
    Operators commit job manifests (which devices, which operations in which
    order, when) to a jobs directory. jobrunner validates them, reconciles them
    against the state it has recorded, and drives every device over MQTT with
    the Kura request/response protocol, writing each target's status and each
    execution's log back as files in the state directory.

    \b
    Everyday use:
      jobrunner validate              check the manifests (exit 1 on errors)
      jobrunner plan                  show what reconcile would do
      jobrunner reconcile --wait      apply it and run what is due
      jobrunner watch                 the daemon: reconcile on every change
      jobrunner status JOB            targets, executions, schedules of a job
      jobrunner devices               the device registry: connected, last seen, apps

    \b
    Common options of the commands (each also read from the environment):
      --jobs-dir DIR     manifests (default: jobs.d)       JOBRUNNER_JOBS_DIR
      --state-dir DIR    recorded state (default: state)   JOBRUNNER_STATE_DIR
      --broker URL       mqtt://host:port or mqtts://...    JOBRUNNER_BROKER
      --scope NAME       scope of manifests that name none  JOBRUNNER_SCOPE

    Settings come from flags, then JOBRUNNER_* environment variables, then the
    configuration file (jobrunner.yaml); `jobrunner config` shows the result.

    JOB is NAME or SCOPE/NAME. Run `jobrunner COMMAND --help` for each command.
    """
    ctx.ensure_object(dict)
    # `jobrunner status --config F --debug` too: the command's own arguments are read here,
    # before the command parses them, since the file gives that command its defaults.
    late_config, late_debug = group_options_in(ctx.meta.get("jobrunner.args", []))
    ctx.obj["debug"] = debug or late_debug
    loaded = load_config(late_config or config_file)
    ctx.meta["jobrunner.config"] = loaded
    ctx.default_map = loaded.default_map(list(cli.commands))


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script: user errors print a message, never a traceback."""
    args = sys.argv[1:] if argv is None else argv
    try:
        cli.main(args=args, prog_name="jobrunner")
    except SystemExit:
        raise
    except Exception as error:
        if "--debug" in args:
            traceback.print_exc()
        else:
            click.echo(
                f"internal error: {type(error).__name__}: {error}\n"
                "This is a bug in jobrunner; run again with --debug for the traceback"
                " and report it.",
                err=True,
            )
        sys.exit(70)


def _every_command(group: click.Group) -> list[click.Command]:
    found: list[click.Command] = []
    for command in group.commands.values():
        found.append(command)
        if isinstance(command, click.Group):
            found.extend(_every_command(command))
    return found


for command in COMMANDS:
    cli.add_command(command)
for command in _every_command(cli):
    accept_common_options(command)
