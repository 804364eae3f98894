"""The 13 step operations: step properties to a Kura request, replies and notifications to
an outcome. Pure translations (no I/O); see `base.Operation`.

    operation = operation_for_step(step)              # or operation_for(definition, properties)
    request = operation.request(operation_id)         # send with DeviceClient.send
    outcome = operation.reply(payload, operation_id)  # OK / FAILED / ACCEPTED (asynchronous)
    outcome = operation.notification(outcome.state, topic.resources, payload)
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from jobrunner.device.operations.activities import SubmitActivity
from jobrunner.device.operations.assets import WriteAssets
from jobrunner.device.operations.base import (
    DEFAULT_SETTINGS,
    AsyncState,
    Operation,
    OperationSettings,
    Outcome,
    OutcomeStatus,
    StatusQuery,
)
from jobrunner.device.operations.bundles import StartBundle, StopBundle
from jobrunner.device.operations.certificates import (
    InstallDeviceCertificate,
    RevokeDeviceCertificate,
)
from jobrunner.device.operations.commands import ExecuteCommand
from jobrunner.device.operations.configuration import PutConfiguration
from jobrunner.device.operations.keystores import (
    CreateKeystoreCertificate,
    CreateKeystoreKeypair,
    DeleteKeystoreItem,
)
from jobrunner.device.operations.packages import DownloadPackage, UninstallPackage
from jobrunner.errors import OperationError
from jobrunner.manifests.steps import StepBase

OPERATIONS: dict[str, type[Operation[Any]]] = {
    cls.definition: cls
    for cls in (
        SubmitActivity,
        WriteAssets,
        StartBundle,
        StopBundle,
        ExecuteCommand,
        PutConfiguration,
        InstallDeviceCertificate,
        RevokeDeviceCertificate,
        CreateKeystoreCertificate,
        DeleteKeystoreItem,
        CreateKeystoreKeypair,
        DownloadPackage,
        UninstallPackage,
    )
}
"""Step definition display name -> operation class."""


def operation_for(
    definition: str, properties: BaseModel, settings: OperationSettings = DEFAULT_SETTINGS
) -> Operation[Any]:
    """The operation of step definition `definition` with its typed `properties`."""
    kind = OPERATIONS.get(definition)
    if kind is None:
        raise OperationError(
            f"unknown step definition {definition!r}; known: {', '.join(sorted(OPERATIONS))}"
        )
    if not isinstance(properties, kind.properties_type):
        raise OperationError(
            f"{definition} takes {kind.properties_type.__name__} properties,"
            f" not {type(properties).__name__}"
        )
    return kind(properties, settings)


def operation_for_step(
    step: StepBase, settings: OperationSettings = DEFAULT_SETTINGS
) -> Operation[Any]:
    """The operation of a job's step (any member of `jobrunner.manifests.steps.Step`)."""
    definition = getattr(step, "definition", None)
    properties = getattr(step, "properties", None)
    if not isinstance(definition, str) or not isinstance(properties, BaseModel):
        raise OperationError(f"{type(step).__name__} is not a step with a definition")
    return operation_for(definition, properties, settings)


__all__ = [
    "DEFAULT_SETTINGS",
    "OPERATIONS",
    "AsyncState",
    "CreateKeystoreCertificate",
    "CreateKeystoreKeypair",
    "DeleteKeystoreItem",
    "DownloadPackage",
    "ExecuteCommand",
    "InstallDeviceCertificate",
    "Operation",
    "OperationError",
    "OperationSettings",
    "Outcome",
    "OutcomeStatus",
    "PutConfiguration",
    "RevokeDeviceCertificate",
    "StartBundle",
    "StatusQuery",
    "StopBundle",
    "SubmitActivity",
    "UninstallPackage",
    "WriteAssets",
    "operation_for",
    "operation_for_step",
]
