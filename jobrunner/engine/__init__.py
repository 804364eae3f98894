"""The engine: plan, reconcile, executions, schedules and the daemon, over the device seam.

    from jobrunner.engine import Runner, RunnerConfig, make_plan

    plan = make_plan(jobs_dir, state_dir, scope)         # what reconcile would do (read only)
    with Runner(config) as runner:                       # owns the state (or its share)
        applied = runner.apply(runner.plan(runner.load()))
        runner.wait(applied.started)

Its rooms, each with a face that says what it holds and may import: `service` (the runner
as a process: Runner, the watch daemon, reconcile, hand-offs, ownership), `status` (what
`status` shows), `core` (the loop and the execution of jobs), `planning` (what reconcile
would do), `rollout` (the gate of waves), `schedules` (triggers and the scheduler), `link`
(the seam to the devices: MQTT, or `MemoryLink` in tests). The names below are imported on
first use, so that importing one room (the status views, say) does not import all of it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jobrunner.engine.core.loop import Engine
    from jobrunner.engine.core.runtime import EngineSettings
    from jobrunner.engine.link.memory import MemoryLink
    from jobrunner.engine.link.ports import DeviceLink, FailureKind, StepOperation, Tag
    from jobrunner.engine.planning.plan import Action, JobPlan, Plan
    from jobrunner.engine.service.daemon import Daemon
    from jobrunner.engine.service.runner import Runner, RunnerConfig, exit_code, make_plan

__all__ = [
    "Action",
    "Daemon",
    "DeviceLink",
    "Engine",
    "EngineSettings",
    "FailureKind",
    "JobPlan",
    "MemoryLink",
    "Plan",
    "Runner",
    "RunnerConfig",
    "StepOperation",
    "Tag",
    "exit_code",
    "make_plan",
]

_HOMES = {
    "Action": "planning.plan",
    "Daemon": "service.daemon",
    "DeviceLink": "link.ports",
    "Engine": "core.loop",
    "EngineSettings": "core.runtime",
    "FailureKind": "link.ports",
    "JobPlan": "planning.plan",
    "MemoryLink": "link.memory",
    "Plan": "planning.plan",
    "Runner": "service.runner",
    "RunnerConfig": "service.runner",
    "StepOperation": "link.ports",
    "Tag": "link.ports",
    "exit_code": "service.runner",
    "make_plan": "service.runner",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
