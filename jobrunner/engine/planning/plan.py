"""The plan: what a reconcile would do, computed from the manifests and the recorded state alone.

Reconcile by level, not by event: whatever happened before, the plan compares what git
declares now with what is recorded now, job by job:

    create     declared, never recorded
    update     recorded; description, schedules, run token, suspend (or, before the first
               execution, targets and steps) differ
    conflict   targets or steps changed after the first execution froze them: never applied,
               not even in part; the job keeps running what was frozen
    remove     recorded, no longer declared, and its file was read fine: stop, keep history
    invalid    its manifest does not validate: the job keeps what it has, nothing is removed
    refused    the commit that last changed its manifest is not allowed by the scope's policy
               (or not signed, with --require-signed): the job is left as recorded
    unchanged  nothing to do

and, per job, whether an execution would start (a new run token) or stop (suspend, removal).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from jobrunner.engine.planning.policy import Change, PolicyChange, review
from jobrunner.engine.planning.selection import Selection, selection, unreported_warning
from jobrunner.engine.planning.spec import (
    NO_DEVICES,
    ScopeDevices,
    resolve_targets,
    schedule_digest,
    spec_digest,
    spec_essence,
)
from jobrunner.engine.planning.values import (
    frozen_values,
    problems_text,
    values_conflict,
    values_to_freeze,
)
from jobrunner.engine.rollout.coverage import coverage
from jobrunner.engine.rollout.waves import split_waves
from jobrunner.errors import StateError
from jobrunner.manifests import Declared, DeclaredDevice, Job, ManifestSet, Targets
from jobrunner.manifests.differences import Difference, differences, path_text, show
from jobrunner.state.jobstore import JobState
from jobrunner.state.layout import StateDir
from jobrunner.state.records import (
    Conflict,
    ConflictDifference,
    FrozenValues,
    FrozenWave,
    JobRecord,
)


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    CONFLICT = "conflict"
    REMOVE = "remove"
    INVALID = "invalid"
    REFUSED = "refused"
    UNCHANGED = "unchanged"


@dataclass
class JobPlan:
    """What reconcile would do to one job, and why."""

    scope: str
    name: str
    action: Action
    changes: list[str] = field(default_factory=list)
    start: str | None = None  # why an execution would start
    blocked: str | None = None  # why that start waits
    stop: str | None = None  # why the running execution would stop
    targets: list[str] = field(default_factory=list)
    frozen: bool = False
    conflict: Conflict | None = None
    declared: Declared[Job] | None = None
    record: JobRecord | None = None
    problems: list[str] = field(default_factory=list)
    waves: list[FrozenWave] = field(default_factory=list)
    """The rollout's waves: as frozen, or as the first execution would split the targets."""
    zones: dict[str, str] = field(default_factory=dict)
    """The targets' time zones, for a rollout window in each device's zone."""
    orphaned: bool = False
    """Recorded, its manifest removed, and reconciled so: it stays stopped, history kept."""
    run: list[str] | None = None
    """The targets the execution that would start covers (None: no start now)."""
    skipped: dict[str, str] = field(default_factory=dict)
    """The targets it would skip, each with why (done, or left out by the retry limit)."""
    values: FrozenValues | None = None
    """Per target, the values its steps read: as frozen, or as the first execution would
    freeze them (None: the steps read none)."""
    selection: Selection | None = None
    """The label selector over the scope's devices, while the targets are not frozen."""
    spec_digest: str | None = None
    """The declared manifest's `spec_digest`, when planning made it (applying records it)."""
    schedule_digest: str | None = None
    """The declared manifest's `schedule_digest`, when planning made it."""

    @property
    def label(self) -> str:
        return f"{self.scope}/{self.name}"

    @property
    def changes_something(self) -> bool:
        return self.action is not Action.UNCHANGED or bool(self.start or self.stop)


