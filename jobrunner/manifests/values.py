"""Per-device values and parameters in step properties: `${device.vars.NAME}`, `${params.NAME}`.

Pure: a value as written and a way to look references up go in, the value with them replaced
comes out, or an error that says where (the data path below the value) and what is wrong.

    ${device.clientId}  ${device.displayName}  ${device.labels.KEY}  ${device.vars.NAME}
    ${params.NAME}      $${ writes a literal ${

A string that is one reference and nothing else (a *whole value*) becomes the referenced value
with its type: `bundleId: ${device.vars.bundle}` with `vars: {bundle: 42}` is the number 42.
A reference inside longer text is written into the text (numbers as YAML writes them,
true/false in lower case); a mapping or a list cannot stand inside text.

Parameters are replaced when the manifest is read (`substitute(..., params_only)`): what is
left, and frozen with the job, is the step as written with only device references in it,
every `${` that is not one still escaped. Device references are replaced per target, from the
values recorded when the targets froze (`render`).
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from jobrunner.manifests.fields import LABEL_KEY_PATTERN, VAR_NAME_PATTERN

PathKey = str | int
DataPath = tuple[PathKey, ...]

_TOKEN = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_VAR = re.compile(VAR_NAME_PATTERN)
_LABEL = re.compile(LABEL_KEY_PATTERN)

FORMS = (
    "${device.clientId}, ${device.displayName}, ${device.labels.KEY}, ${device.vars.NAME},"
    " ${params.NAME}"
)


class UnresolvedReferenceError(ValueError):
    """A reference that is written wrong or cannot be resolved, at `path` below the value."""

    def __init__(self, path: DataPath, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


@dataclass(frozen=True, slots=True)
class Reference:
    """One `${...}`: `text` is what stands between the braces (`device.vars.ntpServer`)."""

    text: str
    kind: str
    """`device` or `params`."""
    name: str
    """`clientId`, `displayName`, `labels.site`, `vars.ntpServer`; a parameter's name."""

    def __str__(self) -> str:
        return "${" + self.text + "}"


def parse_reference(text: str) -> Reference:
    """The reference written `${text}`; ValueError saying what would be right."""
    root, _, rest = text.partition(".")
    if root == "params" and _VAR.match(rest):
        return Reference(text, "params", rest)
    if root == "device":
        if rest in ("clientId", "displayName"):
            return Reference(text, "device", rest)
        family, _, key = rest.partition(".")
        if family == "vars" and _VAR.match(key):
            return Reference(text, "device", rest)
        if family == "labels" and _LABEL.match(key):
            return Reference(text, "device", rest)
    raise ValueError(
        f"${{{text}}} is not a reference jobrunner knows; write one of {FORMS}"
        " (or $${ for a literal ${)"
    )


Part = str | Reference


@functools.lru_cache(maxsize=4096)
def parse(text: str) -> tuple[Part, ...]:
    """`text` as literal parts and references, `$${` already turned into `${` (kept: the
    strings of a step are the same for every one of its targets)."""
    parts: list[Part] = []
    literal = ""
    position = 0
    for match in _TOKEN.finditer(text):
        literal += text[position : match.start()]
        position = match.end()
        token = match.group(0)
        if token == "$${":
            literal += "${"
            continue
        if match.group(1) is None:
            raise ValueError(
                f"'${{' at character {match.start() + 1} has no closing '}}'; write"
                " ${device.vars.NAME}, or $${ for a literal ${"
            )
        if literal:
            parts.append(literal)
            literal = ""
        parts.append(parse_reference(match.group(1).strip()))
    literal += text[position:]
    if literal:
        parts.append(literal)
    return tuple(parts)


def holds_references(value: Any) -> bool:
    """Whether any string in `value` holds `${` (a reference, or an escaped `$${`): such a
    step is a template, made concrete per target."""
    if isinstance(value, str):
        return "${" in value
    if isinstance(value, dict):
        return any(holds_references(v) for v in value.values())
    if isinstance(value, list):
        return any(holds_references(v) for v in value)
    return False


