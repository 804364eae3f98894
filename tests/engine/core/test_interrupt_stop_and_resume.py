"""What users do between the units: Ctrl-C a run, stop it, resume it, start a suspended job."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from jobrunner.simulator.config import Timing
from jobrunner.simulator.faults import DelayFault, FailFault, FaultPlan, Selector
from jobrunner.state.records import ExecutionStatus

from ..conftest import Scenario

pytestmark = pytest.mark.integration

TWO_STEPS = """
- {name: stop, definition: Bundle Stop, timeout: 10s, properties: {bundleId: 42}}
- {name: start, definition: Bundle Start, timeout: 10s, properties: {bundleId: 42}}
"""


def _slow_fleet(scenario: Scenario, devices: int, delay: float) -> None:
    scenario.registry(devices)
    scenario.fleet(devices, FaultPlan(slow=(DelayFault(Selector("*", "bundle-stop"), delay),)))


def _reconcile(scenario: Scenario, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    with log.open("wb") as output:
        return subprocess.Popen(
            [*scenario.reconcile_command(max_in_flight=2), *extra], stdout=output, stderr=output
        )


def _flags(scenario: Scenario) -> tuple[str, ...]:
    """The options of the subprocess's command line: the same runner as before."""
    return (
        "--jobs-dir", str(scenario.jobs_dir), "--broker", scenario.broker.url,
        "--client-id", f"runner-{scenario.scope}",
    )  # fmt: skip


def _wait_for_line(scenario: Scenario, text: str, timeout: float = 60) -> None:
    path = scenario.state_dir / "scopes" / scenario.scope / "jobs" / "rollout"
    log = path / "executions" / "000001" / "log.txt"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and text in log.read_text():
            return
        time.sleep(0.05)
    raise AssertionError(f"no {text!r} in the execution log")


