"""DEPLOY-V2, the asynchronous part: download (and install), install, uninstall, cancel.

Replies and notification sequences follow Kura (kura-protocol.md §4.4, §4.5, §5):

- `EXEC download` needs `dp.uri`, `dp.name`, `dp.version`, `dp.download.protocol` (STRING),
  `job.id` (INT64) and `dp.install.system.update` (BOOL); a missing one or any known metric
  of the wrong type is 400 "malformed request". While a download (and the install after
  it) is pending, another one is 500 with `download.status` IN_PROGRESS.
- Accepted: 200, then on `$EDC/{account}/{requester}/DEPLOY-V2/NOTIFY/{device}/download`
  IN_PROGRESS notifications (progress 0 first) and COMPLETED; with `dp.install` (default
  true) an `install` notification COMPLETED or FAILED follows, and the package shows in
  the package list. A failed transfer sends the stream's FAILED then Kura's generic
  FAILED; a hash mismatch (a fault; only when the request gives `dp.download.hash`)
  sends COMPLETED (the transfer worked) then the generic FAILED.
  A file already downloaded (install false earlier) completes at once unless
  `dp.download.force`.
- A system update (`dp.install.system.update` true) runs as a script: no install
  notification at once; the device reboots and sends it after its new BIRTH.
- `EXEC uninstall` (`dp.name`, `job.id` required): 200, then an `uninstall` notification
  COMPLETED (also when the package is not installed) or FAILED.
Deployment work runs one piece at a time, in order, as on Kura's single deployment thread.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from jobrunner.device.payload import Metric, MetricType
from jobrunner.simulator.apps.base import (
    Call,
    Device,
    KuraError,
    MetricTypeError,
    Process,
    Reply,
    bool_metric,
    int32_metric,
    int64_metric,
    string_metric,
)
from jobrunner.simulator.catalog import Bundle, Package
from jobrunner.simulator.state import PendingDownload

APP_ID = "DEPLOY-V2"
_GENERIC_FAILURE = "Error during download process and verification!"
_OPTIONAL = {
    "dp.install": bool_metric,
    "dp.reboot": bool_metric,
    "dp.reboot.delay": int32_metric,
    "dp.download.block.size": int32_metric,
    "dp.download.block.delay": int32_metric,
    "dp.download.timeout": int32_metric,
    "dp.download.notify.block.size": int32_metric,
    "dp.download.resume": bool_metric,
    "dp.download.force": bool_metric,
    "dp.download.username": string_metric,
    "dp.download.password": string_metric,
    "dp.download.hash": string_metric,
    "dp.install.verifier.uri": string_metric,
    "request.type": string_metric,
    "hook.properties": string_metric,
}


def _int(value: object) -> int:
    assert isinstance(value, int)
    return value


def _required(call: Call, names: dict[str, Callable[..., object]]) -> dict[str, object]:
    payload = call.request.payload
    try:
        values = {name: read(payload, name) for name, read in names.items()}
    except MetricTypeError as error:
        raise KuraError(400, f"malformed request: {error}") from None
    missing = [name for name, value in values.items() if value is None]
    if missing:
        raise KuraError(400, f"malformed request: missing {', '.join(missing)}")
    return values


def _notify(device: Device, requester: str, resource: str, metrics: dict[str, Metric]) -> None:
    metrics = {"client.id": Metric(MetricType.STRING, device.client_id), **metrics}
    device.notify(requester, APP_ID, resource, metrics)


def _download_note(
    device: Device,
    p: PendingDownload,
    size: int,
    progress: int,
    status: str,
    message: str | None = None,
    index: int | None = 0,
) -> None:
    metrics = {
        "dp.download.size": Metric(MetricType.INT32, size),
        "dp.download.progress": Metric(MetricType.INT32, progress),
        "dp.download.status": Metric(MetricType.STRING, status),
        "job.id": Metric(MetricType.INT64, p.job_id),
    }
    if message is not None:
        metrics["dp.download.error.message"] = Metric(MetricType.STRING, message)
    if index is not None:
        metrics["dp.download.index"] = Metric(MetricType.INT32, index)
    _notify(device, p.requester, "download", metrics)


def _install_note(device: Device, requester: str, job_id: int, file: str, ok: bool) -> None:
    metrics = {
        "dp.install.status": Metric(MetricType.STRING, "COMPLETED" if ok else "FAILED"),
        "job.id": Metric(MetricType.INT64, job_id),
        "dp.name": Metric(MetricType.STRING, file),
        "dp.install.progress": Metric(MetricType.INT32, 100 if ok else 0),
    }
    if not ok:
        metrics["dp.install.error.message"] = Metric(
            MetricType.STRING, f"Install of {file} failed: deployment admin refused the package"
        )
    _notify(device, requester, "install", metrics)


def _serially(device: Device, work: Callable[[], Process], label: str) -> None:
    """Queue deployment work behind what is running (Kura's single deployment thread)."""
    queue = device.state.deploy_queue
    queue.append(work)
    if len(queue) == 1:
        device.spawn(_drain(device), label)


def _drain(device: Device) -> Process:
    queue = device.state.deploy_queue
    while queue:
        work = queue[0]
        assert callable(work)
        yield from work()
        queue.pop(0)


def download(call: Call) -> Reply:
    """EXEC download: validate, answer, and queue the transfer (and install)."""
    device, state = call.device, call.device.state
    values = _required(
        call,
        {
            "dp.uri": string_metric,
            "dp.name": string_metric,
            "dp.version": string_metric,
            "dp.download.protocol": string_metric,
            "job.id": int64_metric,
            "dp.install.system.update": bool_metric,
        },
    )
    try:
        options = {name: read(call.request.payload, name) for name, read in _OPTIONAL.items()}
    except MetricTypeError as error:
        raise KuraError(400, f"malformed request: {error}") from None
    if state.download is not None:
        return Reply(
            500,
            {"download.status": Metric(MetricType.STRING, "IN_PROGRESS")},
            body=b"Another resource is already in download",
        )
    name, version = str(values["dp.name"]), str(values["dp.version"])
    system_update = values["dp.install.system.update"] is True
    pending = PendingDownload(
        job_id=_int(values["job.id"]),
        name=name,
        version=version,
        uri=str(values["dp.uri"]),
        requester=call.request.requester,
        size=device.timing.package_size,
    )
    state.download = pending
    file = f"{name}_{version}{'.sh' if system_update else '.dp'}"
    already = file in state.downloaded and options["dp.download.force"] is not True
    notify_block = options["dp.download.notify.block.size"]
    steps = (
        min(max(math.ceil(pending.size / notify_block), 1), 20)
        if isinstance(notify_block, int) and notify_block > 0
        else max(device.timing.progress_steps, 1)
    )
    protocol = str(values["dp.download.protocol"]).upper()
    fail = call.fail if call.fail in ("failed", "hash-mismatch") else None
    if fail == "hash-mismatch" and options["dp.download.hash"] is None:
        fail = None  # no hash asked for, none checked: the download works
    if protocol not in ("HTTP", "HTTPS", "FTP"):
        fail = "failed"
    install = options["dp.install"] is not False
    reboot_ms = options["dp.reboot.delay"] if options["dp.reboot"] is True else None

    def work() -> Process:
        try:
            yield from _transfer(device, pending, steps, already, fail)
            if pending.status != "COMPLETED" or pending.cancelled:
                return
            if not install:
                state.downloaded.add(file)
                return
            yield from _install(device, pending, file, system_update)
        finally:
            if state.download is pending:  # a cancel may have let another one start
                state.download = None
        if reboot_ms is not None:
            device.reboot(_int(reboot_ms) / 1000)

    _serially(device, work, f"download {file}")
    return Reply()


def _transfer(
    device: Device, p: PendingDownload, steps: int, already: bool, fail: str | None
) -> Process:
    if already:
        p.status, p.progress = "COMPLETED", 100
        _download_note(device, p, 0, 100, "COMPLETED", index=None)
        return
    _download_note(device, p, p.size, 0, "IN_PROGRESS")
    pause = device.timing.download_seconds / steps
    for step in range(1, steps):
        yield pause
        if p.cancelled:
            return
        p.progress = step * 100 // steps
        if fail == "failed" and step * 2 >= steps:
            break
        _download_note(device, p, p.size, p.progress, "IN_PROGRESS")
    else:
        yield pause
        if p.cancelled:
            return
    if fail == "failed":
        p.status = "FAILED"
        _download_note(device, p, p.size, p.progress, "FAILED", "Connection reset")
        _download_note(device, p, 0, 0, "FAILED", _GENERIC_FAILURE)
        return
    p.progress = 100
    _download_note(device, p, p.size, 100, "COMPLETED")
    if fail == "hash-mismatch":
        p.status = "FAILED"
        _download_note(device, p, 0, 0, "FAILED", _GENERIC_FAILURE)
        return
    p.status = "COMPLETED"


def _install(device: Device, p: PendingDownload, file: str, system_update: bool) -> Process:
    state = device.state
    p.installing = True
    state.install = p
    yield device.timing.install_seconds
    state.install = None
    ok = not device.phase_fails("install")
    if system_update:
        # The script reboots the gateway; Kura confirms after the restart, from the
        # persisted verifier, to the requester it remembered.
        if ok:
            device.reboot(0.0)
            yield device.timing.reboot_seconds + 1.0
        _install_note(device, p.requester, p.job_id, file, ok)
        return
    if ok:
        _put_package(device, p.name, p.version)
    _install_note(device, p.requester, p.job_id, file, ok)


def _put_package(device: Device, name: str, version: str) -> None:
    state = device.state
    old = state.packages.get(name)
    ids = old.bundle_ids if old else (state.new_bundle_id(),)
    for bundle_id in ids:
        previous = state.bundles.get(bundle_id)
        bundle_name = previous.name if previous else name
        state.set_bundle(Bundle(bundle_id, bundle_name, version, "ACTIVE"))
    state.set_package(Package(name, version, ids))


def install(call: Call) -> Reply:
    """EXEC install: install a file downloaded earlier with `dp.install` false."""
    device, state = call.device, call.device.state
    values = _required(
        call,
        {
            "dp.name": string_metric,
            "dp.version": string_metric,
            "job.id": int64_metric,
            "dp.install.system.update": bool_metric,
        },
    )
    system_update = values["dp.install.system.update"] is True
    name, version = str(values["dp.name"]), str(values["dp.version"])
    file = f"{name}_{version}{'.sh' if system_update else '.dp'}"
    if file not in state.downloaded or state.install is not None:
        raise KuraError(400, f"{file} is not downloaded, or an install is running")
    state.downloaded.discard(file)
    pending = PendingDownload(
        _int(values["job.id"]), name, version, "", call.request.requester, 0, 100, "COMPLETED"
    )

    def work() -> Process:
        yield from _install(device, pending, file, system_update)

    _serially(device, work, f"install {file}")
    return Reply()


def uninstall(call: Call) -> Reply:
    """EXEC uninstall: answer 200 and queue the removal."""
    device = call.device
    values = _required(call, {"dp.name": string_metric, "job.id": int64_metric})
    try:
        string_metric(call.request.payload, "dp.version")
        reboot = bool_metric(call.request.payload, "dp.reboot")
        reboot_delay = int32_metric(call.request.payload, "dp.reboot.delay")
    except MetricTypeError as error:
        raise KuraError(400, f"malformed request: {error}") from None
    name, job_id = str(values["dp.name"]), _int(values["job.id"])
    requester = call.request.requester
    fail = call.fail is not None

    def work() -> Process:
        yield device.timing.uninstall_seconds
        state = device.state
        metrics = {"job.id": Metric(MetricType.INT64, job_id)}
        if fail:
            metrics["dp.uninstall.status"] = Metric(MetricType.STRING, "FAILED")
            metrics["dp.uninstall.progress"] = Metric(MetricType.INT32, 0)
            metrics["dp.uninstall.error.message"] = Metric(
                MetricType.STRING, f"Uninstall of {name} failed: the package is in use"
            )
        else:
            package = state.remove_package(name)
            for bundle_id in package.bundle_ids if package else ():
                state.remove_bundle(bundle_id)
            metrics["dp.uninstall.status"] = Metric(MetricType.STRING, "COMPLETED")
            metrics["dp.uninstall.progress"] = Metric(MetricType.INT32, 100)
        metrics["dp.name"] = Metric(MetricType.STRING, name)
        _notify(device, requester, "uninstall", metrics)
        if reboot is True and not fail:
            device.reboot((reboot_delay or 0) / 1000)

    _serially(device, work, f"uninstall {name}")
    return Reply()


def cancel(call: Call) -> Reply:
    """DEL download: stop the transfer in progress with a CANCELLED notification."""
    pending = call.device.state.download
    if pending is not None and not pending.installing and not pending.cancelled:
        pending.cancelled = True
        pending.status = "CANCELLED"
        _download_note(
            call.device, pending, pending.size, pending.progress, "CANCELLED", "Download cancelled"
        )
        call.device.state.download = None
    return Reply()
