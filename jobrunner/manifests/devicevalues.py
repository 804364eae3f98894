"""The values a job's steps read for each of its targets, and what is wrong with them.

Only what the steps reference is collected (a job that reads `${device.vars.ntpServer}`
records that one value per target, not the device's whole `vars`), in columns: the
reference texts once, then one row of values per target. A job without references costs
nothing here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from jobrunner.manifests.declarations import Declared, DeclaredDevice, ManifestSet, Origin
from jobrunner.manifests.errors import dotted, message_for
from jobrunner.manifests.kinds import Job
from jobrunner.manifests.labelmatch import device_facts
from jobrunner.manifests.steps import Step
from jobrunner.manifests.steptemplates import StepTemplate, render
from jobrunner.manifests.values import (
    DataPath,
    DeviceValues,
    Reference,
    UnresolvedReferenceError,
    table_lookup,
)

MAX_PROBLEMS = 20
"""Problems said per job: a var missing on 10,000 devices is one mistake, not 10,000 lines."""


@dataclass
class TargetValues:
    """Per target, the value of every reference the steps make (columns: `names`)."""

    names: list[str] = field(default_factory=list)
    rows: dict[str, list[Any]] = field(default_factory=dict)
    problems: list[tuple[Path, int, str]] = field(default_factory=list)
    """(file, line, message naming the device): where the reference is written."""

    def of(self, client_id: str) -> dict[str, Any]:
        """`{"device.vars.ntpServer": "10.1.2.3"}` of one target (empty without)."""
        row = self.rows.get(client_id)
        return dict(zip(self.names, row, strict=True)) if row is not None else {}


def device_values(declared: DeclaredDevice | None, client_id: str) -> DeviceValues:
    """What `${device.*}` reads for a device: its DeviceList entry, or only its client id."""
    if declared is None:
        return DeviceValues(client_id, declared=False)
    return DeviceValues(client_id, declared.display_name, declared.labels, declared.vars)


def templates_of(job: Job) -> list[tuple[int, StepTemplate]]:
    return [(i, s) for i, s in enumerate(job.spec.steps) if isinstance(s, StepTemplate)]


def referenced(job: Job) -> dict[str, tuple[int, DataPath]]:
    """Every device reference of the steps (its text), with where it is first written."""
    found: dict[str, tuple[int, DataPath]] = {}
    for index, template in templates_of(job):
        for path, reference in template.references():
            if reference.kind == "device":
                found.setdefault(reference.text, (index, path))
    return found


def resolve(
    job: Job,
    origin: Origin,
    targets: Iterable[str],
    devices: Mapping[str, DeclaredDevice],
) -> TargetValues:
    """The values of `targets` (client ids), each step checked with them: a reference a
    target cannot resolve, or a value its property does not take, is a problem at the line
    it is written (`origin`: where the steps are), naming the device."""
    where = referenced(job)
    templates = templates_of(job)
    result = TargetValues(names=sorted(where))
    if not templates:
        return result
    checked: set[tuple[Any, ...]] = set()
    for client_id in targets:
        values = device_values(devices.get(client_id), client_id)
        row: list[Any] = []
        missing = False
        for name in result.names:
            index, path = where[name]
            try:
                row.append(values.lookup(_reference(name)))
            except KeyError as error:
                missing = True
                _problem(result, origin, job, index, path, str(error.args[0]))
        if missing:
            continue
        result.rows[client_id] = row
        key = tuple(map(repr, row)) if "device.clientId" not in result.names else None
        if key is not None and key in checked:
            continue  # the same values as a target checked already: the same steps
        if key is not None:
            checked.add(key)
        _check_steps(result, origin, job, templates, client_id, result.of(client_id))
    return result


def _reference(text: str) -> Reference:
    _, _, name = text.partition(".")
    return Reference(text, "device", name)


def _check_steps(
    result: TargetValues,
    origin: Origin,
    job: Job,
    templates: list[tuple[int, StepTemplate]],
    client_id: str,
    values: dict[str, Any],
) -> None:
    for index, template in templates:
        try:
            render(template, table_lookup(values))
        except UnresolvedReferenceError as problem:
            _problem(result, origin, job, index, problem.path, problem.message)
        except ValidationError as error:
            for detail in error.errors(include_url=False):
                loc = tuple(detail["loc"])
                path = loc[2:] if loc[1:2] == ("properties",) else loc[1:]
                written = _written_at(template.properties, path)
                message = message_for(detail, Step)  # type: ignore[arg-type]
                _problem(
                    result,
                    origin,
                    job,
                    index,
                    path,
                    f"device {client_id} ({written}): {message}",
                )


def _written_at(properties: Any, path: DataPath) -> str:
    """The reference text written at `path` (or above it), for a message."""
    current = properties
    for part in path:
        inside = (
            part in current
            if isinstance(current, dict)
            else isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current)
        )
        if not inside:
            break
        current = current[part]
    return current if isinstance(current, str) else "its values"


def _problem(
    result: TargetValues, origin: Origin, job: Job, index: int, path: DataPath, message: str
) -> None:
    if len(result.problems) >= MAX_PROBLEMS:
        return
    step = job.spec.steps[index]
    line = origin.line("spec", "steps", index, "properties", *path)
    text = f"step '{step.name}' properties.{dotted(path)}: {message}"
    if (origin.file, line, text) not in result.problems:
        result.problems.append((origin.file, line, text))


def declared_targets(job: Job, devices: Mapping[str, DeclaredDevice]) -> list[str]:
    """The targets among the declared devices (and the client ids named): what `validate`
    can tell without the devices that only connect; for a selector, every declared device
    whose labels let it match (what the devices report is not known here)."""
    targets = job.spec.targets
    chosen = set(targets.devices)
    if targets.all:
        chosen.update(devices)
        return sorted(chosen)
    if targets.tags:
        wanted = set(targets.tags)
        chosen.update(c for c, d in devices.items() if wanted.intersection(d.tags))
    selector = targets.parsed_selector
    if selector is not None:
        chosen.update(c for c, d in devices.items() if selector.could_match(device_facts(d.labels)))
    return sorted(chosen)


def check_values(
    declared: Declared[Job], result: ManifestSet, devices: Mapping[str, DeclaredDevice]
) -> bool:
    """Each reference of the job's steps resolved for every declared target, and each step
    checked with the values: errors at the line of the reference, naming the device."""
    job = declared.manifest
    if not templates_of(job):
        return True
    found = resolve(job, declared.steps_at, declared_targets(job, devices), devices)
    for file, line, message in found.problems:
        result.error(file, line, f"job '{job.metadata.name}': {message}")
    return not found.problems
