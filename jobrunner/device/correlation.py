"""Request/reply correlation: the requests awaiting a reply, and what became of recent ones.

One lock guards everything (replies are claimed on paho's thread, requests added and expired
on the caller's); every critical section is a few dictionary operations. The table keeps no
clock and no timer: the caller owns every deadline (the engine, on its own clock) and ends a
request that ran out of time with `expire`.

A request ends exactly once: answered (`claim`), expired, cancelled or discarded. Its id is
then remembered for a while (`recent_limit` ids) with its tag and when it ended, so that a
second reply is reported as a duplicate and a reply after the deadline as late, naming the
request it was for, not as unknown.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from enum import Enum
from typing import Generic, TypeVar

from jobrunner.device.model import Pending
from jobrunner.errors import ClientBusyError

T = TypeVar("T")


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
    EXPIRED = Claim.LATE
    CANCELLED = Claim.CANCELLED


@dataclass(slots=True)
class _Entry(Generic[T]):
    pending: Pending[T]
    counted: bool  # occupies a place in the in-flight window


class PendingTable(Generic[T]):
    """Requests awaiting a reply, by id, with a bounded in-flight window."""

    def __init__(self, max_in_flight: int, recent_limit: int = 65_536) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.max_in_flight = max_in_flight
        self._recent_limit = recent_limit
        self._lock = threading.Lock()
        self._capacity = threading.Condition(self._lock)
        self._entries: dict[str, _Entry[T]] = {}
        self._in_flight = 0
        self._recent: OrderedDict[str, tuple[_Ended, T, float]] = OrderedDict()
        """Requests that ended lately: how, their tag, and when (monotonic), for messages
        about the replies that still come (late, duplicate)."""

    # -- observation -----------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Requests sent by this process and not yet answered, expired or cancelled."""
        return self._in_flight

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, request_id: str) -> Pending[T] | None:
        entry = self._entries.get(request_id)
        return entry.pending if entry else None

    def ended(self, request_id: str) -> tuple[T, float] | None:
        """The tag of a request that ended lately, and how many seconds ago."""
        with self._lock:
            found = self._recent.get(request_id)
        return None if found is None else (found[1], time.monotonic() - found[2])

    # -- changes ---------------------------------------------------------------------------

    def add(self, pending: Pending[T], counted: bool = True) -> None:
        """Await `pending`'s reply; ClientBusyError if the window is full. `counted`: False
        for a request of an earlier process, re-armed (it takes no place in the window)."""
        with self._lock:
            if counted:
                if self._in_flight >= self.max_in_flight:
                    raise ClientBusyError(f"{self.max_in_flight} requests are already in flight")
                self._in_flight += 1
            previous = self._entries.get(pending.request_id)
            if previous is not None and previous.counted:  # re-armed again
                self._in_flight -= 1
            self._entries[pending.request_id] = _Entry(pending, counted)
            self._recent.pop(pending.request_id, None)

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

    def expire(self, request_id: str) -> Pending[T] | None:
        """End a request whose time ran out (a reply that still comes is late); None if it
        had ended already (its reply may be on its way to the caller)."""
        with self._lock:
            entry = self._entries.get(request_id)
            if entry is None:
                return None
            self._end(request_id, entry, _Ended.EXPIRED)
            return entry.pending

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
            return self._capacity.wait_for(lambda: self._in_flight < self.max_in_flight, timeout)

    # -- internals (lock held) -------------------------------------------------------------

    def _end(self, request_id: str, entry: _Entry[T], ended: _Ended | None) -> None:
        del self._entries[request_id]
        if entry.counted:
            self._in_flight -= 1
            if self._in_flight == self.max_in_flight - 1:
                self._capacity.notify_all()
        if ended is not None:
            self._recent[request_id] = (ended, entry.pending.tag, time.monotonic())
            if len(self._recent) > self._recent_limit:
                self._recent.popitem(last=False)
