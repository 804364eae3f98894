"""The rules of a job's rollout that one document cannot check alone: wave names, where the
remainder goes, waves that name devices which are not targets, sizes larger than the targets
left, a window shorter than a step, zones the devices do not declare.

Errors refuse the job (as `validate` reports them, FILE:LINE); warnings say what would
surprise an operator and let the job through.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping

from jobrunner.manifests.declarations import Declared, DeclaredDevice, ManifestSet
from jobrunner.manifests.devicevalues import declared_targets
from jobrunner.manifests.fields import format_duration
from jobrunner.manifests.kinds import Job
from jobrunner.manifests.rollout import DEVICE_ZONE, Rollout


def check_rollout(
    declared: Declared[Job], result: ManifestSet, registry: Mapping[str, DeclaredDevice]
) -> bool:
    """Check the job's rollout against its targets and the registry; False on an error."""
    rollout = declared.manifest.spec.rollout
    if rollout is None:
        return True
    ok = _wave_names(declared, rollout, result)
    ok = _remainder_last(declared, rollout, result) and ok
    targets = _targets(declared.manifest, registry)
    ok = _waves_fit(declared, rollout, result, targets, registry) and ok
    ok = _window_fits(declared, rollout, result) and ok
    ok = _approved_waves(declared, rollout, result) and ok
    _warnings(declared, rollout, result, targets, registry)
    return ok


def _path(*rest: str | int) -> tuple[str | int, ...]:
    return ("spec", "rollout", *rest)


def _wave_names(declared: Declared[Job], rollout: Rollout, result: ManifestSet) -> bool:
    seen: dict[str, int] = {}
    ok = True
    for index, wave in enumerate(rollout.waves):
        if wave.name in seen:
            first = declared.origin.line(*_path("waves", seen[wave.name], "name"))
            result.error(
                declared.origin.file,
                declared.origin.line(*_path("waves", index, "name")),
                f"wave name '{wave.name}' is already used at line {first}; wave names are"
                " unique in a rollout",
            )
            ok = False
        seen.setdefault(wave.name, index)
    return ok


