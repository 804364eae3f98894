"""The records kept per job on disk: the job record and each execution's summary.

Both are small JSON documents replaced atomically when they change (rarely: never per
target transition). Each carries `format` and `version`; one written by a newer jobrunner is
refused, one that is damaged is reported with its path and what to do.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Final, Literal, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from jobrunner.errors import StateError
from jobrunner.state.journal import read_json, write_json
from jobrunner.state.shared import share_equal_parts
from jobrunner.state.stores.base import Storage

JOB_FORMAT: Final = "jobrunner.job"
JOB_VERSION = 2
"""Version 2: frozen steps that read per-device values (`${...}`) and the values frozen with
the targets. A job without them is still written as version 1, which older releases read."""
JOB_VERSION_PLAIN = 1
EXECUTION_FORMAT: Final = "jobrunner.execution"
EXECUTION_VERSION = 1


def utc_now() -> datetime:
    return datetime.now(UTC)


def counts_text(counts: Mapping[str, int]) -> str:
    """`2 PROCESS_FAILED, 7 PROCESS_OK` (statuses by name), or `no targets`: how an execution's
    counts read in its log's last line and in the commands' reports alike."""
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no targets"


class Record(BaseModel):
    model_config = ConfigDict(extra="ignore", validate_assignment=False)


class SourceRef(Record):
    """Where a job's manifest was written when it was last applied."""

    file: str
    line: int


class ConflictDifference(Record):
    """One part of a conflict: what differs, as frozen and as written now, and where."""

    what: str
    old: str
    new: str
    file: str
    line: int


class Conflict(Record):
    """A change in git to what was frozen; shown by plan and status, never applied."""

    message: str
    file: str
    line: int
    revision: str | None = None
    differences: list[ConflictDifference] = Field(default_factory=list)
    """Every difference, not only the first: the operator restores them all in one go."""

    def lines(self) -> list[str]:
        """`FILE:LINE: message`, then `FILE:LINE: what: old -> new` for each difference."""
        return [f"{self.file}:{self.line}: {self.message}"] + [
            f"{d.file}:{d.line}: {d.what}: {d.old} -> {d.new}" for d in self.differences
        ]


class FrozenWave(Record):
    """One wave of a rollout, split when the first execution froze the targets."""

    name: str
    targets: list[str]
    selector: str = ""
    """How the manifest chose them (`devices`, `tags: canary`, `size 10%`, `remainder`)."""


class FrozenValues(Record):
    """The per-device values the steps read, resolved when the targets froze: the references
    once (`device.vars.ntpServer`), then one row of their values per target."""

    names: list[str]
    rows: dict[str, list[Any]] = Field(default_factory=dict)

    def of(self, client_id: str) -> dict[str, Any]:
        """`{"device.vars.ntpServer": "10.1.2.3"}` of one target (empty: none recorded)."""
        row = self.rows.get(client_id)
        return dict(zip(self.names, row, strict=True)) if row is not None else {}


class FrozenJob(Record):
    """Targets and steps as they were at the first execution: unmodifiable afterwards."""

    at: datetime
    revision: str | None = None
    targets: list[str]
    steps: list[dict[str, Any]]
    digest: str
    waves: list[FrozenWave] = Field(default_factory=list)
    """The rollout's waves, in order (empty: no waves, every target goes together)."""
    waves_written: list[dict[str, Any]] = Field(default_factory=list)
    """The waves as the manifest wrote them (a later change is a conflict)."""
    values: FrozenValues | None = None
    """What the steps' `${device.*}` references read for each target (None: they make none)."""


class WaveStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SOAKING = "soaking"
    PASSED = "passed"
    FAILED = "failed"  # it cannot pass: too many of its targets failed
    ABORTED = "aborted"  # the abort rule (across the execution) ended it while it ran


class RolloutStatus(StrEnum):
    PENDING = "pending"  # no execution has started any wave
    RUNNING = "running"  # the current wave's targets are started as the gates allow
    WAITING = "waiting"  # targets to start, none may start now (outside the window)
    SOAKING = "soaking"
    AWAITING_APPROVAL = "awaiting-approval"  # the current wave waits for `jobrunner approve`
    PASSED = "passed"  # every wave passed
    ABORTED = "aborted"


class WaveState(Record):
    name: str
    status: WaveStatus = WaveStatus.PENDING
    started_on: datetime | None = None
    ended_on: datetime | None = None
    soak_until: datetime | None = None
    decision: str | None = None
    """The gate's decision with its numbers: `19/20 PROCESS_OK = 95% >= 95%; soaked 10m`."""
    approved_by: str | None = None
    """Who let a wave with `approval: required` go (`git` for `spec.rollout.approved`)."""
    approved_on: datetime | None = None


class RolloutState(Record):
    """Where a job's rollout stands, across executions: passed waves stay passed."""

    status: RolloutStatus = RolloutStatus.PENDING
    wave: str | None = None
    """The current wave: the first that has not passed."""
    reason: str | None = None
    """Why it waits, or why it was aborted."""
    waves: list[WaveState] = Field(default_factory=list)


