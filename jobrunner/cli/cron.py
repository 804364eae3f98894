"""`jobrunner cron next`: the fire times of a Quartz cron expression."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click

from jobrunner.cli.group import Group
from jobrunner.cron import parse_quartz
from jobrunner.errors import CronSyntaxError


class InvalidInput(click.ClickException):
    """Exit status 2, as DESIGN §4 asks of `cron next` for an invalid expression."""

    exit_code = 2


@click.group(cls=Group)
def cron() -> None:
    """Quartz cron expressions, as schedules evaluate them."""


@cron.command("next")
@click.argument("expression")
@click.option("--after", metavar="ISO", help="Start after this time (default: now).")
@click.option(
    "--tz",
    "zone",
    default="UTC",
    show_default=True,
    metavar="ZONE",
    help="IANA time zone the expression is evaluated in.",
)
@click.option(
    "-n",
    "count",
    type=click.IntRange(1, 10_000),
    default=5,
    show_default=True,
    help="How many fire times.",
)
def next_times(expression: str, after: str | None, zone: str, count: int) -> None:
    """Print the next N fire times of a Quartz EXPRESSION.

    EXPRESSION has 6 or 7 fields: seconds minutes hours day-of-month month
    day-of-week [year], with `?` in one of the two day fields, day-of-week
    1-7 (1 = Sunday) or SUN-SAT, and L, W, LW, nL, n#k as in Quartz. Quote it.

    Times are printed in UTC, ISO-8601, one a line (`2026-12-18T10:15:00Z`);
    fewer lines, or none, when the expression fires less often. Across
    daylight-saving changes the expression behaves as in Quartz: a local time
    that does not exist that day does not fire, a repeated one fires once.

    \b
    Example:
      jobrunner cron next "0 15 10 ? * MON-FRI" --tz Europe/Rome -n 3

    Exit status: 0, or 2 with a message when the expression, zone or time is invalid.
    """
    try:
        tz = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"--tz {zone!r} is not an IANA time zone (e.g. Europe/Rome)") from None
    start = datetime.now(UTC)
    if after is not None:
        try:
            start = datetime.fromisoformat(after)
        except ValueError:
            raise InvalidInput(f"--after {after!r} is not an ISO-8601 time") from None
        if start.tzinfo is None:
            raise InvalidInput(f"--after {after!r} has no zone; write e.g. 2026-12-01T00:00:00Z")
    try:
        parsed = parse_quartz(expression)
    except CronSyntaxError as error:
        raise InvalidInput(f"invalid Quartz cron expression {expression!r}: {error}") from None
    for moment in itertools.islice(parsed.fire_times(start, tz), count):
        click.echo(moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
