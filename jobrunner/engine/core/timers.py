"""The engine's deadlines: one heap, O(log n) each, on the monotonic clock.

A deadline is given on the engine's clock (the wall clock, as the targets record it) and kept
on the monotonic clock: a step of the wall clock (NTP, an operator's `date`) neither fails work
early nor holds a target and its device. A deadline recorded before a restart is converted the
same way when it is armed again.

Every wait the engine does has one entry here: a request's reply (whatever its purpose), an
asynchronous operation's completion, the grace of an LWT, a settling progress, the end of a
stopped execution's wait for replies, a retry after a failed publish. An entry added with a
key is taken out by `cancel` (a step's reply came: its deadline would only be popped and
ignored, and held meanwhile); the others stay when a target moves on: a due entry is checked
against the current state by whoever handles it, and ignored when it no longer applies.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass
from itertools import count
from typing import cast

from jobrunner.engine.link.ports import Tag
from jobrunner.immutable import immutable
from jobrunner.state.layout import JobKey


@immutable
class ReplyDue:
    """The reply to the request of `tag` (a step, a status query or a cancel) is due."""

    tag: Tag


@immutable
class CompletionDue:
    """An asynchronous operation's completion notification is due."""

    job: JobKey
    client_id: str
    deadline: float
    """The completion deadline it was armed for (recorded, on the wall clock): a target whose
    deadline moved since has an entry of its own."""


@dataclass(frozen=True, slots=True)
class LwtGrace:
    """An LWT heard at `heard`: the device's loss, unless the broker went down with it."""

    job: JobKey
    client_id: str
    heard: float


@immutable
class SettleDue:
    """A settling progress (`phase`): nothing else came, so the step succeeded."""

    job: JobKey
    client_id: str
    phase: str | None
    summary: str | None


@dataclass(frozen=True, slots=True)
class DrainOver:
    """A stopped execution no longer waits for the replies in flight."""

    job: JobKey
    execution: int


@dataclass(frozen=True, slots=True)
class GateDue:
    """A rollout's gate has something to do then (a target's turn, a window, a soak's end)."""

    job: JobKey


@dataclass(frozen=True, slots=True)
class ProceedDue:
    """A step of several requests: its next one (`stage`) may go now."""

    job: JobKey
    client_id: str
    stage: str | None


@dataclass(frozen=True, slots=True)
class RollbackDue:
    """A rollback sent a while ago: what it restored may be read back now."""

    job: JobKey
    client_id: str


@dataclass(frozen=True, slots=True)
class RetryPublish:
    """Publishing failed (the connection was down): look at the connection again."""


Due = (
    ReplyDue
    | CompletionDue
    | LwtGrace
    | SettleDue
    | DrainOver
    | GateDue
    | RetryPublish
    | ProceedDue
    | RollbackDue
)


class Deadlines:
    def __init__(self, clock: Callable[[], float], monotonic: Callable[[], float]) -> None:
        """`clock`: the engine's (the wall clock); `monotonic`: what the heap is kept on."""
        # [when, order, due or None once cancelled, key]: lists, so `cancel` can void one
        # where it stands in the heap (`order` is unique: `due` is never compared).
        self._heap: list[list[object]] = []
        self._keyed: dict[str, list[object]] = {}
        self._void = 0
        self._order = count()
        self._clock = clock
        self._monotonic = monotonic

    def add(self, at: float, due: Due, key: str | None = None) -> None:
        """`due` at `at` on the engine's clock, that is, in `at - clock()` seconds; with a
        `key` (a request id), `cancel(key)` takes it out."""
        when = self._monotonic() + (at - self._clock())
        entry: list[object] = [when, next(self._order), due, key]
        heapq.heappush(self._heap, entry)
        if key is not None:
            self._keyed[key] = entry

    def cancel(self, key: str) -> None:
        """The entry added with `key` is no longer wanted (nothing when there is none)."""
        entry = self._keyed.pop(key, None)
        if entry is None:
            return
        entry[2] = None
        self._void += 1
        if self._void > 64 and 2 * self._void > len(self._heap):
            # Mostly void: rebuilt without them, so memory follows what is awaited.
            self._heap = [e for e in self._heap if e[2] is not None]
            heapq.heapify(self._heap)
            self._void = 0

    def _drop_void(self) -> None:
        heap = self._heap
        while heap and heap[0][2] is None:
            heapq.heappop(heap)
            self._void -= 1

    def wait(self, longest: float) -> float:
        """Seconds until the next entry is due, at most `longest`."""
        self._drop_void()
        if not self._heap:
            return longest
        when = cast(float, self._heap[0][0])
        return min(longest, max(0.0, when - self._monotonic()))

    def due(self) -> list[Due]:
        """Entries whose time has come, oldest first."""
        now = self._monotonic()
        found: list[Due] = []
        heap = self._heap
        while heap and heap[0][0] <= now:  # type: ignore[operator]
            entry = heapq.heappop(heap)
            _, _, due, key = entry
            if due is None:
                self._void -= 1
                continue
            if key is not None and self._keyed.get(key) is entry:  # type: ignore[call-overload]
                del self._keyed[key]  # type: ignore[arg-type]
            found.append(due)  # type: ignore[arg-type]
        return found

    def __len__(self) -> int:
        """Entries awaited (cancelled ones not counted)."""
        return len(self._heap) - self._void
