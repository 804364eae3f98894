"""`jobrunner reconcile`, `start` and `stop`: the commands that act on devices."""

from __future__ import annotations

import time
from pathlib import Path

import click

from jobrunner.cli.config import runner_config
from jobrunner.cli.options import (
    broker_option,
    client_id_option,
    manifest_options,
    runner_options,
    state_dir_option,
)
from jobrunner.cli.progress import ProgressView, progress_of
from jobrunner.engine import handoff
from jobrunner.engine.plan import Action
from jobrunner.engine.service import ExecutionRef, Runner, exit_code
from jobrunner.engine.status import parse_job_ref
from jobrunner.state.jobstore import JobState
from jobrunner.state.layout import StateDir
from jobrunner.state.lock import current_owner
from jobrunner.state.records import ExecutionStatus, ExecutionSummary, counts_text


def _daemon(state_dir: Path) -> StateDir | None:
    """The state directory, when a `watch` daemon owns it (requests then go to it)."""
    state = StateDir(state_dir)
    owner = current_owner(state.lock)
    return state if owner is not None and owner.role == "watch" else None


def follow(state: StateDir, refs: list[ExecutionRef], view: ProgressView) -> list[ExecutionSummary]:
    """Wait, reading the state directory, until the daemon's executions have ended."""
    while True:
        summaries = [ExecutionSummary.load(state.job(s, n).summary(e)) for s, n, e in refs]
        finished = all(summary.status is not ExecutionStatus.RUNNING for summary in summaries)
        if finished or view.due(0.5):
            if not view.live:  # the log lines only: no need to read every target
                for s, n, e in refs:
                    view.print_new_lines(state.job(s, n).log(e), f"{s}/{n}")
            else:
                jobs = [JobState.load(state, s, n) for s, n, _ in refs]
                pairs = zip(jobs, refs, strict=True)
                view.show([progress_of(job, e) for job, (_, _, e) in pairs])
                for job in jobs:
                    job.close()
        if finished:
            return summaries
        time.sleep(0.2)


def _run_and_show(runner: Runner, refs: list[ExecutionRef]) -> list[ExecutionSummary]:
    """Drive the executions here, showing their progress."""
    with ProgressView.for_output() as view:

        def show() -> None:
            if not view.live:  # the log lines only: counting 10,000 targets costs 10 ms
                for s, n, e in refs:
                    view.print_new_lines(runner.job_state(s, n).paths.log(e), f"{s}/{n}")
                return
            view.show([progress_of(runner.job_state(s, n), e) for s, n, e in refs])

        def tick() -> None:
            if view.due():
                show()

        summaries = runner.wait(refs, tick)
        show()  # the last lines, whenever the last tick was
        return summaries


def _refs(result: dict[str, object], key: str) -> list[ExecutionRef]:
    return [(str(s), str(n), int(e)) for s, n, e in result.get(key, [])]  # type: ignore[attr-defined]


def _report(summaries: list[ExecutionSummary], labels: list[str]) -> None:
    for label, summary in zip(labels, summaries, strict=True):
        counts = counts_text(summary.counts)
        click.echo(f"{label} execution {summary.id}: {summary.status.value} ({counts})")


