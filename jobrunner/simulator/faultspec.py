"""The command-line form of the faults of `jobrunner.simulator.faults`.

    fail        DEVICES:OP[=OUTCOME]          OUTCOME: 400 | 404 | 500 | failed | hash-mismatch
    fail-rate   [[DEVICES:]OP=]RATE           RATE: 0..1, e.g. 0.05
    drop        DEVICES[:OP]
    drop-rate   [[DEVICES:]OP=]RATE
    slow        DEVICES[:OP]=DELAY            DELAY: 500ms, 3s, 2m, 1h (plain numbers are seconds)
    late        DEVICES[:OP][=DELAY]          default 35s
    duplicate   DEVICES[:OP][=COPIES]         extra replies, default 1
    disconnect  DEVICES[:OP][=AFTER][/RECONNECT]
    offline     DEVICES[=AFTER]               connect AFTER the start; omitted: never
    stray       DEVICES[:KIND][=DELAY]        KIND: download | install | uninstall | activity
    no-stick    DEVICES[:PROPERTY]            a PUT's PROPERTY (a glob; all) keeps its value
    snapshot-gone  DEVICES                    snapshots taken are gone when asked for
    rollback-fails DEVICES                    a rollback answers 200 and restores nothing

DEVICES is a client id, a glob (`gw-00[0-4]?`), `tag:NAME` (the devices given that tag with
`--tag`) or a comma-separated list of them; OP an operation or group name (`*` when omitted).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import cast, get_args

from jobrunner.manifests.fields import parse_duration as manifest_duration
from jobrunner.simulator.faults import (
    LATE_DEFAULT,
    TAG_PREFIX,
    DelayFault,
    DisconnectFault,
    DropFault,
    DuplicateFault,
    FailFault,
    FailOutcome,
    FaultPlan,
    NoStickFault,
    OfflineFault,
    RateFault,
    Selector,
    StrayFault,
    StrayKind,
)


class FaultSpecError(ValueError):
    """A fault written on the command line that cannot be read; the message says how to write it."""


_SECONDS = re.compile(r"^\s*\d+(?:\.\d+)?\s*$")


def parse_duration(text: str) -> float:
    """A duration as the manifests write one (`500ms`, `3s`, `1m30s`), or a plain number of
    seconds; as seconds."""
    if _SECONDS.match(text):
        return float(text)
    try:
        return manifest_duration(text.strip()).total_seconds()
    except ValueError:
        raise FaultSpecError(
            f"{text!r} is not a duration; write e.g. 500ms, 3s, 2m or 1h"
        ) from None


def _split(spec: str, what: str, example: str) -> tuple[str, str, str | None]:
    """DEVICES[:OP][=VALUE] -> (devices, op or '*', value or None); DEVICES may be tag:NAME."""
    head, sep, value = spec.partition("=")
    tagged = head.startswith(TAG_PREFIX)
    devices, _, operation = (
        head[len(TAG_PREFIX) :].partition(":") if tagged else head.partition(":")
    )
    devices = TAG_PREFIX + devices if tagged else devices
    if not devices.strip():
        raise FaultSpecError(f"{what} {spec!r} names no device; write e.g. {example}")
    return devices.strip(), (operation.strip() or "*"), (value.strip() if sep else None)


def _selector(devices: str, operation: str, what: str, spec: str) -> Selector:
    try:
        return Selector(devices, operation)
    except ValueError as error:
        raise FaultSpecError(f"{what} {spec!r}: {error}") from None


def parse_fail(spec: str) -> FailFault:
    """`DEVICES:OP[=OUTCOME]`."""
    devices, operation, value = _split(spec, "--fail", "gw-0007:bundle-stop=400")
    where = _selector(devices, operation, "--fail", spec)
    if value is None:
        return FailFault(where)
    outcome: object = int(value) if value.isdigit() else value
    if outcome not in get_args(FailOutcome):
        raise FaultSpecError(
            f"--fail {spec!r}: outcome {value!r} is none of 400, 404, 500, failed, hash-mismatch"
        )
    return FailFault(where, cast(FailOutcome, outcome))


def parse_rate(spec: str, what: str = "--fail-rate") -> RateFault:
    """`[[DEVICES:]OP=]RATE`."""
    head, sep, value = spec.rpartition("=")
    devices, operation = "*", head.strip() if sep else "*"
    if ":" in operation:
        devices, operation, _ = _split(operation, what, "tag:canary:bundle-start=1")
    try:
        rate = float(value)
        return RateFault(rate, operation, devices)
    except ValueError as error:
        raise FaultSpecError(
            f"{what} {spec!r}: {error}; write e.g. 0.05, download=0.2 or tag:canary:*=1"
        ) from None


def parse_drop(spec: str) -> DropFault:
    """`DEVICES[:OP]`."""
    devices, operation, value = _split(spec, "--drop", "gw-0003:command")
    if value is not None:
        raise FaultSpecError(f"--drop {spec!r} takes no value; write DEVICES[:OP]")
    return DropFault(_selector(devices, operation, "--drop", spec))


def parse_delay(spec: str, what: str = "--slow", default: float | None = None) -> DelayFault:
    """`DEVICES[:OP]=DELAY` (or `[=DELAY]` with a default)."""
    devices, operation, value = _split(spec, what, "gw-0005=3s")
    if value is None:
        if default is None:
            raise FaultSpecError(f"{what} {spec!r} needs a delay; write e.g. gw-0005:command=3s")
        return DelayFault(_selector(devices, operation, what, spec), default)
    return DelayFault(_selector(devices, operation, what, spec), parse_duration(value))


def parse_duplicate(spec: str) -> DuplicateFault:
    """`DEVICES[:OP][=COPIES]`."""
    devices, operation, value = _split(spec, "--duplicate", "gw-0002:command=2")
    if value is not None and not value.isdigit():
        raise FaultSpecError(f"--duplicate {spec!r}: {value!r} is not a count of extra replies")
    where = _selector(devices, operation, "--duplicate", spec)
    return DuplicateFault(where, int(value) if value else 1)


def parse_disconnect(spec: str) -> DisconnectFault:
    """`DEVICES[:OP][=AFTER][/RECONNECT]`."""
    devices, operation, value = _split(spec, "--disconnect", "gw-0009:download=2s/10s")
    where = _selector(devices, operation, "--disconnect", spec)
    if not value:
        return DisconnectFault(where)
    after, _, reconnect = value.partition("/")
    return DisconnectFault(
        where,
        parse_duration(after) if after.strip() else 0.0,
        parse_duration(reconnect) if reconnect.strip() else None,
    )


def parse_offline(spec: str) -> OfflineFault:
    """`DEVICES[=AFTER]`."""
    devices, sep, value = spec.partition("=")
    if not devices.strip() or ":" in devices:
        raise FaultSpecError(f"--offline {spec!r}: write DEVICES[=AFTER], e.g. gw-0012=30s")
    _selector(devices.strip(), "*", "--offline", spec)
    return OfflineFault(devices.strip(), parse_duration(value) if sep and value.strip() else None)


def parse_stray(spec: str) -> StrayFault:
    """`DEVICES[:KIND][=DELAY]`."""
    devices, kind, value = _split(spec, "--stray", "gw-0004:download")
    kind = "download" if kind == "*" else kind
    if kind not in get_args(StrayKind):
        raise FaultSpecError(
            f"--stray {spec!r}: {kind!r} is none of download, install, uninstall, activity"
        )
    _selector(devices, "*", "--stray", spec)
    delay = parse_duration(value) if value else 1.0
    return StrayFault(devices, cast(StrayKind, kind), delay)


def parse_no_stick(spec: str) -> NoStickFault:
    """`DEVICES[:PROPERTY]`."""
    devices, prop, value = _split(spec, "--no-stick", "gw-0003:publish.interval")
    if value is not None:
        raise FaultSpecError(f"--no-stick {spec!r} takes no value; write DEVICES[:PROPERTY]")
    _selector(devices, "*", "--no-stick", spec)
    return NoStickFault(devices, prop)


def parse_devices(spec: str, what: str) -> str:
    """`DEVICES` alone."""
    devices = spec.strip()
    if not devices or ":" in devices.removeprefix(TAG_PREFIX) or "=" in devices:
        raise FaultSpecError(f"{what} {spec!r}: write DEVICES only, e.g. gw-0004 or tag:canary")
    _selector(devices, "*", what, spec)
    return devices


def build_plan(
    *,
    seed: int = 0,
    fail: Sequence[str] = (),
    fail_rate: Sequence[str] = (),
    drop: Sequence[str] = (),
    drop_rate: Sequence[str] = (),
    slow: Sequence[str] = (),
    late: Sequence[str] = (),
    duplicate: Sequence[str] = (),
    disconnect: Sequence[str] = (),
    offline: Sequence[str] = (),
    stray: Sequence[str] = (),
    no_stick: Sequence[str] = (),
    snapshot_gone: Sequence[str] = (),
    rollback_fails: Sequence[str] = (),
) -> FaultPlan:
    """A FaultPlan from command-line specs; FaultSpecError names the one that is wrong."""
    return FaultPlan(
        seed=seed,
        fail=tuple(parse_fail(s) for s in fail),
        fail_rate=tuple(parse_rate(s) for s in fail_rate),
        drop=tuple(parse_drop(s) for s in drop),
        drop_rate=tuple(parse_rate(s, "--drop-rate") for s in drop_rate),
        slow=tuple(parse_delay(s) for s in slow),
        late=tuple(parse_delay(s, "--late", LATE_DEFAULT) for s in late),
        duplicate=tuple(parse_duplicate(s) for s in duplicate),
        disconnect=tuple(parse_disconnect(s) for s in disconnect),
        offline=tuple(parse_offline(s) for s in offline),
        stray=tuple(parse_stray(s) for s in stray),
        no_stick=tuple(parse_no_stick(s) for s in no_stick),
        snapshot_gone=tuple(parse_devices(s, "--snapshot-gone") for s in snapshot_gone),
        rollback_fails=tuple(parse_devices(s, "--rollback-fails") for s in rollback_fails),
    )
