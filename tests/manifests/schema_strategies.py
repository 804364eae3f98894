"""Hypothesis strategies that write manifest values from the project's own JSON Schemas.

Driven by `schemas/*.schema.json` (generated from the models), so a field added to a model is
generated here without touching this file. It covers the constructs those schemas use:
`$ref`, `anyOf`, an object's `oneOf` of `required` sets (either `configurations` or `xml`),
`const`, `enum`, strings with `pattern` or lengths, integers and numbers with bounds, arrays,
objects with `properties` or `additionalProperties`. What the schema cannot say (PEM text,
base64, a channel value that fits its type) is produced here for the few formats that need it,
or left to the models to refuse: the tests keep what validates.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"

PEM = (
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBszCCAVmgAwIBAgIUFQmL3m2cPjE8l4c8dQv3w1m5p6owCgYIKoZIzj0EAwIw\n"
    "-----END CERTIFICATE-----\n"
)
# Printable text, with the characters that YAML, JSON and XML treat specially.
_TEXT = st.characters(
    codec="utf-8", categories=("L", "N", "P", "S", "Zs"), exclude_characters="\x00"
)


def load(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    return schema


def _channel_value(kind: str) -> st.SearchStrategy[Any]:
    if kind == "BOOLEAN":
        return st.booleans()
    if kind in ("INTEGER", "LONG"):
        bits = 31 if kind == "INTEGER" else 63
        return st.integers(-(2**bits), 2**bits - 1)
    if kind in ("FLOAT", "DOUBLE"):
        return st.floats(allow_nan=False, allow_infinity=False, width=64)
    if kind == "BYTE_ARRAY":
        return st.binary(max_size=12).map(lambda b: base64.b64encode(b).decode())
    return st.text(_TEXT, max_size=20)


@st.composite
def _channel(draw: st.DrawFn) -> dict[str, Any]:
    """A channel write whose value fits its type (a rule the schema does not state)."""
    kind = draw(
        st.sampled_from(["BOOLEAN", "BYTE_ARRAY", "DOUBLE", "INTEGER", "LONG", "FLOAT", "STRING"])
    )
    name = draw(st.text(_TEXT, min_size=1, max_size=20))
    return {"name": name, "type": kind, "value": draw(_channel_value(kind))}


OVERRIDES: dict[str, st.SearchStrategy[Any]] = {
    "ChannelWrite": _channel(),
    # `${...}` references are written, valid, by the tests of per-device values; a text
    # drawn from the pattern `\$\{` is almost never one.
    "Reference": st.nothing(),
}
"""Definitions whose rules reach across their fields, by `$defs` name."""


def from_schema(schema: dict[str, Any], defs: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values that the JSON Schema `schema` (with its `$defs`) describes."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        if name in OVERRIDES:
            return OVERRIDES[name]
        return st.deferred(lambda: from_schema(defs[name], defs))
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "anyOf" in schema:
        return st.one_of([from_schema(s, defs) for s in schema["anyOf"]])
    if schema.get("contentMediaType") == "application/x-pem-file":
        return st.just(PEM)
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        return _object(schema, defs)
    if kind == "array":
        items = from_schema(schema.get("items", {}), defs)
        return st.lists(items, min_size=schema.get("minItems", 0), max_size=3)
    if kind == "string":
        if "pattern" in schema:
            return st.from_regex(schema["pattern"], fullmatch=True).filter(
                lambda s: len(s) <= schema.get("maxLength", 200)
            )
        low = schema.get("minLength", 0)
        return st.text(_TEXT, min_size=low, max_size=min(schema.get("maxLength", 40), low + 40))
    if kind == "integer":
        low = schema.get("minimum", schema.get("exclusiveMinimum", -(2**63) - 1) + 1)
        high = schema.get("maximum", schema.get("exclusiveMaximum", 2**63) - 1)
        return st.integers(low, high)
    if kind == "number":
        return st.floats(allow_nan=False, allow_infinity=False, width=64)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    return st.one_of(st.none(), st.booleans(), st.integers(), st.text(_TEXT, max_size=10))


def _object(schema: dict[str, Any], defs: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    properties: dict[str, Any] = schema.get("properties", {})
    if not properties:
        values = schema.get("additionalProperties", {})
        value_strategy = from_schema(values if isinstance(values, dict) else {}, defs)
        keys = st.text(_TEXT, min_size=1, max_size=20)
        return st.dictionaries(keys, value_strategy, max_size=3)
    required = set(schema.get("required", []))
    branches = [set(b.get("required", [])) for b in schema.get("oneOf", [])] or [set()]

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        branch = draw(st.sampled_from(branches))
        excluded = set().union(*branches) - branch
        value: dict[str, Any] = {}
        for key, sub in properties.items():
            if key in excluded:
                continue
            if key in required or key in branch or draw(st.booleans()):
                value[key] = draw(from_schema(sub, defs))
        return value

    return build()
