"""Per-device values in a plan: resolved for the targets a first execution would freeze, and,
once frozen, compared with what the DeviceList says now.

Frozen means frozen: a frozen target whose DeviceList entry now gives a referenced value
another value (or none) is a conflict, reported at the line of that value, never applied.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from jobrunner.manifests import Declared, DeclaredDevice, Job
from jobrunner.manifests.devicevalues import TargetValues, device_values, resolve, templates_of
from jobrunner.manifests.differences import ABSENT, show
from jobrunner.manifests.secrets import MASK
from jobrunner.manifests.values import Reference
from jobrunner.state.records import Conflict, ConflictDifference, FrozenValues, JobRecord

Devices = Mapping[str, DeclaredDevice]

MAX_SHOWN = 50
"""Differences listed in a conflict: the first ones say what happened; the count says how much."""


def values_to_freeze(
    declared: Declared[Job], targets: list[str], devices: Devices
) -> TargetValues | None:
    """The values a first execution would freeze with `targets` (None: the steps read none),
    with what keeps them from resolving (`problems`)."""
    if not templates_of(declared.manifest):
        return None
    return resolve(declared.manifest, declared.steps_at, targets, devices)


def frozen_values(found: TargetValues | None) -> FrozenValues | None:
    """The record of `found`, frozen with the targets."""
    if found is None or not found.names:
        return None
    return FrozenValues(names=found.names, rows=found.rows)


def shown_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """A target's values as status and plan show them: one whose name says it is a
    password (`device.vars.adminPassword`) as ***."""
    return {k: MASK if k.lower().endswith("password") else v for k, v in values.items()}


def values_lines(values: FrozenValues | None, targets: list[str]) -> list[str]:
    """`gw-0002: device.vars.ntpServer=10.2.0.1, ...` for each target (plan -v)."""
    if values is None:
        return []
    lines = []
    for client_id in targets:
        shown = shown_values(values.of(client_id))
        if shown:
            text = ", ".join(f"{k}={_text(v)}" for k, v in shown.items())
            lines.append(f"{client_id}: {text}")
    return lines


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def problems_text(declared: Declared[Job], found: TargetValues) -> list[str]:
    """`FILE:LINE: job 'NAME': message` of each problem (each names its device)."""
    name = declared.manifest.metadata.name
    return [f"{file}:{line}: job '{name}': {message}" for file, line, message in found.problems]


def values_conflict(
    record: JobRecord, declared: Declared[Job], devices: Devices
) -> Conflict | None:
    """A frozen target's value that the DeviceList now gives otherwise, as a conflict (each
    difference at the line of the device's value); None when every one is as frozen."""
    frozen = record.frozen
    values = frozen.values if frozen is not None else None
    if frozen is None or values is None:
        return None
    listed: list[ConflictDifference] = []
    changed = 0
    for client_id, row in values.rows.items():
        entry = devices.get(client_id)
        now = device_values(entry, client_id)
        for name, old in zip(values.names, row, strict=True):
            _, _, rest = name.partition(".")
            try:
                new = now.lookup(Reference(name, "device", rest))
            except KeyError:
                new = ABSENT
            if new == old and type(new) is type(old):
                continue
            changed += 1
            if len(listed) >= MAX_SHOWN:
                continue
            file, line = _where(entry, rest, declared)
            listed.append(
                ConflictDifference(
                    what=f"target {client_id} ${{{name}}}",
                    old=show(old),
                    new=show(new),
                    file=file,
                    line=line,
                )
            )
    if not listed:
        return None
    more = f" (the first {len(listed)} below)" if changed > len(listed) else ""
    return Conflict(
        message=(
            f"the values {changed} frozen target(s) read changed after execution 1 froze them"
            f" ({frozen.at:%Y-%m-%d %H:%M} UTC); they are never changed{more}, each below as"
            " frozen -> as the DeviceList gives it now. Restore them, or declare a new job"
            " (a new name) for the new values"
        ),
        file=listed[0].file,
        line=listed[0].line,
        differences=listed,
    )


def _where(entry: DeclaredDevice | None, name: str, declared: Declared[Job]) -> tuple[str, int]:
    """The file and line of a device's value (its entry when the value is gone; the job's
    targets when the device is gone from every DeviceList)."""
    if entry is None:
        return str(declared.origin.file), declared.origin.line("spec", "targets")
    family, _, key = name.partition(".")
    device = entry.path[:-1]  # the entry's path names its clientId
    path = (*device, family, key) if key else (*device, family)
    return str(entry.origin.file), entry.origin.source.line_of(path)
