"""The parts of job records read that are equal across jobs, held once.

A job record keeps its manifest's `spec` and its frozen steps as read (JSON data: about 7 KB
a job, held as long as the runner holds the job), and the jobs of one rollout (1,000 tag
groups) differ only by their targets: their steps, schedules and parameters are equal. Each
part of a record's `spec` and each of its frozen steps that equals one read before (the same
JSON, keys in order) is that one: one step list for 1,000 jobs instead of 1,000 copies.

What is shared is never changed in place: a reconcile gives a record a new `spec` (the
manifest dumped anew) and a first execution a new `frozen`; nothing writes into their parts
(a record's copy for a reader, `model_copy`, already shares them). The newest CACHED
distinct parts are kept, so that what is kept stays bounded whatever the jobs.
"""

from __future__ import annotations

import json
from typing import Any

CACHED = 1024
"""Distinct parts kept to be shared."""

_seen: dict[str, Any] = {}


def share_equal_parts(spec: dict[str, Any], steps: list[dict[str, Any]]) -> None:
    """A record just read holding the parts of its `spec` and its frozen `steps` (its own
    dict and list) that equal those of a record read before as those."""
    for name, value in spec.items():
        if value.__class__ is dict or value.__class__ is list:
            spec[name] = _shared(name, value)
    for index, step in enumerate(steps):
        steps[index] = _shared("frozen step", step)


def _shared(where: str, value: Any) -> Any:
    try:
        key = where + json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError):
        return value  # not JSON data: left as it is (cannot be, for a record read)
    found = _seen.get(key)
    if found is None:
        if len(_seen) >= CACHED:
            del _seen[next(iter(_seen))]  # the oldest
        _seen[key] = found = value
    return found
