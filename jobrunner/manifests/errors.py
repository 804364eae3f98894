"""Turning pydantic's validation errors into messages in the manifest's own words."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from jobrunner.manifests.yamlsource import DataPath, SourceMap

_TYPE_NAMES = {
    "string_type": "text",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "bool_type": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "datetime_type": "an ISO-8601 time",
}


class _Hidden:
    """Stands for the value of a secret property in messages (they are printed, logged)."""


def _is_secret(loc: tuple[int | str, ...]) -> bool:
    return any(isinstance(part, str) and part.lower().endswith("password") for part in loc)


def describe(value: Any) -> str:
    """A short, user-facing description of a YAML value."""
    if isinstance(value, _Hidden):
        return "a value not shown here (a secret)"
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"{str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"the text {shown!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def data_path(model: type[BaseModel], data: Any, loc: tuple[int | str, ...]) -> DataPath:
    """The path inside the YAML data that an error location names.

    Pydantic puts union member names and discriminator tags into locations (a schedule of
    type `interval` has the tag `interval` in its location, which is also one of its keys);
    walking the model alongside the data tells the two apart.
    """
    path: list[int | str] = []
    current = data
    tp: Any = model
    for element in loc:
        member = _union_member(tp, element)
        if member is not None:
            tp = member
            continue
        tp = _step_into(tp, element)
        if _has_child(current, element):
            current = current[element]
            path.append(element)
    return tuple(path)


def _has_child(value: Any, element: int | str) -> bool:
    if isinstance(value, dict):
        return isinstance(element, str) and element in value
    return isinstance(value, list) and isinstance(element, int) and element < len(value)


def _union_member(tp: Any, element: int | str) -> Any:
    """The member of union `tp` that `element` names (by tag or by type name), if any."""
    members = [_unwrap(m) for m in get_args(_unwrap(tp))]
    if get_origin(_unwrap(tp)) in (list, dict) or not members:
        return None
    for member in members:
        if isinstance(member, type) and issubclass(member, BaseModel):
            for info in member.model_fields.values():
                if get_origin(info.annotation) is Literal and element in get_args(info.annotation):
                    return member
    for member in members:
        if getattr(member, "__name__", None) == element or str(member) == element:
            return member
    return None


def _aliases_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """The keys allowed in the mapping at `loc` below `model`, when they can be told."""
    current: Any = model
    for element in loc:
        current = _step_into(current, element)
        if current is None:
            return []
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or name for name, f in current.model_fields.items()]
    return []


def _unwrap(tp: Any) -> Any:
    while get_origin(tp) is not None and hasattr(tp, "__metadata__"):
        tp = get_args(tp)[0]
    return tp


def _step_into(tp: Any, element: int | str) -> Any:
    tp = _unwrap(tp)
    if tp is None:
        return None
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        for name, info in tp.model_fields.items():
            if element in (info.alias, name):
                return info.annotation
        return None
    origin = get_origin(tp)
    if origin is list:
        return get_args(tp)[0] if isinstance(element, int) else None
    if origin is dict:
        return get_args(tp)[1]
    member = _union_member(tp, element)
    if member is not None:
        return member
    for member in get_args(tp):  # an undiscriminated union: the key is inside a member
        found = _step_into(member, element)
        if found is not None:
            return found
    return None


def suggest(word: str, choices: Iterable[str]) -> str:
    """`; did you mean 'x'?` when one choice is close, else ''."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def message_for(error: ErrorDetails, model: type[BaseModel]) -> str:
    """One pydantic error, said in the manifest's terms."""
    kind = error["type"]
    loc = error["loc"]
    ctx = error.get("ctx", {})
    value = error.get("input")
    if kind == "missing":
        return f"missing required key '{loc[-1]}'"
    if kind == "extra_forbidden":
        key = str(loc[-1])
        if key == "completionTimeout":
            return (
                "unknown key 'completionTimeout': it applies only to asynchronous steps"
                " (Package Download / Install, Package Uninstall, Activity Submit)"
            )
        allowed = _aliases_at(model, loc[:-1])
        hint = suggest(key, allowed) or (f"; allowed keys: {', '.join(allowed)}" if allowed else "")
        return f"unknown key '{key}'{hint}"
    if kind == "union_tag_invalid":
        field = str(ctx.get("discriminator", "")).strip("'")
        expected = [t.strip().strip("'") for t in str(ctx.get("expected_tags", "")).split(",")]
        tag = str(ctx.get("tag"))
        hint = suggest(tag, expected)
        listing = "" if hint else f"; use one of: {', '.join(expected)}"
        return f"unknown {field} '{tag}'{hint}{listing}"
    if kind == "union_tag_not_found":
        return f"missing required key {ctx.get('discriminator')}"
    if kind in ("literal_error", "enum"):
        return f"expected {ctx.get('expected')}, found {describe(value)}"
    if kind in ("value_error", "assertion_error"):
        return str(ctx.get("error", error["msg"]))
    if kind == "too_short" and isinstance(value, list):
        return f"expected at least {ctx.get('min_length')} item(s), found an empty list"
    if kind in _TYPE_NAMES:
        return f"expected {_TYPE_NAMES[kind]}, found {describe(value)}"
    return f"{error['msg']}; found {describe(value)}"


