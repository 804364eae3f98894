"""Steps whose properties name per-device values: written once, made concrete per target.

A step whose properties hold `${` (a reference, or an escaped `$${`) is read as a
`StepTemplate`: everything that can be checked without a device is checked when the
manifest is read (the step's keys, its timeouts, every property no reference stands in);
the properties that hold references are checked for each target, once its values are known
(`render`). A step without `${` is the step model itself, and costs nothing more.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import (
    Field,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    TypeAdapter,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapSerializer,
    WrapValidator,
    model_serializer,
)
from pydantic_core import InitErrorDetails

from jobrunner.manifests.errors import data_path
from jobrunner.manifests.fields import Duration, parse_duration
from jobrunner.manifests.steps import (
    CATALOGUE,
    DEFAULT_COMPLETION_TIMEOUT,
    DEFAULT_TIMEOUT,
    Step,
    StepBase,
    StepMode,
)
from jobrunner.manifests.values import (
    DataPath,
    Lookup,
    Reference,
    UnresolvedReferenceError,
    holds_references,
    references,
    substitute,
    table_lookup,
)


class StepTemplate(StepBase):
    """A step with `${...}` in its properties: `render` makes the concrete step of a target."""

    definition: str
    properties: dict[str, Any] = Field(description="as written, references included")
    completion_timeout: Duration | None = None
    _written: dict[str, Any] = PrivateAttr(default_factory=dict)

    @property
    def written(self) -> dict[str, Any]:
        """The step as written (parameters replaced): what is frozen and rendered."""
        return self._written

    @property
    def asynchronous(self) -> bool:
        return CATALOGUE[self.definition].mode is StepMode.ASYNC

    def references(self) -> list[tuple[DataPath, Reference]]:
        """Every reference of its properties, with its path below `properties`."""
        return list(references(self.properties))

    @model_serializer(mode="plain")
    def _as_written(self) -> dict[str, Any]:
        return dict(self._written)

    @classmethod
    def of(cls, written: dict[str, Any]) -> StepTemplate:
        """The template of a step as written (already checked by `_template_or_step`)."""
        definition = written["definition"]
        asynchronous = CATALOGUE[definition].mode is StepMode.ASYNC
        completion = written.get("completionTimeout")
        template = cls.model_validate(
            {
                "name": written["name"],
                "description": written.get("description"),
                "timeout": parse_duration(written.get("timeout", DEFAULT_TIMEOUT)),
                "definition": definition,
                "properties": written["properties"],
                "completionTimeout": (
                    parse_duration(completion or DEFAULT_COMPLETION_TIMEOUT)
                    if asynchronous
                    else None
                ),
            }
        )
        template._written = dict(written)
        return template


def _template_or_step(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    if isinstance(value, StepTemplate):
        return value
    properties = value.get("properties") if isinstance(value, dict) else None
    if not holds_references(properties):
        return handler(value)
    try:
        paths = {("properties", *path) for path, _ in references(properties)}
    except UnresolvedReferenceError as problem:
        raise _error(("properties", *problem.path), problem.message, value) from None
    try:
        handler(value)
    except ValidationError as error:
        kept = [d for d in error.errors(include_url=False) if not _templated(d, paths, value)]
        if kept:
            raise ValidationError.from_exception_data(
                error.title,
                [
                    InitErrorDetails(type=d["type"], loc=d["loc"], input=d["input"], ctx=d["ctx"])
                    if "ctx" in d
                    else InitErrorDetails(type=d["type"], loc=d["loc"], input=d["input"])
                    for d in kept
                ],
            ) from None
    return StepTemplate.of(value)


def _dump_template_or_step(value: Any, handler: SerializerFunctionWrapHandler) -> Any:
    return dict(value.written) if isinstance(value, StepTemplate) else handler(value)


def _templated(detail: Any, paths: set[DataPath], value: dict[str, Any]) -> bool:
    """Whether an error of the step as written is about a property a reference stands in,
    or about what holds one: checked per target, with the values, instead."""
    loc = tuple(detail["loc"])
    step_type = CATALOGUE.get(value.get("definition"))  # type: ignore[arg-type]
    if loc[:1] == (value.get("definition"),) and step_type is not None:
        loc = data_path(step_type, value, loc[1:])  # union members' names left out
    # At or below a reference, or above one: a union's other members, a model's own check
    # (a channel's value against its type). A key missing or unknown is never either.
    return any(loc[: len(path)] == path or path[: len(loc)] == loc for path in paths)


def _error(path: DataPath, message: str, value: Any) -> ValidationError:
    return ValidationError.from_exception_data(
        "Step",
        [InitErrorDetails(type="value_error", loc=path, input=value, ctx={"error": message})],
    )


if TYPE_CHECKING:
    StepOrTemplate = Step | StepTemplate
else:  # the step's own schema and errors; the wrap makes a template of a step with ${
    StepOrTemplate = Annotated[
        Step, WrapValidator(_template_or_step), WrapSerializer(_dump_template_or_step)
    ]
"""A step as a job holds it: the step model, or a `StepTemplate` when it names values."""

_STEPS: TypeAdapter[list[StepBase]] = TypeAdapter(list[StepOrTemplate])  # type: ignore[arg-type]
_CONCRETE: TypeAdapter[StepBase] = TypeAdapter(Step)


def load_steps(recorded: list[dict[str, Any]]) -> list[StepBase]:
    """Recorded steps validated again; pydantic's ValidationError when they do not validate.

    Whatever validates in a manifest loads back from `dump_steps` identically (a property
    test holds it to that for every definition and form), a step with `${` in its
    properties as the `StepTemplate` it was."""
    return _STEPS.validate_python(recorded)


def render(template: StepTemplate, lookup: Lookup) -> StepBase:
    """The concrete step of one target: every reference replaced through `lookup`, `$${`
    turned into `${`, the properties checked as the step model checks them.

    UnresolvedReferenceError (its path below `properties`) when a reference has no value;
    ValidationError (locations from the step) when a value does not fit its property."""
    written = dict(template.written)
    written["properties"] = substitute(template.properties, lookup)
    return _CONCRETE.validate_python(written)


def render_values(template: StepTemplate, values: Mapping[str, Any]) -> StepBase:
    """`render` from the values recorded for a target (by reference text)."""
    return render(template, table_lookup(values))
