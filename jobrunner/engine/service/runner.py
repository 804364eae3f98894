"""The engine's entry points, as the CLI and the daemon use them.

make_plan(jobs_dir, state_dir, scope)   what reconcile would do (reads only, no lock)
Runner(config)                          a process that owns the state (a directory's lock,
                                        or leases of jobs on a database),
                                        MQTT client, registry, engine; resumes what a
                                        previous owner left RUNNING
"""

from __future__ import annotations

import difflib
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Literal, Protocol, overload

from jobrunner.device import BrokerSettings, OperationSettings
from jobrunner.device.operations import DEFAULT_SETTINGS
from jobrunner.engine.core import executions
from jobrunner.engine.core.devices import Devices
from jobrunner.engine.core.loop import Engine
from jobrunner.engine.core.runtime import EngineSettings, RunningJob
from jobrunner.engine.link.events import Inbox
from jobrunner.engine.link.mqtt import ClientLink
from jobrunner.engine.link.observers import Observer
from jobrunner.engine.link.operations import operations_factory
from jobrunner.engine.link.ports import DeviceLink
from jobrunner.engine.planning.git import git_revision
from jobrunner.engine.planning.plan import Action, Plan, compute_plan
from jobrunner.engine.planning.selection import record_facts
from jobrunner.engine.planning.spec import ScopeDevices
from jobrunner.engine.rollout.approval import Approval, approve
from jobrunner.engine.service import heap
from jobrunner.engine.service.ownership import DatabaseClaims, Ownership
from jobrunner.engine.service.reconcile import Applied, Reconciler, history_bounds
from jobrunner.engine.service.tagview import TagView
from jobrunner.errors import JobError, LeaseLostError, NothingToDo, NotRunning, StateError
from jobrunner.manifests import ManifestSet, load_manifests
from jobrunner.manifests.parsed import ParsedFiles
from jobrunner.manifests.secrets import SecretResolver
from jobrunner.manifests.selectors import Facts
from jobrunner.state.jobstore import JobState
from jobrunner.state.layout import JobKey, StateDir
from jobrunner.state.lock import OwnerLock
from jobrunner.state.opening import open_state
from jobrunner.state.ownership import DEFAULT_LEASE
from jobrunner.state.records import (
    ExecutionStatus,
    ExecutionSummary,
    QueuedStart,
    StartOptions,
    Trigger,
    TriggerKind,
)
from jobrunner.state.registry import DeviceRegistry
from jobrunner.state.targets import TargetStatus

log = logging.getLogger("jobrunner.runner")

ExecutionRef = tuple[str, str, int]  # scope, job name, execution id
TagsOf = tuple[ManifestSet, tuple[tuple[str, int], ...], dict[str, ScopeDevices]]
MAX_QUEUED = 20
"""Starts a job may have queued behind its running execution (`start --enqueue`)."""


class Link(DeviceLink, Protocol):
    """The engine's link to the devices, with the connection a runner opens and closes."""

    def start(self, timeout: float) -> None: ...

    def start_in_background(self) -> None: ...

    def serve(self, account: str, encoding: str, timeout: float) -> None: ...

    def stop(self) -> None: ...


def device_tags(
    manifests: ManifestSet, registry: DeviceRegistry | None = None
) -> dict[str, ScopeDevices]:
    """Per scope, every known device and its tags: declared in git, or discovered on connect;
    and what a label selector reads of each (its labels, the facts of its BIRTH)."""
    undeclared: dict[str, dict[str, None]] = {scope: {} for scope in manifests.devices}
    zones: dict[str, dict[str, str]] = {}
    facts: dict[str, dict[str, Facts]] = {}
    # Read only for the scopes whose jobs select by labels: a plan of 10,000 devices and no
    # selector builds none.
    selecting = {d.scope for d in manifests.jobs.values() if d.manifest.spec.targets.selector}
    for scope, devices in manifests.devices.items():
        zones[scope] = {cid: d.timezone for cid, d in devices.items() if d.timezone}
        if scope in selecting:
            facts[scope] = {cid: record_facts(d.labels, None) for cid, d in devices.items()}
    if registry is not None:
        for scope in registry.scopes():
            declared = manifests.devices.get(scope, {})
            read = facts.setdefault(scope, {}) if scope in selecting else None
            extra = undeclared.setdefault(scope, {})
            for record in registry.scope(scope):
                if record.client_id not in declared:
                    extra[record.client_id] = None
                if read is not None:
                    entry = declared.get(record.client_id)
                    labels = entry.labels if entry else None
                    read[record.client_id] = record_facts(labels, record)
    # The table of tags a view over the declared devices (`TagView`), not a copy of it.
    return {
        scope: ScopeDevices(
            TagView(manifests.devices.get(scope, {}), extra), zones.get(scope), facts.get(scope)
        )
        for scope, extra in undeclared.items()
    }


