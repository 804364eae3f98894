"""Short names for what a simulated device is asked to do: for faults and for observation.

A request is named by its app, method and first resources, e.g. DEPLOY-V2 EXEC/stop/42 is
`bundle-stop`. Fault specs may also name a group: `*` (everything), `steps` (the operations
a job step sends), `keystore` (the KEYS-V1 writes), `certificate` (CERT-V1 install/revoke).
"""

from __future__ import annotations

from collections.abc import Sequence

# (app id, method, first resource) -> operation
_NAMES: dict[tuple[str, str, str], str] = {
    ("CMD-V1", "EXEC", "command"): "command",
    ("CONF-V1", "PUT", "configurations"): "configuration",
    ("CONF-V1", "GET", "configurations"): "configuration-get",
    ("CONF-V1", "GET", "snapshots"): "snapshots",
    ("CONF-V1", "EXEC", "snapshot"): "snapshot",
    ("CONF-V1", "EXEC", "rollback"): "rollback",
    ("DEPLOY-V2", "EXEC", "start"): "bundle-start",
    ("DEPLOY-V2", "EXEC", "stop"): "bundle-stop",
    ("DEPLOY-V2", "GET", "bundles"): "bundles",
    ("DEPLOY-V2", "GET", "packages"): "packages",
    ("DEPLOY-V2", "EXEC", "download"): "download",
    ("DEPLOY-V2", "GET", "download"): "download-status",
    ("DEPLOY-V2", "DEL", "download"): "download-cancel",
    ("DEPLOY-V2", "EXEC", "install"): "install",
    ("DEPLOY-V2", "GET", "install"): "install-status",
    ("DEPLOY-V2", "EXEC", "uninstall"): "uninstall",
    ("ASSET-V1", "EXEC", "write"): "asset-write",
    ("ASSET-V1", "EXEC", "read"): "asset-read",
    ("ASSET-V1", "GET", "assets"): "assets",
    ("KEYS-V1", "GET", "keystores"): "keystores",
    ("CERT-V1", "POST", "certificates"): "certificate-install",
    ("CERT-V1", "DEL", "certificates"): "certificate-revoke",
    ("ANSIBLE-V1", "SUBMIT", ""): "activity",
}
_KEYSTORE_WRITES = {
    ("POST", "certificate"): "keystore-certificate",
    ("POST", "keypair"): "keystore-keypair",
}

OPERATIONS: tuple[str, ...] = (
    *sorted(set(_NAMES.values())),
    "keystore-certificate",
    "keystore-keypair",
    "keystore-delete",
    "other",
)
"""Every operation name, `other` being anything the table does not know."""

ASYNC_OPERATIONS = frozenset({"download", "install", "uninstall", "activity"})
"""Operations whose failure a device reports in a notification after accepting them."""

STEP_OPERATIONS = frozenset(
    {
        "command",
        "configuration",
        "snapshot",
        "rollback",
        "bundle-start",
        "bundle-stop",
        "download",
        "install",
        "uninstall",
        "asset-write",
        "keystore-certificate",
        "keystore-keypair",
        "keystore-delete",
        "certificate-install",
        "certificate-revoke",
        "activity",
    }
)
"""What the job step definitions send (the runner's reads are left out)."""

GROUPS: dict[str, frozenset[str]] = {
    "*": frozenset(OPERATIONS),
    "steps": STEP_OPERATIONS,
    "keystore": frozenset({"keystore-certificate", "keystore-keypair", "keystore-delete"}),
    "certificate": frozenset({"certificate-install", "certificate-revoke"}),
}


def operation_name(app_id: str, method: str, resources: Sequence[str]) -> str:
    """The operation a request asks for; `other` when it is none the simulator knows."""
    first = resources[0] if resources else ""
    name = _NAMES.get((app_id, method, first))
    if name is not None:
        return name
    if app_id == "KEYS-V1" and len(resources) >= 2 and resources[0] == "keystores":
        if method == "DEL" and resources[1] == "entries":
            return "keystore-delete"
        if method == "GET":
            return "keystores"
        if method == "POST" and len(resources) == 3:
            return _KEYSTORE_WRITES.get((method, resources[2]), "other")
    return "other"


def expand(name: str) -> frozenset[str]:
    """The operations a name stands for: itself, or the members of a group.

    ValueError (listing the valid names) when it is neither.
    """
    if name in GROUPS:
        return GROUPS[name]
    if name in OPERATIONS:
        return frozenset({name})
    valid = ", ".join([*GROUPS, *OPERATIONS])
    raise ValueError(f"unknown operation {name!r}; use one of: {valid}")
