"""The models, the committed JSON Schemas and the example manifests say the same thing."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pydantic import TypeAdapter

from jobrunner.manifests import CATALOGUE, Step, load_manifests, manifest_files, reference
from jobrunner.manifests.reference import STEP_EXAMPLES
from jobrunner.manifests.schema import SCHEMA_FILES, render
from jobrunner.manifests.yamlsource import read_documents

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "jobs.d"
SCHEMAS = ROOT / "schemas"


@pytest.mark.parametrize("name", list(SCHEMA_FILES))
def test_committed_schema_is_what_the_models_generate(name: str) -> None:
    committed = (SCHEMAS / name).read_text(encoding="utf-8")
    assert committed == render(name), f"schemas/{name} is stale: run `make schemas`"


def test_examples_validate_clean() -> None:
    result = load_manifests([EXAMPLES], default_scope="acme")
    assert [str(d) for d in result.diagnostics] == []
    assert len(result.jobs) >= 4


def test_examples_use_every_schedule_type_and_several_step_definitions() -> None:
    result = load_manifests([EXAMPLES], default_scope="acme")
    jobs = [d.manifest for d in result.jobs.values()]
    schedule_types = {s.type for job in jobs for s in job.spec.schedules}
    definitions = {s.definition for job in jobs for s in job.spec.steps}
    assert schedule_types == {"interval", "cron", "device-connect"}
    assert len(definitions) >= 8
    assert any(job.spec.run for job in jobs)


def _documents_with_schema() -> list[tuple[Path, dict[str, Any], Path]]:
    found: list[tuple[Path, dict[str, Any], Path]] = []
    for file in manifest_files([EXAMPLES]):
        text = file.read_text(encoding="utf-8")
        match = re.match(r"# yaml-language-server: \$schema=(\S+)\n", text)
        assert match, f"{file} does not start with a yaml-language-server $schema line"
        # As an editor reads it: relative to the path the file is opened by (jobs.d/...).
        schema = Path(os.path.normpath(file.parent / match.group(1)))
        found.extend((file, doc.data, schema) for doc in read_documents(text))
    return found


@pytest.mark.parametrize(
    ("file", "document", "schema_file"),
    _documents_with_schema(),
    ids=lambda value: value.name if isinstance(value, Path) else "",
)
def test_example_documents_validate_against_their_schema_line(
    file: Path, document: dict[str, Any], schema_file: Path
) -> None:
    assert schema_file.parent == SCHEMAS and schema_file.exists()
    schema = jsonschema.Draft202012Validator(
        __import__("json").loads(schema_file.read_text(encoding="utf-8"))
    )
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in schema.iter_errors(document)]
    assert errors == [], file


def test_schema_rejects_what_the_models_reject() -> None:
    schema = json.loads((SCHEMAS / "job.schema.json").read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    job = {
        "apiVersion": "jobrunner/v1",
        "kind": "Job",
        "metadata": {"name": "x"},
        "spec": {
            "targets": {"all": True},
            "steps": [{"name": "s", "definition": "Bundle Stop", "properties": {"bundleId": 1}}],
        },
    }
    assert validator.is_valid(job)
    job["spec"]["steps"][0]["timout"] = "30s"  # type: ignore[index]
    assert not validator.is_valid(job)


def test_every_catalogue_definition_has_a_schema_entry() -> None:
    text = (SCHEMAS / "job.schema.json").read_text(encoding="utf-8")
    assert len(CATALOGUE) == 13
    for definition in CATALOGUE:
        assert f'"{definition}"' in text


def test_schema_accepts_the_xml_form_where_the_models_do() -> None:
    schema = json.loads((SCHEMAS / "job.schema.json").read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    step = {"name": "c", "definition": "Configuration Put", "properties": {"xml": "<x/>"}}
    job = {
        "apiVersion": "jobrunner/v1",
        "kind": "Job",
        "metadata": {"name": "x"},
        "spec": {"targets": {"all": True}, "steps": [step]},
    }
    assert validator.is_valid(job)
    step["properties"] = {}
    assert not validator.is_valid(job)


def test_manifest_reference_is_what_the_models_generate() -> None:
    committed = (ROOT / "docs" / "manifest-reference.md").read_text(encoding="utf-8")
    assert committed == reference.render(), (
        "docs/manifest-reference.md is stale: run `make schemas`"
    )


@pytest.mark.parametrize("definition", list(CATALOGUE))
def test_each_step_example_of_the_reference_validates(definition: str) -> None:
    (document,) = read_documents(STEP_EXAMPLES[definition])
    (step,) = TypeAdapter(list[Step]).validate_python(document.data)
    assert step.definition == definition


def test_schema_takes_a_reference_where_a_step_property_is_typed() -> None:
    schema = json.loads((SCHEMAS / "job.schema.json").read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    step: dict[str, Any] = {
        "name": "s",
        "definition": "Bundle Stop",
        "properties": {"bundleId": "${device.vars.bundle}"},
    }
    job = {
        "apiVersion": "jobrunner/v1",
        "kind": "Job",
        "metadata": {"name": "x"},
        "spec": {"targets": {"all": True}, "steps": [step]},
    }
    assert validator.is_valid(job)
    step["properties"]["bundleId"] = "forty-two"  # neither a number nor a reference
    assert not validator.is_valid(job)
    step["timeout"] = "${device.vars.timeout}"  # only properties read values
    step["properties"]["bundleId"] = 42
    assert not validator.is_valid(job)


def test_every_key_of_the_reference_says_what_it_means() -> None:
    rows = [line for line in reference.render().splitlines() if line.startswith("| `")]
    keys = [row.split("|") for row in rows if len(row.split("|")) >= 6]  # key, type, default
    assert len(keys) > 150
    silent = [cells[1].strip() for cells in keys if not cells[4].strip()]
    assert silent == [], f"keys without a meaning: {silent}"
