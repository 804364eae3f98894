"""The engine's rules without a broker: the in-memory link plays the devices, and a fake clock
passes time, so that timeouts are tested without sleeping."""

from __future__ import annotations

import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from jobrunner.device import KuraPayload, Metric
from jobrunner.device.lifecycle import DeviceFacts
from jobrunner.engine.link.memory import Handler, MemoryLink, Sent, error, ok
from jobrunner.engine.service.runner import Runner
from jobrunner.engine.status import job_view
from jobrunner.state.records import ExecutionStatus

from ..conftest import FakeClock, memory_runner


@dataclass
class World:
    root: Path
    clock: FakeClock
    link: MemoryLink | None = None

    def job(self, steps: str, devices: str = "[gw-1, gw-2]", name: str = "rollout") -> None:
        jobs = self.root / "jobs.d"
        jobs.mkdir(exist_ok=True)
        (jobs / f"{name}.yaml").write_text(
            f"apiVersion: jobrunner/v1\nkind: Job\nmetadata: {{name: {name}, scope: acme}}\n"
            f"spec:\n  targets: {{devices: {devices}}}\n  steps:\n"
            + textwrap.indent(textwrap.dedent(steps).strip(), "    ")
            + '\n  run: "1"\n'
        )

    def runner(self, handler: Handler) -> Runner:
        runner, self.link = memory_runner(self.root, self.clock, handler)
        return runner


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    yield World(tmp_path, FakeClock())


def _start(runner: Runner) -> tuple[str, str, int]:
    (started,) = runner.apply(runner.plan(runner.load())).started
    runner.engine.step(0)  # dispatch, publish; the replies wait in the inbox
    runner.engine.step(0)  # take them
    return started


STOP = "- {name: stop, definition: Bundle Stop, timeout: 30s, properties: {bundleId: 42}}"


def test_a_reply_that_never_comes_times_out_on_the_engine_clock(world: World) -> None:
    world.job(STOP)
    silent_gw2 = lambda sent: None if sent.client_id == "gw-2" else ok()  # noqa: E731
    with world.runner(silent_gw2) as runner:
        started = _start(runner)
        job = runner.job_state("acme", "rollout")
        assert job.targets.get("gw-1").status.value == "PROCESS_OK"
        assert job.targets.get("gw-2").status.value == "PROCESS_AWAITING"

        world.clock.advance(29)
        runner.engine.step(0)
        assert job.targets.get("gw-2").status.value == "PROCESS_AWAITING", "not yet"

        world.clock.advance(2)
        runner.engine.step(0)

        gw2 = job.targets.get("gw-2")
        assert (gw2.status.value, gw2.failure) == ("PROCESS_FAILED", "timeout")
        assert gw2.message is not None and gw2.message.startswith("no reply in 30s")
        assert runner.engine.link.in_flight() == 0
        assert world.link is not None
        request_id = world.link.sent[-1].tag.request_id
        assert world.link.reply(request_id, ok()) is False, "a late reply reaches nobody"
        (summary,) = runner.wait([started])
    assert summary.status is ExecutionStatus.TERMINATED


def test_a_device_error_is_recorded_with_its_kind_and_code(world: World) -> None:
    world.job(STOP)
    refuses = lambda sent: error(500, "bundle 42 is busy")  # noqa: E731
    with world.runner(refuses) as runner:
        started = _start(runner)
        runner.wait([started])
        view = job_view(runner.job_state("acme", "rollout"))

    (first, _) = view["targets"]
    assert first["status"] == "PROCESS_FAILED"
    assert first["failure"] == {"kind": "device-error", "code": 500}
    assert first["message"].startswith("device replied 500: bundle 42 is busy")


DOWNLOAD = """
- name: install
  definition: Package Download / Install
  timeout: 30s
  completionTimeout: 10m
  properties: {uri: "https://repo.example.com/a-1.0.dp", name: a, version: 1.0.0}
"""


def _notification(**metrics: Metric) -> KuraPayload:
    return KuraPayload.of(metrics)


