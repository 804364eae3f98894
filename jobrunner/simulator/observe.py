"""What tests and demos can see of a simulated fleet: every request a device received and
every lifecycle message it (or the broker, for a will) published.

Each device keeps counters per operation (always) and a bounded log of requests (when the
fleet observes); the fleet reads them under the device's lock. `Observer.wait_for` lets a
test block until a condition over them holds, without sleeping for a guessed time.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from jobrunner.device.payload import KuraPayload

LifecycleKind = Literal["BIRTH", "DC", "LWT", "APPS"]


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    """One control message a device received, answered or not."""

    at: float
    """time.time() of arrival."""
    device: str
    operation: str
    app_id: str
    method: str
    resources: tuple[str, ...]
    request_id: str | None
    """None when the request lacked a STRING `request.id` (the device then ignores it)."""
    requester: str | None
    payload: KuraPayload


@dataclass(frozen=True, slots=True)
class LifecycleEvent:
    """A BIRTH, APPS, DC or LWT of a device."""

    at: float
    device: str
    kind: LifecycleKind


class Observer:
    """Lifecycle log of the fleet, and the condition that wakes `wait_for` callers."""

    def __init__(self, lifecycle_limit: int = 100_000) -> None:
        self._changed = threading.Condition()
        self._waiting = 0
        self._lifecycle: deque[LifecycleEvent] = deque(maxlen=lifecycle_limit)

    def changed(self) -> None:
        """Something a waiter may wait for happened (cheap when nobody waits)."""
        if self._waiting:
            with self._changed:
                self._changed.notify_all()

    def lifecycle(self, device: str, kind: LifecycleKind) -> None:
        """Record a lifecycle message."""
        with self._changed:
            self._lifecycle.append(LifecycleEvent(time.time(), device, kind))
        self.changed()

    def lifecycle_events(self) -> list[LifecycleEvent]:
        """Every lifecycle message recorded, oldest first."""
        with self._changed:
            return list(self._lifecycle)

    def clear(self) -> None:
        """Forget the lifecycle messages."""
        with self._changed:
            self._lifecycle.clear()

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Block until `predicate()` is true (re-checked on every change, and every 100 ms
        in case a change raced the check); False when `timeout` seconds pass first.

        The predicate runs outside this observer's lock: it may take device locks, which
        the devices hold while they report a change.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            self._waiting += 1
        try:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                with self._changed:
                    self._changed.wait(min(remaining, 0.1))
            return True
        finally:
            with self._changed:
                self._waiting -= 1