def make_plan(
    jobs_dir: Path,
    state: StateDir | Path,
    scope: str,
    require_signed: bool = False,
    now: float | None = None,
) -> Plan:
    """The plan for the manifests under `jobs_dir` against the recorded `state`, at `now`
    (default: the time of day). Everything it reads lives until the plan is shown: no
    collection meanwhile (a quarter of the CPU of a plan of 5,000 jobs otherwise)."""
    layout = state if isinstance(state, StateDir) else StateDir(state)
    with heap.loading():
        manifests = load_manifests([jobs_dir], default_scope=scope)
        with DeviceRegistry(layout, autoflush=False) as registry:
            devices = device_tags(manifests, registry)
        return compute_plan(
            manifests,
            layout,
            devices,
            git_revision(jobs_dir),
            require_signed=require_signed,
            now=now,
        )


@dataclass(frozen=True)
class RunnerConfig:
    jobs_dir: Path
    state_dir: Path
    scope: str
    broker: BrokerSettings
    engine: EngineSettings = field(default_factory=EngineSettings)
    operations: OperationSettings = DEFAULT_SETTINGS
    connect_timeout: float = 10.0
    require_signed: bool = False
    """Apply only manifests whose last change is in a commit signed by an allowed key."""
    secrets_dir: Path | None = None
    """Where `valueFrom: {file: ...}` secrets are read (default: JOBRUNNER_SECRETS_DIR, else
    /etc/jobrunner/secrets)."""
    state_db: str | None = None
    """PostgreSQL instead of `state_dir` (`--state-db`): several runners share the jobs."""
    lease: float = DEFAULT_LEASE
    """Seconds a job's lease lasts without renewal (with `state_db`)."""


def not_running(scope: str, name: str, last: ExecutionSummary | None) -> NotRunning:
    """What a stop of a job with no running execution answers (not an error)."""
    ended = (
        f"; its last execution, {last.id}, ended {last.status.value}"
        if last is not None
        else "; it has never run"
    )
    return NotRunning(f"job {scope}/{name} has no running execution{ended}")


