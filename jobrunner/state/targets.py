"""Targets: one device in one job, its step index and status, and their journal on disk.

A `TargetState` is an immutable value; its transition methods return the next value. The
`TargetTable` of a job keeps the current value of each target in memory and appends every
new value to `targets.journal` (one JSON line, O(1)); on loading, the last line of each
target wins. When the journal has grown well past one line per target, it is compacted into a
snapshot of the current values.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import Any

from jobrunner.errors import StateError
from jobrunner.immutable import immutable
from jobrunner.state.journal import Journal, Record, json_line, json_text
from jobrunner.state.stores.base import Storage

TARGETS_FORMAT = "jobrunner.targets"
TARGETS_VERSION = 2
"""2: a target's times (`deadline`, `updated`) are written as integer milliseconds (`D`,
`U`); version 1 wrote seconds as floats (`d`, `u`), which are still read."""


class TargetStatus(StrEnum):
    """DESIGN §1, as the device cloud spells them."""

    PROCESS_AWAITING = "PROCESS_AWAITING"
    AWAITING_COMPLETION = "AWAITING_COMPLETION"
    NOTIFIED_COMPLETION = "NOTIFIED_COMPLETION"
    PROCESS_OK = "PROCESS_OK"
    PROCESS_FAILED = "PROCESS_FAILED"


_STATUSES = {status.value: status for status in TargetStatus}


class RollbackState(StrEnum):
    """Where the rollback to a target's snapshot stands."""

    DUE = "due"
    """Asked for (the target failed, or its rollout was aborted): not sent yet."""
    SENT = "sent"
    """`EXEC rollback/{id}` was sent (never again): what it restored is to be read back."""
    DONE = "done"
    """The device holds the snapshot's values again."""
    GONE = "gone"
    """The device no longer keeps the snapshot: nothing was rolled back."""
    FAILED = "failed"
    """The device refused the rollback, or the values read back are not the snapshot's."""


@immutable
class Snapshot:
    """A configuration snapshot the device took for a target: Kura's id for it, the step
    whose Configuration Put it guards, and its rollback (None: none asked for)."""

    id: int
    step: int
    rollback: RollbackState | None = None

    @property
    def rolled_back(self) -> bool:
        return self.rollback is RollbackState.DONE

    @property
    def rolling_back(self) -> bool:
        """A rollback is asked for and has not ended."""
        return self.rollback in (RollbackState.DUE, RollbackState.SENT)

    def to_record(self) -> list[Any]:
        return [self.id, self.step] + ([self.rollback.value] if self.rollback else [])

    @staticmethod
    def from_record(record: Any) -> Snapshot:
        """The snapshot `to_record` wrote; ValueError for anything else."""
        if (
            not isinstance(record, list)
            or len(record) not in (2, 3)
            or not all(type(n) is int for n in record[:2])
        ):
            raise ValueError(f"snapshot: {record!r} is not [id, step(, rollback)]")
        rollback = RollbackState(record[2]) if len(record) == 3 else None
        return Snapshot(record[0], record[1], rollback)


