"""What `status` and `logs` print for scripts beyond JSON: CSV rows, log lines as records,
and the target statuses as an operator types them (`failed` for PROCESS_FAILED)."""

from __future__ import annotations

import csv
import re
import sys
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

import click

from jobrunner.cli.progress import SHORT
from jobrunner.engine.status import STATUS_ORDER
from jobrunner.manifests.errors import suggest

TARGET_COLUMNS = ("clientId", "wave", "stepIndex", "step", "status", "attempts", "message")
"""The columns of `status JOB -o csv`: one row per target."""
JOB_COLUMNS = (
    "scope",
    "name",
    "targets",
    *STATUS_ORDER,
    "rollout",
    "wave",
    "nextFire",
    "lastExecution",
    "lastStatus",
    "error",
)
"""The columns of `status -o csv`: one row per job."""

_LINE = re.compile(r"^(?P<time>\S+) (?P<subject>[^:]*): (?P<message>.*)$")
_TARGET = re.compile(r"^target (?P<id>\S+)")


class TargetStatusName(click.ParamType):
    """A target status, as DESIGN spells it or by its short name (`ok`, `failed`, ...)."""

    name = "status"
    _by_name: ClassVar[dict[str, str]] = {
        **{s: s for s in STATUS_ORDER},
        **{short: s for s, short in SHORT.items()},
    }

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        found = self._by_name.get(text) or self._by_name.get(text.upper())
        found = found or self._by_name.get(text.lower())
        if found is None:
            names = ", ".join(f"{s} ({SHORT[s]})" for s in STATUS_ORDER)
            self.fail(
                f"{text!r} is not a target status{suggest(text.lower(), self._by_name)}"
                f" (the statuses: {names})",
                param,
                ctx,
            )
        return found

    def shell_complete(
        self, ctx: click.Context, param: click.Parameter, incomplete: str
    ) -> list[click.shell_completion.CompletionItem]:
        return [
            click.shell_completion.CompletionItem(name)
            for name in (*STATUS_ORDER, *SHORT.values())
            if name.startswith(incomplete)
        ]


def write_csv(columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> None:
    """RFC 4180 CSV on stdout, a header then a row per item (missing values empty)."""
    out = csv.DictWriter(
        sys.stdout, fieldnames=list(columns), extrasaction="ignore", lineterminator="\r\n"
    )
    out.writeheader()
    for row in rows:
        out.writerow({k: "" if row.get(k) is None else row[k] for k in columns})


def job_row(view: dict[str, Any]) -> dict[str, Any]:
    """One job of `status -o json` (without JOB) as a flat CSV row."""
    if "error" in view:
        return {"scope": view["scope"], "name": view["name"], "error": view["error"]}
    last = view.get("lastExecution") or {}
    rollout = view.get("rollout") or {}
    return {
        "scope": view["scope"],
        "name": view["name"],
        "targets": view.get("targetCount"),
        **{s: view.get("counts", {}).get(s, 0) for s in STATUS_ORDER},
        "rollout": rollout.get("state"),
        "wave": rollout.get("wave"),
        "nextFire": view.get("nextFire"),
        "lastExecution": last.get("id"),
        "lastStatus": last.get("status"),
    }


def log_record(line: str) -> dict[str, Any]:
    """A log line `TIME SUBJECT: MESSAGE` as a record (a line of another shape: its text as
    the message); `target` is set when the subject is a target's."""
    match = _LINE.match(line)
    if match is None:
        return {"time": None, "subject": None, "target": None, "message": line}
    subject = match["subject"]
    target = _TARGET.match(subject)
    return {
        "time": match["time"],
        "subject": subject,
        "target": target["id"] if target else None,
        "message": match["message"],
    }
