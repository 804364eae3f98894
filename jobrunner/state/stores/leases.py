"""Leases with fencing in PostgreSQL: which runner owns a job, and may write and send for it.

Each job is owned by one runner at a time through a lease that the
owner renews (every third of its length); a runner takes over a lease that expired, and the
lease's *epoch* grows by one each time it changes hands. Every write for a job is made in a
transaction that first checks, in the database, that the writer's lease (owner and epoch)
is still the current one and not expired (`fenced`): a runner that was paused or cut off
past its lease can neither write nor, since it records a request before sending it, send.
Time is the database's (`now()`), never a runner's clock, so clock skew between machines
cannot make two owners.

Devices are claimed through the database too (`claim_device`): one operation at a time per
device holds across runners; a claim whose job lease is no longer current is free.
The tables are `schema`'s.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import TupleRow

from jobrunner.errors import LeaseLostError, StateError
from jobrunner.state.stores.database import LOST, Database
from jobrunner.state.stores.schema import lost_jobs


@dataclass(frozen=True)
class Lease:
    scope: str
    job: str
    owner: str
    epoch: int
    expires_at: datetime


class Leases:
    """One runner's view of the leases, over the state's connection (`Database`)."""

    def __init__(self, database: Database | str, owner: str, seconds: float) -> None:
        """`database`: the opened state's (closed with it), or a conninfo to open one of
        its own (closed by `close`)."""
        self._own = not isinstance(database, Database)
        self.database = database if isinstance(database, Database) else Database(database)
        self.owner = owner
        self.seconds = seconds

    @property
    def conninfo(self) -> str:
        return self.database.conninfo

    @property
    def connection(self) -> psycopg.Connection[TupleRow]:
        return self.database.connection()

    def close(self) -> None:
        if self._own:
            self.database.close()

    def _execute(self, query: str, params: Any = None) -> psycopg.Cursor[TupleRow]:
        """`execute` on the connection, connected again when it was lost; OSError when the
        database cannot be reached (as a disk that refuses: the caller tries again later).
        The rows are in the cursor already (client side), read after the lock is left."""
        try:
            with self.database.lock:
                return self.database.connection().execute(query, params)
        except (*LOST, StateError) as error:
            raise OSError(f"the state database cannot be reached: {error}") from None

    # -- leases -----------------------------------------------------------------------------

    def acquire(self, scope: str, job: str) -> Lease | None:
        """The job's lease for this runner: new, taken over from an owner whose lease
        expired (the epoch grows), or still ours; None while another runner holds it."""
        row = self._execute(
            """
            INSERT INTO jobrunner_leases AS l (scope, job, owner, epoch, expires_at)
            VALUES (%(scope)s, %(job)s, %(owner)s, 1, now() + make_interval(secs => %(s)s))
            ON CONFLICT (scope, job) DO UPDATE
                SET owner = EXCLUDED.owner, epoch = l.epoch + 1, expires_at = EXCLUDED.expires_at
                WHERE l.expires_at < now()
            RETURNING epoch, expires_at
            """,
            {"scope": scope, "job": job, "owner": self.owner, "s": self.seconds},
        ).fetchone()
        if row is not None:
            return Lease(scope, job, self.owner, int(row[0]), row[1])
        current = self.current(scope, job)
        return current if current is not None and current.owner == self.owner else None

    def renew(self, lease: Lease) -> Lease:
        """Extend a lease that is still ours and current; LeaseLostError otherwise (a runner
        paused past its lease must acquire it again, with a new epoch)."""
        row = self._execute(
            """
            UPDATE jobrunner_leases SET expires_at = now() + make_interval(secs => %(s)s)
            WHERE scope = %(scope)s AND job = %(job)s AND owner = %(owner)s
              AND epoch = %(epoch)s AND expires_at >= now()
            RETURNING expires_at
            """,
            {"scope": lease.scope, "job": lease.job, "owner": lease.owner,
             "epoch": lease.epoch, "s": self.seconds},
        ).fetchone()  # fmt: skip
        if row is None:
            raise LeaseLostError(self._lost(lease))
        return Lease(lease.scope, lease.job, lease.owner, lease.epoch, row[0])

    def renew_all(self, leases: Iterable[Lease]) -> tuple[list[Lease], list[Lease]]:
        """Extend many leases in one statement: (renewed, lost), as `renew` would."""
        wanted = {(lease.scope, lease.job): lease for lease in leases}
        if not wanted:
            return [], []
        rows = self._execute(
            """
            UPDATE jobrunner_leases AS l SET expires_at = now() + make_interval(secs => %s)
            FROM unnest(%s::text[], %s::text[], %s::bigint[]) AS w(scope, job, epoch)
            WHERE l.scope = w.scope AND l.job = w.job AND l.epoch = w.epoch
              AND l.owner = %s AND l.expires_at >= now()
            RETURNING l.scope, l.job, l.expires_at
            """,
            (
                self.seconds,
                [k[0] for k in wanted],
                [k[1] for k in wanted],
                [lease.epoch for lease in wanted.values()],
                self.owner,
            ),
        ).fetchall()
        renewed = []
        for scope, job, expires_at in rows:
            old = wanted.pop((str(scope), str(job)))
            renewed.append(Lease(old.scope, old.job, old.owner, old.epoch, expires_at))
        return renewed, list(wanted.values())

    def holders(self) -> dict[str, int]:
        """How many current leases each runner holds."""
        rows = self._execute(
            "SELECT owner, count(*) FROM jobrunner_leases WHERE expires_at >= now() GROUP BY owner"
        ).fetchall()
        return {str(owner): int(str(count)) for owner, count in rows}

    def owners(self) -> dict[tuple[str, str], str]:
        """The owner of each job with a current lease."""
        rows = self._execute(
            "SELECT scope, job, owner FROM jobrunner_leases WHERE expires_at >= now()"
        ).fetchall()
        return {(str(scope), str(job)): str(owner) for scope, job, owner in rows}

    def release(self, lease: Lease) -> None:
        """Give the lease up (a clean stop): another runner may take the job at once."""
        self._execute(
            "DELETE FROM jobrunner_leases WHERE scope = %s AND job = %s AND owner = %s"
            " AND epoch = %s",
            (lease.scope, lease.job, lease.owner, lease.epoch),
        )

    def current(self, scope: str, job: str) -> Lease | None:
        """The job's lease as the database has it (None: nobody's, or expired)."""
        row = self._execute(
            "SELECT owner, epoch, expires_at FROM jobrunner_leases WHERE scope = %s"
            " AND job = %s AND expires_at >= now()",
            (scope, job),
        ).fetchone()
        return None if row is None else Lease(scope, job, row[0], int(row[1]), row[2])

    @contextlib.contextmanager
    def fenced(self, lease: Lease) -> Iterator[psycopg.Cursor[TupleRow]]:
        """A transaction for writes of the lease's job, which first makes sure the lease is
        still current (and keeps it so until the commit); LeaseLostError when it is not,
        and nothing is written. OSError when the database cannot be reached."""
        self._execute("SELECT 1")  # connected again first, when the connection was lost
        try:
            with (
                self.database.lock,
                self.connection.transaction(),
                self.connection.cursor() as cursor,
            ):
                cursor.execute(
                    "SELECT jobrunner_fence(%s::text[], %s::text[], %s::bigint[], %s)",
                    ([lease.scope], [lease.job], [lease.epoch], lease.owner),
                )
                yield cursor
        except LOST as error:
            raise OSError(f"the state database cannot be reached: {error}") from None
        except psycopg.Error as error:
            if lost_jobs(error) is None:
                raise
            raise LeaseLostError(self._lost(lease), frozenset({(lease.scope, lease.job)})) from None

    def _lost(self, lease: Lease) -> str:
        now = self.current(lease.scope, lease.job)
        holder = (
            "nobody holds it now (it expired)"
            if now is None
            else f"{now.owner} holds it now (epoch {now.epoch})"
        )
        return (
            f"the lease of {lease.scope}/{lease.job} (epoch {lease.epoch}) is no longer"
            f" {lease.owner}'s: {holder}; nothing more is written or sent for it"
        )

    # -- devices ------------------------------------------------------------------------------

    def claim_device(self, lease: Lease, client_id: str) -> bool:
        """Claim the device for the lease's job (one operation at a time per device, across
        runners): True when it is now ours; False while a current lease of another job holds
        it. LeaseLostError when our own lease is no longer current."""
        return client_id in self.claim_devices(lease, [client_id])

    def claim_devices(self, lease: Lease, client_ids: list[str]) -> set[str]:
        """`claim_device` for many devices in one statement: those now the job's."""
        if not client_ids:
            return set()
        with self.fenced(lease) as cursor:
            rows = cursor.execute(
                """
                INSERT INTO jobrunner_device_claims AS c (scope, client_id, job, owner, epoch)
                SELECT %(scope)s, client, %(job)s, %(owner)s, %(epoch)s
                FROM unnest(%(clients)s::text[]) AS client
                ON CONFLICT (scope, client_id) DO UPDATE
                    SET job = EXCLUDED.job, owner = EXCLUDED.owner, epoch = EXCLUDED.epoch
                    WHERE (c.job = EXCLUDED.job) OR NOT EXISTS (
                        SELECT 1 FROM jobrunner_leases l
                        WHERE l.scope = c.scope AND l.job = c.job AND l.owner = c.owner
                          AND l.epoch = c.epoch AND l.expires_at >= now())
                RETURNING client_id
                """,
                {"scope": lease.scope, "clients": client_ids, "job": lease.job,
                 "owner": lease.owner, "epoch": lease.epoch},
            ).fetchall()  # fmt: skip
        return {str(row[0]) for row in rows}

    def release_devices(self, scope: str, job: str, client_ids: list[str]) -> None:
        """Free the devices the job claimed (by this runner). Not waited for on disk: a
        release the database loses in a crash keeps the devices for the job's lease only."""
        with self.database.lock:  # one transaction: nothing else on the connection meanwhile
            self._execute("BEGIN")
            try:
                self._execute("SET LOCAL synchronous_commit TO off")
                self._execute(
                    "DELETE FROM jobrunner_device_claims WHERE scope = %s AND job = %s"
                    " AND owner = %s AND client_id = ANY(%s)",
                    (scope, job, self.owner, client_ids),
                )
                self._execute("COMMIT")
            except BaseException:
                with contextlib.suppress(OSError, psycopg.Error):
                    self._execute("ROLLBACK")
                raise

    def release_device(self, lease: Lease, client_id: str) -> None:
        self.release_devices(lease.scope, lease.job, [client_id])

    # -- runners ------------------------------------------------------------------------------

    def heartbeat(self) -> None:
        """Say this runner is alive for one lease of its own from now (with each renewal);
        forget runners not seen for a day (they died: the table stays as small as the fleet
        of runners)."""
        self._execute(
            "INSERT INTO jobrunner_runners (client_id, seen_at, lease) VALUES (%s, now(), %s)"
            " ON CONFLICT (client_id) DO UPDATE SET seen_at = now(), lease = EXCLUDED.lease",
            (self.owner, self.seconds),
        )
        self._execute("DELETE FROM jobrunner_runners WHERE seen_at < now() - interval '1 day'")

    def goodbye(self) -> None:
        """This runner stops (a clean stop): no longer alive for the others at once."""
        self._execute("DELETE FROM jobrunner_runners WHERE client_id = %s", (self.owner,))

    def alive(self) -> list[str]:
        """The runners alive, by client id: those whose own lease has not passed since their
        last heartbeat (a runner that dies is no longer alive when its leases expire, with
        whatever `--lease` it ran)."""
        rows = self._execute(
            "SELECT client_id FROM jobrunner_runners"
            " WHERE seen_at + make_interval(secs => lease) >= now() ORDER BY client_id"
        ).fetchall()
        return [str(row[0]) for row in rows]
