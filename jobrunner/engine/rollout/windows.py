"""Maintenance windows: when a rollout may start targets, per time zone.

A window opens at each fire of its Quartz cron, evaluated in the zone as schedules are (see
`jobrunner.cron.quartz` for what happens to a fire time that a DST change skips or repeats),
and stays open for its duration in elapsed time. Windows that overlap make one. What a zone's
window is at an instant is kept until the next boundary, so a turn costs a comparison.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from jobrunner.cron import parse_quartz
from jobrunner.manifests.rollout import Window

_MERGE_LIMIT = 10_000  # overlapping fires merged into one window, at most (`* * * * * ?`)


@dataclass(frozen=True)
class Opening:
    """A zone's window at some instant: open until `until`, or closed until `until`
    (`math.inf`: it never opens again)."""

    open: bool
    until: float


class Windows:
    def __init__(self, window: Window) -> None:
        self.expression = parse_quartz(window.cron)
        self.duration = window.duration
        self._known: dict[str, Opening] = {}

    def at(self, zone: str, now: float) -> Opening:
        """Whether the window of `zone` is open at `now` (epoch seconds), and until when."""
        known = self._known.get(zone)
        if known is not None and now < known.until:
            return known
        opening = self._compute(ZoneInfo(zone), datetime.fromtimestamp(now, UTC))
        self._known[zone] = opening
        return opening

    def _compute(self, tz: ZoneInfo, now: datetime) -> Opening:
        fire = self.expression.next_after(now - self.duration, tz)
        if fire is None:
            return Opening(False, math.inf)
        if fire > now:
            return Opening(False, fire.timestamp())
        closes = fire + self.duration
        for _ in range(_MERGE_LIMIT):
            following = self.expression.next_after(fire, tz)
            if following is None or following > closes:
                break
            fire, closes = following, max(closes, following + self.duration)
        return Opening(True, closes.timestamp())


def describe(moment: float, zone: str) -> str:
    """`2027-03-29T02:00:00+02:00 (Europe/Rome)`, or `never` for an instant that never comes."""
    if moment == math.inf:
        return "never (the window's cron does not fire again)"
    local = datetime.fromtimestamp(moment, ZoneInfo(zone)).replace(microsecond=0)
    if zone == "UTC":
        return local.isoformat().replace("+00:00", "Z")
    return f"{local.isoformat()} ({zone})"
