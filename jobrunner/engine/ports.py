"""What the engine needs from the device layer, and what flows back: the engine's seam.

The executor depends on these small interfaces only. `jobrunner.engine.link` adapts the
device layer's MQTT client and step operations to them; tests of the executor's rules run
against the real client, broker and simulated fleet.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, Protocol

from jobrunner.device.payload import KuraPayload


@dataclass(frozen=True, slots=True)
class Tag:
    """Attached to every request, so that its reply or timeout finds its target again."""

    job: tuple[str, str]
    client_id: str
    step_index: int
    request_id: str
    purpose: Literal["step", "status", "cancel"] = "step"
    query: str | None = None  # for a status query: which one


# --- outcomes of a reply, a notification or a status query ----------------------------------


@dataclass(frozen=True, slots=True)
class Succeeded:
    """The step is done on the device."""

    summary: str | None = None


@dataclass(frozen=True, slots=True)
class Failed:
    """The step failed on the device; `reason` says what the device said."""

    reason: str


@dataclass(frozen=True, slots=True)
class Accepted:
    """An asynchronous operation was accepted; `phase` is where its completion stands."""

    phase: str | None = None


@dataclass(frozen=True, slots=True)
class Progressed:
    """A notification that is not the last one (download 40%, download done, install next).

    With `settle_after`, silence is the answer: the step succeeds (saying `settled`) if
    nothing else arrives within that many seconds."""

    phase: str | None
    message: str | None = None
    settle_after: float | None = None
    settled: str | None = None


@dataclass(frozen=True, slots=True)
class Ignored:
    """A notification that changes nothing (for another phase, or unreadable), and why."""

    reason: str


Outcome = Succeeded | Failed | Accepted | Progressed


# --- the device link ---------------------------------------------------------------------------


class NotConnectedError(Exception):
    """The broker connection is down: the request was not sent."""


class StepOperation(Protocol):
    """One step definition with its properties, ready to be sent to any target.

    `operation_id` is the id of an asynchronous operation (its notifications carry it as
    `job.id`); `phase` is where that operation stands, as recorded with the target.
    """

    @property
    def app_id(self) -> str:
        """The Kura application the device needs, e.g. `DEPLOY-V2`."""

    @property
    def asynchronous(self) -> bool: ...

    def name(self) -> str:
        """`DEPLOY-V2 EXEC/stop/42`: what is sent, in short."""

    def describe(self, operation_id: int | None) -> str:
        """The request with its metrics, secrets masked: for the log, once per step."""

    def unsupported_reason(self, application_ids: Iterable[str]) -> str | None:
        """Why a device listing `application_ids` in its BIRTH cannot run the step, or None."""

    def on_reply(self, payload: KuraPayload, operation_id: int | None) -> Outcome: ...

    def on_notification(
        self,
        operation_id: int,
        phase: str | None,
        resources: tuple[str, ...],
        payload: KuraPayload,
    ) -> Outcome | Ignored:
        """What the notification says; Ignored (with why) when it changes nothing."""

    def status_queries(self, operation_id: int, phase: str | None) -> list[str]:
        """Names of the queries that tell where an asynchronous operation stands."""

    def recover(
        self, operation_id: int, phase: str | None, replies: dict[str, KuraPayload | None]
    ) -> Outcome | None:
        """What the status replies (None: no reply) tell together; None: keep waiting."""

    def cancellation(self, operation_id: int, phase: str | None) -> str | None:
        """What cancelling the operation in `phase` sends (`DEPLOY-V2 DEL/download`), or
        None when it cannot be cancelled there."""


class DeviceLink(Protocol):
    """The runner's connection to the devices (one MQTT client).

    A tag names the target (its job's scope is the Kura account) and carries the request id,
    chosen and recorded by the engine before anything is published.
    """

    def send_step(
        self, tag: Tag, operation: StepOperation, operation_id: int | None, timeout: float
    ) -> str | None:
        """Publish the step's request: None once published; the reason when it cannot be
        built (`not sent: secret ... has no value`); NotConnectedError when the broker
        connection is down (nothing was sent: it is tried again)."""

    def send_status_query(
        self, tag: Tag, operation: StepOperation, operation_id: int, timeout: float
    ) -> bool:
        """Send the status query `tag.query`; False if it cannot be sent now."""

    def send_cancel(
        self, tag: Tag, operation: StepOperation, operation_id: int, phase: str | None
    ) -> bool:
        """Ask the device to cancel the operation; False if it cannot be sent now."""

    def expect(self, tag: Tag, app_id: str, deadline: float) -> None:
        """Accept a reply to a request sent by a previous process, until `deadline`."""

    def track(self, tag: Tag, app_id: str, operation_id: int) -> None:
        """Report the notifications of an asynchronous operation started earlier."""

    def untrack(self, tag: Tag, operation_id: int) -> None:
        """Stop reporting an operation's notifications (it ended)."""

    def in_flight(self) -> int: ...

    def connected(self) -> bool:
        """Whether requests can be published now."""
