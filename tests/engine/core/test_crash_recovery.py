"""A runner killed with SIGKILL at any moment, and restarted, finishes every target truthfully.

The runner runs as a real subprocess (`python -m jobrunner reconcile --wait`); the test kills
it in the middle of synchronous and of asynchronous steps, starts it again, and checks that
every target ended, and that no device received any operation twice.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable

import pytest

from jobrunner.simulator.config import Timing
from jobrunner.simulator.faults import DelayFault, FailFault, FaultPlan, Selector
from jobrunner.simulator.state import DeviceState

from ..conftest import FAST, Scenario, never_twice

pytestmark = pytest.mark.integration


def _kill_when(
    scenario: Scenario,
    job: str,
    marker: str,
    times: int,
    window: int = 4,
    done: Callable[[str], bool] | None = None,
) -> None:
    """Start the runner; SIGKILL it once `marker` appears `times` times in the journal (or
    once `done(journal text)` is true)."""
    journal = scenario.state_dir / "scopes" / scenario.scope / "jobs" / job / "targets.journal"
    log = scenario.root / "killed-runner.log"
    ready = done or (lambda text: text.count(marker) >= times)
    with log.open("wb") as output:
        process = subprocess.Popen(scenario.reconcile_command(window), stdout=output, stderr=output)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if journal.exists() and ready(journal.read_text()):
            break
        if process.poll() is not None:
            raise AssertionError(f"the runner ended before the kill: {log.read_text()}")
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


def _all_awaiting(count: int) -> Callable[[str], bool]:
    """Whether `count` targets stand AWAITING_COMPLETION in a journal's text (last line wins)."""

    def done(text: str) -> bool:
        last: dict[str, str] = {}
        for line in text.splitlines()[1:]:
            with contextlib.suppress(ValueError):  # a line being written
                record = json.loads(line)
                last[record["t"]] = record["s"]
        return sum(status == "AWAITING_COMPLETION" for status in last.values()) >= count

    return done


def _finish(scenario: Scenario, window: int = 4) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        scenario.reconcile_command(window), capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip


def test_sigkill_during_synchronous_steps_then_restart(scenario: Scenario) -> None:
    scenario.registry(20)
    slow = FaultPlan(slow=(DelayFault(Selector("*", "*"), 0.15),))
    fleet = scenario.fleet(20, slow)
    scenario.job(
        "rollout",
        """
        - {name: check, definition: Command Execution, timeout: 3s, properties: {command: echo}}
        - {name: stop, definition: Bundle Stop, timeout: 3s, properties: {bundleId: 42}}
        - {name: start, definition: Bundle Start, timeout: 3s, properties: {bundleId: 42}}
        """,
    )

    _kill_when(scenario, "rollout", '"s":"PROCESS_AWAITING","e":1,"r":', 14)
    finished = _finish(scenario)

    assert finished.returncode in (0, 3), finished.stderr
    assert "resumed" in finished.stdout
    statuses = scenario.statuses("rollout")
    messages = scenario.messages("rollout")
    assert len(statuses) == 20
    for client_id, (step, status) in statuses.items():
        assert (step, status) == (2, "PROCESS_OK") or (
            status == "PROCESS_FAILED"
            and messages[client_id] == "runner restarted before the reply"
        ), (client_id, step, status, messages[client_id])
    never_twice(fleet)
    assert "runner restarted while this request awaited its reply" in scenario.log("rollout", 1)


@pytest.mark.parametrize("window", [4, 1], ids=["window-4", "window-1"])
def test_sigkill_while_awaiting_completion_recovers_what_was_missed(
    scenario: Scenario, window: int
) -> None:
    """With a window of one request, a target's three status queries go out one by one."""
    scenario.registry(6)
    fleet = scenario.fleet(
        6, timing=Timing(download_seconds=1.5, install_seconds=0.1, progress_steps=2)
    )
    scenario.job(
        "package",
        """
        - name: install
          definition: Package Download / Install
          timeout: 3s
          completionTimeout: 15s
          properties: {uri: "http://repo.example.com/a-1.0.dp", name: a, version: 1.0.0}
        - {name: start, definition: Bundle Start, properties: {bundleId: 42}}
        """,
    )

    # Every download accepted (a transition line per progress too, so the lines are not
    # counted): a request recorded and not yet published at the kill would fail, truthfully.
    _kill_when(scenario, "package", "", 0, window, done=_all_awaiting(6))
    time.sleep(2.0)  # the downloads complete while no runner listens: notifications are lost
    finished = _finish(scenario, window)

    log = scenario.log("package", 1)
    assert finished.returncode == 0, finished.stdout + finished.stderr + log
    assert set(scenario.statuses("package").values()) == {(1, "PROCESS_OK")}
    assert "asked the device where the operation stands" in log
    never_twice(fleet)
    assert fleet.count(operation="download-status") >= 6


