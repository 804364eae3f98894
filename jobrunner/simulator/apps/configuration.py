"""CONF-V1: `GET` and `PUT configurations[/{pid}]`, as Kura's CloudConfigurationHandler.

The PUT body is read the way Kura's XML mapper reads it: without namespaces, by the literal
tag names `esf:configuration` and `esf:property` (so a document that binds the esf
namespace to another prefix, or to the default namespace, parses but configures nothing),
each child element of a configuration read as a list of properties, the last one winning.
An empty or unparsable body (or a value that does not parse as its type) is 400; 200 means
"parsed", and the new values apply `Timing.config_apply_seconds` later, as in Kura; a PID
the device does not have is skipped then (Kura only logs it), and so is a property a
`no_stick` fault holds. Snapshots and rollbacks (`GET snapshots`, `EXEC snapshot|rollback`)
are in `snapshots`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from types import MappingProxyType
from xml.dom.minidom import Element
from xml.parsers.expat import ExpatError
from xml.sax.saxutils import escape, quoteattr

from defusedxml import DefusedXmlException
from defusedxml.expatbuilder import parseString

from jobrunner.simulator.apps import snapshots
from jobrunner.simulator.apps.base import Call, Handler, KuraError, Process, Reply
from jobrunner.simulator.catalog import Component, Property

APP_ID = "CONF-V1"
TYPES = frozenset(
    {"String", "Long", "Double", "Float", "Integer", "Byte", "Char", "Boolean", "Short", "Password"}
)
_HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<esf:configurations xmlns:esf="http://eurotech.com/esf/2.0"'
    ' xmlns:ocd="http://www.osgi.org/xmlns/metatype/v1.2.0">'
)


def _resources(call: Call) -> str | None:
    resources = call.request.resources
    if not resources or len(resources) > 2:
        raise KuraError(400, f"expected configurations[/PID], found {'/'.join(resources)!r}")
    if resources[0] != "configurations":
        raise KuraError(404, f"resource {resources[0]!r} not found")
    return resources[1] if len(resources) == 2 else None


def get(call: Call) -> Reply:
    """GET configurations[/PID]: the esf:configurations XML of the device (GET snapshots:
    see `snapshots`)."""
    if call.request.resources[:1] == ("snapshots",):
        return snapshots.get(call)
    pid = _resources(call)
    components = call.device.state.components
    if pid is None:
        chosen = list(components.values())
    else:
        chosen = [components[pid]] if pid in components else []
    return Reply(body=render(chosen))


def render(chosen: Iterable[Component]) -> bytes:
    """The esf:configurations document of `chosen`, as Kura marshals it."""
    parts = [_HEAD]
    for component in chosen:
        parts.append(f"<esf:configuration pid={quoteattr(component.pid)}><esf:properties>")
        for prop in component.properties.values():
            parts.append(
                f"<esf:property name={quoteattr(prop.name)}"
                f' array="{str(prop.array).lower()}" encrypted="{str(prop.encrypted).lower()}"'
                f" type={quoteattr(prop.type)}>"
            )
            parts.extend(f"<esf:value>{escape(v)}</esf:value>" for v in prop.values)
            parts.append("</esf:property>")
        parts.append("</esf:properties></esf:configuration>")
    parts.append("</esf:configurations>")
    return "".join(parts).encode("utf-8")


def put(call: Call) -> Reply:
    """PUT configurations[/PID]: parse now, apply a moment later."""
    pid = _resources(call)
    body = call.request.payload.body
    if not body:
        raise KuraError(400, "the configuration body is empty")
    try:
        document = parseString(body.decode("utf-8"), namespaces=False)
        if document.documentElement is None:
            raise ValueError("no root element")
        parsed = list(_configurations(document.documentElement))
    except (ExpatError, DefusedXmlException, ValueError) as error:
        raise KuraError(400, f"the configuration body cannot be parsed: {error}") from None
    chosen = [c for c in parsed if pid is None or c.pid == pid]
    if chosen:
        call.device.spawn(_apply(call, chosen), "configuration apply")
    return Reply()


def _apply(call: Call, components: list[Component]) -> Process:
    yield call.device.timing.config_apply_seconds
    state = call.device.state
    for update in components:
        current = state.components.get(update.pid)
        if current is None:
            continue  # Kura logs "component not found" and applies nothing
        merged = dict(current.properties)
        merged.update(
            (name, prop) for name, prop in update.properties.items() if call.device.sticks(name)
        )
        state.set_component(Component(update.pid, MappingProxyType(merged)))


def _elements(parent: Element, tag: str | None = None) -> Iterator[Element]:
    for node in parent.childNodes:
        if isinstance(node, Element) and (tag is None or node.tagName == tag):
            yield node


def _configurations(root: Element) -> Iterator[Component]:
    for configuration in root.getElementsByTagName("esf:configuration"):
        pid = configuration.getAttribute("pid")
        if not pid:
            raise ValueError("an esf:configuration has no pid")
        properties: dict[str, Property] = {}
        for child in _elements(configuration):
            # Kura reads every child element as a property list; the last one wins.
            properties = dict(_properties(child))
        yield Component(pid, MappingProxyType(properties))


def _properties(parent: Element) -> Iterator[tuple[str, Property]]:
    for element in _elements(parent, "esf:property"):
        name = element.getAttribute("name")
        kind = element.getAttribute("type") or "String"
        if not name:
            raise ValueError("an esf:property has no name")
        if kind not in TYPES:
            raise ValueError(f"property {name!r} has unknown type {kind!r}")
        values = tuple(
            "".join(t.data for t in value.childNodes if t.nodeType == t.TEXT_NODE)
            for value in _elements(element, "esf:value")
        )
        for value in values:
            _check(name, kind, value)
        yield (
            name,
            Property(
                name,
                kind,
                values,
                element.getAttribute("array") == "true",
                element.getAttribute("encrypted") == "true",
            ),
        )


def _check(name: str, kind: str, value: str) -> None:
    try:
        if kind in ("Long", "Integer", "Short", "Byte"):
            int(value)
        elif kind in ("Double", "Float"):
            float(value)
        elif (kind == "Boolean" and value.strip().lower() not in ("true", "false")) or (
            kind == "Char" and len(value) != 1
        ):
            raise ValueError(value)
    except ValueError:
        raise ValueError(f"property {name!r}: {value!r} is not a {kind}") from None


HANDLERS: dict[str, Handler] = {"GET": get, "PUT": put, "EXEC": snapshots.execute}
