"""The floor: a bare paho-mqtt + protobuf script that drives the same Kura requests as the
runner's 3-step job (Command Execution, Bundle Stop, Bundle Start: three dependent
synchronous steps per device) with at most `window` requests in flight, recording nothing.

    python -m bench.floor --broker mqtt://127.0.0.1:PORT --devices 10000 --window 500

Prints one JSON line: {"seconds": ..., "requests": ..., "window": ..., "failed": ...}.
Requests carry the same metrics as jobrunner's (`request.id`, `requester.client.id`, the
step's own) and a timestamp; every reply is decoded and its `response.code` checked. One
paho client, TCP_NODELAY, the next request published from the reply's callback.
"""

from __future__ import annotations

import argparse
import json
import socket
import threading
import time
from collections import deque
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from jobrunner.device.payload import KuraPayload, Metric, ProtobufCodec

CLIENT_ID = "bench-floor"


def _steps() -> list[tuple[str, dict[str, Metric]]]:
    """(topic suffix, metrics) of the three steps, as jobrunner's operations build them."""
    command = {"command.command": Metric.string("true"), "command.run.async": Metric.boolean(False)}
    return [
        ("CMD-V1/EXEC/command", command),
        ("DEPLOY-V2/EXEC/stop/42", {}),
        ("DEPLOY-V2/EXEC/start/42", {}),
    ]


class Floor:
    """Three dependent steps per device, a window of requests in flight."""

    def __init__(self, host: str, port: int, account: str, devices: list[str], window: int):
        self.account = account
        self.devices = devices
        self.window = window
        self.codec = ProtobufCodec()
        self.steps = _steps()
        self.requester = Metric.string(CLIENT_ID)
        self.queue: deque[int] = deque(range(len(devices)))
        self.step_of = [0] * len(devices)
        self.sent = 0
        self.replies = 0
        self.failed = 0
        self.remaining = len(devices)
        self.done = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=CLIENT_ID,
            clean_session=True,
            protocol=MQTTProtocolVersion.MQTTv311,
        )
        self.client.on_socket_open = _no_delay
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.connect(host, port, 60)
        self.client.loop_start()
        self.client.subscribe(f"$EDC/{account}/{CLIENT_ID}/+/REPLY/+", 1)
        if not subscribed.wait(10):
            raise RuntimeError("no SUBACK from the broker")

    def _send(self, device: int) -> None:
        suffix, metrics = self.steps[self.step_of[device]]
        self.sent += 1
        payload = KuraPayload(
            metrics={
                **metrics,
                "request.id": Metric.string(f"{device}-{self.step_of[device]}"),
                "requester.client.id": self.requester,
            },
            timestamp=int(time.time() * 1000),
        )
        topic = f"$EDC/{self.account}/{self.devices[device]}/{suffix}"
        self.client.publish(topic, self.codec.encode(payload), 0)

    def _on_message(self, _client: Any, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        request_id = message.topic.rsplit("/", 1)[1]
        device_text, _, step_text = request_id.partition("-")
        device = int(device_text)
        if int(step_text) != self.step_of[device]:
            return  # not the awaited reply (a duplicate): nothing to do
        self.replies += 1
        reply = self.codec.decode(bytes(message.payload))
        if reply.integer("response.code") != 200:
            self.failed += 1
            self.step_of[device] = len(self.steps)
        else:
            self.step_of[device] += 1
        if self.step_of[device] < len(self.steps):
            self._send(device)
            return
        self.remaining -= 1
        if self.queue:
            self._send(self.queue.popleft())
        elif self.remaining == 0:
            self.done.set()

    def run(self, timeout: float) -> float:
        started = time.monotonic()
        for _ in range(min(self.window, len(self.queue))):
            self._send(self.queue.popleft())
        if not self.done.wait(timeout):
            raise RuntimeError(f"floor: {self.remaining} devices unfinished after {timeout:g}s")
        return time.monotonic() - started

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _no_delay(_client: Any, _userdata: Any, sock: Any) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def device_ids(count: int, prefix: str = "gw-", digits: int = 6) -> list[str]:
    """The client ids of the bench fleet (FleetConfig with `digits=6`)."""
    return [f"{prefix}{n:0{digits}d}" for n in range(1, count + 1)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.floor")
    parser.add_argument("--broker", required=True, help="mqtt://host:port")
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--account", default="bench")
    parser.add_argument("--window", type=int, default=500)
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args(argv)
    if not 1 <= args.window <= 1000:
        parser.error("--window must be between 1 and 1000")
    host, _, port = args.broker.removeprefix("mqtt://").partition(":")
    floor = Floor(host, int(port), args.account, device_ids(args.devices), args.window)
    try:
        seconds = floor.run(args.timeout)
    finally:
        floor.close()
    print(
        json.dumps(
            {
                "seconds": seconds,
                "requests": floor.sent,
                "window": args.window,
                "failed": floor.failed,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
