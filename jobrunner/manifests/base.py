"""The base of every manifest model."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

API_VERSION = "jobrunner/v1"


class Strict(BaseModel):
    """Unknown keys are errors, YAML types are taken as written, keys are camelCase.

    Python code uses snake_case attributes; the manifest language (and JSON Schema) uses
    the camelCase aliases, as the device cloud's own job definitions do.
    """

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=False,
        validate_default=False,
        field_title_generator=lambda name, info: info.alias or name,
    )
