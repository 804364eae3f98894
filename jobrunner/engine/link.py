"""The device layer, plugged into the engine's seam (`ports`).

- `ClientLink` is both the device client's event handler (it only puts events in the
  engine's inbox: it runs on paho's thread) and the engine's `DeviceLink`.
- `OperationAdapter` gives a device-layer operation the engine's `StepOperation` shape.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from jobrunner.device import (
    Anomaly as DeviceAnomaly,
)
from jobrunner.device import (
    AsyncState,
    BrokerSettings,
    DeviceClient,
    KuraPayload,
    LifecycleTopic,
    NotifyTopic,
    Operation,
    OperationSettings,
    Outcome,
    OutcomeStatus,
    Pending,
    Request,
    Tracked,
    operation_for_step,
    read_lifecycle,
)
from jobrunner.device.lifecycle import ConnectionStatus
from jobrunner.device.operations import DEFAULT_SETTINGS
from jobrunner.engine import ports
from jobrunner.engine.events import (
    Anomaly,
    ConnectionChanged,
    DeviceConnected,
    DeviceDisconnected,
    Inbox,
    NotificationArrived,
    ReplyArrived,
    ReplyTimedOut,
)
from jobrunner.engine.ports import Tag
from jobrunner.errors import ClientBusyError, NotConnectedError, OperationError, SecretError
from jobrunner.errors import NotConnectedError as ClientNotConnected
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


class OperationAdapter:
    """A device-layer `Operation` as the engine's `StepOperation`."""

    def __init__(self, operation: Operation[Any], secrets: SecretResolver | None = None) -> None:
        self.operation = operation
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

    def request(self, operation_id: int | None) -> Request:
        """The request to send (with `operation_id` for an asynchronous operation).

        SecretError when a secret reference cannot be resolved now."""
        if self._request is not None:
            return self._request
        if not self._references:
            return self.operation.request(operation_id or 0)
        resolved = with_secrets(self.operation.properties, self._reveal)
        return type(self.operation)(resolved, self.operation.settings).request(operation_id or 0)

    def _reveal(self, reference: SecretRef) -> str:
        value = self.secrets.resolve(reference)
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
        """`text` with every secret value this step sent replaced by *** (a very short
        secret masks each occurrence of its text: a message may read oddly, never leak)."""
        for value in sorted(self._hidden, key=len, reverse=True):
            text = text.replace(value, MASK)
        return text

    @property
    def app_id(self) -> str:
        return self.operation.app_id

    @property
    def asynchronous(self) -> bool:
        return self.operation.mode.value == "async"

    def name(self) -> str:
        return self._name

    def describe(self, operation_id: int | None) -> str:
        return self._shown.request(operation_id or 0).describe()

    def unsupported_reason(self, application_ids: Iterable[str]) -> str | None:
        return self.operation.unsupported_reason(application_ids) or self.refusal()

    def on_reply(self, payload: KuraPayload, operation_id: int | None) -> ports.Outcome:
        outcome = self._outcome(self.operation.reply(payload, operation_id or 0))
        return outcome if outcome is not None else ports.Failed("unreadable reply")

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

    def status_queries(self, operation_id: int, phase: str | None) -> list[str]:
        state = AsyncState(operation_id, phase or "")
        return [query.name for query in self.operation.status_queries(state)]

    def recover(
        self, operation_id: int, phase: str | None, replies: dict[str, KuraPayload | None]
    ) -> ports.Outcome | None:
        state = AsyncState(operation_id, phase or "")
        return self._outcome(self.operation.recover(state, replies))

    def cancellation(self, operation_id: int, phase: str | None) -> str | None:
        request = self.operation.cancel(AsyncState(operation_id, phase or ""))
        return None if request is None else request.name

    def _outcome(self, outcome: Outcome | None) -> ports.Outcome | None:
        """The engine's outcome, with any secret the device echoed masked."""
        found = _outcome(outcome)
        if not self._hidden:
            return found
        if isinstance(found, ports.Failed):
            return ports.Failed(self.redact(found.reason))
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
        return ports.Failed(outcome.summary)
    phase = outcome.state.phase if outcome.state is not None else None
    if outcome.status is OutcomeStatus.ACCEPTED:
        return ports.Accepted(phase)
    settle = outcome.settle
    if settle is not None:
        return ports.Progressed(phase, outcome.summary or None, settle.seconds, settle.summary)
    return ports.Progressed(phase, outcome.summary or None)


