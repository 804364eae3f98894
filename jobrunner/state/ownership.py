"""Who owns the recorded state, and where requests for its owners go: alone or shared?

Opening the state answers that question once, and the rest of jobrunner asks its owners
model (`StateDir.owners`) instead of asking which kind of state it is:

- `LocalOwners`, a state directory: one owner at a time, the process that holds
  `owner.lock` (a `watch` daemon, or a command that acts itself; a crashed owner's lock
  never blocks its successor); one inbox for the daemon, `requests/`; one outbox.
- `LeasedOwners`, a state database shared by several runners (DESIGN §8): each job is owned
  through a lease (`stores.leases`), over the state's one connection; each runner has its
  own inbox, `requests/CLIENT_ID/`, and outbox; a runner is alive while the lease it
  runs with (its `--lease`) has not passed since its last heartbeat.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, cast

from jobrunner.errors import StateError
from jobrunner.manifests.fields import CLIENT_ID_PATTERN
from jobrunner.state.lock import OwnerLock, current_owner
from jobrunner.state.stores.base import Storage

if TYPE_CHECKING:  # psycopg only with a state database; layout imports this module
    from jobrunner.state.layout import JobKey
    from jobrunner.state.stores.leases import Lease, Leases
    from jobrunner.state.stores.postgres import PostgresStorage

_CLIENT_ID = re.compile(CLIENT_ID_PATTERN)  # a runner's inbox is a folder named by it

DEFAULT_LEASE = 15.0
"""Seconds a job's lease lasts without renewal, unless `--lease` says otherwise."""


@dataclass(frozen=True)
class Share:
    """A runner's part of a shared state: its leases, and the ones it holds by job (the
    storage's fences, the same dict: a job whose lease is lost can be written no more)."""

    leases: Leases
    held: dict[JobKey, Lease]


class Owners(Protocol):
    """The owners of one state; see the module docstring."""

    def describe(self) -> str:
        """Who owns the state now and what that means for the commands: one line."""
        ...

    def daemon_runs(self) -> bool:
        """Whether `watch` daemons take the requests (start, stop and reconcile hand theirs
        over); False: a command acts itself."""
        ...

    def owner_of(self, job: JobKey) -> str | None:
        """The client id of the runner that owns the job now (None: nobody)."""
        ...

    def alive(self) -> list[str] | None:
        """The runners sharing the state that are alive (their own lease has not passed since
        their last heartbeat); None for a directory (owned whole, there are no runners to
        count)."""
        ...

    def inboxes(self, action: str, job: JobKey | None) -> list[str | None]:
        """Whose inboxes a request goes to: a start or stop to the job's owner (a job
        nobody owns: the runner that owns the fewest), a reconcile to every runner alive;
        [None]: the daemon's one inbox; []: no runner is alive to take it."""
        ...

    def inbox(self, runner: str | None) -> Path:
        """The folder of requests of `runner` (None: the daemon of a directory)."""
        ...

    def outbox(self, runner: str) -> Path:
        """The folder of the notification events that `runner` delivers."""
        ...

    def outboxes(self) -> dict[str | None, Path]:
        """Every outbox of the state, by runner (None: the one of a directory)."""
        ...

    def lock(self, role: str, client_id: str) -> OwnerLock | None:
        """A lock, not taken yet, for a runner to own the state whole; None when it is
        shared (owned job by job, through `join`)."""
        ...

    def join(self, client_id: str, seconds: float) -> Share | None:
        """A runner's leases, fencing its writes from now on (one runner per opened state);
        None when the state is owned whole (through `lock`)."""
        ...


def owners_of(root: Path, storage: Storage) -> Owners:
    """The owners model of a state: leased when runners share its storage, else local."""
    if storage.shared:  # the only question of its kind: the rest asks the model
        return LeasedOwners(root, cast("PostgresStorage", storage))
    return LocalOwners(root)


