"""One connection to the state database, shared by everything an opened state does with it.

A command opens the state once: its records (`postgres.PostgresStorage`), its leases and
the runners alive (`leases.Leases`) go through this one connection, under one lock, and it
is opened again when it was lost. Its failures are OSError, as a disk's are: the caller
tries again later.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import psycopg
import psycopg.errors
from psycopg.rows import TupleRow

from jobrunner.state.stores.base import redacted
from jobrunner.state.stores.schema import connect

__all__ = ["LOST", "Database", "connect"]  # connect: the one way in (the tests count its calls)

LOST = (psycopg.OperationalError, psycopg.errors.IdleInTransactionSessionTimeout)
"""The errors of a connection that is gone: the server unreachable, or our session ended by
the server (idle in a transaction past its timeout: a runner that was frozen)."""


class Database:
    """A state database, reached through one connection (see the module docstring)."""

    def __init__(self, conninfo: str) -> None:
        """StateError when it cannot be reached or was written by a newer jobrunner."""
        self.conninfo = conninfo
        self.lock = threading.RLock()
        self._connection: psycopg.Connection[TupleRow] | None = connect(conninfo)

    def describe(self) -> str:
        return f"state database {redacted(self.conninfo)}"

    def connection(self) -> psycopg.Connection[TupleRow]:
        """The connection, opened again when it was closed or broken; OSError when the
        database cannot be reached. Use it under `lock` (`using`)."""
        if self._connection is None or self._connection.closed or self._connection.broken:
            if self._connection is not None:
                with contextlib.suppress(psycopg.Error):
                    self._connection.close()
                self._connection = None
            try:
                self._connection = connect(self.conninfo)
            except Exception as error:
                raise OSError(f"the {self.describe()} cannot be reached: {error}") from None
        return self._connection

    @contextlib.contextmanager
    def using(self) -> Iterator[psycopg.Connection[TupleRow]]:
        """The connection, under the lock; its failures are OSError, as a disk's are."""
        with self.lock:
            try:
                yield self.connection()
            except LOST as error:
                raise OSError(f"the {self.describe()} failed: {error}".strip()) from None

    def close(self) -> None:
        with self.lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
