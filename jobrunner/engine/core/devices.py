"""The engine's view of the device registry: who is there, what they can do, what they said.

The registry (state layer) records; this adapter turns lifecycle facts into registry records
and answers the two questions dispatch asks: is the device known to be away, and which Kura
applications does it list; a reply's timeout reads its whole record, to say what is known.
"""

from __future__ import annotations

from datetime import UTC, datetime

from jobrunner.device.lifecycle import DeviceFacts
from jobrunner.state.registry import DeviceRecord, DeviceRegistry, DeviceStatus

_AWAY = (DeviceStatus.DISCONNECTED, DeviceStatus.MISSING)


def away(record: DeviceRecord | None, trusted_after: float) -> str | None:
    """`Devices.absence` of a device whose record is `record`."""
    if record is None or record.seen is None or record.status not in _AWAY:
        return None  # the common case first: a device that answers is not away
    if record.seen < trusted_after:
        return None
    seen = f" at {datetime.fromtimestamp(record.seen, UTC):%Y-%m-%d %H:%M:%S} UTC"
    if record.status is DeviceStatus.DISCONNECTED:
        return f"device disconnected{seen}"
    return f"device lost its connection{seen} (LWT)"


class Devices:
    def __init__(self, registry: DeviceRegistry) -> None:
        self.registry = registry

    def absence(self, scope: str, client_id: str, trusted_after: float) -> str | None:
        """Why the device is known to be away (its last word was a DC or an LWT), else None.

        Only what was heard after `trusted_after` counts: a device may have come back with a
        BIRTH while the runner was not listening (before it started, or during a broker
        outage). A device not known to be away is tried.
        """
        return away(self.registry.scope(scope).get(client_id), trusted_after)

    def record(self, scope: str, client_id: str) -> DeviceRecord | None:
        """All the registry knows of the device (None: not even declared)."""
        return self.registry.scope(scope).get(client_id)

    def applications(self, scope: str, client_id: str) -> tuple[str, ...] | None:
        record = self.registry.scope(scope).get(client_id)
        return None if record is None else record.application_ids

    def connected(self, scope: str, client_id: str, facts: DeviceFacts | None, at: float) -> None:
        registry = self.registry.scope(scope)
        if facts is None:
            registry.connected(client_id, at)
            return
        registry.connected(
            client_id,
            at,
            display_name=facts.display_name,
            model=facts.model,
            model_id=facts.model_id,
            firmware=facts.firmware_version,
            framework_version=facts.framework_version,
            application_ids=facts.application_ids,
        )

    def heard(self, scope: str, client_id: str, at: float) -> None:
        """A reply or a notification: the device is there (see `ScopeRegistry.heard`)."""
        self.registry.scope(scope).heard(client_id, at)

    def disconnected(self, scope: str, client_id: str, reason: str, at: float) -> None:
        registry = self.registry.scope(scope)
        if reason == "LWT":
            registry.missing(client_id, at)
        else:
            registry.disconnected(client_id, at)

    def flush(self) -> None:
        self.registry.flush()
