"""Every difference between two values of the manifest language, each at its path.

A message that names only the first difference sends the operator back and forth, one
correction a run; these are all of them, in the order the new value writes them, each with
its path (so that the caller finds its line in the manifest) and both values.

Mappings and lists of mappings (steps, waves) are compared key by key and item by item; a list
of plain values (client ids, tags) is one value: `[gw-1, gw-2] -> [gw-1, gw-3]` reads better
than a difference per position.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from jobrunner.manifests.yamlsource import DataPath


class _Absent:
    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Final = _Absent()
"""A key or list item one of the two values does not have."""

_LONGEST = 80  # characters of a value shown (a certificate is not shown whole)


@dataclass(frozen=True)
class Difference:
    path: DataPath
    old: Any
    new: Any

    @property
    def where(self) -> str:
        """`steps[0].properties.bundleId`"""
        return path_text(self.path)

    @property
    def change(self) -> str:
        """`42 -> 43`, `(absent) -> "x"`"""
        return f"{show(self.old)} -> {show(self.new)}"


def differences(old: Any, new: Any, path: DataPath = ()) -> list[Difference]:
    """Each place where `old` and `new` differ, in `new`'s order (keys only `old` has last)."""
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for key in [*new, *(k for k in old if k not in new)]:
            found.extend(differences(old.get(key, ABSENT), new.get(key, ABSENT), (*path, key)))
        return found
    if _records(old) and _records(new):
        found = []
        for index in range(max(len(old), len(new))):
            before = old[index] if index < len(old) else ABSENT
            after = new[index] if index < len(new) else ABSENT
            found.extend(differences(before, after, (*path, index)))
        return found
    return [] if old == new else [Difference(path, old, new)]


def _records(value: Any) -> bool:
    """A list with a mapping in it: compared item by item."""
    return isinstance(value, list) and any(isinstance(item, dict) for item in value)


def path_text(path: DataPath) -> str:
    text = ""
    for key in path:
        text += f"[{key}]" if isinstance(key, int) else (f".{key}" if text else str(key))
    return text or "(the whole value)"


def show(value: Any) -> str:
    """A value as the message shows it: JSON (YAML reads it), cut when it is long."""
    if value is ABSENT:
        return "(absent)"
    text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)
    return text if len(text) <= _LONGEST else text[: _LONGEST - 3] + "..."
