"""The executor: sends each target's steps in order and moves targets through their statuses.

One thread runs `Engine.run_until()`. It takes events from the inbox in batches (replies,
timeouts, notifications, device connects and disconnects, commands), applies each one to the
recorded state, dispatches the targets that are ready (at most `max_in_flight` requests out,
one operation at a time per device), writes what changed, and only then publishes: a request
is recorded with its id before it leaves, so a restarted runner never sends it twice.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from jobrunner.device.payload import KuraPayload
from jobrunner.engine.devices import Devices
from jobrunner.engine.events import (
    Anomaly,
    Command,
    ConnectionChanged,
    DeviceConnected,
    DeviceDisconnected,
    Event,
    Inbox,
    NotificationArrived,
    ReplyArrived,
    ReplyTimedOut,
)
from jobrunner.engine.ports import (
    Accepted,
    DeviceLink,
    Failed,
    Ignored,
    Outcome,
    Progressed,
    Succeeded,
    Tag,
)
from jobrunner.engine.runtime import DeviceQueue, JobKey, RunningJob
from jobrunner.engine.timers import Deadlines
from jobrunner.errors import NotConnectedError, PayloadError
from jobrunner.state.records import ExecutionStatus, counts_text
from jobrunner.state.targets import TargetState, TargetStatus

log = logging.getLogger(__name__)
_NO_REPLY = KuraPayload()  # marks a status query that timed out
LWT_GRACE = 2.0
"""Seconds an LWT waits before it fails a target: a broker that shuts down publishes the
wills of every device it holds just before it drops the runner too (mosquitto does), and
that is the broker's outage, not the devices'."""


@dataclass(frozen=True)
class EngineSettings:
    max_in_flight: int = 200
    """Requests out at once, across all executions (stock mosquitto drops messages for a
    client more than 1,000 behind: keep well under)."""
    durable: bool = True
    """fsync recorded dispatches before publishing them (survives power loss, not only a kill)."""
    reconnect_retry: float = 1.0
    """Seconds before a target whose request could not be published is tried again."""


Outgoing = tuple[RunningJob, TargetState, str]
"""A target whose request is recorded, to publish; with what the log says once it left."""


def new_request_id() -> str:
    # Random 63-bit decimal, as the device cloud does: unique without coordination. From the
    # system's CSPRNG: in Kura's topics the id is all that ties a reply to its request, so a
    # device must not be able to predict the ids of requests sent to other devices.
    return str(secrets.randbits(63))


def new_operation_id() -> int:
    return secrets.randbits(62) + 1


class Engine:
    """Runs executions of jobs against devices. Not thread-safe: use `submit` from elsewhere."""

    def __init__(
        self,
        link: DeviceLink,
        devices: Devices,
        settings: EngineSettings | None = None,
        clock: Callable[[], float] = time.time,
        inbox: Inbox | None = None,
    ) -> None:
        self.link = link
        self.devices = devices
        self.settings = settings or EngineSettings()
        self.clock = clock
        self.inbox = inbox or Inbox()
        self.jobs: dict[JobKey, RunningJob] = {}
        self.device_queue = DeviceQueue()
        self.operations: dict[int, tuple[JobKey, str]] = {}  # operation id -> target
        self.early: dict[int, list[NotificationArrived]] = {}  # notified before the reply
        self.status_replies: dict[tuple[JobKey, str], dict[str, KuraPayload | None]] = {}
        self.status_asks: deque[tuple[JobKey, str]] = deque()  # queries waiting for the window
        self.deadlines = Deadlines()
        self.connected = True
        self.draining = False
        """The runner is about to exit: nothing new is sent, replies in flight are taken."""
        self.storage_problem: str | None = None
        """Why the state directory cannot be written (dispatching is paused), or None."""
        self.listening_since = clock()
        """Since when the runner has heard every lifecycle message (its last (re)connect)."""
        self.connection_lost_at: float | None = None
        """When the broker connection was last lost (None: never, since the start)."""
        self._lwt_at: dict[tuple[JobKey, str], float] = {}  # LWTs waiting out LWT_GRACE
        self._settling: dict[tuple[JobKey, str], tuple[str | None, str | None]] = {}
        self.listeners: list[Callable[[Event], None]] = []
        self.connect_hooks: list[Callable[[DeviceConnected], None]] = []
        self._retry_at: float | None = None

    # -- the loop -----------------------------------------------------------------------

    def submit(self, run: Callable[[], Any]) -> Command:
        """Run `run()` on the engine's thread; wait on the returned command's future."""
        command = Command(run)
        self.inbox.put(command)
        return command

    def run_until(self, done: Callable[[], bool], poll: float = 0.5) -> None:
        """Process events until `done()` is true (checked after each batch)."""
        while not done():
            self.step(poll)

    def step(self, wait: float) -> None:
        """One turn: take events, apply them, fire deadlines, dispatch, write, publish."""
        now = self.clock()
        timeout = min(wait, max(0.0, self.deadlines.next_due(now + wait) - now))
        if self._has_ready():
            timeout = 0.0
        for event in self.inbox.take(timeout):
            self._handle(event)
        for key, client_id, marker in self.deadlines.due(self.clock()):
            self._deadline_passed(key, client_id, marker)
        outgoing = [] if self.storage_problem else self._dispatch()
        if self._flush(durable=self.settings.durable and bool(outgoing)):
            self._publish(outgoing)
        else:  # not recorded, so not sent: they go back to their queue
            for job, target, _ in outgoing:
                self._unsend(job, target, reconnect=False)
        self._end_finished_executions()
        self._flush(durable=False)

    def _handle(self, event: Event) -> None:
        for listener in self.listeners:
            listener(event)
        if isinstance(event, ReplyArrived):
            self._on_reply(event)
        elif isinstance(event, ReplyTimedOut):
            self._on_timeout(event.tag)
        elif isinstance(event, NotificationArrived):
            self._on_notification(event)
        elif isinstance(event, DeviceDisconnected):
            self._on_disconnect(event)
        elif isinstance(event, DeviceConnected):
            self._on_connect(event)
        elif isinstance(event, ConnectionChanged):
            self._on_connection(event)
        elif isinstance(event, Anomaly):
            self._on_anomaly(event)
        elif isinstance(event, Command) and event.future.set_running_or_notify_cancel():
            try:
                event.future.set_result(event.run())
            except BaseException as error:  # handed to the caller, who decides
                event.future.set_exception(error)

    # -- dispatch -------------------------------------------------------------------------

    def _has_ready(self) -> bool:
        if self.draining or not self.connected:
            return False
        if self.link.in_flight() >= self.settings.max_in_flight:
            return False
        if self.status_asks:
            return True
        return any(j.run and j.run.ready and not j.run.stopping for j in self.jobs.values())

    def ask_status(self, job: RunningJob, client_id: str) -> None:
        """Ask a device where its asynchronous operation stands (after a restart or a reconnect):
        notifications published while the runner was away are lost (Kura sends them at QoS 0).
        The queries wait for room in the in-flight window like any request."""
        if (job.key, client_id) not in self.status_replies:
            self.status_replies[(job.key, client_id)] = {}
            self.status_asks.append((job.key, client_id))

    def _send_status_queries(self, capacity: int) -> int:
        """Send queued status queries within `capacity`; how many requests that took."""
        used = 0
        while self.status_asks and used < capacity:
            key, client_id = self.status_asks[0]
            job = self.jobs.get(key)
            target = job.state.targets.get(client_id) if job else None
            if (
                job is None
                or target is None
                or target.operation_id is None
                or (target.status is not TargetStatus.AWAITING_COMPLETION)
            ):
                self.status_asks.popleft()
                self.status_replies.pop((key, client_id), None)
                continue
            operation = job.operations[target.step_index]
            names = operation.status_queries(target.operation_id, target.phase)
            whole_window = capacity - used >= self.settings.max_in_flight
            if used + len(names) > capacity and not whole_window:
                break  # all of a target's queries go out together, when there is room
            self.status_asks.popleft()
            self.status_replies[(key, client_id)] = dict.fromkeys(names)
            for name in names:
                tag = Tag(key, client_id, target.step_index, new_request_id(), "status", name)
                if self.link.send_status_query(tag, operation, target.operation_id, 30.0):
                    used += 1
                else:
                    self.status_replies[(key, client_id)][name] = _NO_REPLY
            job.state.log(target.execution or 0).write(
                job.subject(client_id, target.step_index),
                f"asked the device where the operation stands ({', '.join(names)}):"
                " notifications sent while the runner was away are lost",
            )
        return used

    def _dispatch(self) -> list[Outgoing]:
        """Record a request for each ready target the window allows; publish comes after."""
        if self.draining or not self.connected:
            return []
        capacity = self.settings.max_in_flight - self.link.in_flight()
        capacity -= self._send_status_queries(capacity)
        outgoing: list[Outgoing] = []
        runs = [j for j in self.jobs.values() if j.run and j.run.ready and not j.run.stopping]
        while capacity > 0 and runs:
            for job in list(runs):  # round robin: one target per execution per turn
                run = job.run
                assert run is not None
                if not run.ready or run.stopping:
                    runs.remove(job)
                    continue
                dispatched = self._dispatch_one(job, run.ready.popleft())
                if dispatched is not None:
                    outgoing.append((job, *dispatched))
                    capacity -= 1
                    if capacity == 0:
                        break
        return outgoing

    def _dispatch_one(self, job: RunningJob, client_id: str) -> tuple[TargetState, str] | None:
        """The target with its request recorded, and what the log says once it is sent."""
        target = job.state.targets.get(client_id)
        if target.is_final or target.status is not TargetStatus.PROCESS_AWAITING:
            return None
        now = self.clock()
        operation = job.operations[target.step_index]
        absent = self.devices.absence(job.scope, client_id, self.listening_since)
        if absent is not None:
            self._fail(job, target, f"{absent}; not sent", now)
            return None
        apps = self.devices.applications(job.scope, client_id)
        unsupported = operation.unsupported_reason(apps) if apps is not None else None
        if unsupported is not None:
            self._fail(job, target, unsupported, now)
            return None
        if not self.device_queue.try_take((job.scope, client_id), job.key):
            self.device_queue.park((job.scope, client_id), job.key, client_id)
            return None
        step = job.steps[target.step_index]
        operation_id = new_operation_id() if operation.asynchronous else None
        sent = target.dispatched(
            new_request_id(), now + step.timeout.total_seconds(), now, operation_id
        )
        job.state.targets.put(sent)
        job.out.add(client_id)
        if operation_id is not None:
            self.operations[operation_id] = (job.key, client_id)
        described = (sent.execution or 0, sent.step_index)
        if described in job.described:
            text = operation.name() + (f" (job.id {operation_id})" if operation_id else "")
        else:  # the whole request once per step and execution: the log stays small
            job.described.add(described)
            text = operation.describe(operation_id)
        return sent, text

    def _publish(self, outgoing: Iterable[Outgoing]) -> None:
        """Publish what was recorded; the log says `sent` only of what left."""
        for job, target, text in outgoing:
            assert target.request_id is not None
            tag = Tag(job.key, target.client_id, target.step_index, target.request_id)
            step = job.steps[target.step_index]
            try:
                refused = self.link.send_step(
                    tag,
                    job.operations[target.step_index],
                    target.operation_id,
                    step.timeout.total_seconds(),
                )
            except NotConnectedError:
                self._unsend(job, target)
                continue
            if refused is not None:
                self._apply(job, target, Failed(refused), "not sent")
                continue
            job.state.log(target.execution or 0).write(
                job.subject(target.client_id, target.step_index), f"sent {text}"
            )

    def _unsend(self, job: RunningJob, target: TargetState, reconnect: bool = True) -> None:
        """A request that did not leave (the broker connection, or the state directory, was
        unavailable): record that it was not sent, and queue the target again."""
        now = self.clock()
        why = "the broker connection is down" if reconnect else "the state cannot be written"
        back = TargetState(
            target.client_id,
            target.step_index,
            TargetStatus.PROCESS_AWAITING,
            f"not sent: {why}; will retry",
            target.execution,
            updated=now,
        )
        job.state.targets.put(back)
        if target.operation_id is not None:
            self.operations.pop(target.operation_id, None)
        self._release(job, target.client_id, requeue=False)
        job.out.discard(target.client_id)
        if job.run is not None:
            job.run.ready.append(target.client_id)
        if reconnect:
            self.connected = False
            self.deadlines.add(now + self.settings.reconnect_retry, job.key, "", "reconnect")

    # -- outcomes -------------------------------------------------------------------------

    def _on_reply(self, event: ReplyArrived) -> None:
        job = self.jobs.get(event.tag.job)
        if job is None:
            return
        target = job.state.targets.get(event.tag.client_id)
        if event.tag.purpose == "status":
            self._on_status_reply(job, target, event)
            return
        if event.tag.purpose == "cancel":
            self._on_cancel_answer(job, target, event.payload)
            return
        if target.request_id != event.tag.request_id:
            self._anomaly(job, target, "reply to a request that is no longer awaited; ignored")
            return
        operation = job.operations[target.step_index]
        outcome = operation.on_reply(event.payload, target.operation_id)
        self._apply(job, target, outcome, "replied")
        if isinstance(outcome, Accepted) and target.operation_id in self.early:
            for early in self.early.pop(target.operation_id):
                self._on_notification(early)

    def _on_timeout(self, tag: Tag) -> None:
        job = self.jobs.get(tag.job)
        if job is None:
            return
        target = job.state.targets.get(tag.client_id)
        if tag.purpose == "status":
            self._status_answer(job, target, tag, None)
            return
        if tag.purpose == "cancel":
            self._on_cancel_answer(job, target, None)
            return
        if target.request_id != tag.request_id:
            return
        step = job.steps[target.step_index]
        if target.phase == "restarted" and target.operation_id is not None:
            # An asynchronous request recorded before a restart, its reply lost: the device
            # may have accepted it. Ask the device rather than guess.
            self._apply(job, target, Accepted(None), "restarted")
            self.ask_status(job, target.client_id)
            return
        reason = (
            "runner restarted before the reply"
            if target.phase == "restarted"
            else f"no reply in {step.timeout.total_seconds():g}s"
        )
        lost = self.connection_lost_at
        if lost is not None and target.updated is not None and lost >= target.updated:
            reason += (
                " (the broker connection was lost meanwhile: the request or its reply may have"
                " been lost with it)"
            )
        elif target.phase != "restarted" and self.devices.never_seen(job.scope, target.client_id):
            reason += (
                "; no BIRTH was ever heard from this device (one published before the runner"
                " first listened is not repeated): is it online, and is its client id right?"
            )
        self._apply(job, target, Failed(reason), "timeout")

    def _on_notification(self, event: NotificationArrived) -> None:
        found = self.operations.get(event.operation_id or -1)
        job = self.jobs.get(found[0]) if found else None
        if found is None or job is None:
            self._anomaly(
                None,
                None,
                f"notification for an operation the runner did not"
                f" start ({event.app_id}/{'/'.join(event.resources)} from {event.client_id},"
                f" job.id {event.operation_id}); ignored",
            )
            return
        target = job.state.targets.get(found[1])
        if (event.account, event.client_id) != (job.scope, target.client_id):
            self._anomaly(
                job,
                target,
                f"notification for this target's operation from"
                f" {event.account}/{event.client_id}; ignored",
            )
            return
        if target.status is TargetStatus.PROCESS_AWAITING and target.request_id:
            self.early.setdefault(event.operation_id or -1, []).append(event)
            return
        if target.status is not TargetStatus.AWAITING_COMPLETION:
            job.state.log(target.execution or 0).write(
                job.subject(target.client_id, target.step_index),
                f"notification {'/'.join(event.resources) or '-'} after the operation ended"
                f" ({target.status.value}); ignored",
            )
            return
        operation = job.operations[target.step_index]
        assert target.operation_id is not None
        outcome = operation.on_notification(
            target.operation_id, target.phase, event.resources, event.payload
        )
        if isinstance(outcome, Ignored):
            job.state.log(target.execution or 0).write(
                job.subject(target.client_id, target.step_index),
                f"notification {'/'.join(event.resources) or '-'}: {outcome.reason}; ignored",
            )
            return
        self._apply(job, target, outcome, "notified")

    def _apply(self, job: RunningJob, target: TargetState, outcome: Outcome, how: str) -> None:
        """Move a target on according to what the device said."""
        now = self.clock()
        subject = job.subject(target.client_id, target.step_index)
        execution_log = job.state.log(target.execution or 0)
        step = job.steps[target.step_index]
        if isinstance(outcome, Accepted):
            deadline = now + step.completion_timeout.total_seconds()  # type: ignore[attr-defined]
            accepted = target.accepted(deadline, outcome.phase, now)
            job.state.targets.put(accepted)
            self._reply_settled(job, target.client_id)
            self.deadlines.add(deadline, job.key, target.client_id, "completion")
            execution_log.write(subject, "accepted; AWAITING_COMPLETION", now)
        elif isinstance(outcome, Progressed):
            job.state.targets.put(target.progressed(outcome.phase, outcome.message, now))
            if outcome.message:
                execution_log.write(subject, outcome.message, now)
            if outcome.settle_after is not None:
                self._settling[(job.key, target.client_id)] = (outcome.phase, outcome.settled)
                self.deadlines.add(now + outcome.settle_after, job.key, target.client_id, "settle")
        elif isinstance(outcome, Succeeded):
            if target.status is TargetStatus.AWAITING_COMPLETION:
                target = target.notified(outcome.summary, now)
                job.state.targets.put(target)
            done = target.succeeded(len(job.steps), outcome.summary, now)
            job.state.targets.put(done)
            note = f": {outcome.summary}" if outcome.summary else ""
            following = (
                "PROCESS_OK"
                if done.is_final
                else f"next: step {done.step_index} '{job.steps[done.step_index].name}'"
            )
            execution_log.write(subject, f"{how} OK{note}; {following}", now)
            self._settled(job, target, done)
        else:
            failed = target.failed(outcome.reason, now)
            job.state.targets.put(failed)
            execution_log.write(
                subject, f"{outcome.reason}; PROCESS_FAILED, later steps skipped", now
            )
            self._settled(job, target, failed)

    def _fail(self, job: RunningJob, target: TargetState, reason: str, now: float) -> None:
        self._apply(job, target, Failed(reason), "failed")

    def _reply_settled(self, job: RunningJob, client_id: str) -> None:
        job.out.discard(client_id)

    def _settled(self, job: RunningJob, before: TargetState, after: TargetState) -> None:
        """A step ended for a target: free its device, count it, queue its next step."""
        self._reply_settled(job, after.client_id)
        if before.operation_id is not None:
            self.operations.pop(before.operation_id, None)
            self.status_replies.pop((job.key, after.client_id), None)
            tag = Tag(job.key, after.client_id, before.step_index, before.request_id or "")
            self.link.untrack(tag, before.operation_id)
        self._release(job, after.client_id, requeue=True)
        run = job.run
        if run is None or after.client_id not in run.covered:
            return
        run.cancelling.discard(after.client_id)
        if after.is_final:
            run.open -= 1
        elif not run.stopping:
            run.ready.append(after.client_id)

    def _release(self, job: RunningJob, client_id: str, requeue: bool) -> None:
        following = self.device_queue.release((job.scope, client_id), job.key)
        if following is not None:
            other = self.jobs.get(following[0])
            if other is not None and other.run is not None and not other.run.stopping:
                other.run.ready.append(following[1])

    def _deadline_passed(self, key: JobKey, client_id: str, marker: str) -> None:
        if marker == "reconnect":
            self.connected = self.link.connected()
            return
        job = self.jobs.get(key)
        if job is None:
            return
        if marker == "drain":  # client_id holds the execution id
            if job.run is not None and str(job.run.id) == client_id:
                job.run.drain_over = True
            return
        if marker == "lwt":
            self._lwt_settles(job, client_id)
            return
        if marker == "settle":
            phase, settled = self._settling.pop((key, client_id), (None, None))
            target = job.state.targets.get(client_id)
            if target.status is TargetStatus.AWAITING_COMPLETION and target.phase == phase:
                self._apply(job, target, Succeeded(settled), "settled")
            return
        target = job.state.targets.get(client_id)
        if target.status is not TargetStatus.AWAITING_COMPLETION or target.deadline is None:
            return
        if target.deadline > self.clock():
            return  # re-armed later; its own entry will come
        step = job.steps[target.step_index]
        waited = step.completion_timeout.total_seconds()  # type: ignore[attr-defined]
        where = f" (last: {target.message})" if target.message else ""
        self._apply(
            job, target, Failed(f"no completion notification in {waited:g}s{where}"), "completion"
        )

    # -- the broker and the devices ---------------------------------------------------------

    def _on_connection(self, event: ConnectionChanged) -> None:
        was, self.connected = self.connected, event.connected
        now = self.clock()
        if event.connected:
            # Births published while we were away were missed: what the registry says
            # about devices being gone is not to be trusted before this moment.
            self.listening_since = now
        elif was:
            self.connection_lost_at = now
        if was == event.connected:
            return
        line = (
            f"{event.reason}; dispatching resumes"
            if event.connected
            else f"{event.reason}: nothing is sent until it is back; requests in flight may be"
            " lost with it (each fails at its timeout, and a re-run picks it up)"
        )
        for job in self.jobs.values():
            if job.run is not None:
                job.state.log(job.run.id).write("broker", line, now)

    def _on_disconnect(self, event: DeviceDisconnected) -> None:
        """A device that goes away fails the request it has not answered: at once after a
        DC, after LWT_GRACE for an LWT (unless the broker connection went down meanwhile)."""
        self.devices.disconnected(event.account, event.client_id, event.reason, event.at)
        holder = self.device_queue.busy.get((event.account, event.client_id))
        job = self.jobs.get(holder) if holder else None
        if job is None:
            return
        target = job.state.targets.get(event.client_id)
        if target.request_id is None or target.status is not TargetStatus.PROCESS_AWAITING:
            return
        if event.reason == "LWT":
            now = self.clock()
            self._lwt_at[(job.key, event.client_id)] = now
            self.deadlines.add(now + LWT_GRACE, job.key, event.client_id, "lwt")
            return
        self._apply(job, target, Failed("device disconnected before replying"), "disconnect")

    def _lwt_settles(self, job: RunningJob, client_id: str) -> None:
        """An LWT waited out its grace: the device's loss, or the broker's outage."""
        heard = self._lwt_at.pop((job.key, client_id), None)
        target = job.state.targets.get(client_id)
        if heard is None or target.request_id is None:
            return
        if target.status is not TargetStatus.PROCESS_AWAITING:
            return
        lost = self.connection_lost_at
        if not self.connected or (lost is not None and lost >= heard - LWT_GRACE):
            self._anomaly(
                job,
                target,
                "the device's LWT came as the broker connection was lost: taken for the"
                " broker going down, not the device; its reply is awaited until the timeout",
            )
            return
        if self.devices.absence(job.scope, client_id, self.listening_since) is None:
            return  # back already (a BIRTH after the LWT): its reply may still come
        self._apply(
            job, target, Failed("device lost its connection (LWT) before replying"), "disconnect"
        )

    def _on_connect(self, event: DeviceConnected) -> None:
        """A (re)connected device: if it was running an asynchronous operation for us (a
        reboot after an install, say), ask where it stands; then the connect hooks."""
        self.devices.connected(event.account, event.client_id, event.facts, event.at)
        holder = self.device_queue.busy.get((event.account, event.client_id))
        job = self.jobs.get(holder) if holder else None
        if job is not None:
            target = job.state.targets.get(event.client_id)
            if target.status is TargetStatus.AWAITING_COMPLETION:
                self.ask_status(job, event.client_id)
        for hook in self.connect_hooks:
            hook(event)

    def _on_status_reply(self, job: RunningJob, target: TargetState, event: ReplyArrived) -> None:
        self._status_answer(job, target, event.tag, event.payload)

    def _status_answer(
        self, job: RunningJob, target: TargetState, tag: Tag, payload: KuraPayload | None
    ) -> None:
        """Collect the replies to a target's status queries; settle when all are in."""
        replies = self.status_replies.get((job.key, target.client_id))
        if replies is None or tag.query not in replies or replies[tag.query] is not None:
            return
        replies[tag.query] = payload if payload is not None else _NO_REPLY
        if any(value is None for value in replies.values()):
            return
        del self.status_replies[(job.key, target.client_id)]
        if target.status is not TargetStatus.AWAITING_COMPLETION or target.operation_id is None:
            return
        answers = {name: (None if value is _NO_REPLY else value) for name, value in replies.items()}
        operation = job.operations[target.step_index]
        outcome = operation.recover(target.operation_id, target.phase, answers)
        if outcome is not None and not isinstance(outcome, Accepted):
            self._apply(job, target, outcome, "status query")

    # -- cancelling -------------------------------------------------------------------------

    def cancel(self, job: RunningJob, client_id: str) -> bool:
        """Ask the device to cancel the target's operation where it stands (a download in
        progress); False when there is nothing that can be cancelled, or it was not sent."""
        if client_id not in job.state.targets:
            return False
        target = job.state.targets.get(client_id)
        if target.status is not TargetStatus.AWAITING_COMPLETION or target.operation_id is None:
            return False
        operation = job.operations[target.step_index]
        what = operation.cancellation(target.operation_id, target.phase)
        if what is None:
            return False
        subject = job.subject(client_id, target.step_index)
        tag = Tag(job.key, client_id, target.step_index, new_request_id(), "cancel")
        execution_log = job.state.log(target.execution or 0)
        if not self.link.send_cancel(tag, operation, target.operation_id, target.phase):
            execution_log.write(subject, f"cancel not sent ({what}): the broker is not connected")
            return False
        execution_log.write(subject, f"sent {what} (cancel)")
        return True

    def _on_cancel_answer(
        self, job: RunningJob, target: TargetState, payload: KuraPayload | None
    ) -> None:
        subject = job.subject(target.client_id, target.step_index)
        code = None if payload is None else _response_code(payload)
        if code == 200:
            text = "the device accepted the cancel; its notification is awaited"
        else:
            text = "no reply to the cancel" if payload is None else f"cancel refused ({code})"
            if job.run is not None:
                job.run.cancelling.discard(target.client_id)
        job.state.log(target.execution or 0).write(subject, text)

    def _on_anomaly(self, event: Anomaly) -> None:
        """A message the device layer ignored: in the execution log of the target it was
        about, when it was about a request of ours; in the runner's log otherwise."""
        tag = event.tag
        job = self.jobs.get(tag.job) if tag is not None else None
        if tag is None or job is None or tag.client_id not in job.state.targets:
            log.warning("anomaly: %s", event.message)
            return
        target = job.state.targets.get(tag.client_id)
        job.state.log(target.execution or 0).write(
            job.subject(tag.client_id, tag.step_index), f"anomaly: {event.message}"
        )

    def _anomaly(self, job: RunningJob | None, target: TargetState | None, text: str) -> None:
        if job is not None and target is not None:
            job.state.log(target.execution or 0).write(
                job.subject(target.client_id, target.step_index), f"anomaly: {text}"
            )
        else:
            log.warning("anomaly: %s", text)

    # -- executions -----------------------------------------------------------------------

    def _end_finished_executions(self) -> None:
        for job in list(self.jobs.values()):
            run = job.run
            if run is None:
                continue
            if run.stopping:  # a user's stop ends STOPPED, even when every target finished
                waiting = (job.out & run.covered) | run.cancelling
                if waiting and not run.drain_over:
                    continue
                status = ExecutionStatus.STOPPED
                if waiting and not run.ending_logged:
                    job.state.log(run.id).write("execution", _left_waiting(waiting))
            elif run.open <= 0:
                status = ExecutionStatus.TERMINATED
            else:
                continue
            if not run.ending_logged:
                run.ending_logged = True
                job.state.log(run.id).write("execution", _ending(status, job, run.summary.targets))
            try:
                job.state.flush()
                job.state.end_execution(run.summary, status)
            except OSError as error:  # the summary could not be written: it ends next turn
                run.summary.status, run.summary.ended_on = ExecutionStatus.RUNNING, None
                self.storage_problem = self.storage_problem or str(error)
                continue
            job.run = None
            for callback in job.on_end:
                callback(run.summary)

    def _flush(self, durable: bool) -> bool:
        """Write what the turn queued; False (and dispatching paused) when the disk refuses.

        Journals append all of a batch or nothing and keep what they could not write, so
        the next turn simply tries again; nothing is published that is not recorded."""
        try:
            for job in self.jobs.values():
                job.state.flush(durable)
            self.devices.flush()
        except OSError as error:
            if self.storage_problem is None:
                log.error(
                    "cannot write the state directory (%s); nothing more is sent until it"
                    " can be written again (free some space, or make it writable)",
                    error,
                )
            self.storage_problem = str(error)
            return False
        if self.storage_problem is not None:
            log.error("the state directory can be written again; dispatching resumes")
            self.storage_problem = None
        return True


def _response_code(payload: KuraPayload) -> int | None:
    try:
        return payload.integer("response.code")
    except PayloadError:  # a reply without a readable code is not an answer
        return None


def _left_waiting(waiting: set[str]) -> str:
    shown = ", ".join(sorted(waiting)[:10]) + (" ..." if len(waiting) > 10 else "")
    return (
        f"stop: {len(waiting)} target(s) still await a reply ({shown}); a reply that still"
        " comes is recorded, and no later execution sends their request again"
    )


def _ending(status: ExecutionStatus, job: RunningJob, targets: list[str]) -> str:
    return f"{status.value} ({counts_text(job.state.counts(targets))})"
