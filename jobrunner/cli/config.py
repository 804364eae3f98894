"""Configuration: `jobrunner.yaml`, then `JOBRUNNER_*` environment variables, then flags.

An explicit flag beats an environment variable, which beats the configuration file, which
beats the built-in default. The file is `./jobrunner.yaml` when it exists, or the one named
by `--config` / `JOBRUNNER_CONFIG`:

    broker: mqtts://broker.example.com:8883
    clientId: jobrunner-plant-turin
    scope: acme
    jobsDir: /srv/jobrunner/jobs.d
    stateDir: /var/lib/jobrunner
    maxInFlight: 200
    requireSigned: false                       # see docs/policy.md
    secretsDir: /etc/jobrunner/secrets         # where valueFrom: {file: ...} is read
    credentialsFile: /etc/jobrunner/mqtt.yaml   # {username: ..., password: ...}, not in git
    caFile: /etc/jobrunner/ca.pem
    certFile: /etc/jobrunner/client.pem
    keyFile: /etc/jobrunner/client.key
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import yaml
from click.core import ParameterSource
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from jobrunner.cli.options import (
    broker_option,
    client_id_option,
    echo_json,
    in_flight_option,
    manifest_options,
    output_option,
    state_dir_option,
)
from jobrunner.device import BrokerSettings
from jobrunner.engine.runtime import EngineSettings
from jobrunner.engine.service import RunnerConfig
from jobrunner.errors import ConfigError
from jobrunner.manifests.fields import DOT_HINT

DEFAULT_FILE = Path("jobrunner.yaml")
ENV_CONFIG = "JOBRUNNER_CONFIG"

# Options of the commands that the file may set, by the name of the command parameter.
COMMAND_OPTIONS = (
    "broker",
    "client_id",
    "scope",
    "jobs_dir",
    "state_dir",
    "max_in_flight",
    "require_signed",
    "secrets_dir",
)


class ConfigFile(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=False)

    broker: str | None = None
    client_id: str | None = None
    scope: str | None = None
    jobs_dir: Path | None = None
    state_dir: Path | None = None
    max_in_flight: int | None = Field(default=None, ge=1, le=900)
    require_signed: bool | None = None
    secrets_dir: Path | None = None
    credentials_file: Path | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None


@dataclass
class Loaded:
    """The configuration file as read (empty when there is none)."""

    path: Path | None = None
    values: ConfigFile = field(default_factory=ConfigFile)

    def default_map(self, commands: list[str]) -> dict[str, dict[str, Any]]:
        """click's default_map: the file's values as defaults of every command."""
        given = {name: getattr(self.values, name) for name in COMMAND_OPTIONS}
        defaults = {name: value for name, value in given.items() if value is not None}
        return {command: dict(defaults) for command in commands}


def load_config(explicit: Path | None) -> Loaded:
    """Read the configuration file; ConfigError saying what is wrong and where."""
    path = explicit or (Path(os.environ[ENV_CONFIG]) if os.environ.get(ENV_CONFIG) else None)
    if path is None:
        if not DEFAULT_FILE.exists():
            return Loaded()
        path = DEFAULT_FILE
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as error:
        raise ConfigError(f"cannot read the configuration file {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the configuration is a mapping of settings")
    try:
        return Loaded(path, ConfigFile.model_validate(raw))
    except ValidationError as error:
        first = error.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        allowed = ", ".join(f.alias or n for n, f in ConfigFile.model_fields.items())
        hint = f"; settings are: {allowed}" if first["type"] == "extra_forbidden" else ""
        raise ConfigError(f"{path}: {key}: {first['msg']}{hint}") from None


def broker_settings(loaded: Loaded, broker: str, client_id: str | None) -> BrokerSettings:
    """The broker connection: flags and environment first, then the configuration file."""
    values = loaded.values
    username, password = _credentials(values.credentials_file)
    return BrokerSettings.resolve(
        broker,
        client_id=client_id,
        username=os.environ.get("JOBRUNNER_MQTT_USERNAME") or username,
        password=os.environ.get("JOBRUNNER_MQTT_PASSWORD") or password,
        ca_file=os.environ.get("JOBRUNNER_MQTT_CA_FILE") or values.ca_file,
        cert_file=os.environ.get("JOBRUNNER_MQTT_CERT_FILE") or values.cert_file,
        key_file=os.environ.get("JOBRUNNER_MQTT_KEY_FILE") or values.key_file,
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
) -> RunnerConfig:
    """The runner's configuration from a command's options, in the current click context
    (whose configuration file completes the broker settings): one for every command that
    reaches devices, so that `watch` and `reconcile` never disagree."""
    return RunnerConfig(
        jobs_dir=jobs_dir,
        state_dir=state_dir,
        scope=scope,
        broker=broker_settings(current(click.get_current_context()), broker, client_id),
        engine=EngineSettings(max_in_flight=max_in_flight),
        require_signed=require_signed,
        secrets_dir=secrets_dir,
    )


def _credentials(path: Path | None) -> tuple[str | None, str | None]:
    if path is None:
        return None, None
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"cannot read the credentials file {path}: {error}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("username"), str):
        raise ConfigError(f"{path}: a credentials file holds `username:` and `password:`")
    password = raw.get("password")
    return raw["username"], str(password) if password is not None else None


def current(ctx: click.Context) -> Loaded:
    """The configuration loaded by the command group."""
    root = ctx.find_root()
    loaded = root.meta.get("jobrunner.config")
    return loaded if isinstance(loaded, Loaded) else Loaded()


_SOURCES = {
    ParameterSource.COMMANDLINE: "flag",
    ParameterSource.ENVIRONMENT: "environment",
    ParameterSource.DEFAULT_MAP: "configuration file",
    ParameterSource.DEFAULT: "default",
}


@click.command("config")
@manifest_options
@state_dir_option
@broker_option
@client_id_option
@in_flight_option
@output_option
@click.pass_context
def show_config(
    ctx: click.Context,
    jobs_dir: Path,
    scope: str,
    state_dir: Path,
    broker: str,
    client_id: str | None,
    max_in_flight: int,
    output: str,
) -> None:
    """Print the effective configuration, and where each setting comes from.

    Secrets (the broker password) are masked. Settings come from flags, then
    JOBRUNNER_* environment variables, then the configuration file, then the
    built-in defaults.
    """
    loaded = current(ctx)
    settings = broker_settings(loaded, broker, client_id)
    rows: list[tuple[str, object, str]] = [
        ("configFile", loaded.path or "-", "JOBRUNNER_CONFIG / --config / ./jobrunner.yaml"),
    ]
    for name, value in (
        ("jobs_dir", jobs_dir),
        ("state_dir", state_dir),
        ("scope", scope),
        ("broker", settings.url),
        ("client_id", settings.client_id),
        ("max_in_flight", max_in_flight),
    ):
        source = ctx.get_parameter_source(name)
        rows.append((to_camel(name), value, _SOURCES.get(source, "default") if source else "-"))
    rows.extend(
        [
            ("username", settings.username or "-", "environment or credentialsFile"),
            ("password", "***" if settings.password else "-", "environment or credentialsFile"),
            ("caFile", settings.ca_file or "-", "environment or configuration file"),
            ("certFile", settings.cert_file or "-", "environment or configuration file"),
            ("keyFile", settings.key_file or "-", "environment or configuration file"),
        ]
    )
    if output == "json":
        echo_json({key: {"value": shown, "source": origin} for key, shown, origin in rows})
        return
    if "." in settings.client_id:
        click.echo(f"warning: '.' in client id {settings.client_id}: {DOT_HINT}", err=True)
    width = max(len(row[0]) for row in rows)
    for key, shown, origin in rows:
        click.echo(f"{key:<{width}}  {shown!s:<40}  ({origin})")