@dataclass
class Plan:
    jobs: list[JobPlan]
    manifests: ManifestSet
    revision: str | None
    policy_changes: list[PolicyChange] = field(default_factory=list)
    """Policies accepted by this plan, recorded when it is applied (`engine.policy`)."""
    now: float = 0.0
    """The instant it was computed for (what it estimates counts from it)."""

    @property
    def has_errors(self) -> bool:
        return bool(self.manifests.errors) or any(
            j.action in (Action.CONFLICT, Action.INVALID, Action.REFUSED) for j in self.jobs
        )

    @property
    def changed(self) -> bool:
        return any(j.changes_something for j in self.jobs)

    @property
    def exit_code(self) -> int:
        """DESIGN §4: 0 in sync, 2 when something would change, 1 on errors or conflicts."""
        if self.has_errors:
            return 1
        return 2 if self.changed else 0


DeviceTags = Mapping[str, ScopeDevices]
Loaded = Mapping[tuple[str, str], JobState]
"""Jobs a runner already holds in memory: their state is the freshest, and is not read again."""


def compute_plan(
    manifests: ManifestSet,
    state: StateDir,
    devices: DeviceTags,
    revision: str | None,
    *,
    require_signed: bool = False,
    loaded: Loaded | None = None,
    now: float | None = None,
) -> Plan:
    """The plan for every declared and every recorded job, reviewed against the scopes'
    policies (and, with `require_signed`, against commit signatures): docs/policy.md.
    `loaded`: jobs already in memory (a runner's), not read from disk again. `now`: the
    engine's clock (a failed target's backoff), else the time of day."""
    moment = time.time() if now is None else now
    plan = _compute(manifests, state, devices, revision, loaded, moment)
    plan.now = moment
    verdicts = review(manifests, state, _changes_to_judge(plan), require_signed)
    manifests.diagnostics.extend(verdicts.diagnostics)
    plan.policy_changes.extend(verdicts.accepted)
    for job in plan.jobs:
        problem = verdicts.refused.get((job.scope, job.name))
        if problem is not None:
            job.action = Action.REFUSED
            job.problems = [problem]
            job.start = job.stop = job.blocked = None
            job.run, job.skipped = None, {}
    return plan


def _changes_to_judge(plan: Plan) -> list[Change]:
    """The jobs whose manifest would change something, and where each is written."""
    found = []
    for job in plan.jobs:
        if not job.changes_something or job.action in (Action.CONFLICT, Action.INVALID):
            continue
        if job.declared is not None:
            origin = job.declared.origin
            found.append(Change(job.scope, job.name, origin.file, origin.line("metadata", "name")))
        elif job.record is not None and job.record.source is not None:
            source = job.record.source
            found.append(Change(job.scope, job.name, Path(source.file), source.line))
    return found


def _compute(
    manifests: ManifestSet,
    state: StateDir,
    devices: DeviceTags,
    revision: str | None,
    loaded: Loaded | None,
    now: float,
) -> Plan:
    plans: dict[tuple[str, str], JobPlan] = {}
    for key, declared in manifests.jobs.items():
        try:
            recorded = _load(state, *key, loaded)
        except StateError as error:
            plans[key] = _unusable(key, error, declared)
            continue
        scope_devices = devices.get(key[0], NO_DEVICES)
        plans[key] = _plan_declared(
            declared, recorded, scope_devices, now, manifests.devices.get(key[0], {})
        )
        if plans[key].selection is not None:
            warning = unreported_warning(declared, scope_devices)
            if warning is not None and warning not in manifests.diagnostics:
                manifests.diagnostics.append(warning)
    for rejected in manifests.rejected:
        if rejected.kind != "Job" or rejected.scope is None or rejected.name is None:
            continue
        scope, name = rejected.scope, rejected.name
        if (scope, name) in plans:
            continue
        plan = JobPlan(scope, name, Action.INVALID, record=_record_or_none(state, scope, name))
        plan.problems = [str(d) for d in manifests.errors if d.file == rejected.file]
        plans[(scope, name)] = plan
    for scope, name in state.jobs(besides=plans):  # recorded, no longer declared
        try:
            plans[(scope, name)] = _plan_undeclared(state, scope, name, manifests, loaded)
        except StateError as error:
            plans[(scope, name)] = _unusable((scope, name), error, None)
    return Plan([plans[k] for k in sorted(plans)], manifests, revision)


