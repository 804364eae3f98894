"""The engine: one thread that takes events, applies them, dispatches, writes, publishes.

One thread runs `Engine.run_until()`. Each turn it takes the events of the inbox in a batch
(replies, notifications, device connects and disconnects, connection changes, commands),
applies each one (`outcomes`), handles the deadlines that came (its own clock owns them all,
so a test can pass time without sleeping), records a request for each ready target
(`dispatch`), writes what changed, and only then publishes: a request is recorded with its id
before it leaves, so a restarted runner never sends it twice. Then it ends the executions
that are over.

    Engine
    ├── Runtime          what the parts share: jobs, busy devices, operations, deadlines, link
    ├── StatusQueries    asking devices where their operations stand (recovery)
    ├── Rollbacks        rolling devices back to their snapshots (DESIGN §11)
    ├── Outcomes         what replies, notifications and deadlines do to the targets
    └── Dispatcher       which targets get a request this turn
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Callable
from typing import Any

from jobrunner.engine.core import gates, progression, recovery
from jobrunner.engine.core.devices import Devices
from jobrunner.engine.core.dispatch import Dispatcher
from jobrunner.engine.core.outcomes import Outcomes
from jobrunner.engine.core.probes import Probes
from jobrunner.engine.core.recovery import StatusQueries
from jobrunner.engine.core.rollbacks import Rollbacks
from jobrunner.engine.core.runtime import Connection, EngineSettings, RunningJob, Runtime
from jobrunner.engine.core.timers import (
    CompletionDue,
    Deadlines,
    DrainOver,
    Due,
    LwtGrace,
    ProceedDue,
    ReplyDue,
    RetryPublish,
    RollbackDue,
    SettleDue,
)
from jobrunner.engine.link.events import (
    Anomaly,
    Command,
    ConnectionChanged,
    DeviceConnected,
    DeviceDisconnected,
    Event,
    Inbox,
    NotificationArrived,
    ReplyArrived,
)
from jobrunner.engine.link.observers import Observer
from jobrunner.engine.link.ports import DeviceLink, Tag
from jobrunner.errors import LeaseLostError
from jobrunner.state.layout import JobKey
from jobrunner.state.records import ExecutionStatus, ExecutionSummary, counts_text
from jobrunner.state.stores.base import Storage
from jobrunner.state.targets import TargetStatus

log = logging.getLogger(__name__)

LWT_GRACE = 2.0
"""Seconds an LWT waits before it fails a target: a broker that shuts down publishes the
wills of every device it holds just before it drops the runner too (mosquitto does), and
that is the broker's outage, not the devices'."""


class Engine:
    """Runs executions of jobs against devices. Not thread-safe: use `submit` from elsewhere."""

    def __init__(
        self,
        link: DeviceLink,
        devices: Devices,
        settings: EngineSettings | None = None,
        clock: Callable[[], float] = time.time,
        inbox: Inbox | None = None,
        observer: Observer | None = None,
        storage: Storage | None = None,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        """`storage`: where the jobs' state is written: each turn's writes are one batch
        there (one transaction in a database). `clock`: the time recorded; `monotonic`: the
        one deadlines are kept on (default: `time.monotonic`, or `clock` when a test gives
        one)."""
        self.storage = storage
        if monotonic is None:
            monotonic = time.monotonic if clock is time.time else clock
        self.rt = Runtime(
            link,
            devices,
            settings or EngineSettings(),
            clock,
            Deadlines(clock, monotonic),
            connection=Connection(),
            observer=observer or Observer(),
        )
        self.rt.connection.listening_since = clock()
        self.inbox = inbox or Inbox()
        self.queries = StatusQueries(self.rt)
        self.probes = Probes(self.rt)
        self.rollbacks = Rollbacks(self.rt)
        self.outcomes = Outcomes(self.rt, self.queries, self.rollbacks)
        self.dispatcher = Dispatcher(self.rt, self.outcomes, self.queries, self.rollbacks)
        self.storage_problem: str | None = None
        """Why the state directory cannot be written (dispatching is paused), or None."""
        self._to_flush: set[JobKey] = set()
        """Jobs with transitions or log lines queued: a thousand idle jobs cost no turn."""
        self.listeners: list[Callable[[Event], None]] = []
        self.connect_hooks: list[Callable[[DeviceConnected], None]] = []
        self.let_go_hooks: list[Callable[[JobKey], None]] = []
        """Called with each job the engine lets go of (`forget`)."""
        self.end_hooks: list[Callable[[RunningJob], None]] = []
        """Called with each job whose execution has just ended, before its own `on_end`
        callbacks: a start queued behind it goes first."""

    # -- what the rest of the runner uses ---------------------------------------------------

    @property
    def jobs(self) -> dict[JobKey, RunningJob]:
        return self.rt.jobs

    @property
    def link(self) -> DeviceLink:
        return self.rt.link

    @property
    def devices(self) -> Devices:
        return self.rt.devices

    @property
    def settings(self) -> EngineSettings:
        return self.rt.settings

    @property
    def connection(self) -> Connection:
        return self.rt.connection

    def clock(self) -> float:
        return self.rt.clock()

    def hold(self, job: RunningJob) -> None:
        """Take a job in (once): its RUNNING execution and awaited operations resume."""
        self.rt.jobs[job.key] = job
        self._to_flush.add(job.key)
        job.state.on_pending(functools.partial(self._to_flush.add, job.key))
        if job.steps:
            recovery.resume(self.rt, self.queries, job)
            self._resume_rollbacks(job)

    def _resume_rollbacks(self, job: RunningJob) -> None:
        """Take up the rollbacks a previous process recorded and did not end."""
        run = job.run
        if run is not None and run.summary.aborted and run.gate is not None:
            abort = run.gate.settings.abort
            if abort is not None and abort.rollback:
                run.roll_back_all = run.summary.message or "aborted"
        for target in job.state.targets:
            if target.being_rolled_back:
                self.rollbacks.take_up(job, target)

    def forget(self, key: JobKey, why: str) -> RunningJob | None:
        """Let a job go at once (its lease was lost, or given to another runner): nothing
        more is sent or written for it from this instant; the replies, notifications and
        deadlines that still come for it find no job and are ignored. Its devices are free
        for the other jobs of this runner."""
        job = self.rt.jobs.pop(key, None)
        if job is None:
            return None
        log.warning("%s: let go (%s)", job.label, why)
        self._to_flush.discard(key)
        self.rollbacks.forget(key)
        queue = self.rt.device_queue
        for device, holder in list(queue.busy.items()):
            if holder == key:
                self.rt.release(job, device[1])
        for device, waiting in list(queue.waiting.items()):
            kept = type(waiting)(entry for entry in waiting if entry[0] != key)
            if kept:
                queue.waiting[device] = kept
            else:
                del queue.waiting[device]
        for operation_id, (holder, _) in list(self.rt.operations.items()):
            if holder == key:
                del self.rt.operations[operation_id]
        if self.rt.claims is not None:
            self.rt.claims.release_job(key)
        for hook in self.let_go_hooks:
            hook(key)
        return job

    def take_up(self, job: RunningJob, client_id: str) -> None:
        """Put a target of the job's (new) execution where it belongs: ready, re-armed, or
        awaiting its operation's completion."""
        assert job.run is not None
        recovery.take_up(self.rt, self.queries, job, job.run, client_id, resumed=False)

    def cancel(self, job: RunningJob, client_id: str) -> bool:
        """Ask the device to cancel the target's operation (a download in progress)."""
        return self.dispatcher.cancel(job, client_id)

    def drain(self) -> None:
        """Send nothing more from now on; replies in flight are still taken."""
        self.rt.connection.draining = True

    # -- the loop ---------------------------------------------------------------------------

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
        """One turn: take events, apply them, handle deadlines, dispatch, write, publish."""
        timeout = self.rt.deadlines.wait(wait)
        if self.dispatcher.has_ready():
            timeout = 0.0
        for event in self.inbox.take(timeout):
            self._handle(event)
        for due in self.rt.deadlines.due():
            self._due(due)
        if not self.storage_problem:
            gates.turn_gates(self.rt, self.cancel, self.rollbacks)
        outgoing = [] if self.storage_problem else self.dispatcher.collect()
        if self._flush(durable=self.settings.durable and bool(outgoing)):
            # Only what was recorded for a job still held: a job whose lease was lost in
            # this very flush sends nothing.
            held = [o for o in outgoing if self.jobs.get(o[0].key) is o[0]]
            if (held or self.rollbacks.outgoing) and not self.rt.connection.leases_hold:
                # The commit took past the lease (a slow database): another runner may own
                # the job by now. Nothing leaves; once renewed, they are sent.
                for job, target, _, _ in held:
                    self.dispatcher.unsend(
                        job, target, "the lease ended while the request was recorded"
                    )
                self.rollbacks.put_back()
            else:
                self.dispatcher.publish(held)
                self.rollbacks.publish()
        else:  # not recorded, so not sent: they go back to their queue
            for job, target, _, _ in outgoing:
                self.dispatcher.unsend(job, target, "the state cannot be written")
            self.rollbacks.put_back()
        if self.probes.waiting and self.rt.connection.connected:  # what the jobs left of the window
            self.probes.send(self.settings.max_in_flight - self.link.in_flight())
        self._end_finished_executions()
        self._flush(durable=False)

    def _handle(self, event: Event) -> None:
        for listener in self.listeners:
            listener(event)
        if isinstance(event, ReplyArrived):
            # The link awaits it no more: its deadline would be popped and ignored.
            tag = event.tag
            self.rt.deadlines.cancel(tag.request_id)
            self.rt.devices.heard(tag.job[0], tag.client_id, self.rt.clock())
            if tag.purpose == "probe":
                self._found(tag)
            else:
                self.outcomes.on_reply(event)
        elif isinstance(event, NotificationArrived):
            self.devices.heard(event.account, event.client_id, self.clock())
            self.outcomes.on_notification(event)
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

    def _due(self, due: Due) -> None:
        if isinstance(due, ReplyDue) and due.tag.purpose == "probe":
            self.probes.expired(due.tag)
        elif isinstance(due, ReplyDue):
            self.outcomes.on_reply_due(due.tag)
        elif isinstance(due, CompletionDue):
            self.outcomes.on_completion_due(due)
        elif isinstance(due, SettleDue):
            self.outcomes.on_settle_due(due)
        elif isinstance(due, ProceedDue):
            self.outcomes.on_proceed_due(due)
        elif isinstance(due, RollbackDue):
            self.rollbacks.on_due(due)
        elif isinstance(due, LwtGrace):
            self._lwt_settles(due)
        elif isinstance(due, DrainOver):
            job = self.jobs.get(due.job)
            if job is not None and job.run is not None and job.run.id == due.execution:
                job.run.drain_over = True
        elif isinstance(due, RetryPublish):
            self.rt.connection.connected = self.link.connected()

    # -- the broker and the devices ---------------------------------------------------------

    def _on_connection(self, event: ConnectionChanged) -> None:
        connection = self.rt.connection
        was, connection.connected = connection.connected, event.connected
        now = self.clock()
        if event.connected:
            # Births published while we were away were missed: what the registry says
            # about devices being gone is not to be trusted before this moment.
            connection.listening_since = now
        elif was:
            connection.lost_at = now
        if was == event.connected:
            return
        line = (
            f"{event.reason}; dispatching resumes"
            if event.connected
            else f"{event.reason}: nothing is sent until it is back; requests in flight may be"
            " lost with it (each fails at its timeout, and a re-run picks it up)"
        )
        if event.connected and connection.lost_at is not None and not event.session_kept:
            registry = self.devices.registry
            asked = self.probes.ask(
                (scope, record.client_id)
                for scope in registry.scopes()
                for record in registry.scope(scope)
            )
            log.warning(
                "the broker kept no session for the runner (it restarted): BIRTHs published"
                " meanwhile are lost; asking %d known device(s) whether they are connected",
                asked,
            )
            line += "; the devices that answer count as reconnected (their BIRTH was missed)"
        for job in self.jobs.values():
            if job.run is not None:
                job.state.log(job.run.id).write("broker", line, now)

    def _found(self, tag: Tag) -> None:
        """A device answered the runner's question after a broker restart: connected."""
        device = self.probes.answered(tag)
        if device is None:
            return
        log.info("%s/%s is connected: its BIRTH after the broker restart was missed", *device)
        self._on_connect(DeviceConnected(device[0], device[1], None, self.clock()))

    def _on_disconnect(self, event: DeviceDisconnected) -> None:
        """A device that goes away fails the request it has not answered: at once after a
        DC, after LWT_GRACE for an LWT (unless the broker connection went down meanwhile)."""
        self.devices.disconnected(event.account, event.client_id, event.reason, event.at)
        self._soak_watch(event)
        holder = self.rt.device_queue.busy.get((event.account, event.client_id))
        job = self.jobs.get(holder) if holder else None
        if job is None:
            return
        target = job.state.targets.get(event.client_id)
        if target.request_id is None or target.status is not TargetStatus.PROCESS_AWAITING:
            return
        if event.reason == "LWT":
            now = self.clock()
            self.rt.deadlines.add(now + LWT_GRACE, LwtGrace(job.key, event.client_id, now))
            return
        self.outcomes.apply(job, target, progression.device_gone(lost=False), "disconnect")

    def _soak_watch(self, event: DeviceDisconnected) -> None:
        """A device of a soaking wave went away: said in the log (the soak's end decides)."""
        for job in self.jobs.values():
            gate = job.run.gate if job.run is not None else None
            if gate is None or job.scope != event.account:
                continue
            wave = gate.soaking_wave_of(event.client_id)
            if wave is not None:
                job.state.log(job.run.id if job.run else 0).write(
                    "rollout",
                    f"wave '{wave}' soaking: {event.client_id} lost its connection"
                    f" ({event.reason}); it counts as failed unless it is back by the end",
                )

    def _lwt_settles(self, due: LwtGrace) -> None:
        """An LWT waited out its grace: the device's loss, or the broker's outage."""
        job = self.jobs.get(due.job)
        if job is None:
            return
        target = job.state.targets.get(due.client_id)
        if target.request_id is None or target.status is not TargetStatus.PROCESS_AWAITING:
            return
        lost = self.rt.connection.lost_at
        if not self.rt.connection.connected or (lost is not None and lost >= due.heard - LWT_GRACE):
            job.say(
                target,
                "anomaly: the device's LWT came as the broker connection was lost: taken for the"
                " broker going down, not the device; its reply is awaited until the timeout",
            )
            return
        listening = self.rt.connection.listening_since
        if self.devices.absence(job.scope, due.client_id, listening) is None:
            return  # back already (a BIRTH after the LWT): its reply may still come
        self.outcomes.apply(job, target, progression.device_gone(lost=True), "disconnect")

    def _on_connect(self, event: DeviceConnected) -> None:
        """A (re)connected device: if it was running an asynchronous operation for us (a
        reboot after an install, say), ask where it stands; then the connect hooks."""
        self.devices.connected(event.account, event.client_id, event.facts, event.at)
        self.probes.birth((event.account, event.client_id))
        holder = self.rt.device_queue.busy.get((event.account, event.client_id))
        job = self.jobs.get(holder) if holder else None
        if job is not None:
            target = job.state.targets.get(event.client_id)
            if target.status is TargetStatus.AWAITING_COMPLETION:
                self.queries.ask(job, event.client_id)
        for hook in self.connect_hooks:
            hook(event)

    def _on_anomaly(self, event: Anomaly) -> None:
        """A message the device layer ignored: in the execution log of the target it was
        about, when it was about a request of ours; in the runner's log otherwise."""
        self.rt.observer.anomaly(event.kind)
        tag = event.tag
        job = self.jobs.get(tag.job) if tag is not None else None
        if tag is None or job is None or tag.client_id not in job.state.targets:
            fields = {"scope": event.account, "clientId": event.client_id}
            log.warning("anomaly: %s", event.message, extra=fields)
            return
        target = job.state.targets.get(tag.client_id)
        job.state.log(target.execution or 0).write(
            job.subject(tag.client_id, tag.step_index), f"anomaly: {event.message}"
        )

    # -- executions and the disk --------------------------------------------------------------

    def _end_finished_executions(self) -> None:
        for job in list(self.jobs.values()):
            run = job.run
            if run is None or (self.rollbacks.under_way and self.rollbacks.busy(job.key)):
                continue  # an execution ends once its rollbacks have
            if run.stopping:  # a user's stop ends STOPPED, even when every target finished
                waiting = (job.out & run.covered) | run.cancelling
                if waiting and not run.drain_over:
                    continue
                aborted = run.summary.aborted
                status = ExecutionStatus.ABORTED if aborted else ExecutionStatus.STOPPED
                if waiting and not run.ending_logged:
                    job.state.log(run.id).write("execution", _left_waiting(waiting))
            elif run.open <= 0 and not (run.gate is not None and run.gate.holds_execution_open):
                status = ExecutionStatus.TERMINATED
            else:
                continue
            if not run.ending_logged:
                run.ending_logged = True
                job.state.log(run.id).write("execution", _ending(status, job, run.summary.targets))
            try:
                job.state.flush()
                job.state.end_execution(run.summary, status)
            except LeaseLostError as lost:
                self.forget_lost(lost)
                continue
            except OSError as error:  # the summary could not be written: it ends next turn
                run.summary.status, run.summary.ended_on = ExecutionStatus.RUNNING, None
                self.storage_problem = self.storage_problem or str(error)
                continue
            job.run = None
            # Nothing more is dispatched in it: what its steps' requests were is not needed.
            job.described = {d for d in job.described if d[0] != run.id}
            if self.rt.claims is not None:
                self.rt.claims.release_job(job.key)
            self._ended(job, run.summary)

    def _ended(self, job: RunningJob, summary: ExecutionSummary) -> None:
        """Tell who listens that the job's execution ended (recorded ENDED already)."""
        self.rt.observer.execution_ended(job.key, summary)
        for hook in self.end_hooks:
            hook(job)
        for callback in job.on_end:
            callback(summary)

    def _flush(self, durable: bool) -> bool:
        """Write what the turn queued; False (and dispatching paused) when the disk refuses.

        Journals append all of a batch or nothing and keep what they could not write, so
        the next turn simply tries again; nothing is published that is not recorded."""
        try:
            with self.storage.batch() if self.storage is not None else contextlib.nullcontext():
                while self._to_flush:
                    key = next(iter(self._to_flush))
                    self.jobs[key].state.flush(durable)  # what it could not write, it keeps
                    self._to_flush.discard(key)
                self.devices.flush()
        except LeaseLostError as lost:  # the other jobs' writes were made
            self.forget_lost(lost)
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

    def unwritten(self) -> list[str]:
        """The jobs whose latest changes could not be written yet (`SCOPE/NAME`)."""
        return sorted(f"{scope}/{name}" for scope, name in self._to_flush)

    def forget_lost(self, lost: LeaseLostError) -> None:
        """Let go of the jobs whose lease was lost (see `forget`)."""
        for key in sorted(lost.jobs):
            self.forget(key, "its lease is no longer this runner's: another runner owns it")


def _left_waiting(waiting: set[str]) -> str:
    shown = ", ".join(sorted(waiting)[:10]) + (" ..." if len(waiting) > 10 else "")
    return (
        f"stop: {len(waiting)} target(s) still await a reply ({shown}); a reply that still"
        " comes is recorded, and no later execution sends their request again"
    )


def _ending(status: ExecutionStatus, job: RunningJob, targets: list[str]) -> str:
    given_up = job.run.summary.given_up if job.run is not None else []
    tail = f"; {len(given_up)} target(s) gave up (retry limit), not tried" if given_up else ""
    return f"{status.value} ({counts_text(job.state.counts(targets))}{tail})"