class TargetState:
    """Where one target stands. `step_index` counts from 0, as the device cloud does.

    `request_id` is set while a request to the device may be unanswered (it is recorded
    before the request is published, so that a restarted runner never sends it again);
    `operation_id` and `phase` while an asynchronous operation runs on the device;
    `deadline` (epoch seconds) bounds the wait for whichever of the two is pending.

    An immutable value (nothing assigns its fields once it is made): a transition makes a new
    one. A runner holds one for every target of every job it holds, most of them at rest (no
    request, no operation, no failure, no snapshot): the fields only a target in flight, failed
    or rolled back has are held together in one slot (`_rest`, None at rest), so that a value
    at rest is 9 slots, not 15 (104 B instead of 152: 4.8 MB of 100,000 targets).
    """

    __slots__ = (
        "_rest", "attempts", "client_id", "execution", "message", "started_in", "status",
        "step_index", "updated",
    )  # fmt: skip

    client_id: str
    step_index: int
    status: TargetStatus
    message: str | None
    execution: int | None
    updated: float | None
    attempts: int
    """How many executions started this target (a rollout's `retry.maxAttempts` counts them)."""
    started_in: int | None
    """The execution that last started it: in a rollout, a target of the running execution
    that it has not started yet waits for its wave, its window and its turn."""
    _rest: tuple[Any, ...] | None
    """request_id, operation_id, phase, deadline, failure, stage, snapshot; None: all None."""

    def __init__(
        self,
        client_id: str,
        step_index: int = 0,
        status: TargetStatus = TargetStatus.PROCESS_AWAITING,
        message: str | None = None,
        execution: int | None = None,
        request_id: str | None = None,
        operation_id: int | None = None,
        phase: str | None = None,
        deadline: float | None = None,
        updated: float | None = None,
        failure: str | None = None,
        attempts: int = 0,
        started_in: int | None = None,
        stage: str | None = None,
        snapshot: Snapshot | None = None,
    ) -> None:
        self.client_id = client_id
        self.step_index = step_index
        self.status = status
        self.message = message
        self.execution = execution
        self.updated = updated
        self.attempts = attempts
        self.started_in = started_in
        self._rest = _packed(request_id, operation_id, phase, deadline, failure, stage, snapshot)

    @property
    def request_id(self) -> str | None:
        rest = self._rest
        return None if rest is None else rest[0]

    @property
    def operation_id(self) -> int | None:
        rest = self._rest
        return None if rest is None else rest[1]

    @property
    def phase(self) -> str | None:
        rest = self._rest
        return None if rest is None else rest[2]

    @property
    def deadline(self) -> float | None:
        rest = self._rest
        return None if rest is None else rest[3]

    @property
    def failure(self) -> str | None:
        """Why the step failed, as a code (`timeout`, `device-error:404`): PROCESS_FAILED only."""
        rest = self._rest
        return None if rest is None else rest[4]

    @property
    def stage(self) -> str | None:
        """Which request of its step is next or out, when the step takes several: `snapshot`
        (before a Configuration Put with a rollback), `verify:N` (the N-th read-back); None:
        the step's own request."""
        rest = self._rest
        return None if rest is None else rest[5]

    @property
    def snapshot(self) -> Snapshot | None:
        """The configuration snapshot taken before this round's first guarded Configuration
        Put, and whether the device was rolled back to it."""
        rest = self._rest
        return None if rest is None else rest[6]

    # -- a value: equality, hash, text, a copy with changes ---------------------------------

    def _fields(self) -> tuple[Any, ...]:
        """Every field, in the order of the constructor's parameters."""
        rest = self._rest or _AT_REST
        return (
            self.client_id, self.step_index, self.status, self.message, self.execution,
            rest[0], rest[1], rest[2], rest[3], self.updated, rest[4], self.attempts,
            self.started_in, rest[5], rest[6],
        )  # fmt: skip

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not TargetState:
            return NotImplemented
        assert isinstance(other, TargetState)
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        shown = ", ".join(f"{n}={v!r}" for n, v in zip(FIELDS, self._fields(), strict=True))
        return f"TargetState({shown})"

    def replace(self, **changes: Any) -> TargetState:
        """This value with `changes` (field names as the constructor's), as
        `dataclasses.replace` makes one of a dataclass."""
        unknown = changes.keys() - set(FIELDS)
        if unknown:
            raise TypeError(f"TargetState has no field {', '.join(sorted(unknown))}")
        values = dict(zip(FIELDS, self._fields(), strict=True))
        values.update(changes)
        return TargetState(**values)

    # -- queries ---------------------------------------------------------------------------

    def is_done(self, step_count: int) -> bool:
        """PROCESS_OK at the last step: never contacted again."""
        return self.status is TargetStatus.PROCESS_OK and self.step_index >= step_count - 1

    @property
    def is_final(self) -> bool:
        """OK or FAILED: nothing is pending for this target in its execution."""
        return self.status in (TargetStatus.PROCESS_OK, TargetStatus.PROCESS_FAILED)

    @property
    def awaits_reply(self) -> bool:
        return self.request_id is not None

    @property
    def being_rolled_back(self) -> bool:
        """Its device is being rolled back to its snapshot (the rollback holds the device)."""
        return self.snapshot is not None and self.snapshot.rolling_back

    # -- transitions -----------------------------------------------------------------------

    # Each transition builds its value with one call: those of every request (start,
    # dispatched, succeeded, failed...) with `_made`, handing on the rarely set fields as
    # their tuple (`_rest`) instead of reading each one by its property, the others with the
    # constructor's parameters in order (client_id, step_index, status, message, execution,
    # request_id, operation_id, phase, deadline, updated, failure, attempts, started_in,
    # stage, snapshot). `dataclasses.replace` looks the fields up on every call, and made up
    # most of the engine's cost per target transition.

    def enter(self, execution: int, now: float) -> TargetState:
        """Join an execution: a failed target is retried at the step that failed."""
        status, step_index = self.status, self.step_index
        stage, snapshot = self.stage, self.snapshot
        if status is TargetStatus.PROCESS_FAILED:
            status = TargetStatus.PROCESS_AWAITING
        if self.is_final:  # a new round: it takes its own snapshot
            stage, snapshot = None, None
            if self.snapshot is not None and self.snapshot.rolled_back:
                # Rolled back: the changes since the snapshot are undone, so they are done
                # again, from the step that took it.
                status, step_index = TargetStatus.PROCESS_AWAITING, self.snapshot.step
        return TargetState(
            self.client_id, step_index, status, None, execution,
            self.request_id, self.operation_id, self.phase, self.deadline, now, None,
            self.attempts, self.started_in, stage, snapshot,
        )  # fmt: skip

    def restart(self, step_index: int, execution: int, now: float) -> TargetState:
        """Join an execution at `step_index` whatever it had done (a start with `reset` or
        `from_step`): a new round, whose attempts the retry limit counts afresh."""
        return TargetState(
            self.client_id, step_index, TargetStatus.PROCESS_AWAITING, None, execution,
            None, None, None, None, now, None, 0, None,
        )  # fmt: skip

    @property
    def outstanding(self) -> bool:
        """A request or an operation of an earlier execution is still awaited from the device."""
        return self.request_id is not None or self.status in (
            TargetStatus.AWAITING_COMPLETION,
            TargetStatus.NOTIFIED_COMPLETION,
        )

    def start(self, execution: int, now: float) -> TargetState:
        """Started by `execution` (one attempt more): its steps are sent from now on."""
        return _made(
            self.client_id, self.step_index, self.status, None, self.execution, now,
            self.attempts + 1, execution, self._rest,
        )  # fmt: skip

    def waiting(self, message: str, now: float) -> TargetState:
        """Not started yet, and why (shown by status)."""
        return _made(
            self.client_id, self.step_index, self.status, message, self.execution, now,
            self.attempts, self.started_in, self._rest,
        )  # fmt: skip

    def dispatched(
        self, request_id: str, deadline: float, now: float, operation_id: int | None = None
    ) -> TargetState:
        stage, snapshot = self._rest[5:] if self._rest is not None else _NONE_2
        return _made(
            self.client_id, self.step_index, TargetStatus.PROCESS_AWAITING, None,
            self.execution, now, self.attempts, self.started_in,
            _packed(request_id, operation_id, None, deadline, None, stage, snapshot),
        )  # fmt: skip

    def unanswered(self, now: float) -> TargetState:
        """Its request was not answered, and is to be sent again: nothing awaited any more."""
        stage, snapshot = self._rest[5:] if self._rest is not None else _NONE_2
        return _made(
            self.client_id, self.step_index, TargetStatus.PROCESS_AWAITING, None,
            self.execution, now, self.attempts, self.started_in,
            _packed(None, None, None, None, None, stage, snapshot),
        )  # fmt: skip

    def accepted(self, deadline: float, phase: str | None, now: float) -> TargetState:
        """The device accepted an asynchronous operation; its completion is awaited."""
        _, operation_id, _, _, _, stage, snapshot = self._rest or _AT_REST
        return _made(
            self.client_id, self.step_index, TargetStatus.AWAITING_COMPLETION, self.message,
            self.execution, now, self.attempts, self.started_in,
            _packed(None, operation_id, phase, deadline, None, stage, snapshot),
        )  # fmt: skip

    def progressed(self, phase: str | None, message: str | None, now: float) -> TargetState:
        request_id, operation_id, _, deadline, _, stage, snapshot = self._rest or _AT_REST
        return _made(
            self.client_id, self.step_index, self.status, message, self.execution, now,
            self.attempts, self.started_in,
            _packed(request_id, operation_id, phase, deadline, None, stage, snapshot),
        )  # fmt: skip

    def notified(self, message: str | None, now: float) -> TargetState:
        _, operation_id, phase, _, _, stage, snapshot = self._rest or _AT_REST
        return _made(
            self.client_id, self.step_index, TargetStatus.NOTIFIED_COMPLETION, message,
            self.execution, now, self.attempts, self.started_in,
            _packed(None, operation_id, phase, None, None, stage, snapshot),
        )  # fmt: skip

    def succeeded(self, step_count: int, message: str | None, now: float) -> TargetState:
        """The step at step_index is done: on to the next step, or PROCESS_OK at the last."""
        snapshot = self._rest[6] if self._rest is not None else None
        rest = None if snapshot is None else (None, None, None, None, None, None, snapshot)
        if self.step_index + 1 < step_count:
            return _made(
                self.client_id, self.step_index + 1, TargetStatus.PROCESS_AWAITING, None,
                self.execution, now, self.attempts, self.started_in, rest,
            )  # fmt: skip
        return _made(
            self.client_id, self.step_index, TargetStatus.PROCESS_OK, message,
            self.execution, now, self.attempts, self.started_in, rest,
        )  # fmt: skip

    def failed(self, reason: str, now: float, failure: str | None = None) -> TargetState:
        snapshot = self._rest[6] if self._rest is not None else None
        return _made(
            self.client_id, self.step_index, TargetStatus.PROCESS_FAILED, reason,
            self.execution, now, self.attempts, self.started_in,
            _packed(None, None, None, None, failure, None, snapshot),
        )  # fmt: skip

    def proceeded(
        self, stage: str | None, message: str | None, now: float, snapshot: Snapshot | None
    ) -> TargetState:
        """One request of a step of several is answered: `stage` is the next one to send."""
        return TargetState(
            self.client_id, self.step_index, TargetStatus.PROCESS_AWAITING, message,
            self.execution, None, None, None, None, now, None, self.attempts, self.started_in,
            stage, snapshot,
        )  # fmt: skip

    def rolling_back(self, rollback: RollbackState, now: float) -> TargetState:
        """Its snapshot's rollback moved on (recorded before its request is sent)."""
        assert self.snapshot is not None
        snapshot = Snapshot(self.snapshot.id, self.snapshot.step, rollback)
        return TargetState(
            self.client_id, self.step_index, self.status, self.message, self.execution,
            self.request_id, self.operation_id, self.phase, self.deadline, now, self.failure,
            self.attempts, self.started_in, self.stage, snapshot,
        )  # fmt: skip

    def rolled_back(
        self,
        rollback: RollbackState,
        message: str,
        now: float,
        failure: str | None,
        status: TargetStatus = TargetStatus.PROCESS_FAILED,
    ) -> TargetState:
        """Its rollback ended (`rollback` says how), `message` says why: PROCESS_FAILED, or
        `status` (a target whose change stands when its rollback did not happen)."""
        assert self.snapshot is not None
        snapshot = Snapshot(self.snapshot.id, self.snapshot.step, rollback)
        return TargetState(
            self.client_id, self.step_index, status, message,
            self.execution, None, None, None, None, now, failure, self.attempts,
            self.started_in, None, snapshot,
        )  # fmt: skip

    # -- records ---------------------------------------------------------------------------

    def journal_line(self) -> bytes:
        """`json_line(self.to_record())`, the same bytes, written field by field: a line for
        every transition, without the dictionary and the generic encoder (half the cost).
        Anything but the types the fields are made of (a value read from a file written by
        hand) takes the generic way, which writes or refuses it as JSON does."""
        index, execution = self.step_index, self.execution
        attempts, started, updated = self.attempts, self.started_in, self.updated
        request_id, operation, phase, deadline, failure, stage, snapshot = (
            self._rest or _AT_REST
        )  # fmt: skip
        if (  # exactly int (a bool is written true) and finite floats, checked without a call
            stage is not None  # a step of several requests, a snapshot: rare
            or snapshot is not None
            or type(index) is not int
            or type(attempts) is not int
            or (execution is not None and type(execution) is not int)
            or (operation is not None and type(operation) is not int)
            or (started is not None and type(started) is not int)
            or not (
                deadline is None
                or type(deadline) is int
                or (type(deadline) is float and -_FAR < deadline < _FAR)
            )
            or not (
                updated is None
                or type(updated) is int
                or (type(updated) is float and -_FAR < updated < _FAR)
            )
        ):
            return json_line(self.to_record())
        ints = _INTS  # the text of a small int, looked up: a third of formatting it
        try:
            text = (
                f'{{"t":{json_text(self.client_id)},'
                f'"i":{ints[index] if 0 <= index < _SMALL else index},"s":"{self.status}"'
            )
            if self.message is not None:
                text += ',"m":' + json_text(self.message)
            if execution is not None:
                text += ',"e":' + (ints[execution] if 0 <= execution < _SMALL else str(execution))
            if request_id is not None:
                text += ',"r":' + json_text(request_id)
            if operation is not None:
                text += f',"o":{operation}'
            if phase is not None:
                text += ',"p":' + json_text(phase)
            # Milliseconds as `_millis` makes them, inline (the shortest `repr` of a float
            # cost a tenth of a round trip's instructions).
            if deadline is not None:
                ms = deadline * 1000 if deadline.__class__ is int else int(deadline * 1e3 + 0.5)
                text += f',"D":{ms}'
            if updated is not None:
                ms = updated * 1000 if updated.__class__ is int else int(updated * 1e3 + 0.5)
                text += f',"U":{ms}'
            if failure is not None:
                text += ',"f":' + json_text(failure)
        except TypeError:  # a text field that is no text
            return json_line(self.to_record())
        if attempts:
            text += ',"a":' + (ints[attempts] if 0 <= attempts < _SMALL else str(attempts))
        if started is not None:
            text += ',"x":' + (ints[started] if 0 <= started < _SMALL else str(started))
        return (text + "}\n").encode("utf-8")

    def to_record(self) -> Record:
        # The member itself, a str: `.value` goes through the enum's descriptor (slow).
        record: Record = {"t": self.client_id, "i": self.step_index, "s": self.status}
        if self.message is not None:
            record["m"] = self.message
        if self.execution is not None:
            record["e"] = self.execution
        if self.request_id is not None:
            record["r"] = self.request_id
        if self.operation_id is not None:
            record["o"] = self.operation_id
        if self.phase is not None:
            record["p"] = self.phase
        if self.deadline is not None:
            _put_time(record, "D", "d", self.deadline)
        if self.updated is not None:
            _put_time(record, "U", "u", self.updated)
        if self.failure is not None:
            record["f"] = self.failure
        if self.attempts:
            record["a"] = self.attempts
        if self.started_in is not None:
            record["x"] = self.started_in
        if self.stage is not None:
            record["g"] = self.stage
        if self.snapshot is not None:
            record["k"] = self.snapshot.to_record()
        return record

    @staticmethod
    def from_record(record: Record) -> TargetState:
        raw = record["s"]
        try:
            status = _STATUSES[raw]  # a dict look-up: journal replay reads every line
        except (KeyError, TypeError):
            status = TargetStatus(raw)  # the enum's own error for anything else
        message = record.get("m")
        return TargetState(
            # One text for the id wherever a runner holds it (the registry's, the plan's),
            # and for a message many targets share ("bundle 42 started"): loaded jobs of
            # 100,000 targets then hold each text once.
            client_id=sys.intern(record["t"]),
            step_index=int(record["i"]),
            status=status,
            message=sys.intern(message) if message.__class__ is str else message,
            execution=record.get("e"),
            request_id=record.get("r"),
            operation_id=record.get("o"),
            phase=record.get("p"),
            deadline=record["D"] / 1000 if "D" in record else record.get("d"),
            updated=record["U"] / 1000 if "U" in record else record.get("u"),
            failure=record.get("f"),
            attempts=int(record.get("a", 0)),
            started_in=record.get("x"),
            stage=record.get("g"),
            snapshot=None if "k" not in record else Snapshot.from_record(record["k"]),
        )