class ScheduleState(Record):
    since: datetime | None = None  # when the schedule was first applied
    last_fire: datetime | None = None


class HistoryBounds(Record):
    """The Scope's `spec.history`, as last applied (None of a bound: the runner's)."""

    keep_executions: int | None = None
    keep_for: float | None = None
    """Seconds."""


class JobRecord(Record):
    """Everything recorded about one job apart from its targets and executions."""

    format: Literal["jobrunner.job"] = JOB_FORMAT
    version: int = JOB_VERSION_PLAIN
    scope: str
    name: str
    description: str | None = None
    source: SourceRef | None = None
    spec: dict[str, Any] = Field(default_factory=dict)
    spec_digest: str | None = None
    schedule_digest: str | None = None
    frozen: FrozenJob | None = None
    resolved_targets: list[str] | None = None
    """Before the first execution: the targets the last reconcile resolved (shown by status;
    the first execution resolves them again and freezes them)."""
    run_token: str | None = None
    suspend: bool = False
    conflict: Conflict | None = None
    problem: str | None = None  # why the last reconcile could not apply the manifest
    orphaned: bool = False
    revision_attempted: str | None = None
    revision_applied: str | None = None
    last_execution: int = 0
    pruned: dict[str, int] = Field(default_factory=dict)
    """Executions removed by the retention (`history`), by status: ids keep counting."""
    history: HistoryBounds | None = None
    """The retention its Scope sets (`spec.history`) as last reconciled; None: the runner's."""
    schedules: dict[str, ScheduleState] = Field(default_factory=dict)
    rollout: RolloutState | None = None
    zones: dict[str, str] = Field(default_factory=dict)
    """The targets' time zones from the DeviceList (a rollout window `timezone: device`)."""
    queued: list[QueuedStart] = Field(default_factory=list)
    """Starts asked with `--enqueue` while an execution ran, oldest first: each runs when the
    execution before it ends (whoever owns the job then)."""
    updated: datetime = Field(default_factory=utc_now)

    def save(self, storage: Storage, path: Path) -> None:
        self.updated = utc_now()
        self.version = JOB_VERSION if self._reads_values() else JOB_VERSION_PLAIN
        write_json(storage, path, self.model_dump(mode="json"))

    def _reads_values(self) -> bool:
        """Whether its frozen steps read per-device values: a release before version 2 would
        send their `${...}` as written, so it must refuse the record instead."""
        frozen = self.frozen
        if frozen is None:
            return False
        return frozen.values is not None or any("${" in json.dumps(s) for s in frozen.steps)

    @classmethod
    def load(cls, storage: Storage, path: Path) -> JobRecord:
        record = _load(cls, storage, path, JOB_FORMAT, JOB_VERSION, _job_ids)
        share_equal_parts(record.spec, record.frozen.steps if record.frozen else [])
        return record


class ExecutionStatus(StrEnum):
    RUNNING = "RUNNING"
    TERMINATED = "TERMINATED"
    STOPPED = "STOPPED"
    ABORTED = "ABORTED"
    """A rollout's gate ended it: a wave that cannot pass, or the abort rule (its message)."""


class TriggerKind(StrEnum):
    MANUAL = "manual"
    RUN = "run"
    SCHEDULE = "schedule"
    DEVICE_CONNECT = "device-connect"


class StartOptions(Record):
    """How a start was asked, as the device cloud's job start options: `reset`
    (resetStepIndex) and `from_step` (fromStepIndex) run every target it covers from that
    step, done ones too; `enqueued`: asked while an execution ran, started when it ended."""

    reset: bool = False
    """Every target from step 0."""
    from_step: int | None = None
    """Every target from this step, counted from 0 as status counts them."""
    enqueued: str | None = None
    """The queued start's id (`start --enqueue` while an execution ran)."""

    @property
    def restart_at(self) -> int | None:
        """The step every covered target starts at (None: each from where it stopped)."""
        return 0 if self.reset else self.from_step

    def text(self) -> str:
        """`reset`, `from step 2`, `enqueued`: how status and the log name the options."""
        parts = ["reset" if self.reset else ""]
        if self.from_step is not None:
            parts.append(f"from step {self.from_step}")
        if self.enqueued is not None:
            parts.append("enqueued")
        return ", ".join(p for p in parts if p)

    def as_view(self) -> dict[str, Any]:
        """The options in `status -o json`: `{"reset", "fromStep", "enqueued"}`."""
        return {
            "reset": self.reset,
            "fromStep": self.from_step,
            "enqueued": self.enqueued is not None,
        }


class Trigger(Record):
    kind: TriggerKind
    detail: str | None = None  # the run token, schedule name or device
    options: StartOptions | None = None
    """The start options it was given (None: each target from where it stopped)."""

    def __str__(self) -> str:
        text = f"{self.kind.value}" + (f" ({self.detail})" if self.detail else "")
        options = self.options.text() if self.options is not None else ""
        return text + (f", {options}" if options else "")


