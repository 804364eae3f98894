"""Notifications end to end: a daemon, a real broker and fleet, a real HTTP receiver."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobrunner.engine.service.daemon import Daemon
from jobrunner.engine.status import failure_view
from jobrunner.manifests import load_manifests
from jobrunner.manifests.secrets import SecretResolver
from jobrunner.notify.delivery import Notifier
from jobrunner.simulator.faults import DelayFault, FailFault, FaultPlan, Selector

from ..engine.conftest import Scenario, Watch
from .conftest import Receiver

pytestmark = pytest.mark.integration

CHECK = "- {name: check, definition: Command Execution, timeout: 5s, properties: {command: echo}}"
TOKEN = "Bearer hook-token-42"


def notification(scenario: Scenario, url: str, extra: str = "", name: str = "ops") -> None:
    """A Notification manifest; `extra`: more lines of its spec, indented by two spaces."""
    scenario.write(
        f"notify-{name}.yaml",
        "apiVersion: jobrunner/v1\nkind: Notification\n"
        f"metadata: {{name: {name}, scope: {scenario.scope}}}\n"
        f"spec:\n  url: {url}\n"
        "  headers:\n    - {name: Authorization, value: {valueFrom: {env: HOOK_TOKEN}}}\n"
        + (extra + "\n" if extra else ""),
    )


@pytest.fixture
def daemon(scenario: Scenario, monkeypatch: pytest.MonkeyPatch) -> Iterator[Daemon]:
    """`jobrunner watch` in this process, with its notifier."""
    monkeypatch.setenv("HOOK_TOKEN", TOKEN)
    config = scenario.config()
    notifier = Notifier(scenario.state_dir, SecretResolver.from_environment(), "runner-test")
    running = Daemon(config, debounce_ms=100, drain=1, companions=[notifier])
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while running.loaded is None and time.monotonic() < deadline:
        time.sleep(0.02)
    yield running
    running.stop()
    thread.join(timeout=20)


ROLLOUT = """\
rollout:
  waves:
    - {name: canary, devices: [gw-0001]}
    - {name: rest}
