"""How a target moves: a target's state and an outcome in, the new state out. Pure.

No I/O, no clock (`now` is an argument), no engine: what one reply, notification, status
answer or deadline does to one target is decided here, and `outcomes` carries it out (records
the values, writes the line, frees the device, queues the next step). The reasons of the
failures the runner itself observes (no reply, no completion, the device gone) are composed
here too, so that each says what happened and what it means.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from jobrunner.engine.link.ports import (
    Accepted,
    Failed,
    FailureKind,
    Outcome,
    Proceed,
    Succeeded,
)
from jobrunner.manifests import StepBase
from jobrunner.state.registry import DeviceRecord, DeviceStatus
from jobrunner.state.targets import Snapshot, TargetState, TargetStatus


@dataclass(slots=True)  # not frozen: built once per outcome, on the hot path
class Transition:
    """What an outcome does to a target."""

    records: tuple[TargetState, ...]
    """The values to record, in order; the last one is where the target stands now."""
    line: str
    """What the execution log says of it (empty: nothing)."""
    step_over: bool = False
    """The step ended, OK or failed: the device is free, the target counted or queued."""
    awaiting_until: float | None = None
    """An asynchronous operation was accepted: its completion is awaited until then."""
    settle_at: float | None = None
    """A settling progress: the step succeeds at this time if nothing else comes."""
    settled: str | None = None
    """What the success of a settling progress will say."""
    proceed_after: float | None = None
    """The step's next request (its `stage`) goes this many seconds from now; the device
    stays the target's meanwhile."""

    @property
    def target(self) -> TargetState:
        return self.records[-1]


def progress(
    target: TargetState, outcome: Outcome, steps: Sequence[StepBase], how: str, now: float
) -> Transition:
    """The transition `outcome` causes (`how` it came: replied, notified, timeout...)."""
    if isinstance(outcome, Succeeded):  # the most frequent first
        records: tuple[TargetState, ...] = ()
        if target.status is TargetStatus.AWAITING_COMPLETION:
            target = target.notified(outcome.summary, now)
            records = (target,)
        done = target.succeeded(len(steps), outcome.summary, now)
        note = f": {outcome.summary}" if outcome.summary else ""
        following = (
            "PROCESS_OK"
            if done.is_final
            else f"next: step {done.step_index} '{steps[done.step_index].name}'"
        )
        return Transition((*records, done), f"{how} OK{note}; {following}", step_over=True)
    if isinstance(outcome, Failed):
        failed = target.failed(outcome.reason, now, outcome.failure)
        return Transition(
            (failed,), f"{outcome.reason}; PROCESS_FAILED, later steps skipped", step_over=True
        )
    if isinstance(outcome, Accepted):
        step = steps[target.step_index]
        deadline = now + step.completion_timeout.total_seconds()  # type: ignore[attr-defined]
        accepted = target.accepted(deadline, outcome.phase, now)
        return Transition((accepted,), "accepted; AWAITING_COMPLETION", awaiting_until=deadline)
    if isinstance(outcome, Proceed):
        snapshot = target.snapshot
        if outcome.snapshot is not None:
            snapshot = Snapshot(outcome.snapshot, target.step_index)
        ahead = target.proceeded(outcome.stage, outcome.summary, now, snapshot)
        return Transition((ahead,), f"{how}: {outcome.summary}", proceed_after=outcome.after)
    moved = target.progressed(outcome.phase, outcome.message, now)
    if outcome.settle_after is None:
        return Transition((moved,), outcome.message or "")
    return Transition(
        (moved,),
        outcome.message or "",
        settle_at=now + outcome.settle_after,
        settled=outcome.settled,
    )


# --- requests of an earlier process ------------------------------------------------------

RESTARTED = "restarted"
"""The phase of a request its execution sent before the runner restarted: its reply still
counts until its deadline; without one, the target fails (the device may have run it)."""
UNANSWERED = "unanswered"
"""The phase of a request an execution that ended (stopped) sent, taken up by a new one: its
reply still counts until its deadline; without one, the new execution sends the step again,
as the operator who started it asked."""


# --- the failures the runner observes itself ----------------------------------------------


def no_reply(
    target: TargetState,
    step: StepBase,
    app_id: str,
    *,
    connection_lost: bool,
    device: DeviceRecord | None,
) -> Failed:
    """The reply did not come in time: why it may not have, as far as the runner knows.

    `device` is what the registry holds of it: its last word (a BIRTH, a reply, a
    notification, a DC or an LWT, from this process or an earlier one) and the applications
    its last BIRTH listed. Kura answers nothing at all for an application it does not run,
    so without a BIRTH that silence looks like any other."""
    if target.phase == RESTARTED:
        return Failed("runner restarted before the reply", FailureKind.RESTARTED)
    reason = f"no reply in {step.timeout.total_seconds():g}s"
    seen = device.last_seen if device is not None else None
    if connection_lost:
        reason += (
            " (the broker connection was lost meanwhile: the request or its reply may have"
            " been lost with it)"
        )
    elif device is None or seen is None:
        reason += (
            "; no message was ever heard from this device (a BIRTH published before the"
            " runner first listened is not repeated): is it online, and is its client id right?"
        )
    elif device.status is DeviceStatus.CONNECTED:
        reason += (
            f": the device is online (last seen {seen:%Y-%m-%d %H:%M:%S} UTC) but did not"
            f" answer this {app_id} request in time"
        )
    else:
        last = "a disconnect (DC)" if device.status is DeviceStatus.DISCONNECTED else "an LWT"
        reason += (
            f"; the last heard of this device was {last} at {seen:%Y-%m-%d %H:%M:%S} UTC:"
            " is it back online?"
        )
    apps = device.application_ids if device is not None else None
    if apps is None:
        reason += (
            f"; no BIRTH of it is known, so it may not run {app_id} (a Kura gateway does not"
            " answer a request for an application it does not run)"
        )
    elif app_id not in apps:
        reason += (
            f"; its last BIRTH does not list {app_id} (a Kura gateway does not answer a"
            " request for an application it does not run)"
        )
    return Failed(reason, FailureKind.TIMEOUT)


def no_completion(target: TargetState, step: StepBase) -> Failed:
    waited = step.completion_timeout.total_seconds()  # type: ignore[attr-defined]
    where = f" (last: {target.message})" if target.message else ""
    return Failed(
        f"no completion notification in {waited:g}s{where}", FailureKind.COMPLETION_TIMEOUT
    )


def device_gone(lost: bool) -> Failed:
    """The device disconnected (DC), or lost its connection (LWT), before it replied."""
    kind = "lost its connection (LWT)" if lost else "disconnected"
    return Failed(f"device {kind} before replying", FailureKind.DISCONNECTED)


def not_sent(reason: str, kind: FailureKind = FailureKind.NOT_SENT) -> Failed:
    return Failed(reason, kind)