def test_a_kill_right_after_start_leaves_nothing_half_done(scenario: Scenario) -> None:
    scenario.registry(8)
    fleet = scenario.fleet(8, timing=FAST)
    scenario.job(
        "rollout",
        "- {name: stop, definition: Bundle Stop, timeout: 3s, properties: {bundleId: 42}}",
    )

    _kill_when(scenario, "rollout", '"s":"PROCESS_AWAITING"', 1)
    finished = _finish(scenario)

    assert finished.returncode in (0, 3), finished.stderr
    assert {s for _, s in scenario.statuses("rollout").values()} <= {"PROCESS_OK", "PROCESS_FAILED"}
    never_twice(fleet)


CLOCK = "org.eclipse.kura.clock.ClockService"
GUARDED_PUT = f"""\
- name: ntp
  definition: Configuration Put
  rollback: onFailure
  timeout: 3s
  properties:
    configurations:
      - {{pid: {CLOCK}, properties: {{clock.ntp.host: 10.7.7.7}}}}
"""
"""A put that takes a snapshot first: a later failure of its target rolls it back."""


def _holds(state: DeviceState, pid: str, host: str) -> bool:
    return state.setting(pid, "clock.ntp.host") == host


def _between_snapshot_and_put(text: str) -> set[str]:
    """The targets whose snapshot is recorded and whose put is not (their last line: a
    snapshot id, no request out, no stage)."""
    last: dict[str, dict[str, object]] = {}
    for line in text.splitlines()[1:]:
        with contextlib.suppress(ValueError):  # a line being written
            record = json.loads(line)
            last[record["t"]] = record
    return {t for t, r in last.items() if "k" in r and "r" not in r and "g" not in r}


def test_sigkill_between_the_snapshot_and_the_put_sends_the_put_once_after_restart(
    scenario: Scenario,
) -> None:
    """The snapshot's id is recorded before the put goes: a target the kill caught between
    the two gets its put after the restart, without a second snapshot. A target whose put
    was in flight and whose reply the kill lost fails as any such request does, and is
    rolled back to its snapshot. No device gets the put twice."""
    scenario.registry(16)
    # Slow puts and a window of 2: snapshots answered while the window is full wait, recorded.
    slow = FaultPlan(slow=(DelayFault(Selector("*", "configuration"), 0.3),))
    fleet = scenario.fleet(16, slow)
    clock = CLOCK
    scenario.job("guarded", GUARDED_PUT)
    caught: set[str] = set()

    def between(text: str) -> bool:
        caught.update(_between_snapshot_and_put(text))
        return bool(caught)

    _kill_when(scenario, "guarded", "", 0, window=2, done=between)
    killed_with = _between_snapshot_and_put(
        (
            scenario.state_dir / "scopes" / scenario.scope / "jobs/guarded/targets.journal"
        ).read_text()
    )
    finished = _finish(scenario, window=2)

    assert finished.returncode in (0, 3), finished.stdout + finished.stderr
    assert killed_with, "the kill caught a target between its snapshot and its put"
    sent = Counter((r.device, r.operation) for r in fleet.requests())
    targets = {t.client_id: t for t in scenario.state("guarded").targets}
    for client_id in killed_with:
        target = targets[client_id]
        assert (target.status.value, target.snapshot is not None) == ("PROCESS_OK", True)
        assert sent[(client_id, "snapshot")] == 1, "no second snapshot"
    for client_id, target in targets.items():
        assert sent[(client_id, "configuration")] == 1, client_id  # never twice
        assert sent[(client_id, "snapshot")] in (1, 2)  # a lost snapshot reply: asked again
        device = fleet.device(client_id)
        if target.status.value == "PROCESS_OK":
            assert fleet.wait_for(functools.partial(_holds, device.state, clock, "10.7.7.7"))
        else:  # its put's reply lost with the kill: failed, and rolled back
            assert target.message is not None
            assert "runner restarted before the reply" in target.message
            assert "rolled back to snapshot" in target.message, target.message
            assert device.state.setting(clock, "clock.ntp.host") == "0.pool.ntp.org"


def test_sigkill_after_a_rollback_was_sent_reads_it_back_and_never_sends_it_twice(
    scenario: Scenario,
) -> None:
    """A rollback is recorded `sent` before it leaves: the runner killed once the device has
    it takes it up after its restart by reading back what it restored, and sends no second
    rollback."""
    scenario.registry(1)
    faults = FaultPlan(
        fail=(FailFault(Selector("gw-0001", "command"), 500),),
        slow=(DelayFault(Selector("*", "rollback"), 0.5),),
    )
    fleet = scenario.fleet(1, faults)
    clock = CLOCK
    scenario.job(
        "guarded",
        GUARDED_PUT + "- {name: check, definition: Command Execution, timeout: 3s,"
        " properties: {command: echo}}\n",
    )

    _kill_when(
        scenario, "guarded", "", 0, done=lambda _: bool(fleet.requests(operation="rollback"))
    )
    finished = _finish(scenario)

    assert finished.returncode == 3, finished.stdout + finished.stderr  # a target failed
    assert scenario.statuses("guarded") == {"gw-0001": (1, "PROCESS_FAILED")}
    assert len(fleet.requests("gw-0001", "rollback")) == 1
    assert fleet.device("gw-0001").state.setting(clock, "clock.ntp.host") == "0.pool.ntp.org"
    message = scenario.messages("guarded")["gw-0001"] or ""
    assert "rolled back to snapshot" in message, message
