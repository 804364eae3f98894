"""Every message the runner receives: routed by topic shape, decoded, checked, correlated.

Called on the hand-over's reader thread for each message (handover.py: paho's network thread
only queues them), replies before lifecycle messages; it stays cheap all the same: one
`split`, one decode, dictionary look-ups, one handler call. Whatever is wrong with a message
(unreadable payload, topic with missing segments, reply for an unknown / answered / timed-out
request, reply from another account or app, notification for an operation nobody awaits or
from the wrong device) becomes an `Anomaly` naming the device and topic; it never raises into
the reader and never touches another request.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from typing import Generic, NamedTuple, TypeVar, cast

from jobrunner.device.correlation import Claim, PendingTable
from jobrunner.device.handover import Message
from jobrunner.device.model import (
    Anomaly,
    AnomalyKind,
    ClientEvents,
    Device,
    PayloadCodec,
    Tracked,
    device_text,
)
from jobrunner.device.payload import KuraPayload, MetricType
from jobrunner.device.topics import (
    CONTROL_PREFIX,
    Lifecycle,
    LifecycleTopic,
    NotifyTopic,
    parse_topic,
)
from jobrunner.errors import TopicError
from jobrunner.manifests.fields import DOT_HINT

T = TypeVar("T")

KEPT_REPLIES = 10_000
"""Replies to the shared requester that no request of this runner awaited, kept (the newest)
for the runner that takes their job over: sent by a runner that died, they came while the job
had no owner."""


class KeptReply(NamedTuple):
    account: str
    app_id: str
    payload: KuraPayload
    received: float  # time.time()


log = logging.getLogger(__name__)

_ID_TYPES = (MetricType.INT64, MetricType.INT32)
_ADDRESSED = frozenset({"REPLY", "NOTIFY"})
_UNCLAIMED = {
    Claim.DUPLICATE: (AnomalyKind.DUPLICATE_REPLY, "a second reply: the first one was taken"),
    Claim.LATE: (AnomalyKind.LATE_REPLY, "late: it arrived {ago} after the request timed out"),
    Claim.CANCELLED: (AnomalyKind.LATE_REPLY, "late: it arrived {ago} after the request ended"),
    Claim.UNKNOWN: (AnomalyKind.UNKNOWN_REQUEST, "no request with this id is pending"),
}


class Inbound(Generic[T]):
    """Routes received messages to the `ClientEvents` handler, or reports them as anomalies."""

    def __init__(
        self,
        client_id: str,
        events: ClientEvents[T],
        table: PendingTable[T],
        codecs: dict[str, PayloadCodec],
        tracked: dict[tuple[str, int], Tracked[T]],
        shared: bool = False,
    ) -> None:
        """`client_id`: the requester the replies are addressed to. `shared`: other runners
        share it, so a reply or notification this runner awaits none of is theirs: ignored
        without an anomaly."""
        self.client_id = client_id
        self.shared = shared
        self.events = events
        self._table = table
        self._codecs = codecs  # shared with the client, which adds and removes accounts
        self._tracked = tracked
        self._kept: OrderedDict[str, KeptReply] = OrderedDict()
        self._kept_lock = threading.Lock()  # kept by the reader, taken by the engine's thread

    def take_kept(self, request_id: str) -> KeptReply | None:
        """The reply to `request_id` that came while no runner awaited it, if one did."""
        with self._kept_lock:
            return self._kept.pop(request_id, None)

    def handle(self, message: Message) -> None:
        """Read one received message and tell the handler what it is (the reader's thread)."""
        try:
            topic = message.topic
        except UnicodeDecodeError:
            raw = getattr(message, "_topic", b"")
            self.anomaly(AnomalyKind.BAD_TOPIC, "the topic is not UTF-8 text", repr(raw))
            return
        parts = topic.split("/")
        count = len(parts)
        data = cast(bytes, message.payload)  # paho hands received payloads over as bytes
        try:
            if "" in parts or parts[0] != CONTROL_PREFIX:
                self._bad_topic(topic)
            elif count >= 6 and parts[4] in _ADDRESSED and parts[2] != self.client_id:
                self._not_mine(topic, parts)
            elif count == 6 and parts[4] == "REPLY":
                self._reply(topic, parts, data)
            elif count >= 7 and parts[4] == "NOTIFY":
                self._notification(topic, parts, data)
            elif count == 5 and parts[3] == "MQTT":
                self._lifecycle(topic, parts, data)
            else:
                self._bad_topic(topic)
        except Exception:  # a bug in a handler must never stop the reader
            log.exception("failed to handle a message on %s", topic)

    def _not_mine(self, topic: str, parts: list[str]) -> None:
        """A reply or notification addressed to another requester: never taken as ours,
        whatever request id or job.id it carries (the subscriptions should not even bring it)."""
        self.anomaly(
            AnomalyKind.WRONG_SENDER,
            f"{parts[4].lower()} addressed to requester {parts[2]}, not to this runner"
            f" ({self.client_id}); ignored",
            topic,
        )

    def _reply(self, topic: str, parts: list[str], data: bytes) -> None:
        account, app_id, request_id = parts[1], parts[3], parts[5]
        codec = self._codec(account, topic)
        if codec is None:
            return
        try:
            payload = codec.decode(data)
        except Exception as error:  # whatever a device sends, it is reported, never raised
            pending = self._table.get(request_id)
            waiting = "; still waiting for a readable reply" if pending else ""
            self.anomaly(
                AnomalyKind.UNDECODABLE,
                f"reply to request {request_id} is not a readable {codec.name} payload"
                f" ({error}); ignored{waiting}",
                topic,
                pending.device if pending else None,
                tag=pending.tag if pending else None,
            )
            return
        verdict, pending = self._table.claim(request_id, account, app_id)
        if pending is None and self.shared and verdict is Claim.UNKNOWN:
            # Another runner's, or one whose runner died before its job was taken over: kept
            # for whoever takes the job over (`take_kept`), the newest KEPT_REPLIES.
            log.debug(
                "reply to request %s: another runner's (shared requester)",
                request_id,
                extra={"requestId": request_id},
            )
            with self._kept_lock:
                self._kept[request_id] = KeptReply(account, app_id, payload, time.time())
                if len(self._kept) > KEPT_REPLIES:
                    self._kept.popitem(last=False)
        elif pending is None:
            kind, what = _UNCLAIMED[verdict]
            ended = self._table.ended(request_id)
            tag, ago = ended if ended is not None else (None, 0.0)
            self.anomaly(
                kind,
                f"reply to request {request_id}: {what.format(ago=f'{ago:.1f}s')}; ignored",
                topic,
                tag=tag,
            )
        elif verdict is Claim.CLAIMED:
            self.events.reply(pending, payload)
        else:
            self.anomaly(
                AnomalyKind.WRONG_SENDER,
                f"reply to request {request_id} came from account {account} app {app_id}, but"
                f" the request went to {device_text(pending.device)} app {pending.app_id};"
                " ignored, still waiting for the right reply",
                topic,
                pending.device,
                tag=pending.tag,
            )

    def _notification(self, topic: str, parts: list[str], data: bytes) -> None:
        account, app_id, client_id = parts[1], parts[3], parts[5]
        device = (account, client_id)
        codec = self._codec(account, topic)
        if codec is None:
            return
        try:
            payload = codec.decode(data)
        except Exception as error:
            self.anomaly(
                AnomalyKind.UNDECODABLE,
                f"notification is not a readable {codec.name} payload ({error}); ignored",
                topic,
                device,
            )
            return
        sender = payload.metrics.get("client.id")
        if sender is not None and sender.value != client_id:
            self.anomaly(
                AnomalyKind.WRONG_SENDER,
                f"the topic names device {client_id} but the client.id metric says"
                f" {sender.value!r}; ignored",
                topic,
                device,
            )
            return
        job = payload.metrics.get("job.id") or payload.metrics.get("operation.id")
        if job is None or job.type not in _ID_TYPES:
            found = "no job.id metric" if job is None else f"a job.id of type {job.type.name}"
            self.anomaly(
                AnomalyKind.BAD_METRIC,
                f"notification has {found} (Kura sends job.id as INT64), so its operation is"
                " unknown; ignored",
                topic,
                device,
            )
            return
        operation_id = int(job.value)
        tracked = self._tracked.get((account, operation_id))
        if tracked is None and self.shared:
            log.debug("notification for operation %d: another runner's", operation_id)
        elif tracked is None:
            self.anomaly(
                AnomalyKind.UNKNOWN_OPERATION,
                f"notification for operation {operation_id}, which no step awaits; ignored",
                topic,
                device,
            )
        elif tracked.device != device or tracked.app_id != app_id:
            self.anomaly(
                AnomalyKind.WRONG_SENDER,
                f"notification for operation {operation_id} came from {device_text(device)}"
                f" app {app_id}, but the operation went to {device_text(tracked.device)} app"
                f" {tracked.app_id}; ignored",
                topic,
                device,
            )
        else:
            notify = NotifyTopic(account, parts[2], app_id, client_id, tuple(parts[6:]))
            self.events.notification(tracked, notify, payload)

    def _lifecycle(self, topic: str, parts: list[str], data: bytes) -> None:
        account, client_id, kind = parts[1], parts[2], parts[4]
        if kind not in Lifecycle.__members__:
            self._bad_topic(topic)
            return
        codec = self._codec(account, topic)
        if codec is None:
            return
        lifecycle = Lifecycle(kind)
        try:
            payload = codec.decode(data) if data else KuraPayload()
        except Exception as error:
            payload = KuraPayload()
            if lifecycle is not Lifecycle.LWT:  # an LWT is a raw string by default: expected
                # Anyone on the broker can publish on a lifecycle topic: a message no Kura
                # device would send is an anomaly, never a device.
                self.anomaly(
                    AnomalyKind.UNDECODABLE,
                    f"{kind} payload is not a readable {codec.name} payload ({error}); ignored",
                    topic,
                    (account, client_id),
                )
                return
        self.events.lifecycle(LifecycleTopic(account, client_id, lifecycle), payload)

    def _codec(self, account: str, topic: str) -> PayloadCodec | None:
        codec = self._codecs.get(account)
        if codec is None:
            self.anomaly(
                AnomalyKind.UNKNOWN_ACCOUNT,
                f"message for account {account}, which this client does not serve; ignored",
                topic,
            )
        return codec

    def _bad_topic(self, topic: str) -> None:
        try:
            parse_topic(topic)
            problem = "not a reply, notification or lifecycle topic"
        except TopicError as error:
            problem = str(error)
        if _levels_from_dots(topic.split("/"), self.client_id):
            problem += (
                "; it looks like a Kura topic whose ids had their '.' turned into topic levels"
                f" by the broker ({DOT_HINT})"
            )
        self.anomaly(
            AnomalyKind.BAD_TOPIC,
            f"{problem}; expected $EDC/{{account}}/{self.client_id}/{{APP}}/REPLY/{{requestId}},"
            f" $EDC/{{account}}/{self.client_id}/{{APP}}/NOTIFY/{{device}}/{{resource}} or"
            " $EDC/{account}/{device}/MQTT/{BIRTH|DC|LWT|APPS}; ignored",
            topic,
        )

    def anomaly(
        self,
        kind: AnomalyKind,
        message: str,
        topic: str,
        device: Device | None = None,
        tag: object = None,
    ) -> None:
        """Report an anomaly; a failing handler is logged, never raised into the reader."""
        try:
            self.events.anomaly(Anomaly(kind, message, topic, device, tag))
        except Exception:
            log.exception("the device event handler failed on an anomaly")


def _levels_from_dots(parts: list[str], client_id: str) -> bool:
    """Whether a topic that does not parse is a Kura topic with more levels than it should
    have: what a broker that maps '.' to '/' makes of an id with a dot."""
    if len(parts) < 6 or parts[0] != CONTROL_PREFIX:
        return False
    if "." in client_id and "/".join(parts).find(client_id.replace(".", "/")) >= 0:
        return True
    return (parts[-2] == "MQTT" and len(parts) > 5) or any(
        p in ("REPLY", "NOTIFY") for p in parts[5:]
    )
