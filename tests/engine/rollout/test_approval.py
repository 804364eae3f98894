"""A wave that waits for an approval (`approval: required`): held until `jobrunner approve`
or `spec.rollout.approved` lets it go, with who and when recorded. The in-memory link plays
the devices, on the engine's fake clock."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from jobrunner.cli.main import cli
from jobrunner.cli.progress import progress_of, render
from jobrunner.engine.link.observers import Observer
from jobrunner.engine.rollout.waves import stable_order
from jobrunner.engine.status import job_view
from jobrunner.errors import JobError
from jobrunner.state.layout import JobKey
from jobrunner.state.records import ExecutionStatus

from ..conftest import FakeClock
from .test_rollout_in_memory import Fleet, World, at, log_of, run_for, start, until_ended

GATED = """
waves:
  - {name: canary, devices: [gw-07]}
  - {name: early, size: 30%, approval: required}
  - {name: rest}
"""
LAST_GATED = GATED.replace(", approval: required", "").replace(
    "{name: rest}", "{name: rest, approval: required}"
)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    clock = FakeClock(at("2027-01-10T12:00:00Z"))
    yield World(tmp_path, clock, Fleet(clock))


class Heard(Observer):
    def __init__(self) -> None:
        self.approved: list[tuple[JobKey, int | None, str, str]] = []

    def wave_approved(self, job: JobKey, execution: int | None, wave: str, by: str) -> None:
        self.approved.append((job, execution, wave, by))


def _cli(world: World, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        cli, [*args, "--state-dir", str(world.root / "state"), "--scope", "acme"]
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


def test_a_wave_that_requires_an_approval_holds_the_rollout_until_it_is_approved(
    world: World,
) -> None:
    clients = world.job(GATED)
    early = stable_order(c for c in clients if c != "gw-07")[:3]
    heard = Heard()
    with world.runner() as runner:
        runner.engine.rt.observer = heard
        ref = start(runner)
        run_for(runner, world.clock, 600)  # long after the canary passed
        assert [c for _, c in world.fleet.requests] == ["gw-07"], "nothing of 'early' started"
        view = job_view(runner.job_state("acme", "rollout"))
        rollout = view["rollout"]
        assert (rollout["state"], rollout["wave"]) == ("awaiting-approval", "early")
        assert "jobrunner approve acme/rollout --wave early" in rollout["reason"]
        assert [w["state"] for w in rollout["waves"]] == ["passed", "pending", "pending"]
        assert rollout["waves"][1]["approval"] == "required"
        held = {t["clientId"]: t["message"] for t in view["targets"]}
        assert "waits for an approval of its wave 'early'" in held[early[0]]
        summary = runner.job_state("acme", "rollout").executions[ref[2]]
        assert summary.status is ExecutionStatus.RUNNING, "the execution waits, it does not end"

        given = runner.approve_wave("acme", "rollout", None, "alice")
        assert (given.wave, given.by, given.already) == ("early", "alice", False)
        summary = until_ended(runner, world.clock, ref)
        view = job_view(runner.job_state("acme", "rollout"))
    assert summary.status is ExecutionStatus.TERMINATED
    order = [c for _, c in world.fleet.requests]
    assert set(order[1:4]) == set(early) and set(order) == set(clients)
    wave = view["rollout"]["waves"][1]
    assert (wave["state"], wave["approvedBy"]) == ("passed", "alice")
    assert wave["approvedOn"] is not None
    text = log_of(world)
    assert "wave 'early' awaits an approval (approval: required)" in text
    assert "rollout: wave 'early' approved by alice" in text
    assert text.index("approved by alice") < text.index("wave 'early': 3/3 PROCESS_OK")
    assert heard.approved == [(("acme", "rollout"), 1, "early", "alice")]


def test_a_wave_approved_in_git_goes_on_and_the_log_says_so(world: World) -> None:
    clients = world.job(GATED + "approved: [early]\n")
    with world.runner() as runner:
        summary = until_ended(runner, world.clock, start(runner))
        view = job_view(runner.job_state("acme", "rollout"))
    assert summary.status is ExecutionStatus.TERMINATED
    assert {c for _, c in world.fleet.requests} == set(clients)
    assert view["rollout"]["waves"][1]["approvedBy"] == "git (spec.rollout.approved)"
    assert "wave 'early' approved by git (spec.rollout.approved)" in log_of(world)


def test_a_wave_approved_ahead_from_the_command_line_never_waits(world: World) -> None:
    clients = world.job(LAST_GATED + "maxPerMinute: 1\n")
    with world.runner() as runner:
        start(runner)
        run_for(runner, world.clock, 1)  # the canary answered; the next starts in a minute
    assert [c for _, c in world.fleet.requests] == ["gw-07"]
    # the command, with no daemon: written in the job record and the execution's log
    code, output = _cli(world, "approve", "rollout", "--wave", "rest", "--by", "bob")
    assert code == 0, output
    assert "wave 'rest' of acme/rollout approved by bob" in output
    code, output = _cli(world, "approve", "rollout", "--wave", "rest", "-o", "json")
    shown = json.loads(output)
    assert (shown["wave"], shown["approvedBy"], shown["already"]) == ("rest", "bob", True)
    with world.runner() as runner:
        summary = until_ended(runner, world.clock, ("acme", "rollout", 1))
    assert summary.status is ExecutionStatus.TERMINATED
    assert {c for _, c in world.fleet.requests} == set(clients)
    text = log_of(world)
    assert "wave 'rest' approved by bob" in text and "awaits an approval" not in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            [],
            "job acme/rollout has no wave awaiting an approval now (its rollout is"
            " running); to approve one ahead, name it: --wave rest",
        ),
        (["--wave", "erly"], "job acme/rollout has no wave 'erly'; did you mean 'early'?"),
        (
            ["--wave", "early"],
            "wave 'early' of job acme/rollout does not wait for an approval; the waves that"
            " do (approval: required): rest",
        ),
        (["--wave", "early", "--by", ""], "say who approves in 1-256 printable characters"),
    ],
    ids=["nothing-awaits", "unknown-wave", "wave-without-approval", "nobody"],
)
def test_an_approval_that_cannot_be_given_says_why_and_changes_nothing(
    world: World, args: list[str], message: str
) -> None:
    world.job(LAST_GATED + "maxPerMinute: 1\n")
    with world.runner() as runner:
        start(runner)
        run_for(runner, world.clock, 5)
    record = (world.root / "state/scopes/acme/jobs/rollout/job.json").read_bytes()
    code, output = _cli(world, "approve", "rollout", *args)
    assert code != 0
    assert message in " ".join(output.split())
    assert (world.root / "state/scopes/acme/jobs/rollout/job.json").read_bytes() == record


def test_a_job_without_a_wave_to_approve_says_how_to_ask_for_one(world: World) -> None:
    world.job("waves:\n  - {name: canary, devices: [gw-07]}\n  - {name: rest}\n")
    with world.runner() as runner:
        start(runner)
        with pytest.raises(JobError, match="has no wave that waits for an approval; a wave"):
            runner.approve_wave("acme", "rollout", None, "alice")


def test_the_rollout_waits_for_the_approval_across_a_restart_of_the_runner(
    world: World, tmp_path: Path
) -> None:
    clients = world.job(GATED)
    with world.runner() as runner:
        ref = start(runner)
        run_for(runner, world.clock, 120)
    assert [c for _, c in world.fleet.requests] == ["gw-07"]
    with world.runner() as runner:  # takes the running execution up: still waiting
        run_for(runner, world.clock, 120)
        assert [c for _, c in world.fleet.requests] == ["gw-07"]
        state = job_view(runner.job_state("acme", "rollout"))["rollout"]["state"]
        assert state == "awaiting-approval"
        runner.approve_wave("acme", "rollout", "early", "carol")
        summary = until_ended(runner, world.clock, ref)
    assert summary.status is ExecutionStatus.TERMINATED
    assert {c for _, c in world.fleet.requests} == set(clients)


def test_an_approval_committed_to_git_lets_a_waiting_rollout_go_on(world: World) -> None:
    clients = world.job(GATED)
    with world.runner() as runner:
        ref = start(runner)
        run_for(runner, world.clock, 60)
        assert [c for _, c in world.fleet.requests] == ["gw-07"]
        world.job(GATED + "approved: [early]\n")  # the reviewed change, merged
        applied = runner.apply(runner.plan(runner.load()))
        assert applied.started == [], "the running execution goes on; none is started"
        summary = until_ended(runner, world.clock, ref)
        wave = job_view(runner.job_state("acme", "rollout"))["rollout"]["waves"][1]
    assert summary.status is ExecutionStatus.TERMINATED
    assert {c for _, c in world.fleet.requests} == set(clients)
    assert wave["approvedBy"] == "git (spec.rollout.approved)"


def test_the_live_table_shows_the_rollout_and_fits_80_columns(world: World) -> None:
    world.job(GATED)
    with world.runner() as runner:
        ref = start(runner)
        run_for(runner, world.clock, 60)
        progress = progress_of(runner.job_state("acme", "rollout"), ref[2])
    console = Console(width=80, record=True, color_system=None)
    console.print(render([progress]))
    lines = console.export_text().splitlines()
    assert all(line.rstrip()[-1] in "┓┃┩│┘" for line in lines[1:]), lines  # nothing cropped
    text = " ".join(lines)
    assert "acme/rollout" in text and "rollout" in text and "awaiting-approv" in text
