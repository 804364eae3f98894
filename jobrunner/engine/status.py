"""Status of jobs as recorded: the data behind `jobrunner status` (table, JSON or YAML).

Reading never needs the owner lock: journals are only appended to and records are replaced
atomically, so a reader sees a consistent, possibly slightly old, state.
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from jobrunner.engine.planning.selection import record_facts
from jobrunner.engine.planning.values import shown_values
from jobrunner.engine.rollout.gate import ALL, held_reason, rollout_of
from jobrunner.engine.schedules.scheduler import schedules_of
from jobrunner.errors import JobError, StateError
from jobrunner.manifests import ManifestSet
from jobrunner.manifests.selectors import Selector
from jobrunner.state.jobstore import JobState
from jobrunner.state.layout import StateDir
from jobrunner.state.outbox import backlog
from jobrunner.state.records import (
    ExecutionStatus,
    ExecutionSummary,
    JobRecord,
    RolloutState,
    RolloutStatus,
    WaveState,
    WaveStatus,
)
from jobrunner.state.registry import DeviceRegistry
from jobrunner.state.targets import TargetState, TargetStatus

STATUS_ORDER = [s.value for s in TargetStatus]


def parse_job_ref(ref: str, default_scope: str) -> tuple[str, str]:
    """`NAME` or `SCOPE/NAME` -> (scope, name)."""
    scope, _, name = ref.rpartition("/")
    if not name:
        raise JobError(f"{ref!r} names no job; write NAME or SCOPE/NAME")
    return (scope or default_scope), name


def resolve_job_ref(
    ref: str, default_scope: str, known: Iterable[tuple[str, str]], where: str
) -> tuple[str, str]:
    """(scope, name) of `ref` among the `known` jobs: `SCOPE/NAME`, or a bare `NAME` in the
    default scope, else in the one scope that has it. JobError otherwise, with the close
    names (`where` says where the jobs were looked for)."""
    scope, name = parse_job_ref(ref, default_scope)
    jobs = sorted(set(known))
    if (scope, name) in jobs:
        return scope, name
    if "/" not in ref:
        scopes = [s for s, n in jobs if n == name]
        if len(scopes) == 1:
            return scopes[0], name
        if scopes:
            listed = ", ".join(f"{s}/{name}" for s in scopes)
            raise JobError(f"job {name} is in several scopes ({listed}); write SCOPE/NAME")
    labels = [f"{s}/{n}" for s, n in jobs]
    similar = set(difflib.get_close_matches(name, [n for _, n in jobs], n=3, cutoff=0.6))
    close = [f"{s}/{n}" for s, n in jobs if n in similar][:3]
    if close:
        hint = f"; did you mean {' or '.join(close)}?"
    elif labels:
        hint = f"; known jobs: {', '.join(labels[:10])}" + (" ..." if len(labels) > 10 else "")
    else:
        hint = "; no job is known there yet"
    raise JobError(f"no job {ref} in {where}{hint}")


def load_job(state: StateDir, scope: str, name: str) -> JobState:
    """The recorded job, or JobError saying it is unknown (and which jobs are known)."""
    if not JobState.exists(state, scope, name):
        resolve_job_ref(f"{scope}/{name}", scope, state.jobs(), state.describe())
    return JobState.load(state, scope, name)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def schedules_view(record: JobRecord, now: datetime | None = None) -> list[dict[str, Any]]:
    """Each schedule with its next fire time (None for device-connect, or when it never
    fires again)."""
    moment = now or datetime.now(UTC)
    found = schedules_of(record)
    views: list[dict[str, Any]] = []
    for schedule in record.spec.get("schedules", []):
        name = schedule.get("name")
        trigger = found.times.get(name)
        upcoming = trigger.next(moment) if trigger is not None and not record.suspend else None
        views.append({"name": name, "type": schedule.get("type"), "next": _iso(upcoming)})
    return views


def next_fire(record: JobRecord, now: datetime | None = None) -> str | None:
    """The earliest next fire time of the job's time schedules."""
    times = [v["next"] for v in schedules_view(record, now) if v["next"]]
    return min(times) if times else None


