"""The accepted policy of each scope (`STATE/scopes/SCOPE/policy.json`): a typed, versioned
record, replaced atomically. It guards the next change of the policy (docs/policy.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Final, Literal

from pydantic import ConfigDict, Field, ValidationError

from jobrunner.errors import StateError
from jobrunner.state.journal import read_json, write_json
from jobrunner.state.layout import StateDir
from jobrunner.state.records import Record

POLICY_FORMAT: Final = "jobrunner.policy"
POLICY_VERSION = 1


class PolicyRecord(Record):
    """What a scope's accepted policy allows, and where and when it was accepted from."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    format: Literal["jobrunner.policy"] = POLICY_FORMAT
    version: int = POLICY_VERSION
    allowed_authors: list[str] = Field(default_factory=list, alias="allowedAuthors")
    allowed_signing_keys: list[str] = Field(default_factory=list, alias="allowedSigningKeys")
    file: str = ""
    commit: str = ""


def policy_file(state: StateDir, scope: str) -> Path:
    return state.scope(scope) / "policy.json"


def load_policy(state: StateDir, scope: str) -> PolicyRecord | None:
    """The scope's accepted policy; None without one; StateError when it cannot be read."""
    path = policy_file(state, scope)
    try:
        raw = read_json(state.storage, path, POLICY_FORMAT, POLICY_VERSION)
    except FileNotFoundError:
        return None
    try:
        return PolicyRecord.model_validate(raw)
    except ValidationError:
        raise StateError(f"{path}: not a policy record; restore it from a backup") from None


def save_policy(state: StateDir, scope: str, record: PolicyRecord | None) -> None:
    """Record the scope's accepted policy (None: it was removed)."""
    path = policy_file(state, scope)
    if record is None:
        state.storage.remove(path)
        return
    write_json(state.storage, path, record.model_dump(mode="json", by_alias=True))
