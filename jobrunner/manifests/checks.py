"""Checks across documents and files: unique names, scope quotas, targets that match nothing.

Each declaration is checked in reading order (files sorted by path, documents in file order),
so "the second declaration is the error" is well defined and stable between runs.
"""

from __future__ import annotations

import difflib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from jobrunner.manifests.declarations import (
    Declared,
    ManifestSet,
    Origin,
    RejectedDocument,
)
from jobrunner.manifests.devicelists import ReadDeviceList, Shared
from jobrunner.manifests.devicevalues import check_values
from jobrunner.manifests.differences import differences, show
from jobrunner.manifests.fields import DOT_HINT
from jobrunner.manifests.jobtemplates import TemplatedJob, TemplateSource
from jobrunner.manifests.kinds import Job, Policy, Scope, Targets
from jobrunner.manifests.notification import Notification
from jobrunner.manifests.rolloutchecks import check_rollout
from jobrunner.manifests.selectors import unmatched_labels
from jobrunner.manifests.steps import CommandExecutionStep
from jobrunner.manifests.yamlsource import DataPath


@dataclass
class Collected:
    """Valid documents in reading order, before the cross-document checks."""

    scopes: list[Declared[Scope]] = field(default_factory=list)
    device_lists: list[ReadDeviceList] = field(default_factory=list)
    shared: Shared = field(default_factory=Shared)
    """What the devices of every DeviceList share (tags, labels), held once."""
    jobs: list[Declared[Job]] = field(default_factory=list)
    policies: list[Declared[Policy]] = field(default_factory=list)
    notifications: list[Declared[Notification]] = field(default_factory=list)
    rejected_jobs: list[tuple[RejectedDocument, Origin, Targets | None]] = field(
        default_factory=list
    )
    """Job documents that did not validate, with their targets when those do: the rules
    across files are still checked for them, so that one run reports everything."""
    templates: dict[tuple[str, str], TemplateSource] = field(default_factory=dict)
    """Valid JobTemplates by (scope, name), as written."""
    invalid_templates: set[tuple[str, str]] = field(default_factory=set)
    templated_jobs: list[TemplatedJob] = field(default_factory=list)
    """Jobs that name a template: made once every file is read (`jobtemplates.expand`)."""


def check_declarations(collected: Collected, result: ManifestSet) -> None:
    """Fill `result` with the declarations that pass, and diagnostics for those that do not."""
    _check_scopes(collected.scopes, result)
    _check_devices(collected.device_lists, result)
    _check_policies(collected.policies, result)
    jobs_per_scope: Counter[str] = Counter()
    known_tags = {  # once per scope, not once per job (1,000 jobs x 10,000 devices otherwise)
        scope: {tag for d in devices.values() for tag in d.tags}
        for scope, devices in result.devices.items()
    }
    for declared in collected.jobs:
        consistent = _job_is_consistent(declared, result)
        # Checked even when the names clash: one run of validate reports everything.
        rollout_ok = check_rollout(declared, result, result.devices.get(declared.scope, {}))
        values_ok = check_values(declared, result, result.devices.get(declared.scope, {}))
        if (
            consistent
            and rollout_ok
            and values_ok
            and _within_quota(declared, jobs_per_scope[declared.scope], result)
        ):
            jobs_per_scope[declared.scope] += 1
            result.jobs[(declared.scope, declared.manifest.metadata.name)] = declared
            if "." in declared.scope and declared.manifest.metadata.scope is not None:
                path = ("metadata", "scope")
                _warn_dots(result, declared.origin, path, f"scope '{declared.scope}'")
            _warn_unmatched_targets(declared, result, known_tags.get(declared.scope, set()))
            _warn_what_kura_ignores(declared, result)
        else:
            result.rejected.append(_rejection(declared))
    _check_rejected_jobs(collected.rejected_jobs, result, known_tags)
    _check_notifications(collected.notifications, result)


def _check_rejected_jobs(
    rejected: list[tuple[RejectedDocument, Origin, Targets | None]],
    result: ManifestSet,
    known_tags: dict[str, set[str]],
) -> None:
    seen: dict[tuple[str, str], str] = {}
    for document, origin, targets in rejected:
        scope = document.scope or result.default_scope
        if document.name is not None:
            first = result.jobs.get((scope, document.name))
            where = (
                first.origin.at("metadata", "name") if first else seen.get((scope, document.name))
            )
            if where is not None:
                result.error(
                    origin.file,
                    origin.line("metadata", "name"),
                    f"job '{document.name}' is already declared in scope '{scope}' at {where};"
                    " job names are unique in a scope",
                )
            seen.setdefault((scope, document.name), origin.at("metadata", "name"))
        if targets is not None:
            _warn_unmatched(targets, scope, origin, result, known_tags.get(scope, set()))


