"""`plan --live` as the command line runs it: the plan (reads only, no lock), the recorded
devices (read, never written), and the live reads of `planning.live` through an asker."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from jobrunner.engine.planning.live import (
    Asker,
    LiveReport,
    TargetSteps,
    choose,
    inspect,
    job_steps,
)
from jobrunner.engine.service.runner import make_plan
from jobrunner.state.layout import StateDir
from jobrunner.state.registry import DeviceRecord, DeviceRegistry


def live_plan(
    jobs_dir: Path,
    state: StateDir | Path,
    scope: str,
    names: Sequence[str],
    asker: Asker,
    *,
    require_signed: bool = False,
    steps_for: TargetSteps = job_steps,
) -> LiveReport:
    """Where the targets of the jobs `names` (every job when empty) stand on their devices.
    JobError when a name is not a job."""
    layout = state if isinstance(state, StateDir) else StateDir(state)
    plan = make_plan(jobs_dir, layout, scope, require_signed)
    jobs = choose(plan, names)
    registry = DeviceRegistry(layout, autoflush=False)
    try:

        def recorded(scope: str, client_id: str) -> DeviceRecord | None:
            return registry.scope(scope).get(client_id)

        return inspect(plan, jobs, asker, recorded, steps_for=steps_for)
    finally:
        registry.close()
