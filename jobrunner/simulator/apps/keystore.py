"""KEYS-V1: keystore entries, as Kura's KeystoreServiceRequestHandler (kura-protocol.md §4.7).

Bodies are flat JSON. A resource path the handler does not know is 400 (Kura's keystore
handler never answers 404); a POST or DEL without a body, or without the fields the
request needs (`keystoreServicePid`, `alias`, and `certificate`, or `algorithm`, `size`
(≠ 0), `signatureAlgorithm`, `attributes`), is 400. A keystore the device does not have,
or a certificate that is not PEM, fails inside Kura with an unexpected exception: 500
without a message.
"""

from __future__ import annotations

import hashlib
import time
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
from jobrunner.simulator.catalog import KeyEntry

APP_ID = "KEYS-V1"
_YEAR_MS = 365 * 24 * 3600 * 1000


def _entry_json(keystore: str, entry: KeyEntry, with_certificate: bool) -> dict[str, Any]:
    document: dict[str, Any] = {"keystoreServicePid": keystore, "alias": entry.alias}
    if entry.type == "TRUSTED_CERTIFICATE":
        start = 1_767_225_600_000  # 2026-01-01: a fixed validity keeps replies reproducible
        document.update(
            subjectDN=entry.subject,
            issuer=entry.subject,
            startDate=start,
            expirationDate=start + _YEAR_MS,
            algorithm=entry.algorithm,
            size=entry.size,
        )
        if with_certificate and entry.certificate:
            document["certificate"] = entry.certificate
    else:
        document.update(algorithm=entry.algorithm, size=entry.size)
        if with_certificate:
            document["certificateChain"] = [_self_signed(entry)]
    document["type"] = entry.type
    return document


def _self_signed(entry: KeyEntry) -> str:
    digest = hashlib.sha256(f"{entry.alias}/{entry.subject}".encode()).hexdigest().upper()
    return f"-----BEGIN CERTIFICATE-----\nMIIB{digest[:60]}\n-----END CERTIFICATE-----"


def _fields(call: Call, *names: str) -> dict[str, Any]:
    document = json_body(call.request.payload)
    if not isinstance(document, dict):
        raise KuraError(400, "expected a JSON object")
    missing = [n for n in names if document.get(n) is None]
    if missing:
        raise KuraError(400, f"missing {', '.join(missing)}")
    return document


def _keystore(call: Call, pid: str) -> None:
    if pid not in call.device.state.keystores:
        raise KuraError(500)  # Kura: NullPointerException on the missing keystore service


def get(call: Call) -> Reply:
    """GET keystores, keystores/entries[/entry]."""
    path = call.request.resources
    state = call.device.state
    if path == ("keystores",):
        return json_reply(
            [
                {
                    "keystoreServicePid": pid,
                    "type": state.inventory.keystore_types.get(pid, "PKCS12"),
                    "size": len(entries),
                }
                for pid, entries in state.keystores.items()
            ]
        )
    if path == ("keystores", "entries"):
        body = call.request.payload.body
        query: dict[str, Any] = _fields(call) if body else {}
        pid, alias = query.get("keystoreServicePid"), query.get("alias")
        if pid is not None and pid not in state.keystores:
            raise KuraError(500)  # Kura: WebApplicationException(404) escapes the handler
        return json_reply(
            [
                _entry_json(keystore, entry, with_certificate=bool(pid or alias))
                for keystore, entries in state.keystores.items()
                if pid is None or keystore == pid
                for entry in entries.values()
                if alias is None or entry.alias == alias
            ]
        )
    if path == ("keystores", "entries", "entry"):
        query = _fields(call, "keystoreServicePid", "alias")
        entry = state.keystores.get(query["keystoreServicePid"], {}).get(query["alias"])
        if entry is None:
            raise KuraError(500)
        return json_reply(_entry_json(query["keystoreServicePid"], entry, with_certificate=True))
    raise KuraError(400, "Resource not found")


def post(call: Call) -> Reply:
    """POST keystores/entries/certificate|keypair|csr."""
    path = call.request.resources
    if len(path) != 3 or path[:2] != ("keystores", "entries") or not call.request.payload.body:
        raise KuraError(400, "Resource not found")
    state = call.device.state
    if path[2] == "certificate":
        request = _fields(call, "keystoreServicePid", "alias", "certificate")
        _keystore(call, request["keystoreServicePid"])
        if not is_pem(request["certificate"]):
            raise KuraError(500)  # Kura: the certificate factory throws
        state.set_key_entry(
            request["keystoreServicePid"],
            KeyEntry(
                str(request["alias"]),
                "TRUSTED_CERTIFICATE",
                "SHA256withRSA",
                2048,
                f"CN={request['alias']}",
                str(request["certificate"]),
            ),
        )
        return Reply()
    if path[2] == "keypair":
        request = _fields(
            call,
            "keystoreServicePid",
            "alias",
            "algorithm",
            "size",
            "signatureAlgorithm",
            "attributes",
        )
        size = request["size"]
        if not isinstance(size, int) or isinstance(size, bool) or size == 0:
            raise KuraError(400, "size must be a non-zero integer")
        _keystore(call, request["keystoreServicePid"])
        state.set_key_entry(
            request["keystoreServicePid"],
            KeyEntry(
                str(request["alias"]),
                "PRIVATE_KEY",
                str(request["algorithm"]),
                size,
                str(request["attributes"]),
                signature_algorithm=str(request["signatureAlgorithm"]),
            ),
        )
        return Reply()
    if path[2] == "csr":
        request = _fields(call, "keystoreServicePid", "alias", "signatureAlgorithm", "attributes")
        entry = state.keystores.get(request["keystoreServicePid"], {}).get(request["alias"])
        if entry is None or entry.type != "PRIVATE_KEY":
            raise KuraError(500)
        digest = hashlib.sha256(f"{entry.alias}/{request['attributes']}/{time.time()}".encode())
        return json_reply(
            "-----BEGIN CERTIFICATE REQUEST-----\nMIIC"
            + digest.hexdigest().upper()
            + "\n-----END CERTIFICATE REQUEST-----"
        )
    raise KuraError(400, "Resource not found")


def delete(call: Call) -> Reply:
    """DEL keystores/entries."""
    path = call.request.resources
    if path != ("keystores", "entries") or not call.request.payload.body:
        raise KuraError(400, "Resource not found")
    request = _fields(call, "keystoreServicePid", "alias")
    _keystore(call, request["keystoreServicePid"])
    call.device.state.delete_key_entry(request["keystoreServicePid"], str(request["alias"]))
    return Reply()


HANDLERS: dict[str, Handler] = {"GET": get, "POST": post, "DEL": delete}
