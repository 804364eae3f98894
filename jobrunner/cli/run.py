"""`jobrunner reconcile`, `start` and `stop`: the commands that act on devices."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click

from jobrunner.cli.completion import complete_client_ids, complete_jobs
from jobrunner.cli.config import pass_runner_config, runner_config
from jobrunner.cli.options import (
    broker_option,
    client_id_option,
    command_state,
    manifest_options,
    reading_state,
    requester_id_option,
    state_options,
)
from jobrunner.cli.progress import ProgressView, progress_of
from jobrunner.cli.signals import Interrupts
from jobrunner.engine.core.executions import DRAIN, MAX_DRAIN
from jobrunner.engine.planning.plan import Action
from jobrunner.engine.service import handoff
from jobrunner.engine.service.runner import (
    ExecutionRef,
    Runner,
    RunnerConfig,
    exit_code,
    not_running,
)
from jobrunner.engine.status import resolve_job_ref
from jobrunner.errors import NothingToDo, NotRunning, StateError
from jobrunner.manifests import ManifestSet, load_manifests
from jobrunner.manifests.secrets import SecretResolver
from jobrunner.notify.delivery import Notifier
from jobrunner.state.jobstore import JobState
from jobrunner.state.layout import StateDir
from jobrunner.state.records import (
    ExecutionStatus,
    ExecutionSummary,
    JobRecord,
    QueuedStart,
    StartOptions,
    counts_text,
)


def follow(
    state: StateDir,
    refs: list[ExecutionRef],
    view: ProgressView,
    interrupts: Interrupts | None = None,
) -> list[ExecutionSummary]:
    """Wait, reading the state directory, until the daemon's executions have ended (or a
    signal: the daemon goes on with them)."""
    while True:
        summaries = [
            ExecutionSummary.load(state.storage, state.job(s, n).summary(e)) for s, n, e in refs
        ]
        finished = all(summary.status is not ExecutionStatus.RUNNING for summary in summaries)
        if finished or view.due(0.5):
            if not view.live:  # the log lines only: no need to read every target
                for s, n, e in refs:
                    view.print_new_lines(state.storage, state.job(s, n).log(e), f"{s}/{n}")
            else:
                jobs = [JobState.load(state, s, n) for s, n, _ in refs]
                pairs = zip(jobs, refs, strict=True)
                view.show([progress_of(job, e) for job, (_, _, e) in pairs])
                for job in jobs:
                    job.close()
        if finished or (interrupts is not None and interrupts.received is not None):
            return summaries
        time.sleep(0.2)


def _run_and_show(
    runner: Runner, refs: list[ExecutionRef], interrupts: Interrupts
) -> list[ExecutionSummary]:
    """Drive the executions here, showing their progress; a first signal stops them."""
    stopped = False
    with ProgressView.for_output() as view:

        def show() -> None:
            if not view.live:  # the log lines only: counting 10,000 targets costs 10 ms
                for s, n, e in refs:
                    paths = runner.job_state(s, n).paths
                    view.print_new_lines(paths.storage, paths.log(e), f"{s}/{n}")
                return
            view.show([progress_of(runner.job_state(s, n), e) for s, n, e in refs])

        def tick() -> None:
            nonlocal stopped
            if interrupts.received is not None and not stopped:
                stopped = True
                reason = f"interrupted by {interrupts.received.name}"
                for s, n, _ in refs:
                    job = runner.engine.jobs.get((s, n))
                    if job is not None and job.run is not None:
                        runner.stop_job(s, n, reason)
            if view.due():
                show()

        summaries = runner.wait(refs, tick)
        show()  # the last lines, whenever the last tick was
        return summaries


def _left_after_interrupt(
    runner: Runner, summaries: list[ExecutionSummary], refs: list[ExecutionRef]
) -> None:
    """After a graceful stop: what was left, and how to go on."""
    for (s, n, _), summary in zip(refs, summaries, strict=True):
        if summary.status is not ExecutionStatus.STOPPED:
            continue
        job = runner.job_state(s, n)
        steps = len(job.steps)
        left = sum(1 for c in summary.targets if not job.targets.get(c).is_done(steps))
        if left:
            click.echo(
                f"{s}/{n}: {left} target(s) not done; `jobrunner start {s}/{n}` runs them"
                " again, each from the step where it stopped (a request still unanswered is"
                " awaited until its deadline, then sent again)",
                err=True,
            )


def _refs(result: dict[str, object], key: str) -> list[ExecutionRef]:
    return [(str(s), str(n), int(e)) for s, n, e in result.get(key, [])]  # type: ignore[attr-defined]


def _report(summaries: list[ExecutionSummary], labels: list[str]) -> None:
    for label, summary in zip(labels, summaries, strict=True):
        counts = counts_text(summary.counts)
        click.echo(f"{label} execution {summary.id}: {summary.status.value} ({counts})")


POST_ON_EXIT = 10.0
"""Seconds a command that ran executions itself spends posting their notifications."""


@dataclass
class _Loaded:
    """The manifests a command read: what its notifications are routed by."""

    client_id: str
    loaded: ManifestSet | None = None

    def manifests(self) -> ManifestSet | None:
        return self.loaded


@contextlib.contextmanager
def _notifying(config: RunnerConfig, state: StateDir) -> Iterator[tuple[_Loaded, Notifier]]:
    """The events of the executions this command drives go to the outbox as in `watch`;
    they are posted before the command exits (at most POST_ON_EXIT seconds), and what is
    left is posted by the next `watch`."""
    secrets = SecretResolver.from_environment(config.secrets_dir)
    notifier = Notifier(state, secrets, config.broker.client_id)
    source = _Loaded(config.broker.client_id)
    notifier.attach(source)
    try:
        yield source, notifier
    finally:
        left = notifier.post_now(POST_ON_EXIT) if source.loaded is not None else 0
        if left:
            click.echo(
                f"{left} notification event(s) not delivered yet (see the messages above);"
                " the next `jobrunner watch` posts them",
                err=True,
            )
        notifier.stop()


def _waited(runner: Runner, started: list[ExecutionRef]) -> list[ExecutionRef]:
    """The executions this command drives: those it started, and those a previous owner
    left RUNNING (said, never taken over silently)."""
    for scope_name, name, execution in runner.resumed:
        click.echo(
            f"resumed {scope_name}/{name} execution {execution}: left RUNNING by a process that"
            " ended without stopping it; driven to its end here too"
        )
    return [*runner.resumed, *[ref for ref in started if ref not in runner.resumed]]


def _drive(
    ctx: click.Context,
    runner: Runner,
    refs: list[ExecutionRef],
    failed: bool,
    judged: list[ExecutionRef] | None = None,
    unstarted: bool = False,
) -> None:
    """Run `refs` to their end here, report them, and exit: 1 on errors, 130/143 after a
    signal, else the exit status of the `judged` executions (default: all; 0 when all their
    targets are OK, 3 when some failed or an execution was stopped, or `unstarted`: a
    start that was due could not be made)."""
    with Interrupts("stopping the executions gracefully") as interrupts:
        summaries = _run_and_show(runner, refs, interrupts)
        _report(summaries, [f"{s}/{n}" for s, n, _ in refs])
        if interrupts.received is not None:
            _left_after_interrupt(runner, summaries, refs)
    if interrupts.received is not None:
        ctx.exit(interrupts.exit_code)
    chosen = judged if judged is not None else refs
    code = exit_code(s for r, s in zip(refs, summaries, strict=True) if r in chosen)
    ctx.exit(1 if failed else 3 if unstarted else code)


def _follow_daemon(
    ctx: click.Context, daemon: StateDir, refs: list[ExecutionRef], labels: list[str]
) -> None:
    with (
        Interrupts("no longer following; the watch daemon goes on") as interrupts,
        ProgressView.for_output() as view,
    ):
        summaries = follow(daemon, refs, view, interrupts)
    if interrupts.received is not None:
        for label, (_, _, execution) in zip(labels, refs, strict=True):
            click.echo(
                f"{label} execution {execution} goes on in the watch daemon;"
                f" `jobrunner stop {label}` stops it",
                err=True,
            )
        ctx.exit(interrupts.exit_code)
    _report(summaries, labels)
    ctx.exit(exit_code(summaries))


@click.command()
@pass_runner_config
@click.option("--wait", is_flag=True, help="With a watch daemon: follow the started executions.")
@click.pass_context
def reconcile(ctx: click.Context, config: RunnerConfig, wait: bool) -> None:
    """Apply the plan once, and run the executions that are due.

    Records every declared job (creating, updating, marking removed ones
    orphaned), records conflicts without applying them, and starts an execution
    for each job whose `run` token is new, then runs them against the devices.

    Without a `watch` daemon owning the state directory, this command drives the
    executions itself until they end, with or without --wait (returning earlier
    would leave them RUNNING with nobody sending their requests); executions a
    previous command left RUNNING are resumed and driven too. With a daemon, the
    daemon runs them; --wait follows them to their end.

    Ctrl-C (or SIGTERM) stops gracefully: nothing more is sent, the replies in
    flight are awaited for a few seconds, the executions end STOPPED and the
    targets not done run again at the next start. A second Ctrl-C leaves at once.

    A start that is due but cannot be made (no device matches the targets yet,
    an execution still runs) is said on standard error: `not started: JOB: why`.

    \b
    Exit status:
      0    every target of the executions is PROCESS_OK, or nothing was due
      3    some target failed, or an execution was stopped; with --wait, also
           a start that was due and could not be made
      1    invalid manifests, conflicts or other errors
      130  interrupted by Ctrl-C (143: by SIGTERM)
    """
    state = command_state(config.state_dir, config.state_db, existing=True)
    daemon = handoff.owning_daemon(state)
    if daemon is not None:
        started = _refs(handoff.submit(daemon, "reconcile"), "started")
        for scope_name, name, execution in started:
            click.echo(f"started {scope_name}/{name} execution {execution} (by the watch daemon)")
        if not started:
            click.echo("nothing to start (the watch daemon reconciled)")
        if wait:
            _follow_daemon(ctx, daemon, started, [f"{s}/{n}" for s, n, _ in started])
        return
    with (
        _notifying(config, state) as (source, notifier),
        Runner(config, role="reconcile", observer=notifier.observer, state=state) as runner,
    ):
        for problem in runner.unreadable:
            click.echo(f"error: {problem}", err=True)
        manifests = source.loaded = runner.load()
        plan = runner.plan(manifests)  # may add diagnostics (a scope's policy)
        for diagnostic in manifests.errors:
            click.echo(str(diagnostic), err=True)
        applied = runner.apply(plan)
        for job in plan.jobs:
            if job.action in (Action.CONFLICT, Action.INVALID, Action.REFUSED):
                if job.conflict is not None:
                    lines = "\n  ".join(job.conflict.lines())
                    click.echo(f"{job.action.value}: {job.label}:\n  {lines}", err=True)
                    continue
                click.echo(f"{job.action.value}: {job.label}: {'; '.join(job.problems)}", err=True)
        refs = _waited(runner, [])
        for scope_name, name, execution in applied.started:
            click.echo(f"started {scope_name}/{name} execution {execution}")
        for done in applied.idle:
            click.echo(done)
        unstarted = [job for job in plan.jobs if job.start and job.blocked]
        for job in unstarted:  # due, and not started: never silently
            click.echo(f"not started: {job.label}: {job.blocked}", err=True)
        _drive(
            ctx,
            runner,
            [*refs, *applied.started],
            plan.has_errors or bool(runner.unreadable),
            unstarted=wait and bool(unstarted),
        )


def _known_jobs(state: StateDir, jobs_dir: Path | None, scope: str) -> list[tuple[str, str]]:
    """Jobs recorded in `state`, and (for `start`) declared under `jobs_dir`."""
    known = list(state.jobs())
    if jobs_dir is not None:
        known += list(load_manifests([jobs_dir], default_scope=scope).jobs)
    return known


@click.command()
@click.argument("job", shell_complete=complete_jobs)
@pass_runner_config
@click.option("--wait", is_flag=True, help="With a watch daemon: follow the execution.")
@click.option(
    "--target",
    "targets",
    shell_complete=complete_client_ids,
    multiple=True,
    metavar="CLIENT_ID",
    help="Run only this target (repeatable); it starts at once, whatever the rollout's"
    " waves, window, rate and retry limit say.",
)
@click.option(
    "--reset",
    is_flag=True,
    help="Run every target from step 0, those already done too (the device cloud's"
    " resetStepIndex).",
)
@click.option(
    "--from-step",
    "from_step",
    type=click.IntRange(min=0),
    metavar="N",
    help="Run every target from step N, those already done too; steps count from 0, as"
    " in status and the device cloud's fromStepIndex (the first step is 0).",
)
@click.option(
    "--enqueue",
    is_flag=True,
    help="If JOB runs an execution, queue this start to run when it ends, instead of refusing it.",
)
@click.pass_context
def start(
    ctx: click.Context,
    job: str,
    config: RunnerConfig,
    wait: bool,
    targets: tuple[str, ...],
    reset: bool,
    from_step: int | None,
    enqueue: bool,
) -> None:
    """Start an execution of JOB now (NAME or SCOPE/NAME).

    The execution covers the targets that are not done, each from the step where
    it stopped (with --target, only those). Refused while the job runs another
    execution (--enqueue queues it instead), or while its manifest says
    `suspend: true`. The first execution of a job freezes its targets and steps:
    the start options never change them. A bare NAME is looked for in --scope,
    then in the one scope that has a job of that name.

    --reset and --from-step N run every target again from that step, those done
    already too, and begin a new count of attempts for the retry limit
    (`retry.maxAttempts` counts the executions since the last such start). A
    target whose earlier request still awaits the device goes on from where it is.

    Without a watch daemon, this command drives the execution to its end (and
    any execution a previous command left RUNNING, and then the start it
    queued); Ctrl-C stops it gracefully, as for `reconcile`. With a daemon, the
    daemon runs it; --wait follows it.

    A job whose targets are all done already starts nothing, and says so.

    \b
    Exit status:
      0    every target is PROCESS_OK (also when all were already)
      3    some target failed, or the execution was stopped
      1    errors (unknown job, suspended, already running...)
      130  interrupted by Ctrl-C (143: by SIGTERM)
    """
    if reset and from_step is not None:
        raise click.UsageError(
            f"--reset and --from-step both say where every target starts: --reset is step 0;"
            f" give one of them (--from-step {from_step} alone, or --reset alone)"
        )
    options = StartOptions(reset=reset, from_step=from_step)
    state = command_state(config.state_dir, config.state_db, existing=True)
    known = _known_jobs(state, config.jobs_dir, config.scope)
    where = f"{config.jobs_dir} nor the {state.describe()}"
    scope_name, name = resolve_job_ref(job, config.scope, known, where)
    daemon = handoff.owning_daemon(state)
    if daemon is not None:
        _start_by_daemon(ctx, daemon, (scope_name, name), wait, targets, options, enqueue)
        return
    label = f"{scope_name}/{name}"
    with (
        _notifying(config, state) as (source, notifier),
        Runner(config, role="start", observer=notifier.observer, state=state) as runner,
    ):
        refs = _waited(runner, [])
        source.loaded = runner.load()
        try:
            started = runner.start_job(
                scope_name,
                name,
                source.loaded,
                list(targets) or None,
                options=options,
                enqueue=enqueue,
            )
        except NothingToDo as nothing:
            click.echo(str(nothing))
            _drive(ctx, runner, refs, bool(runner.unreadable), judged=[])
            return
        if isinstance(started, QueuedStart):
            _run_queued_here(ctx, runner, (scope_name, name), refs, started)
            return
        click.echo(f"started {label} execution {started.id}")
        ref = (scope_name, name, started.id)
        _drive(ctx, runner, [*refs, ref], bool(runner.unreadable), judged=[ref])


def _start_by_daemon(
    ctx: click.Context,
    daemon: StateDir,
    key: tuple[str, str],
    wait: bool,
    targets: tuple[str, ...],
    options: StartOptions,
    enqueue: bool,
) -> None:
    """Hand the start to the watch daemon; with `wait`, follow what it started."""
    scope_name, name = key
    label = f"{scope_name}/{name}"
    asked: dict[str, object] = {"targets": list(targets)} if targets else {}
    if options.reset:
        asked["reset"] = True
    if options.from_step is not None:
        asked["fromStep"] = options.from_step
    if enqueue:
        asked["enqueue"] = True
    answer = handoff.submit(daemon, "start", scope_name, name, options=asked or None)
    if answer.get("nothing"):
        click.echo(str(answer["nothing"]))
        return
    queued = answer.get("queued")
    if isinstance(queued, list):
        behind, queue_id = int(queued[2]), str(queued[3])
        click.echo(
            f"queued a start of {label} ({queue_id}): it runs when execution {behind} ends"
            " (by the watch daemon)"
        )
        if not wait:
            return
        started = _follow_queued(ctx, daemon, key, behind, queue_id)
    else:
        started = _refs(answer, "started")
        click.echo(f"started {label} execution {started[0][2]} (by the watch daemon)")
    if wait:
        _follow_daemon(ctx, daemon, started, [label])


def _run_queued_here(
    ctx: click.Context,
    runner: Runner,
    key: tuple[str, str],
    refs: list[ExecutionRef],
    queued: QueuedStart,
) -> None:
    """Without a daemon: drive the running execution (left RUNNING by a process that ended)
    to its end, then the execution the start queued behind it runs as."""
    label = f"{key[0]}/{key[1]}"
    running = runner.job_state(*key).running
    behind = running.id if running is not None else 0
    click.echo(f"queued a start of {label} ({queued.id}): it runs when execution {behind} ends")
    with Interrupts("stopping the executions gracefully") as interrupts:
        _run_and_show(runner, refs, interrupts)
    if interrupts.received is not None:
        ctx.exit(interrupts.exit_code)
    dequeued = [ref for ref in runner.dequeued if ref[:2] == key]
    if not dequeued:
        click.echo(f"the queued start of {label} did not run (see the messages above)", err=True)
        ctx.exit(1)
    click.echo(f"started {label} execution {dequeued[0][2]}")
    _drive(ctx, runner, dequeued[:1], bool(runner.unreadable))


def _follow_queued(
    ctx: click.Context, state: StateDir, key: tuple[str, str], behind: int, queue_id: str
) -> list[ExecutionRef]:
    """Follow the daemon's execution `behind` to its end, then find the execution the start
    queued behind it (`queue_id`) runs as; exit 1 when it did not run."""
    scope, name = key
    _follow_daemon_quietly(state, [(scope, name, behind)])
    paths = state.job(scope, name)
    while True:  # the daemon takes it off the queue as it records the execution it starts
        record = JobRecord.load(state.storage, paths.record)
        if all(entry.id != queue_id for entry in record.queued):
            break
        time.sleep(0.2)
    for execution in range(behind + 1, record.last_execution + 1):
        try:
            summary = ExecutionSummary.load(state.storage, paths.summary(execution))
        except (StateError, FileNotFoundError):
            continue
        options = summary.trigger.options
        if options is not None and options.enqueued == queue_id:
            click.echo(f"started {scope}/{name} execution {execution} (by the watch daemon)")
            return [(scope, name, execution)]
    click.echo(
        f"the queued start {queue_id} of {scope}/{name} did not run; the watch daemon's log"
        " says why",
        err=True,
    )
    ctx.exit(1)
    raise AssertionError("unreachable: ctx.exit raises")


def _follow_daemon_quietly(state: StateDir, refs: list[ExecutionRef]) -> None:
    with ProgressView.for_output() as view:
        follow(state, refs, view)


@click.command()
@click.argument("job", shell_complete=complete_jobs)
@state_options
@manifest_options
@broker_option
@client_id_option
@requester_id_option
@click.option(
    "--cancel",
    is_flag=True,
    help="Also cancel what runs on the devices and can be cancelled (a package download:"
    " DEPLOY-V2 DEL/download), and wait for it to end.",
)
@click.option(
    "--drain",
    type=click.FloatRange(0, MAX_DRAIN),
    default=DRAIN,
    show_default=True,
    metavar="SECONDS",
    help="How long to wait for the replies of requests in flight before the execution ends.",
)
def stop(
    job: str,
    state_dir: Path,
    state_db: str | None,
    jobs_dir: Path,
    scope: str,
    broker: str,
    client_id: str | None,
    requester_id: str | None,
    cancel: bool,
    drain: float,
) -> None:
    """Stop JOB's running execution (NAME or SCOPE/NAME).

    Nothing more is sent. Replies to requests already sent are awaited for at
    most --drain seconds and recorded; then the execution ends STOPPED. Every
    target keeps its truthful status: a reply that comes later is still
    recorded, and the next execution never sends those requests again.
    Asynchronous operations (a package download) go on on the devices unless
    --cancel asks them to stop.
    """
    state = reading_state(state_dir, state_db)
    scope_name, name = resolve_job_ref(job, scope, state.jobs(), state.describe())
    daemon = handoff.owning_daemon(state)
    if daemon is not None:
        request = handoff.submit(
            daemon, "stop", scope_name, name, options={"cancel": cancel, "drain": drain}
        )
        if request.get("nothing"):
            click.echo(str(request["nothing"]))
            return
        stopped = _refs(request, "stopped")
        click.echo(
            f"stopping {scope_name}/{name} execution {stopped[0][2]}: nothing more is sent;"
            f" waiting up to {drain:g}s for replies in flight"
        )
        (summary,) = follow(daemon, stopped, ProgressView(live=False))
        _report([summary], [f"{scope_name}/{name}"])
        return
    recorded = JobState.load(state, scope_name, name)
    recorded.close()
    last = recorded.last_execution
    if last is None or last.status is not ExecutionStatus.RUNNING:  # no broker needed to say so
        click.echo(str(not_running(scope_name, name, last)))
        return
    config = runner_config(
        jobs_dir, state_dir, scope, broker, client_id, 200,
        state_db=state_db, requester_id=requester_id,
    )  # fmt: skip
    with Runner(config, role="stop", resume=False, state=state) as runner:
        try:
            summary = runner.stop_job(
                scope_name, name, "stopped by the user", cancel=cancel, drain=drain
            )
        except NotRunning as nothing:
            click.echo(str(nothing))  # what the operator wanted holds already
            return
        waiting = len(runner.engine.jobs[(scope_name, name)].out)
        click.echo(
            f"stopping {scope_name}/{name} execution {summary.id}: nothing more is sent"
            + (f"; waiting up to {drain:g}s for {waiting} reply(ies) in flight" if waiting else "")
        )
        (ended,) = runner.wait([(scope_name, name, summary.id)])
        _report([ended], [f"{scope_name}/{name}"])
