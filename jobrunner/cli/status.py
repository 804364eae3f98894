"""`jobrunner status` and `jobrunner logs`: what is recorded, read without the owner lock."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from jobrunner.cli.options import require_state_dir, scope_option, state_dir_option
from jobrunner.cli.progress import ProgressView
from jobrunner.cli.run import follow
from jobrunner.engine.status import STATUS_ORDER, all_jobs, job_view, load_job, resolve_job_ref
from jobrunner.state.layout import StateDir
from jobrunner.state.logs import read_lines
from jobrunner.state.records import ExecutionStatus, ExecutionSummary

SHORT = {
    "PROCESS_AWAITING": "awaiting",
    "AWAITING_COMPLETION": "completing",
    "NOTIFIED_COMPLETION": "notified",
    "PROCESS_OK": "ok",
    "PROCESS_FAILED": "failed",
}


@click.command()
@click.argument("job", required=False)
@state_dir_option
@scope_option
@click.option(
    "-o",
    "--output",
    type=click.Choice(["table", "json", "yaml"]),
    default="table",
    show_default=True,
    help="table for people, json or yaml for scripts.",
)
@click.option(
    "--status",
    "only_status",
    type=click.Choice(STATUS_ORDER),
    multiple=True,
    help="Show only targets with this status (repeatable).",
)
@click.option("--step", "only_step", type=int, help="Show only targets at this step index.")
@click.option(
    "-w",
    "--watch",
    "live",
    is_flag=True,
    help="Follow the running executions live until they end (log lines when not on a terminal).",
)
def status(
    job: str | None,
    state_dir: Path,
    scope: str,
    output: str,
    only_status: tuple[str, ...],
    only_step: int | None,
    live: bool,
) -> None:
    """Show jobs, their targets and executions, as recorded.

    Without JOB: one line per job with its targets by status and its last
    execution. With JOB (NAME or SCOPE/NAME): the job's targets (client id,
    step index, status, reason), its executions, the manifest it came from and
    the git revisions reconcile attempted and applied.

    `-o json` prints one object per job with at least scope, name, targets
    (clientId, stepIndex counted from 0, status) and executions (id, status
    RUNNING / TERMINATED / STOPPED, trigger, startedOn, endedOn).
    """
    state = StateDir(require_state_dir(state_dir))
    where = str(state_dir)
    if live:
        _watch(state, None if job is None else resolve_job_ref(job, scope, state.jobs(), where))
        return
    if job is None:
        rows = all_jobs(state)
        _emit(rows, output, _jobs_table)
        return
    scope_name, name = resolve_job_ref(job, scope, state.jobs(), where)
    loaded = load_job(state, scope_name, name)
    view = job_view(loaded)
    loaded.close()
    view["targets"] = [
        t
        for t in view["targets"]
        if (not only_status or t["status"] in only_status)
        and (only_step is None or t["stepIndex"] == only_step)
    ]
    _emit(view, output, _job_table)


def _watch(state: StateDir, only: tuple[str, str] | None) -> None:
    """Show the running executions (of one job, or all) until none runs."""
    with ProgressView.for_output() as view:
        while True:
            refs: list[tuple[str, str, int]] = []
            keys = [only] if only is not None else list(state.jobs())
            for scope_name, name in keys:
                summary = load_job(state, scope_name, name)
                summary.close()
                last = summary.last_execution
                if last is not None and (only is not None or last.status.value == "RUNNING"):
                    refs.append((scope_name, name, last.id))
            if not refs:
                click.echo("no execution is running", err=True)
                return
            summaries = follow(state, refs, view)
            if only is not None or all(s.status.value != "RUNNING" for s in summaries):
                return


def _emit(value: Any, output: str, table: Any) -> None:
    if output == "json":
        click.echo(json.dumps(value, indent=2, ensure_ascii=False))
    elif output == "yaml":
        import yaml

        click.echo(yaml.safe_dump(value, sort_keys=False, allow_unicode=True).rstrip())
    else:
        table(value)


def _counts_text(counts: dict[str, int]) -> str:
    parts = [f"{counts[s]} {SHORT[s]}" for s in STATUS_ORDER if counts.get(s)]
    return ", ".join(parts) or "no targets"


def _jobs_table(rows: list[dict[str, Any]]) -> None:
    if not rows:
        click.echo("no job recorded yet; run `jobrunner reconcile`")
        return
    click.echo(f"{'JOB':<40} {'TARGETS':<34} {'NEXT FIRE':<21} LAST EXECUTION")
    for row in rows:
        if "error" in row:
            click.echo(f"{row['scope'] + '/' + row['name']:<40} UNREADABLE: {row['error']}")
            continue
        last = row["lastExecution"]
        execution = (
            "-"
            if last is None
            else (f"#{last['id']} {last['status']} ({last['trigger']}, {last['startedOn']})")
        )
        flags = "".join(f" [{flag}]" for flag in ("conflict", "orphaned", "suspend") if row[flag])
        click.echo(
            f"{row['scope'] + '/' + row['name']:<40} {_counts_text(row['counts']):<34}"
            f" {row['nextFire'] or '-':<21} {execution}{flags}"
        )


def _job_table(view: dict[str, Any]) -> None:
    click.echo(
        f"job {view['scope']}/{view['name']}"
        + (f": {view['description']}" if view["description"] else "")
    )
    if view["source"]:
        click.echo(f"  manifest   {view['source']}")
    click.echo(
        f"  revision   applied {view['revisionApplied'] or '-'},"
        f" attempted {view['revisionAttempted'] or '-'}"
    )
    click.echo(
        f"  steps      {', '.join(map(str, view['steps'])) or '-'}"
        + (" (frozen)" if view["frozen"] else "")
    )
    if view["conflict"]:
        conflict = view["conflict"]
        click.echo(f"  CONFLICT   {conflict['file']}:{conflict['line']}: {conflict['message']}")
    if view["problem"]:
        click.echo(f"  PROBLEM    {view['problem']}")
    for schedule in view["schedules"]:
        upcoming = schedule["next"] or (
            "on connect" if schedule["type"] == "device-connect" else "never again"
        )
        click.echo(f"  schedule   {schedule['name']} ({schedule['type']}): next {upcoming}")
    click.echo(f"  targets    {_counts_text(view['counts'])}")
    if view["executions"]:
        click.echo(
            "\nEXECUTION  STATUS      TRIGGER                          STARTED               ENDED"
        )
        for e in view["executions"][-10:]:
            click.echo(
                f"{e['id']:<10} {e['status']:<11} {e['trigger']:<32} "
                f"{e['startedOn'] or '-':<21} {e['endedOn'] or '-'}"
            )
    if view["targets"]:
        click.echo(f"\n{'TARGET':<24} {'STEP':<4} {'STATUS':<20} DETAIL")
        for t in view["targets"]:
            step = f"{t['stepIndex']}"
            detail = t.get("message") or t.get("step") or ""
            click.echo(f"{t['clientId']:<24} {step:<4} {t['status']:<20} {detail}")


@click.command()
@click.argument("job")
@state_dir_option
@scope_option
@click.option("--execution", "execution_id", type=int, help="Execution id (default: the last).")
@click.option("-f", "--follow", is_flag=True, help="Keep printing lines as they are written.")
def logs(job: str, state_dir: Path, scope: str, execution_id: int | None, follow: bool) -> None:
    """Print an execution's log: one line per dispatch, reply, notification, error.

    Each line is `TIME SUBJECT: MESSAGE`, times in UTC. With --follow, new lines
    are printed as they are written, until the execution ends.
    """
    state = StateDir(require_state_dir(state_dir))
    scope_name, name = resolve_job_ref(job, scope, state.jobs(), str(state_dir))
    loaded = load_job(state, scope_name, name)
    loaded.close()
    ids = sorted(loaded.executions)
    if not ids:
        raise click.ClickException(f"job {scope_name}/{name} has no execution yet")
    chosen = execution_id if execution_id is not None else ids[-1]
    if chosen not in loaded.executions:
        raise click.ClickException(
            f"job {scope_name}/{name} has no execution {chosen}; it has {ids[0]}..{ids[-1]}"
        )
    paths = loaded.paths

    def ended() -> bool:
        summary = ExecutionSummary.load(paths.summary(chosen))
        return summary.status is not ExecutionStatus.RUNNING

    for line in read_lines(paths.log(chosen), follow=follow, until=ended):
        click.echo(line)
