"""The `jobrunner` command group: thin shells over the library, one module per command family."""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

import click

from jobrunner import __version__
from jobrunner.cli.configfile import load_config, refuse_problems
from jobrunner.cli.group import Group
from jobrunner.cli.options import accept_common_options, group_options_in

COMMANDS: dict[str, tuple[str, str]] = {
    "demo": (
        "jobrunner.cli.demo:demo",
        "Watch jobrunner roll out the example jobs to a simulated fleet.",
    ),
    "init": (
        "jobrunner.cli.init:init",
        "Make a new, empty state: the state directory, or the tables of a database.",
    ),
    "validate": (
        "jobrunner.cli.validate:validate",
        "Check manifests: YAML, every field, and the rules across files.",
    ),
    "plan": (
        "jobrunner.cli.plan:plan",
        "Show what `reconcile` would do, without doing it.",
    ),
    "reconcile": (
        "jobrunner.cli.run:reconcile",
        "Apply the plan once, and run the executions that are due.",
    ),
    "watch": (
        "jobrunner.cli.watch:watch",
        "Run the daemon: reconcile on every change, fire schedules, react to connects.",
    ),
    "start": (
        "jobrunner.cli.run:start",
        "Start an execution of JOB now (NAME or SCOPE/NAME).",
    ),
    "stop": (
        "jobrunner.cli.run:stop",
        "Stop JOB's running execution (NAME or SCOPE/NAME).",
    ),
    "approve": (
        "jobrunner.cli.approve:approve_command",
        "Approve JOB's rollout wave that waits for it (NAME or SCOPE/NAME).",
    ),
    "status": (
        "jobrunner.cli.status:status",
        "Show jobs, their targets and executions, as recorded.",
    ),
    "logs": (
        "jobrunner.cli.status:logs",
        "Print an execution's log: one line per dispatch, reply, notification, error.",
    ),
    "devices": (
        "jobrunner.cli.devices:devices",
        "List the devices: connection status, last seen, firmware, applications, tags.",
    ),
    "simulate": (
        "jobrunner.cli.simulate:simulate",
        "Run a simulated fleet of Eclipse Kura / ESF gateways on an MQTT broker.",
    ),
    "cron": (
        "jobrunner.cli.cron:cron",
        "Quartz cron expressions, as schedules evaluate them.",
    ),
    "completion": (
        "jobrunner.cli.completion:completion",
        "Print the completion script of SHELL (bash, zsh or fish).",
    ),
    "config": (
        "jobrunner.cli.config:show_config",
        "Print the effective configuration, and where each setting comes from.",
    ),
}
"""Each command: where it is (imported when it runs), and its line in `jobrunner --help`
(the first line of its docstring: a test keeps the two alike)."""


def prepare(command: click.Command) -> None:
    """What every command gets when it is loaded: the common options, and a group's own
    subcommands too."""
    accept_common_options(command)
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            prepare(sub)


CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(cls=Group, context_settings=CONTEXT, lazy=COMMANDS, prepare=prepare)
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
    if ctx.invoked_subcommand != "config":  # which shows what is right and lists the rest
        refuse_problems(loaded)
    ctx.meta["jobrunner.config"] = loaded
    ctx.default_map = loaded.default_map(list(COMMANDS))


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
