"""Scopes are isolated and replies are not spoofable, against the real broker.

Two fleets in two Kura accounts hold the same client ids; the runner serves both accounts.
A job of scope A reaches only A's devices, whatever its manifest selects. A reply or a
notification is taken only from the account and device its request went to: a rogue client
on the broker that sniffs a request and answers it from another account, or notifies another
device's operation, is reported as an anomaly and changes nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from jobrunner.device.payload import KuraPayload, Metric, ProtobufCodec
from jobrunner.engine.link.events import Anomaly, Event
from jobrunner.simulator.config import FleetConfig, Timing
from jobrunner.simulator.faults import DropFault, FaultPlan, Selector
from jobrunner.simulator.fleet import Fleet

from ..conftest import FAST, Scenario

CODEC = ProtobufCodec()
WAIT = 15.0


def _other_scope(scenario: Scenario, devices: int) -> tuple[str, Fleet]:
    """Scope B: a registry and a fleet with the same client ids as scope A's, and more."""
    other = f"{scenario.scope}-b"
    scenario.registry(devices, "[fleet, only-in-b]", scope=other, file="registry-b")
    # Shared connections: the MQTT client ids stay distinct from A's (the broker would
    # otherwise take A's connections over); the client ids in the topics are the same.
    config = FleetConfig(
        devices=devices, broker=scenario.broker.url, account=other, timing=FAST, mode="shared"
    )
    fleet = Fleet(config)
    scenario.fleets.append(fleet)
    return other, fleet.start()