def _check_scopes(scopes: list[Declared[Scope]], result: ManifestSet) -> None:
    for declared in scopes:
        name = declared.manifest.metadata.name
        if "." in name:
            _warn_dots(result, declared.origin, ("metadata", "name"), f"scope '{name}'")
        first = result.scopes.get(name)
        if first is not None:
            result.error(
                declared.origin.file,
                declared.origin.line("metadata", "name"),
                f"scope '{name}' is already declared at {first.origin.at('metadata', 'name')}"
                + _how_they_differ(
                    first.manifest, first.origin, (), declared.manifest, declared.origin
                ),
            )
            continue
        result.scopes[name] = declared


def _check_policies(policies: list[Declared[Policy]], result: ManifestSet) -> None:
    for declared in policies:
        first = result.policies.get(declared.scope)
        if first is not None:
            result.error(
                declared.origin.file,
                declared.origin.source.value_line(()),
                f"scope '{declared.scope}' already has a policy at"
                f" {first.origin.file}:{first.origin.source.value_line(())}; merge the two:"
                " a scope has one policy",
            )
            result.rejected.append(
                RejectedDocument(
                    declared.origin.file,
                    declared.origin.source.value_line(()),
                    "Policy",
                    declared.scope,
                    None,
                )
            )
            continue
        result.policies[declared.scope] = declared


