"""What reaches the engine's thread: device events from the link, and commands from users.

Producers (the MQTT client's reader thread, the daemon's file watcher, the CLI) only
put events into the `Inbox`; the engine's single thread takes them out in batches and is the
only one that touches job state. No locks around state, no races between a reply and a stop.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from jobrunner.device.lifecycle import DeviceFacts
from jobrunner.device.payload import KuraPayload
from jobrunner.engine.link.ports import Tag
from jobrunner.immutable import immutable


@immutable
class ReplyArrived:
    tag: Tag
    payload: KuraPayload


@immutable
class NotificationArrived:
    account: str
    client_id: str
    app_id: str
    resources: tuple[str, ...]
    operation_id: int | None
    payload: KuraPayload


@dataclass(frozen=True, slots=True)
class DeviceConnected:
    """A BIRTH (or APPS): the device is there, with what it says about itself."""

    account: str
    client_id: str
    facts: DeviceFacts | None
    at: float


@dataclass(frozen=True, slots=True)
class DeviceDisconnected:
    account: str
    client_id: str
    reason: str  # "DC" (clean) or "LWT" (lost)
    at: float


@dataclass(frozen=True, slots=True)
class Anomaly:
    """Something a device or the broker did that nobody asked for; logged, never fatal."""

    message: str
    account: str | None = None
    client_id: str | None = None
    tag: Tag | None = None  # the request it was about, when the runner sent it
    kind: str = "other"


@dataclass(frozen=True, slots=True)
class ConnectionChanged:
    connected: bool
    reason: str
    session_kept: bool = True
    """On a connection: whether the broker kept the runner's session (what was published
    for it meanwhile came); False after a broker restart, when BIRTHs were missed."""


@dataclass(frozen=True)
class Command:
    """A call into the engine's thread; its result (or error) comes back through `future`."""

    run: Callable[[], Any]
    future: Future[Any] = field(default_factory=Future)


Event = (
    ReplyArrived
    | NotificationArrived
    | DeviceConnected
    | DeviceDisconnected
    | Anomaly
    | ConnectionChanged
    | Command
)


_URGENT = (ReplyArrived, NotificationArrived)  # a tuple: `A | B` makes a union at every call


class Inbox:
    """A thread-safe queue of events, taken out in batches: replies and notifications first.

    A fleet that connects at once puts thousands of BIRTHs (`DeviceConnected`) in the inbox,
    each of which may start a device-connect run; a reply that arrives meanwhile must not wait
    behind them (the step it ends, and its request's place in the window, would). So replies
    and notifications go in a lane of their own, always taken first; every other event keeps
    its order in the other lane. A command is still handled after every event put before it:
    those before it in its own lane come first, and the replies' lane is always emptied first.
    """

    def __init__(self) -> None:
        self._urgent: deque[Event] = deque()
        self._ordered: deque[Event] = deque()
        self._ready = threading.Condition(threading.Lock())
        self._takers = 0  # threads waiting in `take`: an event for nobody wakes nobody

    def put(self, event: Event) -> None:
        urgent = isinstance(event, _URGENT)
        with self._ready:
            (self._urgent if urgent else self._ordered).append(event)
            if self._takers:
                self._ready.notify()

    def take(self, timeout: float, limit: int = 2000) -> list[Event]:
        """Wait up to `timeout` seconds for a first event, then take what else is there, up
        to `limit`: the replies and notifications waiting, then the other events."""
        with self._ready:
            if not (self._urgent or self._ordered):
                self._takers += 1
                try:
                    if not self._ready.wait_for(
                        lambda: bool(self._urgent or self._ordered), max(timeout, 0.0)
                    ):
                        return []
                finally:
                    self._takers -= 1
            urgent, ordered = self._urgent, self._ordered
            if len(urgent) + len(ordered) <= limit:  # the usual batch: every event, at once
                events: list[Event] = [*urgent, *ordered]
                urgent.clear()
                ordered.clear()
                return events
            events = []
            for lane in (urgent, ordered):
                while lane and len(events) < limit:
                    events.append(lane.popleft())
            return events
