"""The device layer's step operations, as the engine's `StepOperation`s.

`OperationAdapter` wraps one `jobrunner.device.operations.Operation`: it builds the requests
(resolving secret references at dispatch, and masking them in everything it says), and turns
the device layer's outcomes into the engine's, each failure with its kind and code.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from jobrunner.device import (
    AsyncState,
    KuraPayload,
    Operation,
    OperationSettings,
    Outcome,
    OutcomeStatus,
    Request,
    operation_for_step,
)
from jobrunner.device.model import FailureKind
from jobrunner.device.operations import DEFAULT_SETTINGS
from jobrunner.engine.link import ports
from jobrunner.engine.link.checks import checks_of
from jobrunner.errors import SecretError
from jobrunner.manifests import StepBase
from jobrunner.manifests.secrets import (
    MASK,
    LiteralSecret,
    SecretRef,
    SecretResolver,
    masked,
    secrets_in,
    with_secrets,
)

OperationFactory = Callable[[StepBase], ports.StepOperation]

MASK_ANYWHERE = 6
"""Characters from which a secret's value is masked wherever it stands in what a device
says; a shorter one only where it stands whole (and a warning says it is short)."""

log = logging.getLogger("jobrunner.secrets")


class OperationAdapter:
    """A device-layer `Operation` as the engine's `StepOperation`."""

    def __init__(
        self,
        operation: Operation[Any],
        secrets: SecretResolver | None = None,
        verify: bool = False,
    ) -> None:
        self.operation = operation
        # Read at every dispatch: taken once (`mode.value` goes through the enum's descriptor).
        self._app_id = operation.app_id
        self._asynchronous = operation.mode.value == "async"
        self.checks = checks_of(operation, verify)
        """Its snapshot and read-backs (a Configuration Put, a verified install), or None."""
        self.secrets = secrets or SecretResolver.from_environment()
        found = list(secrets_in(operation.properties))
        self._references = [s for _, s in found if isinstance(s, SecretRef)]
        self._hidden = {str(s) for _, s in found if isinstance(s, LiteralSecret)}
        """Secret values this step has sent (literal or resolved): masked in what it says."""
        self._shown = operation
        if self._references:  # the step as the log shows it: every reference as ***
            self._shown = type(operation)(
                with_secrets(operation.properties, masked), operation.settings
            )
        first = self._shown.request(0)
        self._name = first.name
        # Operations are pure: a synchronous one sends the same request to every target,
        # so it is built once (an asynchronous one carries the operation id of each). With
        # secret references it is built for each dispatch, from the secrets as they are then.
        self._request = None if self.asynchronous or self._references else first

    # -- requests -------------------------------------------------------------------------

    def request(self, operation_id: int | None) -> Request:
        """The request to send (with `operation_id` for an asynchronous operation);
        SecretError when a secret reference cannot be resolved now."""
        if self._request is not None:
            return self._request
        if not self._references:
            return self.operation.request(operation_id or 0)
        resolved = with_secrets(self.operation.properties, self._reveal)
        return type(self.operation)(resolved, self.operation.settings).request(operation_id or 0)

    def status_requests(self, operation_id: int, phase: str | None) -> dict[str, Request]:
        state = AsyncState(operation_id, phase or "")
        return {query.name: query.request for query in self.operation.status_queries(state)}

    def cancel_request(self, operation_id: int, phase: str | None) -> Request | None:
        return self.operation.cancel(AsyncState(operation_id, phase or ""))

    def _reveal(self, reference: SecretRef) -> str:
        value = self.secrets.resolve(reference)
        if value not in self._hidden and len(value) < MASK_ANYWHERE:
            log.warning(
                "the secret %s of step %r is %d character(s): it is masked only where it stands"
                " whole in what devices say (%d or more are masked anywhere); use a longer one",
                masked(reference),
                self._name,
                len(value),
                MASK_ANYWHERE,
            )
        self._hidden.add(value)
        return value

    def refusal(self) -> str | None:
        """Why the step cannot be sent now (a secret reference without a value), or None."""
        try:
            for reference in self._references:
                self._reveal(reference)
        except SecretError as error:
            return f"not sent: {error}"
        return None

    def redact(self, text: str) -> str:
        """`text` with every secret value this step sent replaced by ***: wherever it stands,
        or, for a secret shorter than MASK_ANYWHERE, only where it stands whole (a secret
        "ab" must not turn "https://lab" into "https://l***")."""
        for value in sorted(self._hidden, key=len, reverse=True):
            if len(value) >= MASK_ANYWHERE:
                text = text.replace(value, MASK)
            elif value:
                text = re.sub(rf"(?<![\w]){re.escape(value)}(?![\w])", MASK, text)
        return text

    # -- what it is -----------------------------------------------------------------------

    @property
    def app_id(self) -> str:
        return self._app_id

    @property
    def asynchronous(self) -> bool:
        return self._asynchronous

    def name(self) -> str:
        return self._name

    def describe(self, operation_id: int | None) -> str:
        return self._shown.request(operation_id or 0).describe()

    def unsupported_reason(self, application_ids: Iterable[str]) -> str | None:
        if (  # at every dispatch to a device whose BIRTH is known: the usual answer first
            not self._references
            and application_ids.__class__ is tuple
            and self._app_id in application_ids
        ):
            return None
        return self.operation.unsupported_reason(application_ids) or self.refusal()

    # -- what the device says -------------------------------------------------------------

    def on_reply(self, payload: KuraPayload, operation_id: int | None) -> ports.Outcome:
        outcome = self._outcome(self.operation.reply(payload, operation_id or 0))
        if outcome is None:
            return ports.Failed("unreadable reply", FailureKind.UNREADABLE)
        return outcome

    def on_notification(
        self,
        operation_id: int,
        phase: str | None,
        resources: tuple[str, ...],
        payload: KuraPayload,
    ) -> ports.Outcome | ports.Ignored:
        state = AsyncState(operation_id, phase or "")
        outcome = self.operation.notification(state, resources, payload)
        found = self._outcome(outcome)
        return ports.Ignored(self.redact(outcome.summary)) if found is None else found

    def recover(
        self, operation_id: int, phase: str | None, replies: dict[str, KuraPayload | None]
    ) -> ports.Outcome | None:
        state = AsyncState(operation_id, phase or "")
        return self._outcome(self.operation.recover(state, replies))

    def _outcome(self, outcome: Outcome | None) -> ports.Outcome | None:
        """The engine's outcome, with any secret the device echoed masked."""
        found = _outcome(outcome)
        if not self._hidden:
            return found
        if isinstance(found, ports.Failed):
            return replace(found, reason=self.redact(found.reason))
        if isinstance(found, ports.Succeeded) and found.summary:
            return ports.Succeeded(self.redact(found.summary))
        if isinstance(found, ports.Progressed) and found.message:
            return replace(found, message=self.redact(found.message))
        return found


