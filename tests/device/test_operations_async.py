"""The asynchronous step operations: requests, acceptance, notification sequences, recovery."""

from __future__ import annotations

import json
from typing import Any

import pytest

from jobrunner.device.operations import AsyncState, Operation, OutcomeStatus
from jobrunner.device.payload import KuraPayload, Metric, MetricType
from jobrunner.errors import OperationError
from jobrunner.manifests.steps import FileType
from tests.device.test_operations_sync import I32, I64, B, S, build, reply, typed

OK, FAILED, PROGRESS, IGNORED, ACCEPTED = (
    OutcomeStatus.OK,
    OutcomeStatus.FAILED,
    OutcomeStatus.PROGRESS,
    OutcomeStatus.IGNORED,
    OutcomeStatus.ACCEPTED,
)
DOWNLOAD = {"uri": "https://repo.example.com/m-1.2.0.dp", "name": "m", "version": "1.2.0"}


def notify(job: int = 123, /, **metrics: Metric) -> KuraPayload:
    return KuraPayload.of(
        {"client.id": Metric.string("gw-1"), "job.id": Metric.int64(job), **metrics}
    )


def dl(status: str, progress: int = 0, /, **extra: Metric) -> KuraPayload:
    return notify(
        **{
            "dp.download.status": Metric.string(status),
            "dp.download.progress": Metric.int32(progress),
            "dp.download.size": Metric.int32(1000),
            **extra,
        }
    )


def inst(status: str, /, **extra: Metric) -> KuraPayload:
    progress = 100 if status == "COMPLETED" else 0
    return notify(
        **{
            "dp.install.status": Metric.string(status),
            "dp.install.progress": Metric.int32(progress),
            "dp.name": Metric.string("m_1.2.0.dp"),
            **extra,
        }
    )


def run(
    operation: Operation[Any], *events: tuple[str, KuraPayload]
) -> list[tuple[OutcomeStatus, str]]:
    """Feed the 200 reply then each (resource, notification); the outcomes in order."""
    outcome = operation.reply(reply(), operation_id=123)
    assert outcome.status is ACCEPTED and outcome.state is not None
    assert outcome.state == AsyncState(123, outcome.state.phase, 0)
    seen = [(outcome.status, outcome.summary)]
    state = outcome.state
    for resource, payload in events:
        outcome = operation.notification(state, (resource,), payload)
        seen.append((outcome.status, outcome.summary))
        state = outcome.state or state
    return seen


# --- Package Download / Install -------------------------------------------------------------


def test_package_download_request_metrics_and_types() -> None:
    operation = build(
        "Package Download / Install",
        {
            **DOWNLOAD,
            "install": True,
            "reboot": True,
            "rebootDelay": "30s",
            "username": "u",
            "password": "secret",
            "fileHash": "MD5:46cb0ad3",
            "fileType": FileType.EXECUTABLE_SCRIPT,
            "restart": True,
            "blockSize": 4096,
            "blockDelay": "10ms",
            "blockTimeout": "1m",
            "notifyBlockSize": 51200,
            "installVerifierUri": "https://repo.example.com/verify.sh",
        },
    )
    request = operation.request(123)
    assert request.topic("acme", "gw-1") == "$EDC/acme/gw-1/DEPLOY-V2/EXEC/download"
    assert request.operation_id == 123
    assert typed(request) == {
        "dp.uri": (S, DOWNLOAD["uri"]),
        "dp.name": (S, "m"),
        "dp.version": (S, "1.2.0"),
        "dp.download.protocol": (S, "HTTP"),
        "job.id": (I64, 123),
        "dp.install.system.update": (B, True),
        "dp.install": (B, True),
        "dp.reboot": (B, True),
        "dp.reboot.delay": (I32, 30000),
        "dp.download.force": (B, True),
        "dp.download.block.size": (I32, 4096),
        "dp.download.block.delay": (I32, 10),
        "dp.download.timeout": (I32, 60000),
        "dp.download.notify.block.size": (I32, 51200),
        "dp.download.username": (S, "u"),
        "dp.download.password": (S, "secret"),
        "dp.download.hash": (S, "MD5:46cb0ad3"),
        "dp.install.verifier.uri": (S, "https://repo.example.com/verify.sh"),
    }
    assert "secret" not in repr(request)


