"""Device Certificate Management Install / Revoke — a contract of our own (no public one;
docs/wire-contracts.md), implemented the same way by the simulated fleet.

    Install  CERT-V1 POST/certificates
             {"certificate": PEM, "alias": ..., "keystoreServicePid": ...}
    Revoke   CERT-V1 DEL/certificates
             {"alias": ...} or {"certificate": PEM}, plus "keystoreServicePid" when given

Absent values are left out of the JSON body. 200: done; 404: no such certificate; 400:
malformed request. Synchronous. App id and resources come from `OperationSettings`.
"""

from __future__ import annotations

from typing import ClassVar

from jobrunner.device.model import Request
from jobrunner.device.operations.base import Operation, Outcome, P, json_body
from jobrunner.device.payload import KuraPayload
from jobrunner.manifests.steps import (
    DeviceCertificateInstall,
    DeviceCertificateInstallStep,
    DeviceCertificateRevoke,
    DeviceCertificateRevokeStep,
)

_HINTS = {400: "the device found the request malformed", 404: "no such certificate on the device"}


def _body(**values: str | None) -> bytes:
    return json_body({name: value for name, value in values.items() if value is not None})


class _CertificateOperation(Operation[P]):
    """The certificate application and what its failure codes mean."""

    failure_hints: ClassVar[dict[int, str]] = _HINTS

    @property
    def app_id(self) -> str:
        return self.settings.certificate_app


class InstallDeviceCertificate(_CertificateOperation[DeviceCertificateInstall]):
    step = DeviceCertificateInstallStep

    def request(self, operation_id: int = 0) -> Request:
        p = self.properties
        body = _body(certificate=p.certificate, alias=p.alias, keystoreServicePid=p.keystore_id)
        return Request(self.app_id, "POST", self.settings.certificate_resources, body=body)

    def succeeded(self, payload: KuraPayload) -> Outcome:
        alias = self.properties.alias
        return Outcome.ok("certificate installed" + (f" as {alias!r}" if alias else ""))


class RevokeDeviceCertificate(_CertificateOperation[DeviceCertificateRevoke]):
    step = DeviceCertificateRevokeStep

    def request(self, operation_id: int = 0) -> Request:
        p = self.properties
        body = _body(alias=p.alias, certificate=p.certificate, keystoreServicePid=p.keystore_id)
        return Request(self.app_id, "DEL", self.settings.certificate_resources, body=body)

    def succeeded(self, payload: KuraPayload) -> Outcome:
        alias = self.properties.alias
        return Outcome.ok(f"certificate {alias!r} revoked" if alias else "certificate revoked")
