"""Quartz cron expressions, read and evaluated exactly as Quartz 2.3.2 (Kapua's scheduler) does.

    expr = parse_quartz("0 0 2 ? * MON-FRI")          # CronSyntaxError if Quartz would refuse it
    expr.next_after(after, ZoneInfo("Europe/Rome"))   # next fire strictly after, in UTC, or None

See `jobrunner.cron.quartz` for how schedules behave around DST changes, and
`jobrunner.cron.syntax` for what Quartz accepts that its documentation does not mention.
"""

from jobrunner.cron.fields import FIELD_NAMES
from jobrunner.cron.quartz import MAX_YEAR, QuartzExpression, parse_quartz
from jobrunner.errors import CronSyntaxError

__all__ = ["FIELD_NAMES", "MAX_YEAR", "CronSyntaxError", "QuartzExpression", "parse_quartz"]
