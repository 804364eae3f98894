"""JSON Schema of every manifest kind, generated from the models.

The files in `schemas/` are this module's output, committed so that editors (through the
`# yaml-language-server: $schema=...` line of a manifest) check what `validate` checks; a test
keeps them identical to the models.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter

from jobrunner.manifests.kinds import DeviceList, Job, JobTemplate, Manifest, Policy, Scope
from jobrunner.manifests.notification import Notification
from jobrunner.manifests.steps import STEP_TYPES, properties_of

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_BASE = "https://jobrunner.example/schemas/"

SCHEMA_FILES: dict[str, type[BaseModel] | None] = {
    "scope.schema.json": Scope,
    "device-list.schema.json": DeviceList,
    "job.schema.json": Job,
    "job-template.schema.json": JobTemplate,
    "policy.schema.json": Policy,
    "notification.schema.json": Notification,
    "manifest.schema.json": None,  # any kind: for files that mix kinds
}


REFERENCE = "Reference"
"""The `$defs` entry of a `${...}` reference, allowed wherever a step property is typed."""
_REFERENCE_SCHEMA: dict[str, Any] = {
    "type": "string",
    "pattern": r"\$\{",
    "description": "a ${device.vars.NAME}, ${device.labels.KEY}, ${device.clientId},"
    " ${device.displayName} or ${params.NAME} reference: its value, with its type, per device",
}
_CONSTRAINED = ("pattern", "enum", "const", "format", "minimum", "maximum", "exclusiveMinimum")


def _allow_references(schema: dict[str, Any]) -> dict[str, Any]:
    """Step properties may be written as a reference where a number, a true/false, a choice
    or a pattern is expected (`bundleId: ${device.vars.bundle}`): editors accept what
    `jobrunner validate` does, which then checks each device's value."""
    defs: dict[str, Any] = schema.get("$defs", {})
    todo = [properties_of(step).__name__ for step in STEP_TYPES]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen or name not in defs:
            continue
        seen.add(name)
        todo.extend(_refs(defs[name]))
        for key, value in defs[name].get("properties", {}).items():
            defs[name]["properties"][key] = _loosened(value)
    if seen:
        defs[REFERENCE] = _REFERENCE_SCHEMA
    return schema


def _refs(value: Any) -> list[str]:
    if isinstance(value, dict):
        found = [str(value["$ref"]).rsplit("/", 1)[-1]] if "$ref" in value else []
        return found + [r for v in value.values() for r in _refs(v)]
    if isinstance(value, list):
        return [r for v in value for r in _refs(v)]
    return []


def _loosened(value: Any) -> Any:
    """A property's schema that also takes a reference wherever a string would not do."""
    if not isinstance(value, dict) or "$ref" in value:
        return value
    if "anyOf" in value:
        return {**value, "anyOf": [_loosened(v) for v in value["anyOf"]]}
    if value.get("type") == "array" and "items" in value:
        return {**value, "items": _loosened(value["items"])}
    if value.get("type") == "object" and isinstance(value.get("additionalProperties"), dict):
        return {**value, "additionalProperties": _loosened(value["additionalProperties"])}
    plain_text = value.get("type") == "string" and not any(k in value for k in _CONSTRAINED)
    if plain_text or value.get("type") in ("object", "array", "null") or not value:
        return value
    outer = {k: value[k] for k in ("title", "description", "default") if k in value}
    inner = {k: v for k, v in value.items() if k not in outer}
    return {**outer, "anyOf": [inner, {"$ref": f"#/$defs/{REFERENCE}"}]}


def schema_for(file_name: str) -> dict[str, Any]:
    """The JSON Schema written to `schemas/<file_name>`."""
    model = SCHEMA_FILES[file_name]
    schema = _allow_references(
        model.model_json_schema(by_alias=True)
        if model is not None
        else TypeAdapter(Manifest).json_schema(by_alias=True)
    )
    if model is None:
        schema["title"] = (
            "jobrunner manifest (Scope, DeviceList, Job, JobTemplate, Policy or Notification)"
        )
    return {"$schema": SCHEMA_DIALECT, "$id": SCHEMA_BASE + file_name, **schema}


def render(file_name: str) -> str:
    """The exact text of a schema file (stable key order, trailing newline)."""
    return json.dumps(schema_for(file_name), indent=2, ensure_ascii=False) + "\n"


def write_schemas(folder: Path) -> list[Path]:
    """Write every schema file into `folder`; return the files whose content changed."""
    folder.mkdir(parents=True, exist_ok=True)
    changed = []
    for name in SCHEMA_FILES:
        target = folder / name
        text = render(name)
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")
            changed.append(target)
    return changed


if __name__ == "__main__":  # `make schemas`
    for path in write_schemas(Path(sys.argv[1] if len(sys.argv) > 1 else "schemas")):
        print(f"wrote {path}")
