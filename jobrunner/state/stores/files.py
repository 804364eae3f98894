"""The state directory: each record one file, replaced by rename, appended line by line.

A document is written to a new file and renamed into place (fsync'ed, with its folder, when
durable); a journal is appended with one unbuffered write, and a torn last line left by a
crash is cut when the file is opened again.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import IO

from jobrunner.state.stores.base import Stamp


class FileStorage:
    """A state directory: each record one file, replaced by rename, appended by `write`."""

    kind = "state directory"
    shared = False

    def __init__(self, root: Path) -> None:
        self.root = root
        self._handles: dict[Path, IO[bytes]] = {}

    def describe(self) -> str:
        return f"{self.kind} {self.root}"

    # -- reading ---------------------------------------------------------------------------

    def read(self, path: Path) -> bytes:
        return path.read_bytes()

    def read_stamped(self, path: Path) -> tuple[bytes, Stamp]:
        with path.open("rb") as handle:
            return handle.read(), os.fstat(handle.fileno()).st_ino

    def read_chunks(self, path: Path, size: int) -> tuple[Generator[bytes], Stamp]:
        handle = path.open("rb")  # FileNotFoundError now, not at the first piece
        try:
            stamp = os.fstat(handle.fileno()).st_ino
        except BaseException:
            handle.close()
            raise
        return _pieces(handle, size), stamp

    def read_after(self, path: Path, stamp: Stamp, offset: int) -> bytes | None:
        try:
            with path.open("rb") as handle:
                if os.fstat(handle.fileno()).st_ino != stamp or offset == 0:
                    return None
                if handle.seek(0, os.SEEK_END) < offset:
                    return None
                handle.seek(offset)
                return handle.read()
        except FileNotFoundError:
            return None

    def read_from(self, path: Path, offset: int) -> bytes:
        try:
            with path.open("rb") as handle:
                handle.seek(offset)
                return handle.read()
        except FileNotFoundError:
            return b""

    def stamp(self, path: Path) -> Stamp | None:
        try:
            stat = path.stat()
        except FileNotFoundError:
            return None
        return stat.st_ino, stat.st_size, stat.st_mtime_ns

    def exists(self, path: Path) -> bool:
        return path.exists()

    def size(self, path: Path) -> int | None:
        try:
            return path.stat().st_size
        except FileNotFoundError:
            return None

    def children(self, folder: Path) -> list[str]:
        try:
            names = os.listdir(folder)  # noqa: PTH208 (names only: no Path made per entry)
            return sorted(name for name in names if not name.startswith("."))
        except (FileNotFoundError, NotADirectoryError):
            return []

    # -- writing ---------------------------------------------------------------------------

    def replace(self, path: Path, data: bytes, durable: bool = True) -> None:
        self.release(path)
        atomic_write(path, data, durable)

    def append(self, path: Path, data: bytes, durable: bool = False, header: bytes = b"") -> None:
        handle = self._handles.get(path)
        if handle is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            _repair_torn_tail(path)
            handle = path.open("ab", buffering=0)
            if header and handle.seek(0, os.SEEK_END) == 0:
                data = header + data
            self._handles[path] = handle
        append_whole(handle, data, durable)

    def remove(self, path: Path) -> None:
        self.release(path)
        path.unlink(missing_ok=True)

    def remove_tree(self, folder: Path) -> None:
        for path in [p for p in self._handles if p.is_relative_to(folder)]:
            self.release(path)
        try:
            shutil.rmtree(folder)
        except FileNotFoundError:
            return
        except NotADirectoryError:
            folder.unlink(missing_ok=True)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        yield  # each append is one write already; nothing to gather

    def release(self, path: Path) -> None:
        handle = self._handles.pop(path, None)
        if handle is not None:
            handle.close()

    def close(self) -> None:
        for path in list(self._handles):
            self.release(path)


def fsync_folder(folder: Path) -> None:
    """Make a rename or a new file in `folder` durable."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _pieces(handle: IO[bytes], size: int) -> Generator[bytes]:
    """What is left of `handle`, `size` bytes at a time; closed at the end (or when the
    iterator is let go of)."""
    with handle:
        while piece := handle.read(size):
            yield piece


def atomic_write(path: Path, data: bytes, durable: bool = True) -> None:
    """Replace `path` by `data` so that a crash leaves the old content or the new, whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        temporary.replace(path)
    except OSError:
        # A full or read-only disk: the old file stays whole; no half-written copy remains.
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    if durable:
        fsync_folder(path.parent)


def append_whole(handle: IO[bytes], data: bytes, durable: bool) -> None:
    """Append all of `data` to an unbuffered file, or nothing: when the disk refuses (full,
    read-only, quota), what was written of it is cut off again, so the file never keeps a
    torn line in its middle; the caller keeps the data and tries again later."""
    start = handle.seek(0, os.SEEK_END)
    try:
        view = memoryview(data)
        while view:
            written = handle.write(view)
            if not written:
                raise OSError(errno.EIO, "the disk accepted no byte")
            view = view[written:]
        if durable:
            os.fsync(handle.fileno())
    except OSError:
        with contextlib.suppress(OSError):
            handle.truncate(start)
        raise


def _repair_torn_tail(path: Path) -> None:
    """Cut a line torn by a crash, so that the next append starts on a line of its own."""
    try:
        with path.open("rb+") as handle:
            size = handle.seek(0, os.SEEK_END)
            if size == 0:
                return
            handle.seek(size - 1)
            if handle.read(1) == b"\n":
                return
            handle.seek(0)
            data = handle.read()
            handle.truncate(data.rfind(b"\n") + 1)
    except FileNotFoundError:
        return
