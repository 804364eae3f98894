"""Whatever validates, freezes and loads back the same: every step definition, every form.

The first execution of a job records its steps (`dump_steps`) in `job.json`; every later
load validates them again (`load_steps`). A step that validates in a manifest but not from
its own record bricks the job, so this is a property over every value the models accept:
steps written from the JSON Schemas (all 13 definitions, every optional field), and the XML
forms of Configuration Put (Kura's esf:configurations, the device cloud's configurations)
and Asset Write (deviceAssets), and every step with some of its values read from the device
(`${device.vars.NAME}`), which must also render back into the step it was made from.
"""

from __future__ import annotations

import json
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from jobrunner.device.operations.configuration import build_configurations, property_values
from jobrunner.engine.planning.spec import dump_steps, spec_digest
from jobrunner.errors import OperationError
from jobrunner.manifests import Job
from jobrunner.manifests.steps import (
    CATALOGUE,
    AssetWrite,
    ConfigurationPut,
    Step,
    StepBase,
)
from jobrunner.manifests.steptemplates import StepTemplate, load_steps, render
from jobrunner.manifests.values import DeviceValues

from .schema_strategies import from_schema, load

JOB_SCHEMA = load("job")
DEFS: dict[str, Any] = JOB_SCHEMA["$defs"]
STEP = TypeAdapter(Step)
RELAXED = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow],
)


def _job(step: dict[str, Any], parameters: dict[str, Any] | None = None) -> Job:
    spec: dict[str, Any] = {"targets": {"devices": ["gw-0001"]}, "steps": [step]}
    if parameters:
        spec["parameters"] = parameters
    return Job.model_validate(
        {
            "apiVersion": "jobrunner/v1",
            "kind": "Job",
            "metadata": {"name": "roundtrip", "scope": "acme"},
            "spec": spec,
        }
    )


def _valid_step(raw: dict[str, Any]) -> Job:
    try:
        return _job(raw)
    except ValidationError:
        assume(False)
        raise  # unreachable: assume(False) ends the example


def assert_freezes_and_reloads(job: Job) -> None:
    """The freeze path of a first execution, through JSON on disk, and back."""
    recorded = json.loads(json.dumps(dump_steps(job)))
    reloaded = load_steps(recorded)
    assert reloaded == list(job.spec.steps)
    again = [s.model_dump(mode="json", by_alias=True, exclude_none=True) for s in reloaded]
    assert again == recorded  # frozen twice, recorded alike: the digest cannot drift
    assert spec_digest(job) == spec_digest(_job(recorded[0]))


@pytest.mark.parametrize("definition", sorted(CATALOGUE))
def test_every_step_definition_that_validates_reloads_from_its_record(definition: str) -> None:
    schema = DEFS[CATALOGUE[definition].__name__]

    @RELAXED
    @given(from_schema(schema, DEFS))
    def check(raw: dict[str, Any]) -> None:
        assert_freezes_and_reloads(_valid_step(raw))

    check()


# --- the XML forms ---------------------------------------------------------------------------


def _structured(name: str) -> st.SearchStrategy[Any]:
    model: type[ConfigurationPut] | type[AssetWrite] = (
        ConfigurationPut if name == "ConfigurationPut" else AssetWrite
    )
    schema = {k: v for k, v in DEFS[name].items() if k != "oneOf"}
    key = "configurations" if model is ConfigurationPut else "assets"
    schema["required"] = [key]
    schema["properties"] = {key: schema["properties"][key]}

    def valid(raw: dict[str, Any]) -> Any:
        try:
            return model.model_validate(raw)
        except ValidationError:
            return None

    return from_schema(schema, DEFS).map(valid).filter(lambda m: m is not None)


def _cloud_configurations(put: ConfigurationPut) -> str:
    """The device cloud's <configurations> document of a structured Configuration Put."""
    out = ["<configurations>"]
    for component in put.configurations:
        out.append(f"<configuration><id>{escape(component.pid)}</id><properties>")
        for name, value in component.properties.items():
            kind, values, array = property_values(name, value)
            out.append(
                f"<property name={quoteattr(name)} array={quoteattr(str(array).lower())}"
                f' encrypted="false" type={quoteattr(kind)}>'
            )
            out.extend(f"<value>{escape(v)}</value>" for v in values)
            out.append("</property>")
        out.append("</properties></configuration>")
    return "".join([*out, "</configurations>"])


_VALUE_TYPES = {
    "STRING": "string",
    "INTEGER": "integer",
    "LONG": "long",
    "FLOAT": "float",
    "DOUBLE": "double",
    "BOOLEAN": "boolean",
    "BYTE_ARRAY": "binary",
}


def _device_assets(write: AssetWrite) -> str:
    out = ["<deviceAssets>"]
    for asset in write.assets:
        out.append(f"<deviceAsset><name>{escape(asset.name)}</name><channels>")
        for channel in asset.channels:
            value = channel.value
            text = str(value).lower() if isinstance(value, bool) else repr(value)
            text = value if isinstance(value, str) else text
            out.append(
                f"<channel><name>{escape(channel.name)}</name>"
                f"<valueType>{_VALUE_TYPES[channel.type]}</valueType>"
                f"<value>{escape(text)}</value></channel>"
            )
        out.append("</channels></deviceAsset>")
    return "".join([*out, "</deviceAssets>"])