def _unusable(key: tuple[str, str], error: StateError, declared: Declared[Job] | None) -> JobPlan:
    """A job whose recorded state cannot be read: reported, and left exactly as it is."""
    plan = JobPlan(key[0], key[1], Action.INVALID, declared=declared)
    plan.problems = [f"recorded state unusable, job left untouched: {error}"]
    return plan


def _load(state: StateDir, scope: str, name: str, loaded: Loaded | None = None) -> JobState | None:
    held = loaded.get((scope, name)) if loaded is not None else None
    if held is not None:
        return held
    return JobState.load(state, scope, name) if JobState.exists(state, scope, name) else None


def _record_or_none(state: StateDir, scope: str, name: str) -> JobRecord | None:
    try:
        job = _load(state, scope, name)
    except StateError:
        return None
    return job.record if job else None


def _plan_declared(
    declared: Declared[Job],
    recorded: JobState | None,
    devices: ScopeDevices,
    now: float,
    entries: Mapping[str, DeclaredDevice] | None = None,
) -> JobPlan:
    job = declared.manifest
    scope, name = declared.scope, job.metadata.name
    entries = entries or {}
    if recorded is None:
        plan = JobPlan(scope, name, Action.CREATE, declared=declared)
        plan.selection = selection(job, devices)
        plan.targets = resolve_targets(job, devices, _selected(plan))
        if not _values(plan, declared, entries):
            return plan
        _rollout(plan, job, None, devices)
        plan.changes = ["new job"]
        if job.spec.run is not None and not job.spec.suspend:
            plan.start = _run_start(job)
            plan.blocked = _nothing_to_freeze(plan)
            _covered(plan, None, now, job)
        return plan
    record = recorded.record
    plan = JobPlan(scope, name, Action.UNCHANGED, declared=declared, record=record)
    plan.frozen = record.frozen is not None
    digest = plan.spec_digest = spec_digest(job)
    if record.frozen is not None and digest != record.frozen.digest:
        plan.action = Action.CONFLICT
        plan.targets = list(record.frozen.targets)
        plan.conflict = _frozen_conflict(record, declared)
        return plan
    plan.selection = None if record.frozen else selection(job, devices)
    if not _targets_and_values(plan, declared, record, devices, entries):
        return plan
    _rollout(plan, job, record, devices)
    plan.schedule_digest = schedule_digest(job)
    plan.changes = _changes(record, job, plan, declared)
    running = recorded.running
    if job.spec.suspend:
        if running is not None:
            plan.stop = f"suspend: true (execution {running.id} is running)"
    elif job.spec.run is not None and job.spec.run_token != record.run_token:
        plan.start = _run_start(job)
        if running is not None:
            plan.blocked = f"waits for execution {running.id} to end"
        elif record.frozen is None:
            plan.blocked = _nothing_to_freeze(plan)
        _covered(plan, recorded, now, job)
    if plan.changes:
        plan.action = Action.UPDATE
    return plan


def _targets_and_values(
    plan: JobPlan,
    declared: Declared[Job],
    record: JobRecord,
    devices: ScopeDevices,
    entries: Mapping[str, DeclaredDevice],
) -> bool:
    """The targets and their values, as frozen or as a first execution would freeze them;
    False when the plan ends there (a frozen value changed: CONFLICT; a value that does
    not resolve: INVALID)."""
    if record.frozen is None:
        plan.targets = resolve_targets(declared.manifest, devices, _selected(plan))
        return _values(plan, declared, entries)
    plan.targets = list(record.frozen.targets)
    plan.values = record.frozen.values
    plan.conflict = values_conflict(record, declared, entries)
    if plan.conflict is not None:
        plan.action = Action.CONFLICT
        return False
    return True


def _values(plan: JobPlan, declared: Declared[Job], entries: Mapping[str, DeclaredDevice]) -> bool:
    """The values the first execution would freeze with the targets; False (the plan is
    INVALID, with each problem) when a target cannot resolve a reference."""
    found = values_to_freeze(declared, plan.targets, entries)
    if found is not None and found.problems:
        plan.action = Action.INVALID
        plan.problems = problems_text(declared, found)
        return False
    plan.values = frozen_values(found)
    return True