def _outcome(outcome: Outcome | None) -> ports.Outcome | None:
    if outcome is None or outcome.status is OutcomeStatus.IGNORED:
        return None
    if outcome.status is OutcomeStatus.OK:
        return ports.Succeeded(outcome.summary or None)
    if outcome.status is OutcomeStatus.FAILED:
        kind = outcome.failure or FailureKind.DEVICE_FAILED
        return ports.Failed(outcome.summary, kind, outcome.code)
    phase = outcome.state.phase if outcome.state is not None else None
    if outcome.status is OutcomeStatus.ACCEPTED:
        return ports.Accepted(phase)
    settle = outcome.settle
    if settle is not None:
        return ports.Progressed(phase, outcome.summary or None, settle.seconds, settle.summary)
    return ports.Progressed(phase, outcome.summary or None)


def operations_factory(
    settings: OperationSettings = DEFAULT_SETTINGS, secrets: SecretResolver | None = None
) -> OperationFactory:
    """Build the engine's operation of a step (the device layer's, adapted); secret
    references are resolved with `secrets` (default: from the environment) at dispatch."""
    resolver = secrets or SecretResolver.from_environment()

    def build(step: StepBase) -> ports.StepOperation:
        verify = getattr(step, "verify", None) is True
        return OperationAdapter(operation_for_step(step, settings), resolver, verify)

    return build
