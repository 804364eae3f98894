"""The manifest kinds: Scope, DeviceList, Job, Policy (docs/policy.md) and Notification."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    ConfigDict,
    Discriminator,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic import (
    Tag as Branch,
)

from jobrunner.manifests.base import API_VERSION, Strict
from jobrunner.manifests.fields import (
    AuthorEmail,
    ClientId,
    Duration,
    KeyFingerprint,
    LabelKey,
    LabelValue,
    Name,
    RunToken,
    ScopeName,
    Tag,
    TimeZone,
    VarName,
)
from jobrunner.manifests.notification import Notification
from jobrunner.manifests.parameters import with_parameters
from jobrunner.manifests.rollout import Retry, Rollout
from jobrunner.manifests.schedules import Schedule
from jobrunner.manifests.selectors import Selector, SelectorText, parse_selector
from jobrunner.manifests.steps import Step
from jobrunner.manifests.steptemplates import StepOrTemplate

ApiVersion = Literal["jobrunner/v1"]
assert API_VERSION == "jobrunner/v1"

Description = Annotated[str, Field(max_length=4096)]


# --- Scope ------------------------------------------------------------------------------------


class ScopeMetadata(Strict):
    name: ScopeName = Field(description="the scope: the Kura account in MQTT topics")
    description: Description | None = Field(default=None, description="free text, shown by status")


class HistorySpec(Strict):
    """How many ended executions each job of the scope keeps, and for how long."""

    keep_executions: int | None = Field(
        default=None,
        ge=1,
        description="the newest ended executions each job keeps (default: the runner's, 100)",
    )
    keep_for: Duration | None = Field(
        default=None,
        description="how long an ended execution is kept (default: the runner's, 90d)",
    )


class ScopeSpec(Strict):
    max_jobs: int | None = Field(
        default=None, ge=0, description="how many jobs the scope may hold; 0 refuses all"
    )
    payload_encoding: Literal["kura-protobuf", "simple-json"] = Field(
        default="kura-protobuf",
        description="how the scope's devices encode payloads (Kura's payload.encoding)",
    )
    history: HistorySpec | None = Field(
        default=None,
        description="the retention of its jobs' executions, instead of the runner's `history`",
    )


class Scope(Strict):
    """A tenant; its name is the Kura account in MQTT topics."""

    api_version: ApiVersion
    kind: Literal["Scope"]
    metadata: ScopeMetadata
    spec: ScopeSpec = ScopeSpec()


# --- DeviceList -------------------------------------------------------------------------------


class Device(Strict):
    """A gateway of the registry, known by its MQTT client id."""

    client_id: ClientId = Field(description="its MQTT client id")
    display_name: Annotated[str, Field(max_length=256)] | None = Field(
        default=None, description="a name for people (status, the dashboard, ${device.displayName})"
    )
    tags: list[Tag] = Field(
        default_factory=list, description="what `targets.tags` and rollout waves choose by"
    )
    timezone: TimeZone | None = Field(
        default=None, description="where it is: a rollout window `timezone: device` uses it"
    )
    labels: dict[LabelKey, LabelValue] = Field(
        default_factory=dict,
        description="what a `targets.selector` chooses by (site: turin); `kura.` keys are"
        " reserved for what the device reports",
    )
    vars: dict[VarName, Any] = Field(
        default_factory=dict,
        description="values of this device for its steps, read as ${device.vars.NAME}",
    )

    @field_validator("labels")
    @classmethod
    def _no_reserved_labels(cls, labels: dict[str, str]) -> dict[str, str]:
        for key in labels:
            if key.startswith("kura."):
                raise ValueError(
                    f"label {key!r} uses the reserved prefix 'kura.', which holds what the"
                    " device reports in its BIRTH (kura.model, kura.version, ...); choose"
                    " another key"
                )
        return labels


class DeviceListMetadata(Strict):
    scope: ScopeName | None = Field(default=None, description="default: the configured scope")
    description: Description | None = Field(default=None, description="free text")


class DeviceList(Strict):
    """Devices of a scope, declared in git (devices also register themselves on connect)."""

    api_version: ApiVersion
    kind: Literal["DeviceList"]
    metadata: DeviceListMetadata = DeviceListMetadata()
    devices: list[Device] = Field(description="the devices of the scope")


# --- Job --------------------------------------------------------------------------------------


class JobMetadata(Strict):
    name: Name = Field(description="the job's name, unique in its scope")
    scope: ScopeName | None = Field(default=None, description="default: the configured scope")
    description: Description | None = Field(
        default=None, description="free text, shown by status and the dashboard"
    )


class Targets(Strict):
    """The union of the selectors; resolved and frozen at the first execution."""

    devices: list[ClientId] = Field(default_factory=list, description="these client ids")
    tags: list[Tag] = Field(
        default_factory=list, description="every device of the scope with one of these tags"
    )
    all: bool = Field(default=False, description="every device of the scope")
    selector: SelectorText | None = Field(
        default=None,
        description="devices whose labels and reported facts match this label selector"
        " (kubectl's syntax): `site=turin,kura.version>=5.4`",
    )

    @model_validator(mode="after")
    def _something_selected(self) -> Targets:
        if not (self.devices or self.tags or self.all or self.selector):
            raise ValueError(
                "targets select no device; list client ids under 'devices',"
                " tags under 'tags', write a label selector under 'selector', or write"
                " 'all: true'"
            )
        return self

    @property
    def parsed_selector(self) -> Selector | None:
        """The selector, parsed (it was checked when the manifest was read)."""
        return None if self.selector is None else parse_selector(self.selector)

    def essence(self) -> dict[str, Any]:
        """The selectors as digested and frozen; `selector` only when written, so that the
        digests of jobs written before selectors existed stay the same."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class RunStart(Strict):
    """`run` with start options: `reset` or `fromStep` runs every target from that step.

    `token` starts it as a plain `run` token does (the device cloud's resetStepIndex and
    fromStepIndex)."""

    token: RunToken = Field(description="every new value starts one execution")
    reset: bool = Field(
        default=False, description="every target from step 0, those already done too"
    )
    from_step: int | None = Field(
        default=None,
        ge=0,
        description="every target from this step, counted from 0 (the first step is 0)",
    )

    @model_validator(mode="after")
    def _one_of(self) -> RunStart:
        if self.reset and self.from_step is not None:
            raise ValueError(
                f"reset and fromStep both say where every target starts: write reset: true"
                f" (from step 0) or fromStep: {self.from_step}, not both"
            )
        return self