FIELDS = (
    "client_id", "step_index", "status", "message", "execution", "request_id", "operation_id",
    "phase", "deadline", "updated", "failure", "attempts", "started_in", "stage", "snapshot",
)  # fmt: skip
"""A target's fields, in the order of `TargetState`'s parameters."""
_AT_REST = (None, None, None, None, None, None, None)
_NONE_2 = (None, None)
_new = object.__new__


def _made(
    client_id: str,
    step_index: int,
    status: TargetStatus,
    message: str | None,
    execution: int | None,
    updated: float | None,
    attempts: int,
    started_in: int | None,
    rest: tuple[Any, ...] | None,
) -> TargetState:
    """A TargetState of these slots as they are (`rest`: None, or not all None), without
    the constructor's fifteen parameters: the transitions of every request make them."""
    state: TargetState = _new(TargetState)
    state.client_id = client_id
    state.step_index = step_index
    state.status = status
    state.message = message
    state.execution = execution
    state.updated = updated
    state.attempts = attempts
    state.started_in = started_in
    state._rest = rest
    return state


def _packed(
    request_id: str | None,
    operation_id: int | None,
    phase: str | None,
    deadline: float | None,
    failure: str | None,
    stage: str | None,
    snapshot: Snapshot | None,
) -> tuple[Any, ...] | None:
    """The rarely set fields as `_rest` holds them: None when every one is None."""
    if (
        request_id is None
        and operation_id is None
        and phase is None
        and deadline is None
        and failure is None
        and stage is None
        and snapshot is None
    ):
        return None
    return (request_id, operation_id, phase, deadline, failure, stage, snapshot)