def _selected(plan: JobPlan) -> list[str] | None:
    """What the job's selector matches, as its plan found (the selector is evaluated once)."""
    return None if plan.selection is None else plan.selection.matched


def _run_start(job: Job) -> str:
    """Why the run token starts an execution, with its start options."""
    reset, from_step = job.spec.run_from
    options = "; reset" if reset else f"; from step {from_step}" if from_step is not None else ""
    return f"run token '{job.spec.run_token}'{options}"


def _covered(plan: JobPlan, recorded: JobState | None, now: float, job: Job) -> None:
    """What the start would run and skip: as the engine decides when it starts it, from the
    targets as recorded now (a first execution runs every target it freezes)."""
    if plan.blocked:
        return  # it starts later, if at all: what it covers is decided then
    frozen = recorded.record.frozen if recorded is not None else None
    if recorded is None or frozen is None:
        plan.run = list(plan.targets)
        return
    reset, from_step = job.spec.run_from
    found = coverage(recorded, len(frozen.steps), now, restart_at=0 if reset else from_step)
    plan.run, plan.skipped = found.covered, found.reasons


def _rollout(plan: JobPlan, job: Job, record: JobRecord | None, devices: ScopeDevices) -> None:
    """The waves (frozen, or split as the first execution would) and the targets' zones."""
    rollout = job.spec.rollout
    if record is not None and record.frozen is not None:
        plan.waves = list(record.frozen.waves)
    elif rollout is not None and rollout.waves:
        plan.waves = split_waves(plan.targets, rollout.waves, devices.tags_of)
    if rollout is not None and rollout.window is not None and rollout.window.timezone == "device":
        plan.zones = {c: devices.zones[c] for c in plan.targets if c in devices.zones}


def _frozen_conflict(record: JobRecord, declared: Declared[Job]) -> Conflict:
    """The conflict of a manifest with what the first execution froze: every difference,
    each with its frozen and its new value, at the line the new one is written."""
    assert record.frozen is not None
    origin = declared.origin
    found = differences(_frozen_essence(record), _essence(spec_essence(declared.manifest)))
    if not found:  # digests differ, values compare equal: frozen by a release that digested
        found = [Difference(("targets",), "(as frozen)", "(as written now)")]
    parts = list(dict.fromkeys(_part(d.path, declared.manifest) for d in found))
    listed = [
        ConflictDifference(
            what=_part(d.path, declared.manifest) + _rest(d.path),
            old=show(d.old),
            new=show(d.new),
            file=str(origin.file),
            line=origin.line("spec", *d.path),
        )
        for d in found
    ]
    return Conflict(
        message=(
            f"{', '.join(parts)} changed after execution 1 froze them"
            f" ({record.frozen.at:%Y-%m-%d %H:%M} UTC); they are never changed."
            f" {len(listed)} difference(s), each below as frozen -> as written."
            " Restore them, or declare a new job (a new name) for the new targets or steps"
        ),
        file=listed[0].file,
        line=listed[0].line,
        differences=listed,
    )


def _essence(essence: dict[str, Any]) -> dict[str, Any]:
    """An essence shaped as the manifest's spec, so that each path is a path in the file."""
    shaped = {"targets": essence["targets"], "steps": essence["steps"]}
    if essence.get("waves"):
        shaped["rollout"] = {"waves": essence["waves"]}
    return shaped


def _frozen_essence(record: JobRecord) -> dict[str, Any]:
    """What the first execution froze, as `_essence`: the target selectors as last applied
    (unchanged since: a change of them is this very conflict), the steps and waves frozen."""
    assert record.frozen is not None
    raw = record.spec.get("targets")
    try:
        targets: Any = Targets.model_validate(raw, strict=False).essence()
    except ValidationError:
        targets = "(not recorded)"  # recorded by another release: said, never guessed
    steps = [{k: v for k, v in s.items() if k != "description"} for s in record.frozen.steps]
    return _essence({"targets": targets, "steps": steps, "waves": record.frozen.waves_written})


