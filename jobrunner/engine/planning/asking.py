"""The questions of `plan --live`, asked over MQTT: GETs only, rate-limited, each with a
timeout, on a connection of their own.

The connection has its own client id (the runner's with `-plan-` and a random suffix) and a
clean session: it never takes the session of a runner (a broker disconnects the older of two
clients with one id), and leaves no session behind. Replies are addressed to it alone.

`TokenBucket` spaces the requests: at most `rate` a second, one at a time, on a clock and a
sleep that are passed in (the tests pass a fake clock whose sleep moves it on). The replies
are awaited on the time of day: a reply timeout is a real one.
"""

from __future__ import annotations

import dataclasses
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any

from jobrunner.device import BrokerSettings
from jobrunner.device.client import DEFAULT_MAX_IN_FLIGHT, DeviceClient
from jobrunner.device.model import Anomaly, Pending, Tracked
from jobrunner.device.payload import KuraPayload
from jobrunner.device.topics import LifecycleTopic, NotifyTopic
from jobrunner.engine.planning.live import Answer, Read
from jobrunner.errors import ClientBusyError, NotConnectedError

DEFAULT_RATE = 20.0
DEFAULT_TIMEOUT = 10.0


class TokenBucket:
    """At most `rate` takes a second, evenly spaced (a bucket of one token)."""

    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not rate > 0:
            raise ValueError(f"a rate is a number of requests a second above 0, not {rate}")
        self.interval = 1.0 / rate
        self._clock = clock
        self._sleep = sleep
        self._next: float | None = None

    def take(self) -> float:
        """Wait until a request may go; the time it goes."""
        now = self._clock()
        if self._next is not None and now < self._next:
            self._sleep(self._next - now)
            now = self._clock()
        self._next = max(now, self._next or now) + self.interval
        return now


def reader_settings(settings: BrokerSettings) -> BrokerSettings:
    """The runner's broker settings for a short-lived reader: its own client id, its own
    replies, a clean session."""
    suffix = secrets.token_hex(3)
    client_id = f"{settings.client_id[: 128 - 12]}-plan-{suffix}"
    return dataclasses.replace(settings, client_id=client_id, requester_id=None, clean_session=True)


class _Replies:
    """The client's events: replies are kept by request id; nothing else matters here."""

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.replies: dict[str, KuraPayload] = {}

    def reply(self, pending: Pending[str], payload: KuraPayload) -> None:
        with self.changed:
            self.replies[pending.tag] = payload
            self.changed.notify_all()

    def notification(self, tracked: Tracked[str], topic: NotifyTopic, payload: Any) -> None:
        """None are asked for."""

    def lifecycle(self, topic: LifecycleTopic, payload: KuraPayload) -> None:
        """Not read: the recorded registry says what the devices' BIRTHs said."""

    def anomaly(self, anomaly: Anomaly) -> None:
        """A late or stray message changes no answer."""

    def connection(self, connected: bool, reason: str) -> None:
        """A connection lost shows as replies that do not come."""


class ClientAsker:
    """`live.Asker` over a `DeviceClient` of its own (a context manager: it connects)."""

    def __init__(
        self,
        settings: BrokerSettings,
        *,
        rate: float = DEFAULT_RATE,
        timeout: float = DEFAULT_TIMEOUT,
        connect_timeout: float = 10.0,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = reader_settings(settings)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.bucket = TokenBucket(rate, clock, sleep)
        self._events = _Replies()
        self._client: DeviceClient[str] = DeviceClient(
            self.settings, self._events, max_in_flight=max_in_flight
        )
        self.sent = 0

    def __enter__(self) -> ClientAsker:
        self._client.start(self.connect_timeout)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._client.stop()

    def ask(self, account: str, encoding: str, reads: Sequence[Read]) -> Mapping[Read, Answer]:
        """Send every read (spaced by the bucket), each awaited until its own deadline; a
        read without a reply by then has an answer that says so. Reads whose time ran out
        are ended as the sending goes on, so that devices that do not answer never fill the
        in-flight window."""
        self._client.add_account(account, encoding, self.connect_timeout)
        answers: dict[Read, Answer] = {}
        waiting: deque[tuple[Read, str, float]] = deque()  # in send order: deadline order
        for read in reads:
            self.bucket.take()
            self._collect(waiting, answers, block=False)
            while waiting and self._client.in_flight >= self._client.max_in_flight:
                self._collect(waiting, answers, block=True, most=1)  # the oldest ends first
            request_id = self._client.new_request_id()
            try:
                self._client.send((account, read.client_id), read.request(), request_id, request_id)
            except (NotConnectedError, ClientBusyError) as error:
                answers[read] = Answer(problem=str(error))
                continue
            self.sent += 1
            waiting.append((read, request_id, time.monotonic() + self.timeout))
        self._collect(waiting, answers, block=True)
        return answers

    def _collect(
        self,
        waiting: deque[tuple[Read, str, float]],
        answers: dict[Read, Answer],
        *,
        block: bool,
        most: int | None = None,
    ) -> None:
        """Answer the reads at the front of `waiting` whose reply came or whose time ran out
        (at `most` that many); `block`: wait for each in turn until it is answered."""
        events = self._events
        done = 0
        while waiting and (most is None or done < most):
            read, request_id, deadline = waiting[0]
            with events.changed:
                while block and request_id not in events.replies:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    events.changed.wait(left)
                payload = events.replies.pop(request_id, None)
            if payload is not None:
                answers[read] = Answer(payload)
            elif time.monotonic() >= deadline:
                self._client.expire(request_id)
                with events.changed:  # a reply that came as it expired still counts
                    payload = events.replies.pop(request_id, None)
                answers[read] = (
                    Answer(payload)
                    if payload is not None
                    else Answer(problem=f"no reply in {self.timeout:g}s")
                )
            else:
                return  # not answered and not due: neither are the ones sent after it
            waiting.popleft()
            done += 1
