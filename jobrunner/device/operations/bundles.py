"""Bundle Start / Bundle Stop: `DEPLOY-V2 EXEC/start/{bundleId}` and `EXEC/stop/{bundleId}`
(kura-protocol.md §4.3): no metrics, no body; 200 is done."""

from __future__ import annotations

from typing import ClassVar

from jobrunner.device.model import Request
from jobrunner.device.operations.base import Operation, Outcome
from jobrunner.device.payload import KuraPayload
from jobrunner.manifests.steps import BundleProperties, BundleStartStep, BundleStopStep

_HINT = "no bundle with this id on the device, or OSGi refused to {verb} it"


class _BundleOperation(Operation[BundleProperties]):
    verb: ClassVar[str]
    done: ClassVar[str]

    @property
    def app_id(self) -> str:
        return self.settings.deploy_app

    @property
    def failure_hints(self) -> dict[int, str]:  # type: ignore[override]
        hint = _HINT.format(verb=self.verb)
        return {400: hint, 404: hint}

    def request(self, operation_id: int = 0) -> Request:
        return Request(self.app_id, "EXEC", (self.verb, str(self.properties.bundle_id)))

    def succeeded(self, payload: KuraPayload) -> Outcome:
        return Outcome.ok(f"bundle {self.properties.bundle_id} {self.done}")


class StartBundle(_BundleOperation):
    step = BundleStartStep
    verb: ClassVar[str] = "start"
    done: ClassVar[str] = "started"


class StopBundle(_BundleOperation):
    step = BundleStopStep
    verb: ClassVar[str] = "stop"
    done: ClassVar[str] = "stopped"
