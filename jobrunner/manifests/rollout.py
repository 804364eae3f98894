"""A job's rollout (waves, gates, rate, abort, window) and its retry limit: DESIGN §6.

    rollout:
      waves:                                   # one at a time, in this order
        - {name: canary, devices: [gw-0007]}   # by client id, or `tags: [canary]`
        - {name: early, size: 10%}             # a share or a count of the targets left
        - {name: rest, approval: required}     # the remainder: last only; waits for
                                               #   `jobrunner approve` (or `approved: [rest]`)
      successThreshold: 95%                    # a wave passes at this share PROCESS_OK
      soak: 10m                                # then its devices must stay connected this long
      maxPerMinute: 120                        # targets started per minute, spread evenly
      ramp: {base: 10, factor: 2, every: 20 succeeded}
      abort: {failureThreshold: 10%, minFinished: 20, cancel: false}
      window: {cron: "0 0 1 ? * *", duration: 4h, timezone: device}
    retry: {maxAttempts: 3, backoff: 1h}

The waves are split once, when the first execution freezes the targets; the other settings
apply as they are now, so that a rollout can be slowed down or held while it runs.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PlainSerializer,
    WithJsonSchema,
    model_validator,
)

from jobrunner.manifests.base import Strict
from jobrunner.manifests.fields import (
    ClientId,
    CronExpression,
    Duration,
    Name,
    Tag,
    check_zone,
)

_PERCENT_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")
PERCENT_PATTERN = r"^\d+(\.\d+)?%$"


def _percent(value: object) -> float:
    """`95%` as 95.0; a share is written as a percentage, never as 0.95."""
    if isinstance(value, str):
        match = _PERCENT_RE.match(value)
        if match is not None:
            share = float(match.group(1))
            if share > 100:
                raise ValueError(f"{value!r} is more than 100%")
            return share
    raise ValueError(f"{value!r} is not a percentage; write e.g. 95% (from 0% to 100%)")


def _format_percent(value: float) -> str:
    return f"{value:g}%"


Percent = Annotated[
    float,
    BeforeValidator(_percent),
    PlainSerializer(_format_percent, return_type=str),
    Field(strict=False),
    WithJsonSchema({"type": "string", "pattern": PERCENT_PATTERN, "examples": ["95%"]}),
]
"""A share from 0% to 100%, written with its percent sign."""


def _size(value: object) -> int | str:
    if isinstance(value, bool):
        raise ValueError("a wave size is a count (10) or a share (10%), not true/false")
    if isinstance(value, int):
        if value < 1:
            raise ValueError(f"a wave of {value} targets is empty; give at least 1 (or a share)")
        return value
    share = _percent(value)
    if share <= 0:
        raise ValueError("a wave of 0% is empty; give a share above 0%")
    return f"{share:g}%"


WaveSize = Annotated[
    int | str,
    BeforeValidator(_size),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 1},
                {"type": "string", "pattern": PERCENT_PATTERN},
            ],
            "examples": [10, "10%"],
        }
    ),
]
"""A count of targets (`10`) or a share of the targets left (`10%`)."""


class Wave(Strict):
    """Targets that go together; the next wave starts only once this one has passed."""

    name: Name = Field(description="unique in the rollout; shown by status and the log")
    devices: list[ClientId] = Field(default_factory=list, description="these targets")
    tags: list[Tag] = Field(default_factory=list, description="the targets left with a tag")
    size: WaveSize | None = Field(
        default=None, description="a count or a share of the targets left, by a stable hash"
    )
    approval: Literal["required"] | None = Field(
        default=None,
        description="`required`: once the wave before it passed, the rollout waits"
        " (awaiting-approval) until `jobrunner approve JOB --wave NAME` or `approved` lets it go",
    )

    @model_validator(mode="after")
    def _one_selector(self) -> Wave:
        chosen = [k for k in ("devices", "tags", "size") if getattr(self, k)]
        if len(chosen) > 1:
            raise ValueError(
                f"wave '{self.name}' selects by {' and '.join(chosen)}; give one of devices,"
                " tags or size (or none: the remainder)"
            )
        return self

    @property
    def is_remainder(self) -> bool:
        """No selector and no size: every target no earlier wave took."""
        return not (self.devices or self.tags or self.size)


_EVERY_RE = re.compile(r"^\s*(\d+)\s+succeeded\s*$")


def _every(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    if isinstance(value, str):
        match = _EVERY_RE.match(value)
        if match is not None and int(match.group(1)) >= 1:
            return int(match.group(1))
    raise ValueError(f"{value!r} is not a count of targets; write e.g. '20 succeeded'")


Every = Annotated[
    int,
    BeforeValidator(_every),
    PlainSerializer(lambda n: f"{n} succeeded", return_type=str),
    Field(strict=False),
    WithJsonSchema({"type": "string", "pattern": r"^\d+ succeeded$", "examples": ["20 succeeded"]}),
]


class Ramp(Strict):
    """Start slow, then faster, as targets succeed (up to maxPerMinute when given).

    `base` targets a minute at first, times `factor` each time `every` more have succeeded.
    """

    base: int = Field(ge=1, description="targets started per minute at first")
    factor: float = Field(
        default=2.0, gt=1, le=100, strict=False, description="the rate's growth at each step"
    )
    every: Every = Field(description="a step of the ramp: `20 succeeded`")


class Abort(Strict):
    """End the execution ABORTED when too many targets fail; what an abort also does."""

    failure_threshold: Percent | None = Field(
        default=None,
        description="failed / finished targets, execution-wide (none: only a wave that"
        " cannot pass aborts)",
    )
    min_finished: int = Field(default=1, ge=1, description="decide only once this many finished")
    cancel: bool = Field(default=False, description="also cancel the downloads under way")
    rollback: bool = Field(
        default=False,
        description="roll back every target whose Configuration Put succeeded to the snapshot"
        " taken before it",
    )


DEVICE_ZONE = "device"


def _window_zone(value: str) -> str:
    return value if value == DEVICE_ZONE else check_zone(value)


WindowZone = Annotated[
    str,
    AfterValidator(_window_zone),
    WithJsonSchema({"type": "string", "examples": ["UTC", "Europe/Rome", "device"]}),
]


class Window(Strict):
    """When new targets may start: from each fire of `cron` for `duration`."""

    cron: CronExpression = Field(description="when the window opens (Quartz)")
    duration: Duration = Field(description="how long it stays open (elapsed time)")
    timezone: WindowZone = Field(
        default="UTC", description="a zone, or `device`: each device's own"
    )


class Rollout(Strict):
    """Waves that go one at a time, gated on their devices, at a rate, inside a window."""

    waves: list[Wave] = Field(
        default_factory=list, description="in order; none: the targets go together"
    )
    success_threshold: Percent = Field(
        default=100.0, description="a wave passes at this share PROCESS_OK (`95%`)"
    )
    soak: Duration | None = Field(
        default=None, description="after a wave: its devices must stay connected this long"
    )
    max_per_minute: int | None = Field(default=None, ge=1, description="targets started a minute")
    ramp: Ramp | None = Field(default=None, description="a rate that grows with the successes")
    abort: Abort | None = Field(default=None, description="when the execution is aborted")
    window: Window | None = Field(default=None, description="when targets may start")
    approved: list[Name] = Field(
        default_factory=list,
        description="waves with `approval: required` approved in git: they start without"
        " waiting for `jobrunner approve`",
    )

    @property
    def soak_time(self) -> timedelta:
        return self.soak or timedelta(0)

    def needs_approval(self, wave: str) -> bool:
        """Whether the wave waits for an approval (`approval: required`)."""
        return any(w.name == wave and w.approval == "required" for w in self.waves)


class Retry(Strict):
    """How often a target is tried, across executions."""

    max_attempts: int = Field(ge=1, description="executions that try a target, in all")
    backoff: Duration | None = Field(
        default=None, description="after a failure, the target is not tried again for this long"
    )
