"""What a step's snapshot and read-backs make of the replies a device may send: the
verdicts `verify: true` and a rollback's read-back are built on."""

from __future__ import annotations

from jobrunner.device.payload import KuraPayload, Metric
from jobrunner.engine.link import ports
from jobrunner.engine.link.checks import SNAPSHOT, verify_stage
from jobrunner.engine.link.operations import operations_factory
from jobrunner.manifests.steps import ConfigurationPutStep, PackageDownloadStep

CLOCK = "org.eclipse.kura.clock.ClockService"
IDS = (
    b'<?xml version="1.0" encoding="UTF-8"?><esf:snapshot-ids'
    b' xmlns:esf="http://eurotech.com/esf/2.0"><esf:snapshotIds>1700000000123</esf:snapshotIds>'
    b"</esf:snapshot-ids>"
)


def reply(code: int = 200, body: bytes | None = None, message: str | None = None) -> KuraPayload:
    metrics = {"response.code": Metric.int32(code)}
    if message is not None:
        metrics["response.exception.message"] = Metric.string(message)
    return KuraPayload(metrics=metrics, body=body)


def configuration(pid: str, **properties: tuple[str, str]) -> bytes:
    items = "".join(
        f'<esf:property name="{name}" array="false" encrypted="false" type="{kind}">'
        f"<esf:value>{value}</esf:value></esf:property>"
        for name, (kind, value) in properties.items()
    )
    return (
        '<esf:configurations xmlns:esf="http://eurotech.com/esf/2.0">'
        f'<esf:configuration pid="{pid}"><esf:properties>{items}</esf:properties>'
        "</esf:configuration></esf:configurations>"
    ).encode()


def put(verify: bool = True) -> ports.StepChecks:
    step = ConfigurationPutStep.model_validate(
        {
            "name": "ntp",
            "definition": "Configuration Put",
            "verify": verify,
            "properties": {
                "configurations": [
                    {
                        "pid": CLOCK,
                        "properties": {
                            "clock.ntp.host": "10.9.9.9",
                            "clock.ntp.refresh-interval": 600,
                            "ratio": 0.5,
                            "secret": {"type": "Password", "value": "s3cret!"},
                        },
                    }
                ]
            },
        }
    )
    checks = operations_factory()(step).checks
    assert checks is not None
    return checks


def test_the_snapshot_reply_gives_the_id_recorded_before_the_put() -> None:
    outcome = put().on_reply(SNAPSHOT, reply(body=IDS))
    assert outcome == ports.Proceed(
        None, "snapshot 1700000000123 taken; the configuration goes next", snapshot=1700000000123
    )


def test_a_snapshot_that_was_not_taken_fails_the_step_before_anything_is_written() -> None:
    refused = put().on_reply(SNAPSHOT, reply(500, message="Error taking snapshot"))
    assert isinstance(refused, ports.Failed)
    assert refused.reason == (
        "no snapshot was taken (device replied 500: Error taking snapshot); the configuration"
        " was not sent"
    )
    unreadable = put().on_reply(SNAPSHOT, reply(body=b"<esf:snapshot-ids>"))
    assert isinstance(unreadable, ports.Failed) and "names no snapshot id" in unreadable.reason
    assert unreadable.failure == "unreadable"


def test_verify_compares_as_kura_writes_values_and_names_each_difference() -> None:
    checks = put()
    same = configuration(
        CLOCK,
        **{
            "clock.ntp.host": ("String", "10.9.9.9"),
            "clock.ntp.refresh-interval": ("Integer", "600"),
            "ratio": ("Double", "0.50"),
            "secret": ("Password", "ZW5jcnlwdGVk"),  # Kura answers it encrypted: not compared
        },
    )
    assert checks.on_reply(verify_stage(0), reply(body=same)) == ports.Succeeded(
        f"read back as written: {CLOCK}"
    )
    other = configuration(
        CLOCK,
        **{"clock.ntp.host": ("String", "0.pool.ntp.org"), "ratio": ("Double", "0.5")},
    )
    failed = checks.on_reply(verify_stage(0), reply(body=other))
    assert isinstance(failed, ports.Failed) and failed.kind.value == "not-verified"
    assert failed.reason == (
        "verify: the device does not hold what was written:"
        f" {CLOCK}.clock.ntp.host: wanted 10.9.9.9, the device holds 0.pool.ntp.org;"
        f" {CLOCK}.clock.ntp.refresh-interval: wanted 600, the device has no value"
    )
    gone = checks.on_reply(verify_stage(0), reply(404, message="not found"))
    assert isinstance(gone, ports.Failed)
    assert gone.reason == f"verify: GET configurations/{CLOCK}: device replied 404: not found"


def test_only_a_step_that_says_verify_reads_back_after_kura_applied_it() -> None:
    assert put(verify=False).verification("accepted") is None
    then = put().verification("accepted")
    assert then is not None and then.stage == verify_stage(0) and then.after == 2.0


def test_a_package_install_is_verified_against_the_listed_versions() -> None:
    step = PackageDownloadStep.model_validate(
        {
            "name": "install",
            "definition": "Package Download / Install",
            "verify": True,
            "properties": {"uri": "http://repo/a.dp", "name": "a", "version": "1.0.0"},
        }
    )
    checks = operations_factory()(step).checks
    assert checks is not None
    listed = (
        b"<packages><package><name>a</name><version>0.9.0</version></package>"
        b"<package><name>b</name><version>1.0.0</version></package></packages>"
    )
    failed = checks.on_reply(verify_stage(0), reply(body=listed))
    assert isinstance(failed, ports.Failed)
    assert failed.reason == "verify: GET packages does not list a 1.0.0 (version(s) 0.9.0)"
    ok = listed.replace(b"0.9.0", b"1.0.0")
    assert checks.on_reply(verify_stage(0), reply(body=ok)) == ports.Succeeded(
        "GET packages lists a 1.0.0"
    )


def test_steps_without_checks_have_none() -> None:
    step = PackageDownloadStep.model_validate(
        {
            "name": "install",
            "definition": "Package Download / Install",
            "properties": {"uri": "http://repo/a.dp", "name": "a", "version": "1.0.0"},
        }
    )
    assert operations_factory()(step).checks is None