def operations_factory(
    settings: OperationSettings = DEFAULT_SETTINGS, secrets: SecretResolver | None = None
) -> Callable[[StepBase], ports.StepOperation]:
    """Build the engine's operation of a step (the device layer's, adapted); secret
    references are resolved with `secrets` (default: from the environment) at dispatch."""
    resolver = secrets or SecretResolver.from_environment()

    def build(step: StepBase) -> ports.StepOperation:
        return OperationAdapter(operation_for_step(step, settings), resolver)

    return build


class ClientLink:
    """The runner's MQTT client, wired to the engine's inbox."""

    def __init__(self, settings: BrokerSettings, inbox: Inbox, max_in_flight: int) -> None:
        self.inbox = inbox
        self.client: DeviceClient[Tag] = DeviceClient(settings, self, max_in_flight=max_in_flight)

    # -- ClientEvents: called from paho's thread; only enqueue ----------------------------

    def reply(self, pending: Pending[Tag], payload: KuraPayload) -> None:
        self.inbox.put(ReplyArrived(pending.tag, payload))

    def timeout(self, pending: Pending[Tag]) -> None:
        self.inbox.put(ReplyTimedOut(pending.tag))

    def notification(self, tracked: Tracked[Tag], topic: NotifyTopic, payload: KuraPayload) -> None:
        self.inbox.put(
            NotificationArrived(
                topic.account,
                topic.device,
                topic.app_id,
                topic.resources,
                tracked.operation_id,
                payload,
            )
        )

    def lifecycle(self, topic: LifecycleTopic, payload: KuraPayload) -> None:
        event = read_lifecycle(topic, payload)
        now = time.time()
        for anomaly in event.anomalies:
            self.anomaly(anomaly)
        if event.status is ConnectionStatus.CONNECTED:
            self.inbox.put(DeviceConnected(topic.account, topic.device, event.facts, now))
        else:
            reason = "LWT" if event.status is ConnectionStatus.MISSING else "DC"
            self.inbox.put(DeviceDisconnected(topic.account, topic.device, reason, now))

    def anomaly(self, anomaly: DeviceAnomaly) -> None:
        device = anomaly.device
        tag = anomaly.tag if isinstance(anomaly.tag, Tag) else None
        account, client_id = device if device else (None, None)
        self.inbox.put(Anomaly(str(anomaly), account, client_id, tag, anomaly.kind.value))

    def connection(self, connected: bool, reason: str) -> None:
        self.inbox.put(ConnectionChanged(connected, reason))

    # -- DeviceLink: called from the engine's thread ---------------------------------------

    def send_step(
        self, tag: Tag, operation: ports.StepOperation, operation_id: int | None, timeout: float
    ) -> str | None:
        assert isinstance(operation, OperationAdapter)
        try:
            request = operation.request(operation_id)
        except (SecretError, OperationError) as error:
            return operation.redact(f"not sent: {error}")
        self._send(tag, request, timeout)
        return None

    def send_status_query(
        self, tag: Tag, operation: ports.StepOperation, operation_id: int, timeout: float
    ) -> bool:
        assert isinstance(operation, OperationAdapter) and tag.query is not None
        state = AsyncState(operation_id, "")
        for query in operation.operation.status_queries(state):
            if query.name == tag.query:
                try:
                    self._send(tag, query.request, timeout)
                except NotConnectedError:
                    return False
                return True
        return False

    def send_cancel(
        self, tag: Tag, operation: ports.StepOperation, operation_id: int, phase: str | None
    ) -> bool:
        assert isinstance(operation, OperationAdapter)
        request = operation.operation.cancel(AsyncState(operation_id, phase or ""))
        if request is None:
            return False
        try:
            self._send(tag, request, 30.0)
        except NotConnectedError:
            return False
        return True

    def _send(self, tag: Tag, request: Request, timeout: float) -> None:
        try:
            self.client.send(
                (tag.job[0], tag.client_id), request, timeout, tag, request_id=tag.request_id
            )
        except (ClientNotConnected, ClientBusyError) as error:
            raise NotConnectedError(str(error)) from None

    def expect(self, tag: Tag, app_id: str, deadline: float) -> None:
        self.client.expect(
            (tag.job[0], tag.client_id),
            tag.request_id,
            app_id=app_id,
            deadline=deadline,
            tag=tag,
        )

    def track(self, tag: Tag, app_id: str, operation_id: int) -> None:
        self.client.track((tag.job[0], tag.client_id), operation_id, app_id, tag)

    def untrack(self, tag: Tag, operation_id: int) -> None:
        self.client.untrack(tag.job[0], operation_id)

    def in_flight(self) -> int:
        return self.client.in_flight

    def connected(self) -> bool:
        return self.client.connected
