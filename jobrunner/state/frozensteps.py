"""A job's frozen steps, validated once per distinct list: jobs frozen alike share them.

A runner holds the validated steps of every job it holds (the step models its dispatch
reads). A fleet's jobs often run the same steps (1,000 jobs of one rollout, each a tag group):
each distinct list of recorded steps is validated once, and the jobs that froze the same
share its step models (frozen, immutable values), each job with a list of its own. The newest
CACHED distinct lists are kept, so that what is kept stays bounded whatever the jobs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from jobrunner.errors import StateError
from jobrunner.manifests.steps import StepBase
from jobrunner.manifests.steptemplates import load_steps

CACHED = 256
"""Distinct step lists whose validated steps are kept to be shared."""

_validated: dict[str, tuple[StepBase, ...]] = {}


def frozen_steps(recorded: list[dict[str, Any]], where: Path) -> list[StepBase]:
    """`recorded` (a job record's frozen steps) validated; StateError naming `where` (the
    record) when they do not validate (a record edited by hand, or written by a release that
    read them otherwise)."""
    key = json.dumps(recorded, sort_keys=True, separators=(",", ":"), default=repr)
    found = _validated.get(key)
    if found is None:
        try:
            found = tuple(load_steps(recorded))
        except ValidationError as error:
            first = error.errors()[0]
            index = first["loc"][0] if first["loc"] else "?"
            raise StateError(
                f"{where}: frozen step {index} does not validate ({first['msg']}); the job"
                " is set aside, the other jobs go on: restore the file from a backup, or"
                " remove the job's state folder to forget the job"
            ) from None
        if len(_validated) >= CACHED:
            del _validated[next(iter(_validated))]  # the oldest
        _validated[key] = found
    return list(found)
