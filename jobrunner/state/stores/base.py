"""The `Storage` interface: where the recorded state lives, whatever holds it.

The state layer is built on two kinds of record:

- *documents*, replaced whole (`replace`): a crash leaves the old one or the new one;
- *journals* and logs, appended to (`append`): all of a batch or nothing, never a torn
  line in the middle.

Records are named by paths under the storage's `root`, laid out as `layout` says. The state
directory (`files.FileStorage`) is the embedded default; `postgres.PostgresStorage` keeps the
same records in PostgreSQL for several runners. `tests/state/test_storage_conformance.py`
runs one suite over both.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Generator, Hashable
from pathlib import Path
from typing import Protocol

Stamp = Hashable
"""What changes when a record is replaced (not when it is appended to)."""


class Storage(Protocol):
    """The records of one state: read, replaced and appended by path under `root`."""

    root: Path
    kind: str
    """What it is, for messages: `state directory`, `state database`."""
    shared: bool
    """Several runners may use it at once: only `ownership` asks (see `StateDir.owners`)."""

    def describe(self) -> str:
        """Where the state is, for messages: `state directory state`."""
        ...

    def read(self, path: Path) -> bytes:
        """The whole record; FileNotFoundError when there is none."""
        ...

    def read_stamped(self, path: Path) -> tuple[bytes, Stamp]:
        """The whole record and its stamp, read together; FileNotFoundError when none."""
        ...

    def read_chunks(self, path: Path, size: int) -> tuple[Generator[bytes], Stamp]:
        """The whole record as `read_stamped` reads it, in pieces of about `size` bytes (cut
        anywhere), and its stamp; FileNotFoundError when none. A reader that takes it line
        by line then never holds all of it at once (a registry of 100,000 devices is 22 MB).
        A reader that stops early closes the generator (what it holds open is let go)."""
        ...

    def read_after(self, path: Path, stamp: Stamp, offset: int) -> bytes | None:
        """What was appended past `offset` since the record had `stamp`; None when it was
        replaced, cut or removed since (read it whole again)."""
        ...

    def read_from(self, path: Path, offset: int) -> bytes:
        """The bytes from `offset` on (b"" when there is no record): logs, never replaced."""
        ...

    def stamp(self, path: Path) -> Stamp | None:
        """The record's stamp, None when there is none."""
        ...

    def exists(self, path: Path) -> bool: ...

    def size(self, path: Path) -> int | None:
        """How many bytes the record holds; None when there is none."""
        ...

    def children(self, folder: Path) -> list[str]:
        """The names directly under `folder` (records and folders), sorted; [] when none."""
        ...

    def replace(self, path: Path, data: bytes, durable: bool = True) -> None:
        """Replace the record by `data`, whole (a crash leaves the old or the new)."""
        ...

    def append(self, path: Path, data: bytes, durable: bool = False, header: bytes = b"") -> None:
        """Append `data` (whole lines), all of it or nothing (OSError: nothing, try again);
        `header` first when the record is new or empty."""
        ...

    def remove(self, path: Path) -> None:
        """Remove the record (nothing when there is none)."""
        ...

    def remove_tree(self, folder: Path) -> None:
        """Remove every record under `folder`, and the folder (nothing when there is none):
        an execution's summary and log, pruned together (see `state.history`)."""
        ...

    def batch(self) -> contextlib.AbstractContextManager[None]:
        """The writes inside the block are made together, at its end (one engine turn)."""
        ...

    def release(self, path: Path) -> None:
        """Let go of what is kept open for appending to `path`."""
        ...

    def close(self) -> None: ...


def redacted(conninfo: str) -> str:
    """A database's conninfo without its password, for messages."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", conninfo)