class LocalOwners:
    """A state directory: one owner at a time, through its lock; one inbox."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.lock_file = root / "owner.lock"

    def describe(self) -> str:
        owner = current_owner(self.lock_file)
        if owner is None:
            return (
                f"state {self.root}: no daemon owns it (start, stop and reconcile act themselves)"
            )
        if owner.role == "watch":
            return (
                f"state {self.root}: owned by the watch daemon, {owner}; start, stop and"
                " reconcile are handed to it"
            )
        return f"state {self.root}: in use by jobrunner {owner}"

    def daemon_runs(self) -> bool:
        owner = current_owner(self.lock_file)
        return owner is not None and owner.role == "watch"

    def owner_of(self, job: JobKey) -> str | None:
        found = current_owner(self.lock_file)
        return (found.client_id or str(found)) if found is not None else None

    def alive(self) -> list[str] | None:
        return None

    def inboxes(self, action: str, job: JobKey | None) -> list[str | None]:
        return [None]

    def inbox(self, runner: str | None) -> Path:
        return self.root / "requests"

    def outbox(self, runner: str) -> Path:
        return self.root / "outbox"

    def outboxes(self) -> dict[str | None, Path]:
        return {None: self.root / "outbox"}

    def lock(self, role: str, client_id: str) -> OwnerLock | None:
        return OwnerLock(self.lock_file, role, client_id)

    def join(self, client_id: str, seconds: float) -> Share | None:
        return None


class LeasedOwners:
    """A state database shared by runners: leases per job, an inbox per runner."""

    def __init__(self, root: Path, storage: PostgresStorage) -> None:
        self.root = root
        self.storage = storage
        self._reader: Leases | None = None

    def _leases(self) -> Leases:
        """The leases read as nobody's (for routing and status), over the state's connection:
        it holds no lease and beats no heart, so its own length is never used."""
        if self._reader is None:
            from jobrunner.state.stores.leases import Leases  # noqa: PLC0415 - psycopg

            self._reader = Leases(self.storage.database, owner="", seconds=DEFAULT_LEASE)
        return self._reader

    def describe(self) -> str:
        alive = self._leases().alive()
        if not alive:
            return (
                f"{self.storage.describe()}: no runner alive (start, stop and reconcile act"
                " themselves)"
            )
        return (
            f"{self.storage.describe()}: runners alive: {', '.join(alive)}; start, stop and"
            " reconcile are handed to the job's owner"
        )

    def daemon_runs(self) -> bool:
        return bool(self._leases().alive())

    def owner_of(self, job: JobKey) -> str | None:
        return self._leases().owners().get(job)

    def alive(self) -> list[str]:
        return self._leases().alive()

    def inboxes(self, action: str, job: JobKey | None) -> list[str | None]:
        leases = self._leases()
        alive = leases.alive()
        if not alive:
            return []
        if action == "reconcile":
            return list(alive)
        owner = leases.owners().get(job) if job is not None else None
        if owner is not None:
            return [owner]
        load = leases.holders()
        return [min(alive, key=lambda runner: (load.get(runner, 0), runner))]

    def inbox(self, runner: str | None) -> Path:
        return self.root / "requests" / _runner_id(runner)

    def outbox(self, runner: str) -> Path:
        return self.root / "outbox" / _runner_id(runner)

    def outboxes(self) -> dict[str | None, Path]:
        return {
            runner: self.root / "outbox" / runner
            for runner in self.storage.children(self.root / "outbox")
            if _CLIENT_ID.match(runner)
        }

    def lock(self, role: str, client_id: str) -> OwnerLock | None:
        return None

    def join(self, client_id: str, seconds: float) -> Share | None:
        from jobrunner.state.stores.leases import Leases  # noqa: PLC0415 - psycopg

        if self.storage.fences is not None:
            raise StateError(f"a runner has joined the {self.storage.describe()} already")
        held: dict[JobKey, Lease] = {}
        self.storage.fences = held
        return Share(Leases(self.storage.database, _runner_id(client_id), seconds), held)


def _runner_id(runner: str | None) -> str:
    """A runner's client id, which names its folders; StateError when it cannot."""
    if runner is None or not _CLIENT_ID.match(runner):
        raise StateError(f"runner {runner!r} is not a valid client id")
    return runner
