"""Options shared by the commands; each is also read from a `JOBRUNNER_*` environment variable."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from jobrunner.state.layout import StateDir
from jobrunner.state.opening import open_state
from jobrunner.state.ownership import DEFAULT_LEASE

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_SCOPE = "default"

jobs_dir_option = click.option(
    "--jobs-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("jobs.d"),
    envvar="JOBRUNNER_JOBS_DIR",
    show_default=True,
    help="Directory of the manifests (a git checkout).",
)


def default_state_dir() -> Path:
    """`$STATE_DIRECTORY`, which systemd sets for a unit's `StateDirectory=` (the first, when
    it names several), else `state` in the current folder."""
    given = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    return Path(given) if given else Path("state")


state_dir_option = click.option(
    "--state-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=default_state_dir,
    envvar="JOBRUNNER_STATE_DIR",
    show_default="state, or $STATE_DIRECTORY under systemd",
    help="Directory of the recorded state; one process owns it at a time.",
)
state_db_option = click.option(
    "--state-db",
    metavar="URL",
    envvar="JOBRUNNER_STATE_DB",
    default=None,
    help="PostgreSQL instead of --state-dir (postgresql://USER@HOST:PORT/DB): several"
    " runners on one database share the jobs.",
)


def state_options(function: F) -> F:
    """--state-dir and --state-db: where the recorded state is."""
    return state_dir_option(state_db_option(function))


broker_option = click.option(
    "--broker",
    metavar="URL",
    envvar="JOBRUNNER_BROKER",
    default="mqtt://127.0.0.1:1883",
    show_default=True,
    help="MQTT broker: mqtt://host:port, or mqtts://host:port for TLS.",
)
scope_option = click.option(
    "--scope",
    metavar="NAME",
    envvar="JOBRUNNER_SCOPE",
    default=DEFAULT_SCOPE,
    show_default=True,
    help="Scope of manifests whose metadata names none.",
)


def manifest_options(function: F) -> F:
    """--jobs-dir and --scope: what a command needs to read the manifests."""
    return jobs_dir_option(scope_option(function))


client_id_option = click.option(
    "--client-id",
    metavar="ID",
    envvar="JOBRUNNER_CLIENT_ID",
    default=None,
    help="MQTT client id of the runner (default: jobrunner-HOSTNAME). Keep it stable:"
    " replies to requests sent before a restart come back to it.",
)
requester_id_option = click.option(
    "--requester-id",
    metavar="ID",
    envvar="JOBRUNNER_REQUESTER_ID",
    default=None,
    help="Where devices address their replies (default: the client id; with --state-db,"
    " `jobrunner`): every runner on one database must share it.",
)
lease_option = click.option(
    "--lease",
    type=click.FloatRange(3, 3600),
    default=DEFAULT_LEASE,
    envvar="JOBRUNNER_LEASE",
    show_default=True,
    metavar="SECONDS",
    help="With --state-db: how long a job stays with a runner that stopped renewing it"
    " (it renews every third); then another runner takes it over.",
)
in_flight_option = click.option(
    "--max-in-flight",
    type=click.IntRange(1, 900),
    default=200,
    envvar="JOBRUNNER_MAX_IN_FLIGHT",
    show_default=True,
    help="Requests out at once across all executions.",
)

require_signed_option = click.option(
    "--require-signed",
    is_flag=True,
    envvar="JOBRUNNER_REQUIRE_SIGNED",
    help="Apply only manifests whose last change is in a commit signed by a key the scope's"
    " Policy allows (docs/policy.md); report the rest as refused.",
)
secrets_dir_option = click.option(
    "--secrets-dir",
    type=click.Path(path_type=Path, file_okay=False),
    envvar="JOBRUNNER_SECRETS_DIR",
    default=None,
    help="Folder of the files that `valueFrom: {file: NAME}` secrets name (default:"
    " $CREDENTIALS_DIRECTORY under systemd, for its LoadCredential=, else"
    " /etc/jobrunner/secrets).",
)


def runner_options(function: F) -> F:
    """Everything a command that drives devices needs: manifests, state, broker and its limits."""
    for option in (
        secrets_dir_option,
        require_signed_option,
        in_flight_option,
        lease_option,
        requester_id_option,
        client_id_option,
        broker_option,
        state_db_option,
        state_dir_option,
    ):
        function = option(function)
    return manifest_options(function)


# -- the common options of DESIGN §4, on every command ---------------------------------------

_FOLDER = click.Path(path_type=Path, file_okay=False)
COMMON_OPTIONS: dict[str, click.ParamType] = {
    "--jobs-dir": _FOLDER,
    "--state-dir": _FOLDER,
    "--state-db": click.STRING,
    "--broker": click.STRING,
    "--scope": click.STRING,
}
"""The options every command accepts (DESIGN §4); a command they do not concern ignores them."""


def accept_common_options(command: click.Command) -> None:
    """Give `command` every common option it lacks, hidden and ignored: a script or an
    alias can pass the same `--state-dir ... --broker ...` to every command."""
    have = {opt for param in command.params for opt in param.opts}
    for flag, kind in COMMON_OPTIONS.items():
        if flag not in have:
            command.params.append(click.Option([flag], type=kind, hidden=True, expose_value=False))
    command.params.append(
        click.Option(
            ["--config"], type=click.Path(path_type=Path, dir_okay=False), hidden=True,
            expose_value=False,
        )
    )  # fmt: skip
    command.params.append(click.Option(["--debug"], is_flag=True, hidden=True, expose_value=False))


def group_options_in(args: list[str]) -> tuple[Path | None, bool]:
    """`--config FILE` and `--debug` among a command's arguments (before a `--`)."""
    config: Path | None = None
    debug = False
    for index, arg in enumerate(args):
        if arg == "--":
            break
        if arg == "--debug":
            debug = True
        elif arg == "--config" and index + 1 < len(args):
            config = Path(args[index + 1])
        elif arg.startswith("--config="):
            config = Path(arg.partition("=")[2])
    return config, debug


def command_state(state_dir: Path, state_db: str | None, *, existing: bool = False) -> StateDir:
    """The recorded state of the running command (the database when --state-db is given),
    opened once for all it does, and closed when the command ends. `existing`: a state
    directory must exist already (`open_state`)."""
    state = open_state(state_dir, state_db, existing=existing)
    click.get_current_context().call_on_close(state.storage.close)
    return state


def reading_state(state_dir: Path, state_db: str | None) -> StateDir:
    """The recorded state a reading command looks at: the database when --state-db is
    given, else the state directory, which must exist."""
    return command_state(state_dir, state_db, existing=True)


output_option = click.option(
    "-o",
    "--output",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text for people, json for scripts.",
)


def echo_json(value: Any) -> None:
    """Print a value as indented JSON (for `-o json`)."""
    click.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))
