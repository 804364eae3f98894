"""The device registry of a state directory: every device of every scope, as last seen.

Per scope, per client id: declared in git (a DeviceList) or discovered (it connected
without being declared: registered too, and marked so), its connection status (CONNECTED
after a BIRTH or APPS, DISCONNECTED after a DC, MISSING after an LWT, UNKNOWN before any),
when it was last seen, and what its BIRTH said (display name, model and model id, firmware,
framework version, application ids).

Stored as `<state>/scopes/<scope>/devices.journal`: one JSON line per change (the device's
whole record, or `{"clientId": ..., "deleted": true}`), the last line of a client id wins.
The journal is compacted (rewritten as one line per live device) when it holds four times
more lines than devices, so each lifecycle message costs O(1) amortized: a burst of 10,000
BIRTHs is 10,000 appends. Not thread-safe: the engine's single thread owns it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from jobrunner.state.devices import DeviceRecord, DeviceStatus, Facts, seconds
from jobrunner.state.journal import Journal, Record
from jobrunner.state.layout import StateDir
from jobrunner.state.stores.base import Storage

__all__ = ["DeviceRecord", "DeviceRegistry", "DeviceStatus", "ScopeRegistry"]

FORMAT = "jobrunner.devices"
VERSION = 1
COMPACT_MIN_LINES = 1024
COMPACT_FACTOR = 4


log = logging.getLogger("jobrunner.registry")

HEARD_EVERY = 60.0
"""Seconds between two records of a connected device's last word (replies, notifications):
its "last seen" is at most this old."""

Moment = datetime | float | None
"""When something was heard: a datetime, epoch seconds, or None (now)."""


def _skipped(problem: str) -> None:
    log.warning("%s: skipped; the device is learned again when it speaks", problem)


def _now(at: Moment) -> float:
    found = seconds(at)
    return time.time() if found is None else found


def _text(record: Record, name: str, required: bool = False) -> str | None:
    value = record.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value):
        raise ValueError(f"'{name}' is not {'a non-empty' if required else 'a'} string")
    return value


class ScopeRegistry:
    """The devices of one scope, backed by its journal."""

    def __init__(self, storage: Storage, path: Path, autoflush: bool = True) -> None:
        self.path = path
        self.autoflush = autoflush
        # A damaged line is skipped, said once: the devices are learned again as they speak,
        # and the jobs of the scope go on (they would all stop on one garbled line).
        self._journal = Journal(storage, path, FORMAT, VERSION, damaged=_skipped)
        self._devices: dict[str, DeviceRecord] = {}
        self._facts: dict[Facts, Facts] = {}
        """The BIRTH facts the devices hold, each distinct one once (a fleet of one model
        and firmware shares one)."""
        self._quiet_until: dict[str, float] = {}
        """Per device heard lately: until when another word of it writes nothing."""
        self._lines = 0
        self._load()

    def _load(self) -> None:
        for record in self._journal.read():
            self._lines += 1
            try:
                if record.get("deleted") is True:
                    self._devices.pop(_text(record, "clientId", required=True) or "", None)
                    continue
                device = DeviceRecord.from_record(record, self._facts)
            except ValueError as error:
                _skipped(f"{self.path}:{self._journal.line}: damaged device record ({error})")
                continue
            self._devices[device.client_id] = device

    # -- reading ---------------------------------------------------------------------------

    def get(self, client_id: str) -> DeviceRecord | None:
        return self._devices.get(client_id)

    def __contains__(self, client_id: object) -> bool:
        return client_id in self._devices

    def __iter__(self) -> Iterator[DeviceRecord]:
        return iter(list(self._devices.values()))

    def __len__(self) -> int:
        return len(self._devices)

    def copy(self) -> ScopeRegistry:
        """The devices as they are now, for a reader on another thread (records are
        immutable; `dict.copy` runs whole under the interpreter lock). Never written."""
        other = ScopeRegistry.__new__(ScopeRegistry)
        other.path, other.autoflush, other._lines = self.path, False, self._lines
        other._journal = Journal(self._journal.storage, self.path, FORMAT, VERSION)
        other._devices = self._devices.copy()
        other._facts = {}
        return other

    # -- changes ---------------------------------------------------------------------------

    def declare(self, client_ids: Iterable[str]) -> None:
        """Make exactly `client_ids` the declared devices (the scope's DeviceLists in git).

        A device no longer declared stays as discovered if it was ever seen, else goes."""
        wanted = set(client_ids)
        for client_id in wanted:
            device = self._devices.get(client_id)
            if device is None:
                self._put(DeviceRecord(client_id, declared=True))
            elif not device.declared:
                self._put(device.with_declared(True))
        for device in list(self._devices.values()):
            if device.declared and device.client_id not in wanted:
                if device.seen is None:
                    self._delete(device.client_id)
                else:
                    self._put(device.with_declared(False))
        self._maybe_flush()

    def connected(
        self,
        client_id: str,
        at: Moment = None,
        *,
        display_name: str | None = None,
        model: str | None = None,
        model_id: str | None = None,
        firmware: str | None = None,
        framework_version: str | None = None,
        application_ids: Iterable[str] | None = None,
    ) -> DeviceRecord:
        """A BIRTH or APPS: CONNECTED, and the facts it gave (None keeps what was known)."""
        device = self._devices.get(client_id) or DeviceRecord(client_id)
        known = device.facts
        facts: Facts | None = (
            model if model is not None else device.model,
            model_id if model_id is not None else device.model_id,
            firmware if firmware is not None else device.firmware,
            framework_version or device.framework_version,
            tuple(application_ids) if application_ids is not None else device.application_ids,
        )
        if facts == known or (known is None and facts == (None, None, None, None, None)):
            facts = known
        else:
            assert facts is not None
            facts = self._facts.setdefault(facts, facts)
        updated = DeviceRecord.made(
            device.client_id,
            device.declared,
            DeviceStatus.CONNECTED,
            _now(at),
            display_name if display_name is not None else device.display_name,
            facts,
        )
        return self._change(updated)

    def heard(self, client_id: str, at: float, every: float = HEARD_EVERY) -> None:
        """Any other message of a device (a reply to a request sent to it, a notification of
        its operation): it is connected, and was seen `at`. Written when that changes its
        status, else at most every `every` seconds: a device that answers a request a second
        must not write a line each time."""
        if at < self._quiet_until.get(client_id, 0.0):
            return  # the hot path: one dict lookup per reply
        device = self._devices.get(client_id) or DeviceRecord(client_id)
        last = device.seen
        if device.status is not DeviceStatus.CONNECTED or last is None or at - last >= every:
            self._change(device.with_status(DeviceStatus.CONNECTED, at))
            last = at
        self._quiet_until[client_id] = last + every

    def disconnected(self, client_id: str, at: Moment = None) -> DeviceRecord | None:
        """A DC: the device disconnected cleanly. None for a device the registry does not
        know: a DC or an LWT makes no device (anyone may publish on those topics)."""
        return self._status(client_id, DeviceStatus.DISCONNECTED, at)

    def missing(self, client_id: str, at: Moment = None) -> DeviceRecord | None:
        """An LWT: the broker lost the device (None: unknown, as for `disconnected`)."""
        return self._status(client_id, DeviceStatus.MISSING, at)

    def flush(self, durable: bool = False) -> None:
        """Write queued changes (needed only with `autoflush=False`)."""
        self._journal.flush(durable)

    def close(self, settle: bool = False) -> None:
        """Write what is queued; `settle` (its owner, leaving): one line per device from now
        on, so that the next start reads the devices, not every word they said."""
        if settle and self._lines > len(self._devices):
            self._journal.compact(d.as_record() for d in self._devices.values())
            self._lines = len(self._devices)
        self._journal.flush()
        self._journal.close()

    # -- internals -------------------------------------------------------------------------

    def _status(self, client_id: str, status: DeviceStatus, at: Moment) -> DeviceRecord | None:
        device = self._devices.get(client_id)
        if device is None:
            return None
        return self._change(device.with_status(status, _now(at)))

    def _change(self, device: DeviceRecord) -> DeviceRecord:
        if self._devices.get(device.client_id) != device:
            self._put(device)
            self._maybe_flush()
        return device

    def _put(self, device: DeviceRecord) -> None:
        self._devices[device.client_id] = device
        self._quiet_until.pop(device.client_id, None)  # a DC, an LWT: its next word counts
        self._append(device.as_record())

    def _delete(self, client_id: str) -> None:
        if self._devices.pop(client_id, None) is not None:
            self._append({"clientId": client_id, "deleted": True})

    def _append(self, record: dict[str, Any]) -> None:
        self._journal.append(record)
        self._lines += 1
        if self._lines > max(COMPACT_MIN_LINES, COMPACT_FACTOR * len(self._devices)):
            self._journal.compact(d.as_record() for d in self._devices.values())
            self._lines = len(self._devices)
            # Only the facts devices hold now: those of a firmware long replaced go.
            self._facts = {f: f for d in self._devices.values() if (f := d.facts) is not None}

    def _maybe_flush(self) -> None:
        if self.autoflush:
            self._journal.flush()


class DeviceRegistry:
    """The registries of every scope of a state directory, loaded on first use."""

    def __init__(self, state: StateDir | Path, autoflush: bool = True) -> None:
        self.layout = state if isinstance(state, StateDir) else StateDir(state)
        self.autoflush = autoflush
        self._scopes: dict[str, ScopeRegistry] = {}

    def scope(self, scope: str) -> ScopeRegistry:
        """The devices of `scope` (StateError if its journal is damaged)."""
        registry = self._scopes.get(scope)
        if registry is None:
            registry = ScopeRegistry(
                self.layout.storage, self.layout.devices(scope), self.autoflush
            )
            self._scopes[scope] = registry
        return registry

    def copy(self) -> DeviceRegistry:
        """The registries as they are now, for a reader on another thread (the dashboard):
        the scopes in use are copied, the others are read from disk when asked for."""
        other = DeviceRegistry(self.layout, autoflush=False)
        other._scopes = {name: scope.copy() for name, scope in dict(self._scopes).items()}
        return other

    def scopes(self) -> list[str]:
        """Scopes with a registry on disk or in use."""
        on_disk = {
            s for s in self.layout.scopes() if self.layout.storage.exists(self.layout.devices(s))
        }
        return sorted(on_disk | self._scopes.keys())

    def flush(self, durable: bool = False) -> None:
        for registry in self._scopes.values():
            registry.flush(durable)

    def close(self, settle: bool = False) -> None:
        """Close every scope's journal (`settle`: compact it first; the owner only)."""
        for registry in self._scopes.values():
            registry.close(settle)
        self._scopes.clear()

    def __enter__(self) -> DeviceRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