def test_an_async_step_completes_by_notification_or_fails_at_its_completion_timeout(
    world: World,
) -> None:
    world.job(DOWNLOAD)
    with world.runner(lambda sent: ok()) as runner:
        started = _start(runner)
        job = runner.job_state("acme", "rollout")
        assert {t.status.value for t in job.targets} == {"AWAITING_COMPLETION"}
        assert world.link is not None
        operations = {s.client_id: s.operation_id for s in world.link.sent}
        gw1 = operations["gw-1"]
        assert gw1 is not None
        world.link.notify(
            "gw-1",
            gw1,
            ["install"],
            _notification(**{"dp.install.status": Metric.string("COMPLETED")}),
        )
        runner.engine.step(0)
        assert job.targets.get("gw-1").status.value == "PROCESS_OK"

        world.clock.advance(601)
        runner.engine.step(0)
        gw2 = job.targets.get("gw-2")
        assert (gw2.status.value, gw2.failure) == ("PROCESS_FAILED", "completion-timeout")
        assert gw2.message == "no completion notification in 600s"
        (summary,) = runner.wait([started])
    assert summary.counts == {"PROCESS_OK": 1, "PROCESS_FAILED": 1}


def test_a_step_of_the_wall_clock_neither_fails_a_reply_early_nor_holds_it(world: World) -> None:
    world.job(STOP)
    steady = FakeClock(now=50.0)
    silent_gw2 = lambda sent: None if sent.client_id == "gw-2" else ok()  # noqa: E731
    runner, world.link = memory_runner(world.root, world.clock, silent_gw2, monotonic=steady)
    with runner:
        _start(runner)
        job = runner.job_state("acme", "rollout")
        world.clock.advance(3600)  # NTP steps the wall clock an hour forward
        steady.advance(1)
        runner.engine.step(0)
        assert job.targets.get("gw-2").status.value == "PROCESS_AWAITING", "failed early"

        world.clock.advance(-7200)  # ... and then an hour back
        steady.advance(30)
        runner.engine.step(0)
        gw2 = job.targets.get("gw-2")
        assert (gw2.status.value, gw2.failure) == ("PROCESS_FAILED", "timeout"), "held"
        assert runner.engine.link.in_flight() == 0


def test_a_recorded_completion_deadline_is_kept_across_a_restart_on_any_steady_clock(
    world: World,
) -> None:
    world.job(DOWNLOAD, devices="[gw-1]")
    with world.runner(lambda sent: ok()) as runner:  # accepted; the completion is awaited
        _start(runner)
        job = runner.job_state("acme", "rollout")
        assert job.targets.get("gw-1").status.value == "AWAITING_COMPLETION"
    world.clock.advance(60)  # the runner was away a minute

    steady = FakeClock(now=7.0)  # a new process: its monotonic clock starts anywhere
    runner, world.link = memory_runner(world.root, world.clock, lambda sent: None, steady)
    with runner:
        job = runner.job_state("acme", "rollout")
        steady.advance(535)  # 595 s after the acceptance
        world.clock.advance(600)  # and the wall clock steps forward meanwhile
        runner.engine.step(0)
        assert job.targets.get("gw-1").status.value == "AWAITING_COMPLETION", "failed early"
        steady.advance(10)
        runner.engine.step(0)
        gw1 = job.targets.get("gw-1")
        assert (gw1.status.value, gw1.failure) == ("PROCESS_FAILED", "completion-timeout")


def test_a_stop_waits_for_the_replies_in_flight_at_most_its_drain(world: World) -> None:
    world.job(STOP)
    with world.runner(lambda sent: None) as runner:  # nobody answers
        started = _start(runner)
        runner.stop_job("acme", "rollout", "stopped by the test", drain=5)
        world.clock.advance(4)
        runner.engine.step(0)
        assert runner.job_state("acme", "rollout").running is not None
        world.clock.advance(2)
        (summary,) = runner.wait([started])
    assert summary.status is ExecutionStatus.STOPPED


