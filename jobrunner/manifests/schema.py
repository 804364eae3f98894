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


def schema_for(file_name: str) -> dict[str, Any]:
    """The JSON Schema written to `schemas/<file_name>`."""
    model = SCHEMA_FILES[file_name]
    schema = (
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
