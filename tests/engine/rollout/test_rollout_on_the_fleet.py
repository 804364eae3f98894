"""Rollouts against a real broker and the simulated fleet: what the devices themselves
received, and when, proves the order of the waves, the abort, the rate and the window."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import time
from datetime import datetime
from typing import Any

import pytest

from jobrunner.engine.service.runner import Runner
from jobrunner.simulator.faults import DelayFault, FailFault, FaultPlan, RateFault, Selector
from jobrunner.simulator.fleet import Fleet
from jobrunner.state.records import ExecutionStatus

from ..conftest import FakeClock, Scenario, Watch, ended, executions

pytestmark = pytest.mark.integration

STEPS = """\
- {name: stop, definition: Bundle Stop, timeout: 10s, properties: {bundleId: 42}}
- {name: start, definition: Bundle Start, timeout: 10s, properties: {bundleId: 42}}
"""
TAGS = {"gw-0001": "canary", "gw-0002": "canary", "gw-0003": "early", "gw-0004": "early"}
TAGGED = (("gw-000[1-2]", "canary"), ("gw-000[3-4]", "early"))
THREE_WAVES = """\
rollout:
  waves:
    - {name: canary, tags: [canary]}
    - {name: early, tags: [early]}
    - {name: rest}
"""


def devices(scenario: Scenario, count: int, zones: dict[str, str] | None = None) -> None:
    lines = []
    for n in range(1, count + 1):
        client = f"gw-{n:04d}"
        extra = f", tags: [{TAGS[client]}]" if client in TAGS else ""
        if zones and client in zones:
            extra += f", timezone: {zones[client]}"
        lines.append(f"  - {{clientId: {client}{extra}}}")
    scenario.write(
        "devices.yaml",
        f"apiVersion: jobrunner/v1\nkind: DeviceList\nmetadata: {{scope: {scenario.scope}}}\n"
        "devices:\n" + "\n".join(lines) + "\n",
    )


def first_and_last(fleet: Fleet, clients: set[str]) -> tuple[float, float]:
    moments = [r.at for r in fleet.requests() if r.device in clients]
    assert moments, f"no request reached {sorted(clients)}"
    return min(moments), max(moments)


def status(scenario: Scenario, name: str = "rollout") -> dict[str, Any]:
    code, output = scenario.invoke("status", name, "-o", "json")
    assert code == 0, output
    view: dict[str, Any] = json.loads(output)
    return view


def reconcile(scenario: Scenario) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        scenario.reconcile_command(max_in_flight=20),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_each_wave_starts_after_the_devices_of_the_one_before_were_done(
    scenario: Scenario,
) -> None:
    devices(scenario, 10)
    fleet = scenario.fleet(10)
    scenario.job("rollout", STEPS, extra=THREE_WAVES)

    finished = reconcile(scenario)

    assert finished.returncode == 0, finished.stderr
    canary = first_and_last(fleet, {"gw-0001", "gw-0002"})
    early = first_and_last(fleet, {"gw-0003", "gw-0004"})
    rest = first_and_last(fleet, {f"gw-{n:04d}" for n in range(5, 11)})
    assert canary[1] < early[0], "no request to 'early' before 'canary' passed"
    assert early[1] < rest[0], "no request to 'rest' before 'early' passed"
    view = status(scenario)
    assert [(w["name"], w["state"]) for w in view["rollout"]["waves"]] == [
        ("canary", "passed"),
        ("early", "passed"),
        ("rest", "passed"),
    ]
    _code, log = scenario.invoke("logs", "rollout")
    assert "rollout: wave 'canary': 2/2 PROCESS_OK = 100% >= 100%; passed" in log


def test_a_failing_canary_aborts_and_a_later_execution_goes_on_from_it(
    scenario: Scenario,
) -> None:
    devices(scenario, 8)
    bad = FaultPlan(fail_rate=(RateFault(1.0, "bundle-start", "tag:early"),))
    fleet = scenario.fleet(8, bad, tags=TAGGED)
    scenario.job("rollout", STEPS, extra=THREE_WAVES)

    aborted = reconcile(scenario)

    assert aborted.returncode == 3, aborted.stderr
    view = status(scenario)
    execution = view["executions"][-1]
    assert execution["status"] == "ABORTED"
    rest = {f"gw-{n:04d}" for n in range(5, 9)}
    assert not fleet.contacted() & rest, "the wave after the failed one was never contacted"
    assert view["rollout"]["state"] == "aborted"
    reason = view["rollout"]["reason"]
    # decided as soon as the wave cannot pass, or once all of it failed (both replies in
    # one turn: RabbitMQ delivers them so), by the same rule
    assert "wave 'early' cannot pass" in reason or "wave 'early': 0/2 PROCESS_OK" in reason
    targets = {t["clientId"]: t for t in view["targets"]}
    assert all(targets[c]["status"] == "PROCESS_AWAITING" for c in rest)
    assert all(targets[c]["stepIndex"] == 0 for c in rest)

    fleet.stop()
    healthy = scenario.fleet(8, tags=TAGGED)
    scenario.job("rollout", STEPS, extra=THREE_WAVES, run="2")
    resumed = reconcile(scenario)

    assert resumed.returncode == 0, resumed.stderr
    assert not healthy.contacted() & {"gw-0001", "gw-0002"}, "the passed canary is not rerun"
    assert healthy.contacted("bundle-start") >= {"gw-0003", "gw-0004"} | rest
    assert status(scenario)["rollout"]["state"] == "passed"


def test_an_abort_records_the_replies_in_flight(scenario: Scenario) -> None:
    devices(scenario, 6)
    plan = FaultPlan(
        fail=(FailFault(Selector("gw-0001", "bundle-stop"), 500),),
        slow=(DelayFault(Selector("gw-000[2-6]", "bundle-stop"), 1.0),),
    )
    fleet = scenario.fleet(6, plan)
    scenario.job(
        "rollout", STEPS, extra="rollout:\n  abort: {failureThreshold: 10%, minFinished: 1}\n"
    )

    finished = reconcile(scenario)

    assert finished.returncode == 3, finished.stderr
    view = status(scenario)
    assert view["executions"][-1]["status"] == "ABORTED"
    targets = {t["clientId"]: t for t in view["targets"]}
    for client in (f"gw-000{n}" for n in range(2, 7)):
        # its Bundle Stop was in flight at the abort: its reply was awaited and recorded
        assert (targets[client]["stepIndex"], targets[client]["status"]) == (1, "PROCESS_AWAITING")
    assert fleet.count(operation="bundle-start") == 0, "nothing new was sent"
    _code, log = scenario.invoke("logs", "rollout")
    assert "aborted: abort rule: 1/1 finished target(s) failed = 100% >= 10%" in log
    assert log.index("aborted: abort rule") < log.rindex("replied OK: bundle 42 stopped")


def test_max_per_minute_spreads_the_requests_the_devices_received(scenario: Scenario) -> None:
    devices(scenario, 5)
    fleet = scenario.fleet(5)
    scenario.job("rollout", STEPS, extra="rollout:\n  maxPerMinute: 120\n")

    finished = reconcile(scenario)

    assert finished.returncode == 0, finished.stderr
    firsts = sorted(
        min(r.at for r in fleet.requests(c)) for c in (f"gw-000{n}" for n in range(1, 6))
    )
    gaps = [b - a for a, b in itertools.pairwise(firsts)]
    assert all(gap >= 0.35 for gap in gaps), gaps  # 120 a minute: one every 0.5 s


def test_a_window_across_the_spring_forward_with_the_fleet(scenario: Scenario) -> None:
    """The engine's clock is set to March 2027 while the broker and the fleet run now."""
    devices(scenario, 3)
    fleet = scenario.fleet(3)
    scenario.job(
        "rollout",
        STEPS,
        extra='rollout:\n  window: {cron: "0 30 2 ? * *", duration: 1h, timezone: Europe/Rome}\n',
    )
    clock = FakeClock(datetime.fromisoformat("2027-03-27T02:40:00+00:00").timestamp())
    with Runner(scenario.config(), clock=clock) as runner:
        (ref,) = runner.apply(runner.plan(runner.load())).started
        turn(runner, clock, 30)
        clock.now = datetime.fromisoformat("2027-03-28T01:00:00+00:00").timestamp()
        turn(runner, clock, 30)
        assert fleet.requests() == [], "no window on the day 02:30 does not exist"
        assert (
            "opens 2027-03-29T02:30:00+02:00 (Europe/Rome)"
            in (status(scenario)["rollout"]["reason"])
        )
        opened = time.time()
        clock.now = datetime.fromisoformat("2027-03-29T00:30:00+00:00").timestamp()
        summary = runner.wait([ref], tick=lambda: setattr(clock, "now", clock.now + 0.05))
    assert summary[0].status is ExecutionStatus.TERMINATED
    assert min(r.at for r in fleet.requests()) >= opened


