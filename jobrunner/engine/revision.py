"""The git revision of the jobs directory: what a reconcile attempted and applied."""

from __future__ import annotations

import subprocess
from pathlib import Path


def git_revision(folder: Path) -> str | None:
    """`<commit>` of the checkout holding `folder`, `<commit>-dirty` when its files differ
    from that commit, None when it is not in a git repository (or git is missing)."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(
            [
                "git",
                "-C",
                str(folder),
                "status",
                "--porcelain",
                "--untracked-files=normal",
                "--",
                ".",
            ],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    revision = commit.stdout.strip()
    return f"{revision}-dirty" if dirty.stdout.strip() else revision
