"""The layout of a state directory (documented in README "State directory").

    STATE/
      owner.lock                          held (flock) by the process that owns the directory
      manifests.parsed                    the YAML of the manifest files its owner read, by
                                          digest of their text (a cache: may be removed)
      requests/                           start/stop/reconcile requests handed to the daemon
      outbox/notifications/SCOPE/NAME/    a lane per notification: its events, which delivered
      scopes/SCOPE/
        devices.journal                   the device registry: births, disconnects, facts
        policy.json                       the scope's accepted Policy (docs/policy.md)
        jobs/JOB/
          job.json                        the job record: frozen targets and steps, conflicts...
          targets.journal                 every target transition, one JSON line each
          executions/NNNNNN/summary.json  one execution: trigger, times, revision, counts
          executions/NNNNNN/log.txt       its log: one line per dispatch, reply, notification...

With a state database shared by runners, `requests/` and `outbox/` hold a folder per runner
(`requests/CLIENT_ID/`), as `ownership` says; the rest is the same.

Names come from manifests (validated there) or from the command line and the directory
itself (untrusted): every name is checked again before it becomes part of a path.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Container, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from jobrunner.errors import StateError
from jobrunner.manifests.fields import SCOPE_PATTERN
from jobrunner.state.ownership import Owners, owners_of
from jobrunner.state.stores.base import Storage
from jobrunner.state.stores.files import FileStorage

JobKey = tuple[str, str]
"""A job, by scope and name: how every layer keys the jobs."""

_SAFE_NAME = re.compile(SCOPE_PATTERN)  # the widest name a manifest may give: a scope's


def safe_name(name: str, what: str) -> str:
    """`name` if it is safe as one path segment; StateError otherwise."""
    if not _SAFE_NAME.match(name) or name in (".", ".."):
        raise StateError(f"{what} {name!r} is not a valid name")
    return name


@dataclass(frozen=True)
class JobPaths:
    folder: Path
    storage: Storage

    # Made once each (a path joined is a few microseconds, and a runner holding 1,000 jobs
    # asks for them at every start, reconcile and turn); the dataclass is frozen, and a
    # cached_property writes the instance's dict, not through `__setattr__`.
    @functools.cached_property
    def record(self) -> Path:
        return self.folder / "job.json"

    @functools.cached_property
    def targets(self) -> Path:
        return self.folder / "targets.journal"

    @functools.cached_property
    def executions(self) -> Path:
        return self.folder / "executions"

    def execution(self, execution_id: int) -> Path:
        return self.executions / f"{execution_id:06d}"

    def summary(self, execution_id: int) -> Path:
        return self.execution(execution_id) / "summary.json"

    def log(self, execution_id: int) -> Path:
        return self.execution(execution_id) / "log.txt"

    def execution_ids(self) -> list[int]:
        """Ids of the executions recorded, oldest first."""
        return sorted(
            int(name) for name in self.storage.children(self.executions) if name.isdigit()
        )


@dataclass(frozen=True)
class StateDir:
    """The records of one state, by name, in its `storage` (a state directory by default)."""

    root: Path
    storage: Storage = field(default=None, compare=False)  # type: ignore[assignment]
    owners: Owners = field(default=None, compare=False, repr=False)  # type: ignore[assignment]
    """Who owns the state, and where their requests go: alone or shared (`ownership`)."""
    _jobs_folders: dict[str, Path] = field(default_factory=dict, compare=False, repr=False)
    """Each scope's `jobs/` folder, joined once: a start asks for it per job held."""

    def __post_init__(self) -> None:
        if self.storage is None:
            object.__setattr__(self, "storage", FileStorage(self.root))
        if self.owners is None:
            object.__setattr__(self, "owners", owners_of(self.root, self.storage))

    def describe(self) -> str:
        return self.storage.describe()

    def scope(self, scope: str) -> Path:
        return self.root / "scopes" / safe_name(scope, "scope")

    @property
    def parsed_manifests(self) -> Path:
        """The YAML of the manifest files as its owner read them last, by their text's
        digest (`manifests.parsed`): a cache, read as empty whenever it is not whole."""
        return self.root / "manifests.parsed"

    def devices(self, scope: str) -> Path:
        return self.scope(scope) / "devices.journal"

    def job(self, scope: str, name: str) -> JobPaths:
        return JobPaths(self._jobs_folder(scope) / safe_name(name, "job"), self.storage)

    def _jobs_folder(self, scope: str) -> Path:
        folder = self._jobs_folders.get(scope)
        if folder is None:
            folder = self._jobs_folders[scope] = self.scope(scope) / "jobs"
        return folder

    def scopes(self) -> Iterator[str]:
        yield from (n for n in self.storage.children(self.root / "scopes") if _SAFE_NAME.match(n))

    def jobs(self, besides: Container[JobKey] = ()) -> Iterator[JobKey]:
        """(scope, name) of every job with a record, but those in `besides`, whose record is
        not looked for (a plan has read theirs already)."""
        for scope, name in self.job_folders():
            if (scope, name) not in besides and self.storage.exists(
                self._jobs_folder(scope) / name / "job.json"
            ):
                yield scope, name

    def job_folders(self) -> Iterator[JobKey]:
        """(scope, name) of every job folder, its record not looked for: for a reader that
        reads the record next, which has none when `JobRecord.load` raises
        FileNotFoundError (a folder left by hand, or by a crash before its first record)."""
        for scope in self.scopes():
            for name in self.storage.children(self._jobs_folder(scope)):
                if _SAFE_NAME.match(name):
                    yield scope, name
