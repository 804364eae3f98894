"""Which jobs this runner owns, when several runners share one state database (DESIGN §8).

Each job is owned through a lease (`state.stores.leases`). A runner takes free jobs up to its share
(the jobs over the runners alive, rounded up), renews its leases every third of their length,
and gives up idle jobs above its share, so that a runner that starts later gets work too.
When a runner dies its leases expire and its heartbeat ages out together (a heartbeat counts
for one lease of the runner's own): the others' share grows and they take its jobs over,
resuming them as a restarted runner does.

Devices are claimed across runners too (`DatabaseClaims`): one operation at a time per
device holds whichever runner owns the job.

The leases held are also the storage's fences (`PostgresStorage.fences`, the same dict): a
job whose lease is lost can be written no more, and so nothing more is sent for it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from jobrunner.errors import LeaseLostError
from jobrunner.state.layout import JobKey

if TYPE_CHECKING:  # psycopg is needed only with a state database: imported by the caller
    from jobrunner.state.stores.leases import Lease, Leases

log = logging.getLogger("jobrunner.ownership")

MARGIN = 1.0
"""Seconds before its end that a lease no longer counts as surely ours (`valid_until`)."""

SCAN = 1.0
"""Seconds between looks for jobs nobody owns (a runner that died): a failover costs at most
the lease plus this."""


class Ownership:
    """This runner's leases: see the module docstring."""

    def __init__(
        self,
        leases: Leases,
        fences: dict[JobKey, Lease],
        clock: Callable[[], float] = time.monotonic,
        announce: bool = True,
    ) -> None:
        """`announce`: say this runner is alive (a `watch` daemon: it takes requests and
        counts in the others' share); a command that acts once holds leases only."""
        self.leases = leases
        self.held = fences
        """The leases held, by job: the storage's fences."""
        self.announce = announce
        self.clock = clock
        self._renew_at = 0.0
        self._scan_at = 0.0
        self.valid_until = 0.0
        """`clock()` up to which the leases held are surely ours: renewed before, so their
        end in the database comes later (nothing is sent past it, see `Connection`)."""

    @property
    def client_id(self) -> str:
        return self.leases.owner

    @property
    def seconds(self) -> float:
        return self.leases.seconds

    def holds(self, key: JobKey) -> bool:
        return key in self.held

    def take(self, key: JobKey) -> bool:
        """Own the job from now on (it is ours, or was free); False while another runner
        holds it."""
        if key in self.held:
            return True
        lease = self.leases.acquire(*key)
        if lease is None:
            return False
        self.held[key] = lease
        return True

    def share(self, jobs: int) -> int:
        """How many of `jobs` this runner takes: its part among the runners alive."""
        alive = len(set(self.leases.alive()) | {self.client_id})
        return -(-jobs // alive)

    def free(self, recorded: Iterable[JobKey]) -> list[JobKey]:
        """The jobs among `recorded` that nobody owns now."""
        owned = self.leases.owners()
        return [key for key in recorded if key not in owned and key not in self.held]

    def renew_due(self) -> bool:
        return self.clock() >= self._renew_at

    def scan_due(self) -> bool:
        return self.clock() >= self._scan_at

    def renew(self) -> list[JobKey]:
        """Say this runner is alive and extend its leases; the jobs whose lease was lost
        (it expired while this runner was paused or cut off, and maybe another took it)."""
        now = self.clock()  # before the database's now(): the leases end after this + lease
        if self.announce:
            self.leases.heartbeat()
        renewed, lost = self.leases.renew_all(list(self.held.values()))
        self.valid_until = now + self.seconds - min(MARGIN, self.seconds / 3)
        for lease in renewed:
            self.held[(lease.scope, lease.job)] = lease
        gone = [(lease.scope, lease.job) for lease in lost]
        for key in gone:
            self.held.pop(key, None)
        self._renew_at = now + self.seconds / 3
        return gone

    def scanned(self) -> None:
        self._scan_at = self.clock() + min(SCAN, self.seconds / 3)

    def drop(self, key: JobKey) -> None:
        """Forget the lease (it was lost): nothing more is written for the job."""
        self.held.pop(key, None)

    def give_up(self, key: JobKey) -> None:
        """Release the lease (a clean stop, or a job above the share): another runner may
        take the job at once."""
        lease = self.held.pop(key, None)
        if lease is not None:
            try:
                self.leases.release(lease)
            except OSError as error:  # it expires by itself
                log.warning("could not release the lease of %s/%s: %s", *key, error)

    def close(self) -> None:
        for key in list(self.held):
            self.give_up(key)
        if self.announce:
            try:
                self.leases.goodbye()
            except OSError as error:  # it ages out by itself
                log.warning("could not say goodbye to the other runners: %s", error)
        self.leases.close()


class DatabaseClaims:
    """`DeviceClaims` in the state database: a job claims a device with its lease (a claim
    whose lease is no longer current is free), one statement per job and turn; releases are
    gathered and written together, at most every RELEASE_EVERY seconds."""

    RETRY = 0.5
    """Seconds before a device another runner's job has is asked for again."""
    RELEASE_EVERY = 0.25
    """Seconds between two writes of the devices released (one statement for all of them):
    another runner's job waits this much longer for a device, the database far less."""

    def __init__(
        self,
        leases: Leases,
        held: dict[JobKey, Lease],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.leases = leases
        self.held = held
        self.clock = clock
        self._have: set[tuple[JobKey, str]] = set()
        self._wanted: dict[tuple[JobKey, str], float] = {}
        """(job, client id) asked for -> when to ask (again)."""
        self._released: dict[JobKey, set[str]] = {}
        self._released_at = 0.0

    def holds(self, job: JobKey, client_id: str) -> bool:
        return (job, client_id) in self._have

    def want(self, job: JobKey, client_id: str) -> None:
        self._wanted.setdefault((job, client_id), 0.0)

    def granted(self) -> list[tuple[JobKey, str]]:
        now = self.clock()
        if self._released and now >= self._released_at + self.RELEASE_EVERY:
            self._write_releases()
            self._released_at = now
        due: dict[JobKey, list[str]] = {}
        for (job, client_id), at in self._wanted.items():
            if at <= now:
                due.setdefault(job, []).append(client_id)
        granted: list[tuple[JobKey, str]] = []
        for job, client_ids in due.items():
            lease = self.held.get(job)
            try:
                got = self.leases.claim_devices(lease, client_ids) if lease else set()
            except (OSError, LeaseLostError) as error:  # the engine's next write tells
                log.warning("devices of %s/%s not claimed: %s", *job, error)
                got = set()
            for client_id in client_ids:
                if client_id in got:
                    del self._wanted[(job, client_id)]
                    self._have.add((job, client_id))
                    granted.append((job, client_id))
                elif lease is None:
                    del self._wanted[(job, client_id)]
                else:
                    self._wanted[(job, client_id)] = now + self.RETRY
        return granted

    def release(self, job: JobKey, client_id: str) -> None:
        if (job, client_id) in self._have:
            self._have.discard((job, client_id))
            self._released.setdefault(job, set()).add(client_id)

    def release_job(self, job: JobKey) -> None:
        for key in [k for k in self._have if k[0] == job]:
            self.release(*key)
        for key in [k for k in self._wanted if k[0] == job]:
            del self._wanted[key]

    def _write_releases(self) -> None:
        while self._released:
            job, client_ids = next(iter(self._released.items()))
            try:
                self.leases.release_devices(job[0], job[1], sorted(client_ids))
            except OSError as error:  # kept: written with the next claims
                log.warning("devices of %s/%s not released yet: %s", *job, error)
                return
            del self._released[job]
