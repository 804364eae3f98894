"""What the dashboard shows: the jobs as the daemon holds them, else as recorded on disk.

In the daemon, the engine holds every job it runs; the dashboard takes, on its own thread, a
snapshot of the one it is asked about (`JobState.snapshot`: the targets' values are
immutable, so copying their table is enough, and cheap). It never parses what the engine
has just written: following the journal of a job that moves 10,000 targets a second would
cost as much CPU as writing it. A job the engine does not hold (set aside, or a dashboard
beside no engine) is read from the state directory, as `jobrunner status` reads it, and
then followed line by line.

A job looked at again within `FRESH` seconds is not looked at again: a dozen browsers
polling cost what one does.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from jobrunner.errors import StateError
from jobrunner.state.jobstore import JobState
from jobrunner.state.layout import StateDir
from jobrunner.state.registry import DeviceRegistry

FRESH = 0.5  # seconds: how old a job's copy may be when it is shown

Held = Callable[[], Mapping[tuple[str, str], JobState]]
"""The jobs the engine holds now (a copy of its table, taken at once)."""


@dataclass
class _Seen:
    job: JobState
    looked_at: float
    generation: int
    """New with every copy that differs (unique across jobs and reloads): a view computed
    from the job is reused while it stays."""
    from_disk: bool
    fingerprint: object = None


class FleetReader:
    """Every job, as held by the engine or recorded. Not thread-safe: the dashboard calls it
    from its event loop only."""

    def __init__(
        self,
        state_dir: StateDir,
        held: Held | None = None,
        devices: Callable[[], DeviceRegistry | None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.state = state_dir
        self.held = held or dict
        self.devices = devices or (lambda: None)
        self.clock = clock
        self._jobs: dict[tuple[str, str], _Seen] = {}
        self._generations = itertools.count(1)
        self._listed: tuple[float, list[tuple[str, str]]] = (-FRESH, [])
        self._registry: tuple[float, DeviceRegistry] | None = None
        self.problems: dict[tuple[str, str], str] = {}
        """Jobs whose state cannot be read, with the reason (shown instead of the job)."""

    def recorded(self) -> list[tuple[str, str]]:
        """(scope, name) of every job held or recorded (listed again at most every FRESH s)."""
        now = self.clock()
        if now - self._listed[0] >= FRESH:
            keys = sorted(set(self.state.jobs()) | set(self.held()))
            self._listed = (now, keys)
            for gone in set(self._jobs) - set(keys):
                self._forget(gone)
        return self._listed[1]

    def job(self, scope: str, name: str) -> tuple[JobState, int] | None:
        """The job as it is now (at most FRESH seconds old), with a generation that changes
        when it does; None when it is not recorded, or cannot be read (see `problems`)."""
        key = (scope, name)
        now = self.clock()
        seen = self._jobs.get(key)
        if seen is not None and now - seen.looked_at < FRESH:
            return seen.job, seen.generation
        held = self.held().get(key)
        try:
            if held is not None:
                seen = self._take(key, held.snapshot(), seen, now)
            elif seen is not None and seen.from_disk:
                seen.looked_at = now
                if seen.job.refresh():
                    seen.generation = next(self._generations)
            elif JobState.exists(self.state, scope, name):
                seen = self._jobs[key] = _Seen(
                    JobState.load(self.state, scope, name), now, next(self._generations), True
                )
            else:
                self._forget(key)
                return None
        except (StateError, OSError) as error:
            self.problems[key] = str(error)
            self._forget(key)
            return None
        self.problems.pop(key, None)
        return seen.job, seen.generation

    def _take(self, key: tuple[str, str], copy: JobState, seen: _Seen | None, now: float) -> _Seen:
        """Keep the engine's copy; its generation changes only when the job did."""
        fingerprint = _fingerprint(copy)
        if seen is not None and not seen.from_disk and seen.fingerprint == fingerprint:
            seen.looked_at = now
            return seen
        if seen is not None and seen.from_disk:
            seen.job.close()
        taken = _Seen(copy, now, next(self._generations), False, fingerprint)
        self._jobs[key] = taken
        return taken

    def _forget(self, key: tuple[str, str]) -> None:
        seen = self._jobs.pop(key, None)
        if seen is not None and seen.from_disk:
            seen.job.close()

    def jobs(self) -> list[JobState]:
        """Every readable job, in (scope, name) order."""
        found = []
        for key in self.recorded():
            loaded = self.job(*key)
            if loaded is not None:
                found.append(loaded[0])
        return found

    def registry(self) -> DeviceRegistry:
        """The device registry as the engine holds it, else as recorded (taken again at most
        every FRESH seconds)."""
        now = self.clock()
        if self._registry is None or now - self._registry[0] >= FRESH:
            held = self.devices()
            registry = held or DeviceRegistry(self.state.root, autoflush=False)
            self._registry = (now, registry)
        return self._registry[1]


def _fingerprint(job: JobState) -> object:
    """What changes when anything a view shows does: a target put, the record saved (its
    time), an execution begun or ended. (The engine changes its objects in place, so an
    earlier copy cannot be compared with a later one.)"""
    return (
        job.targets.changes,
        job.record.updated,
        tuple(
            (e.id, e.status, e.ended_on, e.stop_requested)
            for e in job.executions.recent.values()  # the older ones do not change
        ),
    )
