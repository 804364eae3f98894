"""Reading a Quartz cron expression exactly as Quartz 2.3.2's `CronExpression` reads it.

Kapua schedules cron triggers with Quartz 2.3.2, so an expression is valid here when, and only
when, Quartz accepts it; its meaning is what Quartz makes of it. Quartz's reader is lenient
in ways its documentation does not say, and this module reproduces them on purpose (each was
checked against the real library, see tests/cron/quartz_vectors.json):

- only spaces and tabs separate fields; fields after the seventh are ignored;
- names are read by their first three letters (`MONDAY` is `MON`, `JANUARY` is `JAN`);
- after a complete value, stray characters are ignored (`5X` is `5`, `1-5W` is `1-5`,
  `MON-FRI/2` is `MON-FRI`, `*W` is `*`), and `?` may be followed by one stray character;
- a range may wrap (`FRI-MON`, `50-10`, `NOV-FEB`); an increment of 0 means the single start
  value (`5/0` is `5`), while `*/0` means every value;
- `W` (day of month) and `nL` / `n#k` (day of week) apply to the smallest value of a list
  (`1,15W` is `1W`; `2,6#3` is the third Monday);
- a number before `#` is not range-checked: `0#k` is the k-th Saturday and `8#k` never fires;
- the year field has no range check; `*` and `a/n` stop at MAX_YEAR (this year + 100), and no
  fire time is ever later than MAX_YEAR.

Where Quartz's reader accepts an expression that its own evaluator cannot run (it throws, or
loops forever), we refuse it with a message, marked `quartz_parses=True`: such a trigger
cannot work in Kapua either. Those are `L` (or a lone `,`) in seconds, minutes, hours or month,
an empty day-of-week, `0W`, and `L-nW` with n >= 28.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from jobrunner.cron.fields import (
    ALL_SPEC,
    DAY_OF_MONTH,
    DAY_OF_WEEK,
    FIELD_NAMES,
    HOURS,
    MINUTES,
    MONTH,
    NO_SPEC,
    RIGHT,
    SECONDS,
    YEAR,
    field_error,
    java_chars,
)
from jobrunner.cron.reader import FieldReader
from jobrunner.errors import CronSyntaxError

# Java's String.trim(): every character up to U+0020, e.g. a trailing newline.
_TRIM = "".join(map(chr, range(33)))


@dataclass(frozen=True, slots=True)
class RawFields:
    """Each field's value set as Quartz holds it, plus the day flags, and reading notes."""

    values: tuple[frozenset[int], ...]
    last_day_of_month: bool
    last_day_offset: int
    nearest_weekday: bool
    last_day_of_week: bool
    nth_day_of_week: int
    notes: tuple[str, ...]


def read_fields(expression: str, max_year: int) -> RawFields:
    """Reads `expression` the way Quartz does; raises CronSyntaxError where Quartz would."""
    text = java_chars(expression.upper())
    tokens = [token for token in re.split(r"[ \t]+", text) if token]
    reader = FieldReader(max_year)
    for kind, token in enumerate(tokens[:7]):
        reader.read_field(kind, token.strip(_TRIM))
    if len(tokens) < 6:
        shape = (
            "a Quartz expression has 6 or 7 fields: seconds minutes hours day-of-month month "
            "day-of-week [year]"
        )
        if not tokens:
            raise CronSyntaxError(f"the expression is empty; {shape}")
        raise CronSyntaxError(
            f"missing; {shape}, this one has {len(tokens)}", field=FIELD_NAMES[len(tokens)]
        )
    if len(tokens) > 7:
        reader.notes.append(
            f"Quartz ignores everything after the 7th field: {' '.join(tokens[7:])!r}"
        )
    if len(tokens) == 6:
        reader.add(YEAR, "*", ALL_SPEC, -1, 0)
    _check_days(reader, tokens)
    _check_runnable(reader, tokens)
    return RawFields(
        values=tuple(frozenset(values) for values in reader.sets),
        last_day_of_month=reader.last_day_of_month,
        last_day_offset=reader.last_day_offset,
        nearest_weekday=reader.nearest_weekday,
        last_day_of_week=reader.last_day_of_week,
        nth_day_of_week=reader.nth_day_of_week,
        notes=tuple(reader.notes),
    )


def _check_days(reader: FieldReader, tokens: list[str]) -> None:
    """Quartz's rule: exactly one of day-of-month and day-of-week is '?'."""
    month_free = NO_SPEC in reader.sets[DAY_OF_MONTH]
    week_free = NO_SPEC in reader.sets[DAY_OF_WEEK]
    if month_free and week_free:
        raise CronSyntaxError(
            "day-of-month and day-of-week are both '?'; specify '?' in exactly one of "
            "day-of-month and day-of-week"
        )
    if not month_free and not week_free:
        dom, dow = tokens[DAY_OF_MONTH], tokens[DAY_OF_WEEK]
        raise CronSyntaxError(
            f"day-of-month '{dom}' and day-of-week '{dow}' are both set; specify '?' in "
            f"exactly one of day-of-month and day-of-week (e.g. '{dom} * ?' or '? * {dow}')"
        )


def _check_runnable(reader: FieldReader, tokens: list[str]) -> None:
    """Refuses what Quartz's reader accepts but its evaluator throws on or never returns from."""
    for kind in (SECONDS, MINUTES, HOURS, MONTH, DAY_OF_WEEK):
        if not reader.sets[kind]:
            raise field_error(
                kind,
                f"'{tokens[kind]}' leaves no value (Quartz cannot compute a fire time); "
                f"{RIGHT[kind]}",
                quartz_parses=True,
            )
    days = reader.sets[DAY_OF_MONTH]
    if NO_SPEC in days or not reader.nearest_weekday:
        return
    token = tokens[DAY_OF_MONTH]
    if reader.last_day_of_month and reader.last_day_offset >= 28:
        raise field_error(
            DAY_OF_MONTH,
            f"'{token}': Quartz loops forever when day L-{reader.last_day_offset} does not "
            "exist (e.g. in February); with 'W' use an offset of at most 27",
            quartz_parses=True,
        )
    if not reader.last_day_of_month and min(days) == 0:
        raise field_error(
            DAY_OF_MONTH,
            f"'{token}': Quartz loops forever on day 0 with 'W'; use 1W-31W",
            quartz_parses=True,
        )
