"""The operations of steps that read per-device values: one per target, made when needed.

A step with `${device.*}` in its properties (a `StepTemplate`) is made concrete for a target
from the values frozen with that target, then built as any step is. The operations made are
kept for the targets in flight (bounded: a fleet of 100,000 does not keep 100,000); a step
without references never comes here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from pydantic import ValidationError

from jobrunner.device.model import FailureKind, Request
from jobrunner.device.payload import KuraPayload
from jobrunner.engine.link import ports
from jobrunner.engine.link.operations import OperationFactory
from jobrunner.errors import OperationError
from jobrunner.manifests.steps import StepBase
from jobrunner.manifests.steptemplates import StepTemplate, render_values
from jobrunner.manifests.values import UnresolvedReferenceError

KEPT = 4096
"""Operations kept per job: the targets in flight and those about to be, not the fleet."""


def step_operations(
    steps: list[StepBase], build: OperationFactory
) -> list[ports.StepOperation | None]:
    """The operation of each step the same for every target; None for a step that reads
    per-device values."""
    return [None if isinstance(step, StepTemplate) else build(step) for step in steps]


class PerDevice:
    """Makes (and keeps, a while) the operations of a job's steps that read values."""

    def __init__(self, build: OperationFactory) -> None:
        self.build = build
        self._made: dict[tuple[str, int], ports.StepOperation] = {}

    def operation(
        self,
        template: StepBase,
        values: Callable[[], dict[str, Any]],
        client_id: str,
        step_index: int,
    ) -> ports.StepOperation:
        """The operation of `template` for one target; `values`: its frozen values."""
        key = (client_id, step_index)
        found = self._made.get(key)
        if found is not None:
            return found
        assert isinstance(template, StepTemplate)
        try:
            made = self.build(render_values(template, values()))
        except UnresolvedReferenceError as problem:
            made = Unsendable(f"not sent: {problem.message}")
        except ValidationError as error:
            first = error.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"][1:])
            made = Unsendable(f"not sent: {where}: {first['msg']} (the values frozen with it)")
        if len(self._made) >= KEPT:
            del self._made[next(iter(self._made))]
        self._made[key] = made
        return made


class Unsendable:
    """A target's step its frozen values do not make (a state written by hand, or by a
    release that checked less): the target fails, saying why, and nothing is sent."""

    checks = None

    def __init__(self, reason: str) -> None:
        self.reason = reason

    @property
    def app_id(self) -> str:
        return "-"

    @property
    def asynchronous(self) -> bool:
        return False

    def name(self) -> str:
        return self.reason

    def describe(self, operation_id: int | None) -> str:
        return self.reason

    def request(self, operation_id: int | None) -> Request:
        raise OperationError(self.reason.removeprefix("not sent: "))

    def redact(self, text: str) -> str:
        return text

    def unsupported_reason(self, application_ids: Iterable[str]) -> str | None:
        return self.reason

    def on_reply(self, payload: KuraPayload, operation_id: int | None) -> ports.Outcome:
        return ports.Failed(self.reason, FailureKind.NOT_SENT)

    def on_notification(
        self,
        operation_id: int,
        phase: str | None,
        resources: tuple[str, ...],
        payload: KuraPayload,
    ) -> ports.Outcome | ports.Ignored:
        return ports.Ignored(self.reason)

    def status_requests(self, operation_id: int, phase: str | None) -> dict[str, Request]:
        return {}

    def recover(
        self, operation_id: int, phase: str | None, replies: dict[str, KuraPayload | None]
    ) -> ports.Outcome | None:
        return ports.Failed(self.reason, FailureKind.NOT_SENT)

    def cancel_request(self, operation_id: int, phase: str | None) -> Request | None:
        return None
