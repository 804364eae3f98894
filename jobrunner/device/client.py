"""The runner's device client: Kura requests out; replies, notifications and lifecycle
messages in, correlated and checked.

Threads: paho's network thread (see `connection.Session`) receives every message and only
hands it over (`handover.Handover`, so that it keeps up with a broker that sends BIRTHs by the
thousand); the hand-over's reader thread decodes and checks each one and calls the
`ClientEvents` handler (through `inbound.Inbound`), replies and notifications before lifecycle
messages; the caller (the engine) calls `send`, `expect` and `expire`. The client keeps no
clock: the caller owns the deadline of every request and ends one that ran out of time with
`expire` (a reply that still comes is then reported as late). Nothing blocks on the hot
path: `send` encodes and hands the bytes to paho; paho's thread only queues what it receives;
a reply is one topic split, one decode, one dictionary look-up.

Wire rules (../shared/kura-protocol.md §2, §5): requests at QoS 0, retain false — a QoS 1
retransmission after a reconnect would make a device run an operation twice; every request
carries `request.id` and `requester.client.id` as STRING metrics (Kura silently drops a
request without them); replies come on `$EDC/{account}/{us}/{APP}/REPLY/{requestId}`,
notifications on `$EDC/{account}/{us}/{APP}/NOTIFY/{device}/{resource}` with `job.id`.
Paho is imported by `connection` only.
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Generic, TypeVar

from jobrunner.device.connection import CODECS, Session, codec_named
from jobrunner.device.correlation import Claim, PendingTable
from jobrunner.device.handover import (
    DEFAULT_MAX_WAITING,
    DEFAULT_MAX_WAITING_BYTES,
    Handover,
    Lane,
)
from jobrunner.device.inbound import Inbound
from jobrunner.device.model import (
    ClientEvents,
    Device,
    PayloadCodec,
    Pending,
    Request,
    Tracked,
    device_text,
)
from jobrunner.device.payload import KuraPayload, Metric, Prepared, ProtobufCodec
from jobrunner.device.settings import BrokerSettings
from jobrunner.errors import ClientBusyError, ConnectError, DeviceError, NotConnectedError

T = TypeVar("T")

DEFAULT_MAX_IN_FLIGHT = 256
"""Well under stock mosquitto's 1,000 queued messages per client (PERFORMANCE-NOTES)."""

__all__ = [
    "CODECS",
    "DEFAULT_MAX_IN_FLIGHT",
    "ClientBusyError",
    "ConnectError",
    "DeviceClient",
    "DeviceError",
    "NotConnectedError",
    "codec_named",
]


_UNPREPARED = object()


def _check_segment(value: str, what: str) -> None:
    if not value or "/" in value or "+" in value or "#" in value:
        raise ValueError(f"{what} {value!r} cannot be a topic segment (empty, '/', '+' or '#')")


