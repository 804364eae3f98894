"""Everything the runner asks git: the revision of the jobs directory, and the commit that
last changed a manifest file (with its author and signature), for the scopes' policies.

Each question is one `git` run with a timeout; an answer that cannot be had (no repository,
git missing, uncommitted changes) is given as the reason, never raised.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

_FIELDS = ("%H", "%G?", "%GF", "%GP", "%ae")


@dataclass(frozen=True)
class Commit:
    """The commit that last changed a file, as `git log -1 -- FILE` finds it."""

    sha: str
    signature: str
    """git's `%G?`: G good, U good by a key of unknown validity, N none, B bad..."""
    key: str
    primary_key: str
    author: str

    @property
    def short(self) -> str:
        return self.sha[:12]


@dataclass(frozen=True)
class _Failed:
    reason: str


def _git(folder: Path, *args: str, timeout: float = 60) -> str | _Failed:
    command = ["git", "-c", "log.showSignature=false", *args]
    environment = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    try:
        done = subprocess.run(
            command,
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=environment,
        )
    except FileNotFoundError:
        return _Failed("git is not installed")
    except (OSError, subprocess.TimeoutExpired) as error:
        return _Failed(str(error))
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        return _Failed(lines[-1] if lines else f"git exited with {done.returncode}")
    return done.stdout


def git_revision(folder: Path) -> str | None:
    """`<commit>` of the checkout holding `folder`, `<commit>-dirty` when its files differ
    from that commit, None when it is not in a git repository (or git is missing)."""
    if not folder.is_dir():
        return None
    commit = _git(folder, "rev-parse", "--short=12", "HEAD", timeout=10)
    if isinstance(commit, _Failed):
        return None
    dirty = _git(folder, "status", "--porcelain", "--untracked-files=normal", "--", ".", timeout=10)
    revision = commit.strip()
    return f"{revision}-dirty" if not isinstance(dirty, _Failed) and dirty.strip() else revision


class GitHistory:
    """The commit that last changed each manifest file, asked once per file."""

    def __init__(self) -> None:
        self._changes: dict[Path, Commit | str] = {}

    def last_change(self, file: Path) -> Commit | str:
        """The commit that last changed `file`, or why there is none to judge."""
        if file not in self._changes:
            self._changes[file] = self._read(file)
        return self._changes[file]

    def _read(self, file: Path) -> Commit | str:
        folder = file.parent
        while not folder.is_dir() and folder != folder.parent:
            folder = folder.parent  # a removed manifest: ask from a folder that exists
        found = _git(folder, "rev-parse", "--show-toplevel")
        if isinstance(found, _Failed):
            return f"{file} is not in a git repository ({found.reason})"
        top = Path(found.strip())
        path = os.path.relpath(file.resolve(), top)
        status = _git(top, "status", "--porcelain", "--untracked-files=all", "--", path)
        if isinstance(status, _Failed):
            return f"git cannot tell whether {file} has uncommitted changes ({status.reason})"
        if status.strip():
            what = "is not committed" if status.startswith("??") else "has uncommitted changes"
            return f"{file} {what}: only committed changes can be judged"
        log = _git(top, "log", "-1", f"--format={'%x00'.join(_FIELDS)}", "--", path)
        if isinstance(log, _Failed):
            return f"git log of {file} failed ({log.reason})"
        parts = log.strip("\n").split("\0")
        if len(parts) != len(_FIELDS) or not parts[0]:
            return f"{file} has no commit in git history"
        return Commit(*parts)
