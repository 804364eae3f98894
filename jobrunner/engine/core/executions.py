"""Starting and stopping executions, on the engine's thread.

Only one execution of a job runs at a time. The first execution freezes the resolved target
list and the steps. A re-run covers the targets that are not done, each from the step where
it stopped; a start with `reset` or `from_step` covers every target, from that step. A job
taken into the engine (`attach`) resumes the RUNNING execution it has on disk (see
`recovery`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from jobrunner.engine.core import gates
from jobrunner.engine.core.loop import Engine
from jobrunner.engine.core.perdevice import PerDevice
from jobrunner.engine.core.runtime import ExecutionRun, RunningJob
from jobrunner.engine.link.operations import OperationFactory
from jobrunner.engine.rollout.coverage import coverage
from jobrunner.engine.rollout.gate import gate_settings, retry_of
from jobrunner.errors import JobError
from jobrunner.manifests import StepBase
from jobrunner.manifests.fields import format_duration
from jobrunner.manifests.rollout import Retry
from jobrunner.manifests.steptemplates import StepTemplate
from jobrunner.state.jobstore import JobState
from jobrunner.state.records import (
    FrozenJob,
    FrozenValues,
    FrozenWave,
    StartOptions,
    Trigger,
    utc_now,
)
from jobrunner.state.targets import TargetState, TargetTable

DRAIN = 10.0
"""Seconds a stop awaits the replies of requests in flight, by default: the operator's stop
of an execution, and the runner's on SIGTERM (under systemd's 15 s before it kills)."""
MAX_DRAIN = 3600.0
"""The longest wait for replies in flight one may ask a stop for."""

__all__ = ["DRAIN", "MAX_DRAIN", "OperationFactory", "attach", "freeze", "start", "stop"]


def attach(engine: Engine, state: JobState, operations: OperationFactory) -> RunningJob:
    """Load a job into the engine (once); resume its RUNNING execution if it has one."""
    running = engine.jobs.get(state.key)
    if running is not None:
        return running
    state.retention = engine.settings.history
    state.prune()  # what grew past the retention while no runner held the job
    job = RunningJob(state, state.steps, operations)
    job.per_device = PerDevice(operations)
    _read_checks(job)
    engine.hold(job)
    return job


def _read_checks(job: RunningJob) -> None:
    """Which of the job's steps verify, take a snapshot, are Configuration Puts."""
    steps = job.steps
    verifying = [_written(step, "verify") is True for step in steps]
    job.verifying = verifying if any(verifying) else []  # empty: no look at every reply
    job.snapshotting = [_written(step, "rollback") == "onFailure" for step in steps]
    puts = [getattr(step, "definition", None) == "Configuration Put" for step in steps]
    job.puts = puts if any(puts) else []


def _written(step: StepBase, name: str) -> object:
    """A step's field as written (a step that reads per-device values keeps it as text)."""
    if isinstance(step, StepTemplate):
        return step.written.get(name)
    return getattr(step, name, None)


def freeze(
    state: JobState,
    targets: list[str],
    steps: list[dict[str, Any]],
    digest: str,
    revision: str | None,
    waves: list[FrozenWave] | None = None,
    waves_written: list[dict[str, Any]] | None = None,
    values: FrozenValues | None = None,
) -> None:
    """Record the first execution's targets, steps, waves and the values its steps read for
    each target: unmodifiable from now on."""
    state.freeze(
        FrozenJob(
            at=utc_now(),
            revision=revision,
            targets=targets,
            steps=steps,
            digest=digest,
            waves=waves or [],
            waves_written=waves_written or [],
            values=values,
        )
    )


def nothing_to_do(
    job: RunningJob, only: Iterable[str] | None = None, options: StartOptions | None = None
) -> str | None:
    """Why a start of `job` (of `only` those targets) would send nothing: every target it
    would cover is done already; None when some target is left (or none was frozen yet, or
    the start runs targets again from a step: `options`)."""
    state = job.state
    frozen = state.record.frozen
    if frozen is None or state.running is not None:
        return None
    if options is not None and options.restart_at is not None:
        return None  # it runs the done targets again
    # Chosen: the retry limit is not asked; only what is done counts here.
    found = coverage(state, len(job.steps or state.steps), 0.0, only, chosen=True)
    if not found.done or found.covered:
        return None
    which = "every target" if only is None else "every target chosen"
    return (
        f"nothing to do: {which} of job {job.label} is done ({len(found.done)} PROCESS_OK at"
        " its last step); no execution was started"
    )


