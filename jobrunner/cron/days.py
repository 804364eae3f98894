"""Which days of one month a Quartz expression fires on: the day-of-month and day-of-week rules.

Each rule answers `days(year, month)`: the sorted days of that month it allows. The
evaluator asks month by month, so `L`, `W` and `#` are computed once per month, never by
stepping through time. Weekdays use Quartz's numbering: 1 = Sunday ... 7 = Saturday.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, timedelta

_SATURDAY, _SUNDAY = 7, 1


def month_length(year: int, month: int) -> int:
    """Number of days in the month."""
    return calendar.monthrange(year, month)[1]


def quartz_weekday(day: date) -> int:
    """Quartz's weekday number of `day`: 1 = Sunday ... 7 = Saturday."""
    return (day.weekday() + 1) % 7 + 1


def nearest_weekday(year: int, month: int, day: int) -> int | None:
    """The `W` rule: the weekday nearest to `day`, without leaving the month.

    A Saturday moves to Friday and a Sunday to Monday, except that the 1st moves forward to
    Monday the 3rd and the last day back to Friday. For a day past the end of the month
    Quartz lets the date roll into the next month and applies the same rule there, so
    `31W` fires on the 30th of a 30-day month when the 31st would be a Saturday (the 30th is
    a Friday); otherwise that month has no fire. None when the month has no fire.
    """
    last = month_length(year, month)
    weekday = quartz_weekday(date(year, month, 1) + timedelta(days=day - 1))
    if weekday == _SATURDAY:
        day += 2 if day == 1 else -1
    elif weekday == _SUNDAY:
        day += -2 if day == last else 1
    return day if 1 <= day <= last else None


@dataclass(frozen=True, slots=True)
class DaysOfMonth:
    """Plain day numbers (`1,15`, `1-10/3`, `*`)."""

    days: tuple[int, ...]

    def days_in(self, year: int, month: int) -> tuple[int, ...]:
        last = month_length(year, month)
        return tuple(day for day in self.days if day <= last)


@dataclass(frozen=True, slots=True)
class LastDayOfMonth:
    """`L` (offset 0) or `L-n`; with `weekday`, `LW` / `L-nW` (the nearest weekday to it)."""

    offset: int
    weekday: bool = False

    def days_in(self, year: int, month: int) -> tuple[int, ...]:
        day = month_length(year, month) - self.offset
        if day < 1:
            return ()  # e.g. L-30 in February: that month has no fire
        if self.weekday:
            moved = nearest_weekday(year, month, day)
            return () if moved is None else (moved,)
        return (day,)


@dataclass(frozen=True, slots=True)
class NearestWeekday:
    """`nW`: the weekday nearest to day n (see `nearest_weekday`)."""

    day: int

    def days_in(self, year: int, month: int) -> tuple[int, ...]:
        moved = nearest_weekday(year, month, self.day)
        return () if moved is None else (moved,)


@dataclass(frozen=True, slots=True)
class Weekdays:
    """Plain weekdays (`MON-FRI`, `1,7`, `L` alone = Saturday)."""

    weekdays: frozenset[int]

    def days_in(self, year: int, month: int) -> tuple[int, ...]:
        first = quartz_weekday(date(year, month, 1))
        return tuple(
            day
            for day in range(1, month_length(year, month) + 1)
            if (first + day - 2) % 7 + 1 in self.weekdays
        )


@dataclass(frozen=True, slots=True)
class LastWeekday:
    """`nL`: the last such weekday of the month (`6L` = last Friday)."""

    weekday: int

    def days_in(self, year: int, month: int) -> tuple[int, ...]:
        last = month_length(year, month)
        back = (quartz_weekday(date(year, month, last)) - self.weekday) % 7
        return (last - back,)


@dataclass(frozen=True, slots=True)
class NthWeekday:
    """`n#k`: the k-th such weekday of the month; months without a k-th one have no fire.

    `weekday` is None for Quartz's `8#k` and above, which never fire.
    """

    weekday: int | None
    nth: int

    def days_in(self, year: int, month: int) -> tuple[int, ...]:
        if self.weekday is None:
            return ()
        first = (self.weekday - quartz_weekday(date(year, month, 1))) % 7 + 1
        day = first + 7 * (self.nth - 1)
        return (day,) if day <= month_length(year, month) else ()


DayRule = DaysOfMonth | LastDayOfMonth | NearestWeekday | Weekdays | LastWeekday | NthWeekday