def test_retry_stops_after_max_attempts_on_a_deterministic_failure(scenario: Scenario) -> None:
    devices(scenario, 2)
    plan = FaultPlan(fail=(FailFault(Selector("gw-0001", "bundle-stop"), 500),))
    fleet = scenario.fleet(2, plan)
    for token in ("1", "2", "3", "4"):
        scenario.job("rollout", STEPS, run=token, extra="retry: {maxAttempts: 2}\n")
        assert reconcile(scenario).returncode == 3
    assert fleet.count("gw-0001", "bundle-stop") == 2
    target = next(t for t in status(scenario)["targets"] if t["clientId"] == "gw-0001")
    assert target["status"] == "PROCESS_FAILED"
    assert target["attempts"] == 2
    assert target["message"].startswith("gave up after 2 attempt(s)")


def test_start_target_runs_only_the_chosen_targets(scenario: Scenario) -> None:
    devices(scenario, 4)
    fleet = scenario.fleet(4)
    scenario.job("rollout", STEPS, run=None, extra=THREE_WAVES)
    scenario.reconcile()

    code, output = scenario.invoke(
        "start", "rollout", "--target", "gw-0004", "--broker", scenario.broker.url,
        "--jobs-dir", str(scenario.jobs_dir), "--client-id", f"runner-{scenario.scope}",
    )  # fmt: skip

    assert code == 0, output
    assert fleet.contacted() == {"gw-0004"}
    code, output = scenario.invoke(
        "start", "rollout", "--target", "gw-004", "--broker", scenario.broker.url,
        "--jobs-dir", str(scenario.jobs_dir), "--client-id", f"runner-{scenario.scope}",
    )  # fmt: skip
    assert code == 1
    assert "has no target 'gw-004' (did you mean 'gw-0004'?)" in output


