"""Access to tests/cron/quartz_vectors.json: what the real Quartz 2.3.2 answered (see generate/)."""

from __future__ import annotations

import json
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jobrunner.cron import QuartzExpression, parse_quartz
from jobrunner.errors import CronSyntaxError

VECTORS_FILE = Path(__file__).with_name("quartz_vectors.json")

Vector = dict[str, Any]


@cache
def vectors() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))
    return data


def section(name: str) -> list[Vector]:
    entries: list[Vector] = vectors()[name]
    return entries


def parse(expression: str) -> QuartzExpression:
    """parse_quartz with the MAX_YEAR that Quartz had when the vectors were made."""
    return parse_quartz(expression, max_year=vectors()["max_year"])


def instant(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00"))


def quartz_fires(vector: Vector) -> list[datetime | None]:
    """Quartz's fire times for the vector (a None at the end: it never fires again)."""
    return [instant(text) for text in vector["fires"]]


def our_fires(
    expression: QuartzExpression, vector: Vector, count: int | None = None
) -> list[datetime | None]:
    """Our fire times, chained from the vector's `after` as the generator chained Quartz's."""
    zone = ZoneInfo(vector["zone"])
    current = instant(vector["after"])
    fires: list[datetime | None] = []
    for _ in range(len(vector["fires"]) if count is None else count):
        assert current is not None
        current = expression.next_after(current, zone)
        fires.append(current)
        if current is None:
            break
    return fires


def disagreement(vector: Vector) -> str | None:
    """Why our answer differs from Quartz's for this vector, or None when they agree.

    Quartz refuses -> we refuse. Quartz accepts and runs it -> we accept, with the same fire
    times. Quartz's reader accepts it but its evaluator throws or never returns -> we refuse,
    saying so (`quartz_parses`); the one exception, a W rule on a day whose fire time falls
    in a DST gap (Quartz loops, we skip the day), is checked on its own in the tests.
    """
    expr = vector["expr"]
    try:
        ours = parse(expr)
    except CronSyntaxError as error:
        if not vector["valid"]:
            return None
        if vector["eval"] != "ok" and error.quartz_parses:
            return None
        return f"{expr!r}: Quartz accepts it (eval {vector['eval']}), we refuse: {error}"
    if not vector["valid"]:
        return f"{expr!r}: Quartz refuses it ({vector['error']}), we accept it"
    if vector["eval"] != "ok":
        return f"{expr!r}: Quartz cannot run it ({vector['eval']}), we accept it"
    expected, got = quartz_fires(vector), our_fires(ours, vector)
    if expected != got:
        return (
            f"{expr!r} in {vector['zone']} after {vector['after']}:\n"
            f"  Quartz {[str(t) for t in expected]}\n  ours   {[str(t) for t in got]}"
        )
    return None
