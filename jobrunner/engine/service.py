"""The engine's entry points, as the CLI and the daemon use them.

make_plan(jobs_dir, state_dir, scope)   what reconcile would do (reads only, no lock)
Runner(config)                          a process that owns the state directory: lock,
                                        MQTT client, registry, engine; resumes what a
                                        previous owner left RUNNING
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Protocol

from jobrunner.device import BrokerSettings, OperationSettings
from jobrunner.device.operations import DEFAULT_SETTINGS
from jobrunner.engine import executions
from jobrunner.engine.devices import Devices
from jobrunner.engine.events import Inbox
from jobrunner.engine.executor import Engine
from jobrunner.engine.git import git_revision
from jobrunner.engine.link import ClientLink
from jobrunner.engine.observe import Observer
from jobrunner.engine.plan import Action, Plan, compute_plan
from jobrunner.engine.ports import DeviceLink
from jobrunner.engine.reconcile import Applied, Reconciler
from jobrunner.engine.runtime import EngineSettings
from jobrunner.engine.spec import ScopeDevices
from jobrunner.engine.steps import operations_factory
from jobrunner.errors import JobError, StateError
from jobrunner.manifests import ManifestSet, load_manifests
from jobrunner.manifests.secrets import SecretResolver
from jobrunner.state.jobstore import JobState
from jobrunner.state.layout import StateDir
from jobrunner.state.lock import OwnerLock
from jobrunner.state.records import ExecutionStatus, ExecutionSummary, Trigger, TriggerKind
from jobrunner.state.registry import DeviceRegistry
from jobrunner.state.targets import TargetStatus

ExecutionRef = tuple[str, str, int]  # scope, job name, execution id


class Link(DeviceLink, Protocol):
    """The engine's link to the devices, with the connection a runner opens and closes."""

    def start(self, timeout: float) -> None: ...

    def start_in_background(self) -> None: ...

    def serve(self, account: str, encoding: str, timeout: float) -> None: ...

    def stop(self) -> None: ...


def device_tags(
    manifests: ManifestSet, registry: DeviceRegistry | None = None
) -> dict[str, ScopeDevices]:
    """Per scope, every known device and its tags: declared in git, or discovered on connect."""
    known: dict[str, dict[str, Iterable[str]]] = {}
    zones: dict[str, dict[str, str]] = {}
    for scope, devices in manifests.devices.items():
        known[scope] = {cid: d.device.tags for cid, d in devices.items()}
        zones[scope] = {cid: d.device.timezone for cid, d in devices.items() if d.device.timezone}
    if registry is not None:
        for scope in registry.scopes():
            for record in registry.scope(scope):
                known.setdefault(scope, {}).setdefault(record.client_id, ())
    return {scope: ScopeDevices(devices, zones.get(scope)) for scope, devices in known.items()}