def execution_view(summary: ExecutionSummary) -> dict[str, Any]:
    return {
        "id": summary.id,
        "status": summary.status.value,
        "trigger": str(summary.trigger),
        "startedOn": _iso(summary.started_on),
        "endedOn": _iso(summary.ended_on),
        "revision": summary.revision,
        "targets": len(summary.targets),
        "counts": summary.counts,
        "stopRequested": summary.stop_requested,
        "options": None if summary.trigger.options is None else summary.trigger.options.as_view(),
    }


def failure_view(failure: str) -> dict[str, Any]:
    """`device-error:404` as `{"kind": "device-error", "code": 404}` (code None without)."""
    kind, _, code = failure.partition(":")
    return {"kind": kind, "code": int(code) if code.isdigit() else None}


def waves_of(record: JobRecord) -> list[tuple[str, list[str], str]]:
    """The rollout's waves as frozen: (name, targets, selector); one wave `all` for a rollout
    without waves; none for a job without a rollout, or before its first execution."""
    frozen = record.frozen
    if frozen is None:
        return []
    if frozen.waves:
        return [(w.name, w.targets, w.selector) for w in frozen.waves]
    if record.rollout is not None or "rollout" in record.spec:
        return [(ALL, frozen.targets, "every target")]
    return []


SUSPENDED = "suspended"
STOPPED = "stopped"
"""Rollout and wave states that status shows over what the gate recorded: the job is
suspended, or its execution was stopped. The gate writes the rollout's state while it turns;
what ends an execution from outside it (a stop, a suspend) or suspends the job never goes
through it, so what it wrote last would go on saying `running` or `waiting for the window`."""

_UNDER_WAY = {
    RolloutStatus.PENDING,
    RolloutStatus.RUNNING,
    RolloutStatus.WAITING,
    RolloutStatus.SOAKING,
    RolloutStatus.AWAITING_APPROVAL,
}
_WAVE_UNDER_WAY = {WaveStatus.RUNNING, WaveStatus.SOAKING}


@dataclass(frozen=True)
class RolloutStand:
    """Where a job's rollout stands, as every view shows it (`rollout_stand`)."""

    state: str
    wave: str | None
    reason: str | None
    over: str | None
    """What overrides the waves under way and the held targets: SUSPENDED, STOPPED, or
    `aborted`; None while the gate's record holds."""
    execution: int | None
    """The execution whose held targets the reason is about (the last one)."""


def rollout_stand(record: JobRecord, last: ExecutionSummary | None) -> RolloutStand:
    """The one place the rollout's state is derived for `status`, its JSON and the dashboard:
    what the gate recorded, unless the job is suspended (that first), or its last execution
    was stopped or aborted while the record still says it is under way."""
    state = record.rollout or RolloutState()
    recorded = state.status.value
    execution = last.id if last is not None else None
    if record.suspend:
        where = f"; it stands at wave '{state.wave}'" if state.wave else ""
        why = "the job is suspended (spec.suspend: true): nothing starts until it is false"
        return RolloutStand(SUSPENDED, state.wave, why + where, SUSPENDED, execution)
    if last is not None and state.status in _UNDER_WAY:
        told = f" ({last.message})" if last.message else ""
        if last.status is ExecutionStatus.STOPPED or (
            last.status is ExecutionStatus.RUNNING and last.stop_requested and not last.aborted
        ):
            verb = "was" if last.status is ExecutionStatus.STOPPED else "is being"
            why = f"execution {last.id} {verb} stopped{told}: nothing more starts"
            return RolloutStand(STOPPED, state.wave, why, STOPPED, execution)
        if last.status is ExecutionStatus.ABORTED or last.aborted:
            why = (last.message or "the execution was aborted").removeprefix("aborted: ")
            aborted = RolloutStatus.ABORTED.value
            return RolloutStand(aborted, state.wave, why, aborted, execution)
    over = recorded if state.status is RolloutStatus.ABORTED else None
    return RolloutStand(recorded, state.wave, state.reason, over, execution)


