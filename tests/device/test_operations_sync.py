"""The synchronous step operations: the exact request of each, and its reply's outcome."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel

from jobrunner.device.model import Request
from jobrunner.device.operations import (
    OPERATIONS,
    Operation,
    OperationSettings,
    OutcomeStatus,
    operation_for,
    operation_for_step,
)
from jobrunner.device.payload import KuraPayload, Metric, MetricType
from jobrunner.errors import OperationError
from jobrunner.manifests.steps import CATALOGUE

PEM = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ==\n-----END CERTIFICATE-----"
S, I32, I64, B = MetricType.STRING, MetricType.INT32, MetricType.INT64, MetricType.BOOL


def build(definition: str, properties: dict[str, Any], **settings: Any) -> Operation[Any]:
    """The operation of a step written as in a manifest (camelCase, YAML-native values)."""
    model: type[BaseModel] = OPERATIONS[definition].properties_type
    return operation_for(
        definition, model.model_validate(properties), OperationSettings(**settings)
    )


def typed(request: Request) -> dict[str, tuple[MetricType, object]]:
    return {name: (m.type, m.value) for name, m in request.metrics.items()}


def reply(code: int = 200, body: bytes | None = None, /, **metrics: Metric) -> KuraPayload:
    return KuraPayload.of({"response.code": Metric.int32(code), **metrics}, body=body)


def test_every_step_definition_has_an_operation() -> None:
    assert set(OPERATIONS) == set(CATALOGUE)
    for definition, step_type in CATALOGUE.items():
        assert OPERATIONS[definition].mode is step_type.mode, definition


def test_operation_for_step_takes_a_job_step() -> None:
    step = CATALOGUE["Bundle Stop"].model_validate(
        {"name": "stop", "definition": "Bundle Stop", "properties": {"bundleId": 42}}
    )
    operation = operation_for_step(step)
    assert operation.request().topic("acme", "gw-1") == "$EDC/acme/gw-1/DEPLOY-V2/EXEC/stop/42"
    with pytest.raises(OperationError, match="unknown step definition"):
        operation_for("Bundle Restart", step.properties)  # type: ignore[attr-defined]
    with pytest.raises(OperationError, match="takes BundleProperties"):
        operation_for("Bundle Start", reply())  # type: ignore[arg-type]


# --- Command Execution ----------------------------------------------------------------------


def test_command_execution_request() -> None:
    operation = build(
        "Command Execution",
        {
            "command": "sh",
            "arguments": ["-c", "echo hi"],
            "environment": {"A": "1", "B": "x=y"},
            "workingDirectory": "/tmp",
            "stdin": "input",
            "password": "pw",
            "runAsync": False,
            "commandTimeout": "90s",
        },
    )
    request = operation.request()
    assert request.topic("acme", "gw-1") == "$EDC/acme/gw-1/CMD-V1/EXEC/command"
    assert typed(request) == {
        "command.command": (S, "sh"),
        "command.argument0": (S, "-c"),
        "command.argument1": (S, "echo hi"),
        "command.environment.pair0": (S, "A=1"),
        "command.environment.pair1": (S, "B=x=y"),
        "command.working.directory": (S, "/tmp"),
        "command.stdin": (S, "input"),
        "command.password": (S, "pw"),
        "command.timeout": (I32, 90),  # seconds, as Kura reads it
        "command.run.async": (B, False),
    }
    assert request.body is None and request.operation_id is None
    assert "pw" not in repr(request) and "command.password=***" in request.describe()


def test_command_timeout_is_rounded_up_to_whole_seconds() -> None:
    request = build("Command Execution", {"command": "ls", "commandTimeout": "1500ms"}).request()
    assert typed(request)["command.timeout"] == (I32, 2)
    minimal = build("Command Execution", {"command": "ls"}).request()
    assert set(minimal.metrics) == {"command.command", "command.run.async"}


@pytest.mark.parametrize(
    ("payload", "status", "summary"),
    [
        (
            reply(
                **{
                    "command.exit.code": Metric.int32(0),
                    "command.stdout": Metric.string("a\nb\nc\nlast line\n"),
                }
            ),
            OutcomeStatus.OK,
            "command exited with code 0; stdout: b | c | last line",
        ),
        (
            reply(
                500,
                **{
                    "response.exception.message": Metric.string("ls: /nope: No such file"),
                    "command.exit.code": Metric.int32(2),
                    "command.stderr": Metric.string("ls: /nope: No such file\n"),
                },
            ),
            OutcomeStatus.FAILED,
            "device replied 500: command exited with code 2: ls: /nope: No such file",
        ),
        (
            reply(
                200,
                **{"command.exit.code": Metric.int32(1), "command.stderr": Metric.string("boom")},
            ),
            OutcomeStatus.FAILED,
            "command exited with code 1: boom",
        ),
        (
            reply(
                200,
                **{
                    "command.timedout": Metric.boolean(True),
                    "command.stdout": Metric.string("partial"),
                },
            ),
            OutcomeStatus.FAILED,
            "command timed out on the device after 5s; last output: partial",
        ),
        (
            reply(500, **{"response.exception.message": Metric.string("SERVICE_UNAVAILABLE")}),
            OutcomeStatus.FAILED,
            "device replied 500: SERVICE_UNAVAILABLE",
        ),
        (
            reply(400),
            OutcomeStatus.FAILED,
            "device replied 400: no reason given (the command is empty, or the command"
            " password is wrong)",
        ),
        (KuraPayload(), OutcomeStatus.FAILED, "device replied without a readable response.code"),
    ],
    ids=["ok", "non-zero-500", "non-zero-200", "timed-out", "disabled", "bad-request", "no-code"],
)
def test_command_execution_outcomes(
    payload: KuraPayload, status: OutcomeStatus, summary: str
) -> None:
    operation = build("Command Execution", {"command": "ls", "commandTimeout": "5s"})
    outcome = operation.reply(payload)
    assert outcome.status is status
    assert outcome.summary.startswith(summary)


def test_a_run_async_command_succeeds_on_acceptance() -> None:
    operation = build("Command Execution", {"command": "reboot", "runAsync": True})
    assert operation.reply(reply()).summary.startswith("command started on the device")


# --- Configuration Put ------------------------------------------------------------------------

ESF = (
    '<?xml version="1.0" encoding="UTF-8"?><esf:configurations'
    ' xmlns:esf="http://eurotech.com/esf/2.0" xmlns:ocd="http://www.osgi.org/xmlns/metatype/v1.2.0">'
)


def test_configuration_put_builds_esf_xml_with_inferred_types() -> None:
    operation = build(
        "Configuration Put",
        {
            "configurations": [
                {
                    "pid": "org.eclipse.kura.clock.ClockService",
                    "properties": {
                        "enabled": True,
                        "sync.interval": 3600,
                        "big": 2**40,
                        "ratio": 0.5,
                        "server": 'ntp <"1">&',
                        "ports": [1, 2**33],
                        "explicit": {"type": "Short", "value": 7},
                        "letters": {"type": "Char", "value": ["a", "b"]},
                    },
                }
            ]
        },
    )
    request = operation.request()
    assert request.topic("acme", "gw-1") == "$EDC/acme/gw-1/CONF-V1/PUT/configurations"
    assert request.metrics == {}
    assert request.body is not None
    assert request.body.decode() == (
        ESF + '<esf:configuration pid="org.eclipse.kura.clock.ClockService"><esf:properties>'
        '<esf:property name="enabled" array="false" encrypted="false" type="Boolean">'
        "<esf:value>true</esf:value></esf:property>"
        '<esf:property name="sync.interval" array="false" encrypted="false" type="Integer">'
        "<esf:value>3600</esf:value></esf:property>"
        '<esf:property name="big" array="false" encrypted="false" type="Long">'
        "<esf:value>1099511627776</esf:value></esf:property>"
        '<esf:property name="ratio" array="false" encrypted="false" type="Double">'
        "<esf:value>0.5</esf:value></esf:property>"
        '<esf:property name="server" array="false" encrypted="false" type="String">'
        '<esf:value>ntp &lt;"1"&gt;&amp;</esf:value></esf:property>'
        '<esf:property name="ports" array="true" encrypted="false" type="Long">'
        "<esf:value>1</esf:value><esf:value>8589934592</esf:value></esf:property>"
        '<esf:property name="explicit" array="false" encrypted="false" type="Short">'
        "<esf:value>7</esf:value></esf:property>"
        '<esf:property name="letters" array="true" encrypted="false" type="Char">'
        "<esf:value>a</esf:value><esf:value>b</esf:value></esf:property>"
        "</esf:properties></esf:configuration></esf:configurations>"
    )
    outcome = operation.reply(reply())
    assert outcome.status is OutcomeStatus.OK
    assert "org.eclipse.kura.clock.ClockService" in outcome.summary


@pytest.mark.parametrize(
    ("properties", "says"),
    [
        ({"mixed": [1, "a"]}, "mixes Integer, String"),
        ({"x": {"type": "Short", "value": 70000}}, "outside -32768..32767"),
        ({"x": {"type": "Integer", "value": "12"}}, "not a whole number"),
        ({"x": {"type": "Boolean", "value": "yes"}}, "not true or false"),
        ({"x": 2**64}, "does not fit a Long"),
        ({"x": "bell\x07"}, "control character"),
    ],
)
def test_configuration_values_that_do_not_fit_are_refused(
    properties: dict[str, Any], says: str
) -> None:
    operation = build(
        "Configuration Put", {"configurations": [{"pid": "p", "properties": properties}]}
    )
    with pytest.raises(OperationError, match=says):
        operation.request()


def test_configuration_put_sends_an_esf_document_as_written() -> None:
    document = (
        ESF + '<esf:configuration pid="a.b"><esf:properties>'
        '<esf:property name="n" array="false" encrypted="false" type="Integer">'
        "<esf:value>5</esf:value></esf:property></esf:properties></esf:configuration>"
        "</esf:configurations>"
    )
    operation = build("Configuration Put", {"xml": document})
    assert operation.request().body == document.encode()


def test_configuration_put_rebuilds_the_cloud_xml_form_with_the_esf_prefix() -> None:
    document = (
        "<configurations><configuration><id>a.b</id><properties>"
        '<property name="n" array="false" encrypted="false" type="Integer"><value>5</value>'
        "</property></properties></configuration></configurations>"
    )
    body = build("Configuration Put", {"xml": document}).request().body
    assert body is not None
    assert body.decode().startswith(ESF + '<esf:configuration pid="a.b">')
    assert '<esf:property name="n" array="false" encrypted="false" type="Integer">' in body.decode()


# --- Bundles ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("definition", "verb"), [("Bundle Start", "start"), ("Bundle Stop", "stop")]
)
def test_bundle_requests_and_outcomes(definition: str, verb: str) -> None:
    operation = build(definition, {"bundleId": "42"})
    request = operation.request()
    assert request.topic("acme", "gw-1") == f"$EDC/acme/gw-1/DEPLOY-V2/EXEC/{verb}/42"
    assert request.metrics == {} and request.body is None
    done = {"start": "started", "stop": "stopped"}[verb]
    assert operation.reply(reply()).summary == f"bundle 42 {done}"
    failed = operation.reply(reply(400))
    assert failed.status is OutcomeStatus.FAILED
    assert failed.summary == (
        f"device replied 400: no reason given (no bundle with this id on the device, or OSGi"
        f" refused to {verb} it)"
    )


# --- Asset Write ------------------------------------------------------------------------------


def test_asset_write_sends_every_value_as_a_string() -> None:
    operation = build(
        "Asset Write",
        {
            "assets": [
                {
                    "name": "asset1",
                    "channels": [
                        {"name": "b", "type": "BOOLEAN", "value": True},
                        {"name": "i", "type": "INTEGER", "value": 12},
                        {"name": "d", "type": "DOUBLE", "value": 3},
                        {"name": "f", "type": "FLOAT", "value": 1.5},
                        {"name": "s", "type": "STRING", "value": "x"},
                        {"name": "raw", "type": "BYTE_ARRAY", "value": "AAEC"},
                    ],
                }
            ]
        },
    )
    request = operation.request()
    assert request.topic("acme", "gw-1") == "$EDC/acme/gw-1/ASSET-V1/EXEC/write"
    assert request.body is not None
    assert json.loads(request.body) == [
        {
            "name": "asset1",
            "channels": [
                {"name": "b", "type": "BOOLEAN", "value": "true"},
                {"name": "i", "type": "INTEGER", "value": "12"},
                {"name": "d", "type": "DOUBLE", "value": "3.0"},
                {"name": "f", "type": "FLOAT", "value": "1.5"},
                {"name": "s", "type": "STRING", "value": "x"},
                {"name": "raw", "type": "BYTE_ARRAY", "value": "AAEC"},
            ],
        }
    ]


def test_asset_write_fails_when_the_device_reports_channel_errors() -> None:
    operation = build(
        "Asset Write",
        {"assets": [{"name": "a", "channels": [{"name": "c", "type": "STRING", "value": "v"}]}]},
    )
    written = json.dumps(
        [{"name": "a", "channels": [{"name": "c", "value": "v", "type": "STRING"}]}]
    )
    assert operation.reply(reply(200, written.encode())).status is OutcomeStatus.OK
    errors = json.dumps(
        [
            {"name": "a", "channels": [{"name": "c", "error": "Channel not writable"}]},
            {"name": "z", "error": "Asset not found"},
        ]
    )
    outcome = operation.reply(reply(200, errors.encode()))
    assert outcome.status is OutcomeStatus.FAILED
    assert outcome.summary == (
        "device replied 200 but 2 write(s) failed: asset 'a' channel 'c': Channel not"
        " writable; asset 'z': Asset not found"
    )


# --- Keystores --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("definition", "properties", "method_resources", "body"),
    [
        (
            "Keystore Certificate Create",
            {"keystoreId": "SSLKeystore", "alias": "ca", "certificate": PEM},
            "POST/keystores/entries/certificate",
            {"keystoreServicePid": "SSLKeystore", "alias": "ca", "certificate": PEM},
        ),
        (
            "Keystore Keypair Create",
            {
                "keystoreId": "SSLKeystore",
                "alias": "k",
                "algorithm": "RSA",
                "size": 4096,
                "signatureAlgorithm": "SHA256withRSA",
                "attributes": "CN=gw-1,O=Acme",
            },
            "POST/keystores/entries/keypair",
            {
                "keystoreServicePid": "SSLKeystore",
                "alias": "k",
                "algorithm": "RSA",
                "size": 4096,
                "signatureAlgorithm": "SHA256withRSA",
                "attributes": "CN=gw-1,O=Acme",
            },
        ),
        (
            "Keystore Item Delete",
            {"keystoreId": "SSLKeystore", "alias": "old"},
            "DEL/keystores/entries",
            {"keystoreServicePid": "SSLKeystore", "alias": "old"},
        ),
    ],
)
def test_keystore_requests_are_flat_json(
    definition: str, properties: dict[str, Any], method_resources: str, body: dict[str, Any]
) -> None:
    operation = build(definition, properties)
    request = operation.request()
    assert request.topic("acme", "gw-1") == f"$EDC/acme/gw-1/KEYS-V1/{method_resources}"
    assert request.metrics == {}
    assert request.body is not None
    assert json.loads(request.body) == body
    assert list(json.loads(request.body)) == list(body)  # same key order
    assert operation.reply(reply()).status is OutcomeStatus.OK
    failed = operation.reply(reply(404, **{"response.exception.message": Metric.string("gone")}))
    assert failed.summary.startswith("device replied 404: gone")


# --- Device certificates (our contract: docs/wire-contracts.md) --------------------------------


def test_device_certificate_install_and_revoke() -> None:
    install = build("Device Certificate Management Install", {"certificate": PEM, "alias": "gw"})
    request = install.request()
    assert request.topic("acme", "gw-1") == "$EDC/acme/gw-1/CERT-V1/POST/certificates"
    assert request.body is not None
    assert json.loads(request.body) == {"certificate": PEM, "alias": "gw"}
    assert install.reply(reply()).status is OutcomeStatus.OK

    revoke = build("Device Certificate Management Revoke", {"alias": "gw", "keystoreId": "K"})
    request = revoke.request()
    assert request.topic("acme", "gw-1") == "$EDC/acme/gw-1/CERT-V1/DEL/certificates"
    assert request.body is not None
    assert json.loads(request.body) == {"alias": "gw", "keystoreServicePid": "K"}
    missing = revoke.reply(reply(404))
    assert (
        missing.summary == "device replied 404: no reason given (no such certificate on the device)"
    )
    malformed = revoke.reply(reply(400))
    assert malformed.summary.endswith("(the device found the request malformed)")


def test_the_certificate_contract_app_and_resources_are_configurable() -> None:
    operation = build(
        "Device Certificate Management Revoke",
        {"certificate": PEM},
        certificate_app="CERTS-V2",
        certificate_resources=("device", "certs"),
    )
    request = operation.request()
    assert request.topic("a", "d") == "$EDC/a/d/CERTS-V2/DEL/device/certs"
    assert operation.unsupported_reason(["CMD-V1", "CERT-V1"]) == (
        "the device does not support Device Certificate Management Revoke: its BIRTH lists"
        " application ids CERT-V1, CMD-V1, not CERTS-V2"
    )
    assert operation.unsupported_reason(["CERTS-V2"]) is None
    with pytest.raises(OperationError, match="one non-empty topic segment"):
        OperationSettings(certificate_app="CERT/V1")


def test_a_request_reads_well_in_the_log() -> None:
    """true/false rather than Python's False, plain words bare, text with spaces quoted, and no
    stray comma before a body."""
    download = build(
        "Package Download / Install",
        {
            "uri": "https://repo.example.com/a.dp",
            "name": "Modbus driver",
            "version": "1.0",
            "install": False,
        },
    ).request(7)
    shown = download.describe()
    assert "dp.install=false" in shown and "False" not in shown
    assert 'dp.name="Modbus driver"' in shown and "dp.uri=https://repo.example.com/a.dp," in shown
    assert "job.id=7" in shown
    put = build(
        "Configuration Put",
        {
            "configurations": [
                {"pid": "org.eclipse.kura.clock.ClockService", "properties": {"enabled": True}}
            ]
        },
    ).request()
    assert put.describe().startswith("CONF-V1 PUT/configurations (body ")


# --- failures as Kura's own code gives them -----------------------------------------------------


def test_a_command_refused_without_an_exit_code_keeps_its_response_code() -> None:
    command = build("Command Execution", {"command": "env", "environment": {"A": "b"}})
    message = Metric.string("Bad request. {0}")

    refused = command.reply(reply(400, None, **{"response.exception.message": message}))
    failing = command.reply(reply(500))
    unknown = Metric.string("CMD-V1 has no resource 'shell'")
    not_found = command.reply(reply(404, None, **{"response.exception.message": unknown}))

    assert (refused.failure, refused.code) == ("device-error", 400)
    assert refused.summary.startswith("device replied 400: Bad request. (")  # no unfilled {0}
    assert (failing.failure, failing.code) == ("device-error", 500)
    # Kura never answers for an application it lacks: a 404 naming the app is the app's own.
    assert (not_found.failure, not_found.code) == ("device-error", 404)
    assert not_found.summary == "device replied 404: CMD-V1 has no resource 'shell'"


def test_an_unknown_keystore_is_a_500_with_the_hint_there() -> None:
    delete = build("Keystore Item Delete", {"keystoreId": "NoSuchKeystore", "alias": "ca"})

    unknown = delete.reply(reply(500))  # Kura: an unknown keystore service PID, no message

    assert unknown.status is OutcomeStatus.FAILED and unknown.code == 500
    assert unknown.summary == (
        "device replied 500: no reason given"
        " (is keystoreId the PID of a keystore service of the device?)"
    )
    assert "keystore service" not in delete.reply(reply(404)).summary
