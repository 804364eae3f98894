"""`plan --live`: where each target of a job stands on the device, asked with reads only.

For every target of the chosen jobs (as frozen, or as the first execution would resolve
them) and every step, what the step would change on the device:

    Configuration Put           CONF-V1 GET configurations/{pid}: each property `old -> new`
                                or in sync
    Package Download / Install  DEPLOY-V2 GET packages: the installed version
    Package Uninstall           DEPLOY-V2 GET packages: installed or not
    Bundle Start / Bundle Stop  DEPLOY-V2 GET bundles: the bundle's state

Other steps have nothing to read back and are said so; what a reply makes of a step is in
`drift`. A device is asked each read once,
whatever the number of steps that need it. Nothing here writes: the questions go through an
`Asker` (`asking.ClientAsker` over MQTT, or a fake in tests), which sends GETs only; the
recorded state is read (the registry's BIRTH facts: connected, application ids) and never
written; nothing is frozen.

`TargetSteps` gives the steps of one target as they would run on it: the frozen steps of a
frozen job, else the manifest's, with the target's per-device values put in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from jobrunner.device.model import Request
from jobrunner.device.operations import DEFAULT_SETTINGS, OperationSettings
from jobrunner.device.payload import KuraPayload
from jobrunner.engine.planning import drift
from jobrunner.engine.planning.drift import StepLive, StepState, with_state
from jobrunner.engine.planning.plan import JobPlan, Plan
from jobrunner.errors import JobError
from jobrunner.manifests.steps import (
    BundleStartStep,
    BundleStopStep,
    ConfigurationPutStep,
    PackageDownloadStep,
    PackageUninstallStep,
    StepBase,
)
from jobrunner.manifests.steptemplates import StepTemplate, load_steps, render_values
from jobrunner.manifests.values import UnresolvedReferenceError
from jobrunner.state.registry import DeviceRecord


@dataclass(frozen=True, slots=True)
class Read:
    """One GET to one device."""

    client_id: str
    app_id: str
    resources: tuple[str, ...]

    def request(self) -> Request:
        return Request(self.app_id, "GET", self.resources)

    @property
    def name(self) -> str:
        return f"{self.app_id} GET/{'/'.join(self.resources)}"


@dataclass(frozen=True, slots=True)
class Answer:
    """What came back: the reply, or why there is none."""

    payload: KuraPayload | None = None
    problem: str | None = None


class Asker(Protocol):
    """Sends GETs, rate-limited, and waits for their replies, each within a timeout."""

    def ask(self, account: str, encoding: str, reads: Sequence[Read]) -> Mapping[Read, Answer]:
        """An answer for every read of `reads` to the devices of `account`."""


@dataclass(frozen=True, slots=True)
class TargetLive:
    client_id: str
    connected: bool | None
    """Whether it answered a read; None when nothing was asked."""
    applications: tuple[str, ...] | None
    """The application ids of its last recorded BIRTH; None: no BIRTH recorded."""
    missing: tuple[str, ...]
    """Applications its steps need that its recorded BIRTH does not advertise."""
    recorded: str | None
    """Its recorded connection status and last seen, when known."""
    steps: tuple[StepLive, ...]
    problem: str | None = None

    @property
    def in_sync(self) -> bool:
        return all(s.state in (StepState.IN_SYNC, StepState.NOT_READ) for s in self.steps)


@dataclass(frozen=True, slots=True)
class JobLive:
    scope: str
    name: str
    frozen: bool
    targets: tuple[TargetLive, ...]
    problem: str | None = None

    @property
    def label(self) -> str:
        return f"{self.scope}/{self.name}"


@dataclass(frozen=True, slots=True)
class LiveReport:
    jobs: tuple[JobLive, ...]
    requests: int
    invalid: bool = False
    """The manifests have errors."""

    @property
    def exit_code(self) -> int:
        """0: every target in sync; 2: something would change or could not be read;
        1: invalid manifests (as `plan`)."""
        if self.invalid:
            return 1
        targets = [t for j in self.jobs for t in j.targets]
        if any(j.problem for j in self.jobs) or not all(t.in_sync for t in targets):
            return 2
        return 0


TargetSteps = Callable[[JobPlan, str], Sequence[StepBase]]
"""The steps of one target of a job, as they would run on it (per-device values resolved)."""


def job_steps(job: JobPlan, client_id: str) -> Sequence[StepBase]:
    """The frozen steps of a frozen job, else the manifest's, with the target's per-device
    values put in (as frozen, or as the first execution would freeze them). A step whose
    values do not resolve for the target stays the template it is (it is not read)."""
    record = job.record
    steps: list[StepBase]
    if job.frozen and record is not None and record.frozen is not None:
        steps = load_steps(record.frozen.steps)
    elif job.declared is not None:
        steps = list(job.declared.manifest.spec.steps)
    else:
        return []
    values = job.values.of(client_id) if job.values is not None else {}
    return [_rendered(step, values) for step in steps]


def _rendered(step: StepBase, values: Mapping[str, Any]) -> StepBase:
    if not isinstance(step, StepTemplate):
        return step
    try:
        return render_values(step, values)
    except (UnresolvedReferenceError, ValidationError):
        return step


def choose(plan: Plan, names: Sequence[str]) -> list[JobPlan]:
    """The jobs named (`NAME` or `SCOPE/NAME`; every declared or frozen one when none is);
    JobError naming what is not a job."""
    known = [j for j in plan.jobs if not j.orphaned and (j.declared or j.frozen)]
    if not names:
        return known
    chosen: list[JobPlan] = []
    for name in names:
        found = [j for j in known if name in (j.label, j.name)]
        if not found:
            listed = ", ".join(j.label for j in known) or "none"
            raise JobError(f"no job {name!r} to read live; jobs: {listed}")
        if len(found) > 1:
            raise JobError(
                f"job name {name!r} is in several scopes"
                f" ({', '.join(j.label for j in found)}): write SCOPE/NAME"
            )
        chosen.extend(j for j in found if j not in chosen)
    return chosen


def inspect(
    plan: Plan,
    jobs: Sequence[JobPlan],
    asker: Asker,
    registry: Callable[[str, str], DeviceRecord | None],
    *,
    steps_for: TargetSteps = job_steps,
    settings: OperationSettings = DEFAULT_SETTINGS,
) -> LiveReport:
    """Ask the targets of `jobs` where they stand; `registry(scope, client_id)` gives a
    device's recorded facts."""
    wanted: dict[str, dict[Read, None]] = {}  # scope -> reads, in order, once each
    prepared: list[tuple[JobPlan, list[tuple[str, Sequence[StepBase], list[Read]]]]] = []
    for job in jobs:
        per_target = []
        for client_id in job.targets:
            steps = steps_for(job, client_id)
            reads = [r for step in steps for r in _reads(step, client_id, settings)]
            record = registry(job.scope, client_id)
            advertised = record.application_ids if record is not None else None
            asked = [r for r in reads if advertised is None or r.app_id in advertised]
            wanted.setdefault(job.scope, {}).update(dict.fromkeys(asked))
            per_target.append((client_id, steps, reads))
        prepared.append((job, per_target))
    answers: dict[tuple[str, Read], Answer] = {}
    for scope, asked_once in wanted.items():
        encoding = _encoding(plan, scope)
        for read, answer in asker.ask(scope, encoding, list(asked_once)).items():
            answers[(scope, read)] = answer
    report = []
    for job, per_target in prepared:
        targets = tuple(
            _target(job.scope, cid, steps, reads, answers, registry(job.scope, cid), settings)
            for cid, steps, reads in per_target
        )
        problem = None if job.declared or job.frozen else "no manifest and never frozen"
        report.append(JobLive(job.scope, job.name, job.frozen, targets, problem))
    return LiveReport(
        tuple(report),
        sum(len(r) for r in wanted.values()),
        invalid=bool(plan.manifests.errors),
    )


