"""What of a job's manifest matters, and to whom: essences, digests, and target resolution.

A digest covers an *essence*, not the file: a comment, key order or a step's description
changing is no change. Targets (the selectors) and steps make one essence: it is frozen at
the first execution. Schedules make another: they may change at any time.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from jobrunner.manifests import Job
from jobrunner.manifests.steps import dump_steps as dump_step_list


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def dump_steps(job: Job) -> list[dict[str, Any]]:
    """The job's steps as recorded (manifest spelling), to be frozen with the job."""
    return dump_step_list(job.spec.steps)


def spec_essence(job: Job) -> dict[str, Any]:
    steps = [{k: v for k, v in step.items() if k != "description"} for step in dump_steps(job)]
    targets = job.spec.targets.model_dump(mode="json", by_alias=True)
    return {"targets": targets, "steps": steps}


def spec_digest(job: Job) -> str:
    """Digest of what is frozen at the first execution: target selectors and steps."""
    return _digest(spec_essence(job))


def schedule_digest(job: Job) -> str:
    return _digest([s.model_dump(mode="json", by_alias=True) for s in job.spec.schedules])


class ScopeDevices:
    """The known devices of one scope, indexed by tag once: resolving a job's tags then costs
    what they select, not a pass over every device (1,000 jobs x 10,000 devices otherwise)."""

    def __init__(self, devices: Mapping[str, Iterable[str]]) -> None:
        self.clients = list(devices)
        self.by_tag: dict[str, list[str]] = {}
        for client, tags in devices.items():
            for tag in tags:
                self.by_tag.setdefault(tag, []).append(client)


NO_DEVICES = ScopeDevices({})


def resolve_targets(job: Job, devices: ScopeDevices) -> list[str]:
    """Client ids selected by the job's targets, given the scope's devices and their tags.

    Explicit client ids are kept even when no such device is registered yet (it may register
    when it connects); tags and `all` select among the registered devices. Sorted, unique.
    """
    targets = job.spec.targets
    chosen = set(targets.devices)
    if targets.all:
        chosen.update(devices.clients)
    else:
        for tag in set(targets.tags):
            chosen.update(devices.by_tag.get(tag, ()))
    return sorted(chosen)
