"""The vocabulary shared by the Quartz modules: field names, the error, Java's number rules."""

from __future__ import annotations

import unicodedata

from jobrunner.errors import CronSyntaxError

FIELD_NAMES = ("seconds", "minutes", "hours", "day-of-month", "month", "day-of-week", "year")
SECONDS, MINUTES, HOURS, DAY_OF_MONTH, MONTH, DAY_OF_WEEK, YEAR = range(7)

# Quartz keeps '*' and '?' as these two numbers inside a field's value set; a few of its
# quirks depend on that (e.g. `98#1` in day-of-week reads as '?'), so we keep them too.
ALL_SPEC = 99
NO_SPEC = 98

INT_MAX = 2**31 - 1  # Quartz counts in Java ints

# What a user should write instead, per field.
RIGHT = (
    "use 0-59",
    "use 0-59",
    "use 0-23",
    "use 1-31, L, L-n, nW or LW",
    "use 1-12 or JAN-DEC",
    "use 1-7 (1 = Sunday) or SUN-SAT",
    "use years such as 2030",
)


def field_error(kind: int, message: str, *, quartz_parses: bool = False) -> CronSyntaxError:
    """A CronSyntaxError about field number `kind` (SECONDS ... YEAR)."""
    return CronSyntaxError(message, field=FIELD_NAMES[kind], quartz_parses=quartz_parses)


def java_int(text: str) -> int | None:
    """`text` as Java's Integer.parseInt reads it (sign, any Unicode decimal digits), or None."""
    body = text[1:] if text[:1] in ("+", "-") else text
    if not body or not all(ord(c) < 0x10000 and c.isdecimal() for c in body):
        return None
    value = int("".join(str(unicodedata.decimal(c)) for c in body))
    value = -value if text[0] == "-" else value
    return value if -(2**31) <= value <= INT_MAX else None


def java_chars(text: str) -> str:
    """`text` as Java sees it: UTF-16 code units (a character outside the BMP counts as two)."""
    if text.isascii():
        return text
    units = text.encode("utf-16-le", "surrogatepass")
    return "".join(chr(int.from_bytes(units[i : i + 2], "little")) for i in range(0, len(units), 2))
