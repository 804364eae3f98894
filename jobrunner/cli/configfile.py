"""The configuration file: `jobrunner.yaml`, or the one `--config` / `JOBRUNNER_CONFIG` names.

Read by the command group before any command runs (it gives the commands their defaults), so
it imports nothing of the runner. The file:

    broker: mqtts://broker.example.com:8883
    clientId: jobrunner-plant-turin
    scope: acme
    jobsDir: /srv/jobrunner/jobs.d
    stateDir: /var/lib/jobrunner
    stateDb: postgresql://jobrunner@db/jobrunner  # instead of stateDir: several runners
    lease: 15                                  # seconds a job stays with a silent runner
    requesterId: jobrunner                     # shared by the runners of one stateDb
    maxInFlight: 200
    requireSigned: false                       # see docs/policy.md
    secretsDir: /etc/jobrunner/secrets         # where valueFrom: {file: ...} is read
    http: 127.0.0.1:8080                       # watch serves the dashboard there
    credentialsFile: /etc/jobrunner/mqtt.yaml   # {username: ..., password: ...}, not in git;
                                               # else $CREDENTIALS_DIRECTORY/mqtt.yaml
    caFile: /etc/jobrunner/ca.pem
    certFile: /etc/jobrunner/client.pem
    keyFile: /etc/jobrunner/client.key
    history: {keepExecutions: 100, keepFor: 90d}  # ended executions kept per job
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import click
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from jobrunner.errors import BadValueError, ConfigError
from jobrunner.manifests.errors import suggest
from jobrunner.manifests.fields import parse_duration

DEFAULT_FILE = Path("jobrunner.yaml")
ENV_CONFIG = "JOBRUNNER_CONFIG"

# Options of the commands that the file may set, by the name of the command parameter.
COMMAND_OPTIONS = (
    "broker",
    "client_id",
    "scope",
    "jobs_dir",
    "state_dir",
    "state_db",
    "lease",
    "requester_id",
    "max_in_flight",
    "require_signed",
    "secrets_dir",
    "http",
    "http_token",
)


class HistoryConfig(BaseModel):
    """`history:` how many ended executions each job keeps, and for how long."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=False)

    keep_executions: int | None = Field(default=None, ge=1)
    keep_for: timedelta | None = None

    @field_validator("keep_for", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        return None if value is None else parse_duration(value)


class ConfigFile(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=False)

    broker: str | None = None
    client_id: str | None = None
    scope: str | None = None
    jobs_dir: Path | None = None
    state_dir: Path | None = None
    state_db: str | None = None
    lease: float | None = Field(default=None, ge=3, le=3600)
    requester_id: str | None = None
    max_in_flight: int | None = Field(default=None, ge=1, le=900)
    require_signed: bool | None = None
    secrets_dir: Path | None = None
    http: str | None = None
    http_token: str | None = None
    credentials_file: Path | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    history: HistoryConfig | None = None


@dataclass
class Loaded:
    """The configuration file as read (empty when there is none)."""

    path: Path | None = None
    values: ConfigFile = field(default_factory=ConfigFile)
    problems: list[str] = field(default_factory=list)
    """What is wrong in the file, one message a setting: every command but `jobrunner
    config` refuses to run (exit 2); `config` shows the rest and lists them."""

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
        problems = [_problem(path, detail) for detail in error.errors()]
        wrong = {detail["loc"][0] for detail in error.errors() if detail["loc"]}
    try:  # what is right in the file still counts (for `jobrunner config` to show)
        values = ConfigFile.model_validate({k: v for k, v in raw.items() if k not in wrong})
    except ValidationError:
        values = ConfigFile()
    return Loaded(path, values, problems)


def _problem(path: Path, detail: Any) -> str:
    key = ".".join(str(part) for part in detail["loc"])
    if detail["type"] == "extra_forbidden":
        allowed = [f.alias or n for n, f in ConfigFile.model_fields.items()]
        return (
            f"{path}: unknown setting '{key}'{suggest(key, allowed)}"
            f" (the settings: {', '.join(allowed)})"
        )
    return f"{path}: {key}: {detail['msg']}"


def refuse_problems(loaded: Loaded) -> None:
    """BadValueError with the file's first problem (and how many more)."""
    if loaded.problems:
        more = len(loaded.problems) - 1
        also = f" (and {more} more: `jobrunner config` lists them)" if more else ""
        raise BadValueError(loaded.problems[0] + also)


SYSTEMD_CREDENTIALS = "mqtt.yaml"
"""The credentials file's name among a systemd unit's credentials (`$CREDENTIALS_DIRECTORY`):
`LoadCredential=mqtt.yaml:/etc/jobrunner/mqtt.yaml` hands it to the runner alone."""


def credentials_file(configured: Path | None) -> Path | None:
    """The credentials file: `credentialsFile` when set, else systemd's credential
    SYSTEMD_CREDENTIALS when the unit loads one."""
    if configured is not None:
        return configured
    folder = os.environ.get("CREDENTIALS_DIRECTORY")
    loaded = Path(folder) / SYSTEMD_CREDENTIALS if folder else None
    return loaded if loaded is not None and loaded.is_file() else None


def credentials(path: Path | None) -> tuple[str | None, str | None]:
    """(username, password) of a credentials file (`credentialsFile`, or systemd's)."""
    path = credentials_file(path)
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