def rollout_view(job: JobState, stand: RolloutStand | None = None) -> dict[str, Any] | None:
    """DESIGN §6: where the job's rollout stands, wave by wave (None: no rollout)."""
    record = job.record
    if "rollout" not in record.spec and (record.frozen is None or not record.frozen.waves):
        return None
    stand = stand or rollout_stand(record, job.last_execution)
    state = record.rollout or RolloutState()
    recorded = {w.name: w for w in state.waves}
    settings = rollout_of(record.spec)
    asking = {w.name for w in settings.waves if w.approval} if settings is not None else set()
    waves = []
    for name, targets, selector in waves_of(record):
        wave = recorded.get(name) or WaveState(name=name)
        counts = Counter(job.targets.get(c).status.value for c in targets if c in job.targets)
        shown = wave.status.value
        if stand.over is not None and wave.status in _WAVE_UNDER_WAY:
            shown = stand.over  # the wave under way when the rollout was stopped or suspended
        waves.append(
            {
                "name": name,
                "targets": len(targets),
                "selector": selector,
                "state": shown,
                "counts": dict(counts),
                "startedOn": _iso(wave.started_on),
                "endedOn": _iso(wave.ended_on),
                "soakUntil": _iso(wave.soak_until),
                "decision": wave.decision,
                "approval": "required" if name in asking else None,
                "approvedBy": wave.approved_by,
                "approvedOn": _iso(wave.approved_on),
            }
        )
    return {
        "state": stand.state,
        "wave": stand.wave,
        "reason": stand.reason,
        "waves": waves,
    }


def job_view(
    job: JobState, made: dict[Any, TargetViews] | None = None, newest: int | None = None
) -> dict[str, Any]:
    """DESIGN §4's JSON contract of `status JOB -o json`, plus what an operator also needs.
    `made`: the target views of an earlier call for the same job, to be reused. `newest`:
    only that many of the newest executions (every one recorded when None)."""
    record = job.record
    steps = record.frozen.steps if record.frozen else record.spec.get("steps", [])
    step_names = [s.get("name") for s in steps]
    stand = rollout_stand(record, job.last_execution)
    rollout = rollout_view(job, stand)
    held = _held_context(job, stand) if rollout is not None else None
    reusable = None
    if made is not None:
        waves = tuple((name, len(targets)) for name, targets, _ in waves_of(record))
        shape = (tuple(step_names), rollout is not None, waves, held)
        reusable = made.setdefault(shape, {})
        for other in [key for key in made if key != shape]:
            del made[other]  # made for other steps or waves: of no more use
    targets = target_views(job, step_names, with_wave=rollout is not None, made=reusable, held=held)
    return {
        "scope": record.scope,
        "name": record.name,
        "targetCount": target_count(job),
        "description": record.description,
        "source": None if record.source is None else f"{record.source.file}:{record.source.line}",
        "frozen": record.frozen is not None,
        "steps": step_names,
        "suspend": record.suspend,
        "orphaned": record.orphaned,
        "conflict": None if record.conflict is None else record.conflict.model_dump(),
        "revisionAttempted": record.revision_attempted,
        "revisionApplied": record.revision_applied,
        "problem": record.problem,
        "schedules": schedules_view(record),
        "counts": dict(Counter(t["status"] for t in targets)),
        "resolvedTargets": None if record.frozen else (record.resolved_targets or []),
        "rollout": rollout,
        "targets": targets,
        "executions": [execution_view(job.executions[i]) for i in _ids(job, newest)],
        "queued": [
            {"id": q.id, "trigger": str(q.trigger), "targets": q.targets, "at": _iso(q.at)}
            for q in record.queued
        ],
        "executionsPruned": sum(record.pruned.values()),
    }


def _ids(job: JobState, newest: int | None) -> list[int]:
    """The ids of the job's executions, oldest first (the newest `newest` of them)."""
    if newest is not None and newest <= len(job.executions.recent):
        return sorted(job.executions.recent)[-newest:] if newest else []
    ids = list(job.executions)  # listed from the storage, oldest first
    return ids if newest is None else ids[-newest:]


TargetViews = dict[str, tuple[TargetState, dict[str, Any]]]
"""Each target's view with the value it was made of: a reader that follows a job (the
dashboard) makes again only the views of the targets that changed."""


