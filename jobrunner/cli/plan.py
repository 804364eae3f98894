"""`jobrunner plan`: what reconcile would do, without doing it."""

from __future__ import annotations

import math
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import click

from jobrunner.cli.config import broker_settings
from jobrunner.cli.configfile import current
from jobrunner.cli.live import as_json, markdown, summary, text_lines
from jobrunner.cli.options import (
    broker_option,
    client_id_option,
    echo_json,
    manifest_options,
    reading_state,
    require_signed_option,
    state_options,
)
from jobrunner.engine.planning.asking import DEFAULT_RATE, DEFAULT_TIMEOUT, ClientAsker
from jobrunner.engine.planning.plan import Action, JobPlan, Plan
from jobrunner.engine.planning.values import shown_values, values_lines
from jobrunner.engine.rollout.gate import estimate, zone_unknown
from jobrunner.engine.rollout.windows import describe
from jobrunner.engine.service.inspection import live_plan
from jobrunner.engine.service.runner import make_plan
from jobrunner.errors import ConfigError, ConnectError, JobError
from jobrunner.manifests.fields import format_duration
from jobrunner.manifests.rollout import DEVICE_ZONE, Rollout
from jobrunner.state.layout import StateDir

MARKERS = {
    Action.CREATE: "+",
    Action.UPDATE: "~",
    Action.CONFLICT: "!",
    Action.REMOVE: "-",
    Action.INVALID: "!",
    Action.REFUSED: "!",
    Action.UNCHANGED: "=",
}


@click.command()
@click.argument("jobs", nargs=-1, metavar="[JOB]...")
@manifest_options
@state_options
@require_signed_option
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="List unchanged jobs and every target (--live: every value).",
)
@click.option(
    "-o",
    "--output",
    type=click.Choice(["text", "json", "markdown"]),
    default="text",
    show_default=True,
    help="text for people, json for scripts, markdown for a pull-request comment.",
)
@click.option(
    "--live",
    is_flag=True,
    help="Ask the target devices, with GETs only, what each step would change on them.",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0.1),
    default=DEFAULT_RATE,
    show_default=True,
    help="--live: requests a second at most.",
)
@click.option(
    "--timeout",
    "reply_timeout",
    type=click.FloatRange(min=0.1),
    default=DEFAULT_TIMEOUT,
    show_default=True,
    help="--live: seconds to wait for each reply.",
)
@broker_option
@client_id_option
@click.pass_context
def plan(
    ctx: click.Context,
    jobs: tuple[str, ...],
    jobs_dir: Path,
    scope: str,
    state_dir: Path,
    state_db: str | None,
    require_signed: bool,
    verbose: bool,
    output: str,
    live: bool,
    rate: float,
    reply_timeout: float,
    broker: str,
    client_id: str | None,
) -> None:
    """Show what `reconcile` would do, without doing it.

    Compares the manifests under the jobs directory with the state recorded in the
    state directory, job by job:

    \b
      + create     declared, not recorded yet
      ~ update     description, schedules, run token or suspend changed
      ! conflict   targets or steps changed after the first execution froze them
      - remove     no longer declared: its execution stops, its history is kept
      ! invalid    its manifest has errors: the job is kept as it is
      ! refused    its last commit is not allowed by the scope's policy
                   (docs/policy.md): the job is kept as it is
      = orphaned   its manifest was removed (with --verbose): it stays stopped,
                   its history kept, until it is declared again

    and which executions would start or stop, and why, with the resolved target
    devices of each job (their count; every one with --verbose). A start runs
    only the targets not done: those it would skip are shown with why (done, or
    left out by the retry limit).

    `-o json` prints the plan as one object: revision, exitCode, diagnostics, and
    every job with its action, changes, start, stop, targets, run (the targets a
    start would run), skipped, conflict and selection (what its label selector
    matches among the known devices, and why the first others do not).
    `-o markdown` prints it for a pull-request comment.

    `--live [JOB]...` asks the targets of those jobs (every job when none is
    named) where they stand, reading only: connected, applications advertised,
    and per step what it would change: Configuration Put each property
    `old → new` or in sync (CONF-V1 GET configurations/PID), Package Download /
    Install and Uninstall the installed version (DEPLOY-V2 GET packages),
    Bundle Start / Stop the bundle's state (GET bundles). It sends GETs only, at
    most --rate a second, on a connection of its own; it freezes nothing and
    writes nothing. Secrets are shown as ***.

    Exit status: 0 when nothing would change, 2 when something would, 1 on
    invalid manifests or conflicts, so that `jobrunner plan` can gate a pull
    request in CI (there, 2 is a success: `jobrunner plan || [ $? -eq 2 ]`).
    With --live: 0 when every target is in sync, 2 when a step would change
    something or a device could not be read, 1 on invalid manifests.
    """
    state = reading_state(state_dir, state_db)
    if live:
        ctx.exit(
            _live(
                ctx,
                jobs,
                jobs_dir,
                state,
                scope,
                require_signed,
                verbose,
                output,
                rate,
                reply_timeout,
                broker,
                client_id,
            )
        )
    if jobs:
        raise click.UsageError("JOB names are for --live; `jobrunner plan` shows every job")
    result = make_plan(jobs_dir, state, scope, require_signed)
    if output == "json":
        echo_json(plan_json(result))
    elif output == "markdown":
        click.echo(plan_markdown(result, verbose), nl=False)
    else:
        _print(result, verbose)
    ctx.exit(result.exit_code)


