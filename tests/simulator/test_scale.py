"""Thousands of devices in shared mode answer a round of requests (excluded by default)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from jobrunner.device.payload import KuraPayload, Metric, ProtobufCodec
from jobrunner.device.topics import ReplyTopic, RequestTopic, parse_topic, reply_filter
from jobrunner.simulator.broker import RunningBroker
from jobrunner.simulator.fleet import Fleet

DEVICES = 2_000
WINDOW = 200
"""Requests in flight, well under mosquitto's 1,000 queued messages per client."""


class CountingRequester:
    """A lean runner stand-in: a window of requests in flight, replies counted by code."""

    def __init__(self, broker: RunningBroker, account: str) -> None:
        self.account, self.client_id = account, "scale-runner"
        self.codec = ProtobufCodec()
        self.codes: dict[str, int | None] = {}
        self.slots = threading.Semaphore(WINDOW)
        self.done = threading.Event()
        self.expected = 0
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id)
        self.client.on_message = self._reply
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self.client.subscribe(reply_filter(account, self.client_id), 0)
        assert subscribed.wait(10)

    def _reply(self, client: Any, userdata: Any, message: mqtt.MQTTMessage) -> None:
        topic = parse_topic(message.topic)
        assert isinstance(topic, ReplyTopic)
        code = self.codec.decode(bytes(message.payload)).integer("response.code")
        if topic.request_id not in self.codes:
            self.codes[topic.request_id] = code
            self.slots.release()
            if len(self.codes) == self.expected:
                self.done.set()

    def round(self, devices: list[str]) -> float:
        self.expected = len(devices)
        started = time.monotonic()
        for n, device in enumerate(devices):
            self.slots.acquire()
            payload = KuraPayload.of(
                {
                    "request.id": Metric.string(f"r{n}"),
                    "requester.client.id": Metric.string(self.client_id),
                }
            )
            topic = RequestTopic(self.account, device, "DEPLOY-V2", "EXEC", ("start", "42"))
            self.client.publish(str(topic), self.codec.encode(payload), 0)
        assert self.done.wait(60), f"{len(self.codes)} of {len(devices)} replies"
        return time.monotonic() - started

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.mark.slow
@pytest.mark.integration
def test_two_thousand_shared_mode_devices_answer_a_round_of_requests(
    broker: RunningBroker, account: str, make_fleet: Callable[..., Fleet]
) -> None:
    if broker.kind != "mosquitto":
        pytest.skip("the embedded broker is too slow for thousands of subscriptions")
    runner = CountingRequester(broker, account)
    try:
        started = time.monotonic()
        fleet = make_fleet(devices=DEVICES, mode="shared", connections=2, start_timeout=60.0)
        up = time.monotonic() - started
        assert len(fleet.online()) == DEVICES
        elapsed = runner.round(list(fleet.devices))
        assert set(runner.codes.values()) == {200}
        assert fleet.contacted("bundle-start") == set(fleet.devices)
        assert fleet.count(operation="bundle-start") == DEVICES
        print(f"{DEVICES} devices up in {up:.1f}s; {DEVICES / elapsed:.0f} round trips/s")
    finally:
        runner.close()
