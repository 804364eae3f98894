"""What the manifests declare, validated, with where each declaration is written."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

from pydantic import BaseModel

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


@dataclass(frozen=True, slots=True)
class DeclaredDevice:
    device: Device
    origin: Origin
    path: DataPath  # of the device entry inside its DeviceList document

    @property
    def line(self) -> int:
        return self.origin.source.line_of(self.path)


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
