"""ANSIBLE-V1: Activity Submit. ESF documents the request but not the notifications
(kura-protocol.md §4.8); this is the contract jobrunner chose, spoken by its runner too:

    request  $EDC/{account}/{device}/ANSIBLE-V1/SUBMIT           (no resources)
             `id` INT64 and `job.id` INT64 (the same value), `download.url` STRING required;
             optional `download.block.size`, `download.block.timeout`, `download.block.delay`,
             `download.notify.block.size`, `download.timeout` (INT32), `download.resume`
             (BOOL), `download.username`, `download.password`, `download.hash`,
             `notify.log.level`, `resource.props` (STRING)
    reply    200 = accepted; 400 when a required metric is missing or any is mistyped
    notify   $EDC/{account}/{requester}/ANSIBLE-V1/NOTIFY/{device}/activity
             `job.id` INT64, `status` STRING (IN_PROGRESS…, then COMPLETED or FAILED),
             `progress` INT32, `message` STRING (optional), `client.id` STRING

Any other method is what Kura answers for a method a handler does not implement.
"""

from __future__ import annotations

from jobrunner.device.payload import Metric, MetricType
from jobrunner.simulator.apps.base import (
    Call,
    Device,
    Handler,
    KuraError,
    MetricTypeError,
    Process,
    Reply,
    bool_metric,
    int32_metric,
    int64_metric,
    string_metric,
)

APP_ID = "ANSIBLE-V1"
_OPTIONAL = {
    "download.block.size": int32_metric,
    "download.block.timeout": int32_metric,
    "download.block.delay": int32_metric,
    "download.notify.block.size": int32_metric,
    "download.timeout": int32_metric,
    "download.resume": bool_metric,
    "download.username": string_metric,
    "download.password": string_metric,
    "download.hash": string_metric,
    "notify.log.level": string_metric,
    "resource.props": string_metric,
}


def _note(
    device: Device, requester: str, job_id: int, status: str, progress: int, message: str | None
) -> None:
    metrics = {
        "client.id": Metric(MetricType.STRING, device.client_id),
        "job.id": Metric(MetricType.INT64, job_id),
        "status": Metric(MetricType.STRING, status),
        "progress": Metric(MetricType.INT32, progress),
    }
    if message is not None:
        metrics["message"] = Metric(MetricType.STRING, message)
    device.notify(requester, APP_ID, "activity", metrics)


def submit(call: Call) -> Reply:
    """SUBMIT: accept the activity (200) and run it, notifying its progress."""
    if call.request.resources:
        raise KuraError(404, f"resource {'/'.join(call.request.resources)!r} not found")
    payload = call.request.payload
    try:
        operation_id = int64_metric(payload, "id")
        job_id = int64_metric(payload, "job.id")
        url = string_metric(payload, "download.url")
        for name, read in _OPTIONAL.items():
            read(payload, name)
    except MetricTypeError as error:
        raise KuraError(400, f"malformed request: {error}") from None
    if operation_id is None or job_id is None or not url:
        raise KuraError(400, "malformed request: id, job.id and download.url are required")
    if operation_id != job_id:
        raise KuraError(400, f"malformed request: id {operation_id} differs from job.id {job_id}")
    call.device.spawn(
        _run(call.device, call.request.requester, job_id, url, call.fail is not None),
        f"activity {job_id}",
    )
    return Reply()


def _run(device: Device, requester: str, job_id: int, url: str, fail: bool) -> Process:
    pause = device.timing.activity_seconds / 3
    _note(device, requester, job_id, "IN_PROGRESS", 0, f"downloading {url}")
    yield pause
    _note(device, requester, job_id, "IN_PROGRESS", 50, "running the activity playbook")
    yield pause
    if fail:
        _note(device, requester, job_id, "FAILED", 50, "activity failed: task 2 of 4 returned rc 2")
        return
    yield pause
    _note(device, requester, job_id, "COMPLETED", 100, "activity completed")


HANDLERS: dict[str, Handler] = {"SUBMIT": submit}