def _part(path: tuple[str | int, ...], job: Job) -> str:
    """Which frozen part a difference is in: `step 1 'install'`, `targets`, `wave 0`."""
    if path[:1] == ("steps",) and len(path) > 1 and isinstance(path[1], int):
        index = path[1]
        steps = job.spec.steps
        return f"step {index} '{steps[index].name}'" if index < len(steps) else f"step {index}"
    if path[:1] == ("steps",):
        return "the steps"
    if path[:2] == ("rollout", "waves") and len(path) > 2 and isinstance(path[2], int):
        index = path[2]
        rollout = job.spec.rollout
        waves = rollout.waves if rollout is not None else []
        return f"wave {index} '{waves[index].name}'" if index < len(waves) else f"wave {index}"
    if path[:2] == ("rollout", "waves"):
        return "the rollout's waves"
    return "targets"


def _rest(path: tuple[str | int, ...]) -> str:
    """The path below the part `_part` names: ` properties.bundleId`, ` tags`."""
    depth = 2 if path[:1] == ("steps",) else 3 if path[:2] == ("rollout", "waves") else 1
    below = path[depth:]
    return f" {path_text(below)}" if below else ""


def _nothing_to_freeze(plan: JobPlan) -> str | None:
    """A first execution freezes its targets: with none known yet, it would freeze nothing."""
    if plan.targets:
        return None
    return (
        "waits for a target: no device matches the targets yet (declare devices in a"
        " DeviceList, or let them connect); the first execution freezes the target list"
    )


def _changes(record: JobRecord, job: Job, plan: JobPlan, declared: Declared[Job]) -> list[str]:
    changes = []
    if record.orphaned:
        changes.append("declared again (was removed)")
    if record.conflict is not None:
        changes.append("conflict resolved: targets and steps are back to what was frozen")
    if record.frozen is None and record.spec_digest != plan.spec_digest:
        changes.append("targets or steps (not frozen yet: no execution so far)")
    if (record.description or None) != (job.metadata.description or None):
        changes.append("description")
    if record.schedule_digest != plan.schedule_digest:
        changes.append("schedules")
    if job.spec.run is not None and job.spec.run_token != record.run_token:
        changes.append(f"run token {record.run_token!r} -> {job.spec.run_token!r}")
    if record.suspend != job.spec.suspend:
        changes.append(f"suspend {str(record.suspend).lower()} -> {str(job.spec.suspend).lower()}")
    source = record.source
    if source is None or Path(source.file) != declared.origin.file:
        changes.append(f"manifest file {declared.origin.file}")
    return changes


def _plan_undeclared(
    state: StateDir, scope: str, name: str, manifests: ManifestSet, loaded: Loaded | None
) -> JobPlan:
    recorded = _load(state, scope, name, loaded)
    assert recorded is not None
    record = recorded.record
    plan = JobPlan(scope, name, Action.UNCHANGED, record=record)
    plan.frozen = record.frozen is not None
    plan.targets = list(record.frozen.targets) if record.frozen else []
    if record.orphaned:
        plan.orphaned = True  # nothing to do, but not "as declared": it is declared no more
        return plan
    if not manifests.files:
        # An empty checkout (a clone half done, a mount not there) is not the removal of
        # every job: nothing is removed until some manifest is found.
        plan.problems = ["kept: no manifest at all was found, so no job is taken for removed"]
        return plan
    if manifests.unreadable_files:
        # The job may have moved into a file that could not be read: it is not removed on a
        # guess; it waits, as it is, until every file reads.
        unreadable = ", ".join(sorted(map(str, manifests.unreadable_files)))
        plan.action = Action.INVALID
        plan.problems = [f"not found in the manifests, but {unreadable} could not be read"]
        return plan
    plan.action = Action.REMOVE
    plan.changes = ["manifest removed: history kept, job marked orphaned"]
    running = recorded.running
    if running is not None:
        plan.stop = f"manifest removed (execution {running.id} is running)"
    return plan
