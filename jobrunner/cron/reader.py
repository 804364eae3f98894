"""One field of a Quartz expression, read character by character as Quartz 2.3.2 reads it.

The reader keeps the state Quartz keeps: a value set per field and a few expression-wide day
flags (`L`, `W`, `nL`, `#`). Each `read_*` method returns how many characters of the item
Quartz made use of; the rest Quartz silently ignores, and we note it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from jobrunner.cron.fields import (
    ALL_SPEC,
    DAY_OF_MONTH,
    DAY_OF_WEEK,
    FIELD_NAMES,
    INT_MAX,
    MONTH,
    NO_SPEC,
    RIGHT,
    YEAR,
    field_error,
    java_int,
)
from jobrunner.errors import CronSyntaxError

_LOW = (0, 0, 0, 1, 1, 1, 1970)
_HIGH = (59, 59, 23, 31, 12, 7, None)  # the year's high end is the expression's max_year
_WRAP = (60, 60, 24, 31, 12, 7, None)  # the modulus of a range that runs past the end
_STEP_MAX = (59, 59, 23, 31, 12, 7, None)  # largest increment Quartz allows in 'a/n', '*/n'
_MONTHS = {
    name: number
    for number, name in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1
    )
}
_DAYS = {
    name: number for number, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"), 1)
}
# Items that start with a letter are names, except these forms of 'L'.
_LAST_DAY = re.compile(r"L|LW|L-[0-9]*W?")


@dataclass
class FieldReader:
    """Reads the fields of one expression; its state has the shape of Quartz's."""

    max_year: int
    sets: list[set[int]] = field(default_factory=lambda: [set() for _ in range(7)])
    last_day_of_month: bool = False
    last_day_offset: int = 0
    nearest_weekday: bool = False
    last_day_of_week: bool = False
    nth_day_of_week: int = 0
    notes: list[str] = field(default_factory=list)

    # -- one field ----------------------------------------------------------------------
    def read_field(self, kind: int, text: str) -> None:
        """Reads a whole field (a comma-separated list) into the state."""
        if kind in (DAY_OF_MONTH, DAY_OF_WEEK) and "L" in text and "," in text:
            raise field_error(kind, f"'L' cannot be combined with other days in a list ('{text}')")
        if kind == DAY_OF_WEEK and text.count("#") > 1:
            raise field_error(kind, f"only one 'n#k' is allowed ('{text}')")
        items = [item for item in text.split(",") if item]
        for item in items:
            end = self.read_item(kind, item)
            if end < len(item):
                self.notes.append(f"{FIELD_NAMES[kind]}: Quartz ignores '{item[end:]}' in '{item}'")

    def read_item(self, kind: int, item: str) -> int:
        """Reads one list item; returns how many characters Quartz made use of."""
        first = item[0]
        if "A" <= first <= "Z" and not _LAST_DAY.fullmatch(item):
            return self.read_name(kind, item)
        if first == "?":
            return self.read_no_spec(kind, item)
        if first in "*/":
            return self.read_all(kind, item)
        if first == "L":
            return self.read_last(kind, item)
        if "0" <= first <= "9":
            if len(item) == 1:
                self.add(kind, item, int(first), -1, -1)
                return 1
            value, pos = int(first), 1
            if "0" <= item[1] <= "9":
                value, pos = self.number(kind, item, value, 1)
            return self.read_suffix(kind, item, pos, value)
        raise field_error(kind, f"unexpected character '{first}' in '{item}'; {RIGHT[kind]}")

    def read_name(self, kind: int, item: str) -> int:
        """A month or weekday name (its first three letters count), a range, NAME#k, NAMEL."""
        names = _MONTHS if kind == MONTH else _DAYS if kind == DAY_OF_WEEK else None
        what = "a month" if kind == MONTH else "a day of the week"
        if names is None:
            raise field_error(kind, f"'{item}' is not allowed here; {RIGHT[kind]}")
        start = names.get(item[:3]) if len(item) >= 3 else None
        if start is None:
            raise field_error(kind, f"'{item}' is not {what}; {RIGHT[kind]}")
        stop, used = -1, 3
        if len(item) > 3 and item[3] == "-":
            stop_name = item[4:7]
            stop = names.get(stop_name, -1) if len(stop_name) == 3 else -1
            if stop < 0:
                raise field_error(kind, f"'{item}': the range must end with {what}; {RIGHT[kind]}")
            used = 7
        elif kind == DAY_OF_WEEK and len(item) > 3 and item[3] == "#":
            self.nth_day_of_week = self.nth(item, item[4:])
            used = len(item)
        elif kind == DAY_OF_WEEK and len(item) > 3 and item[3] == "L":
            self.last_day_of_week = True
            used = 4
        self.add(kind, item, start, stop, 1 if stop >= 0 else 0)
        return used

    def read_no_spec(self, kind: int, item: str) -> int:
        """'?': no specific value (day-of-month or day-of-week only)."""
        if len(item) > 2:
            raise field_error(kind, f"unexpected characters after '?' in '{item}'")
        if kind not in (DAY_OF_MONTH, DAY_OF_WEEK):
            raise field_error(kind, "'?' is only allowed in day-of-month or day-of-week")
        if kind == DAY_OF_WEEK and not self.last_day_of_month:
            days = self.sets[DAY_OF_MONTH]
            if not days:
                raise field_error(DAY_OF_MONTH, "no value (only commas); use e.g. '1' or '?'")
            if max(days) == NO_SPEC:
                raise CronSyntaxError(
                    "day-of-month and day-of-week are both '?'; specify '?' in exactly one of "
                    "day-of-month and day-of-week"
                )
        self.add(kind, item, NO_SPEC, -1, 0)
        return 1

    def read_all(self, kind: int, item: str) -> int:
        """'*', '*/n' or '/n': every value, or every n-th from the lowest."""
        if item == "*":
            self.add(kind, item, ALL_SPEC, -1, 0)
            return 1
        if item == "/":
            raise field_error(kind, f"'/' must be followed by a number in '{item}'")
        pos = 1 if item[0] == "*" else 0
        if item[pos] != "/":
            self.add(kind, item, ALL_SPEC, -1, 1)
            return pos
        if pos + 1 >= len(item):
            raise field_error(kind, f"'/' must be followed by a number in '{item}'")
        step = java_int(item[pos + 1 :])
        if step is None:
            raise field_error(kind, f"'{item}': expected a whole number after '/'")
        self.check_step(kind, item, step)
        self.add(kind, item, ALL_SPEC, -1, step)
        return len(item)

    def read_last(self, kind: int, item: str) -> int:
        """'L', 'LW', 'L-n', 'L-nW' in day-of-month; 'L' (Saturday) in day-of-week."""
        if kind == DAY_OF_WEEK:
            self.add(kind, item, 7, 7, 0)  # a bare 'L' in day-of-week is Saturday (7)
            return 1
        if kind != DAY_OF_MONTH:
            return 0  # Quartz adds no value for it; a field left empty is refused later
        self.last_day_of_month = True
        pos = 1
        if len(item) > 1 and item[1] == "-":
            if len(item) == 2:
                raise field_error(kind, f"'{item}': expected a number after 'L-' (e.g. 'L-3')")
            self.last_day_offset, pos = self.number(kind, item, 0, 2)
            if self.last_day_offset > 30:
                raise field_error(kind, f"'{item}': the offset from the last day must be 0-30")
        if len(item) > pos and item[pos] == "W":
            self.nearest_weekday = True
            pos += 1
        return min(pos, len(item))

    def read_suffix(self, kind: int, item: str, pos: int, value: int) -> int:
        """What follows a leading number: nothing, L, W, #k, -b, -b/n or /n."""
        if pos >= len(item):
            self.add(kind, item, value, -1, -1)
            return len(item)
        mark = item[pos]
        if mark == "L":
            if kind != DAY_OF_WEEK:
                raise field_error(
                    kind, f"'{item}': 'nL' (last such weekday) is only valid in day-of-week"
                )
            if not 1 <= value <= 7:
                raise field_error(kind, f"'{item}' is out of range; {RIGHT[kind]}")
            self.last_day_of_week = True
            self.sets[kind].add(value)
            return pos + 1
        if mark == "W":
            if kind != DAY_OF_MONTH:
                raise field_error(
                    kind, f"'{item}': 'W' (nearest weekday) is only valid in day-of-month"
                )
            if value > 31:
                raise field_error(kind, f"'{item}' is out of range; use 1W-31W")
            self.nearest_weekday = True
            self.sets[kind].add(value)
            return pos + 1
        if mark == "#":
            if kind != DAY_OF_WEEK:
                raise field_error(
                    kind, f"'{item}': 'n#k' (k-th weekday) is only valid in day-of-week"
                )
            self.nth_day_of_week = self.nth(item, item[pos + 1 :])
            self.sets[kind].add(value)
            return len(item)
        if mark == "-":
            return self.read_range(kind, item, pos + 1, value)
        if mark == "/":
            return self.read_step(kind, item, pos + 1, value)
        self.add(kind, item, value, -1, 0)
        return pos

    def read_range(self, kind: int, item: str, pos: int, start: int) -> int:
        """'a-b' or 'a-b/n' (the increment is not limited, unlike 'a/n')."""
        stop = java_int(item[pos]) if pos < len(item) else None
        if stop is None:
            raise field_error(kind, f"'{item}': expected a number after '-'")
        pos += 1
        if pos < len(item) and "0" <= item[pos] <= "9":
            stop, pos = self.number(kind, item, stop, pos)
        if pos >= len(item) or item[pos] != "/":
            self.add(kind, item, start, stop, 1)
            return min(pos, len(item))
        pos += 1
        step = java_int(item[pos]) if pos < len(item) else None
        if step is None:
            raise field_error(kind, f"'{item}': expected a number after '/'")
        pos += 1
        if pos < len(item) and "0" <= item[pos] <= "9":
            step, pos = self.number(kind, item, step, pos)
        self.add(kind, item, start, stop, step)
        return min(pos, len(item))

    def read_step(self, kind: int, item: str, pos: int, start: int) -> int:
        """'a/n': from a to the field's end, every n."""
        step = java_int(item[pos]) if pos < len(item) else None
        if step is None:
            raise field_error(kind, f"'/' must be followed by a number in '{item}'")
        pos += 1
        if pos < len(item):
            if not "0" <= item[pos] <= "9":
                raise field_error(kind, f"unexpected '{item[pos]}' after the increment in '{item}'")
            step, pos = self.number(kind, item, step, pos)
        self.check_step(kind, item, step)
        self.add(kind, item, start, -1, step)
        return min(pos, len(item))

    # -- helpers ------------------------------------------------------------------------
    def number(self, kind: int, item: str, lead: int, pos: int) -> tuple[int, int]:
        """`lead` followed by the ASCII digits at `pos`; returns (value, position after)."""
        end = pos
        while end < len(item) and "0" <= item[end] <= "9":
            end += 1
        value = int(f"{lead}{item[pos:end]}")
        if value > INT_MAX:
            raise field_error(kind, f"'{item}': the number is too large; {RIGHT[kind]}")
        return value, end

    def nth(self, item: str, text: str) -> int:
        value = java_int(text)
        if value is None or not 1 <= value <= 5:
            raise field_error(DAY_OF_WEEK, f"'{item}': the number after '#' must be 1-5")
        return value

    def check_step(self, kind: int, item: str, step: int) -> None:
        most = _STEP_MAX[kind]
        if most is not None and step > most:
            raise field_error(
                kind, f"increment {step} in '{item}' is too large; use at most {most}"
            )

    def add(self, kind: int, item: str, start: int, stop: int, step: int) -> None:
        """Adds a single value (step 0 or -1), or the values start..stop by step."""
        high = _HIGH[kind]
        if kind != YEAR and start not in (ALL_SPEC, NO_SPEC) and high is not None:
            low = _LOW[kind] if kind != DAY_OF_WEEK else 1
            if not low <= start <= high or stop > high:
                raise field_error(kind, f"'{item}' is out of range; {RIGHT[kind]}")
        values = self.sets[kind]
        if step in (0, -1) and start != ALL_SPEC:
            values.add(start)
            return
        if start == ALL_SPEC and step <= 0:
            step = 1
            values.add(ALL_SPEC)
        open_ended = stop == -1
        top = self.max_year if kind == YEAR else _HIGH[kind]
        assert top is not None
        stop = top if open_ended else stop
        start = _LOW[kind] if start == ALL_SPEC else start
        wrap = 0
        if stop < start:
            if kind == YEAR and open_ended:
                raise field_error(
                    kind,
                    f"'{item}' starts after {self.max_year}, the last year Quartz schedules "
                    "(this year + 100)",
                )
            if kind == YEAR:
                raise field_error(
                    kind, f"the range '{item}' runs backwards; put the earlier year first"
                )
            wrap = _WRAP[kind] or 0
            stop += wrap
        if start + (stop - start) // step * step + step > INT_MAX:
            # Java's int counter would overflow and wrap around: Quartz never finishes.
            raise field_error(kind, f"the increment in '{item}' is too large")
        if kind == YEAR:
            # Years past max_year never fire; a range like 1-2000000000 must not fill memory.
            stop = min(stop, self.max_year)
        if not wrap:  # the values as they come, added at once ('*' of the years: 150 of them)
            values.update(range(start, stop + 1, step))
            return
        one_based = kind in (DAY_OF_MONTH, MONTH, DAY_OF_WEEK)
        for value in range(start, stop + 1, step):
            # A wrapped range continues from the start: 0 for 0-based fields, 1 for 1-based.
            values.add(value % wrap or (wrap if one_based else 0) if wrap else value)
