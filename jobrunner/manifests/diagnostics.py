"""Diagnostics: what is wrong with the manifests, and where."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, order=True)
class Diagnostic:
    """One finding, printed as `FILE:LINE: message` (warnings say so after the line)."""

    file: Path
    line: int
    message: str
    severity: Severity = Severity.ERROR

    def __str__(self) -> str:
        marker = "warning: " if self.severity is Severity.WARNING else ""
        return f"{self.file}:{self.line}: {marker}{self.message}"

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR
