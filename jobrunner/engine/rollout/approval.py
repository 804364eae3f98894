"""Approving a wave that waits for it (`approval: required`, DESIGN §11).

The gate holds such a wave once the wave before it passed (the rollout shows
`awaiting-approval`); an approval, recorded in the job record with who gave it and when, lets
it go at the gate's next turn. A wave may be approved ahead, before it is reached; an approval
stays with the wave, across executions and restarts, as a passed wave stays passed.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from datetime import datetime

from jobrunner.engine.rollout.gate import gate_settings
from jobrunner.errors import JobError
from jobrunner.state.jobstore import JobState
from jobrunner.state.records import RolloutState, RolloutStatus, WaveState, WaveStatus


@dataclass(frozen=True)
class Approval:
    """A wave's approval: given now, or found already given (`already`)."""

    wave: str
    by: str
    on: datetime
    already: bool = False
    execution: int | None = None
    """The running execution whose log says it was given (None: none runs, or given before)."""


def approve(state: JobState, wave: str | None, by: str, now: datetime) -> Approval:
    """Record that `by` approved `wave` of the job (None: the wave awaiting an approval now),
    and say it in the running execution's log; JobError saying why not, and what would be
    right."""
    label = state.label
    record = state.record
    settings = gate_settings(record)
    asking = [w.name for w in settings.waves if w.approval] if settings is not None else []
    if settings is None or not asking:
        raise JobError(
            f"job {label} has no wave that waits for an approval; a wave does with"
            " `approval: required` in spec.rollout.waves"
        )
    rollout = record.rollout
    if wave is None:
        if rollout is None or rollout.status is not RolloutStatus.AWAITING_APPROVAL:
            now_at = f"its rollout is {rollout.status.value}" if rollout else "it has not started"
            raise JobError(
                f"job {label} has no wave awaiting an approval now ({now_at}); to approve"
                f" one ahead, name it: --wave {_first_unapproved(asking, rollout)}"
            )
        assert rollout.wave is not None
        wave = rollout.wave
    names = [w.name for w in record.frozen.waves] if record.frozen else []
    names = names or [w.name for w in settings.waves]
    if wave not in names:
        close = difflib.get_close_matches(wave, names, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise JobError(f"job {label} has no wave '{wave}'; {hint}its waves: {', '.join(names)}")
    if wave not in asking:
        raise JobError(
            f"wave '{wave}' of job {label} does not wait for an approval; the waves that do"
            f" (approval: required): {', '.join(asking)}"
        )
    if rollout is None or [w.name for w in rollout.waves] != names:
        rollout = RolloutState(waves=[WaveState(name=n) for n in names])
        record.rollout = rollout
    entry = next(w for w in rollout.waves if w.name == wave)
    if entry.approved_by is not None:
        return Approval(wave, entry.approved_by, entry.approved_on or now, already=True)
    if entry.status is WaveStatus.PASSED:
        raise JobError(f"wave '{wave}' of job {label} has passed already; nothing to approve")
    entry.approved_by, entry.approved_on = by, now
    state.save_record()
    running = state.running
    if running is not None:  # its log says so; a runner that takes the execution up reads it
        state.log(running.id).write("rollout", f"wave '{wave}' approved by {by}", now.timestamp())
    return Approval(wave, by, now, execution=None if running is None else running.id)


def approval_view(given: Approval) -> dict[str, object]:
    """An approval as `approve -o json` and the daemon's answer say it."""
    return {
        "wave": given.wave,
        "approvedBy": given.by,
        "approvedOn": given.on.isoformat().replace("+00:00", "Z"),
        "already": given.already,
    }


def _first_unapproved(asking: list[str], rollout: RolloutState | None) -> str:
    given = {w.name for w in rollout.waves if w.approved_by} if rollout else set()
    return next((name for name in asking if name not in given), asking[0])
