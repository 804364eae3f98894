"""A runner stand-in for the simulator's tests: plain paho, payload.py and topics.py.

Every test gets its own account, so that tests sharing the session broker never see each
other's devices. Waiting is always on an event with a generous timeout; to show that a
device did NOT answer, a test sends a second request to the same device afterwards and
waits for that one's reply: the device handles its requests in order and the broker keeps
their replies in order, so by then the first answer would have arrived.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from jobrunner.device.jsoncodec import JsonCodec
from jobrunner.device.payload import KuraPayload, Metric, ProtobufCodec
from jobrunner.device.topics import (
    LifecycleTopic,
    NotifyTopic,
    ReplyTopic,
    RequestTopic,
    lifecycle_filter,
    notify_filter,
    parse_topic,
    reply_filter,
)
from jobrunner.simulator.broker import RunningBroker
from jobrunner.simulator.config import FleetConfig, Timing
from jobrunner.simulator.fleet import Fleet

WAIT = 10.0
"""Seconds to wait for something that should happen (far above what it takes)."""

FAST = Timing(
    download_seconds=0.2,
    install_seconds=0.05,
    uninstall_seconds=0.05,
    activity_seconds=0.15,
    config_apply_seconds=0.05,
    reboot_seconds=0.3,
)


@dataclass
class Received:
    topic: str
    raw: bytes
    payload: KuraPayload
    parsed: Any = field(default=None)

    @property
    def code(self) -> int | None:
        metric = self.payload.metrics.get("response.code")
        return None if metric is None else int(metric.value)

    def value(self, name: str) -> Any:
        return self.payload.metrics[name].value

    def kind(self, name: str) -> str:
        return self.payload.metrics[name].type.name


class Requester:
    """Sends Kura requests as a runner does and collects what comes back."""

    def __init__(self, broker: RunningBroker, account: str, codec: Any = None) -> None:
        self.account = account
        self.client_id = f"runner-{uuid.uuid4().hex[:8]}"
        self.codec = codec or ProtobufCodec()
        self.messages: list[Received] = []
        self._changed = threading.Condition()
        self._ids = itertools.count(1)
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id)
        self.client.on_message = self._message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self.client.subscribe(
            [
                (reply_filter(account, self.client_id), 0),
                (notify_filter(account, self.client_id), 0),
                (lifecycle_filter(account), 0),
            ]
        )
        assert subscribed.wait(WAIT), "the test requester could not subscribe"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _message(self, client: Any, userdata: Any, message: mqtt.MQTTMessage) -> None:
        raw = bytes(message.payload)
        parsed = parse_topic(message.topic)
        if isinstance(parsed, LifecycleTopic) and parsed.kind.value == "LWT":
            payload = KuraPayload(body=raw)  # the will is a raw (empty) payload
        else:
            payload = self.codec.decode(raw)
        with self._changed:
            self.messages.append(Received(message.topic, raw, payload, parsed))
            self._changed.notify_all()

    # --- sending ------------------------------------------------------------------------------

    def send(
        self,
        device: str,
        app: str,
        method: str,
        *resources: str,
        metrics: Mapping[str, Metric] | None = None,
        body: bytes | None = None,
        request_id: str | None = None,
        with_ids: bool = True,
        raw: bytes | None = None,
    ) -> str:
        """Publish a request; returns its request id."""
        request_id = request_id or f"req-{next(self._ids)}"
        all_metrics: dict[str, Metric] = {}
        if with_ids:
            all_metrics["request.id"] = Metric.string(request_id)
            all_metrics["requester.client.id"] = Metric.string(self.client_id)
        all_metrics.update(metrics or {})
        topic = str(RequestTopic(self.account, device, app, method, tuple(resources)))
        data = raw if raw is not None else self.codec.encode(KuraPayload(all_metrics, body))
        self.client.publish(topic, data, 0)
        return request_id

    def call(self, device: str, app: str, method: str, *resources: str, **kwargs: Any) -> Received:
        """Send a request and wait for its reply."""
        return self.reply(self.send(device, app, method, *resources, **kwargs))

    # --- waiting ------------------------------------------------------------------------------

    def wait(self, predicate: Callable[[list[Received]], Any], timeout: float = WAIT) -> Any:
        """Wait until `predicate(messages)` is truthy; return its value."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                result = predicate(list(self.messages))
                if result:
                    return result
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"waited {timeout}s in vain; received: {self.topics()}")
                self._changed.wait(remaining)

    def replies(self, request_id: str) -> list[Received]:
        with self._changed:
            return [
                m
                for m in self.messages
                if isinstance(m.parsed, ReplyTopic) and m.parsed.request_id == request_id
            ]

    def reply(self, request_id: str, timeout: float = WAIT) -> Received:
        found: list[Received] = self.wait(lambda _: self.replies(request_id), timeout)
        return found[0]

    def notifications(
        self, device: str | None = None, resource: str | None = None
    ) -> list[Received]:
        with self._changed:
            return [
                m
                for m in self.messages
                if isinstance(m.parsed, NotifyTopic)
                and (device is None or m.parsed.device == device)
                and (resource is None or m.parsed.resources[0] == resource)
            ]

    def lifecycle(self, device: str | None = None, kind: str | None = None) -> list[Received]:
        with self._changed:
            return [
                m
                for m in self.messages
                if isinstance(m.parsed, LifecycleTopic)
                and (device is None or m.parsed.device == device)
                and (kind is None or m.parsed.kind.value == kind)
            ]

    def wait_lifecycle(self, device: str, kind: str, count: int = 1) -> list[Received]:
        found: list[Received] = self.wait(
            lambda _: len(self.lifecycle(device, kind)) >= count and self.lifecycle(device, kind)
        )
        return found

    def wait_notification(
        self, device: str, resource: str, status_metric: str, final: set[str], count: int = 1
    ) -> list[Received]:
        """Wait for `count` notifications whose `status_metric` is in `final`; all of the
        device's notifications on that resource so far."""

        def done(_: list[Received]) -> list[Received] | None:
            notes = self.notifications(device, resource)
            finished = [n for n in notes if n.payload.metrics[status_metric].value in final]
            return notes if len(finished) >= count else None

        found: list[Received] = self.wait(done)
        return found

    def answered_in_order(self, device: str) -> Received:
        """A barrier: a request the device surely answers, and its reply."""
        return self.call(device, "DEPLOY-V2", "GET", "bundles")

    def topics(self) -> list[str]:
        with self._changed:
            return [m.topic for m in self.messages]


@pytest.fixture
def account() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def requester(broker: RunningBroker, account: str) -> Iterator[Requester]:
    runner = Requester(broker, account)
    yield runner
    runner.close()


@pytest.fixture
def json_requester(broker: RunningBroker, account: str) -> Iterator[Requester]:
    runner = Requester(broker, account, JsonCodec())
    yield runner
    runner.close()


@pytest.fixture
def make_fleet(broker: RunningBroker, account: str) -> Iterator[Callable[..., Fleet]]:
    """Start fleets on the session broker (fast timing, small); all stopped at the end."""
    fleets: list[Fleet] = []

    def make(**overrides: Any) -> Fleet:
        settings: dict[str, Any] = {
            "devices": 3,
            "broker": broker.url,
            "account": account,
            "timing": FAST,
            "start_timeout": WAIT,
        }
        settings.update(overrides)
        fleet = Fleet(FleetConfig(**settings))
        fleets.append(fleet)
        return fleet.start()

    yield make
    for fleet in fleets:
        fleet.stop()