def _step_range(steps: int) -> str:
    return "0" if steps == 1 else f"0 to {steps - 1}"


def _run_form(value: Any) -> str:
    return "start" if isinstance(value, dict | RunStart) else "token"


Run = Annotated[
    Annotated[RunToken, Branch("token")] | Annotated[RunStart, Branch("start")],
    Discriminator(_run_form),
]
"""`run: "7"` (a token), or `run: {token: "7", reset: true}` / `{token: "7", fromStep: 1}`."""


Parameters = dict[VarName, Any]
"""`{name: default}`; a parameter written `name: null` (or `name:`) has no default: every
job that uses the template must give it a value."""


def _steps_or_template(schema: dict[str, Any]) -> None:
    """JSON Schema: a job writes its steps, or names the template that holds them."""
    schema["required"] = [r for r in schema.get("required", []) if r != "steps"]
    schema["oneOf"] = [{"required": ["steps"]}, {"required": ["template"]}]


class JobSpec(Strict):
    model_config = ConfigDict(json_schema_extra=_steps_or_template)

    targets: Targets = Field(
        description="which devices: the union of devices, tags, a selector or all; frozen"
        " at the first execution"
    )
    parameters: Parameters = Field(
        default_factory=dict,
        description="values for ${params.NAME} in the steps' properties; with a template, the"
        " values of its parameters",
    )
    template: Name | None = Field(
        default=None,
        description="the JobTemplate (of the job's scope) whose steps, schedules and rollout"
        " the job runs, with `parameters` as its values",
    )
    steps: list[StepOrTemplate] = Field(
        description="the operations, in order, each on every target; frozen at the first execution"
    )
    schedules: list[Schedule] = Field(
        default_factory=list,
        description="when executions start besides `run`: at an interval, a cron, a device connect",
    )
    run: Run | None = Field(
        default=None,
        description="on-demand start: every new token starts one execution; as a mapping,"
        " with reset or fromStep",
    )
    suspend: bool = Field(default=False, description="start nothing; stop a running execution")
    rollout: Rollout | None = Field(
        default=None, description="waves, gates, rate, abort rule and window (README: Rollouts)"
    )
    retry: Retry | None = Field(default=None, description="how often a target is tried, in all")

    @model_validator(mode="before")
    @classmethod
    def _parameters_in_steps(cls, data: Any) -> Any:
        return with_parameters(data)

    @field_validator("steps")
    @classmethod
    def _at_least_one_step(cls, steps: list[Step]) -> list[Step]:
        if not steps:
            raise ValueError("a job needs at least one step")
        return steps

    @field_validator("run")
    @classmethod
    def _step_exists(
        cls, run: str | RunStart | None, info: ValidationInfo
    ) -> str | RunStart | None:
        steps = info.data.get("steps")
        start = run.from_step if isinstance(run, RunStart) else None
        if start is not None and steps and start >= len(steps):
            raise ValueError(
                f"fromStep {start} names no step: the job has {len(steps)}, counted from 0;"
                f" write {_step_range(len(steps))}"
            )
        return run

    @property
    def run_token(self) -> str | None:
        """The run token, however `run` is written."""
        return self.run.token if isinstance(self.run, RunStart) else self.run

    @property
    def run_from(self) -> tuple[bool, int | None]:
        """`run`'s start options: (reset, fromStep)."""
        if isinstance(self.run, RunStart):
            return self.run.reset, self.run.from_step
        return False, None