class DeviceClient(Generic[T]):
    """Requests to Kura devices and their replies, notifications and lifecycle messages.

    `T` is the type of the caller's tags, handed back with each event.
    """

    def __init__(
        self,
        settings: BrokerSettings,
        events: ClientEvents[T],
        *,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        max_waiting: int = DEFAULT_MAX_WAITING,
        max_waiting_bytes: int = DEFAULT_MAX_WAITING_BYTES,
        on_dropped: Callable[[Lane], None] | None = None,
    ) -> None:
        """`max_waiting`, `max_waiting_bytes`: how many received messages (and payload bytes)
        may wait to be read before what arrives is dropped; `on_dropped` hears of each drop
        (on paho's thread: it must only count)."""
        self.settings = settings
        self._events = events
        self._table: PendingTable[T] = PendingTable(max_in_flight)
        self._codecs: dict[str, PayloadCodec] = {}
        self._tracked: dict[tuple[str, int], Tracked[T]] = {}
        self._prefix = secrets.token_hex(4) + "-"  # ids never repeat those of an earlier run
        self._ids = itertools.count(1)
        self._requester = Metric.string(settings.requester)
        self._requester_bytes: bytes | None = None  # the same metric, as kura-protobuf writes it
        self._inbound = Inbound(
            settings.requester,
            events,
            self._table,
            self._codecs,
            self._tracked,
            shared=settings.shares_requester,
        )
        self._handover = Handover(
            self._inbound.handle,
            max_waiting=max_waiting,
            max_waiting_bytes=max_waiting_bytes,
            on_dropped=on_dropped,
        )
        self._session = Session(settings, self._codecs, self._handover.put, self._connection)

    # -- observation -----------------------------------------------------------------------

    @property
    def client_id(self) -> str:
        return self.settings.client_id

    @property
    def connected(self) -> bool:
        """Connected, and subscribed for every account."""
        return self._session.connected

    @property
    def session_kept(self) -> bool:
        """Whether the broker kept the runner's session on the last connection (see
        `connection.Session`)."""
        return self._session.session_kept

    @property
    def in_flight(self) -> int:
        """Requests sent and not yet answered, timed out or cancelled."""
        return self._table.in_flight

    @property
    def max_in_flight(self) -> int:
        return self._table.max_in_flight

    @property
    def waiting(self) -> int:
        """Messages received and not yet read (decoded and handled)."""
        return self._handover.waiting

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> None:
        """Connect, subscribe for every account and wait for the SUBACKs; ConnectError if the
        broker cannot be reached, refuses, or does not answer within `timeout` seconds."""
        self._handover.start()  # before the subscriptions: a message may follow the SUBACK
        try:
            self._session.start(timeout)
        except BaseException:
            self._handover.stop()
            raise

    def start_in_background(self) -> None:
        """Connect without waiting, retrying a broker that is down with backoff (logged);
        `ClientEvents.connection(True, ...)` tells when requests can be sent."""
        self._handover.start()
        self._session.start_in_background()

    def stop(self) -> None:
        """Disconnect and stop paho's thread and the reader; pending requests, and messages
        received but not yet read, are forgotten without events."""
        self._session.stop()
        self._handover.stop()

    def add_account(
        self, account: str, codec: str | PayloadCodec = "kura-protobuf", timeout: float = 10.0
    ) -> None:
        """Serve the devices of `account` (a scope) with its payload encoding. When connected,
        subscribe and wait for the SUBACK (ConnectError after `timeout` seconds); otherwise
        `start` (or the next reconnection) subscribes."""
        _check_segment(account, "account")
        self._session.add_account(
            account, codec_named(codec) if isinstance(codec, str) else codec, timeout
        )

    def remove_account(self, account: str) -> None:
        """Stop serving `account`; its messages are then reported as anomalies."""
        self._session.remove_account(account)

    # -- requests --------------------------------------------------------------------------

    def new_request_id(self) -> str:
        """A fresh request id, for a caller that records it before `send` (crash safety)."""
        return f"{self._prefix}{next(self._ids)}"

    def send(
        self,
        device: Device,
        request: Request,
        tag: T,
        request_id: str | None = None,
    ) -> str:
        """Publish `request` to `device` = (account, client id); its reply is reported with
        `tag`, until the caller `expire`s it. Returns the request id (the given one, from
        `new_request_id`, or a fresh one).

        Raises NotConnectedError or ClientBusyError (window full): nothing was sent.
        An asynchronous request (`request.operation_id`) is tracked from now on: its
        notifications are reported until `untrack`.
        """
        account, client_id = device
        _check_segment(client_id, "device client id")
        codec = self._codecs.get(account)
        if codec is None:
            raise NotConnectedError(
                f"request {request.name} to {device_text(device)} not sent: account"
                f" {account} is not served by this client (add_account first)"
            )
        if not self._session.subscribed(account):
            raise NotConnectedError(
                f"request {request.name} to {device_text(device)} not sent: not connected"
                f" to the broker {self.settings.url} ({self._session.down_reason()})"
            )
        if self._table.in_flight >= self._table.max_in_flight:  # before the encoding work
            raise ClientBusyError(
                f"request {request.name} to {device_text(device)} not sent:"
                f" {self._table.max_in_flight} requests are already in flight"
            )
        if request_id is None:
            request_id = self.new_request_id()
        else:
            _check_segment(request_id, "request id")
        data = self._encode(codec, request, request_id)
        pending = Pending((account, client_id), request_id, request.app_id, request.name, tag)
        try:
            self._table.add(pending)
        except ClientBusyError:
            raise ClientBusyError(
                f"request {request.name} to {device_text(device)} not sent:"
                f" {self._table.max_in_flight} requests are already in flight"
            ) from None
        if request.operation_id is not None:
            self.track(device, request.operation_id, request.app_id, tag)
        problem = self._session.publish(request.topic(account, client_id), data)
        if problem is not None:
            self._table.discard(request_id)
            if request.operation_id is not None:
                self.untrack(account, request.operation_id)
            raise NotConnectedError(
                f"request {request.name} to {device_text(device)} not sent: the connection to"
                f" {self.settings.url} is down ({problem})"
            )
        return request_id

    def sending(self) -> AbstractContextManager[None]:
        """Requests sent inside leave together when the block ends (one wake-up of paho's
        network thread for them all, not one each): for a caller that sends a batch."""
        return self._session.publishing()

    def _encode(self, codec: PayloadCodec, request: Request, request_id: str) -> bytes:
        """The request's payload with its id, the requester and the time. In kura-protobuf,
        its own metrics and body are encoded once per request object (the same bytes)."""
        timestamp = int(time.time() * 1000)
        if isinstance(codec, ProtobufCodec):
            prepared = request.prepared.get(codec.name, _UNPREPARED)
            if prepared is _UNPREPARED:
                prepared = request.prepared[codec.name] = codec.prepare(
                    request.metrics, request.body
                )
            if isinstance(prepared, Prepared):
                requester = self._requester_bytes
                if requester is None:
                    requester = self._requester_bytes = codec.requester(self.settings.requester)
                return codec.encode_request(prepared, request_id, requester, timestamp)
        metrics = dict(request.metrics)
        metrics["request.id"] = Metric.string(request_id)
        metrics["requester.client.id"] = self._requester
        return codec.encode(KuraPayload(metrics=metrics, body=request.body, timestamp=timestamp))

    def expect(
        self,
        device: Device,
        request_id: str,
        *,
        app_id: str,
        tag: T,
        name: str = "",
        deadline: float | None = None,
    ) -> None:
        """Await the reply to a request sent by an earlier process, until `expire`. It does
        not occupy the in-flight window. With runners sharing a requester, a reply that came
        before (while no runner awaited it, its own runner dead) is reported now, if it came
        by `deadline` (`time.time()`)."""
        pending = Pending((device[0], device[1]), request_id, app_id, name or app_id, tag, False)
        self._table.add(pending, counted=False)
        kept = self._inbound.take_kept(request_id)
        if kept is None or (deadline is not None and kept.received > deadline):
            return
        verdict, claimed = self._table.claim(request_id, kept.account, kept.app_id)
        if claimed is not None and verdict is Claim.CLAIMED:
            self._events.reply(claimed, kept.payload)

    def expire(self, request_id: str) -> Pending[T] | None:
        """End a request whose time ran out: a reply that still comes is reported as late.
        None when it had ended already (answered: its reply is on its way to the handler)."""
        return self._table.expire(request_id)

    def cancel(self, request_id: str) -> bool:
        """Stop awaiting a request; False if it was not pending."""
        return self._table.cancel(request_id) is not None

    def wait_for_capacity(self, timeout: float) -> bool:
        """Block until a request may be sent without ClientBusyError (True) or `timeout` passes."""
        return self._table.wait_for_capacity(timeout)

    def track(self, device: Device, operation_id: int, app_id: str, tag: T) -> None:
        """Report the notifications of operation `operation_id` (their `job.id`) from `device`."""
        self._tracked[(device[0], operation_id)] = Tracked(
            (device[0], device[1]), operation_id, app_id, tag
        )

    def untrack(self, account: str, operation_id: int) -> bool:
        """Stop reporting an operation's notifications; False if it was not tracked."""
        return self._tracked.pop((account, operation_id), None) is not None

    # -- events from the other threads ----------------------------------------------------

    def _connection(self, connected: bool, reason: str) -> None:
        self._events.connection(connected, reason)
