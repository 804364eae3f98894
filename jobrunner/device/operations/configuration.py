"""Configuration Put: `CONF-V1 PUT/configurations` with an `esf:configurations` body (§4.2).

Kura's parser is not namespace-aware: it looks elements up by their literal names
(`esf:configuration`, `esf:property`, `esf:value`), so the body is written with the literal
`esf:` prefix and the esf/ocd namespace declarations. Property types are inferred from YAML
values (bool -> Boolean, int -> Integer, or Long when it does not fit, float -> Double,
str -> String; lists become array properties) unless written out as `{type, value}`.

When the step was written as Kura's own XML (`xml:` with an `esf:configurations` root), that
document is sent as written; the device cloud's other XML form is sent rebuilt from the
structured form the manifest loader read it into.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import ClassVar
from xml.parsers.expat import ExpatError
from xml.sax.saxutils import escape

from defusedxml import DefusedXmlException
from defusedxml.minidom import parseString

from jobrunner.device.model import Request
from jobrunner.device.operations.base import Operation, Outcome, shorten
from jobrunner.device.payload import KuraPayload
from jobrunner.errors import OperationError
from jobrunner.manifests.secrets import SecretRef
from jobrunner.manifests.steps import (
    ConfigurationPut,
    ConfigurationPutStep,
    ScalarValue,
    TypedProperty,
)

ESF_NAMESPACE = "http://eurotech.com/esf/2.0"
OCD_NAMESPACE = "http://www.osgi.org/xmlns/metatype/v1.2.0"
ROOT = "esf:configurations"

_RANGES = {
    "Byte": (-(2**7), 2**7 - 1),
    "Short": (-(2**15), 2**15 - 1),
    "Integer": (-(2**31), 2**31 - 1),
    "Long": (-(2**63), 2**63 - 1),
}
# XML 1.0 cannot carry these characters at all, escaped or not.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


class PutConfiguration(Operation[ConfigurationPut]):
    step = ConfigurationPutStep
    failure_hints: ClassVar[dict[int, str]] = {
        400: "the device could not read the esf:configurations document",
    }

    @property
    def app_id(self) -> str:
        return self.settings.configuration_app

    def request(self, operation_id: int = 0) -> Request:
        return Request(self.app_id, "PUT", ("configurations",), body=self.body())

    def body(self) -> bytes:
        """The XML document sent: the step's own esf:configurations, or one built from YAML."""
        xml = self.properties.xml
        if xml is not None and is_esf_document(xml):
            return xml.encode("utf-8")
        return build_configurations(self.properties).encode("utf-8")

    def succeeded(self, payload: KuraPayload) -> Outcome:
        pids = [c.pid for c in self.properties.configurations]
        shown = ", ".join(pids[:5]) + (f" and {len(pids) - 5} more" if len(pids) > 5 else "")
        return Outcome.ok(
            f"device accepted the configuration of {shorten(shown)} (Kura applies it in the"
            " background)"
        )


def is_esf_document(xml: str) -> bool:
    """Whether `xml` is Kura's form: root element literally `esf:configurations`.

    OperationError when it does not parse (the manifest loader normally caught that)."""
    try:
        document = parseString(xml.strip())
    except (ExpatError, DefusedXmlException) as error:
        raise OperationError(f"the configuration XML does not parse: {error}") from None
    root = document.documentElement
    if root is None:  # pragma: no cover - parseString always yields a root or raises
        raise OperationError("the configuration XML has no root element")
    return bool(root.tagName == ROOT)


