"""A `DeviceLink` in memory, for unit tests and the loopback benchmark (httpx's MockTransport,
for the engine).

Each request the engine sends is handed to `handler`, which plays the device: it returns the
reply (delivered into the engine's inbox at once, as from the broker) or None (no reply: the
engine's own deadline decides). Notifications, lifecycle messages and connection changes are
put in by the test (`notify`, `birth`, `lost`, `connection`); a late reply by `reply`.

    link = MemoryLink(inbox, lambda sent: ok())            # every request answered 200
    engine = Engine(link, devices, clock=fake_clock.now, inbox=inbox)
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from jobrunner.device.lifecycle import DeviceFacts
from jobrunner.device.model import Request
from jobrunner.device.payload import KuraPayload, Metric
from jobrunner.engine.link.events import (
    ConnectionChanged,
    DeviceConnected,
    DeviceDisconnected,
    Inbox,
    NotificationArrived,
    ReplyArrived,
)
from jobrunner.engine.link.ports import Tag
from jobrunner.errors import ClientBusyError, NotConnectedError


@dataclass(frozen=True, slots=True)
class Sent:
    """A request the engine sent, as the handler sees it."""

    tag: Tag
    request: Request

    @property
    def client_id(self) -> str:
        return self.tag.client_id

    @property
    def operation_id(self) -> int | None:
        return self.request.operation_id


Handler = Callable[[Sent], KuraPayload | None]


def ok(**metrics: Metric) -> KuraPayload:
    """A 200 reply, with `metrics`."""
    return KuraPayload.of({"response.code": Metric.int32(200), **metrics})


def error(code: int, message: str = "refused") -> KuraPayload:
    """An error reply, as Kura sends one."""
    return KuraPayload.of(
        {
            "response.code": Metric.int32(code),
            "response.exception.message": Metric.string(message),
        }
    )


class MemoryLink:
    """The engine's `DeviceLink`, answered by a function instead of devices over MQTT."""

    def __init__(
        self,
        inbox: Inbox,
        handler: Handler | None = None,
        *,
        max_in_flight: int = 256,
        keep: bool = True,
    ) -> None:
        self.inbox = inbox
        self.handler: Handler = handler or (lambda sent: ok())
        self.max_in_flight = max_in_flight
        self.keep = keep
        self.sent: list[Sent] = []
        """Every request sent, in order (when `keep`)."""
        self.count = 0
        self.is_connected = True
        self._awaited: dict[str, Tag] = {}  # request id -> tag, counted in the window
        self._rearmed: dict[str, Tag] = {}  # sent by an earlier process: not counted
        self._tracked: dict[tuple[str, int], Tag] = {}

    # -- DeviceLink -------------------------------------------------------------------------

    def send(self, tag: Tag, request: Request) -> None:
        if not self.is_connected:
            raise NotConnectedError(f"request {request.name} not sent: the link is down")
        if len(self._awaited) >= self.max_in_flight:
            raise ClientBusyError(f"{self.max_in_flight} requests are already in flight")
        sent = Sent(tag, request)
        self.count += 1
        if self.keep:
            self.sent.append(sent)
        self._awaited[tag.request_id] = tag
        if request.operation_id is not None:
            self._tracked[(tag.job[0], request.operation_id)] = tag
        reply = self.handler(sent)
        if reply is not None:
            self.reply(tag.request_id, reply)

    def sending(self) -> AbstractContextManager[None]:
        return contextlib.nullcontext()

    def expect(self, tag: Tag, app_id: str, deadline: float | None = None) -> None:
        self._rearmed[tag.request_id] = tag

    def expire(self, tag: Tag) -> bool:
        found = self._awaited.pop(tag.request_id, None) or self._rearmed.pop(tag.request_id, None)
        return found is not None

    def track(self, tag: Tag, app_id: str, operation_id: int) -> None:
        self._tracked[(tag.job[0], operation_id)] = tag

    def untrack(self, tag: Tag, operation_id: int) -> None:
        self._tracked.pop((tag.job[0], operation_id), None)

    def in_flight(self) -> int:
        return len(self._awaited)

    def connected(self) -> bool:
        return self.is_connected

    # -- the connection, for the runner (nothing to connect to) ---------------------------

    def start(self, timeout: float) -> None:
        return None

    def start_in_background(self) -> None:
        self.connection(True, "memory link")

    def serve(self, account: str, encoding: str, timeout: float) -> None:
        return None

    def stop(self) -> None:
        return None

    # -- what the devices and the broker do -----------------------------------------------

    def reply(self, request_id: str, payload: KuraPayload) -> bool:
        """The device's reply to a request; False (and nothing delivered) when the request
        is no longer awaited (answered, or expired: the reply is late)."""
        tag = self._awaited.pop(request_id, None) or self._rearmed.pop(request_id, None)
        if tag is None:
            return False
        self.inbox.put(ReplyArrived(tag, payload))
        return True

    def notify(
        self,
        client_id: str,
        operation_id: int,
        resources: Iterable[str],
        payload: KuraPayload,
        account: str | None = None,
        app_id: str = "DEPLOY-V2",
    ) -> bool:
        """A notification of an operation; False when nobody tracks it (the client would
        report an anomaly)."""
        scope = account or next((a for a, o in self._tracked if o == operation_id), "")
        if (scope, operation_id) not in self._tracked:
            return False
        self.inbox.put(
            NotificationArrived(scope, client_id, app_id, tuple(resources), operation_id, payload)
        )
        return True

    def birth(
        self, account: str, client_id: str, facts: DeviceFacts | None = None, at: float = 0.0
    ) -> None:
        self.inbox.put(DeviceConnected(account, client_id, facts, at))

    def lost(self, account: str, client_id: str, reason: str = "LWT", at: float = 0.0) -> None:
        self.inbox.put(DeviceDisconnected(account, client_id, reason, at))

    def connection(
        self, connected: bool, reason: str = "memory link", session_kept: bool = True
    ) -> None:
        """The broker connection went down, or came (`session_kept`: False as after a broker
        restart, when BIRTHs published meanwhile were missed)."""
        self.is_connected = connected
        self.inbox.put(ConnectionChanged(connected, reason, session_kept))