def test_a_start_after_a_stop_sends_again_what_the_stopped_execution_never_heard_back(
    world: World,
) -> None:
    world.job(STOP)
    with world.runner(lambda sent: None) as runner:  # a first run: nobody answers; Ctrl-C
        started = _start(runner)
        runner.stop_job("acme", "rollout", "interrupted by SIGINT", drain=5)
        world.clock.advance(6)
        (stopped,) = runner.wait([started])
    assert stopped.status is ExecutionStatus.STOPPED

    with world.runner(lambda sent: ok()) as runner:  # the advice: `jobrunner start`
        summary = runner.start_job("acme", "rollout", runner.load(), None)
        runner.engine.step(0)
        assert world.link is not None and world.link.sent == [], "the old replies still count"
        world.clock.advance(30)  # past the deadline of the first execution's requests
        (ended,) = runner.wait([("acme", "rollout", summary.id)])
        job = runner.job_state("acme", "rollout")
        log = job.paths.storage.read(job.paths.log(summary.id)).decode()

    assert ended.status is ExecutionStatus.TERMINATED
    assert {c: job.targets.get(c).status.value for c in ("gw-1", "gw-2")} == {
        "gw-1": "PROCESS_OK",
        "gw-2": "PROCESS_OK",
    }
    assert sorted(s.client_id for s in world.link.sent) == ["gw-1", "gw-2"]
    assert "restarted before the reply" not in log
    assert "the step is sent again" in log


def test_only_what_left_is_logged_as_sent(world: World) -> None:
    world.job(STOP)

    def answers(sent: Sent) -> KuraPayload | None:
        return ok()

    with world.runner(answers) as runner:
        assert world.link is not None
        world.link.is_connected = False  # publishing fails: nothing leaves
        runner.apply(runner.plan(runner.load()))
        runner.engine.step(0)
        log = runner.job_state("acme", "rollout")
        targets = {t.client_id: t.message for t in log.targets}
    text = (world.root / "state/scopes/acme/jobs/rollout/executions/000001/log.txt").read_text()
    assert " sent " not in text
    assert targets == {
        "gw-1": "not sent: the broker connection is down; will retry",
        "gw-2": "not sent: the broker connection is down; will retry",
    }


def test_a_turn_writes_the_jobs_with_something_queued_and_only_those(world: World) -> None:
    world.job(STOP)
    with world.runner(lambda sent: ok()) as runner:
        (started,) = runner.apply(runner.plan(runner.load())).started
        (summary,) = runner.wait([started])
        job = runner.engine.jobs[("acme", "rollout")]
        flushed: list[bool] = []
        real = job.state.flush

        def counted(durable: bool = False) -> None:
            flushed.append(durable)
            real(durable)

        job.state.flush = counted  # type: ignore[method-assign]
        for _ in range(5):
            runner.engine.step(0)
        assert flushed == [], "an idle job is not written every turn"

        # a line for a job with no running execution (an anomaly) is still written
        job.state.log(summary.id).write("gw-1", "anomaly: a reply after the end")
        runner.engine.step(0)
        assert len(flushed) == 1
    text = (world.root / "state/scopes/acme/jobs/rollout/executions/000001/log.txt").read_text()
    assert text.rstrip().endswith("gw-1: anomaly: a reply after the end")


def test_any_reply_says_the_device_is_there_and_when(world: World) -> None:
    world.job(STOP)
    slow_gw2 = lambda sent: None if sent.client_id == "gw-2" else ok()  # noqa: E731
    with world.runner(slow_gw2) as runner:  # no BIRTH was ever heard of either
        _start(runner)
        began = world.clock.now
        world.clock.advance(20)
        assert world.link is not None
        (late,) = [s for s in world.link.sent if s.client_id == "gw-2"]
        assert world.link.reply(late.tag.request_id, ok()) is True  # within its 30 s
        runner.engine.step(0)
        registry = runner.registry.scope("acme")
        seen = {cid: registry.get(cid) for cid in ("gw-1", "gw-2")}

    assert {cid: r.status.value for cid, r in seen.items() if r} == {
        "gw-1": "CONNECTED",
        "gw-2": "CONNECTED",
    }
    assert {cid: r.last_seen.timestamp() for cid, r in seen.items() if r and r.last_seen} == {
        "gw-1": began,
        "gw-2": began + 20,
    }


def test_a_notification_says_the_device_is_there_and_when(world: World) -> None:
    world.job(DOWNLOAD, devices="[gw-1]")
    with world.runner(lambda sent: ok()) as runner:  # no BIRTH was ever heard of it
        _start(runner)
        assert world.link is not None
        (sent,) = world.link.sent
        assert sent.operation_id is not None
        runner.registry.scope("acme").disconnected("gw-1", datetime.fromtimestamp(1.0, UTC))
        world.clock.advance(120)
        progress = _notification(**{"dp.download.progress": Metric.int32(40)})
        world.link.notify("gw-1", sent.operation_id, ["download"], progress)
        runner.engine.step(0)
        gw1 = runner.registry.scope("acme").get("gw-1")

    assert gw1 is not None and gw1.status.value == "CONNECTED"
    assert gw1.last_seen is not None and gw1.last_seen.timestamp() == world.clock.now