def _xml_step(definition: str, xml: str) -> dict[str, Any]:
    return {"name": "from-xml", "definition": definition, "properties": {"xml": xml}}


@RELAXED
@given(_structured("ConfigurationPut"), st.sampled_from(["esf", "cloud"]))
def test_configuration_put_written_as_xml_reloads_from_its_record(
    put: ConfigurationPut, form: str
) -> None:
    try:
        xml = build_configurations(put) if form == "esf" else _cloud_configurations(put)
    except OperationError:
        assume(False)  # a value XML cannot carry (the step refuses it at dispatch)
        return
    assert_freezes_and_reloads(_valid_step(_xml_step("Configuration Put", xml)))


@RELAXED
@given(_structured("AssetWrite"))
def test_asset_write_written_as_xml_reloads_from_its_record(write: AssetWrite) -> None:
    assert_freezes_and_reloads(_valid_step(_xml_step("Asset Write", _device_assets(write))))


def test_the_xml_form_is_recorded_as_written() -> None:
    """What is frozen is the manifest's own form: the XML, not both forms at once."""
    xml = (
        '<esf:configurations xmlns:esf="http://eurotech.com/esf/2.0">'
        '<esf:configuration pid="org.eclipse.kura.clock.ClockService"><esf:properties>'
        '<esf:property name="enabled" array="false" encrypted="false" type="Boolean">'
        "<esf:value>true</esf:value></esf:property></esf:properties></esf:configuration>"
        "</esf:configurations>"
    )
    (recorded,) = dump_steps(_job(_xml_step("Configuration Put", xml)))
    assert recorded["properties"] == {"xml": xml}
    (step,) = load_steps([recorded])
    assert isinstance(step, StepBase)
    assert step.properties.configurations[0].pid == "org.eclipse.kura.clock.ClockService"  # type: ignore[attr-defined]


# --- per-device values -------------------------------------------------------------------------


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], Any]]:
    """Every scalar of a step's properties, with its path."""
    if isinstance(value, dict):
        return [leaf for k, v in value.items() for leaf in _leaves(v, (*path, k))]
    if isinstance(value, list):
        return [leaf for i, v in enumerate(value) for leaf in _leaves(v, (*path, i))]
    return [(path, value)]


def _put(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: _put(value[head], rest, new)}
    return [_put(v, rest, new) if i == head else v for i, v in enumerate(value)]


@st.composite
def _templated(draw: st.DrawFn, definition: str) -> tuple[Job, Job, dict[str, Any]]:
    """A valid step, and the same step with some of its values read from the device's vars
    or the job's parameters (whole values keep their type; text may be split around a
    reference, `$${` kept)."""
    schema = DEFS[CATALOGUE[definition].__name__]
    raw = draw(from_schema(schema, DEFS))
    plain = _valid_step(raw)
    assume(not isinstance(plain.spec.steps[0], StepTemplate))  # drawn text with a ${ in it
    written = plain.spec.steps[0].model_dump(mode="json", by_alias=True, exclude_none=True)
    leaves = [
        (p, v)
        for p, v in _leaves(written["properties"])
        if v is not None and not (isinstance(v, str) and "$" in v) and "xml" not in p
    ]
    assume(leaves)
    chosen = draw(st.lists(st.sampled_from(leaves), min_size=1, max_size=3, unique_by=str))
    properties = written["properties"]
    values: dict[str, Any] = {}
    parameters: dict[str, Any] = {}
    for number, (path, value) in enumerate(chosen):
        var = f"v{number}"
        from_device = draw(st.booleans())
        reference = ("${device.vars." if from_device else "${params.") + var + "}"
        given = values if from_device else parameters
        if isinstance(value, str) and value and draw(st.booleans()):
            cut = draw(st.integers(0, len(value)))
            given[var] = value[cut:]
            text = value[:cut].replace("${", "$${") + reference
        else:
            given[var] = value
            text = reference
        properties = _put(properties, path, text)
    return plain, _job({**written, "properties": properties}, parameters), values


@pytest.mark.parametrize("definition", sorted(CATALOGUE))
def test_a_step_that_reads_values_and_parameters_freezes_reloads_and_renders_back(
    definition: str,
) -> None:
    @settings(RELAXED, max_examples=15)
    @given(_templated(definition))
    def check(case: tuple[Job, Job, dict[str, Any]]) -> None:
        plain, templated, values = case
        assert_freezes_and_reloads(templated)
        (step,) = templated.spec.steps
        if not values:  # parameters only: put in when read, the step is the plain one
            assert step == plain.spec.steps[0]
            return
        assert isinstance(step, StepTemplate)
        device = DeviceValues("gw-0001", vars=values)
        assert render(step, device.lookup) == plain.spec.steps[0]

    check()
