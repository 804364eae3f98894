"""A jobs directory, a state directory, a simulated fleet and a runner, per test.

Each test gets its own Kura account (scope) on the session's broker, so tests never see
each other's devices; the runner and the fleet talk real MQTT over TCP.
"""

from __future__ import annotations

import contextlib
import itertools
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner

from jobrunner.cli.main import cli
from jobrunner.device import BrokerSettings, OperationSettings
from jobrunner.device.operations import DEFAULT_SETTINGS
from jobrunner.engine.core.runtime import EngineSettings
from jobrunner.engine.link.events import Inbox
from jobrunner.engine.link.memory import Handler, MemoryLink
from jobrunner.engine.service.runner import Runner, RunnerConfig
from jobrunner.simulator.broker import RunningBroker
from jobrunner.simulator.config import FleetConfig, Timing
from jobrunner.simulator.faults import FaultPlan
from jobrunner.simulator.fleet import Fleet
from jobrunner.state.jobstore import JobState
from jobrunner.state.layout import StateDir
from jobrunner.state.records import ExecutionStatus

FAST = Timing(
    download_seconds=0.2,
    install_seconds=0.05,
    uninstall_seconds=0.05,
    activity_seconds=0.2,
    config_apply_seconds=0.05,
    reboot_seconds=0.5,
    progress_steps=2,
)
_numbers = itertools.count(1)


@dataclass
class Scenario:
    """One test's world: its scope, folders, broker; fleets and runners made on demand."""

    broker: RunningBroker
    root: Path
    scope: str
    fleets: list[Fleet] = field(default_factory=list)

    @property
    def jobs_dir(self) -> Path:
        return self.root / "jobs.d"

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    def write(self, name: str, text: str) -> Path:
        path = self.jobs_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        return path

    def job(
        self,
        name: str,
        steps: str,
        targets: str = "all: true",
        run: str | None = "1",
        extra: str = "",
    ) -> Path:
        """Write a Job manifest; `steps` is the YAML list of steps (dedented)."""
        body = textwrap.indent(textwrap.dedent(steps).strip(), "    ")
        text = (
            "apiVersion: jobrunner/v1\nkind: Job\n"
            f"metadata: {{name: {name}, scope: {self.scope}}}\n"
            f"spec:\n  targets: {{{targets}}}\n  steps:\n{body}\n"
            + (f'  run: "{run}"\n' if run is not None else "")
            + textwrap.indent(textwrap.dedent(extra), "  ")
        )
        path = self.jobs_dir / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def registry(
        self, count: int, tags: str = "[fleet]", scope: str | None = None, file: str = "registry"
    ) -> None:
        """A DeviceList of gw-0001..gw-{count} in `scope` (this scenario's when None)."""
        devices = "\n".join(
            f"  - {{clientId: gw-{n:04d}, tags: {tags}}}" for n in range(1, count + 1)
        )
        self.write(
            f"{file}.yaml",
            "apiVersion: jobrunner/v1\nkind: DeviceList\n"
            f"metadata: {{scope: {scope or self.scope}}}\ndevices:\n{devices}\n",
        )

    def fleet(self, devices: int, faults: FaultPlan | None = None, **config: object) -> Fleet:
        fleet = Fleet(
            FleetConfig(
                devices=devices,
                broker=self.broker.url,
                account=self.scope,
                faults=faults or FaultPlan(),
                timing=config.pop("timing", FAST),  # type: ignore[arg-type]
                **config,  # type: ignore[arg-type]
            )
        )
        self.fleets.append(fleet)
        return fleet.start()

    def config(
        self, operations: OperationSettings = DEFAULT_SETTINGS, **engine: object
    ) -> RunnerConfig:
        return RunnerConfig(
            jobs_dir=self.jobs_dir,
            state_dir=self.state_dir,
            scope=self.scope,
            broker=BrokerSettings.resolve(self.broker.url, client_id=f"runner-{self.scope}"),
            engine=EngineSettings(**engine),  # type: ignore[arg-type]
            operations=operations,
        )

    @contextmanager
    def runner(
        self, operations: OperationSettings = DEFAULT_SETTINGS, **engine: object
    ) -> Iterator[Runner]:
        with Runner(self.config(operations, **engine)) as runner:
            yield runner

    def reconcile_command(self, max_in_flight: int = 4) -> list[str]:
        """`jobrunner reconcile --wait` for this scenario, to run as a real process."""
        return [
            sys.executable, "-m", "jobrunner", "reconcile", "--wait",
            "--jobs-dir", str(self.jobs_dir), "--state-dir", str(self.state_dir),
            "--broker", self.broker.url, "--scope", self.scope,
            "--client-id", f"runner-{self.scope}", "--max-in-flight", str(max_in_flight),
        ]  # fmt: skip

    def invoke(self, *args: str) -> tuple[int, str]:
        """`jobrunner ARGS --state-dir ... --scope ...` in this process: exit code and output
        (an exception other than click's exit fails the test, with the output)."""
        result = CliRunner().invoke(
            cli, [*args, "--state-dir", str(self.state_dir), "--scope", self.scope]
        )
        assert result.exception is None or isinstance(result.exception, SystemExit), result.output
        return result.exit_code, result.output

    def reconcile(
        self, operations: OperationSettings = DEFAULT_SETTINGS, **engine: object
    ) -> list[tuple[str, str, int]]:
        """One `reconcile --wait`, in this process; the executions it started."""
        with self.runner(operations, **engine) as runner:
            applied = runner.apply(runner.plan(runner.load()))
            runner.wait(applied.started)
            return applied.started

    def state(self, name: str) -> JobState:
        return JobState.load(StateDir(self.state_dir), self.scope, name)

    def statuses(self, name: str) -> dict[str, tuple[int, str]]:
        """client id -> (step index, status) as recorded."""
        job = self.state(name)
        job.close()
        return {t.client_id: (t.step_index, t.status.value) for t in job.targets}

    def messages(self, name: str) -> dict[str, str | None]:
        job = self.state(name)
        job.close()
        return {t.client_id: t.message for t in job.targets}

    def log(self, name: str, execution: int) -> str:
        return self.state(name).paths.log(execution).read_text()