def test_a_busy_device_does_not_write_a_line_per_reply(tmp_path: Path) -> None:
    from datetime import UTC, datetime  # noqa: PLC0415

    from jobrunner.state.registry import HEARD_EVERY, DeviceRegistry  # noqa: PLC0415

    with DeviceRegistry(tmp_path) as registry:
        scope = registry.scope("acme")
        at = datetime(2027, 1, 1, tzinfo=UTC).timestamp()
        for second in range(int(HEARD_EVERY) * 3):
            scope.heard("gw-1", at + second)
        scope.missing("gw-1", datetime.fromtimestamp(at + 200, UTC))
        scope.heard("gw-1", at + 201)  # back: said at once, whatever the last line's age
        assert scope.get("gw-1").status.value == "CONNECTED"  # type: ignore[union-attr]
    lines = (tmp_path / "scopes" / "acme" / "devices.journal").read_text().splitlines()
    assert len(lines) == 1 + 3 + 2  # the header, one line a HEARD_EVERY, the LWT, the return


# --- what a reply's timeout says of the device ----------------------------------------------

STOP_THEN_DELETE_KEY = (
    STOP
    + """
- {name: drop-ca, definition: Keystore Item Delete, timeout: 30s,
   properties: {keystoreId: SSLKeystore, alias: old-ca}}
"""
)


def _timed_out(runner: Runner, clock: FakeClock, client_id: str, job: str = "rollout") -> str:
    """Pass the 30 s of the step on the engine's clock; the target's failure message."""
    clock.advance(31)
    runner.engine.step(0)
    target = runner.job_state("acme", job).targets.get(client_id)
    assert (target.status.value, target.failure) == ("PROCESS_FAILED", "timeout")
    assert target.message is not None
    return target.message


def test_a_timeout_of_a_device_that_answered_before_says_it_is_online_and_names_the_app(
    world: World,
) -> None:
    world.job(STOP_THEN_DELETE_KEY, devices="[gw-1]")
    no_keys = lambda sent: None if sent.request.app_id == "KEYS-V1" else ok()  # noqa: E731
    with world.runner(no_keys) as runner:  # no BIRTH: it answered DEPLOY-V2, not KEYS-V1
        answered = world.clock.now
        _start(runner)
        runner.engine.step(0)  # the second step's request goes out
        message = _timed_out(runner, world.clock, "gw-1")

    seen = datetime.fromtimestamp(answered, UTC)
    assert message == (
        f"no reply in 30s: the device is online (last seen {seen:%Y-%m-%d %H:%M:%S} UTC) but"
        " did not answer this KEYS-V1 request in time; no BIRTH of it is known, so it may not"
        " run KEYS-V1 (a Kura gateway does not answer a request for an application it does"
        " not run)"
    )


def test_a_timeout_remembers_the_replies_an_earlier_run_heard(world: World) -> None:
    world.job(STOP, devices="[gw-1]")
    with world.runner(lambda sent: ok()) as runner:  # `run` or `reconcile --wait`, no daemon
        runner.wait([_start(runner)])
    world.job(STOP, devices="[gw-1]", name="again")
    with world.runner(lambda sent: None) as runner:  # the next one: gw-1 does not answer
        _start(runner)
        message = _timed_out(runner, world.clock, "gw-1", "again")

    assert message.startswith("no reply in 30s: the device is online (last seen ")
    assert "did not answer this DEPLOY-V2 request in time" in message
    assert "never" not in message


def test_a_timeout_of_a_device_never_heard_says_so_and_that_it_may_lack_the_app(
    world: World,
) -> None:
    world.job(STOP, devices="[gw-1]")
    with world.runner(lambda sent: None) as runner:
        _start(runner)
        message = _timed_out(runner, world.clock, "gw-1")

    assert message.startswith(
        "no reply in 30s; no message was ever heard from this device (a BIRTH published"
        " before the runner first listened is not repeated): is it online, and is its client"
        " id right?"
    )
    assert message.endswith(
        "; no BIRTH of it is known, so it may not run DEPLOY-V2 (a Kura"
        " gateway does not answer a request for an application it does"
        " not run)"
    )


