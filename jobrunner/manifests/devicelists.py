"""A DeviceList read: the document and each device validated with the models (`DeviceList`,
`Device`), each device then held as a `DeclaredDevice`, a tenth of its model's size.

The devices are validated a thousand at a time and their models let go at once, so that
reading a DeviceList of 100,000 devices never holds 100,000 models at the same time. What is
wrong is said as for any document (each error's location is the one the whole `DeviceList`
model gives, `devices[INDEX]...`), and a DeviceList with an error declares no device.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from pydantic import TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from jobrunner.manifests.declarations import NOTHING, DeclaredDevice, Origin
from jobrunner.manifests.kinds import Device, DeviceList


@dataclass(frozen=True)
class ReadDeviceList:
    """A valid DeviceList document: its devices in file order, its scope resolved."""

    origin: Origin
    scope: str
    devices: list[DeclaredDevice]


@dataclass
class Shared:
    """Tag tuples and label mappings, each held once for every device that has the same
    (a fleet has a few tag groups and sites, not one per device)."""

    tags: dict[tuple[str, ...], tuple[str, ...]] = field(default_factory=dict)
    labels: dict[tuple[tuple[str, str], ...], Mapping[str, str]] = field(default_factory=dict)

    def lean(self, device: Device, origin: Origin, index: int) -> DeclaredDevice:
        """The device, as held once validated."""
        tags = tuple(device.tags)
        held = self.tags.get(tags)
        if held is None:  # each text once, whatever read it (YAML, or the texts kept)
            held = self.tags[tags] = tuple(sys.intern(tag) for tag in tags)
        labels = NOTHING
        if device.labels:
            key = tuple(device.labels.items())
            found = self.labels.get(key)
            labels = found if found is not None else MappingProxyType(device.labels)
            self.labels.setdefault(key, labels)
        return DeclaredDevice(
            # The one text of the client id that the registry and the targets hold too.
            sys.intern(device.client_id),
            held,
            origin,
            index,
            device.display_name,
            device.timezone,
            labels,
            device.vars or NOTHING,
        )


CHUNK = 1000
"""Devices validated at once: as quick as the whole list, while only that many models live."""

_DEVICES = TypeAdapter(list[Device])


def read_device_list(
    data: dict[str, Any], origin: Origin, default_scope: str, shared: Shared
) -> ReadDeviceList | list[ErrorDetails]:
    """The DeviceList document `data`, or every error of it (as `DeviceList` validation
    gives them). The entries of `data["devices"]` that validate are let go (set to None) as
    they are read: only those with an error are kept to be told of."""
    listed = data.get("devices")
    entries: list[Any] = listed if isinstance(listed, list) else []
    errors: list[ErrorDetails] = []
    scope = default_scope
    try:  # everything but the devices (or, when they are not a list, that too)
        header = DeviceList.model_validate({**data, "devices": []} if entries is listed else data)
        scope = header.metadata.scope or default_scope
    except ValidationError as error:
        errors.extend(error.errors(include_url=False))
    devices: list[DeclaredDevice] = []
    lean = shared.lean
    for start in range(0, len(entries), CHUNK):
        chunk = entries[start : start + CHUNK]
        try:
            models = _DEVICES.validate_python(chunk)
        except ValidationError as error:
            wrong = set()
            for detail in error.errors(include_url=False):
                index, *inside = detail["loc"]
                wrong.add(index)
                detail["loc"] = ("devices", start + int(index), *inside)
                errors.append(detail)
            entries[start : start + CHUNK] = [
                entry if index in wrong else None for index, entry in enumerate(chunk)
            ]
            continue
        entries[start : start + CHUNK] = [None] * len(chunk)
        if not errors:
            devices.extend(lean(model, origin, start + n) for n, model in enumerate(models))
    if errors:
        return errors
    return ReadDeviceList(origin, scope, devices)
