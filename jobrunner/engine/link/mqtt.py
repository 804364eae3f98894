"""The MQTT device client, plugged into the engine's seam (`ports.DeviceLink`).

`ClientLink` is both the device client's event handler (it only puts events in the engine's
inbox: it runs on the client's reader thread) and the engine's `DeviceLink` (called on the engine's
thread: it publishes what the engine built and recorded).
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager

from jobrunner.device import (
    Anomaly as DeviceAnomaly,
)
from jobrunner.device import (
    BrokerSettings,
    DeviceClient,
    KuraPayload,
    LifecycleTopic,
    NotifyTopic,
    Pending,
    Request,
    Tracked,
    read_lifecycle,
)
from jobrunner.device.handover import Lane
from jobrunner.device.lifecycle import ConnectionStatus
from jobrunner.engine.link.events import (
    Anomaly,
    ConnectionChanged,
    DeviceConnected,
    DeviceDisconnected,
    Inbox,
    NotificationArrived,
    ReplyArrived,
)
from jobrunner.engine.link.observers import Observer
from jobrunner.engine.link.ports import Tag
from jobrunner.errors import PayloadError


class ClientLink:
    """The runner's MQTT client, wired to the engine's inbox."""

    def __init__(
        self,
        settings: BrokerSettings,
        inbox: Inbox,
        max_in_flight: int,
        observer: Observer | None = None,
    ) -> None:
        self.inbox = inbox
        self.observer = observer or Observer()
        self.client: DeviceClient[Tag] = DeviceClient(
            settings, self, max_in_flight=max_in_flight, on_dropped=self._dropped
        )

    def _dropped(self, lane: Lane) -> None:
        """A received message dropped, too many waiting to be read (on paho's thread)."""
        self.observer.inbound_dropped(lane.value)

    # -- ClientEvents: called from the client's reader thread; only enqueue ---------------

    def reply(self, pending: Pending[Tag], payload: KuraPayload) -> None:
        self.inbox.put(ReplyArrived(pending.tag, payload))
        self.observer.request_ended(pending.request_id, pending.app_id, _outcome(payload))

    def notification(self, tracked: Tracked[Tag], topic: NotifyTopic, payload: KuraPayload) -> None:
        self.inbox.put(
            NotificationArrived(
                topic.account,
                topic.device,
                topic.app_id,
                topic.resources,
                tracked.operation_id,
                payload,
            )
        )

    def lifecycle(self, topic: LifecycleTopic, payload: KuraPayload) -> None:
        event = read_lifecycle(topic, payload)
        now = time.time()
        for anomaly in event.anomalies:
            self.anomaly(anomaly)
        if event.status is ConnectionStatus.CONNECTED:
            self.inbox.put(DeviceConnected(topic.account, topic.device, event.facts, now))
        else:
            reason = "LWT" if event.status is ConnectionStatus.MISSING else "DC"
            self.inbox.put(DeviceDisconnected(topic.account, topic.device, reason, now))

    def anomaly(self, anomaly: DeviceAnomaly) -> None:
        device = anomaly.device
        tag = anomaly.tag if isinstance(anomaly.tag, Tag) else None
        account, client_id = device if device else (None, None)
        self.inbox.put(Anomaly(str(anomaly), account, client_id, tag, anomaly.kind.value))

    def connection(self, connected: bool, reason: str) -> None:
        kept = not connected or self.client.session_kept
        self.inbox.put(ConnectionChanged(connected, reason, session_kept=kept))

    # -- the connection, for the runner -----------------------------------------------------

    def start(self, timeout: float) -> None:
        """Connect and subscribe now; ConnectError when the broker cannot be reached."""
        self.client.start(timeout)

    def start_in_background(self) -> None:
        """Connect in the background, retrying a broker that is down (the daemon)."""
        self.client.start_in_background()

    def serve(self, account: str, encoding: str, timeout: float) -> None:
        """Subscribe to the devices of `account`, in its payload encoding."""
        self.client.add_account(account, encoding, timeout)

    def stop(self) -> None:
        self.client.stop()

    # -- DeviceLink: called from the engine's thread ---------------------------------------

    def send(self, tag: Tag, request: Request) -> None:
        # Told first: the reply may be handled on paho's thread before `send` returns.
        self.observer.request_sent(tag.request_id, request.app_id)
        try:
            self.client.send(tag.device, request, tag, request_id=tag.request_id)
        except BaseException:
            self.observer.request_unsent(tag.request_id)
            raise

    def sending(self) -> AbstractContextManager[None]:
        return self.client.sending()

    def expect(self, tag: Tag, app_id: str, deadline: float | None = None) -> None:
        self.client.expect(tag.device, tag.request_id, app_id=app_id, tag=tag, deadline=deadline)

    def expire(self, tag: Tag) -> bool:
        pending = self.client.expire(tag.request_id)
        if pending is None:
            return False
        self.observer.request_ended(tag.request_id, pending.app_id, "timeout")
        return True

    def track(self, tag: Tag, app_id: str, operation_id: int) -> None:
        self.client.track(tag.device, operation_id, app_id, tag)

    def untrack(self, tag: Tag, operation_id: int) -> None:
        self.client.untrack(tag.job[0], operation_id)

    def in_flight(self) -> int:
        return self.client.in_flight

    def connected(self) -> bool:
        return self.client.connected


def _outcome(payload: KuraPayload) -> str:
    """A reply as the request metrics count it: `ok` (2xx), `error`, or `unreadable`."""
    try:
        code = payload.integer("response.code")
    except PayloadError:
        return "unreadable"
    return "ok" if code is not None and 200 <= code < 300 else "error"
