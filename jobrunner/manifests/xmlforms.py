"""The device cloud's XML forms of complex step inputs, read into the structured YAML form.

Job definitions ported from the device cloud carry a configuration or a set of asset values
as an XML string. Accepting those strings (as `xml:`) lets them port over unchanged; reading
them here, at validation time, means a broken document is reported with its manifest line,
and that the device operations see only one, structured, form.

Accepted forms:
- configurations: Kura's `esf:configurations` (`<esf:configuration pid=...>` with
  `esf:property` elements) and the device cloud's `<configurations>` (`<configuration>` with
  an `<id>` and `<property>` elements), with or without namespace prefixes;
- assets: the device cloud's `<deviceAssets>` (`<deviceAsset>` with `<channel>` elements of
  `name`, `valueType`, `value`).

XML is parsed with defusedxml: entity expansion and external references are refused.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from jobrunner.errors import XmlFormError

MAX_XML_CHARS = 1_048_576

_INTEGER_TYPES = {"Integer", "Long", "Short", "Byte"}
_FLOAT_TYPES = {"Double", "Float"}
_CONFIGURATION_TYPES = _INTEGER_TYPES | _FLOAT_TYPES | {"String", "Char", "Boolean", "Password"}
# The device cloud's valueType names -> Kura channel types (ASSET-V1).
_CHANNEL_TYPES = {
    "string": "STRING",
    "integer": "INTEGER",
    "int": "INTEGER",
    "long": "LONG",
    "float": "FLOAT",
    "double": "DOUBLE",
    "boolean": "BOOLEAN",
    "binary": "BYTE_ARRAY",
}


def _parse(text: str, what: str) -> ET.Element:
    if len(text) > MAX_XML_CHARS:
        raise XmlFormError(f"the {what} XML is longer than {MAX_XML_CHARS} characters")
    try:
        root: ET.Element = fromstring(text.strip().encode("utf-8"))
    except DefusedXmlException as error:
        raise XmlFormError(f"the {what} XML uses {type(error).__name__}; not accepted") from None
    except ET.ParseError as error:
        raise XmlFormError(f"the {what} XML does not parse: {error}") from None
    return root


def _local(tag: str) -> str:
    """`esf:configuration` and `{http://...}configuration` are both `configuration`."""
    return tag.rsplit("}", 1)[-1].rsplit(":", 1)[-1]


def _children(element: ET.Element, name: str) -> list[ET.Element]:
    return [child for child in element if _local(child.tag) == name]


def _child_text(element: ET.Element, name: str) -> str | None:
    found = _children(element, name)
    return (found[0].text or "").strip() if found else None


def configurations_from_xml(text: str) -> list[dict[str, Any]]:
    """The `configurations` list (YAML form) of an esf:configurations or configurations XML."""
    root = _parse(text, "configurations")
    if _local(root.tag) != "configurations":
        raise XmlFormError(
            f"the root element is <{root.tag}>; expected <esf:configurations> or <configurations>"
        )
    result = []
    for index, element in enumerate(_children(root, "configuration"), start=1):
        pid = element.get("pid") or _child_text(element, "id")
        if not pid:
            raise XmlFormError(f"configuration {index} has no pid attribute nor <id> element")
        properties: dict[str, Any] = {}
        for holder in _children(element, "properties"):
            for prop in _children(holder, "property"):
                name, value = _property(pid, prop)
                properties[name] = value
        result.append({"pid": pid, "properties": properties})
    if not result:
        raise XmlFormError("the configurations XML holds no <configuration> element")
    return result


def _property(pid: str, prop: ET.Element) -> tuple[str, dict[str, Any]]:
    name = prop.get("name")
    kind = prop.get("type")
    if not name:
        raise XmlFormError(f"a property of {pid} has no name attribute")
    if kind not in _CONFIGURATION_TYPES:
        raise XmlFormError(
            f"property {name!r} of {pid} has type {kind!r};"
            f" use one of {', '.join(sorted(_CONFIGURATION_TYPES))}"
        )
    values = [_typed(pid, name, kind, (v.text or "")) for v in _children(prop, "value")]
    is_array = (prop.get("array") or "false").lower() == "true"
    if not is_array and len(values) != 1:
        raise XmlFormError(f"property {name!r} of {pid} needs exactly one <value>")
    return name, {"type": kind, "value": values if is_array else values[0]}


def _typed(pid: str, name: str, kind: str, text: str) -> str | int | float | bool:
    try:
        if kind in _INTEGER_TYPES:
            return int(text.strip())
        if kind in _FLOAT_TYPES:
            return float(text.strip())
    except ValueError:
        raise XmlFormError(f"property {name!r} of {pid}: {text!r} is not a {kind}") from None
    if kind == "Boolean":
        if text.strip().lower() not in ("true", "false"):
            raise XmlFormError(f"property {name!r} of {pid}: {text!r} is not true or false")
        return text.strip().lower() == "true"
    return text


def assets_from_xml(text: str) -> list[dict[str, Any]]:
    """The `assets` list (YAML form) of the device cloud's deviceAssets XML."""
    root = _parse(text, "deviceAssets")
    if _local(root.tag) != "deviceAssets":
        raise XmlFormError(f"the root element is <{root.tag}>; expected <deviceAssets>")
    assets = []
    for index, asset in enumerate(_children(root, "deviceAsset"), start=1):
        name = _child_text(asset, "name")
        if not name:
            raise XmlFormError(f"deviceAsset {index} has no <name>")
        channels = []
        for holder in _children(asset, "channels"):
            for channel in _children(holder, "channel"):
                channels.append(_channel(name, channel))
        assets.append({"name": name, "channels": channels})
    if not assets:
        raise XmlFormError("the deviceAssets XML holds no <deviceAsset> element")
    return assets


def _channel(asset: str, channel: ET.Element) -> dict[str, Any]:
    name = _child_text(channel, "name")
    value_type = (_child_text(channel, "valueType") or "").lower()
    value = _child_text(channel, "value") or ""
    if not name:
        raise XmlFormError(f"a channel of asset {asset!r} has no <name>")
    kind = _CHANNEL_TYPES.get(value_type)
    if kind is None:
        raise XmlFormError(
            f"channel {name!r} of asset {asset!r} has valueType {value_type!r};"
            f" use one of {', '.join(_CHANNEL_TYPES)}"
        )
    converted: str | int | float | bool = value
    try:
        if kind in ("INTEGER", "LONG"):
            converted = int(value)
        elif kind in ("FLOAT", "DOUBLE"):
            converted = float(value)
        elif kind == "BOOLEAN":
            if value.lower() not in ("true", "false"):
                raise ValueError(value)
            converted = value.lower() == "true"
    except ValueError:
        raise XmlFormError(
            f"channel {name!r} of asset {asset!r}: {value!r} is not {kind}"
        ) from None
    return {"name": name, "type": kind, "value": converted}
