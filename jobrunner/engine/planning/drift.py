"""What a step would change on a device, from the device's replies to the reads (pure).

    configuration(base, step, payloads)  Configuration Put: each property old -> new or in sync
    package(base, step, payload)         Package Download / Install, Package Uninstall
    bundle(base, step, payload)          Bundle Start / Bundle Stop

Each gives the step's `StepLive` (its state and `Change`s), or raises `UnreadableError`
(saying why) when a reply is an error or cannot be read. Secrets stay masked: a property
whose value is a secret reference, or that the device holds as a Password or encrypted,
is `***` and not compared.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from jobrunner.device.operations.base import response_code, text_metric
from jobrunner.device.operations.configuration import property_values
from jobrunner.device.operations.packages import installed_packages
from jobrunner.device.operations.readings import (
    DeviceBundle,
    DeviceProperty,
    read_bundles,
    read_configurations,
    same_value,
)
from jobrunner.device.payload import KuraPayload
from jobrunner.errors import OperationError
from jobrunner.manifests.secrets import SecretRef
from jobrunner.manifests.steps import (
    BundleStartStep,
    BundleStopStep,
    ConfigurationPutStep,
    PackageDownloadStep,
    PackageUninstallStep,
    ScalarValue,
    TypedProperty,
)

MASK = "***"
ACTIVE = frozenset({"ACTIVE", "STARTING"})


class StepState(StrEnum):
    IN_SYNC = "in sync"
    WOULD_CHANGE = "would change"
    WOULD_FAIL = "would fail"
    UNKNOWN = "unknown"
    """The device could not be read (no reply, an error, an unreadable reply)."""
    NOT_READ = "not read"
    """The step has nothing to read back."""


@dataclass(frozen=True, slots=True)
class Change:
    """One thing a step would set, against what the device holds."""

    what: str
    old: str | None
    """None: the device does not have it."""
    new: str
    in_sync: bool
    note: str | None = None


@dataclass(frozen=True, slots=True)
class StepLive:
    index: int
    name: str
    definition: str
    state: StepState
    changes: tuple[Change, ...] = ()
    reason: str | None = None


class UnreadableError(Exception):
    """A reply that is not a 200 or whose body cannot be read."""


def with_state(
    base: StepLive, state: StepState, changes: Sequence[Change] = (), reason: str | None = None
) -> StepLive:
    return StepLive(base.index, base.name, base.definition, state, tuple(changes), reason)


def _summarized(base: StepLive, changes: list[Change]) -> StepLive:
    if any(c.note and c.note.startswith("would fail") for c in changes):
        return with_state(base, StepState.WOULD_FAIL, changes)
    if all(c.in_sync for c in changes):
        return with_state(base, StepState.IN_SYNC, changes)
    return with_state(base, StepState.WOULD_CHANGE, changes)


def _failure(payload: KuraPayload | None, what: str) -> UnreadableError:
    if payload is None:
        return UnreadableError(f"{what}: no reply")
    code = response_code(payload)
    message = text_metric(payload, "response.exception.message")
    if code != 200:
        reason = f" ({message})" if message else ""
        return UnreadableError(f"{what}: the device answered {code}{reason}")
    return UnreadableError(f"{what}: the reply cannot be read")


def configuration(
    base: StepLive,
    step: ConfigurationPutStep,
    payloads: Mapping[tuple[str, ...], KuraPayload | None],
) -> StepLive:
    changes: list[Change] = []
    for configuration in step.properties.configurations:
        payload = payloads[("configurations", configuration.pid)]
        read = read_configurations(payload)
        if read is None:
            raise _failure(payload, f"CONF-V1 GET/configurations/{configuration.pid}")
        held = read.get(configuration.pid)
        for name, value in configuration.properties.items():
            what = f"{configuration.pid} {name}"
            if held is None:
                changes.append(
                    Change(
                        what,
                        None,
                        _shown_new(name, value),
                        False,
                        "no such pid on the device: Kura would skip it",
                    )
                )
                continue
            changes.append(_property(what, name, value, held.get(name)))
    return _summarized(base, changes)


def _is_secret(value: ScalarValue | list[ScalarValue] | TypedProperty) -> bool:
    return isinstance(value, TypedProperty) and (
        value.type == "Password" or isinstance(value.value, SecretRef)
    )


def _shown_new(name: str, value: ScalarValue | list[ScalarValue] | TypedProperty) -> str:
    if _is_secret(value):
        return MASK
    try:
        _, values, array = property_values(name, value)
    except OperationError:
        return str(value)
    return "[" + ", ".join(values) + "]" if array else values[0] if values else ""


def _property(
    what: str,
    name: str,
    value: ScalarValue | list[ScalarValue] | TypedProperty,
    held: DeviceProperty | None,
) -> Change:
    secret_held = held is not None and (held.type == "Password" or held.encrypted)
    if _is_secret(value) or secret_held:
        old = None if held is None else MASK
        return Change(what, old, MASK, held is not None, "a secret: not compared")
    try:
        kind, values, array = property_values(name, value)
    except OperationError as error:
        return Change(what, None if held is None else held.text, str(value), False, str(error))
    new = "[" + ", ".join(values) + "]" if array else values[0] if values else ""
    if held is None:
        return Change(what, None, new, False)
    return Change(what, held.text, new, same_value(kind, values, held.values))


def package(
    base: StepLive, step: PackageDownloadStep | PackageUninstallStep, payload: KuraPayload | None
) -> StepLive:
    installed = installed_packages(payload)
    if installed is None:
        raise _failure(payload, "DEPLOY-V2 GET/packages")
    name = step.properties.name
    versions = sorted(v for n, v in installed if n == name)
    old = ", ".join(versions) if versions else None
    if isinstance(step, PackageDownloadStep):
        wanted = step.properties.version
        return _summarized(base, [Change(name, old, wanted, wanted in versions)])
    version = step.properties.version
    gone = not versions or (version is not None and version not in versions)
    return _summarized(base, [Change(name, old, "not installed", gone)])


def bundle(
    base: StepLive, step: BundleStartStep | BundleStopStep, payload: KuraPayload | None
) -> StepLive:
    bundles = read_bundles(payload)
    if bundles is None:
        raise _failure(payload, "DEPLOY-V2 GET/bundles")
    bundle_id = step.properties.bundle_id
    found: DeviceBundle | None = bundles.get(bundle_id)
    start = isinstance(step, BundleStartStep)
    new = "ACTIVE" if start else "RESOLVED"
    if found is None:
        note = f"would fail: no bundle {bundle_id} on the device"
        return _summarized(base, [Change(f"bundle {bundle_id}", None, new, False, note)])
    what = f"bundle {bundle_id} ({found.name} {found.version})"
    in_sync = (found.state in ACTIVE) if start else (found.state not in ACTIVE)
    return _summarized(base, [Change(what, found.state, new, in_sync)])
