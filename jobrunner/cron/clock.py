"""Wall-clock time in a zone the way Java's lenient calendar (and so Quartz) handles it.

A wall-clock position is a day and the seconds since its midnight. Quartz moves through
wall-clock time by setting calendar fields; Java then reads a time that does not exist (it is
in a DST gap) with the offset from before the jump, so it lands later by the gap's length
(02:30 becomes 03:30 in Europe/Rome), and reads a time that occurs twice as its second
occurrence. `land` and `instant` reproduce exactly that.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache

DAY_SECONDS = 86400
_ONE_DAY = timedelta(days=1)
_NO_OFFSET = timedelta()

Position = tuple[date, int]  # (day, seconds since midnight), a wall-clock time


def wall(instant: datetime, tz: tzinfo) -> Position:
    """The wall-clock position that the aware `instant` shows in `tz`."""
    local = instant.astimezone(tz)
    return local.date(), local.hour * 3600 + local.minute * 60 + local.second


def land(day: date, seconds: int, tz: tzinfo) -> Position:
    """Where the calendar puts `seconds` after midnight of `day` (may run past the day's end)."""
    while seconds >= DAY_SECONDS:
        day, seconds = day + _ONE_DAY, seconds - DAY_SECONDS
    gap = dst_gap(tz, day)
    if gap is not None and gap[0] <= seconds < gap[1]:
        return land(day, seconds + gap[2], tz)
    return day, seconds


def set_hour(day: date, hour: int, minute: int, tz: tzinfo) -> Position:
    """Quartz moving to hour:minute:00 of `day`; `hour` may be 24, the next day's midnight."""
    landed_day, landed = land(day, hour * 3600 + minute * 60, tz)
    if hour not in (24, landed // 3600):
        # Quartz's own fix-up when the calendar moved the hour: it sets hour + 1 instead,
        # keeping the minutes and seconds the calendar landed on.
        landed_day, landed = land(landed_day, (hour + 1) * 3600 + landed % 3600, tz)
    return landed_day, landed


def instant(day: date, seconds: int, tz: tzinfo) -> datetime:
    """The UTC instant of an existing wall-clock time; of a repeated one, the second."""
    local = datetime.combine(day, time()) + timedelta(seconds=seconds)
    # For a naive time, fold=1 gives the offset after a change: the second occurrence.
    offset = tz.utcoffset(local.replace(fold=1)) or _NO_OFFSET
    return (local - offset).replace(tzinfo=UTC)


@lru_cache(maxsize=4096)
def dst_gap(tz: tzinfo, day: date) -> tuple[int, int, int] | None:
    """The wall-clock seconds [start, end) of `day` that do not exist in `tz`, and the gap's
    length in seconds; None on a day without a jump forward (nearly every day)."""
    midnight = datetime.combine(day, time())
    before = tz.utcoffset(midnight) or _NO_OFFSET
    after = tz.utcoffset(midnight + _ONE_DAY) or _NO_OFFSET
    if after <= before:
        return None

    def first_second(fold: int) -> int:
        # For a naive time in a gap, fold=1 reads the offset after the jump and fold=0 the
        # one before: the gap starts where fold=1 first reads `after`, and ends where fold=0
        # does. Both switch once during the day, so a binary search finds them.
        low, high = 0, DAY_SECONDS
        while low < high:
            middle = (low + high) // 2
            moment = (midnight + timedelta(seconds=middle)).replace(fold=fold)
            if tz.utcoffset(moment) == after:
                high = middle
            else:
                low = middle + 1
        return low

    return first_second(1), first_second(0), int((after - before).total_seconds())
