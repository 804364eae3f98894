"""Secret-bearing properties: a literal (warned about) or a reference, resolved at dispatch.

A password, written in a manifest, lives in git history for good. So every property that
carries one also takes a *reference*, and the manifest, the recorded job and its frozen
steps keep only the reference:

    password: {valueFrom: {env: REPO_PASSWORD}}          # an environment variable
    password: {valueFrom: {file: acme/repo-password}}    # a file in the secrets directory

The value is read only when a request is built for a device (`SecretResolver.resolve`), so
a rotated secret is used from the next dispatch on, and a missing one fails that target's
step with a message naming the reference, never a value. The secrets directory is
`$JOBRUNNER_SECRETS_DIR`, else `$CREDENTIALS_DIRECTORY` (systemd's, for a unit's
`LoadCredential=`), else `/etc/jobrunner/secrets`; a file reference is a relative path inside
it (no absolute paths, no `..`, no symbolic link that leads out of it).

Literal secrets stay possible (for a lab), but `validate` warns about each one; they are
`LiteralSecret` strings, whose repr is masked, and every value, literal or resolved, is
shown as `***` in logs, status, plan output and errors.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypeVar, get_args

from pydantic import AfterValidator, BaseModel, Field, model_validator

from jobrunner.errors import SecretError
from jobrunner.manifests.base import Strict

MASK = "***"
SECRETS_DIR_ENV = "JOBRUNNER_SECRETS_DIR"
CREDENTIALS_DIR_ENV = "CREDENTIALS_DIRECTORY"
"""Where systemd puts a unit's credentials (`LoadCredential=`, `SetCredential=`)."""
DEFAULT_SECRETS_DIR = Path("/etc/jobrunner/secrets")
MAX_SECRET_BYTES = 64 * 1024
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
SECRET_FILE_PATTERN = r"^[A-Za-z0-9._-]{1,128}(/[A-Za-z0-9._-]{1,128}){0,15}$"

_ENV_NAME = re.compile(ENV_NAME_PATTERN)
_SECRET_FILE = re.compile(SECRET_FILE_PATTERN)

M = TypeVar("M", bound=BaseModel)


class LiteralSecret(str):
    """A secret written in the manifest itself: a `str` whose repr never shows it."""

    __slots__ = ()

    def __repr__(self) -> str:
        return repr(MASK)


def _literal(value: str) -> str:
    return LiteralSecret(value)


def _check_env_name(value: str) -> str:
    if not _ENV_NAME.match(value):
        raise ValueError(
            f"{value!r} is not an environment variable name: use letters, digits and '_',"
            " not starting with a digit (e.g. REPO_PASSWORD)"
        )
    return value


def _check_secret_file(value: str) -> str:
    if value.startswith("/"):
        raise ValueError(
            f"{value!r} is an absolute path; a secret file is named relative to the secrets"
            f" directory (${SECRETS_DIR_ENV}, default {DEFAULT_SECRETS_DIR}), e.g. acme/repo"
        )
    parts = value.split("/")
    if not _SECRET_FILE.match(value) or any(part in (".", "..") for part in parts):
        raise ValueError(
            f"{value!r} is not a secret file name: write a relative path inside the secrets"
            " directory of letters, digits, '.', '_' and '-' segments, without '.' or '..'"
        )
    return value


class SecretSource(Strict):
    """Where a secret's value is read at dispatch: exactly one of `env` and `file`."""

    env: (
        Annotated[
            str,
            AfterValidator(_check_env_name),
            Field(json_schema_extra={"pattern": ENV_NAME_PATTERN}),
        ]
        | None
    ) = Field(default=None, description="an environment variable of the runner")
    file: (
        Annotated[
            str,
            AfterValidator(_check_secret_file),
            Field(json_schema_extra={"pattern": SECRET_FILE_PATTERN}),
        ]
        | None
    ) = Field(
        default=None,
        description=f"a file relative to the secrets directory (${SECRETS_DIR_ENV},"
        f" default {DEFAULT_SECRETS_DIR})",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretSource:
        if (self.env is None) == (self.file is None):
            raise ValueError(
                "valueFrom takes exactly one of 'env' (an environment variable) and 'file'"
                " (a file in the secrets directory)"
            )
        return self

    def __str__(self) -> str:
        return f"env {self.env}" if self.env is not None else f"file {self.file}"


class SecretRef(Strict):
    """`{valueFrom: {env: NAME}}` or `{valueFrom: {file: PATH}}`: the reference is recorded,
    the value never is."""

    value_from: SecretSource = Field(
        description="where the value is read when the request is sent: {env: NAME} or {file: PATH}"
    )

    def __str__(self) -> str:
        return f"valueFrom {self.value_from}"


_LiteralText = Annotated[
    str, AfterValidator(_literal), Field(max_length=4096, json_schema_extra={"writeOnly": True})
]

Secret = Annotated[
    _LiteralText | SecretRef,
    Field(
        description="a secret: {valueFrom: {env: NAME}} or {valueFrom: {file: PATH}};"
        " a literal value works but lives in git history (validate warns)"
    ),
]
"""A password: a reference (resolved at dispatch) or a literal (warned about, masked)."""

Credential = Annotated[
    Annotated[str, Field(max_length=4096)] | SecretRef,
    Field(description="text, or a reference: {valueFrom: {env: NAME}} / {valueFrom: {file: PATH}}"),
]
"""A value that may be kept out of git (a user name) but need not be: no literal warning."""

SecretValue = LiteralSecret | SecretRef


# --- finding and replacing secrets in a model --------------------------------------------------


def secrets_in(model: BaseModel) -> Iterator[tuple[tuple[str | int, ...], SecretValue]]:
    """(path in manifest spelling, secret) of every literal secret and reference in `model`."""
    fields = _secret_fields.get(type(model))
    if fields is None:
        fields = _secret_fields[type(model)] = tuple(
            (name, info.alias or name)
            for name, info in type(model).model_fields.items()
            if _may_hold_a_secret(info.annotation, set())
        )
    for name, spelled in fields:
        yield from _walk(getattr(model, name), (spelled,))


_secret_fields: dict[type[BaseModel], tuple[tuple[str, str], ...]] = {}
"""A model's fields that may hold a secret, by class: the others are not walked (a job's
steps are looked through for literal passwords at every read of the manifests). A field
that holds a secret names `SecretRef` in its type (`Secret`, `Credential`, a typed
property's value: a literal is made from a text by a validator, beside that reference)."""


def _may_hold_a_secret(annotation: Any, seen: set[type]) -> bool:
    if annotation is Any or annotation is object:
        return True  # anything: walked, as every field was
    if isinstance(annotation, type):
        if issubclass(annotation, SecretRef | LiteralSecret):
            return True
        if issubclass(annotation, BaseModel):
            if annotation in seen:
                return False  # a model holding itself: its other fields answer
            seen.add(annotation)
            return any(
                _may_hold_a_secret(info.annotation, seen)
                for info in annotation.model_fields.values()
            )
    return any(_may_hold_a_secret(argument, seen) for argument in get_args(annotation))


def _walk(value: Any, path: tuple[str | int, ...]) -> Iterator[tuple[tuple[str | int, ...], Any]]:
    if isinstance(value, LiteralSecret | SecretRef):
        yield path, value
    elif isinstance(value, BaseModel):
        for inner, found in secrets_in(value):
            yield (*path, *inner), found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _walk(item, (*path, index))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, (*path, key))


