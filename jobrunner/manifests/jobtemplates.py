"""Jobs made from a JobTemplate: `spec.template: NAME` and `spec.parameters: {name: value}`.

A job that names a template is read once every file is: the template may be in any file of
the jobs directory. Its spec is the template's (steps, schedules, rollout, retry) with the
job's own keys (targets, run, suspend, and schedules, rollout or retry to replace the
template's), and `parameters` the template's defaults with the job's values over them. An
unknown template or parameter, or a parameter without default the job does not give, is an
error at the job's line; an error inside the template's steps is reported in the template's
file, naming the job.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import InitErrorDetails

from jobrunner.manifests.declarations import Declared, ManifestSet, Origin
from jobrunner.manifests.errors import data_path, located_messages, suggest
from jobrunner.manifests.kinds import Job, JobTemplate
from jobrunner.manifests.yamlsource import SourceMap

FROM_TEMPLATE = ("steps", "schedules", "rollout", "retry")
"""The spec keys a template gives (a job may write schedules, rollout and retry of its own)."""


@dataclass(frozen=True)
class TemplateSource:
    """A valid JobTemplate, as written (its steps are put together with each job's values)."""

    declared: Declared[JobTemplate]
    data: dict[str, Any]


@dataclass(frozen=True)
class TemplatedJob:
    """A Job document that names a template, waiting for every file to be read."""

    file: Path
    data: dict[str, Any]
    source: SourceMap
    scope: str


def expand(
    job: TemplatedJob,
    templates: dict[tuple[str, str], TemplateSource],
    invalid: set[tuple[str, str]],
    result: ManifestSet,
) -> Declared[Job] | None:
    """The job with its template's spec and its parameters' values; None (errors
    recorded) when it cannot be made."""
    spec: dict[str, Any] = job.data["spec"]
    name = spec["template"]
    where = job.source.line_of(("spec", "template"))
    found = templates.get((job.scope, str(name)))
    if found is None:
        if (job.scope, str(name)) in invalid:
            why = "does not validate (its errors are reported where it is written)"
        else:
            known = sorted(n for s, n in templates if s == job.scope)
            why = (
                "is not declared in scope "
                + f"'{job.scope}'"
                + (
                    suggest(str(name), known)
                    or (f"; templates: {', '.join(known)}" if known else "")
                )
            )
        result.error(job.file, where, f"template '{name}' {why}")
        return None
    if "steps" in spec:
        result.error(
            job.file,
            job.source.line_of(("spec", "steps")),
            f"a job that names a template takes its steps from it: remove steps, or the"
            f" template: {name} line",
        )
        return None
    parameters = _parameters(job, found, result)
    if parameters is None:
        return None
    template_spec = found.data["spec"]
    merged_spec = {k: template_spec[k] for k in FROM_TEMPLATE if k in template_spec}
    merged_spec.update({k: v for k, v in spec.items() if k != "parameters"})
    merged_spec["parameters"] = parameters
    merged = {**job.data, "spec": merged_spec}
    try:
        manifest = Job.model_validate(merged)
    except ValidationError as error:
        _report(error, merged, job, found, result)
        return None
    origin = Origin(job.file, _with_template_lines(job, found))
    return Declared(manifest, origin, job.scope, steps_origin=found.declared.origin)


def _parameters(
    job: TemplatedJob, template: TemplateSource, result: ManifestSet
) -> dict[str, Any] | None:
    """The template's defaults with the job's values over them; None when one is unknown,
    or one without default is not given (each an error)."""
    declared = template.declared.manifest.spec.parameters
    given = job.data["spec"].get("parameters") or {}
    label = f"template '{template.declared.manifest.metadata.name}'"
    ok = True
    if not isinstance(given, dict):
        return None  # the Job model says what parameters must be
    for name in given:
        if name not in declared:
            ok = False
            hint = suggest(str(name), declared) or (
                f"; its parameters: {', '.join(declared)}" if declared else "; it has none"
            )
            result.error(
                job.file,
                job.source.line_of(("spec", "parameters", name)),
                f"{label} has no parameter '{name}'{hint}",
            )
    for name, default in declared.items():
        if default is None and given.get(name) is None:
            ok = False
            at = ("spec", "parameters") if "parameters" in job.data["spec"] else ("spec",)
            result.error(
                job.file,
                job.source.line_of(at),
                f"{label} needs parameter '{name}' (it has no default): give it under"
                f" spec.parameters, e.g. {name}: VALUE",
            )
    if not ok:
        return None
    return {**{k: v for k, v in declared.items() if v is not None}, **given}


def _from_template(path: tuple[Any, ...], job: TemplatedJob) -> bool:
    return (
        path[:1] == ("spec",)
        and len(path) > 1
        and path[1] in FROM_TEMPLATE
        and (path[1] not in job.data["spec"])
    )


def _report(
    error: ValidationError,
    merged: dict[str, Any],
    job: TemplatedJob,
    template: TemplateSource,
    result: ManifestSet,
) -> None:
    """Each error where it is written: in the template's file (naming the job) or the job's."""
    mine: list[InitErrorDetails] = []
    theirs: list[InitErrorDetails] = []
    for detail in error.errors(include_url=False):
        path = data_path(Job, merged, detail["loc"])
        kept = InitErrorDetails(type=detail["type"], loc=detail["loc"], input=detail["input"])
        if "ctx" in detail:
            kept["ctx"] = detail["ctx"]
        (theirs if _from_template(path, job) else mine).append(kept)
    name = merged.get("metadata", {}).get("name")
    for details, source, file, note in (
        (mine, job.source, job.file, ""),
        (theirs, template.declared.origin.source, template.declared.origin.file, name),
    ):
        if not details:
            continue
        split = ValidationError.from_exception_data(error.title, details)
        for line, message in located_messages(split, Job, merged, source):
            result.error(file, line, f"job '{note}': {message}" if note else message)


def _with_template_lines(job: TemplatedJob, template: TemplateSource) -> SourceMap:
    """The job's lines, where the parts its template gives are at its `template:` line."""
    where = job.source.line_of(("spec", "template"))
    source = SourceMap(
        job.source.start_line, dict(job.source.key_lines), dict(job.source.value_lines)
    )
    for path in template.declared.origin.source.key_lines:
        if _from_template(path, job):
            source.key_lines.setdefault(path, where)
    return source
