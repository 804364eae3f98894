"""Per-device values, parameters and labels: every bad input named at its line, with the
device it concerns and what would be right; the other jobs still load."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from jobrunner.manifests import ManifestSet

from .conftest import MINIMAL_JOB, Write, job_with_spec, messages

VALUED = """\
apiVersion: jobrunner/v1
kind: DeviceList
metadata: {scope: acme}
devices:
  - clientId: gw-7
    tags: [valued]
    vars: {ntpServer: 10.0.0.7, bundle: 42}
  - clientId: gw-8
    tags: [valued]
    vars: {ntpServer: 10.0.0.8, bundle: "forty-two"}
"""


def device_list(entry: str) -> str:
    """A DeviceList whose one device is `entry` (device line: 5)."""
    return "apiVersion: jobrunner/v1\nkind: DeviceList\nmetadata: {scope: acme}\ndevices:\n" + entry


def one_step(properties: str, definition: str = "Command Execution", extra: str = "") -> str:
    """A Job over the valued devices with one step (its properties on line 12)."""
    return job_with_spec(
        f"""\
        targets: {{tags: [valued]}}
        {extra}steps:
          - name: only
            definition: {definition}
            properties:
              {properties}
        """
    )


CASES: list[tuple[str, str, int, str]] = [
    (
        "bad-var-name",
        device_list("  - clientId: gw-9\n    vars:\n      ntp-server: 10.0.0.1\n"),
        7,
        "'ntp-server' is not a valid variable name: use 1-63 letters, digits or '_'",
    ),
    (
        "bad-label-key",
        device_list("  - clientId: gw-9\n    labels:\n      'site name': turin\n"),
        7,
        "'site name' is not a valid label key",
    ),
    (
        "reserved-label",
        device_list("  - clientId: gw-9\n    labels:\n      kura.version: '5.4'\n"),
        6,
        "label 'kura.version' uses the reserved prefix 'kura.'",
    ),
    (
        "bad-label-value",
        device_list("  - clientId: gw-9\n    labels:\n      site: 'turin north'\n"),
        7,
        "'turin north' is not a valid label value",
    ),
    (
        "unknown-reference",
        one_step('command: "ping ${device.var.ntpServer}"'),
        12,
        "${device.var.ntpServer} is not a reference jobrunner knows; write one of"
        " ${device.clientId}",
    ),
    (
        "unclosed-reference",
        one_step('command: "ping ${device.vars.ntpServer"'),
        12,
        "'${' at character 6 has no closing '}'; write ${device.vars.NAME}, or $${",
    ),
    (
        "var-no-target-has",
        one_step('command: "ping ${device.vars.ntpSever}"'),
        12,
        "step 'only' properties.command: ${device.vars.ntpSever}: device gw-7 has no var"
        " 'ntpSever'; did you mean 'ntpServer'?",
    ),
    (
        "label-no-target-has",
        one_step('command: "echo ${device.labels.site}"'),
        12,
        "${device.labels.site}: device gw-7 has no label 'site'; it has no labels",
    ),
    (
        "display-name-missing",
        one_step('command: "echo ${device.displayName}"'),
        12,
        "${device.displayName}: device gw-7 has no displayName",
    ),
    (
        "value-of-the-wrong-type",
        one_step('bundleId: "${device.vars.bundle}"', definition="Bundle Stop"),
        12,
        "step 'only' properties.bundleId: device gw-8 (${device.vars.bundle}): expected a"
        " whole number, found the text 'forty-two'",
    ),
    (
        "unknown-parameter",
        one_step(
            'command: "ping ${params.servr}"', extra="parameters: {server: 10.0.0.1}\n        "
        ),
        13,
        "${params.servr}: no parameter 'servr'; did you mean 'server'?",
    ),
    (
        "parameter-without-value",
        one_step('command: "ping ${params.server}"', extra="parameters: {server: null}\n        "),
        8,
        "parameter 'server' has no value (null); give it one",
    ),
    (
        "mapping-inside-text",
        one_step(
            'command: "ping ${params.server}"',
            extra="parameters: {server: {a: 1}}\n        ",
        ),
        13,
        "${params.server} is a mapping, which cannot stand inside text; write the reference"
        " alone as the whole value",
    ),
]


@pytest.mark.parametrize(
    ("text", "line", "expected"),
    [pytest.param(text, line, expected, id=case) for case, text, line, expected in CASES],
)
def test_bad_value_is_reported_with_file_line_and_hint(
    write: Write, load: Callable[[], ManifestSet], text: str, line: int, expected: str
) -> None:
    write("valued.yaml", VALUED)
    bad = write("bad.yaml", text)
    write("good.yaml", MINIMAL_JOB.format(name="still-loads"))

    result = load()

    found = messages(result, bad)
    assert any(expected in message for _, message in found), found
    assert line in [at for at, message in found if expected in message], found
    assert ("acme", "still-loads") in result.jobs, "a bad file must not stop the others"
    assert "gw-7" in result.devices["acme"], "the valid DeviceList still loads"


TEMPLATE = """\
apiVersion: jobrunner/v1
kind: JobTemplate
metadata: {name: ntp-site, scope: acme}
spec:
  parameters:
    refresh: 3600
    provider: null
  steps:
    - name: clock
      definition: Configuration Put
      properties:
        configurations:
          - pid: org.eclipse.kura.clock.ClockService
            properties:
              clock.ntp.host: ${device.vars.ntpServer}
              clock.ntp.refresh-interval: ${params.refresh}
              clock.provider: ${params.provider}
