"""CONF-V1 snapshots: `GET snapshots[/{id}]`, `EXEC snapshot`, `EXEC rollback[/{id}]`, as
Kura's CloudConfigurationHandler and ConfigurationServiceImpl do them.

- A snapshot id is the time of day in epoch milliseconds, one more than the newest when
  the clock has not moved on. Every device starts with snapshot 0 (its first
  configuration, which Kura never deletes).
- Kura keeps `kura.snapshots.count` = 10 snapshots: after each new one, the oldest go
  until 10 are left, snapshot 0 never (it counts among the 10).
- `EXEC snapshot` answers `<esf:snapshot-ids>` with the new id; `GET snapshots` lists the
  kept ids (oldest first) the same way; `GET snapshots/{id}` is the esf:configurations
  document of that snapshot, and for an id that is gone Kura's
  CONFIGURATION_SNAPSHOT_NOT_FOUND: a 500 "Configuration snapshot FILE was not found."
  (a non-numeric id: a 500 without a message, Kura's NumberFormatException).
- `EXEC rollback[/{id}]` is answered 200 at once (400 for a non-numeric id) and runs
  `Timing.config_apply_seconds` later: the components of the snapshot are restored and a
  copy of it is saved as a new snapshot. Without an id it is the second newest snapshot.
  A rollback to a snapshot that is gone fails then, and Kura only logs it: the reply said
  200 already. Only a read (`GET snapshots`, `GET configurations`) tells.
- Faults: `snapshot_gone` (a snapshot is gone as soon as its id is answered) and
  `rollback_fails` (the rollback restores nothing), see `jobrunner.simulator.faults`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from xml.sax.saxutils import escape

from jobrunner.simulator.apps import configuration
from jobrunner.simulator.apps.base import Call, KuraError, Process, Reply
from jobrunner.simulator.catalog import Component
from jobrunner.simulator.state import DeviceState

KEPT = 10
"""Kura's `kura.snapshots.count` default."""
FOLDER = "/opt/eclipse/kura/user/snapshots"
"""Kura's default `kura.snapshots` folder, named in its not-found message."""
_IDS_HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<esf:snapshot-ids xmlns:esf="http://eurotech.com/esf/2.0"'
    ' xmlns:ocd="http://www.osgi.org/xmlns/metatype/v1.2.0">'
)


def not_found(snapshot_id: int) -> str:
    """Kura's message for a snapshot that is gone (CONFIGURATION_SNAPSHOT_NOT_FOUND)."""
    return f"Configuration snapshot {FOLDER}/snapshot_{snapshot_id}.xml was not found."


def ids_document(ids: Iterable[int]) -> bytes:
    """`<esf:snapshot-ids>` with one `<esf:snapshotIds>` per id, as Kura marshals it."""
    items = "".join(f"<esf:snapshotIds>{escape(str(i))}</esf:snapshotIds>" for i in ids)
    return f"{_IDS_HEAD}{items}</esf:snapshot-ids>".encode()


def get(call: Call) -> Reply:
    """GET snapshots (the kept ids) or GET snapshots/{id} (that snapshot's document)."""
    resources = call.request.resources
    if len(resources) > 2:
        raise KuraError(400, None)
    kept = call.device.state.snapshots
    if len(resources) == 1:
        return Reply(body=ids_document(sorted(kept)))
    try:
        snapshot_id = int(resources[1])
    except ValueError:
        return Reply(500)  # Long.parseLong throws: Kura's catch-all, no message
    components = kept.get(snapshot_id)
    if components is None:
        raise KuraError(500, not_found(snapshot_id))
    return Reply(body=configuration.render(components.values()))


def execute(call: Call) -> Reply:
    """EXEC snapshot or EXEC rollback[/{id}]; another resource is 404, none is 400."""
    resources = call.request.resources
    if not resources:
        raise KuraError(400, None)
    if resources[0] == "snapshot":
        if len(resources) > 1:
            raise KuraError(400, None)
        return Reply(body=ids_document([take(call)]))
    if resources[0] == "rollback":
        if len(resources) > 2:
            raise KuraError(400, None)
        try:
            snapshot_id = int(resources[1]) if len(resources) == 2 else None
        except ValueError:
            raise KuraError(400, None) from None
        call.device.spawn(_rollback(call, snapshot_id), "configuration rollback")
        return Reply()
    raise KuraError(404, None)


def take(call: Call) -> int:
    """Take a snapshot of the current configuration; its id."""
    state = call.device.state
    snapshot_id = _save(state, state.components)
    if not call.device.keeps_snapshots:
        state.remove_snapshot(snapshot_id)  # the fault: gone by the time anyone asks
    return snapshot_id


def _save(state: DeviceState, components: Mapping[str, Component]) -> int:
    snapshot_id = max(int(time.time() * 1000), state.last_snapshot + 1)
    state.add_snapshot(snapshot_id, dict(components))
    for old in sorted(state.snapshots):
        if len(state.snapshots) <= KEPT:
            break
        if old != 0:  # Kura keeps the seeding snapshot
            state.remove_snapshot(old)
    return snapshot_id


def _rollback(call: Call, snapshot_id: int | None) -> Process:
    yield call.device.timing.config_apply_seconds
    state = call.device.state
    kept = sorted(state.snapshots)
    if snapshot_id is None:
        if len(kept) < 2:
            return  # Kura: "No Snapshot Available", logged
        snapshot_id = kept[-2]
    components = state.snapshots.get(snapshot_id)
    if components is None or not call.device.rolls_back:
        return  # Kura logs CONFIGURATION_SNAPSHOT_NOT_FOUND / the partial failure
    for component in components.values():
        if component.pid in state.components:
            state.set_component(component)
    _save(state, components)
