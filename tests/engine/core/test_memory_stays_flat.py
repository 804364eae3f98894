"""A daemon that runs a job every ten seconds for a year holds what the last executions need,
not something for every execution it ever ran: counted on the in-memory engine, whose fake
clock runs hundreds of executions in a second."""

from __future__ import annotations

import gc
from pathlib import Path

from jobrunner.engine.link.memory import Sent, error, ok
from jobrunner.engine.service.runner import Runner
from jobrunner.engine.status import job_view
from jobrunner.state.jobstore import KEPT_SUMMARIES
from jobrunner.state.records import ExecutionSummary, Trigger, TriggerKind

from ..conftest import FakeClock, memory_runner

DEVICES = [f"gw-{n}" for n in range(1, 7)]
STOP = "- {name: stop, definition: Bundle Stop, timeout: 30s, properties: {bundleId: 42}}"


def _half_fail(sent: Sent) -> object:
    """Odd devices refuse every time: each fire runs them again, as a cron job on a fleet
    where some devices keep failing."""
    return error(500, "busy") if int(sent.client_id[3:]) % 2 else ok()


def _write_job(root: Path) -> None:
    jobs = root / "jobs.d"
    jobs.mkdir()
    (jobs / "often.yaml").write_text(
        "apiVersion: jobrunner/v1\nkind: Job\nmetadata: {name: often, scope: acme}\n"
        f"spec:\n  targets: {{devices: [{', '.join(DEVICES)}]}}\n  steps:\n    {STOP}\n"
        '  run: "1"\n'
    )


def _fire(runner: Runner, clock: FakeClock, times: int) -> None:
    job = runner.engine.jobs[("acme", "often")]
    for _ in range(times):
        clock.advance(10)
        summary = runner.reconciler.start(
            job, Trigger(kind=TriggerKind.SCHEDULE, detail="often"), revision=None
        )
        runner.wait([("acme", "often", summary.id)])


def _held(runner: Runner) -> dict[str, int]:
    """What the runner holds of the per-execution kinds."""
    gc.collect()
    job = runner.engine.jobs[("acme", "often")]
    return {
        "summaries": sum(isinstance(o, ExecutionSummary) for o in gc.get_objects()),
        "summaries kept": len(job.state.executions.recent),
        "execution logs open": len(job.state.logs),
        "steps described": len(job.described),
    }


def test_what_the_runner_holds_does_not_grow_with_the_executions_it_ran(
    tmp_path: Path, clock: FakeClock
) -> None:
    _write_job(tmp_path)
    runner, link = memory_runner(tmp_path, clock, _half_fail)  # type: ignore[arg-type]
    link.keep = False  # the test's own record of requests is not the runner's
    with runner:
        runner.wait(runner.apply(runner.plan(runner.load())).started)
        _fire(runner, clock, 2 * KEPT_SUMMARIES)
        after_some = _held(runner)
        _fire(runner, clock, 3 * KEPT_SUMMARIES)
        after_more = _held(runner)
        job = runner.job_state("acme", "often")

        assert after_more == after_some, "held per execution, without bound"
        assert after_more["summaries kept"] == KEPT_SUMMARIES
        # Older executions are still there for whoever asks: read from the storage.
        total = 1 + 5 * KEPT_SUMMARIES
        assert list(job.executions) == list(range(1, total + 1))
        assert job.executions[1].counts == {"PROCESS_OK": 3, "PROCESS_FAILED": 3}
        assert job.executions.ended == {"TERMINATED": total}
        assert len(job_view(job)["executions"]) == total
        shown = job_view(job, newest=3)["executions"]
        assert [e["id"] for e in shown] == [total - 2, total - 1, total]


def test_the_deadline_of_a_request_answered_is_not_held_until_it_would_have_come(
    tmp_path: Path, clock: FakeClock
) -> None:
    # Every device answers at once; the step's timeout (30 s) has not passed on the fake clock.
    _write_job(tmp_path)
    runner, _link = memory_runner(tmp_path, clock, lambda _sent: ok())
    with runner:
        runner.wait(runner.apply(runner.plan(runner.load())).started)

        assert len(runner.engine.rt.deadlines) == 0, "deadlines of answered requests held"