def test_package_download_minimal_request() -> None:
    request = build("Package Download / Install", DOWNLOAD).request(5)
    assert typed(request) == {
        "dp.uri": (S, DOWNLOAD["uri"]),
        "dp.name": (S, "m"),
        "dp.version": (S, "1.2.0"),
        "dp.download.protocol": (S, "HTTP"),
        "job.id": (I64, 5),
        "dp.install.system.update": (B, False),
        "dp.install": (B, True),
        "dp.reboot": (B, False),
        "dp.download.force": (B, False),
    }


def test_durations_too_long_for_an_int32_of_milliseconds_are_refused() -> None:
    operation = build("Package Download / Install", {**DOWNLOAD, "rebootDelay": "30d"})
    with pytest.raises(OperationError, match="rebootDelay is 2592000000 ms"):
        operation.request(1)
    with pytest.raises(OperationError, match="not a non-negative INT64"):
        build("Package Download / Install", DOWNLOAD).request(-1)


def test_download_with_install_waits_for_the_install_notification() -> None:
    operation = build("Package Download / Install", DOWNLOAD)
    assert run(
        operation,
        ("download", dl("IN_PROGRESS", 40)),
        ("download", dl("COMPLETED", 100)),
        ("install", inst("COMPLETED")),
    )[1:] == [
        (PROGRESS, "downloading m 1.2.0: 40%"),
        (PROGRESS, "downloaded m 1.2.0; waiting for the install notification"),
        (OK, "installed m 1.2.0"),
    ]


def test_download_only_completes_with_the_download() -> None:
    operation = build("Package Download / Install", {**DOWNLOAD, "install": False})
    assert run(operation, ("download", dl("COMPLETED", 100)))[-1] == (OK, "downloaded m 1.2.0")


def test_download_only_with_a_hash_waits_for_the_hash_check() -> None:
    """Kura sends FAILED after COMPLETED when the hash does not match, nothing when it does:
    the COMPLETED becomes a success only after a quiet while."""
    operation = build(
        "Package Download / Install", {**DOWNLOAD, "install": False, "fileHash": "MD5:46cb"}
    )
    outcome = operation.reply(reply(), operation_id=123)
    assert outcome.state is not None
    completed = operation.notification(outcome.state, ("download",), dl("COMPLETED", 100))
    assert completed.status is PROGRESS and completed.settle is not None
    assert completed.summary == "downloaded m 1.2.0; the device checks its hash"
    assert completed.settle.summary == "downloaded m 1.2.0; no hash failure reported in 15s"
    assert completed.state is not None
    failed = operation.notification(completed.state, ("download",), dl("FAILED"))
    assert failed.status is FAILED and "hash did not match" in failed.summary


def test_a_system_update_is_awaited_after_the_restart_it_causes() -> None:
    """An EXECUTABLE_SCRIPT is in no package list: a status query after the reboot must not
    take its absence for a failure (Kura confirms it from the verifier afterwards)."""
    operation = build("Package Download / Install", {**DOWNLOAD, "fileType": "EXECUTABLE_SCRIPT"})
    state = AsyncState(123, "install", 0)
    replies = {
        "download": reply(**{"dp.download.status": Metric.string("IDLE")}),
        "install": reply(**{"dp.install.status": Metric.string("IDLE")}),
        "packages": reply(200, b"<packages/>"),
    }
    assert operation.recover(state, replies) is None