@click.command()
@runner_options
@click.option("--wait", is_flag=True, help="Return when the started executions have ended.")
@click.pass_context
def reconcile(
    ctx: click.Context,
    jobs_dir: Path,
    scope: str,
    state_dir: Path,
    broker: str,
    client_id: str | None,
    max_in_flight: int,
    require_signed: bool,
    secrets_dir: Path | None,
    wait: bool,
) -> None:
    """Apply the plan once, and run the executions that are due.

    Records every declared job (creating, updating, marking removed ones
    orphaned), records conflicts without applying them, and starts an execution
    for each job whose `run` token is new, then runs them against the devices.

    Without a `watch` daemon owning the state directory, this command drives the
    executions itself until they end (with or without --wait); with --wait the
    exit status tells how they ended.

    Exit status: 0 when every target of the executions is PROCESS_OK (or nothing
    started), 3 when some target failed or an execution was stopped, 1 on invalid
    manifests, conflicts or other errors.
    """
    daemon = _daemon(state_dir)
    if daemon is not None:
        started = _refs(handoff.submit(daemon, "reconcile"), "started")
        for scope_name, name, execution in started:
            click.echo(f"started {scope_name}/{name} execution {execution} (by the watch daemon)")
        if not wait:
            return
        with ProgressView.for_output() as view:
            summaries = follow(daemon, started, view)
        _report(summaries, [f"{s}/{n}" for s, n, _ in started])
        ctx.exit(exit_code(summaries))
    config = runner_config(
        jobs_dir, state_dir, scope, broker, client_id, max_in_flight, require_signed, secrets_dir
    )
    with Runner(config, role="reconcile") as runner:
        for problem in runner.unreadable:
            click.echo(f"error: {problem}", err=True)
        manifests = runner.load()
        plan = runner.plan(manifests)  # may add diagnostics (a scope's policy)
        for diagnostic in manifests.errors:
            click.echo(str(diagnostic), err=True)
        applied = runner.apply(plan)
        for job in plan.jobs:
            if job.action in (Action.CONFLICT, Action.INVALID, Action.REFUSED):
                detail = job.conflict.message if job.conflict else "; ".join(job.problems)
                click.echo(f"{job.action.value}: {job.label}: {detail}", err=True)
        for scope_name, name, execution in runner.resumed:
            click.echo(f"resumed {scope_name}/{name} execution {execution}")
        for scope_name, name, execution in applied.started:
            click.echo(f"started {scope_name}/{name} execution {execution}")
        waited = runner.resumed + applied.started
        summaries = _run_and_show(runner, waited)
        _report(summaries, [f"{s}/{n}" for s, n, _ in waited])
    failed = plan.has_errors
    ctx.exit(1 if failed else (exit_code(summaries) if wait else 0))


@click.command()
@click.argument("job")
@runner_options
@click.option("--wait", is_flag=True, help="Return when the execution has ended.")
@click.pass_context
def start(
    ctx: click.Context,
    job: str,
    jobs_dir: Path,
    scope: str,
    state_dir: Path,
    broker: str,
    client_id: str | None,
    max_in_flight: int,
    require_signed: bool,
    secrets_dir: Path | None,
    wait: bool,
) -> None:
    """Start an execution of JOB now (NAME or SCOPE/NAME).

    The execution covers the targets that are not done, each from the step where
    it stopped. Refused while the job runs another execution. The first execution
    of a job freezes its targets and steps.

    Exit status with --wait: 0 when every target is PROCESS_OK, 3 when some
    failed; 1 on errors.
    """
    scope_name, name = parse_job_ref(job, scope)
    daemon = _daemon(state_dir)
    if daemon is not None:
        started = _refs(handoff.submit(daemon, "start", scope_name, name), "started")
        click.echo(f"started {scope_name}/{name} execution {started[0][2]} (by the watch daemon)")
        if wait:
            with ProgressView.for_output() as view:
                summaries = follow(daemon, started, view)
            _report(summaries, [f"{scope_name}/{name}"])
            ctx.exit(exit_code(summaries))
        return
    config = runner_config(
        jobs_dir, state_dir, scope, broker, client_id, max_in_flight, require_signed, secrets_dir
    )
    with Runner(config, role="start") as runner:
        summary = runner.start_job(scope_name, name, runner.load())
        click.echo(f"started {scope_name}/{name} execution {summary.id}")
        summaries = _run_and_show(runner, [(scope_name, name, summary.id)])
        _report(summaries, [f"{scope_name}/{name}"])
    ctx.exit(exit_code(summaries) if wait else 0)


@click.command()
@click.argument("job")
@state_dir_option
@manifest_options
@broker_option
@client_id_option
def stop(
    job: str, state_dir: Path, jobs_dir: Path, scope: str, broker: str, client_id: str | None
) -> None:
    """Stop JOB's running execution (NAME or SCOPE/NAME).

    Nothing more is sent; replies and notifications of requests already sent are
    still recorded; the execution ends as STOPPED once no reply is awaited, and
    every target keeps its truthful status.
    """
    scope_name, name = parse_job_ref(job, scope)
    daemon = _daemon(state_dir)
    if daemon is not None:
        stopped = _refs(handoff.submit(daemon, "stop", scope_name, name), "stopped")
        follow(daemon, stopped, ProgressView(live=False))
        click.echo(f"stopped {scope_name}/{name} execution {stopped[0][2]}")
        return
    config = runner_config(jobs_dir, state_dir, scope, broker, client_id, 200)
    with Runner(config, role="stop") as runner:
        summary = runner.stop_job(scope_name, name, "stopped by the user")
        runner.wait([(scope_name, name, summary.id)])
        click.echo(f"stopped {scope_name}/{name} execution {summary.id}")