def _check_notifications(notifications: list[Declared[Notification]], result: ManifestSet) -> None:
    """Names unique in a scope; a job filter naming no job of the scope is a likely typo."""
    for declared in notifications:
        name = declared.manifest.metadata.name
        first = result.notifications.get((declared.scope, name))
        if first is not None:
            result.error(
                declared.origin.file,
                declared.origin.line("metadata", "name"),
                f"notification '{name}' is already declared in scope '{declared.scope}' at"
                f" {first.origin.at('metadata', 'name')}; names are unique in a scope"
                + _how_they_differ(
                    first.manifest, first.origin, (), declared.manifest, declared.origin
                ),
            )
            result.rejected.append(
                RejectedDocument(
                    declared.origin.file,
                    declared.origin.line("metadata", "name"),
                    "Notification",
                    declared.scope,
                    name,
                )
            )
            continue
        result.notifications[(declared.scope, name)] = declared
        jobs = {n for s, n in result.jobs if s == declared.scope}
        for index, job in enumerate(declared.manifest.spec.jobs):
            if job not in jobs:
                close = difflib.get_close_matches(job, sorted(jobs), n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                result.warning(
                    declared.origin.file,
                    declared.origin.line("spec", "jobs", index),
                    f"notification '{name}': no job '{job}' in scope '{declared.scope}'"
                    f" (its events would never come){hint}",
                )


def _warn_dots(result: ManifestSet, origin: Origin, path: tuple[str | int, ...], what: str) -> None:
    result.warning(origin.file, origin.line(*path), f"'.' in {what}: {DOT_HINT}")


def _check_devices(device_lists: list[ReadDeviceList], result: ManifestSet) -> None:
    for declared in device_lists:
        registry = result.devices.setdefault(declared.scope, {})
        origin = declared.origin
        if "." in declared.scope:
            _warn_dots(result, origin, ("metadata",), f"scope '{declared.scope}'")
        for device in declared.devices:
            client_id = device.client_id
            if "." in client_id:
                _warn_dots(result, origin, device.path, f"client id '{client_id}'")
            first = registry.get(client_id)
            if first is not None:
                result.error(
                    origin.file,
                    device.line,
                    f"device '{client_id}' is already declared in scope"
                    f" '{declared.scope}' at {first.origin.file}:{first.line}"
                    + _how_they_differ(
                        first.model(),
                        first.origin,
                        first.path[:-1],
                        device.model(),
                        origin,
                        device.path[:-1],
                    ),
                )
                continue
            registry[client_id] = device


def _job_is_consistent(declared: Declared[Job], result: ManifestSet) -> bool:
    job = declared.manifest
    origin = declared.origin
    first = result.jobs.get((declared.scope, job.metadata.name))
    if first is not None:
        result.error(
            origin.file,
            origin.line("metadata", "name"),
            f"job '{job.metadata.name}' is already declared in scope '{declared.scope}'"
            f" at {first.origin.at('metadata', 'name')}; job names are unique in a scope"
            + _how_they_differ(first.manifest, first.origin, (), job, declared.origin),
        )
        return False
    ok = _unique_names(origin, "steps", [s.name for s in job.spec.steps], "step", result)
    schedule_names = [s.name for s in job.spec.schedules]
    return _unique_names(origin, "schedules", schedule_names, "schedule", result) and ok


def _how_they_differ(
    first: BaseModel,
    first_origin: Origin,
    first_base: DataPath,
    second: BaseModel,
    origin: Origin,
    base: DataPath = (),
) -> str:
    """How a second declaration of a name differs from the first: every difference, each
    with both values and where each is written, so that the one to keep is chosen at once."""
    found = differences(_dumped(first), _dumped(second))
    if not found:
        return "; the two are the same: remove one"
    listed = "; ".join(
        f"{d.where} is {show(d.old)} at {first_origin.at(*first_base, *d.path)}"
        f" and {show(d.new)} here (line {origin.line(*base, *d.path)})"
        for d in found
    )
    return f"; the two differ in {len(found)} place(s): {listed}"


def _dumped(model: BaseModel) -> Any:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def _unique_names(
    origin: Origin, key: str, names: list[str], what: str, result: ManifestSet
) -> bool:
    seen: dict[str, int] = {}
    ok = True
    for index, name in enumerate(names):
        if name in seen:
            first_line = origin.line("spec", key, seen[name], "name")
            result.error(
                origin.file,
                origin.line("spec", key, index, "name"),
                f"{what} name '{name}' is already used at line {first_line};"
                f" {what} names are unique in a job",
            )
            ok = False
        else:
            seen[name] = index
    return ok


def _within_quota(declared: Declared[Job], held: int, result: ManifestSet) -> bool:
    scope = result.scopes.get(declared.scope)
    if scope is None or scope.manifest.spec.max_jobs is None:
        return True
    limit = scope.manifest.spec.max_jobs
    if held < limit:
        return True
    where = scope.origin.at("spec", "maxJobs")
    name = declared.manifest.metadata.name
    message = (
        f"scope '{declared.scope}' refuses jobs (maxJobs: 0 at {where}); job '{name}' is refused"
        if limit == 0
        else f"scope '{declared.scope}' already holds its {limit} job(s) (maxJobs at {where});"
        f" job '{name}' is refused: remove a job or raise maxJobs"
    )
    result.error(declared.origin.file, declared.origin.line("metadata", "name"), message)
    return False


def _warn_unmatched_targets(
    declared: Declared[Job], result: ManifestSet, known_tags: set[str]
) -> None:
    targets = declared.manifest.spec.targets
    _warn_unmatched(targets, declared.scope, declared.origin, result, known_tags)


def _warn_unmatched(
    targets: Targets, scope: str, origin: Origin, result: ManifestSet, known_tags: set[str]
) -> None:
    registry = result.devices.get(scope, {})
    for index, client_id in enumerate(targets.devices):
        if "." in client_id:
            _warn_dots(
                result, origin, ("spec", "targets", "devices", index), f"client id '{client_id}'"
            )
        if client_id not in registry:
            result.warning(
                origin.file,
                origin.line("spec", "targets", "devices", index),
                f"device '{client_id}' is not in the registry of scope '{scope}';"
                " it becomes a target if it is registered (or connects) before the first"
                " execution",
            )
    for index, tag in enumerate(targets.tags):
        if tag not in known_tags:
            result.warning(
                origin.file,
                origin.line("spec", "targets", "tags", index),
                f"tag '{tag}' matches no registered device of scope '{scope}'",
            )
    selector = targets.parsed_selector
    if selector is not None:
        problem = unmatched_labels(selector, [d.labels for d in registry.values()])
        if problem is not None:
            result.warning(
                origin.file,
                origin.line("spec", "targets", "selector"),
                f"selector {selector.text!r}: {problem} among the registered devices of scope"
                f" '{scope}'",
            )


def _warn_what_kura_ignores(declared: Declared[Job], result: ManifestSet) -> None:
    """Command Execution properties that Kura's CMD-V1 accepts and then does not honour."""
    origin = declared.origin
    for index, step in enumerate(declared.manifest.spec.steps):
        if not isinstance(step, CommandExecutionStep):
            continue
        where = ("spec", "steps", index, "properties")
        for name, value in step.properties.environment.items():
            if "=" in value:
                result.warning(
                    origin.file,
                    origin.line(*where, "environment", name),
                    f"environment variable {name!r}: Kura cuts a value at its first '=', so the"
                    f" command gets {value.split('=', 1)[0]!r}",
                )
        if step.properties.stdin is not None:
            result.warning(
                origin.file,
                origin.line(*where, "stdin"),
                "stdin: Kura's command service does not pass it to the command; give the"
                " input as an argument or in a file",
            )


def _rejection(declared: Declared[Job]) -> RejectedDocument:
    return RejectedDocument(
        file=declared.origin.file,
        line=declared.origin.source.value_line(()),
        kind="Job",
        scope=declared.scope,
        name=declared.manifest.metadata.name,
    )
