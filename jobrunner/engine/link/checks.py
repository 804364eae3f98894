"""The requests a step sends besides its own (DESIGN §11), as the engine's `StepChecks`.

A Configuration Put may take a snapshot first (`rollback: onFailure`, or a rollout that
rolls back when it is aborted): stage `snapshot`, whose id is recorded with the target
before the put is sent. With `verify: true` a step reads back what it did once it
succeeded: a Configuration Put each pid it wrote (`verify:0`, `verify:1`... after Kura's
apply delay), a package install `GET packages` (`verify:0`).
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from jobrunner.device import KuraPayload, Operation, OperationError, Request
from jobrunner.device.model import FailureKind
from jobrunner.device.operations import snapshots
from jobrunner.device.operations.base import device_reason, response_code
from jobrunner.device.operations.configuration import PutConfiguration, property_values
from jobrunner.device.operations.packages import DownloadPackage, installed_packages
from jobrunner.engine.link import ports
from jobrunner.manifests.secrets import SecretRef

SNAPSHOT = "snapshot"
VERIFY = "verify:"


def verify_stage(index: int) -> str:
    return f"{VERIFY}{index}"


class ConfigurationChecks:
    """A Configuration Put's snapshot and read-backs."""

    def __init__(self, operation: PutConfiguration, verify: bool) -> None:
        self.app_id = operation.app_id
        self.verify = verify
        self.apply_seconds = operation.settings.apply_seconds
        self._operation = operation
        self.pids = [c.pid for c in operation.properties.configurations]

    def request(self, stage: str) -> Request:
        if stage == SNAPSHOT:
            return snapshots.take(self.app_id)
        return snapshots.read_configuration(self.app_id, self.pids[_index(stage)])

    def on_reply(self, stage: str, payload: KuraPayload) -> ports.Outcome:
        if stage == SNAPSHOT:
            taken = snapshots.taken_snapshot(payload)
            if isinstance(taken, str):
                code = response_code(payload)
                refused = code is not None and code != 200
                return ports.Failed(
                    f"no snapshot was taken ({taken}); the configuration was not sent",
                    FailureKind.DEVICE_ERROR if refused else FailureKind.UNREADABLE,
                    code if refused else None,
                )
            return ports.Proceed(None, f"snapshot {taken} taken; the configuration goes next",
                                 snapshot=taken)  # fmt: skip
        index = _index(stage)
        pid = self.pids[index]
        found = snapshots.differences(pid, self.written(), payload)
        if isinstance(found, str):
            return ports.Failed(f"verify: {found}", FailureKind.NOT_VERIFIED)
        if found:
            return ports.Failed(
                f"verify: the device does not hold what was written: {'; '.join(found)}",
                FailureKind.NOT_VERIFIED,
            )
        if index + 1 < len(self.pids):
            return ports.Proceed(verify_stage(index + 1), f"{pid} read back as written")
        shown = ", ".join(self.pids)
        return ports.Succeeded(f"read back as written: {shown}")

    def verification(self, summary: str | None) -> ports.Proceed | None:
        if not self.verify:
            return None
        return ports.Proceed(
            verify_stage(0),
            (summary + "; " if summary else "")
            + f"reading it back in {self.apply_seconds:g}s (Kura applies it after replying)",
            after=self.apply_seconds,
        )

    def written(self) -> ports.Written:
        return self._written_once

    @cached_property
    def _written_once(self) -> ports.Written:
        # Only a read-back or a rollback asks: most puts (one a target, for a step of
        # per-device values) never do.
        return _written(self._operation)


class PackageChecks:
    """A package install's read-back: `GET packages` lists its name and version."""

    def __init__(self, operation: DownloadPackage) -> None:
        self.app_id = operation.app_id
        self.name = operation.properties.name
        self.version = operation.properties.version

    def request(self, stage: str) -> Request:
        return Request(self.app_id, "GET", ("packages",))

    def on_reply(self, stage: str, payload: KuraPayload) -> ports.Outcome:
        listed = installed_packages(payload)
        if listed is None:
            code = response_code(payload)
            return ports.Failed(
                f"verify: GET packages: device replied {code}: {device_reason(payload)}",
                FailureKind.NOT_VERIFIED,
            )
        if (self.name, self.version) in listed:
            return ports.Succeeded(f"GET packages lists {self.name} {self.version}")
        versions = sorted(v for n, v in listed if n == self.name)
        held = f"version(s) {', '.join(versions)}" if versions else "no such package"
        return ports.Failed(
            f"verify: GET packages does not list {self.name} {self.version} ({held})",
            FailureKind.NOT_VERIFIED,
        )

    def verification(self, summary: str | None) -> ports.Proceed | None:
        return ports.Proceed(
            verify_stage(0), (summary + "; " if summary else "") + "checking GET packages"
        )

    def written(self) -> ports.Written:
        return {}


def checks_of(operation: Operation[Any], verify: bool) -> ports.StepChecks | None:
    """The checks of a step's operation: every Configuration Put has some (a rollout may
    roll it back), a package install only with `verify`."""
    if isinstance(operation, PutConfiguration):
        return ConfigurationChecks(operation, verify)
    if isinstance(operation, DownloadPackage) and verify:
        return PackageChecks(operation)
    return None


def _index(stage: str) -> int:
    return int(stage.removeprefix(VERIFY))


def _written(operation: PutConfiguration) -> dict[str, dict[str, tuple[str, tuple[str, ...]]]]:
    """pid -> name -> (type, values as Kura reads them); a secret's value is not known
    here (resolved at dispatch only), so it is written as a Password: never compared."""
    written: dict[str, dict[str, tuple[str, tuple[str, ...]]]] = {}
    for configuration in operation.properties.configurations:
        properties = written.setdefault(configuration.pid, {})
        for name, value in configuration.properties.items():
            raw = getattr(value, "value", value)
            if isinstance(raw, SecretRef):
                properties[name] = ("Password", ())
                continue
            try:
                kind, values, _ = property_values(name, value)
            except OperationError:
                properties[name] = ("Password", ())
                continue
            properties[name] = (kind, tuple(values))
    return written