class Runner:
    """Owns the state (alone, or its share of the jobs) while it lives, and drives the devices."""

    def __init__(
        self,
        config: RunnerConfig,
        role: str = "jobrunner",
        wait_for_broker: bool = True,
        resume: bool = True,
        link: Callable[[Inbox], Link] | None = None,
        clock: Callable[[], float] = time.time,
        observer: Observer | None = None,
        state: StateDir | None = None,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        """`wait_for_broker`: connect before anything else (ConnectError when the broker
        cannot be reached); False: connect in the background, retrying with backoff, and
        send nothing until connected (the daemon). `resume`: take up, at once, every
        execution a previous owner left RUNNING; False: only those of the jobs this runner
        is asked about (`jobrunner stop` drives nothing else). `link`: how to reach the
        devices, given the engine's inbox (default: MQTT, with `config.broker`). `clock`: the
        engine's, which owns every deadline (a test passes time without sleeping);
        `monotonic`: the one deadlines are kept on (see `Engine`). `observer`:
        who hears of requests and of the executions' events (metrics, notifications).
        `state`: the state the command opened (its one connection; the command closes it);
        default: opened from `config`, and closed with the runner."""
        self.config = config
        self.wait_for_broker = wait_for_broker
        self.resume_all = resume
        self._opened = state is None
        self.state = state or open_state(config.state_dir, config.state_db)
        owners, client_id = self.state.owners, config.broker.client_id
        self.lock: OwnerLock | None = owners.lock(role, client_id)
        """The state's lock, when this runner owns it whole (a state directory)."""
        share = owners.join(client_id, config.lease)
        self.ownership: Ownership | None = (
            Ownership(share.leases, share.held, announce=role == "watch") if share else None
        )
        """The leases of the jobs this runner owns, when runners share a state database."""
        self.inbox = Inbox()
        self.registry = DeviceRegistry(self.state, autoflush=False)
        self.link: Link = (
            link(self.inbox)
            if link is not None
            else ClientLink(config.broker, self.inbox, config.engine.max_in_flight, observer)
        )
        self.engine = Engine(
            self.link,
            Devices(self.registry),
            config.engine,
            clock=clock,
            monotonic=monotonic,
            inbox=self.inbox,
            observer=observer,
            storage=self.state.storage,
        )
        self.engine.let_go_hooks.append(self._let_go)
        self.engine.end_hooks.append(self._start_queued)
        if self.ownership is not None:
            self.engine.rt.claims = DatabaseClaims(self.ownership.leases, self.ownership.held)
        self.operations = operations_factory(
            config.operations, SecretResolver.from_environment(config.secrets_dir)
        )
        self.reconciler = Reconciler(self.state, self.engine, self.operations)
        self.accounts: dict[str, str] = {}
        """The scopes served, with their payload encoding."""
        self.unreadable: list[str] = []
        """Jobs whose recorded state could not be read (left untouched, reported)."""
        self.resumed: list[ExecutionRef] = []
        """RUNNING executions left by a previous owner, taken up on start."""
        self.runs_queued = role != "stop"
        """Whether it runs the starts queued behind an execution when it ends (a `stop`
        command leaves them to the next owner: it would not drive them)."""
        self.dequeued: list[ExecutionRef] = []
        """Executions of starts that were queued (`start --enqueue`), started by this runner."""
        self.taken_hooks: list[Callable[[RunningJob], None]] = []
        """Called with each job taken over from another runner, once it is held."""
        self._declared: set[JobKey] = set()
        self._recorded: list[JobKey] = []
        self._tags_of: TagsOf | None = None
        """The manifests, the registry's sizes and the device tags made of them, last."""

    # -- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> Runner:
        if self.lock is not None:
            self.lock.acquire()
        try:
            if self.ownership is not None:
                self.ownership.renew()  # alive from now on: the others count this runner
            for scope in {*self.state.scopes(), self.config.scope}:
                self.serve(scope)
            if self.wait_for_broker:
                self.link.start(self.config.connect_timeout)
            else:
                self.engine.connection.connected = False  # until the session is subscribed
                self.link.start_in_background()
            if self.resume_all:
                with heap.loading():
                    self.resume()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Let go of everything; what cannot be written any more is said, never raised: the
        state on disk is consistent as it is (a restart takes it up)."""
        for job in list(self.engine.jobs.values()):
            try:
                job.state.close()
            except LeaseLostError as lost:
                log.warning("%s", lost)
            except OSError as error:
                log.error("%s/%s: its last changes are not written: %s", *job.key, error)
        self.link.stop()
        try:
            self.registry.close(settle=True)
        except OSError as error:
            log.error("the device registry's last changes are not written: %s", error)
        if self.ownership is not None:
            self.ownership.close()  # released: another runner takes the jobs at once
        if self._opened:
            self.state.storage.close()
        if self.lock is not None:
            self.lock.release()

    def serve(self, scope: str, encoding: str | None = None) -> None:
        """Subscribe to the devices of `scope` (its Kura account), in `encoding` (the Scope
        manifest's payloadEncoding; kept as it is when None, kura-protobuf at first)."""
        chosen = encoding or self.accounts.get(scope, "kura-protobuf")
        if self.accounts.get(scope) != chosen:
            self.link.serve(scope, chosen, self.config.connect_timeout)
            self.accounts[scope] = chosen

    def held(self) -> dict[JobKey, JobState]:
        """The jobs the engine holds, as a table taken at once (`dict()` of a dict does not
        let the engine's thread in), for a reader on another thread: each job's `snapshot()`
        is for it to take."""
        return {key: job.state for key, job in dict(self.engine.jobs).items()}

    def resume(self) -> None:
        """Take up what a previous owner left: RUNNING executions, operations still awaited
        (with several runners: of the jobs this one takes, up to its share)."""
        if self.ownership is not None:
            self.keep_leases(force=True)  # lists the recorded jobs itself
            return
        for scope, name in self.state.job_folders():  # each record read, not looked for first
            self._take_up(scope, name)

    def _take_up(self, scope: str, name: str) -> RunningJob | None:
        """Hold a recorded job from now on: the plan, reconcile and the scheduler use the
        engine's copy instead of reading the state again; its RUNNING execution resumes."""
        try:
            state = JobState.load(self.state, scope, name)
        except StateError as error:
            self.unreadable.append(str(error))
            return None  # reported; the other jobs go on
        except FileNotFoundError:
            return None  # a folder without a record: no job (`StateDir.job_folders`)
        self.serve(scope)
        job = executions.attach(self.engine, state, self.operations)
        if job.run is not None:
            self.resumed.append((scope, name, job.run.id))
        else:  # its execution ended while nobody owned the job: what was queued runs now
            self._start_queued(job)
        return job

    # -- several runners ------------------------------------------------------------------

    def may_hold(self, key: JobKey) -> bool:
        """Whether this runner may act for the job: always alone; with several runners,
        when it owns the job's lease or can take it now."""
        return self.ownership is None or self.ownership.take(key)

    def keep_leases(self, force: bool = False) -> None:
        """With several runners (at every turn of the daemon): renew the leases every third
        of a lease, letting go of the jobs whose lease was lost; take free jobs up to this
        runner's share (a runner that died leaves its jobs free when its lease ends), and
        give up idle jobs above it. Nothing to do for a runner alone."""
        ownership = self.ownership
        if ownership is None:
            return
        if force or ownership.renew_due():
            for key in ownership.renew():
                self.engine.forget(key, "its lease expired before it was renewed")
            self.engine.connection.leases_valid_until = ownership.valid_until
            self._recorded = list(self.state.jobs())
        if force or ownership.scan_due():
            ownership.scanned()
            known = set(self._recorded) | self._declared
            share = ownership.share(len(known))
            self._take_free(ownership, sorted(known), share)
            self._give_up_above(ownership, share)

    def _take_free(self, ownership: Ownership, known: list[JobKey], share: int) -> None:
        for key in ownership.free(known):
            if len(ownership.held) >= share:
                return
            if not ownership.take(key) or key not in self._recorded:
                continue  # a new job: reconcile records it
            job = self._take_up(*key)
            if job is not None:
                log.info("took over %s/%s (lease epoch %d)", *key, ownership.held[key].epoch)
                for hook in self.taken_hooks:
                    hook(job)

    def _give_up_above(self, ownership: Ownership, share: int) -> None:
        surplus = len(ownership.held) - share
        for key in sorted(ownership.held, reverse=True):
            if surplus <= 0:
                return
            job = self.engine.jobs.get(key)
            if job is not None and (job.run is not None or job.out):
                continue  # busy: it stays until its execution ends
            self.engine.forget(key, "given to another runner: this one holds more than its share")
            ownership.give_up(key)
            surplus -= 1

    def _check_owned(self, scope: str, name: str) -> None:
        """JobError when another runner owns the job (its requests go to that runner)."""
        if not self.may_hold((scope, name)):
            raise JobError(
                f"job {scope}/{name} is owned by another runner; ask again: `start` and `stop`"
                " hand the request to its owner"
            )

    def _let_go(self, key: JobKey) -> None:
        if self.ownership is not None:
            self.ownership.drop(key)

    # -- work -----------------------------------------------------------------------------

    def load(self) -> ManifestSet:
        """The manifests; the YAML of the files whose text it read before is taken from the
        state directory it owns (`ParsedFiles`), which keeps what it read this time."""
        parsed = self._parsed_files()
        manifests = load_manifests(
            [self.config.jobs_dir], default_scope=self.config.scope, parsed=parsed
        )
        if parsed is not None and parsed.changed():
            try:  # a cache: not written is read again next time, nothing else
                self.state.storage.replace(self.state.parsed_manifests, parsed.dump(), False)
            except OSError as error:
                log.warning("the manifests read are not kept for the next start: %s", error)
        return manifests

    def _parsed_files(self) -> ParsedFiles | None:
        """What the runner read of the manifest files before, when it owns a state directory
        (kept there, beside the lock: a state database shared by runners keeps none)."""
        if self.lock is None:
            return None
        try:
            return ParsedFiles(self.state.storage.read(self.state.parsed_manifests))
        except FileNotFoundError:
            return ParsedFiles()
        except OSError as error:
            log.warning("the manifests read before cannot be read (%s): reading every file", error)
            return ParsedFiles()

    def plan(self, manifests: ManifestSet) -> Plan:
        """What reconcile would do; with several runners, for the jobs this one owns (it
        takes the new and free ones first, up to its share)."""
        self._declare(manifests)
        if self.ownership is not None:
            self._declared = set(manifests.jobs)
            self.keep_leases(force=True)
        devices = self._device_tags(manifests)
        plan = compute_plan(
            manifests,
            self.state,
            devices,
            git_revision(self.config.jobs_dir),
            require_signed=self.config.require_signed,
            loaded={key: job.state for key, job in self.engine.jobs.items()},
            now=self.engine.clock(),
        )
        if self.ownership is not None:
            plan.jobs = [j for j in plan.jobs if self.ownership.holds((j.scope, j.name))]
        return plan

    def apply(self, plan: Plan) -> Applied:
        return self.reconciler.apply(plan)

    @overload
    def start_job(
        self,
        scope: str,
        name: str,
        manifests: ManifestSet,
        targets: list[str] | None = None,
        options: StartOptions | None = None,
        enqueue: Literal[False] = False,
    ) -> ExecutionSummary: ...

    @overload
    def start_job(
        self,
        scope: str,
        name: str,
        manifests: ManifestSet,
        targets: list[str] | None = None,
        options: StartOptions | None = None,
        *,
        enqueue: bool,
    ) -> ExecutionSummary | QueuedStart: ...

    def start_job(
        self,
        scope: str,
        name: str,
        manifests: ManifestSet,
        targets: list[str] | None = None,
        options: StartOptions | None = None,
        enqueue: bool = False,
    ) -> ExecutionSummary | QueuedStart:
        """A manual start: the job as declared (recorded first if it is new). `targets`: only
        these (the operator chose them: no rollout gate or retry limit holds them).
        `options`: every target from a step (`reset`, `from_step`). `enqueue`: if an
        execution runs, queue the start to run when it ends (the queued start is returned)
        instead of refusing it."""
        self._check_owned(scope, name)
        plan = self.plan(manifests)
        job_plan = next((j for j in plan.jobs if (j.scope, j.name) == (scope, name)), None)
        if job_plan is None or (job_plan.declared is None and job_plan.record is None):
            raise JobError(f"job {scope}/{name} is neither declared in the manifests nor recorded")
        if job_plan.action in (Action.REFUSED, Action.INVALID):
            raise JobError(
                f"job {scope}/{name} is {job_plan.action.value}: " + "; ".join(job_plan.problems)
            )
        if job_plan.conflict is not None:
            raise JobError(
                f"job {scope}/{name} has a conflict: " + "\n  ".join(job_plan.conflict.lines())
            )
        if job_plan.declared is None:
            raise JobError(f"job {scope}/{name} is no longer declared (orphaned); not started")
        if job_plan.declared.manifest.spec.suspend:
            origin = job_plan.declared.origin
            raise JobError(
                f"job {scope}/{name} is suspended ({origin.at('spec', 'suspend')}:"
                " suspend: true); set it to false to start it"
            )
        if targets:
            _check_chosen(scope, name, targets, job_plan.targets)
        steps = len(job_plan.declared.manifest.spec.steps)  # as frozen: there is no conflict
        if options is not None and options.restart_at is not None:
            _check_step(scope, name, options.restart_at, steps)
        job = self.reconciler.record_one(
            job_plan, plan.revision, history_bounds(plan.manifests, scope)
        )
        trigger = Trigger(
            kind=TriggerKind.MANUAL,
            detail="targets: " + ", ".join(targets) if targets else None,
            options=options if options is not None and options.text() else None,
        )
        if enqueue and job.state.running is not None:
            return self._enqueue(job, trigger, targets or [])
        done = executions.nothing_to_do(job, targets or None, options)
        if done is not None:
            raise NothingToDo(done)
        return self.reconciler.start(
            job,
            trigger,
            revision=plan.revision,
            declared=job_plan.declared,
            targets=job_plan.targets,
            waves=job_plan.waves,
            values=job_plan.values,
            only=targets or None,
            chosen=bool(targets),
        )

    def _enqueue(self, job: RunningJob, trigger: Trigger, targets: list[str]) -> QueuedStart:
        """Record a start to run when the job's running execution ends (see `_start_queued`):
        in the job record, so that a restart, or another runner taking the job over, runs it."""
        record, running = job.state.record, job.state.running
        assert running is not None
        if len(record.queued) >= MAX_QUEUED:
            raise JobError(
                f"job {job.label} has {len(record.queued)} starts queued already (at most"
                f" {MAX_QUEUED}); wait for execution {running.id} to end, or stop it with"
                f" `jobrunner stop {job.label}`"
            )
        queue_id = uuid.uuid4().hex[:12]
        options = (trigger.options or StartOptions()).model_copy(update={"enqueued": queue_id})
        entry = QueuedStart(
            id=queue_id, trigger=trigger.model_copy(update={"options": options}), targets=targets
        )
        record.queued.append(entry)
        job.state.save_record()
        job.state.log(running.id).write(
            "execution",
            f"start by {entry.trigger} queued ({queue_id}): it runs when execution"
            f" {running.id} ends",
        )
        log.info("queued a start of %s (%s) behind execution %d", job.label, queue_id, running.id)
        return entry

    def _start_queued(self, job: RunningJob) -> None:
        """Run the oldest start queued behind the job's execution, now that none runs; one
        that cannot start (nothing to do, suspended, no longer declared) is said and dropped,
        and the next one is tried."""
        record = job.state.record
        if not self.runs_queued or not record.queued or job.state.running is not None:
            return
        while record.queued and job.state.running is None:
            # Taken off the queue in the same write that records the execution it starts:
            # never started twice, never lost.
            entry = record.queued.pop(0)
            try:
                if record.suspend or record.orphaned:
                    why = "suspended" if record.suspend else "no longer declared"
                    raise JobError(f"job {job.label} is {why}")
                only = entry.targets or None
                done = executions.nothing_to_do(job, only, entry.trigger.options)
                if done is not None:
                    raise NothingToDo(done)
                summary = self.reconciler.start(
                    job,
                    entry.trigger,
                    revision=record.revision_applied,
                    only=only,
                    chosen=bool(entry.targets),
                )
            except JobError as error:
                job.state.save_record()
                log.warning("queued start %s of %s not run: %s", entry.id, job.label, error)
                continue
            log.info("started %s execution %d: %s", job.label, summary.id, entry.trigger)
            self.dequeued.append((*job.key, summary.id))

    def stop_job(
        self,
        scope: str,
        name: str,
        reason: str,
        *,
        cancel: bool = False,
        drain: float = executions.DRAIN,
    ) -> ExecutionSummary:
        """Stop the job's running execution (see `executions.stop`); NotRunning when none
        runs."""
        self._check_owned(scope, name)
        job = self.reconciler.job(scope, name)
        if job.run is None:
            raise not_running(scope, name, job.state.last_execution)
        executions.stop(self.engine, job, reason, cancel=cancel, drain=drain)
        return job.run.summary

    def approve_wave(self, scope: str, name: str, wave: str | None, by: str) -> Approval:
        """Approve a wave of the job's rollout that waits for it (see `approval.approve`):
        logged in the running execution, heard by the observer (`rollout.wave.approved`)."""
        self._check_owned(scope, name)
        job = self.reconciler.job(scope, name)
        now = datetime.fromtimestamp(self.engine.rt.clock(), UTC)
        given = approve(job.state, wave, by, now)
        if not given.already:
            self.engine.rt.observer.wave_approved(job.key, given.execution, given.wave, by)
        return given

    def wait(
        self, refs: Iterable[ExecutionRef], tick: Callable[[], None] | None = None
    ) -> list[ExecutionSummary]:
        """Run the engine until each execution has ended; their final summaries. `tick` is
        called between turns (at least every half second), e.g. to show progress."""
        wanted = list(refs)

        def ended() -> bool:
            self.keep_leases()  # with several runners: the leases of what it drives
            if tick is not None:
                tick()
            return all(self._summary(r).status is not ExecutionStatus.RUNNING for r in wanted)

        with heap.long_lived():  # the loaded jobs and plan stay as long as the wait
            self.engine.run_until(ended)
            self.engine.step(0)  # write what the last turn queued
        if tick is not None:
            tick()
        return [self._summary(r) for r in wanted]

    def job_state(self, scope: str, name: str) -> JobState:
        """The job's state as the engine holds it (loaded if it is not running)."""
        return self.reconciler.job(scope, name).state

    def _summary(self, ref: ExecutionRef) -> ExecutionSummary:
        job = self.engine.jobs.get((ref[0], ref[1]))
        if job is not None and ref[2] in job.state.executions:
            return job.state.executions[ref[2]]
        return ExecutionSummary.load(self.state.storage, self.state.job(*ref[:2]).summary(ref[2]))

    def _device_tags(self, manifests: ManifestSet) -> dict[str, ScopeDevices]:
        """`device_tags`, made again only when the manifests or the registry's devices
        changed: a resync of the manifests read last (the daemon's, every five minutes) then
        costs what changed, not a pass over every device. The registry only gains devices
        (one connects undeclared) as long as the manifests are the same."""
        sizes = tuple((scope, len(self.registry.scope(scope))) for scope in self.registry.scopes())
        held = self._tags_of
        if held is not None and held[0] is manifests and held[1] == sizes:
            return held[2]
        devices = device_tags(manifests, self.registry)
        self._tags_of = (manifests, sizes, devices)
        return devices

    def _declare(self, manifests: ManifestSet) -> None:
        if self._tags_of is None or self._tags_of[0] is not manifests:
            # Declared again only from manifests read again: only `declare` makes a
            # device declared or not, so those read last are declared already.
            for scope, devices in manifests.devices.items():
                self.registry.scope(scope).declare(devices)
        for scope in {s for s, _ in manifests.jobs} | set(manifests.devices):
            encoding = "kura-protobuf"
            declared_scope = manifests.scopes.get(scope)
            if declared_scope is not None:
                encoding = declared_scope.manifest.spec.payload_encoding
            self.serve(scope, encoding)


def _check_chosen(scope: str, name: str, chosen: list[str], targets: list[str]) -> None:
    """JobError naming the chosen client ids that are not targets of the job."""
    known = set(targets)
    unknown = [c for c in chosen if c not in known]
    if not unknown:
        return
    hints = []
    for client_id in unknown:
        close = difflib.get_close_matches(client_id, targets, n=1)
        hints.append(f"{client_id!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    raise JobError(
        f"job {scope}/{name} has no target {', '.join(hints)}; its targets are"
        f" {_some(targets)}; see `jobrunner status {scope}/{name}`"
    )


def _check_step(scope: str, name: str, step: int, steps: int) -> None:
    """JobError when `step` (counted from 0) is not a step of the job."""
    if not 0 <= step < steps:
        last = "0" if steps == 1 else f"0 to {steps - 1}"
        raise JobError(
            f"job {scope}/{name} has {steps} step(s), counted from 0: there is no step {step};"
            f" give {last} (see `jobrunner status {scope}/{name}`)"
        )


def _some(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "") or "none"


def exit_code(summaries: Iterable[ExecutionSummary]) -> int:
    """0 when every target of the executions is PROCESS_OK, 3 when some are not."""
    for summary in summaries:
        if any(status != TargetStatus.PROCESS_OK.value for status in summary.counts):
            return 3
        if summary.given_up:
            return 3
        if summary.status in (ExecutionStatus.STOPPED, ExecutionStatus.ABORTED):
            return 3
    return 0
