"""Substitution of `${...}` references: types kept, `$${` literal, errors at their path."""

from __future__ import annotations

from typing import Any

import pytest

from jobrunner.manifests.steps import BundleStopStep, ConfigurationPutStep
from jobrunner.manifests.steptemplates import StepTemplate, load_steps, render
from jobrunner.manifests.values import (
    DeviceValues,
    Reference,
    UnresolvedReferenceError,
    substitute,
)

DEVICE = DeviceValues(
    "gw-1", "Line 3 A", {"site": "turin"}, {"bundle": 42, "ntp": "10.0.0.1", "on": True}
)


def lookup(reference: Reference) -> Any:
    return DEVICE.lookup(reference)


def test_a_whole_value_keeps_its_type() -> None:
    assert substitute("${device.vars.bundle}", lookup) == 42
    assert substitute("${device.vars.on}", lookup) is True


def test_a_reference_inside_text_is_written_into_it() -> None:
    written = (
        "gw ${device.clientId} (${device.displayName}) at ${device.labels.site}:"
        " ${device.vars.bundle} ${device.vars.on}"
    )
    assert substitute(written, lookup) == "gw gw-1 (Line 3 A) at turin: 42 true"


def test_double_dollar_writes_a_literal_reference() -> None:
    assert substitute("echo $${HOME} ${device.clientId}", lookup) == "echo ${HOME} gw-1"
    assert substitute("$${device.clientId}", lookup) == "${device.clientId}"


def test_substituting_only_parameters_leaves_a_template() -> None:
    params = {"p": "a${b", "n": 5}

    def look(reference: Reference) -> Any:
        return params[reference.name]

    kept = substitute(
        {"x": "${params.p}-${device.clientId} $${lit}", "n": "${params.n}"},
        look,
        frozenset({"params"}),
    )

    assert kept == {"x": "a$${b-${device.clientId} $${lit}", "n": 5}
    assert substitute(kept, lookup) == {"x": "a${b-gw-1 ${lit}", "n": 5}


def test_an_unresolved_reference_names_its_path_and_the_device() -> None:
    with pytest.raises(UnresolvedReferenceError) as caught:
        substitute({"a": [{"b": "${device.vars.ntpp}"}]}, lookup)

    assert caught.value.path == ("a", 0, "b")
    assert "device gw-1 has no var 'ntpp'; did you mean 'ntp'?" in caught.value.message


def test_a_typed_property_is_typed_after_rendering() -> None:
    (template,) = load_steps(
        [
            {
                "name": "stop",
                "definition": "Bundle Stop",
                "properties": {"bundleId": "${device.vars.bundle}"},
            }
        ]
    )
    assert isinstance(template, StepTemplate)

    step = render(template, lookup)

    assert isinstance(step, BundleStopStep)
    assert step.properties.bundle_id == 42


def test_a_configuration_put_gets_each_device_its_own_values() -> None:
    written = {
        "name": "ntp",
        "definition": "Configuration Put",
        "properties": {
            "configurations": [
                {
                    "pid": "org.eclipse.kura.clock.ClockService",
                    "properties": {
                        "clock.ntp.host": "${device.vars.ntp}",
                        "clock.ntp.port": 123,
                    },
                }
            ]
        },
    }
    (template,) = load_steps([written])
    assert isinstance(template, StepTemplate)
    other = DeviceValues("gw-2", vars={"ntp": "10.0.0.2"})

    mine = render(template, lookup)
    theirs = render(template, other.lookup)

    assert isinstance(mine, ConfigurationPutStep) and isinstance(theirs, ConfigurationPutStep)
    assert mine.properties.configurations[0].properties["clock.ntp.host"] == "10.0.0.1"
    assert theirs.properties.configurations[0].properties["clock.ntp.host"] == "10.0.0.2"
    assert template.model_dump(mode="json", by_alias=True, exclude_none=True) == written


def test_a_step_without_references_is_the_step_model_itself() -> None:
    (step,) = load_steps(
        [{"name": "stop", "definition": "Bundle Stop", "properties": {"bundleId": 1}}]
    )
    assert type(step) is BundleStopStep