def never_twice(fleet: Fleet) -> Counter[tuple[str, str]]:
    """The requests each device received, by operation; fails when one got any twice."""
    sent = Counter((r.device, r.operation) for r in fleet.requests())
    assert max(sent.values()) == 1, [k for k, n in sent.items() if n > 1]
    return sent


@pytest.fixture
def scenario(broker: RunningBroker, tmp_path: Path) -> Iterator[Scenario]:
    world = Scenario(broker, tmp_path, f"t{next(_numbers)}-{uuid.uuid4().hex[:6]}")
    world.jobs_dir.mkdir()
    world.state_dir.mkdir()  # as an operator prepares it: plan reads only an existing one
    yield world
    for fleet in world.fleets:
        fleet.stop()


# -- a `jobrunner watch` process on the scenario ------------------------------------------


class Watch:
    def __init__(
        self,
        scenario: Scenario,
        jobs_dir: Path | None = None,
        launcher: tuple[str, ...] = ("-m", "jobrunner"),
    ) -> None:
        """`launcher`: how Python starts jobrunner (`-c SCRIPT` to change it first)."""
        self.scenario = scenario
        self.launcher = launcher
        self.jobs_dir = jobs_dir or scenario.jobs_dir
        self.log = scenario.root / "watch.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *extra: str) -> Watch:
        s = self.scenario
        before = self.text().count("reconciled revision")
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    *self.launcher,
                    "watch",
                    "--jobs-dir",
                    str(self.jobs_dir),
                    "--state-dir",
                    str(s.state_dir),
                    "--broker",
                    s.broker.url,
                    "--scope",
                    s.scope,
                    "--client-id",
                    f"watch-{s.scope}",
                    "--debounce",
                    "100",
                    *extra,
                ],
                stdout=output,
                stderr=output,
            )
        self.wait_for(
            lambda: self.text().count("reconciled revision") > before, "the first reconcile"
        )
        return self

    def text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(FileNotFoundError):  # a file the daemon has not made yet
                if condition():
                    return
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"watch exited while waiting for {what}:\n{self.text()}")
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}:\n{self.text()}")

    def terminate(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)


@pytest.fixture
def watch(scenario: Scenario) -> Iterator[Watch]:
    daemon = Watch(scenario)
    yield daemon
    if daemon.process is not None and daemon.process.poll() is None:
        daemon.process.kill()
        daemon.process.wait()


def executions(scenario: Scenario, name: str) -> list[tuple[int, str, str]]:
    path = scenario.state_dir / "scopes" / scenario.scope / "jobs" / name
    if not (path / "job.json").exists():
        return []
    job = scenario.state(name)
    job.close()
    return [(e.id, e.status.value, str(e.trigger)) for e in job.executions.values()]


def ended(scenario: Scenario, name: str, count: int) -> Callable[[], bool]:
    def check() -> bool:
        found = executions(scenario, name)
        return len(found) >= count and all(s != ExecutionStatus.RUNNING for _, s, _ in found)

    return check


# -- the engine's clock, passed by hand -------------------------------------------------


@dataclass
class FakeClock:
    """The engine's clock in the in-memory tests: time passes only when a test says so."""

    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def memory_runner(
    root: Path, clock: FakeClock, handler: Handler, monotonic: FakeClock | None = None
) -> tuple[Runner, MemoryLink]:
    """A runner on `root/jobs.d` and `root/state` whose devices are a MemoryLink that plays
    `handler`, on the fake clock: the engine's rules without a broker. `monotonic`: a clock
    of its own for the deadlines (default: the same fake clock)."""
    links: list[MemoryLink] = []

    def link(inbox: Inbox) -> MemoryLink:
        links.append(MemoryLink(inbox, handler))
        return links[-1]

    config = RunnerConfig(
        jobs_dir=root / "jobs.d",
        state_dir=root / "state",
        scope="acme",
        broker=BrokerSettings.from_url("mqtt://127.0.0.1:1", client_id="memory"),
        engine=EngineSettings(durable=False),
    )
    runner = Runner(config, link=link, clock=clock, monotonic=monotonic)
    return runner, links[0]
