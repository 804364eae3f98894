"""Ctrl-C and SIGTERM while a command drives executions itself (no daemon owns the state).

The first signal asks for a graceful stop: nothing more is sent, replies in flight are
awaited briefly, the executions end STOPPED, the command says what was left and exits
128 + the signal's number (130 for Ctrl-C, 143 for SIGTERM). A second signal leaves at once:
the state on disk is crash-safe, and the executions, still RUNNING, are resumed by the next
command that owns the state directory.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any

import click

HANDLED = (signal.SIGINT, signal.SIGTERM)


class Interrupts:
    """Catches SIGINT and SIGTERM for the duration of a `with` block (main thread only)."""

    def __init__(self, what: str) -> None:
        self.what = what  # "stopping the executions", "no longer following"
        self.received: signal.Signals | None = None
        self._previous: dict[int, Any] = {}

    @property
    def exit_code(self) -> int:
        """128 + the signal's number, as shells report a command a signal ended."""
        return 128 + int(self.received) if self.received is not None else 0

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            for number in HANDLED:
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()

    def _handle(self, number: int, _frame: FrameType | None) -> None:
        if self.received is not None:
            click.echo(
                "\ninterrupted again: leaving at once; what is RUNNING stays RUNNING and the"
                " next command that owns the state directory takes it up",
                err=True,
            )
            raise KeyboardInterrupt
        self.received = signal.Signals(number)
        click.echo(
            f"\n{self.received.name}: {self.what}; press Ctrl-C again to leave at once", err=True
        )
