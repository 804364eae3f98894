"""The manifest reference (docs/manifest-reference.md), generated from the models.

Every key, its type, whether it is required, its default and its description come from the
pydantic models themselves, and each step definition's example is validated by a test, so the
reference cannot drift from what `jobrunner validate` accepts. `make schemas` rewrites it.
"""

from __future__ import annotations

import sys
import types
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from jobrunner.manifests.kinds import (
    Device,
    DeviceList,
    DeviceListMetadata,
    Job,
    JobMetadata,
    JobSpec,
    JobTemplate,
    JobTemplateSpec,
    Policy,
    PolicyMetadata,
    PolicySpec,
    RunStart,
    Scope,
    ScopeMetadata,
    ScopeSpec,
    Targets,
)
from jobrunner.manifests.notification import (
    Header,
    Notification,
    NotificationMetadata,
    NotificationSpec,
)
from jobrunner.manifests.rollout import Abort, Ramp, Retry, Rollout, Wave, Window
from jobrunner.manifests.schedules import CronSchedule, DeviceConnectSchedule, IntervalSchedule
from jobrunner.manifests.steps import CATALOGUE, AsyncStepBase, StepBase

STEP_EXAMPLES: dict[str, str] = {
    "Activity Submit": """\
- name: run-playbook
  definition: Activity Submit
  completionTimeout: 30m
  properties:
    activityUri: https://repo.example.com/playbooks/rotate-logs.zip
    fileHash: SHA256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
    resourceProperties: {retention: 7d}
""",
    "Asset Write": """\
- name: cold-room-threshold
  definition: Asset Write
  properties:
    assets:
      - name: cold-room-controller
        channels:
          - {name: alarm-threshold, type: DOUBLE, value: -18.0}
          - {name: alarm-enabled, type: BOOLEAN, value: true}
""",
    "Bundle Start": """\
- {name: start-driver, definition: Bundle Start, properties: {bundleId: 42}}
""",
    "Bundle Stop": """\
- {name: stop-driver, definition: Bundle Stop, timeout: 15s, properties: {bundleId: 42}}
""",
    "Command Execution": """\
- name: disk-usage
  definition: Command Execution
  timeout: 1m
  properties:
    command: df
    arguments: [-h, /opt/eclipse]
    environment: {LC_ALL: C}
    workingDirectory: /tmp
    commandTimeout: 30s
""",
    "Configuration Put": """\
- name: publisher-rate
  definition: Configuration Put
  rollback: onFailure    # snapshot first; roll back if this step or a later one fails
  verify: true           # read it back once Kura applied it
  properties:
    configurations:
      - pid: org.eclipse.kura.cloud.publisher.CloudPublisher-warehouse
        properties:
          publish.interval: 300                    # Integer
          publish.qos: {type: Integer, value: 1}   # the Kura type written out
          app.topic: warehouse/telemetry           # String
""",
    "Device Certificate Management Install": """\
- name: install-device-certificate
  definition: Device Certificate Management Install
  properties:
    alias: device-2027
    certificate: |
      -----BEGIN CERTIFICATE-----
      MIIBszCCAVmgAwIBAgIUFQmL3m2cPjE8l4c8dQv3w1m5p6owCgYIKoZIzj0EAwIw
      -----END CERTIFICATE-----
""",
    "Device Certificate Management Revoke": """\
- {name: revoke-old, definition: Device Certificate Management Revoke,
   properties: {alias: device-2026}}
""",
    "Keystore Certificate Create": """\
- name: trust-new-ca
  definition: Keystore Certificate Create
  properties:
    keystoreId: SSLKeystore
    alias: broker-ca-2027
    certificate: |
      -----BEGIN CERTIFICATE-----
      MIIBszCCAVmgAwIBAgIUFQmL3m2cPjE8l4c8dQv3w1m5p6owCgYIKoZIzj0EAwIw
      -----END CERTIFICATE-----
""",
    "Keystore Item Delete": """\
- {name: drop-old-ca, definition: Keystore Item Delete,
   properties: {keystoreId: SSLKeystore, alias: broker-ca-2026}}
""",
    "Keystore Keypair Create": """\
- name: client-keypair
  definition: Keystore Keypair Create
  properties: {keystoreId: SSLKeystore, alias: mqtt-client-2027, algorithm: EC, size: 256,
               signatureAlgorithm: SHA256withECDSA, attributes: "CN=gw-0001,O=ACME,C=IT"}
""",
    "Package Download / Install": """\
- name: install-driver
  definition: Package Download / Install
  timeout: 30s
  completionTimeout: 1h
  verify: true           # once installed, GET packages must list it with this version
  properties:
    uri: https://repo.example.com/kura/org.eclipse.kura.driver.modbus-1.2.0.dp
    name: org.eclipse.kura.driver.modbus
    version: 1.2.0
    fileHash: MD5:8c7dd922ad47494fc02c388e12c00eac
""",
    "Package Uninstall": """\
- name: remove-agent-2.3
  definition: Package Uninstall
  completionTimeout: 10m
  properties: {name: com.acme.monitoring.agent, version: 2.3.1}
""",
}


