"""Request/reply correlation: the pending requests, their timeouts, and recent outcomes.

One lock guards everything; every critical section is a few dictionary operations. Timeouts
are a heap of (monotonic deadline, sequence, request id) served by one timer thread: adding,
answering and expiring a request are O(log n). An answered request leaves its heap entry
behind (lazy deletion); the heap is rebuilt from the live entries when such stale entries
outnumber them, so memory stays proportional to what is pending.

A request ends exactly once: answered (`claim`), timed out (the timer), cancelled or
discarded. Its id is then remembered for a while (`recent_limit` ids), so that a second
reply is reported as a duplicate and a reply after the timeout as late, not as unknown.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Generic, TypeVar

from jobrunner.device.model import Pending

T = TypeVar("T")
log = logging.getLogger(__name__)


class Claim(Enum):
    """What a reply's request id turned out to be."""

    CLAIMED = "claimed"
    WRONG_SENDER = "wrong-sender"
    DUPLICATE = "duplicate"
    LATE = "late"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"


class _Ended(Enum):
    ANSWERED = Claim.DUPLICATE
    TIMED_OUT = Claim.LATE
    CANCELLED = Claim.CANCELLED


@dataclass(slots=True)
class _Entry(Generic[T]):
    pending: Pending[T]
    due: float  # monotonic deadline
    seq: int  # matches the heap entry that may expire it
    counted: bool  # occupies a place in the in-flight window


class TableFullError(Exception):
    """The in-flight window is full."""


class PendingTable(Generic[T]):
    """Pending requests by id, with a bounded in-flight window and a timeout thread."""

    def __init__(
        self,
        max_in_flight: int,
        on_timeout: Callable[[Pending[T]], None],
        recent_limit: int = 65_536,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.max_in_flight = max_in_flight
        self._on_timeout = on_timeout
        self._recent_limit = recent_limit
        self._lock = threading.Lock()
        self._timer = threading.Condition(self._lock)
        self._capacity = threading.Condition(self._lock)
        self._entries: dict[str, _Entry[T]] = {}
        self._heap: list[tuple[float, int, str]] = []
        self._stale = 0
        self._seq = 0
        self._in_flight = 0
        self._recent: OrderedDict[str, tuple[_Ended, T, float]] = OrderedDict()
        """Requests that ended lately: how, their tag, and when (monotonic), for messages
        about the replies that still come (late, duplicate)."""
        self._stopping = False
        self._thread: threading.Thread | None = None

    # -- observation -----------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Requests sent by this process and not yet answered, timed out or cancelled."""
        return self._in_flight

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, request_id: str) -> Pending[T] | None:
        entry = self._entries.get(request_id)
        return entry.pending if entry else None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._stopping = False
            self._thread = threading.Thread(
                target=self._run, name="jobrunner-request-timeouts", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
            self._stopping = True
            self._timer.notify_all()
            self._capacity.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    # -- changes ---------------------------------------------------------------------------

    def add(self, pending: Pending[T], counted: bool = True) -> None:
        """Await `pending`'s reply until its deadline; TableFullError if the window is full."""
        due = time.monotonic() + (pending.deadline - time.time())
        with self._lock:
            if counted:
                if self._in_flight >= self.max_in_flight:
                    raise TableFullError
                self._in_flight += 1
            previous = self._entries.get(pending.request_id)
            if previous is not None:  # re-armed by expect(): the old heap entry goes stale
                self._stale += 1
                if previous.counted:
                    self._in_flight -= 1
            self._seq += 1
            self._entries[pending.request_id] = _Entry(pending, due, self._seq, counted)
            self._recent.pop(pending.request_id, None)
            heapq.heappush(self._heap, (due, self._seq, pending.request_id))
            if self._heap[0][1] == self._seq:  # the new one is the earliest: wake the timer
                self._timer.notify()

    def claim(self, request_id: str, account: str, app_id: str) -> tuple[Claim, Pending[T] | None]:
        """End the request `request_id` if a reply on (`account`, `app_id`) belongs to it."""
        with self._lock:
            entry = self._entries.get(request_id)
            if entry is None:
                ended = self._recent.get(request_id)
                return (ended[0].value if ended else Claim.UNKNOWN), None
            pending = entry.pending
            if pending.device[0] != account or pending.app_id != app_id:
                return Claim.WRONG_SENDER, pending
            self._end(request_id, entry, _Ended.ANSWERED)
            return Claim.CLAIMED, pending

    def ended(self, request_id: str) -> tuple[T, float] | None:
        """The tag of a request that ended lately, and how many seconds ago."""
        with self._lock:
            found = self._recent.get(request_id)
        return None if found is None else (found[1], time.monotonic() - found[2])

    def cancel(self, request_id: str) -> Pending[T] | None:
        """Stop awaiting a request (its reply will be reported as for a cancelled request)."""
        with self._lock:
            entry = self._entries.get(request_id)
            if entry is None:
                return None
            self._end(request_id, entry, _Ended.CANCELLED)
            return entry.pending

    def discard(self, request_id: str) -> None:
        """Forget a request that was never sent (the publish failed): no trace is kept."""
        with self._lock:
            entry = self._entries.get(request_id)
            if entry is not None:
                self._end(request_id, entry, None)

    def wait_for_capacity(self, timeout: float) -> bool:
        """Block until the in-flight window has room (True) or `timeout` seconds pass."""
        with self._lock:
            return self._capacity.wait_for(
                lambda: self._in_flight < self.max_in_flight or self._stopping, timeout
            )

    # -- internals (lock held) -------------------------------------------------------------

    def _end(
        self, request_id: str, entry: _Entry[T], ended: _Ended | None, in_heap: bool = True
    ) -> None:
        del self._entries[request_id]
        if in_heap:  # its heap entry stays behind until popped or rebuilt
            self._stale += 1
        if entry.counted:
            self._in_flight -= 1
            if self._in_flight == self.max_in_flight - 1:
                self._capacity.notify_all()
        if ended is not None:
            self._recent[request_id] = (ended, entry.pending.tag, time.monotonic())
            if len(self._recent) > self._recent_limit:
                self._recent.popitem(last=False)
        if self._stale > 1024 and self._stale > 2 * len(self._entries):
            self._heap = [(e.due, e.seq, rid) for rid, e in self._entries.items()]
            heapq.heapify(self._heap)
            self._stale = 0

    def _expired(self) -> list[Pending[T]] | None:
        """Wait until requests expire and end them; None when stopping."""
        with self._lock:
            while True:
                if self._stopping:
                    return None
                if not self._heap:
                    self._timer.wait()
                    continue
                delay = self._heap[0][0] - time.monotonic()
                if delay > 0:
                    self._timer.wait(min(delay, 3600.0))  # a far deadline must not overflow
                    continue
                break
            now = time.monotonic()
            expired: list[Pending[T]] = []
            while self._heap and self._heap[0][0] <= now:
                _, seq, request_id = heapq.heappop(self._heap)
                entry = self._entries.get(request_id)
                if entry is None or entry.seq != seq:
                    self._stale = max(0, self._stale - 1)
                    continue
                self._end(request_id, entry, _Ended.TIMED_OUT, in_heap=False)
                expired.append(entry.pending)
            return expired

    def _run(self) -> None:
        while True:
            expired = self._expired()
            if expired is None:
                return
            for pending in expired:
                try:
                    self._on_timeout(pending)
                except Exception:  # a failing handler must not stop the timeouts of others
                    log.exception("timeout handler failed for request %s", pending.request_id)