def dotted(path: DataPath) -> str:
    """`spec.steps[2].properties` for a data path."""
    text = ""
    for element in path:
        text += f"[{element}]" if isinstance(element, int) else f".{element}"
    return text.lstrip(".") or "the document"


def located_messages(
    error: ValidationError | list[ErrorDetails],
    model: type[BaseModel],
    data: Any,
    source: SourceMap,
) -> list[tuple[int, str]]:
    """(line, message) for each distinct problem of one document, in document order (`error`:
    what validating it with `model` raised, or the details of it)."""
    by_path: dict[DataPath, list[ErrorDetails]] = {}
    details = error.errors(include_url=False) if isinstance(error, ValidationError) else error
    for detail in details:
        if _is_secret(detail["loc"]):
            detail["input"] = _Hidden()
        by_path.setdefault(data_path(model, data, detail["loc"]), []).append(detail)
    explained = {
        path
        for path, details in by_path.items()
        if any(d["type"] not in _TYPE_NAMES for d in details)
    }
    results: list[tuple[int, str]] = []
    for path, found in by_path.items():
        details = found
        type_errors = [d for d in details if d["type"] in _TYPE_NAMES]
        if (type_errors and len(type_errors) < len(details)) or _has_deeper(path, explained):
            # A union member that takes this kind of value explained what is wrong inside
            # it; "expected text" from the other members would only be noise.
            details = [d for d in details if d["type"] not in _TYPE_NAMES]
        elif len(type_errors) > 1:
            accepted = sorted({_TYPE_NAMES[d["type"]] for d in type_errors})
            value = type_errors[0].get("input")
            results.append(
                (source.line_of(path), f"expected {' or '.join(accepted)}, found {describe(value)}")
            )
            continue
        seen: set[str] = set()
        for detail in details:
            message = message_for(detail, model)
            if message in seen:
                continue
            seen.add(message)
            where = f" in {dotted(path)}" if message.startswith("missing required") and path else ""
            results.append((source.line_of(_pointed(path, detail)), message + where))
    return sorted(results, key=lambda item: item[0])


def _pointed(path: DataPath, detail: ErrorDetails) -> DataPath:
    """Where the error is written: an unknown `definition:` (or schedule `type:`) is on its
    own line, not on the step's first one."""
    if detail["type"] == "union_tag_invalid":
        field = str(detail.get("ctx", {}).get("discriminator", "")).strip("'")
        if field:
            return (*path, field)
    return path


def _has_deeper(path: DataPath, explained: set[DataPath]) -> bool:
    return any(len(other) > len(path) and other[: len(path)] == path for other in explained)