STRUCTURE = {
    "apiVersion": "the manifest language's version: jobrunner/v1",
    "kind": "what the document declares",
    "metadata": "its name, scope and description",
    "spec": "what it declares",
}
"""The meaning of the keys every kind has (their models do not repeat it)."""


def _type_name(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is Annotated:
        return _type_name(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        names = [_type_name(a) for a in get_args(annotation) if a is not type(None)]
        return " or ".join(dict.fromkeys(names))
    if origin is Literal:
        return " \\| ".join(f"`{v}`" for v in get_args(annotation))
    if origin is list:
        return f"list of {_type_name(get_args(annotation)[0])}"
    if origin is dict:
        return f"map of {_type_name(get_args(annotation)[1])}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"[{annotation.__name__}](#{annotation.__name__.lower()})"
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return " \\| ".join(f"`{member.value}`" for member in annotation)
    name = getattr(annotation, "__name__", str(annotation))
    return {
        "str": "text",
        "int": "integer",
        "float": "number",
        "bool": "true/false",
        "timedelta": "duration",
        "datetime": "time",
    }.get(name, name)


def _default(info: FieldInfo) -> str:
    if info.is_required():
        return "required"
    extra = info.json_schema_extra
    if isinstance(extra, dict) and "default" in extra:
        return f"`{extra['default']}`"
    if info.default_factory is not None:
        return "empty"
    default = info.default
    if default is None:
        return "-"
    if isinstance(default, BaseModel):
        return "its defaults"
    value = getattr(default, "value", default)
    return f"`{str(value).lower() if isinstance(value, bool) else value}`"


def _table(model: type[BaseModel], skip: tuple[str, ...] = ()) -> list[str]:
    lines = ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
    for name, info in model.model_fields.items():
        key = info.alias or name
        if key in skip:
            continue
        meaning = (info.description or STRUCTURE.get(key, "")).replace("|", "\\|")
        lines.append(f"| `{key}` | {_type_name(info.annotation)} | {_default(info)} | {meaning} |")
    return lines


def _section(title: str, model: type[BaseModel], skip: tuple[str, ...] = ()) -> list[str]:
    doc = (model.__doc__ or "").strip().splitlines()
    intro = [doc[0], ""] if doc and not doc[0].startswith("Usage docs") else []
    return [f"### {title}", "", *intro, *_table(model, skip), ""]


SELECTORS = """\
### Label selectors

`targets.selector` chooses devices by their DeviceList `labels` and by what they reported in
their BIRTH, in kubectl's syntax: terms separated by `,`, all of which must hold.

| term | holds when |
| --- | --- |
| `site=turin`, `site==turin` | the label is `turin` |
| `site!=turin` | the label is not `turin`, or the device has no such label |
| `line in (3,4)` | the label is one of them |
| `line notin (3,4)` | the label is none of them, or absent |
| `legacy` / `!legacy` | the device has the label / has not |
| `kura.version>=5.4` (also `>`, `<=`, `<`) | the value is a version at least 5.4 (a label too) |

Reserved keys, from the device's last BIRTH (a DeviceList label may not start with `kura.`):
`kura.model` (`model_id`, e.g. `RPI-3B`), `kura.firmware` (`firmware_version`),
`kura.version` (`kura_version`, or the ESF version of a device that reports none, without
its `KURA_` / `ESF_` prefix: `5.4.1`), and
`kura.app`, one value per application id (`kura.app=KEYS-V1` holds for a device that lists
KEYS-V1 among its applications; `kura.app!=KEYS-V1` for one that does not).

Versions compare by the first number in the value with its dotted parts (`fw-5.4.1` is
5.4.1), part by part as whole numbers (5.10 is after 5.4), a missing part counting as 0
(5.4 = 5.4.0); with equal numbers, a value with something after its number comes first
(`7.3.0-SNAPSHOT` < `7.3.0`), and two such suffixes compare as text. A value without a
number is not a version: the term does not hold. A selector value is letters, digits, `-`,
`_`, `.` and `+`; an empty value is refused.

The selector is unioned with `devices`, `tags` and `all`, resolved against the devices
known when the first execution starts, and frozen with them: a device that reports other
facts later does not change the targets, and a change of the selector in git is a
conflict. `jobrunner plan -v` shows who matches and, for the first devices that do not, the
first term each fails (`gw-0003: kura.version 4.1.0 < 5.4`); `jobrunner devices -l
SELECTOR` lists the devices it matches now.

"""


def render() -> str:
    """The whole reference, as written to docs/manifest-reference.md."""
    out = [
        "# Manifest reference",
        "",
        "Generated from the models by `make schemas` (a test keeps it current); every key is",
        "written in camelCase, unknown keys are errors. Durations: `30s`, `10m`, `2h`, `1d`,",
        "`1h30m`, `500ms`. Times: ISO-8601 with a zone. Names: `[a-z0-9][a-z0-9._-]{0,62}`.",
        "",
        "## Scope",
        "",
        *_section("Scope", Scope),
        *_section("ScopeMetadata", ScopeMetadata),
        *_section("ScopeSpec", ScopeSpec),
        "## DeviceList",
        "",
        *_section("DeviceList", DeviceList),
        *_section("DeviceListMetadata", DeviceListMetadata),
        *_section("Device", Device),
        "## Job",
        "",
        *_section("Job", Job),
        *_section("JobMetadata", JobMetadata),
        *_section("JobSpec", JobSpec),
        *_section("Targets", Targets),
        *SELECTORS.splitlines(),
        *_section("RunStart", RunStart),
        "## Per-device values and parameters",
        "",
        "Any text in a step's properties may read `${device.clientId}`, `${device.displayName}`,",
        "`${device.labels.KEY}`, `${device.vars.NAME}` (the device's DeviceList entry) and",
        "`${params.NAME}` (the job's `parameters`); `$${` writes a literal `${`. A property that",
        "is one reference and nothing else takes the value with its type (`bundleId:",
        "${device.vars.bundle}` with `vars: {bundle: 42}` is the number 42). Parameters are put",
        "in when the manifest is read; device values are resolved for each target when the",
        "targets freeze, recorded with them, and never change afterwards (a change in the",
        "DeviceList is a conflict). A parameter written `name: null` has no default.",
        "",
        "## JobTemplate",
        "",
        "Steps (with schedules, rollout, retry) shared by the jobs that name it in",
        "`spec.template`; each job gives its targets, its run and its `parameters`' values.",
        "",
        *_section("JobTemplate", JobTemplate),
        *_section("JobTemplateSpec", JobTemplateSpec),
        "## Rollout",
        "",
        "Waves, gates, rate, window and abort rule of a job (README: Rollouts); the waves are",
        "split when the first execution freezes the targets, the rest applies as it is now.",
        "",
        *_section("Rollout", Rollout),
        *_section("Wave", Wave),
        *_section("Ramp", Ramp),
        *_section("Abort", Abort),
        *_section("Window", Window),
        *_section("Retry", Retry),
        "## Steps",
        "",
        "Every step has these keys; asynchronous steps (Activity Submit, Package Download /",
        "Install, Package Uninstall) also have `completionTimeout`.",
        "",
        *_table(AsyncStepBase),
        "",
    ]
    for definition, step in CATALOGUE.items():
        properties = step.model_fields["properties"].annotation
        assert isinstance(properties, type) and issubclass(properties, BaseModel)
        mode = "asynchronous" if issubclass(step, AsyncStepBase) else "synchronous"
        summary = (properties.__doc__ or "").strip().splitlines() or [definition]
        own = [n for n in step.model_fields if n not in AsyncStepBase.model_fields]
        keys = [n for n in own if n not in ("definition", "properties")]
        out += [
            f"### {definition}",
            "",
            f"{summary[0]} ({mode})",
            "",
            *_table(properties),
            "",
        ]
        if keys:  # the step's own keys, beside name and timeout (README: Snapshots...)
            out += [
                "Keys of the step itself (beside `properties`):",
                "",
                *_table(
                    step,
                    skip=(
                        "name",
                        "description",
                        "timeout",
                        "completionTimeout",
                        "definition",
                        "properties",
                    ),
                ),
                "",
            ]
        out += [
            "```yaml",
            STEP_EXAMPLES[definition].rstrip(),
            "```",
            "",
        ]
    out += ["## Schedules", ""]
    for title, model in (
        ("interval", IntervalSchedule),
        ("cron", CronSchedule),
        ("device-connect", DeviceConnectSchedule),
    ):
        out += _section(f"type: {title}", model)
    out += [
        "## Policy",
        "",
        "Who may create or change the jobs of a scope (see docs/policy.md).",
        "",
        *_section("Policy", Policy),
        *_section("PolicyMetadata", PolicyMetadata),
        *_section("PolicySpec", PolicySpec),
        "## Notification",
        "",
        "Where the events of a scope's jobs are posted, as CloudEvents 1.0 JSON (README:"
        " Notifications).",
        "",
        *_section("Notification", Notification),
        *_section("NotificationMetadata", NotificationMetadata),
        *_section("NotificationSpec", NotificationSpec),
        *_section("Header", Header),
    ]
    nested = {m.__name__: m for step in CATALOGUE.values() for m in _nested(step)}
    if nested:
        out += ["## Nested values", ""]
        for name in sorted(nested):
            out += _section(name, nested[name])
    return "\n".join(out).rstrip() + "\n"


def _nested(step: type[StepBase]) -> list[type[BaseModel]]:
    """Models used inside step properties (channels, configurations...)."""
    found: list[type[BaseModel]] = []
    properties = step.model_fields["properties"].annotation

    def walk(annotation: Any) -> None:
        for arg in get_args(annotation):
            walk(arg)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if annotation is not properties and annotation not in found:
                found.append(annotation)
            for info in annotation.model_fields.values():
                walk(info.annotation)

    walk(properties)
    return found


if __name__ == "__main__":  # `make schemas`
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/manifest-reference.md")
    target.write_text(render(), encoding="utf-8")
    print(f"wrote {target}")