def test_sigkill_during_a_soak_then_the_restart_goes_on_with_it(scenario: Scenario) -> None:
    devices(scenario, 4)
    fleet = scenario.fleet(4)
    scenario.job("rollout", STEPS, extra=THREE_WAVES + "  soak: 3s\n")
    record = scenario.state_dir / "scopes" / scenario.scope / "jobs" / "rollout" / "job.json"
    log = scenario.root / "killed.log"
    with log.open("wb") as output:
        process = subprocess.Popen(scenario.reconcile_command(), stdout=output, stderr=output)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and '"soaking"' not in _text(record):
        assert process.poll() is None, log.read_text()
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()

    finished = reconcile(scenario)

    assert finished.returncode == 0, finished.stderr
    canary = first_and_last(fleet, {"gw-0001", "gw-0002"})
    early = first_and_last(fleet, {"gw-0003", "gw-0004"})
    assert early[0] >= canary[1] + 3.0, "the soak went on after the restart"
    assert max(n for n in _sent_counts(fleet).values()) == 1, "nothing was sent twice"


def _text(path: Any) -> str:
    try:
        return str(path.read_text())
    except FileNotFoundError:
        return ""


def _sent_counts(fleet: Fleet) -> dict[tuple[str, str], int]:
    counts: dict[tuple[str, str], int] = {}
    for request in fleet.requests():
        key = (request.device, request.operation)
        counts[key] = counts.get(key, 0) + 1
    return counts


def turn(runner: Runner, clock: FakeClock, seconds: float) -> None:
    """Turn the engine for `seconds` of its clock, a second a turn (a few ms of real time)."""
    end = clock.now + seconds
    while clock.now < end:
        runner.engine.step(0.01)
        clock.now += 1.0


def test_device_connect_runs_respect_the_waves(scenario: Scenario) -> None:
    devices(scenario, 3)
    fleet = scenario.fleet(3)
    scenario.job(
        "on-connect",
        STEPS,
        run=None,
        extra="rollout:\n  waves:\n    - {name: canary, devices: [gw-0001]}\n    - {name: rest}\n"
        "schedules:\n  - {name: connect, type: device-connect}\n",
    )
    watch = Watch(scenario)
    try:
        watch.start()
        fleet.reboot("gw-0003", delay=0.1)  # in 'rest': the canary has not passed
        watch.wait_for(lambda: "device-connect of gw-0003" in watch.text(), "the refusal")
        assert "its wave 'rest' waits for wave 'canary' to pass" in watch.text()
        assert executions(scenario, "on-connect") == []

        fleet.reboot("gw-0001", delay=0.1)  # the canary runs, and passes
        watch.wait_for(ended(scenario, "on-connect", 1), "the canary's execution")
        fleet.reboot("gw-0003", delay=0.1)  # now its wave is the current one
        watch.wait_for(ended(scenario, "on-connect", 2), "the execution for gw-0003")
        assert fleet.contacted("bundle-stop") == {"gw-0001", "gw-0003"}
        assert watch.terminate() == 0
    finally:
        if watch.process is not None and watch.process.poll() is None:
            watch.process.kill()
