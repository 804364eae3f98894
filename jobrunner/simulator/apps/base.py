"""What every simulated Kura app shares: the request, the reply, errors, and metric reads
with the casting rules of Kura's Java handlers.

A handler gets a `Call` (the device, the request, an injected failure) and returns the
reply, or None when it replies later itself (`Device.reply_later`). It raises `KuraError`
for what Kura answers with a code and message (`KuraException`), and lets
`MetricTypeError` through for what Kura fails on with a `ClassCastException`: the
dispatcher answers those 500 without a message, as Kura's catch-all does.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from jobrunner.device.payload import KuraPayload, Metric, MetricType
from jobrunner.simulator.config import Timing
from jobrunner.simulator.faults import FailOutcome
from jobrunner.simulator.state import DeviceState

Process = Generator[float, None, None]
"""Timed work: yields how many seconds to wait before its next step (run under the lock)."""


class KuraError(Exception):
    """A KuraException: the reply gets `code` and, when given, `response.exception.message`."""

    def __init__(self, code: int, message: str | None = None) -> None:
        super().__init__(message or f"error {code}")
        self.code = code
        self.message = message


class MetricTypeError(Exception):
    """A metric of another type than the handler casts it to (a Java ClassCastException)."""


@dataclass(slots=True)
class Request:
    """A control request the device will answer (it had both ids)."""

    app_id: str
    method: str
    resources: tuple[str, ...]
    payload: KuraPayload
    request_id: str
    requester: str
    operation: str
    drop: bool = False
    """A fault lost the reply."""
    copies: int = 0
    """A fault sends the reply this many extra times."""


@dataclass(slots=True)
class Reply:
    """What the device answers: `response.code` (INT32), metrics, body, message."""

    code: int = 200
    metrics: dict[str, Metric] = field(default_factory=dict)
    body: bytes | None = None
    message: str | None = None

    def to_payload(self, now_ms: int) -> KuraPayload:
        """The reply as Kura sends it, stamped `now_ms`."""
        metrics = dict(self.metrics)
        metrics["response.code"] = Metric(MetricType.INT32, self.code)
        if self.message is not None:
            metrics["response.exception.message"] = Metric(MetricType.STRING, self.message)
        return KuraPayload(metrics=metrics, body=self.body, timestamp=now_ms)


class Device(Protocol):
    """What an app may use of the simulated device it runs on."""

    @property
    def client_id(self) -> str: ...
    @property
    def state(self) -> DeviceState: ...
    @property
    def timing(self) -> Timing: ...
    @property
    def uptime(self) -> float:
        """Seconds since the device (re)started."""

    def notify(
        self, requester: str, app_id: str, resource: str, metrics: Mapping[str, Metric]
    ) -> None:
        """Publish `$EDC/{account}/{requester}/{app_id}/NOTIFY/{device}/{resource}`."""

    def spawn(self, process: Process, label: str) -> None:
        """Run timed work on the fleet's timer, each step under the device lock."""

    def reply_later(self, request: Request, reply: Reply, delay: float) -> None:
        """Send the reply to `request` after `delay` seconds."""

    def reboot(self, delay: float) -> None:
        """Restart after `delay` seconds: DC, offline for a while, then a new BIRTH."""

    def phase_fails(self, operation: str) -> bool:
        """Whether the faults make a later phase (e.g. `install`) of accepted work fail."""

    def sticks(self, name: str) -> bool:
        """Whether a new value of configuration property `name` is applied (a fault may
        keep it from sticking)."""

    @property
    def keeps_snapshots(self) -> bool:
        """False when a fault makes every snapshot the device takes gone at once."""

    @property
    def rolls_back(self) -> bool:
        """False when a fault makes every rollback restore nothing."""


@dataclass(slots=True)
class Call:
    """One handler invocation."""

    device: Device
    request: Request
    fail: FailOutcome | None = None
    """An injected failure that the handler reports its own way (asynchronous operations)."""


Handler = Callable[[Call], "Reply | None"]


# --- metric reads, with the Java casts of Kura's handlers -----------------------------------


def _typed(payload: KuraPayload, name: str, kind: MetricType) -> Any:
    metric = payload.metrics.get(name)
    if metric is None:
        return None
    if metric.type is not kind:
        raise MetricTypeError(f"metric '{name}' is {metric.type.name}, expected {kind.name}")
    return metric.value


def string_metric(payload: KuraPayload, name: str) -> str | None:
    """A STRING metric (None when absent); MetricTypeError for another type."""
    value: str | None = _typed(payload, name, MetricType.STRING)
    return value


def int32_metric(payload: KuraPayload, name: str) -> int | None:
    """An INT32 metric (Java Integer); an INT64 one is a MetricTypeError."""
    value: int | None = _typed(payload, name, MetricType.INT32)
    return value


def int64_metric(payload: KuraPayload, name: str) -> int | None:
    """An INT64 metric (Java Long); an INT32 one is a MetricTypeError."""
    value: int | None = _typed(payload, name, MetricType.INT64)
    return value


def bool_metric(payload: KuraPayload, name: str) -> bool | None:
    """A BOOL metric (Java Boolean)."""
    value: bool | None = _typed(payload, name, MetricType.BOOL)
    return value


def json_body(payload: KuraPayload, code: int = 400) -> Any:
    """The request body as JSON; KuraError(code) when absent or not JSON."""
    if not payload.body:
        raise KuraError(code, "the request has no body")
    try:
        return json.loads(payload.body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise KuraError(code, f"the request body is not JSON: {error}") from None


def json_reply(document: Any) -> Reply:
    """A 200 reply whose body is `document` as compact JSON (Kura uses Gson)."""
    return Reply(body=json.dumps(document, separators=(",", ":")).encode("utf-8"))


def is_pem(text: object) -> bool:
    """Whether `text` holds at least one PEM block (BEGIN/END armour with a body)."""
    if not isinstance(text, str):
        return False
    begin = text.find("-----BEGIN ")
    end = text.find("-----END ", begin + 1)
    return begin >= 0 and end > begin and text.find("-----", end + 9) > end