"""


def templated(lines: str, name: str = "from-template") -> str:
    """A Job naming a template; its spec body is `lines` (from line 7)."""
    return job_with_spec(f"targets: {{tags: [valued]}}\n{lines}", name=name)


TEMPLATE_CASES: list[tuple[str, str, str, int, str]] = [
    (
        "unknown-template",
        templated("template: ntp-sit\nparameters: {provider: java-ntp}\n"),
        "bad.yaml",
        8,
        "template 'ntp-sit' is not declared in scope 'acme'; did you mean 'ntp-site'?",
    ),
    (
        "unknown-parameter",
        templated("template: ntp-site\nparameters: {provider: java-ntp, refrsh: 60}\n"),
        "bad.yaml",
        9,
        "template 'ntp-site' has no parameter 'refrsh'; did you mean 'refresh'?",
    ),
    (
        "missing-parameter",
        templated("template: ntp-site\nparameters: {refresh: 60}\n"),
        "bad.yaml",
        9,
        "template 'ntp-site' needs parameter 'provider' (it has no default): give it under"
        " spec.parameters",
    ),
    (
        "steps-and-template",
        templated(
            "template: ntp-site\nparameters: {provider: java-ntp}\n"
            "steps: [{name: a, definition: Bundle Stop, properties: {bundleId: 1}}]\n"
        ),
        "bad.yaml",
        10,
        "a job that names a template takes its steps from it",
    ),
    (
        "var-a-target-of-the-job-lacks",
        job_with_spec(
            "targets: {devices: [gw-1]}\ntemplate: ntp-site\nparameters: {provider: java-ntp}\n",
            name="from-template",
        ),
        "templates.yaml",
        15,
        "job 'from-template': step 'clock' properties.configurations[0].properties.clock.ntp.host:"
        " ${device.vars.ntpServer}: device gw-1 has no var 'ntpServer'; it has no vars",
    ),
    (
        "value-of-the-wrong-type",
        templated("template: ntp-site\nparameters: {provider: {type: Strin, value: x}}\n"),
        "templates.yaml",
        17,
        "job 'from-template': expected 'String', 'Long',",
    ),
]


@pytest.mark.parametrize(
    ("text", "where", "line", "expected"),
    [pytest.param(*case[1:], id=case[0]) for case in TEMPLATE_CASES],
)
def test_bad_use_of_a_template_is_reported_at_its_line(
    write: Write,
    load: Callable[[], ManifestSet],
    text: str,
    where: str,
    line: int,
    expected: str,
) -> None:
    write("valued.yaml", VALUED)
    write("templates.yaml", TEMPLATE)
    write("bad.yaml", text)
    write("good.yaml", templated("template: ntp-site\nparameters: {provider: java-ntp}\n", "ok"))

    result = load()

    found = messages(result, _path(result, where))
    assert any(expected in message for _, message in found), found
    assert line in [at for at, message in found if expected in message], found
    assert ("acme", "ok") in result.jobs, "a job using the same template still loads"
    assert any(r.name == "from-template" for r in result.rejected), "rejected, not removed"


def _path(result: ManifestSet, name: str) -> Path:
    return next(f for f in result.files if f.name == name)


def test_a_job_made_from_a_template_has_its_steps_with_the_values_put_in(
    write: Write, load: Callable[[], ManifestSet]
) -> None:
    write("valued.yaml", VALUED)
    write("templates.yaml", TEMPLATE)
    write("job.yaml", templated("template: ntp-site\nparameters: {provider: java-ntp}\n", "ok"))

    result = load()

    assert not result.errors, result.errors
    (step,) = result.jobs[("acme", "ok")].manifest.spec.steps
    written = step.model_dump(mode="json", by_alias=True)
    properties = written["properties"]["configurations"][0]["properties"]
    assert properties == {
        "clock.ntp.host": "${device.vars.ntpServer}",  # per device, when the targets freeze
        "clock.ntp.refresh-interval": 3600,  # the template's default, typed
        "clock.provider": "java-ntp",
    }