def make_plan(jobs_dir: Path, state_dir: Path, scope: str, require_signed: bool = False) -> Plan:
    """The plan for the manifests under `jobs_dir` against the state in `state_dir`."""
    manifests = load_manifests([jobs_dir], default_scope=scope)
    with DeviceRegistry(state_dir, autoflush=False) as registry:
        devices = device_tags(manifests, registry)
    return compute_plan(
        manifests,
        StateDir(state_dir),
        devices,
        git_revision(jobs_dir),
        require_signed=require_signed,
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


class Runner:
    """Owns the state directory while it lives, and drives the devices."""

    def __init__(
        self,
        config: RunnerConfig,
        role: str = "jobrunner",
        wait_for_broker: bool = True,
        resume: bool = True,
        link: Callable[[Inbox], Link] | None = None,
        clock: Callable[[], float] = time.time,
        observer: Observer | None = None,
    ) -> None:
        """`wait_for_broker`: connect before anything else (ConnectError when the broker
        cannot be reached); False: connect in the background, retrying with backoff, and
        send nothing until connected (the daemon). `resume`: take up, at once, every
        execution a previous owner left RUNNING; False: only those of the jobs this runner
        is asked about (`jobrunner stop` drives nothing else). `link`: how to reach the
        devices, given the engine's inbox (default: MQTT, with `config.broker`). `clock`: the
        engine's, which owns every deadline (a test passes time without sleeping). `observer`:
        who hears of requests and of the executions' events (metrics, notifications)."""
        self.config = config
        self.wait_for_broker = wait_for_broker
        self.resume_all = resume
        self.state = StateDir(config.state_dir)
        self.lock = OwnerLock(self.state.lock, role, config.broker.client_id)
        self.inbox = Inbox()
        self.registry = DeviceRegistry(config.state_dir, autoflush=False)
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
            inbox=self.inbox,
            observer=observer,
        )
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

    # -- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> Runner:
        self.lock.acquire()
        try:
            for scope in {*self.state.scopes(), self.config.scope}:
                self.serve(scope)
            if self.wait_for_broker:
                self.link.start(self.config.connect_timeout)
            else:
                self.engine.connection.connected = False  # until the session is subscribed
                self.link.start_in_background()
            if self.resume_all:
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
        for job in self.engine.jobs.values():
            job.state.close()
        self.link.stop()
        self.registry.close()
        self.lock.release()

    def serve(self, scope: str, encoding: str | None = None) -> None:
        """Subscribe to the devices of `scope` (its Kura account), in `encoding` (the Scope
        manifest's payloadEncoding; kept as it is when None, kura-protobuf at first)."""
        chosen = encoding or self.accounts.get(scope, "kura-protobuf")
        if self.accounts.get(scope) != chosen:
            self.link.serve(scope, chosen, self.config.connect_timeout)
            self.accounts[scope] = chosen

    def held(self) -> dict[tuple[str, str], JobState]:
        """The jobs the engine holds, as a table taken at once (`dict()` of a dict does not
        let the engine's thread in), for a reader on another thread: each job's `snapshot()`
        is for it to take."""
        return {key: job.state for key, job in dict(self.engine.jobs).items()}

    def resume(self) -> None:
        """Take up what a previous owner left: RUNNING executions, operations still awaited."""
        for scope, name in self.state.jobs():
            try:
                state = JobState.load(self.state, scope, name)
            except StateError as error:
                self.unreadable.append(str(error))
                continue  # reported; the other jobs go on
            # Every job is held from now on: the plan, reconcile and the scheduler use the
            # engine's copy instead of reading the files again.
            self.serve(scope)
            job = executions.attach(self.engine, state, self.operations)
            if job.run is not None:
                self.resumed.append((scope, name, job.run.id))

    # -- work -----------------------------------------------------------------------------

    def load(self) -> ManifestSet:
        return load_manifests([self.config.jobs_dir], default_scope=self.config.scope)

    def plan(self, manifests: ManifestSet) -> Plan:
        self._declare(manifests)
        devices = device_tags(manifests, self.registry)
        return compute_plan(
            manifests,
            self.state,
            devices,
            git_revision(self.config.jobs_dir),
            require_signed=self.config.require_signed,
            loaded={key: job.state for key, job in self.engine.jobs.items()},
        )

    def apply(self, plan: Plan) -> Applied:
        return self.reconciler.apply(plan)

    def start_job(
        self, scope: str, name: str, manifests: ManifestSet, targets: list[str] | None = None
    ) -> ExecutionSummary:
        """A manual start: the job as declared (recorded first if it is new). `targets`: only
        these (the operator chose them: no rollout gate or retry limit holds them)."""
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
                f"job {scope}/{name} has a conflict: {job_plan.conflict.file}:"
                f"{job_plan.conflict.line}: {job_plan.conflict.message}"
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
        job = self.reconciler.record_one(job_plan, plan.revision)
        return self.reconciler.start(
            job,
            Trigger(kind=TriggerKind.MANUAL, detail="targets: " + ", ".join(targets))
            if targets
            else Trigger(kind=TriggerKind.MANUAL),
            revision=plan.revision,
            declared=job_plan.declared,
            targets=job_plan.targets,
            waves=job_plan.waves,
            only=targets or None,
            chosen=bool(targets),
        )

    def stop_job(
        self,
        scope: str,
        name: str,
        reason: str,
        *,
        cancel: bool = False,
        drain: float = executions.STOP_DRAIN,
    ) -> ExecutionSummary:
        """Stop the job's running execution (see `executions.stop`); JobError when none runs."""
        job = self.reconciler.job(scope, name)
        if job.run is None:
            last = job.state.last_execution
            ended = (
                f"; its last execution, {last.id}, ended {last.status.value}"
                if last is not None
                else "; it has never run"
            )
            raise JobError(f"job {scope}/{name} has no running execution{ended}")
        executions.stop(self.engine, job, reason, cancel=cancel, drain=drain)
        return job.run.summary

    def wait(
        self, refs: Iterable[ExecutionRef], tick: Callable[[], None] | None = None
    ) -> list[ExecutionSummary]:
        """Run the engine until each execution has ended; their final summaries. `tick` is
        called between turns (at least every half second), e.g. to show progress."""
        wanted = list(refs)

        def ended() -> bool:
            if tick is not None:
                tick()
            return all(self._summary(r).status is not ExecutionStatus.RUNNING for r in wanted)

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

    def _declare(self, manifests: ManifestSet) -> None:
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
