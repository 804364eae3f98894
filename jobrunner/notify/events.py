"""The events of executions and rollouts as CloudEvents 1.0, routed to the Notifications.

An engine observer: on the engine's thread, each event is matched against the scope's
Notification manifests (as the last reconcile read them) and written to the outbox, one
entry per notification that wants it, in that notification's lane. Nothing here waits for
a receiver.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from jobrunner.engine.link.observers import Observer
from jobrunner.engine.status import execution_view, failure_view
from jobrunner.manifests import ManifestSet
from jobrunner.state.layout import JobKey
from jobrunner.state.outbox import Outbox
from jobrunner.state.records import ExecutionSummary
from jobrunner.state.targets import TargetState

log = logging.getLogger("jobrunner.notify")

TYPE_PREFIX = "jobrunner."
"""CloudEvents `type` is this prefix and the event's name: `jobrunner.execution.ended`."""


def cloud_event(
    name: str, job: JobKey, subject: str, data: dict[str, Any], runner: str
) -> dict[str, Any]:
    """A CloudEvents 1.0 event in its JSON form (structured content mode)."""
    scope, job_name = job
    return {
        "specversion": "1.0",
        "id": uuid.uuid4().hex,
        "source": f"/scopes/{scope}/jobs/{job_name}",
        "type": TYPE_PREFIX + name,
        "subject": subject,
        "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "datacontenttype": "application/json",
        "runner": runner,  # an extension attribute: which runner saw it happen
        "data": {"scope": scope, "job": job_name, **data},
    }


class NotificationEvents(Observer):
    """Writes the events each Notification asks for to the outbox."""

    def __init__(
        self,
        outbox: Outbox,
        manifests: Callable[[], ManifestSet | None],
        runner: str,
        wake: Callable[[], None],
    ) -> None:
        self.outbox = outbox
        self.manifests = manifests
        self.runner = runner
        self.wake = wake
        self._failing = False

    def execution_ended(self, job: JobKey, summary: ExecutionSummary) -> None:
        data = execution_view(summary)
        data["execution"] = data.pop("id")
        data["reason"] = summary.message
        self._emit("execution.ended", job, f"executions/{summary.id}", data)

    def target_failed(self, job: JobKey, execution: int, target: TargetState) -> None:
        data: dict[str, Any] = {
            "execution": execution,
            "clientId": target.client_id,
            "stepIndex": target.step_index,
            "message": target.message,
            "failure": None if target.failure is None else failure_view(target.failure),
        }
        self._emit("target.failed", job, f"targets/{target.client_id}", data)

    def wave_passed(self, job: JobKey, execution: int, wave: str, decision: str) -> None:
        data = {"execution": execution, "wave": wave, "decision": decision}
        self._emit("rollout.wave.passed", job, f"waves/{wave}", data)

    def wave_approved(self, job: JobKey, execution: int | None, wave: str, by: str) -> None:
        data = {"execution": execution, "wave": wave, "approvedBy": by}
        self._emit("rollout.wave.approved", job, f"waves/{wave}", data)

    def rollout_aborted(self, job: JobKey, execution: int, reason: str) -> None:
        data = {"execution": execution, "reason": reason}
        self._emit("rollout.aborted", job, f"executions/{execution}", data)

    def _emit(self, name: str, job: JobKey, subject: str, data: dict[str, Any]) -> None:
        declared = self.manifests()
        if declared is None:
            return
        scope, job_name = job
        wanted = [
            f"{s}/{n}"
            for (s, n), notification in sorted(declared.notifications.items())
            if s == scope
            and name in notification.manifest.spec.events
            and (not notification.manifest.spec.jobs or job_name in notification.manifest.spec.jobs)
        ]
        if not wanted:
            return
        event = cloud_event(name, job, subject, data, self.runner)
        try:
            for to in wanted:
                self.outbox.put(to, event)
        except OSError as error:  # a full disk: the event is lost, the engine goes on
            if not self._failing:
                log.error("notifications: cannot write the outbox (%s); events are lost", error)
            self._failing = True
            return
        self._failing = False
        self.wake()
