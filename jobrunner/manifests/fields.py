"""Field types of the manifest language: names, durations, times, zones, cron expressions.

Every type here validates YAML-native input (the loader keeps ISO times as strings) and
describes itself in JSON Schema, so that editors check the same rules as `jobrunner validate`.
"""

from __future__ import annotations

import difflib
import functools
import re
from datetime import datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import AfterValidator, BeforeValidator, Field, PlainSerializer, WithJsonSchema

from jobrunner.cron import parse_quartz
from jobrunner.errors import CronSyntaxError

NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,62}$"
SCOPE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"
# MQTT client ids appear as a topic segment and as a file name: no '/', '+', '#', spaces.
CLIENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
TAG_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,62}$"
# Kubernetes' label syntax, so that a selector reads as kubectl's does.
LABEL_KEY_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
LABEL_VALUE_PATTERN = r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$"
VAR_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"

_DURATION_RE = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?$")
DURATION_PATTERN = r"^(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?$"
_DURATION_HINT = "write a number and a unit, e.g. 30s, 10m, 2h, 1d (or combined: 1h30m; 500ms)"


def _named_pattern(pattern: str, what: str, example: str) -> AfterValidator:
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.match(value):
            raise ValueError(f"{value!r} is not a valid {what}: {example}")
        return value

    return AfterValidator(check)


Name = Annotated[
    str,
    _named_pattern(
        NAME_PATTERN,
        "name",
        "use 1-63 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit",
    ),
    WithJsonSchema({"type": "string", "pattern": NAME_PATTERN}),
]
"""A job, step or schedule name: safe as a file name and as an MQTT topic segment."""

ScopeName = Annotated[
    str,
    _named_pattern(
        SCOPE_PATTERN,
        "scope name",
        "use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit"
        " (it is the Kura account in MQTT topics)",
    ),
    WithJsonSchema({"type": "string", "pattern": SCOPE_PATTERN}),
]

ClientId = Annotated[
    str,
    _named_pattern(
        CLIENT_ID_PATTERN,
        "device client id",
        "use 1-128 letters, digits, '.', '_', ':' or '-' (no '/', '+', '#' or spaces)",
    ),
    WithJsonSchema({"type": "string", "pattern": CLIENT_ID_PATTERN}),
]

Tag = Annotated[
    str,
    _named_pattern(
        TAG_PATTERN,
        "tag",
        "use 1-63 letters, digits, '.', '_', ':', '/' or '-', starting with a letter or digit",
    ),
    WithJsonSchema({"type": "string", "pattern": TAG_PATTERN}),
]

LabelKey = Annotated[
    str,
    _named_pattern(
        LABEL_KEY_PATTERN,
        "label key",
        "use a name of 1-63 letters, digits, '-', '_' or '.', starting and ending with a letter"
        " or digit, optionally after a DNS prefix and '/' (example.com/site)",
    ),
    WithJsonSchema({"type": "string", "pattern": LABEL_KEY_PATTERN}),
]


def _label_text(value: object) -> object:
    """A YAML scalar as the text a selector writes: `true` (not `True`), `3`, `1.5`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


LabelValue = Annotated[
    str,
    BeforeValidator(_label_text),
    _named_pattern(
        LABEL_VALUE_PATTERN,
        "label value",
        "use up to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit",
    ),
    WithJsonSchema({"type": "string", "pattern": LABEL_VALUE_PATTERN}),
]
"""A label's value; YAML's `line: 3` is the label "3", as a selector would write it."""

VarName = Annotated[
    str,
    _named_pattern(
        VAR_NAME_PATTERN,
        "variable name",
        "use 1-63 letters, digits or '_', starting with a letter or '_'"
        " (as in ${device.vars.NAME})",
    ),
    WithJsonSchema({"type": "string", "pattern": VAR_NAME_PATTERN}),
]


DOT_HINT = (
    "some brokers (RabbitMQ's MQTT plugin) turn a '.' into a topic level, so that requests"
    " and replies of an id with a '.' never arrive; prefer '-'"
)
"""Why a '.' in a scope (the Kura account) or a client id is worth a warning."""


def parse_duration(text: object) -> timedelta:
    """Parse `30s`, `10m`, `2h`, `1d`, `1h30m` or `500ms` into a positive timedelta."""
    if isinstance(text, timedelta):
        return text
    if not isinstance(text, str):
        raise ValueError(f"a duration must be a string; {_DURATION_HINT}")
    return _duration_of(text)


@functools.lru_cache(maxsize=1024)
def _duration_of(text: str) -> timedelta:
    """`parse_duration` of a text. Cached: every job repeats its steps' timeouts, validated
    in its manifest, in its frozen steps and in its schedules (a timedelta is immutable)."""
    match = _DURATION_RE.match(text.strip())
    if not text.strip() or match is None:
        raise ValueError(f"{text!r} is not a duration; {_DURATION_HINT}")
    days, hours, minutes, seconds, millis = (int(g) if g else 0 for g in match.groups())
    try:
        value = timedelta(
            days=days, hours=hours, minutes=minutes, seconds=seconds, milliseconds=millis
        )
    except OverflowError:  # more days than a timedelta holds: far past the limit below
        value = timedelta.max
    if value <= timedelta(0):
        raise ValueError(f"{text!r} is not a positive duration; {_DURATION_HINT}")
    if value > timedelta(days=3650):
        raise ValueError(f"{text!r} is longer than ten years; is the unit right?")
    return value


@functools.lru_cache(maxsize=1024)
def format_duration(value: timedelta) -> str:
    """The shortest manifest spelling of a duration: 90 seconds is `1m30s`. Cached: the
    digests and the record of every job write their steps' timeouts again."""
    millis = round(value.total_seconds() * 1000)
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        count, millis = divmod(millis, size)
        if count:
            parts.append(f"{count}{unit}")
    if millis:
        parts.append(f"{millis}ms")
    return "".join(parts) or "0s"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN, "examples": ["30s", "1h"]}),
]


