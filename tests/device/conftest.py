"""Fixtures of the device client tests: an event recorder and a scripted Kura responder.

The responder is a plain paho client that plays the devices: it answers each request with a
real KuraPayload, unless the test scripts it to drop, hold (release later), duplicate,
misdirect or garble its reply. Tests wait on conditions with generous timeouts; nothing
depends on timing.
"""

from __future__ import annotations

import itertools
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from jobrunner.device.client import DeviceClient
from jobrunner.device.model import Anomaly, AnomalyKind, PayloadCodec, Pending, Tracked
from jobrunner.device.payload import KuraPayload, Metric, ProtobufCodec
from jobrunner.device.settings import BrokerSettings
from jobrunner.device.topics import LifecycleTopic, NotifyTopic, RequestTopic, parse_topic
from jobrunner.simulator.broker import RunningBroker

WAIT = 15.0  # seconds: generous, only ever reached when a test fails
CODEC = ProtobufCodec()
_numbers = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class Recorder:
    """A ClientEvents handler that records everything, with a condition to wait on."""

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.replies: list[tuple[Pending[str], KuraPayload]] = []
        self.notifications: list[tuple[Tracked[str], NotifyTopic, KuraPayload]] = []
        self.lifecycles: list[tuple[LifecycleTopic, KuraPayload]] = []
        self.anomalies: list[Anomaly] = []
        self.connections: list[tuple[bool, str]] = []
        self.fail_next_reply = False

    def _add(self, items: list[Any], item: Any) -> None:
        with self.changed:
            items.append(item)
            self.changed.notify_all()

    def reply(self, pending: Pending[str], payload: KuraPayload) -> None:
        self._add(self.replies, (pending, payload))
        if self.fail_next_reply:
            self.fail_next_reply = False
            raise RuntimeError("a handler bug")

    def notification(self, tracked: Tracked[str], topic: NotifyTopic, payload: KuraPayload) -> None:
        self._add(self.notifications, (tracked, topic, payload))

    def lifecycle(self, topic: LifecycleTopic, payload: KuraPayload) -> None:
        self._add(self.lifecycles, (topic, payload))

    def anomaly(self, anomaly: Anomaly) -> None:
        self._add(self.anomalies, anomaly)

    def connection(self, connected: bool, reason: str) -> None:
        self._add(self.connections, (connected, reason))

    def wait(self, predicate: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
        with self.changed:
            if not self.changed.wait_for(predicate, timeout):
                raise AssertionError(f"timed out waiting for {what}")

    def reply_for(self, request_id: str) -> KuraPayload:
        self.wait(lambda: any(p.request_id == request_id for p, _ in self.replies), request_id)
        return next(payload for p, payload in self.replies if p.request_id == request_id)

    def anomaly_of(self, kind: AnomalyKind, needle: str = "") -> Anomaly:
        def found() -> bool:
            return any(a.kind is kind and needle in str(a) for a in self.anomalies)

        self.wait(found, f"a {kind} anomaly mentioning {needle!r}")
        return next(a for a in self.anomalies if a.kind is kind and needle in str(a))


@dataclass
class Received:
    topic: RequestTopic
    payload: KuraPayload
    qos: int
    retain: bool


Behaviour = Callable[["Responder", Received], None]


@dataclass
class Responder:
    """Devices of one broker: answers requests addressed to `$EDC/{account}/#`."""

    broker: RunningBroker
    accounts: tuple[str, ...]
    behaviour: Behaviour | None = None
    codec: PayloadCodec = field(default_factory=ProtobufCodec)
    received: list[Received] = field(default_factory=list)
    held: list[tuple[str, bytes]] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def __post_init__(self) -> None:
        self._ready = threading.Event()
        self.mqtt = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=unique("responder"), clean_session=True
        )
        self.mqtt.on_connect = self._on_connect
        # Cleared on a disconnect, so that wait_resubscribed() waits for the new subscription.
        self.mqtt.on_disconnect = lambda *args: self._ready.clear()
        self.mqtt.on_subscribe = lambda *args: self._ready.set()
        self.mqtt.on_message = self._on_message
        self.mqtt.reconnect_delay_set(1, 2)

    def start(self) -> Responder:
        self.mqtt.connect(self.broker.host, self.broker.port)
        self.mqtt.loop_start()
        assert self._ready.wait(WAIT), "the responder could not subscribe"
        return self

    def stop(self) -> None:
        self.mqtt.disconnect()
        self.mqtt.loop_stop()

    def _on_connect(self, client: mqtt.Client, *_: Any) -> None:
        self._ready.clear()
        # Requests only: METHOD segment at position 4 is never REPLY/NOTIFY for requests;
        # those are filtered in _on_message.
        client.subscribe([(f"$EDC/{account}/#", 0) for account in self.accounts])

    def wait_resubscribed(self) -> None:
        assert self._ready.wait(WAIT), "the responder did not resubscribe"

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        try:
            topic = parse_topic(message.topic)
        except ValueError:
            return
        if not isinstance(topic, RequestTopic):
            return
        payload = self.codec.decode(bytes(message.payload))
        received = Received(topic, payload, message.qos, message.retain)
        with self.changed:
            self.received.append(received)
            self.changed.notify_all()
        (self.behaviour or Responder.answer)(self, received)

    # -- what a device may do ----------------------------------------------------------------

    @staticmethod
    def reply_topic(received: Received, account: str | None = None, app: str | None = None) -> str:
        requester = received.payload.string("requester.client.id")
        request_id = received.payload.string("request.id")
        return (
            f"$EDC/{account or received.topic.account}/{requester}/"
            f"{app or received.topic.app_id}/REPLY/{request_id}"
        )

    @staticmethod
    def ok(code: int = 200, **metrics: Metric) -> bytes:
        payload = KuraPayload.of({"response.code": Metric.int32(code), **metrics})
        return CODEC.encode(payload)

    def answer(self, received: Received) -> None:
        reply = KuraPayload.of({"response.code": Metric.int32(200)})
        self.publish(self.reply_topic(received), self.codec.encode(reply))

    def hold(self, received: Received) -> None:
        with self.changed:
            self.held.append((self.reply_topic(received), self.ok()))
            self.changed.notify_all()

    def release(self, count: int | None = None) -> None:
        with self.changed:
            chosen = self.held[:count] if count is not None else list(self.held)
            del self.held[: len(chosen)]
        for topic, data in chosen:
            self.publish(topic, data)

    def publish(self, topic: str, data: bytes, qos: int = 0) -> None:
        self.mqtt.publish(topic, data, qos=qos)

    def wait_received(self, count: int) -> list[Received]:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.received) >= count, WAIT), (
                f"the responder got {len(self.received)} of {count} requests"
            )
            return list(self.received)

    def wait_held(self, count: int) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.held) >= count, WAIT)


@pytest.fixture
def account() -> str:
    return unique("acct")


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def make_client(
    broker: RunningBroker, recorder: Recorder, *accounts: str, **options: Any
) -> DeviceClient[str]:
    settings = BrokerSettings.from_url(broker.url, client_id=unique("runner"))
    client: DeviceClient[str] = DeviceClient(settings, recorder, **options)
    for name in accounts:
        client.add_account(name)
    return client


@pytest.fixture
def client(broker: RunningBroker, recorder: Recorder, account: str) -> Iterator[DeviceClient[str]]:
    started = make_client(broker, recorder, account)
    started.start(timeout=WAIT)
    yield started
    started.stop()


@pytest.fixture
def responder(broker: RunningBroker, account: str) -> Iterator[Responder]:
    running = Responder(broker, (account,)).start()
    yield running
    running.stop()
