"""Manifests: the operator's declarations (Scope, DeviceList, Job, Policy), read and validated.

Public surface: `load_manifests()` returns a `ManifestSet` of validated declarations with
their origins, and the diagnostics (`FILE:LINE: message`) of everything that is wrong;
given a `parsed.ParsedFiles`, it takes the YAML of a file whose text it read before from it.
"""

from jobrunner.manifests.declarations import (
    Declared,
    DeclaredDevice,
    ManifestSet,
    Origin,
    RejectedDocument,
)
from jobrunner.manifests.diagnostics import Diagnostic, Severity
from jobrunner.manifests.kinds import Device, DeviceList, Job, JobSpec, Policy, Scope, Targets
from jobrunner.manifests.loader import is_manifest_file, load_manifests, manifest_files
from jobrunner.manifests.schedules import (
    CronSchedule,
    DeviceConnectSchedule,
    IntervalSchedule,
    Schedule,
)
from jobrunner.manifests.steps import CATALOGUE, Step, StepBase, StepMode

__all__ = [
    "CATALOGUE",
    "CronSchedule",
    "Declared",
    "DeclaredDevice",
    "Device",
    "DeviceConnectSchedule",
    "DeviceList",
    "Diagnostic",
    "IntervalSchedule",
    "Job",
    "JobSpec",
    "ManifestSet",
    "Origin",
    "Policy",
    "RejectedDocument",
    "Schedule",
    "Scope",
    "Severity",
    "Step",
    "StepBase",
    "StepMode",
    "Targets",
    "is_manifest_file",
    "load_manifests",
    "manifest_files",
]