def _require_zone(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            "the time has no zone; write it with one, e.g. 2026-12-01T00:00:00Z"
            " or 2026-12-01T01:00:00+01:00"
        )
    return value


def _parse_time(value: object) -> object:
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(
                f"{value!r} is not an ISO-8601 time; write e.g. 2026-12-01T00:00:00Z"
            ) from None
    return value


AwareTime = Annotated[
    datetime,
    BeforeValidator(_parse_time),
    AfterValidator(_require_zone),
    Field(strict=False),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
"""An ISO-8601 time with a zone (`Z` or an offset)."""


def check_zone(value: str) -> str:
    """`value` if it is an IANA zone; ValueError with the closest zone otherwise."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        hint = _closest_zone(value)
        raise ValueError(
            f"{value!r} is not an IANA time zone"
            + (f"; did you mean {hint!r}?" if hint else "; write e.g. Europe/Rome or UTC")
        ) from None
    return value


def _closest_zone(value: str) -> str | None:
    matches = difflib.get_close_matches(value, sorted(available_timezones()), n=1, cutoff=0.6)
    return matches[0] if matches else None


TimeZone = Annotated[
    str,
    AfterValidator(check_zone),
    WithJsonSchema({"type": "string", "examples": ["UTC", "Europe/Rome"]}),
]


def _check_cron(value: str) -> str:
    try:
        parse_quartz(value)
    except CronSyntaxError as error:
        raise ValueError(f"invalid Quartz cron expression {value!r}: {error}") from None
    return value


CronExpression = Annotated[
    str,
    AfterValidator(_check_cron),
    WithJsonSchema(
        {
            "type": "string",
            "description": "Quartz cron: sec min hour day-of-month month day-of-week [year]",
            "examples": ["0 0 2 ? * MON-FRI"],
        }
    ),
]


def _scalar_to_text(value: Any) -> Any:
    # YAML reads `run: 2026-11-27-1` as a string but `run: 7` as an int; both are tokens.
    if isinstance(value, bool):
        raise ValueError("a run token must be a string or a number, not true/false")
    if isinstance(value, float):  # 1.10 is 1.1: a new token would not start anything
        raise ValueError(
            f"run: {value} is a decimal number to YAML, which reads 1.1 and 1.10 alike: quote"
            f' the token, run: "{value}"'
        )
    if isinstance(value, int):
        return str(value)
    return value


RunToken = Annotated[
    str,
    BeforeValidator(_scalar_to_text),
    Field(min_length=1, max_length=200),
    WithJsonSchema({"type": ["string", "number"], "minLength": 1, "maxLength": 200}),
]


EMAIL_PATTERN = r"^[^@\s]{1,64}@[^@\s]{1,190}$"
_EMAIL_RE = re.compile(EMAIL_PATTERN)


def _check_email(value: str) -> str:
    if not _EMAIL_RE.match(value):
        raise ValueError(f"{value!r} is not an e-mail address (as git records a commit author)")
    return value.lower()


AuthorEmail = Annotated[
    str,
    AfterValidator(_check_email),
    WithJsonSchema({"type": "string", "pattern": EMAIL_PATTERN}),
]
"""A commit author's e-mail, compared without regard to case."""

_OPENPGP_RE = re.compile(r"^(?:[0-9A-Fa-f]{40}|[0-9A-Fa-f]{64})$")
_SSH_RE = re.compile(r"^SHA256:[A-Za-z0-9+/]{43}$")
FINGERPRINT_PATTERN = r"^(([0-9A-Fa-f] ?){40}|([0-9A-Fa-f] ?){64}|SHA256:[A-Za-z0-9+/]{43})$"


def _check_fingerprint(value: str) -> str:
    compact = value.replace(" ", "")
    if _OPENPGP_RE.match(compact):
        return compact.upper()
    if _SSH_RE.match(value):
        return value
    raise ValueError(
        f"{value!r} is not a full key fingerprint: write an OpenPGP fingerprint (40 hex digits,"
        " `gpg --fingerprint`) or an SSH one (SHA256:..., `ssh-keygen -lf KEY.pub`); short key"
        " ids can be forged"
    )


KeyFingerprint = Annotated[
    str,
    AfterValidator(_check_fingerprint),
    WithJsonSchema({"type": "string", "pattern": FINGERPRINT_PATTERN}),
]
"""A signing key: OpenPGP fingerprint (normalized to upper-case hex) or SSH SHA256 one."""
