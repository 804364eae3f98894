"""The engine's seam: what it needs from the device layer, and what flows back.

The engine builds each request itself (from a `StepOperation`), records it, and hands it to
a `DeviceLink` to publish; replies, notifications and lifecycle messages come back into its
inbox as events. It owns every deadline, on its own clock: a request whose time ran out is
`expire`d on the link, and a reply that still comes is late. Two links implement the seam:
`link.ClientLink` (MQTT, through the device client) and `memory.MemoryLink` (in memory,
answered by a function: for unit tests and the loopback benchmark).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from typing import Literal, Protocol

from jobrunner.device.model import FailureKind, Request
from jobrunner.device.payload import KuraPayload
from jobrunner.immutable import immutable

__all__ = [
    "Accepted",
    "DeviceLink",
    "Failed",
    "FailureKind",  # the device layer's vocabulary of failures, which the engine adds to
    "Ignored",
    "Outcome",
    "Proceed",
    "Progressed",
    "StepChecks",
    "StepOperation",
    "Succeeded",
    "Tag",
]


@immutable
class Tag:
    """Attached to every request, so that its reply or deadline finds its target again."""

    job: tuple[str, str]
    client_id: str
    step_index: int
    request_id: str
    purpose: Literal["step", "status", "cancel", "probe", "rollback"] = "step"
    query: str | None = None  # for a status query: which one

    @property
    def device(self) -> tuple[str, str]:
        """(account, client id): the job's scope is the Kura account."""
        return self.job[0], self.client_id


# --- outcomes of a reply, a notification or a status query ----------------------------------


@immutable
class Succeeded:
    """The step is done on the device."""

    summary: str | None = None


@immutable
class Failed:
    """The step failed; `reason` says what happened, `kind` (and `code`) classify it."""

    reason: str
    kind: FailureKind = FailureKind.DEVICE_FAILED
    code: int | None = None

    @property
    def failure(self) -> str:
        """`device-error:404`: the kind, and the device's code when there is one."""
        return f"{self.kind.value}:{self.code}" if self.code is not None else self.kind.value


@immutable
class Accepted:
    """An asynchronous operation was accepted; `phase` is where its completion stands."""

    phase: str | None = None


@immutable
class Progressed:
    """A notification that is not the last one (download 40%, download done, install next).

    With `settle_after`, silence is the answer: the step succeeds (saying `settled`) if
    nothing else arrives within that many seconds."""

    phase: str | None
    message: str | None = None
    settle_after: float | None = None
    settled: str | None = None


@immutable
class Proceed:
    """One request of a step of several was answered: `stage` goes next (None: the step's
    own request), `after` seconds from now; `snapshot` is the id of a snapshot just taken."""

    stage: str | None
    summary: str
    after: float = 0.0
    snapshot: int | None = None


@immutable
class Ignored:
    """A notification that changes nothing (for another phase, or unreadable), and why."""

    reason: str


Outcome = Succeeded | Failed | Accepted | Progressed | Proceed


# --- the steps, and the link -------------------------------------------------------------------


Written = Mapping[str, Mapping[str, tuple[str, tuple[str, ...]]]]
"""pid -> property name -> (Kura type, values as text): what Configuration Puts write."""


class StepChecks(Protocol):
    """The requests a step sends besides its own (DESIGN §11): a configuration snapshot
    before it, and the read-backs (`verify: true`) after it. Each is a `stage`."""

    def request(self, stage: str) -> Request:
        """The request of `stage` (`snapshot`, `verify:N`)."""

    def on_reply(self, stage: str, payload: KuraPayload) -> Outcome:
        """Proceed to the next stage, or the step's outcome."""

    def verification(self, summary: str | None) -> Proceed | None:
        """What follows the step's own success (`summary`): the first read-back, or None."""

    def written(self) -> Written:
        """What the step writes (a Configuration Put; empty for any other step)."""


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

    def request(self, operation_id: int | None) -> Request:
        """The request to send, its secrets resolved now; SecretError or OperationError
        when it cannot be built (nothing is sent)."""

    def redact(self, text: str) -> str:
        """`text` with every secret value this step sent masked."""

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

    def status_requests(self, operation_id: int, phase: str | None) -> dict[str, Request]:
        """The queries (by name) that tell where an asynchronous operation stands."""

    def recover(
        self, operation_id: int, phase: str | None, replies: dict[str, KuraPayload | None]
    ) -> Outcome | None:
        """What the status replies (None: no reply) tell together; None: keep waiting."""

    def cancel_request(self, operation_id: int, phase: str | None) -> Request | None:
        """The request that cancels the operation in `phase`; None: it cannot be."""

    @property
    def checks(self) -> StepChecks | None:
        """Its snapshot and read-backs (a Configuration Put, a verified install); None."""


class DeviceLink(Protocol):
    """The runner's connection to the devices: it publishes what the engine built and
    recorded, and correlates what comes back (into the engine's inbox, with the tag)."""

    def send(self, tag: Tag, request: Request) -> None:
        """Publish `request` to the tag's device; NotSentError (NotConnectedError,
        ClientBusyError) when it did not leave. An asynchronous request (with an
        `operation_id`) has its notifications reported from now on, until `untrack`."""

    def sending(self) -> AbstractContextManager[None]:
        """A block whose requests may leave together when it ends (a turn's): each `send`
        inside still raises at once when its request cannot go."""

    def expect(self, tag: Tag, app_id: str, deadline: float | None = None) -> None:
        """Accept the reply to a request that a previous process sent; one that came
        already (by `deadline`, on the engine's clock) while no runner awaited it, too."""

    def expire(self, tag: Tag) -> bool:
        """End an awaited request whose time ran out; False when it had ended already (its
        reply is in the inbox)."""

    def track(self, tag: Tag, app_id: str, operation_id: int) -> None:
        """Report the notifications of an asynchronous operation started earlier."""

    def untrack(self, tag: Tag, operation_id: int) -> None:
        """Stop reporting an operation's notifications (it ended)."""

    def in_flight(self) -> int:
        """Requests sent and not yet answered or expired."""

    def connected(self) -> bool:
        """Whether requests can be published now."""


class DeviceClaims(Protocol):
    """One operation at a time per device across runners (several runners on one state
    database): a job claims a device before its first request there, and keeps it until the
    target is final, its execution ended, or the job was let go."""

    def holds(self, job: tuple[str, str], client_id: str) -> bool:
        """Whether the job has the device already."""
        ...

    def want(self, job: tuple[str, str], client_id: str) -> None:
        """Ask for the device (`granted` tells when the job has it)."""
        ...

    def granted(self) -> list[tuple[tuple[str, str], str]]:
        """The (job, client id) asked for that the job has now (the others are asked again
        a little later: another runner's job has them)."""
        ...

    def release(self, job: tuple[str, str], client_id: str) -> None: ...

    def release_job(self, job: tuple[str, str]) -> None:
        """Release every device of the job."""
        ...
