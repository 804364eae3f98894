"""Triggers: when a job's schedules fire. Small classes, each with one `next(after)` method.

Time comes in as an argument, so tests never sleep. `next(after)` is the first fire time
strictly after `after`, or None when the schedule will not fire again (its `endsOn` passed,
or a cron expression that never matches again).

A missed fire (the daemon was down) runs once, not once per missed period: the scheduler asks
for `next(last_fire)`; if that is in the past it fires now, records now as the last fire, and
asks again from now.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from jobrunner.cron import parse_quartz
from jobrunner.manifests import CronSchedule, DeviceConnectSchedule, IntervalSchedule, Schedule

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class TimeTrigger(Protocol):
    def next(self, after: datetime) -> datetime | None:
        """The first fire time strictly after `after`, or None."""


@dataclass(frozen=True)
class Window:
    """The active window of a schedule: [startsOn, endsOn]."""

    starts_on: datetime | None = None
    ends_on: datetime | None = None

    def clip(self, moment: datetime | None) -> datetime | None:
        if moment is None or (self.ends_on is not None and moment > self.ends_on):
            return None
        return moment

    def contains(self, moment: datetime) -> bool:
        if self.starts_on is not None and moment < self.starts_on:
            return False
        return self.ends_on is None or moment <= self.ends_on


@dataclass(frozen=True)
class IntervalTrigger:
    """Every `every`, counted from `startsOn` (from the Unix epoch when not given, so that
    `1h` fires on the hour and `1d` at midnight UTC)."""

    every: timedelta
    window: Window = Window()

    def next(self, after: datetime) -> datetime | None:
        anchor = self.window.starts_on or EPOCH
        if after < anchor:
            return self.window.clip(anchor)
        periods = (after - anchor) // self.every + 1
        return self.window.clip(anchor + periods * self.every)


@dataclass(frozen=True)
class CronTrigger:
    """A Quartz cron expression evaluated in a time zone (see `jobrunner.cron` for DST)."""

    expression: str
    zone: ZoneInfo
    window: Window = Window()

    def next(self, after: datetime) -> datetime | None:
        start = after
        if self.window.starts_on is not None and after < self.window.starts_on:
            start = self.window.starts_on - timedelta(microseconds=1)
        return self.window.clip(parse_quartz(self.expression).next_after(start, self.zone))


@dataclass(frozen=True)
class DeviceConnectTrigger:
    """Fires on a device's BIRTH, for that target only, within its window."""

    window: Window = Window()

    def active(self, at: datetime) -> bool:
        return self.window.contains(at)


def trigger_for(schedule: Schedule) -> TimeTrigger | DeviceConnectTrigger:
    window = Window(schedule.starts_on, schedule.ends_on)
    if isinstance(schedule, IntervalSchedule):
        return IntervalTrigger(schedule.interval, window)
    if isinstance(schedule, CronSchedule):
        return CronTrigger(schedule.cron, ZoneInfo(schedule.timezone), window)
    assert isinstance(schedule, DeviceConnectSchedule)
    return DeviceConnectTrigger(window)


def due_fire(trigger: TimeTrigger, since: datetime, now: datetime) -> datetime | None:
    """The fire that is due at `now` (at most one, however many were missed), or None."""
    upcoming = trigger.next(since)
    if upcoming is None or upcoming > now:
        return None
    return upcoming
