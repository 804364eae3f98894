"""Schedules (triggers) of a job: interval, cron and device-connect."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from jobrunner.manifests.base import Strict
from jobrunner.manifests.fields import AwareTime, CronExpression, Duration, Name, TimeZone

MIN_INTERVAL = timedelta(minutes=1)


class ScheduleBase(Strict):
    """What every schedule has: a name unique in its job and an optional active window."""

    name: Name = Field(description="unique among the job's schedules; the log and metrics name it")
    starts_on: AwareTime | None = Field(default=None, description="fire no earlier than this")
    ends_on: AwareTime | None = Field(default=None, description="fire no later than this")
    reset: bool = Field(
        default=False,
        description="each fire runs every target from step 0, those already done too"
        " (recurring maintenance: a nightly check on every device, every night)",
    )

    @field_validator("ends_on")
    @classmethod
    def _window(cls, ends_on: datetime | None, info: ValidationInfo) -> datetime | None:
        starts_on = info.data.get("starts_on")
        if starts_on is not None and ends_on is not None and ends_on <= starts_on:
            raise ValueError(
                f"endsOn ({ends_on.isoformat()}) must be after startsOn ({starts_on.isoformat()})"
            )
        return ends_on


class IntervalSchedule(ScheduleBase):
    """Every `interval`, counted from `startsOn` (from 1970-01-01T00:00Z when not given)."""

    type: Literal["interval"] = Field(description="`interval`: every `interval`")
    interval: Duration = Field(description="the time between two fires (`6h`)")

    @model_validator(mode="after")
    def _at_least_a_minute(self) -> IntervalSchedule:
        if self.interval < MIN_INTERVAL:
            raise ValueError("interval must be at least 1m; schedules count in minutes or longer")
        return self


class CronSchedule(ScheduleBase):
    """A Quartz cron expression evaluated in `timezone`."""

    type: Literal["cron"] = Field(description="`cron`: at each fire of a Quartz expression")
    cron: CronExpression = Field(
        description="a Quartz cron expression (seconds first): `0 0 2 ? * SUN`"
    )
    timezone: TimeZone = Field(default="UTC", description="where `cron` is read (an IANA zone)")


class DeviceConnectSchedule(ScheduleBase):
    """Run the job for one target when its device connects (publishes its BIRTH)."""

    type: Literal["device-connect"] = Field(
        description="`device-connect`: for a target when its device connects (its BIRTH)"
    )


Schedule = Annotated[
    IntervalSchedule | CronSchedule | DeviceConnectSchedule, Field(discriminator="type")
]