_SMALL = 1024
_INTS = [str(n) for n in range(_SMALL)]
"""The text of each int from 0 to _SMALL - 1 (step indexes, execution ids, attempts)."""

_FAR = 1e15
"""Seconds: a time beyond (or NaN) is no clock's, and is written as it is (`_put_time`)."""


def _millis(seconds: float) -> int:
    """A time in seconds as whole milliseconds (`journal_line` writes it inline). Rounded
    half up: a time is positive. An int (a test's clock) stays exact."""
    return seconds * 1000 if seconds.__class__ is int else int(seconds * 1e3 + 0.5)


def _put_time(record: Record, millis: str, seconds: str, value: Any) -> None:
    """A time into `record`: in milliseconds under `millis` when it is a finite number (one
    JSON writes as a number), else as it is under `seconds` (a value a hand wrote, kept as
    it was read; version 1 wrote every time so)."""
    if value.__class__ is int or (value.__class__ is float and -_FAR < value < _FAR):
        record[millis] = _millis(value)
    else:
        record[seconds] = value


class TargetTable:
    """The targets of one job: current values in memory, every change appended to a journal."""

    COMPACT_FACTOR = 4
    COMPACT_MINIMUM = 1000

    def __init__(self, storage: Storage, path: Path) -> None:
        self.journal = Journal(storage, path, TARGETS_FORMAT, TARGETS_VERSION)
        self._targets: dict[str, TargetState] = {}
        self._lines = 0
        self._puts = 0

    def load(self) -> TargetTable:
        """Read the journal; a damaged line raises StateError naming the file and line."""
        targets: dict[str, TargetState] = {}
        lines = 0
        records = self.journal.read()
        try:  # around the loop, not each line: replay reads every line of the journal
            for record in records:
                lines += 1
                state = TargetState.from_record(record)
                targets[state.client_id] = state
        except (KeyError, ValueError, TypeError) as error:
            records.close()  # the journal is let go now, not when the error is
            raise self._damaged(error) from None
        self._targets = targets
        self._lines = lines
        return self

    def follow(self) -> bool:
        """Take up the lines the owner appended since the last `load` or `follow` (a reader's
        copy: the dashboard); reloads whole when the journal was compacted. True when
        anything changed."""
        appended = self.journal.read_appended()
        if appended is None:
            self.load()
            return True
        changed = False
        for record in appended:
            try:
                state = TargetState.from_record(record)
            except (KeyError, ValueError, TypeError) as error:
                raise self._damaged(error) from None
            self._targets[state.client_id] = state
            self._lines += 1
            self._puts += 1
            changed = True
        return changed

    def _damaged(self, error: Exception) -> StateError:
        """What a journal line that is no target value gets: its file, and what to do."""
        return StateError(
            f"{self.journal.path}: a target record lacks or misspells {error};"
            " restore the file from a backup"
        )

    def copy(self) -> TargetTable:
        """The values as they are now, for a reader on another thread (the dashboard): the
        values are immutable and `dict.copy` runs whole under the interpreter lock, so the
        copy is consistent while the owner goes on. Never to be written."""
        table = TargetTable(self.journal.storage, self.journal.path)
        table._targets = self._targets.copy()
        table._puts = self._puts
        return table

    @property
    def changes(self) -> int:
        """How many values were put since the table was made: grows with every one."""
        return self._puts

    def __len__(self) -> int:
        return len(self._targets)

    def __contains__(self, client_id: object) -> bool:
        return client_id in self._targets

    def __iter__(self) -> Iterator[TargetState]:
        return iter(self._targets.values())

    def get(self, client_id: str) -> TargetState:
        return self._targets[client_id]

    def put(self, state: TargetState) -> None:
        """Record a new value (written on the next `flush`)."""
        self._targets[state.client_id] = state
        self.journal.append_line(state.journal_line())
        self._lines += 1
        self._puts += 1

    def put_all(self, states: Iterable[TargetState]) -> None:
        for state in states:
            self.put(state)

    def flush(self, durable: bool = False) -> None:
        """Write what was put; compact when the journal is much longer than the table."""
        if self._lines > max(self.COMPACT_MINIMUM, self.COMPACT_FACTOR * len(self._targets)):
            self.journal.compact_lines(s.journal_line() for s in self._targets.values())
            self._lines = len(self._targets)
            return
        self.journal.flush(durable)

    def settle(self) -> None:
        """An execution ended: the journal becomes one line per target, so that loading the
        job (at every start and takeover) costs its targets, not the history of their steps."""
        if self._lines > len(self._targets):
            self.journal.compact_lines(s.journal_line() for s in self._targets.values())
            self._lines = len(self._targets)

    def close(self) -> None:
        self.journal.flush()
        self.journal.close()

    def snapshot(self) -> dict[str, Any]:
        return {client_id: state.to_record() for client_id, state in self._targets.items()}
