"""The years of an expression that fires every year are held once for every expression
remembered (157 numbers and their tuple each otherwise): the same years, one tuple."""

from __future__ import annotations

from jobrunner.cron.quartz import parse_quartz


def test_every_year_is_one_tuple_for_every_expression() -> None:
    first = parse_quartz("0 58 10 ? * *", max_year=2126)
    second = parse_quartz("0 0 3 1 * ? *", max_year=2126)
    assert first.years == tuple(range(1970, 2127))
    assert second.years is first.years


def test_some_years_are_the_expression_s_own() -> None:
    some = parse_quartz("0 0 3 1 * ? 2030-2040", max_year=2126)
    every = parse_quartz("0 0 3 1 * ? *", max_year=2126)
    assert some.years == tuple(range(2030, 2041))
    assert every.years == tuple(range(1970, 2127))
    assert parse_quartz("0 0 3 1 * ? 1970-2126", max_year=2126).years is every.years
