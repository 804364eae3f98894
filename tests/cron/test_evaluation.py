"""next_after: its contract, the DST behaviour the module documents, and its speed.

The exact fire times are proven against Quartz in test_quartz_vectors.py; these tests state
the behaviour operators rely on in plain cases, so that a reader sees it without the data.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from itertools import islice
from zoneinfo import ZoneInfo

import pytest

from jobrunner.cron import MAX_YEAR, parse_quartz
from jobrunner.cron.quartz import QuartzExpression
from tests.cron.vectors import parse, vectors

ROME = ZoneInfo("Europe/Rome")
NEW_YORK = ZoneInfo("America/New_York")


def at(
    zone: ZoneInfo, year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=zone)


def fires(expression: str, after: datetime, zone: ZoneInfo, count: int) -> list[datetime]:
    return list(islice(parse(expression).fire_times(after, zone), count))


def test_next_after_is_strictly_later_and_in_utc() -> None:
    noon = datetime(2026, 1, 1, 12, tzinfo=UTC)
    fire = parse("0 0 12 * * ?").next_after(noon, ROME)
    assert fire == at(ROME, 2026, 1, 2, 12)
    assert fire is not None
    assert fire.tzinfo is UTC


def test_after_may_be_in_any_zone_and_its_fraction_of_a_second_is_dropped() -> None:
    after = at(NEW_YORK, 2026, 1, 1, 6, 59, 59) + timedelta(microseconds=999_999)
    next_second = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse("* * * * * ?").next_after(after, ROME) == next_second


def test_a_naive_after_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        parse("0 0 12 * * ?").next_after(datetime(2026, 1, 1), ROME)


def test_fixed_offset_zones_work_too() -> None:
    plus_two = timezone(timedelta(hours=2))
    after = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse("0 0 9 * * ?").next_after(after, plus_two) == datetime(2026, 1, 1, 7, tzinfo=UTC)


def test_none_when_it_never_fires_again() -> None:
    after = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse("0 0 0 30 2 ?").next_after(after, ROME) is None
    assert parse("0 0 0 1 1 ? 2020").next_after(after, ROME) is None
    assert list(parse("0 0 12 1 1 ? 2027-2028").fire_times(after, ROME)) == [
        at(ROME, 2027, 1, 1, 12),
        at(ROME, 2028, 1, 1, 12),
    ]


def test_spring_forward_a_time_that_does_not_exist_does_not_fire_that_day() -> None:
    # Europe/Rome, Sunday 29 March 2026: 02:00 CET jumps to 03:00 CEST.
    saturday = at(ROME, 2026, 3, 28, 12)
    assert fires("0 30 2 * * ?", saturday, ROME, 2) == [
        at(ROME, 2026, 3, 30, 2, 30),
        at(ROME, 2026, 3, 31, 2, 30),
    ]
    assert fires("0 0/30 * * * ?", at(ROME, 2026, 3, 29, 1, 15), ROME, 3) == [
        at(ROME, 2026, 3, 29, 1, 30),
        at(ROME, 2026, 3, 29, 3, 0),
        at(ROME, 2026, 3, 29, 3, 30),
    ]


def test_fall_back_the_repeated_hour_fires_once_in_standard_time() -> None:
    # Europe/Rome, Sunday 25 October 2026: 03:00 CEST goes back to 02:00 CET.
    # (Expected times in UTC: Python never finds a repeated local time equal to another.)
    assert fires("0 30 2 * * ?", at(ROME, 2026, 10, 24, 12), ROME, 2) == [
        datetime(2026, 10, 25, 1, 30, tzinfo=UTC),  # 02:30 CET (+01:00), the second 02:30
        at(ROME, 2026, 10, 26, 2, 30),
    ]
    half_hours = fires("0 0/30 * * * ?", at(ROME, 2026, 10, 25, 1, 15), ROME, 3)
    assert half_hours == [
        datetime(2026, 10, 24, 23, 30, tzinfo=UTC),  # 01:30 CEST (+02:00)
        datetime(2026, 10, 25, 1, 0, tzinfo=UTC),  # 02:00 CET: 02:00, 02:30 CEST do not fire
        datetime(2026, 10, 25, 1, 30, tzinfo=UTC),  # 02:30 CET
    ]
    assert half_hours[1] - half_hours[0] == timedelta(minutes=90)


def test_new_york_fall_back() -> None:
    assert fires("0 30 1 * * ?", at(NEW_YORK, 2026, 10, 31, 12), NEW_YORK, 1) == [
        datetime(2026, 11, 1, 6, 30, tzinfo=UTC)  # 01:30 EST (-05:00), not EDT
    ]


def test_the_default_max_year_is_this_year_plus_100() -> None:
    assert datetime.now(UTC).year + 100 - 1 <= MAX_YEAR <= datetime.now(UTC).year + 100
    expression = parse_quartz("0 0 0 1 1 ? 2030")
    assert expression.max_year == MAX_YEAR
    after = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_quartz("0 0 0 1 1 ? 2099", max_year=2098).next_after(after, ROME) is None
    assert parse_quartz("0 0 0 1 1 ? 2099", max_year=2099).next_after(after, ROME) is not None


def test_parsing_is_remembered() -> None:
    assert parse_quartz("0 0 2 ? * MON-FRI") is parse_quartz("0 0 2 ? * MON-FRI")


@pytest.mark.parametrize(
    "expression",
    ["0 0 0 29 FEB ? 2096", "0 0 0 ? * 6#5", "0 0 0 30 2 ?", "0 0 0 ? * 8#1", "0 0 0 31W 2 ?"],
)
def test_rare_or_impossible_days_are_found_without_stepping_through_time(
    expression: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A look or two at each month up to the last year, never one at each day (how long
    that takes is bench.cron's)."""
    parsed = parse(expression)
    after = datetime(2026, 1, 1, tzinfo=UTC)
    looked: list[tuple[int, int]] = []
    real = QuartzExpression._days_in

    def counting(self: QuartzExpression, year: int, month: int) -> tuple[int, ...]:
        looked.append((year, month))
        return real(self, year, month)

    monkeypatch.setattr(QuartzExpression, "_days_in", counting)
    parsed.next_after(after, ROME)
    assert vectors()["max_year"] >= 2096
    months = 12 * (parsed.max_year - after.year + 1)
    assert len(set(looked)) <= months and len(looked) <= 2 * months
