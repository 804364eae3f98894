"""One owner per state directory, and a lock that dies with its owner.

The owner holds an exclusive `flock` on `STATE/owner.lock` for as long as it runs; the
kernel releases it when the process exits, however it exits, so a crashed owner never blocks
its successor. The file also says who the owner is (pid, role, since), for messages.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from jobrunner.errors import StateLockedError
from jobrunner.state.logs import timestamp


@dataclass(frozen=True)
class Owner:
    pid: int
    role: str
    host: str
    since: str
    client_id: str | None = None  # the owner's MQTT client id

    def __str__(self) -> str:
        return f"{self.role} (pid {self.pid} on {self.host}, since {self.since})"


class OwnerLock:
    """The exclusive right to dispatch from a state directory."""

    def __init__(self, path: Path, role: str, client_id: str | None = None) -> None:
        self.path = path
        self.role = role
        self.client_id = client_id
        self._handle: IO[str] | None = None

    def try_acquire(self) -> bool:
        """Take the lock if nobody holds it; False when another process owns the directory."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        owner = {
            "pid": os.getpid(),
            "role": self.role,
            "host": socket.gethostname(),
            "since": timestamp(),
            "clientId": self.client_id,
        }
        handle.write(json.dumps(owner) + "\n")
        handle.flush()
        self._handle = handle
        return True

    def acquire(self) -> OwnerLock:
        """Take the lock or raise StateLockedError naming the owner."""
        if not self.try_acquire():
            owner = current_owner(self.path)
            raise StateLockedError(
                f"the state directory {self.path.parent} is owned by"
                f" {owner or 'another jobrunner'}; stop it, or point --state-dir elsewhere"
            )
        return self

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None

    def __enter__(self) -> OwnerLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def current_owner(path: Path) -> Owner | None:
    """Who owns the state directory now, or None when nobody does."""
    if not path.exists():
        return None
    with path.open("a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            try:
                info = json.loads(handle.readline() or "{}")
                client = info.get("clientId")
                return Owner(
                    int(info["pid"]),
                    str(info["role"]),
                    str(info["host"]),
                    str(info["since"]),
                    client if isinstance(client, str) else None,
                )
            except (ValueError, KeyError, TypeError):
                return Owner(0, "unknown owner", "?", "?")
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return None