class Rogue:
    """A client on the same broker that sees A's requests (no ACLs) and answers them."""

    def __init__(self, scenario: Scenario, watched: str) -> None:
        self.requests: list[tuple[str, KuraPayload]] = []
        self.changed = threading.Condition()
        self.mqtt = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"rogue-{watched}")
        self.mqtt.on_message = self._on_message
        subscribed = threading.Event()
        self.mqtt.on_subscribe = lambda *args: subscribed.set()
        self.mqtt.connect(scenario.broker.host, scenario.broker.port)
        self.mqtt.loop_start()
        self.mqtt.subscribe(watched, qos=0)
        assert subscribed.wait(WAIT), "the rogue client could not subscribe"

    def _on_message(self, _c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        with self.changed:
            self.requests.append((message.topic, CODEC.decode(bytes(message.payload))))
            self.changed.notify_all()

    def first_request(self) -> KuraPayload:
        """The first request it sniffed, once there is one."""
        with self.changed:
            assert self.changed.wait_for(lambda: self.requests, WAIT)
        return self.requests[0][1]

    def publish(self, topic: str, payload: KuraPayload) -> None:
        self.mqtt.publish(topic, CODEC.encode(payload)).wait_for_publish(WAIT)

    def stop(self) -> None:
        self.mqtt.disconnect()
        self.mqtt.loop_stop()


@contextmanager
def rogue(scenario: Scenario, watched: str) -> Iterator[Rogue]:
    client = Rogue(scenario, watched)
    try:
        yield client
    finally:
        client.stop()


def test_a_job_reaches_only_the_devices_of_its_own_scope(scenario: Scenario) -> None:
    scenario.registry(3)
    fleet_a = scenario.fleet(3)
    scope_b, fleet_b = _other_scope(scenario, 9)
    one_step = "- {name: stop, definition: Bundle Stop, timeout: 2s, properties: {bundleId: 42}}"
    scenario.job("everything", one_step, targets="all: true")
    scenario.job("b-tag", one_step, targets="tags: [only-in-b]")
    scenario.job("b-only-device", one_step, targets="devices: [gw-0009]")

    with scenario.runner() as runner:
        plan = runner.plan(runner.load())
        assert scope_b in runner.accounts  # the runner could reach B: it serves that account
        applied = runner.apply(plan)
        runner.wait(applied.started)

    assert set(scenario.statuses("everything")) == {"gw-0001", "gw-0002", "gw-0003"}
    assert fleet_a.contacted() == {"gw-0001", "gw-0002", "gw-0003"}
    assert "b-tag" not in {name for _, name, _ in applied.started}  # matches nothing in A
    # gw-0009 exists only in B: the request went to A's gw-0009, which nobody answers.
    assert scenario.statuses("b-only-device") == {"gw-0009": (0, "PROCESS_FAILED")}
    assert fleet_b.contacted() == set()


def test_a_reply_from_another_account_is_an_anomaly_and_never_answers_the_request(
    scenario: Scenario,
) -> None:
    scenario.registry(2)
    scenario.fleet(2, FaultPlan(drop=(DropFault(Selector("gw-0001", "command")),)))
    scope_b, _ = _other_scope(scenario, 1)
    scenario.job(
        "check",
        "- {name: check, definition: Command Execution, timeout: 4s, properties: {command: ls}}",
    )
    anomalies: list[str] = []

    with (
        rogue(scenario, f"$EDC/{scenario.scope}/gw-0001/CMD-V1/#") as attacker,
        scenario.runner() as runner,
    ):
        runner.engine.listeners.append(_collect(anomalies))
        applied = runner.apply(runner.plan(runner.load()))

        def answer_from_b() -> None:
            request = attacker.first_request()
            reply = KuraPayload.of({"response.code": Metric.int32(200)})
            requester, request_id = (
                request.string("requester.client.id"),
                request.string("request.id"),
            )
            attacker.publish(f"$EDC/{scope_b}/{requester}/CMD-V1/REPLY/{request_id}", reply)

        spoofer = threading.Thread(target=answer_from_b)
        spoofer.start()
        runner.wait(applied.started)
        spoofer.join()

    assert scenario.statuses("check") == {
        "gw-0001": (0, "PROCESS_FAILED"),
        "gw-0002": (0, "PROCESS_OK"),
    }
    assert (scenario.messages("check")["gw-0001"] or "").startswith("no reply in 4s")
    [spoofed] = [a for a in anomalies if "came from account" in a]
    assert f"came from account {scope_b} app CMD-V1" in spoofed
    assert f"the request went to {scenario.scope}/gw-0001" in spoofed


def test_a_notification_for_another_devices_operation_is_an_anomaly(scenario: Scenario) -> None:
    scenario.registry(2)
    scenario.fleet(2, timing=Timing(download_seconds=60.0))  # accepted, never completed
    scope_b, _ = _other_scope(scenario, 2)
    scenario.job(
        "package",
        """
        - name: fetch
          definition: Package Download / Install
          completionTimeout: 5s
          properties: {uri: "http://repo.example.com/a.dp", name: a, version: "1", install: false}
        """,
    )
    anomalies: list[str] = []

    with (
        rogue(scenario, f"$EDC/{scenario.scope}/gw-0002/DEPLOY-V2/EXEC/download") as attacker,
        scenario.runner() as runner,
    ):
        runner.engine.listeners.append(_collect(anomalies))
        applied = runner.apply(runner.plan(runner.load()))

        def claim_completion() -> None:
            request = attacker.first_request()
            requester, job = request.string("requester.client.id"), request.integer("job.id")
            assert job is not None
            for account, device in ((scenario.scope, "gw-0001"), (scope_b, "gw-0002")):
                done = KuraPayload.of(
                    {
                        "job.id": Metric.int64(job),
                        "client.id": Metric.string(device),
                        "dp.download.status": Metric.string("COMPLETED"),
                        "dp.download.progress": Metric.int32(100),
                    }
                )
                topic = f"$EDC/{account}/{requester}/DEPLOY-V2/NOTIFY/{device}/download"
                attacker.publish(topic, done)

        spoofer = threading.Thread(target=claim_completion)
        spoofer.start()
        runner.wait(applied.started)
        spoofer.join()

    assert set(scenario.statuses("package").values()) == {(0, "PROCESS_FAILED")}
    assert (scenario.messages("package")["gw-0002"] or "").startswith(
        "no completion notification in 5s"
    )
    # gw-0001 claimed gw-0002's operation on the right account: taken for no one.
    assert any(
        f"came from {scenario.scope}/gw-0001 app DEPLOY-V2, but the operation went to"
        f" {scenario.scope}/gw-0002" in a
        for a in anomalies
    ), anomalies
    # The same operation id, notified on account B: no operation of B has that id.
    assert any(f"topic $EDC/{scope_b}/" in a and "which no step awaits" in a for a in anomalies)


def _collect(into: list[str]) -> Callable[[Event], None]:
    def listener(event: Event) -> None:
        if isinstance(event, Anomaly):
            into.append(event.message)

    return listener
