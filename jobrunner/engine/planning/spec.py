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
from jobrunner.manifests.selectors import Facts
from jobrunner.manifests.steps import dump_steps as dump_step_list


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def dump_steps(job: Job) -> list[dict[str, Any]]:
    """The job's steps as recorded (manifest spelling), to be frozen with the job."""
    return dump_step_list(job.spec.steps)


def spec_essence(job: Job) -> dict[str, Any]:
    steps = [{k: v for k, v in step.items() if k != "description"} for step in dump_steps(job)]
    targets = job.spec.targets.essence()
    essence: dict[str, Any] = {"targets": targets, "steps": steps}
    waves = dump_waves(job)
    if waves:  # absent, not empty, without waves: the digests of older jobs stay the same
        essence["waves"] = waves
    return essence


def dump_waves(job: Job) -> list[dict[str, Any]]:
    """The rollout's waves as written (what the first execution splits the targets by)."""
    rollout = job.spec.rollout
    if rollout is None:
        return []
    return [w.model_dump(mode="json", by_alias=True, exclude_defaults=True) for w in rollout.waves]


def spec_digest(job: Job) -> str:
    """Digest of what is frozen at the first execution: target selectors, steps, waves."""
    return _digest(spec_essence(job))


def schedule_digest(job: Job) -> str:
    return _digest([s.model_dump(mode="json", by_alias=True) for s in job.spec.schedules])


class ScopeDevices:
    """The known devices of one scope, indexed by tag once: resolving a job's tags then costs
    what they select, not a pass over every device (1,000 jobs x 10,000 devices otherwise)."""

    def __init__(
        self,
        devices: Mapping[str, Iterable[str]],
        zones: Mapping[str, str] | None = None,
        facts: Mapping[str, Facts] | None = None,
    ) -> None:
        self.clients = list(devices)
        self.tags = devices
        self.zones: Mapping[str, str] = zones or {}
        """Client id -> the time zone its DeviceList gives (none for most devices)."""
        self.facts: Mapping[str, Facts] = facts or {}
        """Client id -> what a selector reads of it: its labels, the facts of its BIRTH."""
        self.by_tag: dict[str, list[str]] = {}
        for client, tags in devices.items():
            for tag in tags:
                self.by_tag.setdefault(tag, []).append(client)

    def tags_of(self, client_id: str) -> Iterable[str]:
        return self.tags.get(client_id, ())

    def facts_of(self, client_id: str) -> Facts:
        return self.facts.get(client_id, _NO_FACTS)


_NO_FACTS: Facts = {}


NO_DEVICES = ScopeDevices({})


def resolve_targets(
    job: Job, devices: ScopeDevices, selected: Iterable[str] | None = None
) -> list[str]:
    """Client ids selected by the job's targets, given the scope's devices and their tags.

    Explicit client ids are kept even when no such device is registered yet (it may register
    when it connects); tags, the selector and `all` select among the registered devices, the
    selector by their labels and what they reported so far (`selected`: what it matches,
    when the caller knows already). Sorted, unique.
    """
    targets = job.spec.targets
    chosen = set(targets.devices)
    if targets.all:
        chosen.update(devices.clients)
        return sorted(chosen)
    for tag in set(targets.tags):
        chosen.update(devices.by_tag.get(tag, ()))
    selector = targets.parsed_selector
    if selected is not None:
        chosen.update(selected)
    elif selector is not None:
        chosen.update(c for c in devices.clients if selector.matches(devices.facts_of(c)))
    return sorted(chosen)