@pytest.mark.parametrize(
    ("events", "last"),
    [
        (
            [("download", dl("FAILED", 0, **{"dp.download.error.message": Metric.string("404")}))],
            (FAILED, "download of m 1.2.0 failed on the device: 404"),
        ),
        (
            [("download", dl("CANCELLED"))],
            (FAILED, "download of m 1.2.0 was cancelled on the device"),
        ),
        (
            [
                ("download", dl("COMPLETED", 100)),
                (
                    "install",
                    inst("FAILED", **{"dp.install.error.message": Metric.string("bad DP")}),
                ),
            ],
            (FAILED, "install of m 1.2.0 failed on the device: bad DP"),
        ),
        ([("install", inst("COMPLETED"))], (OK, "installed m 1.2.0")),  # download COMPLETED lost
        (
            [("download", dl("ALREADY DONE", 100))],
            (PROGRESS, "downloaded m 1.2.0; waiting for the install notification"),
        ),
        (
            [("download", dl("WEIRD"))],
            (IGNORED, "download notification with unknown status 'WEIRD'"),
        ),
        (
            [("download", dl("IN_PROGRESS", 5, **{"job.id": Metric.int64(9)}))],
            (IGNORED, "notification for another operation"),
        ),
        (
            [("uninstall", notify())],
            (IGNORED, "a notification on resource 'uninstall' is not expected"),
        ),
        (
            [("download", dl("COMPLETED", 100)), ("download", dl("IN_PROGRESS", 50))],
            (IGNORED, "download notification (IN_PROGRESS) noted"),
        ),
        (
            [
                ("download", dl("COMPLETED", 100)),
                ("download", dl("FAILED", 0, **{"dp.download.error.message": Metric.string("x")})),
            ],
            (
                FAILED,
                "download of m 1.2.0 failed on the device: x (after the transfer completed: the"
                " file's hash did not match fileHash, or it could not be verified)",
            ),
        ),
        (
            [("download", dl("COMPLETED", 100)), ("download", dl("CANCELLED"))],
            (FAILED, "download of m 1.2.0 was cancelled on the device"),
        ),
        (
            [("download", dl("COMPLETED", 100, **{"dp.download.index": Metric.int32(1)}))],
            (IGNORED, "download notification of the install verifier (COMPLETED) noted"),
        ),
    ],
    ids=[
        "download-failed",
        "cancelled",
        "install-failed",
        "install-only",
        "already-done",
        "unknown-status",
        "other-job",
        "other-resource",
        "stale-download",
        "hash-mismatch-after-completed",
        "cancelled-after-completed",
        "verifier-is-not-the-package",
    ],
)
def test_download_notification_outcomes(
    events: list[tuple[str, KuraPayload]], last: tuple[OutcomeStatus, str]
) -> None:
    assert run(build("Package Download / Install", DOWNLOAD), *events)[-1] == last


def test_a_notification_resource_is_taken_from_the_metrics_when_the_topic_lacks_it() -> None:
    operation = build("Package Download / Install", DOWNLOAD)
    state = AsyncState(123, "install", 0)
    assert operation.notification(state, (), inst("COMPLETED")).status is OK


def test_a_failed_download_reply_is_the_devices_reason() -> None:
    operation = build("Package Download / Install", DOWNLOAD)
    outcome = operation.reply(
        reply(
            500,
            b"Another resource is already in download",
            **{"download.status": Metric.string("IN_PROGRESS")},
        ),
        operation_id=1,
    )
    assert outcome.status is FAILED
    assert outcome.summary == (
        "device replied 500: Another resource is already in download (another download may"
        " be in progress, or the request was malformed)"
    )


def test_async_state_records_round_trip() -> None:
    state = AsyncState(2**62, "install", 40)
    assert AsyncState.from_record(json.loads(json.dumps(state.as_record()))) == state
    with pytest.raises(ValueError, match="not an asynchronous operation state"):
        AsyncState.from_record({"operationId": "1", "phase": "x"})


PACKAGES = (
    b'<?xml version="1.0"?><packages><package><name>m</name><version>1.2.0</version>'
    b"<bundles><bundle><name>m.core</name><version>1.2.0</version></bundle></bundles>"
    b"</package></packages>"
)
IDLE_DOWNLOAD = reply(
    **{
        "dp.download.size": Metric.int32(0),
        "dp.download.progress": Metric.int32(100),
        "dp.download.status": Metric.string("ALREADY DONE"),
    }
)
IDLE_INSTALL = reply(**{"dp.install.status": Metric.string("IDLE")})


