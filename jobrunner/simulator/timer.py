"""One thread, one heap: every timed event of a simulated fleet runs here.

Progress notifications, slow replies, delayed reconnects and scheduled connects of a
10,000-device fleet would need thousands of `threading.Timer` threads; a single thread
sleeping until the earliest due event of a heap serves them all in order.

Callbacks must be short (they run one after the other); an exception in one is logged with
the event's label and does not stop the others.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass(order=True, slots=True)
class TimedEvent:
    """A scheduled call; `cancel()` keeps it from running (it stays in the heap until due)."""

    due: float
    seq: int
    callback: Callable[[], None] = field(compare=False)
    label: str = field(default="", compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        """Keep the event from running."""
        self.cancelled = True


class Timer:
    """A heap of timed events served by one daemon thread, in due order."""

    def __init__(self, name: str = "jobrunner-sim-timer") -> None:
        self._heap: list[TimedEvent] = []
        self._wakeup = threading.Condition()
        self._counter = itertools.count()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        """Start serving events."""
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving; events not yet due are dropped."""
        with self._wakeup:
            self._stopping = True
            self._wakeup.notify()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def call_later(self, delay: float, callback: Callable[[], None], label: str = "") -> TimedEvent:
        """Run `callback` on the timer thread `delay` seconds from now."""
        event = TimedEvent(time.monotonic() + max(delay, 0.0), next(self._counter), callback, label)
        with self._wakeup:
            heapq.heappush(self._heap, event)
            if self._heap[0] is event:
                self._wakeup.notify()
        return event

    def pending(self) -> int:
        """How many events wait (cancelled ones included until their due time)."""
        with self._wakeup:
            return len(self._heap)

    def _run(self) -> None:
        while True:
            with self._wakeup:
                while not self._stopping:
                    if not self._heap:
                        self._wakeup.wait()
                        continue
                    wait = self._heap[0].due - time.monotonic()
                    if wait <= 0:
                        break
                    self._wakeup.wait(wait)
                if self._stopping:
                    self._heap.clear()
                    return
                event = heapq.heappop(self._heap)
            if event.cancelled:
                continue
            try:
                event.callback()
            except Exception:
                log.exception("simulator timer event %r failed", event.label or event.callback)
