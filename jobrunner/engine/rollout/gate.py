"""The gate of a rollout: which targets of a running execution may start now (DESIGN §6).

One wave at a time: the targets of a wave start only once every wave before it has passed.
A wave passes when every one of its targets has an outcome and at least `successThreshold`
of them are PROCESS_OK, then, with `soak`, when that still holds at the end of the soak with
the devices that lost their connection and are not back counted as failed. A wave that
cannot pass any more, or the abort rule across the execution, aborts it. Within what the
waves allow, targets start inside their window, at most `maxPerMinute` (or the ramp's rate)
a minute, spread evenly, in the stable order their waves were split in.

The gate decides, the engine carries out (`Decision`): it starts the targets, writes the
lines, aborts. Where the rollout stands is kept in the job record (`RolloutState`), written
when a wave or the reason changes, so that status shows it and a restart goes on from it.
Counting is incremental: a turn costs the zones it looks at, not the targets.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from jobrunner.engine.rollout.waves import stable_order
from jobrunner.engine.rollout.windows import Windows, describe
from jobrunner.manifests.fields import format_duration
from jobrunner.manifests.rollout import DEVICE_ZONE, Retry, Rollout, Window
from jobrunner.state.jobstore import JobState
from jobrunner.state.records import (
    FrozenWave,
    JobRecord,
    RolloutState,
    RolloutStatus,
    WaveState,
    WaveStatus,
)
from jobrunner.state.targets import TargetState, TargetStatus

ALL = "all"
"""The one wave of a rollout declared without waves."""
APPROVED_IN_GIT = "git (spec.rollout.approved)"
"""Who approved a wave listed in the manifest's `spec.rollout.approved`."""


def rollout_of(spec: dict[str, Any]) -> Rollout | None:
    """The rollout settings of a job as recorded (its manifest's, as last applied)."""
    raw = spec.get("rollout")
    if raw is None:
        return None
    try:
        return Rollout.model_validate(raw, strict=False)
    except ValidationError:
        return None  # recorded by another release: as without a rollout, never a crash


def retry_of(spec: dict[str, Any]) -> Retry | None:
    """The retry limit of a job as recorded."""
    raw = spec.get("retry")
    if raw is None:
        return None
    try:
        return Retry.model_validate(raw, strict=False)
    except ValidationError:
        return None


def gate_settings(record: JobRecord) -> Rollout | None:
    """The rollout a job's executions go through: its manifest's as last applied, or the
    defaults for waves frozen by an earlier manifest; None for a job without a rollout."""
    settings = rollout_of(record.spec)
    if settings is None and record.frozen is not None and record.frozen.waves:
        return Rollout()
    return settings


def wave_not_reached(
    waves: list[FrozenWave], rollout: RolloutState | None, client_id: str
) -> str | None:
    """Why a target may not start yet because of its wave (a device-connect run), or None:
    its wave is the current one or has passed, or the job has no waves."""
    index = next((i for i, w in enumerate(waves) if client_id in w.targets), None)
    if index is None:
        return None
    passed = {w.name for w in rollout.waves if w.status is WaveStatus.PASSED} if rollout else set()
    current = next((i for i, w in enumerate(waves) if w.name not in passed), None)
    if current is None or index < current:
        return None
    if index == current:
        if awaits_approval(rollout, waves[index].name):
            return f"its wave '{waves[index].name}' awaits an approval (jobrunner approve)"
        return None
    return f"its wave '{waves[index].name}' waits for wave '{waves[current].name}' to pass"


def awaits_approval(rollout: RolloutState | None, wave: str | None) -> bool:
    """Whether the rollout waits for an approval of `wave` (as the gate last recorded)."""
    return (
        rollout is not None
        and rollout.status is RolloutStatus.AWAITING_APPROVAL
        and rollout.wave == wave
    )