def with_secrets(model: M, reveal: Callable[[SecretRef], str]) -> M:
    """A copy of `model` with each reference replaced by `reveal(reference)`."""
    changed = {}
    for name in type(model).model_fields:
        before = getattr(model, name)
        after = _replace(before, reveal)
        if after is not before:
            changed[name] = after
    return model.model_copy(update=changed) if changed else model


def _replace(value: Any, reveal: Callable[[SecretRef], str]) -> Any:
    if isinstance(value, SecretRef):
        return reveal(value)
    if isinstance(value, BaseModel):
        return with_secrets(value, reveal)
    if isinstance(value, list):
        items = [_replace(item, reveal) for item in value]
        return items if any(a is not b for a, b in zip(items, value, strict=True)) else value
    if isinstance(value, dict):
        mapped = {key: _replace(item, reveal) for key, item in value.items()}
        return mapped if any(mapped[k] is not value[k] for k in value) else value
    return value


def masked(reference: SecretRef) -> str:
    """What a reference shows as in a request built for the log."""
    return MASK


# --- resolving references ------------------------------------------------------------------------


@dataclass(frozen=True)
class SecretResolver:
    """Reads the value of a reference: from the runner's environment or the secrets directory."""

    directory: Path = DEFAULT_SECRETS_DIR
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)

    @classmethod
    def from_environment(cls, directory: Path | None = None) -> SecretResolver:
        """An explicit directory beats `$JOBRUNNER_SECRETS_DIR` beats systemd's
        `$CREDENTIALS_DIRECTORY` beats the default."""
        if directory is None:
            configured = os.environ.get(SECRETS_DIR_ENV) or os.environ.get(CREDENTIALS_DIR_ENV)
            directory = Path(configured) if configured else DEFAULT_SECRETS_DIR
        return cls(directory)

    def resolve(self, reference: SecretRef) -> str:
        """The secret's value; SecretError naming the reference (never a value) if it has none."""
        source = reference.value_from
        if source.env is not None:
            value = self.environ.get(source.env)
            if value is None:
                raise SecretError(
                    f"secret {reference}: the environment variable {source.env} is not set in"
                    " the runner's environment; set it (or change the reference) and run the"
                    " job again"
                )
            if not value:
                raise SecretError(f"secret {reference}: the environment variable is empty")
            return value
        assert source.file is not None
        return self._read_file(reference, source.file)

    def _read_file(self, reference: SecretRef, name: str) -> str:
        _check_secret_file(name)  # a frozen record edited by hand is checked again here
        where = f"secret {reference} (in {self.directory})"
        try:
            root = self.directory.resolve(strict=True)
            path = (root / name).resolve(strict=True)
        except (FileNotFoundError, NotADirectoryError):
            raise SecretError(
                f"{where}: no such file; create it (mode 0600, readable by the runner)"
                f" or set ${SECRETS_DIR_ENV}"
            ) from None
        except (OSError, RuntimeError) as error:
            raise SecretError(f"{where}: cannot be read ({_reason(error)})") from None
        if not path.is_relative_to(root):
            raise SecretError(
                f"{where}: the path leads out of the secrets directory (a symbolic link?); refused"
            )
        try:
            with path.open("rb") as handle:
                data = handle.read(MAX_SECRET_BYTES + 1)
        except OSError as error:
            raise SecretError(f"{where}: cannot be read ({_reason(error)})") from None
        if len(data) > MAX_SECRET_BYTES:
            raise SecretError(f"{where}: larger than {MAX_SECRET_BYTES // 1024} KB; refused")
        try:
            text = data.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            raise SecretError(f"{where}: not UTF-8 text") from None
        if not text:
            raise SecretError(f"{where}: the file is empty")
        return text


def _reason(error: BaseException) -> str:
    return getattr(error, "strerror", None) or type(error).__name__
