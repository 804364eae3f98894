"""Quartz cron expressions: `parse_quartz` reads one, `QuartzExpression.next_after` evaluates it.

Ground truth is the real Quartz 2.3.2 `org.quartz.CronExpression` (the version the Kapua
device cloud schedules with). tests/cron/quartz_vectors.json holds its answers, produced by
tests/cron/generate/, and the tests prove this module gives the same ones.

Why not croniter (the usual Python cron library): it speaks another dialect. It
numbers weekdays 0-6 from Sunday (Quartz: 1-7), puts seconds last, has no year field, no
`nL` (it writes `L5`), no `LW` and no `L-n`, ORs day-of-month with day-of-week, and has its
own DST rules. A translation could not be exact for the full grammar, and Quartz's own
quirks (listed in `jobrunner.cron.syntax`) would still be missing. So the evaluator is our
own: a calendar search over the parsed field sets, year -> month -> day -> hour -> minute ->
second, with the `L`/`W`/`#` rules computed once per month (see `jobrunner.cron.days`). It
never steps second by second, so `0 0 0 29 FEB ? 2096` or `0 0 0 ? * 6#5` are as quick as
`0 * * * * ?`.

How a schedule behaves, in plain words (this is what Quartz does; we do the same):

- Fire times are wall-clock times in the trigger's time zone. `next_after(t)` is the first
  matching wall-clock time after t, counted in whole seconds (t's fraction is dropped).
- Spring forward (the clocks jump, e.g. 02:00 -> 03:00 in Europe/Rome on the last Sunday of
  March): a time that does not exist that day does not fire that day, and is not made up
  later. `0 30 2 * * ?` skips that Sunday; `0 0/30 * * * ?` goes 01:30 -> 03:00.
- Fall back (the clocks go back, e.g. 03:00 -> 02:00 on the last Sunday of October): the
  repeated hour fires once, on its second pass (standard time). During the first pass
  (summer time) nothing fires: `0 30 2 * * ?` fires at 02:30 +01:00, and
  `0 0/30 * * * ?` goes 01:30 +02:00 -> 02:00 +01:00, an hour and a half later.
- Behind both: Quartz moves through wall-clock time field by field (second, minute, hour,
  day...). When it sets a time that does not exist, Java's calendar moves it forward by the
  length of the gap, and Quartz goes on from there; a time that occurs twice is read as the
  second one. Where gaps are one hour and start on the hour (Europe, North America) that is
  simply "skip what does not exist". Elsewhere it also skips some times that do exist:
  on Lord Howe Island (a 30-minute gap at 02:00) `0 10,35 * * * ?` goes 01:35 -> 03:10
  although 02:35 exists; on the Chatham Islands (02:45 -> 03:45) `0 0/7 3 * * ?` does not
  fire at 03:49 or 03:56 that day; we reproduce that exactly.
- A `W` rule (`15W`, `LW`, `L-3W`) whose fire time that day falls in a DST gap (e.g. `LW`
  at midnight in Africa/Cairo, whose clocks jump at midnight on a Friday) makes Quartz loop
  forever. We cannot copy that: we skip the day, as for any other nonexistent time.
- No fire time is later than MAX_YEAR: the current year + 100 (Quartz fixes it when it
  loads). An explicit later year is accepted but never fires.
- `nW` in a month shorter than n: no fire, except that Quartz fires on the last day when it
  is a Friday and day n would be the Saturday after it; and when the search starts in the
  previous month after that month's nW day, Quartz skips that short month altogether.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache

from jobrunner.cron.clock import instant, land, set_hour, wall
from jobrunner.cron.days import (
    DayRule,
    DaysOfMonth,
    LastDayOfMonth,
    LastWeekday,
    NearestWeekday,
    NthWeekday,
    Weekdays,
    month_length,
)
from jobrunner.cron.fields import (
    DAY_OF_MONTH,
    DAY_OF_WEEK,
    HOURS,
    MINUTES,
    MONTH,
    NO_SPEC,
    SECONDS,
    YEAR,
)
from jobrunner.cron.syntax import RawFields, read_fields

# Quartz computes this once, when the class loads: "this year + 100".
MAX_YEAR = datetime.now(UTC).year + 100

_SECOND = timedelta(seconds=1)
_DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class QuartzExpression:
    """A parsed Quartz cron expression. Build it with `parse_quartz`.

    `notes` lists what Quartz reads differently from how the expression looks (ignored
    characters, fields after the 7th, years that never fire): all valid, but worth a look.
    """

    expression: str
    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    months: tuple[int, ...]
    years: tuple[int, ...]
    days: DayRule
    max_year: int
    notes: tuple[str, ...] = ()
    # The days of each (year, month) asked about so far: schedules ask about the same months.
    _month_days: dict[tuple[int, int], tuple[int, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __repr__(self) -> str:
        return f"QuartzExpression({self.expression!r})"

    def next_after(self, after: datetime, tz: tzinfo) -> datetime | None:
        """The first fire time strictly after `after` (aware), evaluated in `tz`, in UTC.

        None when the expression never fires again (its years are over, or it names a day
        that does not exist, such as 30 FEB).
        """
        if after.tzinfo is None or after.utcoffset() is None:
            raise ValueError("after must be an aware datetime")
        if after.astimezone(UTC).year > self.max_year:
            return None
        # Like Quartz: one second later (`wall` drops the fraction of a second).
        day, seconds = wall(after + _SECOND, tz)
        skip: tuple[int, int] | None = None
        first = True
        while True:
            day, seconds = self._settle_time(day, seconds, tz)
            if first:
                skip, first = self._skipped_month(day), False
            fire_day = self._next_day(day, skip)
            if fire_day is None:
                return None
            if fire_day == day:
                return instant(day, seconds, tz)
            day, seconds = land(fire_day, 0, tz)

    def fire_times(self, after: datetime, tz: tzinfo) -> Iterator[datetime]:
        """The fire times after `after`, in order, as a scheduler chains them."""
        current = self.next_after(after, tz)
        while current is not None:
            yield current
            current = self.next_after(current, tz)

    # -- time of day: Quartz's second, minute and hour steps ---------------------------------
    def _settle_time(self, day: date, now: int, tz: tzinfo) -> tuple[date, int]:
        """The first matching time of day at or after `now` seconds after midnight of `day`
        (possibly on a later day).

        Each move jumps straight to the next allowed value, in the order Quartz makes them,
        and lands through `clock.land`, so a time in a DST gap moves on as in Quartz.
        """
        seconds, minutes, hours = self.seconds, self.minutes, self.hours
        while True:
            minute_start = now - now % 60
            s = bisect_left(seconds, now % 60)
            if s == len(seconds):
                day, now = land(day, minute_start + 60 + seconds[0], tz)
            elif seconds[s] != now % 60:
                day, now = land(day, minute_start + seconds[s], tz)
            hour, minute = divmod(now // 60, 60)
            m = bisect_left(minutes, minute)
            if m == len(minutes):
                day, now = set_hour(day, hour + 1, minutes[0], tz)
            elif minutes[m] != minute:
                day, now = set_hour(day, hour, minutes[m], tz)
            else:
                h = bisect_left(hours, hour)
                if h == len(hours):
                    day, now = set_hour(day + _DAY, hours[0], 0, tz)
                elif hours[h] != hour:
                    day, now = set_hour(day, hours[h], 0, tz)
                else:
                    return day, now

    # -- days: a plain calendar search -------------------------------------------------------
    def _next_day(self, start: date, skip: tuple[int, int] | None) -> date | None:
        """The first day at or after `start` that the expression fires on."""
        years, months = self.years, self.months
        for year in years[bisect_left(years, start.year) :]:
            first_month = start.month if year == start.year else 1
            for month in months[bisect_left(months, first_month) :]:
                if (year, month) == skip:
                    continue
                days = self._days_in(year, month)
                if (year, month) == (start.year, start.month):
                    days = days[bisect_left(days, start.day) :]
                if days:
                    return date(year, month, days[0])
        return None

    def _days_in(self, year: int, month: int) -> tuple[int, ...]:
        days = self._month_days.get((year, month))
        if days is None:
            days = self._month_days[year, month] = self.days.days_in(year, month)
        return days

    def _skipped_month(self, start: date) -> tuple[int, int] | None:
        """The month Quartz jumps over for `nW` (see the module docstring), or None."""
        rule = self.days
        if not isinstance(rule, NearestWeekday) or rule.day <= 28:
            return None
        this_month = self._days_in(start.year, start.month)
        if not this_month or start.day <= this_month[0]:
            return None
        # This month's nW is behind us: Quartz sets day n of the next month; when that month
        # is shorter than n, the date rolls into the month after and the short one is skipped.
        year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
        return (year, month) if rule.day > month_length(year, month) else None


def parse_quartz(expression: str, *, max_year: int | None = None) -> QuartzExpression:
    """Parses a Quartz cron expression; raises CronSyntaxError where Quartz 2.3.2 would.

    `max_year` replaces MAX_YEAR (this year + 100) for tests that must not depend on the date.
    """
    return _parse(expression, MAX_YEAR if max_year is None else max_year)


@lru_cache(maxsize=4)
def _every_year(max_year: int) -> tuple[int, ...]:
    return tuple(range(1970, max_year + 1))


@lru_cache(maxsize=1024)
def _parse(expression: str, max_year: int) -> QuartzExpression:
    # Remembered: triggers parse their expression again on every evaluation.
    raw = read_fields(expression, max_year)
    notes = list(raw.notes)
    days = _day_rule(raw, notes)
    # Before 1970 nothing is scheduled any more (and Quartz keeps '*' as the number 99).
    ordered = sorted(raw.values[YEAR])  # '*' holds every year to max_year: cut, not filtered
    years = tuple(ordered[bisect_left(ordered, 1970) : bisect_right(ordered, max_year)])
    if len(years) == max_year - 1969:
        # Every year ('*', most expressions): 157 numbers of 32 B and their tuple, held
        # once instead of once per expression remembered (5 KB each).
        years = _every_year(max_year)
    late = ordered[bisect_right(ordered, max_year) :]
    if late:
        notes.append(
            f"year: {late[0]} is after {max_year} (this year + 100), the last year Quartz "
            "schedules; it never fires"
        )
    elif not years:
        notes.append("year: no year to fire in; the expression never fires")
    return QuartzExpression(
        expression=expression,
        seconds=_sorted(raw, SECONDS, 0, 59),
        minutes=_sorted(raw, MINUTES, 0, 59),
        hours=_sorted(raw, HOURS, 0, 23),
        months=_sorted(raw, MONTH, 1, 12),
        years=years,
        days=days,
        max_year=max_year,
        notes=tuple(notes),
    )


def _sorted(raw: RawFields, kind: int, low: int, high: int) -> tuple[int, ...]:
    return tuple(sorted(v for v in raw.values[kind] if low <= v <= high))


def _day_rule(raw: RawFields, notes: list[str]) -> DayRule:
    """The one day rule Quartz applies: day-of-month's unless it is '?', else day-of-week's."""
    if NO_SPEC not in raw.values[DAY_OF_MONTH]:
        if raw.last_day_of_month:
            return LastDayOfMonth(raw.last_day_offset, raw.nearest_weekday)
        days = raw.values[DAY_OF_MONTH]
        if raw.nearest_weekday:
            if len(days) > 1:
                notes.append(f"day-of-month: 'W' applies to the smallest day only, {min(days)}W")
            return NearestWeekday(min(days))
        return DaysOfMonth(tuple(sorted(d for d in days if 1 <= d <= 31)))
    weekdays = raw.values[DAY_OF_WEEK]
    if raw.last_day_of_week or raw.nth_day_of_week:
        first = min(weekdays)
        if len(weekdays) > 1:
            notes.append(f"day-of-week: 'L'/'#' applies to the smallest weekday only, {first}")
        if raw.last_day_of_week:
            return LastWeekday(first)
        if first > 7:
            notes.append(f"day-of-week: '{first}#{raw.nth_day_of_week}' never fires")
        # Quartz reaches weekday 0 as the Saturday before; 8 and above it never reaches.
        weekday = 7 if first == 0 else first if first <= 7 else None
        return NthWeekday(weekday, raw.nth_day_of_week)
    return Weekdays(frozenset(d for d in weekdays if 1 <= d <= 7))
