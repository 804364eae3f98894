"""A job's parameters put into its steps: `${params.NAME}` replaced when the manifest is read.

What is frozen with the job is the step with its parameters' values in it: a later change of
a parameter changes the steps, and a frozen job reports it as the conflict any change of its
steps is. Device references (`${device.*}`) and escaped `$${` stay as written.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from pydantic_core import InitErrorDetails

from jobrunner.manifests.values import UnresolvedReferenceError, params_lookup, substitute

PARAMS = frozenset({"params"})


def with_parameters(data: Any) -> Any:
    """A Job spec as written, with `${params.NAME}` in its steps' properties replaced by the
    values of `parameters`; ValidationError (locations in the spec) for a parameter without
    a value, or a reference to none."""
    if not isinstance(data, dict):
        return data
    params = data.get("parameters") or {}
    steps = data.get("steps")
    if not isinstance(params, dict) or not isinstance(steps, list):
        return data
    problems: list[InitErrorDetails] = []
    for name, value in params.items():
        if value is None:
            problems.append(
                _problem(
                    ("parameters", name),
                    f"parameter '{name}' has no value (null); give it one: a job's own"
                    " parameters are values, only a JobTemplate's may be left without",
                )
            )
    given = {k: v for k, v in params.items() if v is not None}
    lookup = params_lookup(given)
    replaced = []
    for index, step in enumerate(steps):
        properties = step.get("properties") if isinstance(step, dict) else None
        if properties is None or "${" not in repr(properties):
            replaced.append(step)
            continue
        try:
            new = substitute(properties, lookup, PARAMS)
        except UnresolvedReferenceError as problem:
            problems.append(
                _problem(("steps", index, "properties", *problem.path), problem.message)
            )
            replaced.append(step)
            continue
        replaced.append({**step, "properties": new})
    if problems:
        raise ValidationError.from_exception_data("JobSpec", problems)
    return {**data, "steps": replaced}


def _problem(loc: tuple[str | int, ...], message: str) -> InitErrorDetails:
    return InitErrorDetails(type="value_error", loc=loc, input=None, ctx={"error": message})
