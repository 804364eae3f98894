"""/livez, /readyz and the operator's metrics (build, rollouts, schedules, notifications) of a
running daemon, against a real broker, fleet and webhook receiver."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from jobrunner import __version__
from jobrunner.device import BrokerSettings
from jobrunner.engine.schedules.scheduler import schedules_of
from jobrunner.engine.service.daemon import Daemon
from jobrunner.manifests.secrets import SecretResolver
from jobrunner.notify.delivery import Notifier
from jobrunner.simulator.broker import free_port
from jobrunner.state.layout import StateDir
from jobrunner.state.records import ScheduleState
from jobrunner.web.metrics import FleetCollector
from jobrunner.web.reader import FleetReader
from jobrunner.web.server import Dashboard
from tests.notify.conftest import Receiver, receiver

from ..engine.conftest import Scenario
from .conftest import Served, serve

pytestmark = pytest.mark.integration

__all__ = ["receiver"]  # the webhook receiver of the notification tests, a fixture here too

STEP = "- {name: stop, definition: Bundle Stop, timeout: 5s, properties: {bundleId: 42}}"
TOKEN = "probe-token-0123456789"


def samples(served: Served, name: str) -> list[Sample]:
    response = served.get("/metrics")
    assert response.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    return list(families[name].samples) if name in families else []


def test_livez_is_the_loop_turning_and_readyz_adds_broker_and_state(served: Served) -> None:
    served.wait_for(lambda: served.get("/readyz").status_code == 200, "ready")
    for path in ("/livez", "/readyz", "/healthz"):
        response = served.get(path)
        assert (response.status_code, response.text) == (200, "ok\n"), path

    # An hour later by the health check's clock, the loop's heartbeat is stale.
    served.dashboard.health.clock = lambda: time.monotonic() + 3600
    try:
        for path in ("/livez", "/readyz", "/healthz"):
            response = served.get(path)
            assert response.status_code == 503, path
            assert response.text.startswith("unhealthy: the engine loop has not turned for 360")
    finally:
        served.dashboard.health.clock = time.monotonic
    assert served.get("/livez").status_code == 200  # it turns: alive again


def test_a_runner_without_its_broker_is_alive_but_not_ready(scenario: Scenario) -> None:
    config = dataclasses.replace(
        scenario.config(),
        broker=BrokerSettings.resolve(
            f"mqtt://127.0.0.1:{free_port()}", client_id=f"runner-{scenario.scope}"
        ),
    )
    served = serve(scenario, config=config)
    try:
        assert (served.get("/livez").status_code, served.get("/livez").text) == (200, "ok\n")
        for path in ("/readyz", "/healthz"):
            response = served.get(path)
            assert response.status_code == 503, path
            assert response.text == "unhealthy: not connected to the broker\n"
    finally:
        served.stop()


def test_livez_alone_needs_no_token_beyond_loopback(scenario: Scenario) -> None:
    served = serve(scenario, token=TOKEN, address="0.0.0.0:0")
    try:
        assert served.get("/livez").status_code == 200  # a container's probe carries none
        for path in ("/readyz", "/healthz", "/metrics", "/livez/../api/v1/jobs"):
            assert served.get(path).status_code == 401, path
        good = {"Authorization": f"Bearer {TOKEN}"}
        assert served.get("/readyz", headers=good).status_code in (200, 503)
    finally:
        served.stop()


def test_build_rollout_and_schedule_metrics(scenario: Scenario, served: Served) -> None:
    scenario.registry(2)
    scenario.fleet(2)
    rollout = (
        "rollout:\n  waves:\n    - {name: canary, devices: [gw-0001]}\n"
        "    - {name: rest, approval: required}\n"
    )
    scenario.job("wave", STEP, extra=rollout)
    scenario.job(
        "hourly", STEP, extra="schedules:\n  - {name: every-hour, type: interval, interval: 1h}\n"
    )

    assert [(s.labels, s.value) for s in samples(served, "jobrunner_build_info")] == [
        ({"version": __version__}, 1)
    ]

    def awaiting() -> bool:
        found = samples(served, "jobrunner_rollout_state")
        return any(s.labels["state"] == "awaiting-approval" for s in found)

    served.wait_for(awaiting, "the rollout to await its approval")
    (state,) = samples(served, "jobrunner_rollout_state")  # one series per job with a rollout
    assert (state.labels, state.value) == (
        {"scope": scenario.scope, "job": "wave", "state": "awaiting-approval", "wave": "rest"},
        1,
    )

    def scheduled() -> bool:
        return bool(samples(served, "jobrunner_schedule_next_fire_timestamp_seconds"))

    served.wait_for(scheduled, "the schedule's next fire")
    (fire,) = samples(served, "jobrunner_schedule_next_fire_timestamp_seconds")
    assert fire.labels == {"scope": scenario.scope, "job": "hourly", "schedule": "every-hour"}
    record = scenario.state("hourly").record
    recorded = record.schedules["every-hour"]
    since = recorded.last_fire or recorded.since
    assert since is not None
    due = schedules_of(record).times["every-hour"].next(since)
    assert due is not None and fire.value == due.timestamp()  # the fire due after it was applied
    assert since.timestamp() < fire.value <= since.timestamp() + 3600
    assert fire.value > datetime.now(UTC).timestamp()  # ahead of the present: it will fire


@pytest.fixture
def with_notifier(scenario: Scenario) -> Iterator[Served]:
    """The daemon with its dashboard and its notifier, as `watch --http` runs them."""
    notifier = Notifier(scenario.state_dir, SecretResolver.from_environment(), "runner-test")
    dashboard = Dashboard("127.0.0.1:0", None, scenario.state_dir, notifier.outcomes)
    daemon = Daemon(
        dataclasses.replace(
            scenario.config(),
            broker=dataclasses.replace(scenario.config().broker, client_id="runner-test"),
        ),
        debounce_ms=100,
        drain=1,
        companions=[notifier, dashboard],
    )
    thread = threading.Thread(target=daemon.run, name="daemon", daemon=True)
    thread.start()
    served = Served(scenario, daemon, dashboard, thread)
    served.wait_for(dashboard.listening.is_set, "the dashboard to listen")
    yield served
    served.stop()


def test_notification_posts_are_counted_by_outcome(
    scenario: Scenario, receiver: Receiver, with_notifier: Served
) -> None:
    served = with_notifier
    receiver.status = 503  # down at first: each post fails and is tried again
    scenario.write(
        "notify-ops.yaml",
        "apiVersion: jobrunner/v1\nkind: Notification\n"
        f"metadata: {{name: ops, scope: {scenario.scope}}}\n"
        f"spec:\n  url: {receiver.url}\n",
    )
    scenario.registry(1)
    scenario.fleet(1)
    scenario.job("check", STEP)
    to = f"{scenario.scope}/ops"

    def posts() -> dict[str, float]:
        return {
            s.labels["outcome"]: s.value
            for s in samples(served, "jobrunner_notifications")
            if s.name == "jobrunner_notifications_total" and s.labels["notification"] == to
        }

    served.wait_for(lambda: posts().get("failed", 0) >= 1, "a failed post")
    assert posts()["delivered"] == 0 and posts()["given-up"] == 0  # there, at 0, for alerts
    (waiting,) = samples(served, "jobrunner_outbox_events")
    assert waiting.labels == {"notification": to} and waiting.value >= 1

    receiver.status = 200
    served.wait_for(lambda: posts().get("delivered", 0) >= 1, "a delivered post")
    served.wait_for(
        lambda: [s.value for s in samples(served, "jobrunner_outbox_events")] == [0],
        "the outbox to empty",
    )
    assert posts()["delivered"] == len(receiver.events())
    assert posts()["given-up"] == 0


@dataclasses.dataclass
class Stopped:
    """A runner that is not running: what the collector asks of it besides the state."""

    client_id: str = "runner-test"

    def broker_connected(self) -> bool:
        return False

    def in_flight(self) -> int:
        return 0


def test_a_schedule_that_did_not_fire_is_behind_the_present(scenario: Scenario) -> None:
    scenario.registry(1)
    scenario.job(
        "hourly",
        STEP,
        run=None,
        extra="schedules:\n  - {name: every-hour, type: interval, interval: 1h}\n",
    )
    scenario.reconcile()
    now = datetime.now(UTC)
    job = scenario.state("hourly")
    job.record.schedules["every-hour"] = ScheduleState(since=now - timedelta(hours=3))
    job.save_record()  # as a daemon that stopped firing three hours ago would have left it
    job.close()

    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(FleetReader(StateDir(scenario.state_dir)), Stopped()))
    families = {
        f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())
    }
    (fire,) = families["jobrunner_schedule_next_fire_timestamp_seconds"].samples
    overdue = now.timestamp() - fire.value
    assert 2 * 3600 <= overdue <= 3 * 3600  # due within an hour of the last fire, never fired
