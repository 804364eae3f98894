"""The recorded state in PostgreSQL: the `Storage` of several runners (`--state-db`).

Each record of the state directory's layout is a row of `jobrunner_records` (its key is the
path under the root, `scopes/acme/jobs/x/targets.journal`): what was last written whole
(`head`, replaced in one statement) and, in `jobrunner_appends`, each batch appended since,
with its offset. A reader that follows a journal asks for what lies past its offset.

Writes are made together: inside `batch()` (one engine turn) they are queued and committed
in one transaction at its end; outside, each is its own. With `fences` set (a runner of
several), a write under a job's folder commits only while that job's lease is still this
runner's and current, checked in the same transaction (`FOR SHARE` keeps it so until the
commit): the writes of a job whose lease was lost are dropped, never made, and
`LeaseLostError` names the job once the others are committed. Since a request is recorded
before it is published, a runner fenced off from writing cannot send either.

When the database cannot be reached, a write raises OSError and stays queued: the engine
pauses dispatching (as for a full disk) and the next batch commits it first, in order.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
from psycopg.rows import TupleRow

from jobrunner.errors import LeaseLostError
from jobrunner.state.stores.base import Stamp
from jobrunner.state.stores.database import Database
from jobrunner.state.stores.leases import Lease
from jobrunner.state.stores.schema import lost_jobs

if TYPE_CHECKING:  # the records' layout is above the storages
    from jobrunner.state.layout import JobKey

ROOT = Path("postgresql:")
"""The root of the records' paths: messages name a record `postgresql:/scopes/...`."""


@dataclass(frozen=True)
class _Write:
    kind: str  # "replace", "append", "remove" or "remove_tree"
    key: str
    data: bytes = b""
    header: bytes = b""
    durable: bool = True

    @property
    def job(self) -> JobKey | None:
        """The job whose lease fences this write (None: a record of no job)."""
        parts = self.key.split("/", 5)
        if len(parts) >= 5 and parts[0] == "scopes" and parts[2] == "jobs":
            return parts[1], parts[3]
        return None


