"""Fault injection: a typed, immutable FaultPlan and the per-device decisions drawn from it.

Every fault names the devices it hits (a client id, a glob such as `gw-00[1-4]*`, or a
comma-separated list of either) and, where it matters, an operation or group of
`jobrunner.simulator.operations` (`*` when omitted). Rates are decided per request from a
hash of (seed, device, operation, how many such requests the device had before), so a run
with the same seed and the same requests fails the same requests, whatever the timing.

fail        the operation fails: an error reply (400, 404, 500), or, for an asynchronous
            one, a 200 then a FAILED notification (`failed`; `hash-mismatch` for a download)
fail_rate   that share of the operations fails, as above with the default outcome
drop        the device does the work but its reply is lost (drop_rate: that share)
slow, late  the device handles the request only after a delay (`late`: 35 s by default,
            after the usual 30 s reply timeout)
duplicate   the reply is sent more than once
disconnect  on the first matching request the device drops its connection (LWT), `after`
            seconds later; it reconnects with a new BIRTH after `reconnect` s, or never
offline     the device is offline at start and connects after a delay, or never
stray       after its first request the device notifies that requester of an operation it
            was never asked to do
no_stick    a configuration PUT is answered 200 but the property (a glob of names, every
            one when omitted) keeps its value (Kura applies after the reply and only logs
            what it could not apply)
snapshot_gone  EXEC snapshot answers a new id, but that snapshot is gone when asked for
            (as when ten newer ones pushed it out)
rollback_fails  EXEC rollback is answered 200 (Kura rolls back a second later) and then
            restores nothing (Kura only logs the failure)

`jobrunner.simulator.faultspec` parses the command-line form of each.
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from jobrunner.simulator.operations import ASYNC_OPERATIONS, expand

FailOutcome = Literal[400, 404, 500, "failed", "hash-mismatch"]
StrayKind = Literal["download", "install", "uninstall", "activity"]
TAG_PREFIX = "tag:"
LATE_DEFAULT = 35.0
"""A late reply arrives after the runner's default 30 s reply timeout."""


def default_outcome(operation: str) -> FailOutcome:
    """How an operation fails when the fault does not say: asynchronous ones in a notification."""
    return "failed" if operation in ASYNC_OPERATIONS else 500


@dataclass(frozen=True, slots=True)
class Selector:
    """Which devices and which operations a fault applies to."""

    devices: str = "*"
    operation: str = "*"

    def __post_init__(self) -> None:
        expand(self.operation)  # ValueError for an unknown operation or group
        if not self.devices or any(not part.strip() for part in self.devices.split(",")):
            raise ValueError(f"empty device pattern in {self.devices!r}")

    def matches_device(self, client_id: str, tags: frozenset[str] = frozenset()) -> bool:
        """Whether the pattern names `client_id`: a glob of client ids, or `tag:NAME` for the
        devices the fleet gives that tag."""
        for written in self.devices.split(","):
            part = written.strip()
            if part.startswith(TAG_PREFIX):
                if part[len(TAG_PREFIX) :] in tags:
                    return True
            elif fnmatch.fnmatchcase(client_id, part):
                return True
        return False

    def operations(self) -> frozenset[str]:
        """The operation names this selector stands for."""
        return expand(self.operation)


@dataclass(frozen=True, slots=True)
class FailFault:
    """Operations that fail, and how."""

    where: Selector
    outcome: FailOutcome | None = None
    """None: the operation's default (`failed` for asynchronous operations, else 500)."""


@dataclass(frozen=True, slots=True)
class RateFault:
    """A share of operations that fail (or lose their reply)."""

    rate: float
    operation: str = "*"
    devices: str = "*"

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"a rate is between 0 and 1, not {self.rate}")
        Selector(self.devices, self.operation)


@dataclass(frozen=True, slots=True)
class DropFault:
    """Operations whose reply is lost."""

    where: Selector


@dataclass(frozen=True, slots=True)
class DelayFault:
    """Operations handled only after a delay."""

    where: Selector
    delay: float


@dataclass(frozen=True, slots=True)
class DuplicateFault:
    """Operations answered more than once."""

    where: Selector
    copies: int = 1
    """Extra replies after the first."""


@dataclass(frozen=True, slots=True)
class DisconnectFault:
    """A connection dropped on the first matching request."""

    where: Selector
    after: float = 0.0
    """Seconds after the request arrives; 0 drops the connection instead of replying."""
    reconnect: float | None = None
    """Seconds offline before reconnecting (with a new BIRTH); None: stays offline."""


@dataclass(frozen=True, slots=True)
class OfflineFault:
    """Devices offline at start."""

    devices: str
    connect_after: float | None = None
    """Seconds after the fleet started; None: the device never connects."""


@dataclass(frozen=True, slots=True)
class StrayFault:
    """Devices that notify an operation nobody asked for."""

    devices: str
    kind: StrayKind = "download"
    delay: float = 1.0


@dataclass(frozen=True, slots=True)
class NoStickFault:
    """Configuration properties whose new value a device never applies."""

    devices: str
    property: str = "*"
    """A glob of property names."""