def build_configurations(put: ConfigurationPut) -> str:
    """The esf:configurations document of the structured form (compact: no whitespace
    between elements, which Kura's DOM walk would otherwise see as children)."""
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<{ROOT} xmlns:esf="{ESF_NAMESPACE}" xmlns:ocd="{OCD_NAMESPACE}">',
    ]
    for configuration in put.configurations:
        out.append(f"<esf:configuration pid={_attr(configuration.pid)}><esf:properties>")
        for name, value in configuration.properties.items():
            kind, values, array = property_values(name, value)
            out.append(
                f"<esf:property name={_attr(name)} array={_attr(str(array).lower())}"
                f' encrypted="false" type={_attr(kind)}>'
            )
            out.extend(f"<esf:value>{_text(v)}</esf:value>" for v in values)
            out.append("</esf:property>")
        out.append("</esf:properties></esf:configuration>")
    out.append(f"</{ROOT}>")
    return "".join(out)


def property_values(
    name: str, value: ScalarValue | list[ScalarValue] | TypedProperty
) -> tuple[str, list[str], bool]:
    """(Kura type, values as text, is an array) of one property."""
    kind: str
    if isinstance(value, TypedProperty):
        kind, raw = value.type, value.value
    else:
        kind, raw = infer_type(name, value), value
    if isinstance(raw, SecretRef):
        raise OperationError(f"property {name!r}: secret {raw} was not resolved")
    items = raw if isinstance(raw, list) else [raw]
    values = [format_value(name, kind, item) for item in items]
    if kind == "Password" and any(_NOT_XML.search(v) for v in values):
        # Said here, without the value: `_text` would show the password.
        raise OperationError(
            f"property {name!r} of type Password holds a control character XML cannot carry"
        )
    return kind, values, isinstance(raw, list)


def infer_type(name: str, value: ScalarValue | Sequence[ScalarValue]) -> str:
    """The Kura type of a YAML value (for a list: of its items)."""
    if isinstance(value, list):
        kinds = {infer_type(name, item) for item in value}
        if not kinds:
            return "String"
        if len(kinds) == 1:
            return kinds.pop()
        if kinds <= {"Integer", "Long"}:
            return "Long"
        if kinds <= {"Integer", "Long", "Double"}:
            return "Double"
        raise OperationError(
            f"property {name!r} mixes {', '.join(sorted(kinds))} values; an array property has"
            " one type: write it as {type: ..., value: [...]}"
        )
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, int):
        low, high = _RANGES["Integer"]
        if low <= value <= high:
            return "Integer"
        low, high = _RANGES["Long"]
        if low <= value <= high:
            return "Long"
        raise OperationError(f"property {name!r}: {value} does not fit a Long")
    if isinstance(value, float):
        return "Double"
    return "String"


def format_value(name: str, kind: str, value: ScalarValue) -> str:
    """A value as Kura's parser reads it for `kind`; OperationError when it does not fit."""
    where = f"property {name!r} of type {kind}"
    if kind == "Boolean":
        return _boolean(where, value)
    if kind in _RANGES:
        if isinstance(value, bool) or not isinstance(value, int):
            raise OperationError(f"{where}: {value!r} is not a whole number")
        low, high = _RANGES[kind]
        if not low <= value <= high:
            raise OperationError(f"{where}: {value} is outside {low}..{high}")
        return str(value)
    if kind in ("Double", "Float"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise OperationError(f"{where}: {value!r} is not a number")
        number = float(value)
        if math.isnan(number):
            return "NaN"
        if math.isinf(number):
            return "Infinity" if number > 0 else "-Infinity"
        return repr(number)
    if kind == "Char":
        if not isinstance(value, str) or len(value) != 1:
            raise OperationError(f"{where}: {value!r} is not a single character")
        return value
    if isinstance(value, bool):  # String / Password written as a YAML bool
        return "true" if value else "false"
    return str(value)


def _boolean(where: str, value: ScalarValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower()
    raise OperationError(f"{where}: {value!r} is not true or false")


def _text(value: str) -> str:
    if _NOT_XML.search(value):
        raise OperationError(f"value {value!r} holds a control character XML cannot carry")
    return escape(value, {"\r": "&#13;"})


def _attr(value: str) -> str:
    if _NOT_XML.search(value):
        raise OperationError(f"name {value!r} holds a control character XML cannot carry")
    return '"' + escape(value, {'"': "&quot;", "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"}) + '"'
