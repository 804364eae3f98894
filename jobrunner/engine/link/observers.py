"""What the engine tells as it runs, for those who watch it: metrics and notifications.

An `Observer` hears of requests, anomalies and the events of executions and rollouts. Its
methods are called on the engine's thread (`request_ended` for a reply on the MQTT client's
reader thread too, `inbound_dropped` on its network thread) and must return at once: they
count, or queue, and never wait.
"""

from __future__ import annotations

from jobrunner.state.layout import JobKey
from jobrunner.state.records import ExecutionSummary
from jobrunner.state.targets import TargetState

FIRE_STARTED = "started"
FIRE_NOTHING_TO_DO = "nothing-to-do"
FIRE_SKIPPED_RUNNING = "skipped-running"
FIRE_OUTSIDE_WINDOW = "outside-window"
FIRE_RESULTS = (FIRE_STARTED, FIRE_NOTHING_TO_DO, FIRE_SKIPPED_RUNNING, FIRE_OUTSIDE_WINDOW)
"""What a schedule's fire did (`jobrunner_schedule_fires_total{result}`)."""


class Observer:
    """Hears nothing: the base of every observer, and the engine's default."""

    def request_sent(self, request_id: str, app_id: str) -> None:
        """A request is being published (its reply may come before the publication returns)."""

    def request_unsent(self, request_id: str) -> None:
        """A request told as sent could not be published after all."""

    def request_ended(self, request_id: str, app_id: str, outcome: str) -> None:
        """A request's reply came (`ok`, `error`, `unreadable`) or its time ran out
        (`timeout`)."""

    def anomaly(self, kind: str) -> None:
        """A message was ignored (late, duplicate, stray, unreadable...)."""

    def inbound_dropped(self, lane: str) -> None:
        """A message from the broker was dropped unread: too many were waiting to be read
        (`lane`: `replies` or `lifecycle`). Called on the MQTT client's network thread."""

    def execution_ended(self, job: JobKey, summary: ExecutionSummary) -> None:
        """An execution ended (TERMINATED, STOPPED or ABORTED)."""

    def target_failed(self, job: JobKey, execution: int, target: TargetState) -> None:
        """A target became PROCESS_FAILED."""

    def wave_passed(self, job: JobKey, execution: int, wave: str, decision: str) -> None:
        """A rollout's wave passed its gate."""

    def wave_approved(self, job: JobKey, execution: int | None, wave: str, by: str) -> None:
        """A rollout's wave that waits for an approval (`approval: required`) was approved;
        `execution`: the running one, if any."""

    def rollout_aborted(self, job: JobKey, execution: int, reason: str) -> None:
        """A rollout's execution was aborted."""

    def rollback_ended(self, job: JobKey, client_id: str, result: str) -> None:
        """A target's rollback to its snapshot ended: `done`, `gone` or `failed`."""

    def schedule_fired(self, job: JobKey, result: str) -> None:
        """A time schedule of the job fired; `result` is one of FIRE_RESULTS."""


class Observers(Observer):
    """Several observers, heard in turn."""

    def __init__(self, *observers: Observer) -> None:
        self.observers = list(observers)

    def request_sent(self, request_id: str, app_id: str) -> None:
        for observer in self.observers:
            observer.request_sent(request_id, app_id)

    def request_unsent(self, request_id: str) -> None:
        for observer in self.observers:
            observer.request_unsent(request_id)

    def request_ended(self, request_id: str, app_id: str, outcome: str) -> None:
        for observer in self.observers:
            observer.request_ended(request_id, app_id, outcome)

    def anomaly(self, kind: str) -> None:
        for observer in self.observers:
            observer.anomaly(kind)

    def inbound_dropped(self, lane: str) -> None:
        for observer in self.observers:
            observer.inbound_dropped(lane)

    def execution_ended(self, job: JobKey, summary: ExecutionSummary) -> None:
        for observer in self.observers:
            observer.execution_ended(job, summary)

    def target_failed(self, job: JobKey, execution: int, target: TargetState) -> None:
        for observer in self.observers:
            observer.target_failed(job, execution, target)

    def wave_passed(self, job: JobKey, execution: int, wave: str, decision: str) -> None:
        for observer in self.observers:
            observer.wave_passed(job, execution, wave, decision)

    def wave_approved(self, job: JobKey, execution: int | None, wave: str, by: str) -> None:
        for observer in self.observers:
            observer.wave_approved(job, execution, wave, by)

    def rollout_aborted(self, job: JobKey, execution: int, reason: str) -> None:
        for observer in self.observers:
            observer.rollout_aborted(job, execution, reason)

    def rollback_ended(self, job: JobKey, client_id: str, result: str) -> None:
        for observer in self.observers:
            observer.rollback_ended(job, client_id, result)

    def schedule_fired(self, job: JobKey, result: str) -> None:
        for observer in self.observers:
            observer.schedule_fired(job, result)