def _live(
    ctx: click.Context,
    jobs: tuple[str, ...],
    jobs_dir: Path,
    state: StateDir,
    scope: str,
    require_signed: bool,
    verbose: bool,
    output: str,
    rate: float,
    reply_timeout: float,
    broker: str,
    client_id: str | None,
) -> int:
    try:
        settings = broker_settings(current(ctx), broker, client_id)
        with ClientAsker(settings, rate=rate, timeout=reply_timeout) as asker:
            report = live_plan(jobs_dir, state, scope, jobs, asker, require_signed=require_signed)
    except ConfigError as error:
        raise click.BadParameter(str(error), param_hint="--broker") from None
    except ConnectError as error:
        raise click.ClickException(f"plan --live: {error}") from None
    except JobError as error:
        raise click.UsageError(str(error)) from None
    if output == "json":
        echo_json(as_json(report))
    elif output == "markdown":
        click.echo(markdown(report), nl=False)
    else:
        for line in text_lines(report, verbose):
            click.echo(line)
        click.echo(summary(report), err=True)
    return report.exit_code


def plan_markdown(result: Plan, verbose: bool) -> str:
    """The plan for a pull-request comment: the summary, then the plan as `plan` prints it."""
    lines = plan_lines(result, verbose)
    starts = sum(1 for j in result.jobs if j.start and not j.blocked)
    revision = f" at `{result.revision}`" if result.revision else ""
    head = f"### jobrunner plan{revision}\n\n{starts} execution(s) would start.\n"
    body = "\n```\n" + "\n".join(lines) + "\n```\n" if lines else "\nNothing would change.\n"
    return head + body


def plan_json(result: Plan) -> dict[str, Any]:
    """The plan for scripts: every job, whatever its action, and every diagnostic."""
    return {
        "revision": result.revision,
        "exitCode": result.exit_code,
        "diagnostics": [d.as_json() for d in result.manifests.diagnostics],
        "jobs": [
            {
                "scope": job.scope,
                "name": job.name,
                "action": job.action.value,
                "changes": job.changes,
                "start": job.start,
                "blocked": job.blocked,
                "stop": job.stop,
                "frozen": job.frozen,
                "orphaned": job.orphaned,
                "targets": job.targets,
                "run": job.run,
                "skipped": [
                    {"clientId": client_id, "reason": why}
                    for client_id, why in sorted(job.skipped.items())
                ],
                "waves": [
                    {"name": w.name, "selector": w.selector, "targets": w.targets}
                    for w in job.waves
                ],
                "values": None
                if job.values is None
                else {c: shown_values(job.values.of(c)) for c in job.values.rows},
                "selection": None if job.selection is None else job.selection.as_json(),
                "conflict": None if job.conflict is None else job.conflict.model_dump(),
                "problems": job.problems,
            }
            for job in result.jobs
        ],
    }


def _print(result: Plan, verbose: bool) -> None:
    for line in plan_lines(result, verbose):
        click.echo(line)
    revision = f" (manifests at {result.revision})" if result.revision else ""
    kinds = [*(a.value for a in Action), "orphaned"]
    counts = Counter("orphaned" if j.orphaned else j.action.value for j in result.jobs)
    summary = ", ".join(f"{counts[k]} {k}" for k in kinds if counts[k])
    starts = sum(1 for j in result.jobs if j.start and not j.blocked)
    click.echo(
        f"plan{revision}: {summary or 'no jobs'}; {starts} execution(s) would start",
        err=True,
    )


