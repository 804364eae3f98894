"""What every step operation is, and the reading of replies they share.

An operation turns a step's typed properties into a `Request`, and a reply (and, for
asynchronous operations, each notification) into an `Outcome`. Operations are pure: no I/O,
no clock, no randomness; the operation id of an asynchronous operation is passed in. The
progress of an asynchronous operation is a small immutable `AsyncState` that the caller keeps
(and may record: `as_record` / `from_record`) and hands back with the next notification.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from enum import StrEnum
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel

from jobrunner.device.model import FailureKind, Request
from jobrunner.device.payload import KuraPayload, Metric
from jobrunner.errors import OperationError, PayloadError
from jobrunner.immutable import immutable
from jobrunner.manifests.secrets import SecretRef
from jobrunner.manifests.steps import StepBase, StepMode, definition_of, properties_of


class OutcomeStatus(StrEnum):
    OK = "ok"
    """The step succeeded (final)."""
    FAILED = "failed"
    """The step failed (final); the summary says what happened."""
    ACCEPTED = "accepted"
    """Asynchronous: the device accepted the operation; its completion is awaited."""
    PROGRESS = "progress"
    """Asynchronous: a notification that is not the last one."""
    IGNORED = "ignored"
    """A message that changes nothing (malformed, or not for this operation's phase)."""


@immutable
class AsyncState:
    """Where an asynchronous operation stands: its id (`job.id`), phase and last progress."""

    operation_id: int
    phase: str
    percent: int | None = None

    def as_record(self) -> dict[str, Any]:
        return {"operationId": self.operation_id, "phase": self.phase, "percent": self.percent}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> AsyncState:
        """The state `as_record` wrote; ValueError if `record` is not one."""
        operation_id, phase = record.get("operationId"), record.get("phase")
        percent = record.get("percent")
        if (
            not isinstance(operation_id, int)
            or not isinstance(phase, str)
            or not (percent is None or isinstance(percent, int))
        ):
            raise ValueError(f"not an asynchronous operation state: {dict(record)!r}")
        return cls(operation_id, phase, percent)


@dataclass(frozen=True, slots=True)
class Settle:
    """A progress that becomes the step's success when nothing else comes within `seconds`
    (Kura says nothing more after a hash check that passed, only after one that failed)."""

    seconds: float
    summary: str


@immutable
class Outcome:
    status: OutcomeStatus
    summary: str
    state: AsyncState | None = None
    settle: Settle | None = None
    failure: FailureKind | None = None
    """For a failure: its kind (DEVICE_FAILED when not said)."""
    code: int | None = None
    """For a failure the device replied with: its response code."""

    @classmethod
    def ok(cls, summary: str) -> Outcome:
        return cls(OutcomeStatus.OK, summary)

    @classmethod
    def failed(
        cls,
        summary: str,
        kind: FailureKind = FailureKind.DEVICE_FAILED,
        code: int | None = None,
    ) -> Outcome:
        return cls(OutcomeStatus.FAILED, summary, failure=kind, code=code)

    @classmethod
    def ignored(cls, summary: str, state: AsyncState | None = None) -> Outcome:
        return cls(OutcomeStatus.IGNORED, summary, state)

    @classmethod
    def progress(cls, state: AsyncState, summary: str, settle: Settle | None = None) -> Outcome:
        return cls(OutcomeStatus.PROGRESS, summary, state, settle)


@dataclass(frozen=True, slots=True)
class StatusQuery:
    """A request that asks a device how an asynchronous operation stands (after a restart)."""

    name: str
    request: Request


@dataclass(frozen=True, slots=True)
class OperationSettings:
    """App ids and resources; the defaults are Kura's (and for the two non-public contracts,
    those of docs/wire-contracts.md)."""

    command_app: str = "CMD-V1"
    configuration_app: str = "CONF-V1"
    deploy_app: str = "DEPLOY-V2"
    asset_app: str = "ASSET-V1"
    keystore_app: str = "KEYS-V1"
    certificate_app: str = "CERT-V1"
    certificate_resources: tuple[str, ...] = ("certificates",)
    activity_app: str = "ANSIBLE-V1"
    activity_method: str = "SUBMIT"
    activity_resources: tuple[str, ...] = ()
    activity_notify_resource: str = "activity"
    apply_seconds: float = 2.0
    """How long after Kura's 200 to a configuration PUT or a rollback what it wrote is read
    back: Kura applies it a second after replying."""
    hash_check_seconds: float = 15.0
    """How long a download with `fileHash` and `install: false` waits after its COMPLETED
    for the FAILED Kura sends when the hash does not match (a match sends nothing more)."""

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if not isinstance(value, str | tuple):
                continue
            for part in value if isinstance(value, tuple) else (value,):
                if not part or any(c in part for c in "/+#"):
                    raise OperationError(
                        f"operation setting {name} = {value!r}: each app id, method and"
                        " resource is one non-empty topic segment (no '/', '+' or '#')"
                    )


DEFAULT_SETTINGS = OperationSettings()
P = TypeVar("P", bound=BaseModel)


class Operation(ABC, Generic[P]):
    """One step definition's translation to and from the wire.

    A subclass names its manifest model, `step`; the definition's name, its mode and the
    type of its properties are taken from there (declared once, in the manifests)."""

    step: ClassVar[type[StepBase]]
    definition: ClassVar[str]
    properties_type: ClassVar[type[BaseModel]]
    mode: ClassVar[StepMode] = StepMode.SYNC
    failure_hints: ClassVar[Mapping[int, str]] = {}
    """What a failure code usually means for this operation, added to the device's reason."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        step = cls.__dict__.get("step")
        if step is not None:
            cls.definition = definition_of(step)
            cls.mode = step.mode
            cls.properties_type = properties_of(step)

    def __init__(self, properties: P, settings: OperationSettings = DEFAULT_SETTINGS) -> None:
        self.properties = properties
        self.settings = settings

    @property
    @abstractmethod
    def app_id(self) -> str:
        """The application id (with version) the device must list in its BIRTH."""

    @abstractmethod
    def request(self, operation_id: int = 0) -> Request:
        """The request; `operation_id` (a non-negative INT64) matters to asynchronous ones."""

    def reply(self, payload: KuraPayload, operation_id: int = 0) -> Outcome:
        """The outcome of the device's reply."""
        code = response_code(payload)
        if code == 200:
            if self.mode is StepMode.ASYNC:
                return self.accepted(payload, operation_id)
            return self.succeeded(payload)
        # A gateway that lacks the application sends no reply at all (the timeout says so),
        # so a 404 here is always the operation's own: no such entry, no such bundle.
        kind = FailureKind.DEVICE_ERROR if code is not None else FailureKind.UNREADABLE
        return Outcome.failed(reply_failure(payload, self.failure_hints) or "", kind, code)

    def succeeded(self, payload: KuraPayload) -> Outcome:
        """A synchronous operation's outcome for a 200 reply."""
        return Outcome.ok("device replied 200")

    def accepted(self, payload: KuraPayload, operation_id: int) -> Outcome:
        """An asynchronous operation's outcome for a 200 reply."""
        raise NotImplementedError(f"{self.definition} is synchronous")

    def notification(
        self, state: AsyncState, resources: tuple[str, ...], payload: KuraPayload
    ) -> Outcome:
        """The outcome of a notification (`resources`: the topic's segments after the device)."""
        return Outcome.ignored(f"{self.definition} expects no notifications", state)

    def status_queries(self, state: AsyncState) -> tuple[StatusQuery, ...]:
        """Requests whose replies tell how the operation stands (after a restart)."""
        return ()

    def status(self, state: AsyncState, query: str, payload: KuraPayload) -> Outcome | None:
        """What the reply to one status query (by its name) tells; None: nothing settled."""
        return None

    def cancel(self, state: AsyncState) -> Request | None:
        """The request that cancels the operation where it stands; None: it cannot be."""
        return None

    def recover(
        self, state: AsyncState, replies: Mapping[str, KuraPayload | None]
    ) -> Outcome | None:
        """What the replies to all `status_queries` (by name; None: no reply) tell together;
        None when they do not settle it (keep waiting for the notification)."""
        for query in self.status_queries(state):
            payload = replies.get(query.name)
            outcome = None if payload is None else self.status(state, query.name, payload)
            if outcome is not None:
                return outcome
        return None

    def unsupported_reason(self, application_ids: Iterable[str]) -> str | None:
        """Why a device whose BIRTH lists `application_ids` cannot run this step, or None."""
        if not isinstance(application_ids, tuple | list | set | frozenset):
            application_ids = tuple(application_ids)
        if self.app_id in application_ids:  # at every dispatch: nothing sorted then
            return None
        listed = sorted(set(application_ids))
        return (
            f"the device does not support {self.definition}: its BIRTH lists application ids"
            f" {', '.join(listed) or '(none)'}, not {self.app_id}"
        )


# --- reading replies --------------------------------------------------------------------------


def response_code(payload: KuraPayload) -> int | None:
    """`response.code`, None when absent or not an integer."""
    try:
        return payload.integer("response.code")
    except PayloadError:
        return None


def text_metric(payload: KuraPayload, name: str) -> str | None:
    """A metric as text, whatever its type (devices are not always exact), None if absent."""
    metric = payload.metrics.get(name)
    if metric is None:
        return None
    if isinstance(metric.value, bytes):
        return metric.value.decode("utf-8", "replace")
    return metric.value if isinstance(metric.value, str) else str(metric.value)


def int_metric(payload: KuraPayload, name: str) -> int | None:
    """An integer metric, None when absent or of another type."""
    try:
        return payload.integer(name)
    except PayloadError:
        return None


class AsyncOperation(Operation[P]):
    """An operation the device accepts with a 200 reply, then completes on its own, telling
    how it goes in notifications that carry the operation's id (`job.id`).

    The prologue every such operation shares is here: the accepted outcome, and the
    notifications of another operation or on a resource it does not expect, ignored. A
    subclass says what was accepted, which resources it notifies on, how a notification
    names its resource, and what each notification means (`notified`)."""

    accepted_text: ClassVar[str] = "device accepted {what}; waiting for its notifications"

    @abstractmethod
    def awaited(self) -> tuple[str, str]:
        """(what the device accepted, for the log; the resource it notifies first)."""

    @abstractmethod
    def resources(self) -> tuple[str, ...]:
        """The resources whose notifications it reads."""

    @abstractmethod
    def resource_of(self, resources: tuple[str, ...], payload: KuraPayload) -> str | None:
        """The resource a notification is about (`resources`: the topic's, after the device)."""

    @abstractmethod
    def notified(self, state: AsyncState, resource: str, payload: KuraPayload) -> Outcome:
        """The outcome of a notification of this operation on one of its `resources`."""

    def accepted(self, payload: KuraPayload, operation_id: int) -> Outcome:
        what, first = self.awaited()
        return Outcome(
            OutcomeStatus.ACCEPTED,
            self.accepted_text.format(what=what),
            AsyncState(operation_id, first, 0),
        )

    def notification(
        self, state: AsyncState, resources: tuple[str, ...], payload: KuraPayload
    ) -> Outcome:
        if for_another_operation(state, payload):
            return Outcome.ignored("notification for another operation", state)
        resource = self.resource_of(resources, payload)
        if resource is None or resource not in self.resources():
            return Outcome.ignored(
                f"a notification on resource {resource!r} is not expected", state
            )
        return self.notified(state, resource, payload)


def for_another_operation(state: AsyncState, payload: KuraPayload) -> bool:
    """Whether a notification's (or status reply's) `job.id` names another operation than
    `state`'s; one without a `job.id` is not taken for another's."""
    job = int_metric(payload, "job.id")
    return job is not None and job != state.operation_id


def body_text(payload: KuraPayload, limit: int = 200) -> str | None:
    """The body as one line of text, when it is short readable text."""
    if not payload.body:
        return None
    try:
        text = payload.body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    text = " ".join(text.split())
    return shorten(text, limit) if text and text.isprintable() else None


_PLACEHOLDER = re.compile(r"\s*\{\d+\}")
"""A MessageFormat argument Kura left unfilled."""


def device_reason(payload: KuraPayload) -> str:
    """The reason a device gave: `response.exception.message`, else a short text body."""
    message = text_metric(payload, "response.exception.message")
    if message:  # Kura's messages may keep their unfilled placeholders: "Bad request. {0}"
        message = _PLACEHOLDER.sub("", message)
    if message and message.strip():
        return shorten(" ".join(message.split()), 300)
    return body_text(payload) or "no reason given"


def reply_failure(payload: KuraPayload, hints: Mapping[int, str] | None = None) -> str | None:
    """None for a 200 reply; otherwise what the device said, e.g. `device replied 400: ...`."""
    code = response_code(payload)
    if code == 200:
        return None
    if code is None:
        return "device replied without a readable response.code metric (INT32); treated as failed"
    hint = (hints or {}).get(code)
    return f"device replied {code}: {device_reason(payload)}" + (f" ({hint})" if hint else "")


def shorten(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def tail(text: str | None, limit: int = 200, lines: int = 3) -> str:
    """The end of a command's output, on one line (` | ` between lines)."""
    if not text:
        return ""
    kept = [line.strip() for line in text.strip().splitlines() if line.strip()][-lines:]
    joined = " | ".join(kept)
    return joined if len(joined) <= limit else "..." + joined[-(limit - 3) :]


# --- building requests --------------------------------------------------------------------------


def operation_id_metric(operation_id: int) -> Metric:
    """`job.id`: INT64, as Kura casts it to Long."""
    if not 0 <= operation_id < 2**63:
        raise OperationError(f"operation id {operation_id} is not a non-negative INT64")
    return Metric.int64(operation_id)


def millis_metric(name: str, value: timedelta | None) -> Metric | None:
    """A duration as INT32 milliseconds (None stays None: the metric is left out)."""
    if value is None:
        return None
    millis = value // timedelta(milliseconds=1)
    try:
        return Metric.int32(millis)
    except PayloadError:
        raise OperationError(
            f"{name} is {millis} ms, more than the device accepts (an INT32 of milliseconds:"
            " at most 24 days)"
        ) from None


def int32_metric(name: str, value: int | None) -> Metric | None:
    if value is None:
        return None
    try:
        return Metric.int32(value)
    except PayloadError:
        raise OperationError(f"{name} {value} does not fit the device's INT32 metric") from None


def optional_string(value: str | None) -> Metric | None:
    return None if value is None else Metric.string(value)


def file_hash_metric(value: str | None) -> Metric | None:
    """`ALGO:hex` with the hex digits in lowercase: Kura compares the digits it computes,
    lowercase, to the text it was sent, case-sensitively."""
    if value is None:
        return None
    algorithm, _, digits = value.partition(":")
    return Metric.string(f"{algorithm}:{digits.lower()}")


def secret_string(value: str | SecretRef | None) -> Metric | None:
    """A secret (or credential) as a STRING metric; a reference must have been resolved
    (`jobrunner.manifests.secrets.with_secrets`) before the request is built."""
    if isinstance(value, SecretRef):
        raise OperationError(
            f"secret {value} was not resolved: build the request from resolved properties"
        )
    return optional_string(value)


def json_body(document: Any) -> bytes:
    """Compact UTF-8 JSON, as Kura's and the device cloud's JSON mappers write it."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def with_percent(state: AsyncState, percent: int | None, phase: str | None = None) -> AsyncState:
    """`state` with a new progress (and phase)."""
    kept = state.percent if percent is None else max(0, min(100, percent))
    return replace(state, percent=kept, phase=phase or state.phase)