def start(
    engine: Engine,
    job: RunningJob,
    trigger: Trigger,
    *,
    operations: OperationFactory,
    revision: str | None,
    only: Iterable[str] | None = None,
    chosen: bool = False,
) -> ExecutionRun:
    """Begin an execution over the targets that are not done (or `only` those among them).

    `chosen`: the operator chose the targets (`start --target`): they start at once, whatever
    the rollout's waves, window, rate and retry limit say."""
    state = job.state
    running = state.running
    if running is not None:
        raise JobError(
            f"job {job.label} is already running execution {running.id}"
            f" (started {running.started_on:%Y-%m-%d %H:%M:%S} UTC by {running.trigger});"
            f" wait for it to end, or stop it with `jobrunner stop {job.label}`"
        )
    frozen = state.record.frozen
    if frozen is None:
        raise JobError(f"job {job.label} has no frozen targets and steps; reconcile it first")
    if not job.steps:  # frozen since the engine took the job in
        job.steps, job.build = state.steps, operations  # its operations made of these
        _read_checks(job)
    restart_at = trigger.options.restart_at if trigger.options is not None else None
    if restart_at is not None and not 0 <= restart_at < len(job.steps):
        raise JobError(
            f"job {job.label} has {len(job.steps)} step(s), counted from 0: from step"
            f" {restart_at} there is none; give a step from 0 to {len(job.steps) - 1}"
        )
    now = engine.clock()
    state.add_targets(frozen.targets, now)
    found = coverage(state, len(job.steps), now, only, chosen, restart_at)
    given_up, resting, covered = found.given_up, found.resting, found.covered
    rolling = [c for c in covered if _rolling_back(state.targets, c)]
    covered = [c for c in covered if c not in rolling] if rolling else covered
    retry = None if chosen else retry_of(state.record.spec)
    summary = state.begin_execution(trigger, covered, revision)
    if chosen or given_up:  # a restart must know them: the gate must not hold chosen targets
        summary.chosen, summary.given_up = chosen, given_up
        state.save_summary(summary)
    run = ExecutionRun(summary, set(covered))
    gated = not chosen and gate_settings(state.record) is not None
    job.run = run
    skipped = len(found.done)
    state.log(run.id).write(
        "execution",
        f"{run.id} started by {trigger}; {len(covered)} target(s)"
        + (f", {skipped} done already and skipped" if skipped else "")
        + (f", every one from step {restart_at}" if restart_at is not None else "")
        + (f"; manifests at {revision}" if revision else ""),
        now,
    )
    if retry is not None:
        _log_left_out(state, run.id, retry, given_up, resting, now)
    _log_rolling_back(state, run.id, rolling, now)
    if chosen and state.record.rollout is not None:
        state.log(run.id).write(
            "rollout", "the targets were chosen: the waves, window and rate do not hold them", now
        )
    for client_id in covered:
        entered = _enter(state, state.targets.get(client_id), run.id, restart_at, now)
        state.targets.put(entered if gated else entered.start(run.id, now))
    run.gate = engine.rt.gate(job, run) if gated else None  # counts the targets as entered
    for client_id in covered:
        engine.take_up(job, client_id)
    if run.gate is not None:
        run.gate.sort_held()
        for client_id in run.gate.held():
            target = state.targets.get(client_id)
            state.targets.put(target.waiting(run.gate.waiting_reason(client_id), now))
    return run


def _rolling_back(targets: TargetTable, client_id: str) -> bool:
    """Whether the target's device is being rolled back (its failure came after its
    execution ended): a start leaves it to its rollback, since nothing else may be sent to
    the device meanwhile, and joining would lose the rollback's record."""
    return client_id in targets and targets.get(client_id).being_rolled_back


def _log_rolling_back(state: JobState, execution: int, rolling: list[str], now: float) -> None:
    for client_id in rolling:
        snapshot = state.targets.get(client_id).snapshot
        assert snapshot is not None
        state.log(execution).write(
            f"target {client_id}",
            f"its rollback to snapshot {snapshot.id} is under way: not in this execution",
            now,
        )


def _enter(
    state: JobState, target: TargetState, execution: int, restart_at: int | None, now: float
) -> TargetState:
    """The target as it joins `execution`: where it stopped, or at `restart_at`."""
    if restart_at is None:
        return target.enter(execution, now)
    if target.outstanding:  # moving it would lose what the device still does for it
        state.log(execution).write(
            f"target {target.client_id}",
            f"not moved to step {restart_at}: an earlier request of step {target.step_index}"
            " still awaits the device; it goes on from there",
            now,
        )
        return target.enter(execution, now)
    return target.restart(restart_at, execution, now)


def _log_left_out(
    state: JobState,
    execution: int,
    retry: Retry,
    given_up: list[str],
    resting: list[str],
    now: float,
) -> None:
    log = state.log(execution)
    for client_id in given_up:
        target = state.targets.get(client_id)
        note = (
            f"gave up after {target.attempts} attempt(s) (retry.maxAttempts {retry.max_attempts})"
        )
        if not (target.message or "").startswith("gave up"):
            last = f": {target.message}" if target.message else ""
            state.targets.put(target.waiting(note + last, now))
        log.write(f"target {client_id}", note + "; not tried again", now)
    if resting:
        assert retry.backoff is not None
        log.write(
            "retry",
            f"{len(resting)} failed target(s) not tried again before their backoff"
            f" ({format_duration(retry.backoff)} after their failure) is over: "
            + ", ".join(resting[:20])
            + (", ..." if len(resting) > 20 else ""),
            now,
        )


def stop(
    engine: Engine, job: RunningJob, reason: str, *, cancel: bool = False, drain: float = DRAIN
) -> bool:
    """Send nothing more; the execution ends STOPPED once no reply is awaited, or `drain`
    seconds after the stop. With `cancel`, operations running on the devices that can be
    cancelled (a package download) are asked to stop, and their end awaited the same way."""
    return gates.stop_run(
        engine.rt, engine.cancel, job, reason, cancel_operations=cancel, drain=drain
    )