@pytest.mark.parametrize(("number", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_stops_gracefully_says_what_is_left_and_exits_128_plus_signal(
    scenario: Scenario, tmp_path: Path, number: signal.Signals, code: int
) -> None:
    _slow_fleet(scenario, 6, 1.0)
    scenario.job("rollout", TWO_STEPS)
    process = _reconcile(scenario, tmp_path / "out.txt")
    _wait_for_line(scenario, "sent DEPLOY-V2 EXEC/stop/42")

    process.send_signal(number)
    assert process.wait(timeout=20) == code
    output = (tmp_path / "out.txt").read_text()

    job = scenario.state("rollout")
    (summary,) = job.executions.values()
    assert summary.status is ExecutionStatus.STOPPED
    assert summary.message == f"interrupted by {number.name}"
    statuses = scenario.statuses("rollout")
    # The two requests in flight were answered and recorded; nothing else was sent.
    assert sorted(statuses.values()).count((1, "PROCESS_AWAITING")) == 2
    assert sorted(statuses.values()).count((0, "PROCESS_AWAITING")) == 4
    assert f"{number.name}: stopping the executions gracefully" in output
    assert "execution 1: STOPPED" in output
    assert f"6 target(s) not done; `jobrunner start {scenario.scope}/rollout` runs them" in output

    # The next run takes up exactly what was left, from where each target stopped.
    code_again, _ = scenario.invoke("start", "rollout", *_flags(scenario))
    assert code_again == 0
    assert set(scenario.statuses("rollout").values()) == {(1, "PROCESS_OK")}


def test_a_second_ctrl_c_leaves_at_once_and_the_next_command_says_it_resumes(
    scenario: Scenario, tmp_path: Path
) -> None:
    _slow_fleet(scenario, 4, 3.0)
    scenario.job("rollout", TWO_STEPS)
    process = _reconcile(scenario, tmp_path / "out.txt")
    _wait_for_line(scenario, "sent DEPLOY-V2 EXEC/stop/42")

    process.send_signal(signal.SIGINT)
    _wait_for_line(scenario, "stop requested")
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 130
    assert "interrupted again: leaving at once" in (tmp_path / "out.txt").read_text()
    # it did not wait for the replies in flight (they take 3 s): the execution is left RUNNING
    assert scenario.state("rollout").executions[1].status is ExecutionStatus.RUNNING

    scenario.job("other", "- {name: stop, definition: Bundle Stop, properties: {bundleId: 1}}")
    code, output = scenario.invoke("start", "other", *_flags(scenario))
    # Never taken over silently: the command says so, and drives it to its end: the stop
    # the first Ctrl-C recorded holds, and the replies in flight are recorded after all.
    assert f"resumed {scenario.scope}/rollout execution 1: left RUNNING" in output
    assert code == 0, output
    assert scenario.state("rollout").executions[1].status is ExecutionStatus.STOPPED
    statuses = sorted(scenario.statuses("rollout").values())
    assert statuses == [(0, "PROCESS_AWAITING")] * 2 + [(1, "PROCESS_AWAITING")] * 2

    code, output = scenario.invoke("start", "rollout", *_flags(scenario))  # as advised
    assert code == 0, output
    assert set(scenario.statuses("rollout").values()) == {(1, "PROCESS_OK")}


def test_stop_says_what_it_waits_for_and_ends_stopped_even_when_all_finished(
    scenario: Scenario,
) -> None:
    _slow_fleet(scenario, 2, 0.5)
    scenario.job("rollout", TWO_STEPS, run=None)
    with scenario.runner() as runner:
        summary = runner.start_job(scenario.scope, "rollout", runner.load())
        job = runner.engine.jobs[(scenario.scope, "rollout")]
        runner.engine.run_until(lambda: bool(job.out), 0.05)
        runner.stop_job(scenario.scope, "rollout", "stopped by the test")
        (ended,) = runner.wait([(scenario.scope, "rollout", summary.id)])

    assert ended.status is ExecutionStatus.STOPPED  # not TERMINATED: the user stopped it
    log = scenario.log("rollout", 1)
    assert (
        "stop requested (stopped by the test); nothing more is sent; 2 reply(ies) in flight" in log
    )


def test_stop_gives_up_waiting_after_drain_and_a_late_reply_is_still_recorded(
    scenario: Scenario,
) -> None:
    _slow_fleet(scenario, 1, 2.0)
    scenario.job("rollout", TWO_STEPS, run=None)
    with scenario.runner() as runner:
        summary = runner.start_job(scenario.scope, "rollout", runner.load())
        job = runner.engine.jobs[(scenario.scope, "rollout")]
        runner.engine.run_until(lambda: bool(job.out), 0.05)
        runner.stop_job(scenario.scope, "rollout", "stopped by the test", drain=0.3)
        (ended,) = runner.wait([(scenario.scope, "rollout", summary.id)])
        assert job.out, "ended after its drain, not after the reply (it takes 2 s)"
        assert ended.status is ExecutionStatus.STOPPED
        runner.engine.run_until(lambda: not job.out, 0.05)  # the reply comes after all

    assert scenario.statuses("rollout") == {"gw-0001": (1, "PROCESS_AWAITING")}
    assert "stop: 1 target(s) still await a reply (gw-0001)" in scenario.log("rollout", 1)


def test_stop_cancel_cancels_a_download_in_progress(scenario: Scenario) -> None:
    scenario.registry(2)
    fleet = scenario.fleet(2, timing=Timing(download_seconds=20.0, progress_steps=20))
    scenario.job(
        "rollout",
        """
        - name: install
          definition: Package Download / Install
          properties: {uri: "http://repo.example.com/a-1.0.dp", name: a, version: 1.0.0}
        """,
        run=None,
    )
    with scenario.runner() as runner:
        summary = runner.start_job(scenario.scope, "rollout", runner.load())
        job = runner.engine.jobs[(scenario.scope, "rollout")]
        runner.engine.run_until(
            lambda: all(t.status.value == "AWAITING_COMPLETION" for t in job.state.targets), 0.05
        )
        runner.stop_job(scenario.scope, "rollout", "stopped by the test", cancel=True)
        (ended,) = runner.wait([(scenario.scope, "rollout", summary.id)])

    assert ended.status is ExecutionStatus.STOPPED
    assert fleet.contacted("download-cancel") == {"gw-0001", "gw-0002"}
    assert set(scenario.statuses("rollout").values()) == {(0, "PROCESS_FAILED")}
    assert set(scenario.messages("rollout").values()) == {
        "download of a 1.0.0 was cancelled on the device"
    }
    log = scenario.log("rollout", 1)
    assert log.count("sent DEPLOY-V2 DEL/download (cancel)") == 2


def test_start_of_a_suspended_job_is_refused_saying_where(scenario: Scenario) -> None:
    scenario.registry(1)
    scenario.fleet(1)
    path = scenario.job("rollout", TWO_STEPS, run=None, extra="suspend: true\n")

    code, output = scenario.invoke(
        "start", "rollout", "--jobs-dir", str(scenario.jobs_dir), "--broker", scenario.broker.url
    )

    assert code == 1
    assert f"job {scenario.scope}/rollout is suspended ({path}:" in output
    assert "set it to false to start it" in output


def test_without_wait_the_exit_status_still_tells_failed_targets(scenario: Scenario) -> None:
    scenario.registry(2)
    scenario.fleet(2, FaultPlan(fail=(FailFault(Selector("gw-0002", "bundle-stop"), 400),)))
    scenario.job("rollout", TWO_STEPS)
    flags = ("--jobs-dir", str(scenario.jobs_dir), "--broker", scenario.broker.url)

    code, output = scenario.invoke("reconcile", *flags)
    assert code == 3, output

    scenario.job("rollout", TWO_STEPS, run="2")
    code, output = scenario.invoke("start", "rollout", *flags)
    assert code == 3, output