def test_recovery_queries_and_their_interpretation() -> None:
    operation = build("Package Download / Install", DOWNLOAD)
    state = AsyncState(123, "download", 10)
    queries = operation.status_queries(state)
    assert [(q.name, q.request.topic("a", "d")) for q in queries] == [
        ("download", "$EDC/a/d/DEPLOY-V2/GET/download"),
        ("install", "$EDC/a/d/DEPLOY-V2/GET/install"),
        ("packages", "$EDC/a/d/DEPLOY-V2/GET/packages"),
    ]
    installed = {
        "download": IDLE_DOWNLOAD,
        "install": IDLE_INSTALL,
        "packages": reply(200, PACKAGES),
    }
    assert operation.recover(state, installed) == operation.recover(state, installed)
    outcome = operation.recover(state, installed)
    assert outcome is not None and outcome.status is OK

    downloading = reply(
        **{
            "dp.download.status": Metric.string("IN_PROGRESS"),
            "dp.download.progress": Metric.int32(70),
            "job.id": Metric.int64(123),
        }
    )
    outcome = operation.recover(
        state,
        {"download": downloading, "install": IDLE_INSTALL, "packages": reply(200, b"<packages/>")},
    )
    assert outcome is not None and (outcome.status, outcome.state) == (
        PROGRESS,
        AsyncState(123, "download", 70),
    )

    installing = reply(
        **{"dp.install.status": Metric.string("IN_PROGRESS"), "dp.name": Metric.string("m")}
    )
    outcome = operation.recover(
        state,
        {"download": IDLE_DOWNLOAD, "install": installing, "packages": reply(200, b"<packages/>")},
    )
    assert outcome is not None and outcome.state == AsyncState(123, "install", 10)

    nothing = {
        "download": IDLE_DOWNLOAD,
        "install": IDLE_INSTALL,
        "packages": reply(200, b"<packages/>"),
    }
    outcome = operation.recover(state, nothing)
    assert outcome is not None and outcome.status is FAILED
    assert "notification was missed" in outcome.summary

    assert operation.recover(state, {**nothing, "install": None}) is None  # unanswered: unsettled
    assert operation.recover(state, {**nothing, "packages": reply(200, b"<not xml")}) is None
    assert operation.status(state, "packages", reply(404)) is None


# --- Package Uninstall --------------------------------------------------------------------------


def test_package_uninstall_request_and_notifications() -> None:
    operation = build(
        "Package Uninstall", {"name": "m", "version": "1.2.0", "reboot": True, "rebootDelay": "5s"}
    )
    request = operation.request(123)
    assert request.topic("acme", "gw-1") == "$EDC/acme/gw-1/DEPLOY-V2/EXEC/uninstall"
    assert typed(request) == {
        "dp.name": (S, "m"),
        "job.id": (I64, 123),
        "dp.version": (S, "1.2.0"),
        "dp.reboot": (B, True),
        "dp.reboot.delay": (I32, 5000),
    }
    completed = notify(
        **{
            "dp.uninstall.status": Metric.string("COMPLETED"),
            "dp.uninstall.progress": Metric.int32(100),
            "dp.name": Metric.string("m"),
        }
    )
    assert run(operation, ("uninstall", completed))[1:] == [(OK, "uninstalled m 1.2.0")]
    failed = notify(
        **{
            "dp.uninstall.status": Metric.string("FAILED"),
            "dp.uninstall.error.message": Metric.string("in use"),
        }
    )
    assert run(operation, ("uninstall", failed))[-1] == (
        FAILED,
        "uninstall of m 1.2.0 failed on the device: in use",
    )
    assert run(operation, ("download", dl("COMPLETED")))[-1][0] is IGNORED


def test_package_uninstall_recovery_reads_the_package_list() -> None:
    operation = build("Package Uninstall", {"name": "m"})
    state = AsyncState(1, "uninstall", 0)
    [query] = operation.status_queries(state)
    assert query.request.topic("a", "d") == "$EDC/a/d/DEPLOY-V2/GET/packages"
    gone = operation.recover(state, {"packages": reply(200, b"<packages/>")})
    assert gone is not None and gone.status is OK
    still = operation.recover(state, {"packages": reply(200, PACKAGES)})
    assert still is not None and still.status is PROGRESS
    assert operation.recover(state, {"packages": None}) is None


# --- Activity Submit (our contract: docs/wire-contracts.md) ------------------------------------


