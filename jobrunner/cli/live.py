"""`jobrunner plan --live`: the report of `engine.planning.live` as text, JSON or Markdown
(a pull-request comment)."""

from __future__ import annotations

from typing import Any

from jobrunner.engine.planning.drift import Change, StepLive, StepState
from jobrunner.engine.planning.live import JobLive, LiveReport, TargetLive

ARROW = "→"
_OPEN = frozenset({StepState.WOULD_CHANGE, StepState.WOULD_FAIL, StepState.UNKNOWN})


def change_text(change: Change) -> str:
    """`what: old → new`, or `what: in sync (value)`, with the note."""
    note = f" ({change.note})" if change.note else ""
    if change.in_sync:
        return f"{change.what}: in sync ({change.new}){note}"
    old = "(absent)" if change.old is None else change.old
    return f"{change.what}: {old} {ARROW} {change.new}{note}"


def target_head(target: TargetLive, verbose: bool = False) -> str:
    """The target's line: connection, applications (when missing, or `verbose`), and
    whether it is in sync."""
    if target.connected is False:
        state = target.problem or "not connected"
    elif target.missing:
        state = target.problem or "applications missing"
    elif target.in_sync:
        state = "in sync"
    else:
        changing = sum(1 for s in target.steps if s.state in _OPEN)
        state = f"{changing} step(s) not in sync"
    facts = []
    if target.connected:
        facts.append("connected")
    if target.applications is not None and (verbose or target.missing):
        facts.append("apps " + (",".join(target.applications) or "none"))
    if target.recorded and target.connected is not True:
        facts.append(f"recorded {target.recorded}")
    extra = f" [{'; '.join(facts)}]" if facts else ""
    return f"{target.client_id}: {state}{extra}"


def step_head(step: StepLive) -> str:
    reason = f": {step.reason}" if step.reason else ""
    return f"step {step.index} {step.name!r} ({step.definition}): {step.state.value}{reason}"


def text_lines(report: LiveReport, verbose: bool = False) -> list[str]:
    """Per job, per target, per step; a target in sync in one line unless `verbose`."""
    lines: list[str] = []
    for job in report.jobs:
        lines.append(_job_head(job))
        if job.problem:
            lines.append(f"  {job.problem}")
        for target in job.targets:
            lines.append(f"  {target_head(target, verbose)}")
            if (target.in_sync or target.connected is False) and not verbose:
                continue
            for step in target.steps:
                lines.append(f"    {step_head(step)}")
                shown = step.changes if verbose else [c for c in step.changes if not c.in_sync]
                lines.extend(f"      {change_text(c)}" for c in shown)
    return lines


def _job_head(job: JobLive) -> str:
    frozen = "frozen targets" if job.frozen else "targets as the first execution would resolve"
    return f"{job.label} ({len(job.targets)} target(s), {frozen})"


def summary(report: LiveReport) -> str:
    """One line for stderr: what was read and how it stands."""
    targets = [t for j in report.jobs for t in j.targets]
    in_sync = sum(1 for t in targets if t.in_sync)
    unreachable = sum(1 for t in targets if t.connected is False)
    return (
        f"plan --live: {len(targets)} target(s) of {len(report.jobs)} job(s): {in_sync} in"
        f" sync, {len(targets) - in_sync - unreachable} to change, {unreachable} not"
        f" connected; {report.requests} GET request(s), nothing written"
    )


def as_json(report: LiveReport) -> dict[str, Any]:
    return {
        "exitCode": report.exit_code,
        "requests": report.requests,
        "jobs": [
            {
                "scope": job.scope,
                "name": job.name,
                "frozen": job.frozen,
                "problem": job.problem,
                "targets": [_target_json(t) for t in job.targets],
            }
            for job in report.jobs
        ],
    }


def _target_json(target: TargetLive) -> dict[str, Any]:
    return {
        "clientId": target.client_id,
        "connected": target.connected,
        "applications": None if target.applications is None else list(target.applications),
        "missingApplications": list(target.missing),
        "recorded": target.recorded,
        "inSync": target.in_sync,
        "problem": target.problem,
        "steps": [
            {
                "index": s.index,
                "name": s.name,
                "definition": s.definition,
                "state": s.state.value,
                "reason": s.reason,
                "changes": [
                    {
                        "what": c.what,
                        "old": c.old,
                        "new": c.new,
                        "inSync": c.in_sync,
                        "note": c.note,
                    }
                    for c in s.changes
                ],
            }
            for s in target.steps
        ],
    }


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(report: LiveReport) -> str:
    """A pull-request comment: a table per job (target, step, state, what would change)."""
    targets = [t for j in report.jobs for t in j.targets]
    in_sync = sum(1 for t in targets if t.in_sync)
    out = [
        "### jobrunner plan --live",
        "",
        f"{in_sync} of {len(targets)} target(s) in sync; {report.requests} GET request(s),"
        " nothing written.",
    ]
    for job in report.jobs:
        out += ["", f"#### `{job.label}`", ""]
        if job.problem:
            out += [_cell(job.problem), ""]
        out += ["| target | step | state | changes |", "| --- | --- | --- | --- |"]
        for target in job.targets:
            if target.connected is False or target.missing or target.in_sync:
                out.append(f"| `{target.client_id}` | | {_cell(target_head(target))} | |")
                continue
            for step in target.steps:
                changes = "<br>".join(_cell(change_text(c)) for c in step.changes if not c.in_sync)
                state = step.state.value + (f": {step.reason}" if step.reason else "")
                out.append(
                    f"| `{target.client_id}` | {step.index} `{_cell(step.name)}`"
                    f" ({step.definition}) | {_cell(state)} | {changes} |"
                )
    return "\n".join(out) + "\n"
