"""The public surface of each layer, pinned (as httpx does): a name added to or dropped from
an `__all__` is a decision, made here too."""

from __future__ import annotations

import importlib

import pytest

SURFACE = {
    "jobrunner.cron": {"FIELD_NAMES", "MAX_YEAR", "CronSyntaxError", "QuartzExpression",
                       "parse_quartz"},
    "jobrunner.engine": {
        "Action", "Daemon", "DeviceLink", "Engine", "EngineSettings", "FailureKind", "JobPlan",
        "MemoryLink", "Plan", "Runner", "RunnerConfig", "StepOperation", "Tag", "exit_code",
        "make_plan",
    },
    "jobrunner.state": {
        "DeviceRecord", "DeviceRegistry", "DeviceStatus", "ExecutionStatus", "ExecutionSummary",
        "FrozenJob", "JobPaths", "JobRecord", "JobState", "OwnerLock", "StateDir", "TargetState",
        "TargetStatus", "Trigger", "TriggerKind", "current_owner",
    },
    "jobrunner.simulator": {"DeviceProfile", "FaultPlan", "Fleet", "FleetConfig", "FleetError",
                            "Timing"},
    "jobrunner.manifests": {
        "CATALOGUE", "CronSchedule", "Declared", "DeclaredDevice", "Device",
        "DeviceConnectSchedule", "DeviceList", "Diagnostic", "IntervalSchedule", "Job", "JobSpec",
        "ManifestSet", "Origin", "Policy", "RejectedDocument", "Schedule", "Scope", "Severity",
        "Step", "StepBase", "StepMode", "Targets", "is_manifest_file", "load_manifests",
        "manifest_files",
    },
    "jobrunner.device": {
        "Anomaly", "AnomalyKind", "AsyncState", "BrokerSettings", "ClientBusyError",
        "ClientEvents", "ConnectError", "ConnectionStatus", "Device", "DeviceClient",
        "DeviceError", "DeviceFacts", "KuraPayload", "Lifecycle", "LifecycleEvent",
        "LifecycleTopic", "Metric", "MetricType", "NotConnectedError", "NotifyTopic",
        "OPERATIONS", "Operation", "OperationError", "OperationSettings", "Outcome",
        "OutcomeStatus", "PayloadCodec", "PayloadError", "Pending", "Request", "StatusQuery",
        "Tracked", "codec_named", "device_text", "operation_for", "operation_for_step",
        "read_lifecycle",
    },
}  # fmt: skip


@pytest.mark.parametrize("module", sorted(SURFACE))
def test_the_exported_members_are_the_ones_decided(module: str) -> None:
    imported = importlib.import_module(module)
    assert set(imported.__all__) == SURFACE[module]
    for name in imported.__all__:
        assert getattr(imported, name) is not None, f"{module}.{name} does not resolve"
