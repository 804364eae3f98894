"""`jobrunner watch` as a real process: changes, schedules, device connects, SIGTERM."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from jobrunner.cli.main import cli
from jobrunner.engine.service import handoff
from jobrunner.simulator.broker import RunningBroker, free_port
from jobrunner.simulator.faults import DelayFault, FailFault, FaultPlan, Selector

from ..conftest import Scenario, Watch, ended, executions

pytestmark = pytest.mark.integration

STEP = "- {name: stop, definition: Bundle Stop, timeout: 5s, properties: {bundleId: 42}}"


def test_new_file_and_new_run_token_start_executions(scenario: Scenario, watch: Watch) -> None:
    scenario.registry(2)
    # gw-0002 fails: a new token has a target to run again (none would be nothing to do)
    scenario.fleet(2, FaultPlan(fail=(FailFault(Selector("gw-0002", "bundle-stop"), 500),)))
    watch.start()

    scenario.job("rollout", STEP, run="1")
    watch.wait_for(ended(scenario, "rollout", 1), "execution 1")
    scenario.job("rollout", STEP, run="2")
    watch.wait_for(ended(scenario, "rollout", 2), "execution 2")

    assert [(i, s) for i, s, _ in executions(scenario, "rollout")] == [
        (1, "TERMINATED"),
        (2, "TERMINATED"),
    ]
    assert "started" in watch.text() and "new run token" in watch.text()
    assert watch.terminate() == 0


def test_a_broken_file_marks_only_its_own_job(scenario: Scenario, watch: Watch) -> None:
    scenario.registry(1)
    scenario.fleet(1)
    watch.start()
    broken = scenario.job("broken", STEP.replace("42", "forty-two"))
    scenario.job("fine", STEP)

    watch.wait_for(ended(scenario, "fine", 1), "the fine job")
    watch.wait_for(lambda: "invalid" in watch.text() or "manifest:" in watch.text(), "an error")
    assert f"{broken}:" in watch.text()
    assert executions(scenario, "broken") == []
    assert watch.terminate() == 0


def test_device_connect_runs_the_job_for_that_target_only_and_never_again(
    scenario: Scenario, watch: Watch
) -> None:
    scenario.registry(3)
    fleet = scenario.fleet(3)
    scenario.job(
        "on-connect",
        STEP,
        run=None,
        extra="schedules:\n  - {name: connect, type: device-connect}\n",
    )
    watch.start()

    fleet.reboot("gw-0002", delay=0.1)
    watch.wait_for(ended(scenario, "on-connect", 1), "the device-connect execution")
    assert executions(scenario, "on-connect")[0][2] == "device-connect (gw-0002)"
    assert fleet.contacted("bundle-stop") == {"gw-0002"}
    assert scenario.statuses("on-connect")["gw-0002"] == (0, "PROCESS_OK")

    fleet.reboot("gw-0002", delay=0.1)
    fleet.reboot("gw-0003", delay=0.1)
    watch.wait_for(ended(scenario, "on-connect", 2), "the second device's execution")
    time.sleep(1.0)  # a wrong second run for gw-0002 would have started by now
    runs = executions(scenario, "on-connect")
    assert [trigger for _, _, trigger in runs] == [
        "device-connect (gw-0002)",
        "device-connect (gw-0003)",
    ]
    assert fleet.count("gw-0002", "bundle-stop") == 1
    assert watch.terminate() == 0


def test_a_job_that_waits_for_a_target_starts_when_a_device_connects(
    scenario: Scenario, watch: Watch
) -> None:
    scenario.job("first-light", STEP)  # every device, and no device is known yet
    watch.start()
    watch.wait_for(lambda: "waits for a target" in watch.text(), "the job waiting")

    scenario.fleet(1)  # no file changes: the BIRTH alone must start it
    watch.wait_for(ended(scenario, "first-light", 1), "the execution the connect started")
    assert scenario.statuses("first-light") == {"gw-0001": (0, "PROCESS_OK")}
    assert "gw-0001 connected" in watch.text()
    assert watch.terminate() == 0


def test_a_device_connect_job_takes_a_device_no_plan_knew_of(
    scenario: Scenario, watch: Watch
) -> None:
    scenario.job(
        "on-connect",
        STEP,
        run=None,
        extra="schedules:\n  - {name: connect, type: device-connect}\n",
    )
    watch.start()
    watch.wait_for(lambda: "reconciled" in watch.text(), "the first reconcile")

    fleet = scenario.fleet(1)
    watch.wait_for(ended(scenario, "on-connect", 1), "the device-connect execution")
    assert executions(scenario, "on-connect")[0][2] == "device-connect (gw-0001)"
    assert fleet.count("gw-0001", "bundle-stop") == 1
    assert watch.terminate() == 0


def test_a_cron_schedule_fires_on_time_and_a_fire_during_a_run_is_skipped(
    scenario: Scenario, watch: Watch
) -> None:
    scenario.registry(2)

    scenario.fleet(2, FaultPlan(slow=(DelayFault(Selector("*", "bundle-stop"), 2.5),)))
    scenario.job(
        "every-2s",
        STEP,
        run=None,
        extra='schedules:\n  - {name: tick, type: cron, cron: "*/2 * * * * ?"}\n',
    )
    watch.start()

    watch.wait_for(ended(scenario, "every-2s", 1), "a scheduled execution", timeout=30)
    watch.wait_for(lambda: "skipped schedule tick" in watch.text(), "a skipped fire")
    assert executions(scenario, "every-2s")[0][2] == "schedule (tick)"
    assert watch.terminate() == 0


def test_start_and_stop_are_handed_to_the_daemon(scenario: Scenario, watch: Watch) -> None:
    scenario.registry(1)
    scenario.fleet(1)
    scenario.job("rollout", STEP, run=None)
    watch.start()

    result = CliRunner().invoke(
        cli,
        [
            "start",
            f"{scenario.scope}/rollout",
            "--wait",
            "--jobs-dir",
            str(scenario.jobs_dir),
            "--state-dir",
            str(scenario.state_dir),
            "--broker",
            scenario.broker.url,
        ],
    )

    assert result.exit_code == 0, result.output
    assert "by the watch daemon" in result.output
    assert executions(scenario, "rollout") == [(1, "TERMINATED", "manual")]
    code, output = scenario.invoke("status")
    assert code == 0 and "owned by the watch daemon, watch (pid" in output
    code, output = scenario.invoke("status", "rollout", "-o", "json")
    assert json.loads(output)["owner"] == f"watch-{scenario.scope}"
    assert watch.terminate() == 0


def test_sigterm_exits_0_quickly_and_a_restart_resumes(
    scenario: Scenario, watch: Watch, tmp_path: Path
) -> None:
    scenario.registry(4)

    scenario.fleet(4, FaultPlan(slow=(DelayFault(Selector("*", "bundle-start"), 3.0),)))
    scenario.job(
        "rollout",
        STEP
        + "\n- {name: start, definition: Bundle Start, timeout: 5s, properties: {bundleId: 42}}",
    )
    watch.start("--drain", "0.5")
    log = scenario.state_dir / "scopes" / scenario.scope / "jobs" / "rollout" / "executions"
    watch.wait_for(
        lambda: (
            (log / "000001" / "log.txt").exists()
            and "sent DEPLOY-V2 EXEC/start/42" in scenario.log("rollout", 1)
        ),
        "a second step",
    )

    assert watch.terminate() == 0
    # the replies take 3 s: it left after its drain, not after them
    assert "waiting up to 0.5s for" in watch.text() and "not received" in watch.text()
    assert executions(scenario, "rollout")[0][1] == "RUNNING"  # a restart is not a stop

    watch.start()
    watch.wait_for(ended(scenario, "rollout", 1), "the resumed execution")
    assert "resumed" in watch.text()
    assert {s for _, s in scenario.statuses("rollout").values()} <= {"PROCESS_OK", "PROCESS_FAILED"}
    assert watch.terminate() == 0


HANGING_CLOSE = (
    "import sys, threading\n"
    "from jobrunner.device import connection\n"
    "connection.Session.stop = lambda self: threading.Event().wait()  # a wait without end\n"
    "from jobrunner.cli.main import main\n"
    "main(sys.argv[1:])\n"
)
"""jobrunner, whose MQTT session never stops: any wait without a limit while letting go."""


def test_a_second_sigterm_leaves_at_once_whatever_the_closing_waits_on(
    scenario: Scenario,
) -> None:
    scenario.registry(1)
    scenario.fleet(1)
    scenario.job("rollout", STEP)
    watch = Watch(scenario, launcher=("-c", HANGING_CLOSE)).start()
    watch.wait_for(ended(scenario, "rollout", 1), "the execution")
    assert watch.process is not None

    try:
        watch.process.send_signal(signal.SIGTERM)
        watch.wait_for(lambda: "stopped:" in watch.text(), "the drain to end")
        watch.process.send_signal(signal.SIGTERM)  # the closing hangs: this one must end it
        code = watch.process.wait(timeout=60)
    finally:
        if watch.process.poll() is None:
            watch.process.kill()
            watch.process.wait()

    assert code == 128 + signal.SIGTERM
    assert "received SIGTERM again: leaving at once" in watch.text()
    assert "Traceback" not in watch.text()


def test_a_broker_that_is_down_at_start_is_waited_for(
    scenario: Scenario, watch: Watch, own_broker: RunningBroker
) -> None:
    scenario.broker = own_broker
    scenario.registry(2)
    scenario.job("rollout", STEP, run="1")
    own_broker.stop()

    watch.start()  # reconciles at once: the jobs are recorded while the broker is away
    watch.wait_for(lambda: "cannot reach the broker" in watch.text(), "a failed attempt")
    watch.wait_for(lambda: "(attempt 2)" in watch.text(), "a second attempt")
    assert "Connection refused" in watch.text()
    assert executions(scenario, "rollout") == [(1, "RUNNING", "run (1)")]

    own_broker.start()
    scenario.fleet(2)
    watch.wait_for(ended(scenario, "rollout", 1), "the execution, once the broker is up")
    assert scenario.statuses("rollout") == {
        "gw-0001": (0, "PROCESS_OK"),
        "gw-0002": (0, "PROCESS_OK"),
    }
    assert watch.terminate() == 0


def test_after_a_broker_restart_device_connect_runs_for_the_devices_that_came_back(
    scenario: Scenario, watch: Watch, own_broker: RunningBroker
) -> None:
    scenario.broker = own_broker
    scenario.registry(2)
    fleet = scenario.fleet(2)
    scenario.job(
        "on-connect",
        STEP,
        run=None,
        extra="schedules:\n  - {name: connect, type: device-connect}\n",
    )
    watch.start()
    watch.wait_for(lambda: "reconciled" in watch.text(), "the first reconcile")

    own_broker.stop()  # every device and the runner lose it; a restart forgets sessions
    watch.wait_for(lambda: "lost" in watch.text(), "the runner noticing")
    own_broker.start()
    # Whether a device's BIRTH comes before the runner subscribed again (missed: the runner
    # asks) or after (heard), each device that came back gets its device-connect run.
    both = {"gw-0001": (0, "PROCESS_OK"), "gw-0002": (0, "PROCESS_OK")}
    watch.wait_for(lambda: scenario.statuses("on-connect") == both, "both device-connect runs")
    assert all(t.startswith("device-connect") for _, _, t in executions(scenario, "on-connect"))
    assert "the broker kept no session for the runner" in watch.text()
    assert fleet.count("gw-0001", "bundle-stop") == 1
    assert fleet.count("gw-0002", "bundle-stop") == 1
    assert watch.terminate() == 0


def test_sigterm_records_the_replies_in_flight_before_exiting(
    scenario: Scenario, watch: Watch
) -> None:
    scenario.registry(3)
    scenario.fleet(3, FaultPlan(slow=(DelayFault(Selector("*", "bundle-stop"), 1.5),)))
    scenario.job(
        "rollout",
        STEP
        + "\n- {name: start, definition: Bundle Start, timeout: 5s, properties: {bundleId: 42}}",
    )
    watch.start()
    watch.wait_for(lambda: "sent DEPLOY-V2 EXEC/stop/42" in scenario.log("rollout", 1), "sends")

    assert watch.terminate() == 0

    # Each reply in flight was recorded; nothing new was sent after the signal.
    assert scenario.statuses("rollout") == {
        f"gw-000{n}": (1, "PROCESS_AWAITING") for n in (1, 2, 3)
    }
    log = scenario.log("rollout", 1)
    assert log.count("replied OK") == 3 and "EXEC/start/42" not in log
    assert "every reply in flight was recorded" in watch.text()

    watch.start()
    watch.wait_for(ended(scenario, "rollout", 1), "the resumed execution")
    assert set(scenario.statuses("rollout").values()) == {(1, "PROCESS_OK")}
    assert "runner restarted before the reply" not in scenario.log("rollout", 1)
    assert watch.terminate() == 0


def test_stop_of_an_unknown_job_answers_at_once_with_close_names(
    scenario: Scenario, watch: Watch, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario.registry(1)
    scenario.fleet(1)
    scenario.job("rollout", STEP, run=None)
    watch.start()

    handed: list[object] = []
    monkeypatch.setattr(handoff, "submit", lambda *args, **kwargs: handed.append(args))
    result = CliRunner().invoke(
        cli, ["stop", "rollot", "--state-dir", str(scenario.state_dir), "--scope", scenario.scope]
    )

    assert handed == [], "answered by the command itself: no wait on the daemon"
    assert result.exit_code == 1
    where = f"state directory {scenario.state_dir}"
    assert f"no job rollot in {where}; did you mean {scenario.scope}/rollout?" in result.output
    assert watch.terminate() == 0


def test_a_fire_with_every_target_done_records_no_execution_and_is_counted(
    scenario: Scenario, watch: Watch
) -> None:
    scenario.registry(2)
    scenario.fleet(2)
    scenario.job(
        "every-1s",
        STEP,
        run=None,
        extra='schedules:\n  - {name: tick, type: cron, cron: "* * * * * ?"}\n',
    )
    port = free_port()
    watch.start("--http", f"127.0.0.1:{port}")

    watch.wait_for(ended(scenario, "every-1s", 1), "the first scheduled execution", timeout=30)
    watch.wait_for(
        lambda: watch.text().count("schedule tick of") >= 2, "two fires with nothing to do"
    )

    assert "nothing to do: every target of job" in watch.text()
    assert [e[0] for e in executions(scenario, "every-1s")] == [1]
    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    fires = {
        s.labels["result"]: s.value
        for family in text_string_to_metric_families(metrics)
        if family.name == "jobrunner_schedule_fires"
        for s in family.samples
        if s.name == "jobrunner_schedule_fires_total" and s.labels["job"] == "every-1s"
    }
    assert fires["started"] == 1 and fires["nothing-to-do"] >= 2, fires
    assert watch.terminate() == 0
