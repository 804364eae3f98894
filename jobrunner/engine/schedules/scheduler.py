"""The scheduler: which time schedules are due, and the queue of device-connect runs.

It decides; the daemon acts. Each job's schedules come from its record (as last applied by
reconcile), each schedule's last fire is recorded in the job record, so a restarted daemon
neither fires twice nor forgets: a fire missed while it was down runs once, at start.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pydantic import TypeAdapter, ValidationError

from jobrunner.engine.schedules.triggers import DeviceConnectTrigger, TimeTrigger, trigger_for
from jobrunner.manifests import Schedule
from jobrunner.state.layout import JobKey
from jobrunner.state.records import JobRecord, ScheduleState

_SCHEDULES = TypeAdapter(list[Schedule])


@dataclass
class JobSchedules:
    """The triggers of one job, by schedule name."""

    times: dict[str, TimeTrigger] = field(default_factory=dict)
    connects: dict[str, DeviceConnectTrigger] = field(default_factory=dict)
    resets: set[str] = field(default_factory=set)
    """The schedules that say `reset: true`: each fire runs every target from step 0."""
    upcoming: dict[str, tuple[datetime, datetime | None]] = field(default_factory=dict)
    """Schedule name -> (the time its next fire was computed from, that next fire): a tick
    compares two times; a trigger is evaluated again only after it fired."""

    def next_after(self, name: str, since: datetime) -> datetime | None:
        """`times[name].next(since)`, computed once per `since`."""
        known = self.upcoming.get(name)
        if known is None or known[0] != since:
            known = self.upcoming[name] = (since, self.times[name].next(since))
        return known[1]


def schedules_of(record: JobRecord) -> JobSchedules:
    """The job's triggers as recorded (a record with unreadable schedules has none)."""
    result = JobSchedules()
    try:
        schedules = _SCHEDULES.validate_python(record.spec.get("schedules", []))
    except ValidationError:
        return result
    for schedule in schedules:
        if schedule.reset:
            result.resets.add(schedule.name)
        trigger = trigger_for(schedule)
        if isinstance(trigger, DeviceConnectTrigger):
            result.connects[schedule.name] = trigger
        else:
            result.times[schedule.name] = trigger
    return result


@dataclass
class Scheduler:
    jobs: dict[JobKey, JobSchedules] = field(default_factory=dict)
    next_due: datetime | None = None
    """The earliest next fire of all schedules, as of the last pass over them; None when
    unknown (a job's schedules changed). Until then a tick has nothing to look at."""

    def update(self, key: JobKey, record: JobRecord, now: datetime) -> None:
        """Take a job's schedules as recorded; a schedule seen for the first time starts now."""
        schedules = schedules_of(record)
        self.next_due = None
        if record.orphaned or record.suspend or (not schedules.times and not schedules.connects):
            self.jobs.pop(key, None)
            return
        self.jobs[key] = schedules
        for name in schedules.times:
            record.schedules.setdefault(name, ScheduleState(since=now))
        for name in list(record.schedules):
            if name not in schedules.times:
                del record.schedules[name]

    def forget(self, key: JobKey) -> None:
        self.jobs.pop(key, None)
        self.next_due = None

    def may_be_due(self, now: datetime) -> bool:
        """Whether `due` could find anything at `now` (a tick's only work, most of the time)."""
        return self.next_due is None or now >= self.next_due

    def due(self, records: dict[JobKey, JobRecord], now: datetime) -> list[tuple[JobKey, str]]:
        """(job, schedule) pairs due at `now`, each at most once however many fires were
        missed; their last fire is set to `now` in the record (the caller saves it)."""
        if not self.may_be_due(now):
            return []
        fired = []
        earliest: datetime | None = None
        for key, schedules in self.jobs.items():
            record = records.get(key)
            if record is None:
                continue
            for name in schedules.times:
                state = record.schedules.get(name)
                if state is None:
                    state = record.schedules[name] = ScheduleState(since=now)
                since = state.last_fire or state.since or now
                upcoming = schedules.next_after(name, since)  # due_fire(), computed once
                if upcoming is not None and upcoming <= now:
                    state.last_fire = now
                    fired.append((key, name))
                    upcoming = schedules.next_after(name, now)
                if upcoming is not None and (earliest is None or upcoming < earliest):
                    earliest = upcoming
        self.next_due = earliest if earliest is not None else datetime.max.replace(tzinfo=UTC)
        return fired

    def next_fire(self, key: JobKey, record: JobRecord, now: datetime) -> datetime | None:
        """When the job's next time schedule fires (for status), None if never."""
        schedules = self.jobs.get(key) or schedules_of(record)
        upcoming = [t.next(now) for t in schedules.times.values()]
        found = [moment for moment in upcoming if moment is not None]
        return min(found) if found else None

    def wants_connect(self, key: JobKey, now: datetime) -> str | None:
        """The name of an active device-connect schedule of the job, if it has one."""
        schedules = self.jobs.get(key)
        if schedules is None:
            return None
        for name, trigger in schedules.connects.items():
            if trigger.active(now):
                return name
        return None

    def resets(self, key: JobKey, name: str) -> bool:
        """Whether the job's schedule `name` runs every target from step 0 at each fire."""
        schedules = self.jobs.get(key)
        return schedules is not None and name in schedules.resets

    def connect_jobs(self) -> Iterable[JobKey]:
        return [key for key, s in self.jobs.items() if s.connects]
