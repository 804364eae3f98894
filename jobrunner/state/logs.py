"""Execution logs: one text line per event, appended as it happens, readable with `tail -f`.

    2026-11-27T10:15:02.314Z target gw-0007 step 2 'install': no reply in 30s; failed

A line is written whole or not at all from the reader's point of view: lines are appended
with one write each batch, and a reader ignores a last line without its newline (it is still
being written, or was torn by a crash).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from jobrunner.state.stores.base import Storage


def timestamp(at: float | None = None) -> str:
    """ISO-8601 UTC with milliseconds: `2026-11-27T10:15:02.314Z`.

    Every log line has one, so the text of the whole second is made once and kept: the
    split into second and microsecond is `datetime.fromtimestamp`'s own (rounded half to
    even), so the result is exactly `datetime.fromtimestamp(at, UTC)`'s, formatted.
    """
    global _second  # noqa: PLW0603 - a one-entry cache, replaced whole (thread-safe)
    fraction, whole = math.modf(time.time() if at is None else at)
    micros = round(fraction * 1e6)
    if micros >= 1_000_000:
        whole, micros = whole + 1.0, micros - 1_000_000
    elif micros < 0:
        whole, micros = whole - 1.0, micros + 1_000_000
    second = int(whole)
    cached = _second
    if cached[0] != second:
        moment = datetime.fromtimestamp(second, UTC)
        cached = _second = (second, moment.strftime("%Y-%m-%dT%H:%M:%S."))
    return f"{cached[1]}{micros // 1000:03d}Z"


_second: tuple[int, str] = (-(2**63), "")


def _nothing() -> None:
    """The default `on_pending`."""


class ExecutionLog:
    """Appends lines to one execution's log; `flush` writes what was queued."""

    def __init__(self, storage: Storage, path: Path) -> None:
        self.storage = storage
        self.path = path
        self._pending: list[str] = []
        self.on_pending: Callable[[], object] = _nothing
        """Called when a line is queued and none was (see `Journal.on_pending`)."""

    def write(self, subject: str, message: str, at: float | None = None) -> None:
        """Queue `TIME SUBJECT: MESSAGE` (newlines in the message are flattened)."""
        if "\n" in message or "\r" in message:  # rare: looked for, not replaced, first
            message = message.replace("\n", " | ").replace("\r", "")
        if not self._pending:
            self.on_pending()
        self._pending.append(f"{timestamp(at)} {subject}: {message}\n")

    def flush(self) -> None:
        """Write the queued lines, all of them or none (kept for the next try)."""
        if not self._pending:
            return
        self.storage.append(self.path, "".join(self._pending).encode("utf-8"))
        self._pending.clear()

    def close(self) -> None:
        self.flush()
        self.storage.release(self.path)


def read_lines(
    storage: Storage,
    path: Path,
    follow: bool = False,
    poll: float = 0.2,
    until: Callable[[], bool] | None = None,
) -> Iterator[str]:
    """The complete lines of a log; with `follow`, keep yielding new ones as they are written,
    until `until()` is true (the lines written before it became true are still yielded)."""
    position = 0
    partial = b""
    last_pass = False
    while True:
        chunk = storage.read_from(path, position)
        position += len(chunk)
        lines = (partial + chunk).split(b"\n")
        partial = lines.pop()
        for line in lines:
            yield line.decode("utf-8", errors="replace")
        if not follow or last_pass:
            return
        last_pass = until is not None and until()
        if not last_pass:
            time.sleep(poll)