@dataclass(frozen=True)
class HeldContext:
    """What the reason of a target held by a rollout's gate follows from (hashable: the
    target views made for one context are reused while it stays)."""

    execution: int
    over: str | None
    waves: tuple[tuple[str, str, str | None], ...]
    """Each wave's (name, recorded state, soak end)."""
    stands: tuple[str, str | None] = ("", None)
    """The rollout's recorded state and current wave (an approval awaited)."""


def _held_context(job: JobState, stand: RolloutStand) -> HeldContext | None:
    if stand.execution is None:
        return None
    state = job.record.rollout or RolloutState()
    recorded = {w.name: w for w in state.waves}
    waves = []
    for name, _, _ in waves_of(job.record):
        wave = recorded.get(name) or WaveState(name=name)
        waves.append((name, wave.status.value, _iso(wave.soak_until)))
    stands = (state.status.value, state.wave)
    return HeldContext(stand.execution, stand.over, tuple(waves), stands)


def _held(
    job: JobState,
    target: TargetState,
    held: HeldContext | None,
    names: list[str],
    index_of: dict[str, int],
) -> str | None:
    """Why a target that the last execution took in but has not started (its rollout's gate
    holds it) waits, as the rollout stands now: the wave it waits for, or that the job is
    suspended or its execution stopped. None for any other target (its own message holds)."""
    if (
        held is None
        or target.execution != held.execution
        or target.started_in == held.execution
        or target.status is not TargetStatus.PROCESS_AWAITING
        or target.request_id is not None
    ):
        return None
    if held.over == SUSPENDED:
        return "not started: the job is suspended (spec.suspend: true)"
    if held.over == STOPPED:
        return f"not started: execution {held.execution} was stopped"
    if held.over is not None:
        return None  # aborted: the abort wrote on each such target why, with its reason
    index = index_of.get(target.client_id, len(names) - 1)
    return held_reason(names, job.record.rollout, index)


def target_views(
    job: JobState,
    step_names: list[Any],
    with_wave: bool,
    made: TargetViews | None = None,
    held: HeldContext | None = None,
) -> list[dict[str, Any]]:
    """Each target of `status -o json`, by client id. `made`: views made before for the same
    steps, waves and `held` context, reused for the targets whose value is the same object
    (and updated). `held`: where the rollout stands, for the targets its gate holds."""
    frozen_waves = waves_of(job.record)
    wave_of = {c: name for name, targets, _ in frozen_waves for c in targets}
    index_of = {c: i for i, (_, targets, _) in enumerate(frozen_waves) for c in targets}
    names = [name for name, _, _ in frozen_waves]
    frozen = job.record.frozen
    values = frozen.values if frozen is not None else None
    targets = []
    for target in sorted(job.targets, key=lambda t: t.client_id):
        if made is not None:
            known = made.get(target.client_id)
            if known is not None and known[0] is target:
                targets.append(known[1])
                continue
        entry: dict[str, Any] = {
            "clientId": target.client_id,
            "stepIndex": target.step_index,
            "status": target.status.value,
        }
        if 0 <= target.step_index < len(step_names):
            entry["step"] = step_names[target.step_index]
        message = _held(job, target, held, names, index_of) or target.message
        if message:
            entry["message"] = message
        if target.failure is not None:
            entry["failure"] = failure_view(target.failure)
        if target.attempts:
            entry["attempts"] = target.attempts
        snapshot = target.snapshot
        if snapshot is not None:  # DESIGN §11: the snapshot to roll back to, and its rollback
            entry["snapshot"] = {
                "id": snapshot.id,
                "step": snapshot.step,
                "rollback": None if snapshot.rollback is None else snapshot.rollback.value,
            }
        if with_wave:
            entry["wave"] = wave_of.get(target.client_id)
        if values is not None:
            entry["values"] = shown_values(values.of(target.client_id))
        targets.append(entry)
        if made is not None:
            made[target.client_id] = (target, entry)
    return targets


def target_count(job: JobState) -> int:
    """The job's targets: frozen at the first execution, else as the last reconcile
    resolved them."""
    frozen = job.record.frozen
    if frozen is not None:
        return len(frozen.targets)
    return len(job.record.resolved_targets or [])


