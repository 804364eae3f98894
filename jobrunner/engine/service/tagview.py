"""A scope's table of every known device's tags, as a view over its declared devices.

The plan asks for each device's tags by its client id (`ScopeDevices.tags`). A table made
for it would be a dict as large as the DeviceList (100,000 devices: 4 MB held as long as the
manifests are): the declared devices are such a table already, and the devices the registry
knows but git does not declare (they connected undeclared) are few and have no tag.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Protocol


class _Declared(Protocol):
    @property
    def tags(self) -> Iterable[str]: ...


class TagView(Mapping[str, Iterable[str]]):
    """Client id -> tags: the declared devices' own, then `undeclared` (no tag), in that
    order, as the table it stands for was made."""

    __slots__ = ("_declared", "_undeclared")

    def __init__(self, declared: Mapping[str, _Declared], undeclared: dict[str, None]) -> None:
        self._declared = declared
        self._undeclared = undeclared

    def __getitem__(self, client_id: str) -> Iterable[str]:
        device = self._declared.get(client_id)
        if device is not None:
            return device.tags
        if client_id in self._undeclared:
            return ()
        raise KeyError(client_id)

    def get(self, client_id: str, default: Iterable[str] | None = None) -> Iterable[str] | None:  # type: ignore[override]
        device = self._declared.get(client_id)
        if device is not None:
            return device.tags
        return () if client_id in self._undeclared else default

    def __contains__(self, client_id: object) -> bool:
        return client_id in self._declared or client_id in self._undeclared

    def __iter__(self) -> Iterator[str]:
        yield from self._declared
        yield from self._undeclared

    def __len__(self) -> int:
        return len(self._declared) + len(self._undeclared)

    def items(self) -> Iterator[tuple[str, Iterable[str]]]:  # type: ignore[override]
        for client_id, device in self._declared.items():
            yield client_id, device.tags
        for client_id in self._undeclared:
            yield client_id, ()
