"""The hand-over from paho's network thread to the thread that reads the messages.

The broker sends the runner only as many QoS 1 messages as the runner has acknowledged plus
its queue for the runner (mosquitto: `max_inflight_messages` 20, `max_queued_messages`
1000), and drops the rest; paho acknowledges a message when its `on_message` returns. So
`on_message` must return at once, whatever else the runner is doing: a fleet's BIRTHs after
a broker restart come by the thousand, and each one the broker drops is a device-connect run
that never happens, with nothing said. Paho's thread therefore only puts each message, as
received (topic and payload bytes), in one of two lanes; one reader thread takes them out,
decodes, checks and handles them (`Inbound.handle`): replies, notifications and anything
else first (every one waiting at once), lifecycle messages (BIRTH, APPS, DC, LWT) one at a
time when no reply waits, so that a flood of BIRTHs never delays the reply a step awaits.

What waits is bounded: past `max_waiting` messages (or `max_waiting_bytes` of payload) a
message is dropped instead of queued, never waited for. Each drop is counted
(`on_dropped`, the metric `jobrunner_inbound_dropped_total{lane}`) and the first one of an
overflow says so in the log, as does the catching up that ends it.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from enum import StrEnum
from typing import Protocol

log = logging.getLogger(__name__)

DEFAULT_MAX_WAITING = 100_000
"""Messages received and not yet read: twenty times a fleet of 5,000 connecting at once."""
DEFAULT_MAX_WAITING_BYTES = 128 * 1024 * 1024
"""Their payloads, in bytes (a Kura BIRTH is about 1 KB)."""


class Lane(StrEnum):
    """Where a received message waits; `REPLIES` is always read first."""

    REPLIES = "replies"  # replies, notifications, and whatever cannot be told apart cheaply
    LIFECYCLE = "lifecycle"  # $EDC/{account}/{device}/MQTT/{BIRTH|DC|LWT|APPS}


class Message(Protocol):
    """What is read of a received message (`pahoclient.Received`, or paho's MQTTMessage)."""

    @property
    def topic(self) -> str: ...

    @property
    def payload(self) -> bytes | bytearray: ...


def lane_of(message: Message) -> Lane:
    """The lane of a message, from its topic alone: a lifecycle topic has five levels, the
    fourth `MQTT`. A topic that is not UTF-8 goes first: it is an anomaly, told at once."""
    try:
        topic = message.topic
    except UnicodeDecodeError:
        return Lane.REPLIES
    parts = topic.split("/", 5)
    return Lane.LIFECYCLE if len(parts) == 5 and parts[3] == "MQTT" else Lane.REPLIES


class Handover:
    """Two lanes of received messages between paho's thread (`put`) and a reader thread
    that calls `handle` with each, the replies' lane first."""

    def __init__(
        self,
        handle: Callable[[Message], None],
        *,
        max_waiting: int = DEFAULT_MAX_WAITING,
        max_waiting_bytes: int = DEFAULT_MAX_WAITING_BYTES,
        on_dropped: Callable[[Lane], None] | None = None,
        name: str = "mqtt-inbound",
    ) -> None:
        if max_waiting < 1 or max_waiting_bytes < 1:
            raise ValueError(
                f"the hand-over must let at least one message wait (max_waiting={max_waiting},"
                f" max_waiting_bytes={max_waiting_bytes})"
            )
        self._handle = handle
        self.max_waiting = max_waiting
        self.max_waiting_bytes = max_waiting_bytes
        self._on_dropped = on_dropped
        self._name = name
        self._lanes: dict[Lane, deque[Message]] = {lane: deque() for lane in Lane}
        self._urgent = self._lanes[Lane.REPLIES]
        self._later = self._lanes[Lane.LIFECYCLE]
        self._ready = threading.Lock()  # guards the lanes and the counts
        # The reader sleeps on `_wakeup` (held while nobody wakes it) and `put` releases it,
        # once, when `_reading_waits`: without a condition variable, whose wait and notify
        # are Python code (a lock made per wait) on every reply.
        self._wakeup = threading.Lock()
        self._wakeup.acquire()
        self._bytes = 0
        self._dropped: dict[Lane, int] = dict.fromkeys(Lane, 0)  # in the current overflow
        self._overflowing = False
        self._stopping = False
        self._reading_waits = False  # the reader sleeps until `put` wakes it
        self._thread: threading.Thread | None = None

    @property
    def waiting(self) -> int:
        """Messages received and not yet taken by the reader."""
        return len(self._urgent) + len(self._later)

    # -- paho's network thread ----------------------------------------------------------------

    def put(self, message: Message) -> None:
        """Queue `message`, or drop and count it when too much waits; never blocks, never
        decodes: this runs on paho's network thread, which acknowledges the message after."""
        lane = lane_of(message)
        size = len(message.payload)
        with self._ready:
            if (
                len(self._urgent) + len(self._later) >= self.max_waiting
                or self._bytes + size > self.max_waiting_bytes
            ):
                self._dropped[lane] += 1
                first, self._overflowing = not self._overflowing, True
                waiting, waiting_bytes = self.waiting, self._bytes
            else:
                self._lanes[lane].append(message)
                self._bytes += size
                if self._reading_waits:  # else the reader takes it when done with its batch
                    self._reading_waits = False
                    self._wakeup.release()
                return
        if first:
            log.warning(
                "the runner reads MQTT messages slower than the broker sends them: %d messages"
                " (%.1f MB) wait to be read, the most it keeps (max_waiting %d, %d bytes);"
                " from now until it catches up, what arrives is dropped and counted in"
                " jobrunner_inbound_dropped_total (a BIRTH dropped is a device-connect run that"
                " does not happen, a reply dropped a request that fails at its timeout)",
                waiting,
                waiting_bytes / 1e6,
                self.max_waiting,
                self.max_waiting_bytes,
            )
        if self._on_dropped is not None:
            try:
                self._on_dropped(lane)
            except Exception:  # never into paho's thread
                log.exception("counting a dropped MQTT message failed")

    # -- the reader thread ---------------------------------------------------------------------

    def start(self) -> None:
        """Start the reader (again, after `stop`)."""
        with self._ready:
            self._stopping = False
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(target=self._read, name=self._name, daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the reader once the message in hand is handled; what still waits is
        forgotten (the client stopped: nobody awaits it any more)."""
        with self._ready:
            self._stopping = True
            for lane in self._lanes.values():
                lane.clear()
            self._bytes = 0
            if self._reading_waits:
                self._reading_waits = False
                self._wakeup.release()
            thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _read(self) -> None:
        ready, wakeup, urgent, later = self._ready, self._wakeup, self._urgent, self._later
        while True:
            with ready:
                while not (self._stopping or urgent or later):
                    self._reading_waits = True  # `put` or `stop` releases `wakeup` once
                    ready.release()
                    try:
                        wakeup.acquire()
                    finally:
                        ready.acquire()
                if self._stopping:
                    return
                # Every reply waiting is taken at once (one lock a batch, not one a message);
                # a lifecycle message one at a time, so that a reply never waits behind many.
                if urgent:
                    batch = list(urgent)
                    urgent.clear()
                else:
                    batch = [later.popleft()]
                self._bytes -= sum(len(message.payload) for message in batch)
                caught_up = self._overflowing and self.waiting <= self.max_waiting // 2
                if caught_up:
                    dropped, self._dropped = self._dropped, dict.fromkeys(Lane, 0)
                    self._overflowing = False
            if caught_up:
                log.warning(
                    "the runner caught up with the broker's messages: %d replies or"
                    " notifications and %d lifecycle messages were dropped meanwhile",
                    dropped[Lane.REPLIES],
                    dropped[Lane.LIFECYCLE],
                )
            for message in batch:
                if self._stopping:  # stopped meanwhile: what was taken is forgotten too
                    return
                try:
                    self._handle(message)
                except Exception:  # a bug in a handler must never stop the reader
                    log.exception("failed to handle a message on %s", _topic_text(message))


def _topic_text(message: Message) -> str:
    try:
        return message.topic
    except UnicodeDecodeError:
        return "a topic that is not UTF-8"