def summary_row(job: JobState) -> dict[str, Any]:
    """One line of `jobrunner status`: the job, its counts and its last execution."""
    record = job.record
    last = job.last_execution
    return {
        "scope": record.scope,
        "name": record.name,
        "targetCount": target_count(job),
        "frozen": record.frozen is not None,
        "counts": job.counts(),
        "lastExecution": None if last is None else execution_view(last),
        "nextFire": next_fire(record),
        "conflict": record.conflict is not None,
        "orphaned": record.orphaned,
        "suspend": record.suspend,
        "rollout": _rollout_row(record, last),
        "description": record.description,
    }


def _rollout_row(record: JobRecord, last: ExecutionSummary | None) -> dict[str, Any] | None:
    if record.rollout is None:
        return None
    stand = rollout_stand(record, last)
    return {"state": stand.state, "wave": stand.wave}


def all_jobs(state: StateDir) -> list[dict[str, Any]]:
    """One row per recorded job; a job whose state cannot be read gets a row with `error`."""
    rows: list[dict[str, Any]] = []
    for scope, name in state.jobs():
        try:
            job = JobState.load(state, scope, name)
        except StateError as error:
            rows.append({"scope": scope, "name": name, "error": str(error)})
            continue
        rows.append(summary_row(job))
        job.close()
    return rows


def devices_view(
    registry: DeviceRegistry, manifests: ManifestSet | None, selector: Selector | None = None
) -> list[dict[str, Any]]:
    """Every device of every scope: what the registry recorded (connection status, last
    seen, what its BIRTH said) with the tags, labels and display names of the DeviceLists;
    with `selector`, only the devices it matches (as a job's targets would be chosen now)."""
    declared = manifests.devices if manifests is not None else {}
    scopes = sorted(set(registry.scopes()) | set(declared))
    rows: list[dict[str, Any]] = []
    for scope in scopes:
        recorded = {record.client_id: record for record in registry.scope(scope)}
        listed = declared.get(scope, {})
        for client_id in sorted(set(recorded) | set(listed)):
            record = recorded.get(client_id)
            entry = listed.get(client_id)
            labels = entry.labels if entry else {}
            if selector is not None and not selector.matches(record_facts(labels, record)):
                continue
            rows.append(
                {
                    "scope": scope,
                    "clientId": client_id,
                    "declared": entry is not None or bool(record and record.declared),
                    "status": record.status.value if record else "UNKNOWN",
                    "lastSeen": _iso(record.last_seen) if record else None,
                    "displayName": (entry.display_name if entry else None)
                    or (record.display_name if record else None),
                    "tags": list(entry.tags) if entry else [],
                    "labels": dict(labels),
                    "model": record.model if record else None,
                    "modelId": record.model_id if record else None,
                    "firmware": record.firmware if record else None,
                    "frameworkVersion": record.framework_version if record else None,
                    "applicationIds": (
                        list(record.application_ids)
                        if record and record.application_ids is not None
                        else None
                    ),
                }
            )
    return rows


def backlog_view(
    state: StateDir, runner: str | None = None, now: datetime | None = None
) -> list[dict[str, Any]]:
    """What waits to be posted, by notification (`status --notifications -o json`,
    `/api/v1/notifications`): undelivered events, when the oldest of them happened and how
    long ago, and how many were dropped because the notification's lane was full. Every
    runner's outbox of a shared state, or only `runner`'s; `runner` is in each row of a
    shared state."""
    moment = now or datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    for owner, folder in state.owners.outboxes().items():
        if runner is not None and owner is not None and owner != runner:
            continue
        for found in backlog(state.storage, folder):
            age = None if found.oldest is None else (moment - found.oldest).total_seconds()
            row: dict[str, Any] = {"notification": found.notification}
            if owner is not None:
                row["runner"] = owner
            row.update(
                undelivered=found.undelivered,
                oldest=_iso(found.oldest),
                oldestAgeSeconds=None if age is None else round(max(0.0, age), 3),
                dropped=found.dropped,
            )
            rows.append(row)
    return rows