def held_reason(names: list[str], rollout: RolloutState | None, index: int) -> str:
    """Why a target of the running execution, in wave `names[index]`, has not started, as
    the rollout stands now (`rollout`): the wave it waits for is the first that has not
    passed, never one that passed since it was held. The engine writes it when it holds the
    target, and status says it again from the rollout as it is when it is asked."""
    passed = {w.name for w in rollout.waves if w.status is WaveStatus.PASSED} if rollout else set()
    current = next((i for i, name in enumerate(names) if name not in passed), None)
    wave = names[index] if 0 <= index < len(names) else None
    if current is not None and index == current and awaits_approval(rollout, wave):
        return f"waits for an approval of its wave '{wave}' (jobrunner approve --wave {wave})"
    if current is not None and wave is not None and index > current:
        before = names[current]
        recorded = next((w for w in rollout.waves if w.name == before), None) if rollout else None
        if recorded is not None and recorded.status is WaveStatus.SOAKING and recorded.soak_until:
            until = describe(recorded.soak_until.timestamp(), "UTC")
            return (
                f"waits for wave '{before}' to pass: it soaks until {until}"
                f" (it is in wave '{wave}')"
            )
        return f"waits for wave '{before}' to pass (it is in wave '{wave}')"
    return f"waits to start in wave '{wave}' (window and rate)"


def percent(value: float) -> str:
    return f"{value:.4g}%"


@dataclass
class Decision:
    """What one turn of the gate asks the engine to do."""

    start: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    abort: str | None = None
    wake_at: float | None = None
    passed: list[tuple[str, str]] = field(default_factory=list)
    """(wave, decision) of each wave that passed in this turn."""
    approved: list[tuple[str, str]] = field(default_factory=list)
    """(wave, by) of each wave let go in this turn by an approval in git."""


@dataclass
class _Wave:
    name: str
    targets: frozenset[str]
    ok: int = 0
    failed: int = 0
    held: dict[str, deque[str]] = field(default_factory=dict)
    """Targets of the running execution not started yet, per time zone, in start order."""

    @property
    def total(self) -> int:
        return len(self.targets)

    @property
    def waiting(self) -> int:
        return sum(len(q) for q in self.held.values())

    def counts(self) -> str:
        return f"{self.ok}/{self.total} PROCESS_OK"


class Pace:
    """Targets a minute, spread evenly: one every 60/rate seconds, no burst after a pause."""

    def __init__(self) -> None:
        self.next_at: float | None = None

    def allowed(self, rate: float | None, now: float) -> int:
        if rate is None:
            return 1 << 30
        interval = 60.0 / rate
        if self.next_at is None or self.next_at < now - interval:
            self.next_at = now
        if now < self.next_at:
            return 0
        return min(int((now - self.next_at) / interval) + 1, max(1, math.ceil(rate / 60)))

    def used(self, rate: float | None, count: int, now: float) -> None:
        if rate is not None and count and self.next_at is not None:
            self.next_at += count * 60.0 / rate

    def wake(self) -> float | None:
        return self.next_at