class Job(Strict):
    """Which devices (targets), what to do (steps, in order), when (schedules, run token)."""

    api_version: ApiVersion
    kind: Literal["Job"]
    metadata: JobMetadata
    spec: JobSpec


# --- JobTemplate --------------------------------------------------------------------------


class JobTemplateSpec(Strict):
    """What jobs that name the template share: steps, schedules, rollout and retry, with
    `${params.NAME}` in the steps' properties; each job gives targets, run and values."""

    parameters: Parameters = Field(
        default_factory=dict,
        description="name: default; `name: null` has none, and every job must give it",
    )
    steps: list[StepOrTemplate] = Field(
        min_length=1, description="the operations, in order, of every job that names the template"
    )
    schedules: list[Schedule] = Field(default_factory=list, description="the jobs' schedules")
    rollout: Rollout | None = Field(default=None, description="the jobs' rollout")
    retry: Retry | None = Field(default=None, description="the jobs' retry limit")


class JobTemplate(Strict):
    """Steps (and schedules, rollout, retry) for jobs that name it in `spec.template`."""

    api_version: ApiVersion
    kind: Literal["JobTemplate"]
    metadata: JobMetadata
    spec: JobTemplateSpec


# --- Policy -----------------------------------------------------------------------------------


class PolicyMetadata(Strict):
    scope: ScopeName | None = Field(default=None, description="default: the configured scope")
    description: Description | None = Field(default=None, description="free text")


class PolicySpec(Strict):
    """Who may create, change or remove the jobs of the scope (docs/policy.md)."""

    allowed_authors: list[AuthorEmail] = Field(
        default_factory=list,
        description="commit author e-mails (any case) whose changes to job manifests apply",
    )
    allowed_signing_keys: list[KeyFingerprint] = Field(
        default_factory=list,
        description="full fingerprints of the keys whose signed commits apply: OpenPGP (40 or"
        " 64 hex digits) or SSH (SHA256:...); checked with --require-signed",
    )

    @model_validator(mode="after")
    def _allows_someone(self) -> PolicySpec:
        if not (self.allowed_authors or self.allowed_signing_keys):
            raise ValueError(
                "a policy lists allowedAuthors, allowedSigningKeys or both; an empty policy"
                " would allow everyone (remove the document instead)"
            )
        return self


class Policy(Strict):
    """Who may manage the jobs of a scope, checked against git history (docs/policy.md)."""

    api_version: ApiVersion
    kind: Literal["Policy"]
    metadata: PolicyMetadata = PolicyMetadata()
    spec: PolicySpec


Manifest = Annotated[
    Scope | DeviceList | Job | JobTemplate | Policy | Notification, Field(discriminator="kind")
]
KINDS: dict[str, type[Scope | DeviceList | Job | JobTemplate | Policy | Notification]] = {
    "Scope": Scope,
    "DeviceList": DeviceList,
    "Job": Job,
    "JobTemplate": JobTemplate,
    "Policy": Policy,
    "Notification": Notification,
}
