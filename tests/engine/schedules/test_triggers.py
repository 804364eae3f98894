"""Triggers compute fire times from a given time: no sleeping, a fixed clock."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from jobrunner.engine.schedules.scheduler import Scheduler
from jobrunner.engine.schedules.triggers import (
    CronTrigger,
    DeviceConnectTrigger,
    IntervalTrigger,
    Window,
    due_fire,
)
from jobrunner.state.records import JobRecord


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_interval_counts_from_starts_on() -> None:
    trigger = IntervalTrigger(timedelta(minutes=30), Window(at("2026-12-01T00:10:00Z")))
    assert trigger.next(at("2026-11-01T00:00:00Z")) == at("2026-12-01T00:10:00Z")
    assert trigger.next(at("2026-12-01T00:10:00Z")) == at("2026-12-01T00:40:00Z")
    assert trigger.next(at("2026-12-01T01:00:00Z")) == at("2026-12-01T01:10:00Z")


def test_interval_without_starts_on_is_aligned_to_the_epoch() -> None:
    hourly = IntervalTrigger(timedelta(hours=1))
    assert hourly.next(at("2026-12-01T10:59:59Z")) == at("2026-12-01T11:00:00Z")
    daily = IntervalTrigger(timedelta(days=1))
    assert daily.next(at("2026-12-01T10:00:00Z")) == at("2026-12-02T00:00:00Z")


def test_interval_stops_at_ends_on() -> None:
    trigger = IntervalTrigger(
        timedelta(hours=1), Window(at("2026-12-01T00:00:00Z"), at("2026-12-01T02:00:00Z"))
    )
    assert trigger.next(at("2026-12-01T01:30:00Z")) == at("2026-12-01T02:00:00Z")
    assert trigger.next(at("2026-12-01T02:00:00Z")) is None


def test_cron_in_a_time_zone_within_its_window() -> None:
    trigger = CronTrigger(
        "0 0 2 ? * MON-FRI",
        ZoneInfo("Europe/Rome"),
        Window(at("2026-12-01T00:00:00Z"), at("2026-12-31T00:00:00Z")),
    )
    assert trigger.next(at("2026-11-20T00:00:00Z")) == at("2026-12-01T01:00:00Z")  # Tue 02:00
    assert trigger.next(at("2026-12-04T02:00:00Z")) == at("2026-12-07T01:00:00Z")  # Fri -> Mon
    assert trigger.next(at("2026-12-30T02:00:00Z")) is None


def test_cron_across_the_spring_forward_gap_skips_the_missing_time() -> None:
    trigger = CronTrigger("0 30 2 * * ?", ZoneInfo("Europe/Rome"))
    # 2027-03-28: clocks go from 02:00 to 03:00 in Rome; 02:30 does not exist that day.
    assert trigger.next(at("2027-03-27T01:30:00Z")) == at("2027-03-29T00:30:00Z")


def test_device_connect_is_active_within_its_window() -> None:
    trigger = DeviceConnectTrigger(Window(at("2026-12-01T00:00:00Z"), at("2026-12-02T00:00:00Z")))
    assert not trigger.active(at("2026-11-30T23:59:59Z"))
    assert trigger.active(at("2026-12-01T12:00:00Z"))
    assert not trigger.active(at("2026-12-02T00:00:01Z"))


def test_a_missed_fire_runs_once_not_once_per_missed_period() -> None:
    trigger = IntervalTrigger(timedelta(minutes=10), Window(at("2026-12-01T00:00:00Z")))
    last_fire = at("2026-12-01T00:00:00Z")
    back_after_a_day = at("2026-12-02T00:05:00Z")

    assert due_fire(trigger, last_fire, back_after_a_day) is not None
    assert due_fire(trigger, back_after_a_day, back_after_a_day) is None


def test_scheduler_fires_each_due_schedule_once_and_records_it() -> None:
    record = JobRecord(
        scope="acme",
        name="nightly",
        spec={
            "schedules": [
                {
                    "name": "every-10m",
                    "type": "interval",
                    "interval": "10m",
                    "startsOn": "2026-12-01T00:00:00Z",
                },
                {"name": "on-connect", "type": "device-connect"},
            ]
        },
    )
    scheduler = Scheduler()
    created = at("2026-12-01T00:01:00Z")
    scheduler.update(("acme", "nightly"), record, created)
    records = {("acme", "nightly"): record}

    assert scheduler.due(records, at("2026-12-01T00:09:59Z")) == []
    assert scheduler.due(records, at("2026-12-01T03:00:00Z")) == [
        (("acme", "nightly"), "every-10m")
    ]
    assert scheduler.due(records, at("2026-12-01T03:00:01Z")) == []
    assert record.schedules["every-10m"].last_fire == at("2026-12-01T03:00:00Z")
    assert scheduler.wants_connect(("acme", "nightly"), created) == "on-connect"


def test_a_suspended_job_has_no_active_schedule() -> None:
    record = JobRecord(
        scope="acme",
        name="j",
        suspend=True,
        spec={"schedules": [{"name": "s", "type": "interval", "interval": "1m"}]},
    )
    scheduler = Scheduler()
    scheduler.update(("acme", "j"), record, at("2026-12-01T00:00:00Z"))
    assert scheduler.due({("acme", "j"): record}, at("2026-12-02T00:00:00Z")) == []
