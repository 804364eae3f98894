"""Options shared by the commands; each is also read from a `JOBRUNNER_*` environment variable."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

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
state_dir_option = click.option(
    "--state-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("state"),
    envvar="JOBRUNNER_STATE_DIR",
    show_default=True,
    help="Directory of the recorded state; one process owns it at a time.",
)
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
    help="Folder of the files that `valueFrom: {file: NAME}` secrets name"
    " (default: /etc/jobrunner/secrets).",
)


def runner_options(function: F) -> F:
    """Everything a command that drives devices needs: manifests, state, broker and its limits."""
    for option in (
        secrets_dir_option,
        require_signed_option,
        in_flight_option,
        client_id_option,
        broker_option,
        state_dir_option,
    ):
        function = option(function)
    return manifest_options(function)
