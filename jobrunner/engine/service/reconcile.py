"""Applying a plan: records brought in line with the manifests, executions started and stopped.

Runs on the engine's thread (the CLI and the daemon submit it there), so that a reconcile
never races a reply. Each job is applied whole or not at all: a conflict, an invalid
manifest or a change the scope's policy refuses leaves the job exactly as it was, apart from
the note that says why. The policies the plan accepted are recorded first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from jobrunner.engine.core import executions
from jobrunner.engine.core.executions import OperationFactory
from jobrunner.engine.core.loop import Engine
from jobrunner.engine.core.runtime import RunningJob
from jobrunner.engine.planning.plan import Action, JobPlan, Plan
from jobrunner.engine.planning.policy import record_policies
from jobrunner.engine.planning.spec import dump_steps, dump_waves, schedule_digest, spec_digest
from jobrunner.manifests import Declared, Job, ManifestSet
from jobrunner.state.jobstore import JobState
from jobrunner.state.layout import StateDir
from jobrunner.state.records import (
    ExecutionSummary,
    FrozenValues,
    FrozenWave,
    HistoryBounds,
    JobRecord,
    SourceRef,
    StartOptions,
    Trigger,
    TriggerKind,
)


@dataclass
class Applied:
    """What one reconcile did."""

    started: list[tuple[str, str, int]] = field(default_factory=list)  # scope, name, execution
    stopped: list[tuple[str, str, int]] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    idle: list[str] = field(default_factory=list)
    """Why a new run token started nothing: `nothing to do: every target of job ... is done`."""


@dataclass
class Reconciler:
    state: StateDir
    engine: Engine
    operations: OperationFactory

    def apply(self, plan: Plan) -> Applied:
        applied = Applied()
        record_policies(self.state, plan.policy_changes)
        for job_plan in plan.jobs:
            if job_plan.action in (Action.CONFLICT, Action.INVALID, Action.REFUSED):
                self._refuse(job_plan, plan.revision)
                applied.refused.append(job_plan.label)
                continue
            if job_plan.action is Action.REMOVE:
                self._remove(job_plan, applied)
                continue
            if job_plan.declared is None:
                continue
            job = self.record_one(
                job_plan, plan.revision, history_bounds(plan.manifests, job_plan.scope)
            )
            if job_plan.action is not Action.UNCHANGED:
                applied.changed.append(job_plan.label)
            if job_plan.stop:
                self._stop(job, job_plan.stop, applied)
            if job_plan.start and not job_plan.blocked:
                spec = job_plan.declared.manifest.spec
                token = spec.run_token
                reset, from_step = spec.run_from
                options = StartOptions(reset=reset, from_step=from_step)
                done = executions.nothing_to_do(job, None, options)
                if done is not None:  # an empty execution would record nothing but its folder
                    job.state.record.run_token = token  # taken: the next token asks again
                    job.state.save_record()
                    applied.idle.append(done)
                    continue
                run = self.start(
                    job,
                    Trigger(
                        kind=TriggerKind.RUN,
                        detail=token,
                        options=options if options.restart_at is not None else None,
                    ),
                    revision=plan.revision,
                    declared=job_plan.declared,
                    targets=job_plan.targets,
                    waves=job_plan.waves,
                    values=job_plan.values,
                )
                job.state.record.run_token = token
                job.state.save_record()
                applied.started.append((*job.key, run.id))
        return applied

    def job(self, scope: str, name: str) -> RunningJob:
        """The job in the engine (loaded from disk the first time)."""
        running = self.engine.jobs.get((scope, name))
        if running is not None:
            return running
        return executions.attach(
            self.engine, JobState.load(self.state, scope, name), self.operations
        )

    def start(
        self,
        job: RunningJob,
        trigger: Trigger,
        *,
        revision: str | None,
        declared: Declared[Job] | None = None,
        targets: list[str] | None = None,
        waves: list[FrozenWave] | None = None,
        values: FrozenValues | None = None,
        only: list[str] | None = None,
        chosen: bool = False,
    ) -> ExecutionSummary:
        """Start an execution; the first one freezes `targets` (resolved now), the steps, the
        rollout's `waves` (split now) and the `values` the steps read for each target."""
        record = job.state.record
        if record.frozen is None:
            if declared is None or targets is None:
                raise AssertionError("a first execution needs the manifest and its targets")
            executions.freeze(
                job.state,
                targets,
                dump_steps(declared.manifest),
                spec_digest(declared.manifest),
                revision,
                waves=waves,
                waves_written=dump_waves(declared.manifest),
                values=values,
            )
        return executions.start(
            self.engine,
            job,
            trigger,
            operations=self.operations,
            revision=revision,
            only=only,
            chosen=chosen,
        ).summary

    # -- per action ---------------------------------------------------------------------

    def record_one(
        self, plan: JobPlan, revision: str | None, history: HistoryBounds | None = None
    ) -> RunningJob:
        """Bring one declared job's record in line with its manifest (no start, no stop);
        `history`: the retention its Scope sets."""
        declared = plan.declared
        assert declared is not None
        manifest = declared.manifest
        if plan.record is None:
            state = JobState.create(self.state, JobRecord(scope=plan.scope, name=plan.name))
            job = executions.attach(self.engine, state, self.operations)
        else:
            job = self.job(plan.scope, plan.name)
        record = job.state.record
        # What reconcile sets; nothing else of the record changes here, so comparing these
        # (not a dump of the whole record, its frozen targets too, twice) says whether to write.
        reconciled: dict[str, object] = {
            "description": manifest.metadata.description,
            "source": SourceRef(file=str(declared.origin.file), line=declared.origin.line()),
            "spec": manifest.spec.model_dump(mode="json", by_alias=True, exclude_none=True),
            "spec_digest": plan.spec_digest or spec_digest(manifest),
            "schedule_digest": plan.schedule_digest or schedule_digest(manifest),
            "suspend": manifest.spec.suspend,
            "resolved_targets": None if record.frozen is not None else list(plan.targets),
            "zones": plan.zones,
            "orphaned": False,
            "conflict": None,
            "problem": None,
            "revision_attempted": revision,
            "revision_applied": revision,
            "history": history,
        }
        changed = False
        for name, value in reconciled.items():
            if getattr(record, name) != value:
                setattr(record, name, value)
                changed = True
        if changed:  # write only what changed
            job.state.save_record()
        return job

    def _refuse(self, plan: JobPlan, revision: str | None) -> None:
        if plan.record is None:
            return
        job = self.job(plan.scope, plan.name)
        record = job.state.record
        record.revision_attempted = revision
        if plan.conflict is not None:
            record.conflict = plan.conflict
        if plan.problems:
            record.problem = "; ".join(plan.problems)
        job.state.save_record()

    def _remove(self, plan: JobPlan, applied: Applied) -> None:
        job = self.job(plan.scope, plan.name)
        if plan.stop:
            self._stop(job, plan.stop, applied)
        job.state.record.orphaned = True
        job.state.save_record()
        applied.changed.append(plan.label)

    def _stop(self, job: RunningJob, reason: str, applied: Applied) -> None:
        if job.run is not None and executions.stop(self.engine, job, reason):
            applied.stopped.append((*job.key, job.run.id))


def history_bounds(manifests: ManifestSet, scope: str) -> HistoryBounds | None:
    """The retention the Scope manifest of `scope` sets (`spec.history`), if any."""
    declared = manifests.scopes.get(scope)
    history = declared.manifest.spec.history if declared is not None else None
    if history is None:
        return None
    keep_for = history.keep_for.total_seconds() if history.keep_for is not None else None
    return HistoryBounds(keep_executions=history.keep_executions, keep_for=keep_for)