_Targeted = TypeVar("_Targeted", FailFault, DropFault, DelayFault, DuplicateFault)


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """Every fault of a fleet; empty (the default) is a fleet of healthy devices."""

    seed: int = 0
    fail: tuple[FailFault, ...] = ()
    fail_rate: tuple[RateFault, ...] = ()
    drop: tuple[DropFault, ...] = ()
    drop_rate: tuple[RateFault, ...] = ()
    slow: tuple[DelayFault, ...] = ()
    late: tuple[DelayFault, ...] = ()
    duplicate: tuple[DuplicateFault, ...] = ()
    disconnect: tuple[DisconnectFault, ...] = ()
    offline: tuple[OfflineFault, ...] = ()
    stray: tuple[StrayFault, ...] = ()
    no_stick: tuple[NoStickFault, ...] = ()
    snapshot_gone: tuple[str, ...] = ()
    """Device patterns."""
    rollback_fails: tuple[str, ...] = ()
    """Device patterns."""

    def for_device(self, client_id: str, tags: frozenset[str] = frozenset()) -> DeviceFaults | None:
        """The faults that hit one device (with `tags`); None when none does (the fast path)."""

        def mine(items: Iterable[_Targeted]) -> tuple[_Targeted, ...]:
            return tuple(item for item in items if item.where.matches_device(client_id, tags))

        faults = DeviceFaults(
            client_id=client_id,
            seed=self.seed,
            fail=mine(self.fail),
            fail_rate=tuple(
                r for r in self.fail_rate if Selector(r.devices).matches_device(client_id, tags)
            ),
            drop=mine(self.drop),
            drop_rate=tuple(
                r for r in self.drop_rate if Selector(r.devices).matches_device(client_id, tags)
            ),
            delay=mine(self.slow) + mine(self.late),
            duplicate=mine(self.duplicate),
            disconnect=[d for d in self.disconnect if d.where.matches_device(client_id, tags)],
            stray=next(
                (s for s in self.stray if Selector(s.devices).matches_device(client_id, tags)),
                None,
            ),
            no_stick=tuple(
                n.property
                for n in self.no_stick
                if Selector(n.devices).matches_device(client_id, tags)
            ),
            snapshot_gone=any(
                Selector(d).matches_device(client_id, tags) for d in self.snapshot_gone
            ),
            rollback_fails=any(
                Selector(d).matches_device(client_id, tags) for d in self.rollback_fails
            ),
        )
        return faults if faults.any() else None

    def offline_at_start(self, client_id: str) -> OfflineFault | None:
        """Whether (and until when) a device is offline at start."""
        return next(
            (o for o in self.offline if Selector(o.devices).matches_device(client_id)), None
        )


@dataclass(slots=True)
class Decision:
    """What the faults make of one request."""

    fail: FailOutcome | None = None
    drop: bool = False
    delay: float = 0.0
    copies: int = 0
    disconnect: DisconnectFault | None = None


@dataclass(slots=True)
class DeviceFaults:
    """The faults of one device, and what it has already used up (disconnects fire once)."""

    client_id: str
    seed: int
    fail: tuple[FailFault, ...] = ()
    fail_rate: tuple[RateFault, ...] = ()
    drop: tuple[DropFault, ...] = ()
    drop_rate: tuple[RateFault, ...] = ()
    delay: tuple[DelayFault, ...] = ()
    duplicate: tuple[DuplicateFault, ...] = ()
    disconnect: list[DisconnectFault] = field(default_factory=list)
    stray: StrayFault | None = None
    stray_sent: bool = False
    no_stick: tuple[str, ...] = ()
    """Globs of the property names whose new values do not stick."""
    snapshot_gone: bool = False
    rollback_fails: bool = False
    _seen: dict[str, int] = field(default_factory=dict)

    def any(self) -> bool:
        """Whether any fault is left for this device."""
        return bool(
            self.fail
            or self.fail_rate
            or self.drop
            or self.drop_rate
            or self.delay
            or self.duplicate
            or self.disconnect
            or self.stray
            or self.no_stick
            or self.snapshot_gone
            or self.rollback_fails
        )

    def sticks(self, name: str) -> bool:
        """Whether a new value of configuration property `name` is applied."""
        return not any(fnmatch.fnmatchcase(name, glob) for glob in self.no_stick)

    def decide(self, operation: str) -> Decision | None:
        """Draw the faults for the next `operation` request; None when nothing happens."""
        n = self._seen.get(operation, 0)
        self._seen[operation] = n + 1
        decision = Decision()
        hit = False
        for fail in self.fail:
            if operation in fail.where.operations():
                decision.fail = fail.outcome or default_outcome(operation)
                hit = True
                break
        if decision.fail is None and self._rolled(self.fail_rate, operation, n, "fail"):
            decision.fail = default_outcome(operation)
            hit = True
        if any(operation in d.where.operations() for d in self.drop) or self._rolled(
            self.drop_rate, operation, n, "drop"
        ):
            decision.drop = hit = True
        for delay in self.delay:
            if operation in delay.where.operations():
                decision.delay = max(decision.delay, delay.delay)
                hit = True
        for duplicate in self.duplicate:
            if operation in duplicate.where.operations():
                decision.copies = max(decision.copies, duplicate.copies)
                hit = True
        for disconnect in self.disconnect:
            if operation in disconnect.where.operations():
                self.disconnect.remove(disconnect)  # once per fault
                decision.disconnect = disconnect
                hit = True
                break
        return decision if hit else None

    def phase_fails(self, operation: str) -> bool:
        """Whether a later phase of an accepted operation (e.g. the install after a
        download) fails: the `fail` and `fail_rate` faults of that phase's name."""
        decision_fail = any(operation in f.where.operations() for f in self.fail)
        n = self._seen.get(operation, 0)
        self._seen[operation] = n + 1
        return decision_fail or self._rolled(self.fail_rate, operation, n, "fail")

    def _rolled(self, rates: tuple[RateFault, ...], operation: str, n: int, salt: str) -> bool:
        for rate in rates:
            if rate.rate > 0 and operation in expand(rate.operation):
                key = f"{self.seed}/{self.client_id}/{operation}/{n}/{salt}".encode()
                draw = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big")
                if draw / 2**64 < rate.rate:
                    return True
        return False
