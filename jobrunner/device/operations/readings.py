"""What a device says it has: the replies of the reads (GETs) that change nothing.

    CONF-V1 GET configurations[/{pid}]  -> read_configurations: pid -> name -> DeviceProperty
    DEPLOY-V2 GET bundles               -> read_bundles: id -> DeviceBundle
    DEPLOY-V2 GET packages              -> packages.installed_packages: {(name, version)}

and whether a value a step would write is the one the device holds (`same_value`). Pure:
no I/O. A reply that is not a 200 or whose body cannot be read gives None, never an
exception: the caller says "could not be read" and goes on.

Kura marshals configurations as `esf:configurations` with namespaces declared, bundles
and packages without a namespace; element names are matched by their local part, so a
gateway that writes them either way is read.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from jobrunner.device.operations.base import response_code
from jobrunner.device.payload import KuraPayload

CONFIGURATION_READ = ("CONF-V1", "GET", "configurations")
BUNDLES_READ = ("DEPLOY-V2", "GET", "bundles")
PACKAGES_READ = ("DEPLOY-V2", "GET", "packages")


@dataclass(frozen=True, slots=True)
class DeviceProperty:
    """A configuration property as the device holds it."""

    name: str
    type: str
    values: tuple[str, ...]
    array: bool = False
    encrypted: bool = False

    @property
    def text(self) -> str:
        """The value as shown: one value as it is, an array as `[a, b]`."""
        if self.array or len(self.values) != 1:
            return "[" + ", ".join(self.values) + "]"
        return self.values[0]


@dataclass(frozen=True, slots=True)
class DeviceBundle:
    """An OSGi bundle as the device lists it."""

    id: int
    name: str
    version: str
    state: str


def _root(payload: KuraPayload | None) -> ET.Element | None:
    if payload is None or response_code(payload) != 200 or not payload.body:
        return None
    try:
        root: ET.Element = fromstring(payload.body)
    except (ET.ParseError, DefusedXmlException, ValueError):
        return None
    return root


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1].rsplit(":", 1)[-1]


def read_configurations(
    payload: KuraPayload | None,
) -> dict[str, dict[str, DeviceProperty]] | None:
    """pid -> property name -> property, of a GET configurations reply (a PID the device
    lacks is simply absent); None when the reply cannot be read."""
    root = _root(payload)
    if root is None or _local(root.tag) != "configurations":
        return None
    found: dict[str, dict[str, DeviceProperty]] = {}
    for configuration in root:
        if _local(configuration.tag) != "configuration" or not configuration.get("pid"):
            continue
        properties: dict[str, DeviceProperty] = {}
        for element in configuration.iter():
            if _local(element.tag) != "property" or not element.get("name"):
                continue
            name = element.get("name", "")
            values = tuple((value.text or "") for value in element if _local(value.tag) == "value")
            properties[name] = DeviceProperty(
                name,
                element.get("type") or "String",
                values,
                element.get("array") == "true",
                element.get("encrypted") == "true",
            )
        found[configuration.get("pid", "")] = properties
    return found


def read_bundles(payload: KuraPayload | None) -> dict[int, DeviceBundle] | None:
    """id -> bundle of a GET bundles reply; None when it cannot be read."""
    root = _root(payload)
    if root is None:
        return None
    found: dict[int, DeviceBundle] = {}
    for element in root.iter():
        if _local(element.tag) != "bundle":
            continue
        fields = {_local(child.tag): (child.text or "").strip() for child in element}
        if not fields.get("id", "").isdigit():
            continue
        bundle_id = int(fields["id"])
        found[bundle_id] = DeviceBundle(
            bundle_id, fields.get("name", ""), fields.get("version", ""), fields.get("state", "")
        )
    return found


_INTEGERS = frozenset({"Long", "Integer", "Short", "Byte"})
_DECIMALS = frozenset({"Double", "Float"})


def same_value(kind: str, wanted: Sequence[str], held: Sequence[str]) -> bool:
    """Whether the device's values `held` are the values `wanted` (both as Kura writes them
    as text): numbers compared as numbers (`300` is `300.0` for a Double), booleans without
    regard to case, text exactly."""
    if len(wanted) != len(held):
        return False
    return all(_same(kind, a, b) for a, b in zip(wanted, held, strict=True))


def _same(kind: str, wanted: str, held: str) -> bool:
    try:
        if kind in _INTEGERS:
            return int(wanted.strip()) == int(held.strip())
        if kind in _DECIMALS:
            a, b = float(wanted), float(held)
            return a == b or (math.isnan(a) and math.isnan(b))
    except ValueError:
        return wanted == held
    if kind == "Boolean":
        return wanted.strip().lower() == held.strip().lower()
    return wanted == held
