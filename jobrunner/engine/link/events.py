"""What reaches the engine's thread: device events from the link, and commands from users.

Producers (paho's network thread, the daemon's file watcher, the CLI) only
put events into the `Inbox`; the engine's single thread takes them out in batches and is the
only one that touches job state. No locks around state, no races between a reply and a stop.
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from jobrunner.device.lifecycle import DeviceFacts
from jobrunner.device.payload import KuraPayload
from jobrunner.engine.link.ports import Tag


@dataclass(frozen=True, slots=True)
class ReplyArrived:
    tag: Tag
    payload: KuraPayload


@dataclass(frozen=True, slots=True)
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


class Inbox:
    """A thread-safe queue of events, taken out in batches."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Event] = queue.SimpleQueue()

    def put(self, event: Event) -> None:
        self._queue.put(event)

    def take(self, timeout: float, limit: int = 2000) -> list[Event]:
        """Wait up to `timeout` seconds for a first event, then take what else is there."""
        try:
            events = [self._queue.get(timeout=max(timeout, 0.0))]
        except queue.Empty:
            return []
        while len(events) < limit:
            try:
                events.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return events
