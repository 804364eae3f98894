"""Snapshots, read-backs and rollbacks on the engine's fake clock: what waits for Kura's
apply delay waits for it, and what a restart interrupts is taken up where it was recorded,
never sent twice. The in-memory link plays a Kura gateway's configuration service."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from jobrunner.device import KuraPayload
from jobrunner.engine.link.memory import MemoryLink, Sent, error, ok
from jobrunner.engine.link.observers import Observer
from jobrunner.engine.service.runner import Runner
from jobrunner.state.layout import JobKey
from jobrunner.state.targets import RollbackState

from ..conftest import FakeClock, memory_runner

CLOCK = "org.eclipse.kura.clock.ClockService"
SNAPSHOT_ID = 1_700_000_000_123
STEPS = f"""\
  steps:
    - name: ntp
      definition: Configuration Put
      rollback: onFailure
      verify: true
      properties:
        configurations:
          - {{pid: {CLOCK}, properties: {{clock.ntp.host: 10.9.9.9}}}}
    - {{name: check, definition: Command Execution, properties: {{command: echo}}}}
"""


def _document(host: str) -> bytes:
    return (
        '<esf:configurations xmlns:esf="http://eurotech.com/esf/2.0">'
        f'<esf:configuration pid="{CLOCK}"><esf:properties>'
        '<esf:property name="clock.ntp.host" array="false" encrypted="false" type="String">'
        f"<esf:value>{host}</esf:value></esf:property>"
        "</esf:properties></esf:configuration></esf:configurations>"
    ).encode()


@dataclass
class Gateway:
    """One Kura gateway's configuration service, as far as these tests need it: the host it
    holds now, its one snapshot, the requests it got; silent on what `mute` names."""

    host: str = "0.pool.ntp.org"
    snapshot: str | None = None
    command_fails: bool = True
    mute: set[str] = field(default_factory=set)
    got: list[str] = field(default_factory=list)
    applies_later: bool = False
    """A put is held in `pending` until the test applies it (Kura applies it after its reply)."""
    pending: str | None = None

    def __call__(self, sent: Sent) -> KuraPayload | None:
        request = sent.request
        name = f"{request.method} {'/'.join(request.resources)}"
        self.got.append(name)
        if any(name.startswith(m) for m in self.mute):
            return None
        if name == "EXEC snapshot":
            self.snapshot = self.host
            body = (
                '<esf:snapshot-ids xmlns:esf="http://eurotech.com/esf/2.0">'
                f"<esf:snapshotIds>{SNAPSHOT_ID}</esf:snapshotIds>"
            )
            return _with_body(ok(), (body + "</esf:snapshot-ids>").encode())
        if name == "PUT configurations":
            if self.applies_later:
                self.pending = "10.9.9.9"
            else:
                self.host = "10.9.9.9"
            return ok()
        if name.startswith("GET snapshots/"):
            return _with_body(ok(), _document(self.snapshot or ""))
        if name.startswith("EXEC rollback/"):
            self.host = self.snapshot or self.host
            return ok()
        if name.startswith("GET configurations/"):
            return _with_body(ok(), _document(self.host))
        if name == "EXEC command":
            return error(500, "the check failed") if self.command_fails else ok()
        raise AssertionError(f"unexpected request {name}")


def _with_body(payload: KuraPayload, body: bytes) -> KuraPayload:
    return KuraPayload(metrics=payload.metrics, body=body)


class Heard(Observer):
    def __init__(self) -> None:
        self.rollbacks: list[tuple[JobKey, str, str]] = []

    def rollback_ended(self, job: JobKey, client_id: str, result: str) -> None:
        self.rollbacks.append((job, client_id, result))


@dataclass
class World:
    root: Path
    clock: FakeClock
    link: MemoryLink | None = None

    def runner(self, gateway: Gateway) -> Runner:
        jobs = self.root / "jobs.d"
        jobs.mkdir(exist_ok=True)
        (jobs / "guarded.yaml").write_text(
            "apiVersion: jobrunner/v1\nkind: Job\nmetadata: {name: guarded, scope: acme}\n"
            f"spec:\n  targets: {{devices: [gw-1]}}\n{STEPS}  run: '1'\n"
        )
        runner, self.link = memory_runner(self.root, self.clock, gateway)
        return runner


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    yield World(tmp_path, FakeClock())


def _turns(runner: Runner, count: int = 6) -> None:
    for _ in range(count):
        runner.engine.step(0)


def test_the_read_back_waits_for_kuras_apply_delay_on_the_engine_clock(world: World) -> None:
    gateway = Gateway(command_fails=False)
    with world.runner(gateway) as runner:
        runner.apply(runner.plan(runner.load()))
        _turns(runner)
        assert gateway.got == ["EXEC snapshot", "PUT configurations"], "nothing read back yet"
        world.clock.advance(1.9)
        _turns(runner)
        assert gateway.got[-1] == "PUT configurations"
        world.clock.advance(0.2)
        _turns(runner)
        target = runner.job_state("acme", "guarded").targets.get("gw-1")

    assert gateway.got == [
        "EXEC snapshot",
        "PUT configurations",
        f"GET configurations/{CLOCK}",
        "EXEC command",
    ]
    assert (target.step_index, target.status.value) == (1, "PROCESS_OK")
    assert target.snapshot is not None and target.snapshot.rollback is None


def test_a_snapshot_whose_reply_a_restart_lost_is_asked_again(world: World) -> None:
    silent = Gateway(mute={"EXEC snapshot"})
    with world.runner(silent) as runner:
        runner.apply(runner.plan(runner.load()))
        _turns(runner)
        assert silent.got == ["EXEC snapshot"]
    world.clock.advance(31)  # past the snapshot request's deadline, runner gone meanwhile

    gateway = Gateway(command_fails=False)
    with world.runner(gateway) as runner:
        _turns(runner)
        assert gateway.got == [], "its reply still counts until a second after the restart"
        world.clock.advance(1.1)
        _turns(runner)
        world.clock.advance(2.1)  # Kura's apply delay before the read-back
        _turns(runner)
        job = runner.job_state("acme", "guarded")
        target = job.targets.get("gw-1")
        log = job.paths.storage.read(job.paths.log(1)).decode()

    assert (target.step_index, target.status.value) == (1, "PROCESS_OK")
    assert gateway.got[:2] == ["EXEC snapshot", "PUT configurations"]
    assert "it changes no configuration, so it is sent again" in log
    assert "restarted before the reply" not in log


def test_a_restart_during_kuras_apply_delay_still_waits_for_it_before_the_read_back(
    world: World,
) -> None:
    gateway = Gateway(command_fails=False, applies_later=True)
    with world.runner(gateway) as runner:
        runner.apply(runner.plan(runner.load()))
        _turns(runner)
        assert gateway.got == ["EXEC snapshot", "PUT configurations"]
    world.clock.advance(0.5)  # a quick restart, before Kura applied the put

    with world.runner(gateway) as runner:
        _turns(runner)
        assert gateway.got[2:] == [], "the read-back waits for Kura's apply delay"
        gateway.host = gateway.pending or ""  # Kura applied it meanwhile
        world.clock.advance(1.6)  # 2.1 s after the put's reply
        _turns(runner)
        target = runner.job_state("acme", "guarded").targets.get("gw-1")

    assert gateway.got[2:] == [f"GET configurations/{CLOCK}", "EXEC command"]
    assert (target.step_index, target.status.value) == (1, "PROCESS_OK"), target.message


def test_a_start_right_after_a_stop_during_kuras_apply_delay_reads_back_once(
    world: World,
) -> None:
    gateway = Gateway(command_fails=False)
    with world.runner(gateway) as runner:
        runner.apply(runner.plan(runner.load()))
        _turns(runner)
        assert gateway.got == ["EXEC snapshot", "PUT configurations"]
        runner.stop_job("acme", "guarded", "stopped by the test", drain=5)
        _turns(runner)
        assert runner.job_state("acme", "guarded").running is None
        summary = runner.start_job("acme", "guarded", runner.load())
        # No turn before the apply delay is over (a full in-flight window holds the ready
        # targets as long): the target is then both ready and due to proceed.
        world.clock.advance(2.1)
        _turns(runner)
        job = runner.job_state("acme", "guarded")
        target = job.targets.get("gw-1")
        ended = job.executions[summary.id]

    assert gateway.got == [
        "EXEC snapshot",
        "PUT configurations",
        f"GET configurations/{CLOCK}",
        "EXEC command",
    ], "each request once"
    assert (target.step_index, target.status.value) == (1, "PROCESS_OK"), target.message
    assert ended.status.value == "TERMINATED"


def test_a_rollback_recorded_due_before_a_restart_is_taken_up_and_sent_once(
    world: World,
) -> None:
    first = Gateway(mute={"GET snapshots/"})  # the rollback's first request goes unanswered
    with world.runner(first) as runner:
        runner.apply(runner.plan(runner.load()))
        _turns(runner)
        world.clock.advance(2.1)
        _turns(runner)
        target = runner.job_state("acme", "guarded").targets.get("gw-1")
        assert target.snapshot is not None
        assert target.snapshot.rollback is RollbackState.DUE
        assert first.got[-1] == f"GET snapshots/{SNAPSHOT_ID}"

    second = Gateway(host=first.host, snapshot=first.snapshot)
    heard = Heard()
    with world.runner(second) as runner:
        runner.engine.rt.observer = heard
        _turns(runner)
        world.clock.advance(2.1)  # Kura's apply delay after the rollback
        _turns(runner)
        job = runner.job_state("acme", "guarded")
        target = job.targets.get("gw-1")
        execution = job.executions[1]

    assert second.got == [
        f"GET snapshots/{SNAPSHOT_ID}",
        f"EXEC rollback/{SNAPSHOT_ID}",
        f"GET configurations/{CLOCK}",
    ]
    assert second.host == "0.pool.ntp.org"
    assert target.status.value == "PROCESS_FAILED" and target.failure == "device-error:500"
    assert target.snapshot is not None and target.snapshot.rolled_back
    assert target.message == (
        f"device replied 500: the check failed; rolled back to snapshot {SNAPSHOT_ID}"
        f" ({CLOCK} read back as the snapshot holds them)"
    )
    assert execution.status.value == "TERMINATED", "it ended once its rollback had"
    assert heard.rollbacks == [(("acme", "guarded"), "gw-1", "done")]  # jobrunner_rollbacks


def test_a_start_while_a_stopped_executions_rollback_is_under_way_leaves_its_target_alone(
    world: World,
) -> None:
    # The command's reply comes after the stop's drain: the target fails with no execution
    # running, and its rollback runs on its own (its first request unanswered for a while).
    gateway = Gateway(mute={"EXEC command", "GET snapshots/"})
    with world.runner(gateway) as runner:
        runner.apply(runner.plan(runner.load()))
        _turns(runner)
        world.clock.advance(2.1)  # the read-back, then the command (unanswered)
        _turns(runner)
        assert gateway.got[-1] == "EXEC command"
        runner.stop_job("acme", "guarded", "stopped by the test", drain=5)
        world.clock.advance(6)
        _turns(runner)
        assert runner.job_state("acme", "guarded").running is None
        world.clock.advance(30)  # the command's deadline: the target fails, rolled back
        _turns(runner)
        rolling = runner.job_state("acme", "guarded").targets.get("gw-1")
        assert rolling.snapshot is not None and rolling.snapshot.rolling_back
        assert gateway.got[-1] == f"GET snapshots/{SNAPSHOT_ID}"
        got = len(gateway.got)

        summary = runner.start_job("acme", "guarded", runner.load())
        _turns(runner)
        assert gateway.got[got:] == [], "nothing else goes to the device during its rollback"
        during = runner.job_state("acme", "guarded").targets.get("gw-1")
        assert during.snapshot == rolling.snapshot, "its rollback is still recorded"
        gateway.mute.clear()
        world.clock.advance(31)  # the rollback's GET goes unanswered by its deadline
        _turns(runner)
        job = runner.job_state("acme", "guarded")
        target = job.targets.get("gw-1")
        ended = job.executions[summary.id]
        log = job.paths.storage.read(job.paths.log(summary.id)).decode()

    assert gateway.got[got:] == []
    assert target.status.value == "PROCESS_FAILED"
    assert target.snapshot is not None and target.snapshot.rollback is RollbackState.FAILED
    assert ended.status.value == "TERMINATED"
    assert "its rollback to snapshot" in log and "under way" in log


@dataclass
class Fleet:
    """gw-1 and gw-2, each a Gateway; gw-2's command fails; what `held` names goes
    unanswered (another job's request in flight on gw-1)."""

    gateways: dict[str, Gateway] = field(
        default_factory=lambda: {
            "gw-1": Gateway(command_fails=False),
            "gw-2": Gateway(command_fails=True),
        }
    )
    held: set[str] = field(default_factory=set)
    order: list[tuple[str, str, str]] = field(default_factory=list)  # (device, job, request)

    def __call__(self, sent: Sent) -> KuraPayload | None:
        request = sent.request
        name = f"{request.method} {'/'.join(request.resources)}"
        self.order.append((sent.client_id, sent.tag.job[1], name))
        if name.startswith("EXEC stop"):
            return None if sent.client_id in self.held else ok()
        return self.gateways[sent.client_id](sent)


def test_an_aborted_rollouts_rollback_waits_for_the_device_another_job_holds(
    world: World,
) -> None:
    """The canary ended PROCESS_OK and its device went to another job; the rollout is then
    aborted with a rollback: the canary's rollback waits until the other job's step on
    that device is over (one operation at a time per device, whatever the job)."""
    jobs = world.root / "jobs.d"
    jobs.mkdir()
    rollout = (
        "  rollout:\n"
        "    waves:\n"
        "      - {name: canary, devices: [gw-1]}\n"
        "      - {name: rest}\n"
        "    abort: {rollback: true}\n"
    )
    (jobs / "rollout.yaml").write_text(
        "apiVersion: jobrunner/v1\nkind: Job\nmetadata: {name: rollout, scope: acme}\n"
        "spec:\n  targets: {devices: [gw-1, gw-2]}\n"
        + STEPS.replace("      rollback: onFailure\n", "").replace("      verify: true\n", "")
        + rollout
        + "  run: '1'\n"
    )
    fleet = Fleet(held={"gw-1"})
    fleet.gateways["gw-2"].mute.add("EXEC command")  # it fails at its timeout
    runner, world.link = memory_runner(world.root, world.clock, fleet)
    with runner:
        runner.apply(runner.plan(runner.load()))
        _turns(runner)
        assert fleet.order[-1] == ("gw-2", "rollout", "EXEC command"), "the canary is over"
        (jobs / "other.yaml").write_text(
            "apiVersion: jobrunner/v1\nkind: Job\nmetadata: {name: other, scope: acme}\n"
            "spec:\n  targets: {devices: [gw-1]}\n  steps:\n"
            "    - {name: stop, definition: Bundle Stop, timeout: 60s,"
            " properties: {bundleId: 42}}\n"
            "  run: '1'\n"
        )
        runner.apply(runner.plan(runner.load()))
        _turns(runner)
        assert fleet.order[-1] == ("gw-1", "other", "EXEC stop/42")
        stop = len(fleet.order) - 1
        world.clock.advance(31)  # gw-2's command times out: the rollout is aborted
        for _ in range(4):
            _turns(runner)
            world.clock.advance(2.1)
        job = runner.job_state("acme", "rollout")
        assert job.running is not None and job.running.aborted, "held open by the rollback"
        canary = job.targets.get("gw-1")
        assert canary.snapshot is not None and canary.snapshot.rollback is RollbackState.DUE
        assert [o for o in fleet.order[stop + 1 :] if o[0] == "gw-1"] == [], (
            "nothing else is sent to gw-1 while the other job's request is awaited"
        )
        world.clock.advance(30)  # the other job's request is never answered: its timeout
        for _ in range(4):
            _turns(runner)
            world.clock.advance(2.1)
        canary = runner.job_state("acme", "rollout").targets.get("gw-1")
        rolled_back = runner.job_state("acme", "rollout").executions[1]

    assert [o[2] for o in fleet.order[stop + 1 :] if o[0] == "gw-1"] == [
        f"GET snapshots/{SNAPSHOT_ID}",
        f"EXEC rollback/{SNAPSHOT_ID}",
        f"GET configurations/{CLOCK}",
    ]
    assert canary.snapshot is not None and canary.snapshot.rolled_back
    assert rolled_back.status.value == "ABORTED"


def test_a_stop_between_the_snapshot_and_the_put_frees_the_device(world: World) -> None:
    """With a window of one request, gw-1's snapshot is answered while gw-2's waits for the
    window: gw-1 waits for its put, its device the job's meanwhile. A stop then: gw-1's put
    is not sent, and its device is free for another job."""
    jobs = world.root / "jobs.d"
    jobs.mkdir()
    (jobs / "guarded.yaml").write_text(
        "apiVersion: jobrunner/v1\nkind: Job\nmetadata: {name: guarded, scope: acme}\n"
        f"spec:\n  targets: {{devices: [gw-1, gw-2]}}\n{STEPS}  run: '1'\n"
    )
    fleet = Fleet()
    runner, world.link = memory_runner(world.root, world.clock, fleet)
    with runner:
        one = replace(runner.engine.rt.settings, max_in_flight=1)
        runner.engine.rt.settings = one
        runner.apply(runner.plan(runner.load()))
        runner.engine.step(0)  # gw-1's snapshot
        runner.engine.step(0)  # its reply; gw-2's snapshot takes the window
        assert [o[:3] for o in fleet.order] == [
            ("gw-1", "guarded", "EXEC snapshot"),
            ("gw-2", "guarded", "EXEC snapshot"),
        ]
        runner.stop_job("acme", "guarded", "stopped by the test", drain=5)
        _turns(runner)
        assert runner.job_state("acme", "guarded").running is None
        (jobs / "other.yaml").write_text(
            "apiVersion: jobrunner/v1\nkind: Job\nmetadata: {name: other, scope: acme}\n"
            "spec:\n  targets: {devices: [gw-1]}\n  steps:\n"
            "    - {name: stop, definition: Bundle Stop, properties: {bundleId: 42}}\n"
            "  run: '1'\n"
        )
        runner.apply(runner.plan(runner.load()))
        _turns(runner)
        other = runner.job_state("acme", "other").targets.get("gw-1")

    assert ("gw-1", "other", "EXEC stop/42") in fleet.order, "gw-1 is free for another job"
    assert (other.step_index, other.status.value) == (0, "PROCESS_OK")
    assert ("gw-1", "guarded", "PUT configurations") not in fleet.order


def test_a_rollback_sent_just_before_a_restart_is_read_back_after_kuras_apply_delay(
    world: World,
) -> None:
    """The rollback's reply is lost with the process that sent it; the read-back after the
    restart still waits for Kura's apply delay, counted from when the rollback left."""
    first = Gateway(mute={"EXEC rollback/"})
    with world.runner(first) as runner:
        runner.apply(runner.plan(runner.load()))
        _turns(runner)
        world.clock.advance(2.1)  # the put's read-back, then the failing check
        _turns(runner)
        target = runner.job_state("acme", "guarded").targets.get("gw-1")
        assert target.snapshot is not None
        assert target.snapshot.rollback is RollbackState.SENT
        assert first.got[-1] == f"EXEC rollback/{SNAPSHOT_ID}"
    world.clock.advance(0.5)  # a quick restart: Kura has not applied the rollback yet

    second = Gateway(host=first.host, snapshot=first.snapshot)
    with world.runner(second) as runner:
        _turns(runner)
        assert second.got == [f"GET snapshots/{SNAPSHOT_ID}"], "no read-back before the delay"
        second.host = "0.pool.ntp.org"  # Kura applied the rollback meanwhile
        world.clock.advance(1.6)  # 2.1 s after the rollback left
        _turns(runner)
        target = runner.job_state("acme", "guarded").targets.get("gw-1")

    assert second.got == [f"GET snapshots/{SNAPSHOT_ID}", f"GET configurations/{CLOCK}"]
    assert target.snapshot is not None and target.snapshot.rolled_back, target.message
