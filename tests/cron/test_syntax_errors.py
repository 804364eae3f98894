"""What Quartz refuses we refuse, with a message that names the field and says what is right."""

from __future__ import annotations

import pytest

from jobrunner.errors import CronSyntaxError
from tests.cron.vectors import parse, section

# expression, the field the message names (None: day-of-month and day-of-week together),
# and what the message must say.
REFUSED = [
    ("0 0 0 ? * 8", "day-of-week", "'8' is out of range; use 1-7 (1 = Sunday) or SUN-SAT"),
    ("0 0 0 ? * 0", "day-of-week", "use 1-7 (1 = Sunday) or SUN-SAT"),
    ("60 * * * * ?", "seconds", "'60' is out of range; use 0-59"),
    ("* 60 * * * ?", "minutes", "'60' is out of range; use 0-59"),
    ("0 0 24 * * ?", "hours", "'24' is out of range; use 0-23"),
    ("0 0 0 32 * ?", "day-of-month", "'32' is out of range; use 1-31"),
    ("0 0 0 1 13 ?", "month", "'13' is out of range; use 1-12 or JAN-DEC"),
    ("5-70 0 0 1 * ?", "seconds", "'5-70' is out of range"),
    ("* * * * * *", None, "specify '?' in exactly one of day-of-month and day-of-week"),
    ("0 0 12 ? * ?", None, "specify '?' in exactly one of day-of-month and day-of-week"),
    ("0 0 12 1 * MON", None, "e.g. '1 * ?' or '? * MON'"),
    ("? 0 0 1 * 1", "seconds", "'?' is only allowed in day-of-month or day-of-week"),
    ("0 0 0 ? ? 1", "month", "'?' is only allowed in day-of-month or day-of-week"),
    ("0 0 0 ?XY * 1", "day-of-month", "unexpected characters after '?'"),
    ("", None, "the expression is empty; a Quartz expression has 6 or 7 fields"),
    ("0 0 12 * *", "day-of-week", "missing; a Quartz expression has 6 or 7 fields"),
    ("*/60 0 0 1 * ?", "seconds", "increment 60 in '*/60' is too large; use at most 59"),
    ("0 0 */24 1 * ?", "hours", "use at most 23"),
    ("0 0 0 1 */13 ?", "month", "use at most 12"),
    ("0 0 0 ? * */8", "day-of-week", "use at most 7"),
    ("5/ 0 0 1 * ?", "seconds", "'/' must be followed by a number"),
    ("*/ 0 0 1 * ?", "seconds", "'/' must be followed by a number"),
    ("1/2/3 0 0 1 * ?", "seconds", "unexpected '/' after the increment"),
    ("5-X 0 0 1 * ?", "seconds", "expected a number after '-'"),
    ("-5 0 0 1 * ?", "seconds", "unexpected character '-'"),
    ("99999999999 0 0 1 * ?", "seconds", "the number is too large"),
    ("0 0 0 1 ABC ?", "month", "'ABC' is not a month; use 1-12 or JAN-DEC"),
    ("0 0 0 ? * JAN", "day-of-week", "'JAN' is not a day of the week; use 1-7 (1 = Sunday)"),
    ("0 0 0 ? * SUN-FOO", "day-of-week", "the range must end with a day of the week"),
    ("0 0 0 ? JU *", "month", "'JU' is not a month"),
    ("ABC 0 0 1 * ?", "seconds", "'ABC' is not allowed here; use 0-59"),
    ("0 0 0 1 1 ? JAN", "year", "'JAN' is not allowed here"),
    ("0 0 0 5L * ?", "day-of-month", "'nL' (last such weekday) is only valid in day-of-week"),
    ("0 0 0 ? * 5W", "day-of-week", "'W' (nearest weekday) is only valid in day-of-month"),
    ("0 0 0 5#2 * ?", "day-of-month", "'n#k' (k-th weekday) is only valid in day-of-week"),
    ("0 0 0 ? * 9L", "day-of-week", "'9L' is out of range; use 1-7"),
    ("0 0 0 32W * ?", "day-of-month", "use 1W-31W"),
    ("0 0 0 ? * 6#6", "day-of-week", "the number after '#' must be 1-5"),
    ("0 0 0 ? * 5#", "day-of-week", "the number after '#' must be 1-5"),
    ("0 0 0 ? * 2#1,3#2", "day-of-week", "only one 'n#k' is allowed"),
    ("0 0 0 L,15 * ?", "day-of-month", "'L' cannot be combined with other days in a list"),
    ("0 0 0 ? * 6L,2", "day-of-week", "'L' cannot be combined with other days in a list"),
    ("0 0 0 L-31 * ?", "day-of-month", "the offset from the last day must be 0-30"),
    ("0 0 0 L- * ?", "day-of-month", "expected a number after 'L-'"),
    ("0 0 0 LX * ?", "day-of-month", "'LX' is not allowed here; use 1-31, L, L-n, nW or LW"),
    ("0 0 0 1 1 ? 2030-2027", "year", "runs backwards; put the earlier year first"),
    ("0 0 0 1 1 ? 2130/5", "year", "starts after 2126, the last year Quartz schedules"),
]