class PostgresStorage:
    """The records of one state in a PostgreSQL database; see the module docstring."""

    kind = "state database"
    shared = True

    def __init__(self, database: Database | str) -> None:
        """`database`: the state's connection (shared with its leases), or a conninfo to
        open one of its own."""
        self.root = ROOT
        self.database = database if isinstance(database, Database) else Database(database)
        self.fences: dict[JobKey, Lease] | None = None
        """The leases this runner holds, by job, when writes are fenced (None: not)."""
        self._queue: list[_Write] = []
        self._batching = 0

    @property
    def conninfo(self) -> str:
        return self.database.conninfo

    def describe(self) -> str:
        return self.database.describe()

    def _using(self) -> contextlib.AbstractContextManager[psycopg.Connection[TupleRow]]:
        return self.database.using()

    def _key(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    # -- reading ---------------------------------------------------------------------------

    def read(self, path: Path) -> bytes:
        return self.read_stamped(path)[0]

    def read_stamped(self, path: Path) -> tuple[bytes, Stamp]:
        with self._using() as connection:
            row = connection.execute(
                "SELECT r.generation, r.head, (SELECT string_agg(a.data, ''::bytea ORDER BY"
                " a.start) FROM jobrunner_appends a WHERE a.key = r.key)"
                " FROM jobrunner_records r WHERE r.key = %s",
                (self._key(path),),
            ).fetchone()
        if row is None:
            raise FileNotFoundError(str(path))
        return _bytes(row[1]) + _bytes(row[2]), row[0]

    def read_chunks(self, path: Path, size: int) -> tuple[Generator[bytes], Stamp]:
        data, stamp = self.read_stamped(path)  # one row: it comes whole from the database
        return _whole(data), stamp

    def read_after(self, path: Path, stamp: Stamp, offset: int) -> bytes | None:
        if offset == 0:
            return None
        found = self._read_from(path, offset)
        if found is None or found[0] != stamp or found[1] < offset:
            return None
        return found[2]

    def read_from(self, path: Path, offset: int) -> bytes:
        found = self._read_from(path, offset)
        return b"" if found is None else found[2]

    def _read_from(self, path: Path, offset: int) -> tuple[Stamp, int, bytes] | None:
        with self._using() as connection:
            row = connection.execute(
                """
                SELECT r.generation, r.size,
                    CASE WHEN length(r.head) > %(o)s THEN substr(r.head, (%(o)s + 1)::int)
                         ELSE ''::bytea END,
                    (SELECT string_agg(CASE WHEN a.start < %(o)s
                                            THEN substr(a.data, (%(o)s - a.start + 1)::int)
                                            ELSE a.data END, ''::bytea ORDER BY a.start)
                     FROM jobrunner_appends a
                     WHERE a.key = r.key AND a.start + length(a.data) > %(o)s)
                FROM jobrunner_records r WHERE r.key = %(k)s
                """,
                {"k": self._key(path), "o": offset},
            ).fetchone()
        if row is None:
            return None
        return row[0], int(str(row[1])), _bytes(row[2]) + _bytes(row[3])

    def stamp(self, path: Path) -> Stamp | None:
        with self._using() as connection:
            row = connection.execute(
                "SELECT generation FROM jobrunner_records WHERE key = %s", (self._key(path),)
            ).fetchone()
        return None if row is None else row[0]

    def exists(self, path: Path) -> bool:
        return self.stamp(path) is not None

    def size(self, path: Path) -> int | None:
        with self._using() as connection:
            row = connection.execute(
                "SELECT size FROM jobrunner_records WHERE key = %s", (self._key(path),)
            ).fetchone()
        return None if row is None else int(str(row[0]))

    def children(self, folder: Path) -> list[str]:
        key = self._key(folder)
        prefix = "" if key == "." else key + "/"
        with self._using() as connection:
            rows = connection.execute(
                "SELECT DISTINCT split_part(substr(key, %s::int), '/', 1) FROM jobrunner_records"
                " WHERE key >= %s AND key < %s",
                (len(prefix) + 1, prefix, prefix + "\U0010ffff"),
            ).fetchall()
        return sorted(str(row[0]) for row in rows if row[0])

    # -- writing ---------------------------------------------------------------------------

    def replace(self, path: Path, data: bytes, durable: bool = True) -> None:
        self._write(_Write("replace", self._key(path), data, durable=durable))

    def append(self, path: Path, data: bytes, durable: bool = False, header: bytes = b"") -> None:
        self._write(_Write("append", self._key(path), data, header, durable))

    def remove(self, path: Path) -> None:
        self._write(_Write("remove", self._key(path)))

    def remove_tree(self, folder: Path) -> None:
        self._write(_Write("remove_tree", self._key(folder)))

    def _write(self, write: _Write) -> None:
        with self.database.lock:
            self._queue.append(write)
            if not self._batching:
                self._commit()

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        with self.database.lock:
            self._batching += 1
            try:
                yield
            finally:
                self._batching -= 1
            if not self._batching:
                self._commit()

    def _commit(self) -> None:
        """Commit what is queued, in order, in one transaction. The writes of jobs whose
        lease is no longer ours are dropped; LeaseLostError names those jobs afterwards."""
        lost: set[JobKey] = set()
        while self._queue:
            writes = self._queue
            try:
                self._send(writes)
            except psycopg.Error as error:
                refused = lost_jobs(error)  # rolled back: nothing of this batch was made
                if refused is None:
                    raise
                # Fenced off without names (never expected): no job's write is made.
                refused = refused or frozenset(w.job for w in writes if w.job is not None)
                lost |= refused
                self._queue = [w for w in writes if w.job not in refused]
                continue
            self._queue = []
        if lost:
            names = ", ".join(f"{s}/{j}" for s, j in sorted(lost))
            raise LeaseLostError(
                f"the lease of {names} is no longer this runner's: nothing more is written"
                " or sent for it",
                frozenset(lost),
            )

    def _send(self, writes: list[_Write]) -> None:
        """The writes in one transaction, sent in one round trip (a pipeline): first the
        fence of the jobs they concern, which fails the whole transaction (FENCE_LOST) when
        a lease is no longer ours. Not waited for on disk when no write is durable, as a
        file appended without fsync: a crash of the database server may lose the last log
        lines and transitions, never a request recorded before it is sent (durable)."""
        leases = self._leases_of(writes)
        with (
            self._using() as connection,
            connection.pipeline(),
            connection.transaction(),
            connection.cursor() as cursor,
        ):
            if not any(write.durable for write in writes):
                cursor.execute("SET LOCAL synchronous_commit TO off")
            if leases:
                cursor.execute(
                    "SELECT jobrunner_fence(%s::text[], %s::text[], %s::bigint[], %s)",
                    (
                        [lease.scope for lease in leases],
                        [lease.job for lease in leases],
                        [lease.epoch for lease in leases],
                        leases[0].owner,
                    ),
                )
            for write in writes:
                _apply(cursor, write)

    def _leases_of(self, writes: list[_Write]) -> list[Lease]:
        """The leases that fence `writes`; a job without one is fenced by a lease that
        cannot be current (epoch 0), so that its writes fail as a lost lease's do."""
        if self.fences is None:
            return []
        jobs = {job for write in writes if (job := write.job) is not None}
        owner = next(iter(self.fences.values())).owner if self.fences else ""
        return [self.fences.get(job) or _never(job, owner) for job in sorted(jobs)]

    def release(self, path: Path) -> None:
        """Nothing is kept open per record."""

    def close(self) -> None:
        with self.database.lock:
            with contextlib.suppress(OSError, LeaseLostError):
                self._commit()
            self.database.close()


def _never(job: JobKey, owner: str) -> Lease:
    """A lease no job has: epochs start at 1."""
    return Lease(job[0], job[1], owner or "-", 0, datetime.min.replace(tzinfo=UTC))


def _apply(cursor: psycopg.Cursor[TupleRow], write: _Write) -> None:
    if write.kind == "append":
        cursor.execute("SELECT jobrunner_append(%s, %s, %s)", (write.key, write.data, write.header))
    elif write.kind == "replace":
        cursor.execute(
            "INSERT INTO jobrunner_records AS r VALUES (%s, 1, %s, %s) ON CONFLICT (key) DO"
            " UPDATE SET generation = r.generation + 1, size = EXCLUDED.size, head = EXCLUDED.head",
            (write.key, len(write.data), write.data),
        )
        cursor.execute("DELETE FROM jobrunner_appends WHERE key = %s", (write.key,))
    elif write.kind == "remove_tree":
        # The records under the folder: keys from `folder/` up to `folder/` + the last
        # character (the range an index answers; LIKE would take `_` and `%` as patterns).
        prefix = write.key + "/"
        bounds = (prefix, prefix + "\U0010ffff")
        cursor.execute("DELETE FROM jobrunner_appends WHERE key >= %s AND key < %s", bounds)
        cursor.execute("DELETE FROM jobrunner_records WHERE key >= %s AND key < %s", bounds)
    else:
        cursor.execute("DELETE FROM jobrunner_records WHERE key = %s", (write.key,))
        cursor.execute("DELETE FROM jobrunner_appends WHERE key = %s", (write.key,))


def _bytes(value: object) -> bytes:
    if value is None:
        return b""
    return bytes(value) if isinstance(value, bytes | bytearray | memoryview) else b""


def _whole(data: bytes) -> Generator[bytes]:
    """`read_chunks` of a record that came whole: one piece."""
    yield data