def _encoding(plan: Plan, scope: str) -> str:
    declared = plan.manifests.scopes.get(scope)
    return declared.manifest.spec.payload_encoding if declared is not None else "kura-protobuf"


def _reads(step: StepBase, client_id: str, settings: OperationSettings) -> list[Read]:
    if isinstance(step, ConfigurationPutStep):
        pids = dict.fromkeys(c.pid for c in step.properties.configurations)
        return [Read(client_id, settings.configuration_app, ("configurations", p)) for p in pids]
    if isinstance(step, PackageDownloadStep | PackageUninstallStep):
        return [Read(client_id, settings.deploy_app, ("packages",))]
    if isinstance(step, BundleStartStep | BundleStopStep):
        return [Read(client_id, settings.deploy_app, ("bundles",))]
    return []


def _target(
    scope: str,
    client_id: str,
    steps: Sequence[StepBase],
    reads: list[Read],
    answers: Mapping[tuple[str, Read], Answer],
    record: DeviceRecord | None,
    settings: OperationSettings,
) -> TargetLive:
    advertised = record.application_ids if record is not None else None
    needed = dict.fromkeys(r.app_id for r in reads)
    missing = tuple(a for a in needed if advertised is not None and a not in advertised)
    got = {r: answers[(scope, r)] for r in reads if (scope, r) in answers}
    replied = [a for a in got.values() if a.payload is not None]
    connected = None if not got else bool(replied)
    problem = None
    if got and not replied:
        reasons = dict.fromkeys(a.problem for a in got.values() if a.problem)
        problem = "not connected: " + ("; ".join(r for r in reasons if r) or "no reply")
    elif missing:
        problem = f"{', '.join(missing)} not advertised in its BIRTH (application_ids)"
    results = []
    for index, step in enumerate(steps):
        step_reads = _reads(step, client_id, settings)
        found = {r: got.get(r) for r in step_reads}
        results.append(_step(index, step, found, missing))
    recorded = None
    if record is not None:
        seen = f", last seen {record.last_seen:%Y-%m-%dT%H:%M:%SZ}" if record.last_seen else ""
        recorded = f"{record.status.value}{seen}"
    return TargetLive(client_id, connected, advertised, missing, recorded, tuple(results), problem)


def _step(
    index: int, step: StepBase, found: Mapping[Read, Answer | None], missing: Iterable[str]
) -> StepLive:
    definition = str(getattr(step, "definition", type(step).__name__))
    base = StepLive(index, step.name, definition, StepState.NOT_READ)
    if not found:
        return with_state(base, StepState.NOT_READ, reason="nothing to read back")
    for read, answer in found.items():
        if read.app_id in missing:
            return with_state(base, StepState.UNKNOWN, reason=f"{read.app_id} not advertised")
        if answer is None or answer.payload is None:
            why = answer.problem if answer is not None and answer.problem else "no reply"
            return with_state(base, StepState.UNKNOWN, reason=f"{read.name}: {why}")
    payloads = {r.resources: a.payload for r, a in found.items() if a is not None}
    try:
        if isinstance(step, ConfigurationPutStep):
            return drift.configuration(base, step, payloads)
        if isinstance(step, PackageDownloadStep | PackageUninstallStep):
            return drift.package(base, step, payloads[("packages",)])
        if isinstance(step, BundleStartStep | BundleStopStep):
            return drift.bundle(base, step, payloads[("bundles",)])
    except drift.UnreadableError as error:
        return with_state(base, StepState.UNKNOWN, reason=str(error))
    return base  # pragma: no cover - every step with reads is handled above