def references(value: Any, path: DataPath = ()) -> Iterator[tuple[DataPath, Reference]]:
    """Every reference in `value`, with its data path; UnresolvedReferenceError at a
    malformed one."""
    if isinstance(value, str):
        if "${" not in value:
            return
        try:
            parts = parse(value)
        except ValueError as error:
            raise UnresolvedReferenceError(path, str(error)) from None
        for part in parts:
            if isinstance(part, Reference):
                yield path, part
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from references(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from references(item, (*path, index))


Lookup = Callable[[Reference], Any]
"""The value of a reference; KeyError (its message: what is missing) when it has none."""


def text_of(value: Any) -> str:
    """A value as it stands inside text: 42, 1.5, true, the text itself."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, dict | list):
        raise TypeError("a mapping or a list")
    return str(value)


def escape(value: Any) -> Any:
    """`value` with every `${` in its strings written `$${`: what a parameter puts in a step
    stays what it says, never read as a reference afterwards."""
    if isinstance(value, str):
        return value.replace("${", "$${")
    if isinstance(value, dict):
        return {k: escape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [escape(v) for v in value]
    return value


def substitute(value: Any, lookup: Lookup, kinds: frozenset[str] | None = None) -> Any:
    """`value` with the references of `kinds` (None: all) replaced through `lookup`.

    With `kinds`, what is not replaced stays as written (`${...}` and `$${`), and the values
    put in are escaped: the result is still a template. Without, every `$${` becomes `${`:
    the result is final. UnresolvedReferenceError names the path of the first problem."""
    return _substitute(value, lookup, kinds, ())


def _substitute(value: Any, lookup: Lookup, kinds: frozenset[str] | None, path: DataPath) -> Any:
    if isinstance(value, str):
        return _string(value, lookup, kinds, path) if "${" in value else value
    if isinstance(value, dict):
        return {k: _substitute(v, lookup, kinds, (*path, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, lookup, kinds, (*path, i)) for i, v in enumerate(value)]
    return value


def _string(text: str, lookup: Lookup, kinds: frozenset[str] | None, path: DataPath) -> Any:
    try:
        parts = parse(text)
    except ValueError as error:
        raise UnresolvedReferenceError(path, str(error)) from None
    partial = kinds is not None
    if len(parts) == 1 and isinstance(parts[0], Reference):
        reference = parts[0]
        if partial and reference.kind not in kinds:  # type: ignore[operator]
            return text
        found = _look_up(reference, lookup, path)
        return escape(found) if partial else found
    out = []
    for part in parts:
        if isinstance(part, str):
            out.append(part.replace("${", "$${") if partial else part)
            continue
        if partial and part.kind not in kinds:  # type: ignore[operator]
            out.append(str(part))
            continue
        found = _look_up(part, lookup, path)
        try:
            shown = text_of(found)
        except TypeError:
            raise UnresolvedReferenceError(
                path,
                f"{part} is {_shape(found)}, which cannot stand inside text; write the"
                " reference alone as the whole value",
            ) from None
        out.append(shown.replace("${", "$${") if partial else shown)
    return "".join(out)


def _shape(value: Any) -> str:
    return "a mapping" if isinstance(value, dict) else "a list"


def _look_up(reference: Reference, lookup: Lookup, path: DataPath) -> Any:
    try:
        return lookup(reference)
    except KeyError as error:
        reason = error.args[0] if error.args else f"{reference} has no value"
        raise UnresolvedReferenceError(path, str(reason)) from None


def table_lookup(values: Mapping[str, Any]) -> Lookup:
    """A lookup over recorded values, by reference text (`device.vars.ntpServer`)."""

    def look(reference: Reference) -> Any:
        try:
            return values[reference.text]
        except KeyError:
            raise KeyError(f"{reference} was not recorded when the targets froze") from None

    return look


def _close(word: str, choices: Iterator[str] | list[str]) -> str:
    found = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean '{found[0]}'?" if found else ""


@dataclass(frozen=True, slots=True)
class DeviceValues:
    """What `${device.*}` references read for one device: its DeviceList entry."""

    client_id: str
    display_name: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    vars: Mapping[str, Any] = field(default_factory=dict)
    declared: bool = True
    """In a DeviceList (else known only from its connection: no display name, labels, vars)."""

    def lookup(self, reference: Reference) -> Any:
        """The value of a `device` reference; KeyError saying what it lacks."""
        name = reference.name
        if name == "clientId":
            return self.client_id
        where = "" if self.declared else " (it is in no DeviceList)"
        if name == "displayName":
            if self.display_name is None:
                raise KeyError(f"{reference}: device {self.client_id} has no displayName{where}")
            return self.display_name
        family, _, key = name.partition(".")
        table: Mapping[str, Any] = self.vars if family == "vars" else self.labels
        if key in table:
            return table[key]
        what = "var" if family == "vars" else "label"
        has = f"; it has {', '.join(sorted(table))}" if table else f"; it has no {family}"
        raise KeyError(
            f"{reference}: device {self.client_id} has no {what} '{key}'{where}"
            f"{_close(key, list(table))}{has if not _close(key, list(table)) else ''}"
        )


def params_lookup(params: Mapping[str, Any]) -> Lookup:
    """A lookup of `${params.NAME}` over the job's parameters."""

    def look(reference: Reference) -> Any:
        if reference.name in params:
            return params[reference.name]
        listed = ", ".join(sorted(params)) or "none"
        hint = _close(reference.name, list(params))
        raise KeyError(
            f"{reference}: no parameter '{reference.name}'"
            + (hint or f"; the job's parameters: {listed}")
        )

    return look
