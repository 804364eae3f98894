"""The values the device layer exchanges with its callers.

- `Request`: one control request to send (app id, method, resources, typed metrics, body),
  built by `jobrunner.device.operations`; the client adds `request.id` and
  `requester.client.id`.
- `Pending`: a request sent (or re-armed with `expect`) whose reply is awaited.
- `Tracked`: an asynchronous operation whose notifications are awaited, by `job.id`.
- `Anomaly`: a message that was ignored, and why (device, topic, what was expected).
- `ClientEvents`: what the client calls; the engine's implementation only enqueues.
- The client's errors are those of `jobrunner.errors` (DeviceError and below), named here
  too for the callers of the device layer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Generic, Protocol, TypeVar

from jobrunner.device.payload import KuraPayload, Metric
from jobrunner.device.topics import CONTROL_PREFIX, LifecycleTopic, NotifyTopic
from jobrunner.immutable import immutable

T = TypeVar("T")

Device = tuple[str, str]
"""(account, client id): the account is the scope, the client id the device's MQTT id."""


def device_text(device: Device) -> str:
    """`account/client-id`, the way messages name a device."""
    return f"{device[0]}/{device[1]}"


class FailureKind(StrEnum):
    """Why a step failed, as a code that scripts and dashboards can count on."""

    DEVICE_ERROR = "device-error"
    """The device replied with an error code (`code`)."""
    DEVICE_FAILED = "device-failed"
    """The device said the operation failed (a failed notification, a non-zero exit)."""
    TIMEOUT = "timeout"
    """No reply within the step's timeout."""
    COMPLETION_TIMEOUT = "completion-timeout"
    """No completion notification within the step's completionTimeout."""
    DISCONNECTED = "disconnected"
    """The device went away (DC or LWT) before replying."""
    RESTARTED = "restarted"
    """The runner restarted before the reply came."""
    NOT_SENT = "not-sent"
    """The request could not be built or was refused before sending (a secret without a
    value, a device known to be gone)."""
    UNSUPPORTED = "unsupported"
    """The device does not run the step's application (its BIRTH says so)."""
    CANCELLED = "cancelled"
    """The operation was cancelled on the device."""
    UNREADABLE = "unreadable"
    """The reply could not be read."""
    NOT_VERIFIED = "not-verified"
    """`verify: true` read back something else than the step wrote (or could not read it)."""
    ROLLED_BACK = "rolled-back"
    """The step had succeeded; its rollout was aborted and the device rolled back."""


class PayloadCodec(Protocol):
    """A payload encoding: `ProtobufCodec` (kura-protobuf) or `JsonCodec` (simple-json)."""

    name: str

    def encode(self, payload: KuraPayload) -> bytes: ...

    def decode(self, data: bytes) -> KuraPayload: ...


@dataclass(frozen=True, slots=True)
class Request:
    """A control request, without the two metrics the client adds to every request."""

    app_id: str
    method: str
    resources: tuple[str, ...] = ()
    metrics: Mapping[str, Metric] = field(default_factory=dict)
    body: bytes | None = None
    operation_id: int | None = None
    """Set for asynchronous operations: their notifications carry it as `job.id`."""
    secrets: frozenset[str] = frozenset()
    """Names of metrics never shown (passwords)."""
    prepared: dict[str, object] = field(default_factory=dict, compare=False, repr=False)
    """What each payload codec encoded of this request once (`ProtobufCodec.prepare`): a
    request sent to every target is encoded once; one made for a target, for that target."""

    def topic(self, account: str, client_id: str) -> str:
        """`$EDC/{account}/{client}/{APP-VER}/{METHOD}/{resources...}`, as `RequestTopic`
        spells it (the one that also reads it back), without making one per request."""
        return "/".join(
            (CONTROL_PREFIX, account, client_id, self.app_id, self.method, *self.resources)
        )

    @property
    def name(self) -> str:
        """`CMD-V1 EXEC/command`: how messages name the request."""
        return f"{self.app_id} {'/'.join((self.method, *self.resources))}"

    def describe(self) -> str:
        """The request with its metrics, secrets masked: for execution logs."""
        parts = [
            f"{name}=***" if name in self.secrets else f"{name}={_shown(metric)}"
            for name, metric in self.metrics.items()
        ]
        if self.body:
            parts.append(f"body {len(self.body)} bytes")
        return f"{self.name} ({', '.join(parts)})" if parts else self.name

    def __repr__(self) -> str:
        return f"Request<{self.describe()}>"


_PLAIN = re.compile(r"^[^\s,()\"'=]*$")


def _shown(metric: Metric) -> str:
    """A metric's value as the log writes it: true/false, numbers and plain words as they
    are, text with spaces or punctuation in double quotes (JSON's escapes)."""
    value = metric.value
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = value if value and _PLAIN.match(value) else json.dumps(value, ensure_ascii=False)
    else:
        text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."


@immutable
class Pending(Generic[T]):
    """A request whose reply is awaited; `tag` is the caller's, handed back with events."""

    device: Device
    request_id: str
    app_id: str
    name: str
    tag: T
    sent: bool = True
    """False for a request re-armed with `expect` (sent by an earlier process)."""


@immutable
class Tracked(Generic[T]):
    """An asynchronous operation whose notifications are awaited."""

    device: Device
    operation_id: int
    app_id: str
    tag: T


class AnomalyKind(StrEnum):
    UNDECODABLE = "undecodable-payload"
    BAD_TOPIC = "bad-topic"
    UNKNOWN_ACCOUNT = "unknown-account"
    UNKNOWN_REQUEST = "unknown-request"
    DUPLICATE_REPLY = "duplicate-reply"
    LATE_REPLY = "late-reply"
    WRONG_SENDER = "wrong-sender"
    UNKNOWN_OPERATION = "unknown-operation"
    BAD_METRIC = "bad-metric"


@dataclass(frozen=True, slots=True)
class Anomaly:
    """A message that was ignored (or read in part), and why."""

    kind: AnomalyKind
    message: str
    topic: str
    device: Device | None = None
    tag: object = None
    """The caller's tag of the request the message was about, when there was one."""

    def __str__(self) -> str:
        where = f"device {device_text(self.device)}, " if self.device else ""
        return f"{where}topic {self.topic}: {self.message}"


class ClientEvents(Protocol[T]):
    """What the device client reports, from paho's network thread (replies, notifications,
    lifecycle, anomalies, connection changes): implementations must be quick and must not
    call back into the client's blocking methods (`start`, `add_account`,
    `wait_for_capacity`). Timeouts are the caller's: it owns the deadlines (`expire`)."""

    def reply(self, pending: Pending[T], payload: KuraPayload) -> None: ...

    def notification(
        self, tracked: Tracked[T], topic: NotifyTopic, payload: KuraPayload
    ) -> None: ...

    def lifecycle(self, topic: LifecycleTopic, payload: KuraPayload) -> None: ...

    def anomaly(self, anomaly: Anomaly) -> None: ...

    def connection(self, connected: bool, reason: str) -> None: ...
