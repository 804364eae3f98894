"""Two `watch` processes on one state database and one broker share the jobs: when the owner
dies (SIGKILL) in the middle of an execution, the other finishes it, and no device receives
any operation twice; an owner paused past its lease (SIGSTOP) sends nothing more when it is
let go on again (SIGCONT). Real processes, a real PostgreSQL, real MQTT, the simulated fleet.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from click.testing import CliRunner

from jobrunner.cli.main import cli
from jobrunner.simulator.broker import RunningBroker, free_port
from jobrunner.simulator.config import Timing
from jobrunner.simulator.faults import DelayFault, DropFault, FailFault, FaultPlan, Selector
from jobrunner.state.history import History
from jobrunner.state.jobstore import JobState
from jobrunner.state.layout import StateDir
from jobrunner.state.records import ExecutionStatus, JobRecord, Trigger, TriggerKind
from jobrunner.state.stores import database
from jobrunner.state.stores.postgres import ROOT, PostgresStorage
from jobrunner.state.targets import RollbackState

from ..conftest import Scenario, never_twice

pytestmark = pytest.mark.integration

LEASE = 3.0
STEPS = """
- {name: check, definition: Command Execution, timeout: 4s, properties: {command: echo}}
- {name: stop, definition: Bundle Stop, timeout: 4s, properties: {bundleId: 42}}
- {name: start, definition: Bundle Start, timeout: 4s, properties: {bundleId: 42}}
"""


class Runners:
    """The `watch` processes of one test, on its scenario and database."""

    def __init__(self, scenario: Scenario, state_db: str) -> None:
        self.scenario = scenario
        self.state_db = state_db
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.state = StateDir(ROOT, PostgresStorage(state_db))

    def client_id(self, name: str) -> str:
        return f"{name}-{self.scenario.scope}"

    def start(self, name: str, *extra: str) -> subprocess.Popen[bytes]:
        s = self.scenario
        command = [
            sys.executable, "-m", "jobrunner", "watch",
            "--jobs-dir", str(s.jobs_dir), "--state-db", self.state_db,
            "--broker", s.broker.url, "--scope", s.scope, "--client-id", self.client_id(name),
            "--lease", str(LEASE), "--max-in-flight", "2", *extra,
        ]  # fmt: skip
        with self.log_path(name).open("wb") as output:
            process = subprocess.Popen(command, stdout=output, stderr=output)
        self.processes[name] = process
        return process

    def log_path(self, name: str) -> Path:
        return self.scenario.root / f"{name}.log"

    def log(self, name: str) -> str:
        return self.log_path(name).read_text(errors="replace")

    def owner(self, job: str | None) -> str | None:
        """Who holds the job's lease now (`None` for the job: any job of the scope)."""
        query = "SELECT owner FROM jobrunner_leases WHERE scope = %s AND expires_at >= now()"
        given: tuple[str, ...] = (self.scenario.scope,)
        if job is not None:
            query, given = query + " AND job = %s", (*given, job)
        with psycopg.connect(self.state_db) as connection:
            row = connection.execute(query, given).fetchone()
        return None if row is None else str(row[0])

    def alive(self) -> set[str]:
        with psycopg.connect(self.state_db) as connection:
            rows = connection.execute(
                "SELECT client_id FROM jobrunner_runners WHERE seen_at >= now() - interval '5s'"
            ).fetchall()
        return {str(row[0]) for row in rows}

    def job(self, name: str) -> JobState | None:
        if not JobState.exists(self.state, self.scenario.scope, name):
            return None
        return JobState.load(self.state, self.scenario.scope, name)

    def sent(self, name: str) -> int:
        """How many requests the job's targets have recorded (each before it was sent)."""
        try:
            data = self.state.storage.read(self.state.job(self.scenario.scope, name).targets)
        except FileNotFoundError:
            return 0
        return data.count(b'"r":')

    def wait(self, what: str, done: Callable[[], bool], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            for name, process in self.processes.items():
                if process.poll() is not None and process.returncode not in (0, -9, -19):
                    raise AssertionError(f"{name} ended: {self.log(name)}")
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {n}\n{self.log(n)[-3000:]}" for n in self.processes)
                raise AssertionError(f"{what} did not happen within {timeout:g}s\n{logs}")
            time.sleep(0.05)

    def both_then(self, declare: Callable[[], object]) -> tuple[str, str]:
        """Start runners a and b, and once both are alive and subscribed, `declare` the job:
        its execution runs while both are there, however slow the machine is to start them.
        (owner, the other) of the job, by name."""
        for name in ("a", "b"):
            self.start(name)
        both = {self.client_id("a"), self.client_id("b")}
        self.wait("both runners alive", lambda: both <= self.alive())
        self.wait(
            "both runners subscribed",
            lambda: all("connected to" in self.log(n) for n in ("a", "b")),
        )
        declare()
        owners = {self.client_id(n): n for n in ("a", "b")}
        self.wait("a runner owning the job", lambda: self.owner(None) in owners)
        owner = owners[str(self.owner(None))]
        return owner, "b" if owner == "a" else "a"

    def ended(self, name: str) -> bool:
        job = self.job(name)
        return job is not None and any(
            e.status is not ExecutionStatus.RUNNING for e in job.executions.values()
        )

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.kill(process.pid, signal.SIGCONT)
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        self.state.storage.close()


@contextmanager
def runners(scenario: Scenario, state_db: str) -> Iterator[Runners]:
    made = Runners(scenario, state_db)
    try:
        yield made
    finally:
        made.stop_all()


def test_the_other_runner_finishes_an_execution_whose_owner_was_killed(
    scenario: Scenario, state_db: str
) -> None:
    scenario.registry(10)
    fleet = scenario.fleet(10, FaultPlan(slow=(DelayFault(Selector("*", "*"), 0.25),)))

    with runners(scenario, state_db) as two:
        owner, other = two.both_then(lambda: scenario.job("rollout", STEPS))
        two.wait("requests of the first steps", lambda: two.sent("rollout") >= 8)
        killed = two.processes[owner]
        os.kill(killed.pid, signal.SIGKILL)  # in the middle of the execution
        killed.wait()
        two.wait(
            f"runner {other} owning the job",
            lambda: two.owner("rollout") == two.client_id(other),
        )
        two.wait("the end of the execution", lambda: two.ended("rollout"), timeout=90)
        job = two.job("rollout")
        assert job is not None
        log_b = two.log(other)
        log_1 = two.state.storage.read(job.paths.log(1)).decode()

    assert "took over" in log_b and "resumed" in log_b, log_b
    # how soon it took over is bench.several's (failover time): a busy machine is slower
    assert job.executions[1].status is ExecutionStatus.TERMINATED
    finished = {t.client_id: t for t in job.targets}
    assert len(finished) == 10
    # The replies to the requests in flight at the kill came while the job had no owner:
    # runner b heard them (the runners share a requester) and recorded them once it took over.
    for client_id, target in finished.items():
        assert (target.step_index, target.status.value) == (2, "PROCESS_OK"), (client_id, target)
    sent = never_twice(fleet)
    for client_id in finished:  # every operation of every target, exactly once
        assert sum(n for (device, _), n in sent.items() if device == client_id) == 3
    assert "runner restarted while this request awaited its reply" in log_1


def test_a_paused_owner_sends_nothing_more_once_it_runs_again(
    scenario: Scenario, state_db: str
) -> None:
    scenario.registry(4)
    # Each reply takes a second: the execution (3 steps, 2 requests at once) runs for several.
    fleet = scenario.fleet(4, FaultPlan(slow=(DelayFault(Selector("*", "*"), 1.0),)))

    with runners(scenario, state_db) as two:
        owner, other = two.both_then(lambda: scenario.job("rollout", STEPS))
        paused = two.processes[owner]
        two.wait("requests of the first steps", lambda: two.sent("rollout") >= 2)
        os.kill(paused.pid, signal.SIGSTOP)  # paused (a VM frozen, a long GC) past its lease
        two.wait(
            f"runner {other} owning the job",
            lambda: two.owner("rollout") == two.client_id(other),
        )
        two.wait("the end of the execution", lambda: two.ended("rollout"), timeout=60)
        before = fleet.count()
        os.kill(paused.pid, signal.SIGCONT)
        two.wait(
            f"runner {owner} letting the job go", lambda: "let go" in two.log(owner), timeout=20
        )
        time.sleep(LEASE)  # what it would still send, it sends by now
        after = fleet.count()
        assert paused.poll() is None, two.log(owner)  # it goes on, with the jobs it may own

    assert after == before, fleet.requests()[-(after - before) :]
    never_twice(fleet)


def connections_opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The connections to a state database opened from now on in this process."""
    opened: list[str] = []
    real = database.connect

    def counting(conninfo: str) -> Any:
        opened.append(conninfo)
        return real(conninfo)

    monkeypatch.setattr(database, "connect", counting)
    return opened


def test_the_commands_work_from_any_machine_through_the_database(
    scenario: Scenario, state_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario.registry(3)
    scenario.fleet(3, FaultPlan(slow=(DelayFault(Selector("*", "*"), 0.4),)))
    scenario.job("rollout", STEPS, run=None)  # started by hand only
    on_db = ["--state-db", state_db, "--scope", scenario.scope]
    elsewhere = scenario.root / "elsewhere"  # no state directory here: only the database
    elsewhere.mkdir()

    with runners(scenario, state_db) as one:
        one.start("a")
        one.wait("runner a owning the job", lambda: one.owner("rollout") == one.client_id("a"))
        cwd = Path.cwd()
        os.chdir(elsewhere)
        try:
            opened = connections_opened(monkeypatch)
            started = CliRunner().invoke(
                cli, ["start", "rollout", "--jobs-dir", str(scenario.jobs_dir), *on_db]
            )
            assert started.exit_code == 0, started.output
            assert len(opened) == 1, "a command opens one connection and passes the state down"
            assert "execution 1 (by the watch daemon)" in started.output
            one.wait("a request sent", lambda: one.sent("rollout") >= 1)
            stopped = CliRunner().invoke(cli, ["stop", "rollout", "--drain", "0", *on_db])
            assert stopped.exit_code == 0, stopped.output
            status = CliRunner().invoke(cli, ["status", "rollout", "-o", "json", *on_db])
            logs = CliRunner().invoke(cli, ["logs", "rollout", *on_db])
            table = CliRunner().invoke(cli, ["status", *on_db])
            plan = CliRunner().invoke(cli, ["plan", "--jobs-dir", str(scenario.jobs_dir), *on_db])
        finally:
            os.chdir(cwd)

    assert status.exit_code == 0, status.output
    shown = json.loads(status.output)
    assert shown["owner"] == one.client_id("a")
    assert one.client_id("a") in shown["runners"]
    assert shown["executions"][0]["status"] == "STOPPED"
    assert logs.exit_code == 0 and "stop" in logs.output, logs.output
    assert f"runners alive: {one.client_id('a')}" in table.output, table.output
    assert plan.exit_code == 0, plan.output  # in sync: what the database records is declared
    assert not (elsewhere / "state").exists()  # nothing was written beside the command


def test_two_runners_split_the_jobs_and_a_device_runs_one_operation_at_a_time(
    scenario: Scenario, state_db: str
) -> None:
    scenario.registry(4)
    fleet = scenario.fleet(4, FaultPlan(slow=(DelayFault(Selector("*", "*"), 0.4),)))

    port = free_port()
    with runners(scenario, state_db) as two:
        two.start("a", "--http", f"127.0.0.1:{port}")
        two.wait("runner a alive", lambda: two.client_id("a") in two.alive())
        two.start("b")
        two.wait("runner b alive", lambda: two.client_id("b") in two.alive())
        time.sleep(1.0)  # both have reconciled the empty jobs directory
        for name in ("alpha", "beta"):  # the same four devices, one job per runner
            scenario.job(name, STEPS)
        two.wait("both jobs owned", lambda: None not in (two.owner("alpha"), two.owner("beta")))
        owners = {two.owner("alpha"), two.owner("beta")}
        two.wait("both executions ended", lambda: two.ended("alpha") and two.ended("beta"))
        jobs = [two.job("alpha"), two.job("beta")]
        time.sleep(1.0)  # what the dashboard read of the database is fresh again
        shown = httpx.get(f"http://127.0.0.1:{port}/api/v1/jobs", timeout=10).json()

    assert owners == {two.client_id("a"), two.client_id("b")}  # one job each
    assert len(shown) == 2, shown  # a's dashboard shows b's job too, from the database
    assert all(j["lastExecution"]["status"] == "TERMINATED" for j in shown), shown
    for job in jobs:
        assert job is not None
        assert {(t.step_index, t.status.value) for t in job.targets} == {(2, "PROCESS_OK")}
    for device in {r.device for r in fleet.requests()}:
        arrivals = sorted(r.at for r in fleet.requests(device))
        gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
        assert len(arrivals) == 6 and min(gaps) >= 0.35, (device, gaps)  # never two at once


def test_a_failover_across_a_broker_restart(
    own_broker: RunningBroker, state_db: str, tmp_path: Path
) -> None:
    scenario = Scenario(own_broker, tmp_path, f"tr-{uuid.uuid4().hex[:6]}")
    scenario.registry(6)
    fleet = scenario.fleet(6, FaultPlan(slow=(DelayFault(Selector("*", "*"), 0.25),)))

    try:
        with runners(scenario, state_db) as two:
            owner, other = two.both_then(lambda: scenario.job("rollout", STEPS))
            two.wait("requests of the first steps", lambda: two.sent("rollout") >= 4)
            os.kill(two.processes[owner].pid, signal.SIGKILL)
            own_broker.restart(downtime=2.0)  # and the broker goes away meanwhile
            two.wait(
                f"runner {other} owning",
                lambda: two.owner("rollout") == two.client_id(other),
            )
            two.wait("the end of the execution", lambda: two.ended("rollout"), timeout=90)
            job = two.job("rollout")
    finally:
        fleet.stop()

    assert job is not None
    assert {t.status.value for t in job.targets} <= {"PROCESS_OK", "PROCESS_FAILED"}
    assert sum(t.status.value == "PROCESS_OK" for t in job.targets) >= 1
    never_twice(fleet)


def test_reconcile_alone_on_the_database_drives_the_execution_itself(
    scenario: Scenario, state_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario.registry(3)
    fleet = scenario.fleet(3)
    scenario.job("rollout", STEPS)
    on_db = ["--state-db", state_db, "--scope", scenario.scope]
    opened = connections_opened(monkeypatch)

    done = CliRunner().invoke(
        cli,
        ["reconcile", "--jobs-dir", str(scenario.jobs_dir), "--broker", scenario.broker.url,
         "--client-id", f"alone-{scenario.scope}", *on_db],
    )  # fmt: skip
    assert len(opened) == 1  # records, leases, device claims, notifications: one connection
    status = CliRunner().invoke(cli, ["status", "rollout", "-o", "json", *on_db])

    assert done.exit_code == 0, done.output
    shown = json.loads(status.output)
    assert shown["executions"][0]["status"] == "TERMINATED"
    assert {t["status"] for t in shown["targets"]} == {"PROCESS_OK"}
    assert shown["owner"] is None and shown["runners"] == []  # its lease was given back
    never_twice(fleet)


@pytest.mark.parametrize(
    ("url", "code", "message"),
    [
        (
            "mysql://db/jobs",
            2,  # a bad value
            "is not a PostgreSQL URL; write postgresql://USER@HOST:PORT/DATABASE",
        ),
        (
            "postgresql://jobrunner:s3cret@127.0.0.1:1/jobs",
            1,
            "cannot connect to the state database postgresql://jobrunner:***@127.0.0.1:1/jobs",
        ),
    ],
)
def test_a_state_database_that_cannot_be_used_is_named(url: str, code: int, message: str) -> None:
    result = CliRunner().invoke(cli, ["status", "--state-db", url])
    assert result.exit_code == code
    assert message in result.output and "s3cret" not in result.output
    assert "Traceback" not in result.output


def test_an_asynchronous_operation_is_asked_about_by_the_runner_that_takes_over(
    scenario: Scenario, state_db: str
) -> None:
    scenario.registry(4)
    fleet = scenario.fleet(
        4, timing=Timing(download_seconds=8.0, install_seconds=0.1, progress_steps=2)
    )
    package = """
        - name: install
          definition: Package Download / Install
          timeout: 60s            # a reply comes, however busy the machine: never waited out
          completionTimeout: 120s
          properties: {uri: "http://repo.example.com/a-1.0.dp", name: a, version: 1.0.0}
        """

    with runners(scenario, state_db) as two:
        owner, other = two.both_then(lambda: scenario.job("package", package))
        # Every download accepted, and one at least still running on its device (on a busy
        # machine the first may end before the last is sent).
        two.wait(
            "every download accepted",
            lambda: (
                (job := two.job("package")) is not None
                and len(job.targets) == 4
                and all(t.status.value != "PROCESS_AWAITING" for t in job.targets)
                and any(t.status.value == "AWAITING_COMPLETION" for t in job.targets)
            ),
        )
        killed = two.processes[owner]
        os.kill(killed.pid, signal.SIGKILL)  # the downloads go on on the devices, unheard
        killed.wait()
        two.wait("the end of the execution", lambda: two.ended("package"), timeout=60)
        job = two.job("package")
        assert job is not None
        log = two.state.storage.read(job.paths.log(1)).decode()

    assert {(t.step_index, t.status.value) for t in job.targets} == {(0, "PROCESS_OK")}, log
    never_twice(fleet)  # the install was never sent again
    assert "took over" in two.log(other)


CLOCK = "org.eclipse.kura.clock.ClockService"
GUARDED = f"""
- name: ntp
  definition: Configuration Put
  rollback: onFailure
  properties:
    configurations:
      - {{pid: {CLOCK}, properties: {{clock.ntp.host: 10.9.9.9}}}}
- {{name: check, definition: Command Execution, properties: {{command: echo}}}}
"""


@pytest.mark.parametrize(
    ("unanswered", "recorded"),
    [("snapshots", RollbackState.DUE), ("rollback", RollbackState.SENT)],
)
def test_the_runner_that_takes_over_finishes_a_rollback_its_owner_left(
    scenario: Scenario, state_db: str, unanswered: str, recorded: RollbackState
) -> None:
    """The owner is killed while gw-0001's rollback is recorded `due` (its GET snapshots
    unanswered) or `sent` (its EXEC rollback's reply lost, the device rolled back): the
    other runner takes the job over, finishes the rollback, and never sends the rollback
    twice."""
    scenario.registry(2)
    fleet = scenario.fleet(
        2,
        FaultPlan(
            fail=(FailFault(Selector("gw-0001", "command"), 500),),
            drop=(DropFault(Selector("gw-0001", unanswered)),),
        ),
        timing=Timing(config_apply_seconds=0.0),  # the device holds what it is sent at once
    )

    def left() -> bool:
        job = two.job("guarded")
        if job is None or "gw-0001" not in job.targets:
            return False
        snapshot = job.targets.get("gw-0001").snapshot
        return snapshot is not None and snapshot.rollback is recorded

    with runners(scenario, state_db) as two:
        owner, other = two.both_then(lambda: scenario.job("guarded", GUARDED))
        two.wait(f"the rollback recorded {recorded.value}", left)
        killed = two.processes[owner]
        os.kill(killed.pid, signal.SIGKILL)  # the unanswered request is the owner's alone
        killed.wait()
        fleet.device("gw-0001").faults = None  # the other runner's requests are answered
        two.wait(
            f"runner {other} owning the job",
            lambda: two.owner("guarded") == two.client_id(other),
        )
        two.wait("the end of the execution", lambda: two.ended("guarded"), timeout=90)
        job = two.job("guarded")
        assert job is not None
        log = two.state.storage.read(job.paths.log(1)).decode()

    target = job.targets.get("gw-0001")
    assert target.status.value == "PROCESS_FAILED", target
    assert target.snapshot is not None and target.snapshot.rolled_back, (target, log)
    assert fleet.device("gw-0001").state.setting(CLOCK, "clock.ntp.host") != "10.9.9.9"
    assert job.executions[1].status is ExecutionStatus.TERMINATED
    assert (job.targets.get("gw-0002").step_index, job.targets.get("gw-0002").status.value) == (
        1,
        "PROCESS_OK",
    )
    sent = Counter(r.operation for r in fleet.requests("gw-0001"))
    assert (sent["snapshot"], sent["configuration"], sent["command"]) == (1, 1, 1), sent
    assert sent["rollback"] == 1, sent  # never sent twice, whichever runner sent it
    assert sent["snapshots"] == 2, sent  # the snapshot read again by the runner taking over
    assert "took over" in two.log(other)


def test_each_runner_prunes_the_history_of_the_jobs_it_owns_only(
    scenario: Scenario, state_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = ["h1", "h2", "h3", "h4"]
    with runners(scenario, state_db) as two:
        for name in names:  # four executions each, recorded before any runner ran
            job = JobState.create(two.state, JobRecord(scope=scenario.scope, name=name))
            job.retention = History(keep_executions=1000)
            for _ in range(4):
                summary = job.begin_execution(Trigger(kind=TriggerKind.SCHEDULE), [], None)
                job.end_execution(summary, ExecutionStatus.TERMINATED)
            job.close()
        two.start("keeper")  # the default history: keeps 100
        keeper = two.client_id("keeper")
        two.wait("keeper owns every job", lambda: {two.owner(n) for n in names} == {keeper})
        monkeypatch.setenv("JOBRUNNER_HISTORY_KEEP_EXECUTIONS", "1")
        two.start("pruner")

        def settled() -> bool:  # two jobs each, the pruner's pruned
            owners = [two.owner(n) for n in names]
            return owners.count(two.client_id("pruner")) == 2 and all(
                len(executions(two, n)) == 1
                for n, o in zip(names, owners, strict=True)
                if o == two.client_id("pruner")
            )

        two.wait("the pruner's jobs pruned", settled, timeout=90)
        owners = {n: two.owner(n) for n in names}
        kept = {n: executions(two, n) for n in names}

    for name, owner in owners.items():
        if owner == two.client_id("pruner"):
            assert kept[name] == [4], (name, kept)
        else:  # the keeper's: never touched by the pruner, whose bounds are not its own
            assert owner == two.client_id("keeper") and kept[name] == [1, 2, 3, 4], (name, kept)


def executions(two: Runners, name: str) -> list[int]:
    job = two.job(name)
    return [] if job is None else sorted(job.executions)