"""


def test_an_aborted_rollout_tells_each_event_once_as_cloudevents(
    scenario: Scenario, receiver: Receiver, daemon: Daemon
) -> None:
    scenario.registry(3)
    scenario.fleet(3, FaultPlan(fail=(FailFault(Selector("gw-0001", "command"), 500),)))
    notification(scenario, receiver.url)
    scenario.job("bridge", CHECK, extra=ROLLOUT)
    receiver.wait_for(lambda: bool(receiver.events("jobrunner.execution.ended")), "the end")
    time.sleep(1.0)  # anything more would come now

    kinds = [e["type"] for e in receiver.events()]
    assert kinds == [
        "jobrunner.target.failed",
        "jobrunner.rollout.aborted",
        "jobrunner.execution.ended",
    ]
    failed, aborted, ended = receiver.events()
    for event in receiver.events():
        assert event["specversion"] == "1.0"
        assert event["source"] == f"/scopes/{scenario.scope}/jobs/bridge"
        assert event["datacontenttype"] == "application/json"
        assert event["time"].endswith("Z") and event["id"]
        assert event["data"]["scope"] == scenario.scope and event["data"]["job"] == "bridge"
    assert len({e["id"] for e in receiver.events()}) == 3
    assert failed["subject"] == "targets/gw-0001"
    assert failed["data"]["clientId"] == "gw-0001"
    recorded = scenario.state("bridge").targets.get("gw-0001")
    assert recorded.failure is not None
    assert failed["data"]["failure"] == failure_view(recorded.failure)
    assert failed["data"]["message"] == recorded.message
    assert "canary" in aborted["data"]["reason"]
    assert ended["data"]["status"] == "ABORTED"
    assert ended["data"]["counts"] == {"PROCESS_FAILED": 1, "PROCESS_AWAITING": 2}
    headers = receiver.headers[0]
    assert headers["Authorization"] == TOKEN
    assert headers["Content-Type"] == "application/cloudevents+json; charset=utf-8"


def test_a_passing_rollout_tells_each_wave_and_a_filter_keeps_other_jobs_out(
    scenario: Scenario, receiver: Receiver, daemon: Daemon
) -> None:
    scenario.registry(3)
    scenario.fleet(3)
    notification(scenario, receiver.url, "  jobs: [bridge]\n  events: [rollout.wave.passed]")
    scenario.job("other", CHECK)
    scenario.job("bridge", CHECK, extra=ROLLOUT)
    receiver.wait_for(lambda: len(receiver.events()) >= 2, "both waves")
    time.sleep(1.0)
    waves = [(e["data"]["wave"], e["data"]["decision"]) for e in receiver.events()]
    assert waves == [
        ("canary", "1/1 PROCESS_OK = 100% >= 100%; passed"),
        ("rest", "2/2 PROCESS_OK = 100% >= 100%; passed"),
    ]


def test_a_receiver_that_refuses_for_good_gives_up_that_event_only(
    scenario: Scenario, receiver: Receiver, daemon: Daemon, caplog: pytest.LogCaptureFixture
) -> None:
    scenario.fleet(1)
    receiver.status = 404
    notification(scenario, receiver.url, "  events: [execution.ended]")
    scenario.job("first", CHECK)
    receiver.wait_for(lambda: receiver.attempts == 1, "the first attempt")
    time.sleep(1.5)
    assert receiver.attempts == 1  # a 404 is not asked again
    assert "answered 404 to event jobrunner.execution.ended" in caplog.text
    receiver.status = 200
    scenario.job("second", CHECK)
    receiver.wait_for(lambda: len(receiver.events()) == 1, "the next event")
    assert receiver.events()[0]["source"].endswith("/jobs/second")


def test_a_receiver_down_across_a_runner_killed_mid_delivery_gets_each_event_once(
    scenario: Scenario, receiver: Receiver
) -> None:
    receiver.status = 503
    slow = FaultPlan(slow=(DelayFault(Selector("*", "command"), 0.3),))
    scenario.registry(4)
    scenario.fleet(4, slow)
    notification(scenario, receiver.url, "  events: [execution.ended, target.failed]")
    watch = Watch(scenario)
    env_token = {"HOOK_TOKEN": TOKEN}
    try:
        _start(watch, env_token)
        for run in ("1", "2", "3"):
            scenario.job(f"job-{run}", CHECK)
        outbox = scenario.state_dir / "outbox"
        watch.wait_for(lambda: _waiting(outbox) >= 3, "three events in the outbox")
        # the engine was not held up by the receiver: every execution ended
        watch.wait_for(lambda: "retried" in watch.text() or "tried again" in watch.text(), "retry")
        assert watch.process is not None
        watch.process.send_signal(signal.SIGKILL)
        watch.process.wait(timeout=10)
        assert receiver.events() == [] and receiver.attempts >= 1

        receiver.status = 200
        _start(watch, env_token)
        receiver.wait_for(lambda: len(receiver.events()) >= 3, "the events after the restart")
        time.sleep(2.0)  # a duplicate would come now
        ended = receiver.events("jobrunner.execution.ended")
        assert sorted(e["source"].rpartition("/")[2] for e in ended) == ["job-1", "job-2", "job-3"]
        assert len(receiver.events()) == 3
        assert len({e["id"] for e in receiver.events()}) == 3
        assert watch.terminate() == 0
    finally:
        if watch.process is not None and watch.process.poll() is None:
            watch.process.kill()
            watch.process.wait()


def _start(watch: Watch, env: dict[str, str]) -> None:
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the child inherits it
    try:
        watch.start()
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _waiting(outbox: Path) -> int:
    """Events written to the outbox (delivered or not)."""
    return sum(len(path.read_text().splitlines()) - 1 for path in outbox.rglob("events.*.journal"))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("url: ftp://x/y", "string should match pattern"),
        ("url: http://h/x\n  events: [execution.started]", "execution.ended"),
        (
            "url: http://h/x\n  headers: [{name: Content-Type, value: text/plain}]",
            "the header Content-Type is set by jobrunner",
        ),
        ("url: http://h/x\n  headers: [{name: 'a b', value: x}]", "string should match pattern"),
        ("url: http://h/x\n  events: []", "at least 1 item"),
    ],
)
def test_bad_notifications_are_refused_at_their_line(
    tmp_path: Path, spec: str, message: str
) -> None:
    (tmp_path / "n.yaml").write_text(
        "apiVersion: jobrunner/v1\nkind: Notification\nmetadata: {name: ops, scope: acme}\n"
        f"spec:\n  {spec}\n"
    )
    found = load_manifests([tmp_path], "acme")
    assert found.notifications == {}
    assert any(message in d.message.lower() or message in d.message for d in found.errors), [
        d.message for d in found.errors
    ]
    assert all(d.line >= 4 for d in found.errors)


def test_a_duplicate_name_and_an_unknown_job_are_reported(tmp_path: Path) -> None:
    body = (
        "apiVersion: jobrunner/v1\nkind: Notification\nmetadata: {name: ops, scope: acme}\n"
        "spec:\n  url: http://h/x\n  jobs: [bridg]\n"
    )
    (tmp_path / "a.yaml").write_text(body)
    (tmp_path / "b.yaml").write_text(body)
    (tmp_path / "job.yaml").write_text(
        "apiVersion: jobrunner/v1\nkind: Job\nmetadata: {name: bridge, scope: acme}\n"
        f"spec:\n  targets: {{all: true}}\n  steps:\n    {CHECK}\n"
    )
    found = load_manifests([tmp_path], "acme")
    errors = [str(d) for d in found.errors]
    assert any("b.yaml:3: notification 'ops' is already declared" in e for e in errors), errors
    warnings = [str(d) for d in found.warnings]
    assert any("a.yaml:6: warning: notification 'ops': no job 'bridg'" in w for w in warnings), (
        warnings
    )
    assert any("did you mean 'bridge'?" in w for w in warnings)
    assert list(found.notifications) == [("acme", "ops")]


def test_reconcile_run_alone_posts_its_events_before_it_exits(
    scenario: Scenario, receiver: Receiver
) -> None:
    scenario.registry(2)
    scenario.fleet(2)
    notification(scenario, receiver.url, "  events: [execution.ended]")
    scenario.job("alone", CHECK)
    env = {**os.environ, "HOOK_TOKEN": TOKEN}
    done = subprocess.run(
        scenario.reconcile_command(),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    (event,) = receiver.events()  # posted by the command itself, no daemon needed
    assert event["data"]["status"] == "TERMINATED" and event["source"].endswith("/jobs/alone")
    assert receiver.headers[0]["Authorization"] == TOKEN


def test_what_reconcile_could_not_post_waits_for_the_next_watch(
    scenario: Scenario, receiver: Receiver
) -> None:
    scenario.registry(1)
    scenario.fleet(1)
    receiver.status = 503
    notification(scenario, receiver.url, "  events: [execution.ended]")
    scenario.job("later", CHECK)
    env = {**os.environ, "HOOK_TOKEN": TOKEN}
    done = subprocess.run(
        scenario.reconcile_command(),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr  # a receiver that is down fails no execution
    assert "1 notification event(s) not delivered yet" in done.stderr
    assert "the next `jobrunner watch` posts them" in done.stderr
    receiver.status = 200
    watch = Watch(scenario)
    try:
        _start(watch, {"HOOK_TOKEN": TOKEN})
        receiver.wait_for(lambda: len(receiver.events()) == 1, "the event, posted by watch")
        assert watch.terminate() == 0
    finally:
        if watch.process is not None and watch.process.poll() is None:
            watch.process.kill()
            watch.process.wait()
