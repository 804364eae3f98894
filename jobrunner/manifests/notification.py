"""The Notification kind: CloudEvents posted to a URL when executions and rollouts move on.

apiVersion: jobrunner/v1
kind: Notification
metadata: {name: ops-webhook, scope: acme}
spec:
  url: https://hooks.example.com/jobrunner
  events: [execution.ended, rollout.aborted]   # default: every event
  jobs: [opcua-bridge-3.0]                       # default: every job of the scope
  headers:
    - {name: Authorization, value: {valueFrom: {env: OPS_WEBHOOK_TOKEN}}}
  maxBacklog: 10000                              # undelivered events kept at most
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal, get_args

from pydantic import Field, field_validator

from jobrunner.manifests.base import Strict
from jobrunner.manifests.fields import Duration, Name, ScopeName
from jobrunner.manifests.secrets import Credential

EventType = Literal[
    "execution.ended",
    "rollout.aborted",
    "rollout.wave.approved",
    "rollout.wave.passed",
    "target.failed",
]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)

HEADER_NAME = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$"
"""An HTTP field name (RFC 9110 token)."""
RESERVED_HEADERS = frozenset({"content-type", "content-length", "host", "ce-id"})
DEFAULT_MAX_BACKLOG = 10_000
"""Undelivered events a notification's lane keeps, unless its `maxBacklog` says otherwise."""


class Header(Strict):
    name: Annotated[str, Field(pattern=HEADER_NAME)] = Field(
        description="an HTTP header name, e.g. Authorization"
    )
    value: Credential = Field(
        description="its value, or a reference read when the event is posted:"
        " {valueFrom: {env: NAME}} or {valueFrom: {file: PATH}}"
    )

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, name: str) -> str:
        if name.lower() in RESERVED_HEADERS:
            raise ValueError(f"the header {name} is set by jobrunner; it cannot be given")
        return name


class NotificationMetadata(Strict):
    name: Name = Field(description="unique in its scope; events name it (SCOPE/NAME)")
    scope: ScopeName | None = Field(default=None, description="default: the configured scope")
    description: Annotated[str, Field(max_length=4096)] | None = Field(
        default=None, description="free text, shown by status"
    )


class NotificationSpec(Strict):
    url: Annotated[str, Field(pattern=r"^https?://[^\s/?#]+[^\s]*$", max_length=2048)] = Field(
        description="where the events are POSTed (http:// or https://), as CloudEvents 1.0"
        " JSON (structured mode)"
    )
    events: list[EventType] = Field(
        default_factory=lambda: list(get_args(EventType)),
        min_length=1,
        description="which events: execution.ended, rollout.aborted, rollout.wave.approved,"
        " rollout.wave.passed, target.failed (default: all)",
    )
    jobs: list[Name] = Field(
        default_factory=list, description="only the events of these jobs (default: every job)"
    )
    headers: list[Header] = Field(default_factory=list, description="sent with every event")
    timeout: Duration = Field(
        default=timedelta(seconds=10), description="how long one delivery may take"
    )
    max_backlog: Annotated[int, Field(ge=1, le=1_000_000)] = Field(
        default=DEFAULT_MAX_BACKLOG,
        description="undelivered events kept for this receiver at most; when it falls"
        " further behind, the oldest are dropped (logged and counted)",
    )


class Notification(Strict):
    """Where the events of a scope's jobs are posted; delivered at least once, in order."""

    api_version: Literal["jobrunner/v1"]
    kind: Literal["Notification"]
    metadata: NotificationMetadata
    spec: NotificationSpec