class Gate:
    """The rollout of one running execution."""

    def __init__(
        self,
        state: JobState,
        execution: int,
        settings: Rollout,
        absent: Callable[[str], str | None],
    ) -> None:
        self.state = state
        self.execution = execution
        self.settings = settings
        self.absent = absent
        """Why a device is not connected now (None: it is)."""
        frozen = state.record.frozen
        assert frozen is not None
        self.declared_waves = bool(frozen.waves)
        """Without waves, successThreshold and soak have nothing to gate: rate, window and
        the abort rule apply."""
        split = [(w.name, w.targets) for w in frozen.waves] or [(ALL, stable_order(frozen.targets))]
        self.waves = [_Wave(name, frozenset(targets)) for name, targets in split]
        self.wave_of = {c: i for i, w in enumerate(self.waves) for c in w.targets}
        self.order = {c: n for _, targets in split for n, c in enumerate(targets)}
        self._spec = state.record.spec
        self.settings = settings
        self.windows: Windows | None = None
        self._apply(settings)
        self.pace = Pace()
        self.finished = 0  # targets of this execution with an outcome (the abort rule)
        self.failed = 0
        self.succeeded = 0
        self.aborted: str | None = None
        self.awaiting: int | None = None
        """The current wave, when it waits for an approval (this turn)."""
        self.record = self._rollout_record()
        for target in state.targets:
            if target.client_id in self.wave_of:
                self._count(target, joined=target.execution == execution)

    def _apply(self, settings: Rollout) -> None:
        if settings.window != self.settings.window or self.windows is None:
            self.windows = Windows(settings.window) if settings.window is not None else None
        self.settings = settings

    # -- what the engine tells it -----------------------------------------------------------

    def started(self, target: TargetState) -> bool:
        """Whether this execution started the target already (it goes on without the gate)."""
        return target.started_in == self.execution

    def hold(self, client_id: str) -> None:
        """A target of the execution to start when the gate allows."""
        index = self.wave_of.get(client_id, len(self.waves) - 1)
        zone = self._zone(client_id)
        self.waves[index].held.setdefault(zone, deque()).append(client_id)

    def sort_held(self) -> None:
        """Put what was held in start order (the order the waves were split in)."""
        for wave in self.waves:
            for zone, queue in wave.held.items():
                wave.held[zone] = deque(sorted(queue, key=lambda c: self.order.get(c, 0)))

    def outcome(self, target: TargetState) -> None:
        """A target of the execution has its outcome (PROCESS_OK or PROCESS_FAILED)."""
        if target.client_id in self.wave_of:
            self._count(target, joined=True)

    def held(self) -> Iterable[str]:
        for wave in self.waves:
            for queue in wave.held.values():
                yield from queue

    def release_all_held(self) -> list[str]:
        """Take every held target out (an abort: they are not started)."""
        found = list(self.held())
        for wave in self.waves:
            wave.held.clear()
        return found

    @property
    def holds_execution_open(self) -> bool:
        """A soak under way: the execution ends once its wave is decided."""
        current = self._current()
        return (
            not self.aborted
            and current is not None
            and self.record.waves[current].status is WaveStatus.SOAKING
        )

    def soaking_wave_of(self, client_id: str) -> str | None:
        """The name of the target's wave if it is soaking now."""
        index = self.wave_of.get(client_id)
        if index is None or self.record.waves[index].status is not WaveStatus.SOAKING:
            return None
        return self.waves[index].name

    def waiting_reason(self, client_id: str) -> str:
        """Why a held target has not started, as the rollout stands now."""
        index = self.wave_of.get(client_id, 0)
        return held_reason([w.name for w in self.waves], self.record, index)

    # -- a turn ----------------------------------------------------------------------------

    def turn(self, now: float) -> Decision:
        """Decide the waves that can be decided, then start what the gates allow."""
        decision = Decision()
        if self.aborted:
            return decision
        if self.state.record.spec is not self._spec:  # reconciled: the settings as they are now
            self._spec = self.state.record.spec
            self._apply(rollout_of(self._spec) or Rollout())
        current = None if self._abort_rule(now, decision) else self._decide(now, decision)
        if decision.abort is not None:
            self.aborted = decision.abort
            self._set(RolloutStatus.ABORTED, decision.abort)
            return decision
        if current is None:  # every wave passed: what is left (retries) starts as it may
            self._start(len(self.waves) - 1, now, decision, passed=True)
            return decision
        if self.awaiting == current:
            name = self.waves[current].name
            if not awaits_approval(self.record, name):
                decision.lines.append(
                    f"wave '{name}' awaits an approval (approval: required); nothing of it"
                    f" starts until `jobrunner approve {self.state.label} --wave {name}`"
                )
            self._set(
                RolloutStatus.AWAITING_APPROVAL,
                f"wave '{name}' awaits an approval: jobrunner approve {self.state.label}"
                f" --wave {name} (or spec.rollout.approved: [{name}])",
            )
            return decision
        wave = self.record.waves[current]
        if wave.status is WaveStatus.SOAKING:
            assert wave.soak_until is not None
            decision.wake_at = wave.soak_until.timestamp()
            self._set(RolloutStatus.SOAKING, f"wave '{wave.name}' soaks until {_iso(now, wave)}")
            return decision
        self._start(current, now, decision)
        return decision

    def _decide(self, now: float, decision: Decision) -> int | None:
        """Pass, fail or soak the waves whose targets all have an outcome; the current wave
        (None: every wave passed)."""
        threshold = self.settings.success_threshold
        self.awaiting = None
        while True:
            current = self._current()
            if current is None:
                return None
            wave, record = self.waves[current], self.record.waves[current]
            if record.status is WaveStatus.PENDING and not self._begin(record, now, decision):
                self.awaiting = current
                return current
            if record.status is WaveStatus.SOAKING:
                assert record.soak_until is not None
                if now < record.soak_until.timestamp():
                    return current
                self._end_soak(wave, record, now, decision)
                if decision.abort is not None:
                    return current
                continue
            if wave.ok + wave.failed < wave.total:
                if not self.declared_waves:
                    return current
                allowed = wave.total - math.ceil(wave.total * threshold / 100 - 1e-9)
                if wave.failed > allowed:
                    why = (
                        f"cannot pass: {wave.failed} of its {wave.total} target(s) failed,"
                        f" at most {allowed} may for {percent(threshold)}"
                    )
                    decision.abort = f"wave '{wave.name}' {why}"
                    self._wave_failed(record, now, why)
                return current
            share = 100.0 * wave.ok / wave.total if wave.total else 100.0
            verdict = f"{wave.counts()} = {percent(share)}"
            if not self.declared_waves:  # no waves: no gate but the abort rule
                self._wave_passed(record, now, decision, f"{verdict}; every target has ended")
                continue
            if share + 1e-9 < threshold:
                why = f"{verdict} < {percent(threshold)}"
                decision.abort = f"wave '{wave.name}': {why}"
                self._wave_failed(record, now, why)
                return current
            soak = self.settings.soak_time
            if soak.total_seconds() > 0:
                record.status = WaveStatus.SOAKING
                record.soak_until = _utc(now + soak.total_seconds())
                record.decision = f"{verdict} >= {percent(threshold)}"
                decision.lines.append(
                    f"wave '{wave.name}': {record.decision}; soaks {format_duration(soak)}"
                    f" (until {_iso(now, record)}): its devices must stay connected"
                )
                self.state.save_record()
                return current
            record.decision = f"{verdict} >= {percent(threshold)}"
            self._wave_passed(record, now, decision, f"{record.decision}; passed")

    def _end_soak(self, wave: _Wave, record: WaveState, now: float, decision: Decision) -> None:
        threshold = self.settings.success_threshold
        lost = sorted(c for c in wave.targets if self._ok(c) and self.absent(c) is not None)
        ok = wave.ok - len(lost)
        share = 100.0 * ok / wave.total if wave.total else 100.0
        soak = format_duration(self.settings.soak_time)
        gone = f"; {len(lost)} lost their connection: {', '.join(lost[:10])}" if lost else ""
        verdict = f"{ok}/{wave.total} PROCESS_OK and connected = {percent(share)}"
        if share + 1e-9 < threshold:
            why = f"after its soak: {verdict} < {percent(threshold)}"
            decision.abort = f"wave '{wave.name}' {why}"
            self._wave_failed(record, now, why + gone)
            return
        self._wave_passed(
            record, now, decision, f"{verdict} >= {percent(threshold)}; soaked {soak}{gone}; passed"
        )

    def _wave_passed(self, record: WaveState, now: float, decision: Decision, text: str) -> None:
        record.status, record.ended_on, record.decision = WaveStatus.PASSED, _utc(now), text
        decision.lines.append(f"wave '{record.name}': {text}")
        decision.passed.append((record.name, text))
        self.state.save_record()

    def _wave_failed(self, record: WaveState, now: float, text: str) -> None:
        record.status, record.ended_on, record.decision = WaveStatus.FAILED, _utc(now), text
        self.state.save_record()

    def _begin(self, record: WaveState, now: float, decision: Decision) -> bool:
        """Start a wave that was pending; False when it waits for an approval."""
        if self._awaits_approval(record, now, decision):
            return False
        record.status, record.started_on = WaveStatus.RUNNING, _utc(now)
        self.state.save_record()
        return True

    def _awaits_approval(self, record: WaveState, now: float, decision: Decision) -> bool:
        """Whether a wave about to start waits for an approval; one approved in git is let
        go here, and the approval recorded as any other."""
        if record.approved_by is not None or not self.settings.needs_approval(record.name):
            return False
        if record.name not in self.settings.approved:
            return True
        record.approved_by, record.approved_on = APPROVED_IN_GIT, _utc(now)
        decision.lines.append(f"wave '{record.name}' approved by {APPROVED_IN_GIT}")
        decision.approved.append((record.name, APPROVED_IN_GIT))
        self.state.save_record()
        return False

    def _abort_rule(self, now: float, decision: Decision) -> bool:
        """The abort rule across the execution: when it trips, the wave that was running
        ends ABORTED with the rule's numbers (it neither passed nor failed its gate)."""
        rule = self.settings.abort
        if (
            rule is None
            or rule.failure_threshold is None
            or self.finished < rule.min_finished
            or not self.finished
        ):
            return False
        share = 100.0 * self.failed / self.finished
        if share + 1e-9 < rule.failure_threshold:
            return False
        decision.abort = (
            f"abort rule: {self.failed}/{self.finished} finished target(s) failed ="
            f" {percent(share)} >= {percent(rule.failure_threshold)}"
            f" (after at least {rule.min_finished})"
        )
        current = self._current()
        if current is not None:
            record = self.record.waves[current]
            record.status, record.ended_on = WaveStatus.ABORTED, _utc(now)
            record.decision = decision.abort
            self.state.save_record()
        return True

    def _start(self, current: int, now: float, decision: Decision, passed: bool = False) -> None:
        """Start held targets of the waves up to `current`, inside their window, at the pace."""
        rate = self.rate()
        budget = self.pace.allowed(rate, now)
        closed_until: float | None = None
        waiting = 0
        for wave in self.waves[: current + 1]:
            for zone, queue in wave.held.items():
                if not queue:
                    continue
                if self.windows is not None:
                    opening = self.windows.at(zone, now)
                    if not opening.open:
                        waiting += len(queue)
                        if closed_until is None or opening.until < closed_until:
                            closed_until = opening.until
                        continue
                while queue and budget > 0:
                    decision.start.append(queue.popleft())
                    budget -= 1
                waiting += len(queue)
        self.pace.used(rate, len(decision.start), now)
        wakes = [t for t in (closed_until,) if t is not None and t != math.inf]
        if waiting and rate is not None and self.pace.wake() is not None:
            wakes.append(self.pace.wake() or now)
        decision.wake_at = min(wakes) if wakes else None
        label = "every wave passed" if passed else f"wave '{self.waves[current].name}'"
        if waiting and closed_until is not None and not decision.start:
            zone = self._window_zone_label()
            self._set(
                RolloutStatus.WAITING,
                f"{label}: {waiting} target(s) wait for the window, which opens"
                f" {describe(closed_until, zone)}",
            )
        elif passed and not waiting:
            self._set(RolloutStatus.PASSED, None)
        else:
            # No count in the reason: it is written to the job record when it changes.
            pace = f" at most {self.rate():g} a minute" if self.rate() is not None else ""
            self._set(RolloutStatus.RUNNING, f"{label}: starting its targets{pace}")

    def rate(self) -> float | None:
        """Targets a minute now: the ramp's (grown with the successes), under maxPerMinute."""
        return rate_after(self.settings, self.succeeded)

    # -- bookkeeping -------------------------------------------------------------------------

    def _count(self, target: TargetState, joined: bool) -> None:
        wave = self.waves[self.wave_of[target.client_id]]
        if target.status is TargetStatus.PROCESS_OK:
            wave.ok += 1
            if joined:
                self.finished += 1
                self.succeeded += 1
        elif target.status is TargetStatus.PROCESS_FAILED:
            wave.failed += 1
            if joined:
                self.finished += 1
                self.failed += 1

    def _ok(self, client_id: str) -> bool:
        return (
            client_id in self.state.targets
            and self.state.targets.get(client_id).is_final
            and (self.state.targets.get(client_id).status is TargetStatus.PROCESS_OK)
        )

    def _current(self) -> int | None:
        for index, record in enumerate(self.record.waves):
            if record.status is not WaveStatus.PASSED:
                return index
        return None

    def _zone(self, client_id: str) -> str:
        return zone_of(self.settings.window, self.state.record.zones, client_id)

    def _window_zone_label(self) -> str:
        window = self.settings.window
        if window is None or window.timezone == DEVICE_ZONE:
            return "UTC"
        return window.timezone

    def _rollout_record(self) -> RolloutState:
        """The job's rollout record, made or brought in line with the frozen waves; a wave
        that failed or was aborted (an aborted execution) is tried again, passed waves stay
        passed."""
        record = self.state.record
        rollout = record.rollout
        names = [w.name for w in self.waves]
        if rollout is None or [w.name for w in rollout.waves] != names:
            rollout = RolloutState(waves=[WaveState(name=n) for n in names])
        for wave in rollout.waves:
            if wave.status in (WaveStatus.FAILED, WaveStatus.ABORTED):
                wave.status, wave.ended_on, wave.decision = WaveStatus.RUNNING, None, None
        if rollout.status is RolloutStatus.ABORTED:
            rollout.status, rollout.reason = RolloutStatus.RUNNING, None
        record.rollout = rollout
        self.state.save_record()
        return rollout

    def _set(self, status: RolloutStatus, reason: str | None) -> None:
        current = self._current()
        wave = self.waves[current].name if current is not None else None
        rollout = self.record
        if (rollout.status, rollout.reason, rollout.wave) != (status, reason, wave):
            rollout.status, rollout.reason, rollout.wave = status, reason, wave
            self.state.save_record()


