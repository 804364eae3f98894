"""`jobrunner approve`: let a rollout's wave that waits for an approval go on."""

from __future__ import annotations

import getpass
from datetime import UTC, datetime
from pathlib import Path

import click

from jobrunner.cli.completion import complete_jobs
from jobrunner.cli.options import (
    echo_json,
    manifest_options,
    output_option,
    reading_state,
    state_options,
)
from jobrunner.engine.rollout.approval import Approval, approval_view, approve
from jobrunner.engine.service import handoff
from jobrunner.engine.status import resolve_job_ref
from jobrunner.state.jobstore import JobState
from jobrunner.state.layout import StateDir


def _who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for the uid (a container)
        return "unknown user"


@click.command("approve")
@click.argument("job", shell_complete=complete_jobs)
@state_options
@manifest_options
@output_option
@click.option(
    "--wave",
    metavar="NAME",
    help="The wave to approve (default: the one awaiting an approval now). A wave may be"
    " approved ahead, before the rollout reaches it.",
)
@click.option(
    "--by",
    metavar="WHO",
    help="Who approves, as the log, status and dashboard show it (default: the user).",
)
def approve_command(
    job: str,
    state_dir: Path,
    state_db: str | None,
    jobs_dir: Path,
    scope: str,
    output: str,
    wave: str | None,
    by: str | None,
) -> None:
    """Approve JOB's rollout wave that waits for it (NAME or SCOPE/NAME).

    A wave with `approval: required` starts only once approved: when the wave
    before it passed, the rollout waits in state awaiting-approval. The
    approval is recorded with who gave it and when (the execution's log,
    `status`, the dashboard, a rollout.wave.approved event), and stays with the
    wave across executions and restarts. While a `watch` daemon owns the state,
    the approval is handed to it and its next turn starts the wave; otherwise it
    is recorded for the next runner. The same in git:
    `spec.rollout.approved: [NAME]`.
    """
    who = by if by is not None else _who()
    if not who.strip() or not who.isprintable() or len(who) > handoff.MAX_BY:
        raise click.BadParameter(
            f"say who approves in 1-{handoff.MAX_BY} printable characters", param_hint="--by"
        )
    state = reading_state(state_dir, state_db)
    scope_name, name = resolve_job_ref(job, scope, state.jobs(), state.describe())
    daemon = handoff.owning_daemon(state)
    if daemon is not None:
        answer = handoff.submit(
            daemon, "approve", scope_name, name, options={"wave": wave, "by": who}
        )
        shown = answer["approved"]
        if isinstance(shown, list):  # several runners answered: the job's owner did
            shown = shown[0]
    else:
        lock = state.owners.lock("approve", f"approve-{scope_name}-{name}")
        if lock is not None:
            lock.acquire()
        try:
            given = _record(state, scope_name, name, wave, who)
        finally:
            if lock is not None:
                lock.release()
        shown = approval_view(given)
    if output == "json":
        echo_json({"scope": scope_name, "job": name, **shown})
        return
    verb = "was approved" if shown["already"] else "approved"
    click.echo(
        f"wave '{shown['wave']}' of {scope_name}/{name} {verb} by {shown['approvedBy']}"
        f" at {shown['approvedOn']}"
        + ("" if daemon is not None or shown["already"] else "; the next runner lets it go")
    )


def _record(state: StateDir, scope: str, name: str, wave: str | None, by: str) -> Approval:
    """Without a daemon: the approval written in the job record (and its running
    execution's log, which the next runner takes up)."""
    job = JobState.load(state, scope, name)
    try:
        return approve(job, wave, by, datetime.now(UTC))
    finally:
        job.close()  # writes the log's line