def test_a_timeout_of_a_device_whose_birth_lists_the_app_says_only_that_it_did_not_answer(
    world: World,
) -> None:
    world.job(STOP, devices="[gw-1]")
    with world.runner(lambda sent: None) as runner:
        assert world.link is not None
        facts = DeviceFacts(application_ids=("CMD-V1", "DEPLOY-V2"))
        world.link.birth("acme", "gw-1", facts, world.clock.now)
        runner.engine.step(0)
        born = world.clock.now
        _start(runner)
        message = _timed_out(runner, world.clock, "gw-1")

    seen = datetime.fromtimestamp(born, UTC)
    assert message == (
        f"no reply in 30s: the device is online (last seen {seen:%Y-%m-%d %H:%M:%S} UTC) but"
        " did not answer this DEPLOY-V2 request in time"
    )


def test_after_a_broker_restart_the_devices_that_answer_count_as_connected(world: World) -> None:
    answering = {"gw-1", "gw-2"}  # gw-3 stays away
    with world.runner(lambda sent: ok() if sent.client_id in answering else None) as runner:
        connects: list[str] = []
        runner.engine.connect_hooks.append(lambda event: connects.append(event.client_id))
        assert world.link is not None
        world.link.connection(True, "connected")
        for client_id in ("gw-1", "gw-2", "gw-3"):
            world.link.birth("acme", client_id)
        runner.engine.step(0)
        world.link.connection(False, "connection lost")
        world.link.connection(True, "reconnected", session_kept=True)  # the broker queued
        runner.engine.step(0)
        assert world.link.sent == [], "a kept session lost nothing: nothing is asked"
        connects.clear()

        world.link.connection(False, "connection lost")
        world.link.connection(True, "reconnected", session_kept=False)  # the broker restarted
        world.link.birth("acme", "gw-2")  # its BIRTH came after the runner subscribed again
        runner.engine.step(0)
        runner.engine.step(0)  # the answers
        asked = sorted(s.client_id for s in world.link.sent)
        assert asked == ["gw-1", "gw-3"]
        assert {s.request.name for s in world.link.sent} == {"DEPLOY-V2 GET/packages"}
        assert sorted(connects) == ["gw-1", "gw-2"], "each counted once; gw-3 not at all"
        world.clock.advance(31)
        runner.engine.step(0)
        assert runner.engine.link.in_flight() == 0, "an unanswered question expires"
        gw1 = runner.registry.scope("acme").get("gw-1")
        assert gw1 is not None and gw1.status.value == "CONNECTED"


def test_requests_whose_commit_took_past_the_lease_are_not_published(world: World) -> None:
    world.job(STOP)
    with world.runner(lambda sent: ok()) as runner:
        connection = runner.engine.connection
        connection.leases_valid_until = time.monotonic() + 3600  # several runners: leased
        devices = runner.engine.devices
        flush = devices.flush

        def slow_commit() -> None:  # the database answers after the lease has ended
            connection.leases_valid_until = time.monotonic() - 1
            flush()

        devices.flush = slow_commit  # type: ignore[method-assign]
        (started,) = runner.apply(runner.plan(runner.load())).started
        runner.engine.step(0)
        assert world.link is not None and world.link.sent == [], "published past the lease"
        job = runner.job_state("acme", "rollout")
        assert {t.message for t in job.targets} == {
            "not sent: the lease ended while the request was recorded; will retry"
        }

        devices.flush = flush  # type: ignore[method-assign]
        connection.leases_valid_until = time.monotonic() + 3600  # renewed
        (summary,) = runner.wait([started])
    assert summary.counts == {"PROCESS_OK": 2}
    assert sorted(s.client_id for s in world.link.sent) == ["gw-1", "gw-2"]


def test_an_ended_execution_leaves_one_journal_line_per_target(world: World) -> None:
    world.job(STOP + "\n" + STOP.replace("name: stop", "name: again"))
    with world.runner(lambda sent: ok()) as runner:
        (summary,) = runner.wait([_start(runner)])
        job = runner.job_state("acme", "rollout")
        journal = job.paths.storage.read(job.paths.targets).decode().splitlines()
    assert summary.counts == {"PROCESS_OK": 2}
    # a header and a line per target: loading the job at the next start costs its targets,
    # not the history of their steps
    assert len(journal) == 3, journal