def _approved_waves(declared: Declared[Job], rollout: Rollout, result: ManifestSet) -> bool:
    """`approved` names waves of the rollout; one that asks for no approval is a warning."""
    names = [w.name for w in rollout.waves]
    ok = True
    for index, name in enumerate(rollout.approved):
        line = declared.origin.line(*_path("approved", index))
        if name not in names:
            close = difflib.get_close_matches(name, names, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            known = ", ".join(names) if names else "none"
            result.error(
                declared.origin.file,
                line,
                f"approved names wave '{name}', which the rollout does not have; {hint}"
                f"its waves: {known}",
            )
            ok = False
        elif not rollout.needs_approval(name):
            result.warning(
                declared.origin.file,
                line,
                f"wave '{name}' is approved but does not wait for an approval; add"
                " `approval: required` to it, or remove it from approved",
            )
    return ok


def _remainder_last(declared: Declared[Job], rollout: Rollout, result: ManifestSet) -> bool:
    last = len(rollout.waves) - 1
    for index, wave in enumerate(rollout.waves):
        if wave.is_remainder and index != last:
            result.error(
                declared.origin.file,
                declared.origin.line(*_path("waves", index)),
                f"wave '{wave.name}' has no devices, tags or size: it takes every target left,"
                " so it must be the last wave; move it to the end, or give it a selector",
            )
            return False
    return True


def _targets(job: Job, registry: Mapping[str, DeclaredDevice]) -> set[str]:
    """The job's targets as its first execution would resolve them now (from git alone; for
    a selector, every device whose labels let it match)."""
    return set(declared_targets(job, registry))


def _waves_fit(
    declared: Declared[Job],
    rollout: Rollout,
    result: ManifestSet,
    targets: set[str],
    registry: Mapping[str, DeclaredDevice],
) -> bool:
    """Device waves name targets; counts do not ask for more targets than are left."""
    ok = True
    left = set(targets)
    for index, wave in enumerate(rollout.waves):
        if wave.devices:
            for position, client_id in enumerate(wave.devices):
                if client_id not in targets:
                    result.error(
                        declared.origin.file,
                        declared.origin.line(*_path("waves", index, "devices", position)),
                        f"device '{client_id}' of wave '{wave.name}' is not a target of job"
                        f" '{declared.manifest.metadata.name}'; add it to spec.targets, or"
                        " remove it from the wave",
                    )
                    ok = False
            left -= set(wave.devices)
        elif wave.tags:
            wanted = set(wave.tags)
            left -= {c for c in left if c in registry and wanted & set(registry[c].tags)}
        elif isinstance(wave.size, int):
            if targets and wave.size > len(left):
                result.error(
                    declared.origin.file,
                    declared.origin.line(*_path("waves", index, "size")),
                    f"wave '{wave.name}' takes {wave.size} targets, but only {len(left)} are"
                    f" left after the waves before it ({len(targets)} target(s) in all);"
                    " give a smaller count, or a share such as 10%",
                )
                ok = False
            left = set(sorted(left)[wave.size :])
        elif wave.size is not None:
            share = float(wave.size.rstrip("%"))
            left = set(sorted(left)[math.ceil(len(left) * share / 100 - 1e-9) :])
    return ok


def _window_fits(declared: Declared[Job], rollout: Rollout, result: ManifestSet) -> bool:
    window = rollout.window
    if window is None:
        return True
    steps = declared.manifest.spec.steps
    longest = max(steps, key=lambda s: s.timeout)
    if window.duration >= longest.timeout:
        return True
    result.error(
        declared.origin.file,
        declared.origin.line(*_path("window", "duration")),
        f"the window lasts {format_duration(window.duration)}, less than the timeout of step"
        f" '{longest.name}' ({format_duration(longest.timeout)}): a target started at its"
        " end could not get its reply inside it; make the window longer",
    )
    return False


def _warnings(
    declared: Declared[Job],
    rollout: Rollout,
    result: ManifestSet,
    targets: set[str],
    registry: Mapping[str, DeclaredDevice],
) -> None:
    origin = declared.origin
    if not rollout.waves:
        for key in ("successThreshold", "soak"):
            if key in _written(rollout):
                result.warning(
                    origin.file,
                    origin.line(*_path(key)),
                    f"{key} gates waves, and this rollout has none: only its rate, window"
                    " and abort rule apply",
                )
    for index, wave in enumerate(rollout.waves):
        if wave.tags and targets:
            wanted = set(wave.tags)
            if not any(c in registry and wanted & set(registry[c].tags) for c in targets):
                result.warning(
                    origin.file,
                    origin.line(*_path("waves", index, "tags")),
                    f"wave '{wave.name}': no target carries tag(s) {', '.join(wave.tags)};"
                    " the wave is empty and passes at once",
                )
    window = rollout.window
    if window is not None and window.timezone == DEVICE_ZONE:
        without = sorted(c for c in targets if c not in registry or not registry[c].timezone)
        if without:
            result.warning(
                origin.file,
                origin.line(*_path("window", "timezone")),
                f"{len(without)} target(s) have no timezone in their DeviceList"
                f" ({', '.join(without[:5])}{', ...' if len(without) > 5 else ''}):"
                " their window is taken in UTC",
            )
    ramp = rollout.ramp
    if (
        ramp is not None
        and rollout.max_per_minute is not None
        and ramp.base > rollout.max_per_minute
    ):
        result.warning(
            origin.file,
            origin.line(*_path("ramp", "base")),
            f"the ramp starts at {ramp.base} a minute, above maxPerMinute"
            f" ({rollout.max_per_minute}): it never ramps",
        )
    rule = rollout.abort
    if (
        rule is not None
        and rule.failure_threshold is not None
        and targets
        and rule.min_finished > len(targets)
    ):
        result.warning(
            origin.file,
            origin.line(*_path("abort", "minFinished")),
            f"abort.minFinished is {rule.min_finished}, more than the {len(targets)} target(s):"
            " the abort rule never decides",
        )


def _written(rollout: Rollout) -> set[str]:
    """The keys written under spec.rollout, as written (a default is not written)."""
    return {_camel(name) for name in rollout.model_fields_set}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)
