"""`jobrunner status` and `jobrunner logs`: what is recorded, read without the owner lock."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import yaml

from jobrunner.cli.completion import complete_client_ids, complete_jobs
from jobrunner.cli.options import reading_state, scope_option, state_options
from jobrunner.cli.progress import COLOURS as TARGET_COLOURS
from jobrunner.cli.progress import SHORT, ProgressView
from jobrunner.cli.run import follow
from jobrunner.cli.tables import (
    JOB_COLUMNS,
    TARGET_COLUMNS,
    TargetStatusName,
    job_row,
    log_record,
    write_csv,
)
from jobrunner.engine.status import (
    STATUS_ORDER,
    all_jobs,
    backlog_view,
    job_view,
    load_job,
    resolve_job_ref,
)
from jobrunner.manifests.errors import suggest
from jobrunner.state.layout import StateDir
from jobrunner.state.logs import read_lines
from jobrunner.state.records import ExecutionStatus, ExecutionSummary


@click.command()
@click.argument("job", required=False, shell_complete=complete_jobs)
@state_options
@scope_option
@click.option(
    "-o",
    "--output",
    type=click.Choice(["table", "json", "yaml", "csv"]),
    default="table",
    show_default=True,
    help="table for people; json, yaml or csv (one row per target, or per job) for scripts.",
)
@click.option(
    "--status",
    "only_status",
    type=TargetStatusName(),
    multiple=True,
    help="Show only targets with this status (repeatable): PROCESS_OK or ok, PROCESS_FAILED"
    " or failed, PROCESS_AWAITING or awaiting, AWAITING_COMPLETION or completing,"
    " NOTIFIED_COMPLETION or notified.",
)
@click.option("--step", "only_step", type=int, help="Show only targets at this step index.")
@click.option("--wave", "only_wave", help="Show only targets of this rollout wave.")
@click.option(
    "-w",
    "--watch",
    "live",
    is_flag=True,
    help="Follow the running executions live until they end (log lines when not on a terminal).",
)
@click.option(
    "--notifications",
    "notifications",
    is_flag=True,
    help="Show what waits to be posted, by notification: undelivered events, the oldest's"
    " age, and how many were dropped because the receiver fell too far behind.",
)
def status(
    job: str | None,
    state_dir: Path,
    state_db: str | None,
    scope: str,
    output: str,
    only_status: tuple[str, ...],
    only_step: int | None,
    only_wave: str | None,
    live: bool,
    notifications: bool,
) -> None:
    """Show jobs, their targets and executions, as recorded.

    Without JOB: one line per job with its targets by status and its last
    execution. With JOB (NAME or SCOPE/NAME): the job's targets (client id,
    step index, status, reason), its executions, the manifest it came from and
    the git revisions reconcile attempted and applied.

    `-o json` prints one object per job with at least scope, name, targets
    (clientId, stepIndex counted from 0, status) and executions (id, status
    RUNNING / TERMINATED / STOPPED / ABORTED, trigger, startedOn, endedOn); a
    rollout adds `rollout` (state, wave, reason, waves) and each target's wave.

    Without JOB, the table ends with the notifications' backlog (events not
    posted yet); `--notifications` shows only that, and `-o json` then prints
    one object per notification: notification (SCOPE/NAME), undelivered,
    oldest (when the oldest waiting event happened), oldestAgeSeconds and
    dropped (events dropped in all because its lane was full), and runner
    with a shared state database.
    """
    state = reading_state(state_dir, state_db)
    where = state.describe()
    if notifications:
        if job is not None or live or output == "csv":
            raise click.UsageError("--notifications takes no JOB, no --watch and no -o csv")
        _emit(backlog_view(state), output, _backlog_table)
        return
    if live:
        _watch(state, None if job is None else resolve_job_ref(job, scope, state.jobs(), where))
        return
    if job is None:
        rows = all_jobs(state)
        if output == "csv":
            write_csv(JOB_COLUMNS, [job_row(row) for row in rows])
            return
        _emit(rows, output, lambda value: _jobs_table(value, state))
        if output == "table":
            backlog = backlog_view(state)
            if backlog:
                click.echo("")
                _backlog_table(backlog)
        return
    scope_name, name = resolve_job_ref(job, scope, state.jobs(), where)
    loaded = load_job(state, scope_name, name)
    view = job_view(loaded)
    loaded.close()
    view["owner"] = state.owners.owner_of((scope_name, name))
    alive = state.owners.alive()
    if alive is not None:
        view["runners"] = alive
    if only_wave is not None:
        waves = [w["name"] for w in view["rollout"]["waves"]] if view["rollout"] else []
        if only_wave not in waves:
            raise click.BadParameter(
                f"job {scope_name}/{name} has no wave '{only_wave}'{suggest(only_wave, waves)}"
                + (f"; its waves: {', '.join(waves)}" if waves else "; it has no rollout"),
                param_hint="--wave",
            )
    view["targets"] = [
        t
        for t in view["targets"]
        if (not only_status or t["status"] in only_status)
        and (only_step is None or t["stepIndex"] == only_step)
        and (only_wave is None or t.get("wave") == only_wave)
    ]
    if output == "csv":
        write_csv(TARGET_COLUMNS, view["targets"])
        return
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
        click.echo(yaml.safe_dump(value, sort_keys=False, allow_unicode=True).rstrip())
    else:
        table(value)


COLOURS = {
    **TARGET_COLOURS,
    "RUNNING": "yellow",
    "TERMINATED": "green",
    "STOPPED": "magenta",
    "ABORTED": "red",
    "passed": "green",
    "failed": "red",
    "aborted": "red",
    "stopped": "magenta",
    "suspended": "magenta",
    "soaking": "cyan",
    "waiting": "yellow",
    "running": "yellow",
}


def coloured(text: str, key: str | None = None) -> str:
    """`text` in the colour of a status (click drops colours when not on a terminal)."""
    colour = COLOURS.get(key or text)
    return click.style(text, fg=colour) if colour else text


def _counts_text(counts: dict[str, int], total: int = 0, frozen: bool = True) -> str:
    parts = [coloured(f"{counts[s]} {SHORT[s]}", s) for s in STATUS_ORDER if counts.get(s)]
    if parts:
        return ", ".join(parts)
    if total and not frozen:
        return f"{total} resolved, not run yet"
    return "no targets"


def pad(text: str, width: int) -> str:
    """Left-justify `text`, not counting the colour codes in it."""
    return text + " " * max(0, width - len(click.unstyle(text)))


def relative(moment: str | None, now: datetime | None = None) -> str:
    """`2026-12-02T10:15:00Z (3 min ago)`: an ISO time, with how far it is from now."""
    if not moment:
        return "-"
    when = datetime.strptime(moment, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    seconds = ((now or datetime.now(UTC)) - when).total_seconds()
    span = abs(seconds)
    for size, unit in ((86_400, "d"), (3_600, "h"), (60, "min"), (1, "s")):
        if span >= size or unit == "s":
            amount = f"{span / size:.0f} {unit}"
            break
    return f"{moment} ({amount} ago)" if seconds >= 0 else f"{moment} (in {amount})"


def _jobs_table(rows: list[dict[str, Any]], state: StateDir) -> None:
    click.echo(state.owners.describe())
    if not rows:
        click.echo("no job recorded yet; run `jobrunner reconcile`")
        return
    click.echo(f"\n{'JOB':<40} {'TARGETS':<34} {'NEXT FIRE':<21} LAST EXECUTION")
    for row in rows:
        label = row["scope"] + "/" + row["name"]
        if "error" in row:
            click.echo(f"{label:<40} {coloured('UNREADABLE', 'PROCESS_FAILED')}: {row['error']}")
            continue
        last = row["lastExecution"]
        execution = (
            "-"
            if last is None
            else f"#{last['id']} {coloured(last['status'])} ({last['trigger']},"
            f" {relative(last['startedOn'])})"
        )
        flags = "".join(f" [{flag}]" for flag in ("conflict", "orphaned", "suspend") if row[flag])
        rollout = row.get("rollout")
        if rollout is not None:
            wave = f" {rollout['wave']}" if rollout["wave"] else ""
            flags += f" [rollout {coloured(rollout['state'])}{wave}]"
        counts = _counts_text(row["counts"], row["targetCount"], row["frozen"])
        click.echo(f"{label:<40} {pad(counts, 34)} {row['nextFire'] or '-':<21} {execution}{flags}")


def _backlog_table(rows: list[dict[str, Any]]) -> None:
    if not rows:
        click.echo("no notification has events in the outbox")
        return
    runners = any("runner" in row for row in rows)
    runner_head = f"{'RUNNER':<24} " if runners else ""
    click.echo(f"{'NOTIFICATION':<40} {runner_head}{'UNDELIVERED':>11}  {'DROPPED':>7}  OLDEST")
    for row in rows:
        runner = f"{row.get('runner') or '-':<24} " if runners else ""
        undelivered = f"{row['undelivered']:>11}"
        if row["undelivered"]:
            undelivered = coloured(undelivered, "PROCESS_AWAITING")
        dropped = f"{row['dropped']:>7}"
        if row["dropped"]:
            dropped = coloured(dropped, "PROCESS_FAILED")
        click.echo(
            f"{row['notification']:<40} {runner}{undelivered}  {dropped}  {relative(row['oldest'])}"
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
        for difference in conflict.get("differences", []):
            click.echo(
                f"             {difference['file']}:{difference['line']}: {difference['what']}:"
                f" {difference['old']} -> {difference['new']}"
            )
    if view["problem"]:
        click.echo(f"  PROBLEM    {view['problem']}")
    for schedule in view["schedules"]:
        upcoming = (
            relative(schedule["next"])
            if schedule["next"]
            else ("on connect" if schedule["type"] == "device-connect" else "never again")
        )
        click.echo(f"  schedule   {schedule['name']} ({schedule['type']}): next {upcoming}")
    counts = _counts_text(view["counts"], view["targetCount"], view["frozen"])
    click.echo(f"  targets    {counts}")
    if view["resolvedTargets"]:
        shown = view["resolvedTargets"]
        more = f" and {len(shown) - 10} more" if len(shown) > 10 else ""
        click.echo(f"  resolved   {', '.join(shown[:10])}{more} (frozen at the first execution)")
    _rollout_table(view)
    for queued in view.get("queued", []):
        click.echo(f"  queued     {queued['trigger']}: runs when the running execution ends")
    if view.get("executionsPruned"):
        click.echo(f"  history    {view['executionsPruned']} older execution(s) pruned")
    if view["executions"]:
        click.echo(f"\n{'EXECUTION':<10} {'STATUS':<11} {'TRIGGER':<32} {'STARTED':<37} ENDED")
        for e in view["executions"][-10:]:
            click.echo(
                f"{e['id']:<10} {pad(coloured(e['status']), 11)} {e['trigger']:<32} "
                f"{relative(e['startedOn']):<37} {relative(e['endedOn'])}"
            )
    if view["targets"]:
        waves = view["rollout"] is not None
        wave_head = f"{'WAVE':<12} " if waves else ""
        click.echo(f"\n{'TARGET':<24} {wave_head}{'STEP':<4} {'STATUS':<20} DETAIL")
        for t in view["targets"]:
            step = f"{t['stepIndex']}"
            detail = t.get("message") or t.get("step") or ""
            status_text = pad(coloured(t["status"]), 20)
            wave = f"{t.get('wave') or '-':<12} " if waves else ""
            click.echo(f"{t['clientId']:<24} {wave}{step:<4} {status_text} {detail}")


def _rollout_table(view: dict[str, Any]) -> None:
    rollout = view["rollout"]
    if rollout is None:
        return
    reason = f": {rollout['reason']}" if rollout["reason"] else ""
    click.echo(f"  rollout    {coloured(rollout['state'])}{reason}")
    for wave in rollout["waves"]:
        counts = _counts_text(wave["counts"], wave["targets"])
        decision = f"; {wave['decision']}" if wave["decision"] else ""
        if wave.get("approvedBy"):
            decision += f"; approved by {wave['approvedBy']} at {wave['approvedOn']}"
        elif wave.get("approval"):
            decision += "; approval required"
        state = pad(coloured(wave["state"]), 8)
        click.echo(
            f"    wave {wave['name']:<12} {state} {wave['targets']} target(s)"
            f" ({wave['selector']}): {counts}{decision}"
        )


@click.command()
@click.argument("job", shell_complete=complete_jobs)
@state_options
@scope_option
@click.option("--execution", "execution_id", type=int, help="Execution id (default: the last).")
@click.option("-f", "--follow", is_flag=True, help="Keep printing lines as they are written.")
@click.option(
    "--target",
    "only_targets",
    shell_complete=complete_client_ids,
    metavar="CLIENT_ID",
    multiple=True,
    help="Only the lines of this target (repeatable); the execution's own lines are left out.",
)
@click.option(
    "-o",
    "--output",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text as written, or json: one object a line with time, subject, target, message.",
)
def logs(
    job: str,
    state_dir: Path,
    state_db: str | None,
    scope: str,
    execution_id: int | None,
    follow: bool,
    only_targets: tuple[str, ...],
    output: str,
) -> None:
    """Print an execution's log: one line per dispatch, reply, notification, error.

    Each line is `TIME SUBJECT: MESSAGE`, times in UTC. With --follow, new lines
    are printed as they are written, until the execution ends. `--target ID`
    keeps the lines of that target (its dispatches, replies, notifications);
    `-o json` prints each line as a JSON object (time, subject, target when the
    line is a target's, message), for jq or a log shipper.
    """
    state = reading_state(state_dir, state_db)
    scope_name, name = resolve_job_ref(job, scope, state.jobs(), state.describe())
    loaded = load_job(state, scope_name, name)
    loaded.close()
    ids = sorted(loaded.executions)
    if not ids:
        raise click.ClickException(f"job {scope_name}/{name} has no execution yet")
    chosen = execution_id if execution_id is not None else ids[-1]
    if chosen not in loaded.executions:
        pruned = (
            f"; {loaded.pruned} older one(s) were pruned by the retention"
            " (`history: {keepExecutions, keepFor}`)"
            if loaded.pruned and chosen < ids[0]
            else ""
        )
        raise click.ClickException(
            f"job {scope_name}/{name} has no execution {chosen}; it has {ids[0]}..{ids[-1]}"
            + pruned
        )
    paths = loaded.paths

    def ended() -> bool:
        summary = ExecutionSummary.load(paths.storage, paths.summary(chosen))
        return summary.status is not ExecutionStatus.RUNNING

    wanted = set(only_targets)
    for line in read_lines(paths.storage, paths.log(chosen), follow=follow, until=ended):
        record = log_record(line)
        if wanted and record.get("target") not in wanted:
            continue
        click.echo(json.dumps(record, ensure_ascii=False) if output == "json" else line)
