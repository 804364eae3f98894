"""What the manifests declare, validated, with where each declaration is written."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from jobrunner.immutable import immutable
from jobrunner.manifests.diagnostics import Diagnostic, Severity
from jobrunner.manifests.kinds import Device, Job, Policy, Scope
from jobrunner.manifests.notification import Notification
from jobrunner.manifests.yamlsource import DataPath, SourceMap

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Origin:
    """Where a declaration is written: its file and the lines of its parts."""

    file: Path
    source: SourceMap

    def line(self, *path: str | int) -> int:
        """Line of the key (or list item) at `path` inside the document."""
        return self.source.line_of(path)

    def at(self, *path: str | int) -> str:
        """`FILE:LINE` of the part at `path`."""
        return f"{self.file}:{self.line(*path)}"


@dataclass(frozen=True)
class Declared(Generic[M]):
    """A validated manifest document and where it came from; `scope` is resolved."""

    manifest: M
    origin: Origin
    scope: str
    steps_origin: Origin | None = None
    """Where its steps are written when not in its own document: the JobTemplate it names."""

    @property
    def steps_at(self) -> Origin:
        """Where its steps are written (`spec.steps...` paths)."""
        return self.steps_origin or self.origin


NOTHING: Mapping[str, Any] = MappingProxyType({})
"""The labels and vars of a device that has none (one for every such device)."""


@immutable
class DeclaredDevice:
    """A device of a DeviceList, validated as a `Device` model, then held in this shape: a
    daemon holds every declared device for as long as it runs (100,000 models would take
    930 B each, this a tenth of it). Tags are a tuple and labels a read-only mapping, each
    held once for the devices that have the same; `model()` makes the `Device` again."""

    client_id: str
    tags: tuple[str, ...]
    origin: Origin
    position: int
    """Its place in its DeviceList's `devices`: where it is written is found from it."""
    display_name: str | None
    timezone: str | None
    labels: Mapping[str, str]
    """`NOTHING` when it has none, as `vars`."""
    vars: Mapping[str, Any]

    @property
    def path(self) -> DataPath:
        """The path of its clientId inside its DeviceList document."""
        return ("devices", self.position, "clientId")

    @property
    def line(self) -> int:
        return self.origin.source.line_of(self.path)

    def model(self) -> Device:
        """The `Device` it was validated as (for a message that compares two)."""
        return Device.model_construct(
            client_id=self.client_id,
            display_name=self.display_name,
            tags=list(self.tags),
            timezone=self.timezone,
            labels=dict(self.labels),
            vars=dict(self.vars),
        )


@dataclass(frozen=True)
class RejectedDocument:
    """A document that did not validate; kind, scope and name when they could be read."""

    file: Path
    line: int
    kind: str | None
    scope: str | None
    name: str | None


@dataclass
class ManifestSet:
    """Everything declared under the jobs directory, validated, with what was wrong."""

    default_scope: str
    scopes: dict[str, Declared[Scope]] = field(default_factory=dict)
    devices: dict[str, dict[str, DeclaredDevice]] = field(default_factory=dict)
    jobs: dict[tuple[str, str], Declared[Job]] = field(default_factory=dict)
    policies: dict[str, Declared[Policy]] = field(default_factory=dict)
    notifications: dict[tuple[str, str], Declared[Notification]] = field(default_factory=dict)
    rejected: list[RejectedDocument] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    broken_files: set[Path] = field(default_factory=set)
    unreadable_files: set[Path] = field(default_factory=set)
    """Files not read to their end (YAML syntax, encoding, size): their declarations are
    unknown, so nothing may be taken as removed while there is one."""

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.is_error]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if not d.is_error]

    def add(self, file: Path, line: int, message: str, severity: Severity) -> None:
        self.diagnostics.append(Diagnostic(file, line, message, severity))
        if severity is Severity.ERROR:
            self.broken_files.add(file)

    def error(self, file: Path, line: int, message: str) -> None:
        self.add(file, line, message, Severity.ERROR)

    def warning(self, file: Path, line: int, message: str) -> None:
        self.add(file, line, message, Severity.WARNING)