class QueuedStart(Record):
    """A start asked with `--enqueue` while an execution ran: it runs when that one ends."""

    id: str
    trigger: Trigger
    targets: list[str] = Field(default_factory=list)
    """The targets chosen (`--target`); empty: every target."""
    at: datetime = Field(default_factory=utc_now)


class ExecutionSummary(Record):
    """One run of a job: why, when, over which targets, and how it ended."""

    format: Literal["jobrunner.execution"] = EXECUTION_FORMAT
    version: int = EXECUTION_VERSION
    id: int
    status: ExecutionStatus = ExecutionStatus.RUNNING
    trigger: Trigger
    started_on: datetime = Field(default_factory=utc_now)
    ended_on: datetime | None = None
    revision: str | None = None
    targets: list[str] = Field(default_factory=list)
    counts: dict[str, int] = Field(default_factory=dict)
    stop_requested: bool = False
    aborted: bool = False
    """Its rollout's gate aborted it (`message` says why): it ends ABORTED."""
    chosen: bool = False
    """Started for targets the operator chose (`start --target`): no gate holds them."""
    given_up: list[str] = Field(default_factory=list)
    """Failed targets left out: they were tried `retry.maxAttempts` times already."""
    message: str | None = None

    def save(self, storage: Storage, path: Path) -> None:
        write_json(storage, path, self.model_dump(mode="json"))

    @classmethod
    def load(cls, storage: Storage, path: Path) -> ExecutionSummary:
        return _load(cls, storage, path, EXECUTION_FORMAT, EXECUTION_VERSION, _execution_ids)


R = TypeVar("R", bound=Record)
M = TypeVar("M", bound=BaseModel)


def _load(
    model: type[R],
    storage: Storage,
    path: Path,
    kind: str,
    version: int,
    ids: Callable[[dict[str, Any]], None],
) -> R:
    raw = read_json(storage, path, kind, version)
    ids(raw)
    try:
        return _every_field_set(model.model_validate(raw))
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise StateError(
            f"{path}: damaged record ({where}: {first['msg']});"
            " restore it from a backup, or remove the job's state folder to forget the job"
        ) from None


JobRecord.model_rebuild()  # its `queued` names QueuedStart, defined after it


def _interned(value: Any) -> Any:
    """A list of client ids read from a record, each text the one the runner holds already
    (the targets', the registry's, the manifests'): a job's record and its summaries each
    list its targets, 58 B a text held again otherwise (11 MB for 1,000 jobs of 100 targets).
    Anything else is given back as it is, for the model to refuse."""
    if not isinstance(value, list):
        return value
    try:
        return [sys.intern(client_id) for client_id in value]
    except TypeError:
        return value


def _job_ids(raw: dict[str, Any]) -> None:
    """The client ids of a job record's JSON, interned in place (see `_interned`)."""
    if "resolved_targets" in raw:
        raw["resolved_targets"] = _interned(raw["resolved_targets"])
    frozen = raw.get("frozen")
    if isinstance(frozen, dict):
        if "targets" in frozen:
            frozen["targets"] = _interned(frozen["targets"])
        waves = frozen.get("waves")
        for wave in waves if isinstance(waves, list) else ():
            if isinstance(wave, dict) and "targets" in wave:
                wave["targets"] = _interned(wave["targets"])


def _execution_ids(raw: dict[str, Any]) -> None:
    """The client ids of an execution summary's JSON, interned in place."""
    for name in ("targets", "given_up"):
        if name in raw:
            raw[name] = _interned(raw[name])


_EVERY: dict[type[BaseModel], tuple[set[str], tuple[str, ...]]] = {}


def _every_field_set(model: M) -> M:
    """`model`, whose records (it and those it holds) that were read with every field share
    one set of their field names per class as the fields they were given
    (`model_fields_set`), instead of a set each: a record of 26 fields held its own 2.3 KB
    set, and a daemon holds a record and summaries per job. Pydantic only ever adds a field's
    own name to that set (when it is assigned), which such a set holds already, and a copy
    of a record copies it. Only the fields whose type may hold a record are walked."""
    known = _EVERY.get(model.__class__)
    if known is None:
        known = _EVERY[model.__class__] = _fields_of(model.__class__)
    every, nested = known
    if model.__pydantic_fields_set__ == every:
        object.__setattr__(model, "__pydantic_fields_set__", every)
    values = model.__dict__
    for name in nested:
        value = values[name]
        if isinstance(value, BaseModel):
            _every_field_set(value)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, BaseModel):
                    _every_field_set(item)
        elif isinstance(value, dict):
            for item in value.values():
                if isinstance(item, BaseModel):
                    _every_field_set(item)
    return model


def _fields_of(model: type[BaseModel]) -> tuple[set[str], tuple[str, ...]]:
    """The names of `model`'s fields, and of those whose type names a model (in a list, a
    dict or a union too): the only ones `_every_field_set` walks."""
    nested = tuple(
        name for name, info in model.model_fields.items() if _names_a_model(info.annotation)
    )
    return set(model.model_fields), nested


def _names_a_model(annotation: Any) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    return any(_names_a_model(argument) for argument in get_args(annotation))
