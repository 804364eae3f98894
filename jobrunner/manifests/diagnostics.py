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
    """One finding, printed as `FILE:LINE: message` (warnings say so after the line); line 0
    is about the path itself (a folder that is missing or cannot be read): `PATH: message`."""

    file: Path
    line: int
    message: str
    severity: Severity = Severity.ERROR

    def __str__(self) -> str:
        marker = "warning: " if self.severity is Severity.WARNING else ""
        where = f"{self.file}:{self.line}" if self.line else str(self.file)
        return f"{where}: {marker}{self.message}"

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def as_github(self) -> str:
        """A GitHub Actions workflow command: an annotation on the file's line in the pull
        request (`::error file=F,line=L::message`), escaped as the runner expects."""
        level = "warning" if self.severity is Severity.WARNING else "error"
        where = f"file={_property(str(self.file))}"
        if self.line:
            where += f",line={self.line}"
        return f"::{level} {where},title=jobrunner validate::{_data(self.message)}"

    def as_json(self) -> dict[str, str | int]:
        """For `-o json`: file, line (0: the path itself), severity, message."""
        return {
            "file": str(self.file),
            "line": self.line,
            "severity": self.severity.value,
            "message": self.message,
        }


def _data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _property(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")
