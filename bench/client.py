"""Instructions of the MQTT client alone per request/reply round trip: a `DeviceClient`
connected to mosquitto sends the 3-step job's requests (as `bench.floor` does) to a simulated
fleet and reads their replies, with no engine, no state and no log.

    python -m bench.client [--small 1000] [--large 3000] [--window 200]
    python -m bench.client --broker URL --devices N  (one run, what valgrind counts)

The first form starts a broker and a fleet, counts each of `small` and `large` devices under
valgrind (cachegrind, instructions only, every thread of the process) and prints the
difference divided by the extra round trips: publishing, paho's network thread, the reader
thread's decoding and correlation, and the hand-over of each reply to a caller's thread.
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
from typing import Any

from bench.floor import device_ids
from bench.instructions import _instructions
from bench.measure import PYTHON, FleetProcess, broker
from bench.scenarios import SCOPE, SYNC_STEPS
from jobrunner.device.client import DeviceClient
from jobrunner.device.model import Anomaly, Pending, Request, Tracked
from jobrunner.device.payload import KuraPayload, Metric
from jobrunner.device.settings import BrokerSettings
from jobrunner.device.topics import LifecycleTopic, NotifyTopic

STEPS = (
    Request(
        "CMD-V1",
        "EXEC",
        ("command",),
        {"command.command": Metric.string("true"), "command.run.async": Metric.boolean(False)},
    ),
    Request("DEPLOY-V2", "EXEC", ("stop", "42")),
    Request("DEPLOY-V2", "EXEC", ("start", "42")),
)


class _Events:
    """Replies handed to the caller's thread, as the engine takes them."""

    def __init__(self) -> None:
        self.replies: queue.SimpleQueue[tuple[Pending[int], KuraPayload] | None] = (
            queue.SimpleQueue()
        )
        self.anomalies = 0

    def reply(self, pending: Pending[int], payload: KuraPayload) -> None:
        self.replies.put((pending, payload))

    def notification(self, tracked: Tracked[int], topic: NotifyTopic, payload: Any) -> None:
        pass

    def lifecycle(self, topic: LifecycleTopic, payload: KuraPayload) -> None:
        pass

    def anomaly(self, anomaly: Anomaly) -> None:
        self.anomalies += 1
        self.replies.put(None)

    def connection(self, connected: bool, reason: str) -> None:
        pass


def drive(url: str, devices: int, window: int) -> dict[str, int]:
    """Three dependent requests to each of `devices`, at most `window` in flight."""
    events = _Events()
    settings = BrokerSettings.from_url(url, client_id="bench-client")
    client: DeviceClient[int] = DeviceClient(settings, events, max_in_flight=window)
    client.add_account(SCOPE)
    client.start(30)
    ids = device_ids(devices)
    step_of = [0] * devices
    remaining, failed = devices, 0
    following = iter(range(devices))
    try:
        with client.sending():
            for device in range(min(window, devices)):
                client.send((SCOPE, ids[device]), STEPS[0], next(following))
        while remaining:
            got = events.replies.get(timeout=60)
            if got is None:
                continue
            pending, payload = got
            device = pending.tag
            if payload.integer("response.code") != 200:
                failed += 1
                step_of[device] = SYNC_STEPS
            else:
                step_of[device] += 1
            with client.sending():
                if step_of[device] < SYNC_STEPS:
                    client.send(pending.device, STEPS[step_of[device]], device)
                    continue
                remaining -= 1
                following_device = next(following, None)
                if following_device is not None:
                    client.send((SCOPE, ids[following_device]), STEPS[0], following_device)
    finally:
        client.stop()
    return {"failed": failed, "anomalies": events.anomalies}


def count(small: int, large: int, window: int) -> float:
    with broker() as running:
        fleet = FleetProcess(running, large, SCOPE)
        try:
            command = [PYTHON, "-m", "bench.client", "--broker", running.url]
            totals = [
                _instructions([*command, "--devices", str(n), "--window", str(window)])
                for n in (small, large)
            ]
        finally:
            fleet.stop()
    return (totals[1] - totals[0]) / ((large - small) * SYNC_STEPS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.client")
    parser.add_argument("--broker", help="one run against this broker and its fleet")
    parser.add_argument("--devices", type=int, default=1_000)
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--large", type=int, default=3_000)
    parser.add_argument("--window", type=int, default=200)
    args = parser.parse_args(argv)
    if args.broker:
        print(json.dumps(drive(args.broker, args.devices, args.window)), flush=True)
        return 0
    print(json.dumps({"client": count(args.small, args.large, args.window)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
