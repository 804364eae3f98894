"""Configuration: flags beat `JOBRUNNER_*` environment variables, which beat the
configuration file (`configfile`), which beats the built-in defaults; the runner's
configuration and the broker settings made of them, and `jobrunner config`.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from click.core import ParameterSource
from pydantic.alias_generators import to_camel

from jobrunner.cli.configfile import Loaded, credentials, current
from jobrunner.cli.options import (
    broker_option,
    client_id_option,
    echo_json,
    in_flight_option,
    lease_option,
    manifest_options,
    output_option,
    requester_id_option,
    runner_options,
    state_options,
)
from jobrunner.device import BrokerSettings
from jobrunner.engine.core.runtime import EngineSettings
from jobrunner.engine.service.runner import RunnerConfig
from jobrunner.errors import BadValueError
from jobrunner.manifests.fields import DOT_HINT, format_duration, parse_duration
from jobrunner.state.history import DEFAULT as DEFAULT_HISTORY
from jobrunner.state.history import History
from jobrunner.state.ownership import DEFAULT_LEASE
from jobrunner.state.stores.base import redacted

F = TypeVar("F", bound=Callable[..., Any])


ENV_KEEP_EXECUTIONS = "JOBRUNNER_HISTORY_KEEP_EXECUTIONS"
ENV_KEEP_FOR = "JOBRUNNER_HISTORY_KEEP_FOR"

SHARED_REQUESTER = "jobrunner"
"""The requester id of runners that share a state database, unless one is given."""


def broker_settings(
    loaded: Loaded,
    broker: str,
    client_id: str | None,
    requester_id: str | None = None,
    state_db: str | None = None,
) -> BrokerSettings:
    """The broker connection: flags and environment first, then the configuration file.
    Runners on a state database share a requester id (`jobrunner` unless given), so that the
    replies reach whichever owns the job; a runner alone is its own requester."""
    values = loaded.values
    username, password = credentials(values.credentials_file)
    settings = BrokerSettings.resolve(
        broker,
        client_id=client_id,
        username=os.environ.get("JOBRUNNER_MQTT_USERNAME") or username,
        password=os.environ.get("JOBRUNNER_MQTT_PASSWORD") or password,
        ca_file=os.environ.get("JOBRUNNER_MQTT_CA_FILE") or values.ca_file,
        cert_file=os.environ.get("JOBRUNNER_MQTT_CERT_FILE") or values.cert_file,
        key_file=os.environ.get("JOBRUNNER_MQTT_KEY_FILE") or values.key_file,
    )
    requester = requester_id or (SHARED_REQUESTER if state_db else None)
    return dataclasses.replace(settings, requester_id=requester) if requester else settings


def history_settings(loaded: Loaded) -> History:
    """The retention of executions: `JOBRUNNER_HISTORY_KEEP_EXECUTIONS` /
    `JOBRUNNER_HISTORY_KEEP_FOR` first, then the file's `history:`, then the defaults
    (a Scope's `spec.history` beats them all for its jobs)."""
    given = loaded.values.history
    keep_executions = given.keep_executions if given is not None else None
    keep_for = given.keep_for if given is not None else None
    count = os.environ.get(ENV_KEEP_EXECUTIONS, "").strip()
    if count:
        if not count.isdigit() or int(count) < 1:
            raise BadValueError(
                f"{ENV_KEEP_EXECUTIONS}={count!r}: write a whole number of executions, at"
                " least 1 (e.g. 100)"
            )
        keep_executions = int(count)
    duration = os.environ.get(ENV_KEEP_FOR, "").strip()
    if duration:
        try:
            keep_for = parse_duration(duration)
        except ValueError as error:
            raise BadValueError(f"{ENV_KEEP_FOR}: {error}") from None
    return History(
        keep_executions or DEFAULT_HISTORY.keep_executions, keep_for or DEFAULT_HISTORY.keep_for
    )


def runner_config(
    jobs_dir: Path,
    state_dir: Path,
    scope: str,
    broker: str,
    client_id: str | None,
    max_in_flight: int,
    require_signed: bool = False,
    secrets_dir: Path | None = None,
    state_db: str | None = None,
    lease: float = DEFAULT_LEASE,
    requester_id: str | None = None,
) -> RunnerConfig:
    """The runner's configuration from a command's options, in the current click context
    (whose configuration file completes the broker settings): one for every command that
    reaches devices, so that `watch` and `reconcile` never disagree."""
    loaded = current(click.get_current_context())
    return RunnerConfig(
        jobs_dir=jobs_dir,
        state_dir=state_dir,
        scope=scope,
        broker=broker_settings(loaded, broker, client_id, requester_id, state_db),
        engine=EngineSettings(max_in_flight=max_in_flight, history=history_settings(loaded)),
        require_signed=require_signed,
        secrets_dir=secrets_dir,
        state_db=state_db or None,
        lease=lease,
    )


RUNNER_PARAMETERS = (
    "jobs_dir",
    "state_dir",
    "scope",
    "broker",
    "client_id",
    "max_in_flight",
    "require_signed",
    "secrets_dir",
    "state_db",
    "lease",
    "requester_id",
)


def pass_runner_config(function: F) -> F:
    """The options of a command that drives devices (`runner_options`), handed to it as one
    RunnerConfig, `config`: every such command builds it the same way."""

    @functools.wraps(function)
    def with_config(*args: Any, **kwargs: Any) -> Any:
        values = {name: kwargs.pop(name) for name in RUNNER_PARAMETERS}
        return function(*args, config=runner_config(**values), **kwargs)

    return runner_options(with_config)  # type: ignore[return-value]


_SOURCES = {
    ParameterSource.COMMANDLINE: "flag",
    ParameterSource.ENVIRONMENT: "environment",
    ParameterSource.DEFAULT_MAP: "configuration file",
    ParameterSource.DEFAULT: "default",
}


@click.command("config")
@manifest_options
@state_options
@broker_option
@client_id_option
@requester_id_option
@lease_option
@in_flight_option
@output_option
@click.pass_context
def show_config(
    ctx: click.Context,
    jobs_dir: Path,
    scope: str,
    state_dir: Path,
    state_db: str | None,
    broker: str,
    client_id: str | None,
    requester_id: str | None,
    lease: float,
    max_in_flight: int,
    output: str,
) -> None:
    """Print the effective configuration, and where each setting comes from.

    Secrets (the broker password, the dashboard's token) are masked. Settings come from flags, then
    JOBRUNNER_* environment variables, then the configuration file, then the
    built-in defaults.
    """
    loaded = current(ctx)
    settings = broker_settings(loaded, broker, client_id, requester_id, state_db)
    rows: list[tuple[str, object, str]] = [
        ("configFile", loaded.path or "-", "JOBRUNNER_CONFIG / --config / ./jobrunner.yaml"),
    ]
    for name, value in (
        ("jobs_dir", jobs_dir),
        ("state_dir", state_dir),
        ("state_db", redacted(state_db) if state_db else "-"),
        ("lease", lease),
        ("scope", scope),
        ("broker", settings.url),
        ("client_id", settings.client_id),
        ("requester_id", settings.requester),
        ("max_in_flight", max_in_flight),
    ):
        source = ctx.get_parameter_source(name)
        rows.append((to_camel(name), value, _SOURCES.get(source, "default") if source else "-"))
    history = history_settings(loaded)
    rows.extend(
        [
            (
                "history",
                f"keepExecutions {history.keep_executions},"
                f" keepFor {format_duration(history.keep_for)}",
                "environment, configuration file or default",
            ),
            ("username", settings.username or "-", "environment or credentialsFile"),
            ("password", "***" if settings.password else "-", "environment or credentialsFile"),
            ("caFile", settings.ca_file or "-", "environment or configuration file"),
            ("certFile", settings.cert_file or "-", "environment or configuration file"),
            ("keyFile", settings.key_file or "-", "environment or configuration file"),
            (
                "http",
                os.environ.get("JOBRUNNER_HTTP") or loaded.values.http or "-",
                "watch --http, environment or configuration file",
            ),
            (
                "httpToken",
                "***"
                if os.environ.get("JOBRUNNER_HTTP_TOKEN") or loaded.values.http_token
                else "-",
                "watch --http-token, environment or configuration file",
            ),
        ]
    )
    if output == "json":
        echo_json({key: {"value": shown, "source": origin} for key, shown, origin in rows})
        _problems(ctx, loaded)
        return
    if "." in settings.client_id:
        click.echo(f"warning: '.' in client id {settings.client_id}: {DOT_HINT}", err=True)
    width = max(len(row[0]) for row in rows)
    for key, shown, origin in rows:
        click.echo(f"{key:<{width}}  {shown!s:<40}  ({origin})")
    _problems(ctx, loaded)


def _problems(ctx: click.Context, loaded: Loaded) -> None:
    """The configuration file's problems, after what is right in it: exit 2."""
    for problem in loaded.problems:
        click.echo(f"error: {problem}", err=True)
    if loaded.problems:
        ctx.exit(2)
