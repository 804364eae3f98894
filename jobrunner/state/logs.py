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

    Every log line has one, so the text of the whole second is made once and kept, and the
    last text made is given again for a time in the same millisecond. The result is exactly
    `datetime.fromtimestamp(at, UTC)`'s, formatted (`_exact`): a time more than 2 us from a
    millisecond's edge is in the millisecond its product by 1000 says, whichever way
    `datetime` rounds it to the microsecond (up to 2**32 s, the product is off by half a
    microsecond at most); a time nearer an edge takes `datetime`'s own way.
    """
    global _milli  # noqa: PLW0603 - a one-entry cache, replaced whole (thread-safe)
    if at is None:
        at = time.time()
    scaled = at * 1000.0
    if 0.0 < scaled < _FAST_UNTIL:
        whole = scaled // 1.0
        if 0.002 < scaled - whole < 0.998:
            cached = _milli
            if cached[0] == whole:
                return cached[1]
            millis = int(whole)
            second = millis // 1000
            known = _second
            if known[0] == second:
                text = known[1] + _MILLIS[millis - second * 1000]
                _milli = (whole, text)
                return text
    return _exact(at)


_FAST_UNTIL = 2.0**32 * 1000.0
_MILLIS = [f"{n:03d}Z" for n in range(1000)]
_milli: tuple[float, str] = (-1.0, "")
"""The last millisecond `timestamp` wrote (milliseconds since the epoch) and its text."""


def _exact(at: float) -> str:
    """`timestamp`, the split into second and microsecond done as `datetime.fromtimestamp`
    does it (rounded half to even)."""
    global _second  # noqa: PLW0603 - a one-entry cache, replaced whole (thread-safe)
    fraction, whole = math.modf(at)
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
