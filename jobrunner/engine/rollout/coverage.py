"""Which targets an execution covers: those not done, less those the retry limit leaves out.

One decision, read by the engine when it starts an execution (`core.executions`) and by `plan`
when it shows what a start would run and what it would skip, and why: two copies of it would
drift apart, and the plan would show targets running that the engine skips.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from jobrunner.engine.rollout.gate import retry_of
from jobrunner.manifests.fields import format_duration
from jobrunner.manifests.rollout import Retry
from jobrunner.state.jobstore import JobState
from jobrunner.state.targets import TargetState, TargetStatus


@dataclass(frozen=True)
class Coverage:
    """The targets a start covers, and those it skips, each sorted by client id."""

    covered: list[str]
    done: list[str] = field(default_factory=list)
    """PROCESS_OK at their last step: never contacted again."""
    given_up: list[str] = field(default_factory=list)
    """Failed, and tried by `retry.maxAttempts` executions already."""
    resting: list[str] = field(default_factory=list)
    """Failed less than `retry.backoff` ago."""
    reasons: dict[str, str] = field(default_factory=dict)
    """Why each skipped target is skipped."""


def coverage(
    state: JobState,
    steps: int,
    now: float,
    only: Iterable[str] | None = None,
    chosen: bool = False,
    restart_at: int | None = None,
) -> Coverage:
    """What a start of the job's frozen targets (of `only` those) covers at `now`, with
    `steps` steps. `chosen`: the operator chose the targets, and no retry limit holds them.
    `restart_at`: a start with `reset` or `from_step` covers every target, done ones and
    those the retry limit left out too (a new round: see `TargetState.restart`)."""
    frozen = state.record.frozen
    targets = frozen.targets if frozen is not None else []
    wanted = sorted(set(targets) if only is None else set(only) & set(targets))
    if restart_at is not None:
        return Coverage(wanted)
    retry = None if chosen else retry_of(state.record.spec)
    found = Coverage([])
    for client_id in wanted:
        target = state.targets.get(client_id) if client_id in state.targets else None
        skipped = None if target is None else _skipped(target, steps, retry, now)
        if skipped is None:
            found.covered.append(client_id)
            continue
        kind, reason = skipped
        {"done": found.done, "given-up": found.given_up, "resting": found.resting}[kind].append(
            client_id
        )
        found.reasons[client_id] = reason
    return found


def _skipped(
    target: TargetState, steps: int, retry: Retry | None, now: float
) -> tuple[str, str] | None:
    """Why a start skips the target (a kind, a reason), or None: it covers it."""
    if target.is_done(steps):
        return "done", "done: PROCESS_OK at its last step"
    if retry is None or target.status is not TargetStatus.PROCESS_FAILED:
        return None
    if target.attempts >= retry.max_attempts:
        return "given-up", (
            f"gave up after {target.attempts} attempt(s) (retry.maxAttempts {retry.max_attempts})"
        )
    if retry.backoff is None or not retry.backoff.total_seconds():
        return None
    until = (target.updated or 0.0) + retry.backoff.total_seconds()
    if until <= now:
        return None
    left = format_duration(timedelta(seconds=max(1, round(until - now))))
    return "resting", (
        f"failed less than retry.backoff ({format_duration(retry.backoff)}) ago:"
        f" not tried for {left} more"
    )