def _utc(moment: float) -> datetime:
    return datetime.fromtimestamp(moment, UTC)


def _iso(now: float, record: WaveState) -> str:
    until = record.soak_until.timestamp() if record.soak_until else now
    return describe(until, "UTC")


def zone_of(window: Window | None, zones: Mapping[str, str], client_id: str) -> str:
    """The zone a target's window opens in: the window's own, or with `timezone: device` the
    device's (`zones`: its DeviceList `timezone`), UTC for a device without one. The gate
    starts targets by it, and `plan` estimates by it."""
    if window is None:
        return "UTC"
    if window.timezone == DEVICE_ZONE:
        return zones.get(client_id, "UTC")
    return window.timezone


def zone_unknown(window: Window | None, zones: Mapping[str, str], client_id: str) -> bool:
    """With `timezone: device`, the device has no zone: its window opens in UTC."""
    return window is not None and window.timezone == DEVICE_ZONE and client_id not in zones


def estimate(
    waves: Sequence[Sequence[str]],
    settings: Rollout,
    now: float,
    zones: Mapping[str, str] | None = None,
) -> tuple[float, float]:
    """When the first and the last target of `waves` (their client ids, in start order)
    could start, if every target succeeded at once, as the gate starts them: the rate (and the
    ramp), the window in each target's zone (`zones`, with `timezone: device`; `zone_of`) and
    the soaks between waves. `math.inf` when a target's window never opens again."""
    windows = Windows(settings.window) if settings.window is not None else None
    known = zones or {}
    gate = _Estimate(settings)
    moment, first, last = now, None, now
    for index, wave in enumerate(waves):
        held: dict[str, deque[str]] = {}
        for client_id in wave:
            held.setdefault(zone_of(settings.window, known, client_id), deque()).append(client_id)
        while any(held.values()):
            waiting = [zone for zone, queue in held.items() if queue]
            openings = {z: windows.at(z, moment) for z in waiting} if windows is not None else {}
            ready = [z for z in waiting if z not in openings or openings[z].open]
            if not ready:  # every zone waits: the next one to open
                moment = min(o.until for o in openings.values())
                if moment == math.inf:
                    return (first if first is not None else math.inf), math.inf
                continue
            held[ready[0]].popleft()
            first = moment if first is None else first
            last = moment
            moment += gate.interval()
        if index < len(waves) - 1:
            moment = max(moment, last) + settings.soak_time.total_seconds()
    return (first if first is not None else now), last


class _Estimate:
    """The rate of a rollout whose targets all succeed."""

    def __init__(self, settings: Rollout) -> None:
        self.settings = settings
        self.started = 0

    def interval(self) -> float:
        rate = rate_after(self.settings, self.started)  # every one started has succeeded
        self.started += 1
        return 0.0 if rate is None else 60.0 / rate


def rate_after(settings: Rollout, succeeded: int) -> float | None:
    """Targets a minute once `succeeded` targets succeeded: the ramp's, under maxPerMinute
    (None: no limit)."""
    cap, ramp = settings.max_per_minute, settings.ramp
    if ramp is None:
        return float(cap) if cap is not None else None
    grown = ramp.base * ramp.factor ** (succeeded // ramp.every)
    return float(min(grown, cap)) if cap is not None else float(grown)