def test_activity_submit_request() -> None:
    operation = build(
        "Activity Submit",
        {
            "activityUri": "https://repo.example.com/a.zip",
            "username": "u",
            "password": "pw",
            "fileHash": "SHA256:ab12",
            "resume": True,
            "blockSize": 1024,
            "blockDelay": "5ms",
            "blockTimeout": "10s",
            "notifyBlockSize": 2048,
            "downloadTimeout": "1m",
            "logLevel": "DEBUG",
            "resourceProperties": {"playbook": "site.yml"},
        },
    )
    request = operation.request(77)
    assert request.topic("acme", "gw-1") == "$EDC/acme/gw-1/ANSIBLE-V1/SUBMIT"
    assert request.operation_id == 77
    assert typed(request) == {
        "id": (I64, 77),
        "job.id": (I64, 77),
        "download.url": (S, "https://repo.example.com/a.zip"),
        "download.username": (S, "u"),
        "download.password": (S, "pw"),
        "download.hash": (S, "SHA256:ab12"),
        "download.resume": (B, True),
        "download.block.size": (I32, 1024),
        "download.block.delay": (I32, 5),
        "download.block.timeout": (I32, 10000),
        "download.notify.block.size": (I32, 2048),
        "download.timeout": (I32, 60000),
        "notify.log.level": (S, "DEBUG"),
        "resource.props": (S, '{"playbook":"site.yml"}'),
    }
    minimal = build("Activity Submit", {"activityUri": "https://r/a.zip"}).request(1)
    assert set(minimal.metrics) == {
        "id",
        "job.id",
        "download.url",
        "download.resume",
        "notify.log.level",
    }


def test_activity_notifications() -> None:
    operation = build("Activity Submit", {"activityUri": "https://r/a.zip"})

    def activity(status: str, progress: int, message: str | None = None) -> KuraPayload:
        extra = {"message": Metric.string(message)} if message else {}
        return notify(status=Metric.string(status), progress=Metric.int32(progress), **extra)

    assert run(
        operation,
        ("activity", activity("IN_PROGRESS", 30, "copying")),
        ("activity", activity("COMPLETED", 100)),
    )[1:] == [(PROGRESS, "activity running: 30% (copying)"), (OK, "activity completed")]
    assert run(operation, ("activity", activity("FAILED", 0, "exit 2")))[-1] == (
        FAILED,
        "activity failed on the device: exit 2",
    )
    assert run(operation, ("other", activity("COMPLETED", 100)))[-1][0] is IGNORED
    assert operation.status_queries(AsyncState(1, "activity")) == ()


def test_metric_types_of_async_notifications_are_read_leniently() -> None:
    """A device that sends progress as INT64 (simple-json does) is still understood."""
    operation = build("Package Download / Install", {**DOWNLOAD, "install": False})
    payload = KuraPayload.of(
        {
            "job.id": Metric(MetricType.INT64, 123),
            "dp.download.status": Metric.string("IN_PROGRESS"),
            "dp.download.progress": Metric(MetricType.INT64, 55),
        }
    )
    outcome = operation.notification(AsyncState(123, "download", 0), ("download",), payload)
    assert (outcome.status, outcome.state) == (PROGRESS, AsyncState(123, "download", 55))


@pytest.mark.parametrize(
    ("definition", "properties", "metric"),
    [
        (
            "Package Download / Install",
            {**DOWNLOAD, "fileHash": "MD5:46CB0AD3"},
            "dp.download.hash",
        ),
        (
            "Activity Submit",
            {"activityUri": "https://repo.example.com/a.zip", "fileHash": "SHA256:AB12"},
            "download.hash",
        ),
    ],
)
def test_a_file_hash_goes_out_in_lowercase_hex_as_kura_compares_it(
    definition: str, properties: dict[str, object], metric: str
) -> None:
    """Kura compares the hex digits it computes, lowercase, to the text it was sent."""
    request = build(definition, properties).request(1)
    algorithm, _, digits = str(typed(request)[metric][1]).partition(":")
    assert digits == digits.lower() and digits.upper() == str(properties["fileHash"]).split(":")[1]
    assert algorithm == str(properties["fileHash"]).split(":")[0]
