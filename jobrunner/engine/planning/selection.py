"""Label selectors against the devices a runner knows: who matches, who does not and why.

A device's facts are its DeviceList labels and what its last BIRTH said (the registry's
record); `plan -v` and `jobrunner devices -l` read them the same way the first execution
does when it freezes the targets.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from jobrunner.engine.planning.spec import ScopeDevices
from jobrunner.manifests import Declared, Diagnostic, Job, Severity
from jobrunner.manifests.selectors import FACT_PREFIX, Facts, Selector, device_facts
from jobrunner.state.registry import DeviceRecord

SHOWN = 10
"""Devices that do not match listed by name, each with why; the others are counted."""
MATCHED_SHOWN = 20
"""Devices that match listed by name in the selector's line (`targets:` lists them all)."""


def record_facts(labels: Mapping[str, str] | None, record: DeviceRecord | None) -> Facts:
    """What a selector reads of a device: its labels, and the facts its BIRTH gave."""
    if record is None:
        return device_facts(labels)
    return device_facts(
        labels,
        model=record.model_id,
        firmware=record.firmware,
        version=record.framework_version,
        applications=record.application_ids,
    )


@dataclass
class Selection:
    """A selector over the devices of a scope: those it matches, and why the others not."""

    selector: str
    matched: list[str] = field(default_factory=list)
    missed: int = 0
    """Devices of the scope it does not match."""
    why: list[tuple[str, str]] = field(default_factory=list)
    """The first `SHOWN` of them (by client id), each with the first term it fails."""

    def as_json(self) -> dict[str, object]:
        return {
            "selector": self.selector,
            "matched": self.matched,
            "missed": self.missed,
            "why": [{"clientId": c, "reason": r} for c, r in self.why],
        }

    def lines(self) -> list[str]:
        """As `plan -v` prints it: the devices it matches (the first few of a big fleet: the
        targets are listed whole above), then those it does not, each with why."""
        count = len(self.matched)
        of = f"{count} of {count + self.missed} known device(s)"
        shown = ", ".join(self.matched[:MATCHED_SHOWN]) or "none"
        if count > MATCHED_SHOWN:
            shown += f" and {count - MATCHED_SHOWN} more"
        lines = [f"selector {self.selector!r} matches {of}: {shown}"]
        if self.missed:
            lines.append(f"not matched ({self.missed}):")
            lines.extend(f"  {client}: {reason}" for client, reason in self.why)
            if self.missed > len(self.why):
                lines.append(f"  and {self.missed - len(self.why)} more")
        return lines


def select(selector: Selector, clients: Iterable[str], facts: Mapping[str, Facts]) -> Selection:
    """Which of `clients` the selector matches; for the others, why (the first `SHOWN`)."""
    found = Selection(selector.text)
    empty: Facts = {}
    for client in sorted(clients):
        device = facts.get(client, empty)
        if selector.matches(device):
            found.matched.append(client)
            continue
        found.missed += 1
        if len(found.why) < SHOWN:  # the words for the first few only
            found.why.append((client, selector.why_not(device) or ""))
    return found


def selection(job: Job, devices: ScopeDevices) -> Selection | None:
    """The job's selector over the scope's known devices (None: it has none)."""
    selector = job.spec.targets.parsed_selector
    if selector is None:
        return None
    return select(selector, devices.clients, devices.facts)


def unreported(selector: Selector, devices: ScopeDevices) -> list[str]:
    """The reported facts (`kura.*`) the selector reads that no device has reported yet."""
    wanted = [key for key in selector.keys if key.startswith(FACT_PREFIX)]
    if not wanted:
        return []
    seen: set[str] = set()
    for client in devices.clients:
        seen.update(k for k in wanted if k in devices.facts_of(client))
        if len(seen) == len(wanted):
            return []
    return [k for k in wanted if k not in seen]


def unreported_warning(declared: Declared[Job], devices: ScopeDevices) -> Diagnostic | None:
    """A warning when the job's selector reads facts no device of its scope reported yet:
    it would choose by what is unknown (as an unknown tag, it is not an error: the devices
    report them when they connect)."""
    selector = declared.manifest.spec.targets.parsed_selector
    if selector is None:
        return None
    missing = unreported(selector, devices)
    if not missing:
        return None
    origin = declared.origin
    return Diagnostic(
        origin.file,
        origin.line("spec", "targets", "selector"),
        f"selector {selector.text!r}: no device of scope '{declared.scope}' has reported"
        f" {', '.join(missing)} yet; devices report it in their BIRTH when they connect, and"
        " the first execution freezes the targets as known then",
        Severity.WARNING,
    )