def plan_lines(result: Plan, verbose: bool) -> list[str]:
    """The plan as `jobrunner plan` prints it: the diagnostics, then each job that would
    change (every job, `verbose`) with its details."""
    lines = [str(diagnostic) for diagnostic in result.manifests.diagnostics]
    for job in result.jobs:
        if verbose or job.changes_something:
            lines.append(_line(job))
            lines.extend(f"      {detail}" for detail in _details(job, verbose, result.now))
    return lines


def _line(job: JobPlan) -> str:
    if job.orphaned:  # not "unchanged" as if declared: its manifest is gone
        return f"{MARKERS[job.action]} {'orphaned':<9} {job.label:<40} {len(job.targets)} target(s)"
    targets = f"{len(job.targets)} target(s)"
    if job.run is not None and job.skipped:
        targets = f"{len(job.run)} of {targets} to run, {len(job.skipped)} skipped"
    targets += " (frozen)" if job.frozen else ""
    return f"{MARKERS[job.action]} {job.action.value:<9} {job.label:<40} {targets}"


def _details(job: JobPlan, verbose: bool, now: float) -> list[str]:
    details = list(job.changes) if job.action is not Action.CREATE else []
    if job.orphaned:
        details.append(
            "manifest removed: orphaned (stopped, history kept; nothing starts it);"
            " declare it again to bring it back"
        )
    if job.conflict is not None:
        details.extend(job.conflict.lines())
    details.extend(job.problems)
    if job.start:
        details.append(f"start: {job.start}" + (f" ({job.blocked})" if job.blocked else ""))
    if job.stop:
        details.append(f"stop: {job.stop}")
    if verbose and job.targets:
        details.append("targets: " + ", ".join(job.targets))
        details.extend(f"values {line}" for line in values_lines(job.values, job.targets))
    if verbose and job.selection is not None:
        details.extend(job.selection.lines())
    if job.skipped:
        if verbose and job.run is not None:
            details.append("to run: " + (", ".join(job.run) or "none"))
        details.append("skipped: " + _skipped(job.skipped, verbose))
    details.extend(_waves(job, verbose, now))
    return details


def _skipped(skipped: dict[str, str], verbose: bool, shown: int = 5) -> str:
    """Each target a start would skip, with why (the first few, without --verbose)."""
    listed = [f"{client_id} ({why})" for client_id, why in sorted(skipped.items())]
    if verbose or len(listed) <= shown:
        return ", ".join(listed)
    return ", ".join(listed[:shown]) + f" and {len(listed) - shown} more (every one with -v)"


def _waves(job: JobPlan, verbose: bool, now: float) -> list[str]:
    """Each wave with its size (and, verbose, its devices), and when the starts would end."""
    lines = []
    if job.waves:
        if verbose:
            for wave in job.waves:
                devices = ", ".join(wave.targets) or "no target"
                lines.append(f"wave {wave.name} ({wave.selector}): {devices}")
        else:
            listed = ", ".join(f"{w.name} {len(w.targets)}" for w in job.waves)
            lines.append(f"waves: {listed} (every device with -v)")
    rollout = job.declared.manifest.spec.rollout if job.declared is not None else None
    starting = job.run if job.run is not None else job.targets  # what a start would run
    if verbose and rollout is not None and starting:
        chosen = set(starting)
        waves = [[c for c in w.targets if c in chosen] for w in job.waves] or [starting]
        first, last = estimate(waves, rollout, now, job.zones)
        lines.append(_estimate_text(first, last, now, rollout))
        unknown = [c for c in starting if zone_unknown(rollout.window, job.zones, c)]
        if unknown:
            shown = ", ".join(unknown[:5]) + (", ..." if len(unknown) > 5 else "")
            lines.append(
                f"estimate: {len(unknown)} target(s) have no timezone in their DeviceList"
                f" ({shown}): their window (timezone: device) opens in UTC, as the engine"
                " opens it; give each device a timezone in its DeviceList"
            )
    return lines


def _estimate_text(first: float, last: float, now: float, rollout: Rollout) -> str:
    if last == math.inf:
        return "estimate: the window's cron does not fire again: targets would never start"
    span = format_duration(timedelta(seconds=max(1, round(last - first))))
    starts = "at once" if first <= now + 1 else f"from {describe(first, 'UTC')}"
    soaks = " and the soaks" if rollout.soak else ""
    window = rollout.window
    device = window is not None and window.timezone == DEVICE_ZONE
    zones = " (the window in each device's time zone)" if device else ""
    return (
        f"estimate: starts {starts}, the last target at the earliest {describe(last, 'UTC')}"
        f" (starts spread over {span}{soaks}, if every target succeeds; plus its steps){zones}"
    )
