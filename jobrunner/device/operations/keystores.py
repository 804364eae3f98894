"""Keystore operations: KEYS-V1 with flat JSON bodies (kura-protocol.md §4.7).

Keystore Certificate Create  POST/keystores/entries/certificate
Keystore Keypair Create      POST/keystores/entries/keypair
Keystore Item Delete         DEL/keystores/entries
"""

from __future__ import annotations

from typing import Any, ClassVar

from jobrunner.device.model import Request
from jobrunner.device.operations.base import Operation, Outcome, P, json_body
from jobrunner.device.payload import KuraPayload
from jobrunner.manifests.steps import (
    KeystoreCertificateCreate,
    KeystoreCertificateCreateStep,
    KeystoreItemDelete,
    KeystoreItemDeleteStep,
    KeystoreKeypairCreate,
    KeystoreKeypairCreateStep,
)

_HINTS = {
    400: "the keystore service PID or another required field was refused",
    404: "no entry with this alias",
    # Kura answers an unknown keystore service PID with a 500 and no message.
    500: "is keystoreId the PID of a keystore service of the device?",
}


class _KeystoreOperation(Operation[P]):
    """The keystore application and what its failure codes mean."""

    failure_hints: ClassVar[dict[int, str]] = _HINTS

    @property
    def app_id(self) -> str:
        return self.settings.keystore_app


class CreateKeystoreCertificate(_KeystoreOperation[KeystoreCertificateCreate]):
    step = KeystoreCertificateCreateStep

    def request(self, operation_id: int = 0) -> Request:
        p = self.properties
        body = {"keystoreServicePid": p.keystore_id, "alias": p.alias, "certificate": p.certificate}
        return Request(
            self.app_id, "POST", ("keystores", "entries", "certificate"), body=json_body(body)
        )

    def succeeded(self, payload: KuraPayload) -> Outcome:
        p = self.properties
        return Outcome.ok(f"certificate {p.alias!r} stored in keystore {p.keystore_id}")


class CreateKeystoreKeypair(_KeystoreOperation[KeystoreKeypairCreate]):
    step = KeystoreKeypairCreateStep

    def request(self, operation_id: int = 0) -> Request:
        p = self.properties
        body: dict[str, Any] = {
            "keystoreServicePid": p.keystore_id,
            "alias": p.alias,
            "algorithm": p.algorithm,
            "size": p.size,
            "signatureAlgorithm": p.signature_algorithm,
            "attributes": p.attributes,
        }
        return Request(
            self.app_id, "POST", ("keystores", "entries", "keypair"), body=json_body(body)
        )

    def succeeded(self, payload: KuraPayload) -> Outcome:
        p = self.properties
        return Outcome.ok(
            f"{p.algorithm} {p.size} key pair {p.alias!r} created in keystore {p.keystore_id}"
        )


class DeleteKeystoreItem(_KeystoreOperation[KeystoreItemDelete]):
    step = KeystoreItemDeleteStep

    def request(self, operation_id: int = 0) -> Request:
        body = {"keystoreServicePid": self.properties.keystore_id, "alias": self.properties.alias}
        return Request(self.app_id, "DEL", ("keystores", "entries"), body=json_body(body))

    def succeeded(self, payload: KuraPayload) -> Outcome:
        p = self.properties
        return Outcome.ok(f"entry {p.alias!r} deleted from keystore {p.keystore_id}")
