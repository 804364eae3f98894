"""Configuration snapshots and the reading back of what a step wrote (DESIGN §11). Pure.

    CONF-V1 EXEC snapshot           -> taken_snapshot: the new snapshot's id
    CONF-V1 GET snapshots/{id}      -> read_snapshot: its configurations, or GONE
    CONF-V1 EXEC rollback/{id}      -> answered 200 at once; Kura restores a second later
    CONF-V1 GET configurations/{pid} -> differences: what the device holds that is not wanted

Kura answers a rollback 200 before it runs it, and only logs a rollback that fails (to a
snapshot it no longer keeps, too): what it restored is known only by reading it back. It
keeps `kura.snapshots.count` snapshots (10 by default): an older one is gone, and reading
it answers 500 "Configuration snapshot ... was not found.".
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from typing import Final, Literal

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from jobrunner.device.model import Request
from jobrunner.device.operations.base import device_reason, response_code
from jobrunner.device.operations.readings import DeviceProperty, read_configurations, same_value
from jobrunner.device.payload import KuraPayload

Wanted = Mapping[str, Mapping[str, tuple[str, tuple[str, ...]]]]
"""pid -> property name -> (Kura type, values as text): what a device should hold."""

GONE: Final = "gone"


def take(app_id: str) -> Request:
    return Request(app_id, "EXEC", ("snapshot",))


def read(app_id: str, snapshot_id: int) -> Request:
    return Request(app_id, "GET", ("snapshots", str(snapshot_id)))


def roll_back(app_id: str, snapshot_id: int) -> Request:
    return Request(app_id, "EXEC", ("rollback", str(snapshot_id)))


def read_configuration(app_id: str, pid: str) -> Request:
    return Request(app_id, "GET", ("configurations", pid))


def taken_snapshot(payload: KuraPayload) -> int | str:
    """The id an `EXEC snapshot` reply gives, or what is wrong with the reply."""
    code = response_code(payload)
    if code != 200:
        return f"device replied {code}: {device_reason(payload)}"
    ids = _snapshot_ids(payload.body)
    if not ids:
        return "the reply names no snapshot id (<esf:snapshot-ids>)"
    return ids[-1]


def _snapshot_ids(body: bytes | None) -> list[int]:
    if not body:
        return []
    try:
        root = fromstring(body)
    except (ET.ParseError, DefusedXmlException, ValueError):
        return []
    ids = []
    for element in root.iter():
        text = (element.text or "").strip()
        if element.tag.rsplit("}", 1)[-1].rsplit(":", 1)[-1] == "snapshotIds" and text.isdigit():
            ids.append(int(text))
    return ids


def read_snapshot(
    payload: KuraPayload,
) -> dict[str, dict[str, DeviceProperty]] | Literal["gone"] | str:
    """A `GET snapshots/{id}` reply: the snapshot's configurations, GONE when the device no
    longer keeps it, or what is wrong with the reply."""
    code = response_code(payload)
    if code == 200:
        found = read_configurations(payload)
        return "the snapshot's document cannot be read" if found is None else found
    reason = device_reason(payload)
    if code == 500 and "was not found" in reason:
        return GONE
    return f"device replied {code}: {reason}"


def differences(pid: str, wanted: Wanted, payload: KuraPayload) -> list[str] | str:
    """`pid.name: wanted X, the device holds Y` for each wanted property of `pid` that a
    `GET configurations/{pid}` reply does not hold; what is wrong with the reply instead.

    A Password is not compared: Kura answers it encrypted."""
    found = read_configurations(payload)
    if found is None:
        code = response_code(payload)
        why = device_reason(payload) if code != 200 else "its document cannot be read"
        return f"GET configurations/{pid}: device replied {code}: {why}"
    held = found.get(pid)
    if held is None:
        return [f"{pid}: the device has no such component"]
    different = []
    for name, (kind, values) in wanted.get(pid, {}).items():
        if kind == "Password":
            continue
        prop = held.get(name)
        if prop is None:
            different.append(f"{pid}.{name}: wanted {_shown(values)}, the device has no value")
        elif not same_value(kind, values, prop.values):
            different.append(f"{pid}.{name}: wanted {_shown(values)}, the device holds {prop.text}")
    return different


def held_values(
    snapshot: Mapping[str, Mapping[str, DeviceProperty]], written: Mapping[str, Iterable[str]]
) -> dict[str, dict[str, tuple[str, tuple[str, ...]]]]:
    """What the device should hold again after a rollback: the snapshot's value of each
    property the steps wrote (a property the snapshot lacks is not checked)."""
    wanted: dict[str, dict[str, tuple[str, tuple[str, ...]]]] = {}
    for pid, names in written.items():
        kept = snapshot.get(pid, {})
        for name in names:
            prop = kept.get(name)
            if prop is not None and not prop.encrypted:
                wanted.setdefault(pid, {})[name] = (prop.type, prop.values)
    return wanted


def _shown(values: tuple[str, ...]) -> str:
    return values[0] if len(values) == 1 else "[" + ", ".join(values) + "]"
