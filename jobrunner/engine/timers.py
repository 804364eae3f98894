"""Deadlines of the engine (completion timeouts, retries) on a heap: O(log n) each.

Entries are never removed when a target moves on; a due entry is checked against the target's
current state by whoever handles it, and ignored when it no longer applies.
"""

from __future__ import annotations

import heapq
from itertools import count

from jobrunner.engine.runtime import JobKey


class Deadlines:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, JobKey, str, str]] = []
        self._order = count()

    def add(self, at: float, job: JobKey, client_id: str, marker: str) -> None:
        heapq.heappush(self._heap, (at, next(self._order), job, client_id, marker))

    def next_due(self, default: float) -> float:
        return self._heap[0][0] if self._heap else default

    def due(self, now: float) -> list[tuple[JobKey, str, str]]:
        """Entries whose time has come, oldest first."""
        found = []
        while self._heap and self._heap[0][0] <= now:
            _, _, job, client_id, marker = heapq.heappop(self._heap)
            found.append((job, client_id, marker))
        return found

    def __len__(self) -> int:
        return len(self._heap)
