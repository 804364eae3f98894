"""The device cloud's job start options on the engine's fake clock: `reset` and `from_step`
run every target again from a step, `enqueue` queues a start behind the running execution."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from jobrunner.engine.link.memory import Handler, MemoryLink, Sent, error, ok
from jobrunner.engine.service.runner import Runner
from jobrunner.engine.status import job_view
from jobrunner.errors import JobError, NothingToDo
from jobrunner.state.records import (
    ExecutionStatus,
    ExecutionSummary,
    QueuedStart,
    StartOptions,
    Trigger,
)

from ..conftest import FakeClock, memory_runner

TWO_STEPS = """
- {name: stop, definition: Bundle Stop, timeout: 30s, properties: {bundleId: 42}}
- {name: start, definition: Bundle Start, timeout: 30s, properties: {bundleId: 42}}
"""


@dataclass
class World:
    root: Path
    clock: FakeClock
    links: list[MemoryLink] = field(default_factory=list)

    def job(self, extra: str = "", run: str = '"1"', devices: str = "[gw-1, gw-2]") -> None:
        jobs = self.root / "jobs.d"
        jobs.mkdir(exist_ok=True)
        (jobs / "check.yaml").write_text(
            "apiVersion: jobrunner/v1\nkind: Job\nmetadata: {name: check, scope: acme}\n"
            f"spec:\n  targets: {{devices: {devices}}}\n  steps:\n"
            + textwrap.indent(textwrap.dedent(TWO_STEPS).strip(), "    ")
            + f"\n  run: {run}\n"
            + textwrap.indent(textwrap.dedent(extra), "  ")
        )

    def runner(self, handler: Handler) -> Runner:
        runner, link = memory_runner(self.root, self.clock, handler)
        self.links.append(link)
        return runner

    def sent(self) -> list[tuple[str, int]]:
        """(client id, step index) of every step request, oldest first, across runners."""
        return [
            (s.client_id, s.tag.step_index)
            for link in self.links
            for s in link.sent
            if s.tag.purpose == "step"
        ]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    yield World(tmp_path, FakeClock())


def _reconcile(runner: Runner) -> None:
    """Apply the manifests and run what they start to its end."""
    runner.wait(runner.apply(runner.plan(runner.load())).started)


def _start(runner: Runner, targets: list[str] | None = None, **options: Any) -> ExecutionSummary:
    """`jobrunner start check` with `options` (reset, from_step), run to its end."""
    begun = runner.start_job("acme", "check", runner.load(), targets, StartOptions(**options))
    (ended,) = runner.wait([("acme", "check", begun.id)])
    return ended


def test_reset_runs_every_target_again_from_step_0_and_every_view_says_so(
    world: World,
) -> None:
    world.job()
    with world.runner(lambda sent: ok()) as runner:
        _reconcile(runner)
        with pytest.raises(NothingToDo):  # as before: a plain start of a job done
            _start(runner)
        before = len(world.sent())

        ended = _start(runner, reset=True)
        job = runner.job_state("acme", "check")
        view = job_view(job)
        log = job.paths.log(ended.id).read_text()

    assert world.sent()[before:] == [("gw-1", 0), ("gw-2", 0), ("gw-1", 1), ("gw-2", 1)]
    assert (ended.status, ended.counts) == (ExecutionStatus.TERMINATED, {"PROCESS_OK": 2})
    assert str(ended.trigger) == "manual, reset"
    assert "2 started by manual, reset; 2 target(s), every one from step 0" in log
    execution = view["executions"][-1]
    assert execution["trigger"] == "manual, reset"
    assert execution["options"] == {"reset": True, "fromStep": None, "enqueued": False}
    assert view["executions"][0]["options"] is None
    assert [t["stepIndex"] for t in view["targets"]] == [1, 1]


def test_from_step_runs_every_target_from_that_step_counted_from_0(world: World) -> None:
    world.job()
    with world.runner(lambda sent: ok()) as runner:
        _reconcile(runner)
        before = len(world.sent())
        ended = _start(runner, from_step=1, targets=["gw-2"])
        with pytest.raises(JobError) as beyond:
            _start(runner, from_step=2)

    assert world.sent()[before:] == [("gw-2", 1)], "only step 1, only the target chosen"
    assert str(ended.trigger) == "manual (targets: gw-2), from step 1"
    assert str(beyond.value) == (
        "job acme/check has 2 step(s), counted from 0: there is no step 2; give 0 to 1"
        " (see `jobrunner status acme/check`)"
    )


def test_reset_covers_targets_the_retry_limit_gave_up_and_counts_attempts_afresh(
    world: World,
) -> None:
    world.job("retry: {maxAttempts: 1}\n")
    refusing = {"gw-2"}

    def handler(sent: Sent) -> object:
        return error(500, "busy") if sent.client_id in refusing else ok()

    with world.runner(handler) as runner:  # type: ignore[arg-type]
        _reconcile(runner)
        job = runner.job_state("acme", "check")
        assert job.targets.get("gw-2").status.value == "PROCESS_FAILED"
        given_up = _start(runner, targets=None)
        assert given_up.given_up == ["gw-2"], "the limit holds a plain start"

        refusing.clear()
        ended = _start(runner, reset=True)
        gw2 = job.targets.get("gw-2")

    assert ended.targets == ["gw-1", "gw-2"]
    assert (gw2.status.value, gw2.step_index, gw2.attempts) == ("PROCESS_OK", 1, 1)


def test_enqueue_queues_the_start_behind_the_running_execution_and_runs_it_after(
    world: World,
) -> None:
    world.job()
    silent = {"gw-2"}

    def handler(sent: Sent) -> object:
        return None if sent.client_id in silent else ok()

    with world.runner(handler) as runner:  # type: ignore[arg-type]
        runner.apply(runner.plan(runner.load()))
        runner.engine.step(0)
        runner.engine.step(0)
        with pytest.raises(JobError, match="is already running execution 1"):
            runner.start_job("acme", "check", runner.load())
        queued = runner.start_job(
            "acme", "check", runner.load(), options=StartOptions(reset=True), enqueue=True
        )
        assert isinstance(queued, QueuedStart)
        job = runner.job_state("acme", "check")
        assert [q.id for q in job.record.queued] == [queued.id]
        assert job_view(job)["queued"][0]["trigger"] == "manual, reset, enqueued"
        assert len(job.executions) == 1, "no second execution at once"

        silent.clear()
        world.clock.advance(31)  # gw-2's request times out: execution 1 ends
        runner.engine.step(0)
        assert runner.dequeued == [("acme", "check", 2)]
        (second,) = runner.wait([("acme", "check", 2)])
        first = job.executions[1]

    assert first.status is ExecutionStatus.TERMINATED
    assert second.counts == {"PROCESS_OK": 2}
    assert second.trigger.options == StartOptions(reset=True, enqueued=queued.id)
    assert str(second.trigger) == "manual, reset, enqueued"
    assert job.record.queued == []
    assert f"queued ({queued.id}): it runs when execution 1 ends" in job.paths.log(1).read_text()


def test_a_queued_start_survives_a_restart_and_the_next_owner_runs_it(world: World) -> None:
    world.job()
    with world.runner(lambda sent: None) as runner:  # nobody answers: execution 1 runs on
        runner.apply(runner.plan(runner.load()))
        runner.engine.step(0)
        queued = runner.start_job(
            "acme", "check", runner.load(), options=StartOptions(from_step=1), enqueue=True
        )
        assert isinstance(queued, QueuedStart)

    with world.runner(lambda sent: ok()) as runner:  # resumes 1; 2 starts when it ends
        world.clock.advance(31)
        runner.wait(runner.resumed)
        assert runner.dequeued == [("acme", "check", 2)]
        (second,) = runner.wait(runner.dequeued)
        job = runner.job_state("acme", "check")

    assert job.executions[1].status is ExecutionStatus.TERMINATED
    assert second.trigger.options == StartOptions(from_step=1, enqueued=queued.id)
    assert (second.status, second.counts) == (ExecutionStatus.TERMINATED, {"PROCESS_OK": 2})
    assert job.record.queued == []


def test_a_queued_start_with_nothing_to_do_is_dropped_and_said(world: World) -> None:
    world.job()
    silent = {"gw-2"}

    def handler(sent: Sent) -> object:
        return None if sent.client_id in silent else ok()

    with world.runner(handler) as runner:  # type: ignore[arg-type]
        runner.apply(runner.plan(runner.load()))
        runner.engine.step(0)
        runner.engine.step(0)
        runner.start_job("acme", "check", runner.load(), ["gw-1"], enqueue=True)
        world.clock.advance(31)
        runner.engine.step(0)
        job = runner.job_state("acme", "check")

    assert runner.dequeued == [], "gw-1 is done: nothing to run"
    assert job.record.queued == []
    assert list(job.executions) == [1]


def test_run_in_git_with_reset_or_from_step_starts_with_those_options(world: World) -> None:
    world.job()
    with world.runner(lambda sent: ok()) as runner:
        _reconcile(runner)
        world.job(run='{token: "2", reset: true}')
        plan = runner.plan(runner.load())
        (job_plan,) = plan.jobs
        assert job_plan.start == "run token '2'; reset"
        assert job_plan.run == ["gw-1", "gw-2"], "the plan shows the done targets run again"
        before = len(world.sent())
        _reconcile(runner)
        after_reset = world.sent()[before:]

        world.job(run='{token: "3", fromStep: 1}')
        before = len(world.sent())
        _reconcile(runner)
        after_from = world.sent()[before:]
        job = runner.job_state("acme", "check")

    assert after_reset == [("gw-1", 0), ("gw-2", 0), ("gw-1", 1), ("gw-2", 1)]
    assert after_from == [("gw-1", 1), ("gw-2", 1)]
    assert [str(e.trigger) for e in job.executions.values()] == [
        "run (1)",
        "run (2), reset",
        "run (3), from step 1",
    ]
    assert job.record.run_token == "3"


def test_records_written_before_the_start_options_still_read(tmp_path: Path) -> None:
    old = {
        "format": "jobrunner.execution",
        "version": 1,
        "id": 3,
        "status": "TERMINATED",
        "trigger": {"kind": "schedule", "detail": "nightly"},
    }
    summary = ExecutionSummary.model_validate(old)
    assert summary.trigger == Trigger.model_validate(old["trigger"])
    assert summary.trigger.options is None
    assert str(summary.trigger) == "schedule (nightly)"
