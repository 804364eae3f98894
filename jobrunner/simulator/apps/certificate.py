"""CERT-V1: device certificate management. No public contract exists (kura-protocol.md
§4.8); this is the one jobrunner chose, and its runner side speaks the same:

    Install  POST/certificates  {"certificate": PEM, "alias": …, "keystoreServicePid": …}
             (absent values omitted) -> 200; 400 when the certificate is missing or not PEM
    Revoke   DEL/certificates   {"alias": …} or {"certificate": PEM}
             -> 200; 404 when the device has no such certificate; 400 when neither is given
    List     GET/certificates   -> 200, JSON [{"alias", "keystoreServicePid", "certificate"}]

All synchronous. An install without an alias stores the certificate under `cert-` and the
first 12 hex digits of the SHA-256 of its text; installing an alias again replaces it.
"""

from __future__ import annotations

import hashlib
from typing import Any

from jobrunner.simulator.apps.base import (
    Call,
    Handler,
    KuraError,
    Reply,
    is_pem,
    json_body,
    json_reply,
)
from jobrunner.simulator.catalog import DeviceCertificate

APP_ID = "CERT-V1"


def _normalized(pem: str) -> str:
    return "".join(pem.split())


def _resource(call: Call) -> None:
    if call.request.resources != ("certificates",):
        raise KuraError(404, f"resource {'/'.join(call.request.resources)!r} not found")


def _object(call: Call) -> dict[str, Any]:
    document = json_body(call.request.payload)
    if not isinstance(document, dict):
        raise KuraError(400, "expected a JSON object")
    return document


def install(call: Call) -> Reply:
    """POST certificates."""
    _resource(call)
    request = _object(call)
    pem = request.get("certificate")
    if not is_pem(pem):
        raise KuraError(400, "certificate: expected PEM text (-----BEGIN CERTIFICATE----- …)")
    assert isinstance(pem, str)
    alias = request.get("alias")
    if alias is None:
        alias = "cert-" + hashlib.sha256(_normalized(pem).encode()).hexdigest()[:12]
    keystore = request.get("keystoreServicePid")
    call.device.state.set_certificate(
        DeviceCertificate(str(alias), pem, None if keystore is None else str(keystore))
    )
    return Reply()


def revoke(call: Call) -> Reply:
    """DEL certificates, by alias or by PEM."""
    _resource(call)
    request = _object(call)
    certificates = call.device.state.certificates
    if request.get("alias") is not None:
        alias = str(request["alias"])
        if alias not in certificates:
            raise KuraError(404, f"no certificate with alias {alias!r}")
    elif isinstance(request.get("certificate"), str):
        wanted = _normalized(request["certificate"])
        found = [a for a, c in certificates.items() if _normalized(c.certificate) == wanted]
        if not found:
            raise KuraError(404, "no such certificate")
        alias = found[0]
    else:
        raise KuraError(400, "give the alias or the certificate to revoke")
    call.device.state.remove_certificate(alias)
    return Reply()


def listing(call: Call) -> Reply:
    """GET certificates."""
    _resource(call)
    return json_reply(
        [
            {"alias": c.alias, "keystoreServicePid": c.keystore, "certificate": c.certificate}
            for c in call.device.state.certificates.values()
        ]
    )


HANDLERS: dict[str, Handler] = {"POST": install, "DEL": revoke, "GET": listing}
