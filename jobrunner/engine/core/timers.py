"""The engine's deadlines, on its own clock: one heap, O(log n) each.

Every wait the engine does has one entry here: a request's reply (whatever its purpose), an
asynchronous operation's completion, the grace of an LWT, a settling progress, the end of a
stopped execution's wait for replies, a retry after a failed publish. Entries are never
removed when a target moves on; a due entry is checked against the current state by whoever
handles it, and ignored when it no longer applies.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from itertools import count

from jobrunner.engine.link.ports import Tag
from jobrunner.state.layout import JobKey


@dataclass(frozen=True, slots=True)
class ReplyDue:
    """The reply to the request of `tag` (a step, a status query or a cancel) is due."""

    tag: Tag


@dataclass(frozen=True, slots=True)
class CompletionDue:
    """An asynchronous operation's completion notification is due."""

    job: JobKey
    client_id: str


@dataclass(frozen=True, slots=True)
class LwtGrace:
    """An LWT heard at `heard`: the device's loss, unless the broker went down with it."""

    job: JobKey
    client_id: str
    heard: float


@dataclass(frozen=True, slots=True)
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
class RetryPublish:
    """Publishing failed (the connection was down): look at the connection again."""


Due = ReplyDue | CompletionDue | LwtGrace | SettleDue | DrainOver | GateDue | RetryPublish


class Deadlines:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Due]] = []
        self._order = count()

    def add(self, at: float, due: Due) -> None:
        heapq.heappush(self._heap, (at, next(self._order), due))

    def next_due(self, default: float) -> float:
        return self._heap[0][0] if self._heap else default

    def due(self, now: float) -> list[Due]:
        """Entries whose time has come, oldest first."""
        found = []
        while self._heap and self._heap[0][0] <= now:
            found.append(heapq.heappop(self._heap)[2])
        return found

    def __len__(self) -> int:
        return len(self._heap)
