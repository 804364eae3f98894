"""Activity Submit — after the public ESF description (kura-protocol.md §4.8); the topic and
metrics of its notifications are ours (docs/wire-contracts.md), implemented the same way by
the simulated fleet.

    request       {ACTIVITY_APP} SUBMIT (no resources); ACTIVITY_APP is ANSIBLE-V1 by default
                  id, job.id INT64 (the operation id); download.url STRING; optional
                  download.username / .password / .hash STRING, download.resume BOOL,
                  download.block.size INT32, download.block.delay / .block.timeout INT32 ms,
                  download.notify.block.size INT32, download.timeout INT32 ms,
                  notify.log.level STRING, resource.props STRING (a JSON object)
    reply         200: accepted
    notification  $EDC/{account}/{requester}/{ACTIVITY_APP}/NOTIFY/{device}/activity
                  job.id INT64, status STRING (IN_PROGRESS | COMPLETED | FAILED),
                  progress INT32, optional message STRING
"""

from __future__ import annotations

import json

from jobrunner.device.model import Request
from jobrunner.device.operations.base import (
    AsyncOperation,
    AsyncState,
    Outcome,
    file_hash_metric,
    int32_metric,
    int_metric,
    millis_metric,
    operation_id_metric,
    secret_string,
    text_metric,
    with_percent,
)
from jobrunner.device.payload import KuraPayload, Metric, present
from jobrunner.manifests.steps import ActivitySubmit, ActivitySubmitStep

ACTIVITY = "activity"
SECRETS = frozenset({"download.password"})


class SubmitActivity(AsyncOperation[ActivitySubmit]):
    step = ActivitySubmitStep

    @property
    def app_id(self) -> str:
        return self.settings.activity_app

    def request(self, operation_id: int = 0) -> Request:
        p = self.properties
        job = operation_id_metric(operation_id)
        props = json.dumps(p.resource_properties, separators=(",", ":"), ensure_ascii=False)
        metrics: dict[str, Metric | None] = {
            "id": job,
            "job.id": job,
            "download.url": Metric.string(p.activity_uri),
            "download.username": secret_string(p.username),
            "download.password": secret_string(p.password),
            "download.hash": file_hash_metric(p.file_hash),
            "download.resume": Metric.boolean(p.resume),
            "download.block.size": int32_metric("blockSize", p.block_size),
            "download.block.delay": millis_metric("blockDelay", p.block_delay),
            "download.block.timeout": millis_metric("blockTimeout", p.block_timeout),
            "download.notify.block.size": int32_metric("notifyBlockSize", p.notify_block_size),
            "download.timeout": millis_metric("downloadTimeout", p.download_timeout),
            "notify.log.level": Metric.string(p.log_level),
            "resource.props": Metric.string(props) if p.resource_properties else None,
        }
        return Request(
            self.app_id,
            self.settings.activity_method,
            self.settings.activity_resources,
            present(metrics),
            operation_id=operation_id,
            secrets=SECRETS,
        )

    def awaited(self) -> tuple[str, str]:
        return "the activity", ACTIVITY

    def resources(self) -> tuple[str, ...]:
        return (self.settings.activity_notify_resource,)

    def resource_of(self, resources: tuple[str, ...], payload: KuraPayload) -> str | None:
        # Some devices notify on the app's topic alone: theirs is the activity's resource.
        return resources[0] if resources else self.settings.activity_notify_resource

    def notified(self, state: AsyncState, resource: str, payload: KuraPayload) -> Outcome:
        status = text_metric(payload, "status")
        message = text_metric(payload, "message")
        if status == "COMPLETED":
            return Outcome.ok("activity completed" + (f": {message}" if message else ""))
        if status == "FAILED":
            return Outcome.failed(f"activity failed on the device: {message or 'no reason given'}")
        if status == "IN_PROGRESS":
            now = with_percent(state, int_metric(payload, "progress"))
            return Outcome.progress(
                now, f"activity running: {now.percent or 0}%" + (f" ({message})" if message else "")
            )
        return Outcome.ignored(f"activity notification with unknown status {status!r}", state)