@pytest.mark.parametrize(("expression", "field", "says"), REFUSED)
def test_a_refused_expression_names_the_field_and_the_fix(
    expression: str, field: str | None, says: str
) -> None:
    with pytest.raises(CronSyntaxError) as caught:
        parse(expression)
    error = caught.value
    message = str(error)
    assert error.field == field
    if field is None:
        assert "day-of-month" in message or "fields" in message
    else:
        assert message.startswith(f"{field}: ")
    assert says in message
    assert not error.quartz_parses
    assert isinstance(error, ValueError)


def test_each_refused_expression_is_refused_by_quartz() -> None:
    quartz = {v["expr"]: v for v in section("syntax")}
    for expression, _, _ in REFUSED:
        assert quartz[expression]["valid"] is False, expression


# Quartz's reader accepts these, but its evaluator throws (a field without values) or loops
# forever (W on a day that does not exist), so no Kapua trigger could run them.
UNRUNNABLE = [
    ("L 0 0 1 * ?", "seconds", "leaves no value"),
    ("0 L 0 1 * ?", "minutes", "leaves no value"),
    ("0 0 L 1 * ?", "hours", "leaves no value"),
    ("0 0 0 1 L ?", "month", "leaves no value"),
    (", 0 0 1 * ?", "seconds", "leaves no value"),
    ("0 0 0 ? * ,", "day-of-week", "leaves no value"),
    ("0 0 0 0W * ?", "day-of-month", "use 1W-31W"),
    ("0 0 0 1,0W * ?", "day-of-month", "use 1W-31W"),
    ("0 0 0 L-28W * ?", "day-of-month", "with 'W' use an offset of at most 27"),
    ("0 0 0 L-30W * ?", "day-of-month", "with 'W' use an offset of at most 27"),
]


@pytest.mark.parametrize(("expression", "field", "says"), UNRUNNABLE)
def test_what_quartz_reads_but_cannot_run_is_refused_and_marked(
    expression: str, field: str, says: str
) -> None:
    quartz = {v["expr"]: v for v in section("syntax")}[expression]
    assert quartz["valid"] is True
    assert quartz["eval"] in ("hang", "java.util.NoSuchElementException")
    with pytest.raises(CronSyntaxError) as caught:
        parse(expression)
    assert caught.value.field == field
    assert caught.value.quartz_parses
    assert str(caught.value).startswith(f"{field}: ")
    assert says in str(caught.value)


# Quartz accepts these although they look wrong; so do we, and we say how Quartz reads them.
LENIENT = [
    ("0 0 0 ? * MONDAY", "day-of-week: Quartz ignores 'DAY' in 'MONDAY'"),
    ("0 0 0 ? * MON-FRI/2", "day-of-week: Quartz ignores '/2' in 'MON-FRI/2'"),
    ("0 0 0 1-5W * ?", "day-of-month: Quartz ignores 'W' in '1-5W'"),
    ("0 0 0 5X * ?", "day-of-month: Quartz ignores 'X' in '5X'"),
    ("* * * * * ? 2030 extra fields", "Quartz ignores everything after the 7th field"),
    ("0 0 0 1,15W * ?", "day-of-month: 'W' applies to the smallest day only, 1W"),
    ("0 0 0 ? * 2,6#3", "day-of-week: 'L'/'#' applies to the smallest weekday only, 2"),
    ("0 0 0 ? * 8#1", "day-of-week: '8#1' never fires"),
    ("0 0 0 1 1 ? 2150", "year: 2150 is after 2126 (this year + 100)"),
    ("0 0 0 1 * ? ,", "year: no year to fire in; the expression never fires"),
]


@pytest.mark.parametrize(("expression", "note"), LENIENT)
def test_quartz_leniency_is_accepted_with_a_note(expression: str, note: str) -> None:
    assert {v["expr"]: v for v in section("syntax")}[expression]["valid"] is True
    notes = parse(expression).notes
    assert any(note in text for text in notes), notes


def test_a_plain_expression_has_no_notes() -> None:
    assert parse("0 15 10 ? * MON-FRI 2030").notes == ()
